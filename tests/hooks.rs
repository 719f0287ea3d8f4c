//! Hooks end to end: the real binary runs jobs whose hooks are small scripts that record what
//! they saw (phase, environment, whether the lock was held, whether the sync had run) into a
//! file; remote hooks run over the test sshd on 127.0.0.1. No test asserts on speed: the
//! timeout test only checks the hook was stopped long before its own sleep would end.
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;

fn tmp() -> Scratch {
    require_root_tools();
    let t = Scratch::short("bmh");
    fs::create_dir(t.p("r")).unwrap();
    t
}

/// A recorder script: appends one line per call to `<t>/rec`, with its first argument, the
/// hook variables, and whether the lock file and the synced file exist right then.
fn recorder(t: &Scratch) -> PathBuf {
    let script = t.p("rec.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             lock=no; [ -e {lock} ] && lock=yes\n\
             synced=no; [ -e {dest}/f ] && synced=yes\n\
             printf '%s|%s|%s|%s|%s|%s|%s|lock=%s|synced=%s|%s\\n' \"$1\" \"$BACKUPMANAGER_JOB\" \
             \"$BACKUPMANAGER_PHASE\" \"$BACKUPMANAGER_OUTCOME\" \"$BACKUPMANAGER_EXIT_CODE\" \
             \"$BACKUPMANAGER_RUN_ID\" \"$BACKUPMANAGER_ERROR\" \"$lock\" \"$synced\" \
             \"$BACKUPMANAGER_LOG_FILE\" >> {rec}\n\
             echo \"hook output from $1\"\n",
            lock = t.s("lock"),
            dest = t.s("dst"),
            rec = t.s("rec"),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/f"), "data").unwrap();
    script
}

/// Each recorded line, split at `|`.
fn recorded(t: &Scratch) -> Vec<Vec<String>> {
    fs::read_to_string(t.p("rec"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('|').map(String::from).collect())
        .collect()
}

fn job(t: &Scratch, id: &str, hooks: &str) -> JobBuilder {
    JobBuilder::new(id)
        .lock_local(t.p("lock"))
        .yaml("hooks", hooks)
        .sync(t.p("src/"), t.p("dst"), &["-a"])
}

/// [`job`] on the test sshd's host (for `where: remote` hooks).
fn remote_job(t: &Scratch, sshd: &Sshd, id: &str, hooks: &str) -> JobBuilder {
    job(t, id, hooks)
        .identity_file(sshd.client_key())
        .known_hosts_file(sshd.known_hosts())
        .remote(&Remote::new("root", "127.0.0.1", sshd.port()))
}

/// `run-job ID` to its end, with `j` the only job.
fn run(t: &Scratch, id: &str, j: JobBuilder) -> (i32, Bm) {
    let cfg = ConfigBuilder::in_scratch(t).job(j).write(t.p("bm.yaml"));
    let mut bm = Bm::run_job(&cfg, id, &[]);
    let code = bm.wait(LONG);
    (code, bm)
}

#[test]
fn hooks_run_in_order_with_the_run_environment_while_the_lock_is_held() {
    let t = tmp();
    let rec = recorder(&t);
    let r = rec.display();
    let hooks = format!(
        "{{before: [{{run: [{r}, before]}}], after_success: [{{shell: '{r} \"after $BACKUPMANAGER_PHASE\"'}}], \
         after_failure: [{{run: [{r}, after_failure]}}], finally: [{{run: [{r}, finally]}}]}}"
    );
    let (code, bm) = run(&t, "hooked", job(&t, "hooked", &hooks));
    assert_eq!(code, OK, "{}", bm.log());
    let rows = recorded(&t);
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        ["before", "after after_success", "finally"],
        "{rows:?}"
    );
    let run_id = &rows[0][5];
    assert!(!run_id.is_empty());
    for row in &rows {
        assert_eq!(row[1], "hooked");
        assert_eq!(&row[5], run_id, "one run id for every hook");
        assert_eq!(
            row[7], "lock=yes",
            "the lock is held while hooks run: {row:?}"
        );
    }
    // before: no outcome yet, nothing synced; after: success, exit 0, synced.
    assert_eq!(rows[0][2..5], ["before", "", ""]);
    assert_eq!(rows[0][8], "synced=no");
    assert_eq!(rows[1][2..5], ["after_success", "success", "0"]);
    assert_eq!(rows[1][8], "synced=yes");
    assert_eq!(rows[2][2..5], ["finally", "success", "0"]);
    // The lock is gone after the run; the log file hooks were told about is this run's.
    assert!(!t.p("lock").exists());
    let log_file = PathBuf::from(&rows[0][9]);
    assert!(
        log_file.ends_with(format!("logs/hooked/{run_id}.log")),
        "{log_file:?}"
    );
    let text = fs::read_to_string(&log_file).unwrap();
    assert!(
        text.contains("before hook 0: hook output from before"),
        "{text}"
    );
    assert!(text.contains("finally hook 0 done (exit 0)"), "{text}");
    // And the journal side (the JSON log) has the output with its hook field.
    let ev = bm
        .event("hook output from finally")
        .unwrap_or_else(|| panic!("{}", bm.log()));
    assert_eq!(
        ev["fields"]["hook"].as_str().or(ev["hook"].as_str()),
        Some("finally[0]"),
        "{ev}"
    );
    // The run history has each hook as a step of the run, next to its sync.
    let show = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(["--config", &t.s("bm.yaml"), "show", run_id])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&show(&["--format", "json"])).unwrap();
    let hooks: Vec<(&str, i64, i64)> = json["hooks"]
        .as_array()
        .unwrap_or_else(|| panic!("{json}"))
        .iter()
        .map(|h| {
            assert!(h["error"].is_null() && h["finished"].is_string(), "{h}");
            (
                h["phase"].as_str().unwrap(),
                h["index"].as_i64().unwrap(),
                h["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        hooks,
        [("before", 0, 0), ("after_success", 0, 0), ("finally", 0, 0)],
        "{json}"
    );
    assert_eq!(json["steps"].as_array().map(Vec::len), Some(1), "{json}");
    let text = show(&[]);
    assert!(
        text.contains("before 0") && text.contains("finally 0") && text.contains("exit 0 after"),
        "{text}"
    );
}

#[test]
fn a_failing_before_hook_fails_the_run_without_syncing_and_after_failure_sees_why() {
    let t = tmp();
    let rec = recorder(&t);
    let r = rec.display();
    let hooks = format!(
        "{{before: [{{shell: 'echo no database >&2; exit 3'}}, {{run: [{r}, never]}}], \
         after_success: [{{run: [{r}, after_success]}}], after_failure: [{{run: [{r}, after_failure]}}], \
         finally: [{{run: [{r}, finally]}}]}}"
    );
    let (code, bm) = run(&t, "fails", job(&t, "fails", &hooks));
    assert_eq!(code, FAILED, "{}", bm.log());
    assert!(!t.p("dst/f").exists(), "no sync after a failed before hook");
    let rows = recorded(&t);
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["after_failure", "finally"], "{rows:?}");
    assert_eq!(rows[0][3..5], ["failed", "1"]);
    assert!(rows[0][6].contains("exited with code 3"), "{:?}", rows[0]);
    assert!(bm.saw("run failed: before hook 0 (sh -c"), "{}", bm.log());
    assert!(
        bm.saw("no database"),
        "the hook's stderr is logged: {}",
        bm.log()
    );
    assert!(!t.p("lock").exists());
}

#[test]
fn on_error_continue_goes_on_and_after_hooks_never_change_the_outcome() {
    let t = tmp();
    recorder(&t);
    let hooks = "{before: [{run: [/bin/false], on_error: continue}], \
                 after_success: [{run: [/nonexistent/program]}], finally: [{shell: 'exit 9'}]}";
    let (code, bm) = run(&t, "goes_on", job(&t, "goes_on", hooks));
    assert_eq!(code, OK, "{}", bm.log());
    assert!(t.p("dst/f").exists());
    assert!(bm.saw("before hook 0 exited with code 1"), "{}", bm.log());
    assert!(bm.saw("after_success hook 0 cannot start"), "{}", bm.log());
    assert!(bm.saw("finally hook 0 exited with code 9"), "{}", bm.log());
    assert!(bm.saw("run succeeded"), "{}", bm.log());
}

#[test]
fn exit_75_from_a_before_hook_skips_the_run() {
    let t = tmp();
    let rec = recorder(&t);
    let r = rec.display();
    let hooks = format!(
        "{{before: [{{shell: 'exit 75'}}], after_success: [{{run: [{r}, after_success]}}], \
         after_failure: [{{run: [{r}, after_failure]}}], finally: [{{run: [{r}, finally]}}]}}"
    );
    let (code, bm) = run(&t, "skips", job(&t, "skips", &hooks));
    assert_eq!(code, OK, "a skipped run is not a failure: {}", bm.log());
    assert!(!t.p("dst/f").exists(), "a skipped run syncs nothing");
    let rows = recorded(&t);
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["finally"], "{rows:?}");
    assert_eq!(rows[0][3..5], ["skipped", "0"]);
    let end = bm
        .event("run skipped")
        .unwrap_or_else(|| panic!("{}", bm.log()));
    assert_eq!(
        end["fields"]["result"].as_str().or(end["result"].as_str()),
        Some("skipped"),
        "{end}"
    );
    // The history has it as skipped, not failed.
    let out = std::process::Command::new(BIN)
        .args(["--config", &t.s("bm.yaml"), "history", "--format", "json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"skipped\""), "{text}");
}

#[test]
fn a_hook_past_its_timeout_is_stopped_with_everything_it_started() {
    let t = tmp();
    recorder(&t);
    let pidfile = t.p("bg.pid");
    // The hook and its background child both ignore SIGTERM: only SIGKILL of the group ends them.
    let hooks = format!(
        "{{before: [{{shell: \"trap '' TERM; sleep 600 & echo $! > {}; wait\", timeout: 1s}}]}}",
        pidfile.display()
    );
    let started = std::time::Instant::now();
    let (code, bm) = run(&t, "slow", job(&t, "slow", &hooks));
    assert_eq!(code, FAILED, "{}", bm.log());
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "stopped long before its sleep ends"
    );
    assert!(
        bm.saw("did not finish within 1s and was stopped"),
        "{}",
        bm.log()
    );
    let pid: u32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "the hook's background child is gone",
        || !pid_alive(pid),
    );
    assert!(!t.p("dst/f").exists());
    assert!(!t.p("lock").exists());
}

#[test]
fn a_remote_hook_past_its_timeout_is_stopped_there_too() {
    let t = tmp();
    recorder(&t);
    let sshd = Sshd::start();
    let _master = Master::of(&sshd, t.p("r/ssh"));
    let pidfile = t.p("remote-bg.pid");
    // On the remote host (the test sshd, so this machine): a background child that ignores
    // SIGTERM, as a stuck dump would. Ending the ssh session alone leaves it running.
    let hooks = format!(
        "{{before: [{{where: remote, shell: \"trap '' TERM; sleep 600 & echo $! > {}; wait\", timeout: 1s}}]}}",
        pidfile.display()
    );
    let j = remote_job(&t, &sshd, "remote_slow", &hooks);
    let (code, bm) = run(&t, "remote_slow", j);
    assert_eq!(code, FAILED, "{}", bm.log());
    assert!(
        bm.saw("did not finish within 1s and was stopped"),
        "{}",
        bm.log()
    );
    let pid: u32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        "the remote hook's background child is gone",
        || !pid_alive(pid),
    );
    assert!(!t.p("lock").exists());
}

#[test]
fn remote_hooks_run_on_the_jobs_host_with_each_word_quoted() {
    let t = tmp();
    recorder(&t);
    let sshd = Sshd::start();
    let _master = Master::of(&sshd, t.p("r/ssh"));
    let out = t.p("remote-out");
    let hostile = "$(touch pwned) 'q' `x` ; &&";
    let hooks = format!(
        "{{before: [{{where: remote, run: [/bin/sh, -c, 'printf \"%s|%s|%s\\n\" \"$BACKUPMANAGER_JOB\" \"$BACKUPMANAGER_PHASE\" \"$1\" > {out}', sh, {hostile:?}]}}], \
         finally: [{{where: remote, shell: 'echo remote says $BACKUPMANAGER_PHASE; exit 4'}}]}}",
        out = out.display()
    );
    let j = remote_job(&t, &sshd, "remote_hooked", &hooks);
    let (code, bm) = run(&t, "remote_hooked", j);
    assert_eq!(code, OK, "{}", bm.log());
    let got = fs::read_to_string(&out).unwrap();
    assert_eq!(got, format!("remote_hooked|before|{hostile}\n"));
    assert!(!Path::new("pwned").exists() && !t.p("pwned").exists());
    assert!(bm.saw("remote says finally"), "{}", bm.log());
    assert!(bm.saw("finally hook 0 exited with code 4"), "{}", bm.log());
}

#[test]
fn the_jobs_timeout_stops_a_hook_and_finally_still_runs() {
    let t = tmp();
    let rec = recorder(&t);
    let r = rec.display();
    let hooks = format!(
        "{{before: [{{run: [/bin/sleep, '600']}}], after_failure: [{{run: [{r}, after_failure]}}], \
         finally: [{{run: [{r}, finally]}}]}}"
    );
    let (code, bm) = run(&t, "stopped", job(&t, "stopped", &hooks).timeout("2s"));
    assert_eq!(code, FAILED, "{}", bm.log());
    assert!(
        bm.saw("did not finish within its timeout of 2s and was stopped (before hook 0 (/bin/sleep 600) was running)"),
        "{}",
        bm.log()
    );
    let rows = recorded(&t);
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["after_failure", "finally"], "{rows:?}");
    assert_eq!(rows[1][3], "cancelled", "{rows:?}");
    assert!(!t.p("dst/f").exists());
    assert!(!t.p("lock").exists());
}
