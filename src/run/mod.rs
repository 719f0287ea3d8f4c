//! One run of one job, as a short sequence:
//! run lock → acquire (own locks, then blockers; wait) → for each sync: preflight, transfer,
//! commit → release. Returns a [`RunOutcome`].
//!
//! `run-job` and the daemon call [`run_job`] with a [`JobPlan`] built once per config load, so
//! a one-shot run takes the same locks, waits the same way and emits the same events as a
//! scheduled one. The lock protocol itself is told once, in DESIGN.md ("The lock protocol").
//!
//! Submodules, one job each: [`runlock`] (the per-job kernel lock), [`acquire`] (the lock pass
//! and waiting), [`wait`] (jitter, inotify), [`held`] (the release guard and the heartbeat),
//! [`hooks`] (the hook phases around the syncs),
//! [`outcome`] (typed results), [`active`] (runs in progress in this process), [`log`] (the
//! log observer), [`runlog`] (the per-run log file).
//!
//! Must not: reach into the scheduler (it answers through its outcome), format log lines
//! (events do), or know how an engine copies.

// A run returns its error once; the size of `RunError` (it carries lock and ssh errors with
// their stderr tails) costs nothing measurable.
#![allow(clippy::result_large_err)]

mod acquire;
pub mod active;
mod etcd;
mod etcd_hold;
mod held;
mod hooks;
pub mod log;
pub mod outcome;
pub mod retry;
pub mod runlock;
pub mod runlog;
pub mod timeout;
pub mod wait;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{EngineError, SyncCtx};
pub use crate::events::Trigger;
use crate::events::{Emitter, EventKind, LockRef, Observer, SyncReport};
use crate::lock::Identity;
use crate::plan::JobPlan;
use crate::sys::random;
pub use active::ActiveRuns;
pub use outcome::{ErrorKind, RunError, RunOutcome, RunStatus};

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Report lock and blocker state without waiting or locking, then `rsync --dry-run`.
    pub dry_run: bool,
    /// End as blocked at once instead of waiting.
    pub no_wait: bool,
    /// What started the run (recorded in the run history).
    pub trigger: Trigger,
    /// The schedule slot the run is for, when the daemon started it for one.
    pub slot: Option<jiff::Timestamp>,
    /// Have rsync report its progress (`run-job` on a terminal).
    pub progress: bool,
}

/// What every run of this process shares: its observers and the runs in progress.
#[derive(Clone, Default)]
pub struct RunContext {
    pub observers: Vec<Arc<dyn Observer>>,
    pub active: ActiveRuns,
}

impl RunContext {
    /// The log observer alone (what `run-job` uses).
    pub fn logging() -> RunContext {
        RunContext {
            observers: vec![Arc::new(log::LogObserver)],
            active: ActiveRuns::default(),
        }
    }
}

/// Runs the job of `plan` once, or, with `retry_for`, again after each transient failure while
/// the window lasts (each try its own run; the last one's outcome is returned). `cancel` stops
/// it (waiting, syncing or pausing between tries) and releases its locks.
pub fn run_job(
    plan: &JobPlan,
    ctx: &RunContext,
    opts: RunOptions,
    cancel: &AtomicBool,
) -> RunOutcome {
    let mut tries = retry::Tries::new(plan.job.retry, opts.dry_run);
    loop {
        let outcome = run_once(plan, ctx, opts, cancel, &tries);
        match tries.take_next() {
            Some(wait) if retry::pause(wait, cancel) => tries.attempt += 1,
            _ => return outcome,
        }
    }
}

fn run_once(
    plan: &JobPlan,
    ctx: &RunContext,
    opts: RunOptions,
    cancel: &AtomicBool,
    tries: &retry::Tries,
) -> RunOutcome {
    let started = Instant::now();
    let run_id = new_run_id();
    let span = tracing::info_span!("run", job_id = %plan.job.id, run_id = %run_id);
    let _enter = span.enter();
    let _active = ctx.active.register(&run_id);
    let doing = Arc::new(timeout::Doing::default());
    let mut observers = ctx.observers.clone();
    observers.push(doing.clone());
    let events = Emitter::new(&plan.job.id, &run_id, observers);
    events.emit(EventKind::Started {
        dry_run: opts.dry_run,
        trigger: opts.trigger,
        slot: opts.slot,
    });
    let mut run = Run {
        plan,
        ctx,
        started: crate::config::zone::now(),
        run_id: run_id.clone(),
        me: Identity::current(),
        cancel,
        events: events.clone(),
        waited: Duration::ZERO,
        syncs: Vec::new(),
        restore_points: Vec::new(),
        progress: opts.progress,
    };
    let timed_out = AtomicBool::new(false);
    let result = timeout::bounded(plan.job.timeout, cancel, &timed_out, || {
        if opts.dry_run {
            run.dry_run()
        } else {
            run.real_run(opts.no_wait)
        }
    });
    let result = match (result, plan.job.timeout) {
        (Err(_), Some(limit)) if timed_out.load(Ordering::SeqCst) => Err(RunError::TimedOut {
            limit,
            doing: doing.now(),
        }),
        (r, _) => r,
    };
    let outcome = RunOutcome {
        job: plan.job.id.clone(),
        run_id,
        result,
        syncs: run.syncs,
        restore_points: run.restore_points,
        waited: run.waited,
        duration: started.elapsed(),
    };
    if let Some((wait, until)) = tries.decide(&outcome, cancel) {
        events.emit(EventKind::RunRetrying {
            attempt: tries.attempt + 1,
            wait,
            until,
        });
    }
    events.emit(EventKind::Finished {
        outcome: outcome.status().as_str(),
        message: outcome.message(),
        error_kind: outcome.result.as_ref().err().map(|e| e.kind().as_str()),
        exit_code: crate::exit::of_run(outcome.status()),
        waited: outcome.waited,
        duration: outcome.duration,
        syncs: outcome.syncs.clone(),
    });
    outcome
}

fn new_run_id() -> String {
    let now = crate::config::zone::now();
    format!("{}-{}", now.strftime("%Y%m%dT%H%M%S"), random::hex(3))
}

struct Run<'a> {
    plan: &'a JobPlan,
    ctx: &'a RunContext,
    started: jiff::Zoned,
    run_id: String,
    me: Identity,
    cancel: &'a AtomicBool,
    events: Emitter,
    waited: Duration,
    syncs: Vec<SyncReport>,
    restore_points: Vec<String>,
    progress: bool,
}

impl Run<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    fn real_run(&mut self, no_wait: bool) -> Result<(), RunError> {
        self.plan
            .runtime
            .prepare()
            .map_err(|(path, source)| RunError::RuntimeDir { path, source })?;
        let deadline = self.plan.job.max_wait.map(|w| Instant::now() + w);
        let _run_lock = self.take_run_lock(no_wait, deadline)?;
        // etcd first (lock_backend etcd or both), then lock files; released in reverse.
        let mut etcd = self.acquire_etcd(no_wait, deadline)?;
        let mut held = self.acquire(no_wait, deadline)?;
        let (heartbeat, lease) = (self.plan.job.lock_heartbeat, self.plan.job.stale_after);
        let cancel = self.cancel;
        let mut engine = || held.with_heartbeat(heartbeat, lease, cancel, || self.run_hooked());
        let ((result, lost), lease_lost) = match &etcd {
            Some(e) => e.with_lease(cancel, engine),
            None => (engine(), None),
        };
        // Release before reporting, so the outcome is only sent once no lock of ours remains.
        held.release();
        if let Some(e) = etcd.as_mut() {
            e.release();
        }
        if let Some(e) = lease_lost {
            return Err(e);
        }
        if lost {
            return Err(RunError::LockLost);
        }
        result
    }

    /// Every sync in order: preflight, transfer, commit.
    fn run_engine(&mut self, dry_run: bool) -> Result<(), RunError> {
        let engine = &*self.plan.engine;
        let ctx = SyncCtx {
            job: &self.plan.job.id,
            run_id: &self.run_id,
            started: &self.started,
            dry_run,
            progress: self.progress,
            cancel: self.cancel,
            events: &self.events,
        };
        for i in 0..engine.syncs() {
            if self.cancelled() {
                return Err(RunError::Cancelled);
            }
            engine.preflight(i, &ctx)?;
            let report = match engine.transfer(i, &ctx) {
                Ok(r) => r,
                Err(e) => {
                    if let EngineError::RsyncExit { report, .. } = &e {
                        self.syncs.push((**report).clone());
                    }
                    return Err(e.into());
                }
            };
            self.syncs.push(report.clone());
            if !dry_run {
                if let Some(point) = engine.commit(i, &report, &ctx)? {
                    self.restore_points.push(point);
                }
            }
        }
        if !dry_run {
            engine.after_success(&ctx)?;
        }
        Ok(())
    }

    /// Reports lock and blocker state without taking or waiting, then runs the engine dry.
    fn dry_run(&mut self) -> Result<(), RunError> {
        let plan = self.plan;
        // A dry run reaches remote hosts too: ssh needs its ControlMaster directory.
        plan.runtime
            .prepare()
            .map_err(|(path, source)| RunError::RuntimeDir { path, source })?;
        self.inspect_etcd()?;
        let own = plan
            .locks
            .iter()
            .map(|l| ("lock", &l.backend, &l.path, None));
        let blockers = plan
            .blockers
            .iter()
            .map(|b| ("blocker", &b.backend, &b.path, b.stale_after));
        for (what, backend, path, stale_after) in own.chain(blockers) {
            let lock = LockRef {
                path: path.clone(),
                host: backend.to_string(),
            };
            let (holder, verdict) = match backend.observe(path) {
                Ok(None) => (None, None),
                Ok(Some(o)) => {
                    let v = self.judge(&**backend, &o, stale_after);
                    (Some(o.to_string()), Some(format!("{v:?}")))
                }
                Err(source) => return Err(RunError::Inspect { what, source }),
            };
            self.events.emit(EventKind::Inspected {
                what,
                lock,
                holder,
                verdict,
            });
        }
        self.run_engine(true)
    }
}
