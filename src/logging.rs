//! Logging setup. Under systemd (stderr is the journal: `JOURNAL_STREAM` names stderr's device and
//! inode) events go to journald natively, with structured fields (`JOB_ID`, `RUN_ID`, `SYNC`,
//! `PHASE`, `RESULT`, `EXIT_CODE`, `DURATION_MS`), so `journalctl -u backupmanager JOB_ID=nightly`
//! works. Otherwise readable lines on stderr, or JSON lines (`--log-format json`) for log shippers.
//! The level comes from `--log-level`, else `RUST_LOG`, else `info`.
//!
//! Must not: fail or panic when stderr is gone (a closed pipe, a full disk): a log line is never
//! worth a run that cannot release its locks.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

pub fn init(level: Option<&str>, format: LogFormat) {
    let filter = || match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    if format == LogFormat::Text && stderr_is_journal() {
        if let Ok(layer) = tracing_journald::layer() {
            use tracing_subscriber::layer::SubscriberExt;
            let layer = layer
                .with_field_prefix(None)
                .with_syslog_identifier("backupmanager".into());
            let subscriber = tracing_subscriber::registry().with(filter()).with(layer);
            if tracing::subscriber::set_global_default(subscriber).is_ok() {
                return;
            }
        }
    }
    let filter = filter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // A write that fails (stderr is a pipe whose reader is gone: `run-job x 2>&1 | head -1`)
        // must cost only the line: tracing-subscriber would report it with `eprintln!`, which
        // panics on that same broken stderr and takes the run down with it.
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}

/// True when systemd connected our stderr to the journal (`JOURNAL_STREAM=DEV:INODE`).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}
