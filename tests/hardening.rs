//! Regressions of the hardening issue, end to end: the real binary, real rsync, real signals and
//! the private sshd on 127.0.0.1 (tests/support). One test per item; each names the item.
//!
//! Every process a test starts is owned by a guard ([`Bm`], `Sshd`) that stops it by pid on drop.
//! Margins are wide; a bound is only asserted where the bound is the promise (item 3).
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_backupmanager");
/// Only so a broken run cannot hang the suite; never a speed expectation.
const LONG: Duration = Duration::from_secs(120);

/// A short scratch directory under /tmp (ssh ControlPath limits).
struct Tmp {
    dir: tempfile::TempDir,
}

impl Tmp {
    fn new() -> Tmp {
        require_root_tools();
        let dir = tempfile::Builder::new()
            .prefix("bmh")
            .tempdir_in("/tmp")
            .unwrap();
        Tmp { dir }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// A YAML double-quoted scalar (a JSON string is one).
fn q(p: impl AsRef<Path>) -> String {
    serde_json::to_string(p.as_ref().to_str().unwrap()).unwrap()
}

/// A file of `len` pseudo-random bytes (rsync --bwlimit paces it).
fn big_file(path: &Path, len: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// `<tmp>/bm.yaml` with runtime dir `<tmp>/r`, state dir `<tmp>/state` and `jobs` (YAML list
/// items, already indented).
fn config(t: &Tmp, jobs: &str) -> PathBuf {
    let y = format!(
        "cron_schedule: '0 3 * * *'\npid_file_dir: {}\nstate_dir: {}\njobs:\n{jobs}",
        q(t.p("r")),
        q(t.p("state"))
    );
    let path = t.p("bm.yaml");
    fs::write(&path, y).unwrap();
    path
}

/// A local sync of `<tmp>/src/` (one 8 MiB file) to `<tmp>/dst/`, paced to last ~16 s.
fn slow_local_sync(t: &Tmp) -> String {
    big_file(&t.p("src/big.bin"), 8 << 20);
    format!(
        "    syncs:\n      - source: {}\n        dest: {}\n        opts: [\"-a\", \"--bwlimit=500\"]\n",
        q(format!("{}/", t.p("src").display())),
        q(format!("{}/", t.p("dst").display()))
    )
}

fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn rsyncs_under(pid: u32) -> Vec<u32> {
    descendants(pid)
        .into_iter()
        .filter(|p| comm(*p) == "rsync" && pid_alive(*p))
        .collect()
}

/// `/proc/PID/stat` state letter (`T` = stopped).
fn state_of(pid: u32) -> char {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next())
        })
        .unwrap_or('?')
}

/// A running `backupmanager` logging JSON to a file; dropping it stops it and its tree.
struct Bm {
    child: Child,
    log: PathBuf,
    code: Option<i32>,
}

impl Bm {
    fn spawn(cfg: &Path, args: &[&str]) -> Bm {
        Bm::spawn_with(cfg, args, Stdio::null())
    }

    fn spawn_with(cfg: &Path, args: &[&str], stdout: Stdio) -> Bm {
        let log = cfg.with_file_name(format!("bm.{}.log", args.join("_")));
        let child = Command::new(BIN)
            .arg("--config")
            .arg(cfg)
            .args(["--log-format", "json", "--log-level", "info"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn backupmanager");
        Bm {
            child,
            log,
            code: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn try_code(&mut self) -> Option<i32> {
        if self.code.is_none() {
            if let Some(st) = self.child.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                self.code = Some(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
            }
        }
        self.code
    }

    fn wait(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(c) = self.try_code() {
                return c;
            }
            if Instant::now() >= deadline {
                panic!(
                    "backupmanager did not end within {limit:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn events(&self) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn saw(&self, needle: &str) -> bool {
        self.events()
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains(needle)))
    }
}

impl Drop for Bm {
    fn drop(&mut self) {
        if self.try_code().is_some() {
            return;
        }
        let pid = self.pid();
        let tree = descendants(pid);
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.try_code().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for p in tree {
            if pid_alive(p) {
                let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
            }
        }
    }
}

/// Job lines reaching the test sshd: key and known_hosts.
fn ssh_lines(sshd: &Sshd) -> String {
    format!(
        "    identity_file: {}\n    known_hosts_file: {}\n",
        q(sshd.client_key()),
        q(sshd.known_hosts())
    )
}

/// A `lock_files` entry on the test sshd.
fn remote_lock(sshd: &Sshd, path: &Path) -> String {
    format!(
        "      - type: remote\n        host: 127.0.0.1\n        port: {}\n        user: root\n        path: {}\n",
        sshd.port(),
        q(path)
    )
}

// ---------------------------------------------------------------------------------------------
// Item 3: a run that cannot refresh its lock stops before its lease ends

#[test]
fn unreachable_lock_host_stops_the_run_before_the_lease_ends() {
    let t = Tmp::new();
    let mut sshd = Sshd::start();
    let lock = t.p("remote-locks/j.lock");
    let lease = Duration::from_secs(6);
    let jobs = format!(
        "  - id: j\n{}    lock_heartbeat: 1s\n    stale_after: 6s\n    lock_files:\n{}{}",
        ssh_lines(&sshd),
        remote_lock(&sshd, &lock),
        slow_local_sync(&t)
    );
    let cfg = config(&t, &jobs);
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
fn stopped_run(t: &Tmp) -> (Bm, Vec<u32>) {
    let lock = t.p("locks/j.lock");
    let jobs = format!(
        "  - id: j\n    lock_heartbeat: 1s\n    stale_after: 60s\n    lock_files:\n      - type: local\n        path: {}\n{}",
        q(&lock),
        slow_local_sync(t)
    );
    let cfg = config(t, &jobs);
    let bm = Bm::spawn(&cfg, &["run-job", "j"]);
    wait_until(Duration::from_secs(60), "rsync writes", || {
        !rsyncs_under(bm.pid()).is_empty() && bytes_under(&t.p("dst")) > 0
    });
    let rsyncs = rsyncs_under(bm.pid());
    kill(Pid::from_raw(bm.pid() as i32), Signal::SIGTSTP).unwrap();
    wait_until(Duration::from_secs(10), "backupmanager is stopped", || {
        state_of(bm.pid()) == 'T'
    });
    wait_until(Duration::from_secs(10), "every rsync is stopped", || {
        rsyncs.iter().all(|p| state_of(*p) == 'T')
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
    let t = Tmp::new();
    let (mut bm, rsyncs) = stopped_run(&t);
    kill(Pid::from_raw(bm.pid() as i32), Signal::SIGCONT).unwrap();
    wait_until(Duration::from_secs(10), "rsync continues", || {
        rsyncs.iter().all(|p| state_of(*p) != 'T')
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
    let t = Tmp::new();
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
    let t = Tmp::new();
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/f"), "x").unwrap();
    let jobs = format!(
        "  - id: j\n    syncs:\n      - source: {}\n        dest: {}\n",
        q(format!("{}/", t.p("src").display())),
        q(format!("{}/", t.p("dst").display()))
    );
    let cfg = config(&t, &jobs);
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
    let warn = d
        .events()
        .into_iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("is in the future"))
        })
        .unwrap();
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
    let t = Tmp::new();
    let cfg = config(
        &t,
        "  - id: j\n    syncs:\n      - source: /nonexistent/\n        dest: /tmp/x/\n",
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
    let t = Tmp::new();
    fs::create_dir_all(t.p("src")).unwrap();
    big_file(&t.p("src/f.bin"), 1 << 20);
    let lock = t.p("locks/j.lock");
    let jobs = format!(
        "  - id: j\n    lock_files:\n      - type: local\n        path: {}\n    syncs:\n      - source: {}\n        dest: {}\n        opts: [\"-av\"]\n",
        q(&lock),
        q(format!("{}/", t.p("src").display())),
        q(format!("{}/", t.p("dst").display()))
    );
    let cfg = config(&t, &jobs);
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
    let t = Tmp::new();
    let cfg = config(
        &t,
        "  - id: j\n    syncs:\n      - source: /nonexistent/\n        dest: /tmp/x/\n",
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

/// Closes the ControlMaster a run left under `<run_dir>/ssh` for `sshd`'s host with its key.
fn close_master(sshd: &Sshd, run_dir: &Path) {
    let cfg = backupmanager::transport::ssh::SshConfig {
        identity_file: Some(sshd.client_key()),
        known_hosts_file: Some(sshd.known_hosts()),
        control_dir: Some(run_dir.join("ssh")),
        ..Default::default()
    };
    backupmanager::transport::ssh::close_master(&sshd.target(), &cfg);
}

#[test]
fn a_dry_run_of_a_remote_job_before_any_real_run_works() {
    let t = Tmp::new();
    let sshd = Sshd::start();
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/f"), "x").unwrap();
    let jobs = format!(
        "  - id: j\n    host: 127.0.0.1\n    port: {}\n    user: root\n{}    lock_files:\n{}    syncs:\n      - source: {}\n        dest: {}\n",
        sshd.port(),
        ssh_lines(&sshd),
        remote_lock(&sshd, &t.p("remote-locks/j.lock")),
        q(format!("{}/", t.p("src").display())),
        q(format!("{}/", t.p("dst").display()))
    );
    let cfg = config(&t, &jobs);
    assert!(!t.p("r").exists(), "no runtime dir yet");
    let mut bm = Bm::spawn(&cfg, &["run-job", "j", "--dry-run"]);
    let code = bm.wait(LONG);
    close_master(&sshd, &t.p("r"));
    assert_eq!(code, 0, "{}", bm.log());
    assert!(!t.p("dst/f").exists(), "a dry run copies nothing");
}

// ---------------------------------------------------------------------------------------------
// Item 11: runtime and state dirs are not trusted blindly

fn local_job(t: &Tmp) -> PathBuf {
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/f"), "x").unwrap();
    let jobs = format!(
        "  - id: j\n    syncs:\n      - source: {}\n        dest: {}\n",
        q(format!("{}/", t.p("src").display())),
        q(format!("{}/", t.p("dst").display()))
    );
    config(t, &jobs)
}

#[test]
fn a_runtime_dir_owned_by_another_user_is_refused() {
    let t = Tmp::new();
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
    assert!(d.log().contains("is owned by uid 65534"), "{}", d.log());
    assert!(!t.p("r/backupmanager.pid").exists());
}

#[test]
fn a_symlink_planted_at_the_run_lock_is_not_followed() {
    let t = Tmp::new();
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
    let t = Tmp::new();
    let sshd = Sshd::start();
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
        format!(
            "  - id: {id}\n    identity_file: {}\n    known_hosts_file: {}\n    lock_files:\n{}    syncs:\n      - source: {}\n        dest: {}\n        opts: [\"-a\"]\n",
            q(key),
            q(sshd.known_hosts()),
            remote_lock(&sshd, &t.p(&format!("remote-locks/{id}.lock"))),
            q(format!("{}/", t.p("src").display())),
            q(format!("{}/", t.p(&format!("dst-{id}")).display()))
        )
    };
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/f"), "x").unwrap();
    let cfg = config(
        &t,
        &format!("{}{}", job("a", &sshd.client_key()), job("b", &stranger)),
    );
    let mut a = Bm::spawn(&cfg, &["run-job", "a"]);
    let code_a = a.wait(LONG);
    assert_eq!(code_a, 0, "{}", a.log());
    let master = backupmanager::transport::ssh::master_pid(
        &sshd.target(),
        &backupmanager::transport::ssh::SshConfig {
            identity_file: Some(sshd.client_key()),
            known_hosts_file: Some(sshd.known_hosts()),
            control_dir: Some(t.p("r/ssh")),
            ..Default::default()
        },
    );
    assert!(
        master.is_some(),
        "job a leaves its master running (ControlPersist)"
    );

    let mut b = Bm::spawn(&cfg, &["run-job", "b"]);
    let code_b = b.wait(LONG);
    close_master(&sshd, &t.p("r"));
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
