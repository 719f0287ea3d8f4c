//! The command line: raw arguments → one validated command. Each subcommand is a function in
//! `commands/` that returns an exit code; nothing here runs jobs or reads configs itself.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::DEFAULT_PATH;

/// Runs rsync jobs on in-process cron schedules and chains machines safely through lock files.
#[derive(Debug, Parser)]
#[command(name = "backupmanager", version, propagate_version = true)]
pub struct Cli {
    /// Main config file (drop-in job files are read from jobs.d/ next to it).
    #[arg(long, short = 'c', global = true, env = "BACKUPMANAGER_CONFIG", default_value = DEFAULT_PATH, value_name = "PATH")]
    pub config: PathBuf,

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}
