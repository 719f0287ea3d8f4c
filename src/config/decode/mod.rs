//! The spanned YAML tree → [`Config`], collecting every problem on the way.
//!
//! Decoding never stops at the first error: each field is checked on its own and a bad one is
//! reported and skipped, so one `validate` run lists everything that is wrong, each with its
//! `file:line:col`, its config path and what to do. Checks that need several fields (a job waiting
//! on its own lock, `-e` on a remote job, duplicate ids across files) run once a job is decoded.
//!
//! Submodules: [`job`] (one job, step by step), [`entries`] (locks, blockers, syncs),
//! [`relations`] (checks between a job's entries), [`scalars`] (typed readers and [`Fields`]); `config/retention.rs` adds `mode`/`retention`, `config/archive.rs` adds `archive`.
//!
//! Key lists here are the single list of what each section accepts: anything else is an unknown
//! key, reported with the closest known key as a suggestion.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::diag::{self, Diagnostic, Span};
use super::fields;
use super::yaml::{self, Node};
use super::{Config, Job, Loaded, Zone, DEFAULT_INCLUDE};

const REMOTE_ONLY: &[&str] = &["user", "host", "port"];

mod coord;
mod direction;
mod entries;
mod job;
mod relations;
mod scalars;

pub(in crate::config) use job::Entries;
pub(in crate::config) use scalars::Fields;

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
    /// `direction: pull`: sources are on `host`, dests here.
    pull: bool,
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

    pub(super) fn warn(
        &mut self,
        span: Span,
        path: &str,
        msg: impl Into<String>,
    ) -> &mut Diagnostic {
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
            .unwrap_or_else(|| fields::default_text(&fields::TOP, "pid_file_dir").into());
        let state_dir = top
            .get("state_dir")
            .and_then(|n| self.abs_path(n, "state_dir"))
            .unwrap_or_else(|| fields::default_text(&fields::TOP, "state_dir").into());
        for (key, what) in [
            ("pid_file_dir", "pid_file_dir (run locks, ssh sockets)"),
            ("state_dir", "state_dir"),
        ] {
            if let Some(n) = top.get(key) {
                if let Some(v) = n.scalar_text() {
                    self.warn_private_tmp(n.inner_span(0, v.chars().count()), key, what, v);
                }
            }
        }
        let shutdown_timeout = top
            .get("shutdown_timeout")
            .and_then(|n| self.positive_duration(n, "shutdown_timeout"))
            .unwrap_or_else(|| fields::default_duration(&fields::TOP, "shutdown_timeout"));
        let history_keep = top
            .get("history_keep")
            .and_then(|n| self.positive_duration(n, "history_keep"))
            .unwrap_or_else(|| fields::default_duration(&fields::TOP, "history_keep"));
        let coord = self.coordination(&top);
        let metrics_textfile = top
            .get("metrics_textfile")
            .and_then(|n| self.abs_path(n, "metrics_textfile"));
        // `notify`, `notify_on` (config/notify.rs): the jobs' defaults.
        let (notify, notify_on) = self.notify(top.get("notify"), top.get("notify_on"), "");
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
        self.check_slots(&coord, &jobs);
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

        // `http:` with nothing under it enables the defaults, like `http: {}`.
        let http = top
            .has_key("http")
            .then(|| self.http(top.get("http"), &pid_file_dir))
            .flatten();

        Some(Config {
            main_file: main.to_path_buf(),
            files,
            pid_file_dir,
            state_dir,
            timezone: timezone?,
            shutdown_timeout,
            history_keep,
            metrics_textfile,
            notify: notify.flatten().unwrap_or_default(),
            notify_on: notify_on
                .flatten()
                .unwrap_or_else(|| super::notify::NotifyOn::DEFAULT.to_vec()),
            jobs,
            http,
            coord,
        })
    }

    /// Whether a path an `include` glob matched is a drop-in to read. Anything that cannot be
    /// read as a regular file is reported, never skipped in silence: its jobs would vanish from
    /// the config while `validate` said ok. A dangling symlink, a FIFO (reading it would hang),
    /// a socket or a device is an error, like an unreadable file; a directory, which holds no
    /// jobs, is a warning.
    fn usable_dropin(&mut self, p: &Path) -> bool {
        let here = Span::new(p, 0, 0, 0);
        let what = match std::fs::metadata(p) {
            Ok(m) if m.is_file() => return true,
            Ok(m) if m.is_dir() => {
                self.warn(
                    here,
                    "include",
                    "a directory matches the include pattern; skipped",
                )
                .help =
                    Some("drop-ins are files; narrow the pattern (e.g. `jobs.d/*.yaml`)".into());
                return false;
            }
            Ok(m) => {
                use std::os::unix::fs::FileTypeExt;
                let t = m.file_type();
                if t.is_fifo() {
                    "a FIFO"
                } else if t.is_socket() {
                    "a socket"
                } else {
                    "a device"
                }
                .to_string()
            }
            Err(e) => match std::fs::read_link(p) {
                Ok(target) => format!(
                    "a symbolic link to `{}`, which {}",
                    target.display(),
                    if e.kind() == std::io::ErrorKind::NotFound {
                        "does not exist".to_string()
                    } else {
                        format!("cannot be reached ({e})")
                    }
                ),
                Err(_) => format!("unreadable ({e})"),
            },
        };
        self.err(
            here,
            "include",
            format!("drop-in is {what}, not a file; the jobs it should add would be missing"),
        )
        .help = Some(
            "fix or remove it: validate refuses a config whose drop-ins cannot all be read".into(),
        );
        false
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
            // `**` walks every directory below its start (`/**/*.yaml`: the whole disk, at
            // every load and SIGHUP). Drop-ins live in a few known directories: name them.
            if pattern.contains("**") {
                if let Some(span) = span {
                    let col = pattern
                        .find("**")
                        .map_or(0, |b| pattern[..b].chars().count());
                    self.err(
                        span.shifted(col, 2),
                        "include",
                        format!("`**` in include pattern `{pattern}` would search every directory below it"),
                    )
                    .help = Some("name the directories, e.g. `jobs.d/*.yaml` or `/etc/backupmanager/hosts/*/jobs.yaml`".into());
                }
                continue;
            }
            let full = if Path::new(&pattern).is_absolute() {
                PathBuf::from(&pattern)
            } else {
                base.join(&pattern)
            };
            match glob::glob(&full.to_string_lossy()) {
                Ok(paths) => {
                    let mut found: Vec<PathBuf> = Vec::new();
                    for entry in paths {
                        match entry {
                            Ok(p) => {
                                if self.usable_dropin(&p) {
                                    found.push(p);
                                }
                            }
                            Err(e) => {
                                self.err(
                                    Span::new(e.path(), 0, 0, 0),
                                    "include",
                                    format!(
                                        "cannot read this directory while matching `{pattern}`: {}",
                                        e.error()
                                    ),
                                )
                                .help = Some(
                                    "drop-ins in it would be missed; check its permissions".into(),
                                );
                            }
                        }
                    }
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
}
