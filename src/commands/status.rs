//! `backupmanager status`: is the daemon running, and for each job its schedule, next run, last
//! result and whether a run is in progress. Read-only: it reads `state.json` and probes the pid
//! file's and the per-job run locks' kernel locks without taking them for longer than a probe.

use std::fs;
use std::path::Path;

use jiff::Timestamp;
use serde_json::json;

use crate::cli::Format;
use crate::commands::next::rfc3339;
use crate::daemon::{plan, state};
use crate::exit;

/// Who holds a kernel lock on `path`, if anyone: the file's first line (the holder writes its
/// pid there), else the pid from `/proc/locks`. Read from `/proc/locks` rather than by trying the
/// lock, so a status probe can never make a starting daemon or a `--no-wait` run think it is held.
fn lock_holder(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok()?;
    let (major, minor) = (
        nix::sys::stat::major(meta.dev()),
        nix::sys::stat::minor(meta.dev()),
    );
    let locks = fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
    let pid = locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (pid, dev_ino) = (f.get(4)?, f.get(5)?);
        let mut parts = dev_ino.split(':');
        let maj = u64::from_str_radix(parts.next()?, 16).ok()?;
        let min = u64::from_str_radix(parts.next()?, 16).ok()?;
        let ino: u64 = parts.next()?.parse().ok()?;
        (f.get(1) == Some(&"FLOCK") && maj == major && min == minor && ino == meta.ino())
            .then(|| pid.to_string())
    })?;
    let first = fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    Some(if first.is_empty() {
        format!("pid {pid}")
    } else {
        first
    })
}

pub fn run(path: &Path, format: Format) -> i32 {
    let config = match super::load_valid(path, "cannot show status") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let now = Timestamp::now();
    let tz = &config.timezone.tz;
    let st = state::load(&config.state_dir);
    let daemon = lock_holder(&config.pid_file_dir.join("backupmanager.pid"));
    let jobs: Vec<serde_json::Value> = config
        .jobs
        .iter()
        .map(|job| {
            let js = st.jobs.get(&job.id).cloned().unwrap_or_default();
            let next = if !job.enabled || job.schedule.is_reboot() {
                None
            } else {
                let covered = js.covered_until().unwrap_or(now);
                plan::next_wake(&job.schedule, tz, covered, now)
            };
            let running = lock_holder(
                &config
                    .pid_file_dir
                    .join("jobs")
                    .join(format!("{}.run", job.id)),
            );
            json!({
                "id": job.id,
                "enabled": job.enabled,
                "cron_schedule": job.schedule.expr(),
                "next_run": next.map(|t| rfc3339(t, tz)),
                "running": running,
                "last_run": js.last_run,
                "runs": js.runs,
                "missed": js.missed,
                "skipped_overlap": js.skipped_overlap,
            })
        })
        .collect();

    match format {
        Format::Json => {
            let doc = json!({
                "config": path,
                "daemon": daemon.as_ref().map(|pid| json!({"pid": pid})),
                "state_file": state::path(&config.state_dir),
                "jobs": jobs,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).expect("json serializes")
            );
        }
        Format::Text => {
            match &daemon {
                Some(pid) => println!("daemon: running (pid {pid})"),
                None => println!(
                    "daemon: not running (no lock on {})",
                    config.pid_file_dir.join("backupmanager.pid").display()
                ),
            }
            for j in &jobs {
                let mut line = format!(
                    "{}  [{}]",
                    j["id"].as_str().unwrap_or(""),
                    j["cron_schedule"].as_str().unwrap_or("")
                );
                if j["enabled"] == false {
                    line.push_str("  disabled");
                }
                if let Some(r) = j["running"].as_str() {
                    line.push_str(&format!("  RUNNING ({r})"));
                }
                match j["next_run"].as_str() {
                    Some(n) => line.push_str(&format!("  next {n}")),
                    None if j["cron_schedule"] == "@reboot" => {
                        line.push_str("  next: at daemon start")
                    }
                    None => {}
                }
                println!("{line}");
                match j["last_run"].as_object() {
                    Some(l) => {
                        let msg = l.get("message").and_then(|m| m.as_str()).unwrap_or("");
                        println!(
                            "    last: {} at {} ({} ms, run {}){}",
                            l.get("result").and_then(|v| v.as_str()).unwrap_or("?"),
                            l.get("finished").and_then(|v| v.as_str()).unwrap_or("?"),
                            l.get("duration_ms").and_then(|v| v.as_u64()).unwrap_or(0),
                            l.get("run_id").and_then(|v| v.as_str()).unwrap_or("?"),
                            if msg.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", msg.lines().next().unwrap_or(""))
                            }
                        );
                    }
                    None => println!("    last: never run by the daemon"),
                }
                println!(
                    "    runs {}, missed {}, skipped (still running) {}",
                    j["runs"], j["missed"], j["skipped_overlap"]
                );
            }
        }
    }
    exit::OK
}
