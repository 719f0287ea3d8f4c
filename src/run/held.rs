//! Locks a run holds: a guard whose `Drop` releases them (only those still carrying the run's
//! token), and the heartbeat that refreshes their lease while the engine works and stops the
//! run if one is no longer ours.
//!
//! Must not: take locks (acquire does) or know what the engine does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::events::{Emitter, EventKind, LockRef};
use crate::lock::LockBackend;
use crate::sys::{clock, jobctl};

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
    /// "Hardening decisions"). After a Ctrl-Z every lock is re-verified before rsync may
    /// continue ([`jobctl::Gate`]); time spent stopped (or suspended) counts against the lease.
    pub fn with_heartbeat<T>(
        &self,
        interval: Duration,
        lease: Duration,
        cancel: &AtomicBool,
        work: impl FnOnce() -> T,
    ) -> (T, bool) {
        if self.locks.is_empty() {
            return (work(), false);
        }
        let stop = Stop::default();
        let lost = AtomicBool::new(false);
        let gate = jobctl::Gate::new();
        let start = clock::boottime();
        let since_start = move || (clock::boottime().saturating_sub(start)).as_millis() as u64;
        let give_up = give_up_after(lease).as_millis() as u64;
        // Per lock: when the last refresh that was confirmed had *started* (the mtime it set is
        // no older than that), in ms after `start`. Acquisition happened just before.
        let confirmed: Vec<AtomicU64> = self.locks.iter().map(|_| AtomicU64::new(0)).collect();
        // A confirmation counts only while the lock had not yet expired: once half the lease
        // has passed unconfirmed (a cut link, a Ctrl-Z), the run stops whatever comes later.
        let confirm = |ok: &AtomicU64, attempt: u64| {
            let _ = ok.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |prev| {
                (attempt.saturating_sub(prev) < give_up).then_some(attempt.max(prev))
            });
        };
        let lose = |h: &Held, why: Option<String>| {
            self.events.emit(EventKind::LockLost {
                lock: h.lock_ref(),
                why,
            });
            lost.store(true, Ordering::SeqCst);
            cancel.store(true, Ordering::SeqCst);
        };
        let unconfirmed = |for_ms: u64| {
            format!(
                "not confirmed for {:.1}s, half its lease of {lease:?}; stopping the run before \
                 another host may break the lock",
                Duration::from_millis(for_ms).as_secs_f64()
            )
        };
        std::thread::scope(|s| {
            let (stop, confirmed, confirm, lose) = (&stop, &confirmed, &confirm, &lose);
            for (h, ok) in self.locks.iter().zip(confirmed) {
                s.spawn(move || {
                    // First refresh at once: confirms the lock right as the work starts.
                    let mut next = Duration::ZERO;
                    while !stop.wait(next) {
                        let attempt = since_start();
                        match h.backend.refresh_if_token(&h.path, &h.token) {
                            Ok(true) => {
                                confirm(ok, attempt);
                                next = interval;
                            }
                            Ok(false) => return lose(h, None),
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
            // The watchdog: never blocked by a refresh in flight, except right after a Ctrl-Z,
            // when it re-verifies every lock before rsync may continue.
            s.spawn(move || {
                let mut expired = vec![false; self.locks.len()];
                while !stop.wait(WATCH_EVERY) {
                    let resumed = gate.pending();
                    for (i, (h, ok)) in self.locks.iter().zip(confirmed).enumerate() {
                        if expired[i] {
                            continue;
                        }
                        let now = since_start();
                        let last = ok.load(Ordering::SeqCst);
                        if now.saturating_sub(last) >= give_up {
                            expired[i] = true;
                            lose(h, Some(unconfirmed(now - last)));
                        } else if resumed.is_some() {
                            match h.backend.refresh_if_token(&h.path, &h.token) {
                                Ok(true) => confirm(ok, now),
                                Ok(false) => {
                                    expired[i] = true;
                                    lose(h, None);
                                }
                                Err(e) => {
                                    expired[i] = true;
                                    lose(h, Some(format!("{e}; cannot re-verify it after a stop")));
                                }
                            }
                        }
                    }
                    if let Some(epoch) = resumed {
                        gate.ack(epoch);
                    }
                }
            });
            // Stops the threads also when `work` panics; otherwise the scope would wait forever.
            let _stop_on_exit = StopOnDrop(stop);
            let result = work();
            drop(_stop_on_exit);
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

struct StopOnDrop<'a>(&'a Stop);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set();
    }
}

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
