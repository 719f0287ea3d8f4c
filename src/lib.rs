//! backupmanager: runs rsync jobs on in-process cron schedules and chains machines safely
//! through lock files. See DESIGN.md for the architecture (parse → build → run).
pub mod schedule;
