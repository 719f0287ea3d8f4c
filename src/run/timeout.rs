//! The per-job `timeout`: a run that has not finished this long after it started is cancelled
//! (rsync stopped, locks released) and fails naming what it was doing. The [`Doing`] observer
//! keeps that last thing from the run's own events.
//!
//! Must not: stop anything itself; it only sets the run's cancel flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use crate::events::{EventKind, Observer, RunEvent};

/// What the run was doing last, in words, from its events.
#[derive(Default)]
pub struct Doing(Mutex<String>);

impl Doing {
    pub fn now(&self) -> String {
        let d = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if d.is_empty() {
            "starting".into()
        } else {
            d
        }
    }
}

impl Observer for Doing {
    fn on_event(&self, ev: &RunEvent) {
        let what = match &ev.kind {
            EventKind::Waiting { reason, .. } => format!("waiting: {reason}"),
            EventKind::LockTaken { .. } => "taking its locks".into(),
            EventKind::SyncStarted {
                index,
                source,
                dest,
                ..
            } => format!("sync {index} ({source} -> {dest}) was running"),
            EventKind::SyncDone { report } => format!("sync {} had finished", report.index),
            EventKind::SnapshotCommitted {
                index,
                archive: Some(_),
                ..
            } => format!("sync {index}'s archive had been committed"),
            EventKind::SnapshotCommitted { index, .. } => {
                format!("sync {index}'s snapshot had been committed")
            }
            EventKind::Pruned { .. } | EventKind::PruneFailed { .. } => "pruning".into(),
            // after_failure and finally hooks run once the run has failed or was stopped: they
            // must not hide what the run was doing when its timeout passed.
            EventKind::HookStarted { phase, .. }
                if matches!(*phase, "after_failure" | "finally") =>
            {
                return
            }
            EventKind::HookStarted {
                phase,
                index,
                command,
                ..
            } => format!("{phase} hook {index} ({command}) was running"),
            _ => return,
        };
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = what;
    }
}

/// Runs `work`; if it has not returned within `limit`, sets `timed_out` and `cancel` (which
/// makes `work` wind down: rsync is stopped, locks released). No limit: just runs `work`.
pub fn bounded<T>(
    limit: Option<Duration>,
    cancel: &AtomicBool,
    timed_out: &AtomicBool,
    work: impl FnOnce() -> T,
) -> T {
    let Some(limit) = limit else {
        return work();
    };
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(limit) {
                timed_out.store(true, Ordering::SeqCst);
                cancel.store(true, Ordering::SeqCst);
            }
        });
        let r = work();
        drop(done_tx);
        r
    })
}
