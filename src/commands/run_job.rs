//! `backupmanager run-job <id>`: one run of one job, now, with the daemon's runner.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::exit;
use crate::plan;
use crate::run::{self, RunContext, RunOptions};

pub fn run(path: &Path, id: &str, opts: RunOptions) -> i32 {
    let config = match super::load_valid(path, "nothing was run") {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.job(id).is_none() {
        return super::unknown_job(path, &config, id);
    }
    let plan = match plan::build(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}; nothing was run");
            return exit::CONFIG;
        }
    };
    let job = plan.job(id).expect("checked above");
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
    let outcome = run::run_job(job, &RunContext::logging(), opts, &cancel);
    exit::of_run(outcome.status())
}
