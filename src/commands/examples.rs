//! The examples of every subcommand, as data: the man pages render them as EXAMPLES sections
//! and `tests/cli_docs.rs` parses each one with the clap definition, so they cannot drift.
//!
//! Must not: hold anything but real, working invocations.

/// Examples of each subcommand: (subcommand, arguments after `backupmanager`, what it does).
/// The man pages render them; a test parses every one with the clap definition.
pub const EXAMPLES: &[(&str, &[&str], &str)] = &[
    (
        "validate",
        &["validate"],
        "Check the default config; every problem is reported with file:line:col.",
    ),
    (
        "validate",
        &["validate", "--format", "json"],
        "The same diagnostics as one JSON document on stdout.",
    ),
    (
        "validate",
        &["-c", "/etc/backupmanager/test.yaml", "validate"],
        "Check another config file before installing it.",
    ),
    (
        "daemon",
        &["daemon"],
        "Run the scheduler in the foreground (the systemd service does this).",
    ),
    (
        "daemon",
        &["--log-level", "debug", "daemon"],
        "The same, logging every lock and schedule decision.",
    ),
    (
        "run-job",
        &["run-job", "--dry-run", "home_to_usb"],
        "Show lock and blocker state and what rsync would change; change nothing.",
    ),
    (
        "run-job",
        &["run-job", "home_to_usb"],
        "Run the job now, waiting for its blockers.",
    ),
    (
        "run-job",
        &["run-job", "--no-wait", "home_to_usb"],
        "Run it only if nothing holds it up; else exit 75.",
    ),
    (
        "status",
        &["status"],
        "The daemon and every job: schedule, next run, last success, overdue.",
    ),
    (
        "status",
        &["status", "--check"],
        "One line and exit 0/1/2/3, for a monitoring system (Nagios, Icinga).",
    ),
    (
        "status",
        &["status", "--format", "json", "home_to_usb"],
        "One job's status as JSON.",
    ),
    (
        "history",
        &["history", "-n", "30"],
        "The 30 newest runs of every job.",
    ),
    (
        "history",
        &["history", "--since", "7d", "home_to_usb"],
        "The runs of one job in the last week.",
    ),
    (
        "history",
        &["history", "--format", "json"],
        "The 20 newest runs as a JSON array.",
    ),
    (
        "show",
        &["show", "--format", "json", "RUN_ID"],
        "Everything recorded about one run (its id from history), as JSON.",
    ),
    (
        "logs",
        &["logs", "home_to_usb"],
        "The log of the job's newest run.",
    ),
    (
        "logs",
        &["logs", "-f", "home_to_usb"],
        "Follow the run in progress until it ends.",
    ),
    (
        "snapshots",
        &["snapshots", "projects_hourly"],
        "The restore points of a snapshot-mode job, newest first.",
    ),
    (
        "snapshots",
        &["snapshots", "--format", "json", "projects_hourly"],
        "The same as a JSON array.",
    ),
    (
        "prune",
        &["prune", "--dry-run", "projects_hourly"],
        "Show which snapshots the retention policy keeps and why; remove nothing.",
    ),
    (
        "prune",
        &["prune", "projects_hourly"],
        "Apply the policy now.",
    ),
    (
        "restore",
        &["restore", "projects_hourly", "--to", "/tmp/restore"],
        "Copy the newest snapshot into /tmp/restore.",
    ),
    (
        "restore",
        &[
            "restore",
            "projects_hourly",
            "--snapshot",
            "SNAPSHOT_ID",
            "--path",
            "src/main.rs",
            "--to",
            "/tmp/restore",
            "--dry-run",
        ],
        "Show what restoring one file of an older snapshot would copy.",
    ),
    (
        "verify",
        &["verify", "nightly_archive"],
        "Check every restore point of an archive-mode job: archives present, sha256 and parent links right.",
    ),
    (
        "verify",
        &["verify", "nightly_archive", "--snapshot", "latest", "--read"],
        "Check the newest point's chain and also decompress and list every archive in it.",
    ),
    (
        "schema",
        &["schema"],
        "Print the JSON Schema of the config file, for editors.",
    ),
    (
        "completions",
        &["completions", "bash"],
        "Print the bash completion script (job ids are completed from the config).",
    ),
    (
        "next",
        &["next"],
        "The next 5 fire times of every enabled job.",
    ),
    (
        "next",
        &["next", "--expr", "30 1 * * *", "-n", "3"],
        "The next 3 fire times of a cron expression.",
    ),
    (
        "next",
        &[
            "next",
            "--expr",
            "0 2 * * *",
            "--from",
            "2026-03-29T00:00:00+01:00",
        ],
        "Check a schedule across a daylight saving time change.",
    ),
    (
        "gate",
        &[
            "gate",
            "--read-only",
            "/srv/data",
            "--allow-locks",
            "/var/lib/backupmanager/locks",
            "--print-authorized-keys-line",
            "--key",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... backup@server",
        ],
        "On a client: print the authorized_keys line that lets the backup server's key read /srv/data and keep its lock files, and nothing else.",
    ),
    (
        "locks",
        &["locks"],
        "Who holds which lock and slot now (etcd: the whole fleet).",
    ),
    (
        "locks",
        &["locks", "break", "backup_a:/var/lock/backup.lock", "--yes"],
        "Remove a lock whose holder is gone or stuck (logged); a holder still running stops its run.",
    ),
];
