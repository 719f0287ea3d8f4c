//! The rsync child process: spawned in its own process group with a parent-death signal,
//! output streamed line by line, cancelled by terminating the whole group.
//!
//! Owns: [`RunningRsync`] (the guard that makes sure rsync, and the ssh under it, never
//! outlives its owner) and [`run`].
//!
//! Must not: decide retries (it only reports the exit code and its class), build remote-shell
//! strings, use a local shell, or signal any process group other than the one it created.
//!
//! Pitfalls:
//! * Spawn from a thread that lives as long as the run (see [`crate::sys::child`]): [`run`]
//!   spawns and waits on the calling thread.
//! * The group is only signalled while rsync (the group leader) runs or is exited but not yet
//!   reaped, so its pid/pgid cannot have been recycled for someone else's group.
//! * Ctrl-Z: the group is tracked by [`crate::sys::jobctl`], which stops it with us; [`run`]
//!   continues it only once every run holding locks has re-verified them (and not at all if
//!   its own run was cancelled meanwhile).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::exit::{classify, describe, ExitClass};
use super::stats::RsyncStats;
use super::RsyncCommand;
use crate::sys::child::{die_with_parent, exit_notice, wait_group_gone};
use crate::sys::jobctl::{self, Tracked};

/// How many trailing lines of each stream are kept for messages.
pub const TAIL_LINES: usize = 20;

/// Grace period between SIGTERM and SIGKILL when a [`RunningRsync`] is dropped.
pub const DROP_GRACE: Duration = Duration::from_secs(2);

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The outcome of an rsync that exited on its own (any exit code).
#[derive(Debug, Clone)]
pub struct RsyncResult {
    pub exit_code: i32,
    pub class: ExitClass,
    /// `None` when rsync printed no stats (failure before the summary, or `-q`).
    pub stats: Option<RsyncStats>,
    pub stderr_tail: Vec<String>,
    pub stdout_tail: Vec<String>,
    pub duration: Duration,
}

impl RsyncResult {
    /// One-line summary plus the stderr tail, for logs and notifications.
    pub fn message(&self) -> String {
        let mut m = format!(
            "rsync exited with code {} ({})",
            self.exit_code,
            describe(self.exit_code)
        );
        for l in &self.stderr_tail {
            m.push('\n');
            m.push_str(l);
        }
        m
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RsyncError {
    #[error("could not start {program:?}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rsync was cancelled and its process group terminated")]
    Cancelled {
        stderr_tail: Vec<String>,
        duration: Duration,
    },
    #[error("rsync was killed by signal {signal}\n{}", .stderr_tail.join("\n"))]
    Signaled {
        signal: i32,
        stderr_tail: Vec<String>,
    },
    #[error("waiting for rsync failed: {0}")]
    Wait(#[source] std::io::Error),
}

/// A running rsync in its own process group. Dropping it terminates the whole group
/// (SIGTERM, [`DROP_GRACE`], SIGKILL) and reaps rsync.
#[derive(Debug)]
pub struct RunningRsync {
    child: Child,
    pgid: Pid,
    reaped: Option<ExitStatus>,
    /// Job control's hold on the group; dropped before rsync is reaped.
    tracked: Option<Tracked>,
}

impl RunningRsync {
    /// Spawn `cmd` with piped stdout/stderr and null stdin.
    pub fn spawn(cmd: &RsyncCommand) -> Result<RunningRsync, RsyncError> {
        let mut c = Command::new(&cmd.program);
        c.args(cmd.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("NOTIFY_SOCKET")
            .process_group(0);
        die_with_parent(&mut c);
        let (child, tracked) =
            jobctl::spawn_tracked(&mut c).map_err(|source| RsyncError::Spawn {
                program: cmd.program.clone(),
                source,
            })?;
        let pgid = Pid::from_raw(child.id() as i32);
        Ok(RunningRsync {
            child,
            pgid,
            reaped: None,
            tracked: Some(tracked),
        })
    }

    /// rsync's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Take the output pipes (once).
    pub fn take_pipes(
        &mut self,
    ) -> (
        Option<std::process::ChildStdout>,
        Option<std::process::ChildStderr>,
    ) {
        (self.child.stdout.take(), self.child.stderr.take())
    }

    /// Has rsync exited? Checked WITHOUT reaping (`waitid(WNOWAIT)`): while rsync is an
    /// unreaped zombie its pid, which is also the group id, cannot be reused, so signalling
    /// the group is guaranteed to reach only processes we started.
    fn exited_unreaped(&self) -> bool {
        use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        !matches!(
            waitid(Id::Pid(self.pgid), flags),
            Ok(WaitStatus::StillAlive)
        )
    }

    /// SIGKILL whatever is left in the group (rsync must be exited but not yet reaped),
    /// then reap rsync.
    fn reap(&mut self) -> std::io::Result<ExitStatus> {
        self.signal_group(Signal::SIGKILL);
        // Untracked before the pgid can be recycled by reaping.
        self.tracked = None;
        let st = self.child.wait()?;
        self.reaped = Some(st);
        Ok(st)
    }

    /// Non-blocking: has rsync exited? If so, kills any straggler in its group (an ssh it
    /// left behind) and reaps it.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if let Some(st) = self.reaped {
            return Ok(Some(st));
        }
        if !self.exited_unreaped() {
            return Ok(None);
        }
        self.reap().map(Some)
    }

    /// After a Ctrl-Z: continue the group once every lock-holding run has re-verified its
    /// locks. Call only while the run is not cancelled.
    fn continue_if_verified(&self) {
        if let Some(t) = &self.tracked {
            t.continue_if_verified();
        }
    }

    fn signal_group(&self, sig: Signal) {
        // Only called while rsync is unreaped (see exited_unreaped); ESRCH = group empty.
        if self.reaped.is_none() {
            let _ = killpg(self.pgid, sig);
        }
    }

    /// SIGTERM the process group, wait up to `grace` for rsync to exit, then SIGKILL the
    /// group; rsync is reaped on return.
    pub fn terminate(&mut self, grace: Duration) {
        if self.reaped.is_some() {
            return;
        }
        self.signal_group(Signal::SIGTERM);
        // A group stopped by Ctrl-Z acts on SIGTERM only once continued (what a shell's
        // `kill %1` does too); it exits from its signal handler without copying on.
        self.signal_group(Signal::SIGCONT);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !self.exited_unreaped() {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Kill stragglers (rsync if it ignored SIGTERM, or its ssh), then reap.
        let _ = self.reap();
        // SIGKILL is delivered asynchronously: a forked rsync (receiver, generator) may still be
        // tearing down, e.g. in uninterruptible I/O. The caller releases its locks next, so wait
        // until nothing of the group is alive (zombies count as gone), bounded.
        wait_group_gone(self.pgid.as_raw(), Duration::from_secs(2));
    }
}

impl Drop for RunningRsync {
    fn drop(&mut self) {
        self.terminate(DROP_GRACE);
    }
}

fn push_tail(tail: &mut VecDeque<String>, line: &str) {
    if tail.len() == TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(line.to_string());
}

/// Read `r` line by line (lossy UTF-8) and send each line. A line ends at `\n` or at `\r`
/// (how `--info=progress2` rewrites its line in place, so each update arrives as it is
/// printed); `\r\n` is one ending, and an empty segment before `\r` is dropped.
fn reader<R: Read + Send + 'static>(r: R, which: Stream, tx: mpsc::Sender<(Stream, String)>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = Vec::new();
        let mut after_cr = false;
        loop {
            let n = match r.fill_buf() {
                Ok([]) | Err(_) => break,
                Ok(buf) => {
                    for &b in buf {
                        let end = match b {
                            b'\n' => !std::mem::take(&mut after_cr) || !line.is_empty(),
                            b'\r' => {
                                after_cr = true;
                                !line.is_empty()
                            }
                            _ => {
                                after_cr = false;
                                line.push(b);
                                false
                            }
                        };
                        if end {
                            let l = String::from_utf8_lossy(&line).into_owned();
                            line.clear();
                            if tx.send((which, l)).is_err() {
                                return;
                            }
                        }
                    }
                    buf.len()
                }
            };
            r.consume(n);
        }
        if !line.is_empty() {
            let _ = tx.send((which, String::from_utf8_lossy(&line).into_owned()));
        }
    });
}

/// Run `cmd` to completion, streaming each output line to `on_line`.
///
/// `cancel` is polled (every ~50 ms); once set, the process group is terminated and
/// [`RsyncError::Cancelled`] returned. Any exit code is `Ok` with its [`ExitClass`]; a death
/// by a signal we did not send is [`RsyncError::Signaled`]. Call it from a thread that stays
/// alive until it returns (see the module doc about PDEATHSIG).
pub fn run(
    cmd: &RsyncCommand,
    mut on_line: impl FnMut(Stream, &str),
    cancel: &AtomicBool,
) -> Result<RsyncResult, RsyncError> {
    let start = Instant::now();
    // After a Ctrl-Z, start nothing before every lock-holding run has re-verified its locks.
    while !jobctl::verified() {
        if cancel.load(Ordering::SeqCst) {
            return Err(RsyncError::Cancelled {
                stderr_tail: Vec::new(),
                duration: start.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if cancel.load(Ordering::SeqCst) {
        return Err(RsyncError::Cancelled {
            stderr_tail: Vec::new(),
            duration: start.elapsed(),
        });
    }
    let mut proc = RunningRsync::spawn(cmd)?;
    let (out, err) = proc.take_pipes();
    let (tx, rx) = mpsc::channel();
    if let Some(o) = out {
        reader(o, Stream::Stdout, tx.clone());
    }
    if let Some(e) = err {
        reader(e, Stream::Stderr, tx.clone());
    }
    drop(tx);

    let mut stats = RsyncStats::default();
    let mut saw_stats = false;
    let mut out_tail = VecDeque::new();
    let mut err_tail = VecDeque::new();
    let mut handle = |which: Stream, line: &str| {
        match which {
            Stream::Stdout => {
                saw_stats |= stats.parse_line(line);
                push_tail(&mut out_tail, line);
            }
            Stream::Stderr => push_tail(&mut err_tail, line),
        }
        on_line(which, line);
    };

    // Phase 1: until both pipes are closed (or cancelled).
    let mut cancelled = false;
    loop {
        if cancel.load(Ordering::SeqCst) {
            cancelled = true;
            break;
        }
        proc.continue_if_verified();
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((w, l)) => handle(w, &l),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // A grandchild may hold the pipes after rsync exits; stop waiting for EOF
                // once rsync is gone and the pipes are quiet.
                if matches!(proc.try_wait(), Ok(Some(_))) {
                    while let Ok((w, l)) = rx.recv_timeout(Duration::from_millis(200)) {
                        handle(w, &l);
                    }
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if cancelled {
        proc.terminate(cmd.cancel_grace);
        // What rsync says as we terminate it ("received SIGINT, SIGTERM, or SIGHUP") is our
        // own doing: kept in the tail for the message, not passed on as a warning.
        while let Ok((w, l)) = rx.try_recv() {
            if w == Stream::Stderr {
                push_tail(&mut err_tail, &l);
            }
        }
        return Err(RsyncError::Cancelled {
            stderr_tail: err_tail.into(),
            duration: start.elapsed(),
        });
    }

    // Phase 2: reap rsync, still honouring cancel. Woken by its exit, not by polling.
    let exited = exit_notice(proc.pid());
    let status = loop {
        match proc.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(RsyncError::Wait(e)),
        }
        if cancel.load(Ordering::SeqCst) {
            proc.terminate(cmd.cancel_grace);
            return Err(RsyncError::Cancelled {
                stderr_tail: err_tail.into(),
                duration: start.elapsed(),
            });
        }
        proc.continue_if_verified();
        if let Err(mpsc::RecvTimeoutError::Disconnected) =
            exited.recv_timeout(Duration::from_millis(50))
        {
            // The notifier failed (or already fired): fall back to a short poll.
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    drop(proc); // already reaped (stragglers were killed then): a no-op
    let stderr_tail: Vec<String> = err_tail.into();
    match status.code() {
        Some(code) => Ok(RsyncResult {
            exit_code: code,
            class: classify(code),
            stats: saw_stats.then_some(stats),
            stderr_tail,
            stdout_tail: out_tail.into(),
            duration: start.elapsed(),
        }),
        None => Err(RsyncError::Signaled {
            signal: status.signal().unwrap_or(0),
            stderr_tail,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_ends_lines_at_cr_and_lf() {
        let input = b"a\n\nb\r\n\r  1 10%\r  2 20%\n   3 100%\r\nlast".to_vec();
        let (tx, rx) = mpsc::channel();
        reader(std::io::Cursor::new(input), Stream::Stdout, tx);
        let lines: Vec<String> = rx.iter().map(|(_, l)| l).collect();
        assert_eq!(
            lines,
            ["a", "", "b", "  1 10%", "  2 20%", "   3 100%", "last"]
        );
    }
}
