//! One file per subcommand. Each takes validated arguments and returns an exit code.

pub mod archives;
pub mod examples;
pub mod gate;
pub mod history;
pub mod locks;
pub mod logs;
pub mod next;
pub mod pruned;
pub mod reference;
pub mod run_job;
pub mod snapshots;
pub mod status;
pub mod terminal;
pub mod validate;
pub mod watch_lock;

use std::path::Path;

use crate::config::{self, Config};
use crate::exit;
use crate::store::live::{self, Live};

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

/// The live daemon registered for `path` (see [`crate::store::live`]). When it uses other
/// `pid_file_dir`/`state_dir` than `config` now says (the file was edited, the daemon not yet
/// restarted), `config` takes the daemon's, so run locks and state are the ones it uses.
pub fn adopt_daemon_dirs(path: &Path, config: &mut Config) -> Option<Live> {
    let live = live::find(path)?;
    if note_daemon_dirs(&live, config) {
        config.pid_file_dir = live.pid_file_dir.clone();
        config.state_dir = live.state_dir.clone();
    }
    Some(live)
}

/// Says on stderr when the live daemon uses other directories than `config` says; returns
/// whether it does.
pub fn note_daemon_dirs(live: &Live, config: &Config) -> bool {
    let differ = live.pid_file_dir != config.pid_file_dir || live.state_dir != config.state_dir;
    if differ {
        eprintln!(
            "note: the running daemon (pid {}) uses pid_file_dir {} and state_dir {} until it \
             restarts (the configuration now says {} and {}); using the daemon's",
            live.pid,
            live.pid_file_dir.display(),
            live.state_dir.display(),
            config.pid_file_dir.display(),
            config.state_dir.display()
        );
    }
    differ
}
