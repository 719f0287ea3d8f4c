//! `backupmanager run-job <id>`: one run of one job, now, with the daemon's runner.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::LogFormat;
use crate::exit;
use crate::plan;
use crate::run::runlog::RunLogs;
use crate::run::{self, RunContext, RunOptions, RunStatus};
use crate::store::history::Recorder;

/// How long `run-job` waits, after its run, for the run history to be written.
const HISTORY_CLOSE: Duration = Duration::from_secs(15);

pub fn run(path: &Path, id: &str, mut opts: RunOptions, format: LogFormat) -> i32 {
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
    // Ctrl-C also sets this: such a run ends with 130, as a shell reports an interrupted command.
    let interrupted = Arc::new(AtomicBool::new(false));
    if let Err(e) =
        signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))
    {
        eprintln!("error: cannot install signal handler: {e}");
        return exit::FAILED;
    }
    let mut ctx = RunContext::logging();
    // On a terminal: a live progress line, and a summary at the end.
    let terminal = format == LogFormat::Text && crate::logging::stderr_is_terminal();
    if terminal {
        opts.progress = true;
        ctx.observers
            .insert(0, Arc::new(super::terminal::Progress::default()));
    }
    let history = Arc::new(Recorder::start(&state_dir));
    ctx.observers.push(history.clone());
    let logs = Arc::new(RunLogs::start(&state_dir));
    ctx.observers.push(logs.clone());
    // Notifications: a worker thread only when this job has somewhere to send them.
    let alerts = (!plan.config.notify_for(&job.job).destinations.is_empty())
        .then(|| Arc::new(crate::notify::Notifier::start(Arc::clone(&plan.config))));
    if let Some(a) = &alerts {
        ctx.observers.push(a.clone());
    }
    let outcome = run::run_job(job, &ctx, opts, &cancel);
    // The run is over; give its last history write a moment (another writer may hold the db).
    history.close(HISTORY_CLOSE);
    logs.close(HISTORY_CLOSE);
    // Pending notifications: each request gives up after 10 s.
    if let Some(a) = &alerts {
        a.close(HISTORY_CLOSE);
    }
    if let Some(p) = &plan.config.metrics_textfile {
        crate::metrics::textfile::refresh(path, &plan, p);
    }
    if terminal {
        let syncs: Vec<(String, String)> = job
            .job
            .syncs
            .iter()
            .map(|s| (s.source.clone(), s.dest.clone()))
            .collect();
        // A terminal that is gone costs the summary, nothing else.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            super::terminal::summary(&outcome, &syncs).as_bytes(),
        );
    }
    match outcome.status() {
        RunStatus::Cancelled if interrupted.load(Ordering::SeqCst) => exit::INTERRUPTED,
        status => exit::of_run(status),
    }
}
