//! Logging setup. Under systemd (stderr is the journal: `JOURNAL_STREAM` names stderr's device and
//! inode) events go to journald natively, with structured fields (`JOB_ID`, `RUN_ID`, `SYNC`,
//! `PHASE`, `RESULT`, `EXIT_CODE`, `DURATION_MS`), so `journalctl -u backupmanager JOB_ID=nightly`
//! works. Otherwise readable lines on stderr, or JSON lines (`--log-format json`) for log shippers.
//! On a terminal the text lines are short: local time, the level when it is not INFO, the
//! message; the fields (`phase=sync sync=0 ...`) stay in JSON and journald, and in the text
//! lines written to a file or pipe (whose format tests and scripts parse: unchanged).
//! The level comes from `--log-level`, else `RUST_LOG`, else `info`.
//!
//! Must not: fail or panic when stderr is gone (a closed pipe, a full disk): a log line is never
//! worth a run that cannot release its locks.

use std::io::IsTerminal;

use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
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
        LogFormat::Text if stderr_is_terminal() => builder.event_format(Short).try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}

/// True when stderr is a terminal a person reads (not the journal).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal() && !stderr_is_journal()
}

/// The terminal's line: `11:05:18 message`, `11:05:18 WARN message`. No colour.
struct Short;

impl<S, N> FormatEvent<S, N> for Short
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let now = crate::config::zone::now().strftime("%H:%M:%S");
        let level = *event.metadata().level();
        if level == tracing::Level::INFO {
            write!(w, "{now} ")?;
        } else {
            write!(w, "{now} {level} ")?;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        writeln!(w, "{}", message.0)
    }
}

/// Takes only the `message` field of an event.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
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
