//! What persists between runs and what is read back about them: the scheduler's state file
//! ([`state`]), the run history in SQLite ([`history`]) and the typed status snapshot
//! ([`status`]) that `status --format json`, its text output and later the web API share; and the
//! running daemon's live state and registration ([`live`]), how the others find it.
//!
//! Must not: run jobs or schedule them.

pub mod history;
pub mod live;
pub mod runlog;
pub mod state;
pub mod status;
