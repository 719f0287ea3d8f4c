//! Runs that must end on their own: a job's `timeout` stops a run that takes too long (naming
//! what it was doing), and `max_delete` stops a `--delete` sync that would delete more than it
//! may (rsync exit 25) with a message that says what to check. Real binary, real rsync.
mod support;

use std::fs;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_backupmanager");

fn run_job(cfg: &std::path::Path, job: &str) -> Output {
    Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "run-job", job])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_run_past_its_timeout_is_stopped_and_names_what_it_was_doing() {
    let t = Scratch::new("bm-timeout-");
    fs::create_dir_all(t.p("src")).unwrap();
    big_file(&t.p("src/big"), 4 << 20);
    let cfg = ConfigBuilder::new()
        .cron_schedule("0 3 * * *")
        .pid_file_dir(t.p("run"))
        .state_dir(t.p("state"))
        .job(
            JobBuilder::new("slow")
                .timeout("2s")
                .retries(0)
                .lock_local(t.p("locks/slow.lock"))
                // ~4 MiB at 200 KiB/s: some 20 s without the timeout.
                .sync(
                    format!("{}/", t.s("src")),
                    t.p("dst"),
                    &["-a", "--bwlimit=200"],
                ),
        )
        .write(t.p("bm.yaml"));
    let started = Instant::now();
    let out = run_job(&cfg, "slow");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not finish within its timeout of 2s") && stderr.contains("sync 0 ("),
        "{stderr}"
    );
    // Promptness with a wide margin: far less than the unbounded ~20 s.
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(!t.p("locks/slow.lock").exists(), "the lock is released");
}

#[test]
fn max_delete_stops_a_mass_deletion_and_says_what_to_check() {
    let t = Scratch::new("bm-maxdel-");
    fs::create_dir_all(t.p("src")).unwrap();
    fs::create_dir_all(t.p("dst")).unwrap();
    fs::write(t.p("src/kept"), "k\n").unwrap();
    for i in 0..10 {
        fs::write(t.p(&format!("dst/old{i}")), "o\n").unwrap();
    }
    let cfg = ConfigBuilder::new()
        .cron_schedule("0 3 * * *")
        .pid_file_dir(t.p("run"))
        .state_dir(t.p("state"))
        .job(
            JobBuilder::new("mirror").retries(0).sync_entry(
                SyncEntry::new(format!("{}/", t.s("src")), t.p("dst"), &["-a", "--delete"])
                    .max_delete(3),
            ),
        )
        .write(t.p("bm.yaml"));
    let out = run_job(&cfg, "mirror");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("max_delete"), "{stderr}");
    let left = fs::read_dir(t.p("dst"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("old")
        })
        .count();
    assert!(left >= 7, "at most 3 deleted, {left} of 10 left");
}
