//! Per-run log files and `backupmanager logs`: the real binary and real rsync. A run writes
//! `<state_dir>/logs/JOB/RUN_ID.log`; `logs` prints it, `logs -f` follows a run until it ends;
//! the daemon's trim removes logs with their history rows; Ctrl-C on `run-job` exits 130.
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn tmp() -> Scratch {
    let t = Scratch::short("bml");
    fs::create_dir_all(t.p("src/sub")).unwrap();
    fs::write(t.p("src/a.txt"), "hello\n").unwrap();
    fs::write(t.p("src/sub/b.txt"), "world!\n").unwrap();
    t
}

fn config(t: &Scratch, job: JobBuilder, keep: Option<&str>) -> PathBuf {
    let mut c = ConfigBuilder::in_scratch(t).job(job);
    if let Some(k) = keep {
        c = c.history_keep(k);
    }
    c.write(t.p("bm.yaml"))
}

fn bm(cfg: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("-c")
        .arg(cfg)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn logs_of(t: &Scratch, job: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(t.p("state/logs").join(job))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_run_writes_its_log_and_logs_prints_it() {
    let t = tmp();
    let cfg = config(
        &t,
        JobBuilder::new("j").sync(t.s("src/"), t.s("dst/"), &["-a", "-v"]),
        None,
    );
    let out = bm(&cfg, &["run-job", "j", "--dry-run"]);
    assert_eq!(out.status.code(), Some(OK));
    assert!(logs_of(&t, "j").is_empty(), "a dry run writes no log");
    let out = bm(&cfg, &["run-job", "j"]);
    assert_eq!(out.status.code(), Some(OK), "{out:?}");
    let files = logs_of(&t, "j");
    assert_eq!(files.len(), 1, "{files:?}");
    let meta = fs::metadata(&files[0]).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = fs::read_to_string(&files[0]).unwrap();
    for needle in [
        "sync 0 starting:",
        "sync 0: sub/b.txt",
        "sync 0 done: 2 file(s)",
        "run ended: success (exit 0",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    // Every line starts with the local time; no --stats block.
    for l in text.lines() {
        assert!(
            jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", &l[..19]).is_ok(),
            "{l}"
        );
    }
    assert!(!text.contains("Number of files"), "{text}");

    let run_id = files[0].file_stem().unwrap().to_str().unwrap().to_string();
    let by_job = bm(&cfg, &["logs", "j"]);
    assert_eq!(by_job.status.code(), Some(OK));
    assert_eq!(String::from_utf8_lossy(&by_job.stdout), text);
    let by_run = bm(&cfg, &["logs", &run_id]);
    assert_eq!(String::from_utf8_lossy(&by_run.stdout), text);
    let none = bm(&cfg, &["logs", "nope"]);
    assert_eq!(none.status.code(), Some(FAILED));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no run log for `nope`"));
}

#[test]
fn logs_follow_a_run_until_it_ends() {
    let t = tmp();
    big_file(&t.p("src/big.bin"), 3 << 20);
    let cfg = config(
        &t,
        JobBuilder::new("slow").sync(t.s("src/"), t.s("dst/"), &["-a", "--bwlimit=1000"]),
        None,
    );
    let mut run = Bm::run_job(&cfg, "slow", &[]);
    wait_until(LONG, "the run's log exists", || {
        !logs_of(&t, "slow").is_empty()
    });
    let started = Instant::now();
    let follow = Command::new(BIN)
        .arg("-c")
        .arg(&cfg)
        .args(["logs", "-f", "slow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = follow.wait_with_output().unwrap();
    let followed_for = started.elapsed();
    assert_eq!(out.status.code(), Some(OK));
    assert_eq!(run.wait(LONG), OK, "{}", run.log());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sync 0 starting:"), "{text}");
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .contains("run ended: success"),
        "{text}"
    );
    // It followed the run (about 3 s at 1000 KiB/s) rather than printing what was there.
    assert!(followed_for > Duration::from_secs(1), "{followed_for:?}");
    assert_eq!(
        text,
        fs::read_to_string(&logs_of(&t, "slow")[0]).unwrap(),
        "the whole log, once"
    );
    // A finished run's log: -f ends at once.
    let again = Instant::now();
    let out = bm(&cfg, &["logs", "-f", "slow"]);
    assert_eq!(out.status.code(), Some(OK));
    assert!(again.elapsed() < Duration::from_secs(2));
}

#[test]
fn logs_are_trimmed_with_the_history() {
    let t = tmp();
    let cfg = config(
        &t,
        JobBuilder::new("j")
            .cron_schedule("0 3 1 1 *")
            .sync(t.s("src/"), t.s("dst/"), &["-a"]),
        Some("30d"),
    );
    assert_eq!(bm(&cfg, &["run-job", "j"]).status.code(), Some(OK));
    let fresh = logs_of(&t, "j");
    assert_eq!(fresh.len(), 1);
    // An old finished run with its log, and an old log the history does not know.
    let db = rusqlite::Connection::open(t.p("state/history.sqlite")).unwrap();
    let old = jiff::Timestamp::now().as_millisecond() - 90 * 86_400_000;
    db.execute(
        "INSERT INTO runs (run_id, job, trigger, started, finished, outcome, pid, pid_start, boot_id)
         VALUES ('20200101T000000-aaaaaa', 'j', 'manual', ?1, ?1, 'success', 1, 1, 'x')",
        [old],
    )
    .unwrap();
    drop(db);
    let dir = t.p("state/logs/j");
    let seeded = dir.join("20200101T000000-aaaaaa.log");
    fs::write(&seeded, "old\n").unwrap();
    // Its mtime is new: it goes because its history row goes.
    let orphan = dir.join("20200102T000000-bbbbbb.log");
    fs::write(&orphan, "orphan\n").unwrap();
    set_mtime_ago(&orphan, Duration::from_secs(60 * 86_400));
    // A symlink among the logs is never followed.
    let victim = t.p("victim");
    fs::write(&victim, "keep").unwrap();
    set_mtime_ago(&victim, Duration::from_secs(60 * 86_400));
    std::os::unix::fs::symlink(&victim, dir.join("evil.log")).unwrap();

    let daemon = Bm::spawn(&cfg, &["daemon"]);
    wait_until(LONG, "the old logs are trimmed", || {
        !seeded.exists() && !orphan.exists()
    });
    drop(daemon);
    assert!(fresh[0].exists(), "the recent run's log stays");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
}

#[test]
fn ctrl_c_on_run_job_exits_130_and_releases_its_lock() {
    let t = tmp();
    big_file(&t.p("src/big.bin"), 8 << 20);
    let lock = t.p("locks/j.lock");
    let cfg = config(
        &t,
        JobBuilder::new("j").lock_local(&lock).sync(
            t.s("src/"),
            t.s("dst/"),
            &["-a", "--bwlimit=500"],
        ),
        None,
    );
    let mut run = Bm::run_job(&cfg, "j", &[]);
    wait_until(LONG, "rsync is copying", || run.saw("sync 0 starting"));
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.pid() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(run.wait(LONG), 130, "{}", run.log());
    assert!(!lock.exists(), "the lock is released");
    let log = run.full_log();
    assert!(!log.contains("rsync error"), "no rsync warning:\n{log}");
    assert!(log.contains("run cancelled"), "{log}");
    let text = fs::read_to_string(&logs_of(&t, "j")[0]).unwrap();
    assert!(text.contains("run ended: cancelled"), "{text}");
}

/// `script` (util-linux) runs `args` with a pseudo-terminal as its stdin, stdout and stderr;
/// returns what the terminal showed and the exit code.
fn on_a_terminal(args: &[&str]) -> (String, i32) {
    assert!(
        Path::new("/usr/bin/script").exists(),
        "these tests need `script` from util-linux (apt-get install util-linux)"
    );
    let line: Vec<String> = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(|a| {
            assert!(
                a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._=-".contains(c)),
                "{a}"
            );
            a.to_string()
        })
        .collect();
    let out = Command::new("/usr/bin/script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn on_a_terminal_run_job_shows_progress_and_a_summary() {
    let t = tmp();
    big_file(&t.p("src/big.bin"), 3 << 20);
    let cfg = config(
        &t,
        JobBuilder::new("j").sync(t.s("src/"), t.s("dst/"), &["-a", "--bwlimit=1500"]),
        None,
    );
    let cfg_s = cfg.to_str().unwrap();
    let (screen, code) = on_a_terminal(&["-c", cfg_s, "run-job", "j"]);
    assert_eq!(code, OK, "{screen}");
    // The progress line, rewritten in place, then cleared before the next line.
    assert!(screen.contains("\rsync 0: "), "{screen:?}");
    assert!(screen.contains("% ") || screen.contains("%,"), "{screen:?}");
    assert!(screen.contains("ETA "), "{screen:?}");
    assert!(screen.contains("\r\x1b[K"), "{screen:?}");
    // Short human lines: `HH:MM:SS message`, no fields.
    assert!(!screen.contains("phase="), "{screen:?}");
    assert!(
        screen.lines().any(|l| l.len() > 9
            && l.as_bytes()[2] == b':'
            && l[9..].starts_with("sync 0 starting")),
        "{screen:?}"
    );
    // The summary.
    assert!(screen.contains("j 2"), "{screen}");
    assert!(screen.contains(": success in "), "{screen}");
    assert!(
        screen.contains("3 file(s) copied (3 new, 0 changed); entries created: "),
        "{screen}"
    );
    assert!(screen.contains("MiB transferred of "), "{screen}");
    // Never in the run's log file.
    let text = fs::read_to_string(&logs_of(&t, "j")[0]).unwrap();
    assert!(!text.contains("ETA") && !text.contains('\r'), "{text}");

    // Not a terminal: neither progress nor summary, and the text log keeps its fields.
    fs::remove_dir_all(t.p("dst")).unwrap();
    let out = bm(&cfg, &["run-job", "j"]);
    assert_eq!(out.status.code(), Some(OK));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\r') && !err.contains("ETA"), "{err}");
    assert!(!err.contains("success in"), "{err}");
    assert!(err.contains("phase=") || err.contains("phase"), "{err}");
    // JSON logs on a terminal: no progress either.
    fs::remove_dir_all(t.p("dst")).unwrap();
    let (screen, code) = on_a_terminal(&["-c", cfg_s, "--log-format", "json", "run-job", "j"]);
    assert_eq!(code, OK, "{screen}");
    assert!(
        !screen.contains("ETA") && !screen.contains("to-chk"),
        "{screen}"
    );
}

#[test]
fn the_terminal_summary_names_the_snapshot() {
    let t = tmp();
    let cfg = config(
        &t,
        JobBuilder::new("s")
            .snapshot(&[("keep_last", "3")])
            .sync(t.s("src/"), t.s("dst"), &["-a"]),
        None,
    );
    let (screen, code) = on_a_terminal(&["-c", cfg.to_str().unwrap(), "run-job", "s"]);
    assert_eq!(code, OK, "{screen}");
    let id = screen
        .lines()
        .find_map(|l| l.trim().strip_prefix("snapshot "))
        .unwrap_or_else(|| panic!("no snapshot line in {screen}"));
    assert!(t.p("dst").join(id).is_dir(), "{id} in {screen}");
}

#[test]
fn a_daemon_run_writes_its_log_too() {
    let t = tmp();
    let cfg = config(
        &t,
        JobBuilder::new("boot")
            .cron_schedule("@reboot")
            .sync(t.s("src/"), t.s("dst/"), &["-a"]),
        None,
    );
    let daemon = Bm::spawn(&cfg, &["daemon"]);
    wait_until(LONG, "the daemon's run wrote its whole log", || {
        logs_of(&t, "boot")
            .first()
            .is_some_and(|f| fs::read_to_string(f).is_ok_and(|s| s.contains("run ended: success")))
    });
    drop(daemon);
    let text = fs::read_to_string(&logs_of(&t, "boot")[0]).unwrap();
    assert!(text.contains("started (reboot)"), "{text}");
}
