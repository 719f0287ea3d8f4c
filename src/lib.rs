//! backupmanager: runs rsync jobs on in-process cron schedules and chains machines safely
//! through lock files. See DESIGN.md for the architecture (parse → build → run).

pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod exit;
pub mod lock;
pub mod logging;
pub mod rsync;
pub mod runner;
pub mod schedule;
pub mod snapshot;
pub mod ssh;
