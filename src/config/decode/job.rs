//! One job: its id, schedule, endpoint, ssh settings, entries and limits, each read by its own
//! step, then the checks that need several fields (a job waiting on its own lock).
//!
//! Must not: stop at the first error (every step reports and goes on) or read defaults from
//! anywhere but the field table.

use std::time::Duration;

use super::{Decoder, Fields, JobCtx};
use crate::config::diag::Diagnostic;
use crate::config::fields::{self, JOB};
use crate::config::yaml::{Node, Scalar, Value};
use crate::config::{
    duration, words, Blocker, Direction, Job, Location, LockFile, Mode, OnMissed, Remote,
    SshSettings, Sync,
};
use crate::schedule::Schedule;

/// What a job's entries decoded to.
pub(in crate::config) struct Entries {
    pub(in crate::config) lock_files: Vec<LockFile>,
    pub(in crate::config) blocks_on: Vec<Blocker>,
    pub(in crate::config) syncs: Vec<Sync>,
}

/// A job's timing limits.
struct Limits {
    max_wait: Option<Duration>,
    timeout: Option<Duration>,
    alert_after: Option<Duration>,
    retries: u32,
    lock_heartbeat: Duration,
    stale_after: Duration,
}

impl Decoder {
    pub(super) fn job(
        &mut self,
        node: &Node,
        index: usize,
        default_schedule: Option<&Schedule>,
    ) -> Option<Job> {
        let idx_path = format!("jobs[{index}]");
        // Name the job by its id in every path, unknown keys included, when the id is readable.
        let f = self.fields(node, peek_id(node).as_deref().unwrap_or(&idx_path), &JOB)?;
        let id_node = f.get("id");
        let (id, id_ok) = self.job_id(node, id_node, &idx_path);
        let path = match &id {
            Some(id) => format!("jobs[{id}]"),
            None => idx_path,
        };
        let mut ok = id_ok;
        let enabled = self.job_enabled(&f, &path, &mut ok);
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
        let (user, host, port) = self.job_endpoint(&f, &path);
        let direction = self.direction(&f, &path, host.is_some(), &mut ok);
        let ctx = JobCtx {
            path: &path,
            user: user.clone(),
            host: host.clone(),
            port,
            pull: direction == Direction::Pull,
        };
        let ssh = self.job_ssh(&f, &path);
        let entries = self.job_entries(&f, node, &ctx, &mut ok);
        let limits = self.job_limits(&f, node, &path);
        let on_missed = self.on_missed(&f, &path, &mut ok);
        let uses_slots = self.uses_slots(&f, &path);
        // `mode` and `retention` (config/retention.rs).
        let storage = self.mode_and_retention(&f, &path);
        ok &= storage.is_some();
        // `archive` (config/archive.rs).
        let archive = self.archive_settings(&f, &path, storage.as_ref().map(|s| s.0));
        ok &= archive.is_ok();
        let archive = archive.unwrap_or(None);
        if matches!(storage, Some((Mode::Archive, _))) {
            ok &= self.check_archive_job(&path, &entries);
            if direction == Direction::Pull {
                ok &= self.refuse_archive_pull(&f, &path);
            }
        }
        // `hooks` (config/hooks.rs).
        let hooks = self.hooks(f.get("hooks"), &path, host.is_some());
        ok &= hooks.is_some();
        // `dumps` (config/dumps.rs).
        let dumps = self.dumps(f.get("dumps"), &path, host.is_some());
        ok &= dumps.is_some();
        // `retry_for`, `retry_wait` (config/retry.rs).
        let retry = self.retry(&f, &path);
        // `notify`, `notify_on` (config/notify.rs).
        let (notify, notify_on) = self.notify(f.get("notify"), f.get("notify_on"), &path);
        ok &= !matches!(notify, Some(None)) && !matches!(notify_on, Some(None));
        self.check_self_waiting(&path, &entries);
        self.check_private_tmp(&path, &entries);
        let sync_place = match &host {
            // A pull job's dests (what its --delete reaches) are here.
            Some(_) if direction == Direction::Pull => Location::Local,
            Some(h) => Location::Remote(Remote {
                user: user.clone(),
                host: h.clone(),
                port,
            }),
            None => Location::Local,
        };
        // A snapshot's rsync fills a new directory under `dest`; its --delete cannot reach a lock.
        if matches!(storage, Some((Mode::Mirror, _))) {
            self.check_locks_outside_deleted_dests(&path, &entries, &sync_place);
        }
        if matches!(storage, Some((Mode::Snapshot, _))) {
            ok &= self.check_snapshot_syncs(&path, &entries);
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
            remote: host.map(|host| Remote { user, host, port }),
            ssh,
            lock_files: entries.lock_files,
            blocks_on: entries.blocks_on,
            syncs: entries.syncs,
            max_wait: limits.max_wait,
            timeout: limits.timeout,
            alert_after: limits.alert_after,
            retries: limits.retries,
            lock_heartbeat: limits.lock_heartbeat,
            stale_after: limits.stale_after,
            on_missed,
            mode,
            retention,
            archive,
            direction,
            uses_slots,
            hooks: hooks?,
            dumps: dumps?,
            retry,
            notify: notify.flatten(),
            notify_on: notify_on.flatten(),
        })
    }

    /// The id, which names the job in every later path (even when it is invalid), and whether
    /// it is valid: characters that could not name lock and state files are refused.
    fn job_id(
        &mut self,
        node: &Node,
        id_node: Option<&Node>,
        idx_path: &str,
    ) -> (Option<String>, bool) {
        let Some(n) = id_node else {
            self.err(node.span.clone(), idx_path, "missing required key `id`")
                .help = Some("give every job a unique `id`, e.g. `id: nightly_home`".into());
            return (None, false);
        };
        let Some(id) = self.string(n, &format!("{idx_path}.id")) else {
            return (None, false);
        };
        let path = format!("jobs[{id}]");
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
                "use letters, digits, `_`, `-` and `.`: the id names lock and state files".into(),
            );
            return (Some(id), false);
        }
        // `<pid_file_dir>/jobs/ID.run` is the run lock: its name must fit a file name.
        let max = super::entries::NAME_MAX - ".run".len();
        if id.len() > max {
            self.err(
                n.inner_span(0, id.chars().count()),
                &format!("{path}.id"),
                format!(
                    "job id is {} characters; at most {max} fit (it names the run lock `jobs/ID.run`, and file names end at {} bytes)",
                    id.len(),
                    super::entries::NAME_MAX
                ),
            )
            .help = Some("use a shorter id".into());
            return (Some(id), false);
        }
        if id.is_empty() || id.starts_with(['.', '-']) {
            self.err(
                n.inner_span(0, 1),
                &format!("{path}.id"),
                "job id must not be empty or start with `.` or `-`",
            );
            return (Some(id), false);
        }
        (Some(id), true)
    }

    fn job_enabled(&mut self, f: &Fields<'_>, path: &str, ok: &mut bool) -> bool {
        let Some(n) = f.get("enabled") else {
            return fields::default_bool(&JOB, "enabled");
        };
        match self.bool(n, &format!("{path}.enabled")) {
            Some(true) => true,
            Some(false) => {
                self.warn(
                    n.inner_span(0, 5),
                    &format!("{path}.enabled"),
                    "job is disabled; it will not run on its schedule",
                )
                .help = Some("`backupmanager run-job` still runs it by hand".into());
                false
            }
            None => {
                *ok = false;
                true
            }
        }
    }

    /// `user`, `host`, `port` of the job (what remote entries inherit).
    fn job_endpoint(
        &mut self,
        f: &Fields<'_>,
        path: &str,
    ) -> (Option<String>, Option<String>, Option<u16>) {
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
        (user, host, port)
    }

    fn job_ssh(&mut self, f: &Fields<'_>, path: &str) -> SshSettings {
        SshSettings {
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
        }
    }

    /// `lock_files`, `blocks_on` and `syncs`.
    fn job_entries(
        &mut self,
        f: &Fields<'_>,
        node: &Node,
        ctx: &JobCtx<'_>,
        ok: &mut bool,
    ) -> Entries {
        let path = ctx.path;
        let mut lock_files = Vec::new();
        if let Some(n) = f.get("lock_files") {
            for (i, item) in self
                .list(n, &format!("{path}.lock_files"))
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                match self.lock_file(item, &format!("{path}.lock_files[{i}]"), ctx) {
                    Some(l) => lock_files.push(l),
                    None => *ok = false,
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
                match self.blocker(item, &format!("{path}.blocks_on[{i}]"), ctx) {
                    Some(b) => blocks_on.push(b),
                    None => *ok = false,
                }
            }
        }
        let mut syncs = Vec::new();
        match f.get("syncs") {
            None => {
                self.err(node.span.clone(), path, "missing required key `syncs`")
                    .help = Some("list at least one `source`/`dest` pair under `syncs`".into());
                *ok = false;
            }
            Some(n) => {
                let items = self.list(n, &format!("{path}.syncs")).unwrap_or_default();
                if items.is_empty() && !n.is_null() {
                    self.err(
                        n.span.clone(),
                        &format!("{path}.syncs"),
                        "`syncs` is empty; the job would do nothing",
                    );
                    *ok = false;
                }
                for (i, item) in items.iter().enumerate() {
                    match self.sync(item, &format!("{path}.syncs[{i}]"), ctx) {
                        Some(s) => syncs.push(s),
                        None => *ok = false,
                    }
                }
            }
        }
        Entries {
            lock_files,
            blocks_on,
            syncs,
        }
    }

    /// `max_wait`, `retries`, `lock_heartbeat`, `stale_after`, and how they must relate.
    fn job_limits(&mut self, f: &Fields<'_>, node: &Node, path: &str) -> Limits {
        let max_wait = f
            .get("max_wait")
            .and_then(|n| self.positive_duration(n, &format!("{path}.max_wait")));
        let timeout = f
            .get("timeout")
            .and_then(|n| self.positive_duration(n, &format!("{path}.timeout")));
        let alert_after = f
            .get("alert_after")
            .and_then(|n| self.positive_duration(n, &format!("{path}.alert_after")));
        let default_retries = fields::default_int(&JOB, "retries") as u32;
        let retries = match f.get("retries") {
            None => default_retries,
            Some(n) => match self.int(n, &format!("{path}.retries")) {
                Some(r) if (0..=100).contains(&r) => r as u32,
                Some(r) => {
                    self.err(
                        n.span.clone(),
                        &format!("{path}.retries"),
                        format!("retries must be between 0 and 100, got {r}"),
                    );
                    default_retries
                }
                None => default_retries,
            },
        };
        let lock_heartbeat = f
            .get("lock_heartbeat")
            .and_then(|n| self.positive_duration(n, &format!("{path}.lock_heartbeat")))
            .unwrap_or_else(|| fields::default_duration(&JOB, "lock_heartbeat"));
        let stale_node = f.get("stale_after");
        let stale_after = stale_node
            .and_then(|n| self.positive_duration(n, &format!("{path}.stale_after")))
            .unwrap_or_else(|| fields::default_duration(&JOB, "stale_after"));
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
        Limits {
            max_wait,
            timeout,
            alert_after,
            retries,
            lock_heartbeat,
            stale_after,
        }
    }

    fn on_missed(&mut self, f: &Fields<'_>, path: &str, ok: &mut bool) -> OnMissed {
        let Some(n) = f.get("on_missed") else {
            return OnMissed::RunOnce;
        };
        match self.string(n, &format!("{path}.on_missed")).as_deref() {
            Some("run_once") => OnMissed::RunOnce,
            Some("skip") => OnMissed::Skip,
            Some(other) => {
                let mut d = Diagnostic::error(
                    n.span.clone(),
                    format!("{path}.on_missed"),
                    format!("unknown on_missed `{other}`"),
                );
                d.help = Some("use `run_once` (run once after start or resume) or `skip`".into());
                self.diags.push(d);
                *ok = false;
                OnMissed::RunOnce
            }
            None => {
                *ok = false;
                OnMissed::RunOnce
            }
        }
    }

    /// Snapshot mode: rsync options that would corrupt hard-linked older snapshots or fight the
    /// engine's own `--link-dest`, and a `dest` that cannot hold a series.
    fn check_snapshot_syncs(&mut self, path: &str, e: &Entries) -> bool {
        let mut ok = true;
        for (i, s) in e.syncs.iter().enumerate() {
            if let Some((opt, why)) = words::snapshot_forbidden(&s.args) {
                self.err(
                    s.span.clone(),
                    &format!("{path}.syncs[{i}].opts"),
                    format!("`{opt}` cannot be used in snapshot mode ({why})"),
                )
                .help = Some("remove it from `opts`, or use `mode: mirror`".into());
                ok = false;
            }
            if s.dest.trim_end_matches('/').is_empty() || s.dest.split('/').any(|c| c == "..") {
                self.err(
                    s.span.clone(),
                    &format!("{path}.syncs[{i}].dest"),
                    format!("`{}` cannot hold a snapshot series", s.dest),
                )
                .help = Some(
                    "use a dedicated directory such as /srv/snapshots/home: snapshots, their manifests and `latest` are created in it"
                        .into(),
                );
                ok = false;
            }
        }
        ok
    }
}

/// The job's id, if its node is a mapping with a readable `id`, as `jobs[ID]`.
fn peek_id(node: &Node) -> Option<String> {
    let Value::Map(entries) = &node.value else {
        return None;
    };
    entries
        .iter()
        .find_map(|(k, v)| match (&k.value, &v.value) {
            (Value::Scalar { text: key, .. }, Value::Scalar { text: id, kind })
                if key == "id" && *kind != Scalar::Null =>
            {
                Some(format!("jobs[{id}]"))
            }
            _ => None,
        })
}
