//! `backupmanager validate`: lint the configuration the way the daemon will read it.

use std::path::Path;

use serde_json::json;

use crate::cli::Format;
use crate::config;
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
