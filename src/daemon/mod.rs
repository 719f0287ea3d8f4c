//! `backupmanager daemon`: the long-running scheduler the systemd service runs.
//!
//! One thread owns all mutable state (the [`Daemon`]); everything else talks to it through one
//! channel of [`Event`]s. The main loop, each turn:
//! 1. reads the wall clock and asks [`plan::due`] which jobs have a slot due;
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
//! one), an invalid one is logged error by error and the old one stays.
//!
//! Runs never touch the scheduler: they send their [`RunOutcome`] back.

pub mod notify;
pub mod pidfile;
pub mod plan;
pub mod state;

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
use crate::exit;
use crate::runner::{self, RunOptions, RunOutcome, RunResult};
use notify::Notifier;
use pidfile::PidFile;
use state::{JobState, LastRun, State};

/// The loop re-reads the wall clock at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(60);

pub enum Event {
    Outcome(RunOutcome),
    Signal(i32),
}

struct Running {
    cancel: Arc<AtomicBool>,
    handle: JoinHandle<()>,
    started: Timestamp,
    /// Slots skipped because this run was still going.
    skipped: u64,
}

struct Daemon {
    config_path: PathBuf,
    config: Arc<Config>,
    state: State,
    running: HashMap<String, Running>,
    tx: Sender<Event>,
    notifier: Notifier,
    last_status: String,
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
    let mut d = Daemon {
        config_path: config_path.to_path_buf(),
        config: Arc::new(config),
        state,
        running: HashMap::new(),
        tx,
        notifier,
        last_status: String::new(),
    };
    info!(
        phase = "start",
        "daemon started: pid {}, {} job(s) from {}, pid file {}",
        std::process::id(),
        d.config.jobs.len(),
        config_path.display(),
        pid.path().display()
    );
    d.start();
    let code = d.main_loop(&rx);
    handle.close();
    code
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
            let js = self.state.jobs.entry(job.id.clone()).or_default();
            if js.covered_until().is_none() {
                // Never seen: start counting from now (no catch-up for a brand-new job).
                js.covered_until = Some(now.to_string());
            }
            if job.schedule.is_reboot() {
                info!(phase = "schedule", job_id = %job.id, "@reboot job: starting it once now");
                self.start_job(&job.id);
            }
        }
        self.save_state();
        let status = self.status_line();
        self.notifier.ready(&status);
        self.last_status = status;
    }

    fn main_loop(&mut self, rx: &Receiver<Event>) -> i32 {
        let mut stopping: Option<Instant> = None;
        let mut next_watchdog = Instant::now();
        loop {
            if let Some(iv) = self.notifier.watchdog_interval() {
                if Instant::now() >= next_watchdog {
                    self.notifier.watchdog();
                    next_watchdog = Instant::now() + iv;
                }
            }
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
        while let Ok(Event::Outcome(o)) = rx.try_recv() {
            self.finished(o);
        }
        self.save_state();
        info!(phase = "stop", "daemon stopped");
        exit::OK
    }

    /// Starts every job with a slot due at `now`, or counts the skip if it is still running.
    fn fire_due(&mut self, now: Timestamp) {
        let config = Arc::clone(&self.config);
        let mut changed = false;
        for job in config
            .jobs
            .iter()
            .filter(|j| j.enabled && !j.schedule.is_reboot())
        {
            let covered = self
                .state
                .jobs
                .get(&job.id)
                .and_then(JobState::covered_until)
                .unwrap_or(now);
            let Some(due) = plan::due(&job.schedule, self.tz(), covered, now, job.on_missed) else {
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
            self.start_job(&job.id);
        }
        if changed {
            self.save_state();
        }
    }

    fn start_job(&mut self, id: &str) {
        if self.running.contains_key(id) {
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let config = Arc::clone(&self.config);
        let tx = self.tx.clone();
        let job_id = id.to_string();
        let flag = Arc::clone(&cancel);
        let spawned = std::thread::Builder::new()
            .name(format!("job {id}"))
            .spawn(move || {
                let job = config
                    .job(&job_id)
                    .expect("job exists in the config it was started from");
                let outcome = runner::run_job(&config, job, RunOptions::default(), &flag);
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
                    },
                );
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
        let (result, message) = match &o.result {
            RunResult::Success => ("success", String::new()),
            RunResult::Failed(m) => ("failed", m.clone()),
            RunResult::Blocked(m) => ("blocked", m.clone()),
            RunResult::Cancelled => ("cancelled", String::new()),
        };
        let js = self.state.jobs.entry(o.job.clone()).or_default();
        js.runs += 1;
        js.last_run = Some(LastRun {
            run_id: o.run_id.clone(),
            result: result.into(),
            message,
            finished: Timestamp::now().to_string(),
            duration_ms: o.duration.as_millis() as u64,
        });
        self.save_state();
    }

    fn reload(&mut self) {
        self.notifier.reloading();
        info!(
            phase = "reload",
            "SIGHUP: re-reading {}",
            self.config_path.display()
        );
        let loaded = config::load(&self.config_path);
        for d in &loaded.diagnostics {
            log_diagnostic(d);
        }
        match loaded.config {
            None => error!(
                phase = "reload",
                "{}: invalid: {} error(s); keeping the running configuration",
                self.config_path.display(),
                loaded.errors()
            ),
            Some(new) => {
                if new.pid_file_dir != self.config.pid_file_dir
                    || new.state_dir != self.config.state_dir
                {
                    warn!(
                        phase = "reload",
                        "pid_file_dir and state_dir changes take effect at the next restart"
                    );
                }
                let old: Vec<&str> = self.config.jobs.iter().map(|j| j.id.as_str()).collect();
                let added: Vec<String> = new
                    .jobs
                    .iter()
                    .filter(|j| !old.contains(&j.id.as_str()))
                    .map(|j| j.id.clone())
                    .collect();
                let removed: Vec<String> = old
                    .iter()
                    .filter(|id| new.job(id).is_none())
                    .map(|s| s.to_string())
                    .collect();
                let now = Timestamp::now();
                for job in new.jobs.iter().filter(|j| j.enabled) {
                    let js = self.state.jobs.entry(job.id.clone()).or_default();
                    if js.covered_until().is_none() {
                        js.covered_until = Some(now.to_string());
                    }
                }
                self.config = Arc::new(new);
                info!(
                    phase = "reload",
                    "configuration reloaded: {} job(s); added: [{}]; removed: [{}]",
                    self.config.jobs.len(),
                    added.join(", "),
                    removed.join(", ")
                );
                self.save_state();
            }
        }
        let status = self.status_line();
        self.notifier.ready(&status);
        self.last_status = status;
    }

    /// The next slot of any enabled job, and whose it is.
    fn next_job(&self, now: Timestamp) -> Option<(Timestamp, &str)> {
        self.config
            .jobs
            .iter()
            .filter(|j| j.enabled)
            .filter_map(|j| {
                let covered = self
                    .state
                    .jobs
                    .get(&j.id)
                    .and_then(JobState::covered_until)
                    .unwrap_or(now);
                plan::next_wake(&j.schedule, self.tz(), covered, now).map(|t| (t, j.id.as_str()))
            })
            .min()
    }

    fn status_line(&self) -> String {
        let next = self.next_job(Timestamp::now());
        let mut s = match next {
            Some((t, id)) => format!(
                "next: {id} at {}",
                crate::commands::next::rfc3339(t, self.tz())
            ),
            None => "no scheduled jobs".into(),
        };
        if !self.running.is_empty() {
            let mut names: Vec<&str> = self.running.keys().map(String::as_str).collect();
            names.sort();
            s.push_str(&format!("; running: {}", names.join(", ")));
        }
        s
    }

    fn update_status(&mut self) {
        let s = self.status_line();
        if s != self.last_status {
            self.notifier.status(&s);
            self.last_status = s;
        }
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
