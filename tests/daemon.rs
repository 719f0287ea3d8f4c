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
use serde_json::json;
use support::{descendants, pid_alive, procfs, wait_until, ConfigBuilder, JobBuilder, Scratch};

const BIN: &str = env!("CARGO_BIN_EXE_backupmanager");

/// A short scratch directory under /tmp (the notify socket lives in it) with `src/file`.
struct Bed {
    dir: Scratch,
}

impl Bed {
    fn new() -> Bed {
        let dir = Scratch::short("bmd");
        fs::create_dir_all(dir.p("src")).unwrap();
        fs::write(dir.p("src/file"), "data").unwrap();
        Bed { dir }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.p(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.dir.s(rel)
    }

    /// The top level every test's config has.
    fn base(&self) -> ConfigBuilder {
        ConfigBuilder::new()
            .pid_file_dir(self.p("run"))
            .state_dir(self.p("state"))
            .shutdown_timeout("20s")
    }

    /// Writes `c.yaml` with the given jobs.
    fn config(&self, jobs: &[JobBuilder]) -> PathBuf {
        self.base().jobs(jobs).write(self.p("c.yaml"))
    }

    /// A job copying `src/` to `dst-ID/` with rsync `-a` and `extra_opts`, under lock `locks/ID`.
    fn job(&self, id: &str, schedule: &str, extra_opts: &[&str]) -> JobBuilder {
        let opts: Vec<&str> = ["-a"]
            .into_iter()
            .chain(extra_opts.iter().copied())
            .collect();
        JobBuilder::new(id)
            .cron_schedule(schedule)
            .lock_local(self.p(&format!("locks/{id}")))
            .sync(
                format!("{}/", self.s("src")),
                format!("{}/", self.s(&format!("dst-{id}"))),
                &opts,
            )
    }

    /// Writes a state file in which each of `jobs` is handled up to `covered_until`.
    fn seed_state(&self, jobs: &[&str], covered_until: &str) {
        let jobs: serde_json::Map<String, serde_json::Value> = jobs
            .iter()
            .map(|j| (j.to_string(), json!({ "covered_until": covered_until })))
            .collect();
        fs::create_dir_all(self.p("state")).unwrap();
        fs::write(
            self.p("state/state.json"),
            json!({ "version": 1, "jobs": jobs }).to_string(),
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
    // rsync runs under the daemon (possibly below an intermediate child); search the subtree.
    descendants(pid)
        .into_iter()
        .filter(|c| procfs::comm(*c) == "rsync")
        .collect()
}

#[test]
fn runs_at_the_next_minute() {
    let bed = Bed::new();
    let cfg = bed.config(&[bed.job("every_minute", "* * * * *", &[])]);
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
    let cfg = bed.config(&[bed.job("j", "0 0 1 1 *", &[])]);
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
    // Literal text: the position asserted below is in it (line 5 is the first after `jobs:`).
    let cfg = bed
        .base()
        .raw_jobs(
            "  - id: x\n    cron_schedule: '61 * * * *'\n    syncs: [{source: /, dest: /tmp/x/}]\n",
        )
        .write(bed.p("c.yaml"));
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
    let cfg = bed.config(&[
        bed.job("yearly", "0 0 1 1 *", &[]),
        bed.job("yearly_skip", "0 0 1 1 *", &[]).on_missed("skip"),
    ]);
    let two_years_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2 * 366 * 24);
    bed.seed_state(&["yearly", "yearly_skip"], &two_years_ago.to_string());
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
    let cfg = bed.config(&[bed.job("at_boot", "@reboot", &[])]);
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
    let cfg = bed.config(&[bed.job("slow", "0 0 1 1 *", &["--bwlimit=256"])]);
    // Seed a missed slot so the job starts right away.
    bed.seed_state(&["slow"], "2000-01-01T00:00:00Z");
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
        let env = procfs::environ(*r);
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
    let first = bed.job("first", "0 0 1 1 *", &[]);
    let cfg = bed.config(std::slice::from_ref(&first));
    let sock_path = bed.p("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut d = Daemon::start(&bed, &cfg, Some(&sock_path));
    assert!(recv(&sock).contains("READY=1"));

    // Broken: unknown key and bad cron, as literal text after the good config (whose lines
    // precede it unchanged). The daemon logs both with file:line:col and keeps going.
    let second = fs::read_to_string(&cfg).unwrap().lines().count() + 1; // its `- id:` line
    bed.base()
        .job(first.clone())
        .raw_jobs("  - id: second\n    cron_schedule: '99 * * * *'\n    sycns: []\n")
        .write(&cfg);
    d.signal(Signal::SIGHUP);
    d.wait_log(Duration::from_secs(10), "keeping the running configuration");
    let log = d.log();
    assert!(
        log.contains(&format!(
            "c.yaml:{}:21: error: jobs[second].cron_schedule",
            second + 1
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "c.yaml:{}:5: error: jobs[second].sycns: unknown key `sycns`",
            second + 2
        )),
        "{log}"
    );
    assert!(d.child.try_wait().unwrap().is_none(), "still running");

    // Good: adds a job.
    bed.config(&[first, bed.job("second", "*/5 * * * *", &[])]);
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
