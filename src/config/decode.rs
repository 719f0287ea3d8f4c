//! The spanned YAML tree → [`Config`], collecting every problem on the way.
//!
//! Decoding never stops at the first error: each field is checked on its own and a bad one is
//! reported and skipped, so one `validate` run lists everything that is wrong, each with its
//! `file:line:col`, its config path and what to do. Checks that need several fields (a job waiting
//! on its own lock, `-e` on a remote job, duplicate ids across files) run once a job is decoded.
//!
//! Key lists here are the single list of what each section accepts: anything else is an unknown
//! key, reported with the closest known key as a suggestion.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diag::{self, Diagnostic, Span};
use super::fields::{self, Section};
use super::yaml::{self, Node, Scalar, Value};
use super::{
    duration, words, Blocker, Config, Job, Loaded, Location, LockFile, OnMissed, Remote,
    SshSettings, Sync, Zone, DEFAULT_INCLUDE,
};
use crate::schedule::Schedule;

const REMOTE_ONLY: &[&str] = &["user", "host", "port"];

const DEFAULT_PID_DIR: &str = "/run/backupmanager";
const DEFAULT_STATE_DIR: &str = "/var/lib/backupmanager";
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const DEFAULT_RETRIES: u32 = 2;
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);
const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(600);
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn load(main: &Path) -> Loaded {
    let mut d = Decoder::default();
    let config = d.load(main);
    diag::sort(&mut d.diags);
    let has_errors = d.diags.iter().any(Diagnostic::is_error);
    Loaded {
        config: if has_errors { None } else { config },
        diagnostics: d.diags,
        sources: d.sources,
    }
}

#[derive(Default)]
pub(super) struct Decoder {
    diags: Vec<Diagnostic>,
    sources: BTreeMap<PathBuf, String>,
}

/// Job-level values that lock files, blockers and syncs inherit.
struct JobCtx<'a> {
    path: &'a str,
    user: Option<String>,
    host: Option<String>,
    port: Option<u16>,
}

impl Decoder {
    pub(super) fn err(
        &mut self,
        span: Span,
        path: &str,
        msg: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(span, path, msg));
        self.diags.last_mut().expect("just pushed")
    }

    fn warn(&mut self, span: Span, path: &str, msg: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::warning(span, path, msg));
        self.diags.last_mut().expect("just pushed")
    }

    /// Reads a file and parses it into a tree; problems become diagnostics.
    fn read(&mut self, file: &Path) -> Option<Node> {
        let text = match std::fs::read(file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(e) => {
                    let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                    let (line, col) = diag::end_position(&String::from_utf8_lossy(upto));
                    self.err(
                        Span::new(file, line, col, 1),
                        "",
                        "the file is not valid UTF-8",
                    )
                    .help = Some("save the config file as UTF-8".into());
                    return None;
                }
            },
            Err(e) => {
                self.err(
                    Span::new(file, 0, 0, 0),
                    "",
                    format!("cannot read config file: {e}"),
                )
                .help = Some(if e.kind() == std::io::ErrorKind::NotFound {
                    "pass the right file with --config PATH or BACKUPMANAGER_CONFIG".into()
                } else {
                    "check the file's permissions".into()
                });
                return None;
            }
        };
        let parsed = yaml::parse(&text, file);
        self.sources.insert(file.to_path_buf(), text);
        match parsed {
            Ok((node, diags)) => {
                self.diags.extend(diags);
                Some(node)
            }
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    fn load(&mut self, main: &Path) -> Option<Config> {
        let root = self.read(main)?;
        let top = self.fields(&root, "", &fields::TOP)?;

        let default_schedule = top
            .get("cron_schedule")
            .and_then(|n| self.schedule(n, "cron_schedule"));
        let pid_file_dir = top
            .get("pid_file_dir")
            .and_then(|n| self.abs_path(n, "pid_file_dir"))
            .unwrap_or_else(|| DEFAULT_PID_DIR.into());
        let state_dir = top
            .get("state_dir")
            .and_then(|n| self.abs_path(n, "state_dir"))
            .unwrap_or_else(|| DEFAULT_STATE_DIR.into());
        let shutdown_timeout = top
            .get("shutdown_timeout")
            .and_then(|n| self.positive_duration(n, "shutdown_timeout"))
            .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
        let timezone = match top.get("timezone") {
            None => Some(Zone::system()),
            Some(n) => self.timezone(n),
        };

        // Jobs: main file first, then drop-ins in sorted order. The drop-in trees are kept and
        // their job nodes borrowed, not cloned (cloning was ~15% of `validate` on 1,000 jobs).
        let mut files = vec![main.to_path_buf()];
        let mut dropins: Vec<Node> = Vec::new();
        for file in self.includes(main, top.get("include")) {
            if let Some(root) = self.read(&file) {
                dropins.push(root);
            }
            files.push(file);
        }
        let mut job_nodes: Vec<&Node> = Vec::new();
        if let Some(jobs) = top.get("jobs") {
            if let Some(items) = self.list(jobs, "jobs") {
                job_nodes.extend(items);
            }
        }
        for root in &dropins {
            if root.is_null() {
                continue;
            }
            let Some(f) = self.fields(root, "", &fields::DROPIN) else {
                continue;
            };
            if let Some(items) = f.get("jobs").and_then(|n| self.list(n, "jobs")) {
                job_nodes.extend(items);
            }
        }

        let mut jobs: Vec<Job> = Vec::new();
        let mut seen: HashMap<String, Span> = HashMap::new();
        for (i, node) in job_nodes.iter().enumerate() {
            let Some(job) = self.job(node, i, default_schedule.as_ref()) else {
                continue;
            };
            if let Some(first) = seen.get(&job.id) {
                let help = format!(
                    "job ids must be unique across all files; the first `{}` is at {}:{}:{}",
                    job.id,
                    first.file.display(),
                    first.line,
                    first.col
                );
                self.err(
                    job.origin.clone(),
                    &format!("jobs[{}].id", job.id),
                    format!("duplicate job id `{}`", job.id),
                )
                .help = Some(help);
                continue;
            }
            seen.insert(job.id.clone(), job.origin.clone());
            jobs.push(job);
        }
        if job_nodes.is_empty() {
            self.warn(
                root.span.clone(),
                "jobs",
                "no jobs are defined; the daemon will idle",
            )
            .help = Some(format!(
                "add jobs under `jobs:` here or in {} next to this file",
                DEFAULT_INCLUDE
            ));
        }

        Some(Config {
            main_file: main.to_path_buf(),
            files,
            pid_file_dir,
            state_dir,
            timezone: timezone?,
            shutdown_timeout,
            jobs,
        })
    }

    /// Drop-in files: `include:` globs (relative to the main file's directory), or `jobs.d/*.yaml`.
    fn includes(&mut self, main: &Path, node: Option<&Node>) -> Vec<PathBuf> {
        let base = main.parent().unwrap_or(Path::new("."));
        let mut patterns: Vec<(String, Option<Span>)> = Vec::new();
        match node {
            None => patterns.push((DEFAULT_INCLUDE.into(), None)),
            Some(n) => {
                if let Some(items) = self.list(n, "include") {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(s) = self.string(item, &format!("include[{i}]")) {
                            patterns.push((s, Some(item.inner_span(0, 1))));
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (pattern, span) in patterns {
            let full = if Path::new(&pattern).is_absolute() {
                PathBuf::from(&pattern)
            } else {
                base.join(&pattern)
            };
            match glob::glob(&full.to_string_lossy()) {
                Ok(paths) => {
                    let mut found: Vec<PathBuf> = paths
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .collect();
                    found.sort();
                    for p in found {
                        if p != main && !out.contains(&p) {
                            out.push(p);
                        }
                    }
                }
                Err(e) => {
                    if let Some(span) = span {
                        self.err(
                            span,
                            "include",
                            format!("bad glob pattern `{pattern}`: {e}"),
                        );
                    }
                }
            }
        }
        out
    }

    fn job(
        &mut self,
        node: &Node,
        index: usize,
        default_schedule: Option<&Schedule>,
    ) -> Option<Job> {
        let idx_path = format!("jobs[{index}]");
        // Name the job by its id in every path, unknown keys included, when the id is readable.
        let peeked = match &node.value {
            Value::Map(entries) => entries
                .iter()
                .find_map(|(k, v)| match (&k.value, &v.value) {
                    (Value::Scalar { text: key, .. }, Value::Scalar { text: id, kind })
                        if key == "id" && *kind != Scalar::Null =>
                    {
                        Some(format!("jobs[{id}]"))
                    }
                    _ => None,
                }),
            _ => None,
        };
        let f = self.fields(node, peeked.as_deref().unwrap_or(&idx_path), &fields::JOB)?;

        // The id names the job in every later path, so read it first.
        let id_node = f.get("id");
        let id = match id_node {
            Some(n) => self.string(n, &format!("{idx_path}.id")),
            None => {
                self.err(node.span.clone(), &idx_path, "missing required key `id`")
                    .help = Some("give every job a unique `id`, e.g. `id: nightly_home`".into());
                None
            }
        };
        let path = match &id {
            Some(id) => format!("jobs[{id}]"),
            None => idx_path,
        };
        let mut ok = id.is_some();
        if let (Some(id), Some(n)) = (&id, id_node) {
            if let Some(bad) = id
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            {
                self.err(
                    n.inner_span(0, id.chars().count()),
                    &format!("{path}.id"),
                    format!("job id `{id}` contains `{bad}`"),
                )
                .help = Some(
                    "use letters, digits, `_`, `-` and `.`: the id names lock and state files"
                        .into(),
                );
                ok = false;
            } else if id.is_empty() || id.starts_with(['.', '-']) {
                self.err(
                    n.inner_span(0, 1),
                    &format!("{path}.id"),
                    "job id must not be empty or start with `.` or `-`",
                );
                ok = false;
            }
        }

        let enabled = f
            .get("enabled")
            .map(|n| self.bool(n, &format!("{path}.enabled")));
        let enabled = match enabled {
            Some(Some(b)) => b,
            Some(None) => {
                ok = false;
                true
            }
            None => true,
        };
        if !enabled {
            let n = f.get("enabled").expect("present when false");
            self.warn(
                n.inner_span(0, 5),
                &format!("{path}.enabled"),
                "job is disabled; it will not run on its schedule",
            )
            .help = Some("`backupmanager run-job` still runs it by hand".into());
        }

        let schedule = match f.get("cron_schedule") {
            Some(n) => self.schedule(n, &format!("{path}.cron_schedule")),
            None => match default_schedule {
                Some(s) => Some(s.clone()),
                None => {
                    self.err(node.span.clone(), &path, "no cron_schedule for this job")
                        .help = Some(
                        "set `cron_schedule` on the job or at the top level of the main file"
                            .into(),
                    );
                    None
                }
            },
        };

        let user = f
            .get("user")
            .and_then(|n| self.nonempty(n, &format!("{path}.user")));
        let host = f
            .get("host")
            .and_then(|n| self.nonempty(n, &format!("{path}.host")));
        let port = f
            .get("port")
            .and_then(|n| self.port(n, &format!("{path}.port")));
        if host.is_none() {
            for key in ["user", "port"] {
                if let Some(n) = f.get(key) {
                    self.warn(
                        n.span.clone(),
                        &format!("{path}.{key}"),
                        format!("`{key}` is set but the job has no `host`; its syncs are local"),
                    )
                    .help = Some(
                        "set `host` for remote syncs; remote lock files still inherit this value"
                            .into(),
                    );
                }
            }
        }
        let ctx = JobCtx {
            path: &path,
            user: user.clone(),
            host: host.clone(),
            port,
        };

        let ssh = SshSettings {
            identity_file: f
                .get("identity_file")
                .and_then(|n| self.abs_path(n, &format!("{path}.identity_file"))),
            known_hosts_file: f
                .get("known_hosts_file")
                .and_then(|n| self.abs_path(n, &format!("{path}.known_hosts_file"))),
            options: f
                .get("ssh_options")
                .map(|n| self.ssh_options(n, &format!("{path}.ssh_options")))
                .unwrap_or_default(),
        };

        let mut lock_files = Vec::new();
        if let Some(n) = f.get("lock_files") {
            for (i, item) in self
                .list(n, &format!("{path}.lock_files"))
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                match self.lock_file(item, &format!("{path}.lock_files[{i}]"), &ctx) {
                    Some(l) => lock_files.push(l),
                    None => ok = false,
                }
            }
        }
        let mut blocks_on = Vec::new();
        if let Some(n) = f.get("blocks_on") {
            for (i, item) in self
                .list(n, &format!("{path}.blocks_on"))
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                match self.blocker(item, &format!("{path}.blocks_on[{i}]"), &ctx) {
                    Some(b) => blocks_on.push(b),
                    None => ok = false,
                }
            }
        }
        let mut syncs = Vec::new();
        match f.get("syncs") {
            None => {
                self.err(node.span.clone(), &path, "missing required key `syncs`")
                    .help = Some("list at least one `source`/`dest` pair under `syncs`".into());
                ok = false;
            }
            Some(n) => {
                let items = self.list(n, &format!("{path}.syncs")).unwrap_or_default();
                if items.is_empty() && !n.is_null() {
                    self.err(
                        n.span.clone(),
                        &format!("{path}.syncs"),
                        "`syncs` is empty; the job would do nothing",
                    );
                    ok = false;
                }
                for (i, item) in items.iter().enumerate() {
                    match self.sync(item, &format!("{path}.syncs[{i}]"), &ctx) {
                        Some(s) => syncs.push(s),
                        None => ok = false,
                    }
                }
            }
        }

        let max_wait = f
            .get("max_wait")
            .and_then(|n| self.positive_duration(n, &format!("{path}.max_wait")));
        let retries = match f.get("retries") {
            None => DEFAULT_RETRIES,
            Some(n) => match self.int(n, &format!("{path}.retries")) {
                Some(r) if (0..=100).contains(&r) => r as u32,
                Some(r) => {
                    self.err(
                        n.span.clone(),
                        &format!("{path}.retries"),
                        format!("retries must be between 0 and 100, got {r}"),
                    );
                    DEFAULT_RETRIES
                }
                None => DEFAULT_RETRIES,
            },
        };
        let lock_heartbeat = f
            .get("lock_heartbeat")
            .and_then(|n| self.positive_duration(n, &format!("{path}.lock_heartbeat")))
            .unwrap_or(DEFAULT_HEARTBEAT);
        let stale_node = f.get("stale_after");
        let stale_after = stale_node
            .and_then(|n| self.positive_duration(n, &format!("{path}.stale_after")))
            .unwrap_or(DEFAULT_STALE_AFTER);
        if stale_after <= lock_heartbeat.saturating_mul(2) {
            let span = stale_node
                .or(f.get("lock_heartbeat"))
                .map_or(node.span.clone(), |n| n.span.clone());
            self.err(span, &format!("{path}.stale_after"), format!(
                "stale_after ({}) must be more than twice lock_heartbeat ({}), or a live lock could look abandoned",
                duration::format(stale_after),
                duration::format(lock_heartbeat)
            ));
        }

        let on_missed = match f.get("on_missed") {
            None => OnMissed::RunOnce,
            Some(n) => match self.string(n, &format!("{path}.on_missed")).as_deref() {
                Some("run_once") => OnMissed::RunOnce,
                Some("skip") => OnMissed::Skip,
                Some(other) => {
                    let mut d = Diagnostic::error(
                        n.span.clone(),
                        format!("{path}.on_missed"),
                        format!("unknown on_missed `{other}`"),
                    );
                    d.help =
                        Some("use `run_once` (run once after start or resume) or `skip`".into());
                    self.diags.push(d);
                    ok = false;
                    OnMissed::RunOnce
                }
                None => {
                    ok = false;
                    OnMissed::RunOnce
                }
            },
        };

        // `mode` and `retention` (config/retention.rs).
        let storage = self.mode_and_retention(&f, &path);
        ok &= storage.is_some();

        // Checks across fields.
        let remote = host.map(|host| Remote { user, host, port });
        for (i, b) in blocks_on.iter().enumerate() {
            if let Some((j, _)) = lock_files
                .iter()
                .enumerate()
                .find(|(_, l)| l.path == b.path && l.location.same_place(&b.location))
            {
                self.err(b.span.clone(), &format!("{path}.blocks_on[{i}]"), format!(
                    "the job waits on a lock file it creates itself (lock_files[{j}]: {} {}); it would wait forever",
                    b.location, b.path
                ))
                .help = Some("block on the other instance's lock file, not this job's own".into());
            }
        }
        if !ok {
            return None;
        }
        let (mode, retention) = storage?;
        Some(Job {
            id: id?,
            origin: id_node?.inner_span(0, 1),
            enabled,
            schedule: schedule?,
            remote,
            ssh,
            lock_files,
            blocks_on,
            syncs,
            max_wait,
            retries,
            lock_heartbeat,
            stale_after,
            on_missed,
            mode,
            retention,
        })
    }

    /// `type`, then host/user/port for remote entries (inheriting the job's).
    fn location(
        &mut self,
        f: &Fields<'_>,
        node: &Node,
        path: &str,
        ctx: &JobCtx<'_>,
    ) -> Option<Location> {
        let Some(t) = f.get("type") else {
            self.err(node.span.clone(), path, "missing required key `type`")
                .help = Some("set `type: local` or `type: remote`".into());
            return None;
        };
        let ty = self.string(t, &format!("{path}.type"))?;
        match ty.as_str() {
            "local" => {
                let mut ok = true;
                for key in REMOTE_ONLY {
                    if let Some(n) = f.get(key) {
                        self.err(
                            n.span.clone(),
                            &format!("{path}.{key}"),
                            format!("`{key}` has no meaning for `type: local`"),
                        )
                        .help = Some("remove it, or set `type: remote`".into());
                        ok = false;
                    }
                }
                ok.then_some(Location::Local)
            }
            "remote" => {
                let user = match f.get("user") {
                    Some(n) => Some(self.nonempty(n, &format!("{path}.user"))?),
                    None => ctx.user.clone(),
                };
                let port = match f.get("port") {
                    Some(n) => Some(self.port(n, &format!("{path}.port"))?),
                    None => ctx.port,
                };
                let host = match f.get("host") {
                    Some(n) => self.nonempty(n, &format!("{path}.host"))?,
                    None => match &ctx.host {
                        Some(h) => h.clone(),
                        None => {
                            self.err(
                                node.span.clone(),
                                path,
                                "remote entry has no host, and the job has none to inherit",
                            )
                            .help = Some(format!("set `host` here or on the job ({})", ctx.path));
                            return None;
                        }
                    },
                };
                Some(Location::Remote(Remote { user, host, port }))
            }
            other => {
                let mut d = Diagnostic::error(
                    t.inner_span(0, other.chars().count()),
                    format!("{path}.type"),
                    format!("unknown type `{other}`"),
                );
                d.help = Some(match diag::suggest(other, &["local", "remote"]) {
                    Some(s) => format!("did you mean `{s}`? (local or remote)"),
                    None => "use `local` or `remote`".into(),
                });
                self.diags.push(d);
                None
            }
        }
    }

    fn lock_file(&mut self, node: &Node, path: &str, ctx: &JobCtx<'_>) -> Option<LockFile> {
        let f = self.fields(node, path, &fields::LOCK)?;
        let location = self.location(&f, node, path, ctx);
        let p = match f.get("path") {
            Some(n) => self.abs_path(n, &format!("{path}.path")),
            None => {
                self.err(node.span.clone(), path, "missing required key `path`");
                None
            }
        };
        Some(LockFile {
            location: location?,
            path: p?.to_string_lossy().into_owned(),
            span: node.span.clone(),
        })
    }

    fn blocker(&mut self, node: &Node, path: &str, ctx: &JobCtx<'_>) -> Option<Blocker> {
        let f = self.fields(node, path, &fields::BLOCKER)?;
        let location = self.location(&f, node, path, ctx);
        let p = match f.get("lock_file_path") {
            Some(n) => self.abs_path(n, &format!("{path}.lock_file_path")),
            None => {
                let mut d = Diagnostic::error(
                    node.span.clone(),
                    path,
                    "missing required key `lock_file_path`",
                );
                if f.has_key("path") {
                    d.help = Some(
                        "blocks_on entries name their file with `lock_file_path`, not `path`"
                            .into(),
                    );
                }
                self.diags.push(d);
                None
            }
        };
        let wait_time = match f.get("wait_time") {
            Some(n) => self.positive_duration(n, &format!("{path}.wait_time")),
            None => Some(DEFAULT_WAIT),
        };
        let stale_after = match f.get("stale_after") {
            Some(n) => Some(self.positive_duration(n, &format!("{path}.stale_after"))?),
            None => None,
        };
        Some(Blocker {
            location: location?,
            path: p?.to_string_lossy().into_owned(),
            wait_time: wait_time?,
            stale_after,
            span: node.span.clone(),
        })
    }

    fn sync(&mut self, node: &Node, path: &str, ctx: &JobCtx<'_>) -> Option<Sync> {
        let f = self.fields(node, path, &fields::SYNC)?;
        let mut ok = true;
        let required = |d: &mut Decoder, key: &str| -> Option<(String, &Node)> {
            match f.get(key) {
                Some(n) => d.nonempty(n, &format!("{path}.{key}")).map(|s| (s, n)),
                None => {
                    d.err(
                        node.span.clone(),
                        path,
                        format!("missing required key `{key}`"),
                    );
                    None
                }
            }
        };
        let source = required(self, "source");
        let dest = required(self, "dest");
        if let Some((s, n)) = &source {
            if !s.starts_with('/') {
                self.relative(n, &format!("{path}.source"), s);
                ok = false;
            }
        }
        if let Some((s, n)) = &dest {
            if ctx.host.is_none() && !s.starts_with('/') {
                self.relative(n, &format!("{path}.dest"), s);
                ok = false;
            }
        }
        let mut opts = Vec::new();
        let mut args = Vec::new();
        if let Some(n) = f.get("opts") {
            for (i, item) in self
                .list(n, &format!("{path}.opts"))
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let p = format!("{path}.opts[{i}]");
                let Some(raw) = self.string(item, &p) else {
                    ok = false;
                    continue;
                };
                match words::split(&raw) {
                    Ok(w) => {
                        if ctx.host.is_some() && w.iter().any(|a| words::sets_rsh(a)) {
                            self.err(item.inner_span(0, raw.chars().count()), &p, format!(
                                "`{raw}` sets rsync's remote shell, which backupmanager manages for remote jobs"
                            ))
                            .help = Some("remove it; use the job's `port`, `identity_file`, `known_hosts_file` or `ssh_options` instead".into());
                            ok = false;
                        }
                        args.extend(w);
                    }
                    Err(e) => {
                        self.err(item.inner_span(e.offset, 1), &p, format!("`{raw}`: {}", e.message))
                            .help = Some("each opts entry is split like a shell command line; close the quote or escape it with \\".into());
                        ok = false;
                    }
                }
                opts.push(raw);
            }
        }
        let allow_empty_source = match f.get("allow_empty_source") {
            Some(n) => self
                .bool(n, &format!("{path}.allow_empty_source"))
                .unwrap_or(false),
            None => false,
        };
        let (source, source_node) = source?;
        let (dest, _) = dest?;
        let deletes = args.iter().any(|a| words::is_delete_opt(a));
        if ok && source.starts_with('/') {
            if !Path::new(&source).exists() {
                self.warn(
                    source_node.inner_span(0, source.chars().count()),
                    &format!("{path}.source"),
                    format!("source `{source}` does not exist (yet)"),
                )
                .help = Some(if deletes {
                    "the run will refuse to sync a missing source with --delete".into()
                } else {
                    "the sync will fail until it exists; is a disk not mounted?".into()
                });
            }
            if deletes && !source.ends_with('/') {
                self.warn(source_node.inner_span(0, source.chars().count()), &format!("{path}.source"), format!(
                    "--delete with source `{source}` (no trailing slash) copies the directory itself into dest"
                ))
                .help = Some(format!("write `{source}/` to mirror its contents into dest; keep it if you mean dest/{}", source.rsplit('/').next().unwrap_or("")));
            }
        }
        ok.then(|| Sync {
            source,
            dest,
            opts,
            args,
            allow_empty_source,
            span: node.span.clone(),
        })
    }

    fn relative(&mut self, n: &Node, path: &str, s: &str) {
        let help = if s.starts_with('~') {
            "`~` is not expanded (no shell is involved); write the full path"
        } else {
            "use an absolute path: the daemon runs from `/`"
        };
        self.err(
            n.inner_span(0, s.chars().count()),
            path,
            format!("relative path `{s}`"),
        )
        .help = Some(help.into());
    }

    // ----- typed readers: each reports its own error and returns None on a bad value -----

    pub(super) fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        section: &Section,
    ) -> Option<Fields<'n>> {
        let known = section.keys();
        let known = known.as_slice();
        let what = section.what;
        let Value::Map(entries) = &node.value else {
            if node.is_null() && path.is_empty() {
                return Some(Fields { entries: &[] });
            }
            self.err(
                node.span.clone(),
                path,
                format!(
                    "expected {what} (a mapping of keys), found {}",
                    node.kind_name()
                ),
            );
            return None;
        };
        for (k, _) in entries {
            let Value::Scalar { text: key, .. } = &k.value else {
                self.err(k.span.clone(), path, "a key must be a plain word");
                continue;
            };
            if !known.contains(&key.as_str()) {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let help = match diag::suggest(key, known) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known keys here: {}", known.join(", ")),
                };
                let mut d = Diagnostic::error(
                    k.span.clone(),
                    here,
                    format!("unknown key `{key}` in {what}"),
                );
                d.help = Some(help);
                if std::ptr::eq(section, &fields::DROPIN)
                    && fields::JOB.keys().contains(&key.as_str())
                {
                    d.help =
                        Some("a drop-in file holds only `jobs:`; put this key inside a job".into());
                }
                self.diags.push(d);
            }
        }
        Some(Fields { entries })
    }

    fn list<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ if node.is_null() => Some(&[]),
            _ => {
                self.err(
                    node.span.clone(),
                    path,
                    format!("expected a list, found {}", node.kind_name()),
                )
                .help = Some("write list items on their own lines starting with `- `".into());
                None
            }
        }
    }

    pub(super) fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Scalar {
                kind: Scalar::Null, ..
            } => {
                self.err(node.span.clone(), path, "missing value");
                None
            }
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.err(
                    node.span.clone(),
                    path,
                    format!("expected a string, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    fn nonempty(&mut self, node: &Node, path: &str) -> Option<String> {
        let s = self.string(node, path)?;
        if s.trim().is_empty() {
            self.err(node.span.clone(), path, "must not be empty");
            return None;
        }
        Some(s)
    }

    fn int(&mut self, node: &Node, path: &str) -> Option<i64> {
        match &node.value {
            Value::Scalar {
                kind: Scalar::Int(i),
                ..
            } => Some(*i),
            _ => {
                self.err(
                    node.span.clone(),
                    path,
                    format!("expected an integer, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            Value::Scalar {
                kind: Scalar::Bool(b),
                ..
            } => Some(*b),
            Value::Scalar { text, .. }
                if matches!(text.as_str(), "yes" | "no" | "on" | "off" | "Yes" | "No") =>
            {
                self.err(
                    node.span.clone(),
                    path,
                    format!("expected true or false, found `{text}`"),
                )
                .help = Some("YAML 1.2 reads yes/no/on/off as strings; write true or false".into());
                None
            }
            _ => {
                self.err(
                    node.span.clone(),
                    path,
                    format!("expected true or false, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    fn port(&mut self, node: &Node, path: &str) -> Option<u16> {
        let p = self.int(node, path)?;
        match u16::try_from(p) {
            Ok(p) if p >= 1 => Some(p),
            _ => {
                self.err(
                    node.span.clone(),
                    path,
                    format!("port {p} is out of range 1-65535"),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        match &node.value {
            Value::Scalar {
                kind: Scalar::Int(i),
                ..
            } => match u64::try_from(*i) {
                Ok(s) => Some(Duration::from_secs(s)),
                Err(_) => {
                    self.err(
                        node.span.clone(),
                        path,
                        format!("must be a positive duration, got {i}"),
                    );
                    None
                }
            },
            Value::Scalar {
                kind: Scalar::Str,
                text,
            } => match duration::parse(text) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(node.inner_span(0, text.chars().count()), path, e);
                    None
                }
            },
            _ => {
                self.err(
                    node.span.clone(),
                    path,
                    format!(
                        "expected a duration (300, 5m, 1h 30m), found {}",
                        node.kind_name()
                    ),
                )
                .help = Some("durations are whole seconds or units: 90s, 5m, 1h 30m, 2d".into());
                None
            }
        }
    }

    fn positive_duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let d = self.duration(node, path)?;
        if d.is_zero() {
            self.err(
                node.span.clone(),
                path,
                "must be a positive duration, got 0",
            )
            .help = Some("use at least 1 second, e.g. 30s or 5m".into());
            return None;
        }
        Some(d)
    }

    fn abs_path(&mut self, node: &Node, path: &str) -> Option<PathBuf> {
        let s = self.nonempty(node, path)?;
        if !s.starts_with('/') {
            self.relative(node, path, &s);
            return None;
        }
        Some(PathBuf::from(s))
    }

    fn schedule(&mut self, node: &Node, path: &str) -> Option<Schedule> {
        let text = self.nonempty(node, path)?;
        // Point into the expression: skip the whitespace `parse` trims.
        let lead = text.chars().take_while(|c| c.is_whitespace()).count();
        match Schedule::parse(&text) {
            Ok(s) => Some(s),
            Err(e) => {
                let col = lead
                    + text.trim()[..e.offset.min(text.trim().len())]
                        .chars()
                        .count();
                self.err(node.inner_span(col, 1), path, format!("invalid cron expression `{}`: {e}", text.trim()))
                    .help = Some("five fields: minute hour day-of-month month day-of-week (e.g. '30 2 * * *'), or a macro such as @daily".into());
                None
            }
        }
    }

    fn timezone(&mut self, node: &Node) -> Option<Zone> {
        let name = self.nonempty(node, "timezone")?;
        match jiff::tz::TimeZone::get(&name) {
            Ok(tz) => Some(Zone {
                name: Some(name),
                tz,
            }),
            Err(_) => {
                self.err(node.inner_span(0, name.chars().count()), "timezone", format!("unknown time zone `{name}`"))
                    .help = Some("use an IANA name such as Europe/Amsterdam or UTC (see /usr/share/zoneinfo), or leave it out to use the system zone".into());
                None
            }
        }
    }

    fn ssh_options(&mut self, node: &Node, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in self.list(node, path).unwrap_or_default().iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(s) = self.nonempty(item, &p) else {
                continue;
            };
            let key = s.split(['=', ' ']).next().unwrap_or("");
            if !s.contains(['=', ' ']) || key.is_empty() || s.starts_with('-') {
                self.err(
                    item.inner_span(0, s.chars().count()),
                    &p,
                    format!("`{s}` is not an ssh option"),
                )
                .help = Some(
                    "write options as Key=Value, as ssh's -o takes them (e.g. Compression=yes)"
                        .into(),
                );
                continue;
            }
            out.push(s);
        }
        out
    }
}

/// A mapping's entries, looked up by key. Null values count as absent.
pub(super) struct Fields<'n> {
    pub(super) entries: &'n [(Node, Node)],
}

impl<'n> Fields<'n> {
    pub(super) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    fn has_key(&self, key: &str) -> bool {
        self.entries
            .iter()
            .any(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))
    }
}
