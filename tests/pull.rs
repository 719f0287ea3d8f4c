//! Pull jobs end to end: the real binary on the "backup server" side, a private sshd on
//! 127.0.0.1 as the client whose key is restricted by `backupmanager gate`. A pull mirror and a
//! pull snapshot series land exactly (hostile file names included); restore works; lock files
//! on both sides are taken and released; a lock the gate refuses fails the run before anything
//! is copied; a missing or empty source on the client refuses a --delete mirror.
mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::gate::Gated;
use support::*;

fn bm(cfg: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run backupmanager")
}

fn ok(cfg: &Path, args: &[&str]) -> String {
    let out = bm(cfg, args);
    assert!(
        out.status.success(),
        "backupmanager {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A pull job from the gated client.
fn pull_job(id: &str, g: &Gated) -> JobBuilder {
    JobBuilder::new(id)
        .direction("pull")
        .remote(&Remote::new("root", "127.0.0.1", g.sshd.port()))
        .identity_file(g.key())
        .known_hosts_file(g.sshd.known_hosts())
        .retries(0)
}

#[test]
fn a_pull_mirror_through_the_gate() {
    require_root_tools();
    let t = Scratch::short("bmpm");
    let data = t.p("client/data");
    make_hostile_tree(&data);
    fs::create_dir_all(t.p("client/empty")).unwrap();
    fs::create_dir_all(t.p("client/locks")).unwrap();
    let g = Gated::start(&[
        "--read-only",
        &t.s("client/data"),
        "--read-only",
        &t.s("client/empty"),
        "--allow-locks",
        &t.s("client/locks"),
    ]);
    let remote_lock = t.p("client/locks/pull_mirror.lock");
    let local_lock = t.p("server/locks/pull_mirror.lock");
    let mirror = t.p("server/mirror");
    let cfg = ConfigBuilder::in_scratch(&t)
        .job(
            pull_job("pull_mirror", &g)
                .lock_remote(&remote_lock)
                .lock_local(&local_lock)
                .sync(
                    format!("{}/", t.s("client/data")),
                    &mirror,
                    &["-a", "--delete"],
                ),
        )
        .job(
            // Its remote lock is outside --allow-locks: refused, so nothing may be copied.
            pull_job("refused_lock", &g)
                .lock_remote(t.p("client/elsewhere/x.lock"))
                .sync(
                    format!("{}/", t.s("client/data")),
                    t.p("server/never"),
                    &["-a"],
                ),
        )
        .job(pull_job("empty_source", &g).sync(
            format!("{}/", t.s("client/empty")),
            t.p("server/precious"),
            &["-a", "--delete"],
        ))
        .job(pull_job("missing_source", &g).sync(
            format!("{}/", t.s("client/data/not here")),
            t.p("server/precious"),
            &["-a", "--delete"],
        ))
        .write(t.p("backupmanager.yaml"));
    let _master = Master::of(&g.sshd, t.p("r/ssh"));

    let summary = ok(&cfg, &["validate"]);
    assert!(
        summary.contains("job pull_mirror pulls from root@127.0.0.1"),
        "validate should explain the direction:\n{summary}"
    );

    ok(&cfg, &["run-job", "pull_mirror"]);
    assert_same_tree(&data, &mirror);
    // A second run follows changes exactly, deletions included.
    fs::remove_file(data.join("with space")).unwrap();
    fs::write(data.join("sub dir/new file"), "new\n").unwrap();
    ok(&cfg, &["run-job", "pull_mirror"]);
    assert_same_tree(&data, &mirror);
    assert!(
        !remote_lock.exists() && !local_lock.exists(),
        "locks released"
    );
    let logged = g.logged().join("\n");
    assert!(logged.contains("allowed: lock create"), "{logged}");
    assert!(logged.contains("allowed: rsync sender"), "{logged}");

    // A refused remote lock fails the run; nothing is copied.
    let out = bm(&cfg, &["run-job", "refused_lock"]);
    assert_eq!(out.status.code(), Some(FAILED));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "{err}");
    assert!(!t.p("server/never").exists());
    assert!(!t.p("client/elsewhere").exists());

    // An empty or missing source on the client refuses a --delete mirror; the dest stays.
    fs::create_dir_all(t.p("server/precious")).unwrap();
    fs::write(t.p("server/precious/keep"), "keep\n").unwrap();
    for (job, what) in [
        ("empty_source", "is empty"),
        ("missing_source", "does not exist"),
    ] {
        let out = bm(&cfg, &["run-job", job]);
        assert_eq!(out.status.code(), Some(FAILED), "{job}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("refusing to run") && err.contains(what),
            "{job}: {err}"
        );
        assert_eq!(
            fs::read_to_string(t.p("server/precious/keep")).unwrap(),
            "keep\n"
        );
    }
}

#[test]
fn a_pull_snapshot_series_and_restore() {
    require_root_tools();
    let t = Scratch::short("bmps");
    let data = t.p("client/data");
    make_hostile_tree(&data);
    fs::write(data.join("big unchanged"), vec![7u8; 100_000]).unwrap();
    let g = Gated::start(&["--read-only", &t.s("client/data")]);
    let series = t.p("server/series");
    let cfg = ConfigBuilder::in_scratch(&t)
        .job(
            pull_job("pull_snap", &g)
                .snapshot(&[("keep_last", "3")])
                .sync(format!("{}/", t.s("client/data")), &series, &["-a"]),
        )
        .write(t.p("backupmanager.yaml"));
    let _master = Master::of(&g.sshd, t.p("r/ssh"));

    ok(&cfg, &["run-job", "pull_snap"]);
    let first = t.p("first");
    ok(
        &cfg,
        &["restore", "pull_snap", "--to", first.to_str().unwrap()],
    );
    assert_same_tree(&data, &first);
    fs::write(data.join("sub dir/second"), "second generation\n").unwrap();
    ok(&cfg, &["run-job", "pull_snap"]);

    let list: Value =
        serde_json::from_str(&ok(&cfg, &["snapshots", "pull_snap", "--format", "json"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    // The series is local: unchanged files are hard links between the two snapshots.
    let ids: Vec<&str> = list.iter().map(|v| v["id"].as_str().unwrap()).collect();
    let ino = |id: &str| {
        fs::metadata(series.join(id).join("big unchanged"))
            .unwrap()
            .ino()
    };
    assert_eq!(ino(ids[0]), ino(ids[1]));

    let back = t.p("back");
    ok(
        &cfg,
        &["restore", "pull_snap", "--to", back.to_str().unwrap()],
    );
    assert_same_tree(&data, &back);
}
