//! `retry_for` end to end: a remote job whose sshd is down fails transiently, is tried again
//! as a whole while the sshd stays down, and succeeds once the sshd is back; every try is its
//! own run in the history. A non-transient failure is not retried.
mod support;

use std::fs;

use serde_json::Value;
use support::*;

fn tmp() -> Scratch {
    require_root_tools();
    let t = Scratch::short("bmr");
    fs::create_dir(t.p("r")).unwrap();
    fs::create_dir(t.p("src")).unwrap();
    fs::write(t.p("src/f"), "data").unwrap();
    t
}

fn history(t: &Scratch) -> Vec<Value> {
    let out = std::process::Command::new(BIN)
        .args([
            "--config",
            &t.s("bm.yaml"),
            "history",
            "--format",
            "json",
            "-n",
            "0",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_run_is_retried_across_an_sshd_stopped_then_started() {
    let t = tmp();
    let mut sshd = Sshd::start();
    let _master = Master::of(&sshd, t.p("r/ssh"));
    let j = JobBuilder::new("retried")
        .identity_file(sshd.client_key())
        .known_hosts_file(sshd.known_hosts())
        .remote(&Remote::new("root", "127.0.0.1", sshd.port()))
        .retries(0)
        .yaml("retry_for", "10m")
        .yaml("retry_wait", "1s")
        .sync(t.p("src/"), t.s("dst"), &["-a"]);
    let cfg = ConfigBuilder::in_scratch(&t).job(j).write(t.p("bm.yaml"));
    sshd.pause();
    let mut bm = Bm::run_job(&cfg, "retried", &[]);
    // Two failed tries while it is down, then bring it back.
    wait_until(LONG, "two tries failed and a third is announced", || {
        bm.count("the whole run is tried again") >= 2
    });
    assert!(bm.try_code().is_none(), "still retrying: {}", bm.log());
    sshd.resume();
    assert_eq!(bm.wait(LONG), OK, "{}", bm.log());
    assert_eq!(fs::read_to_string(t.p("dst/f")).unwrap(), "data");
    let runs = history(&t);
    let outcomes: Vec<&str> = runs
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.len() >= 3, "{runs:#?}");
    // Newest first: the success, then the failed tries.
    assert_eq!(outcomes[0], "success", "{runs:#?}");
    assert!(outcomes[1..].iter().all(|o| *o == "failed"), "{runs:#?}");
    let ids: std::collections::HashSet<&str> =
        runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), runs.len(), "each try is its own run");
}

#[test]
fn a_failure_that_is_not_transient_is_not_retried() {
    let t = tmp();
    let j = JobBuilder::new("fatal")
        .yaml("retry_for", "10m")
        .yaml("retry_wait", "1s")
        .yaml("hooks", "{before: [{run: [/bin/false]}]}")
        .sync(t.p("src/"), t.p("dst"), &["-a"]);
    let cfg = ConfigBuilder::in_scratch(&t).job(j).write(t.p("bm.yaml"));
    let mut bm = Bm::run_job(&cfg, "fatal", &[]);
    assert_eq!(bm.wait(LONG), FAILED, "{}", bm.log());
    assert_eq!(bm.count("the whole run is tried again"), 0, "{}", bm.log());
    assert_eq!(history(&t).len(), 1);
}
