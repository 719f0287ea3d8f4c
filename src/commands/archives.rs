//! `snapshots`, `prune`, `restore` and `verify` for an archive-mode job: its restore points
//! (one per archive), aging them out without breaking a chain, checking a chain, and
//! extracting one into an empty directory.
//!
//! Reached from `commands/snapshots.rs` when the job keeps archives, with the same plan, run
//! lock and exit codes; `prune` takes the job's run lock first.

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::Serialize;

use crate::archive::restore as chainops;
use crate::archive::{ArchiveError, ArchiveSeries};
use crate::cli::Format;
use crate::engine::archive_prune;
use crate::exit;
use crate::plan::{JobPlan, Plan};
use crate::units::human_bytes;

#[derive(Serialize)]
struct Listed {
    id: String,
    stem: String,
    time: String,
    sync: usize,
    series: String,
    chain: String,
    level: u32,
    parent: Option<String>,
    size: u64,
    sha256: String,
    files: u64,
    tar_exit: i32,
    job: String,
    run_id: String,
}

/// `snapshots JOB` for archives: every archive of every sync, newest first.
pub fn list(job: &JobPlan, format: Format) -> i32 {
    let mut all = Vec::new();
    for (sync, series) in job.archives.iter().enumerate() {
        match series.list() {
            Ok(list) => all.extend(list.into_iter().map(|m| Listed {
                id: m.stem.id.to_string(),
                stem: m.stem.to_string(),
                time: m.time_rfc3339(),
                sync,
                series: series.where_(),
                chain: m.stem.chain.to_string(),
                level: m.stem.level,
                parent: m.parent.as_ref().map(|p| p.to_string()),
                size: m.size,
                sha256: m.sha256.clone(),
                files: m.files,
                tar_exit: m.tar_exit,
                job: m.job,
                run_id: m.run_id,
            })),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILED;
            }
        }
    }
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&all).expect("list serializes")
        ),
        Format::Text => {
            for (sync, series) in job.archives.iter().enumerate() {
                let mine: Vec<&Listed> = all.iter().filter(|l| l.sync == sync).collect();
                println!("{} ({} archive(s))", series.where_(), mine.len());
                for l in mine {
                    println!(
                        "  {}  {}  chain {} level {:>2}  {:>8} entries  {:>10}  run {}{}",
                        l.id,
                        l.time,
                        l.chain,
                        l.level,
                        l.files,
                        human_bytes(l.size),
                        l.run_id,
                        if l.tar_exit == 1 {
                            "  (a file changed while read)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
    }
    exit::OK
}

/// `prune JOB` for archives.
pub fn prune(plan: &Plan, job: &JobPlan, dry_run: bool, format: Format) -> i32 {
    let policy = job
        .job
        .retention
        .clone()
        .expect("archive jobs have a policy");
    let _run_lock = match super::pruned::run_lock(job, dry_run) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let tz = &plan.config.timezone.tz;
    let now = jiff::Timestamp::now();
    let mut code = exit::OK;
    let mut rows: Vec<super::pruned::Row> = Vec::new();
    for (sync, series) in job.archives.iter().enumerate() {
        match archive_prune::prune(series, &policy, tz, now, dry_run) {
            Ok(v) => rows.extend(v.into_iter().map(|v| (sync, series.where_(), v))),
            Err(e) => {
                eprintln!("error: {e}");
                code = exit::FAILED;
            }
        }
    }
    super::pruned::print(&rows, dry_run, format, super::pruned::Reasons::Kept);
    if format == Format::Text {
        let parents_only = rows.iter().any(|(_, _, v)| {
            v.keep
                && v.reasons
                    .iter()
                    .all(|r| r.starts_with(archive_prune::PARENT_OF))
        });
        if parents_only {
            println!(
                    "note: some archives are kept only because newer ones depend on them; the next run starts a new chain so that they can age out"
                );
        }
    }
    code
}

fn choose(job: &JobPlan, sync: Option<usize>) -> Result<&ArchiveSeries, i32> {
    let id = &job.job.id;
    match (sync, job.archives.len()) {
        (Some(i), n) if i < n => Ok(&job.archives[i]),
        (None, 1) => Ok(&job.archives[0]),
        (Some(i), n) => {
            eprintln!("error: job `{id}` has {n} sync(s); --sync {i} is not one of them (0..{n})");
            Err(exit::USAGE)
        }
        (None, n) => {
            eprintln!("error: job `{id}` has {n} syncs; choose one with --sync N (0..{n})");
            Err(exit::USAGE)
        }
    }
}

fn cancel_flag() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&cancel));
    }
    cancel
}

fn fail(e: ArchiveError) -> i32 {
    eprintln!("error: {e}");
    if let ArchiveError::Broken { .. } = &e {
        eprintln!(
            "  = help: the archive named above is missing or damaged; restore points before it in its chain, and other chains, are still usable: see `verify`"
        );
    }
    exit::FAILED
}

/// `restore JOB` for archives: verify the chain, then extract it into an empty directory.
pub fn restore(
    job: &JobPlan,
    snapshot: &str,
    sync: Option<usize>,
    paths: &[String],
    to: &Path,
    dry_run: bool,
    overwrite: bool,
) -> i32 {
    if overwrite {
        eprintln!(
            "error: archives restore into an empty directory only (each level's deletions would remove files that were never in the archives); drop --overwrite"
        );
        return exit::USAGE;
    }
    let series = match choose(job, sync) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let cancel = cancel_flag();
    let list = match series.list() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let target = match chainops::find(series, &list, snapshot) {
        Ok(m) => m.stem.clone(),
        Err(e) => return fail(e),
    };
    if dry_run {
        return match chainops::verify(series, &list, &target, false, &cancel) {
            Ok(chain) => {
                for m in &chain {
                    println!("{}", m.archive_file());
                }
                eprintln!(
                    "would restore {} ({} archive(s), verified) of {} into {}",
                    target.id,
                    chain.len(),
                    series.where_(),
                    to.display()
                );
                exit::OK
            }
            Err(e) => fail(e),
        };
    }
    match chainops::restore(series, &list, &target, paths, to, &cancel) {
        Ok(chain) => {
            eprintln!(
                "restored {} ({}, {} archive(s)) of {} into {}",
                target.id,
                chain.last().map(|m| m.time_rfc3339()).unwrap_or_default(),
                chain.len(),
                series.where_(),
                to.display()
            );
            exit::OK
        }
        Err(ArchiveError::Cancelled) => {
            let partial = fs::read_dir(to).is_ok_and(|mut d| d.next().is_some());
            eprintln!(
                "error: restore of {} cancelled (signal); tar was stopped{}",
                target.id,
                if partial {
                    format!(
                        ". {} holds an incomplete restore: remove it (or choose another empty directory) before restoring again",
                        to.display()
                    )
                } else {
                    String::new()
                }
            );
            exit::INTERRUPTED
        }
        Err(e) => fail(e),
    }
}

/// `verify JOB`: check the chain of one restore point, or of every one.
pub fn verify(job: &JobPlan, snapshot: Option<&str>, sync: Option<usize>, read: bool) -> i32 {
    let chosen: Vec<&ArchiveSeries> = match sync {
        Some(_) => match choose(job, sync) {
            Ok(s) => vec![s],
            Err(code) => return code,
        },
        None => job.archives.iter().collect(),
    };
    let cancel = cancel_flag();
    let mut code = exit::OK;
    for series in chosen {
        let list = match series.list() {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        let targets: Vec<_> = match snapshot {
            Some(spec) => match chainops::find(series, &list, spec) {
                Ok(m) => vec![m.stem.clone()],
                Err(e) => return fail(e),
            },
            None => list.iter().map(|m| m.stem.clone()).collect(),
        };
        let mut bad = 0;
        for t in &targets {
            match chainops::verify(series, &list, t, read, &cancel) {
                Ok(chain) => println!("ok      {}  ({} archive(s))", t.id, chain.len()),
                // A signal is not a verdict on the chain: stop, and say the check is unfinished.
                Err(ArchiveError::Cancelled) => {
                    eprintln!(
                        "error: verify cancelled (signal) at restore point {}; the check is not complete",
                        t.id
                    );
                    return exit::INTERRUPTED;
                }
                Err(e) => {
                    println!("BROKEN  {}", t.id);
                    eprintln!("error: {e}");
                    bad += 1;
                }
            }
        }
        eprintln!(
            "{}: {} of {} restore point(s) verified{}",
            series.where_(),
            targets.len() - bad,
            targets.len(),
            if read {
                " (sha256, links, and read back)"
            } else {
                " (sha256 and links)"
            }
        );
        if bad > 0 {
            code = exit::FAILED;
        }
    }
    code
}
