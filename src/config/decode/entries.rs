//! A job's entries: where a lock or blocker lives (`type`, inheriting the job's host), each
//! `lock_files` and `blocks_on` item, and each sync with its `opts`.
//!
//! Must not: check relations between entries (the job step does).

use super::{Decoder, Fields, JobCtx, REMOTE_ONLY};
use std::path::Path;

use crate::config::diag::{self, Diagnostic};
use crate::config::yaml::Node;
use crate::config::{fields, words};
use crate::config::{Blocker, Location, LockFile, Remote, Sync};

/// Longest file name Linux file systems take (`NAME_MAX`), in bytes.
pub(in crate::config) const NAME_MAX: usize = 255;
/// Longest path the kernel resolves (`PATH_MAX` less the NUL), in bytes.
const PATH_MAX: usize = 4095;
/// A lock is created as `NAME.bm-TOKEN` (32 hex digits) and hard-linked to `NAME`, so its own
/// name must leave room for that suffix.
const STAGING_SUFFIX: usize = ".bm-".len() + 32;

impl Decoder {
    /// A path the kernel would refuse (a component over `NAME_MAX`, or the last one over
    /// `NAME_MAX - extra` when a longer sibling name is made from it, or the whole over
    /// `PATH_MAX`) validated and then failed every run: report it here.
    fn name_limits(&mut self, n: &Node, path: &str, value: &str, extra: usize) -> bool {
        let span = n.inner_span(0, value.chars().count());
        if value.len() > PATH_MAX {
            self.err(
                span,
                path,
                format!(
                    "path is {} bytes long; the system's limit is {PATH_MAX}",
                    value.len()
                ),
            );
            return false;
        }
        let parts: Vec<&str> = value.split('/').filter(|c| !c.is_empty()).collect();
        for (i, c) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let limit = if last { NAME_MAX - extra } else { NAME_MAX };
            if c.len() > limit {
                let why = if last && extra > 0 && c.len() <= NAME_MAX {
                    format!(" (the lock is first written as NAME.bm-TOKEN, {extra} bytes longer, and file names end at {NAME_MAX})")
                } else {
                    String::new()
                };
                let shown: String = c.chars().take(24).collect();
                self.err(
                    span,
                    path,
                    format!(
                        "path component `{shown}…` is {} bytes; at most {limit} fit{why}",
                        c.len()
                    ),
                )
                .help = Some("use a shorter name".into());
                return false;
            }
        }
        true
    }

    /// `type`, then host/user/port for remote entries (inheriting the job's).
    pub(super) fn location(
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

    pub(super) fn lock_file(
        &mut self,
        node: &Node,
        path: &str,
        ctx: &JobCtx<'_>,
    ) -> Option<LockFile> {
        let f = self.fields(node, path, &fields::LOCK)?;
        let location = self.location(&f, node, path, ctx);
        let p = match f.get("path") {
            Some(n) => self.abs_path(n, &format!("{path}.path")),
            None => {
                self.err(node.span.clone(), path, "missing required key `path`");
                None
            }
        };
        let p = p?.to_string_lossy().into_owned();
        let n = f.get("path").expect("read above");
        if !self.name_limits(n, &format!("{path}.path"), &p, STAGING_SUFFIX) {
            return None;
        }
        Some(LockFile {
            location: location?,
            path: p,
            span: node.span.clone(),
        })
    }

    pub(super) fn blocker(&mut self, node: &Node, path: &str, ctx: &JobCtx<'_>) -> Option<Blocker> {
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
            None => Some(fields::default_duration(&fields::BLOCKER, "wait_time")),
        };
        let stale_after = match f.get("stale_after") {
            Some(n) => Some(self.positive_duration(n, &format!("{path}.stale_after"))?),
            None => None,
        };
        let p = p?.to_string_lossy().into_owned();
        let n = f.get("lock_file_path").expect("read above");
        if !self.name_limits(n, &format!("{path}.lock_file_path"), &p, 0) {
            return None;
        }
        Some(Blocker {
            location: location?,
            path: p,
            wait_time: wait_time?,
            stale_after,
            span: node.span.clone(),
        })
    }

    pub(super) fn sync(&mut self, node: &Node, path: &str, ctx: &JobCtx<'_>) -> Option<Sync> {
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
        if let Some((s, n)) = &source {
            if ctx.pull && s.starts_with('/') && !self.pull_source(n, &format!("{path}.source"), s)
            {
                ok = false;
            }
        }
        if let Some((s, n)) = &dest {
            // A pull job's dest is here: it must be absolute like a local one.
            if (ctx.host.is_none() || ctx.pull) && !s.starts_with('/') {
                self.relative(n, &format!("{path}.dest"), s);
                ok = false;
            }
        }
        let mut opts = Vec::new();
        let mut args = Vec::new();
        let opts_node = f.get("opts");
        if opts_node.is_none() {
            opts = fields::default_list(&fields::SYNC, "opts");
            args.clone_from(&opts);
        }
        if let Some(n) = opts_node {
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
        let allow_unmounted = match f.get("allow_unmounted") {
            Some(n) => self
                .bool(n, &format!("{path}.allow_unmounted"))
                .unwrap_or(false),
            None => fields::default_bool(&fields::SYNC, "allow_unmounted"),
        };
        if let Some(n) = f.get("max_delete") {
            let p = format!("{path}.max_delete");
            match self.int(n, &p) {
                Some(m) if (0..=1_000_000_000).contains(&m) => {
                    if args.iter().any(|a| a.starts_with("--max-delete")) {
                        self.err(
                            n.span.clone(),
                            &p,
                            "`max_delete` and `--max-delete` in opts both set the limit",
                        )
                        .help = Some("keep one of them".into());
                        ok = false;
                    } else if !args.iter().any(|a| words::is_delete_opt(a)) {
                        self.warn(n.span.clone(), &p, "max_delete has no effect: the sync does not delete (no --delete in opts)");
                    } else {
                        args.push(format!("--max-delete={m}"));
                    }
                }
                Some(m) => {
                    self.err(
                        n.span.clone(),
                        &p,
                        format!("max_delete must be between 0 and 1000000000, got {m}"),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        let (source, source_node) = source?;
        let (dest, _) = dest?;
        let deletes = args.iter().any(|a| words::is_delete_opt(a));
        if ok && source.starts_with('/') {
            // A pull source is on the client: nothing here says whether it exists.
            if !ctx.pull && !Path::new(&source).exists() {
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
            let is_dir = source.ends_with('/') || (!ctx.pull && Path::new(&source).is_dir());
            if is_dir && words::recursion(&args) == words::Recursion::Missing {
                let span = opts_node.map_or(node.span.clone(), |n| n.span.clone());
                self.warn(span, &format!("{path}.opts"), format!(
                    "source `{source}` is a directory but opts have no -a or -r: rsync skips it (\"skipping directory\") and reports success"
                ))
                .help = Some("add `-a` to opts (leaving opts out means `[-a]`); use `-d` if you mean the directory without its contents".into());
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
            allow_unmounted,
            span: node.span.clone(),
        })
    }

    pub(super) fn relative(&mut self, n: &Node, path: &str, s: &str) {
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
}
