//! Fast hand-off for remote lock files: `backupmanager watch-lock` (inotify on the host holding
//! the file) and a waiter that uses it over ssh instead of polling `wait_time`, against a
//! private sshd on 127.0.0.1 whose sessions find this build's backupmanager on their PATH.
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn watch(path: &Path, timeout: &str) -> std::process::Child {
    Command::new(BIN)
        .args(["watch-lock", "--timeout", timeout])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run watch-lock")
}

#[test]
fn watch_lock_says_gone_when_the_file_goes_and_still_at_its_timeout() {
    let t = Scratch::new("bm-watch.");
    let lock = t.p("locks/a.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, "x").unwrap();
    let child = watch(&lock, "60");
    std::thread::sleep(Duration::from_millis(500));
    let removed = Instant::now();
    std::fs::remove_file(&lock).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "BM1 GONE\n");
    assert!(
        removed.elapsed() < Duration::from_secs(30),
        "not woken by the removal"
    );

    std::fs::write(&lock, "x").unwrap();
    let out = watch(&lock, "1").wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "BM1 STILL\n");
    // Absent from the start (its directory too): gone at once.
    let out = watch(&t.p("nowhere/x.lock"), "60")
        .wait_with_output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "BM1 GONE\n");
}

#[test]
fn a_remote_blocker_is_handed_over_by_a_watch_not_by_polling_wait_time() {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let sshd = Sshd::start_with_path(Some(bin_dir));
    let t = Scratch::short("bm-watch-ho.");
    let lock = t.p("locks/backup_a.lock");
    big_file(&t.p("src-a/payload.bin"), 320 * 1024);
    big_file(&t.p("src-b/payload.bin"), 1024);
    let remote = Remote::new("root", "127.0.0.1", sshd.port());
    let job = |id: &str, src: &str| {
        JobBuilder::new(id)
            .identity_file(sshd.client_key())
            .known_hosts_file(sshd.known_hosts())
            .retries(0)
            .sync(
                t.s(src),
                t.s(&format!("dst-{id}/")),
                &["-a", "--bwlimit=128"],
            )
    };
    let a = job("a", "src-a/").lock(LockFile::remote(&lock).on(&remote));
    // Polling would take 300 s (plus jitter): only a watch explains a prompt start.
    let b = job("b", "src-b/").blocks_on(Blocker::remote(&lock, "300").on(&remote));
    let cfg_a = ConfigBuilder::in_scratch(&t).job(a).write(t.p("a.yaml"));
    let tb = Scratch::short("bm-watch-hb.");
    let cfg_b = ConfigBuilder::in_scratch(&tb).job(b).write(tb.p("b.yaml"));
    let mut ra = Bm::run_job(&cfg_a, "a", &[]);
    wait_until(LONG, "a's rsync to start", || ra.saw("sync 0 starting"));
    let mut rb = Bm::run_job(&cfg_b, "b", &[]);
    wait_until(LONG, "b to wait", || rb.saw("waiting: blocker"));
    assert_eq!(ra.wait(LONG), OK, "{}", ra.log());
    assert_eq!(rb.wait(LONG), OK, "{}", rb.log());
    let released = ra.time_of("lock released");
    let started = rb.time_of("sync 0 starting");
    assert!(started > released, "b started before a released");
    let after = started.duration_since(released);
    assert!(
        after < jiff::SignedDuration::from_secs(60),
        "b started {after:?} after the release: polled, not watched\n{}",
        rb.log()
    );
}
