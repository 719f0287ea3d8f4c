//! [`Bm`]: a running `backupmanager` (the real binary) owned by the test. It logs JSON to a file
//! next to the config; dropping it stops it and every process under it, by pid.
//!
//! Must not: signal anything it did not start or find below the process it started.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use super::procfs::{descendants, pid_alive, Stat};

pub const BIN: &str = env!("CARGO_BIN_EXE_backupmanager");

/// Exit codes: success, failure, blocked (gave up waiting for a blocker).
pub const OK: i32 = 0;
pub const FAILED: i32 = 1;
pub const BLOCKED: i32 = 75;

/// Only so a broken run cannot hang the suite; never a speed expectation.
pub const LONG: Duration = Duration::from_secs(120);

/// Numbers the log files of one test binary.
static LOG_SEQ: AtomicUsize = AtomicUsize::new(0);

pub struct Bm {
    child: Child,
    log: PathBuf,
    code: Option<i32>,
}

impl Bm {
    /// `backupmanager --config CFG --log-format json --log-level info ARGS`; stdout discarded,
    /// stderr (the log) to `<cfg dir>/bm.N.log`.
    pub fn spawn(cfg: &Path, args: &[&str]) -> Bm {
        Bm::start(cfg, args, "info", false)
    }

    /// `run-job JOB ARGS`, as [`Bm::spawn`].
    pub fn run_job(cfg: &Path, job: &str, args: &[&str]) -> Bm {
        let mut all = vec!["run-job", job];
        all.extend_from_slice(args);
        Bm::spawn(cfg, &all)
    }

    /// As [`Bm::spawn`] with `--log-level debug`, and stdout into the same file as stderr (all
    /// the process prints, in order).
    pub fn spawn_verbose(cfg: &Path, args: &[&str]) -> Bm {
        Bm::start(cfg, args, "debug", true)
    }

    /// As [`Bm::spawn`], with `dir` first on its `PATH` (a particular version of a tool).
    pub fn spawn_with_path(cfg: &Path, args: &[&str], dir: &Path) -> Bm {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        let path = std::env::join_paths(dirs).unwrap();
        Bm::start_env(cfg, args, "info", false, &[("PATH", path)], None, &[])
    }

    /// As [`Bm::spawn`], with these variables set in its environment.
    pub fn spawn_env(cfg: &Path, args: &[&str], env: &[(&str, std::ffi::OsString)]) -> Bm {
        Bm::start_env(cfg, args, "info", false, env, None, &[])
    }

    /// As [`Bm::spawn`], with these variables removed from its environment.
    pub fn spawn_without(cfg: &Path, args: &[&str], unset: &[&str]) -> Bm {
        Bm::start_env(cfg, args, "info", false, &[], None, unset)
    }

    /// `run-job JOB ARGS` as [`Bm::run_job`], inside network namespace `ns` (`ip netns exec`
    /// execs, so the pid is still backupmanager's).
    pub fn run_job_in_netns(ns: &str, cfg: &Path, job: &str, args: &[&str]) -> Bm {
        let mut all = vec!["run-job", job];
        all.extend_from_slice(args);
        Bm::start_env(cfg, &all, "info", false, &[], Some(ns), &[])
    }

    fn start(cfg: &Path, args: &[&str], level: &str, stdout_too: bool) -> Bm {
        Bm::start_env(cfg, args, level, stdout_too, &[], None, &[])
    }

    fn start_env(
        cfg: &Path,
        args: &[&str],
        level: &str,
        stdout_too: bool,
        env: &[(&str, std::ffi::OsString)],
        netns: Option<&str>,
        unset: &[&str],
    ) -> Bm {
        let n = LOG_SEQ.fetch_add(1, Ordering::SeqCst);
        let log = cfg.with_file_name(format!("bm.{n}.log"));
        let file = fs::File::create(&log).unwrap();
        let stdout = if stdout_too {
            Stdio::from(file.try_clone().unwrap())
        } else {
            Stdio::null()
        };
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        for (k, v) in env {
            cmd.env(k, v);
        }
        for k in unset {
            cmd.env_remove(k);
        }
        let child = cmd
            .arg("--config")
            .arg(cfg)
            .args(["--log-format", "json", "--log-level", level])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("BACKUPMANAGER_CONFIG")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(file)
            .spawn()
            .expect("spawn backupmanager");
        Bm {
            child,
            log,
            code: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9 of the process and of every process below it (a host that died at once).
    pub fn kill9_tree(&mut self) {
        let tree = descendants(self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for p in tree {
            if pid_alive(p) {
                let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
            }
        }
        let _ = self.try_code();
    }

    /// The exit code (128 + signal for a killed process) once it has ended.
    pub fn try_code(&mut self) -> Option<i32> {
        if self.code.is_none() {
            if let Some(st) = self.child.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                self.code = Some(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
            }
        }
        self.code
    }

    /// The exit code; panics (with the log) if it does not end within `limit`.
    pub fn wait(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(c) = self.try_code() {
                return c;
            }
            if Instant::now() >= deadline {
                panic!(
                    "backupmanager did not end within {limit:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything written to the log file so far.
    pub fn full_log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 40 lines of the log, for failure messages.
    pub fn log(&self) -> String {
        let text = self.full_log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The JSON log events so far.
    pub fn events(&self) -> Vec<Value> {
        self.full_log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn messages(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| e["message"].as_str().map(str::to_string))
            .collect()
    }

    /// True if a logged message contains `needle`.
    pub fn saw(&self, needle: &str) -> bool {
        self.messages().iter().any(|m| m.contains(needle))
    }

    /// How many logged messages contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.messages()
            .iter()
            .filter(|m| m.contains(needle))
            .count()
    }

    /// The first event whose message contains `needle`.
    pub fn event(&self, needle: &str) -> Option<Value> {
        self.events()
            .into_iter()
            .find(|e| e["message"].as_str().is_some_and(|m| m.contains(needle)))
    }

    /// The timestamp of the first message containing `needle`.
    pub fn time_of(&self, needle: &str) -> jiff::Timestamp {
        let e = self
            .event(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in log:\n{}", self.log()));
        e["timestamp"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap_or_else(|err| panic!("timestamp of {e}: {err}"))
    }
}

impl Drop for Bm {
    /// SIGTERM (after SIGCONT if it is stopped), up to 10 s to end, then SIGKILL for it and for
    /// every process that was below it.
    fn drop(&mut self) {
        if self.try_code().is_some() {
            return;
        }
        let pid = self.pid();
        let tree = descendants(pid);
        if Stat::read(pid).is_some_and(|s| s.state == 'T') {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
        }
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

/// `backupmanager --config CFG --log-format json ARGS`, run to its end (stdin empty).
pub fn bm_json(cfg: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .arg("--log-format")
        .arg("json")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run backupmanager")
}

/// [`bm_json`] that must succeed: its stdout (the panic shows both streams).
pub fn bm_ok(cfg: &Path, args: &[&str]) -> String {
    let out = bm_json(cfg, args);
    assert!(
        out.status.success(),
        "backupmanager {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `snapshots JOB --format json`: the restore points, newest first.
pub fn snapshots_json(cfg: &Path, job: &str) -> Vec<Value> {
    let text = bm_ok(cfg, &["snapshots", job, "--format", "json"]);
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}
