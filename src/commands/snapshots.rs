//! `backupmanager snapshots JOB`, `prune JOB` and `restore JOB`: the restore points of a
//! snapshot-mode job, aging them out, and copying one back.
//!
//! All three read the job's series through the built plan (the same transports and paths a
//! run uses). `prune` takes the job's run lock first (never alongside a run of the job);
//! listing and restoring only read the series.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::Serialize;

use crate::cli::Format;
use crate::engine::prune;
use crate::exit;
use crate::plan::{self, JobPlan, Plan};
use crate::rsync::Stream;
use crate::snapshot::{self, RestoreRequest};
use crate::units::human_bytes;

/// A plan and its snapshot-mode job, or the exit code after saying why not.
fn snapshot_job(path: &Path, id: &str, doing: &str) -> Result<(Plan, Arc<JobPlan>), i32> {
    let config = super::load_valid(path, doing)?;
    if config.job(id).is_none() {
        return Err(super::unknown_job(path, &config, id));
    }
    let plan = plan::build(config).map_err(|e| {
        eprintln!("error: {e}; {doing}");
        exit::CONFIG
    })?;
    let job = Arc::clone(plan.job(id).expect("checked above"));
    if job.series.is_empty() && job.archives.is_empty() {
        eprintln!(
            "error: job `{id}` keeps no snapshots (mode: mirror); set `mode: snapshot` (or `mode: archive`) and a `retention:` policy to keep versions"
        );
        return Err(exit::USAGE);
    }
    Ok((plan, job))
}

#[derive(Serialize)]
struct Listed {
    id: String,
    time: String,
    sync: usize,
    series: String,
    job: String,
    run_id: String,
    rsync_exit: i32,
    files_transferred: Option<u64>,
    bytes_transferred: Option<u64>,
    total_size: Option<u64>,
}

/// `snapshots JOB`: every complete snapshot of every sync, newest first.
pub fn list(path: &Path, id: &str, format: Format) -> i32 {
    let (_plan, job) = match snapshot_job(path, id, "cannot list snapshots") {
        Ok(j) => j,
        Err(code) => return code,
    };
    if !job.archives.is_empty() {
        return super::archives::list(&job, format);
    }
    let mut all = Vec::new();
    for (sync, series) in job.series.iter().enumerate() {
        match series.list() {
            Ok(list) => all.extend(list.into_iter().map(|m| Listed {
                id: m.id.to_string(),
                time: m.time_rfc3339(),
                sync,
                series: series.where_(),
                job: m.job,
                run_id: m.run_id,
                rsync_exit: m.rsync_exit,
                files_transferred: m.files_transferred,
                bytes_transferred: m.bytes_transferred,
                total_size: m.total_size,
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
            for (sync, series) in job.series.iter().enumerate() {
                let mine: Vec<&Listed> = all.iter().filter(|l| l.sync == sync).collect();
                println!("{} ({} snapshot(s))", series.where_(), mine.len());
                for l in mine {
                    println!(
                        "  {}  {}  {:>8} files  {:>10}  run {}{}",
                        l.id,
                        l.time,
                        l.files_transferred.map_or("?".into(), |n| n.to_string()),
                        l.total_size.map_or("?".into(), human_bytes),
                        l.run_id,
                        if l.rsync_exit == 24 {
                            "  (some files vanished)"
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

/// `prune JOB`: apply the retention policy now (or show what it would do).
pub fn prune(path: &Path, id: &str, dry_run: bool, format: Format) -> i32 {
    let (plan, job) = match snapshot_job(path, id, "nothing was pruned") {
        Ok(j) => j,
        Err(code) => return code,
    };
    if !job.archives.is_empty() {
        return super::archives::prune(&plan, &job, dry_run, format);
    }
    let policy = job
        .job
        .retention
        .clone()
        .expect("snapshot jobs have a policy");
    let _run_lock = match super::pruned::run_lock(&job, dry_run) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let tz = &plan.config.timezone.tz;
    let now = jiff::Timestamp::now();
    let mut code = exit::OK;
    let mut rows: Vec<super::pruned::Row> = Vec::new();
    for (sync, series) in job.series.iter().enumerate() {
        match prune::prune(series, &policy, tz, now, dry_run) {
            Ok(v) => rows.extend(v.into_iter().map(|v| (sync, series.where_(), v))),
            Err(e) => {
                eprintln!("error: {e}");
                code = exit::FAILED;
            }
        }
    }
    super::pruned::print(&rows, dry_run, format, super::pruned::Reasons::Plain);
    code
}

/// `restore JOB`: copy a snapshot (or parts of it) into a local directory.
#[allow(clippy::too_many_arguments)]
pub fn restore(
    path: &Path,
    id: &str,
    snapshot: &str,
    sync: Option<usize>,
    paths: &[String],
    to: &Path,
    dry_run: bool,
    overwrite: bool,
) -> i32 {
    let (_plan, job) = match snapshot_job(path, id, "nothing was restored") {
        Ok(j) => j,
        Err(code) => return code,
    };
    if !job.archives.is_empty() {
        return super::archives::restore(&job, snapshot, sync, paths, to, dry_run, overwrite);
    }
    let index = match (sync, job.series.len()) {
        (Some(i), n) if i < n => i,
        (None, 1) => 0,
        (Some(i), n) => {
            eprintln!("error: job `{id}` has {n} sync(s); --sync {i} is not one of them (0..{n})");
            return exit::USAGE;
        }
        (None, n) => {
            eprintln!("error: job `{id}` has {n} syncs; choose one with --sync N (0..{n})");
            return exit::USAGE;
        }
    };
    let series = &job.series[index];
    let req = RestoreRequest {
        snapshot: snapshot.to_string(),
        paths: paths.to_vec(),
        to: PathBuf::from(to),
        dry_run,
        overwrite,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&cancel));
    }
    let on_line = |stream: Stream, line: &str| match stream {
        Stream::Stdout if dry_run && is_itemized(line) => println!("{line}"),
        Stream::Stderr => eprintln!("{line}"),
        _ => {}
    };
    match snapshot::restore(series, &req, on_line, &cancel) {
        Ok((plan, results)) => {
            if let Some(bad) = results
                .iter()
                .find(|r| r.exit_code != 0 && r.exit_code != 24)
            {
                eprintln!(
                    "error: restoring {} from {}: {}",
                    plan.manifest.id,
                    series.where_(),
                    bad.message()
                );
                return exit::FAILED;
            }
            eprintln!(
                "{} snapshot {} ({}) of {} into {}",
                if dry_run { "would restore" } else { "restored" },
                plan.manifest.id,
                plan.manifest.time_rfc3339(),
                series.where_(),
                to.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

/// An `--itemize-changes` line (`>f+++++++++ path`, `cd+++++++++ dir/`, ...), not rsync's
/// summary.
fn is_itemized(line: &str) -> bool {
    let mut c = line.chars();
    matches!(
        (c.next(), c.next()),
        (
            Some('<' | '>' | 'c' | 'h' | '.' | '*'),
            Some('f' | 'd' | 'L' | 'D' | 'S')
        )
    ) || line.starts_with("*deleting")
}

/// `verify JOB`: check an archive-mode job's chains.
pub fn verify(
    path: &Path,
    id: &str,
    snapshot: Option<&str>,
    sync: Option<usize>,
    read: bool,
) -> i32 {
    let (_plan, job) = match snapshot_job(path, id, "nothing was verified") {
        Ok(j) => j,
        Err(code) => return code,
    };
    if job.archives.is_empty() {
        eprintln!(
            "error: job `{id}` keeps snapshots, not archives; `verify` checks archive chains (mode: archive)"
        );
        return exit::USAGE;
    }
    super::archives::verify(&job, snapshot, sync, read)
}
