//! Whole-run retries (`retry_for`, `retry_wait`): a run that failed for a transient reason
//! (the other host unreachable or refusing ssh, a lock host down, a transient rsync exit) is
//! run again, as a new run with its own id and history row, until the window that began with
//! the first try ends. Between tries nothing is held: every try takes its run lock and locks
//! afresh, so a chained machine is never kept waiting by our pause.
//!
//! Must not: retry anything else (blocked, cancelled, timed out, refused by a guard, a failed
//! hook): those need a person or the next slot, not a loop.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{ErrorKind, RunOutcome};
use crate::config::retry::Retry;
use crate::rsync::{classify, ExitClass};

/// Whether a failure of this kind may pass by itself.
pub fn is_transient(kind: ErrorKind) -> bool {
    match kind {
        ErrorKind::Transport => true,
        ErrorKind::RsyncExit(code) => matches!(classify(code), ExitClass::Transient(_)),
        _ => false,
    }
}

/// The tries of one run request.
pub(super) struct Tries {
    policy: Option<Retry>,
    /// When the window ends (from the first try's start).
    until: Option<(Instant, jiff::Timestamp)>,
    /// 1 for the first try.
    pub(super) attempt: u32,
    /// Set by [`Tries::decide`] when the try that just ended is to be followed by another.
    next: Cell<Option<Duration>>,
}

impl Tries {
    pub(super) fn new(policy: Option<Retry>, dry_run: bool) -> Tries {
        let policy = policy.filter(|_| !dry_run);
        Tries {
            policy,
            until: policy.map(|p| {
                (
                    Instant::now() + p.window,
                    jiff::Timestamp::now()
                        + jiff::SignedDuration::try_from(p.window)
                            .unwrap_or(jiff::SignedDuration::MAX),
                )
            }),
            attempt: 1,
            next: Cell::new(None),
        }
    }

    /// Called once per try as it ends: `Some((wait, window end))` when another try follows.
    pub(super) fn decide(
        &self,
        outcome: &RunOutcome,
        cancel: &AtomicBool,
    ) -> Option<(Duration, jiff::Timestamp)> {
        let (policy, (until, until_ts)) = (self.policy?, self.until?);
        let kind = outcome.result.as_ref().err()?.kind();
        if !is_transient(kind) || cancel.load(Ordering::SeqCst) {
            return None;
        }
        if Instant::now() + policy.wait >= until {
            return None;
        }
        self.next.set(Some(policy.wait));
        Some((policy.wait, until_ts))
    }

    /// The pause before the next try, if one was decided (taken: asked once per try).
    pub(super) fn take_next(&self) -> Option<Duration> {
        self.next.take()
    }
}

/// Sleeps `d` unless `cancel` is set first; true when the whole pause passed.
pub(super) fn pause(d: Duration, cancel: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if cancel.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
    }
    !cancel.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transport_and_transient_rsync_exits_are_retried() {
        assert!(is_transient(ErrorKind::Transport));
        assert!(is_transient(ErrorKind::RsyncExit(255)));
        assert!(is_transient(ErrorKind::RsyncExit(12)));
        for k in [
            ErrorKind::RsyncExit(23),
            ErrorKind::Blocked,
            ErrorKind::Cancelled,
            ErrorKind::Timeout,
            ErrorKind::GuardRefused,
            ErrorKind::LockLost,
            ErrorKind::Hook,
            ErrorKind::Skipped,
            ErrorKind::Io,
        ] {
            assert!(!is_transient(k), "{k:?}");
        }
    }

    #[test]
    fn a_cancelled_pause_ends_early() {
        let c = AtomicBool::new(true);
        assert!(!pause(Duration::from_secs(600), &c));
        assert!(pause(Duration::from_millis(1), &AtomicBool::new(false)));
    }
}
