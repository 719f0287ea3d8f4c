//! A local hook's child process: started from an argument vector in its own process group
//! with a parent-death signal, output read line by line, and on timeout or cancel the whole
//! group stopped (SIGTERM, a grace period, SIGKILL) and waited for.
//!
//! Must not: signal any group but the one it created, and only while the leader is unreaped
//! (so its pid, which is the group id, cannot have been reused); use a shell itself.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::rsync::Stream;
use crate::sys::child::{die_with_parent, exit_notice, wait_group_gone};

/// Between SIGTERM and SIGKILL when a hook is stopped.
pub const GRACE: Duration = Duration::from_secs(3);

/// How a local hook ended.
#[derive(Debug)]
pub enum Ended {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by a signal we did not send.
    Signaled(i32),
    /// Its timeout passed; the group was stopped.
    TimedOut,
    /// The run was cancelled; the group was stopped.
    Cancelled,
}

/// Runs `cmd` to its end, each output line to `on_line`; standard output goes to `stdout_to`
/// instead when given (a dump). `Err` only when it cannot start.
pub fn run(
    mut cmd: Command,
    timeout: Duration,
    cancel: &AtomicBool,
    stdout_to: Option<std::fs::File>,
    mut on_line: impl FnMut(Stream, &str),
) -> std::io::Result<Ended> {
    let stdout = match stdout_to {
        Some(f) => Stdio::from(f),
        None => Stdio::piped(),
    };
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .env_remove("NOTIFY_SOCKET")
        .process_group(0);
    die_with_parent(&mut cmd);
    let mut child = Group::spawn(cmd)?;
    let (tx, rx) = mpsc::channel();
    if let Some(o) = child.child.stdout.take() {
        reader(o, Stream::Stdout, tx.clone());
    }
    if let Some(e) = child.child.stderr.take() {
        reader(e, Stream::Stderr, tx.clone());
    }
    drop(tx);
    // Woken the moment the hook exits (no polling interval added to every hook).
    let exited = exit_notice(child.child.id());
    let deadline = Instant::now() + timeout;
    let mut pipes_open = true;
    loop {
        if cancel.load(Ordering::SeqCst) {
            child.stop();
            drain(&rx, &mut on_line);
            return Ok(Ended::Cancelled);
        }
        if Instant::now() >= deadline {
            child.stop();
            drain(&rx, &mut on_line);
            return Ok(Ended::TimedOut);
        }
        if pipes_open {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok((s, l)) => {
                    on_line(s, &l);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => pipes_open = false,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        } else {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(mpsc::RecvTimeoutError::Disconnected) =
                exited.recv_timeout(left.min(Duration::from_millis(50)))
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if child.exited_unreaped() {
            // Whatever it left in its group (a background job holding the pipes) ends with it.
            let status = child.reap();
            drain(&rx, &mut on_line);
            return Ok(match status {
                Some(st) => ended(st),
                None => Ended::Signaled(0),
            });
        }
    }
}

fn ended(st: ExitStatus) -> Ended {
    match st.code() {
        Some(c) => Ended::Exited(c),
        None => Ended::Signaled(st.signal().unwrap_or(0)),
    }
}

/// The lines still in the channel, without waiting for writers that may never close.
fn drain(rx: &mpsc::Receiver<(Stream, String)>, on_line: &mut impl FnMut(Stream, &str)) {
    while let Ok((s, l)) = rx.recv_timeout(Duration::from_millis(100)) {
        on_line(s, &l);
    }
}

/// The hook's process group; dropping it stops the group.
struct Group {
    child: Child,
    pgid: Pid,
    reaped: bool,
}

impl Group {
    fn spawn(mut cmd: Command) -> std::io::Result<Group> {
        let child = cmd.spawn()?;
        let pgid = Pid::from_raw(child.id() as i32);
        Ok(Group {
            child,
            pgid,
            reaped: false,
        })
    }

    /// Has the leader exited? Checked without reaping it (`WNOWAIT`).
    fn exited_unreaped(&self) -> bool {
        use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        !matches!(
            waitid(Id::Pid(self.pgid), flags),
            Ok(WaitStatus::StillAlive)
        )
    }

    fn signal(&self, sig: Signal) {
        if !self.reaped {
            let _ = killpg(self.pgid, sig);
        }
    }

    /// SIGKILLs what is left of the group (the leader must have exited), then reaps the leader.
    fn reap(&mut self) -> Option<ExitStatus> {
        if self.reaped {
            return None;
        }
        self.signal(Signal::SIGKILL);
        self.reaped = true;
        let st = self.child.wait().ok();
        wait_group_gone(self.pgid.as_raw(), Duration::from_secs(2));
        st
    }

    /// SIGTERM (and SIGCONT) to the group, [`GRACE`] for the leader to exit, then SIGKILL.
    fn stop(&mut self) {
        if self.reaped {
            return;
        }
        self.signal(Signal::SIGTERM);
        self.signal(Signal::SIGCONT);
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline && !self.exited_unreaped() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.exited_unreaped() {
            // The leader ignores SIGTERM: SIGKILL it while it is still unreaped.
            self.signal(Signal::SIGKILL);
            while !self.exited_unreaped() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.reap();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads `r` line by line (lossy UTF-8) into `tx` on a thread of its own.
fn reader<R: Read + Send + 'static>(r: R, which: Stream, tx: mpsc::Sender<(Stream, String)>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_string();
                    if tx.send((which, line)).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn output_and_exit_code() {
        let mut lines = Vec::new();
        let r = run(
            sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(30),
            &AtomicBool::new(false),
            None,
            |s, l| lines.push((s, l.to_string())),
        )
        .unwrap();
        assert!(matches!(r, Ended::Exited(3)), "{r:?}");
        assert!(lines.contains(&(Stream::Stdout, "out".into())));
        assert!(lines.contains(&(Stream::Stderr, "err".into())));
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("bg.pid");
        // A background child that ignores SIGTERM, and a leader that ignores it too.
        let script = format!(
            "trap '' TERM; sleep 600 & echo $! > {}; wait",
            pidfile.display()
        );
        let start = Instant::now();
        let r = run(
            sh(&script),
            Duration::from_millis(500),
            &AtomicBool::new(false),
            None,
            |_, _| {},
        )
        .unwrap();
        assert!(matches!(r, Ended::TimedOut), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(30));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background sleep is gone (not even a zombie of ours: it was reparented).
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        assert!(!alive, "background child {pid} survived the hook's timeout");
    }

    #[test]
    fn cancel_stops_it() {
        let cancel = AtomicBool::new(true);
        let r = run(
            sh("sleep 600"),
            Duration::from_secs(600),
            &cancel,
            None,
            |_, _| {},
        )
        .unwrap();
        assert!(matches!(r, Ended::Cancelled), "{r:?}");
    }
}
