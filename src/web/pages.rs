//! The HTML pages: `/` (every job), `/jobs/{id}` (one job: schedule, locks, blockers, recent
//! runs) and `/runs/{id}` (one run and its log). Server-rendered, every value escaped, one
//! inline stylesheet, no external asset. Only the run page has a script (allowed by a
//! per-response CSP nonce): while the run is active it polls the log endpoint once a second,
//! pauses while the tab is hidden, and stops when the endpoint says the run ended.
//!
//! Must not: write anything, or show a config value the API does not.

use super::api::{self, Ctx, JobConfig};
use super::chart::{self, esc, Point};
use super::http::Response;
use crate::store::history::{Filter, RunRow};
use crate::store::status::JobStatus;

/// Runs on each chart.
const CHART_RUNS: usize = 30;
/// Log bytes rendered into a run page (the rest is a link to the API).
const PAGE_LOG: u64 = 1024 * 1024;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse}td,th{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
.ok{color:#070}.warning{color:#a60}.critical{color:#c00}.muted{color:#777}\
pre{background:#f6f6f6;padding:.8em;overflow:auto;max-height:70vh;white-space:pre-wrap}\
a{color:#2050a0}";

fn page(title: &str, body: &str, script: Option<&str>) -> Response {
    let nonce = crate::sys::random::hex(16);
    let script = script
        .map(|s| format!("<script nonce=\"{nonce}\">{s}</script>"))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - backupmanager</title><meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head><body>{body}{script}</body></html>",
        esc(title)
    );
    Response::new(200, "text/html; charset=utf-8", html).header(
        "Content-Security-Policy",
        format!("default-src 'none'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; script-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    )
}

fn not_found(what: &str) -> Response {
    let mut r = page(
        "not found",
        &format!("<h1>{}</h1><p><a href=\"/\">all jobs</a></p>", esc(what)),
        None,
    );
    r.status = 404;
    r
}

fn points(runs: &[RunRow]) -> Vec<Point> {
    // Oldest first; a run still going has no duration yet.
    runs.iter()
        .rev()
        .filter(|r| r.outcome != "running")
        .map(|r| Point {
            duration_ms: r.duration_ms.unwrap_or(0),
            bytes: r.bytes.unwrap_or(0).max(0) as u64,
            ok: r.outcome == "success",
        })
        .collect()
}

/// What a job does now, in words: idle, waiting on X held by Y, running (sync N).
fn doing(j: &JobStatus) -> String {
    match (&j.waiting, j.state.as_str()) {
        (Some(w), _) => format!(
            "waiting on {} held by {} since {}",
            w.lock.as_deref().unwrap_or("its run lock"),
            w.holder.as_deref().unwrap_or("another run"),
            w.since
        ),
        (None, "running") => match j.sync_index {
            Some(i) => format!("running sync {i}"),
            None => "running".into(),
        },
        (None, s) => s.to_string(),
    }
}

fn run_link(id: &str) -> String {
    format!("<a href=\"/runs/{0}\">{0}</a>", esc(id))
}

pub fn dashboard(ctx: &Ctx) -> Response {
    let status = ctx.feed.status().status;
    let config = ctx.feed.config();
    let history = api::history(&config).ok().flatten();
    let mut rows = String::new();
    for j in &status.jobs {
        let runs = history
            .as_ref()
            .and_then(|h| {
                h.list(&Filter {
                    job: Some(j.id.clone()),
                    limit: Some(CHART_RUNS),
                    ..Filter::default()
                })
                .ok()
            })
            .unwrap_or_default();
        let now = match &j.run_id {
            Some(r) => format!("{} ({})", esc(&doing(j)), run_link(r)),
            None => esc(&doing(j)),
        };
        let success = j
            .last_success
            .as_ref()
            .map(|r| esc(r.finished.as_deref().unwrap_or(&r.started)))
            .unwrap_or_else(|| "<span class=\"muted\">never</span>".into());
        let failure = j
            .last_failure
            .as_ref()
            .map(|r| {
                let why = r
                    .error
                    .as_deref()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("");
                format!(
                    "{} {} ({}): {}",
                    run_link(&r.run_id),
                    esc(&r.outcome),
                    esc(r.error_kind.as_deref().unwrap_or("-")),
                    esc(why)
                )
            })
            .unwrap_or_default();
        let over = if j.overdue { "OVERDUE " } else { "" };
        rows.push_str(&format!(
            "<tr class=\"job\" data-job=\"{id}\"><td><a href=\"/jobs/{id}\">{id}</a>{dis}</td><td>{now}</td><td>{next}</td><td>{success}</td><td>{failure}</td><td class=\"{chk}\">{over}{chk}: {reason}</td><td class=\"points\">{points}</td><td>{svg}</td></tr>",
            id = esc(&j.id),
            dis = if j.enabled { "" } else { " <span class=\"muted\">(disabled)</span>" },
            next = esc(j.next_run.as_deref().unwrap_or("-")),
            chk = esc(&j.check),
            reason = esc(&j.check_reason),
            svg = chart::runs_svg(&points(&runs), 160, 36),
            points = j
                .restore_points
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
        ));
    }
    let daemon = match &status.daemon {
        Some(d) => format!("daemon pid {}", esc(&d.pid)),
        None => "daemon not running".into(),
    };
    let body = format!(
        "<h1>backupmanager</h1><p class=\"{lvl}\" id=\"summary\">{summary}</p><p class=\"muted\">{daemon} · {cfg}</p>\
<table><thead><tr><th>job</th><th>now</th><th>next run</th><th>last success</th><th>last failure</th><th>check</th><th>restore points</th><th>last runs (<span style=\"color:#2060c0\">duration</span>, <span style=\"color:#e08a00\">bytes</span>)</th></tr></thead><tbody>{rows}</tbody></table>\
<p class=\"muted\">JSON: <a href=\"/api/v1/status\">/api/v1/status</a></p>",
        lvl = format!("{:?}", status.check.level).to_lowercase(),
        summary = esc(&status.check.summary),
        cfg = esc(&status.config.display().to_string()),
    );
    page("status", &body, None)
}

pub fn job(ctx: &Ctx, id: &str) -> Response {
    let config = ctx.feed.config();
    let Some(job) = config.job(id) else {
        return not_found("no such job");
    };
    let status = ctx.feed.status().status;
    let Some(j) = status.jobs.iter().find(|j| j.id == id) else {
        return not_found("no such job");
    };
    let view = JobConfig::of(job);
    let runs = match api::job_runs(&config, id, CHART_RUNS, None) {
        Ok(Some((runs, _))) => runs,
        _ => Vec::new(),
    };
    let places = |ps: &[api::Place], waiting_on: Option<&str>| {
        if ps.is_empty() {
            return "<li class=\"muted\">none</li>".to_string();
        }
        ps.iter()
            .map(|p| {
                let now = match (&j.waiting, waiting_on) {
                    (Some(w), Some(_)) if w.lock.as_deref() == Some(p.path.as_str()) => format!(
                        " <strong>waiting: held by {}</strong>",
                        esc(w.holder.as_deref().unwrap_or("?"))
                    ),
                    _ => String::new(),
                };
                format!(
                    "<li>{} <code>{}</code>{now}</li>",
                    esc(&p.location),
                    esc(&p.path)
                )
            })
            .collect()
    };
    let syncs: String = view
        .syncs
        .iter()
        .map(|s| {
            format!(
                "<li><code>{}</code> → <code>{}</code></li>",
                esc(&s.source),
                esc(&s.dest)
            )
        })
        .collect();
    let run_rows: String = runs
        .iter()
        .map(|r| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                run_link(&r.run_id),
                esc(&r.trigger),
                esc(&r.started),
                esc(&r.outcome),
                r.duration_ms
                    .map(|d| format!("{:.1} s", d as f64 / 1000.0))
                    .unwrap_or_default(),
                r.bytes
                    .map(|b| esc(&crate::units::human_bytes(b.max(0) as u64)))
                    .unwrap_or_default(),
            )
        })
        .collect();
    let body = format!(
        "<p><a href=\"/\">all jobs</a></p><h1>{id}</h1>\
<p>schedule <code>{cron}</code> · mode {mode}{points} · next run {next} · now: <span id=\"now\">{now}</span></p>\
<p class=\"{chk}\">{over}{chk}: {reason}</p>{svg}\
<h2>syncs</h2><ul>{syncs}</ul><h2>lock files</h2><ul>{locks}</ul><h2>blocks on</h2><ul>{blockers}</ul>\
<h2>recent runs</h2><table><thead><tr><th>run</th><th>trigger</th><th>started</th><th>outcome</th><th>duration</th><th>bytes</th></tr></thead><tbody>{run_rows}</tbody></table>",
        id = esc(id),
        cron = esc(&view.cron_schedule),
        mode = view.mode,
        points = j
            .restore_points
            .map(|n| format!(" · <span id=\"restore-points\">{n}</span> restore points"))
            .unwrap_or_default(),
        next = esc(j.next_run.as_deref().unwrap_or("-")),
        now = esc(&doing(j)),
        chk = esc(&j.check),
        over = if j.overdue { "OVERDUE " } else { "" },
        reason = esc(&j.check_reason),
        svg = chart::runs_svg(&points(&runs), 480, 80),
        locks = places(&view.lock_files, Some("own")),
        blockers = places(&view.blocks_on, Some("blocker")),
    );
    page(id, &body, None)
}

/// Polls the log endpoint while the run is active; counts its requests in `window.bmPolls`
/// and marks the end in `body[data-polling]`.
const POLL_SCRIPT: &str = r#"(function(){
var el=document.getElementById('log'),st=document.getElementById('run-state'),oc=document.getElementById('outcome');
var off=Number(el.dataset.offset),src=el.dataset.src,timer=null,busy=false;
window.bmPolls=0;
function later(){if(!timer&&!busy)timer=setTimeout(tick,1000);}
function done(){document.body.dataset.polling='stopped';st.textContent='ended';
fetch(src.replace(/\/log$/,''),{credentials:'same-origin',cache:'no-store'}).then(function(r){return r.json();}).then(function(j){oc.textContent=j.outcome;}).catch(function(){});}
function tick(){timer=null;if(document.hidden)return;busy=true;window.bmPolls++;
fetch(src+'?offset='+off,{credentials:'same-origin',cache:'no-store'}).then(function(r){
if(!r.ok)throw new Error(r.status);
var next=Number(r.headers.get('X-Log-Next-Offset')),active=r.headers.get('X-Run-Active')==='true';
return r.text().then(function(t){if(t)el.appendChild(document.createTextNode(t));off=next;busy=false;
if(active)later();else done();});
}).catch(function(){busy=false;later();});}
document.addEventListener('visibilitychange',function(){if(!document.hidden)later();});
document.body.dataset.polling='on';later();
})();"#;

pub fn run(ctx: &Ctx, id: &str) -> Response {
    let (run, active) = match api::find_run(ctx, id) {
        Ok(r) => r,
        Err(_) => return not_found("no such run"),
    };
    let config = ctx.feed.config();
    let path = crate::store::runlog::path(&config.state_dir, &run.job, &run.run_id);
    let (log, size, follow) = read_log(&path, active);
    let more = if (log.len() as u64) < size && !follow {
        format!("<p class=\"muted\">log cut at {} of {size} bytes: the whole log is at <a href=\"/api/v1/runs/{}/log\">the API</a></p>", log.len(), esc(&run.run_id))
    } else {
        String::new()
    };
    let steps: String = run
        .steps
        .iter()
        .flatten()
        .map(|s| {
            format!(
                "<li>sync {}: exit {} · {} files · {}</li>",
                s.sync,
                s.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                s.files.unwrap_or(0),
                esc(&crate::units::human_bytes(
                    s.bytes.unwrap_or(0).max(0) as u64
                ))
            )
        })
        .chain(run.hooks.iter().flatten().map(|h| {
            format!(
                "<li class=\"hook\">{} hook {}: {} · {} ms · <code>{}</code>{}</li>",
                esc(&h.phase),
                h.index,
                h.exit_code
                    .map(|c| format!("exit {c}"))
                    .unwrap_or_else(|| "no exit code".into()),
                h.duration_ms
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
                esc(&h.command),
                h.error
                    .as_deref()
                    .map(|e| format!(" · <span class=\"critical\">{}</span>", esc(e)))
                    .unwrap_or_default()
            )
        }))
        .collect();
    let body = format!(
        "<p><a href=\"/\">all jobs</a> · <a href=\"/jobs/{job}\">{job}</a></p><h1>run {rid}</h1>\
<p>{trigger} run, started {started} · outcome <span id=\"outcome\">{outcome}</span> · <span id=\"run-state\">{state}</span></p>\
<p class=\"critical\">{error}</p><ul>{steps}</ul>{more}\
<pre id=\"log\" data-src=\"/api/v1/runs/{rid}/log\" data-offset=\"{off}\">{text}</pre>",
        job = esc(&run.job),
        rid = esc(&run.run_id),
        trigger = esc(&run.trigger),
        started = esc(&run.started),
        outcome = esc(&run.outcome),
        state = if follow { "active" } else { "ended" },
        error = esc(run.error.as_deref().unwrap_or("")),
        off = log.len(),
        text = esc(&String::from_utf8_lossy(&log)),
    );
    page(
        &format!("run {}", run.run_id),
        &body,
        follow.then_some(POLL_SCRIPT),
    )
}

/// The first [`PAGE_LOG`] bytes (whole lines while followed), the file's size, and whether
/// the log is still followed ([`api::read_from`]).
fn read_log(path: &std::path::Path, active: bool) -> (Vec<u8>, u64, bool) {
    api::read_from(path, 0, PAGE_LOG, active).unwrap_or((Vec::new(), 0, active))
}
