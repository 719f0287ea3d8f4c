//! Acquiring: create every own lock, *then* check every blocker; on any obstacle release what
//! this pass took, wait, and start over. Why this order makes chained instances safe is told in
//! DESIGN.md, "Mutual exclusion". Abandoned backupmanager locks are broken on the way (only if
//! still the one judged), with a warning naming the former owner.
//!
//! Must not: copy data, or remove a file that is not a backupmanager record.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::held::{Held, HeldLocks};
use super::outcome::RunError;
use super::wait::{jitter, pause, pause_remote, Watcher};
use super::Run;
use crate::events::{EventKind, LockRef};
use crate::lock::{self, Created, Holder, LockBackend, Observed, Record, Verdict};

/// Interval for re-checking a contended own lock when no blocker sets one.
const DEFAULT_RETRY: Duration = Duration::from_secs(60);

/// Why an attempt could not proceed.
pub(super) struct Blocked {
    /// Said once per distinct reason.
    reason: String,
    lock: LockRef,
    holder: Option<String>,
    retry: Duration,
    /// The local file whose removal ends the wait early, if the obstacle is local.
    wake_on: Option<PathBuf>,
    /// A remote obstacle: where it is, for a `watch-lock` over ssh (fast hand-off).
    remote: Option<(Arc<dyn LockBackend>, String)>,
}

/// The remote watch of a blocked attempt, when its obstacle is on another host.
fn remote_of(backend: &Arc<dyn LockBackend>, path: &str) -> Option<(Arc<dyn LockBackend>, String)> {
    (!backend.is_local()).then(|| (Arc::clone(backend), path.to_string()))
}

enum Attempt {
    Blocked(Blocked),
    Failed(RunError),
}

impl Run<'_> {
    /// Own locks first, then blockers; back off and retry while blocked.
    pub(super) fn acquire(
        &mut self,
        no_wait: bool,
        deadline: Option<Instant>,
    ) -> Result<HeldLocks, RunError> {
        let local: Vec<PathBuf> = self
            .plan
            .locks
            .iter()
            .filter_map(|l| l.backend.waker(&l.path))
            .chain(
                self.plan
                    .blockers
                    .iter()
                    .filter_map(|b| b.backend.waker(&b.path)),
            )
            .collect();
        // Watch before the first check, so a removal between check and wait is not missed.
        let mut watcher = Watcher::new(&local);
        let wait_start = Instant::now();
        let mut last_reason = String::new();
        loop {
            if self.cancelled() {
                return Err(RunError::Cancelled);
            }
            if let Some(w) = watcher.as_mut() {
                w.drain();
            }
            let blocked = match self.attempt() {
                Ok(held) => {
                    self.waited += wait_start.elapsed();
                    return Ok(held);
                }
                Err(Attempt::Failed(e)) => return Err(e),
                Err(Attempt::Blocked(b)) => b,
            };
            if no_wait {
                return Err(RunError::Blocked {
                    reason: blocked.reason,
                });
            }
            if blocked.reason != last_reason {
                self.events.emit(EventKind::Waiting {
                    reason: blocked.reason.clone(),
                    lock: Some(blocked.lock.clone()),
                    holder: blocked.holder.clone(),
                    retry: blocked.retry,
                });
                last_reason = blocked.reason.clone();
            }
            let now = Instant::now();
            let mut wait = blocked.retry + jitter(blocked.retry);
            if let Some(d) = deadline {
                if now >= d {
                    self.waited += wait_start.elapsed();
                    return Err(RunError::Blocked {
                        reason: format!(
                            "still blocked after max_wait ({}): {}",
                            crate::config::duration::format(
                                self.plan.job.max_wait.unwrap_or_default()
                            ),
                            blocked.reason
                        ),
                    });
                }
                wait = wait.min(d - now);
            }
            let cancelled = match (&blocked.wake_on, blocked.remote) {
                (None, Some((backend, path))) => pause_remote(backend, path, wait, self.cancel),
                _ => pause(
                    watcher.as_mut(),
                    blocked.wake_on.as_deref(),
                    wait,
                    self.cancel,
                ),
            };
            if cancelled {
                return Err(RunError::Cancelled);
            }
        }
    }

    /// One pass: create every own lock, then check every blocker. On any obstacle, everything
    /// taken in this pass is released before returning (by the guard's drop).
    fn attempt(&mut self) -> Result<HeldLocks, Attempt> {
        let plan = self.plan;
        let mut held = HeldLocks::new(self.events.clone());
        let retry_default = plan
            .blockers
            .iter()
            .map(|b| b.wait_time)
            .min()
            .unwrap_or(DEFAULT_RETRY);
        let job = &plan.job;
        for l in &plan.locks {
            let backend = &l.backend;
            let record = Record::new(&self.me, &job.id, &self.run_id, job.stale_after);
            let lock = LockRef {
                path: l.path.clone(),
                host: backend.to_string(),
            };
            // A stale lock is broken and creation tried once more; a second clash is a live race.
            for _ in 0..2 {
                match backend.try_create(&l.path, &record) {
                    Ok(Created::Yes) => {
                        self.events
                            .emit(EventKind::LockTaken { lock: lock.clone() });
                        held.push(Held {
                            backend: backend.clone(),
                            path: l.path.clone(),
                            token: record.token.clone(),
                        });
                        break;
                    }
                    Ok(Created::Exists(None)) => continue,
                    Ok(Created::Exists(Some(obs))) => match self.judge(&**backend, &obs, None) {
                        Verdict::Stale(why) => {
                            self.break_stale(&**backend, &l.path, &obs, &why)
                                .map_err(Attempt::Failed)?;
                        }
                        Verdict::Live => {
                            return Err(Attempt::Blocked(Blocked {
                                reason: format!(
                                    "own lock file {} on {} is held by {}",
                                    l.path, backend, obs
                                ),
                                lock,
                                holder: Some(obs.to_string()),
                                retry: retry_default,
                                wake_on: backend.waker(&l.path),
                                remote: remote_of(backend, &l.path),
                            }));
                        }
                    },
                    Err(source) => return Err(Attempt::Failed(RunError::TakeLock { source })),
                }
            }
            if !held.holds(&l.path) {
                return Err(Attempt::Blocked(Blocked {
                    reason: format!(
                        "own lock file {} on {} keeps changing hands",
                        l.path, backend
                    ),
                    lock,
                    holder: None,
                    retry: retry_default,
                    wake_on: backend.waker(&l.path),
                    remote: remote_of(backend, &l.path),
                }));
            }
        }
        for b in &plan.blockers {
            let backend = &b.backend;
            let obs = match backend.observe(&b.path) {
                Ok(None) => continue,
                Ok(Some(o)) => o,
                Err(source) => return Err(Attempt::Failed(RunError::CheckBlocker { source })),
            };
            let lock = LockRef {
                path: b.path.clone(),
                host: backend.to_string(),
            };
            match self.judge(&**backend, &obs, b.stale_after) {
                Verdict::Live => {
                    return Err(Attempt::Blocked(Blocked {
                        reason: format!("blocker {} on {} is held by {}", b.path, backend, obs),
                        lock,
                        holder: Some(obs.to_string()),
                        retry: b.wait_time,
                        wake_on: backend.waker(&b.path),
                        remote: remote_of(backend, &b.path),
                    }));
                }
                Verdict::Stale(why) => {
                    if matches!(obs.holder, Holder::Ours(_)) {
                        self.break_stale(&**backend, &b.path, &obs, &why)
                            .map_err(Attempt::Failed)?;
                    } else {
                        self.events.emit(EventKind::ForeignIgnored {
                            lock,
                            holder: obs.to_string(),
                            why,
                        });
                    }
                }
            }
        }
        Ok(held)
    }

    pub(super) fn judge(
        &self,
        backend: &dyn LockBackend,
        obs: &Observed,
        foreign_stale_after: Option<std::time::Duration>,
    ) -> Verdict {
        let active = |run: &str| self.ctx.active.contains(run);
        lock::judge(
            obs,
            &self.me,
            backend.is_local(),
            self.plan.job.stale_after,
            foreign_stale_after,
            &active,
            crate::sys::clock::boottime(),
        )
    }

    /// Removes an abandoned backupmanager lock, only if it is still the one we judged.
    fn break_stale(
        &self,
        backend: &dyn LockBackend,
        path: &str,
        obs: &Observed,
        why: &str,
    ) -> Result<(), RunError> {
        let Holder::Ours(rec) = &obs.holder else {
            return Ok(());
        };
        match backend.release_if_token(path, &rec.token) {
            Ok(true) => {
                self.events.emit(EventKind::StaleRemoved {
                    lock: LockRef {
                        path: path.into(),
                        host: backend.to_string(),
                    },
                    holder: obs.to_string(),
                    why: why.into(),
                });
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(source) => Err(RunError::BreakStale { source }),
        }
    }
}
