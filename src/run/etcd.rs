//! Acquiring and holding a job's etcd keys and slots (`lock_backend: etcd` or `both`): one
//! lease per run, slots first (a queue by creation revision), then every lock in one
//! transaction; while blocked, a watch on the obstacle from the revision the check saw (no
//! polling; the blocker's `wait_time` is only the backstop). The run is stopped when its lease
//! goes unconfirmed for [`give_up_after`]`(ttl)`, the rule lock files follow; release deletes
//! each key only while its creation revision is ours, then revokes the lease.
//!
//! When no member answers (no quorum, cut off) the run waits, saying so and naming etcd and its
//! endpoints, and never starts rsync.
//!
//! Must not: copy data or touch lock files (acquire.rs does, after this in `both` mode).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::held::give_up_after;
use super::outcome::RunError;
use super::wait::jitter;
use super::Run;
use crate::events::{Emitter, EventKind, LockRef};
use crate::lock::etcd::guard::{KeyGuard, Owned};
use crate::lock::etcd::lease::Lease;
use crate::lock::etcd::{describe, Acquire, EtcdError, EtcdLocks, Standing, Watched};
use crate::lock::Record;
use crate::plan::EtcdSpec;
use crate::sys::{clock, jobctl};

/// Retry interval while etcd does not answer.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(2);
/// A single watch lasts at most this long before the obstacle is checked again.
const MAX_WATCH: Duration = Duration::from_secs(60);
/// Backstop when a blocker has no `wait_time` (own locks, slots).
const DEFAULT_RETRY: Duration = Duration::from_secs(60);

/// What one attempt found.
enum Step {
    Held(i64),
    Wait {
        reason: String,
        key: String,
        holder: Option<String>,
        /// None: just pause.
        watch: Option<Watch>,
        retry: Duration,
    },
}

/// What a waiting run watches: `key` (to `range_end`) from `revision + 1`, woken by a deletion
/// in it; in a slot's queue only once `need` of the keys ahead of it are gone (keys only join
/// behind it, so then the slot is its turn), not by every release in the slot.
struct Watch {
    key: String,
    range_end: Option<String>,
    revision: i64,
    ahead: Option<(Vec<String>, usize)>,
}

fn etcd_ref(key: &str) -> LockRef {
    LockRef {
        path: key.into(),
        host: "etcd".into(),
    }
}

/// The keys a run holds in etcd, under its lease. Dropping releases them.
pub(super) struct EtcdHold {
    cluster: Arc<EtcdLocks>,
    lease: Option<Lease>,
    keys: Vec<String>,
    slots: Vec<String>,
    /// Creation revision of every own key: the fencing token.
    pub revision: i64,
    events: Emitter,
    /// Watches every own key and slot key while they are held.
    guard: Option<KeyGuard>,
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

impl Run<'_> {
    /// Takes the job's slots and etcd locks, waiting as long as the job may. `None` when the
    /// job's backend does not use etcd.
    pub(super) fn acquire_etcd(
        &mut self,
        no_wait: bool,
        deadline: Option<Instant>,
    ) -> Result<Option<EtcdHold>, RunError> {
        let Some(spec) = self.plan.etcd.clone() else {
            return Ok(None);
        };
        if spec.own.is_empty() && spec.blockers.is_empty() && spec.slots.is_empty() {
            return Ok(None);
        }
        let cluster = Arc::clone(&spec.cluster);
        let wait_start = Instant::now();
        let mut last_reason = String::new();
        let mut lease: Option<Lease> = None;
        let record = Record::new(&self.me, &self.plan.job.id, &self.run_id, cluster.lease_ttl);
        loop {
            if self.cancelled() {
                return Err(RunError::Cancelled);
            }
            // A lease that expired while we waited (etcd unreachable) took our queue places.
            if lease.as_ref().is_some_and(|l| l.gone()) {
                lease = None;
            }
            // Held keys count as proven from when the attempt that took them began.
            let attempt_sent = clock::boottime();
            let step = match &lease {
                Some(l) => self.etcd_attempt(&spec, l, &record),
                None => match Lease::grant(&cluster) {
                    Ok(l) => {
                        let s = self.etcd_attempt(&spec, &l, &record);
                        lease = Some(l);
                        s
                    }
                    Err(e) => Err(e),
                },
            };
            let step = match step {
                Ok(Step::Held(revision)) => {
                    self.waited += wait_start.elapsed();
                    let mut slots = Vec::new();
                    let l = lease.expect("held under a lease");
                    // The creation revision is the fencing token: logged with each key.
                    let taken = |k: &str| LockRef {
                        path: k.into(),
                        host: format!("etcd (revision {revision})"),
                    };
                    for (name, _) in &spec.slots {
                        let k = cluster.slot_key(name, l.id);
                        self.events.emit(EventKind::LockTaken { lock: taken(&k) });
                        slots.push(k);
                    }
                    for k in &spec.own {
                        self.events.emit(EventKind::LockTaken { lock: taken(k) });
                    }
                    let owned = spec.own.iter().map(|k| Owned {
                        key: k.clone(),
                        create_revision: Some(revision),
                    });
                    let owned = owned.chain(slots.iter().map(|k| Owned {
                        key: k.clone(),
                        create_revision: None,
                    }));
                    let guard = KeyGuard::start(
                        &cluster,
                        owned.collect(),
                        l.id,
                        attempt_sent,
                        give_up_after(l.ttl) / 2,
                    );
                    return Ok(Some(EtcdHold {
                        cluster,
                        lease: Some(l),
                        keys: spec.own.clone(),
                        slots,
                        revision,
                        events: self.events.clone(),
                        guard: Some(guard),
                    }));
                }
                Ok(w) => w,
                // Expired while etcd could not be reached: start over with a new lease.
                Err(e) if e.is_lease_gone() => {
                    lease = None;
                    continue;
                }
                Err(e) if e.is_unavailable() => Step::Wait {
                    reason: e.to_string(),
                    key: cluster.prefix.clone(),
                    holder: None,
                    watch: None,
                    retry: UNAVAILABLE_RETRY,
                },
                Err(e) => return Err(RunError::Etcd { source: e }),
            };
            let Step::Wait {
                reason,
                key,
                holder,
                watch,
                retry,
            } = step
            else {
                unreachable!("held returned above")
            };
            if no_wait {
                return Err(RunError::Blocked { reason });
            }
            if reason != last_reason {
                self.events.emit(EventKind::Waiting {
                    reason: reason.clone(),
                    lock: Some(etcd_ref(&key)),
                    holder,
                    retry,
                });
                last_reason = reason.clone();
            }
            let mut wait = retry + jitter(retry);
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    self.waited += wait_start.elapsed();
                    return Err(RunError::Blocked {
                        reason: format!(
                            "still blocked after max_wait ({}): {reason}",
                            crate::config::duration::format(
                                self.plan.job.max_wait.unwrap_or_default()
                            )
                        ),
                    });
                }
                wait = wait.min(d - now);
            }
            if self.wait_for(&cluster, watch, wait, lease.as_ref()) {
                return Err(RunError::Cancelled);
            }
        }
    }

    /// Dry run: who holds each own key and blocker key now, taking nothing.
    pub(super) fn inspect_etcd(&self) -> Result<(), RunError> {
        let Some(spec) = &self.plan.etcd else {
            return Ok(());
        };
        let own = spec.own.iter().map(|k| ("lock", k));
        let blockers = spec.blockers.iter().map(|(k, _)| ("blocker", k));
        for (what, key) in own.chain(blockers) {
            let (_, kvs) = spec
                .cluster
                .client
                .range(key, None)
                .map_err(|source| RunError::Etcd { source })?;
            let holder = kvs
                .first()
                .map(|kv| describe(&crate::lock::etcd::holder_of_value(&kv.value)));
            self.events.emit(EventKind::Inspected {
                what,
                lock: etcd_ref(key),
                verdict: holder
                    .as_ref()
                    .map(|_| "Live (held under a lease)".to_string()),
                holder,
            });
        }
        Ok(())
    }

    /// One pass: join and check every slot, then the locks transaction.
    fn etcd_attempt(
        &self,
        spec: &EtcdSpec,
        lease: &Lease,
        record: &Record,
    ) -> Result<Step, EtcdError> {
        let cluster = &spec.cluster;
        for (name, n) in &spec.slots {
            cluster.join_slot(name, record, lease.id)?;
            if let Standing::Waiting {
                ahead,
                ahead_keys,
                holders,
                revision,
            } = cluster.slot_standing(name, *n, lease.id)?
            {
                let prefix = cluster.slot_prefix(name);
                let held_by: Vec<String> = holders.iter().map(describe).collect();
                return Ok(Step::Wait {
                    reason: format!(
                        "slot {name} is full ({n} at once, {ahead} ahead of this run); held by {}",
                        held_by.join("; ")
                    ),
                    key: prefix.clone(),
                    holder: held_by.first().cloned(),
                    watch: Some(Watch {
                        key: prefix.clone(),
                        range_end: Some(crate::lock::etcd::client::prefix_end(&prefix)),
                        revision,
                        ahead: Some((ahead_keys, (ahead + 1).saturating_sub(*n as usize).max(1))),
                    }),
                    retry: DEFAULT_RETRY,
                });
            }
        }
        let blockers: Vec<String> = spec.blockers.iter().map(|(k, _)| k.clone()).collect();
        match cluster.try_acquire(&spec.own, &blockers, record, lease.id)? {
            Acquire::Held { revision } => Ok(Step::Held(revision)),
            Acquire::Blocked {
                key, holder: None, ..
            } => Ok(Step::Wait {
                reason: format!("etcd key {key} changed while it was checked; trying again"),
                key,
                holder: None,
                watch: None,
                retry: Duration::from_millis(100),
            }),
            Acquire::Blocked {
                key,
                holder: Some(h),
                revision,
            } => {
                let who = describe(&h);
                let (what, retry) = match spec.blockers.iter().find(|(k, _)| *k == key) {
                    Some((_, wait_time)) => ("blocker", *wait_time),
                    None => ("own lock", DEFAULT_RETRY),
                };
                Ok(Step::Wait {
                    reason: format!("{what} {key} on etcd is held by {who}"),
                    key: key.clone(),
                    holder: Some(who),
                    watch: Some(Watch {
                        key,
                        range_end: None,
                        revision,
                        ahead: None,
                    }),
                    retry,
                })
            }
        }
    }

    /// Waits up to `d`, or until the watched range sees a deletion after its revision, or
    /// until the lease has gone unconfirmed for half its TTL (etcd lost quorum or cannot be
    /// reached: the next attempt says so, rather than a watch on a lone member staying quiet).
    /// True if cancelled.
    fn wait_for(
        &self,
        cluster: &Arc<EtcdLocks>,
        watch: Option<Watch>,
        d: Duration,
        lease: Option<&Lease>,
    ) -> bool {
        let end = Instant::now() + d;
        let (tx, rx) = mpsc::channel();
        let watching = watch.is_some();
        if let Some(w) = watch {
            let c = Arc::clone(cluster);
            let limit = d.min(MAX_WATCH);
            // Distinct keys ahead seen deleted (a key put again and deleted again counts once).
            let mut gone = std::collections::HashSet::new();
            let wake = move |k: &str| match &w.ahead {
                None => true,
                Some((keys, need)) => {
                    if keys.iter().any(|a| a == k) {
                        gone.insert(k.to_string());
                    }
                    gone.len() >= *need
                }
            };
            // The thread ends by itself at the latest when the watch times out.
            let _ = std::thread::Builder::new()
                .name("etcd-watch".into())
                .spawn(move || {
                    let r =
                        c.client
                            .watch(&w.key, w.range_end.as_deref(), w.revision + 1, limit, wake);
                    let _ = tx.send(r);
                });
        } else {
            drop(tx);
        }
        loop {
            if self.cancelled() {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            if watching
                && lease.is_some_and(|l| l.gone() || l.unconfirmed_for() >= give_up_after(l.ttl))
            {
                return false;
            }
            match rx.recv_timeout((end - now).min(Duration::from_millis(250))) {
                Ok(Ok(Watched::Deleted)) => return false,
                // Ended or failed: the attempt looks again (after a pause, so a member that
                // keeps failing watches cannot turn this into a busy loop).
                Ok(_) => {
                    let rest = end.saturating_duration_since(Instant::now());
                    return crate::sys::cancel::sleep_cancellable(
                        rest.min(Duration::from_secs(1)),
                        self.cancel,
                    );
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return crate::sys::cancel::sleep_cancellable(
                        end.saturating_duration_since(Instant::now()),
                        self.cancel,
                    );
                }
            }
        }
    }
}
