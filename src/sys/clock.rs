//! The clock that leases are measured with: `CLOCK_BOOTTIME`, which (unlike `Instant`'s
//! `CLOCK_MONOTONIC`) keeps counting while the machine is suspended, as the clocks of the
//! other hosts that judge our locks do.
//!
//! Must not: be used for schedules (those follow the wall clock, in `schedule/`).

use std::time::Duration;

/// Time since boot, suspend included.
pub fn boottime() -> Duration {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_else(|_| {
            // Linux has had CLOCK_BOOTTIME since 2.6.39; fall back to a monotonic reading.
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            START.get_or_init(std::time::Instant::now).elapsed()
        })
}
