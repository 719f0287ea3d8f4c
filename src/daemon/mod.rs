//! `backupmanager daemon`: the long-running scheduler the systemd service runs.
//!
//! One thread owns all mutable state (the [`Daemon`]); everything else talks to it through one
//! channel of [`Event`]s. The main loop, each turn:
//! 1. reads the wall clock and asks [`crate::schedule::plan::due`] which jobs have a slot due;
//! 2. starts a due job in its own thread (so waiting on a blocker holds up nothing else), or, if
//!    that job is still running, logs the skip once and counts it;
//! 3. persists how far each job's slots are handled (`state_dir/state.json`), so a restart neither
//!    repeats nor forgets a slot;
//! 4. sleeps until the next slot, at most 60 s (so a clock step or a suspend is noticed), or until
//!    an event arrives: a run's outcome, or a signal.
//!
//! Signals: SIGTERM/SIGINT stop scheduling, cancel every run (rsync gets SIGTERM, then SIGKILL
//! after most of `shutdown_timeout`), wait for the runs to release their locks, and exit 0.
//! SIGHUP re-reads the config: a valid one replaces the old (running jobs finish under the old
//! one), an invalid one is logged error by error and the old one stays. `pid_file_dir` and
//! `state_dir` are the exception: they stay the running daemon's until a restart (the pid file
//! cannot move, and run locks and state must stay next to it).
//!
//! Runs never touch the scheduler: they send their events and their [`RunOutcome`] back over
//! the same channel, and this thread fans the events out to its observers (the run history's
//! recorder, which writes on a thread of its own; the log is written on each run's thread;
//! metrics and notifications attach here) and keeps what the status line needs (which run
//! waits, and on what). At start and once a day the history is swept and trimmed.

mod metrics;
pub mod notify;
mod observe;
pub mod pidfile;
mod reload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tracing::{error, info, warn};

use crate::config::{self, Config};
use crate::events::{Observer, RunEvent};
use crate::exit;
use crate::plan::{self, Plan};
use crate::run::{
    self, log::LogObserver, runlog::RunLogs, RunContext, RunOptions, RunOutcome, Trigger,
};
use crate::schedule::{format::rfc3339, plan as due_plan};
use crate::store::history::Recorder;
use crate::store::live::{self, Doing, Live, Publisher};
use crate::store::state::{self, LastRun, State};
use notify::Notifier;
use pidfile::PidFile;

/// The loop re-reads the wall clock at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How often the run history is trimmed to `history_keep` (and at start).
const HISTORY_UPKEEP: Duration = Duration::from_secs(86400);

pub enum Event {
    Run(RunEvent),
    Outcome(RunOutcome),
    Signal(i32),
}

/// Forwards a run's events to the daemon's thread. Sending on an unbounded channel never
/// blocks, and a closed channel (the daemon is exiting) is ignored: a run cannot be held up.
struct ToDaemon(Sender<Event>);

impl Observer for ToDaemon {
    fn on_event(&self, ev: &RunEvent) {
        let _ = self.0.send(Event::Run(ev.clone()));
    }
}

struct Running {
    cancel: Arc<AtomicBool>,
    handle: JoinHandle<()>,
    started: Timestamp,
    /// Slots skipped because this run was still going.
    skipped: u64,
    /// Its run id, once an event names it.
    run_id: Option<String>,
    /// What it is doing now (published in the live state; the status line shows a wait).
    doing: Doing,
}

struct Daemon {
    config_path: PathBuf,
    config: Arc<Config>,
    plan: Arc<Plan>,
    ctx: RunContext,
    /// Observers of every run's events, called on this thread.
    observers: Vec<Arc<dyn Observer>>,
    /// The run history's writer (also one of `observers`).
    history: Arc<Recorder>,
    /// The per-run log files' writer (also one of `observers`).
    run_logs: Arc<RunLogs>,
    state: State,
    running: HashMap<String, Running>,
    tx: Sender<Event>,
    notifier: Notifier,
    last_status: String,
    /// The live state's fixed part (pid, config, dirs); `runs` is filled from `running`.
    live: Live,
    publisher: Publisher,
    /// The web status page (`http:`): what it reads, and its sockets.
    web: Option<(Arc<crate::web::Feed>, crate::web::Server)>,
    /// Notifications (`notify:`): an observer of runs, and told when a job is overdue.
    alerts: Arc<crate::notify::Notifier>,
    next_overdue_check: Instant,
}

/// Runs the daemon until SIGTERM/SIGINT. Returns the process exit code.
pub fn run(config_path: &Path, notifier: Notifier) -> i32 {
    let loaded = config::load(config_path);
    let Some(config) = loaded.config else {
        for d in &loaded.diagnostics {
            log_diagnostic(d);
        }
        error!(
            "{}: invalid: {} error(s); not starting",
            config_path.display(),
            loaded.errors()
        );
        return exit::CONFIG;
    };
    for d in &loaded.diagnostics {
        log_diagnostic(d);
    }
    let plan = match plan::build(config) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            error!("{}: {e}; not starting", config_path.display());
            return exit::CONFIG;
        }
    };
    let config = Arc::clone(&plan.config);
    let pid = match PidFile::acquire(&config.pid_file_dir) {
        Ok(p) => p,
        Err(e) => {
            error!("{e}");
            return exit::FAILED;
        }
    };
    let (tx, rx) = mpsc::channel();
    let signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return exit::FAILED;
        }
    };
    let handle = signals.handle();
    {
        let tx = tx.clone();
        let mut signals = signals;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if tx.send(Event::Signal(sig)).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn signal thread");
    }
    let state = state::load(&config.state_dir);
    let ctx = RunContext {
        observers: vec![Arc::new(LogObserver), Arc::new(ToDaemon(tx.clone()))],
        ..RunContext::default()
    };
    // The history stays in the state_dir the daemon started with (like state.json).
    let history = Arc::new(Recorder::start(&config.state_dir));
    let run_logs = Arc::new(RunLogs::start(&config.state_dir));
    let alerts = Arc::new(crate::notify::Notifier::start(Arc::clone(&config)));
    let me = std::process::id();
    let live = Live {
        pid: me,
        pid_start: crate::sys::procfs::process_start(me).unwrap_or(0),
        boot_id: crate::sys::procfs::boot_id(),
        config: std::path::absolute(config_path).unwrap_or(config_path.to_path_buf()),
        config_canonical: live::canonical_config(config_path),
        pid_file_dir: config.pid_file_dir.clone(),
        state_dir: config.state_dir.clone(),
        started: rfc3339(Timestamp::now(), &config.timezone.tz),
        runs: Default::default(),
    };
    let publisher = Publisher::new(config_path, &config.pid_file_dir);
    publisher.sweep_dead();
    let web = match start_web(&config, &live) {
        Ok(w) => w,
        Err(e) => {
            error!(phase = "http", "{e}; not starting");
            return exit::CONFIG;
        }
    };
    let mut d = Daemon {
        config_path: config_path.to_path_buf(),
        config,
        plan,
        ctx,
        observers: vec![
            history.clone() as Arc<dyn Observer>,
            run_logs.clone() as Arc<dyn Observer>,
            alerts.clone(),
        ],
        history,
        run_logs,
        state,
        running: HashMap::new(),
        tx,
        notifier,
        last_status: String::new(),
        live,
        publisher,
        web,
        alerts,
        next_overdue_check: Instant::now(),
    };
    // Registered before it says it started: `status` right after that line finds it.
    d.publish();
    info!(
        phase = "start",
        "daemon started: pid {}, {} job(s) from {}, pid file {}",
        std::process::id(),
        d.config.jobs.len(),
        config_path.display(),
        pid.path().display()
    );
    d.start();
    d.refresh_metrics();
    let code = d.main_loop(&rx);
    d.alerts.close(Duration::from_secs(10));
    handle.close();
    code
}

/// Starts the web server when the config has `http:` (the listener is fixed until a restart,
/// like `pid_file_dir`). An unreadable token or a port in use stops the daemon from starting.
fn start_web(
    config: &Arc<Config>,
    live: &Live,
) -> Result<Option<(Arc<crate::web::Feed>, crate::web::Server)>, crate::web::WebError> {
    let Some(http) = &config.http else {
        return Ok(None);
    };
    let feed = Arc::new(crate::web::Feed::new(Arc::clone(config), live.clone()));
    let server = crate::web::Server::start(http, Arc::clone(&feed))?;
    let on: Vec<String> = http.listen.iter().map(|l| l.to_string()).collect();
    info!(phase = "http", "status page listening on {}", on.join(", "));
    Ok(Some((feed, server)))
}

fn log_diagnostic(d: &config::Diagnostic) {
    let help = d
        .help
        .as_deref()
        .map(|h| format!(" (help: {h})"))
        .unwrap_or_default();
    if d.is_error() {
        error!(phase = "config", "{}{help}", d.headline());
    } else {
        warn!(phase = "config", "{}{help}", d.headline());
    }
}

impl Daemon {
    fn tz(&self) -> &jiff::tz::TimeZone {
        &self.config.timezone.tz
    }

    /// First turn: establish every job's `covered_until` and start `@reboot` jobs.
    fn start(&mut self) {
        let now = Timestamp::now();
        let config = Arc::clone(&self.config);
        for job in config.jobs.iter().filter(|j| j.enabled) {
            self.state
                .jobs
                .entry(job.id.clone())
                .or_default()
                .start_scheduling(now);
            if job.schedule.is_reboot() {
                info!(phase = "schedule", job_id = %job.id, "@reboot job: starting it once now");
                self.start_job(&job.id, Trigger::Reboot, None);
            }
        }
        self.save_state();
        self.publish();
        let status = self.status_line();
        self.notifier.ready(&status);
        self.last_status = status;
    }

    fn main_loop(&mut self, rx: &Receiver<Event>) -> i32 {
        let mut stopping: Option<Instant> = None;
        let mut next_watchdog = Instant::now();
        let mut next_upkeep = Instant::now();
        loop {
            if Instant::now() >= next_upkeep {
                // Marks runs of dead processes interrupted, then trims by age (a running one
                // never). On the history's own thread: never holds up this loop.
                self.history.maintain(self.config.history_keep);
                next_upkeep = Instant::now() + HISTORY_UPKEEP;
            }
            if let Some(iv) = self.notifier.watchdog_interval() {
                if Instant::now() >= next_watchdog {
                    self.notifier.watchdog();
                    next_watchdog = Instant::now() + iv;
                }
            }
            self.check_overdue();
            let now = Timestamp::now();
            let mut sleep = MAX_SLEEP;
            if stopping.is_none() {
                self.fire_due(now);
                if let Some((next, _)) = self.next_job(now) {
                    let until = next.duration_since(Timestamp::now());
                    sleep = sleep.min(Duration::try_from(until).unwrap_or(Duration::ZERO));
                }
                self.update_status();
            } else if self.running.is_empty() {
                break;
            }
            if let Some(iv) = self.notifier.watchdog_interval() {
                sleep = sleep.min(iv);
            }
            if let Some(deadline) = stopping {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let names: Vec<&str> = self.running.keys().map(String::as_str).collect();
                    warn!(
                        phase = "stop",
                        "shutdown_timeout passed with run(s) still stopping: {}; exiting anyway",
                        names.join(", ")
                    );
                    break;
                }
                sleep = sleep.min(left);
            }
            match rx.recv_timeout(sleep) {
                Ok(Event::Run(ev)) => self.run_event(&ev),
                Ok(Event::Outcome(o)) => self.finished(o),
                Ok(Event::Signal(SIGHUP)) if stopping.is_none() => self.reload(),
                Ok(Event::Signal(SIGHUP)) => {}
                Ok(Event::Signal(sig)) => {
                    if stopping.is_none() {
                        info!(
                            phase = "stop",
                            "signal {sig}: stopping; {} run(s) to cancel",
                            self.running.len()
                        );
                        self.notifier.stopping();
                        for r in self.running.values() {
                            r.cancel.store(true, Ordering::SeqCst);
                        }
                        stopping = Some(Instant::now() + self.config.shutdown_timeout);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // Collect what finished in the meantime so the state file has it.
        while let Ok(ev) = rx.try_recv() {
            match ev {
                Event::Run(ev) => self.run_event(&ev),
                Event::Outcome(o) => self.finished(o),
                Event::Signal(_) => {}
            }
        }
        self.save_state();
        self.publisher.remove();
        if let Some((_, server)) = &self.web {
            server.stop();
        }
        // Both writers get what the last runs handed them (their final lines included).
        self.history.close(Duration::from_secs(5));
        self.run_logs.close(Duration::from_secs(5));
        info!(phase = "stop", "daemon stopped");
        exit::OK
    }

    /// A job whose persisted position lies in the future (the clock was ahead and has been
    /// stepped back) resumes from `now`, loudly ([`due_plan::resume_from_now`]). Returns
    /// whether anything changed.
    fn resume_future_positions(&mut self, now: Timestamp) -> bool {
        let mut changed = false;
        for (id, js) in self.state.jobs.iter_mut() {
            let Some(covered) = js.covered_until() else {
                continue;
            };
            if let Some(resume) = due_plan::resume_from_now(covered, now) {
                warn!(
                    phase = "schedule",
                    job_id = %id,
                    covered_until = %covered,
                    now = %now,
                    "job {id}: its schedule position {covered} is in the future (now {now}): the \
                     clock was ahead and has been stepped back; resuming from now, so slots \
                     until {covered} are no longer skipped"
                );
                js.covered_until = Some(resume.to_string());
                changed = true;
            }
        }
        changed
    }

    /// Starts every job with a slot due at `now`, or counts the skip if it is still running.
    fn fire_due(&mut self, now: Timestamp) {
        let config = Arc::clone(&self.config);
        let mut changed = self.resume_future_positions(now);
        for job in config
            .jobs
            .iter()
            .filter(|j| j.enabled && !j.schedule.is_reboot())
        {
            let covered = self.state.covered_until(&job.id, now);
            let Some(due) = due_plan::due(&job.schedule, self.tz(), covered, now, job.on_missed)
            else {
                continue;
            };
            changed = true;
            let js = self.state.jobs.entry(job.id.clone()).or_default();
            js.covered_until = Some(due.covered_until.to_string());
            js.missed += u64::from(due.missed);
            if due.missed > 0 {
                let what = if due.run.is_some() {
                    "running once now"
                } else {
                    "on_missed: skip, dropping them"
                };
                warn!(phase = "schedule", job_id = %job.id, "{} slot(s) missed while the daemon was down or the machine slept; {what}", due.missed);
            }
            let Some(slot) = due.run else { continue };
            if let Some(r) = self.running.get_mut(&job.id) {
                if r.skipped == 0 {
                    warn!(phase = "schedule", job_id = %job.id, "slot {slot} skipped: the run started at {} is still going (further skips are counted, not logged)", r.started);
                }
                r.skipped += 1;
                js.skipped_overlap += 1;
                continue;
            }
            info!(phase = "schedule", job_id = %job.id, "slot {slot} due");
            // A slot run late (missed ones before it, or the daemon was down at its time).
            let late = now.duration_since(slot) > jiff::SignedDuration::from_secs(60);
            let trigger = if due.missed > 0 || late {
                Trigger::CatchUp
            } else {
                Trigger::Schedule
            };
            self.start_job(&job.id, trigger, Some(slot));
        }
        if changed {
            self.save_state();
        }
    }

    fn start_job(&mut self, id: &str, trigger: Trigger, slot: Option<Timestamp>) {
        if self.running.contains_key(id) {
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let Some(job) = self.plan.job(id).cloned() else {
            error!(job_id = %id, "no such job in the running plan");
            return;
        };
        let ctx = self.ctx.clone();
        let tx = self.tx.clone();
        let flag = Arc::clone(&cancel);
        let spawned = std::thread::Builder::new()
            .name(format!("job {id}"))
            .spawn(move || {
                let opts = RunOptions {
                    trigger,
                    slot,
                    ..RunOptions::default()
                };
                let outcome = run::run_job(&job, &ctx, opts, &flag);
                let _ = tx.send(Event::Outcome(outcome));
            });
        match spawned {
            Ok(handle) => {
                self.running.insert(
                    id.to_string(),
                    Running {
                        cancel,
                        handle,
                        started: Timestamp::now(),
                        skipped: 0,
                        run_id: None,
                        doing: Doing::Starting {
                            since: rfc3339(Timestamp::now(), self.tz()),
                        },
                    },
                );
                self.publish();
            }
            Err(e) => error!(job_id = %id, "cannot start a thread for the run: {e}"),
        }
    }

    fn finished(&mut self, o: RunOutcome) {
        if let Some(r) = self.running.remove(&o.job) {
            let _ = r.handle.join();
            if r.skipped > 1 {
                warn!(job_id = %o.job, "{} slot(s) were skipped while this run was going", r.skipped);
            }
        }
        let status = o.status();
        let message = match status {
            run::RunStatus::Cancelled => String::new(),
            _ => o.message(),
        };
        let js = self.state.jobs.entry(o.job.clone()).or_default();
        js.runs += 1;
        js.last_run = Some(LastRun {
            run_id: o.run_id.clone(),
            result: status.as_str().into(),
            message,
            finished: Timestamp::now().to_string(),
            duration_ms: o.duration.as_millis() as u64,
        });
        self.save_state();
        self.publish();
        self.refresh_metrics();
    }

    /// The next slot of any enabled job, and whose it is.
    fn next_job(&self, now: Timestamp) -> Option<(Timestamp, &str)> {
        self.config
            .jobs
            .iter()
            .filter(|j| j.enabled)
            .filter_map(|j| {
                let covered = self.state.covered_until(&j.id, now);
                due_plan::next_wake(&j.schedule, self.tz(), covered, now)
                    .map(|t| (t, j.id.as_str()))
            })
            .min()
    }

    fn save_state(&self) {
        if let Err(e) = state::save(&self.config.state_dir, &self.state) {
            error!(
                "cannot write state file {}: {e}",
                state::path(&self.config.state_dir).display()
            );
        }
    }
}
