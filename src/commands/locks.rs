//! `backupmanager locks [--format json]` and `locks break KEY [--yes]`: what holds the locks
//! and slots now (etcd: every key under the prefix, the fleet-wide view; lock files: each entry
//! of this config), and an operator's way to remove one.
//!
//! Breaking stops the holder's run: a run watches its etcd keys (`lock::etcd::guard`) and
//! refreshes its lock files (`run/held.rs`), and fails when one is gone.
//!
//! Must not: remove a lock file that is not a backupmanager record, or anything without the
//! operator's confirmation (`--yes` or a "y" on a terminal), or an etcd key that changed since
//! it was shown.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use serde_json::{json, Value};

use super::load_valid;
use crate::cli::{Format, LocksAction};
use crate::config::Config;
use crate::exit;
use crate::lock::etcd::{describe, Entry, EtcdLocks};
use crate::lock::{Holder, LockBackend, Observed};
use crate::plan::{self, canonical_lock, Plan};

pub fn run(path: &Path, action: Option<&LocksAction>, format: Format) -> i32 {
    let config = match load_valid(path, "cannot look at locks") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let plan = match plan::build(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    match action {
        None => list(&plan, format),
        Some(LocksAction::Break { key, yes }) => break_key(&plan, key, *yes),
    }
}

fn cluster(plan: &Plan) -> Option<&EtcdLocks> {
    plan.jobs
        .iter()
        .find_map(|j| j.etcd.as_ref())
        .map(|e| &*e.cluster)
}

fn record_json(h: &Holder) -> Value {
    match h {
        Holder::Ours(r) => serde_json::to_value(r).unwrap_or(Value::Null),
        Holder::Foreign(_) => Value::Null,
    }
}

/// Every lock file entry of the config, once: (canonical name, backend, path).
fn file_entries(plan: &Plan) -> Vec<(String, std::sync::Arc<dyn LockBackend>, String)> {
    let config: &Config = &plan.config;
    let mut out: Vec<(String, std::sync::Arc<dyn LockBackend>, String)> = Vec::new();
    for (job, built) in config.jobs.iter().zip(&plan.jobs) {
        let own = job.lock_files.iter().map(|l| (&l.location, &l.path));
        let blk = job.blocks_on.iter().map(|b| (&b.location, &b.path));
        let backends = built
            .locks
            .iter()
            .map(|l| &l.backend)
            .chain(built.blockers.iter().map(|b| &b.backend));
        for ((loc, path), backend) in own.chain(blk).zip(backends) {
            let name = canonical_lock(loc, path);
            if !out.iter().any(|(n, _, _)| *n == name) {
                out.push((name, backend.clone(), path.clone()));
            }
        }
    }
    out
}

fn list(plan: &Plan, format: Format) -> i32 {
    let mut code = exit::OK;
    let mut doc = json!({});
    let mut text = String::new();
    if let Some(c) = cluster(plan) {
        match c.list() {
            Ok(entries) => {
                let (locks, slots) = etcd_rows(plan, c, &entries);
                text.push_str(&format!("etcd ({}):\n", c.client.endpoints()));
                if locks.is_empty() && slots.is_empty() {
                    text.push_str("  nothing held\n");
                }
                for l in &locks {
                    text.push_str(&format!(
                        "  lock {}  held by {} (revision {})\n",
                        l["name"].as_str().unwrap_or(""),
                        l["holder"].as_str().unwrap_or(""),
                        l["create_revision"]
                    ));
                }
                for s in &slots {
                    text.push_str(&format!(
                        "  slot {} ({} at once)  {} {}\n",
                        s["slot"].as_str().unwrap_or(""),
                        s["size"],
                        if s["holding"] == json!(true) {
                            "held by"
                        } else {
                            "queued:"
                        },
                        s["holder"].as_str().unwrap_or("")
                    ));
                }
                doc["etcd"] = json!({"endpoints": c.client.endpoints(), "prefix": c.prefix, "locks": locks, "slots": slots});
            }
            Err(e) => {
                eprintln!("error: {e}");
                doc["etcd"] = json!({"endpoints": c.client.endpoints(), "error": e.to_string()});
                code = exit::FAILED;
            }
        }
    }
    if plan.config.coord.lock_backend.uses_files() {
        let mut files = Vec::new();
        text.push_str("lock files:\n");
        for (name, backend, path) in file_entries(plan) {
            match backend.observe(&path) {
                Ok(None) => {}
                Ok(Some(obs)) => {
                    text.push_str(&format!("  {name}  held by {obs}\n"));
                    files.push(json!({"name": name, "path": path, "host": backend.to_string(), "holder": obs.to_string(), "record": record_json(&obs.holder), "age_secs": obs.age.as_secs()}));
                }
                Err(e) => {
                    eprintln!("error: {name}: {e}");
                    files.push(json!({"name": name, "path": path, "host": backend.to_string(), "error": e.to_string()}));
                    code = exit::FAILED;
                }
            }
        }
        if files.is_empty() {
            text.push_str("  nothing held\n");
        }
        doc["files"] = json!(files);
    }
    match format {
        Format::Text => print!("{text}"),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("json serializes")
        ),
    }
    code
}

/// Lock rows and slot rows (each slot's keys in creation order: the first N hold it).
fn etcd_rows(plan: &Plan, c: &EtcdLocks, entries: &[Entry]) -> (Vec<Value>, Vec<Value>) {
    let locks_prefix = format!("{}/locks/", c.prefix);
    let slots_prefix = format!("{}/slots/", c.prefix);
    let mut locks = Vec::new();
    let mut slots = Vec::new();
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    for e in entries {
        if let Some(name) = e.key.strip_prefix(&locks_prefix) {
            locks.push(json!({"key": e.key, "name": name, "holder": describe(&e.holder), "record": record_json(&e.holder), "create_revision": e.create_revision, "lease": format!("{:x}", e.lease)}));
        } else if let Some(rest) = e.key.strip_prefix(&slots_prefix) {
            let slot = rest.split('/').next().unwrap_or("").to_string();
            let pos = seen.entry(slot.clone()).or_default();
            let size = plan.config.coord.slots.get(&slot).copied();
            slots.push(json!({"key": e.key, "slot": slot, "size": size, "position": *pos, "holding": size.is_some_and(|n| (*pos as u32) < n), "holder": describe(&e.holder), "record": record_json(&e.holder), "create_revision": e.create_revision}));
            *pos += 1;
        }
    }
    (locks, slots)
}

fn confirm(what: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        eprintln!("error: not breaking {what} without --yes (no terminal to ask on)");
        return false;
    }
    eprint!("break {what}? Its holder's run stops (etcd: at once; a lock file: at its next heartbeat). [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}

fn break_key(plan: &Plan, key: &str, yes: bool) -> i32 {
    let mut found = false;
    let mut code = exit::OK;
    if let Some(c) = cluster(plan) {
        let full = if key.starts_with(&format!("{}/", c.prefix)) {
            key.to_string()
        } else {
            c.lock_key(key)
        };
        match c.client.range(&full, None) {
            Ok((_, kvs)) if !kvs.is_empty() => {
                found = true;
                let holder = describe(&crate::lock::etcd::holder_of_value(&kvs[0].value));
                let what = format!("etcd key {full} (held by {holder})");
                if !yes && !confirm(&what) {
                    return exit::USAGE;
                }
                match c.break_key(&full, kvs[0].mod_revision) {
                    Ok(true) => tracing::warn!(
                        event = "lock_broken",
                        key = full,
                        holder,
                        "broke etcd key {full} held by {holder} (operator); that holder will stop its run: it watches its keys, so it stops rsync at once and fails naming the key"
                    ),
                    Ok(false) => {
                        eprintln!("etcd key {full} changed hands meanwhile; left alone")
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        code = exit::FAILED;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: {e}");
                code = exit::FAILED;
            }
        }
    }
    if plan.config.coord.lock_backend.uses_files() {
        for (name, backend, path) in file_entries(plan) {
            if name != key {
                continue;
            }
            match backend.observe(&path) {
                Ok(Some(Observed {
                    holder: Holder::Ours(rec),
                    age,
                })) => {
                    found = true;
                    let obs = Observed {
                        holder: Holder::Ours(rec.clone()),
                        age,
                    };
                    let what = format!("lock file {path} on {backend} (held by {obs})");
                    if !yes && !confirm(&what) {
                        return exit::USAGE;
                    }
                    match backend.release_if_token(&path, &rec.token) {
                        Ok(true) => tracing::warn!(
                            event = "lock_broken",
                            path,
                            host = backend.to_string(),
                            "broke lock file {path} on {backend} held by {obs} (operator); that holder will stop its run at its next heartbeat"
                        ),
                        Ok(false) => {
                            eprintln!("{path} on {backend} changed hands meanwhile; left alone")
                        }
                        Err(e) => {
                            eprintln!("error: {e}");
                            code = exit::FAILED;
                        }
                    }
                }
                Ok(Some(obs)) => {
                    eprintln!("error: {path} on {backend} is {obs}; backupmanager never removes a file it did not write");
                    return exit::FAILED;
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("error: {e}");
                    code = exit::FAILED;
                }
            }
        }
    }
    if !found && code == exit::OK {
        eprintln!("nothing holds {key}");
    }
    code
}
