//! The per-run log file: an [`Observer`] that writes each run's events to
//! `<state_dir>/logs/<job>/<run id>.log` (layout and trimming: [`crate::store::runlog`]), one
//! readable line per event with the local time, rsync's output lines included, progress
//! lines and the `--stats` block left out. The last line starts with
//! [`crate::store::runlog::END_MARK`]. Dry runs write no file.
//!
//! The files are written on a thread of this observer's own, so a slow or full disk never
//! holds up a run; a failure is logged once (a warning) and that run's file is given up.
//!
//! Must not: block or fail a run; write anything but the run's own file.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

use crate::events::{EventKind, Observer, RunEvent};
use crate::store::runlog;

/// Writes the log files of the runs it observes.
pub struct RunLogs {
    tx: Mutex<Option<Sender<RunEvent>>>,
    done: Mutex<Option<Receiver<()>>>,
}

impl RunLogs {
    /// Starts the writer thread for logs under `state_dir`.
    pub fn start(state_dir: &Path) -> RunLogs {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let dir = state_dir.to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("run-logs".into())
            .spawn(move || {
                Writer {
                    dir,
                    files: HashMap::new(),
                    skip: HashSet::new(),
                    warned: false,
                }
                .serve(rx);
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            tracing::warn!("run logs: cannot start their thread ({e}); runs write no log file");
        }
        RunLogs {
            tx: Mutex::new(Some(tx)),
            done: Mutex::new(Some(done_rx)),
        }
    }

    /// Lets the writer finish what it was handed, waiting at most `timeout`.
    pub fn close(&self, timeout: Duration) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(done) = self.done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = done.recv_timeout(timeout);
        }
    }
}

impl Observer for RunLogs {
    fn on_event(&self, ev: &RunEvent) {
        if let Some(tx) = &*self.tx.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = tx.send(ev.clone());
        }
    }
}

struct Writer {
    dir: PathBuf,
    files: HashMap<String, File>,
    /// Dry runs and runs whose file failed: their later events are dropped.
    skip: HashSet<String>,
    warned: bool,
}

impl Writer {
    fn serve(&mut self, rx: Receiver<RunEvent>) {
        for ev in rx {
            self.handle(&ev);
        }
    }

    fn handle(&mut self, ev: &RunEvent) {
        let finished = matches!(ev.kind, EventKind::Finished { .. });
        if self.skip.contains(&ev.run_id) {
            if finished {
                self.skip.remove(&ev.run_id);
            }
            return;
        }
        if let EventKind::Started { dry_run, .. } = ev.kind {
            if dry_run {
                self.skip.insert(ev.run_id.clone());
                return;
            }
            match runlog::create(&self.dir, &ev.job, &ev.run_id) {
                Ok(f) => {
                    self.files.insert(ev.run_id.clone(), f);
                }
                Err(e) => {
                    self.fail(ev, &e);
                    return;
                }
            }
        }
        let Some(line) = super::log::text(ev) else {
            return;
        };
        let Some(f) = self.files.get_mut(&ev.run_id) else {
            return;
        };
        let time = ev
            .at
            .to_zoned(crate::config::zone::system())
            .strftime("%Y-%m-%d %H:%M:%S");
        if let Err(e) = writeln!(f, "{time} {line}") {
            self.files.remove(&ev.run_id);
            self.fail(ev, &e);
            return;
        }
        if finished {
            self.files.remove(&ev.run_id);
        }
    }

    fn fail(&mut self, ev: &RunEvent, e: &std::io::Error) {
        if !ev_finished(ev) {
            self.skip.insert(ev.run_id.clone());
        }
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                "run log {}: {e}; this run writes no log file (further errors are not logged)",
                runlog::path(&self.dir, &ev.job, &ev.run_id).display()
            );
        }
    }
}

fn ev_finished(ev: &RunEvent) -> bool {
    matches!(ev.kind, EventKind::Finished { .. })
}
