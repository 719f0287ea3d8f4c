//! The command line: raw arguments → one validated command. Each subcommand is a function in
//! `commands/` that returns an exit code; nothing here runs jobs or reads configs itself.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::DEFAULT_PATH;

/// `--version`: the package version and the git commit it was built from (`unknown` when built
/// outside a git checkout, e.g. from a release tarball). Set by build.rs.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BACKUPMANAGER_GIT_COMMIT"),
    ")"
);

/// Runs rsync jobs on in-process cron schedules and chains machines safely through lock files.
#[derive(Debug, Parser)]
#[command(name = "backupmanager", version = VERSION, propagate_version = true)]
pub struct Cli {
    /// Main config file (drop-in job files are read from jobs.d/ next to it).
    #[arg(long, short = 'c', global = true, env = "BACKUPMANAGER_CONFIG", default_value = DEFAULT_PATH, value_name = "PATH")]
    pub config: PathBuf,

    /// Log level or filter (error, warn, info, debug, trace; RUST_LOG syntax). Default: RUST_LOG, else info.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration and report every problem with file:line:col.
    ///
    /// Exits 0 when the config is valid (warnings allowed), 78 when it is not.
    Validate {
        /// Output format: readable text (stderr) or one JSON document (stdout).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run the scheduler: every enabled job on its cron schedule, until SIGTERM.
    ///
    /// This is what the systemd service runs (Type=notify). SIGHUP reloads the config; an
    /// invalid one is logged and the running one kept. Exits 78 if the config is invalid at start.
    Daemon,
    /// Run one job now: wait for its blockers, take its locks, run its syncs, release.
    ///
    /// Exits 0 on success, 1 when the run failed, 75 when it was blocked (max_wait passed, or
    /// --no-wait), 78 when the config is invalid, 130 when stopped with Ctrl-C.
    RunJob {
        /// The job's id.
        #[arg(value_name = "JOB_ID")]
        id: String,
        /// Report lock and blocker state without waiting or locking, then run rsync with
        /// --dry-run --itemize-changes.
        #[arg(long)]
        dry_run: bool,
        /// Do not wait: end as blocked (exit 75) if a blocker or another run holds it up.
        #[arg(long)]
        no_wait: bool,
    },
    /// Show whether the daemon runs and, per job: schedule, next run, what it does now (idle,
    /// waiting on a lock, running), last success and last failure (from the run history), and
    /// whether it is overdue.
    ///
    /// The daemon is found through its registration (/run/backupmanager/daemons/, keyed by the
    /// config path), so a daemon still using an older pid_file_dir is seen, and a broken config
    /// file still gets a status (from the daemon's state; it says the config is invalid).
    ///
    /// Overdue: no success within `alert_after`, else within the gap between two slots of the
    /// schedule plus half of it (at least 1h).
    ///
    /// --check prints one line and exits like a monitoring plugin: 0 OK; 1 WARNING (a job
    /// overdue by less than twice its allowance, or its last run failed while an older success
    /// is still within the allowance, or the config on disk is invalid while the daemon runs the
    /// one it loaded); 2 CRITICAL (overdue by twice the allowance or more, a job that ran but
    /// never succeeded, a job a daemon has scheduled for longer than its allowance that never
    /// ran, or the daemon not running while jobs are enabled); 3 UNKNOWN (the run history
    /// cannot be read, or the config cannot be read and no daemon runs it).
    Status {
        /// Only these jobs (default: all).
        #[arg(value_name = "JOB_ID")]
        jobs: Vec<String>,
        /// Output format: readable text or one JSON document.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Print one summary line and exit 0/1/2/3 (OK/WARNING/CRITICAL/UNKNOWN).
        #[arg(long)]
        check: bool,
    },
    /// List recorded runs, newest first: time, run id, job, outcome, duration, files and
    /// bytes transferred, and a short error.
    ///
    /// Reads `state_dir/history.sqlite`. Runs whose process is gone are shown as interrupted.
    History {
        /// Only this job's runs.
        #[arg(value_name = "JOB_ID")]
        job: Option<String>,
        /// At most this many runs (0: all).
        #[arg(long, short = 'n', default_value_t = 20)]
        count: usize,
        /// Only runs started at or after this: a duration back from now (7d, 12h), a date
        /// (2026-03-01) or an RFC 3339 instant.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Output format: readable text or a JSON array.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Read the history in this directory instead of the config's state_dir (the way in
        /// when the config is invalid).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Show everything recorded about one run, with each of its syncs.
    Show {
        /// The run's id (see `history`).
        #[arg(value_name = "RUN_ID")]
        run_id: String,
        /// Output format: readable text or one JSON document.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Read the history in this directory instead of the config's state_dir.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Print the log of a job's newest run, or of one run; -f follows a run in progress.
    ///
    /// Reads `state_dir/logs/JOB/RUN_ID.log`: one line per event with the local time, and
    /// rsync's output. Logs are removed with the history (`history_keep`).
    Logs {
        /// A job id (its newest run) or a run id (see `history`).
        #[arg(value_name = "JOB|RUN_ID")]
        target: String,
        /// Keep printing what the run writes until it ends.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Read the logs in this directory instead of the config's state_dir.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// List the restore points of a snapshot-mode job, newest first.
    ///
    /// Reads each sync's series (locally, or on the job's host over ssh): id, time (RFC 3339
    /// with offset, the run's start), files transferred, total size, run id. For an
    /// archive-mode job, every archive: id, time, chain, level, entries, size, run id.
    Snapshots {
        /// The job's id.
        #[arg(value_name = "JOB_ID")]
        id: String,
        /// Output format: readable text or a JSON array (objects with at least id and time).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Apply a snapshot-mode job's retention policy now; print every snapshot with keep or
    /// remove and the rules that keep it.
    ///
    /// A successful run prunes by itself; this is for a changed policy or a look ahead. The
    /// newest snapshot is never removed, and a plan that would remove all is refused. Takes the
    /// job's run lock (exit 75 while a run of the job is in progress). For an archive-mode job
    /// every archive a kept one depends on stays too, down to its level 0 ("parent of ...").
    Prune {
        /// The job's id.
        #[arg(value_name = "JOB_ID")]
        id: String,
        /// Show the plan; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Output format: readable text or a JSON array.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Copy a snapshot (or parts of it) back into a local directory with rsync.
    ///
    /// The snapshot's contents land directly in DIR, hard links kept. A non-empty DIR is
    /// refused unless --overwrite; nothing in DIR is ever deleted. For an archive-mode job the
    /// whole chain is verified first (a missing or damaged archive is named and nothing is
    /// extracted), then level 0 and each incremental are extracted in order into an empty DIR
    /// with their deletions applied (--overwrite is refused). Ctrl-C or SIGTERM stops an
    /// archive restore at once (exit 130) and says whether DIR holds an incomplete restore.
    Restore {
        /// The job's id.
        #[arg(value_name = "JOB_ID")]
        id: String,
        /// A snapshot id (see `snapshots`), or `latest`.
        #[arg(long, default_value = "latest", value_name = "ID")]
        snapshot: String,
        /// Which sync's series, for a job with several syncs (0, 1, ...).
        #[arg(long, value_name = "N")]
        sync: Option<usize>,
        /// A path inside the snapshot to restore (repeatable; default: all of it).
        #[arg(long = "path", value_name = "SUBPATH")]
        paths: Vec<String>,
        /// The local directory to restore into.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Show what would be copied (rsync --dry-run --itemize-changes); change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Restore into a non-empty DIR (same-named files are replaced; nothing is deleted).
        #[arg(long)]
        overwrite: bool,
    },
    /// Check the archive chains of an archive-mode job: every archive a restore point needs is
    /// there, with the recorded size and sha256, and linked to its parent.
    ///
    /// Checks every restore point unless --snapshot names one. With --read, every archive is
    /// also decompressed and listed by tar. Exit 1 when a chain is broken, naming the missing
    /// or damaged archive.
    Verify {
        /// The job's id.
        #[arg(value_name = "JOB_ID")]
        id: String,
        /// One restore point (an id from `snapshots`, or `latest`); default: all.
        #[arg(long, value_name = "ID")]
        snapshot: Option<String>,
        /// Which sync's series, for a job with several syncs (0, 1, ...); default: all.
        #[arg(long, value_name = "N")]
        sync: Option<usize>,
        /// Also decompress and list every archive.
        #[arg(long)]
        read: bool,
    },
    /// Print the JSON Schema of the config file (for editors: yaml-language-server, VS Code).
    Schema,
    /// Print a shell completion script on stdout.
    ///
    /// The Debian package installs them for bash, zsh and fish. Elsewhere, for example:
    /// `backupmanager completions bash > ~/.local/share/bash-completion/completions/backupmanager`.
    Completions {
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the job ids of the config, one a line, for shell completion (nothing, and exit 0,
    /// when the config cannot be read).
    #[command(name = "__complete-jobs", hide = true)]
    CompleteJobs,
    /// Generated references, for the docs and the package build.
    #[command(hide = true)]
    Reference {
        #[command(subcommand)]
        kind: ReferenceKind,
    },
    /// Print upcoming fire times of jobs, or of a cron expression.
    ///
    /// Times are RFC 3339 with offset, in the zone the daemon would use
    /// (`timezone:` from the config, else the system zone; TZ is honoured).
    Next {
        /// Jobs to show (default: every enabled job).
        #[arg(value_name = "JOB_ID", conflicts_with = "expr")]
        jobs: Vec<String>,
        /// A cron expression to evaluate instead of the configured jobs.
        #[arg(long, value_name = "EXPR")]
        expr: Option<String>,
        /// Start after this instant (RFC 3339, e.g. 2026-03-29T01:00:00+01:00; default: now).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// How many fire times to print per job or expression.
        #[arg(long, short = 'n', default_value_t = 5)]
        count: usize,
    },
    /// Restrict a backup server's key on a client: the forced command in authorized_keys.
    ///
    /// Reads SSH_ORIGINAL_COMMAND and allows only an rsync sender for paths under --read-only
    /// roots, the lock operations of backupmanager's lock protocol for lock files under
    /// --allow-locks, `tar DIR` (a tar stream of a directory under a --read-only root) and
    /// `dump NAME` for commands declared with --allow-dump. Everything else
    /// is refused with one line on stderr and logged to syslog (facility auth). Paste the line
    /// --print-authorized-keys-line prints.
    Gate {
        /// A directory the key may read (absolute; repeatable).
        #[arg(long = "read-only", value_name = "DIR")]
        read_only: Vec<PathBuf>,
        /// A directory the key may create, observe, refresh and release lock files in
        /// (absolute; repeatable).
        #[arg(long, value_name = "DIR")]
        allow_locks: Vec<PathBuf>,
        /// A command the key may run as `dump NAME` (absolute program and arguments,
        /// separated by whitespace, no shell; repeatable).
        #[arg(long, value_name = "NAME=COMMAND")]
        allow_dump: Vec<String>,
        /// The rsync program to execute (default: rsync from PATH).
        #[arg(long, value_name = "PATH")]
        rsync: Option<PathBuf>,
        /// The syslog socket log lines go to.
        #[arg(long, value_name = "PATH", default_value = "/dev/log")]
        syslog_socket: PathBuf,
        /// Print the authorized_keys line for --key with these options, and exit.
        #[arg(long, requires = "key")]
        print_authorized_keys_line: bool,
        /// The backup server's public key (the text of its .pub file).
        #[arg(long, value_name = "PUBKEY")]
        key: Option<String>,
    },
    /// List the locks and slots held now, with their holders, fleet-wide (etcd) and for this
    /// config's lock files; or break one.
    ///
    /// With `lock_backend: etcd` or `both` every key under the etcd prefix is listed (any host's
    /// config shows the same fleet-wide view); with `files` or `both` each `lock_files` and
    /// `blocks_on` entry of this config is checked (remote ones over ssh). Exits 1 when
    /// something could not be checked.
    Locks {
        #[command(subcommand)]
        action: Option<LocksAction>,
        /// Output format: readable text or one JSON document.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Wait until a lock file is gone (inotify), print `BM1 GONE` or, at the timeout,
    /// `BM1 STILL`. Run over ssh by a waiter on another host, for a fast hand-off.
    #[command(name = "watch-lock", hide = true)]
    WatchLock {
        /// Give up after this many seconds (1-3600).
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        timeout: u64,
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum LocksAction {
    /// Remove a lock or slot key whoever holds it (an operator's last resort). The holder's run
    /// stops: at once for an etcd key (its watch sees the key gone), at its next heartbeat for a
    /// lock file; its rsync is stopped and the run fails naming the lock. Asks for confirmation
    /// unless --yes; logs what it removed and whose run will stop.
    ///
    /// KEY: a full etcd key as `locks` lists it, or `<host>:<path>` (a lock_files/blocks_on
    /// entry: its etcd key and, with lock files, the file, only if it holds a backupmanager
    /// record).
    Break {
        #[arg(value_name = "KEY")]
        key: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ReferenceKind {
    /// Print docs/configuration.md.
    Markdown,
    /// Print backupmanager.yaml(5) (roff).
    ConfigMan,
    /// Write every man page into DIR: backupmanager(1), one page per subcommand
    /// (backupmanager-validate(1), ...) and backupmanager.yaml(5).
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}
