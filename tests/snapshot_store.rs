//! Snapshot series on disk (`backupmanager::snapshot`), locally and over a real sshd, with
//! real rsync: begin → rsync → commit, listing, hard links between snapshots, `latest`,
//! incomplete snapshots (also after `kill -9`), removal, restore, and remote shells that
//! lack GNU options or answer with noise.
mod support;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use backupmanager::rsync::{self, RsyncCommand, RunningRsync};
use backupmanager::snapshot::{
    restore, restore_plan, Location, Manifest, RestoreRequest, RunInfo, Series, SnapshotError,
    SnapshotId,
};
use backupmanager::transport::{SshConfig, SshTarget, SshTransport};
use jiff::Zoned;
use support::*;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn now() -> Zoned {
    Zoned::now()
}

/// A source tree: hostile names, a hard-linked pair, symlinks, odd permissions.
fn make_source(root: &Path) {
    make_hostile_tree(root);
    fs::write(root.join("big one"), vec![7u8; 200_000]).unwrap();
    fs::write(root.join("linked a"), b"shared inode\n").unwrap();
    fs::hard_link(root.join("linked a"), root.join("sub dir/linked b")).unwrap();
    symlink("sub dir/with space", root.join("rel link")).unwrap();
    symlink("/nonexistent/target", root.join("dangling link")).unwrap();
    fs::create_dir(root.join("private")).unwrap();
    fs::write(root.join("private/secret"), b"s3cret").unwrap();
    fs::set_permissions(
        root.join("private/secret"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(root.join("big one"), fs::Permissions::from_mode(0o640)).unwrap();
}

/// `assert_same_tree` compares names, types and bytes but reads symlinks through; this
/// checks symlink targets, modes and the source's hard-linked pair too (link counts differ:
/// snapshots share inodes with each other).
fn assert_identical(a: &Path, b: &Path) {
    fn walk(a: &Path, b: &Path) {
        let mut names: Vec<_> = fs::read_dir(a)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        let mut other: Vec<_> = fs::read_dir(b)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        other.sort();
        assert_eq!(
            names,
            other,
            "entries of {} vs {}",
            a.display(),
            b.display()
        );
        for n in names {
            let (pa, pb) = (a.join(&n), b.join(&n));
            let (ma, mb) = (
                fs::symlink_metadata(&pa).unwrap(),
                fs::symlink_metadata(&pb).unwrap(),
            );
            assert_eq!(ma.file_type(), mb.file_type(), "type of {}", pb.display());
            if ma.file_type().is_symlink() {
                assert_eq!(fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap());
                continue;
            }
            assert_eq!(ma.mode(), mb.mode(), "mode of {}", pb.display());
            if ma.is_dir() {
                walk(&pa, &pb);
            } else {
                assert_eq!(
                    fs::read(&pa).unwrap(),
                    fs::read(&pb).unwrap(),
                    "{}",
                    pb.display()
                );
            }
        }
    }
    walk(a, b);
    if !a.join("linked a").exists() {
        return;
    }
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&b.join("linked a")),
        ino(&b.join("sub dir/linked b")),
        "hard link kept in {}",
        b.display()
    );
}

/// Run one snapshot like the runner will: begin, rsync into the pending dir, commit.
fn snapshot(series: &Series, src: &Path, started: &Zoned) -> Manifest {
    let p = series.begin(started).unwrap();
    let mut cmd = RsyncCommand::new(format!("{}/", s(src)), p.rsync_dest());
    cmd.opts = vec!["-aH".into(), "--numeric-ids".into()];
    cmd.extra = p.rsync_extra();
    cmd.rsh = series.rsync_rsh();
    let r = rsync::run(&cmd, |_, _| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(r.exit_code, 0, "{}", r.message());
    series
        .commit(
            p,
            RunInfo {
                job: "nightly".into(),
                run_id: "run-1".into(),
                rsync_exit: r.exit_code,
                stats: r.stats,
            },
        )
        .unwrap()
}

fn ids(list: &[Manifest]) -> Vec<String> {
    list.iter().map(|m| m.id.to_string()).collect()
}

fn restore_req(snapshot: &str, to: &Path) -> RestoreRequest {
    RestoreRequest {
        snapshot: snapshot.into(),
        paths: Vec::new(),
        to: to.to_path_buf(),
        dry_run: false,
        overwrite: false,
    }
}

fn do_restore(series: &Series, req: &RestoreRequest) -> Result<(), SnapshotError> {
    restore(series, req, |_, _| {}, &AtomicBool::new(false)).map(|_| ())
}

/// The series checks shared by the local and the remote test. `dir` is the series directory
/// as seen from this process (the remote host is 127.0.0.1).
fn series_lifecycle(series: &Series, dir: &Path, tmp: &Path) {
    let src = tmp.join("src");
    make_source(&src);

    // Nothing yet: an empty list, not an error.
    assert!(series.list().unwrap().is_empty());

    let t1 = now();
    let first = snapshot(series, &src, &t1);
    fs::write(src.join("with space"), b"changed in run 2\n").unwrap();
    let second = snapshot(series, &src, &t1); // same second: the id gets "-2"
    assert_eq!(second.id, first.id.successor());

    let list = series.list().unwrap();
    assert_eq!(
        ids(&list),
        [second.id.to_string(), first.id.to_string()],
        "newest first"
    );
    let m = &list[0];
    assert_eq!(m.job, "nightly");
    assert_eq!(m.run_id, "run-1");
    assert_eq!(m.rsync_exit, 0);
    assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(m.time.timestamp().as_second(), t1.timestamp().as_second());
    assert_eq!(m.time.offset(), t1.offset());
    assert!(m.total_size.unwrap() > 200_000);
    assert_eq!(
        m.files_transferred,
        Some(1),
        "only the changed file was transferred"
    );
    let raw = fs::read_to_string(dir.join(format!("{}.json", m.id))).unwrap();
    assert!(
        raw.contains(&format!("\"time\":\"{}\"", m.time_rfc3339())),
        "{raw}"
    );

    // Unchanged files are hard links between the snapshots; the changed one is not.
    let (d1, d2) = (
        dir.join(first.id.to_string()),
        dir.join(second.id.to_string()),
    );
    let ino = |p: PathBuf| fs::symlink_metadata(p).unwrap().ino();
    assert_eq!(ino(d1.join("big one")), ino(d2.join("big one")));
    assert_eq!(
        ino(d1.join("sub dir/with space")),
        ino(d2.join("sub dir/with space"))
    );
    assert_ne!(ino(d1.join("with space")), ino(d2.join("with space")));
    assert_identical(&src, &d2);
    assert_eq!(
        fs::read_link(dir.join("latest")).unwrap(),
        PathBuf::from(second.id.to_string())
    );

    // A pending snapshot (rsync never ran to the end) is not listed and not a link-dest.
    let t3 = now();
    let pending = series.begin(&t3).unwrap();
    assert!(!pending.reused());
    assert_eq!(
        pending.link_dest(),
        Some(series.snapshot_path(&second.id).as_str())
    );
    let pending_dir = dir.join(format!(".incomplete-{}", pending.id()));
    assert!(pending_dir.is_dir());
    fs::write(pending_dir.join("partial"), b"half").unwrap();
    assert_eq!(ids(&series.list().unwrap()), ids(&list));
    drop(pending);

    // The next begin takes it over (rsync with --delete then brings it in line), still
    // linking against the newest *complete* snapshot.
    let p = series.begin(&now()).unwrap();
    assert!(p.reused());
    assert_eq!(
        p.link_dest(),
        Some(series.snapshot_path(&second.id).as_str())
    );
    assert!(p.rsync_extra().contains(&"--delete".to_string()));
    let incompletes: Vec<_> = names_in(dir)
        .into_iter()
        .filter(|n| n.starts_with(".incomplete-"))
        .collect();
    assert_eq!(incompletes, [format!(".incomplete-{}", p.id())]);
    assert!(dir
        .join(format!(".incomplete-{}", p.id()))
        .join("partial")
        .exists());
    let mut cmd = RsyncCommand::new(format!("{}/", s(&src)), p.rsync_dest());
    cmd.opts = vec!["-aH".into()];
    cmd.extra = p.rsync_extra();
    cmd.rsh = series.rsync_rsh();
    let r = rsync::run(&cmd, |_, _| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(r.exit_code, 0, "{}", r.message());
    let not_ok = RunInfo {
        job: "nightly".into(),
        run_id: "run-3".into(),
        rsync_exit: 23,
        stats: None,
    };
    let refused = series.commit(p.clone(), not_ok).unwrap_err();
    assert!(
        matches!(refused, SnapshotError::NotCommittable { exit_code: 23, .. }),
        "{refused}"
    );
    let info = RunInfo {
        job: "nightly".into(),
        run_id: "run-3".into(),
        rsync_exit: 24,
        stats: r.stats,
    };
    let third = series.commit(p, info).unwrap();
    let d3 = dir.join(third.id.to_string());
    assert!(
        !d3.join("partial").exists(),
        "leftover of the failed run removed"
    );
    assert_identical(&src, &d3);
    assert_eq!(ino(d2.join("big one")), ino(d3.join("big one")));
    assert_eq!(third.rsync_exit, 24);
    assert_eq!(
        ids(&series.list().unwrap()),
        [
            third.id.to_string(),
            second.id.to_string(),
            first.id.to_string()
        ]
    );

    // Removal: never the newest, never a name that is not a complete snapshot.
    for bad in [
        third.id.to_string(),
        "latest".into(),
        "../etc".into(),
        "2001-01-01T000000Z".into(),
    ] {
        let e = series.remove(&bad).unwrap_err();
        assert!(
            matches!(
                e,
                SnapshotError::RefuseNewest { .. } | SnapshotError::NotFound { .. }
            ),
            "{bad}: {e}"
        );
    }
    // Things that are not ours stay, whatever happens.
    fs::create_dir(dir.join("photos")).unwrap();
    fs::create_dir(dir.join(".deleting-photos")).unwrap();
    fs::write(dir.join("notes.json"), b"{}").unwrap();
    // A removal that crashed after hiding: not listed, finished off by the next removal.
    let crashed = SnapshotId::parse("2000-01-01T000000Z").unwrap();
    fs::create_dir_all(dir.join(format!(".deleting-{crashed}/deep/er"))).unwrap();
    fs::write(dir.join(format!("{crashed}.json")), b"orphan").unwrap();

    series.remove(&first.id.to_string()).unwrap();
    assert_eq!(
        ids(&series.list().unwrap()),
        [third.id.to_string(), second.id.to_string()]
    );
    assert!(!d1.exists());
    assert!(!dir.join(format!("{}.json", first.id)).exists());
    assert!(!dir.join(format!(".deleting-{crashed}")).exists());
    assert!(dir.join("photos").is_dir() && dir.join(".deleting-photos").is_dir());
    assert!(dir.join("notes.json").is_file());
    assert_eq!(
        ino(d2.join("big one")),
        ino(d3.join("big one")),
        "the others are intact"
    );
    // The orphan manifest is ours and serves nothing: the next begin removes it.
    series.cleanup().unwrap();
    assert!(!dir.join(format!("{crashed}.json")).exists());

    // A commit that crashed before its manifest appeared: a directory without manifest.
    // Not listed; the next begin reuses it.
    let half = SnapshotId::parse("2099-01-01T000000Z").unwrap();
    fs::create_dir(dir.join(half.to_string())).unwrap();
    assert_eq!(series.list().unwrap().len(), 2);
    let p = series.begin(&now()).unwrap();
    assert!(p.reused());
    assert!(
        *p.id() > half,
        "ids keep growing even if the clock is behind"
    );
    assert!(!dir.join(half.to_string()).exists());
    drop(p);

    // Restore (from the newest) equals the source, manifest-free.
    let to = tmp.join("restored");
    do_restore(series, &restore_req("latest", &to)).unwrap();
    assert_identical(&src, &to);
    // (the support helper reads symlinks through, so not on the tree with a dangling link)
    assert_same_tree(&src.join("sub dir"), &to.join("sub dir"));
    assert!(!names_in(&to).iter().any(|n| n.ends_with(".json")));
    // An older one by id.
    let to_old = tmp.join("restored old");
    do_restore(series, &restore_req(&second.id.to_string(), &to_old)).unwrap();
    assert_identical(&d2, &to_old);

    // Non-empty target: refused; with overwrite, files are replaced and nothing is deleted.
    let busy = tmp.join("busy");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("mine"), b"keep me").unwrap();
    fs::write(busy.join("with space"), b"old").unwrap();
    let e = do_restore(series, &restore_req("latest", &busy)).unwrap_err();
    assert!(matches!(e, SnapshotError::TargetNotEmpty { .. }), "{e}");
    assert_eq!(fs::read(busy.join("with space")).unwrap(), b"old");
    let mut req = restore_req("latest", &busy);
    req.overwrite = true;
    do_restore(series, &req).unwrap();
    assert_eq!(fs::read(busy.join("mine")).unwrap(), b"keep me");
    assert_eq!(
        fs::read(busy.join("with space")).unwrap(),
        b"changed in run 2\n"
    );

    // --path: a subset, at its relative place.
    let part = tmp.join("part");
    let mut req = restore_req("latest", &part);
    req.paths = vec!["sub dir/ünïcødé ✓".into(), "/private/".into()];
    do_restore(series, &req).unwrap();
    assert_eq!(names_in(&part), ["private", "sub dir"]);
    assert_eq!(names_in(&part.join("sub dir")), ["ünïcødé ✓"]);
    assert_identical(&src.join("private"), &part.join("private"));

    // `..` and symlinks on the way out of the snapshot are refused; a missing path too.
    let out = tmp.join("never");
    for bad in [
        "../x",
        "sub dir/../../etc",
        "rel link/with space",
        "no such",
    ] {
        let mut req = restore_req("latest", &out);
        req.paths = vec![bad.into()];
        let e = do_restore(series, &req).unwrap_err();
        assert!(matches!(e, SnapshotError::InvalidPath { .. }), "{bad}: {e}");
    }
    // Unknown or incomplete snapshots are not restore points.
    for bad in [
        "2001-01-01T000000Z".to_string(),
        format!(".incomplete-{}", third.id),
        first.id.to_string(),
    ] {
        let e = do_restore(series, &restore_req(&bad, &out)).unwrap_err();
        assert!(matches!(e, SnapshotError::NotFound { .. }), "{bad}: {e}");
    }
    assert!(!out.exists());

    // Never into the series itself (that would change snapshots).
    if let Location::Local = series.location() {
        for inside in [dir.join("latest"), dir.join("new dir")] {
            let mut req = restore_req(&second.id.to_string(), &inside);
            req.overwrite = true;
            let e = do_restore(series, &req).unwrap_err();
            assert!(matches!(e, SnapshotError::BadTarget { .. }), "{e}");
        }
    }

    // Dry run: changes nothing, creates nothing.
    let mut req = restore_req("latest", &out);
    req.dry_run = true;
    let plan = restore_plan(series, &req).unwrap();
    assert_eq!(plan.manifest.id, third.id);
    do_restore(series, &req).unwrap();
    assert!(!out.exists());
    let mut req = restore_req("latest", &busy);
    req.overwrite = true;
    req.dry_run = true;
    fs::write(busy.join("with space"), b"mine again").unwrap();
    do_restore(series, &req).unwrap();
    assert_eq!(fs::read(busy.join("with space")).unwrap(), b"mine again");
}

#[test]
fn local_series_lifecycle_and_restore() {
    require_root_tools();
    let tmp = Scratch::new("bm-store-");
    let dir = tmp.path().join("dest ü/series");
    let series = Series::new(Location::Local, &format!("{}/", s(&dir))).unwrap();
    assert_eq!(series.dest(), s(&dir));
    series_lifecycle(&series, &dir, tmp.path());
}

#[test]
fn remote_series_lifecycle_and_restore() {
    let sshd = Sshd::start();
    let tmp = Scratch::new("bm-store-");
    let dir = sshd.dir().join("remote dest 'q'/series $x");
    let loc = remote(sshd.target(), sshd.ssh_config());
    let series = Series::new(loc, &s(&dir)).unwrap();
    series_lifecycle(&series, &dir, tmp.path());
}

#[test]
fn kill_9_mid_snapshot_leaves_nothing_listed_and_the_next_run_completes() {
    require_root_tools();
    let tmp = Scratch::new("bm-store-");
    let src = tmp.path().join("src");
    let dir = tmp.path().join("series");
    make_source(&src);
    let series = Series::new(Location::Local, &s(&dir)).unwrap();
    let first = snapshot(&series, &src, &now());

    // A few MB of fresh data, copied slowly.
    big_file(&src.join("big new file"), 4 << 20);
    let p = series.begin(&now()).unwrap();
    let pending_dir = dir.join(format!(".incomplete-{}", p.id()));
    let mut cmd = RsyncCommand::new(format!("{}/", s(&src)), p.rsync_dest());
    cmd.opts = vec!["-aH".into(), "--bwlimit=512".into()];
    cmd.extra = p.rsync_extra();
    let mut running = RunningRsync::spawn(&cmd).unwrap();
    // Wait until rsync is writing the big file (its temporary name starts with '.').
    wait_until(Duration::from_secs(30), "rsync writes the big file", || {
        fs::read_dir(&pending_dir)
            .map(|rd| {
                rd.flatten().any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with(".big new file.")
                        && e.metadata().map(|m| m.len() > 0).unwrap_or(false)
                })
            })
            .unwrap_or(false)
    });
    let pgid = nix::unistd::Pid::from_raw(running.pid() as i32);
    nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_until(Duration::from_secs(10), "rsync is reaped", || {
        matches!(running.try_wait(), Ok(Some(_)))
    });
    drop(p);

    assert_eq!(
        ids(&series.list().unwrap()),
        [first.id.to_string()],
        "nothing new listed"
    );
    assert_eq!(
        fs::read_link(dir.join("latest")).unwrap(),
        PathBuf::from(first.id.to_string())
    );

    let second = snapshot(&series, &src, &now());
    assert_eq!(
        ids(&series.list().unwrap()),
        [second.id.to_string(), first.id.to_string()]
    );
    let d2 = dir.join(second.id.to_string());
    assert_identical(&src, &d2);
    assert!(
        !names_in(&dir).iter().any(|n| n.starts_with(".incomplete-")),
        "{:?}",
        names_in(&dir)
    );
}

#[test]
fn listing_a_thousand_local_snapshots_reads_only_manifests() {
    let tmp = Scratch::new("bm-store-");
    let dir = tmp.path().join("series");
    fs::create_dir(&dir).unwrap();
    let base: jiff::Timestamp = "2020-01-01T00:00:00Z".parse().unwrap();
    for i in 0..1000i64 {
        let t = base
            .checked_add(jiff::SignedDuration::from_hours(i))
            .unwrap();
        let time = t.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(1)));
        let m = Manifest {
            id: SnapshotId::from_time(t),
            time,
            job: "j".into(),
            run_id: format!("r{i}"),
            version: "0.1.0".into(),
            rsync_exit: 0,
            files_transferred: Some(1),
            bytes_transferred: Some(2),
            total_size: Some(3),
        };
        // Each snapshot holds a tree the listing must not enter.
        fs::create_dir_all(dir.join(m.id.to_string()).join("a")).unwrap();
        fs::write(dir.join(format!("{}.json", m.id)), m.to_json()).unwrap();
    }
    let series = Series::new(Location::Local, &s(&dir)).unwrap();
    let start = Instant::now();
    let list = series.list().unwrap();
    let took = start.elapsed();
    eprintln!("listing 1000 local snapshots took {took:?}");
    assert_eq!(list.len(), 1000);
    assert_eq!(list[0].id.to_string(), "2020-02-11T150000Z");
    assert!(list.windows(2).all(|w| w[0].id > w[1].id));
}

/// A fake `ssh` that runs the real one with the remote command prefixed by `prefix`, and
/// prints `noise` on stdout first.
fn fake_ssh(dir: &Path, name: &str, prefix: &str, noise: &str, pipe: &str) -> PathBuf {
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\n\
         n=$#; i=0\n\
         for a do\n\
           i=$((i+1)); [ $i -eq 1 ] && set --\n\
           [ $i -eq $n ] && a=\"{prefix}$a\"\n\
           set -- \"$@\" \"$a\"\n\
         done\n\
         printf '%s' '{noise}'\n\
         ssh \"$@\"{pipe}\n"
    );
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn write_exec(path: &Path, body: &str) {
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Commit an (almost) empty snapshot by writing into the pending directory directly (the
/// series is on 127.0.0.1): these tests are about the shell steps, not rsync.
fn quick_snapshot(series: &Series, dir: &Path, content: &str) -> Manifest {
    let p = series.begin(&now()).unwrap();
    fs::write(
        dir.join(format!(".incomplete-{}", p.id())).join("f"),
        content,
    )
    .unwrap();
    let info = RunInfo {
        job: "j".into(),
        run_id: "r".into(),
        rsync_exit: 0,
        stats: None,
    };
    series.commit(p, info).unwrap()
}

#[test]
fn remote_userland_without_gnu_options_still_switches_latest() {
    let sshd = Sshd::start();
    let tmp = Scratch::new("bm-store-");
    let log = tmp.path().join("rejected.log");
    // BSD-like: `mv -T` and GNU long options rejected, `mv -h` = do not follow the target;
    // then a minimal mv that rejects every option. `stat -c` and `readlink` fail everywhere.
    let bsd = tmp.path().join("bsd");
    let minimal = tmp.path().join("minimal");
    for (d, mv) in [
        (&bsd, format!("case \"$1\" in -h) shift; exec /bin/mv -T \"$@\" ;; -*) echo \"mv $1\" >> '{}'; echo 'mv: illegal option' >&2; exit 64 ;; esac\nexec /bin/mv \"$@\"\n", log.display())),
        (&minimal, format!("case \"$1\" in -*) echo \"mv $1\" >> '{}'; echo 'mv: unknown option' >&2; exit 1 ;; esac\nexec /bin/mv \"$@\"\n", log.display())),
    ] {
        fs::create_dir(d).unwrap();
        write_exec(&d.join("mv"), &format!("#!/bin/sh\n{mv}"));
        write_exec(&d.join("stat"), "#!/bin/sh\ncase \"$1\" in -c*|--*) echo 'stat: illegal option' >&2; exit 1 ;; esac\nexec /usr/bin/stat \"$@\"\n");
        write_exec(&d.join("readlink"), "#!/bin/sh\necho 'readlink: not here' >&2; exit 127\n");
    }
    for (userland, expect_rejected) in [(&bsd, "mv -T"), (&minimal, "mv -h")] {
        let _ = fs::remove_file(&log);
        let prefix = format!("PATH={}:$PATH; export PATH; ", s(userland));
        let ssh = fake_ssh(tmp.path(), "ssh-wrapped", &prefix, "", "");
        let mut cfg = sshd.ssh_config();
        cfg.program = ssh;
        let dir = tmp.path().join(format!(
            "series {}",
            userland.file_name().unwrap().to_string_lossy()
        ));
        let series = Series::new(remote(sshd.target(), cfg), &s(&dir)).unwrap();
        let a = quick_snapshot(&series, &dir, "one");
        let b = quick_snapshot(&series, &dir, "two");
        let c = quick_snapshot(&series, &dir, "three");
        assert_eq!(
            ids(&series.list().unwrap()),
            [c.id.to_string(), b.id.to_string(), a.id.to_string()]
        );
        assert_eq!(
            fs::read_link(dir.join("latest")).unwrap(),
            PathBuf::from(c.id.to_string())
        );
        assert_eq!(fs::read(dir.join("latest/f")).unwrap(), b"three");
        // Nothing was moved into an older snapshot, and no temporary link is left.
        for m in [&a, &b] {
            assert_eq!(names_in(&dir.join(m.id.to_string())), ["f"]);
        }
        assert!(
            !names_in(&dir).iter().any(|n| n.starts_with(".latest-new-")),
            "{:?}",
            names_in(&dir)
        );
        series.remove(&a.id.to_string()).unwrap();
        assert_eq!(series.list().unwrap().len(), 2);
        let rejected = fs::read_to_string(&log).unwrap_or_default();
        assert!(
            rejected.contains(expect_rejected),
            "the wrappers were used: {rejected:?}"
        );
    }
}

#[test]
fn remote_garbled_or_missing_answers_are_errors_not_empty() {
    let sshd = Sshd::start();
    let tmp = Scratch::new("bm-store-");
    let dir = tmp.path().join("series");
    let good = Series::new(remote(sshd.target(), sshd.ssh_config()), &s(&dir)).unwrap();
    quick_snapshot(&good, &dir, "x");
    assert_eq!(good.list().unwrap().len(), 1);

    let cases = [
        (
            "banner",
            fake_ssh(
                tmp.path(),
                "ssh-banner",
                "",
                "Welcome to backup host!\n",
                "",
            ),
        ),
        (
            "cut",
            fake_ssh(tmp.path(), "ssh-cut", "", "", " | head -c 60"),
        ),
        (
            "silent",
            fake_ssh(tmp.path(), "ssh-silent", "exit 0; ", "", ""),
        ),
        (
            "rc echo",
            fake_ssh(tmp.path(), "ssh-rc", "echo sourced .profile; ", "", ""),
        ),
    ];
    for (what, program) in cases {
        let mut cfg = sshd.ssh_config();
        cfg.program = program;
        let series = Series::new(remote(sshd.target(), cfg), &s(&dir)).unwrap();
        let e = series.list().unwrap_err();
        assert!(matches!(e, SnapshotError::Malformed { .. }), "{what}: {e}");
        let e = series.begin(&now()).unwrap_err();
        assert!(matches!(e, SnapshotError::Malformed { .. }), "{what}: {e}");
    }
    // A failing remote step is an error with its stderr, and changes nothing it should not.
    fs::remove_file(dir.join("latest")).unwrap();
    fs::create_dir(dir.join("latest")).unwrap();
    let e = good.begin(&now()).unwrap_err();
    assert!(matches!(e, SnapshotError::LatestNotSymlink { .. }), "{e}");
    assert_eq!(good.list().unwrap().len(), 1);
}

/// A series location on the test sshd.
fn remote(target: SshTarget, ssh: SshConfig) -> Location {
    Location::Remote(std::sync::Arc::new(SshTransport::new(target, ssh).unwrap()))
}
