//! Notifications: an [`Observer`] of runs that tells each job's `notify` destinations what
//! happened: heartbeat monitors (Healthchecks, Uptime Kuma) every start, success and failure;
//! message services (ntfy, webhook) the events in `notify_on` (start, success, warning,
//! failure, recovered = first success after a failure, overdue).
//!
//! The observer only hands events to a worker thread, which keeps what it needs per run (did
//! it warn, was the run before it a failure: read from the history when the run starts) and
//! sends with a 10 s timeout. `Finished` is emitted after the locks are released, so
//! notifications come last, and a slow or failing service never delays or fails a run: a
//! failure is one warning naming the service and host, never the URL or token.
//!
//! Must not: block in `on_event`, print a secret, or read anything but the history and token
//! files.

pub mod send;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::notify::{Destination, Notify, NotifyOn};
use crate::config::Config;
use crate::events::{EventKind, Observer, RunEvent};
use crate::store::history::History;
use send::{Beat, Message};

enum Msg {
    Event(Box<RunEvent>),
    Overdue { job: String, reason: String },
    Config(Arc<Config>),
}

/// What the worker keeps about one run in progress.
#[derive(Default)]
struct RunNote {
    previous_failed: bool,
    warned: bool,
    dry: bool,
}

/// Sends the notifications of the runs it observes.
pub struct Notifier {
    tx: Mutex<Option<Sender<Msg>>>,
    done: Mutex<Option<Receiver<()>>>,
}

impl Notifier {
    /// Starts the worker for `config`'s jobs (no thread when no job notifies anything).
    pub fn start(config: Arc<Config>) -> Notifier {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                Worker {
                    config,
                    agent: send::agent(),
                    runs: HashMap::new(),
                    overdue: HashSet::new(),
                    host: crate::lock::Identity::current().host.clone(),
                }
                .serve(rx);
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            tracing::warn!("notifications: cannot start their thread ({e}); none are sent");
        }
        Notifier {
            tx: Mutex::new(Some(tx)),
            done: Mutex::new(Some(done_rx)),
        }
    }

    /// A reloaded config: later events use its destinations.
    pub fn set_config(&self, config: Arc<Config>) {
        self.send(Msg::Config(config));
    }

    /// The daemon found `job` overdue (no success for its allowance). Sent once until the job
    /// succeeds again.
    pub fn overdue(&self, job: &str, reason: String) {
        self.send(Msg::Overdue {
            job: job.to_string(),
            reason,
        });
    }

    /// Lets the worker finish what it was handed, waiting at most `timeout`.
    pub fn close(&self, timeout: Duration) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(done) = self.done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = done.recv_timeout(timeout);
        }
    }

    fn send(&self, m: Msg) {
        if let Some(tx) = &*self.tx.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = tx.send(m);
        }
    }
}

impl Observer for Notifier {
    fn on_event(&self, ev: &RunEvent) {
        let wanted = match &ev.kind {
            EventKind::Started { .. } | EventKind::Finished { .. } => true,
            EventKind::SyncVanished { .. }
            | EventKind::PruneFailed { .. }
            | EventKind::LockRefreshFailed { .. } => true,
            EventKind::HookDone { error, fatal, .. } => error.is_some() && !fatal,
            _ => false,
        };
        if wanted {
            self.send(Msg::Event(Box::new(ev.clone())));
        }
    }
}

struct Worker {
    config: Arc<Config>,
    agent: ureq::Agent,
    runs: HashMap<String, RunNote>,
    /// Jobs told about being overdue, until their next success.
    overdue: HashSet<String>,
    host: String,
}

impl Worker {
    fn serve(&mut self, rx: Receiver<Msg>) {
        for m in rx {
            match m {
                Msg::Config(c) => self.config = c,
                Msg::Overdue { job, reason } => self.on_overdue(&job, reason),
                Msg::Event(ev) => self.on_event(&ev),
            }
        }
    }

    fn notify_of(&self, job: &str) -> Option<Notify> {
        let j = self.config.job(job)?;
        let n = self.config.notify_for(j);
        (!n.destinations.is_empty()).then_some(n)
    }

    fn message(&self, ev: &RunEvent, event: &'static str) -> Message {
        Message {
            job: ev.job.clone(),
            run_id: ev.run_id.clone(),
            event,
            outcome: String::new(),
            message: String::new(),
            error_kind: None,
            duration_seconds: None,
            host: self.host.clone(),
        }
    }

    fn on_event(&mut self, ev: &RunEvent) {
        let Some(n) = self.notify_of(&ev.job) else {
            return;
        };
        match &ev.kind {
            EventKind::Started { dry_run, .. } => {
                let note = RunNote {
                    previous_failed: !dry_run && self.previous_failed(&ev.job, &ev.run_id),
                    warned: false,
                    dry: *dry_run,
                };
                self.runs.insert(ev.run_id.clone(), note);
                if *dry_run {
                    return;
                }
                let m = self.message(ev, "start");
                self.beats(&n, Beat::Start, &m);
                if n.on.contains(&NotifyOn::Start) {
                    self.messages(&n, &m);
                }
            }
            EventKind::Finished {
                outcome,
                message,
                error_kind,
                duration,
                ..
            } => {
                let note = self.runs.remove(&ev.run_id).unwrap_or_default();
                if note.dry {
                    return;
                }
                let mut m = self.message(ev, "success");
                m.outcome = outcome.to_string();
                m.message = message.clone();
                m.error_kind = error_kind.clone();
                m.duration_seconds = Some(duration.as_secs_f64());
                let (beat, event) = match *outcome {
                    "success" => {
                        self.overdue.remove(&ev.job);
                        let on = |e| n.on.contains(&e);
                        let event = if note.previous_failed && on(NotifyOn::Recovered) {
                            Some("recovered")
                        } else if note.warned && on(NotifyOn::Warning) {
                            Some("warning")
                        } else if on(NotifyOn::Success) {
                            Some("success")
                        } else {
                            None
                        };
                        (Some(Beat::Up), event)
                    }
                    "failed" | "blocked" => (
                        Some(Beat::Down),
                        n.on.contains(&NotifyOn::Failure).then_some("failure"),
                    ),
                    "skipped" => (Some(Beat::Up), None),
                    "cancelled" => (Some(Beat::Down), None),
                    _ => (None, None),
                };
                if let Some(b) = beat {
                    self.beats(&n, b, &m);
                }
                if let Some(e) = event {
                    m.event = e;
                    self.messages(&n, &m);
                }
            }
            _ => {
                if let Some(note) = self.runs.get_mut(&ev.run_id) {
                    note.warned = true;
                }
            }
        }
    }

    fn on_overdue(&mut self, job: &str, reason: String) {
        let Some(n) = self.notify_of(job) else {
            return;
        };
        if !n.on.contains(&NotifyOn::Overdue) || !self.overdue.insert(job.to_string()) {
            return;
        }
        let m = Message {
            job: job.to_string(),
            run_id: String::new(),
            event: "overdue",
            outcome: String::new(),
            message: reason,
            error_kind: None,
            duration_seconds: None,
            host: self.host.clone(),
        };
        self.messages(&n, &m);
    }

    /// Was the newest finished run of `job` before `run_id` a failure?
    fn previous_failed(&self, job: &str, run_id: &str) -> bool {
        let Ok(h) = History::open_existing(&self.config.state_dir) else {
            return false;
        };
        let outcomes = ["success", "failed", "blocked", "interrupted"];
        let Ok(rows) = h.list(&crate::store::history::Filter {
            job: Some(job.to_string()),
            since: None,
            limit: Some(4),
        }) else {
            return false;
        };
        rows.iter()
            .filter(|r| r.run_id != run_id && outcomes.contains(&r.outcome.as_str()))
            .map(|r| r.outcome != "success")
            .next()
            .unwrap_or(false)
    }

    fn beats(&self, n: &Notify, b: Beat, m: &Message) {
        for d in &n.destinations {
            let r = send::agent_for(&self.agent, d).and_then(|a| send::beat(&a, d, b, m));
            self.report(d, r, None);
        }
    }

    fn messages(&self, n: &Notify, m: &Message) {
        for d in &n.destinations {
            let token = match token(d) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(
                        job_id = %m.job,
                        phase = "notify",
                        event = "notify_failed",
                        "notification to {} not sent: {e}",
                        send::public_name(d)
                    );
                    continue;
                }
            };
            let r = send::agent_for(&self.agent, d)
                .and_then(|a| send::message(&a, d, m, token.as_deref()));
            self.report(d, r, token.as_deref());
        }
    }

    fn report(&self, d: &Destination, r: Result<bool, String>, token: Option<&str>) {
        match r {
            Ok(_) => {}
            Err(e) => tracing::warn!(
                phase = "notify",
                event = "notify_failed",
                "notification to {} failed: {}",
                send::public_name(d),
                send::redact(&e, &send::secrets(d, token))
            ),
        }
    }
}

/// An ntfy destination's token, read from its file now (so a rotated token is used at once).
fn token(d: &Destination) -> Result<Option<String>, String> {
    let Destination::Ntfy {
        token_file: Some(p),
        ..
    } = d
    else {
        return Ok(None);
    };
    read_token(p)
}

fn read_token(p: &PathBuf) -> Result<Option<String>, String> {
    match std::fs::read_to_string(p) {
        Ok(t) if t.trim().is_empty() => Err(format!("token file {} is empty", p.display())),
        Ok(t) => Ok(Some(t.trim().to_string())),
        Err(e) => Err(format!("cannot read token file {}: {e}", p.display())),
    }
}
