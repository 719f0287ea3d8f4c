//! `backupmanager run-job <id>`: one run of one job, now, with the daemon's runner.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::exit;
use crate::plan;
use crate::run::{self, RunContext, RunOptions};
use crate::store::history::Recorder;

/// How long `run-job` waits, after its run, for the run history to be written.
const HISTORY_CLOSE: Duration = Duration::from_secs(15);

pub fn run(path: &Path, id: &str, opts: RunOptions) -> i32 {
    let mut config = match super::load_valid(path, "nothing was run") {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.job(id).is_none() {
        return super::unknown_job(path, &config, id);
    }
    // A daemon still running on an older pid_file_dir: take the run lock its runs take.
    super::adopt_daemon_dirs(path, &mut config);
    let plan = match plan::build(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}; nothing was run");
            return exit::CONFIG;
        }
    };
    let state_dir = plan.config.state_dir.clone();
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
    let mut ctx = RunContext::logging();
    let history = Arc::new(Recorder::start(&state_dir));
    ctx.observers.push(history.clone());
    let outcome = run::run_job(job, &ctx, opts, &cancel);
    // The run is over; give its last history write a moment (another writer may hold the db).
    history.close(HISTORY_CLOSE);
    exit::of_run(outcome.status())
}
