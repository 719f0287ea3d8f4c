//! Exit codes, decided in one place (sysexits.h where one fits).

/// Success.
pub const OK: i32 = 0;
/// A job ran and failed (rsync error, refused to sync, lock trouble).
pub const FAILED: i32 = 1;
/// Wrong command-line usage (clap uses this too).
pub const USAGE: i32 = 2;
/// EX_TEMPFAIL: a job was blocked (max_wait passed, or --no-wait) and did not run.
pub const BLOCKED: i32 = 75;
/// EX_CONFIG: the configuration is invalid.
pub const CONFIG: i32 = 78;
/// 128 + SIGINT: `run-job` was stopped with Ctrl-C (its locks released), as a shell reports it.
pub const INTERRUPTED: i32 = 130;

/// The exit code of a command that ran one job: decided here, from how the run ended.
pub fn of_run(status: crate::run::RunStatus) -> i32 {
    use crate::run::RunStatus;
    match status {
        RunStatus::Success | RunStatus::Skipped => OK,
        RunStatus::Blocked => BLOCKED,
        RunStatus::Failed | RunStatus::Cancelled => FAILED,
    }
}
