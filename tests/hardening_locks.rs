//! Regressions of the hardening issue's lock items, end to end: the real binary, real rsync, a
//! real daemon and the private sshd on 127.0.0.1 (tests/support). Each test names its item.
//!
//! Every process a test starts is stopped by pid when the test ends (a `Bm` guard, `Sshd`,
//! `Master`). Nothing asserts on speed.
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backupmanager::lock::{Identity, Record};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::*;

fn tmp() -> Scratch {
    require_root_tools();
    let t = Scratch::short("bml");
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/file"), "data\n").unwrap();
    t
}

/// `<t>/bm.yaml`: runtime dir `<t>/r`, state dir `<t>/state`, the given jobs.
fn config(t: &Scratch, jobs: &[&JobBuilder]) -> PathBuf {
    ConfigBuilder::in_scratch(t)
        .jobs(jobs.iter().copied())
        .write(t.p("bm.yaml"))
}

/// A job copying `<t>/src/` to `<t>/dst-ID/`.
fn job(t: &Scratch, id: &str) -> JobBuilder {
    JobBuilder::new(id).sync(t.s("src/"), t.s(&format!("dst-{id}/")), &["-a"])
}

/// Runs `backupmanager --config CFG ARGS` to its end: the exit code and all it printed.
fn run(cfg: &Path, args: &[&str]) -> (i32, String) {
    let mut bm = Bm::spawn_verbose(cfg, args);
    let code = bm.wait(LONG);
    (code, bm.full_log())
}

fn remote(sshd: &Sshd) -> Remote {
    Remote::new("root", "127.0.0.1", sshd.port())
}

/// A job that reaches `sshd` with its key (its sync stays local).
fn ssh_job(t: &Scratch, sshd: &Sshd, id: &str) -> JobBuilder {
    job(t, id)
        .identity_file(sshd.client_key())
        .known_hosts_file(sshd.known_hosts())
        .retries(0)
}

// ---------------------------------------------------------------------------------------------
// Item 2: the same host name is not the same machine.

/// A lock record with our host name and machine id but another boot id, refreshed just now:
/// another machine (a clone) is running under it. It blocks; only once it is older than this
/// machine's uptime (written before we booted) is it removed as left over from a reboot.
#[test]
fn a_fresh_lock_of_our_host_name_and_machine_id_from_another_boot_is_not_removed() {
    let t = tmp();
    let own = t.p("locks/j.lock");
    let cfg = config(&t, &[&job(&t, "j").lock_local(&own)]);
    let mut rec = Record::new(
        &Identity::current(),
        "j",
        "run-of-a-clone",
        Duration::from_secs(600),
    );
    rec.boot_id = "00000000-0000-4000-8000-000000000000".into();
    assert!(!rec.machine_id.is_empty(), "this machine has a machine id");
    fs::create_dir_all(own.parent().unwrap()).unwrap();
    fs::write(&own, rec.to_line()).unwrap();

    let (code, out) = run(&cfg, &["run-job", "j", "--no-wait"]);
    assert_eq!(code, BLOCKED, "{out}");
    assert!(!out.contains("rebooted"), "{out}");
    assert_eq!(fs::read_to_string(&own).unwrap(), rec.to_line());
    assert!(!t.p("dst-j").exists());

    // Last written before this machine booted: left over from before a reboot, removed.
    set_mtime_ago(&own, procfs::uptime() + Duration::from_secs(60));
    let (code, out) = run(&cfg, &["run-job", "j", "--no-wait"]);
    assert_eq!(code, OK, "{out}");
    assert!(out.contains("rebooted since it was last written"), "{out}");
    assert!(!own.exists());
    assert_eq!(fs::read_to_string(t.p("dst-j/file")).unwrap(), "data\n");
}

// ---------------------------------------------------------------------------------------------
// Item 13: a symlink at a lock path leaks files.

/// Symlinks planted at own lock and blocker paths, here and on a host reached over ssh, lead to
/// a file with a secret first line. Dry runs and blocked runs say "a symbolic link" and never
/// print the secret; the links and the file stay as they were.
#[test]
fn a_symlink_at_a_lock_path_is_never_read_or_shown() {
    let t = tmp();
    let sshd = Sshd::start();
    let _master = Master::of(&sshd, t.p("r/ssh"));
    let secret = t.p("secret");
    fs::write(&secret, "TOP-SECRET-7f3a\nmore\n").unwrap();
    fs::create_dir_all(t.p("locks")).unwrap();
    fs::create_dir_all(t.p("remote")).unwrap();
    let link = |rel: &str| {
        let p = t.p(rel);
        std::os::unix::fs::symlink(&secret, &p).unwrap();
        p
    };
    let jobs = [
        job(&t, "own").lock_local(link("locks/own.lock")),
        job(&t, "blk")
            .lock_local(t.p("locks/blk.lock"))
            .blocks_on_local(link("locks/other.lock"), "30s"),
        ssh_job(&t, &sshd, "rown")
            .lock(LockFile::remote(link("remote/own.lock")).on(&remote(&sshd))),
        ssh_job(&t, &sshd, "rblk")
            .lock_local(t.p("locks/rblk.lock"))
            .blocks_on(Blocker::remote(link("remote/other.lock"), "30s").on(&remote(&sshd))),
    ];
    let cfg = config(&t, &jobs.iter().collect::<Vec<_>>());
    for id in ["own", "blk", "rown", "rblk"] {
        let (code, out) = run(&cfg, &["run-job", id, "--dry-run"]);
        assert_eq!(code, OK, "{id} --dry-run: {out}");
        assert!(!out.contains("TOP-SECRET"), "{id} --dry-run: {out}");
        assert!(out.contains("symbolic link"), "{id} --dry-run: {out}");
        let (code, out) = run(&cfg, &["run-job", id, "--no-wait"]);
        assert_eq!(code, BLOCKED, "{id}: {out}");
        assert!(!out.contains("TOP-SECRET"), "{id}: {out}");
        assert!(out.contains("symbolic link"), "{id}: {out}");
        assert!(!t.p(&format!("dst-{id}")).exists());
    }
    for rel in [
        "locks/own.lock",
        "locks/other.lock",
        "remote/own.lock",
        "remote/other.lock",
    ] {
        assert_eq!(fs::read_link(t.p(rel)).unwrap(), secret, "{rel}");
    }
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        "TOP-SECRET-7f3a\nmore\n"
    );
    let mut left: Vec<String> = fs::read_dir(t.p("remote"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["other.lock", "own.lock"], "no temporary files left");
}

// ---------------------------------------------------------------------------------------------
// Item 19: a lock path that is a directory.

/// A directory at an own lock or blocker path, here and over ssh: the run fails at once with a
/// message saying it is a directory (before, locally it waited forever on "a file not written
/// by backupmanager"; remotely it "took" the lock by creating a file inside the directory), and
/// nothing is left next to it or inside it.
#[test]
fn a_directory_at_a_lock_path_fails_the_run_and_leaves_nothing_behind() {
    let t = tmp();
    let sshd = Sshd::start();
    let _master = Master::of(&sshd, t.p("r/ssh"));
    for d in [
        "locks/own.lock",
        "locks/other.lock",
        "remote/own.lock",
        "remote/other.lock",
    ] {
        fs::create_dir_all(t.p(d)).unwrap();
    }
    let jobs = [
        job(&t, "own").lock_local(t.p("locks/own.lock")),
        job(&t, "blk")
            .lock_local(t.p("locks/blk.lock"))
            .blocks_on_local(t.p("locks/other.lock"), "30s"),
        ssh_job(&t, &sshd, "rown")
            .lock(LockFile::remote(t.p("remote/own.lock")).on(&remote(&sshd))),
        ssh_job(&t, &sshd, "rblk")
            .lock_local(t.p("locks/rblk.lock"))
            .blocks_on(Blocker::remote(t.p("remote/other.lock"), "30s").on(&remote(&sshd))),
    ]
    .map(|j| j.max_wait("5s"));
    let cfg = config(&t, &jobs.iter().collect::<Vec<_>>());
    for (id, dir) in [
        ("own", "locks/own.lock"),
        ("blk", "locks/other.lock"),
        ("rown", "remote/own.lock"),
        ("rblk", "remote/other.lock"),
    ] {
        let (code, out) = run(&cfg, &["run-job", id]);
        assert_eq!(code, FAILED, "{id}: {out}");
        assert!(
            out.contains("is a directory, not a lock file"),
            "{id}: {out}"
        );
        let taken = format!("lock taken: {}", t.s(dir));
        assert!(!out.contains(&taken), "{id}: {out}");
        assert!(!t.p(&format!("dst-{id}")).exists(), "{id}");
    }
    for (dir, want) in [
        ("locks", &["other.lock", "own.lock"][..]),
        ("remote", &["other.lock", "own.lock"][..]),
        ("locks/own.lock", &[][..]),
        ("locks/other.lock", &[][..]),
        ("remote/own.lock", &[][..]),
        ("remote/other.lock", &[][..]),
    ] {
        let mut names: Vec<String> = fs::read_dir(t.p(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, want, "contents of {dir}");
    }
}

// ---------------------------------------------------------------------------------------------
// Item 7: a reload that changes pid_file_dir or state_dir.

/// A reload whose config moves `pid_file_dir` and `state_dir` keeps the daemon's own: a run it
/// starts afterwards takes its run lock next to the daemon's pid file and records its result in
/// the state file the daemon started with; the new directories are not touched until a
/// restart. (Before, the new plan moved run locks and state at once while the pid file stayed.)
#[test]
fn a_reload_keeps_the_running_daemons_pid_file_dir_and_state_dir() {
    let t = tmp();
    let first = job(&t, "first").cron_schedule("0 0 1 1 *");
    let late = job(&t, "late")
        .cron_schedule("0 0 1 1 *")
        .lock_local(t.p("locks/late.lock"));
    let cfg = config(&t, &[&first]);
    // `late` is not configured yet, but has a missed slot: it runs as soon as a reload adds it.
    fs::create_dir_all(t.p("state")).unwrap();
    fs::write(
        t.p("state/state.json"),
        r#"{"version":1,"jobs":{"late":{"covered_until":"2000-01-01T00:00:00Z"}}}"#,
    )
    .unwrap();
    let mut d = Bm::spawn_verbose(&cfg, &["daemon"]);
    wait_until(Duration::from_secs(30), "the daemon to start", || {
        d.full_log().contains("daemon started")
    });
    ConfigBuilder::new()
        .cron_schedule("0 3 * * *")
        .pid_file_dir(t.p("r2"))
        .state_dir(t.p("state2"))
        .jobs([&first, &late])
        .write(&cfg);
    kill(Pid::from_raw(d.pid() as i32), Signal::SIGHUP).unwrap();
    let runs = || -> u64 {
        fs::read(t.p("state/state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["jobs"]["late"]["runs"].as_u64())
            .unwrap_or(0)
    };
    wait_until(
        Duration::from_secs(30),
        "the added job's run to be recorded in the daemon's state_dir",
        || runs() >= 1,
    );
    let out = d.full_log();
    assert!(out.contains("take effect at the next restart"), "{out}");
    assert_eq!(fs::read_to_string(t.p("dst-late/file")).unwrap(), "data\n");
    assert!(
        t.p("r/jobs/late.run").exists(),
        "run lock next to the pid file"
    );
    assert!(t.p("r/backupmanager.pid").exists());
    assert!(!t.p("r2").exists(), "{out}");
    assert!(!t.p("state2").exists(), "{out}");
    kill(Pid::from_raw(d.pid() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(d.wait(LONG), OK, "{}", d.log());
    assert!(!t.p("state2").exists());
}
