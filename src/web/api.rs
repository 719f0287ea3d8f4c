//! The routes: the JSON API under `/api/v1/`, `/healthz`, and dispatch to the HTML pages.
//! Shapes are documented in docs/api.md; `/api/v1/status` is [`crate::store::status::Status`],
//! the very type `status --format json` prints.
//!
//! Nothing here reads the config's SSH settings or the token into a response: a job is shown
//! as its schedule, places and paths ([`JobConfig`]).
//!
//! Must not: write anything.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use serde::Serialize;

use super::http::{self, query_param, Request, Response};
use super::{pages, Feed};
use crate::config::{Config, Job, Location, Mode};
use crate::store::history::{History, HistoryError, RunRow};
use crate::store::runlog;
use crate::sys::procfs;

/// Most runs one `/runs` page returns, and its default.
pub const MAX_LIMIT: usize = 200;
pub const DEFAULT_LIMIT: usize = 20;
/// Most log bytes one `/log` response returns.
pub const LOG_CHUNK: u64 = 256 * 1024;

/// What every request is served from.
pub struct Ctx {
    pub feed: Arc<Feed>,
    pub token: Option<String>,
}

/// The response to `req` (already known to be GET or HEAD).
pub fn respond(ctx: &Ctx, req: &Request) -> Response {
    if let Some(token) = &ctx.token {
        let given = req
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("");
        if !http::constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
            return Response::text(401, "a bearer token is required\n")
                .header("WWW-Authenticate", "Bearer");
        }
    }
    let segs: Vec<&str> = req.path.split('/').skip(1).collect();
    let q = req.query.as_deref();
    match segs.as_slice() {
        ["healthz"] => Response::text(200, "ok\n"),
        ["api", "v1", "status"] => {
            Response::new(200, "application/json", ctx.feed.status().json.to_vec())
        }
        ["api", "v1", "jobs", id] => job(ctx, id),
        ["api", "v1", "jobs", id, "runs"] => runs(ctx, id, q),
        ["api", "v1", "runs", id] => run(ctx, id),
        ["api", "v1", "runs", id, "log"] => log(ctx, id, q),
        ["metrics"] => metrics(ctx),
        [""] => pages::dashboard(ctx),
        ["jobs", id] => pages::job(ctx, id),
        ["runs", id] => pages::run(ctx, id),
        _ => not_found("no such page"),
    }
}

/// Prometheus text: the same families as `metrics_textfile`, from the shared status snapshot,
/// the run history, and the restore points the daemon counted after the last run.
fn metrics(ctx: &Ctx) -> Response {
    let snap = ctx.feed.status();
    let (config, live) = (ctx.feed.config(), ctx.feed.live());
    let history = crate::metrics::textfile::histories(
        &live.state_dir,
        config.jobs.iter().map(|j| j.id.as_str()),
    );
    let text = crate::metrics::render(&snap.status, &history, &ctx.feed.restore_points());
    Response::new(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        text.into_bytes(),
    )
}

pub fn json<T: Serialize + ?Sized>(status: u16, v: &T) -> Response {
    let mut body = serde_json::to_vec_pretty(v).expect("API values serialize");
    body.push(b'\n');
    Response::new(status, "application/json", body)
}

pub fn error(status: u16, msg: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct E {
        error: String,
    }
    json(status, &E { error: msg.into() })
}

fn not_found(what: &str) -> Response {
    error(404, what)
}

/// A job as the API shows its configuration: where it copies and which locks it takes or
/// waits for. No SSH settings (identity files, options).
#[derive(Debug, Serialize)]
pub struct JobConfig {
    pub enabled: bool,
    pub cron_schedule: String,
    pub mode: &'static str,
    /// `user@host:port` of the syncs' destination; `None` for local syncs.
    pub host: Option<String>,
    pub lock_files: Vec<Place>,
    pub blocks_on: Vec<Place>,
    pub syncs: Vec<SyncView>,
}

#[derive(Debug, Serialize)]
pub struct Place {
    /// `local` or `user@host:port`.
    pub location: String,
    pub path: String,
}

#[derive(Debug, Serialize)]
pub struct SyncView {
    pub source: String,
    pub dest: String,
}

impl JobConfig {
    pub fn of(j: &Job) -> JobConfig {
        let place = |location: &Location, path: &str| Place {
            location: location.to_string(),
            path: path.to_string(),
        };
        JobConfig {
            enabled: j.enabled,
            cron_schedule: j.schedule.expr().to_string(),
            mode: match j.mode {
                Mode::Mirror => "mirror",
                Mode::Snapshot => "snapshot",
                Mode::Archive => "archive",
            },
            host: j.remote.as_ref().map(|r| r.to_string()),
            lock_files: j
                .lock_files
                .iter()
                .map(|l| place(&l.location, &l.path))
                .collect(),
            blocks_on: j
                .blocks_on
                .iter()
                .map(|b| place(&b.location, &b.path))
                .collect(),
            syncs: j
                .syncs
                .iter()
                .map(|s| SyncView {
                    source: s.source.clone(),
                    dest: s.dest.clone(),
                })
                .collect(),
        }
    }
}

/// Opens the daemon's history for reading; `Ok(None)` when there is none yet.
pub fn history(config: &Config) -> Result<Option<History>, HistoryError> {
    match History::open_existing(&config.state_dir) {
        Ok(h) => Ok(Some(h)),
        Err(HistoryError::Missing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn job(ctx: &Ctx, id: &str) -> Response {
    let config = ctx.feed.config();
    let Some(j) = config.job(id) else {
        return not_found("no such job");
    };
    #[derive(Serialize)]
    struct Out<'a> {
        status: Option<&'a crate::store::status::JobStatus>,
        config: JobConfig,
    }
    let status = ctx.feed.status().status;
    json(
        200,
        &Out {
            status: status.jobs.iter().find(|s| s.id == id),
            config: JobConfig::of(j),
        },
    )
}

/// `limit` and `before` of a runs page, or the 400 to answer.
pub fn page_params(q: Option<&str>) -> Result<(usize, Option<String>), Response> {
    let limit = match query_param(q, "limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(error(400, format!("limit must be 1..{MAX_LIMIT}"))),
        },
    };
    let before = query_param(q, "before").map(str::to_string);
    if before.as_deref().is_some_and(|b| !runlog::safe_name(b)) {
        return Err(error(400, "before must be a run id"));
    }
    Ok((limit, before))
}

/// One page of runs (newest first) and the cursor of the next page.
pub type Page = (Vec<RunRow>, Option<String>);

/// Recent runs of `job` (newest first) and the cursor for the next page; `None` when `before`
/// names no run of the job.
pub fn job_runs(
    config: &Config,
    job: &str,
    limit: usize,
    before: Option<&str>,
) -> Result<Option<Page>, Response> {
    let h = match history(config) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(Some((Vec::new(), None))),
        Err(e) => return Err(error(503, e.to_string())),
    };
    match h.page(job, limit, before) {
        Ok(Some(runs)) => {
            let next = (runs.len() == limit)
                .then(|| runs.last().map(|r| r.run_id.clone()))
                .flatten();
            Ok(Some((runs, next)))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(error(503, e.to_string())),
    }
}

fn runs(ctx: &Ctx, id: &str, q: Option<&str>) -> Response {
    let config = ctx.feed.config();
    if config.job(id).is_none() {
        return not_found("no such job");
    }
    let (limit, before) = match page_params(q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    #[derive(Serialize)]
    struct Out<'a> {
        job: &'a str,
        runs: Vec<RunRow>,
        next_before: Option<String>,
    }
    match job_runs(&config, id, limit, before.as_deref()) {
        Ok(Some((runs, next_before))) => json(
            200,
            &Out {
                job: id,
                runs,
                next_before,
            },
        ),
        Ok(None) => error(400, "before names no run of this job"),
        Err(r) => r,
    }
}

/// One run with its steps, and whether it is still going.
pub fn find_run(ctx: &Ctx, id: &str) -> Result<(RunRow, bool), Response> {
    if !runlog::safe_name(id) {
        return Err(not_found("no such run"));
    }
    let config = ctx.feed.config();
    let row = match history(&config) {
        Ok(Some(h)) => h.get(id),
        Ok(None) => Ok(None),
        Err(e) => return Err(error(503, e.to_string())),
    };
    match row {
        Ok(Some(r)) => {
            let active = is_active(ctx, &r);
            Ok((r, active))
        }
        Ok(None) => Err(not_found("no such run")),
        Err(e) => Err(error(503, e.to_string())),
    }
}

/// A run is active while the daemon lists it, or while its row says `running` and the process
/// that writes it (a `run-job`) is alive.
fn is_active(ctx: &Ctx, r: &RunRow) -> bool {
    let live = ctx.feed.live();
    if live
        .runs
        .values()
        .any(|l| l.run_id.as_deref() == Some(r.run_id.as_str()))
    {
        return true;
    }
    r.outcome == "running" && procfs::process_alive(r.pid, r.pid_start.max(0) as u64)
}

fn run(ctx: &Ctx, id: &str) -> Response {
    #[derive(Serialize)]
    struct Out {
        #[serde(flatten)]
        run: RunRow,
        active: bool,
        log: String,
    }
    match find_run(ctx, id) {
        Ok((run, active)) => json(
            200,
            &Out {
                log: format!("/api/v1/runs/{}/log", run.run_id),
                run,
                active,
            },
        ),
        Err(r) => r,
    }
}

/// How long after its last write the log of a run that is no longer listed as active, but has
/// no end line yet, is still followed (its writer thread finishes the file just after the run).
pub const LOG_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The bytes of a run's log from `offset`: at most [`LOG_CHUNK`], and while it is followed only
/// whole lines (a line being written is sent once complete). Headers: `X-Log-Offset` (where
/// these bytes start), `X-Log-Next-Offset`, `X-Log-Size`, `X-Run-Active` ([`following`]).
fn log(ctx: &Ctx, id: &str, q: Option<&str>) -> Response {
    let offset = match query_param(q, "offset").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return error(400, "offset must be a byte count"),
    };
    let (run, active) = match find_run(ctx, id) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let config = ctx.feed.config();
    let path = runlog::path(&config.state_dir, &run.job, &run.run_id);
    let (bytes, size, follow) = match read_from(&path, offset, LOG_CHUNK, active) {
        Ok(x) => x,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), 0, active),
        Err(e) => return error(503, format!("cannot read the run's log: {e}")),
    };
    let start = offset.min(size);
    let next = start + bytes.len() as u64;
    Response::text(200, String::from_utf8_lossy(&bytes).into_owned())
        .header("X-Log-Offset", start.to_string())
        .header("X-Log-Next-Offset", next.to_string())
        .header("X-Log-Size", size.to_string())
        .header("X-Run-Active", follow.to_string())
}

/// Whether a follower should keep asking: the run is active, or its log has no end line yet
/// and was written within [`LOG_GRACE`] (the end line is written just after the run ends).
fn following(f: &mut std::fs::File, meta: &std::fs::Metadata, active: bool) -> bool {
    if active {
        return true;
    }
    let recent = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age < LOG_GRACE);
    if !recent {
        return false;
    }
    // The last line of the file: an end line means complete.
    let size = meta.len();
    let from = size.saturating_sub(4096);
    let mut tail = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.take(4096).read_to_end(&mut tail).is_err() {
        return false;
    }
    let text = String::from_utf8_lossy(&tail);
    let last = text
        .trim_end_matches('\n')
        .rsplit('\n')
        .next()
        .unwrap_or("");
    !last.contains(runlog::END_MARK)
}

/// Reads at most `max` bytes from `offset` (never through a symlink). Returns them, the file's
/// size and whether the log is still followed (then only whole lines are returned).
pub fn read_from(
    path: &std::path::Path,
    offset: u64,
    max: u64,
    active: bool,
) -> std::io::Result<(Vec<u8>, u64, bool)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    let meta = f.metadata()?;
    let size = meta.len();
    let follow = following(&mut f, &meta, active);
    let start = offset.min(size);
    f.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    (&mut f)
        .take(max.min(size - start))
        .read_to_end(&mut bytes)?;
    if follow {
        match bytes.iter().rposition(|&b| b == b'\n') {
            Some(i) => bytes.truncate(i + 1),
            // One line longer than a chunk goes out as it is.
            None if bytes.len() as u64 == max => {}
            None => bytes.clear(),
        }
    }
    Ok((bytes, size, follow))
}
