//! Locks a run holds: a guard whose `Drop` releases them (only those still carrying the run's
//! token), and the heartbeat that refreshes their lease while the engine works and stops the
//! run if one is no longer ours.
//!
//! Must not: take locks (acquire does) or know what the engine does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

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

    /// Runs `work` while a heartbeat refreshes every held lock each `interval`. If a lock turns
    /// out not to be ours any more, `cancel` is set (each run has its own flag) and `lost` is
    /// returned true alongside `work`'s result.
    pub fn with_heartbeat<T>(
        &self,
        interval: Duration,
        cancel: &AtomicBool,
        work: impl FnOnce() -> T,
    ) -> (T, bool) {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let lost = AtomicBool::new(false);
        std::thread::scope(|s| {
            if !self.locks.is_empty() {
                let lost = &lost;
                s.spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(interval)
                    {
                        for h in &self.locks {
                            match h.backend.refresh_if_token(&h.path, &h.token) {
                                Ok(true) => {}
                                Ok(false) => {
                                    self.events.emit(EventKind::LockLost { lock: h.lock_ref() });
                                    lost.store(true, Ordering::SeqCst);
                                    cancel.store(true, Ordering::SeqCst);
                                }
                                Err(e) => self.events.emit(EventKind::LockRefreshFailed {
                                    lock: h.lock_ref(),
                                    error: e.to_string(),
                                }),
                            }
                        }
                    }
                });
            }
            let result = work();
            drop(stop_tx);
            (result, lost.load(Ordering::SeqCst))
        })
    }
}

impl Drop for HeldLocks {
    fn drop(&mut self) {
        self.release();
    }
}
