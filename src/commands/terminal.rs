//! What `run-job` shows on a terminal (stderr is a tty, text logs): one live progress line
//! from rsync's `--info=progress2`, rewritten in place with `\r`, and a readable summary at the
//! end. Neither reaches the log file, the JSON logs or the journal: the progress lines are
//! dropped by those observers ([`crate::run::log::is_progress`]) and the summary is printed here.
//!
//! The progress observer sits first among the run's observers, so it clears its line before
//! any other observer writes a log line under it. No colour.
//!
//! Must not: write anywhere but stderr; fail (write errors cost the line).

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::events::{EventKind, Observer, RunEvent};
use crate::rsync::Stream;
use crate::run::log::is_progress;
use crate::run::RunOutcome;
use crate::units::human_bytes;

/// Draws rsync's progress on stderr.
#[derive(Default)]
pub struct Progress {
    /// Whether a progress line is on screen now.
    shown: Mutex<bool>,
}

impl Observer for Progress {
    fn on_event(&self, ev: &RunEvent) {
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        match &ev.kind {
            EventKind::SyncOutput {
                index,
                stream: Stream::Stdout,
                line,
            } if is_progress(line) => {
                if let Some(p) = parse(line) {
                    let _ = write!(err, "\r{}\x1b[K", p.render(*index));
                    let _ = err.flush();
                    *shown = true;
                }
            }
            _ if *shown => {
                let _ = write!(err, "\r\x1b[K");
                let _ = err.flush();
                *shown = false;
            }
            _ => {}
        }
    }
}

/// One `--info=progress2` line: `  3,145,728  45%    1.00MB/s    0:00:03 (xfr#1, to-chk=0/4)`.
#[derive(Debug, PartialEq)]
struct Line {
    bytes: u64,
    percent: u32,
    rate: String,
    eta: String,
}

fn parse(line: &str) -> Option<Line> {
    let mut w = line.split_whitespace();
    let bytes = w.next()?.replace([',', '.'], "").parse().ok()?;
    let percent = w.next()?.strip_suffix('%')?.parse().ok()?;
    let rate = w.next().unwrap_or_default().to_string();
    let eta = w.next().unwrap_or_default().to_string();
    Some(Line {
        bytes,
        percent,
        rate,
        eta,
    })
}

impl Line {
    fn render(&self, index: usize) -> String {
        format!(
            "sync {index}: {} copied, {:>3}%, {}, ETA {}",
            human_bytes(self.bytes),
            self.percent,
            self.rate,
            self.eta
        )
    }
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let s = d.as_secs();
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
        }
    }
}

/// The summary `run-job` prints on a terminal once the run is over. `syncs` are the job's
/// `(source, dest)` pairs, by index.
pub fn summary(outcome: &RunOutcome, syncs: &[(String, String)]) -> String {
    let mut s = format!(
        "{} {}: {} in {}",
        outcome.job,
        outcome.run_id,
        outcome.status().as_str(),
        human_duration(outcome.duration)
    );
    if outcome.waited >= Duration::from_secs(1) {
        s.push_str(&format!(
            " (waited {} for locks)",
            human_duration(outcome.waited)
        ));
    }
    s.push('\n');
    for r in &outcome.syncs {
        let (src, dst) = syncs
            .get(r.index)
            .map_or(("?", "?"), |(a, b)| (a.as_str(), b.as_str()));
        s.push_str(&format!("  sync {}: {src} -> {dst}", r.index));
        match &r.stats {
            Some(st) => {
                let secs = r.duration.as_secs_f64().max(0.001);
                let changed = st.files_transferred.saturating_sub(st.files_created_reg);
                s.push_str(&format!(
                    "\n    {} file(s) copied ({} new, {} changed); entries created: {}, deleted: {}\n    {} transferred of {} in the tree, in {}, {}/s\n",
                    st.files_transferred,
                    st.files_created_reg,
                    changed,
                    st.files_created,
                    st.files_deleted,
                    human_bytes(st.transferred_size),
                    human_bytes(st.total_size),
                    human_duration(r.duration),
                    human_bytes((st.transferred_size as f64 / secs) as u64)
                ));
            }
            None => match &r.archive {
                Some(a) => s.push_str(&format!(
                    "\n    {}, in {}\n",
                    a.written(),
                    human_duration(r.duration)
                )),
                None => s.push_str(&format!(" (exit {}, no statistics)\n", r.exit_code)),
            },
        }
    }
    let what = if outcome.syncs.iter().any(|r| r.archive.is_some()) {
        "archive"
    } else {
        "snapshot"
    };
    for p in &outcome.restore_points {
        s.push_str(&format!("  {what} {p}\n"));
    }
    let msg = outcome.message();
    if !msg.is_empty() {
        s.push_str(&format!("  {}\n", msg.replace('\n', "\n  ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        let l = parse("      3,145,728  45%    1.00MB/s    0:00:03 (xfr#1, to-chk=0/4)").unwrap();
        assert_eq!(l.bytes, 3_145_728);
        assert_eq!(l.percent, 45);
        assert_eq!(
            l.render(0),
            "sync 0: 3.0 MiB copied,  45%, 1.00MB/s, ETA 0:00:03"
        );
        assert!(parse("sending incremental file list").is_none());
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_duration(Duration::from_secs(3725)), "1h02m05s");
    }
}
