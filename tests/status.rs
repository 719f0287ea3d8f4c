//! `status`: last success and failure from the run history, overdue, `--check` exit codes, the
//! daemon found through its registration (after a reload that moved `pid_file_dir`, and with a
//! broken config on disk).
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::*;

fn tmp() -> Scratch {
    let t = Scratch::short("bms");
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/file"), "data\n").unwrap();
    t
}

/// A job copying `<t>/src/` to `<t>/dst-ID/`, yearly (never due during a test).
fn job(t: &Scratch, id: &str) -> JobBuilder {
    JobBuilder::new(id).cron_schedule("0 0 1 1 *").sync(
        t.s("src/"),
        t.s(&format!("dst-{id}/")),
        &["-a"],
    )
}

fn config(t: &Scratch, jobs: &[&JobBuilder]) -> PathBuf {
    ConfigBuilder::in_scratch(t)
        .jobs(jobs.iter().copied())
        .write(t.p("bm.yaml"))
}

/// `backupmanager --config CFG ARGS`: exit code, stdout, stderr.
fn bm(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env_remove("BACKUPMANAGER_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status_json(cfg: &Path) -> Value {
    let (code, out, err) = bm(cfg, &["status", "--format", "json"]);
    assert_eq!(code, OK, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn job_of<'a>(st: &'a Value, id: &str) -> &'a Value {
    st["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .unwrap_or_else(|| panic!("no job {id} in {st}"))
}

fn check(cfg: &Path) -> (i32, String) {
    let (code, out, _) = bm(cfg, &["status", "--check"]);
    (code, out)
}

fn daemon(cfg: &Path) -> Bm {
    let d = Bm::spawn_verbose(cfg, &["daemon"]);
    wait_until(Duration::from_secs(30), "the daemon to start", || {
        d.full_log().contains("daemon started")
    });
    d
}

fn stop(mut d: Bm) {
    kill(Pid::from_raw(d.pid() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(d.wait(LONG), OK, "{}", d.log());
}

#[test]
fn last_success_and_failure_come_from_the_history_and_check_says_critical_without_a_daemon() {
    let t = tmp();
    let good = job(&t, "good");
    let bad = JobBuilder::new("bad").cron_schedule("0 0 1 1 *").sync(
        t.s("missing/"),
        t.s("dst-bad/"),
        &["-a"],
    );
    let cfg = config(&t, &[&good, &bad]);
    assert_eq!(Bm::run_job(&cfg, "good", &[]).wait(LONG), OK);
    assert_eq!(Bm::run_job(&cfg, "bad", &[]).wait(LONG), FAILED);

    let st = status_json(&cfg);
    let g = job_of(&st, "good");
    assert_eq!(g["state"], "idle", "{st}");
    assert_eq!(g["last_success"]["outcome"], "success", "{st}");
    let fin = g["last_success"]["finished"].as_str().unwrap();
    fin.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("RFC 3339 with offset: {fin}: {e}"));
    assert!(g["last_success"]["duration_ms"].is_u64(), "{st}");
    assert!(g["last_failure"].is_null(), "{st}");
    assert_eq!(g["overdue"], false);
    assert!(
        g["allowance_seconds"].as_u64().unwrap() > 365 * 86400,
        "{st}"
    );
    let b = job_of(&st, "bad");
    assert!(b["last_success"].is_null(), "{st}");
    assert_eq!(b["last_failure"]["outcome"], "failed", "{st}");
    assert!(b["last_failure"]["error_kind"].is_string(), "{st}");
    assert_eq!(b["check"], "critical", "{st}");
    assert!(st["daemon"].is_null());

    let (code, line) = check(&cfg);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("BACKUPMANAGER CRITICAL - 2 jobs"),
        "{line}"
    );
    assert!(
        line.contains("daemon not running") && line.contains("bad: never succeeded"),
        "{line}"
    );

    // One job only: the text names its last success.
    let (code, out, _) = bm(&cfg, &["status", "good"]);
    assert_eq!(code, OK);
    assert!(out.contains("last success: "), "{out}");
    let (code, _, err) = bm(&cfg, &["status", "nope"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn check_codes_ok_warning_critical_with_a_daemon() {
    let t = tmp();
    let good = job(&t, "good");
    let flaky = job(&t, "flaky");
    let tight = job(&t, "tight").alert_after("4s");
    let cfg = config(&t, &[&good, &flaky, &tight]);
    let d = daemon(&cfg);
    assert_eq!(Bm::run_job(&cfg, "good", &[]).wait(LONG), OK);
    assert_eq!(Bm::run_job(&cfg, "flaky", &[]).wait(LONG), OK);
    assert_eq!(Bm::run_job(&cfg, "tight", &[]).wait(LONG), OK);
    let done = std::time::Instant::now();
    let (code, line) = check(&cfg);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with("BACKUPMANAGER OK - 3 jobs, last success "),
        "{line}"
    );

    // tight: older than its 4s allowance but not twice that: WARNING.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(done.elapsed()));
    let (code, line) = check(&cfg);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("tight: no success for"), "{line}");
    // Beyond twice: CRITICAL, and the job says overdue.
    std::thread::sleep(Duration::from_secs(9).saturating_sub(done.elapsed()));
    let (code, line) = check(&cfg);
    assert_eq!(code, 2, "{line}");
    assert_eq!(job_of(&status_json(&cfg), "tight")["overdue"], true);

    // flaky: a failure after a recent success is a WARNING.
    let cfg = config(&t, &[&good, &flaky]);
    fs::rename(t.p("src"), t.p("src.away")).unwrap();
    assert_eq!(Bm::run_job(&cfg, "flaky", &[]).wait(LONG), FAILED);
    fs::rename(t.p("src.away"), t.p("src")).unwrap();
    let (code, line) = check(&cfg);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("flaky: last run failed"), "{line}");
    stop(d);
    let (code, line) = check(&cfg);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("daemon not running"), "{line}");
    // The daemon wrote down since when it expects each job to run.
    let state: Value =
        serde_json::from_str(&fs::read_to_string(t.p("state/state.json")).unwrap()).unwrap();
    assert!(
        state["jobs"]["good"]["scheduled_since"].is_string(),
        "{state}"
    );
}

/// A job a daemon has scheduled for longer than its allowance without a single run (say its
/// schedule never fires as meant) is overdue, not "no run yet" forever.
#[test]
fn a_job_scheduled_long_ago_that_never_ran_is_critical() {
    let t = tmp();
    let idle = job(&t, "idle").alert_after("1h");
    let fresh = job(&t, "fresh").alert_after("1h");
    let cfg = config(&t, &[&idle, &fresh]);
    fs::create_dir_all(t.p("state")).unwrap();
    let recent = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(5);
    fs::write(
        t.p("state/state.json"),
        serde_json::json!({"version": 1, "jobs": {
            "idle": {"covered_until": "2000-01-01T00:00:00Z", "scheduled_since": "2000-01-01T00:00:00Z"},
            "fresh": {"covered_until": recent.to_string(), "scheduled_since": recent.to_string()},
        }})
        .to_string(),
    )
    .unwrap();
    let st = status_json(&cfg);
    assert_eq!(job_of(&st, "idle")["check"], "critical", "{st}");
    assert_eq!(job_of(&st, "idle")["overdue"], true, "{st}");
    assert_eq!(job_of(&st, "fresh")["check"], "ok", "{st}");
    let (code, line) = check(&cfg);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.contains("idle: never ran: scheduled since 2000-01-01"),
        "{line}"
    );
    assert!(!line.contains("fresh:"), "{line}");
}

#[test]
fn a_broken_config_without_a_daemon_is_unknown() {
    let t = tmp();
    let cfg = t.p("bm.yaml");
    fs::write(&cfg, "jobs: [\n").unwrap();
    let (code, line) = check(&cfg);
    assert_eq!(code, 3, "{line}");
    assert!(line.starts_with("BACKUPMANAGER UNKNOWN - "), "{line}");
    let (code, _, _) = bm(&cfg, &["status"]);
    assert_eq!(code, 78);
}

#[test]
fn an_unreadable_history_is_unknown() {
    let t = tmp();
    let cfg = config(&t, &[&job(&t, "good")]);
    fs::create_dir_all(t.p("state")).unwrap();
    fs::write(t.p("state/history.sqlite"), vec![b'x'; 4096]).unwrap();
    let (code, line) = check(&cfg);
    assert_eq!(code, 3, "{line}");
    assert!(line.contains("cannot read the run history"), "{line}");
    let st = status_json(&cfg);
    assert!(st["history_error"].is_string(), "{st}");
}

/// Hardening item 7, finished: after a reload that moves `pid_file_dir`, `run-job` and
/// `status` find the daemon through its registration and use its directories: `run-job` meets
/// the run lock the daemon's run holds, `status` sees the daemon and what its run waits on.
/// Then, with the config on disk broken, `status` still reports from the registration.
#[test]
fn after_a_reload_that_moves_pid_file_dir_run_job_and_status_use_the_daemons_dirs() {
    let t = tmp();
    fs::create_dir_all(t.p("locks")).unwrap();
    fs::write(t.p("locks/block"), "someone else\n").unwrap();
    let slow = job(&t, "slow").blocks_on_local(t.p("locks/block"), "1s");
    let cfg = config(&t, &[&slow]);
    // A missed slot: the daemon runs `slow` at once; it waits on the blocker, holding its
    // run lock.
    fs::create_dir_all(t.p("state")).unwrap();
    fs::write(
        t.p("state/state.json"),
        r#"{"version":1,"jobs":{"slow":{"covered_until":"2000-01-01T00:00:00Z"}}}"#,
    )
    .unwrap();
    // A registration left by a daemon that was killed: swept when a daemon starts.
    let ghost = backupmanager_registration(&t.p("ghost.yaml"));
    fs::create_dir_all(ghost.parent().unwrap()).unwrap();
    let dead = serde_json::json!({
        "pid": 4_194_999, "pid_start": 1, "boot_id": "x", "config": "g", "config_canonical": "g",
        "pid_file_dir": "r", "state_dir": "s", "started": "2026-01-01T00:00:00Z", "runs": {}
    });
    fs::write(&ghost, dead.to_string()).unwrap();
    let d = daemon(&cfg);
    assert!(
        !ghost.exists(),
        "a dead daemon's registration is swept at start"
    );
    wait_until(
        Duration::from_secs(30),
        "the run to wait on the blocker",
        || job_of(&status_json(&cfg), "slow")["state"] == "waiting",
    );
    let st = status_json(&cfg);
    let w = &job_of(&st, "slow")["waiting"];
    assert!(w["lock"].as_str().unwrap().contains("locks/block"), "{st}");
    assert!(w["since"].as_str().is_some(), "{st}");
    assert_eq!(st["daemon"]["process_id"], d.pid(), "{st}");

    ConfigBuilder::new()
        .cron_schedule("0 3 * * *")
        .pid_file_dir(t.p("r2"))
        .state_dir(t.p("state2"))
        .job(slow.clone())
        .write(&cfg);
    kill(Pid::from_raw(d.pid() as i32), Signal::SIGHUP).unwrap();
    wait_until(Duration::from_secs(30), "the reload", || {
        d.full_log().contains("configuration reloaded")
    });

    let (code, _, err) = bm(&cfg, &["run-job", "slow", "--no-wait"]);
    assert_eq!(code, BLOCKED, "{err}");
    assert!(err.contains("until it restarts"), "{err}");
    // Refused by the daemon's run lock, not by the blocker.
    assert!(
        err.contains("another run of job slow is in progress"),
        "{err}"
    );
    assert!(!t.p("r2/jobs/slow.run").exists(), "{err}");

    let (code, out, err) = bm(&cfg, &["status", "--format", "json"]);
    assert_eq!(code, OK, "{err}");
    assert!(err.contains("until it restarts"), "{err}");
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["daemon"]["process_id"], d.pid(), "{st}");
    assert_eq!(st["daemon"]["dirs_differ_from_config"], true, "{st}");
    assert_eq!(job_of(&st, "slow")["state"], "waiting", "{st}");
    // Meeting the daemon's run lock is not a failure of the job.
    assert!(job_of(&st, "slow")["last_failure"].is_null(), "{st}");
    assert_eq!(job_of(&st, "slow")["check"], "ok", "{st}");

    // Broken on disk: still a status, from the registration, saying so.
    fs::write(&cfg, "jobs: [\n").unwrap();
    let (code, out, err) = bm(&cfg, &["status", "--format", "json"]);
    assert_eq!(code, OK, "{err}");
    assert!(err.contains("config on disk is invalid"), "{err}");
    let st: Value = serde_json::from_str(&out).unwrap();
    assert!(st["config_error"].is_string(), "{st}");
    assert_eq!(st["daemon"]["process_id"], d.pid(), "{st}");
    assert_eq!(job_of(&st, "slow")["state"], "waiting", "{st}");
    // The backups go on with the loaded config: a warning about the file, not UNKNOWN.
    let (code, line) = check(&cfg);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.starts_with("BACKUPMANAGER WARNING - ") && line.contains("config on disk is invalid"),
        "{line}"
    );

    stop(d);
    let reg = backupmanager_registration(&cfg);
    assert!(!reg.exists(), "the registration is removed at exit");
}

/// The registration's place, computed the way the daemon does (only to check it is gone).
fn backupmanager_registration(cfg: &Path) -> PathBuf {
    backupmanager::store::live::registration_path(cfg)
}
