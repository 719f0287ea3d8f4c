//! `metrics_textfile:`: the metrics written to a file for node_exporter's textfile collector
//! (Debian: `/var/lib/prometheus/node-exporter/`), rewritten atomically (a temporary file in
//! the same directory, renamed) so the collector never reads half a file. `run-job`
//! rewrites it after its run, the daemon at start and after every run.
//!
//! A failure to write is a warning in the log; it never fails a run or the daemon.
//!
//! Must not: be read by anything of ours (the history is the record; this is a view of it).

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::plan::Plan;
use crate::store::history::{History, HistoryError};
use crate::store::{live, status};

/// Writes `text` to `path` atomically (mode 0644: the collector runs as another user).
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?
        .to_string_lossy();
    // node_exporter reads only `*.prom`: a temporary name without that suffix is never read.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        // No fsync: readers need only the rename's atomicity (old or new file, never half),
        // and a file rewritten after every run need not survive a crash; the fsyncs were most
        // of this writer's cost.
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Renders the metrics of `plan`'s jobs now (status snapshot, history, restore point counts)
/// and writes them to `path`. Errors are logged as warnings.
pub fn refresh(config_path: &Path, plan: &Plan, path: &Path) {
    write(path, &render_for(config_path, plan, &restore_points(plan)));
}

/// Writes `text` to `path` atomically; errors are logged as warnings.
pub fn write(path: &Path, text: &str) {
    if let Err(e) = write_atomic(path, text) {
        tracing::warn!(
            path = %path.display(),
            "cannot write metrics_textfile {}: {e}",
            path.display()
        );
    }
}

/// The metrics text for `plan`'s jobs, as [`refresh`] writes it, with `points` from
/// [`restore_points`] (counted once by a caller that also needs them elsewhere).
pub fn render_for(config_path: &Path, plan: &Plan, points: &BTreeMap<String, usize>) -> String {
    let config = &plan.config;
    let live = live::find(config_path);
    let snap = status::snapshot(
        config_path,
        Some(config),
        None,
        live.as_ref(),
        jiff::Timestamp::now(),
        &[],
    );
    let state_dir = live
        .as_ref()
        .map_or(config.state_dir.clone(), |l| l.state_dir.clone());
    let history = histories(&state_dir, config.jobs.iter().map(|j| j.id.as_str()));
    super::render(&snap, &history, points)
}

/// Each job's counters from the run history in `state_dir` (none when it cannot be read).
pub fn histories<'a>(
    state_dir: &Path,
    jobs: impl Iterator<Item = &'a str>,
) -> BTreeMap<String, super::JobHistory> {
    let mut history = BTreeMap::new();
    match History::open_existing(state_dir) {
        Ok(h) => {
            for id in jobs {
                if let Some(jh) = super::job_history(&h, id) {
                    history.insert(id.to_string(), jh);
                }
            }
        }
        Err(HistoryError::Missing { .. }) => {}
        Err(e) => tracing::warn!("metrics: cannot read the run history: {e}"),
    }
    history
}

/// How many restore points each snapshot or archive job has (listing its series, remotely over
/// ssh for a remote one: never on a thread that must answer quickly). A job whose series cannot
/// be listed is left out.
pub fn restore_points(plan: &Plan) -> BTreeMap<String, usize> {
    let mut points = BTreeMap::new();
    for jp in &plan.jobs {
        if jp.series.is_empty() && jp.archives.is_empty() {
            continue;
        }
        let mut n = 0;
        let mut ok = true;
        let mut count = |listed: Result<usize, String>| match listed {
            Ok(k) => n += k,
            Err(e) => {
                tracing::warn!(job_id = %jp.job.id, "metrics: cannot count restore points: {e}");
                ok = false;
            }
        };
        for s in &jp.series {
            count(s.list().map(|l| l.len()).map_err(|e| e.to_string()));
        }
        for a in &jp.archives {
            count(a.list().map(|l| l.len()).map_err(|e| e.to_string()));
        }
        if ok {
            points.insert(jp.job.id.clone(), n);
        }
    }
    points
}
