//! backupmanager: runs rsync jobs on in-process cron schedules and chains machines safely
//! through lock files. See DESIGN.md for the architecture (parse → build → run) and the layer
//! diagram: commands → daemon → run → {engine, lock} → {transport, rsync} → sys.

pub mod archive;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod events;
pub mod exit;
pub mod gate;
pub mod hooks;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod retention;
pub mod rsync;
pub mod run;
pub mod schedule;
pub mod snapshot;
pub mod store;
pub mod sys;
pub mod tar;
pub mod transport;
pub mod units;
pub mod web;
