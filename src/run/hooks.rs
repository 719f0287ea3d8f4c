//! The hook phases around a run's syncs, while its locks are held:
//! `before` → dumps → syncs → `after_success` or `after_failure` → `finally`.
//!
//! A `before` hook that exits 75 skips the run (no syncs, no after hooks; `finally` runs); one
//! that fails with `on_error: abort` fails it (no syncs; `after_failure` and `finally` run).
//! After and finally hooks never change the outcome: their failures are warnings. A run that
//! was cancelled (signal, shutdown, the job's `timeout`, a lost lock) still runs its
//! `after_failure` and `finally` hooks, each cut to [`CANCELLED_HOOK_LIMIT`], so a hook that
//! undoes what `before` did (restart a stopped service) gets its chance.
//!
//! Must not: release locks (the caller does, after [`Run::run_hooked`] returns).

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::{Run, RunError, RunStatus};
use crate::hooks::{describe, Before, HookEnv, Runner};

/// The most an after or finally hook may take once the run has been cancelled.
pub const CANCELLED_HOOK_LIMIT: Duration = Duration::from_secs(10);

impl Run<'_> {
    /// The hooks and the syncs, in order; the run's result.
    pub(super) fn run_hooked(&mut self) -> Result<(), RunError> {
        let hooks = &self.plan.job.hooks;
        let dumps = &self.plan.job.dumps;
        if hooks.is_empty() && dumps.is_empty() {
            return self.run_engine(false);
        }
        let events = self.events.clone();
        let runner = Runner {
            remote: self.plan.remote.as_deref(),
            events: &events,
        };
        let mut env = HookEnv {
            job: self.plan.job.id.clone(),
            run_id: self.run_id.clone(),
            log_file: Some(crate::store::runlog::path(
                &self.plan.state_dir,
                &self.plan.job.id,
                &self.run_id,
            )),
            ..HookEnv::default()
        };
        // A hook or dump stopped because the run was cancelled makes the run cancelled, not
        // failed (the job's `timeout` then turns it into TimedOut).
        let result = match runner.before(&hooks.before, &env, self.cancel) {
            Before::Go | Before::Abort { .. } if self.cancelled() => Err(RunError::Cancelled),
            Before::Go => match runner.dumps(dumps, &env, self.cancel) {
                _ if self.cancelled() => Err(RunError::Cancelled),
                Ok(()) => self.run_engine(false),
                Err((index, source)) => Err(RunError::Dump {
                    index,
                    what: crate::hooks::dump::describe(&dumps[index]),
                    source,
                }),
            },
            Before::Skip { index } => Err(RunError::Skipped {
                index,
                command: describe(&hooks.before[index].command),
            }),
            Before::Abort { index, error } => Err(RunError::Hook {
                index,
                command: describe(&hooks.before[index].command),
                source: error,
            }),
        };
        let status = match &result {
            Ok(()) => RunStatus::Success,
            Err(e) => e.status(),
        };
        env.outcome = Some(status.as_str().to_string());
        env.error = result
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        env.exit_code = Some(crate::exit::of_run(status));
        env.restore_point = self.restore_points.last().cloned();
        // Once cancelled, the remaining hooks run briefly, and not cancelled at once.
        let not_cancelled = AtomicBool::new(false);
        let (cancel, cap) = if self.cancelled() {
            (&not_cancelled, Some(CANCELLED_HOOK_LIMIT))
        } else {
            (self.cancel, None)
        };
        match status {
            RunStatus::Success => {
                runner.after("after_success", &hooks.after_success, &env, cancel, cap)
            }
            RunStatus::Skipped => {}
            _ => runner.after("after_failure", &hooks.after_failure, &env, cancel, cap),
        }
        // A Ctrl-C during the after hooks still leaves `finally` its short chance.
        let cap = if self.cancelled() {
            Some(CANCELLED_HOOK_LIMIT)
        } else {
            cap
        };
        let cancel = if cap.is_some() {
            &not_cancelled
        } else {
            cancel
        };
        runner.after("finally", &hooks.finally, &env, cancel, cap);
        result
    }
}
