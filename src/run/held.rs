//! Locks a run holds: a guard whose `Drop` releases them (only those still carrying the run's
//! token), and the heartbeat that refreshes their lease while the engine works and stops the
//! run if one is no longer ours.
//!
//! Must not: take locks (acquire does) or know what the engine does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::events::{Emitter, EventKind, LockRef};
use crate::lock::LockBackend;

/// One lock file this run created.
pub struct Held {
    pub backend: Arc<dyn LockBackend>,
    pub path: String,
    pub token: String,
}

impl Held {
    pub fn lock_ref(&self) -> LockRef {
        LockRef {
            path: self.path.clone(),
            host: self.backend.to_string(),
        }
    }
}

/// Lock files taken by this run. Dropping releases them (only those still carrying our token).
pub struct HeldLocks {
    locks: Vec<Held>,
    events: Emitter,
}

impl HeldLocks {
    pub fn new(events: Emitter) -> HeldLocks {
        HeldLocks {
            locks: Vec::new(),
            events,
        }
    }

    pub fn push(&mut self, held: Held) {
        self.locks.push(held);
    }

    pub fn holds(&self, path: &str) -> bool {
        self.locks.iter().any(|h| h.path == path)
    }

    /// Releases in reverse order of taking.
    pub fn release(&mut self) {
        while let Some(h) = self.locks.pop() {
            let lock = h.lock_ref();
            let kind = match h.backend.release_if_token(&h.path, &h.token) {
                Ok(true) => EventKind::LockReleased { lock },
                Ok(false) => EventKind::LockNotOurs { lock },
                Err(e) => EventKind::LockReleaseFailed {
                    lock,
                    error: e.to_string(),
                },
            };
            self.events.emit(kind);
        }
    }

    /// Runs `work` while every held lock is refreshed each `interval`, each by its own thread
    /// (so one slow or unreachable host cannot delay the others past a short lease).
    ///
    /// The run is stopped (`cancel` set, `lost` returned true alongside `work`'s result) when a
    /// lock turns out not to be ours any more, or when a lock has gone [`give_up_after`]`(lease)`
    /// without a confirmed refresh: after `lease` without one another host may judge it
    /// abandoned and break it, and rsync must be stopped before that (see DESIGN.md,
    /// "Hardening decisions").
    pub fn with_heartbeat<T>(
        &self,
        interval: Duration,
        lease: Duration,
        cancel: &AtomicBool,
        work: impl FnOnce() -> T,
    ) -> (T, bool) {
        let stop = Stop::default();
        let lost = AtomicBool::new(false);
        let start = Instant::now();
        // Per lock: when the last refresh that was confirmed had *started* (the mtime it set is
        // no older than that), in milliseconds after `start`. Acquisition happened just before.
        let confirmed: Vec<AtomicU64> = self.locks.iter().map(|_| AtomicU64::new(0)).collect();
        let give_up = give_up_after(lease);
        std::thread::scope(|s| {
            let (stop, lost, confirmed) = (&stop, &lost, &confirmed);
            let since_start = move || start.elapsed().as_millis() as u64;
            for (h, ok) in self.locks.iter().zip(confirmed) {
                s.spawn(move || {
                    // First refresh at once: confirms the lock right as the work starts.
                    let mut next = Duration::ZERO;
                    while !stop.wait(next) {
                        let attempt = since_start();
                        match h.backend.refresh_if_token(&h.path, &h.token) {
                            Ok(true) => {
                                ok.fetch_max(attempt, Ordering::SeqCst);
                                next = interval;
                            }
                            Ok(false) => {
                                self.events.emit(EventKind::LockLost { lock: h.lock_ref() });
                                lost.store(true, Ordering::SeqCst);
                                cancel.store(true, Ordering::SeqCst);
                                return;
                            }
                            Err(e) => {
                                self.events.emit(EventKind::LockRefreshFailed {
                                    lock: h.lock_ref(),
                                    error: e.to_string(),
                                });
                                // Try again soon: the deadline, not the interval, is what counts.
                                next = interval.min(RETRY_AFTER_FAILURE);
                            }
                        }
                    }
                });
            }
            if !self.locks.is_empty() {
                // The watchdog: not blocked by any refresh in flight.
                s.spawn(move || {
                    let mut expired = vec![false; self.locks.len()];
                    while !stop.wait(WATCH_EVERY) {
                        let now = since_start();
                        for (i, (h, ok)) in self.locks.iter().zip(confirmed).enumerate() {
                            let last = ok.load(Ordering::SeqCst);
                            if expired[i] || now.saturating_sub(last) < give_up.as_millis() as u64 {
                                continue;
                            }
                            expired[i] = true;
                            self.events.emit(EventKind::LockRefreshFailed {
                                lock: h.lock_ref(),
                                error: format!(
                                    "not confirmed for {:.1}s, half its lease of {:?}; stopping \
                                     the run before another host may break the lock",
                                    Duration::from_millis(now - last).as_secs_f64(),
                                    lease
                                ),
                            });
                            self.events.emit(EventKind::LockLost { lock: h.lock_ref() });
                            lost.store(true, Ordering::SeqCst);
                            cancel.store(true, Ordering::SeqCst);
                        }
                    }
                });
            }
            let result = work();
            stop.set();
            (result, lost.load(Ordering::SeqCst))
        })
    }
}

/// How long a held lock may go without a confirmed refresh before the run is stopped: half its
/// lease. Another host breaks the lock no earlier than a full lease after the last refresh, so
/// the other half is left for stopping rsync (SIGTERM, its grace, SIGKILL, the group gone); and
/// since `validate` enforces lease > 2 × heartbeat, at least one regular refresh fits before it.
pub fn give_up_after(lease: Duration) -> Duration {
    lease / 2
}

/// After a failed refresh, the next try comes this soon (or at the interval, if shorter).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// How often the watchdog compares each lock's last confirmation with its deadline.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// A stop flag that sleeping threads wake up for.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    fn set(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    /// Waits up to `d`; true once stopped.
    fn wait(&self, d: Duration) -> bool {
        let g = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .cv
            .wait_timeout_while(g, d, |stopped| !*stopped)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }
}

impl Drop for HeldLocks {
    fn drop(&mut self) {
        self.release();
    }
}
