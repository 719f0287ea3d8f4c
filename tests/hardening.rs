//! Regressions of the hardening issue, end to end: the real binary, real rsync, real signals and
//! the private sshd on 127.0.0.1 (tests/support). One test per item; each names the item.
//!
//! Every process a test starts is owned by a guard ([`Bm`], `Sshd`) that stops it by pid on drop.
//! Margins are wide; a bound is only asserted where the bound is the promise (item 3).
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::*;

/// A short scratch directory under /tmp (ssh ControlPath limits).
fn tmp() -> Scratch {
    require_root_tools();
    Scratch::short("bmh")
}

/// `<tmp>/bm.yaml` with runtime dir `<tmp>/r`, state dir `<tmp>/state` and `jobs`.
fn config(t: &Scratch, jobs: &[&JobBuilder]) -> PathBuf {
    ConfigBuilder::in_scratch(t)
        .jobs(jobs.iter().copied())
        .write(t.p("bm.yaml"))
}

/// A job copying `<tmp>/src/` to `<tmp>/dst/` with these rsync `opts`.
fn local_sync(t: &Scratch, id: &str, opts: &[&str]) -> JobBuilder {
    JobBuilder::new(id).sync(t.s("src/"), t.s("dst/"), opts)
}

/// A local sync of `<tmp>/src/` (one 8 MiB file) to `<tmp>/dst/`, paced to last ~16 s.
fn slow_local_sync(t: &Scratch, id: &str) -> JobBuilder {
    big_file(&t.p("src/big.bin"), 8 << 20);
    local_sync(t, id, &["-a", "--bwlimit=500"])
}

fn rsyncs_under(pid: u32) -> Vec<u32> {
    procfs::descendants_named(pid, "rsync")
}

/// Reaching the test sshd: root@127.0.0.1:PORT.
fn remote(sshd: &Sshd) -> Remote {
    Remote::new("root", "127.0.0.1", sshd.port())
}

/// A job with the test sshd's key and known_hosts.
fn ssh_job(sshd: &Sshd, id: &str) -> JobBuilder {
    JobBuilder::new(id)
        .identity_file(sshd.client_key())
        .known_hosts_file(sshd.known_hosts())
}

/// A `lock_files` entry on the test sshd.
fn remote_lock(sshd: &Sshd, path: &Path) -> LockFile {
    LockFile::remote(path).on(&remote(sshd))
}

// ---------------------------------------------------------------------------------------------
// Item 3: a run that cannot refresh its lock stops before its lease ends

#[test]
fn unreachable_lock_host_stops_the_run_before_the_lease_ends() {
    let t = tmp();
    let mut sshd = Sshd::start();
    let lock = t.p("remote-locks/j.lock");
    let lease = Duration::from_secs(6);
    let job = slow_local_sync(&t, "j")
        .identity_file(sshd.client_key())
        .known_hosts_file(sshd.known_hosts())
        .lock_heartbeat("1s")
        .stale_after("6s")
        .lock(remote_lock(&sshd, &lock));
    let cfg = config(&t, &[&job]);
    let mut bm = Bm::spawn(&cfg, &["run-job", "j"]);
    wait_until(Duration::from_secs(60), "rsync runs", || {
        !rsyncs_under(bm.pid()).is_empty()
    });
    assert!(lock.exists(), "the remote lock is held while rsync runs");
    // Let one heartbeat confirm the lock, then take the host away (listener, sessions and with
    // them the run's ControlMaster connection): from now on no refresh can succeed.
    std::thread::sleep(Duration::from_millis(1500));
    let rsyncs = rsyncs_under(bm.pid());
    let cut = Instant::now();
    sshd.stop();
    wait_until(lease, "rsync is stopped before the lease can end", || {
        rsyncs.iter().all(|p| !pid_alive(*p))
    });
    let stopped_after = cut.elapsed();
    let code = bm.wait(LONG);
    assert_ne!(code, 0, "{}", bm.log());
    // RunError::LockLost (kind lock-lost), as the run's end reports it.
    assert!(
        bm.saw("run failed: a lock file of this run was removed or taken over"),
        "the run fails as lock-lost:\n{}",
        bm.log()
    );
    assert!(
        stopped_after < lease,
        "stopped {stopped_after:?} after the cut, lease {lease:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 4: Ctrl-Z stops rsync's group with the runner; SIGCONT re-verifies the locks first

/// Bytes under `dir` (rsync's temporary file included).
fn bytes_under(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| {
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                bytes_under(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// A run-job with a local lock and a slow local rsync, stopped by SIGTSTP: returns it once it
/// and every rsync of its are stopped, and rsync's output no longer grows.
fn stopped_run(t: &Scratch) -> (Bm, Vec<u32>) {
    let lock = t.p("locks/j.lock");
    let job = slow_local_sync(t, "j")
        .lock_heartbeat("1s")
        .stale_after("60s")
        .lock_local(&lock);
    let cfg = config(t, &[&job]);
    let bm = Bm::spawn(&cfg, &["run-job", "j"]);
    wait_until(Duration::from_secs(60), "rsync writes", || {
        !rsyncs_under(bm.pid()).is_empty() && bytes_under(&t.p("dst")) > 0
    });
    let rsyncs = rsyncs_under(bm.pid());
    kill(Pid::from_raw(bm.pid() as i32), Signal::SIGTSTP).unwrap();
    wait_until(Duration::from_secs(10), "backupmanager is stopped", || {
        procfs::state(bm.pid()) == 'T'
    });
    wait_until(Duration::from_secs(10), "every rsync is stopped", || {
        rsyncs.iter().all(|p| procfs::state(*p) == 'T')
    });
    let before = bytes_under(&t.p("dst"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        bytes_under(&t.p("dst")),
        before,
        "rsync wrote while stopped"
    );
    assert!(lock.exists());
    (bm, rsyncs)
}

#[test]
fn ctrl_z_stops_rsync_with_the_runner_and_sigcont_resumes_both() {
    let t = tmp();
    let (mut bm, rsyncs) = stopped_run(&t);
    kill(Pid::from_raw(bm.pid() as i32), Signal::SIGCONT).unwrap();
    wait_until(Duration::from_secs(10), "rsync continues", || {
        rsyncs.iter().all(|p| procfs::state(*p) != 'T')
    });
    let code = bm.wait(LONG);
    assert_eq!(code, 0, "{}", bm.log());
    assert!(!t.p("locks/j.lock").exists(), "lock released");
    assert_eq!(
        fs::read(t.p("src/big.bin")).unwrap(),
        fs::read(t.p("dst/big.bin")).unwrap()
    );
}

#[test]
fn a_lock_lost_while_stopped_aborts_the_run_without_continuing_rsync() {
    let t = tmp();
    let (mut bm, rsyncs) = stopped_run(&t);
    // While we are stopped, the lock is broken and taken by someone else.
    let lock = t.p("locks/j.lock");
    fs::write(&lock, "someone else\n").unwrap();
    let before = bytes_under(&t.p("dst"));
    kill(Pid::from_raw(bm.pid() as i32), Signal::SIGCONT).unwrap();
    let code = bm.wait(LONG);
    assert_ne!(code, 0, "{}", bm.log());
    assert!(
        bm.saw("run failed: a lock file of this run was removed or taken over"),
        "{}",
        bm.log()
    );
    assert!(rsyncs.iter().all(|p| !pid_alive(*p)), "rsync is gone");
    // rsync never ran again: nothing new was written (its temporary file may be removed).
    assert!(
        bytes_under(&t.p("dst")) <= before,
        "rsync wrote after the lock was lost"
    );
    assert_eq!(fs::read_to_string(&lock).unwrap(), "someone else\n");
}

// ---------------------------------------------------------------------------------------------
// Item 9: a persisted schedule position in the future (clock stepped back) resumes from now

#[test]
fn daemon_resumes_from_now_when_the_saved_position_is_in_the_future() {
    let t = tmp();
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/f"), "x").unwrap();
    let cfg = config(&t, &[&local_sync(&t, "j", &[])]);
    // Written while the clock was two days ahead.
    let ahead = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48);
    fs::create_dir_all(t.p("state")).unwrap();
    fs::write(
        t.p("state/state.json"),
        format!("{{\"version\":1,\"jobs\":{{\"j\":{{\"covered_until\":\"{ahead}\"}}}}}}"),
    )
    .unwrap();
    let mut d = Bm::spawn(&cfg, &["daemon"]);
    wait_until(
        Duration::from_secs(30),
        "the future position is reported",
        || d.saw("is in the future"),
    );
    let warn = d.event("is in the future").unwrap();
    assert_eq!(warn["level"], "WARN", "{warn}");
    assert_eq!(warn["job_id"], "j", "{warn}");
    assert_eq!(warn["covered_until"], ahead.to_string(), "{warn}");
    wait_until(
        Duration::from_secs(30),
        "state.json resumes from now",
        || {
            let st: Value = fs::read(t.p("state/state.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            st["jobs"]["j"]["covered_until"]
                .as_str()
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .is_some_and(|c| c <= jiff::Timestamp::now())
        },
    );
    kill(Pid::from_raw(d.pid() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(d.wait(Duration::from_secs(30)), 0, "{}", d.log());
}

// ---------------------------------------------------------------------------------------------
// Item 23: `status` changes nothing

#[test]
fn status_leaves_a_corrupt_state_file_alone_and_says_it_is_unreadable() {
    let t = tmp();
    let cfg = config(
        &t,
        &[&JobBuilder::new("j").sync("/nonexistent/", "/tmp/x/", &[])],
    );
    fs::create_dir_all(t.p("state")).unwrap();
    let garbage = b"{\"version\":1,\"jobs\":{ truncated";
    fs::write(t.p("state/state.json"), garbage).unwrap();
    let listing = || {
        let mut v: Vec<_> = fs::read_dir(t.p("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = listing();
    for format in ["text", "json"] {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .args(["status", "--format", format])
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(listing(), before, "status moved or added files");
        assert_eq!(fs::read(t.p("state/state.json")).unwrap(), garbage);
        assert!(
            stderr.contains("is unreadable") && stderr.contains("state.json"),
            "{format}: stderr names the problem:\n{stderr}"
        );
        if format == "json" {
            let v: Value = serde_json::from_str(&stdout).unwrap();
            assert!(
                v["state_error"].as_str().unwrap().contains("is unreadable"),
                "{v}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Item 17: a pipe whose reader has gone

/// The write end of a pipe whose read end is already closed: every write fails with EPIPE.
fn broken_pipe() -> Stdio {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    Stdio::from(write)
}

#[test]
fn a_run_whose_stderr_reader_is_gone_completes_and_releases_its_lock() {
    let t = tmp();
    fs::create_dir_all(t.p("src")).unwrap();
    big_file(&t.p("src/f.bin"), 1 << 20);
    let lock = t.p("locks/j.lock");
    let cfg = config(&t, &[&local_sync(&t, "j", &["-av"]).lock_local(&lock)]);
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .args(["run-job", "j"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(broken_pipe())
        .stderr(broken_pipe())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LONG;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "run-job hangs");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!lock.exists(), "lock released");
    assert_eq!(
        fs::read(t.p("src/f.bin")).unwrap(),
        fs::read(t.p("dst/f.bin")).unwrap()
    );
}

#[test]
fn status_into_a_closed_pipe_ends_quietly() {
    let t = tmp();
    let cfg = config(
        &t,
        &[&JobBuilder::new("j").sync("/nonexistent/", "/tmp/x/", &[])],
    );
    for format in ["text", "json"] {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .args(["status", "--format", format])
            .env_remove("RUST_LOG")
            .stdout(broken_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.is_empty(),
            "{format}: no message, no panic:\n{stderr}"
        );
        assert_ne!(out.status.code(), Some(101), "{format}: no panic");
    }
}

// ---------------------------------------------------------------------------------------------
// Item 18: runtime dirs for a dry run

#[test]
fn a_dry_run_of_a_remote_job_before_any_real_run_works() {
    let t = tmp();
    let sshd = Sshd::start();
    let _master = Master::of(&sshd, t.p("r/ssh"));
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/f"), "x").unwrap();
    let job = ssh_job(&sshd, "j")
        .remote(&remote(&sshd))
        .lock(remote_lock(&sshd, &t.p("remote-locks/j.lock")))
        .sync(t.s("src/"), t.s("dst/"), &[]);
    let cfg = config(&t, &[&job]);
    assert!(!t.p("r").exists(), "no runtime dir yet");
    let mut bm = Bm::spawn(&cfg, &["run-job", "j", "--dry-run"]);
    let code = bm.wait(LONG);
    assert_eq!(code, 0, "{}", bm.log());
    assert!(!t.p("dst/f").exists(), "a dry run copies nothing");
}

// ---------------------------------------------------------------------------------------------
// Item 11: runtime and state dirs are not trusted blindly

fn local_job(t: &Scratch) -> PathBuf {
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/f"), "x").unwrap();
    config(t, &[&local_sync(t, "j", &[])])
}

#[test]
fn a_runtime_dir_owned_by_another_user_is_refused() {
    let t = tmp();
    let cfg = local_job(&t);
    fs::create_dir(t.p("r")).unwrap();
    // nobody (65534) got there first.
    std::os::unix::fs::chown(t.p("r"), Some(65534), Some(65534)).unwrap();
    let mut bm = Bm::spawn(&cfg, &["run-job", "j"]);
    assert_ne!(bm.wait(LONG), 0, "{}", bm.log());
    assert!(
        bm.saw(&format!("{}: is owned by uid 65534", t.p("r").display())),
        "{}",
        bm.log()
    );
    assert!(!t.p("r/jobs").exists(), "nothing created inside it");
    assert!(!t.p("dst").exists(), "nothing copied");

    // The daemon refuses it too (its pid file lives there).
    let mut d = Bm::spawn(&cfg, &["daemon"]);
    assert_ne!(d.wait(LONG), 0, "{}", d.log());
    assert!(
        d.full_log().contains("is owned by uid 65534"),
        "{}",
        d.log()
    );
    assert!(!t.p("r/backupmanager.pid").exists());
}

#[test]
fn a_symlink_planted_at_the_run_lock_is_not_followed() {
    let t = tmp();
    let cfg = local_job(&t);
    let victim = t.p("victim");
    fs::write(&victim, "precious\n").unwrap();
    fs::create_dir_all(t.p("r/jobs")).unwrap();
    std::os::unix::fs::symlink(&victim, t.p("r/jobs/j.run")).unwrap();
    let mut bm = Bm::spawn(&cfg, &["run-job", "j"]);
    assert_ne!(bm.wait(LONG), 0, "{}", bm.log());
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(
        bm.saw("j.run is a symbolic link"),
        "a clear message:\n{}",
        bm.log()
    );
    assert!(!t.p("dst").exists(), "nothing copied");
}

// ---------------------------------------------------------------------------------------------
// Item 12: one ControlMaster per target AND settings

#[test]
fn a_job_with_an_unauthorized_key_does_not_ride_another_jobs_master() {
    let t = tmp();
    let sshd = Sshd::start();
    let master = Master::of(&sshd, t.p("r/ssh"));
    let stranger = t.p("stranger_key");
    let st = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "not-authorized",
            "-f",
        ])
        .arg(&stranger)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let job = |id: &str, key: &Path| {
        JobBuilder::new(id)
            .identity_file(key)
            .known_hosts_file(sshd.known_hosts())
            .lock(remote_lock(&sshd, &t.p(&format!("remote-locks/{id}.lock"))))
            .sync(t.s("src/"), t.s(&format!("dst-{id}/")), &["-a"])
    };
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/f"), "x").unwrap();
    let cfg = config(&t, &[&job("a", &sshd.client_key()), &job("b", &stranger)]);
    let mut a = Bm::spawn(&cfg, &["run-job", "a"]);
    let code_a = a.wait(LONG);
    assert_eq!(code_a, 0, "{}", a.log());
    assert!(
        master.pid().is_some(),
        "job a leaves its master running (ControlPersist)"
    );

    let mut b = Bm::spawn(&cfg, &["run-job", "b"]);
    let code_b = b.wait(LONG);
    assert_ne!(
        code_b,
        0,
        "b must not get in through a's master:\n{}",
        b.log()
    );
    assert!(
        b.saw("authentication to root@127.0.0.1") && b.saw("was refused"),
        "b fails with the auth error:\n{}",
        b.log()
    );
    assert!(!t.p("remote-locks/b.lock").exists());
    assert!(!t.p("dst-b").exists());
}
