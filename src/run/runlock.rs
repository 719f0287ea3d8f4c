//! The per-job run lock: a kernel `flock` on `<pid_file_dir>/jobs/<id>.run`, so one job never
//! runs twice on a host, whoever started it (daemon or `run-job`). The kernel drops it when the
//! process dies, so it can never be left behind.
//!
//! Must not: touch lock files of the lock protocol.

use std::fs;
use std::time::{Duration, Instant};

use super::outcome::RunError;
use super::Run;
use crate::events::EventKind;
use crate::sys::cancel::sleep_cancellable;
use crate::sys::runtime::RuntimeDir;

/// Takes `job`'s run lock without waiting, for commands that change a job's data outside a
/// run (`prune`). `Ok(None)`: a run of the job is in progress (its holder line is returned in
/// the error text by the caller).
pub fn try_take(runtime: &RuntimeDir, job: &str, holder: &str) -> Result<Option<fs::File>, RunError> {
    runtime
        .prepare()
        .map_err(|(path, source)| RunError::RuntimeDir { path, source })?;
    let path = runtime.run_lock(job);
    let file = fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| RunError::RunLockOpen {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.set_len(0);
            let _ = fs::write(&path, format!("pid {} {holder}\n", std::process::id()));
            Ok(Some(file))
        }
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(source)) => Err(RunError::RunLock { path, source }),
    }
}

impl Run<'_> {
    /// Takes the run lock, waiting (unless `no_wait`) until `deadline`.
    pub(super) fn take_run_lock(
        &mut self,
        no_wait: bool,
        deadline: Option<Instant>,
    ) -> Result<fs::File, RunError> {
        let path = self.plan.runtime.run_lock(&self.plan.job.id);
        let file = fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| RunError::RunLockOpen {
                path: path.clone(),
                source,
            })?;
        let mut logged = false;
        let wait_start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(source)) => {
                    return Err(RunError::RunLock { path, source });
                }
            }
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let reason = format!(
                "another run of job {} is in progress on this host ({})",
                self.plan.job.id,
                holder.trim()
            );
            if no_wait {
                return Err(RunError::Blocked { reason });
            }
            if !logged {
                self.events.emit(EventKind::Waiting {
                    reason: reason.clone(),
                    lock: None,
                    holder: Some(holder.trim().to_string()),
                    retry: Duration::ZERO,
                });
                logged = true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RunError::Blocked {
                    reason: format!("max_wait passed: {reason}"),
                });
            }
            // A kernel lock has no inotify event; a one-second re-check is one cheap syscall.
            if sleep_cancellable(Duration::from_secs(1), self.cancel) {
                return Err(RunError::Cancelled);
            }
        }
        self.waited += wait_start.elapsed();
        let _ = file.set_len(0);
        let _ = fs::write(&path, format!("pid {} run {}\n", self.me.pid, self.run_id));
        Ok(file)
    }
}
