//! `backupmanager run-job <id>`: one run of one job, now, with the daemon's runner.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config;
use crate::exit;
use crate::runner::{self, RunOptions, RunResult};

pub fn run(path: &Path, id: &str, opts: RunOptions) -> i32 {
    let loaded = config::load(path);
    let Some(config) = loaded.config else {
        eprintln!("{}", loaded.render());
        eprintln!(
            "{}: invalid: {} error(s); nothing was run",
            path.display(),
            loaded.errors()
        );
        return exit::CONFIG;
    };
    let Some(job) = config.job(id) else {
        let known: Vec<&str> = config.jobs.iter().map(|j| j.id.as_str()).collect();
        eprintln!(
            "error: no job `{id}` in {} (jobs: {})",
            path.display(),
            known.join(", ")
        );
        return exit::USAGE;
    };
    // SIGTERM, SIGINT and SIGHUP stop the run cleanly: rsync is terminated, locks released.
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&cancel)) {
            eprintln!("error: cannot install signal handler: {e}");
            return exit::FAILED;
        }
    }
    let outcome = runner::run_job(&config, job, opts, &cancel);
    match outcome.result {
        RunResult::Success => exit::OK,
        RunResult::Blocked(_) => exit::BLOCKED,
        RunResult::Failed(_) | RunResult::Cancelled => exit::FAILED,
    }
}
