//! Acquiring and holding a job's etcd keys and slots (`lock_backend: etcd` or `both`): one
//! lease per run, slots first (a queue by creation revision), then every lock in one
//! transaction; while blocked, a watch on the obstacle from the revision the check saw (no
//! polling; the blocker's `wait_time` is only the backstop); a slot waiter wakes only for its
//! turn. Once held, the keys go to an [`EtcdHold`] (run/etcd_hold.rs: the watchdog, release)
//! with a `lock::etcd::guard` watching them.
//!
//! When no member answers (no quorum, cut off) the run waits, saying so and naming etcd and its
//! endpoints, and never starts rsync.
//!
//! Must not: copy data or touch lock files (acquire.rs does, after this in `both` mode).

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub(super) use super::etcd_hold::EtcdHold;
use super::held::give_up_after;
use super::outcome::RunError;
use super::wait::jitter;
use super::Run;
use crate::events::{EventKind, LockRef};
use crate::lock::etcd::guard::{KeyGuard, Owned};
use crate::lock::etcd::lease::Lease;
use crate::lock::etcd::{describe, Acquire, EtcdError, EtcdLocks, Standing, Watched};
use crate::lock::Record;
use crate::plan::EtcdSpec;
use crate::sys::clock;

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
    ahead: Option<Ahead>,
}

/// A slot waiter's place: the keys ahead of it, how many must go, and its own key (deleted by
/// an operator: it wakes at once to queue again).
struct Ahead {
    keys: Vec<String>,
    need: usize,
    mine: String,
}

/// Whether a deleted key (given) ends a wait: any deletion, or in a slot's queue only the
/// deletion that makes it this run's turn (`need` distinct keys ahead gone; a key put again and
/// deleted again counts once) or of its own key.
fn waker(ahead: Option<Ahead>) -> impl FnMut(&str) -> bool {
    let mut gone = std::collections::HashSet::new();
    move |k: &str| match &ahead {
        None => true,
        Some(a) => {
            if a.keys.iter().any(|x| x == k) {
                gone.insert(k.to_string());
            }
            gone.len() >= a.need || k == a.mine
        }
    }
}

pub(super) fn etcd_ref(key: &str) -> LockRef {
    LockRef {
        path: key.into(),
        host: "etcd".into(),
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
                        ahead: Some(Ahead {
                            keys: ahead_keys,
                            need: (ahead + 1).saturating_sub(*n as usize).max(1),
                            mine: cluster.slot_key(name, lease.id),
                        }),
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
        if let Some(mut w) = watch {
            let c = Arc::clone(cluster);
            let limit = d.min(MAX_WATCH);
            let wake = waker(w.ahead.take());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_waiter_wakes_for_its_turn_or_its_own_key_only() {
        // 3 ahead, 2 places: its turn once 2 distinct keys ahead are gone.
        let ahead = || Ahead {
            keys: vec!["a".into(), "b".into(), "c".into()],
            need: 2,
            mine: "me".into(),
        };
        let mut wake = waker(Some(ahead()));
        assert!(!wake("z"), "a key behind it");
        assert!(!wake("a"));
        assert!(!wake("a"), "the same key again");
        assert!(wake("c"));
        let mut wake = waker(Some(ahead()));
        assert!(wake("me"), "its own key: queue again");
        let mut any = waker(None);
        assert!(any("whatever"));
    }
}
