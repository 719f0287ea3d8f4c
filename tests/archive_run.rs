//! Archive mode end to end: the real binary (`run-job`, `snapshots`, `prune`, `restore`,
//! `verify`), real GNU tar and zstd. What a test checks is what an operator relies on: every
//! restore point of a chain gives back exactly the tree of its time (deletions and renames
//! included), a broken chain is refused naming the archive, a killed run commits nothing and
//! the chain goes on, and pruning never leaves a kept point unrestorable.
mod support;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::*;

fn field(list: &[Value], key: &str) -> Vec<String> {
    list.iter()
        .map(|v| match &v[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// Levels, oldest first.
fn levels(cfg: &Path, job: &str) -> Vec<u64> {
    let mut l: Vec<u64> = snapshots_json(cfg, job)
        .iter()
        .map(|v| v["level"].as_u64().unwrap())
        .collect();
    l.reverse();
    l
}

fn config(t: &Scratch, retention: &[(&str, &str)], archive: &[(&str, &str)]) -> PathBuf {
    ConfigBuilder::new()
        .cron_schedule("0 3 * * *")
        .pid_file_dir(t.p("run"))
        .state_dir(t.p("state"))
        .job(JobBuilder::new("arc").archive(retention, archive).sync(
            format!("{}/", t.s("src")),
            t.p("series"),
            &[],
        ))
        .write(t.p("backupmanager.yaml"))
}

/// A copy of `src` as it is now, by `cp -a` (the expected tree of a restore point).
fn keep_copy(src: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// `a` and `b` hold the same names, types, bytes, permission bits and symlink targets.
fn assert_exact(a: &Path, b: &Path) {
    assert_same_tree(a, b);
    fn walk(a: &Path, b: &Path) {
        for e in fs::read_dir(a).unwrap() {
            let n = e.unwrap().file_name();
            let (pa, pb) = (a.join(&n), b.join(&n));
            let (ma, mb) = (
                fs::symlink_metadata(&pa).unwrap(),
                fs::symlink_metadata(&pb).unwrap(),
            );
            if ma.file_type().is_symlink() {
                assert_eq!(fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap());
                continue;
            }
            assert_eq!(
                ma.mode() & 0o7777,
                mb.mode() & 0o7777,
                "mode of {}",
                pb.display()
            );
            if ma.is_dir() {
                walk(&pa, &pb);
            }
        }
    }
    walk(a, b);
}

fn restore(cfg: &Path, id: &str, to: &Path) -> Output {
    bm_json(
        cfg,
        &[
            "restore",
            "arc",
            "--snapshot",
            id,
            "--to",
            to.to_str().unwrap(),
        ],
    )
}

fn set_mtime(p: &Path, t: SystemTime) {
    fs::File::options()
        .append(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn every_restore_point_of_a_chain_gives_back_its_tree_exactly() {
    let t = Scratch::new("bm-arc-chain-");
    let src = t.p("src");
    fs::create_dir_all(src.join("dir/inner")).unwrap();
    fs::create_dir_all(src.join("gone dir/sub")).unwrap();
    fs::write(src.join("keep.txt"), "unchanged\n").unwrap();
    fs::write(src.join("grows"), "v1\n").unwrap();
    fs::write(src.join("same size"), "AAAA\n").unwrap();
    fs::write(src.join("to delete"), "bye\n").unwrap();
    fs::write(src.join("old name"), "renamed later\n").unwrap();
    fs::write(src.join("dir/inner/f"), "in a dir that is renamed\n").unwrap();
    fs::write(src.join("gone dir/sub/x"), "removed with its dir\n").unwrap();
    fs::write(src.join("script"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("script"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("keep.txt", src.join("link")).unwrap();
    make_hostile_tree(&src.join("hostile"));
    let cfg = config(&t, &[("keep_last", "all")], &[("max_chain_length", "10")]);
    let expect = |n: usize| t.p(&format!("expected{n}"));

    bm_ok(&cfg, &["run-job", "arc"]);
    keep_copy(&src, &expect(0));
    // The run history counts what the archive wrote (no rsync numbers for archives).
    let runs: Value =
        serde_json::from_str(&bm_ok(&cfg, &["history", "arc", "--format", "json"])).unwrap();
    assert!(runs[0]["files"].as_i64().unwrap() > 10, "{runs}");
    assert!(runs[0]["bytes"].as_i64().unwrap() > 0, "{runs}");

    // Level 1: added, grown, same size and mtime but new content, deleted, renamed (file and
    // directory), a directory removed, a mode changed, a symlink retargeted.
    let mtime = fs::metadata(src.join("same size"))
        .unwrap()
        .modified()
        .unwrap();
    fs::write(src.join("same size"), "BBBB\n").unwrap();
    set_mtime(&src.join("same size"), mtime);
    fs::write(src.join("new file"), "added\n").unwrap();
    fs::write(src.join("grows"), "v2, longer\n").unwrap();
    fs::remove_file(src.join("to delete")).unwrap();
    fs::rename(src.join("old name"), src.join("new name")).unwrap();
    fs::rename(src.join("dir"), src.join("dir renamed")).unwrap();
    fs::remove_dir_all(src.join("gone dir")).unwrap();
    fs::set_permissions(src.join("script"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::remove_file(src.join("link")).unwrap();
    symlink("new name", src.join("link")).unwrap();
    bm_ok(&cfg, &["run-job", "arc"]);
    keep_copy(&src, &expect(1));

    // Level 2: a file comes back under a removed name, a new directory, more deletions.
    fs::write(src.join("to delete"), "back again\n").unwrap();
    fs::create_dir_all(src.join("later/deep")).unwrap();
    fs::write(src.join("later/deep/y"), "new dir\n").unwrap();
    fs::remove_dir_all(src.join("hostile/sub dir")).unwrap();
    fs::write(src.join("grows"), "v3, even longer than before\n").unwrap();
    bm_ok(&cfg, &["run-job", "arc"]);
    keep_copy(&src, &expect(2));

    let list = snapshots_json(&cfg, "arc");
    assert_eq!(levels(&cfg, "arc"), [0, 1, 2], "{list:?}");
    let chains = field(&list, "chain");
    assert!(
        chains.iter().all(|c| c == &chains[0]),
        "one chain: {chains:?}"
    );
    let mut ids = field(&list, "id");
    ids.reverse();

    for (n, id) in ids.iter().enumerate() {
        let to = t.p(&format!("restored{n}"));
        let out = restore(&cfg, id, &to);
        assert!(out.status.success(), "restore {id}: {out:?}");
        assert_exact(&expect(n), &to);
    }
    // The same-mtime content change is in level 1 (GNU tar sees the ctime change).
    assert_eq!(
        fs::read_to_string(t.p("restored1/same size")).unwrap(),
        "BBBB\n"
    );

    // One directory of the newest point, alone.
    let part = t.p("part");
    let out = bm_json(
        &cfg,
        &[
            "restore",
            "arc",
            "--path",
            "dir renamed",
            "--to",
            part.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        fs::read_dir(&part).unwrap().count(),
        1,
        "only the asked-for path"
    );
    assert_exact(&expect(2).join("dir renamed"), &part.join("dir renamed"));

    // Never into a non-empty directory (tar's deletions would remove what was there).
    let out = restore(&cfg, "latest", &t.p("restored0"));
    assert_eq!(out.status.code(), Some(FAILED));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    let out = bm_json(
        &cfg,
        &[
            "restore",
            "arc",
            "--overwrite",
            "--to",
            t.s("elsewhere").as_str(),
        ],
    );
    assert_ne!(out.status.code(), Some(OK));
    assert!(!t.p("elsewhere").exists());

    let out = bm_ok(&cfg, &["verify", "arc", "--read"]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok ")).count(),
        3,
        "{out}"
    );
}

#[test]
fn a_missing_or_damaged_middle_archive_is_named_and_refused() {
    let t = Scratch::new("bm-arc-broken-");
    fs::create_dir_all(t.p("src")).unwrap();
    let cfg = config(&t, &[("keep_last", "all")], &[]);
    for i in 0..3 {
        fs::write(t.p(&format!("src/f{i}")), format!("file {i}\n")).unwrap();
        bm_ok(&cfg, &["run-job", "arc"]);
    }
    let list = snapshots_json(&cfg, "arc");
    let stems = field(&list, "stem");
    let ids = field(&list, "id");
    let (newest, middle, oldest) = (&ids[0], &stems[1], &ids[2]);
    let series = t.p("series");

    // Damage the middle archive's bytes (same size).
    let file = series.join(format!("{middle}.tar.zst"));
    let mut bytes = fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    fs::write(&file, &bytes).unwrap();

    let out = bm_json(&cfg, &["verify", "arc"]);
    assert_eq!(out.status.code(), Some(FAILED), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(middle.as_str()) && err.contains("damaged"),
        "{err}"
    );
    let to = t.p("r");
    let out = restore(&cfg, newest, &to);
    assert_eq!(out.status.code(), Some(FAILED));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(middle.as_str()), "{err}");
    assert!(!to.exists(), "nothing extracted from a broken chain");
    // The level 0 alone is still fine.
    let out = restore(&cfg, oldest, &t.p("r0"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(fs::read_dir(t.p("r0")).unwrap().count(), 1);

    // A missing middle archive (its manifest gone, as a careless cleanup would do).
    bytes[at] ^= 0xff;
    fs::write(&file, &bytes).unwrap();
    bm_ok(&cfg, &["verify", "arc", "--read"]);
    fs::rename(
        series.join(format!("{middle}.json")),
        t.p("moved-away.json"),
    )
    .unwrap();
    let out = bm_json(&cfg, &["verify", "arc", "--snapshot", newest]);
    assert_eq!(out.status.code(), Some(FAILED));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(middle.as_str()) && err.contains("missing"),
        "{err}"
    );
    let out = restore(&cfg, "latest", &to);
    assert_eq!(out.status.code(), Some(FAILED));
    assert!(String::from_utf8_lossy(&out.stderr).contains(middle.as_str()));
    assert!(!to.exists());

    // The next run does not build on a broken chain: it starts a new one, and says why.
    let out = bm_json(&cfg, &["run-job", "arc"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("chain is broken"));
    assert_eq!(snapshots_json(&cfg, "arc")[0]["level"], 0);
    assert!(
        file.exists(),
        "an archive whose manifest is gone is never removed automatically"
    );
}

#[test]
fn a_killed_run_commits_nothing_and_the_next_run_continues_the_chain() {
    let t = Scratch::new("bm-arc-kill-");
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/a"), "a\n").unwrap();
    // gzip is slow enough on incompressible data to be caught in the middle.
    let cfg = config(&t, &[("keep_last", "all")], &[("compression", "gzip")]);
    bm_ok(&cfg, &["run-job", "arc"]);
    let good = field(&snapshots_json(&cfg, "arc"), "stem");

    big_file(&t.p("src/big"), 96 << 20);
    let mut run = Bm::run_job(&cfg, "arc", &[]);
    let series = t.p("series");
    let writing = || {
        fs::read_dir(&series).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with(".incomplete-")
                && e.file_name().to_string_lossy().ends_with(".tar.gz")
                && e.metadata().unwrap().len() > 0
        })
    };
    wait_until(Duration::from_secs(60), "tar writing the archive", writing);
    kill(Pid::from_raw(run.pid() as i32), Signal::SIGKILL).unwrap();
    run.wait(LONG);
    assert_eq!(
        field(&snapshots_json(&cfg, "arc"), "stem"),
        good,
        "a killed run is not a restore point"
    );
    bm_ok(&cfg, &["verify", "arc"]);

    bm_ok(&cfg, &["run-job", "arc"]);
    let after = snapshots_json(&cfg, "arc");
    assert_eq!(after.len(), 2);
    assert_eq!(after[0]["level"], 1, "the chain goes on: {after:?}");
    assert_eq!(after[0]["parent"].as_str().unwrap(), good[0]);
    let left: Vec<String> = fs::read_dir(&series)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "leftovers: {left:?}");
    let to = t.p("r");
    assert!(restore(&cfg, "latest", &to).status.success());
    assert_same_tree(&t.p("src"), &to);
}

#[test]
fn chains_are_cut_by_length_and_age_and_pruning_keeps_every_kept_point_restorable() {
    let t = Scratch::new("bm-arc-prune-");
    let src = t.p("src");
    fs::create_dir_all(&src).unwrap();
    let cfg = config(&t, &[("keep_last", "3")], &[("max_chain_length", "2")]);
    for i in 0..7 {
        fs::write(src.join(format!("f{i}")), format!("{i}\n")).unwrap();
        if i % 3 == 2 {
            fs::remove_file(src.join(format!("f{}", i - 1))).unwrap();
        }
        bm_ok(&cfg, &["run-job", "arc"]);
        let id = snapshots_json(&cfg, "arc")[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        keep_copy(&src, &t.p(&format!("expected-{id}")));
    }
    // Seven runs, two incrementals per chain at most: 0 1 2 | 0 1 2 | 0. keep_last 3 keeps the
    // last three points; the chain of the oldest of them stays whole, the first chain is gone.
    assert_eq!(levels(&cfg, "arc"), [0, 1, 2, 0]);
    let plan = bm_ok(&cfg, &["prune", "arc", "--dry-run"]);
    assert!(plan.contains("kept: parent of"), "{plan}");
    assert!(plan.contains("kept: last snapshot"), "{plan}");
    for id in field(&snapshots_json(&cfg, "arc"), "id") {
        let to = t.p(&format!("restored-{id}"));
        let out = restore(&cfg, &id, &to);
        assert!(out.status.success(), "restore {id}: {out:?}");
        assert_exact(&t.p(&format!("expected-{id}")), &to);
    }

    // full_every: a chain older than that is not continued.
    let t2 = Scratch::new("bm-arc-age-");
    fs::create_dir_all(t2.p("src")).unwrap();
    fs::write(t2.p("src/a"), "a\n").unwrap();
    let cfg = config(&t2, &[("keep_last", "all")], &[("full_every", "2s")]);
    bm_ok(&cfg, &["run-job", "arc"]);
    bm_ok(&cfg, &["run-job", "arc"]);
    std::thread::sleep(Duration::from_millis(2100));
    let out = bm_json(&cfg, &["run-job", "arc"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("older than full_every"));
    assert_eq!(levels(&cfg, "arc"), [0, 1, 0]);
}

#[test]
fn retention_that_keeps_a_chain_only_as_parents_starts_a_new_chain() {
    let t = Scratch::new("bm-arc-parents-");
    fs::create_dir_all(t.p("src")).unwrap();
    let cfg = config(&t, &[("keep_last", "2")], &[("max_chain_length", "10")]);
    for i in 0..3 {
        fs::write(t.p(&format!("src/f{i}")), "x\n").unwrap();
        bm_ok(&cfg, &["run-job", "arc"]);
    }
    // keep_last 2 keeps levels 2 and 1; level 0 stays as their parent, and says so.
    let plan = bm_ok(&cfg, &["prune", "arc", "--dry-run"]);
    assert!(plan.contains("kept: parent of"), "{plan}");
    assert!(plan.contains("the next run starts a new chain"), "{plan}");
    let out = bm_json(&cfg, &["run-job", "arc"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only as a parent"),
        "{out:?}"
    );
    assert_eq!(levels(&cfg, "arc"), [0, 1, 2, 0]);
    // One more run: the old chain no longer holds a kept point, and goes whole.
    bm_ok(&cfg, &["run-job", "arc"]);
    assert_eq!(levels(&cfg, "arc"), [0, 1]);
}

#[test]
fn a_remote_series_over_ssh_streams_verifies_and_restores() {
    require_root_tools();
    let sshd = Sshd::start();
    let t = Scratch::short("bmar");
    let src = t.p("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("a"), "one\n").unwrap();
    fs::write(src.join("d/gone"), "removed later\n").unwrap();
    symlink("a", src.join("link")).unwrap();
    let remote = Remote::new("root", "127.0.0.1", sshd.port());
    let series = t.p("remote series");
    let cfg = ConfigBuilder::new()
        .cron_schedule("0 3 * * *")
        .pid_file_dir(t.p("r"))
        .state_dir(t.p("state"))
        .job(
            JobBuilder::new("arc")
                .remote(&remote)
                .identity_file(sshd.client_key())
                .known_hosts_file(sshd.known_hosts())
                .archive(&[("keep_last", "all")], &[])
                .sync(format!("{}/", t.s("src")), &series, &[]),
        )
        .write(t.p("backupmanager.yaml"));
    let _master = Master::of(&sshd, t.p("r/ssh"));
    bm_ok(&cfg, &["run-job", "arc"]);
    keep_copy(&src, &t.p("expected0"));
    fs::write(src.join("a"), "two, longer\n").unwrap();
    fs::remove_file(src.join("d/gone")).unwrap();
    fs::write(src.join("new"), "added\n").unwrap();
    bm_ok(&cfg, &["run-job", "arc"]);
    keep_copy(&src, &t.p("expected1"));

    let list = snapshots_json(&cfg, "arc");
    assert_eq!(levels(&cfg, "arc"), [0, 1]);
    assert!(list[0]["series"].as_str().unwrap().contains("127.0.0.1"));
    // What landed there is what the manifests say (sha256 taken on the stream here).
    for m in &list {
        let file = series.join(format!("{}.tar.zst", m["stem"].as_str().unwrap()));
        let out = Command::new("sha256sum").arg(&file).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(m["sha256"].as_str().unwrap()));
    }
    let names: Vec<String> = fs::read_dir(&series)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        6,
        "archive, state file and manifest per run: {names:?}"
    );
    bm_ok(&cfg, &["verify", "arc", "--read"]);
    let mut ids = field(&list, "id");
    ids.reverse();
    for (n, id) in ids.iter().enumerate() {
        let to = t.p(&format!("back{n}"));
        let out = restore(&cfg, id, &to);
        assert!(out.status.success(), "restore {id}: {out:?}");
        assert_exact(&t.p(&format!("expected{n}")), &to);
    }
    // A damaged archive there is found by the remote sha256sum and named.
    let first = series.join(format!("{}.tar.zst", list[1]["stem"].as_str().unwrap()));
    let mut bytes = fs::read(&first).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&first, &bytes).unwrap();
    let out = bm_json(&cfg, &["verify", "arc", "--snapshot", "latest"]);
    assert_eq!(out.status.code(), Some(FAILED));
    assert!(String::from_utf8_lossy(&out.stderr).contains(list[1]["stem"].as_str().unwrap()));
}
