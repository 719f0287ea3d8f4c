//! Recording runs: [`Recorder`] is an [`Observer`] that hands every event to a writer thread,
//! which owns the database connection. `Started` inserts the run as `running`, `SyncDone`,
//! `SnapshotCommitted` and the hook events fill it in as it goes, `Finished` closes it (and
//! counts it in the job's totals, in the same transaction). Dry runs are not recorded.
//!
//! A failing database is logged once (a warning) and otherwise ignored: the run goes on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{params, OptionalExtension};

use super::{ms, History, HistoryError};
use crate::events::{EventKind, Observer, RunEvent, SyncReport};
use crate::store::runlog;
use crate::sys::procfs;

/// How long a message is tried again while SQLite says the database is busy.
const BUSY_RETRY: Duration = Duration::from_secs(10);

enum Msg {
    Event(Box<RunEvent>),
    /// Mark dead runs interrupted and remove finished runs older than `keep`.
    Maintain {
        keep: Duration,
    },
    /// Run this once everything handed in before is written (metrics after a run).
    Then(Box<dyn FnOnce() + Send>),
}

/// Records the events of the runs it observes into `<state_dir>/history.sqlite`.
pub struct Recorder {
    tx: Mutex<Option<Sender<Msg>>>,
    done: Mutex<Option<Receiver<()>>>,
}

impl Recorder {
    /// Starts the writer thread. The database is opened there, on the first message, so this
    /// never waits on it.
    pub fn start(state_dir: &Path) -> Recorder {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let dir = state_dir.to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("history".into())
            .spawn(move || {
                Writer::new(dir).serve(rx);
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            tracing::warn!("run history: cannot start its thread ({e}); runs are not recorded");
        }
        Recorder {
            tx: Mutex::new(Some(tx)),
            done: Mutex::new(Some(done_rx)),
        }
    }

    /// Asks the writer to mark dead runs interrupted and trim runs older than `keep`.
    pub fn maintain(&self, keep: Duration) {
        self.send(Msg::Maintain { keep });
    }

    /// Runs `f` on the writer thread once everything handed in before it is written (so a
    /// reader `f` starts sees the run that just ended).
    pub fn then(&self, f: impl FnOnce() + Send + 'static) {
        self.send(Msg::Then(Box::new(f)));
    }

    /// Lets the writer finish what it was handed, waiting at most `timeout`.
    pub fn close(&self, timeout: Duration) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(done) = self.done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            if done.recv_timeout(timeout).is_err() {
                tracing::warn!("run history: still busy after {timeout:?}; not waiting longer");
            }
        }
    }

    fn send(&self, msg: Msg) {
        if let Some(tx) = &*self.tx.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = tx.send(msg);
        }
    }
}

impl Observer for Recorder {
    fn on_event(&self, ev: &RunEvent) {
        if matches!(
            ev.kind,
            EventKind::Started { .. }
                | EventKind::SyncDone { .. }
                | EventKind::SnapshotCommitted { .. }
                | EventKind::HookStarted { .. }
                | EventKind::HookDone { .. }
                | EventKind::Finished { .. }
        ) {
            self.send(Msg::Event(Box::new(ev.clone())));
        }
    }
}

/// The writer thread's side: the connection (opened lazily) and what it must remember.
struct Writer {
    dir: PathBuf,
    db: Option<History>,
    warned: bool,
    /// Dry runs, whose later events are ignored.
    dry: HashSet<String>,
    me: Me,
}

/// This process, as recorded in every row it writes.
struct Me {
    pid: u32,
    start: u64,
    boot_id: String,
}

impl Writer {
    fn new(dir: PathBuf) -> Writer {
        let pid = std::process::id();
        Writer {
            dir,
            db: None,
            warned: false,
            dry: HashSet::new(),
            me: Me {
                pid,
                start: procfs::process_start(pid).unwrap_or(0),
                boot_id: procfs::boot_id(),
            },
        }
    }

    fn serve(&mut self, rx: Receiver<Msg>) {
        for msg in rx {
            if let Err(e) = self.handle_retrying(msg) {
                if !self.warned {
                    tracing::warn!("{e}; runs are not recorded in the history while this lasts (further errors are not logged)");
                    self.warned = true;
                }
                // Reopen next time: the file may have been removed or repaired.
                self.db = None;
            }
        }
    }

    /// [`Writer::handle`], tried again with a fresh connection while SQLite says busy (many
    /// processes starting at once on a new database: seen with 20 concurrent `run-job`s), for
    /// up to [`BUSY_RETRY`]; a run's record is not given up at the first collision.
    fn handle_retrying(&mut self, msg: Msg) -> Result<(), HistoryError> {
        let msg = match msg {
            Msg::Then(f) => {
                f();
                return Ok(());
            }
            m => m,
        };
        let deadline = Instant::now() + BUSY_RETRY;
        let mut nap = Duration::from_millis(5);
        loop {
            match self.handle(&msg) {
                Err(e) if e.is_busy() && Instant::now() + nap < deadline => {
                    self.db = None;
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Duration::from_millis(200));
                }
                r => return r,
            }
        }
    }

    fn handle(&mut self, msg: &Msg) -> Result<(), HistoryError> {
        if let Msg::Event(ev) = msg {
            if let EventKind::Started { dry_run: true, .. } = ev.kind {
                self.dry.insert(ev.run_id.clone());
                return Ok(());
            }
            if self.dry.contains(&ev.run_id) {
                if matches!(ev.kind, EventKind::Finished { .. }) {
                    self.dry.remove(&ev.run_id);
                }
                return Ok(());
            }
        }
        if self.db.is_none() {
            self.db = Some(History::open(&self.dir)?);
        }
        let db = self.db.as_ref().expect("opened above");
        match msg {
            Msg::Event(ev) => db.record(ev, &self.me),
            // Handled by the caller, before the database is opened.
            Msg::Then(_) => Ok(()),
            Msg::Maintain { keep } => {
                let keep = *keep;
                let n = db.sweep_interrupted()?;
                if n > 0 {
                    tracing::warn!(
                        "run history: {n} run(s) whose process is gone marked interrupted"
                    );
                }
                let cutoff = jiff::Timestamp::now()
                    - jiff::SignedDuration::try_from(keep).unwrap_or(jiff::SignedDuration::MAX);
                let removed = db.trim(cutoff)?;
                if !removed.is_empty() {
                    tracing::info!(
                        "run history: removed {} run(s) older than history_keep",
                        removed.len()
                    );
                }
                // Their logs go with them, and any log as old (a run the history lost).
                let logs = runlog::trim(&self.dir, &removed, cutoff.into());
                if logs > 0 {
                    tracing::info!("run logs: removed {logs} file(s) older than history_keep");
                }
                Ok(())
            }
        }
    }
}

impl History {
    fn record(&self, ev: &RunEvent, me: &Me) -> Result<(), HistoryError> {
        let at = ms(ev.at);
        let c = &self.conn;
        let r = match &ev.kind {
            EventKind::Started { trigger, slot, .. } => c
                .execute(
                    "INSERT OR IGNORE INTO runs (run_id, job, trigger, slot, started, outcome,
                        pid, pid_start, boot_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, ?8)",
                    params![
                        ev.run_id,
                        ev.job,
                        trigger.as_str(),
                        slot.map(ms),
                        at,
                        me.pid,
                        me.start as i64,
                        me.boot_id
                    ],
                )
                .map(drop),
            EventKind::SyncDone { report } => self.put_step(&ev.run_id, report, at),
            EventKind::HookStarted {
                phase,
                index,
                command,
                remote,
            } => self.hook_started(&ev.run_id, phase, *index, command, *remote, at),
            EventKind::HookDone {
                phase,
                index,
                exit_code,
                error,
                fatal,
                ..
            } => self.hook_done(
                &ev.run_id,
                phase,
                *index,
                *exit_code,
                error.as_deref(),
                *fatal,
                at,
            ),
            EventKind::SnapshotCommitted { id, .. } => c
                .execute(
                    "UPDATE runs SET restore_points =
                        CASE WHEN restore_points IS NULL OR restore_points = '' THEN ?2
                             ELSE restore_points || ',' || ?2 END
                     WHERE run_id = ?1",
                    params![ev.run_id, id],
                )
                .map(drop),
            EventKind::Finished {
                outcome,
                message,
                error_kind,
                exit_code,
                waited,
                syncs,
                ..
            } => (|| {
                let tx = c.unchecked_transaction()?;
                for s in syncs {
                    self.put_step(&ev.run_id, s, at)?;
                }
                // rsync's numbers, or what an archive sync wrote (its files and bytes).
                let sum = |f: fn(&SyncReport) -> Option<u64>| -> Option<i64> {
                    let v: Vec<u64> = syncs.iter().filter_map(f).collect();
                    (!v.is_empty()).then(|| v.iter().sum::<u64>() as i64)
                };
                let waited_ms = waited.as_millis() as i64;
                // Counted once, when the run leaves `running` (not again for a repeated end).
                let was_running = tx
                    .query_row(
                        "SELECT outcome = 'running' FROM runs WHERE run_id = ?1",
                        [&ev.run_id],
                        |r| r.get::<_, bool>(0),
                    )
                    .optional()?
                    .unwrap_or(false);
                // The locks were held once the engine started: started + time spent waiting.
                let acquired = (!syncs.is_empty() || *outcome == "success").then_some(());
                tx.execute(
                    "UPDATE runs SET finished = ?2, outcome = ?3, error_kind = ?4, error = ?5,
                        exit_code = ?6, wait_ms = ?7,
                        lock_acquired = CASE WHEN ?8 THEN started + ?7 ELSE NULL END,
                        files = ?9, bytes = ?10, total_size = ?11
                     WHERE run_id = ?1",
                    params![
                        ev.run_id,
                        at,
                        outcome,
                        error_kind,
                        (!message.is_empty()).then_some(message),
                        exit_code,
                        waited_ms,
                        acquired.is_some(),
                        sum(|s| moved(s).0),
                        sum(|s| moved(s).1),
                        sum(|s| s.stats.as_ref().map(|x| x.total_size)),
                    ],
                )?;
                if was_running {
                    super::totals::count_end(&tx, &ev.job, outcome, waited_ms)?;
                }
                tx.commit()
            })(),
            _ => Ok(()),
        };
        r.map_err(|e| self.err(e))
    }

    fn put_step(&self, run_id: &str, s: &SyncReport, at: i64) -> rusqlite::Result<()> {
        let started = at - s.duration.as_millis() as i64;
        self.conn
            .execute(
                "INSERT INTO steps (run_id, sync, started, finished, exit_code, attempts, files, bytes)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ?1)
                 ON CONFLICT (run_id, sync) DO UPDATE SET exit_code = excluded.exit_code,
                    attempts = excluded.attempts, files = excluded.files, bytes = excluded.bytes",
                params![
                    run_id,
                    s.index as i64,
                    started,
                    at,
                    s.exit_code,
                    s.attempts,
                    moved(s).0.map(|n| n as i64),
                    moved(s).1.map(|n| n as i64),
                ],
            )
            .map(drop)
    }
}

/// Files and bytes a sync moved: rsync's transferred counts, or what an archive wrote.
fn moved(s: &SyncReport) -> (Option<u64>, Option<u64>) {
    match (&s.stats, s.archive) {
        (Some(x), _) => (Some(x.files_transferred), Some(x.transferred_size)),
        (None, Some(a)) => (Some(a.files), Some(a.bytes)),
        (None, None) => (None, None),
    }
}
