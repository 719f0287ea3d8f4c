//! `backupmanager validate`: lint the configuration the way the daemon will read it.

use std::path::Path;

use serde_json::json;

use crate::cli::Format;
use crate::config::{self, Config, Direction};
use crate::exit;

pub fn run(path: &Path, format: Format) -> i32 {
    let loaded = config::load(path);
    let code = if loaded.errors() > 0 {
        exit::CONFIG
    } else {
        exit::OK
    };
    match format {
        Format::Json => {
            let jobs: Vec<_> = loaded
                .config
                .iter()
                .flat_map(|c| &c.jobs)
                .map(|j| {
                    json!({
                        "id": j.id,
                        "enabled": j.enabled,
                        "cron_schedule": j.schedule.expr(),
                        "file": &*j.origin.file,
                        "line": j.origin.line,
                        "direction": match j.direction {
                            Direction::Push => "push",
                            Direction::Pull => "pull",
                        },
                    })
                })
                .collect();
            let doc = json!({
                "valid": code == exit::OK,
                "config": path,
                "errors": loaded.errors(),
                "warnings": loaded.warnings(),
                "diagnostics": loaded.diagnostics,
                "jobs": jobs,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).expect("json values serialize")
            );
        }
        Format::Text => {
            if !loaded.diagnostics.is_empty() {
                eprintln!("{}", loaded.render());
            }
            match &loaded.config {
                Some(c) => {
                    let enabled = c.jobs.iter().filter(|j| j.enabled).count();
                    println!(
                        "{}: ok: {} job(s) ({} enabled) in {} file(s){}",
                        path.display(),
                        c.jobs.len(),
                        enabled,
                        c.files.len(),
                        plural_warnings(loaded.warnings())
                    );
                    for line in pull_lines(c) {
                        println!("{line}");
                    }
                }
                None => eprintln!(
                    "{}: invalid: {} error(s){}",
                    path.display(),
                    loaded.errors(),
                    plural_warnings(loaded.warnings())
                ),
            }
        }
    }
    // The process exits next: freeing a large config (thousands of nodes and paths) is pure cost.
    std::mem::forget(loaded);
    code
}

fn plural_warnings(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => ", 1 warning".into(),
        n => format!(", {n} warnings"),
    }
}

/// One line per pull job, saying which way it copies and where its locks are.
fn pull_lines(c: &Config) -> Vec<String> {
    c.jobs
        .iter()
        .filter(|j| j.direction == Direction::Pull)
        .filter_map(|j| {
            let r = j.remote.as_ref()?;
            let host = match &r.user {
                Some(u) => format!("{u}@{}", r.host),
                None => r.host.clone(),
            };
            let locks = |remote: usize, total: usize| {
                format!("{} here, {remote} remote", total - remote)
            };
            let remote_locks = j
                .lock_files
                .iter()
                .filter(|l| l.location != config::Location::Local)
                .count();
            Some(format!(
                "  job {} pulls from {host}: sources are paths on {}, dests are here{}; lock files: {}",
                j.id,
                r.host,
                if j.mode == config::Mode::Snapshot {
                    " (the snapshot series too)"
                } else {
                    ""
                },
                locks(remote_locks, j.lock_files.len())
            ))
        })
        .collect()
}
