//! What persists between runs and what is read back about them: the scheduler's state file
//! ([`state`]) and the typed status snapshot ([`status`]) that `status --format json`, its
//! text output and later the web API share.
//!
//! Must not: run jobs or schedule them.

pub mod state;
pub mod status;
