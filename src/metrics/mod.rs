//! Prometheus metrics in the text exposition format, rendered from the typed status snapshot
//! ([`Status`]) and the run history: one function, [`render`], which the `metrics_textfile`
//! writer ([`textfile`]) uses today and the daemon's HTTP `/metrics` can serve as it is.
//!
//! The last *success* is its own series (`..._last_success_timestamp_seconds`), next to the
//! last *run*: an alert on "no success for 36h" keeps firing through a string of failures,
//! which an alert on the last run's result would forget after the next attempt.
//!
//! Must not: run anything, write anything, or reach another host (restore point counts are
//! handed in by the caller).

pub mod textfile;

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::store::history::{History, RunRow};
use crate::store::status::Status;

/// The outcomes a finished run can have (the `outcome` label of `runs_total`).
pub const OUTCOMES: [&str; 6] = [
    "success",
    "failed",
    "blocked",
    "cancelled",
    "skipped",
    "interrupted",
];

/// What is known of one job from the history.
#[derive(Debug, Default, Clone)]
pub struct JobHistory {
    /// The newest finished run.
    pub last_run: Option<RunRow>,
    /// Finished runs in the history, by outcome.
    pub runs: BTreeMap<String, u64>,
    /// Time spent waiting for locks and blockers, over the runs in the history.
    pub lock_wait_seconds: f64,
}

/// Reads [`JobHistory`] for `job`; `None` when the history cannot be read.
pub fn job_history(h: &History, job: &str) -> Option<JobHistory> {
    Some(JobHistory {
        last_run: h.last_of(job, &OUTCOMES).ok()?,
        runs: h.outcome_counts(job).ok()?.into_iter().collect(),
        lock_wait_seconds: h.lock_wait_ms(job).ok()? as f64 / 1000.0,
    })
}

/// The build, for `backupmanager_build_info`.
pub fn build() -> (&'static str, &'static str) {
    (env!("CARGO_PKG_VERSION"), env!("BACKUPMANAGER_GIT_COMMIT"))
}

/// The exposition text: HELP and TYPE once per family, then one sample per job (and outcome).
/// `history` has what [`job_history`] read per job; `restore_points` the number of complete
/// restore points of each snapshot job that could be counted.
pub fn render(
    status: &Status,
    history: &BTreeMap<String, JobHistory>,
    restore_points: &BTreeMap<String, usize>,
) -> String {
    let mut out = String::new();
    let mut family = |name: &str, ty: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP backupmanager_{name} {help}");
        let _ = writeln!(out, "# TYPE backupmanager_{name} {ty}");
        for (labels, v) in samples {
            let _ = writeln!(out, "backupmanager_{name}{{{labels}}} {}", number(v));
        }
    };
    let (version, commit) = build();
    family(
        "build_info",
        "gauge",
        "The backupmanager build: always 1, with the version and git commit as labels.",
        vec![(
            format!(
                "version=\"{}\",commit=\"{}\"",
                escape(version),
                escape(commit)
            ),
            1.0,
        )],
    );
    let job = |id: &str| format!("job=\"{}\"", escape(id));
    let per_job = |f: &dyn Fn(&crate::store::status::JobStatus) -> Option<f64>| {
        status
            .jobs
            .iter()
            .filter_map(|j| f(j).map(|v| (job(&j.id), v)))
            .collect::<Vec<_>>()
    };
    let hist = |id: &str| history.get(id);
    let secs = |t: Option<&str>| -> Option<f64> {
        let t: jiff::Timestamp = t?.parse().ok()?;
        Some(t.as_millisecond() as f64 / 1000.0)
    };
    family(
        "job_last_success_timestamp_seconds",
        "gauge",
        "When the job's newest successful run finished (Unix time). Absent until a run succeeds; unchanged by failures.",
        per_job(&|j| secs(j.last_success.as_ref()?.finished.as_deref())),
    );
    family(
        "job_last_run_timestamp_seconds",
        "gauge",
        "When the job's newest finished run (any outcome) finished (Unix time).",
        per_job(&|j| secs(hist(&j.id)?.last_run.as_ref()?.finished.as_deref())),
    );
    family(
        "job_last_run_success",
        "gauge",
        "1 if the job's newest finished run succeeded, else 0.",
        per_job(&|j| {
            let r = hist(&j.id)?.last_run.as_ref()?;
            Some(if r.outcome == "success" { 1.0 } else { 0.0 })
        }),
    );
    family(
        "job_last_run_duration_seconds",
        "gauge",
        "How long the job's newest finished run took, waiting included.",
        per_job(&|j| Some(hist(&j.id)?.last_run.as_ref()?.duration_ms? as f64 / 1000.0)),
    );
    family(
        "job_last_run_transferred_bytes",
        "gauge",
        "Bytes of file data rsync transferred in the job's newest finished run.",
        per_job(&|j| Some(hist(&j.id)?.last_run.as_ref()?.bytes? as f64)),
    );
    let mut runs = Vec::new();
    for j in &status.jobs {
        if let Some(h) = hist(&j.id) {
            for o in OUTCOMES {
                let n = h.runs.get(o).copied().unwrap_or(0);
                runs.push((format!("{},outcome=\"{o}\"", job(&j.id)), n as f64));
            }
        }
    }
    family(
        "job_runs_total",
        "counter",
        "Runs of the job that ended, by outcome; counted as each run ends, so trimming the run history (history_keep) never lowers it.",
        runs,
    );
    family(
        "job_running",
        "gauge",
        "1 while a run of the job is copying (or holds its run lock), else 0.",
        per_job(&|j| Some(if j.state == "running" { 1.0 } else { 0.0 })),
    );
    family(
        "job_waiting",
        "gauge",
        "1 while a run of the job waits for a blocker or a lock, else 0.",
        per_job(&|j| Some(if j.state == "waiting" { 1.0 } else { 0.0 })),
    );
    family(
        "job_next_run_timestamp_seconds",
        "gauge",
        "When the job's schedule next fires (Unix time). Absent for disabled and @reboot jobs.",
        per_job(&|j| secs(j.next_run.as_deref())),
    );
    family(
        "job_lock_wait_seconds_total",
        "counter",
        "Time the job's ended runs spent waiting for locks and blockers; like runs_total, trimming the run history never lowers it.",
        per_job(&|j| Some(hist(&j.id)?.lock_wait_seconds)),
    );
    family(
        "job_restore_points",
        "gauge",
        "Complete restore points (snapshots) the job has at its destination. Snapshot jobs only.",
        per_job(&|j| restore_points.get(&j.id).map(|n| *n as f64)),
    );
    out
}

/// A sample value: integers without a fraction, others as Rust prints them.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A label value, escaped as the exposition format says (`\`, `"`, newline).
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(1.5), "1.5");
    }
}
