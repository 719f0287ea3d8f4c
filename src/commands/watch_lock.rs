//! `backupmanager watch-lock [--timeout SECS] PATH` (hidden; run on a host holding a lock file,
//! by a waiter over its multiplexed ssh connection): waits with inotify until PATH is gone and
//! prints exactly one framed line, `BM1 GONE` (absent now) or `BM1 STILL` (still there when the
//! timeout passed), then exits 0. The timeout bounds the process even if the ssh session that
//! started it is gone. Any other ending (exit code, no line) makes the waiter fall back to
//! polling.
//!
//! Must not: read, follow or change what is at PATH (only whether a name exists there), or load
//! the configuration.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::exit;
use crate::run::wait::Watcher;

use crate::lock::remote::WATCH_MAX_SECS as MAX_TIMEOUT;

fn present(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

pub fn run(path: &Path, timeout_secs: u64) -> i32 {
    if !path.is_absolute() || timeout_secs == 0 || timeout_secs > MAX_TIMEOUT {
        eprintln!("error: watch-lock needs an absolute path and a timeout of 1-{MAX_TIMEOUT} s");
        return exit::USAGE;
    }
    let end = Instant::now() + Duration::from_secs(timeout_secs);
    // Watch first, then look: a removal between the two is not missed.
    let mut watcher = Watcher::new(&[path.to_path_buf()]);
    let never = AtomicBool::new(false);
    loop {
        if !present(path) {
            println!("BM1 GONE");
            return exit::OK;
        }
        let now = Instant::now();
        if now >= end {
            println!("BM1 STILL");
            return exit::OK;
        }
        // Without inotify (or with the directory unwatchable) look again every second.
        let slice = (end - now).min(Duration::from_secs(1));
        match watcher.as_mut() {
            Some(w) => {
                w.wait(slice, path, &never);
            }
            None => std::thread::sleep(slice),
        }
    }
}
