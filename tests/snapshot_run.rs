//! Snapshot mode end to end: the real binary (`run-job`, `snapshots`, `prune`, `restore`), real
//! rsync, a private sshd on 127.0.0.1 for a remote series. What a test checks is what an
//! operator relies on: unchanged files are hard links across snapshots, a killed or failed run
//! leaves no restore point and prunes nothing, retention keeps what the policy says and never
//! the newest, restore gives back the tree as it was and never overwrites unless asked.
mod support;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::*;

fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every name in `dir` (not recursive), sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A source tree with what a restore must give back: odd names, a symlink, a hard link pair,
/// unusual permissions.
fn source_tree(root: &Path) {
    make_hostile_tree(root);
    fs::write(root.join("keep.txt"), "unchanged across runs\n").unwrap();
    fs::write(root.join("linked a"), "one inode, two names\n").unwrap();
    fs::hard_link(root.join("linked a"), root.join("linked b")).unwrap();
    symlink("keep.txt", root.join("a symlink")).unwrap();
    fs::write(root.join("private"), "secret\n").unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
}

/// `restored` equals `source` in names, bytes and types, and also in what `assert_same_tree`
/// does not look at: symlink targets, permissions, hard links.
fn assert_restored(source: &Path, restored: &Path) {
    assert_same_tree(source, restored);
    assert_eq!(
        fs::read_link(restored.join("a symlink")).unwrap(),
        PathBuf::from("keep.txt")
    );
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(
        mode(&restored.join("private")),
        mode(&source.join("private"))
    );
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&restored.join("linked a")),
        ino(&restored.join("linked b")),
        "hard links are kept"
    );
}

fn local_config(t: &Scratch, retention: &[(&str, &str)]) -> PathBuf {
    ConfigBuilder::new()
        .cron_schedule("0 3 * * *")
        .pid_file_dir(t.p("run"))
        .state_dir(t.p("state"))
        .job(
            JobBuilder::new("snap")
                .snapshot(retention)
                .lock_local(t.p("locks/snap.lock"))
                .sync(format!("{}/", t.s("src")), t.p("series"), &["-aH"]),
        )
        .write(t.p("backupmanager.yaml"))
}

#[test]
fn snapshots_share_unchanged_files_retention_prunes_and_restore_gives_the_tree_back() {
    let t = Scratch::new("bm-snap-");
    source_tree(&t.p("src"));
    let cfg = local_config(&t, &[("keep_last", "2")]);

    bm_ok(&cfg, &["run-job", "snap"]);
    let first = snapshots_json(&cfg, "snap");
    assert_eq!(first.len(), 1, "{first:?}");
    let first_copy = t.p("first");
    bm_ok(
        &cfg,
        &["restore", "snap", "--to", first_copy.to_str().unwrap()],
    );
    assert_restored(&t.p("src"), &first_copy);

    // Change one file, run again: the unchanged one is the same inode in both snapshots.
    fs::write(t.p("src/private"), "changed\n").unwrap();
    bm_ok(&cfg, &["run-job", "snap"]);
    let two = ids(&snapshots_json(&cfg, "snap"));
    assert_eq!(two.len(), 2, "{two:?}");
    assert!(two[0] > two[1], "newest first: {two:?}");
    let series = t.p("series");
    let ino = |id: &str, f: &str| fs::metadata(series.join(id).join(f)).unwrap().ino();
    assert_eq!(ino(&two[0], "keep.txt"), ino(&two[1], "keep.txt"));
    assert_ne!(ino(&two[0], "private"), ino(&two[1], "private"));
    assert_eq!(
        fs::read_link(series.join("latest")).unwrap(),
        PathBuf::from(&two[0])
    );

    // A dry-run prune and a dry-run restore change nothing.
    let before = names(&series);
    let plan: Value = serde_json::from_str(&bm_ok(
        &cfg,
        &["prune", "snap", "--dry-run", "--format", "json"],
    ))
    .unwrap();
    assert!(
        plan.as_array().unwrap().iter().all(|v| v["keep"] == true),
        "{plan}"
    );
    let dry_to = t.p("dry");
    bm_ok(
        &cfg,
        &[
            "restore",
            "snap",
            "--to",
            dry_to.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert!(!dry_to.exists(), "a dry-run restore created its target");
    assert_eq!(names(&series), before);

    // Third run: keep_last 2 removes the oldest, automatically, and only it.
    bm_ok(&cfg, &["run-job", "snap"]);
    let three = ids(&snapshots_json(&cfg, "snap"));
    assert_eq!(three.len(), 2, "{three:?}");
    assert_eq!(three[1], two[0], "the second snapshot is kept");
    assert!(!series.join(&two[1]).exists() && !series.join(format!("{}.json", two[1])).exists());

    // The older snapshot restores the older content.
    let old = t.p("old");
    bm_ok(
        &cfg,
        &[
            "restore",
            "snap",
            "--snapshot",
            &three[1],
            "--to",
            old.to_str().unwrap(),
        ],
    );
    assert_eq!(
        fs::read_to_string(old.join("private")).unwrap(),
        "changed\n"
    );

    // A non-empty target is refused and left as it was; --overwrite replaces, deletes nothing.
    let busy = t.p("busy");
    fs::create_dir_all(&busy).unwrap();
    fs::write(busy.join("keep.txt"), "mine\n").unwrap();
    fs::write(busy.join("unrelated"), "mine too\n").unwrap();
    let out = bm_json(&cfg, &["restore", "snap", "--to", busy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(fs::read_to_string(busy.join("keep.txt")).unwrap(), "mine\n");
    bm_ok(
        &cfg,
        &[
            "restore",
            "snap",
            "--to",
            busy.to_str().unwrap(),
            "--overwrite",
            "--path",
            "keep.txt",
        ],
    );
    assert_eq!(
        fs::read_to_string(busy.join("keep.txt")).unwrap(),
        "unchanged across runs\n"
    );
    assert_eq!(
        fs::read_to_string(busy.join("unrelated")).unwrap(),
        "mine too\n"
    );
    // A path that escapes the snapshot is refused.
    let out = bm_json(
        &cfg,
        &[
            "restore",
            "snap",
            "--to",
            t.s("esc").as_str(),
            "--path",
            "../x",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!t.p("esc").exists());
}

/// A one-job snapshot config with these rsync `opts` and `keep_last`.
fn config_with(t: &Scratch, opts: &[&str], keep_last: &str) -> PathBuf {
    ConfigBuilder::new()
        .cron_schedule("0 3 * * *")
        .pid_file_dir(t.p("run"))
        .state_dir(t.p("state"))
        .job(
            JobBuilder::new("snap")
                .snapshot(&[("keep_last", keep_last)])
                .retries(0)
                .sync(format!("{}/", t.s("src")), t.p("series"), opts),
        )
        .write(t.p("backupmanager.yaml"))
}

/// True while some rsync writes into `series` (its command line names it).
fn rsync_into(series: &Path) -> bool {
    let needle = series.to_str().unwrap().as_bytes();
    support::procfs::all().iter().any(|s| {
        let cmd = support::procfs::cmdline(s.pid);
        !s.is_zombie()
            && cmd.starts_with(b"rsync")
            && cmd.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn a_failed_or_killed_run_leaves_no_restore_point_and_prunes_nothing() {
    let t = Scratch::new("bm-snap-fail-");
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/a"), "a\n").unwrap();
    let cfg = config_with(&t, &["-a"], "1");
    bm_ok(&cfg, &["run-job", "snap"]);
    let good = ids(&snapshots_json(&cfg, "snap"));
    assert_eq!(good.len(), 1);

    // rsync fails (exit 3: its --files-from list cannot be opened): the run fails, no new
    // snapshot, and keep_last 1 did not get a chance to remove the good one.
    fs::write(t.p("src/b"), "b\n").unwrap();
    let cfg = config_with(&t, &["-a", "--files-from=/nonexistent/bm-list"], "1");
    let out = bm_json(&cfg, &["run-job", "snap"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(ids(&snapshots_json(&cfg, "snap")), good);
    assert!(
        series_names(&t)
            .iter()
            .any(|n| n.starts_with(".incomplete-")),
        "the failed run's directory stays for the next run to reuse: {:?}",
        series_names(&t)
    );

    // kill -9 in the middle of a slow rsync: nothing listed beyond the good one; the next run
    // completes and takes over (or removes) the incomplete directory.
    big_file(&t.p("src/big"), 2 << 20);
    let cfg = config_with(&t, &["-a", "--bwlimit=200"], "1");
    let mut run = Bm::run_job(&cfg, "snap", &[]);
    let series = t.p("series");
    wait_until(
        Duration::from_secs(60),
        "rsync writing the snapshot",
        || rsync_into(&series),
    );
    std::thread::sleep(Duration::from_millis(500));
    kill(Pid::from_raw(run.pid() as i32), Signal::SIGKILL).unwrap();
    run.wait(LONG);
    // rsync dies with its parent (PDEATHSIG).
    wait_until(Duration::from_secs(20), "rsync gone after kill -9", || {
        !rsync_into(&series)
    });
    assert_eq!(
        ids(&snapshots_json(&cfg, "snap")),
        good,
        "a killed run is not a restore point"
    );

    let cfg = config_with(&t, &["-a"], "1");
    bm_ok(&cfg, &["run-job", "snap"]);
    let after = ids(&snapshots_json(&cfg, "snap"));
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, good);
    assert!(
        !series_names(&t).iter().any(|n| n.starts_with('.')),
        "leftovers: {:?}",
        series_names(&t)
    );
    assert_eq!(fs::read(series.join("latest/big")).unwrap().len(), 2 << 20);
    assert_eq!(fs::read_to_string(series.join("latest/b")).unwrap(), "b\n");
}

fn series_names(t: &Scratch) -> Vec<String> {
    names(&t.p("series"))
}

#[test]
fn an_empty_source_is_refused_in_snapshot_mode() {
    let t = Scratch::new("bm-snap-empty-");
    fs::create_dir_all(t.p("src")).unwrap();
    let cfg = local_config(&t, &[("keep_last", "3")]);
    let out = bm_json(&cfg, &["run-job", "snap"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("empty restore point"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(snapshots_json(&cfg, "snap").is_empty());
}

#[test]
fn a_remote_series_over_ssh() {
    require_root_tools();
    let sshd = Sshd::start();
    let t = Scratch::short("bmsr");
    source_tree(&t.p("src"));
    let remote = Remote::new("root", "127.0.0.1", sshd.port());
    let cfg = ConfigBuilder::new()
        .cron_schedule("0 3 * * *")
        .pid_file_dir(t.p("r"))
        .state_dir(t.p("state"))
        .job(
            JobBuilder::new("remote_snap")
                .remote(&remote)
                .identity_file(sshd.client_key())
                .known_hosts_file(sshd.known_hosts())
                .snapshot(&[("keep_last", "2")])
                .lock_remote(t.p("remote-locks/remote_snap.lock"))
                .sync(format!("{}/", t.s("src")), t.p("remote series"), &["-aH"]),
        )
        .write(t.p("backupmanager.yaml"));
    let _master = Master::of(&sshd, t.p("r/ssh"));
    bm_ok(&cfg, &["run-job", "remote_snap"]);
    fs::write(t.p("src/keep.txt"), "second generation\n").unwrap();
    bm_ok(&cfg, &["run-job", "remote_snap"]);
    bm_ok(&cfg, &["run-job", "remote_snap"]);
    let list = snapshots_json(&cfg, "remote_snap");
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list[0]["series"].as_str().unwrap().contains("127.0.0.1"));
    let back = t.p("back");
    bm_ok(
        &cfg,
        &["restore", "remote_snap", "--to", back.to_str().unwrap()],
    );
    assert_restored(&t.p("src"), &back);
    assert!(
        !t.p("remote-locks/remote_snap.lock").exists(),
        "lock released"
    );
}
