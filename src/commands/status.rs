//! `backupmanager status`: the typed status snapshot ([`crate::store::status`]) as JSON or as
//! text for a terminal.

use std::path::Path;

use jiff::Timestamp;

use crate::cli::Format;
use crate::config;
use crate::exit;
use crate::store::status::{self, Level, Status};

pub fn run(path: &Path, format: Format, only: &[String], check: bool) -> i32 {
    let loaded = config::load(path);
    let rendered = loaded.render();
    let (config, config_error) = match loaded.config {
        Some(c) => (Some(c), None),
        None => (
            None,
            Some(format!(
                "{}: invalid: {} error(s)",
                path.display(),
                loaded.errors()
            )),
        ),
    };
    // The daemon's registration: its directories win over an edited config (the snapshot
    // reads them and says they differ).
    let live = crate::store::live::find(path);
    if let (Some(l), Some(c)) = (&live, &config) {
        super::note_daemon_dirs(l, c);
    }
    if let Some(e) = &config_error {
        if live.is_none() || !check {
            eprintln!("{rendered}");
        }
        if live.is_none() {
            if check {
                println!("BACKUPMANAGER UNKNOWN - {e}; no running daemon registered for it");
                return Level::Unknown as i32;
            }
            eprintln!("{e}; cannot show status");
            return exit::CONFIG;
        }
        eprintln!("{e}; the config on disk is invalid: showing the running daemon's status");
    }
    if let Some(c) = &config {
        if let Some(bad) = only.iter().find(|id| c.job(id).is_none()) {
            if check {
                println!("BACKUPMANAGER UNKNOWN - no job `{bad}`");
                return Level::Unknown as i32;
            }
            return super::unknown_job(path, c, bad);
        }
    }
    let snap = status::snapshot(
        path,
        config.as_ref(),
        config_error,
        live.as_ref(),
        Timestamp::now(),
        only,
    );
    if check {
        println!("{}", snap.check.summary);
        return snap.check.code;
    }
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&snap).expect("status serializes")
        ),
        Format::Text => print!("{}", text(&snap)),
    }
    exit::OK
}

fn text(s: &Status) -> String {
    let mut out = String::new();
    match &s.daemon {
        Some(d) => out.push_str(&format!("daemon: running (pid {})\n", d.pid)),
        None => out.push_str(&format!(
            "daemon: not running (no lock on {})\n",
            s.pid_file.display()
        )),
    }
    if let Some(d) = &s.daemon {
        if d.dirs_differ_from_config {
            out.push_str(&format!(
                "    uses pid_file_dir {} and state_dir {} until it restarts\n",
                d.pid_file_dir.display(),
                d.state_dir.display()
            ));
        }
    }
    if let Some(e) = &s.config_error {
        out.push_str(&format!("config: {e} (the config on disk is invalid)\n"));
    }
    if let Some(e) = &s.state_error {
        out.push_str(&format!("state: {e}\n"));
    }
    if let Some(e) = &s.history_error {
        out.push_str(&format!("history: {e}\n"));
    }
    for j in &s.jobs {
        let mut line = format!("{}  [{}]", j.id, j.cron_schedule);
        if !j.enabled {
            line.push_str("  disabled");
        }
        if let Some(r) = &j.running {
            line.push_str(&format!("  RUNNING ({r})"));
        }
        match &j.next_run {
            Some(n) => line.push_str(&format!("  next {n}")),
            None if j.cron_schedule == "@reboot" => line.push_str("  next: at daemon start"),
            None => {}
        }
        out.push_str(&line);
        out.push('\n');
        let now = match (&j.waiting, &j.since) {
            (Some(w), _) => format!(
                "waiting on {} held by {} since {} ({})",
                w.lock.as_deref().unwrap_or("its run lock"),
                w.holder.as_deref().unwrap_or("another run"),
                w.since,
                w.reason
            ),
            (None, Some(t)) => match j.sync_index {
                Some(i) => format!("{} since {t} (sync {i})", j.state),
                None => format!("{} since {t}", j.state),
            },
            (None, None) => j.state.clone(),
        };
        out.push_str(&format!("    now: {now}\n"));
        match &j.last_success {
            Some(r) => out.push_str(&format!(
                "    last success: {} (run {})\n",
                r.finished.as_deref().unwrap_or(&r.started),
                r.run_id
            )),
            None => out.push_str("    last success: never\n"),
        }
        if let Some(r) = &j.last_failure {
            out.push_str(&format!(
                "    last failure: {} {} ({}): {}\n",
                r.finished.as_deref().unwrap_or(&r.started),
                r.outcome,
                r.error_kind.as_deref().unwrap_or("-"),
                r.error
                    .as_deref()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            ));
        }
        if j.check != "ok" {
            let over = if j.overdue { "OVERDUE: " } else { "" };
            out.push_str(&format!(
                "    {}: {over}{}\n",
                j.check.to_uppercase(),
                j.check_reason
            ));
        }
        match &j.last_run {
            Some(l) => {
                let msg = if l.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", l.message.lines().next().unwrap_or(""))
                };
                out.push_str(&format!(
                    "    last: {} at {} ({} ms, run {}){msg}\n",
                    l.result, l.finished, l.duration_ms, l.run_id
                ));
            }
            None => out.push_str("    last: never run by the daemon\n"),
        }
        out.push_str(&format!(
            "    runs {}, missed {}, skipped (still running) {}\n",
            j.runs, j.missed, j.skipped_overlap
        ));
    }
    out.push_str(&s.check.summary);
    out.push('\n');
    out
}
