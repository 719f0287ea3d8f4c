//! The configuration: YAML files → typed, validated values.
//!
//! Data flows one way: [`load`] reads the main file and its drop-ins, [`yaml`] turns text into a
//! spanned tree, [`decode`] turns the tree into the types below while collecting *every* problem
//! as a [`Diagnostic`] with `file:line:col`, and only a config without errors is handed on. The
//! daemon and `run-job` therefore only ever see validated values.
//!
//! This module is plain data. It knows nothing of running, locking or scheduling beyond parsing a
//! schedule expression; it never touches the network and only reads the filesystem to load files and
//! to warn about a source that does not exist.

pub mod archive;
pub mod ca_file;
pub mod coord;
pub mod decode;
pub mod diag;
pub mod dumps;
pub mod duration;
pub mod fields;
pub mod hooks;
pub mod http;
pub mod notify;
pub mod reference;
pub mod retention;
pub mod retry;
pub mod words;
pub mod yaml;
pub mod zone;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::schedule::Schedule;
pub use diag::{Diagnostic, Severity, Span};

/// Where the packaged config lives; `--config` and `BACKUPMANAGER_CONFIG` override it.
pub const DEFAULT_PATH: &str = "/etc/backupmanager/backupmanager.yaml";
/// Drop-in job files read when the main file has no `include:`.
pub const DEFAULT_INCLUDE: &str = "jobs.d/*.yaml";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main file it was read from.
    pub main_file: PathBuf,
    /// Every file that contributed (main file first, then drop-ins in sorted order).
    pub files: Vec<PathBuf>,
    /// Directory for the pid file and runtime state (per-job run locks, ssh control sockets).
    pub pid_file_dir: PathBuf,
    /// Directory for persistent state (last run times, run history).
    pub state_dir: PathBuf,
    /// Time zone schedules are evaluated in, and retention counts hours, days, weeks, months
    /// and years in.
    pub timezone: Zone,
    /// How long the daemon waits for running jobs to stop on SIGTERM before killing rsync.
    pub shutdown_timeout: Duration,
    /// How long finished runs stay in the run history.
    pub history_keep: Duration,
    /// Where the Prometheus metrics are written after every run (node_exporter's textfile
    /// collector); `None`: not written.
    pub metrics_textfile: Option<PathBuf>,
    /// Default notifications for jobs without their own `notify` / `notify_on`.
    pub notify: Vec<notify::Destination>,
    pub notify_on: Vec<notify::NotifyOn>,
    pub jobs: Vec<Job>,
    /// The read-only web status page and API; `None`: no listener.
    pub http: Option<http::Http>,
    /// `lock_backend`, `etcd` and `slots`.
    pub coord: coord::Coordination,
}

impl Config {
    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }

    /// Where and when `job`'s runs are notified: its own settings, else the top level's.
    pub fn notify_for(&self, job: &Job) -> notify::Notify {
        notify::Notify {
            destinations: job.notify.clone().unwrap_or_else(|| self.notify.clone()),
            on: job
                .notify_on
                .clone()
                .unwrap_or_else(|| self.notify_on.clone()),
        }
    }
}

/// The zone schedules use: the system's (`TZ` honoured) unless `timezone:` names one.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The IANA name, or `None` for the system zone.
    pub name: Option<String>,
    pub tz: jiff::tz::TimeZone,
}

impl Zone {
    pub fn system() -> Zone {
        Zone {
            name: None,
            tz: zone::system(),
        }
    }
}

/// One job: its schedule, its lock files, what it waits for and what it copies.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    /// Where the job is defined (its `id` value).
    pub origin: Span,
    pub enabled: bool,
    pub schedule: Schedule,
    /// The destination host of the syncs; `None` means every sync is local.
    pub remote: Option<Remote>,
    pub ssh: SshSettings,
    pub lock_files: Vec<LockFile>,
    pub blocks_on: Vec<Blocker>,
    pub syncs: Vec<Sync>,
    /// Give up (exit 75, *blocked*) after waiting this long for blockers; `None` waits forever.
    pub max_wait: Option<Duration>,
    /// End a run that has not finished this long after it started; `None`: no limit.
    pub timeout: Option<Duration>,
    /// `status` calls the job overdue when its last success is older than this; `None`: derived
    /// from the schedule.
    pub alert_after: Option<Duration>,
    /// How many times a sync that failed transiently is retried.
    pub retries: u32,
    /// How often a held lock file's mtime is refreshed.
    pub lock_heartbeat: Duration,
    /// A lock file of ours whose mtime is older than this is considered abandoned.
    pub stale_after: Duration,
    /// What the daemon does with slots missed while it was down or the machine slept.
    pub on_missed: OnMissed,
    /// How the destination holds what the job copies.
    pub mode: Mode,
    /// Which snapshots to keep; `Some` exactly when `mode` is [`Mode::Snapshot`], and then it
    /// keeps something ([`crate::retention::Policy::keeps_something`]).
    pub retention: Option<crate::retention::Policy>,
    /// Archive settings; `Some` exactly when `mode` is [`Mode::Archive`].
    pub archive: Option<ArchiveSettings>,
    /// Which way the syncs copy: push (`dest` on `host`) or pull (`source` on `host`).
    pub direction: Direction,
    /// Slots (top-level `slots:`) the job holds while it runs.
    pub uses_slots: Vec<coord::SlotUse>,
    /// Commands run around the syncs (empty lists when the job has no `hooks:`).
    pub hooks: hooks::Hooks,
    /// Database dumps written before the syncs.
    pub dumps: Vec<dumps::Dump>,
    /// Whole-run retries after a transient failure; `None`: off.
    pub retry: Option<retry::Retry>,
    /// `notify` / `notify_on` as the job wrote them (`None`: the top level's); see
    /// [`Config::notify_for`].
    pub notify: Option<Vec<notify::Destination>>,
    pub notify_on: Option<Vec<notify::NotifyOn>>,
}

/// How an archive-mode job cuts its chains and compresses (`archive:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// Start a new chain (level 0) when the chain's level 0 is at least this old.
    pub full_every: Duration,
    /// Start a new chain after this many incrementals following the level 0.
    pub max_chain_length: u32,
    pub compression: Compression,
}

/// The compressor an archive goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `zstd -T0` (multi-threaded), `.tar.zst`.
    Zstd,
    /// `gzip`, `.tar.gz`.
    Gzip,
    /// No compressor, `.tar`.
    None,
}

/// How a job stores what it copies at its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// One copy, brought up to date by every run (rsync as configured).
    #[default]
    Mirror,
    /// A new dated copy per run, hard-linked to the previous one, aged out by `retention`.
    Snapshot,
    /// Chains of GNU tar incremental archives (level 0, then level N), aged out by `retention`
    /// without ever breaking a chain.
    Archive,
}

/// Which way a job's syncs copy between this host and `host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `source` is here, `dest` on `host` (or here when there is no `host`).
    #[default]
    Push,
    /// `source` is on `host`, `dest` here: the backup server fetches from its client.
    Pull,
}

/// What to do with schedule slots that passed while the daemon was not running (or asleep).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMissed {
    /// Run once, soon after start or resume, however many slots were missed.
    #[default]
    RunOnce,
    /// Drop them; wait for the next slot.
    Skip,
}

/// `user@host:port` for SSH. `user` and `port` left out mean ssh's own defaults (and `~/.ssh/config`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Remote {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Remote {
    /// Same machine and sshd, whoever logs in.
    pub fn same_endpoint(&self, other: &Remote) -> bool {
        self.host == other.host && self.port.unwrap_or(22) == other.port.unwrap_or(22)
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Per-job SSH settings, used alike for lock checks and for rsync's transport.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshSettings {
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
    /// Extra `-o Key=Value` options.
    pub options: Vec<String>,
}

/// Where a lock file lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local,
    Remote(Remote),
}

impl Location {
    pub fn same_place(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Local, Location::Local) => true,
            (Location::Remote(a), Location::Remote(b)) => a.same_endpoint(b),
            _ => false,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local => f.write_str("local"),
            Location::Remote(r) => write!(f, "{r}"),
        }
    }
}

/// A lock file the job creates while it runs.
#[derive(Debug, Clone)]
pub struct LockFile {
    pub location: Location,
    pub path: String,
    pub span: Span,
}

/// A lock file that must be absent before the job starts.
#[derive(Debug, Clone)]
pub struct Blocker {
    pub location: Location,
    pub path: String,
    /// Re-check interval while the blocker is present.
    pub wait_time: Duration,
    /// For a lock file written by another program: treat it as abandoned when its mtime is older
    /// than this. Without it such a file blocks for as long as it exists.
    pub stale_after: Option<Duration>,
    pub span: Span,
}

/// One rsync invocation.
#[derive(Debug, Clone)]
pub struct Sync {
    pub source: String,
    pub dest: String,
    /// `opts` as written in the file, or the field table's default (`[-a]`) when left out.
    pub opts: Vec<String>,
    /// `opts` split into arguments (see [`words::split`]).
    pub args: Vec<String>,
    /// Run even when a `--delete` sync's source is missing or empty.
    pub allow_empty_source: bool,
    /// Run a `--delete` sync even when a file system `/etc/fstab` lists below its source is
    /// not mounted.
    pub allow_unmounted: bool,
    pub span: Span,
}

impl Sync {
    pub fn deletes(&self) -> bool {
        self.args.iter().any(|a| words::is_delete_opt(a))
    }
}

/// What a load produced: the config when there were no errors, and every diagnostic either way.
#[derive(Debug)]
pub struct Loaded {
    pub config: Option<Config>,
    pub diagnostics: Vec<Diagnostic>,
    /// Text of every file read, for rendering source lines under diagnostics.
    pub sources: BTreeMap<PathBuf, String>,
}

impl Loaded {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }

    /// Every diagnostic rendered with its source line, errors and warnings in file order.
    pub fn render(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.render(self.sources.get(&*d.span.file).map(String::as_str)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Reads and validates the configuration rooted at `path`.
pub fn load(path: &Path) -> Loaded {
    decode::load(path)
}
