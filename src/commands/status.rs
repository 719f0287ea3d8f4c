//! `backupmanager status`: the typed status snapshot ([`crate::store::status`]) as JSON or as
//! text for a terminal.

use std::path::Path;

use jiff::Timestamp;

use crate::cli::Format;
use crate::exit;
use crate::store::status::{self, Status};

pub fn run(path: &Path, format: Format) -> i32 {
    let config = match super::load_valid(path, "cannot show status") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let snap = status::snapshot(path, &config, Timestamp::now());
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
    if let Some(e) = &s.state_error {
        out.push_str(&format!("state: {e}\n"));
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
    out
}
