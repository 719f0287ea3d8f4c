//! `metrics_textfile` end to end: `run-job` rewrites the file after every run; it passes
//! `promtool check metrics` (Debian package `prometheus`), and after a failure the last
//! success stays what it was while the last run says it failed.
mod support;

use std::collections::BTreeMap;
use std::fs;

use support::*;

fn tmp() -> Scratch {
    require_root_tools();
    let t = Scratch::short("bmm");
    fs::create_dir(t.p("r")).unwrap();
    fs::create_dir(t.p("prom")).unwrap();
    fs::create_dir(t.p("src")).unwrap();
    fs::write(t.p("src/f"), "data").unwrap();
    t
}

/// Sample lines `name{labels} value` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn run(cfg: &std::path::Path, id: &str) -> (i32, Bm) {
    let mut bm = Bm::run_job(cfg, id, &[]);
    (bm.wait(LONG), bm)
}

#[test]
fn the_textfile_passes_promtool_and_keeps_the_last_success_through_a_failure() {
    let t = tmp();
    let prom = t.p("prom/backupmanager.prom");
    let cfg = ConfigBuilder::in_scratch(&t)
        .metrics_textfile(&prom)
        .job(JobBuilder::new("mirror").sync(t.p("src/"), t.p("dst"), &["-a"]))
        .job(
            JobBuilder::new("snap")
                .snapshot(&[("keep_last", "5")])
                .sync(t.p("src/"), t.p("snaps"), &["-a"]),
        )
        .write(t.p("bm.yaml"));
    let (code, bm) = run(&cfg, "mirror");
    assert_eq!(code, OK, "{}", bm.log());
    let (code, bm) = run(&cfg, "snap");
    assert_eq!(code, OK, "{}", bm.log());
    let first = fs::read_to_string(&prom).unwrap();
    promtool_check(&first);
    let s = samples(&first);
    let success = s["backupmanager_job_last_success_timestamp_seconds{job=\"mirror\"}"];
    assert!(success > 1.7e9, "{first}");
    assert_eq!(s["backupmanager_job_last_run_success{job=\"mirror\"}"], 1.0);
    assert_eq!(
        s["backupmanager_job_runs_total{job=\"mirror\",outcome=\"success\"}"],
        1.0
    );
    assert_eq!(
        s["backupmanager_job_runs_total{job=\"mirror\",outcome=\"failed\"}"],
        0.0
    );
    assert_eq!(s["backupmanager_job_restore_points{job=\"snap\"}"], 1.0);
    assert!(!s.contains_key("backupmanager_job_restore_points{job=\"mirror\"}"));
    assert_eq!(s["backupmanager_job_running{job=\"mirror\"}"], 0.0);
    assert!(s["backupmanager_job_next_run_timestamp_seconds{job=\"mirror\"}"] > success);
    assert!(
        first.contains("backupmanager_build_info{version=\""),
        "{first}"
    );
    // No temporary file is left next to it.
    let names: Vec<String> = fs::read_dir(t.p("prom"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["backupmanager.prom"]);

    // Now the mirror fails: its source is gone (rsync exit 23).
    fs::remove_dir_all(t.p("src")).unwrap();
    let (code, bm) = run(&cfg, "mirror");
    assert_eq!(code, FAILED, "{}", bm.log());
    let second = fs::read_to_string(&prom).unwrap();
    promtool_check(&second);
    let s = samples(&second);
    assert_eq!(
        s["backupmanager_job_last_success_timestamp_seconds{job=\"mirror\"}"], success,
        "the last success is unchanged by a failure:\n{second}"
    );
    assert_eq!(s["backupmanager_job_last_run_success{job=\"mirror\"}"], 0.0);
    assert!(s["backupmanager_job_last_run_timestamp_seconds{job=\"mirror\"}"] > success);
    assert_eq!(
        s["backupmanager_job_runs_total{job=\"mirror\",outcome=\"failed\"}"],
        1.0
    );
    assert_eq!(
        s["backupmanager_job_runs_total{job=\"mirror\",outcome=\"success\"}"],
        1.0
    );
}

#[test]
fn runs_total_never_goes_down_when_the_history_is_trimmed() {
    let t = tmp();
    let prom = t.p("prom/backupmanager.prom");
    let cfg = ConfigBuilder::in_scratch(&t)
        .cron_schedule("0 3 1 1 *")
        .history_keep("1s")
        .metrics_textfile(&prom)
        .job(JobBuilder::new("mirror").sync(t.p("src/"), t.p("dst"), &["-a"]))
        .write(t.p("bm.yaml"));
    let total = || {
        let text = fs::read_to_string(&prom).unwrap();
        promtool_check(&text);
        samples(&text)["backupmanager_job_runs_total{job=\"mirror\",outcome=\"success\"}"]
    };
    let rows = || {
        let v: serde_json::Value =
            serde_json::from_str(&bm_ok(&cfg, &["history", "--format", "json"])).unwrap();
        v.as_array().map(Vec::len).unwrap_or_else(|| panic!("{v}"))
    };
    for _ in 0..2 {
        let (code, bm) = run(&cfg, "mirror");
        assert_eq!(code, OK, "{}", bm.log());
    }
    assert_eq!(total(), 2.0);
    assert_eq!(rows(), 2);
    // Both runs are older than history_keep by now; the daemon trims them at start.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let mut daemon = Bm::spawn(&cfg, &["daemon"]);
    wait_until(
        std::time::Duration::from_secs(30),
        "the daemon trims the history",
        || rows() == 0,
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(daemon.wait(LONG), OK, "{}", daemon.log());
    assert_eq!(total(), 2.0, "the rows went, the counter stays");
    let (code, bm) = run(&cfg, "mirror");
    assert_eq!(code, OK, "{}", bm.log());
    assert_eq!(rows(), 1);
    assert_eq!(total(), 3.0, "and goes on counting from there");
}
