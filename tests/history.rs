//! The run history end to end: the real binary, real rsync, `<state_dir>/history.sqlite`.
//! Runs are recorded by `run-job` (and the daemon, through the same observer); `history` and
//! `show` read them back; dead runs become `interrupted`; old runs are trimmed.
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_backupmanager");

fn tmp() -> Scratch {
    let t = Scratch::short("bmh");
    fs::create_dir_all(t.p("run")).unwrap();
    fs::create_dir_all(t.p("src/sub")).unwrap();
    fs::write(t.p("src/a.txt"), "hello\n").unwrap();
    fs::write(t.p("src/sub/b.txt"), "world!\n").unwrap();
    t
}

fn config(t: &Scratch, jobs: &[&JobBuilder]) -> PathBuf {
    ConfigBuilder::new()
        .cron_schedule("0 3 1 1 *")
        .pid_file_dir(t.p("run"))
        .state_dir(t.p("state"))
        .jobs(jobs.iter().copied())
        .write(t.p("bm.yaml"))
}

fn bm(cfg: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("-c")
        .arg(cfg)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn run_job(cfg: &Path, job: &str, extra: &[&str]) -> i32 {
    let mut args = vec!["run-job", job];
    args.extend_from_slice(extra);
    bm(cfg, &args).status.code().unwrap()
}

fn history(cfg: &Path, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["history", "--format", "json", "-n", "0"];
    a.extend_from_slice(args);
    let out = bm(cfg, &a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn success_failure_and_blocked_are_recorded_with_their_numbers() {
    let t = tmp();
    fs::write(t.p("notadir"), "a regular file\n").unwrap();
    fs::write(t.p("blocker"), "busy\n").unwrap();
    let ok = JobBuilder::new("ok").sync(t.s("src/"), t.s("dst/"), &["-a"]);
    // The destination's parent is a regular file: rsync fails.
    let bad = JobBuilder::new("bad")
        .retries(0)
        .sync(t.s("src/"), t.s("notadir/dst/"), &["-a"]);
    let blocked = JobBuilder::new("blocked")
        .blocks_on_local(t.p("blocker"), "30s")
        .sync(t.s("src/"), t.s("dst2/"), &["-a"]);
    let cfg = config(&t, &[&ok, &bad, &blocked]);

    assert_eq!(run_job(&cfg, "ok", &[]), 0);
    assert_eq!(run_job(&cfg, "bad", &[]), 1);
    assert_eq!(run_job(&cfg, "blocked", &["--no-wait"]), 75);
    // A dry run is not recorded.
    assert_eq!(run_job(&cfg, "ok", &["--dry-run"]), 0);

    let runs = history(&cfg, &[]);
    assert_eq!(runs.len(), 3, "{runs:#?}");
    let by = |job: &str| runs.iter().find(|r| r["job"] == job).unwrap().clone();
    let ok = by("ok");
    assert_eq!(ok["outcome"], "success");
    assert_eq!(ok["trigger"], "manual");
    assert_eq!(ok["exit_code"], 0);
    assert_eq!(ok["files"], 2);
    assert_eq!(ok["bytes"], 13);
    assert_eq!(ok["total_size"], 13);
    assert!(ok["error_kind"].is_null() && ok["error"].is_null());
    assert!(ok["finished"].is_string() && ok["lock_acquired"].is_string());
    assert_eq!(ok["pid_start"].as_i64().map(|n| n > 0), Some(true));

    let bad = by("bad");
    assert_eq!(bad["outcome"], "failed");
    assert!(
        bad["error_kind"]
            .as_str()
            .unwrap()
            .starts_with("rsync-exit("),
        "{bad:#}"
    );
    assert!(!bad["error"].as_str().unwrap().is_empty());
    assert_eq!(bad["exit_code"], 1);

    let blocked = by("blocked");
    assert_eq!(blocked["outcome"], "blocked");
    assert_eq!(blocked["error_kind"], "blocked");
    assert_eq!(blocked["exit_code"], 75);
    assert!(blocked["lock_acquired"].is_null());

    // Newest first, and the job filter.
    assert_eq!(runs[0]["job"], "blocked");
    let only = history(&cfg, &["ok"]);
    assert_eq!(only.len(), 1);
    assert_eq!(history(&cfg, &["--since", "1h"]).len(), 3);
    assert_eq!(history(&cfg, &["--since", "2999-01-01"]).len(), 0);

    // `show`: everything about one run, with its steps.
    let id = ok["run_id"].as_str().unwrap();
    let out = bm(&cfg, &["show", id, "--format", "json"]);
    assert!(out.status.success());
    let one: Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = one["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["sync"], 0);
    assert_eq!(steps[0]["exit_code"], 0);
    assert_eq!(steps[0]["attempts"], 1);
    assert_eq!(steps[0]["files"], 2);
    let bad_id = bad["run_id"].as_str().unwrap();
    let out = bm(&cfg, &["show", bad_id, "--format", "json"]);
    let one: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(one["steps"][0]["exit_code"], 0, "{one:#}");
    let text = String::from_utf8(bm(&cfg, &["show", id]).stdout).unwrap();
    assert!(
        text.contains("sync 0") && text.contains("success"),
        "{text}"
    );

    // Text: one line per run.
    let text = String::from_utf8(bm(&cfg, &["history"]).stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(" bad ") && l.contains("failed") && l.contains("rsync-exit")),
        "{text}"
    );

    // A broken config: --state-dir is the way in, and says so.
    fs::write(&cfg, "jobs: [[[\n").unwrap();
    let out = bm(&cfg, &["history", "--format", "json"]);
    assert_eq!(out.status.code(), Some(78));
    let state = t.s("state");
    let out = bm(
        &cfg,
        &["history", "--format", "json", "--state-dir", &state],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--state-dir"));
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 3);
}

#[test]
fn a_killed_run_shows_interrupted() {
    let t = tmp();
    fs::write(t.p("blocker"), "busy\n").unwrap();
    let job = JobBuilder::new("slow")
        .blocks_on_local(t.p("blocker"), "30s")
        .sync(t.s("src/"), t.s("dst/"), &["-a"]);
    let cfg = config(&t, &[&job]);
    let mut child = Command::new(BIN)
        .arg("-c")
        .arg(&cfg)
        .args(["run-job", "slow"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the run is recorded as running",
        || {
            t.p("state/history.sqlite").exists()
                && history(&cfg, &[])
                    .first()
                    .map(|r| r["outcome"] == "running")
                    == Some(true)
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let runs = history(&cfg, &[]);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["outcome"], "interrupted", "{runs:#?}");
    assert!(runs[0]["finished"].is_string());
}

#[test]
fn concurrent_runs_of_different_jobs_are_all_recorded() {
    let t = tmp();
    let jobs: Vec<JobBuilder> = (0..20)
        .map(|i| {
            JobBuilder::new(&format!("j{i}")).sync(t.s("src/"), t.s(&format!("dst{i}/")), &["-a"])
        })
        .collect();
    let refs: Vec<&JobBuilder> = jobs.iter().collect();
    let cfg = config(&t, &refs);
    let children: Vec<_> = (0..20)
        .map(|i| {
            Command::new(BIN)
                .arg("-c")
                .arg(&cfg)
                .args(["run-job", &format!("j{i}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let runs = history(&cfg, &[]);
    assert_eq!(runs.len(), 20, "{runs:#?}");
    assert!(runs
        .iter()
        .all(|r| r["outcome"] == "success" && r["files"] == 2));
}

#[test]
fn trimming_removes_old_finished_runs_but_not_a_running_one() {
    let t = tmp();
    let job =
        JobBuilder::new("j")
            .cron_schedule("0 3 1 1 *")
            .sync(t.s("src/"), t.s("dst/"), &["-a"]);
    let cfg = ConfigBuilder::new()
        .pid_file_dir(t.p("run"))
        .state_dir(t.p("state"))
        .history_keep("30d")
        .job(job)
        .write(t.p("bm.yaml"));
    assert_eq!(run_job(&cfg, "j", &[]), 0);
    // Seed two old runs: one finished, one still running in a live process (this test's).
    let db = rusqlite::Connection::open(t.p("state/history.sqlite")).unwrap();
    let old = jiff::Timestamp::now().as_millisecond() - 90 * 86_400_000;
    let me = std::process::id();
    let start = support::procfs::start_time(me).unwrap();
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    for (id, outcome) in [("old-done", "success"), ("old-running", "running")] {
        db.execute(
            "INSERT INTO runs (run_id, job, trigger, started, finished, outcome, pid, pid_start, boot_id)
             VALUES (?1, 'j', 'manual', ?2, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![id, old, outcome, me, start as i64, boot.trim()],
        )
        .unwrap();
    }
    drop(db);
    assert_eq!(history(&cfg, &[]).len(), 3);
    // The daemon trims at start.
    let mut daemon = Command::new(BIN)
        .arg("-c")
        .arg(&cfg)
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the old finished run is trimmed",
        || history(&cfg, &[]).len() == 2,
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    daemon.wait().unwrap();
    let ids: Vec<String> = history(&cfg, &[])
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&"old-running".to_string()), "{ids:?}");
    assert!(!ids.contains(&"old-done".to_string()), "{ids:?}");
}

#[test]
fn an_older_schema_is_migrated_forward() {
    let t = tmp();
    fs::create_dir_all(t.p("state")).unwrap();
    // An empty database at user_version 0, as an older (or interrupted) first open left it.
    rusqlite::Connection::open(t.p("state/history.sqlite")).unwrap();
    let job = JobBuilder::new("j").sync(t.s("src/"), t.s("dst/"), &["-a"]);
    let cfg = config(&t, &[&job]);
    assert_eq!(run_job(&cfg, "j", &[]), 0);
    assert_eq!(history(&cfg, &[]).len(), 1);
    let db = rusqlite::Connection::open(t.p("state/history.sqlite")).unwrap();
    let v: i64 = db
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, backupmanager::store::history::schema::current());
    let mode: String = db
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}
