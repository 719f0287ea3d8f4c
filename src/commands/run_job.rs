//! `backupmanager run-job <id>`: one run of one job, now, with the daemon's runner.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::exit;
use crate::runner::{self, RunOptions, RunResult};

pub fn run(path: &Path, id: &str, opts: RunOptions) -> i32 {
    let config = match super::load_valid(path, "nothing was run") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(job) = config.job(id) else {
        return super::unknown_job(path, &config, id);
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
