//! Supervising child processes (rsync, ssh, later tar and hooks): they die with the thread
//! that started them, their exit is noticed at once, and a killed process group is waited for
//! until nothing of it is left.
//!
//! Must not: signal any process or group it was not handed by the caller that started it.
//!
//! Pitfall: `PR_SET_PDEATHSIG` fires when the *thread* that spawned the child exits, not the
//! process. Spawn from a thread that lives as long as the child is needed.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::procfs;

/// Makes `cmd`'s child receive SIGTERM when the spawning thread dies, and refuse to start if
/// the parent is already gone (the race between fork and prctl).
pub fn die_with_parent(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure only makes async-signal-safe syscalls (prctl, getppid) and builds
    // an io::Error from a raw errno without allocating.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// A receiver that gets `()` the moment child `pid` has exited, without reaping it
/// (`waitid(WEXITED | WNOWAIT)` on a helper thread), so the caller keeps the pid (no reuse
/// while it is an unreaped zombie) and reaps it itself. Waiting on this instead of sleeping
/// between `try_wait` polls means an exit is noticed at once, not up to one poll interval
/// later (that interval was most of the fixed cost of a short rsync or a lock check over ssh).
/// If the caller reaps first, `waitid` fails with ECHILD and the thread ends; the channel then
/// reports `Disconnected`, which callers treat like an exit.
pub fn exit_notice(pid: u32) -> mpsc::Receiver<()> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    let (tx, rx) = mpsc::channel();
    let pid = Pid::from_raw(pid as i32);
    std::thread::spawn(move || {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
        loop {
            match waitid(Id::Pid(pid), flags) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {
                    let _ = tx.send(());
                    break;
                }
                Err(_) => break,
            }
        }
    });
    rx
}

/// Waits up to `limit` until no live (non-zombie) process is in process group `pgid`. Reads
/// `/proc`, sends nothing, so a reused pgid can only cost the wait, never a wrong signal.
pub fn wait_group_gone(pgid: i32, limit: Duration) {
    let deadline = Instant::now() + limit;
    while procfs::group_has_live_member(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}
