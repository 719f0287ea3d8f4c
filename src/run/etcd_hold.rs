//! The etcd keys a run holds, while it holds them: the watchdog that stops the run (rsync's
//! group, then `RunError::LeaseLost` or `RunError::KeyLost`) when the lease goes unconfirmed
//! for [`give_up_after`]`(ttl)` or etcd says it is gone, or when a key is deleted, taken or
//! unproven as long (`lock::etcd::guard` watches them); after a Ctrl-Z, rsync continues only
//! once the lease is renewed and every key read again. Release deletes each own key while its
//! creation revision is ours, then revokes the lease.
//!
//! Must not: take keys (run/etcd.rs does) or touch lock files.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::etcd::etcd_ref;
use super::held::give_up_after;
use super::outcome::RunError;
use crate::events::{Emitter, EventKind};
use crate::lock::etcd::guard::KeyGuard;
use crate::lock::etcd::lease::Lease;
use crate::lock::etcd::EtcdLocks;
use crate::sys::jobctl;

/// The keys a run holds in etcd, under its lease. Dropping releases them.
pub(super) struct EtcdHold {
    pub(super) cluster: Arc<EtcdLocks>,
    pub(super) lease: Option<Lease>,
    pub(super) keys: Vec<String>,
    pub(super) slots: Vec<String>,
    /// Creation revision of every own key: the fencing token.
    pub(super) revision: i64,
    pub(super) events: Emitter,
    /// Watches every own key and slot key while they are held.
    pub(super) guard: Option<KeyGuard>,
}

impl EtcdHold {
    /// Runs `work` under a watchdog that stops the run (sets `cancel`) when the lease has gone
    /// [`give_up_after`]`(ttl)` without a confirmed renewal or etcd says it is gone, or when one
    /// of the run's keys was deleted or taken, or has gone as long without a proof that it is
    /// still ours (`lock::etcd::guard`). Returns `work`'s result and the error of the lost hold,
    /// if it was lost.
    pub(super) fn with_lease<T>(
        &self,
        cancel: &AtomicBool,
        work: impl FnOnce() -> T,
    ) -> (T, Option<RunError>) {
        let Some(lease) = &self.lease else {
            return (work(), None);
        };
        let done = AtomicBool::new(false);
        let lost: std::sync::Mutex<Option<RunError>> = std::sync::Mutex::new(None);
        let limit = give_up_after(lease.ttl);
        // Lost already (while lock files were taken after etcd, in `both` mode): the work sees
        // the cancel flag before it starts anything.
        let early = if lease.gone() || lease.unconfirmed_for() >= limit {
            Some(RunError::LeaseLost {
                why: format!(
                    "expired or unconfirmed for half its TTL of {:?} before the run could start ({})",
                    lease.ttl,
                    self.cluster.client.endpoints()
                ),
            })
        } else {
            self.keys_lost(limit)
        };
        if let Some(e) = early {
            self.report_lost(&e);
            cancel.store(true, Ordering::SeqCst);
            return (work(), Some(e));
        }
        // After a Ctrl-Z, rsync continues only once the lease is renewed and the keys are
        // proven ours (src/sys/jobctl.rs).
        let gate = jobctl::Gate::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    let resumed = gate.pending();
                    let mut why = if lease.gone() {
                        Some("etcd says the lease is gone".to_string())
                    } else {
                        let quiet = lease.unconfirmed_for();
                        (quiet >= limit).then(|| {
                            format!(
                                "not confirmed for {:.1}s, half its TTL of {:?} ({}); stopping the run before another host may take its keys",
                                quiet.as_secs_f64(),
                                lease.ttl,
                                self.cluster.client.endpoints()
                            )
                        })
                    };
                    if let (Some(epoch), None) = (resumed, &why) {
                        why = match lease.renew_now() {
                            Ok(true) => None,
                            Ok(false) => Some("etcd says the lease is gone".to_string()),
                            Err(e) => Some(format!("{e}; cannot renew the lease after a stop")),
                        };
                        if why.is_none() && self.verify_keys_now().is_none() {
                            gate.ack(epoch);
                        }
                    }
                    let error = match why {
                        Some(why) => Some(RunError::LeaseLost { why }),
                        None => self.keys_lost(limit).or_else(|| {
                            resumed.and_then(|_| self.verify_keys_now())
                        }),
                    };
                    if let Some(error) = error {
                        self.report_lost(&error);
                        *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
                        cancel.store(true, Ordering::SeqCst);
                        if let Some(epoch) = resumed {
                            // Cancelled first: the stopped rsync is killed, never continued.
                            gate.ack(epoch);
                        }
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            struct Done<'a>(&'a AtomicBool);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let guard = Done(&done);
            let r = work();
            drop(guard);
            (r, lost.lock().unwrap_or_else(|e| e.into_inner()).take())
        })
    }

    /// A key of the run deleted or taken, or unproven for `limit` (the lease's rule: a key
    /// broken unseen may be taken by another host at once, so the hold is only as good as the
    /// last proof).
    fn keys_lost(&self, limit: Duration) -> Option<RunError> {
        let guard = self.guard.as_ref()?;
        if let Some(b) = guard.broken() {
            return Some(RunError::KeyLost {
                key: b.key,
                why: b.how,
            });
        }
        match guard.unproven() {
            Some((key, quiet)) if quiet >= limit => Some(RunError::KeyLost {
                key: key.to_string(),
                why: format!(
                    "could not be proven ours for {:.1}s, half the lease TTL (no watch or read answered at {})",
                    quiet.as_secs_f64(),
                    self.cluster.client.endpoints()
                ),
            }),
            _ => None,
        }
    }

    /// After a stop: every key read again; anything but "all ours" is an error.
    fn verify_keys_now(&self) -> Option<RunError> {
        let guard = self.guard.as_ref()?;
        match guard.verify_now() {
            Ok(None) => None,
            Ok(Some(b)) => Some(RunError::KeyLost {
                key: b.key,
                why: b.how,
            }),
            Err(e) => Some(RunError::LeaseLost {
                why: format!("{e}; cannot prove the run's keys after a stop"),
            }),
        }
    }

    /// `lock_lost` for each key the error concerns (a lost lease: all of them).
    fn report_lost(&self, error: &RunError) {
        let (keys, why): (Vec<&String>, String) = match error {
            RunError::KeyLost { key, why } => (vec![key], why.clone()),
            RunError::LeaseLost { why } => {
                (self.keys.iter().chain(&self.slots).collect(), why.clone())
            }
            other => (
                self.keys.iter().chain(&self.slots).collect(),
                other.to_string(),
            ),
        };
        for k in keys {
            self.events.emit(EventKind::LockLost {
                lock: etcd_ref(k),
                why: Some(why.clone()),
            });
        }
    }

    /// Deletes each own key while its creation revision is ours, then revokes the lease (which
    /// also frees the run's slots).
    pub(super) fn release(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        // Our own deletes below are not a break.
        if let Some(g) = self.guard.take() {
            g.stop();
        }
        for k in self.keys.iter().rev() {
            let kind = match self.cluster.release(k, self.revision) {
                Ok(true) => EventKind::LockReleased { lock: etcd_ref(k) },
                Ok(false) => EventKind::LockNotOurs { lock: etcd_ref(k) },
                Err(e) => EventKind::LockReleaseFailed {
                    lock: etcd_ref(k),
                    error: e.to_string(),
                },
            };
            self.events.emit(kind);
        }
        let slots = self.slots.clone();
        match lease.revoke() {
            Ok(()) => {
                for k in slots {
                    self.events
                        .emit(EventKind::LockReleased { lock: etcd_ref(&k) });
                }
            }
            Err(e) => {
                for k in slots {
                    self.events.emit(EventKind::LockReleaseFailed {
                        lock: etcd_ref(&k),
                        error: e.to_string(),
                    });
                }
            }
        }
    }
}

impl Drop for EtcdHold {
    fn drop(&mut self) {
        self.release();
    }
}
