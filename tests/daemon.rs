//! The daemon as a real process: schedules, signals, the pid file, reloads, missed slots and the
//! systemd notify protocol. Each test runs its own daemon on its own config in a tempdir.
//!
//! Waiting for a cron slot costs up to a minute; only `runs_at_the_next_minute` does that. Missed
//! slots are tested by seeding the state file instead of waiting. Nothing here asserts on speed:
//! the margins are wide.

mod support;

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::{children_of, pid_alive, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_backupmanager");

struct Bed {
    dir: tempfile::TempDir,
}

impl Bed {
    fn new() -> Bed {
        let dir = tempfile::Builder::new()
            .prefix("bmd")
            .tempdir_in("/tmp")
            .unwrap();
        fs::create_dir_all(dir.path().join("src")).unwrap();
        fs::write(dir.path().join("src/file"), "data").unwrap();
        Bed { dir }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.p(rel).to_string_lossy().into_owned()
    }

    /// A config with the given jobs (YAML list items, indented by 2).
    fn config(&self, jobs: &str) -> PathBuf {
        let text = format!(
            "pid_file_dir: {run}\nstate_dir: {state}\nshutdown_timeout: 20s\njobs:\n{jobs}",
            run = self.s("run"),
            state = self.s("state"),
        );
        let path = self.p("c.yaml");
        fs::write(&path, text).unwrap();
        path
    }

    fn job(&self, id: &str, schedule: &str, extra_opts: &str) -> String {
        format!(
            "  - id: {id}\n    cron_schedule: '{schedule}'\n    lock_files: [{{type: local, path: {lock}}}]\n    syncs:\n      - source: {src}/\n        dest: {dst}/\n        opts: [\"-a\"{extra_opts}]\n",
            lock = self.s(&format!("locks/{id}")),
            src = self.s("src"),
            dst = self.s(&format!("dst-{id}")),
        )
    }

    fn seed_state(&self, job: &str, covered_until: &str) {
        fs::create_dir_all(self.p("state")).unwrap();
        fs::write(
            self.p("state/state.json"),
            format!("{{\"version\":1,\"jobs\":{{\"{job}\":{{\"covered_until\":\"{covered_until}\"}}}}}}"),
        )
        .unwrap();
    }

    fn state(&self) -> serde_json::Value {
        fs::read(self.p("state/state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    fn runs(&self, job: &str) -> u64 {
        self.state()["jobs"][job]["runs"].as_u64().unwrap_or(0)
    }
}

/// A daemon process; killed (SIGKILL) on drop if still running.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(bed: &Bed, config: &Path, notify: Option<&Path>) -> Daemon {
        let log = bed.p(&format!(
            "daemon-{}.log",
            Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id())
        ));
        let mut cmd = Command::new(BIN);
        cmd.args(["daemon", "--log-format", "json", "--config"])
            .arg(config)
            .env_remove("BACKUPMANAGER_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        if let Some(n) = notify {
            cmd.env("NOTIFY_SOCKET", n);
        }
        Daemon {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn wait_log(&self, timeout: Duration, needle: &str) {
        wait_until(
            timeout,
            &format!("daemon log to contain {needle:?}"),
            || self.log().contains(needle),
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn rsync_children(pid: u32) -> Vec<u32> {
    // rsync runs under the daemon (possibly below an intermediate child); collect the subtree.
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for c in children_of(p) {
            if fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == "rsync") {
                out.push(c);
            }
            frontier.push(c);
        }
    }
    out
}

#[test]
fn runs_at_the_next_minute() {
    let bed = Bed::new();
    let cfg = bed.config(&bed.job("every_minute", "* * * * *", ""));
    let d = Daemon::start(&bed, &cfg, None);
    d.wait_log(Duration::from_secs(10), "daemon started");
    assert_eq!(
        bed.runs("every_minute"),
        0,
        "a new job does not catch up on start"
    );
    wait_until(
        Duration::from_secs(90),
        "the job to run at the next minute",
        || bed.runs("every_minute") >= 1,
    );
    assert_eq!(
        fs::read_to_string(bed.p("dst-every_minute/file")).unwrap(),
        "data"
    );
    assert_eq!(
        bed.state()["jobs"]["every_minute"]["last_run"]["result"],
        "success"
    );
    assert!(
        d.log().contains("slot ") && d.log().contains("due"),
        "{}",
        d.log()
    );
}

#[test]
fn a_second_daemon_is_refused_and_a_stale_pid_file_is_not() {
    let bed = Bed::new();
    let cfg = bed.config(&bed.job("j", "0 0 1 1 *", ""));
    // A pid file left by a crash (nobody holds its lock) does not block a start.
    fs::create_dir_all(bed.p("run")).unwrap();
    fs::write(bed.p("run/backupmanager.pid"), "999999\n").unwrap();
    let mut first = Daemon::start(&bed, &cfg, None);
    first.wait_log(Duration::from_secs(10), "daemon started");
    assert_eq!(
        fs::read_to_string(bed.p("run/backupmanager.pid"))
            .unwrap()
            .trim(),
        first.pid().to_string()
    );

    let out = Command::new(BIN)
        .args(["daemon", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("already running (pid {}", first.pid())),
        "{err}"
    );

    first.signal(Signal::SIGTERM);
    assert_eq!(first.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(
        !bed.p("run/backupmanager.pid").exists(),
        "the pid file is removed on a clean stop"
    );
}

#[test]
fn invalid_config_exits_78_with_positions() {
    let bed = Bed::new();
    let cfg = bed.config(
        "  - id: x\n    cron_schedule: '61 * * * *'\n    syncs: [{source: /, dest: /tmp/x/}]\n",
    );
    let mut d = Daemon::start(&bed, &cfg, None);
    assert_eq!(d.wait_exit(Duration::from_secs(20)), Some(78));
    assert!(
        d.log()
            .contains("c.yaml:6:21: error: jobs[x].cron_schedule"),
        "{}",
        d.log()
    );
}

#[test]
fn missed_slots_run_once_after_a_restart_or_are_skipped() {
    let bed = Bed::new();
    // A yearly job last handled two years ago: two slots were missed while "down".
    let jobs = format!(
        "{}{}",
        bed.job("yearly", "0 0 1 1 *", ""),
        bed.job("yearly_skip", "0 0 1 1 *", "")
            .replace("    syncs:", "    on_missed: skip\n    syncs:")
    );
    let cfg = bed.config(&jobs);
    let two_years_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2 * 366 * 24);
    fs::create_dir_all(bed.p("state")).unwrap();
    fs::write(
        bed.p("state/state.json"),
        format!(
            "{{\"version\":1,\"jobs\":{{\"yearly\":{{\"covered_until\":\"{t}\"}},\"yearly_skip\":{{\"covered_until\":\"{t}\"}}}}}}",
            t = two_years_ago
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&bed, &cfg, None);
    wait_until(
        Duration::from_secs(30),
        "the missed slot to run once",
        || bed.runs("yearly") == 1,
    );
    d.wait_log(Duration::from_secs(10), "dropping them");
    // Give it a moment: a second run would be a bug.
    std::thread::sleep(Duration::from_secs(2));
    let st = bed.state();
    assert_eq!(st["jobs"]["yearly"]["runs"], 1);
    assert!(
        st["jobs"]["yearly"]["missed"].as_u64().unwrap() >= 1,
        "{st}"
    );
    assert_eq!(
        st["jobs"]["yearly_skip"]["runs"].as_u64().unwrap_or(0),
        0,
        "{st}"
    );
    assert!(
        st["jobs"]["yearly_skip"]["missed"].as_u64().unwrap() >= 2,
        "{st}"
    );
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(20)), Some(0));

    // Restarted right away: the slot is covered, nothing runs again.
    let mut d = Daemon::start(&bed, &cfg, None);
    d.wait_log(Duration::from_secs(10), "daemon started");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(bed.runs("yearly"), 1, "a slot never runs twice");
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(20)), Some(0));
}

#[test]
fn reboot_jobs_run_once_at_start() {
    let bed = Bed::new();
    let cfg = bed.config(&bed.job("at_boot", "@reboot", ""));
    let mut d = Daemon::start(&bed, &cfg, None);
    wait_until(Duration::from_secs(30), "the @reboot job to run", || {
        bed.runs("at_boot") == 1
    });
    d.signal(Signal::SIGHUP);
    d.wait_log(Duration::from_secs(10), "configuration reloaded");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(bed.runs("at_boot"), 1, "a reload is not a reboot");
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(20)), Some(0));
}

#[test]
fn sigterm_during_a_slow_rsync_stops_cleanly_and_notifies_systemd() {
    let bed = Bed::new();
    // 8 MiB at 256 KiB/s: about half a minute, far longer than the test needs.
    let data: Vec<u8> = (0..8 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(bed.p("src/big"), data).unwrap();
    let cfg = bed.config(&bed.job("slow", "0 0 1 1 *", ", \"--bwlimit=256\""));
    // Seed a missed slot so the job starts right away.
    bed.seed_state("slow", "2000-01-01T00:00:00Z");
    let sock_path = bed.p("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut d = Daemon::start(&bed, &cfg, Some(&sock_path));

    let ready = recv(&sock);
    assert!(
        ready.contains("READY=1") && ready.contains("STATUS="),
        "{ready}"
    );

    let lock = bed.p("locks/slow");
    wait_until(Duration::from_secs(30), "the lock file to be taken", || {
        lock.exists()
    });
    let mut rsyncs = Vec::new();
    wait_until(Duration::from_secs(30), "rsync to run", || {
        rsyncs = rsync_children(d.pid());
        !rsyncs.is_empty()
    });
    for r in &rsyncs {
        let env = fs::read(format!("/proc/{r}/environ")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&env).contains("NOTIFY_SOCKET"),
            "children never inherit NOTIFY_SOCKET"
        );
    }
    let lock_text = fs::read_to_string(&lock).unwrap();
    assert!(
        lock_text.contains("\"job\":\"slow\"")
            && lock_text.contains(&format!("\"pid\":{}", d.pid())),
        "{lock_text}"
    );

    // `status` sees the daemon and the run in progress (read from /proc/locks, without locking).
    let out = Command::new(BIN)
        .args(["status", "--format", "json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["daemon"]["pid"], d.pid().to_string(), "{st}");
    assert!(
        st["jobs"][0]["running"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {}", d.pid())),
        "{st}"
    );

    // A reload mid-run: RELOADING=1 then READY=1; the run carries on.
    d.signal(Signal::SIGHUP);
    let mut msgs = Vec::new();
    while !msgs.iter().any(|m: &String| m.contains("READY=1")) {
        msgs.push(recv(&sock));
    }
    assert!(msgs.iter().any(|m| m.contains("RELOADING=1")), "{msgs:?}");
    assert!(
        rsyncs.iter().all(|p| pid_alive(*p)),
        "a reload does not stop running jobs"
    );

    d.signal(Signal::SIGTERM);
    let code = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", d.log());
    // The datagrams sent before exit are still queued on our socket.
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut rest = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(rest.iter().any(|m| m.contains("STOPPING=1")), "{rest:?}");
    for r in &rsyncs {
        wait_until(Duration::from_secs(5), "rsync to be gone", || {
            !pid_alive(*r)
        });
    }
    assert!(!lock.exists(), "no lock of ours is left behind");
    assert!(d.log().contains("run cancelled"), "{}", d.log());
    assert!(!bed.p("run/backupmanager.pid").exists());
    assert_eq!(
        bed.state()["jobs"]["slow"]["last_run"]["result"],
        "cancelled"
    );
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_one_and_a_good_one_adds_jobs() {
    let bed = Bed::new();
    let cfg = bed.config(&bed.job("first", "0 0 1 1 *", ""));
    let sock_path = bed.p("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut d = Daemon::start(&bed, &cfg, Some(&sock_path));
    assert!(recv(&sock).contains("READY=1"));

    // Broken: unknown key and bad cron. The daemon logs both with file:line:col and keeps going.
    let good = fs::read_to_string(&cfg).unwrap();
    fs::write(
        &cfg,
        format!("{good}  - id: second\n    cron_schedule: '99 * * * *'\n    sycns: []\n"),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_log(Duration::from_secs(10), "keeping the running configuration");
    let log = d.log();
    assert!(
        log.contains("c.yaml:13:21: error: jobs[second].cron_schedule"),
        "{log}"
    );
    assert!(
        log.contains("c.yaml:14:5: error: jobs[second].sycns: unknown key `sycns`"),
        "{log}"
    );
    assert!(d.child.try_wait().unwrap().is_none(), "still running");

    // Good: adds a job.
    fs::write(
        &cfg,
        format!("{good}{}", bed.job("second", "*/5 * * * *", "")),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_log(Duration::from_secs(10), "added: [second]");
    let out = Command::new(BIN)
        .args(["next", "--config"])
        .arg(&cfg)
        .arg("second")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("second\t"));
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(20)), Some(0));
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("a notify message within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
