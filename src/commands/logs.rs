//! `backupmanager logs JOB|RUN_ID [-f]`: prints the log file of one run (the newest of JOB, or
//! the named run) from `<state_dir>/logs/`; `-f` follows a run in progress until it ends.
//!
//! A followed run has ended when its log's last line is the end line
//! ([`runlog::END_MARK`]), or when the history no longer says `running` (its process died:
//! the history marks it `interrupted`). The file is polled every 200 ms; no inotify.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::exit;
use crate::store::history::History;
use crate::store::runlog;

const POLL: Duration = Duration::from_millis(200);
/// How often a follower asks the history whether the run is still running.
const HISTORY_POLL: Duration = Duration::from_secs(1);
/// After the history says the run ended, how long to wait for the log's end line.
const END_GRACE: Duration = Duration::from_secs(3);

pub fn run(config_path: &Path, target: &str, follow: bool, state_dir: Option<&Path>) -> i32 {
    let state_dir = match state_dir {
        Some(d) => d.to_path_buf(),
        None => match super::load_valid(config_path, "pass --state-dir DIR to read logs anyway") {
            Ok(c) => c.state_dir,
            Err(code) => return code,
        },
    };
    let Some((path, run_id)) = resolve(&state_dir, target) else {
        eprintln!(
            "error: no run log for `{target}` under {} (give a job id or a run id from \
             `backupmanager history`)",
            runlog::root(&state_dir).display()
        );
        return exit::FAILED;
    };
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return exit::FAILED;
        }
    };
    let mut out = std::io::stdout().lock();
    let mut tail = String::new();
    if let Err(e) = copy_new(&mut file, &mut out, &mut tail) {
        eprintln!("error: {}: {e}", path.display());
        return exit::FAILED;
    }
    if !follow {
        return exit::OK;
    }
    let mut next_check = Instant::now();
    let mut ended_at: Option<Instant> = None;
    loop {
        if ended(&tail) {
            return exit::OK;
        }
        if let Some(t) = ended_at {
            if t.elapsed() > END_GRACE {
                return exit::OK;
            }
        } else if Instant::now() >= next_check {
            next_check = Instant::now() + HISTORY_POLL;
            if history_says_ended(&state_dir, &run_id) {
                ended_at = Some(Instant::now());
            }
        }
        std::thread::sleep(POLL);
        // A file that was trimmed away meanwhile simply stops growing.
        if let Err(e) = copy_new(&mut file, &mut out, &mut tail) {
            eprintln!("error: {}: {e}", path.display());
            return exit::FAILED;
        }
    }
}

/// The log file and run id of `target`: a run id, else the newest run of the job so named.
fn resolve(state_dir: &Path, target: &str) -> Option<(PathBuf, String)> {
    if let Some(p) = runlog::find_run(state_dir, target) {
        return Some((p, target.to_string()));
    }
    let p = runlog::list(state_dir, target).pop()?;
    let id = p.file_stem()?.to_string_lossy().into_owned();
    Some((p, id))
}

/// Copies what was appended since the last call; keeps the last (partial or complete) line
/// in `tail`.
fn copy_new(file: &mut File, out: &mut impl Write, tail: &mut String) -> std::io::Result<()> {
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    if buf.is_empty() {
        return Ok(());
    }
    out.write_all(&buf)?;
    out.flush()?;
    tail.push_str(&String::from_utf8_lossy(&buf));
    // Only the last line matters; keep a little more than that.
    if tail.len() > 8192 {
        let mut cut = tail.len() - 4096;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        let cut = tail[cut..].find('\n').map_or(cut, |i| cut + i + 1);
        tail.replace_range(..cut.min(tail.len()), "");
    }
    Ok(())
}

/// True when the last complete line is the run's end line (`YYYY-MM-DD HH:MM:SS run ended: …`).
fn ended(tail: &str) -> bool {
    let Some(body) = tail.strip_suffix('\n') else {
        return false;
    };
    let last = body.rsplit('\n').next().unwrap_or(body);
    last.split_once(' ')
        .and_then(|(_, rest)| rest.split_once(' '))
        .is_some_and(|(_, rest)| rest.starts_with(runlog::END_MARK))
}

/// True when the history has the run and it is no longer `running` (read-only errors: false).
fn history_says_ended(state_dir: &Path, run_id: &str) -> bool {
    let Ok(h) = History::open_existing(state_dir) else {
        return false;
    };
    let _ = h.sweep_interrupted();
    matches!(h.get(run_id), Ok(Some(r)) if r.outcome != "running")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_line() {
        assert!(ended(
            "2026-01-01 10:00:00 run ended: success (exit 0, 1.0s)\n"
        ));
        assert!(!ended(
            "2026-01-01 10:00:00 run ended: success (exit 0, 1.0s)"
        ));
        assert!(!ended("2026-01-01 10:00:00 sync 0: run ended: x\n"));
        assert!(ended(
            "a\n2026-01-01 10:00:00 run ended: failed (exit 1, 1.0s): x\n"
        ));
    }
}
