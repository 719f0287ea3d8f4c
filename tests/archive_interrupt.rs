//! Archive mode interrupted, with the real binary, real GNU tar, zstd and gzip, a real sshd on
//! 127.0.0.1 and real signals: a restore stopped by Ctrl-C or SIGTERM while tar extracts stops
//! tar at once and says so; a run killed with `kill -9` while it streams into a remote series
//! commits nothing there, and the next run continues the chain and removes what the killed
//! one left (in the series and in this host's temporary directory). `verify --read` stops on
//! a signal the same way, without calling the chain broken. The log words of an
//! archive run are checked on the way.
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::*;

/// A field of a JSON log event (top level or under `fields`).
fn field<'a>(e: &'a Value, key: &str) -> Option<&'a str> {
    e.get(key)
        .or_else(|| e.get("fields").and_then(|f| f.get(key)))
        .and_then(Value::as_str)
}

/// The first directory of `PATH` holding an executable `name`.
fn which(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("{name} not on PATH"))
}

#[test]
fn a_signal_during_restore_stops_tar_and_says_so() {
    let t = Scratch::new("bm-arc-intr-");
    fs::create_dir_all(t.p("src/d")).unwrap();
    fs::write(t.p("src/a"), "a\n").unwrap();
    fs::write(t.p("src/d/b"), "b\n").unwrap();
    let cfg = ConfigBuilder::new()
        .cron_schedule("0 3 * * *")
        .pid_file_dir(t.p("run"))
        .state_dir(t.p("state"))
        .job(
            JobBuilder::new("arc")
                .archive(&[("keep_last", "all")], &[])
                .sync(format!("{}/", t.s("src")), t.p("series"), &[]),
        )
        .write(t.p("backupmanager.yaml"));
    bm_ok(&cfg, &["run-job", "arc"]);

    // A slow medium: the restore's decompressor delivers nothing for a minute, then the real
    // archive. tar (real) is running, waiting for its input, when the signal comes.
    let slow = t.p("slow");
    fs::create_dir_all(&slow).unwrap();
    fs::write(
        slow.join("zstd"),
        format!(
            "#!/bin/sh\nsleep 60\nexec {} \"$@\"\n",
            which("zstd").display()
        ),
    )
    .unwrap();
    fs::set_permissions(slow.join("zstd"), fs::Permissions::from_mode(0o755)).unwrap();

    for (sig, name) in [(Signal::SIGINT, "int"), (Signal::SIGTERM, "term")] {
        let to = t.p(&format!("back-{name}"));
        let to_s = to.to_string_lossy().into_owned();
        let mut bm = Bm::spawn_with_path(&cfg, &["restore", "arc", "--to", &to_s], &slow);
        let mut tar = Vec::new();
        wait_until(Duration::from_secs(60), "tar extracting", || {
            tar = procfs::descendants_named(bm.pid(), "tar");
            !tar.is_empty()
        });
        let group = procfs::descendants(bm.pid());
        let sent = Instant::now();
        kill(Pid::from_raw(bm.pid() as i32), sig).unwrap();
        let code = bm.wait(LONG);
        // Wide margin: only "not after the slow medium's minute".
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "{sig:?}: restore took {:?} to stop",
            sent.elapsed()
        );
        assert_eq!(code, 130, "{sig:?}: {}", bm.full_log());
        let err = bm.full_log();
        assert!(
            err.contains("cancelled") && err.contains("tar was stopped"),
            "{sig:?}: {err}"
        );
        for p in group {
            assert!(
                !procfs::pid_alive(p),
                "{sig:?}: {p} ({}) outlived the restore",
                procfs::comm(p)
            );
        }
        assert!(names_in(&to).is_empty(), "nothing was extracted");
    }
    // `verify --read` reads through the same kind of pipeline: a signal stops it as promptly,
    // and is not reported as a broken chain.
    let mut bm = Bm::spawn_with_path(&cfg, &["verify", "arc", "--read"], &slow);
    wait_until(Duration::from_secs(60), "tar listing", || {
        !procfs::descendants_named(bm.pid(), "tar").is_empty()
    });
    let sent = Instant::now();
    kill(Pid::from_raw(bm.pid() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(bm.wait(LONG), 130, "{}", bm.full_log());
    assert!(sent.elapsed() < Duration::from_secs(30));
    let log = bm.full_log();
    assert!(
        log.contains("verify cancelled") && !log.contains("error: cancelled"),
        "{log}"
    );
    // Without the slow medium the same restore completes.
    let to = t.p("back");
    let out = bm_json(
        &cfg,
        &["restore", "arc", "--to", to.to_string_lossy().as_ref()],
    );
    assert!(out.status.success(), "{out:?}");
    assert_same_tree(&t.p("src"), &to);
}

#[test]
fn a_killed_remote_run_commits_nothing_and_the_next_run_continues_the_chain() {
    require_root_tools();
    let sshd = Sshd::start();
    let t = Scratch::short("bmak");
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/a"), "a\n").unwrap();
    let tmp = t.p("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let env = [("TMPDIR", tmp.clone().into_os_string())];
    let remote = Remote::new("root", "127.0.0.1", sshd.port());
    let series = t.p("far");
    let cfg = ConfigBuilder::new()
        .cron_schedule("0 3 * * *")
        .pid_file_dir(t.p("r"))
        .state_dir(t.p("state"))
        .job(
            JobBuilder::new("arc")
                .remote(&remote)
                .identity_file(sshd.client_key())
                .known_hosts_file(sshd.known_hosts())
                // gzip is slow enough on incompressible data to be caught in the middle.
                .archive(&[("keep_last", "all")], &[("compression", "gzip")])
                .sync(format!("{}/", t.s("src")), &series, &[]),
        )
        .write(t.p("backupmanager.yaml"));
    let _master = Master::of(&sshd, t.p("r/ssh"));
    let mut first = Bm::spawn_env(&cfg, &["run-job", "arc"], &env);
    assert_eq!(first.wait(LONG), 0, "{}", first.log());
    let good = snapshots_json(&cfg, "arc");
    assert_eq!(good.len(), 1);
    let good_stem = good[0]["stem"].as_str().unwrap().to_string();
    // The words of an archive run: its own phase, level, files and bytes.
    let ev = first.events();
    assert!(
        ev.iter().any(|e| field(e, "phase") == Some("archive")
            && field(e, "message").is_some_and(|m| m.starts_with("starting a new chain"))),
        "{}",
        first.full_log()
    );
    let done = first.event("sync 0 done").expect("sync_done");
    assert_eq!(field(&done, "phase"), Some("archive"), "{done}");
    assert!(
        field(&done, "message").is_some_and(|m| m.contains("archive level 0 written")),
        "{done}"
    );
    let committed = first.event("committed").expect("archive_committed");
    assert_eq!(field(&committed, "event"), Some("archive_committed"));
    assert!(
        field(&committed, "message").is_some_and(|m| m
            .contains(&format!("archive {good_stem} committed (level 0, "))
            && m.contains("bytes")),
        "{committed}"
    );
    assert!(
        first.saw("retention kept 1 archive(s)"),
        "{}",
        first.full_log()
    );
    assert!(
        !first.saw(&format!("snapshot {good_stem}")),
        "{}",
        first.full_log()
    );

    big_file(&t.p("src/big"), 96 << 20);
    let mut run = Bm::spawn_env(&cfg, &["run-job", "arc"], &env);
    let writing = || {
        fs::read_dir(&series).unwrap().any(|e| {
            let e = e.unwrap();
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(".incomplete-")
                && n.ends_with(".tar.gz")
                && e.metadata().is_ok_and(|m| m.len() > 0)
        })
    };
    wait_until(
        Duration::from_secs(60),
        "the archive streaming there",
        writing,
    );
    kill(Pid::from_raw(run.pid() as i32), Signal::SIGKILL).unwrap();
    run.wait(LONG);

    // Nothing committed: the partial archive there is not a restore point, the chain verifies.
    let list = snapshots_json(&cfg, "arc");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["stem"], good_stem.as_str());
    bm_ok(&cfg, &["verify", "arc"]);
    let left_there: Vec<String> = names_in(&series)
        .into_iter()
        .filter(|n| n.starts_with(".incomplete-"))
        .collect();
    assert!(!left_there.is_empty(), "the killed run's partial archive");
    let left_here: Vec<String> = names_in(&tmp)
        .into_iter()
        .filter(|n| n.starts_with(&format!("backupmanager-{}-", run.pid())))
        .collect();
    assert!(!left_here.is_empty(), "the killed run's temporary files");

    // The next run continues the chain, and removes both kinds of leftovers, saying so.
    let mut next = Bm::spawn_env(&cfg, &["run-job", "arc"], &env);
    assert_eq!(next.wait(LONG), 0, "{}", next.log());
    let after = snapshots_json(&cfg, "arc");
    assert_eq!(after.len(), 2);
    assert_eq!(after[0]["level"], 1, "the chain goes on: {after:?}");
    assert_eq!(after[0]["parent"].as_str().unwrap(), good_stem);
    assert!(
        next.saw("leftover file(s) of an interrupted run"),
        "{}",
        next.full_log()
    );
    assert!(
        !names_in(&series).iter().any(|n| n.starts_with('.')),
        "{:?}",
        names_in(&series)
    );
    assert!(
        names_in(&tmp).is_empty(),
        "temporary files left: {:?}",
        names_in(&tmp)
    );
    bm_ok(&cfg, &["verify", "arc", "--read"]);
    let to = t.p("back");
    let out = bm_json(
        &cfg,
        &["restore", "arc", "--to", to.to_string_lossy().as_ref()],
    );
    assert!(out.status.success(), "{out:?}");
    assert_same_tree(&t.p("src"), &to);
}
