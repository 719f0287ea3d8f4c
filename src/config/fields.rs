//! The one description of every config key: name, type, whether it is required, its default, and
//! the documentation users read.
//!
//! The decoder takes its lists of known keys from here, and the JSON Schema (`backupmanager
//! schema`), `docs/configuration.md` and the `backupmanager.yaml(5)` man page are generated from
//! it, so the parser, the schema and the reference cannot drift apart. Adding a key means adding
//! it here and reading it in `decode.rs`; a test checks that every key here is read there.

/// The type of a value, as the decoder accepts it.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    /// An absolute path.
    AbsPath,
    /// A path; absolute where local.
    Path,
    Port,
    Bool,
    /// Whole seconds (integer) or a string with units: `90s`, `5m`, `1h 30m`, `2d`.
    Duration,
    /// Integer within bounds.
    Int(i64, i64),
    /// A quoted cron expression or macro.
    Cron,
    /// An IANA time zone name.
    TimeZone,
    /// One of these words.
    Enum(&'static [&'static str]),
    /// A list of strings.
    StrList,
    /// A mapping of free names to strings (HTTP headers).
    StrMap,
    /// A list of mappings with these keys.
    List(&'static Section),
    /// A mapping with these keys.
    Map(&'static Section),
    /// A whole number >= 1, or `all`.
    Count,
    /// A calendar span: `2d`, `36h`, `1y6mo` (units y, mo, w, d, h, m).
    CalendarSpan,
    /// A mapping of names to whole numbers within bounds (`slots:`).
    NamedInts(i64, i64),
}

/// A mapping: its name in the docs and its keys.
#[derive(Debug)]
pub struct Section {
    pub name: &'static str,
    /// How to refer to one such mapping in messages ("a sync entry").
    pub what: &'static str,
    pub doc: &'static str,
    pub fields: &'static [Field],
}

impl Section {
    pub fn keys(&self) -> Vec<&'static str> {
        self.fields.iter().map(|f| f.key).collect()
    }
}

#[derive(Debug)]
pub struct Field {
    pub key: &'static str,
    pub ty: Ty,
    pub required: bool,
    /// The default as users would write it, if there is one.
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

const fn f(key: &'static str, ty: Ty, default: Option<&'static str>, doc: &'static str) -> Field {
    Field {
        key,
        ty,
        required: false,
        default,
        doc,
    }
}

const fn req(key: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        key,
        ty,
        required: true,
        default: None,
        doc,
    }
}

/// The default of `key` in `section`, as written in the table. Panics if the table has none:
/// a unit test reads every default the decoder asks for.
pub fn default_text(section: &Section, key: &str) -> &'static str {
    section
        .fields
        .iter()
        .find(|f| f.key == key)
        .and_then(|f| f.default)
        .unwrap_or_else(|| panic!("field table: {} has no default for `{key}`", section.name))
}

/// A duration default from the table (the one place defaults are written).
pub fn default_duration(section: &Section, key: &str) -> std::time::Duration {
    super::duration::parse(default_text(section, key))
        .unwrap_or_else(|e| panic!("field table: default of `{key}`: {e}"))
}

/// An integer default from the table.
pub fn default_int(section: &Section, key: &str) -> i64 {
    default_text(section, key)
        .parse()
        .unwrap_or_else(|e| panic!("field table: default of `{key}`: {e}"))
}

/// A list-of-strings default from the table (`[-a]`, `[]`).
pub fn default_list(section: &Section, key: &str) -> Vec<String> {
    let text = default_text(section, key);
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or_else(|| panic!("field table: default of `{key}` is not a list"));
    inner
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

/// A boolean default from the table.
pub fn default_bool(section: &Section, key: &str) -> bool {
    default_text(section, key) == "true"
}

pub static TOP: Section = Section {
    name: "top level",
    what: "the top level of the config",
    doc: "The main file, `/etc/backupmanager/backupmanager.yaml` unless `--config` or `BACKUPMANAGER_CONFIG` says otherwise.",
    fields: &[
        f("cron_schedule", Ty::Cron, None, "Default schedule for jobs that set none: standard 5-field cron (minute hour day-of-month month day-of-week) as cronie reads it, or a macro (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`, `@reboot`). Always quote it: an unquoted `*` starts a YAML alias."),
        f("pid_file_dir", Ty::AbsPath, Some("/run/backupmanager"), "Directory for the pid file and runtime state: per-job run locks (`jobs/ID.run`) and ssh ControlMaster sockets (`ssh/`). Keep the path short: socket paths are limited to 108 bytes."),
        f("state_dir", Ty::AbsPath, Some("/var/lib/backupmanager"), "Directory for persistent state (`state.json`: how far each job's schedule has been handled, last results)."),
        f("timezone", Ty::TimeZone, None, "IANA time zone schedules are evaluated in (e.g. `Europe/Amsterdam`), and in which `retention` counts hours, days, weeks, months and years. Default: the system zone, `TZ` honoured."),
        f("include", Ty::StrList, Some("[jobs.d/*.yaml]"), "Glob patterns, relative to the main file's directory, of drop-in files that add jobs. Each drop-in holds only a `jobs:` list."),
        f("shutdown_timeout", Ty::Duration, Some("30s"), "On SIGTERM the daemon cancels running jobs (rsync gets SIGTERM, then SIGKILL) and waits this long for them to release their locks before exiting."),
        f("history_keep", Ty::Duration, Some("400d"), "How long finished runs stay in the run history (`state_dir/history.sqlite`, shown by `backupmanager history`). Older ones are removed at daemon start and once a day; a run in progress never is."),
        f("metrics_textfile", Ty::AbsPath, None, "Write Prometheus metrics (`backupmanager_job_last_success_timestamp_seconds`, `..._runs_total`, ...; see the README) to this file for node_exporter's textfile collector, e.g. `/var/lib/prometheus/node-exporter/backupmanager.prom`. Rewritten atomically at the end of every run (`run-job` included) and when the daemon starts. The name must end in `.prom` for the collector to read it. Default: not written."),
        f("notify", Ty::List(&NOTIFY), Some("[]"), "Default notifications for jobs that set no `notify` of their own (see below)."),
        f("notify_on", Ty::StrList, Some("[failure, recovered, overdue]"), "Default `notify_on` for jobs that set none."),
        f("jobs", Ty::List(&JOB), Some("[]"), "The jobs."),
        f("http", Ty::Map(&HTTP), None, "Serve a read-only status page and JSON API (see below). Absent: no listener at all. `http: {}` listens on the default unix socket."),
        f("lock_backend", Ty::Enum(&["files", "etcd", "both"]), Some("files"), "Where `lock_files`, `blocks_on` and slots live. `files`: lock files, local or over SSH. `etcd`: keys in the etcd cluster of `etcd:` (each entry's key is `<host>:<path>`, so the same YAML means the same locks; a remote entry opens no SSH connection). `both` (migration): etcd first, then the lock files; released in reverse. Slots need `etcd` or `both`."),
        f("etcd", Ty::Map(&ETCD), None, "The etcd cluster (v3 API, 3.4 or later) used when `lock_backend` is `etcd` or `both`."),
        f("slots", Ty::NamedInts(1, crate::config::coord::MAX_SLOT), Some("{}"), "Counting semaphores shared by every host of the fleet: slot name → how many runs may hold it at once (e.g. `into_backup_a: 3`). A job takes the slots in its `uses_slots` before its locks; crashed holders free theirs when their lease expires. Needs `lock_backend: etcd` or `both`."),
    ],
};

pub static HTTP: Section = Section {
    name: "http",
    what: "the http block",
    doc: "The daemon's read-only web status page and JSON API (`/`, `/api/v1/...`, `/healthz`; see docs/api.md). GET and HEAD only; nothing can be changed through it. There is no TLS: put a reverse proxy in front for remote access (README). With `token_file`, every request must send `Authorization: Bearer TOKEN`.",
    fields: &[
        f("listen", Ty::StrList, Some("[unix:http.sock]"), "Where to listen: `unix:PATH` for a unix socket (a relative PATH is inside `pid_file_dir`; the socket is mode 0660), or `ADDRESS:PORT` for TCP (`127.0.0.1:8470`, `[::1]:8470`; an IP address, not a name). A TCP address that is not loopback needs `token_file`."),
        f("token_file", Ty::AbsPath, None, "File holding the bearer token (its first line, at least 16 characters). When set, every request on every listener needs `Authorization: Bearer TOKEN`; required for a listener that is not loopback. Read when the daemon starts; keep it mode 0600."),
    ],
};

pub static ETCD: Section = Section {
    name: "etcd",
    what: "the etcd block",
    doc: "How to reach the etcd cluster. Each run takes one lease (`lease_ttl`) and keeps it alive from its own thread; a run whose lease goes unconfirmed for half its TTL is stopped before another host could take its locks. With no quorum no run starts: it waits, saying so and naming the endpoints.",
    fields: &[
        req("endpoints", Ty::StrList, "Client URLs of the members, e.g. `https://10.0.0.5:2379`, tried in order (failover endpoint by endpoint). Plain `http://` only on loopback addresses (test clusters)."),
        f("ca_file", Ty::AbsPath, None, "PEM file of the CA that signed the members' certificates. Default: the system's trust store."),
        f("cert_file", Ty::AbsPath, None, "PEM client certificate (with `key_file`) for clusters with `--client-cert-auth`."),
        f("key_file", Ty::AbsPath, None, "PEM private key of `cert_file`."),
        f("user", Ty::Str, None, "etcd user name (with `password_file`), for clusters with authentication enabled."),
        f("password_file", Ty::AbsPath, None, "File whose first line is the password of `user`. Keep it readable by root only."),
        f("prefix", Ty::Str, Some("/backupmanager"), "Every key backupmanager writes starts with this: `<prefix>/locks/<host>:<path>` and `<prefix>/slots/<name>/...`."),
        f("lease_ttl", Ty::Duration, Some("60s"), "TTL of each run's lease (at least 5s). A crashed holder's locks and slots are free at most this long after it died."),
    ],
};

pub static DROPIN: Section = Section {
    name: "drop-in file",
    what: "a drop-in job file",
    doc: "A file matched by `include` (default `jobs.d/*.yaml`). Job ids are unique across all files.",
    fields: &[f("jobs", Ty::List(&JOB), Some("[]"), "The jobs this file adds.")],
};

pub static JOB: Section = Section {
    name: "job",
    what: "a job",
    doc: "One job: where its syncs go, the lock files it holds while it runs, the lock files it waits for, and what it copies.",
    fields: &[
        req("id", Ty::Str, "Unique name of the job: letters, digits, `_`, `-`, `.`. Names lock records, state and log fields (`JOB_ID`)."),
        f("enabled", Ty::Bool, Some("true"), "`false` keeps the job out of the schedule; `backupmanager run-job` still runs it."),
        f("cron_schedule", Ty::Cron, Some("the top-level cron_schedule"), "This job's schedule (see the top-level key)."),
        f("user", Ty::Str, None, "SSH login user for the syncs and for remote lock files that set none. Default: ssh's (your `~/.ssh/config`, else the local user)."),
        f("host", Ty::Str, None, "Destination host of the syncs (`dest` is on this host). Without it every sync is local. Remote lock files and blockers inherit it."),
        f("port", Ty::Port, None, "SSH port (default: ssh's, usually 22). Inherited like `host`."),
        f("identity_file", Ty::AbsPath, None, "SSH private key, used for lock checks and rsync alike."),
        f("known_hosts_file", Ty::AbsPath, None, "known_hosts file to check host keys against. Host keys are never accepted automatically."),
        f("ssh_options", Ty::StrList, Some("[]"), "Extra ssh `-o` options as `Key=Value` (e.g. `ServerAliveInterval=15`). They cannot weaken BatchMode or host key checking."),
        f("lock_files", Ty::List(&LOCK), Some("[]"), "Lock files this job creates while it runs; other instances block on them."),
        f("blocks_on", Ty::List(&BLOCKER), Some("[]"), "Lock files that must be absent before the job starts."),
        req("syncs", Ty::List(&SYNC), "What to copy: one rsync per entry, in order. A failed sync stops the run."),
        f("max_wait", Ty::Duration, None, "Give up after waiting this long for blockers: the run ends as blocked (exit 75). Default: wait as long as it takes."),
        f("timeout", Ty::Duration, None, "End a run that has not finished this long after it started (waiting included): rsync is stopped, locks are released, and the run fails naming what it was doing. Default: no limit (rsync's own `--timeout` still ends a stalled transfer)."),
        f("alert_after", Ty::Duration, None, "`status` calls the job overdue when its last success is older than this. Default: the gap between two slots of its schedule plus half of it (at least 1h); a job without a time schedule (`@reboot`) is then never overdue."),
        f("retries", Ty::Int(0, 100), Some("2"), "How many times a sync is retried after a transient rsync failure (exit codes 5, 10, 12, 30, 35, 255), with backoff."),
        f("lock_heartbeat", Ty::Duration, Some("60s"), "How often the mtime of each held lock file is refreshed while the job runs."),
        f("stale_after", Ty::Duration, Some("10m"), "The lease written into this job's lock records: a lock whose owner cannot be checked directly (another machine) is abandoned when not refreshed for this long. Must exceed twice `lock_heartbeat`."),
        f("on_missed", Ty::Enum(&["run_once", "skip"]), Some("run_once"), "Slots missed while the daemon was down or the machine slept: run once soon after start or resume, or skip them."),
        f("mode", Ty::Enum(&["mirror", "snapshot", "archive"]), Some("mirror"), "`mirror`: `dest` is one copy, brought up to date by every run. `snapshot`: every run makes a new dated copy under `dest`, hard-linked to the previous one so unchanged files take no space, and old copies are removed as `retention` says (required then). `archive`: every run writes a compressed GNU tar archive into `dest`, a level 0 (full) or an incremental on top of the previous one; chains are cut as `archive` says and aged out by `retention` (required) without ever removing an archive a kept one depends on. With `host`, tar runs here and the stream goes over ssh into `dest` there (`sha256sum` on that host checks it)."),
        f("retention", Ty::Map(&RETENTION), None, "Which snapshots a `mode: snapshot` job keeps (see below). Not allowed on a mirror job: it has no history to keep."),
        f("direction", Ty::Enum(&["push", "pull"]), Some("push"), "`push`: each sync's `source` is on this host and its `dest` on `host`. `pull`: each `source` is an absolute path on `host` and each `dest` an absolute path here, so the backup server holds the key and the client's key can be read-only (`backupmanager gate` on the client). Needs `host`. A pull source may hold only letters, digits, spaces and `/ . _ - + , : @ % = ~ #` (it crosses the client's command line). Snapshot series, lock files and blockers work as for push; the remote empty-source guard lists the source first. Not with `mode: archive` (archives are made by tar on this host; refused)."),
        f("archive", Ty::Map(&ARCHIVE), None, "How a `mode: archive` job cuts chains and compresses (see below; every key has a default). Only allowed with `mode: archive`."),
        f("uses_slots", Ty::StrList, Some("[]"), "Slots (top-level `slots:`) this job holds while it runs, taken before its locks. Needs `lock_backend: etcd` or `both`."),
        f("hooks", Ty::Map(&HOOKS), None, "Commands run around the syncs while the job's locks are held: `before`, `after_success`, `after_failure`, `finally` (see below)."),
        f("retry_for", Ty::Duration, None, "Retry a run that failed for a transient reason (the host unreachable or refusing ssh, a lock host down, an rsync exit code that `retries` also retries, a remote hook or dump that could not reach the host) as a whole, until this long after the first try began. Each try is its own run in the history. Default: off. Blocked, cancelled, timed-out and other failed runs are not retried."),
        f("retry_wait", Ty::Duration, Some("5m"), "With `retry_for`: the pause between a transiently failed try and the next one."),
        f("notify", Ty::List(&NOTIFY), Some("the top-level notify"), "Where to tell about this job's runs (see below). Sent after the locks are released, off the run's path: a failed notification is a warning in the log and never fails or delays the run."),
        f("notify_on", Ty::StrList, Some("the top-level notify_on"), "Which events ntfy and webhook destinations are told about: `start`, `success`, `warning` (a success with warnings: vanished files, a failed after hook, a failed prune), `failure` (failed or blocked), `recovered` (the first success after a failure, from the history), `overdue` (no success for `alert_after`, checked by the daemon). Healthchecks and Uptime Kuma are heartbeat monitors and always get start (Healthchecks), success and failure."),
        f("dumps", Ty::List(&DUMP), Some("[]"), "Database dumps written after the `before` hooks and before the syncs, in order (see below). A failing dump fails the run."),
    ],
};

pub static ARCHIVE: Section = Section {
    name: "archive",
    what: "the archive block",
    doc: "Chains of a `mode: archive` job. A chain is a level 0 archive (everything) followed by incrementals (level 1, 2, ...: what changed since the one before, deletions included), made with GNU tar's `--listed-incremental`. A run starts a new chain when the newest chain's level 0 is older than `full_every`, when the chain already has `max_chain_length` incrementals, when the source is on a different device than when the chain began (a new disk or LVM volume would otherwise make the incremental a silent full copy), or when `retention` keeps part of the newest chain only because newer archives depend on it (so the old chain can age out). Restoring a point extracts its level 0 and every incremental up to it, in order, into an empty directory. `retention` picks restore points with the rules below; every archive a kept point depends on stays, down to its level 0.",
    fields: &[
        f("full_every", Ty::Duration, Some("7d"), "Start a new chain when the newest chain's level 0 is at least this old."),
        f("max_chain_length", Ty::Int(0, 10_000), Some("14"), "Start a new chain when the newest one already has this many incrementals after its level 0 (`0`: every archive is a level 0)."),
        f("compression", Ty::Enum(&["zstd", "gzip", "none"]), Some("zstd"), "`zstd`: `zstd -T0` (all cores), `.tar.zst`. `gzip`: `.tar.gz`. `none`: plain `.tar`."),
    ],
};

pub static RETENTION: Section = Section {
    name: "retention",
    what: "the retention block",
    doc: "Which snapshots a `mode: snapshot` job keeps; the others are removed. The rules are restic's `forget` rules: each rule picks snapshots on its own and a snapshot stays when any rule picks it. A count rule walks from the newest snapshot to the oldest and keeps the newest of each hour, day, week, month or year, until it has kept N; periods without a snapshot do not count (`keep_daily: 7` is the last 7 days *that have* snapshots). Rules overlap: with `keep_daily: 7` and `keep_weekly: 5`, the weeks of those 7 days count towards the 5. A count rule that reaches the oldest snapshot with count to spare keeps that one too, so a young backup keeps its whole history. Periods are taken on the wall clock of the top-level `timezone`; weeks are ISO weeks, Monday to Sunday (1 January can fall in the previous year's last week). `keep_within*` windows end at the newest snapshot that is not dated in the future, not at the current time, so a machine that stops backing up keeps its last snapshots; spans count months and years on the calendar (1mo before 31 March is 2 or 3 March, as 31 February rolls over) and `m` means minutes. At least one rule is required.",
    fields: &[
        f("keep_last", Ty::Count, None, "Keep the N newest snapshots (`all`: every snapshot)."),
        f("keep_hourly", Ty::Count, None, "Keep the newest snapshot of each of the last N hours that have one (`all`: of every hour)."),
        f("keep_daily", Ty::Count, None, "Keep the newest snapshot of each of the last N days that have one (`all`: of every day)."),
        f("keep_weekly", Ty::Count, None, "Keep the newest snapshot of each of the last N ISO weeks (Monday to Sunday) that have one (`all`: of every week)."),
        f("keep_monthly", Ty::Count, None, "Keep the newest snapshot of each of the last N months that have one (`all`: of every month)."),
        f("keep_yearly", Ty::Count, None, "Keep the newest snapshot of each of the last N years that have one (`all`: of every year)."),
        f("keep_within", Ty::CalendarSpan, None, "Keep every snapshot taken less than this span before the newest snapshot (e.g. `2d`, `1y6mo`). Snapshots dated in the future are kept too."),
        f("keep_within_hourly", Ty::CalendarSpan, None, "Within this span before the newest snapshot, keep the newest snapshot of every hour (no count)."),
        f("keep_within_daily", Ty::CalendarSpan, None, "Within this span before the newest snapshot, keep the newest snapshot of every day (no count)."),
        f("keep_within_weekly", Ty::CalendarSpan, None, "Within this span before the newest snapshot, keep the newest snapshot of every ISO week (no count)."),
        f("keep_within_monthly", Ty::CalendarSpan, None, "Within this span before the newest snapshot, keep the newest snapshot of every month (no count)."),
        f("keep_within_yearly", Ty::CalendarSpan, None, "Within this span before the newest snapshot, keep the newest snapshot of every year (no count)."),
    ],
};

pub static LOCK: Section = Section {
    name: "lock file",
    what: "a lock file entry",
    doc: "A lock file the job creates atomically before it looks at its blockers, and removes at the end (only if it is still its own).",
    fields: &[
        req("type", Ty::Enum(&["local", "remote"]), "`local`: on this host. `remote`: on a host reached over SSH."),
        req("path", Ty::AbsPath, "Absolute path of the lock file. A missing parent directory is created. Keep local ones out of `/tmp` and `/var/tmp` (a service with `PrivateTmp=` sees its own copy; `validate` warns) and out of any directory a `--delete` sync of the job mirrors (an error)."),
        f("user", Ty::Str, Some("the job's user"), "Remote only: SSH user."),
        f("host", Ty::Str, Some("the job's host"), "Remote only: the host holding the file."),
        f("port", Ty::Port, Some("the job's port"), "Remote only: SSH port."),
    ],
};

pub static BLOCKER: Section = Section {
    name: "blocker",
    what: "a blocks_on entry",
    doc: "A lock file that must be absent before the job starts. While it exists the job waits, re-checking every `wait_time` (and at once when a local one is removed, or a remote one on a host that runs backupmanager: `watch-lock` over ssh; with `lock_backend: etcd`, a watch on its key).",
    fields: &[
        req("type", Ty::Enum(&["local", "remote"]), "`local`: on this host. `remote`: on a host reached over SSH."),
        req("lock_file_path", Ty::AbsPath, "Absolute path of the lock file to wait for."),
        f("wait_time", Ty::Duration, Some("300"), "Re-check interval while the lock file exists (plus up to 10% random jitter)."),
        f("stale_after", Ty::Duration, None, "For a lock file another program writes: ignore it when its mtime is older than this. Without it such a file blocks for as long as it exists. (backupmanager's own lock records carry their owner and lease and are judged by them.)"),
        f("user", Ty::Str, Some("the job's user"), "Remote only: SSH user."),
        f("host", Ty::Str, Some("the job's host"), "Remote only: the host holding the file."),
        f("port", Ty::Port, Some("the job's port"), "Remote only: SSH port."),
    ],
};

pub static SYNC: Section = Section {
    name: "sync",
    what: "a sync entry",
    doc: "One rsync from a local `source` to `dest` (on the job's host, or local when the job has none).",
    fields: &[
        req("source", Ty::AbsPath, "Local source path. A trailing `/` copies the directory's contents; without it the directory itself."),
        req("dest", Ty::Path, "Destination path: on the job's host (relative paths are relative to the login's home), or local (absolute) when the job has no host."),
        f("opts", Ty::StrList, Some("[-a]"), "rsync options; left out, `-a` (archive: recursive, keeping times, permissions, links). A list replaces the default, so include `-a` (or `-r`) yourself: without recursion rsync skips a directory and still exits 0, and `validate` warns. Each entry is split like a shell splits words (`\"--exclude '.cache'\"` gives two arguments) but never run by a shell: nothing is expanded. `-e`/`--rsh` is not allowed on remote jobs: the transport is managed."),
        f("allow_empty_source", Ty::Bool, Some("false"), "Allow a `--delete` sync to run when its source is missing or empty. By default it refuses, because an unmounted disk looks like that and would wipe the destination."),
        f("max_delete", Ty::Int(0, 1_000_000_000), None, "For a `--delete` sync: the most files one run may delete at the destination (rsync's `--max-delete`). Past it rsync deletes no more and exits 25, and the run fails with \"the --max-delete limit stopped deletions\": look before raising it. A count, not a percentage: a percentage needs the destination's file count, which a remote destination would have to be walked for before every run. Default: no limit."),
        f("allow_unmounted", Ty::Bool, Some("false"), "Allow a `--delete` sync (and any snapshot) to run when a file system that `/etc/fstab` lists at or below its source is not mounted. By default it refuses: `/srv/photos` on its own disk, unmounted, would otherwise be deleted from the backup of `/srv/`."),
    ],
};

pub static HOOKS: Section = Section {
    name: "hooks",
    what: "the hooks block",
    doc: "Commands a job runs around its syncs. Order: own locks → blockers → `before` → syncs → `after_success` or `after_failure` → `finally` → locks released. Each list runs in order. A dry run (`run-job --dry-run`) runs no hooks and no dumps. Hooks see `BACKUPMANAGER_JOB`, `BACKUPMANAGER_RUN_ID`, `BACKUPMANAGER_PHASE`, `BACKUPMANAGER_OUTCOME` (after and finally: `success`, `failed`, `cancelled`, `skipped`), `BACKUPMANAGER_ERROR` (the run's error, empty on success), `BACKUPMANAGER_EXIT_CODE` (what `run-job` will exit with), `BACKUPMANAGER_LOG_FILE` (this run's log file) and, after a snapshot, `BACKUPMANAGER_RESTORE_POINT` (the newest snapshot this run made). Their output goes to the run log and the journal. A `before` hook that exits 75 skips the run (outcome `skipped`, exit 0: no syncs, no after hooks, `finally` still runs). A failing `before` hook fails the run unless `on_error: continue`; a failing after or finally hook is a warning and never changes the outcome.",
    fields: &[
        f("before", Ty::List(&HOOK), Some("[]"), "After the locks are taken and the blockers are gone, before the first sync."),
        f("after_success", Ty::List(&HOOK), Some("[]"), "After every sync succeeded."),
        f("after_failure", Ty::List(&HOOK), Some("[]"), "After the run failed (a before hook, a sync, or a lock). Not run when the run was blocked before it took its locks."),
        f("finally", Ty::List(&HOOK), Some("[]"), "Last, whatever happened, once the locks were taken."),
    ],
};

pub static HOOK: Section = Section {
    name: "hook",
    what: "a hook",
    doc: "One hook command: exactly one of `run` and `shell`.",
    fields: &[
        f("run", Ty::StrList, None, "The program and its arguments, started without a shell (nothing is expanded), e.g. `[/usr/local/bin/dump-db, --fast]`."),
        f("shell", Ty::Str, None, "A script given to `/bin/sh -c`: pipes, redirections and variables work. The only place backupmanager uses a shell."),
        f("where", Ty::Enum(&["local", "remote"]), Some("local"), "`local`: on this host. `remote`: on the job's `host`, over the job's ssh connection (each word quoted for the remote POSIX shell; the environment is passed with `env`). A remote hook must not exit 255, which is ssh's own failure code."),
        f("timeout", Ty::Duration, Some("1h"), "A hook still running after this long is stopped (its whole process group gets SIGTERM, then SIGKILL) and counts as failed. Remote: the ssh session is ended, and the host's own `timeout` (coreutils, when it has one) stops the command's process group there."),
        f("on_error", Ty::Enum(&["abort", "continue"]), Some("abort"), "`before` hooks only. `abort`: a failing hook fails the run without syncing (`after_failure` and `finally` still run). `continue`: a warning; the run goes on."),
    ],
};

pub static DUMP: Section = Section {
    name: "dump",
    what: "a dump entry",
    doc: "A database dump written before the syncs, so they copy a consistent file instead of a live database. The dump is written to a hidden temporary file next to `to` (`.NAME.bm-partial`) and renamed to `to` only when complete: a failed or stopped dump leaves the previous one in place and no partial file. Output goes to the run log like a hook's. Types: `sqlite` runs `sqlite3 DATABASE \".backup TMP\"` (the online backup API: consistent while the database is in use); `postgresql` runs `pg_dump OPTIONS --file=TMP --dbname=DATABASE` (connection settings in `options` or the usual `PG*` variables and `~/.pgpass`); `mysql` runs `mysqldump OPTIONS --result-file=TMP DATABASE` (e.g. `options: [--single-transaction, --defaults-extra-file=/etc/backupmanager/my.cnf]` for InnoDB tables; MariaDB's `mysqldump` is the same program); `command` runs `run` and writes its standard output.",
    fields: &[
        req("type", Ty::Enum(&["sqlite", "postgresql", "mysql", "command"]), "What to dump and with which program (`sqlite3`, `pg_dump`, `mysqldump`, or `run`)."),
        f("database", Ty::Str, None, "`sqlite`: the database file. `postgresql`, `mysql`: the database name (or, for `pg_dump`, a connection string)."),
        f("run", Ty::StrList, None, "`command` only: the program and its arguments, started without a shell; its standard output is the dump."),
        f("options", Ty::StrList, Some("[]"), "`postgresql` and `mysql` only: extra arguments before the database, e.g. `[--host=127.0.0.1, --port=5432, --username=backup, --format=custom]`."),
        req("to", Ty::AbsPath, "Absolute path of the finished dump (on the job's host with `where: remote`). Put it inside a sync's source so the syncs copy it."),
        f("where", Ty::Enum(&["local", "remote"]), Some("local"), "`local`: dump on this host. `remote`: on the job's `host`, over its ssh connection."),
        f("timeout", Ty::Duration, Some("1h"), "A dump still running after this long is stopped (its process group killed; remote: the ssh session ended and the host's own `timeout`, when it has one, stops it there) and the run fails."),
    ],
};

pub static NOTIFY: Section = Section {
    name: "notify",
    what: "a notify entry",
    doc: "One destination: exactly one of `healthchecks`, `ntfy`, `uptime_kuma`, `webhook`. Requests use HTTPS with the system's CA store (`/etc/ssl/certs`, so an internal CA added with `update-ca-certificates` works; `SSL_CERT_FILE` or `SSL_CERT_DIR` in the service's environment replace it), a 10 s timeout, and run on a thread of their own. URLs, tokens and header values are secrets: logs, status and errors name only the service and the URL's host.",
    fields: &[
        f("healthchecks", Ty::Map(&HEALTHCHECKS), None, "Healthchecks.io (or self-hosted): pinged at start (`/start`), on success, and on failure (`/fail`, body: the error), each with `rid` so it measures the run's duration."),
        f("ntfy", Ty::Map(&NTFY), None, "An ntfy topic: one message per event in `notify_on`."),
        f("uptime_kuma", Ty::Map(&UPTIME_KUMA), None, "An Uptime Kuma push monitor: `status=up` on success, `status=down` on failure, with the message and duration."),
        f("webhook", Ty::Map(&WEBHOOK), None, "Any URL: a JSON run summary (`job`, `run_id`, `event`, `outcome`, `message`, `error_kind`, `duration_seconds`, `host`) for each event in `notify_on`."),
    ],
};

pub static HEALTHCHECKS: Section = Section {
    name: "healthchecks",
    what: "a healthchecks block",
    doc: "A Healthchecks check.",
    fields: &[
        req(
            "ping_url",
            Ty::Str,
            "The check's ping URL, e.g. `https://hc-ping.com/UUID` (a secret).",
        ),
        f("ca_file", Ty::AbsPath, None, "A PEM file of extra root certificates to trust for this endpoint only (an internal CA), besides the system's store. Checked when the config is loaded, read again at each send."),
    ],
};

pub static NTFY: Section = Section {
    name: "ntfy",
    what: "an ntfy block",
    doc: "An ntfy server and topic.",
    fields: &[
        req("server", Ty::Str, "The server's URL, e.g. `https://ntfy.sh`."),
        req("topic", Ty::Str, "The topic (a secret on public servers: anyone who knows it can read it)."),
        f("token_file", Ty::AbsPath, None, "A file holding an access token (sent as `Authorization: Bearer`), read at each send. Keep it mode 0600."),
        f("ca_file", Ty::AbsPath, None, "A PEM file of extra root certificates to trust for this endpoint only (an internal CA), besides the system's store. Checked when the config is loaded, read again at each send."),
    ],
};

pub static UPTIME_KUMA: Section = Section {
    name: "uptime kuma",
    what: "an uptime_kuma block",
    doc: "An Uptime Kuma push monitor.",
    fields: &[
        req("push_url", Ty::Str, "The monitor's push URL, e.g. `https://kuma.example/api/push/KEY` (a secret; any query it carries is replaced)."),
        f("ca_file", Ty::AbsPath, None, "A PEM file of extra root certificates to trust for this endpoint only (an internal CA), besides the system's store. Checked when the config is loaded, read again at each send."),
    ],
};

pub static WEBHOOK: Section = Section {
    name: "webhook",
    what: "a webhook block",
    doc: "A URL that receives a JSON run summary.",
    fields: &[
        req("url", Ty::Str, "Where to send it (a secret)."),
        f(
            "method",
            Ty::Enum(&["POST", "PUT"]),
            Some("POST"),
            "The HTTP method.",
        ),
        f(
            "headers",
            Ty::StrMap,
            None,
            "Extra headers, e.g. `{Authorization: \"Bearer ...\"}` (secrets).",
        ),
        f("ca_file", Ty::AbsPath, None, "A PEM file of extra root certificates to trust for this endpoint only (an internal CA), besides the system's store. Checked when the config is loaded, read again at each send."),
    ],
};

/// Every section, for generators.
pub fn sections() -> [&'static Section; 17] {
    [
        &TOP,
        &JOB,
        &LOCK,
        &BLOCKER,
        &SYNC,
        &RETENTION,
        &HTTP,
        &ARCHIVE,
        &ETCD,
        &HOOKS,
        &HOOK,
        &DUMP,
        &NOTIFY,
        &HEALTHCHECKS,
        &NTFY,
        &UPTIME_KUMA,
        &WEBHOOK,
    ]
}

#[cfg(test)]
mod default_tests {
    use super::*;
    use std::time::Duration;

    /// Every default the decoder reads from the table parses.
    #[test]
    fn the_defaults_the_decoder_reads_parse() {
        assert_eq!(
            default_duration(&TOP, "shutdown_timeout"),
            Duration::from_secs(30)
        );
        assert_eq!(
            default_duration(&TOP, "history_keep"),
            Duration::from_secs(400 * 86400)
        );
        assert_eq!(
            default_duration(&JOB, "lock_heartbeat"),
            Duration::from_secs(60)
        );
        assert_eq!(
            default_duration(&JOB, "stale_after"),
            Duration::from_secs(600)
        );
        assert_eq!(
            default_duration(&BLOCKER, "wait_time"),
            Duration::from_secs(300)
        );
        assert_eq!(default_int(&JOB, "retries"), 2);
        assert!(default_bool(&JOB, "enabled"));
        assert_eq!(default_list(&SYNC, "opts"), ["-a"]);
        assert!(default_list(&JOB, "ssh_options").is_empty());
        assert_eq!(default_text(&TOP, "pid_file_dir"), "/run/backupmanager");
        assert_eq!(default_text(&TOP, "state_dir"), "/var/lib/backupmanager");
    }
}
