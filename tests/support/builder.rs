//! Typed builders for test configs: [`ConfigBuilder`] (the file), [`JobBuilder`] (one job),
//! [`LockFile`], [`Blocker`] and [`SyncEntry`] (its entries). Tests say what a job does; the YAML text
//! comes from here, never from `format!`.
//!
//! The text: block style, 2-space indents, list items indented under their key, every string
//! scalar double-quoted and escaped by [`quote`] (so paths with quotes, `$(…)`, `#`, `: ` or
//! unicode stay exactly what the test wrote), numbers and booleans plain. The layout is fixed so
//! a test can append literal text ([`ConfigBuilder::raw_jobs`]) whose error positions it checks.
//! Every built document is read back with `serde_yaml_ng` (an independent YAML reader) and must
//! equal what was built.
//!
//! Must not: know defaults or validate; a builder writes what it is told, nothing more.
use std::fs;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use super::scratch::Scratch;

fn text(p: impl AsRef<Path>) -> String {
    let p = p.as_ref();
    p.to_str()
        .unwrap_or_else(|| panic!("config paths are UTF-8: {}", p.display()))
        .to_string()
}

fn put(m: &mut Mapping, key: &str, v: impl Into<Value>) {
    m.insert(Value::String(key.into()), v.into());
}

/// An SSH endpoint as a job or a remote entry names it (`user`, `host`, `port`).
#[derive(Clone, Debug)]
pub struct Remote {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Remote {
    pub fn new(user: &str, host: &str, port: u16) -> Remote {
        Remote {
            user: Some(user.into()),
            host: host.into(),
            port: Some(port),
        }
    }

    fn put(&self, m: &mut Mapping) {
        put(m, "host", self.host.as_str());
        if let Some(p) = self.port {
            put(m, "port", p);
        }
        if let Some(u) = &self.user {
            put(m, "user", u.as_str());
        }
    }
}

/// Where a lock file or blocker lives: here, or remote (on the job's host, or on its own).
#[derive(Clone, Debug)]
enum Place {
    Local,
    Remote(Option<Remote>),
}

impl Place {
    fn put(&self, m: &mut Mapping) {
        match self {
            Place::Local => put(m, "type", "local"),
            Place::Remote(r) => {
                put(m, "type", "remote");
                if let Some(r) = r {
                    r.put(m);
                }
            }
        }
    }

    fn on(&mut self, r: &Remote) {
        match self {
            Place::Local => panic!("a local entry has no host"),
            Place::Remote(at) => *at = Some(r.clone()),
        }
    }
}

/// A `lock_files` entry.
#[derive(Clone, Debug)]
pub struct LockFile {
    place: Place,
    path: String,
}

impl LockFile {
    pub fn local(path: impl AsRef<Path>) -> LockFile {
        LockFile {
            place: Place::Local,
            path: text(path),
        }
    }
    /// On the job's host.
    pub fn remote(path: impl AsRef<Path>) -> LockFile {
        LockFile {
            place: Place::Remote(None),
            path: text(path),
        }
    }
    /// Names its own host (a remote entry only).
    pub fn on(mut self, r: &Remote) -> LockFile {
        self.place.on(r);
        self
    }

    fn value(&self) -> Value {
        let mut m = Mapping::new();
        self.place.put(&mut m);
        put(&mut m, "path", self.path.as_str());
        m.into()
    }
}

/// A `blocks_on` entry.
#[derive(Clone, Debug)]
pub struct Blocker {
    place: Place,
    path: String,
    wait_time: String,
    stale_after: Option<String>,
}

impl Blocker {
    pub fn local(path: impl AsRef<Path>, wait_time: &str) -> Blocker {
        Blocker {
            place: Place::Local,
            path: text(path),
            wait_time: wait_time.into(),
            stale_after: None,
        }
    }
    /// On the job's host.
    pub fn remote(path: impl AsRef<Path>, wait_time: &str) -> Blocker {
        Blocker {
            place: Place::Remote(None),
            ..Blocker::local(path, wait_time)
        }
    }
    /// Names its own host (a remote entry only).
    pub fn on(mut self, r: &Remote) -> Blocker {
        self.place.on(r);
        self
    }
    pub fn stale_after(mut self, d: &str) -> Blocker {
        self.stale_after = Some(d.into());
        self
    }

    fn value(&self) -> Value {
        let mut m = Mapping::new();
        self.place.put(&mut m);
        put(&mut m, "lock_file_path", self.path.as_str());
        put(&mut m, "wait_time", self.wait_time.as_str());
        if let Some(s) = &self.stale_after {
            put(&mut m, "stale_after", s.as_str());
        }
        m.into()
    }
}

/// A `syncs` entry (named so it does not shadow `std::marker::Sync`).
#[derive(Clone, Debug)]
pub struct SyncEntry {
    source: String,
    dest: String,
    opts: Vec<String>,
    allow_empty_source: bool,
    max_delete: Option<u64>,
}

impl SyncEntry {
    /// `opts` is written only when not empty.
    pub fn new(source: impl AsRef<Path>, dest: impl AsRef<Path>, opts: &[&str]) -> SyncEntry {
        SyncEntry {
            source: text(source),
            dest: text(dest),
            opts: opts.iter().map(|o| o.to_string()).collect(),
            allow_empty_source: false,
            max_delete: None,
        }
    }
    pub fn max_delete(mut self, n: u64) -> SyncEntry {
        self.max_delete = Some(n);
        self
    }
    pub fn allow_empty_source(mut self) -> SyncEntry {
        self.allow_empty_source = true;
        self
    }

    fn value(&self) -> Value {
        let mut m = Mapping::new();
        put(&mut m, "source", self.source.as_str());
        put(&mut m, "dest", self.dest.as_str());
        if !self.opts.is_empty() {
            put(&mut m, "opts", self.opts.clone());
        }
        if self.allow_empty_source {
            put(&mut m, "allow_empty_source", true);
        }
        if let Some(n) = self.max_delete {
            put(&mut m, "max_delete", n);
        }
        m.into()
    }
}

/// One job. Its keys are written in the order they are set, after `id`; then `lock_files`,
/// `blocks_on` and `syncs`.
#[derive(Clone, Debug)]
pub struct JobBuilder {
    id: String,
    settings: Mapping,
    lock_files: Vec<LockFile>,
    blocks_on: Vec<Blocker>,
    syncs: Vec<SyncEntry>,
}

impl JobBuilder {
    pub fn new(id: &str) -> JobBuilder {
        JobBuilder {
            id: id.into(),
            settings: Mapping::new(),
            lock_files: Vec::new(),
            blocks_on: Vec::new(),
            syncs: Vec::new(),
        }
    }

    fn set(mut self, key: &str, v: impl Into<Value>) -> Self {
        put(&mut self.settings, key, v);
        self
    }

    pub fn cron_schedule(self, expr: &str) -> Self {
        self.set("cron_schedule", expr)
    }
    /// `uses_slots: [...]`.
    pub fn uses_slots(self, names: &[&str]) -> Self {
        self.set(
            "uses_slots",
            Value::Sequence(names.iter().map(|n| Value::from(*n)).collect()),
        )
    }
    /// Any other job key, from YAML text (`hooks`, ...).
    pub fn yaml(self, key: &str, yaml: &str) -> Self {
        let v: Value = serde_yaml_ng::from_str(yaml)
            .unwrap_or_else(|e| panic!("test YAML for `{key}` ({e}):\n{yaml}"));
        self.set(key, v)
    }
    /// `host`, `port`, `user`: the syncs' destination host, inherited by remote entries.
    pub fn remote(mut self, r: &Remote) -> Self {
        r.put(&mut self.settings);
        self
    }
    pub fn identity_file(self, p: impl AsRef<Path>) -> Self {
        self.set("identity_file", text(p))
    }
    pub fn known_hosts_file(self, p: impl AsRef<Path>) -> Self {
        self.set("known_hosts_file", text(p))
    }
    pub fn retries(self, n: u32) -> Self {
        self.set("retries", n)
    }
    pub fn max_wait(self, d: &str) -> Self {
        self.set("max_wait", d)
    }
    pub fn alert_after(self, d: &str) -> Self {
        self.set("alert_after", d)
    }
    pub fn timeout(self, d: &str) -> Self {
        self.set("timeout", d)
    }
    pub fn lock_heartbeat(self, d: &str) -> Self {
        self.set("lock_heartbeat", d)
    }
    /// The lease written into the job's own lock records.
    pub fn stale_after(self, d: &str) -> Self {
        self.set("stale_after", d)
    }
    pub fn on_missed(self, what: &str) -> Self {
        self.set("on_missed", what)
    }
    pub fn enabled(self, on: bool) -> Self {
        self.set("enabled", on)
    }
    /// `direction: push` or `pull`.
    pub fn direction(self, d: &str) -> Self {
        self.set("direction", d)
    }
    /// `mode: snapshot` with a `retention:` block of `(key, value)` pairs; values that parse as
    /// integers are written as numbers (`keep_last: 3`), the rest as strings (`all`, `2d`).
    pub fn snapshot(self, retention: &[(&str, &str)]) -> Self {
        let mut r = Mapping::new();
        for (k, v) in retention {
            match v.parse::<u64>() {
                Ok(n) => put(&mut r, k, n),
                Err(_) => put(&mut r, k, *v),
            }
        }
        self.set("mode", "snapshot")
            .set("retention", Value::Mapping(r))
    }

    /// `mode: archive` with a `retention:` block (as [`JobBuilder::snapshot`]) and an
    /// `archive:` block of `(key, value)` pairs (numbers as numbers).
    pub fn archive(self, retention: &[(&str, &str)], archive: &[(&str, &str)]) -> Self {
        let mut a = Mapping::new();
        for (k, v) in archive {
            match v.parse::<u64>() {
                Ok(n) => put(&mut a, k, n),
                Err(_) => put(&mut a, k, *v),
            }
        }
        let s = self.snapshot(retention).set("mode", "archive");
        if archive.is_empty() {
            s
        } else {
            s.set("archive", Value::Mapping(a))
        }
    }

    pub fn lock(mut self, l: LockFile) -> Self {
        self.lock_files.push(l);
        self
    }
    pub fn lock_local(self, path: impl AsRef<Path>) -> Self {
        self.lock(LockFile::local(path))
    }
    pub fn lock_remote(self, path: impl AsRef<Path>) -> Self {
        self.lock(LockFile::remote(path))
    }

    pub fn blocks_on(mut self, b: Blocker) -> Self {
        self.blocks_on.push(b);
        self
    }
    pub fn blocks_on_local(self, path: impl AsRef<Path>, wait_time: &str) -> Self {
        self.blocks_on(Blocker::local(path, wait_time))
    }
    pub fn blocks_on_remote(self, path: impl AsRef<Path>, wait_time: &str) -> Self {
        self.blocks_on(Blocker::remote(path, wait_time))
    }

    pub fn sync_entry(mut self, s: SyncEntry) -> Self {
        self.syncs.push(s);
        self
    }
    pub fn sync(self, source: impl AsRef<Path>, dest: impl AsRef<Path>, opts: &[&str]) -> Self {
        self.sync_entry(SyncEntry::new(source, dest, opts))
    }

    fn value(&self) -> Value {
        let mut m = Mapping::new();
        put(&mut m, "id", self.id.as_str());
        for (k, v) in &self.settings {
            m.insert(k.clone(), v.clone());
        }
        let list = |v: Vec<Value>| Value::Sequence(v);
        if !self.lock_files.is_empty() {
            put(
                &mut m,
                "lock_files",
                list(self.lock_files.iter().map(LockFile::value).collect()),
            );
        }
        if !self.blocks_on.is_empty() {
            put(
                &mut m,
                "blocks_on",
                list(self.blocks_on.iter().map(Blocker::value).collect()),
            );
        }
        put(
            &mut m,
            "syncs",
            list(self.syncs.iter().map(SyncEntry::value).collect()),
        );
        m.into()
    }
}

/// A config file (or a drop-in: jobs only). Top-level keys come first, in the order set, then
/// `jobs` (omitted when there are none).
#[derive(Clone, Debug, Default)]
pub struct ConfigBuilder {
    settings: Mapping,
    jobs: Vec<JobBuilder>,
    raw_jobs: String,
}

impl ConfigBuilder {
    pub fn new() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    fn set(mut self, key: &str, v: impl Into<Value>) -> Self {
        put(&mut self.settings, key, v);
        self
    }

    /// The top level most tests use: `cron_schedule: "0 3 * * *"`, runtime dir `<t>/r`, state
    /// dir `<t>/state`.
    pub fn in_scratch(t: &Scratch) -> ConfigBuilder {
        ConfigBuilder::new()
            .cron_schedule("0 3 * * *")
            .pid_file_dir(t.p("r"))
            .state_dir(t.p("state"))
    }

    pub fn cron_schedule(self, expr: &str) -> Self {
        self.set("cron_schedule", expr)
    }
    pub fn pid_file_dir(self, p: impl AsRef<Path>) -> Self {
        self.set("pid_file_dir", text(p))
    }
    pub fn state_dir(self, p: impl AsRef<Path>) -> Self {
        self.set("state_dir", text(p))
    }
    pub fn shutdown_timeout(self, d: &str) -> Self {
        self.set("shutdown_timeout", d)
    }
    pub fn metrics_textfile(self, p: impl AsRef<Path>) -> Self {
        self.set("metrics_textfile", text(p))
    }
    pub fn history_keep(self, d: &str) -> Self {
        self.set("history_keep", d)
    }
    /// `http: {listen: [...], token_file: ...}` (the web status page).
    pub fn http(self, listen: &[&str], token_file: Option<&Path>) -> Self {
        let mut m = Mapping::new();
        let l: Vec<Value> = listen.iter().map(|s| Value::from(*s)).collect();
        put(&mut m, "listen", Value::Sequence(l));
        if let Some(t) = token_file {
            put(&mut m, "token_file", text(t));
        }
        self.set("http", Value::Mapping(m))
    }
    /// `lock_backend: files | etcd | both`.
    pub fn lock_backend(self, kind: &str) -> Self {
        self.set("lock_backend", kind)
    }
    /// `etcd: {endpoints, lease_ttl, prefix}`.
    pub fn etcd(self, endpoints: &[String], lease_ttl: &str, prefix: &str) -> Self {
        let mut m = Mapping::new();
        put(
            &mut m,
            "endpoints",
            Value::Sequence(endpoints.iter().map(|e| Value::from(e.as_str())).collect()),
        );
        put(&mut m, "lease_ttl", lease_ttl);
        put(&mut m, "prefix", prefix);
        self.set("etcd", m)
    }
    /// `slots: {name: n, ...}`.
    pub fn slots(self, slots: &[(&str, u32)]) -> Self {
        let mut m = Mapping::new();
        for (name, n) in slots {
            put(&mut m, name, Value::from(*n));
        }
        self.set("slots", m)
    }

    pub fn job(mut self, j: JobBuilder) -> Self {
        self.jobs.push(j);
        self
    }
    pub fn jobs<'a>(self, js: impl IntoIterator<Item = &'a JobBuilder>) -> Self {
        js.into_iter().fold(self, |c, j| c.job(j.clone()))
    }

    /// Literal job list items (indented by 2, like the built ones) appended after the built jobs:
    /// only for tests about the text itself (the line:col of an error in it).
    pub fn raw_jobs(mut self, yaml: &str) -> Self {
        self.raw_jobs.push_str(yaml);
        self
    }

    /// The document as data (what the text must read back as).
    pub fn value(&self) -> Value {
        let mut m = self.settings.clone();
        if !self.jobs.is_empty() {
            put(
                &mut m,
                "jobs",
                Value::Sequence(self.jobs.iter().map(JobBuilder::value).collect()),
            );
        }
        m.into()
    }

    pub fn to_yaml(&self) -> String {
        let value = self.value();
        let Value::Mapping(m) = &value else {
            unreachable!()
        };
        let mut out = String::new();
        emit_map(&mut out, m, 0);
        let back: Value = serde_yaml_ng::from_str(&out)
            .unwrap_or_else(|e| panic!("the builder wrote invalid YAML ({e}):\n{out}"));
        assert_eq!(
            back, value,
            "the builder's YAML reads back differently:\n{out}"
        );
        if !self.raw_jobs.is_empty() {
            if self.jobs.is_empty() {
                out.push_str("jobs:\n");
            }
            out.push_str(&self.raw_jobs);
        }
        out
    }

    /// Writes the text to `path`; returns `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        fs::write(path, self.to_yaml()).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path.to_path_buf()
    }
}

// ---------------------------------------------------------------------------------------------
// The writer

/// A YAML double-quoted scalar holding exactly `s`: `"` and `\` escaped, and every character
/// YAML does not allow raw (control characters, DEL, C1 controls, the BOM) as an escape.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            ' '..='~'
            | '\u{a0}'..='\u{d7ff}'
            | '\u{e000}'..='\u{fefe}'
            | '\u{ff00}'..='\u{fffd}'
            | '\u{10000}'.. => q.push(c),
            c => q.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    q.push('"');
    q
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Sequence(s) if s.is_empty() => "[]".into(),
        Value::Mapping(m) if m.is_empty() => "{}".into(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn emit_map(out: &mut String, m: &Mapping, indent: usize) {
    for (k, v) in m {
        let k = k.as_str().expect("config keys are strings");
        assert!(
            k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "key {k:?} would need quoting"
        );
        out.push_str(&" ".repeat(indent));
        out.push_str(k);
        out.push(':');
        match v {
            Value::Sequence(items) if !items.is_empty() => {
                out.push('\n');
                for item in items {
                    emit_item(out, item, indent + 2);
                }
            }
            Value::Mapping(inner) if !inner.is_empty() => {
                out.push('\n');
                emit_map(out, inner, indent + 2);
            }
            _ => {
                out.push(' ');
                out.push_str(&scalar(v));
                out.push('\n');
            }
        }
    }
}

/// `- item` at `indent`; a mapping item's first key goes on the dash's line.
fn emit_item(out: &mut String, v: &Value, indent: usize) {
    out.push_str(&" ".repeat(indent));
    out.push_str("- ");
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            let mut body = String::new();
            emit_map(&mut body, m, indent + 2);
            out.push_str(&body[indent + 2..]);
        }
        Value::Sequence(s) if !s.is_empty() => panic!("nested lists are not written"),
        _ => {
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
}
