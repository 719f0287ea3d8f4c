//! Cancellation by flag: each run has an `AtomicBool` that a signal handler or the daemon sets.
//!
//! Must not: sleep in one piece longer than a tenth of a second while a flag is watched.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Sleeps up to `d`; returns true early if `cancel` is set.
pub fn sleep_cancellable(d: Duration, cancel: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    loop {
        if cancel.load(Ordering::SeqCst) {
            return true;
        }
        let now = Instant::now();
        if now >= end {
            return false;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}
