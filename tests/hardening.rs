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
