//! What `prune JOB` shares between snapshot and archive jobs: taking the job's run lock (never
//! alongside a run of the job; not for a dry run) and printing the verdicts, as text or JSON.
//!
//! Must not: decide what to keep (that is `engine::prune` and `engine::archive_prune`).

use std::fs::File;

use serde::Serialize;

use crate::cli::Format;
use crate::engine::prune::Verdict;
use crate::exit;
use crate::plan::JobPlan;
use crate::run::runlock;

/// One verdict with the series it belongs to: `(sync index, where the series is, verdict)`.
pub type Row = (usize, String, Verdict);

/// The job's run lock for a real prune (`None` for a dry run), or the exit code after saying
/// why not.
pub fn run_lock(job: &JobPlan, dry_run: bool) -> Result<Option<File>, i32> {
    if dry_run {
        return Ok(None);
    }
    let id = &job.job.id;
    match runlock::try_take(&job.runtime, id, "prune") {
        Ok(Some(f)) => Ok(Some(f)),
        Ok(None) => {
            eprintln!(
                "error: a run of job `{id}` is in progress on this host; it prunes by itself when it succeeds, or try again later"
            );
            Err(exit::BLOCKED)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(exit::FAILED)
        }
    }
}

#[derive(Serialize)]
struct Pruned<'a> {
    sync: usize,
    series: &'a str,
    #[serde(flatten)]
    verdict: &'a Verdict,
}

/// How a kept row's reasons read in text: as they are (snapshots: "last snapshot, daily"), or
/// after "kept: " with removed rows saying "remove" (archives, whose reasons include "parent
/// of ...").
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Reasons {
    Plain,
    Kept,
}

/// Prints `rows` as JSON (one array) or as text grouped by series.
pub fn print(rows: &[Row], dry_run: bool, format: Format, reasons: Reasons) {
    match format {
        Format::Json => {
            let out: Vec<Pruned> = rows
                .iter()
                .map(|(sync, series, verdict)| Pruned {
                    sync: *sync,
                    series,
                    verdict,
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&out).expect("prune serializes")
            );
        }
        Format::Text => {
            let mut last = None;
            for (sync, series, v) in rows {
                if last != Some(*sync) {
                    println!("{series}{}", if dry_run { " (dry run)" } else { "" });
                    last = Some(*sync);
                }
                let what = match (v.keep, dry_run) {
                    (true, _) => "keep  ",
                    (false, true) => "would remove",
                    (false, false) => "removed",
                };
                let why = match (reasons, v.keep) {
                    (Reasons::Plain, _) => v.reasons.join(", "),
                    (Reasons::Kept, true) => format!("kept: {}", v.reasons.join(", ")),
                    (Reasons::Kept, false) => "remove".into(),
                };
                println!("  {what}  {}  {}  {why}", v.id, v.time);
            }
        }
    }
}
