//! One file per subcommand. Each takes validated arguments and returns an exit code.

pub mod next;
pub mod reference;
pub mod run_job;
pub mod validate;
