//! A job's `retry_for:` and `retry_wait:` → [`Retry`]: retrying a whole run that failed for a
//! transient reason. What counts as transient is the run's ([`crate::run::retry`]).

use std::time::Duration;

use super::decode::{Decoder, Fields};
use super::fields::{self, JOB};

/// Retry a run that failed transiently, as a whole, until `window` after the first try began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub window: Duration,
    /// Pause between the end of a failed try and the next one.
    pub wait: Duration,
}

impl Decoder {
    /// `None`: no whole-run retries (no `retry_for`, or a bad value, already reported).
    pub(super) fn retry(&mut self, f: &Fields<'_>, path: &str) -> Option<Retry> {
        let wait_node = f.get("retry_wait");
        let wait = wait_node
            .and_then(|n| self.positive_duration(n, &format!("{path}.retry_wait")))
            .unwrap_or_else(|| fields::default_duration(&JOB, "retry_wait"));
        let Some(n) = f.get("retry_for") else {
            if let Some(w) = wait_node {
                self.warn(
                    w.span.clone(),
                    &format!("{path}.retry_wait"),
                    "`retry_wait` has no effect without `retry_for`",
                )
                .help = Some("set `retry_for` (e.g. `retry_for: 2h`) to retry failed runs".into());
            }
            return None;
        };
        let window = self.positive_duration(n, &format!("{path}.retry_for"))?;
        if wait >= window {
            self.warn(
                n.span.clone(),
                &format!("{path}.retry_for"),
                format!(
                    "retry_for ({}) is not longer than retry_wait ({}): a failed run is never retried",
                    super::duration::format(window),
                    super::duration::format(wait)
                ),
            );
        }
        Some(Retry { window, wait })
    }
}
