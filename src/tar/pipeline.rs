//! A pipeline of child processes (`tar | zstd`, `zstd -d | tar -x`) started from argument
//! vectors, connected by pipes (no shell), in one process group of their own.
//!
//! Owns: spawning the stages, pumping the last stage's output into a caller's sink (for
//! hashing and writing the archive), collecting each stage's stderr, cancellation, and making
//! sure nothing of the group outlives [`run`].
//!
//! Must not: interpret exit codes (the caller does, with [`super::classify`]), or signal any
//! group but the one it created, and that one only while its leader is unreaped.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::sys::child::{die_with_parent, wait_group_gone};
use crate::sys::jobctl::{self, Tracked};

/// Trailing stderr lines kept per stage.
const TAIL: usize = 20;

/// Between SIGTERM and SIGKILL on cancel or error.
const GRACE: Duration = Duration::from_secs(2);

/// How often the watcher looks at the cancel flag and the job-control gates while the
/// pipeline runs.
const POLL: Duration = Duration::from_millis(20);

/// How one stage ended.
#[derive(Debug, Clone)]
pub struct StageEnd {
    pub program: String,
    /// The exit code, or `None` when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stderr_tail: Vec<String>,
    /// stderr lines that do not start with `<program>: ` (tar --verbose's member list).
    pub listed: u64,
}

impl StageEnd {
    pub fn describe(&self) -> String {
        let how = match (self.code, self.signal) {
            (Some(c), _) => format!("{} exited with code {c}", self.program),
            (None, Some(s)) => format!("{} was killed by signal {s}", self.program),
            _ => format!("{} ended", self.program),
        };
        let mut m = how;
        for l in &self.stderr_tail {
            m.push('\n');
            m.push_str(l);
        }
        m
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("could not start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cancelled")]
    Cancelled,
    #[error("writing the output failed: {0}")]
    Sink(#[source] std::io::Error),
    #[error("waiting for {program} failed: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where the first stage reads from.
pub enum Input {
    Null,
    File(File),
}

/// Runs `stages` connected by pipes. The first reads `input`; the last one's stdout goes to
/// `sink` (in chunks, on this thread) or, with `sink: None`, to /dev/null. Returns each
/// stage's end once all have exited. Call from a thread that lives until it returns
/// (PDEATHSIG, see [`crate::sys::child`]).
pub fn run(
    stages: &[Vec<OsString>],
    input: Input,
    sink: Option<&mut dyn Write>,
    cancel: &AtomicBool,
) -> Result<Vec<StageEnd>, PipelineError> {
    assert!(!stages.is_empty() && stages.iter().all(|s| !s.is_empty()));
    let mut group = Group {
        children: Vec::new(),
        names: Vec::new(),
        pgid: None,
        tracked: None,
        reaped: false,
    };
    let mut stderr_threads = Vec::new();
    let mut prev_out: Option<std::process::ChildStdout> = None;
    let mut input = Some(input);
    for (i, argv) in stages.iter().enumerate() {
        let program = argv[0].to_string_lossy().into_owned();
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .stderr(Stdio::piped())
            .env_remove("NOTIFY_SOCKET")
            .env("LC_ALL", "C");
        match (i, input.take()) {
            (0, Some(Input::File(f))) => c.stdin(Stdio::from(f)),
            (0, _) => c.stdin(Stdio::null()),
            _ => c.stdin(Stdio::from(
                prev_out.take().expect("the previous stage's stdout"),
            )),
        };
        let last = i + 1 == stages.len();
        c.stdout(if last && sink.is_none() {
            Stdio::null()
        } else {
            Stdio::piped()
        });
        c.process_group(group.pgid.map_or(0, |p| p.as_raw()));
        die_with_parent(&mut c);
        let spawned = if i == 0 {
            jobctl::spawn_tracked(&mut c).map(|(child, t)| {
                group.tracked = Some(t);
                child
            })
        } else {
            c.spawn()
        };
        // The pipe ends given to the child are closed here, in this process.
        drop(c);
        let mut child = spawned.map_err(|source| PipelineError::Spawn {
            program: program.clone(),
            source,
        })?;
        if i == 0 {
            group.pgid = Some(Pid::from_raw(child.id() as i32));
        }
        let err = child.stderr.take().expect("piped");
        let prefix = format!("{program}: ");
        stderr_threads.push(std::thread::spawn(move || read_stderr(err, &prefix)));
        prev_out = child.stdout.take();
        group.children.push(child);
        group.names.push(program);
    }
    let done = AtomicBool::new(false);
    let cancelled = AtomicBool::new(false);
    let pgid = group.pgid.expect("one stage at least");
    let pumped = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if cancel.load(Ordering::SeqCst) {
                    cancelled.store(true, Ordering::SeqCst);
                    terminate(pgid);
                    return;
                }
                if let Some(t) = &group.tracked {
                    t.continue_if_verified();
                }
                // Woken at once when the pump is done (below), so the end of a short
                // pipeline is not delayed by up to one poll interval.
                std::thread::park_timeout(POLL);
            }
        });
        let r = match (sink, prev_out.take()) {
            (Some(sink), Some(out)) => pump(out, sink),
            // No output to pump (an extraction, a listing): wait here until every stage has
            // exited, without reaping any, so the watcher keeps answering a cancel (and
            // Ctrl-Z) for as long as the pipeline runs, and may still signal the group.
            _ => {
                group.wait_exited();
                Ok(())
            }
        };
        if r.is_err() {
            // The sink failed: stop the producers, which would block on a full pipe.
            terminate(pgid);
        }
        done.store(true, Ordering::SeqCst);
        watcher.thread().unpark();
        let _ = watcher.join();
        r
    });
    let ends = group.wait_all()?;
    let mut out = Vec::new();
    for ((end, t), program) in ends.into_iter().zip(stderr_threads).zip(&group.names) {
        let (tail, listed) = t.join().unwrap_or_default();
        out.push(StageEnd {
            program: program.clone(),
            code: end.code(),
            signal: end.signal(),
            stderr_tail: tail,
            listed,
        });
    }
    if cancelled.load(Ordering::SeqCst) {
        return Err(PipelineError::Cancelled);
    }
    pumped.map_err(PipelineError::Sink)?;
    Ok(out)
}

fn pump(mut out: std::process::ChildStdout, sink: &mut dyn Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sink.write_all(&buf[..n])?;
    }
}

fn read_stderr(err: std::process::ChildStderr, prefix: &str) -> (Vec<String>, u64) {
    let mut tail = VecDeque::new();
    let mut listed = 0;
    for line in BufReader::new(err).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line).into_owned();
        if line.starts_with(prefix) {
            if tail.len() == TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        } else {
            listed += 1;
        }
    }
    (tail.into(), listed)
}

/// SIGTERM (and SIGCONT, for a group stopped by Ctrl-Z), then SIGKILL after [`GRACE`] if the
/// leader has not exited. Only called while the leader is unreaped (before `wait_all`).
fn terminate(pgid: Pid) {
    let _ = killpg(pgid, Signal::SIGTERM);
    let _ = killpg(pgid, Signal::SIGCONT);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && !exited_unreaped(pgid) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = killpg(pgid, Signal::SIGKILL);
}

fn exited_unreaped(pid: Pid) -> bool {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::Pid(pid), flags), Ok(WaitStatus::StillAlive))
}

/// The stages, reaped on every path out of [`run`].
struct Group {
    children: Vec<Child>,
    names: Vec<String>,
    pgid: Option<Pid>,
    tracked: Option<Tracked>,
    reaped: bool,
}

impl Group {
    /// Blocks until every stage has exited, leaving them unreaped (`WNOWAIT`).
    fn wait_exited(&self) {
        use nix::sys::wait::{waitid, Id, WaitPidFlag};
        for c in &self.children {
            let pid = Pid::from_raw(c.id() as i32);
            // EINTR: again. Exited, or not waitable at all: `wait_all` reports it.
            while let Err(nix::errno::Errno::EINTR) =
                waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
            {}
        }
    }

    /// Waits for every stage, the leader last (its pid is the group id, so the group can be
    /// signalled until then).
    fn wait_all(&mut self) -> Result<Vec<std::process::ExitStatus>, PipelineError> {
        let mut ends = Vec::with_capacity(self.children.len());
        for i in (0..self.children.len()).rev() {
            if i == 0 {
                self.tracked = None;
            }
            let st = self.children[i]
                .wait()
                .map_err(|source| PipelineError::Wait {
                    program: self.names[i].clone(),
                    source,
                })?;
            ends.push(st);
        }
        self.reaped = true;
        ends.reverse();
        Ok(ends)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.reaped || self.children.is_empty() {
            return;
        }
        if let Some(p) = self.pgid {
            if !self.children.is_empty() {
                terminate(p);
            }
        }
        self.tracked = None;
        for c in self.children.iter_mut().rev() {
            let _ = c.wait();
        }
        if let Some(p) = self.pgid {
            wait_group_gone(p.as_raw(), Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_last_stage_output_reaches_the_sink_and_every_end_is_reported() {
        let mut out = Vec::new();
        let ends = run(
            &[argv(&["printf", "a\\nb\\n"]), argv(&["cat"])],
            Input::Null,
            Some(&mut out),
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(out, b"a\nb\n");
        assert_eq!(ends.len(), 2);
        assert!(ends.iter().all(|e| e.code == Some(0)), "{ends:?}");
    }

    #[test]
    fn cancel_stops_a_running_pipeline() {
        let cancel = AtomicBool::new(false);
        let start = Instant::now();
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                cancel.store(true, Ordering::SeqCst);
            });
            let mut out = Vec::new();
            run(
                &[argv(&["sleep", "60"]), argv(&["cat"])],
                Input::Null,
                Some(&mut out),
                &cancel,
            )
        });
        assert!(matches!(r, Err(PipelineError::Cancelled)), "{r:?}");
        // Wide margin: only "not after sleep 60 ran out".
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    /// An extraction has no output sink: the watcher must still be there for a cancel.
    #[test]
    fn cancel_stops_a_pipeline_without_a_sink() {
        let cancel = AtomicBool::new(false);
        let start = Instant::now();
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                cancel.store(true, Ordering::SeqCst);
            });
            run(
                &[argv(&["sleep", "60"]), argv(&["cat"])],
                Input::Null,
                None,
                &cancel,
            )
        });
        assert!(matches!(r, Err(PipelineError::Cancelled)), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn a_pipeline_without_a_sink_reports_every_end() {
        let ends = run(
            &[argv(&["true"]), argv(&["false"])],
            Input::Null,
            None,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(ends[0].code, Some(0));
        assert_eq!(ends[1].code, Some(1));
    }
}
