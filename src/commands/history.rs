//! `backupmanager history [JOB]` and `backupmanager show RUN_ID`: the run history, read from
//! `<state_dir>/history.sqlite`. Runs whose process is gone are marked `interrupted` first.
//!
//! They work with a broken config too: `--state-dir DIR` names the directory then (and wins
//! over the config's whenever it is given).

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::cli::Format;
use crate::config::{self, duration};
use crate::exit;
use crate::store::history::{Filter, History, HistoryError, RunRow};
use crate::units::human_bytes;

/// Where the history is, and the zone to show times in.
struct Place {
    state_dir: PathBuf,
    tz: TimeZone,
}

/// The config's state_dir, or `--state-dir` (which wins, and is the way in when the config is
/// invalid).
fn place(config_path: &Path, state_dir: Option<&Path>) -> Result<Place, i32> {
    let loaded = config::load(config_path);
    match (loaded.config.clone(), state_dir) {
        (Some(c), dir) => Ok(Place {
            state_dir: dir.map(Path::to_path_buf).unwrap_or(c.state_dir),
            tz: c.timezone.tz,
        }),
        (None, Some(dir)) => {
            eprintln!(
                "warning: {} is invalid ({} error(s)); reading the history in --state-dir {}",
                config_path.display(),
                loaded.errors(),
                dir.display()
            );
            Ok(Place {
                state_dir: dir.to_path_buf(),
                tz: crate::config::zone::system(),
            })
        }
        (None, None) => {
            eprintln!("{}", loaded.render());
            eprintln!(
                "{}: invalid: {} error(s); pass --state-dir DIR to read the history anyway",
                config_path.display(),
                loaded.errors()
            );
            Err(exit::CONFIG)
        }
    }
}

/// Opens the history and marks dead runs interrupted. `Ok(None)`: no history yet.
fn open(p: &Place) -> Result<Option<History>, i32> {
    match History::open_existing(&p.state_dir) {
        Ok(h) => {
            if let Err(e) = h.sweep_interrupted() {
                // Read-only access, say: show what is recorded.
                eprintln!("warning: {e}");
            }
            Ok(Some(h))
        }
        Err(HistoryError::Missing { .. }) => Ok(None),
        Err(e) => {
            eprintln!("error: {e}");
            Err(exit::FAILED)
        }
    }
}

/// `--since`: a duration back from now (`7d`, `12h`), an RFC 3339 instant, or a date
/// (`2026-03-01`, midnight in the shown zone).
fn parse_since(s: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    if let Ok(d) = duration::parse(s) {
        let d = jiff::SignedDuration::try_from(d).map_err(|e| e.to_string())?;
        return Ok(Timestamp::now() - d);
    }
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(tz.clone())
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "`{s}` is not a time: write a duration back from now (7d, 12h), a date (2026-03-01) \
         or an RFC 3339 instant"
    ))
}

pub fn list(
    config_path: &Path,
    job: Option<&str>,
    count: usize,
    since: Option<&str>,
    format: Format,
    state_dir: Option<&Path>,
) -> i32 {
    let p = match place(config_path, state_dir) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let since = match since.map(|s| parse_since(s, &p.tz)).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --since: {e}");
            return exit::USAGE;
        }
    };
    let filter = Filter {
        job: job.map(str::to_string),
        since,
        limit: (count > 0).then_some(count),
    };
    let runs = match open(&p) {
        Ok(Some(h)) => match h.list(&filter) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILED;
            }
        },
        Ok(None) => Vec::new(),
        Err(code) => return code,
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&runs).expect("history serializes")
        ),
        Format::Text if runs.is_empty() => eprintln!("no runs recorded"),
        Format::Text => {
            for r in &runs {
                println!("{}", line(r, &p.tz));
            }
        }
    }
    exit::OK
}

pub fn show(config_path: &Path, run_id: &str, format: Format, state_dir: Option<&Path>) -> i32 {
    let p = match place(config_path, state_dir) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let found = match open(&p) {
        Ok(Some(h)) => h.get(run_id),
        Ok(None) => Ok(None),
        Err(code) => return code,
    };
    let run = match found {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!("error: no run `{run_id}` in the history");
            return exit::USAGE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&run).expect("run serializes")
        ),
        Format::Text => print!("{}", details(&run, &p.tz)),
    }
    exit::OK
}

fn local(t: &str, tz: &TimeZone) -> String {
    t.parse::<Timestamp>()
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

fn took(r: &RunRow) -> String {
    match r.duration_ms {
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) => duration::format(Duration::from_millis(ms)),
        None => "-".into(),
    }
}

fn short(s: &str, max: usize) -> String {
    let one = s.lines().next().unwrap_or("");
    if one.chars().count() > max || s.lines().nth(1).is_some() {
        format!("{}…", one.chars().take(max).collect::<String>())
    } else {
        one.to_string()
    }
}

/// One line per run: time, run id, job, outcome, duration, files/bytes, short error.
fn line(r: &RunRow, tz: &TimeZone) -> String {
    let moved = match (r.files, r.bytes) {
        (Some(f), Some(b)) => format!("{f} files, {}", human_bytes(b.max(0) as u64)),
        _ => "-".into(),
    };
    let mut s = format!(
        "{}  {}  {}  {:<11}  {:>7}  {}",
        local(&r.started, tz),
        r.run_id,
        r.job,
        r.outcome,
        took(r),
        moved
    );
    if let Some(e) = &r.error {
        let kind = r.error_kind.as_deref().unwrap_or("error");
        s.push_str(&format!("  {kind}: {}", short(e, 80)));
    }
    s
}

/// Everything about one run, one field a line, then its syncs and hooks.
fn details(r: &RunRow, tz: &TimeZone) -> String {
    let opt = |v: &Option<String>| v.as_deref().map(|t| local(t, tz)).unwrap_or("-".into());
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or("-".into());
    let mut s = String::new();
    let mut f = |k: &str, v: String| s.push_str(&format!("{k:<15}{v}\n"));
    f("run", r.run_id.clone());
    f("job", r.job.clone());
    f("trigger", r.trigger.clone());
    f("slot", opt(&r.slot));
    f("outcome", r.outcome.clone());
    f("started", local(&r.started, tz));
    f(
        "lock acquired",
        format!("{} (waited {} ms)", opt(&r.lock_acquired), num(r.wait_ms)),
    );
    f("finished", opt(&r.finished));
    f("duration", took(r));
    if let Some(k) = &r.error_kind {
        f("error kind", k.clone());
    }
    if let Some(e) = &r.error {
        f("error", e.clone());
    }
    f("exit code", num(r.exit_code.map(i64::from)));
    f("files", num(r.files));
    f("bytes", num(r.bytes));
    f("total size", num(r.total_size));
    if !r.restore_points.is_empty() {
        f("restore points", r.restore_points.join(", "));
    }
    f("process", format!("pid {} (start {})", r.pid, r.pid_start));
    for st in r.steps.iter().flatten() {
        f(
            &format!("sync {}", st.sync),
            format!(
                "exit {} after {} attempt(s), {} files, {} bytes, {} → {}",
                num(st.exit_code.map(i64::from)),
                num(st.attempts.map(i64::from)),
                num(st.files),
                num(st.bytes),
                opt(&st.started),
                opt(&st.finished)
            ),
        );
    }
    for h in r.hooks.iter().flatten() {
        let ended = match (&h.exit_code, &h.error, &h.finished) {
            (_, _, None) => "not finished".to_string(),
            (_, Some(e), _) => format!("failed{}: {e}", if h.fatal { " (fatal)" } else { "" }),
            (Some(c), None, _) => format!("exit {c}"),
            (None, None, _) => "ended".to_string(),
        };
        f(
            &format!("{} {}", h.phase, h.index),
            format!(
                "{ended} after {} ms{}: {}",
                num(h.duration_ms.map(|d| d as i64)),
                if h.remote { " on the job's host" } else { "" },
                h.command
            ),
        );
    }
    s
}
