//! One file per subcommand. Each takes validated arguments and returns an exit code.

pub mod history;
pub mod logs;
pub mod next;
pub mod reference;
pub mod run_job;
pub mod snapshots;
pub mod status;
pub mod terminal;
pub mod validate;

use std::path::Path;

use crate::config::{self, Config};
use crate::exit;

/// Loads the config, or prints every diagnostic and returns the exit code for an invalid one.
pub fn load_valid(path: &Path, doing: &str) -> Result<Config, i32> {
    let loaded = config::load(path);
    match loaded.config {
        Some(c) => Ok(c),
        None => {
            eprintln!("{}", loaded.render());
            eprintln!(
                "{}: invalid: {} error(s); {doing}",
                path.display(),
                loaded.errors()
            );
            Err(exit::CONFIG)
        }
    }
}

/// Says that `id` is not a job of `config`, listing the ones that are. Returns the exit code.
pub fn unknown_job(path: &Path, config: &Config, id: &str) -> i32 {
    let known: Vec<&str> = config.jobs.iter().map(|j| j.id.as_str()).collect();
    eprintln!(
        "error: no job `{id}` in {} (jobs: {})",
        path.display(),
        known.join(", ")
    );
    exit::USAGE
}
