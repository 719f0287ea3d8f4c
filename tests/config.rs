//! The config loader and `validate`, end to end: every shipped config validates, every invalid
//! fixture fails with exactly the errors it expects, and the CLI reports them the documented way.
//!
//! Fixtures: `tests/fixtures/invalid/NAME.yaml` (or a directory `NAME/` holding
//! `backupmanager.yaml` and drop-ins) with `NAME.expected`: each error's headline
//! (`FILE:LINE:COL: error: PATH: MESSAGE`) and its help line. Warnings are not part of the
//! expectation because they depend on the machine (a source that does not exist here).
//! `BLESS=1 cargo test --test config` rewrites the .expected files; review the diff.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use backupmanager::config;
use support::{ConfigBuilder, JobBuilder, Scratch};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backupmanager"));
    c.env_remove("BACKUPMANAGER_CONFIG");
    c
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

fn error_report(loaded: &config::Loaded) -> String {
    let mut out = String::new();
    for d in loaded.diagnostics.iter().filter(|d| d.is_error()) {
        out.push_str(&d.headline());
        out.push('\n');
        if let Some(h) = &d.help {
            out.push_str(&format!("  = help: {h}\n"));
        }
    }
    out
}

#[test]
fn every_shipped_config_is_valid() {
    let mut files = yaml_files("examples");
    if Path::new("examples/chain").is_dir() {
        files.extend(yaml_files("examples/chain"));
    }
    files.push("config/backupmanager.yaml".into());
    assert!(files.len() >= 4, "examples went missing: {files:?}");
    for f in files {
        let loaded = config::load(&f);
        assert_eq!(
            loaded.errors(),
            0,
            "{} should validate:\n{}",
            f.display(),
            loaded.render()
        );
        let out = bin()
            .args(["validate", "--config"])
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn design_document_config_reads_as_written() {
    let c = config::load(Path::new("examples/desktop-to-backup_a.yaml"))
        .config
        .unwrap();
    assert_eq!(c.pid_file_dir, Path::new("/var/run/backupmanager"));
    let job = &c.jobs[0];
    assert_eq!(job.id, "local_desktop_to_backup_a");
    assert_eq!(job.schedule.expr(), "* * * * *");
    let remote = job.remote.as_ref().unwrap();
    assert_eq!(
        (remote.user.as_deref(), remote.host.as_str(), remote.port),
        (Some("root"), "backup_a.example.com", Some(22000))
    );
    assert_eq!(job.lock_files.len(), 2);
    assert_eq!(job.lock_files[0].location, config::Location::Local);
    // The remote lock file names host and port and inherits the job's user.
    let config::Location::Remote(r) = &job.lock_files[1].location else {
        panic!()
    };
    assert_eq!((r.user.as_deref(), r.port), (Some("root"), Some(22000)));
    assert_eq!(job.blocks_on.len(), 2);
    assert_eq!(job.blocks_on[0].path, "/var/run/some-lock-file");
    assert_eq!(job.blocks_on[0].wait_time.as_secs(), 300);
    assert_eq!(job.blocks_on[1].location, config::Location::Local);
    let sync = &job.syncs[0];
    assert_eq!(
        sync.args,
        [
            "-av",
            "--delete",
            "--exclude",
            ".cache",
            "--exclude",
            "Downloads"
        ]
    );
    assert!(sync.deletes());
}

#[test]
fn snapshot_example_reads_as_written() {
    use backupmanager::retention::{CalendarSpan, Count, Policy};
    let c = config::load(Path::new("examples/snapshots.yaml"))
        .config
        .unwrap();
    assert_eq!(c.timezone.name.as_deref(), Some("Europe/Berlin"));
    let job = c.job("desktop_to_backup_a").unwrap();
    assert_eq!(job.mode, config::Mode::Snapshot);
    assert_eq!(
        job.retention,
        Some(Policy {
            keep_last: Some(Count::N(3)),
            keep_daily: Some(Count::N(7)),
            keep_weekly: Some(Count::N(5)),
            keep_monthly: Some(Count::N(12)),
            keep_yearly: Some(Count::All),
            keep_within: Some(CalendarSpan {
                days: 2,
                ..CalendarSpan::default()
            }),
            ..Policy::default()
        })
    );
    let hourly = c
        .job("projects_hourly")
        .unwrap()
        .retention
        .as_ref()
        .unwrap();
    assert_eq!(
        hourly.keep_within_daily.map(|s| s.to_string()).as_deref(),
        Some("7d")
    );
    // Jobs without `mode:` mirror, as before.
    let old = config::load(Path::new("examples/local-disk.yaml"))
        .config
        .unwrap();
    assert!(old
        .jobs
        .iter()
        .all(|j| j.mode == config::Mode::Mirror && j.retention.is_none()));
}

#[test]
fn invalid_fixtures_fail_with_the_expected_errors() {
    let dir = Path::new("tests/fixtures/invalid");
    let mut cases: Vec<(PathBuf, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            cases.push((p.clone(), p.with_extension("expected")));
        } else if p.is_dir() {
            cases.push((p.join("backupmanager.yaml"), p.with_extension("expected")));
        }
    }
    cases.sort();
    assert!(cases.len() >= 14, "fixtures went missing");
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for (file, expected_file) in &cases {
        let loaded = config::load(file);
        assert!(
            loaded.config.is_none(),
            "{} must be invalid",
            file.display()
        );
        let got = error_report(&loaded);
        assert!(!got.is_empty());
        if bless {
            std::fs::write(expected_file, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(expected_file)
            .unwrap_or_else(|_| panic!("{} missing; run BLESS=1", expected_file.display()));
        if got != want {
            failures.push(format!(
                "{}:\n--- expected\n{want}--- got\n{got}",
                file.display()
            ));
        }
        // Every error carries a real position.
        for d in loaded.diagnostics.iter().filter(|d| d.is_error()) {
            assert!(d.span.line >= 1 && d.span.col >= 1, "{d:?}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn validate_exit_codes_and_rendering() {
    let out = bin()
        .args(["validate", "-c", "tests/fixtures/invalid/unknown_key.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(
            "tests/fixtures/invalid/unknown_key.yaml:12:9: error: jobs[nightly].blocks_on[0].wait_tme: unknown key `wait_tme` in a blocks_on entry\n   |\n12 |         wait_tme: 300\n   |         ^^^^^^^^\n  = help: did you mean `wait_time`?\n"
        ),
        "{err}"
    );
    assert!(err.contains("invalid: 3 error(s)"), "{err}");
}

#[test]
fn validate_json_lists_every_diagnostic() {
    let out = bin()
        .args(["validate", "--format", "json"])
        .args(["--config", "tests/fixtures/invalid/relative_path.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"], 5);
    let d = &v["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 2);
    assert_eq!(d["col"], 15);
    assert_eq!(d["path"], "pid_file_dir");
}

#[test]
fn config_path_from_flag_anywhere_or_env() {
    let f = "examples/local-disk.yaml";
    for args in [
        vec!["--config", f, "validate"],
        vec!["validate", "--config", f],
        vec!["-c", f, "validate"],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
    }
    let out = bin()
        .arg("validate")
        .env("BACKUPMANAGER_CONFIG", f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("local-disk.yaml: ok"));
    let out = bin()
        .args(["validate", "-c", "/nonexistent/bm.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("/nonexistent/bm.yaml: error: cannot read config file"));
}

#[test]
fn drop_in_files_add_jobs_and_include_globs_replace_the_default() {
    let scratch = Scratch::new("bm-config-test.");
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("jobs.d")).unwrap();
    std::fs::create_dir_all(dir.join("more")).unwrap();
    std::fs::write(
        dir.join("main.yaml"),
        "cron_schedule: '@daily'\njobs:\n  - id: a\n    syncs: [{source: /, dest: /tmp/x/}]\n",
    )
    .unwrap();
    for (f, id) in [
        ("jobs.d/b.yaml", "b"),
        ("jobs.d/c.yaml", "c"),
        ("more/d.yaml", "d"),
    ] {
        ConfigBuilder::new()
            .job(JobBuilder::new(id).cron_schedule("5 4 * * *").sync(
                "/",
                format!("/tmp/{id}/"),
                &[],
            ))
            .write(dir.join(f));
    }
    std::fs::write(dir.join("jobs.d/notes.txt"), "not yaml").unwrap();
    let c = config::load(&dir.join("main.yaml")).config.unwrap();
    let ids: Vec<&str> = c.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(c.jobs[1].schedule.expr(), "5 4 * * *");
    assert_eq!(c.jobs[0].schedule.expr(), "@daily");

    std::fs::write(
        dir.join("main.yaml"),
        "cron_schedule: '@daily'\ninclude: ['more/*.yaml', 'jobs.d/c.yaml']\njobs: []\n",
    )
    .unwrap();
    let c = config::load(&dir.join("main.yaml")).config.unwrap();
    let ids: Vec<&str> = c.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["d", "c"]);

    // A drop-in may only hold jobs.
    std::fs::write(dir.join("more/d.yaml"), "pid_file_dir: /run/x\njobs: []\n").unwrap();
    let l = config::load(&dir.join("main.yaml"));
    assert!(l.config.is_none());
    assert!(
        l.render().contains(
            "d.yaml:1:1: error: pid_file_dir: unknown key `pid_file_dir` in a drop-in job file"
        ),
        "{}",
        l.render()
    );
}

#[test]
fn durations_and_inheritance() {
    let dir = Scratch::new("bm-config-test.");
    let f = dir.p("c.yaml");
    std::fs::write(
        &f,
        "cron_schedule: '0 * * * *'\njobs:\n  - id: j\n    user: bob\n    host: h.example\n    port: 2200\n    max_wait: 1h 30m\n    lock_files:\n      - {type: remote, path: /l, host: other.example}\n    blocks_on:\n      - {type: remote, lock_file_path: /b, wait_time: 5m, stale_after: '2h'}\n    syncs: [{source: /, dest: rel/ok/on/remote}]\n",
    )
    .unwrap();
    let loaded = config::load(&f);
    let Some(c) = loaded.config.as_ref() else {
        panic!("{}", loaded.render())
    };
    let j = &c.jobs[0];
    assert_eq!(j.max_wait.unwrap().as_secs(), 5400);
    assert_eq!(j.blocks_on[0].wait_time.as_secs(), 300);
    assert_eq!(j.blocks_on[0].stale_after.unwrap().as_secs(), 7200);
    let config::Location::Remote(r) = &j.lock_files[0].location else {
        panic!()
    };
    assert_eq!(
        (r.user.as_deref(), r.host.as_str(), r.port),
        (Some("bob"), "other.example", Some(2200))
    );
    let config::Location::Remote(r) = &j.blocks_on[0].location else {
        panic!()
    };
    assert_eq!(r.host, "h.example");
    assert_eq!(
        (
            j.retries,
            j.lock_heartbeat.as_secs(),
            j.stale_after.as_secs()
        ),
        (2, 60, 600)
    );
}

#[test]
fn local_paths_under_a_private_tmp_get_a_warning_and_stay_valid() {
    let dir = Scratch::new("bm-config-test.");
    let f = dir.p("c.yaml");
    std::fs::write(
        &f,
        "cron_schedule: '0 * * * *'\npid_file_dir: /tmp/bm/run\nstate_dir: /var/tmp//bm\njobs:\n  - id: j\n    host: h.example\n    lock_files:\n      - {type: local, path: /tmp/bm.lock}\n      - {type: remote, path: /tmp/bm.lock}\n      - {type: local, path: /run/bm/tmp/x}\n    blocks_on:\n      - {type: local, lock_file_path: /var/tmp/other.lock}\n      - {type: remote, lock_file_path: /var/tmp/other.lock}\n    syncs: [{source: /, dest: rel}]\n",
    )
    .unwrap();
    let loaded = config::load(&f);
    assert!(loaded.config.is_some(), "{}", loaded.render());
    let warned: Vec<&str> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.message.contains("PrivateTmp="))
        .map(|d| d.path.as_str())
        .collect();
    assert_eq!(
        warned,
        [
            "pid_file_dir",
            "state_dir",
            "jobs[j].lock_files[0].path",
            "jobs[j].blocks_on[0].lock_file_path"
        ],
        "{}",
        loaded.render()
    );
}

#[test]
fn opts_default_to_archive_and_a_directory_without_recursion_is_warned_about() {
    let dir = Scratch::new("bm-config-test.");
    let file = dir.p("single.txt");
    std::fs::write(&file, "x").unwrap();
    let f = dir.p("c.yaml");
    std::fs::write(
        &f,
        format!(
            "cron_schedule: '0 * * * *'\njobs:\n  - id: j\n    syncs:\n      - {{source: /srv/a/, dest: /b/0/}}\n      - {{source: /srv/a/, dest: /b/1/, opts: []}}\n      - {{source: {d}, dest: /b/2/, opts: ['-v', '--exclude x']}}\n      - {{source: /srv/a/, dest: /b/3/, opts: ['-d']}}\n      - {{source: /srv/a/, dest: /b/4/, opts: ['-vrz']}}\n      - {{source: {file}, dest: /b/5/, opts: ['-v']}}\n",
            d = dir.path().display(),
            file = file.display()
        ),
    )
    .unwrap();
    let loaded = config::load(&f);
    let Some(c) = loaded.config.as_ref() else {
        panic!("{}", loaded.render())
    };
    let syncs = &c.jobs[0].syncs;
    assert_eq!(syncs[0].args, ["-a"]);
    assert_eq!(syncs[0].opts, ["-a"]);
    assert!(syncs[1].args.is_empty(), "an explicit [] stays empty");
    let warned: Vec<&str> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.message.contains("have no -a or -r"))
        .map(|d| d.path.as_str())
        .collect();
    assert_eq!(
        warned,
        ["jobs[j].syncs[1].opts", "jobs[j].syncs[2].opts"],
        "{}",
        loaded.render()
    );
}

#[test]
fn a_drop_in_that_is_not_a_readable_file_is_reported() {
    let scratch = Scratch::new("bm-config-test.");
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("jobs.d/sub.yaml")).unwrap();
    std::fs::write(
        dir.join("main.yaml"),
        "cron_schedule: '@daily'\njobs:\n  - id: a\n    syncs: [{source: /, dest: /tmp/x/}]\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.join("moved-away.yaml"), dir.join("jobs.d/b.yaml")).unwrap();
    nix::unistd::mkfifo(&dir.join("jobs.d/c.yaml"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let l = config::load(&dir.join("main.yaml"));
    assert!(l.config.is_none(), "{}", l.render());
    let text = l.render();
    let b = dir.join("jobs.d/b.yaml");
    let c = dir.join("jobs.d/c.yaml");
    let sub = dir.join("jobs.d/sub.yaml");
    for want in [
        format!(
            "{}: error: include: drop-in is a symbolic link to `{}`, which does not exist, not a file",
            b.display(),
            dir.join("moved-away.yaml").display()
        ),
        format!("{}: error: include: drop-in is a FIFO, not a file", c.display()),
        format!("{}: warning: include: a directory matches", sub.display()),
    ] {
        assert!(text.contains(&want), "{want}\nin:\n{text}");
    }
}

#[test]
fn max_delete_becomes_rsyncs_limit_on_deleting_syncs() {
    let dir = Scratch::new("bm-config-test.");
    let f = dir.p("c.yaml");
    std::fs::write(
        &f,
        "cron_schedule: '0 * * * *'\njobs:\n  - id: j\n    syncs:\n      - {source: /srv/a/, dest: /b/0/, opts: ['-a', '--delete'], max_delete: 50}\n      - {source: /srv/a/, dest: /b/1/, max_delete: 5, allow_unmounted: true}\n",
    )
    .unwrap();
    let loaded = config::load(&f);
    let Some(c) = loaded.config.as_ref() else {
        panic!("{}", loaded.render())
    };
    let s = &c.jobs[0].syncs;
    assert_eq!(s[0].args, ["-a", "--delete", "--max-delete=50"]);
    assert!(!s[0].allow_unmounted && s[1].allow_unmounted);
    assert_eq!(s[1].args, ["-a"]);
    assert!(loaded
        .render()
        .contains("warning: jobs[j].syncs[1].max_delete: max_delete has no effect"));
    std::fs::write(
        &f,
        "cron_schedule: '0 * * * *'\njobs:\n  - id: j\n    syncs:\n      - {source: /srv/a/, dest: /b/0/, opts: ['-a', '--delete', '--max-delete=3'], max_delete: 50}\n",
    )
    .unwrap();
    let loaded = config::load(&f);
    assert!(loaded.config.is_none());
    assert!(
        loaded.render().contains("both set the limit"),
        "{}",
        loaded.render()
    );
}
