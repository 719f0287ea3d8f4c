//! Waiting between attempts: jitter so two waiters do not retry in lock-step, and an inotify
//! [`Watcher`] that wakes a waiter the moment a local blocker is removed (a local hand-off
//! takes milliseconds, not `wait_time`).
//!
//! A remote blocker is watched on its host ([`pause_remote`]: `watch-lock` over ssh) when that
//! host runs backupmanager; otherwise the waiter polls.
//!
//! Must not: decide whether to wait (the acquire loop does) or touch lock files.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::lock::LockBackend;
use crate::sys::cancel::sleep_cancellable;
use crate::sys::random;

/// Up to 10% of `d`, random, so two waiters do not retry in lock-step.
pub fn jitter(d: Duration) -> Duration {
    let max_ms = (d.as_millis() / 10) as u64;
    Duration::from_millis(random::below(max_ms + 1))
}

/// Wakes a waiter early when something is removed or renamed in the directory of a local lock
/// or blocker.
pub struct Watcher {
    inotify: Inotify,
    /// Each watched directory with its watch descriptor.
    dirs: Vec<(WatchDescriptor, PathBuf)>,
}

impl Watcher {
    pub fn new(paths: &[PathBuf]) -> Option<Watcher> {
        if paths.is_empty() {
            return None;
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let mut dirs: Vec<(WatchDescriptor, PathBuf)> = Vec::new();
        for p in paths {
            let Some(dir) = p.parent() else {
                continue;
            };
            if !dirs.iter().any(|(_, w)| w == dir) {
                // A missing directory cannot hold a blocker yet; polling covers it appearing.
                if let Ok(wd) = inotify.add_watch(
                    dir,
                    AddWatchFlags::IN_DELETE
                        | AddWatchFlags::IN_MOVED_FROM
                        | AddWatchFlags::IN_DELETE_SELF,
                ) {
                    dirs.push((wd, dir.to_path_buf()));
                }
            }
        }
        Some(Watcher { inotify, dirs })
    }

    pub fn drain(&mut self) {
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
        }
    }

    /// Waits up to `d` or until `path` (or its directory) is removed. Returns true if cancelled.
    ///
    /// Only the removal of the file that blocked us counts: the run's own locks, released just
    /// before waiting, are in watched directories too, and waking on those would turn the wait
    /// into a busy loop of take-and-release.
    pub fn wait(&mut self, d: Duration, path: &Path, cancel: &AtomicBool) -> bool {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return sleep_cancellable(d, cancel);
        };
        let Some(wd) = self.dirs.iter().find(|(_, w)| w == dir).map(|(wd, _)| *wd) else {
            return sleep_cancellable(d, cancel);
        };
        let end = Instant::now() + d;
        loop {
            if cancel.load(Ordering::SeqCst) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            // Slices of at most 250 ms keep a cancel prompt without a signal pipe.
            let slice = (end - now).min(Duration::from_millis(250));
            let timeout =
                PollTimeout::try_from(slice.as_millis() as i32).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
            if matches!(nix::poll::poll(&mut fds, timeout), Ok(n) if n > 0) {
                if let Ok(events) = self.inotify.read_events() {
                    if events.iter().any(|e| {
                        e.wd == wd
                            && (e.mask.contains(AddWatchFlags::IN_DELETE_SELF)
                                || e.name.as_deref() == Some(name))
                    }) {
                        return false;
                    }
                }
            }
        }
    }
}

/// Waits `d` (woken early by the removal of `wake_on`, when it is watched). True if cancelled.
pub fn pause(
    watcher: Option<&mut Watcher>,
    wake_on: Option<&Path>,
    d: Duration,
    cancel: &AtomicBool,
) -> bool {
    match (watcher, wake_on) {
        (Some(w), Some(path)) => w.wait(d, path, cancel),
        _ => sleep_cancellable(d, cancel),
    }
}

/// Waits `d`, woken early when the host holding the remote `path` reports it gone
/// (`watch-lock` over ssh, [`LockBackend::watch_gone`]). A host that cannot watch (no
/// backupmanager there, an older one, a failed ssh) leaves the plain wait: polling every
/// `wait_time`. True if cancelled.
pub fn pause_remote(
    backend: Arc<dyn LockBackend>,
    path: String,
    d: Duration,
    cancel: &AtomicBool,
) -> bool {
    let end = Instant::now() + d;
    let (tx, rx) = mpsc::channel();
    // The thread ends by itself: the remote watch and its ssh are bounded by `d`.
    let spawned = std::thread::Builder::new()
        .name("watch-lock".into())
        .spawn(move || {
            let _ = tx.send(backend.watch_gone(&path, d));
        });
    if spawned.is_err() {
        return sleep_cancellable(d, cancel);
    }
    loop {
        if cancel.load(Ordering::SeqCst) {
            return true;
        }
        let now = Instant::now();
        if now >= end {
            return false;
        }
        match rx.recv_timeout((end - now).min(Duration::from_millis(250))) {
            Ok(Some(true)) => return false,
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                return sleep_cancellable(end.saturating_duration_since(Instant::now()), cancel)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..200 {
            assert!(jitter(Duration::from_secs(300)) <= Duration::from_secs(30));
        }
        assert_eq!(jitter(Duration::from_millis(5)), Duration::ZERO);
    }
}
