//! `backupmanager run-job` end to end: the real binary, generated YAML configs, real rsync, and a
//! private sshd on 127.0.0.1 (tests/support).
//!
//! Every backupmanager process a test starts is owned by a [`Bm`] guard that stops it (and the
//! processes under it) on drop; ssh ControlMasters the runner leaves behind (ControlPersist) are
//! closed by a [`Master`] guard before the sshd goes. No test asserts on speed: where promptness
//! is the point, the margin is wide (wait_time 30 s, expected within 5 s).
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backupmanager::lock::{Identity, Record};
use backupmanager::transport::ssh::{SshConfig, SshTarget};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::*;

// ---------------------------------------------------------------------------------------------
// Scratch space

/// A short directory under /tmp (ssh ControlPath limits), with the runtime dir `r` inside.
fn tmp() -> Scratch {
    require_root_tools();
    let t = Scratch::short("bm");
    fs::create_dir(t.p("r")).unwrap();
    t
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A pid that is certainly not running: a finished child's.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    assert!(!pid_alive(pid));
    pid
}

fn write_record(path: &Path, rec: &Record) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, rec.to_line()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Configs

/// How to reach an sshd: our test sshd, or a closed port.
#[derive(Clone)]
struct Ssh {
    port: u16,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Ssh {
    fn of(sshd: &Sshd) -> Ssh {
        Ssh {
            port: sshd.port(),
            key: sshd.client_key(),
            known_hosts: sshd.known_hosts(),
        }
    }

    /// root@127.0.0.1:PORT.
    fn remote(&self) -> Remote {
        Remote::new("root", "127.0.0.1", self.port)
    }

    /// A job that uses this sshd's client key and known_hosts (its syncs stay local unless it
    /// also gets `.remote(..)`).
    fn job(&self, id: &str) -> JobBuilder {
        JobBuilder::new(id)
            .identity_file(&self.key)
            .known_hosts_file(&self.known_hosts)
    }

    /// A remote lock file on this sshd.
    fn lock(&self, path: &Path) -> LockFile {
        LockFile::remote(path).on(&self.remote())
    }

    /// Closes the ControlMaster a run leaves under `<t>/<run_dir>/ssh`; declare it after the
    /// `Sshd` so it drops first.
    fn master(&self, t: &Scratch, run_dir: &str) -> Master {
        Master::new(
            self.remote_target(),
            SshConfig {
                identity_file: Some(self.key.clone()),
                known_hosts_file: Some(self.known_hosts.clone()),
                control_dir: Some(t.p(run_dir).join("ssh")),
                ..SshConfig::default()
            },
        )
    }

    fn remote_target(&self) -> SshTarget {
        SshTarget {
            user: Some("root".into()),
            host: "127.0.0.1".into(),
            port: Some(self.port),
        }
    }

    /// A remote blocker on this sshd.
    fn blocker(&self, path: &Path, wait_time: &str) -> Blocker {
        Blocker::remote(path, wait_time).on(&self.remote())
    }
}

/// Writes `<root>/<name>.yaml` with runtime dir `run_dir`.
fn config_in(t: &Scratch, name: &str, run_dir: &str, jobs: &[&JobBuilder]) -> PathBuf {
    ConfigBuilder::new()
        .cron_schedule("0 3 * * *")
        .pid_file_dir(t.p(run_dir))
        .state_dir(t.p("state"))
        .jobs(jobs.iter().copied())
        .write(t.p(&format!("{name}.yaml")))
}

fn config(t: &Scratch, jobs: &[&JobBuilder]) -> PathBuf {
    config_in(t, "bm", "r", jobs)
}

// ---------------------------------------------------------------------------------------------
// Processes

fn rsyncs_under(pid: u32) -> Vec<u32> {
    procfs::descendants_named(pid, "rsync")
}

/// Runs to the end; returns the exit code and the finished process (for its log).
fn run(cfg: &Path, job: &str, args: &[&str]) -> (i32, Bm) {
    let mut bm = Bm::run_job(cfg, job, args);
    let code = bm.wait(LONG);
    (code, bm)
}

fn read_record(path: &Path) -> Value {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("lock file {} should exist: {e}", path.display()));
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

fn assert_record(rec: &Value, job: &str, pid: u32) {
    assert_eq!(rec["tool"], "backupmanager", "{rec}");
    assert_eq!(rec["job"], job, "{rec}");
    assert_eq!(rec["pid"], pid, "{rec}");
    let token = rec["token"].as_str().unwrap();
    assert!(
        token.len() >= 16 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "token {token:?}"
    );
}

/// Nothing but `keep` is left in `dir` (no temporary lock files).
fn assert_dir_holds(dir: &Path, keep: &[&str]) {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want, "contents of {}", dir.display());
}

// ---------------------------------------------------------------------------------------------
// Sync correctness and the lock's lifetime

#[test]
fn local_sync_is_exact_and_lock_exists_only_while_rsync_runs() {
    let t = tmp();
    let src = t.p("src");
    make_hostile_tree(&src);
    big_file(&src.join("big.bin"), 3 << 20);
    let lock = t.p("locks/j.lock");
    let job = JobBuilder::new("j").lock_local(&lock).sync(
        format!("{}/", s(&src)),
        t.s("dst/"),
        &["-a", "--bwlimit=1000"],
    );
    let cfg = config(&t, &[&job]);

    let mut bm = Bm::run_job(&cfg, "j", &[]);
    wait_until(Duration::from_secs(60), "rsync runs", || {
        !rsyncs_under(bm.pid()).is_empty()
    });
    let rec = read_record(&lock);
    assert_record(&rec, "j", bm.pid());
    assert!(
        !rsyncs_under(bm.pid()).is_empty(),
        "the lock was read while rsync ran"
    );
    assert!(bm.saw("lock taken"));

    assert_eq!(bm.wait(LONG), OK, "{}", bm.log());
    assert!(!lock.exists(), "lock released after the run");
    assert_dir_holds(&t.p("locks"), &[]);
    assert_same_tree(&src, &t.p("dst"));
    assert!(bm.saw("sync 0 done"));
    assert!(bm.saw("lock released"));
}

#[test]
fn ssh_sync_is_exact_and_local_and_remote_locks_exist_only_while_rsync_runs() {
    let t = tmp();
    let sshd = Sshd::start();
    let sh = Ssh::of(&sshd);
    let _master = sh.master(&t, "r");
    let src = t.p("src");
    make_hostile_tree(&src);
    big_file(&src.join("big.bin"), 2 << 20);
    let local_lock = t.p("locks/local.lock");
    let remote_lock = t.p("remote locks/remote.lock");
    let dest = t.p("remote dst ✓");
    let job = sh
        .job("push")
        .remote(&sh.remote())
        .retries(0)
        .lock_local(&local_lock)
        .lock(sh.lock(&remote_lock))
        .sync(
            format!("{}/", s(&src)),
            format!("{}/", s(&dest)),
            &["-a", "--bwlimit=1000"],
        );
    let cfg = config(&t, &[&job]);

    let mut bm = Bm::run_job(&cfg, "push", &[]);
    wait_until(Duration::from_secs(60), "rsync runs", || {
        !rsyncs_under(bm.pid()).is_empty()
    });
    let (l, r) = (read_record(&local_lock), read_record(&remote_lock));
    assert!(
        !rsyncs_under(bm.pid()).is_empty(),
        "the locks were read while rsync ran"
    );
    assert_record(&l, "push", bm.pid());
    assert_record(&r, "push", bm.pid());
    assert_eq!(l["run_id"], r["run_id"]);

    assert_eq!(bm.wait(LONG), OK, "{}", bm.log());
    assert!(!local_lock.exists() && !remote_lock.exists());
    assert_dir_holds(&t.p("remote locks"), &[]);
    assert_same_tree(&src, &dest);
}

// ---------------------------------------------------------------------------------------------
// Waiting for blockers

#[test]
fn local_blocker_removal_wakes_the_waiter_long_before_wait_time() {
    let t = tmp();
    let src = t.p("src");
    make_hostile_tree(&src);
    let blocker = t.p("locks/other.lock");
    fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    fs::write(&blocker, "held by another program\n").unwrap();
    // Own lock in the same directory as the blocker: its own release must not count as a wake-up.
    let job = JobBuilder::new("j")
        .lock_local(t.s("locks/j.lock"))
        .blocks_on_local(&blocker, "30s")
        .sync(format!("{}/", s(&src)), t.s("dst/"), &["-a"]);
    let cfg = config(&t, &[&job]);

    let mut bm = Bm::run_job(&cfg, "j", &[]);
    wait_until(Duration::from_secs(30), "the run waits", || {
        bm.saw("waiting: blocker")
    });
    // While blocked, the runner sleeps: it does not retake and release its own lock in a loop.
    std::thread::sleep(Duration::from_secs(2));
    let attempts = bm.count("lock taken");
    assert!(
        attempts <= 2,
        "{attempts} lock attempts in ~2 s of waiting (wait_time 30 s): the waiter spins\n{}",
        bm.log()
    );
    assert!(bm.try_code().is_none(), "{}", bm.log());
    assert!(!t.p("dst").exists());

    fs::remove_file(&blocker).unwrap();
    wait_until(
        Duration::from_secs(5),
        "the sync starts after the blocker's removal",
        || bm.saw("sync 0 starting"),
    );
    assert_eq!(bm.wait(LONG), OK, "{}", bm.log());
    assert_same_tree(&src, &t.p("dst"));
    assert_dir_holds(&t.p("locks"), &[]);
}

#[test]
fn remote_blocker_is_rechecked_every_wait_time() {
    let t = tmp();
    let sshd = Sshd::start();
    let sh = Ssh::of(&sshd);
    let _master = sh.master(&t, "r");
    let src = t.p("src");
    make_hostile_tree(&src);
    // "Remote" is the test sshd on this machine: the file is in our tempdir.
    let blocker = t.p("remote/busy.lock");
    fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    fs::write(&blocker, "busy\n").unwrap();
    let lock = t.p("locks/j.lock");
    let job = sh
        .job("j")
        .lock_local(&lock)
        .blocks_on(sh.blocker(&blocker, "2s"))
        .sync(format!("{}/", s(&src)), t.s("dst/"), &["-a"]);
    let cfg = config(&t, &[&job]);

    let mut bm = Bm::run_job(&cfg, "j", &[]);
    wait_until(Duration::from_secs(30), "the run waits", || {
        bm.saw("waiting: blocker")
    });
    assert!(bm.saw("re-checking every 2s"), "{}", bm.log());
    assert!(bm.try_code().is_none());
    assert!(!lock.exists(), "a blocked run holds no lock while it waits");
    fs::remove_file(&blocker).unwrap();
    assert_eq!(bm.wait(Duration::from_secs(60)), OK, "{}", bm.log());
    assert_same_tree(&src, &t.p("dst"));
    assert!(!lock.exists());
}

#[test]
fn max_wait_and_no_wait_end_blocked_and_leave_no_lock() {
    let t = tmp();
    let src = t.p("src");
    make_hostile_tree(&src);
    let blocker = t.p("locks/other.lock");
    fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    fs::write(&blocker, "busy\n").unwrap();
    let lock = t.p("locks/j.lock");
    let job = JobBuilder::new("j")
        .max_wait("2s")
        .lock_local(&lock)
        .blocks_on_local(&blocker, "30s")
        .sync(format!("{}/", s(&src)), t.s("dst/"), &["-a"]);
    let cfg = config(&t, &[&job]);

    let (code, bm) = run(&cfg, "j", &[]);
    assert_eq!(code, BLOCKED, "{}", bm.log());
    assert!(bm.saw("max_wait"), "{}", bm.log());
    assert_dir_holds(&t.p("locks"), &["other.lock"]);

    let (code, bm) = run(&cfg, "j", &["--no-wait"]);
    assert_eq!(code, BLOCKED, "{}", bm.log());
    assert!(bm.saw("run blocked"), "{}", bm.log());
    assert_dir_holds(&t.p("locks"), &["other.lock"]);
    assert_eq!(fs::read_to_string(&blocker).unwrap(), "busy\n");
    assert!(!t.p("dst").exists(), "a blocked run copies nothing");
}

#[test]
fn a_job_runs_once_per_host_with_or_without_lock_files() {
    let t = tmp();
    let src = t.p("src");
    big_file(&src.join("big.bin"), 3 << 20);
    let with_lock = JobBuilder::new("locked")
        .lock_local(t.s("locks/locked.lock"))
        .sync(
            format!("{}/", s(&src)),
            t.s("dst1/"),
            &["-a", "--bwlimit=1000"],
        );
    let without = JobBuilder::new("lockless").sync(
        format!("{}/", s(&src)),
        t.s("dst2/"),
        &["-a", "--bwlimit=1000"],
    );
    let cfg = config(&t, &[&with_lock, &without]);

    for id in ["locked", "lockless"] {
        let mut first = Bm::run_job(&cfg, id, &[]);
        wait_until(Duration::from_secs(60), "rsync runs", || {
            !rsyncs_under(first.pid()).is_empty()
        });
        let (code, second) = run(&cfg, id, &["--no-wait"]);
        assert!(
            !rsyncs_under(first.pid()).is_empty(),
            "the second run ended while the first still copied"
        );
        assert_eq!(code, BLOCKED, "{}", second.log());
        assert!(
            second.saw(&format!("another run of job {id} is in progress")),
            "{}",
            second.log()
        );
        assert!(!second.saw("sync 0 starting"));
        assert_eq!(first.wait(LONG), OK, "{}", first.log());
    }
    assert_same_tree(&src, &t.p("dst1"));
    assert_same_tree(&src, &t.p("dst2"));
    assert_dir_holds(&t.p("locks"), &[]);
}

// ---------------------------------------------------------------------------------------------
// Stale and foreign locks

#[test]
fn dead_writers_locks_are_broken_live_ones_are_not() {
    let t = tmp();
    let src = t.p("src");
    make_hostile_tree(&src);
    let own = t.p("locks/j.lock");
    let blocker = t.p("locks/other.lock");
    let job = JobBuilder::new("j")
        .lock_local(&own)
        .blocks_on_local(&blocker, "30s")
        .sync(format!("{}/", s(&src)), t.s("dst/"), &["-a"]);
    let cfg = config(&t, &[&job]);
    let me = Identity::current();

    // A live writer (this test process) at the blocker path: blocked, file untouched.
    let live = Record::new(&me, "other", "run-live", Duration::from_secs(600));
    write_record(&blocker, &live);
    let (code, bm) = run(&cfg, "j", &["--no-wait"]);
    assert_eq!(code, BLOCKED, "{}", bm.log());
    assert_eq!(fs::read_to_string(&blocker).unwrap(), live.to_line());
    assert!(!own.exists());
    // ... and at the job's own lock path: blocked, file untouched.
    fs::remove_file(&blocker).unwrap();
    write_record(&own, &live);
    let (code, bm) = run(&cfg, "j", &["--no-wait"]);
    assert_eq!(code, BLOCKED, "{}", bm.log());
    assert!(bm.saw("own lock file"), "{}", bm.log());
    assert_eq!(fs::read_to_string(&own).unwrap(), live.to_line());
    assert!(!t.p("dst").exists());

    // Records left by a dead process (same kernel), at both paths: broken, and the run proceeds.
    let mut dead = Record::new(&me, "other", "run-dead", Duration::from_secs(600));
    dead.pid = dead_pid();
    write_record(&blocker, &dead);
    let mut dead_own = Record::new(&me, "j", "run-dead-own", Duration::from_secs(600));
    dead_own.pid = dead_pid();
    write_record(&own, &dead_own);
    let (code, bm) = run(&cfg, "j", &["--no-wait"]);
    assert_eq!(code, OK, "{}", bm.log());
    assert_eq!(bm.count("removed stale lock"), 2, "{}", bm.log());
    assert_same_tree(&src, &t.p("dst"));
    assert_dir_holds(&t.p("locks"), &[]);
}

#[test]
fn foreign_blocker_blocks_is_never_removed_and_stale_after_only_ignores_it() {
    let t = tmp();
    let src = t.p("src");
    make_hostile_tree(&src);
    let blocker = t.p("locks/other.pid");
    fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    fs::write(&blocker, "4242\n").unwrap();
    let strict = JobBuilder::new("strict")
        .lock_local(t.s("locks/strict.lock"))
        .blocks_on_local(&blocker, "30s")
        .sync(format!("{}/", s(&src)), t.s("dst1/"), &["-a"]);
    let lenient = JobBuilder::new("lenient")
        .lock_local(t.s("locks/lenient.lock"))
        .blocks_on(Blocker::local(&blocker, "30s").stale_after("1s"))
        .sync(format!("{}/", s(&src)), t.s("dst2/"), &["-a"]);
    let cfg = config(&t, &[&strict, &lenient]);

    // Even an ancient foreign file blocks without stale_after.
    set_mtime_ago(&blocker, Duration::from_secs(3600));
    let (code, bm) = run(&cfg, "strict", &["--no-wait"]);
    assert_eq!(code, BLOCKED, "{}", bm.log());
    assert!(bm.saw("not written by backupmanager"), "{}", bm.log());

    // With stale_after 1s: a fresh one still blocks...
    set_mtime_ago(&blocker, Duration::ZERO);
    let (code, bm) = run(&cfg, "lenient", &["--no-wait"]);
    assert_eq!(code, BLOCKED, "{}", bm.log());
    // ... an old one is ignored, and stays.
    set_mtime_ago(&blocker, Duration::from_secs(3600));
    let (code, bm) = run(&cfg, "lenient", &["--no-wait"]);
    assert_eq!(code, OK, "{}", bm.log());
    assert!(bm.saw("ignoring blocker"), "{}", bm.log());
    assert_same_tree(&src, &t.p("dst2"));
    assert!(!t.p("dst1").exists());
    assert_eq!(fs::read_to_string(&blocker).unwrap(), "4242\n");
    assert_dir_holds(&t.p("locks"), &["other.pid"]);
}

// ---------------------------------------------------------------------------------------------
// SSH failures

/// Runs the two shapes of remote job against `sh` and checks each fails cleanly: one with a
/// remote lock (fails taking it), one whose only remote step is rsync (fails in the sync).
fn assert_remote_failure(t: &Scratch, sh: &Ssh, why: &str) {
    let src = t.p("src");
    make_hostile_tree(&src);
    let remote_lock = t.p("remote/j.lock");
    let with_remote_lock = sh
        .job("rlock")
        .remote(&sh.remote())
        .retries(0)
        .lock_local(t.s("locks/rlock.lock"))
        .lock(sh.lock(&remote_lock))
        .sync(format!("{}/", s(&src)), t.s("dst1/"), &["-a"]);
    let sync_only = sh
        .job("sync")
        .remote(&sh.remote())
        .retries(0)
        .lock_local(t.s("locks/sync.lock"))
        .sync(format!("{}/", s(&src)), t.s("dst2/"), &["-a"]);
    let cfg = config(t, &[&with_remote_lock, &sync_only]);
    let host = format!("127.0.0.1:{}", sh.port);

    for id in ["rlock", "sync"] {
        let (code, bm) = run(&cfg, id, &[]);
        assert_eq!(code, FAILED, "{id}: {}", bm.log());
        let failure = bm
            .messages()
            .into_iter()
            .find(|m| m.starts_with("run failed"))
            .unwrap_or_else(|| panic!("{id}: no failure message:\n{}", bm.log()));
        assert!(
            failure.contains(&host),
            "{id}: the failure names the host: {failure}"
        );
        assert!(
            failure.to_lowercase().contains(why),
            "{id}: the failure says {why:?}: {failure}"
        );
        assert_dir_holds(&t.p("locks"), &[]);
    }
    assert!(!remote_lock.exists());
    assert!(!t.p("dst1").exists() && !t.p("dst2").exists());
}

#[test]
fn host_key_mismatch_fails_cleanly() {
    let t = tmp();
    let sshd = Sshd::start();
    let mut sh = Ssh::of(&sshd);
    sh.known_hosts = sshd.wrong_known_hosts();
    let _master = sh.master(&t, "r");
    assert_remote_failure(&t, &sh, "host key");
}

#[test]
fn unreachable_host_fails_cleanly() {
    let t = tmp();
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    fs::write(t.p("kh"), "").unwrap();
    let sh = Ssh {
        port,
        key: t.p("no-such-key"),
        known_hosts: t.p("kh"),
    };
    assert_remote_failure(&t, &sh, "connection");
}

// ---------------------------------------------------------------------------------------------
// Hostile paths

/// Makes the tags of the planted-command paths unique.
static TAG_SEQ: AtomicUsize = AtomicUsize::new(0);

#[test]
fn hostile_lock_blocker_and_dest_paths_do_only_what_they_say() {
    let t = tmp();
    let sshd = Sshd::start();
    let sh = Ssh::of(&sshd);
    let _master = sh.master(&t, "r");
    let tag = format!(
        "{}-{}",
        std::process::id(),
        TAG_SEQ.fetch_add(1, Ordering::SeqCst)
    );
    let pwned = [
        PathBuf::from(format!("/tmp/bm-pwned-{tag}")),
        PathBuf::from(format!("/tmp/bm-pwned2-{tag}")),
        PathBuf::from("/tmp/pwned"),
    ];
    let pwned_existed = pwned[2].exists();
    let weird = format!(
        "sp ace 'q' \"dq\" $(touch {}) `touch {}` $(touch /tmp/pwned) ; x && y",
        pwned[0].display(),
        pwned[1].display()
    );
    let local_lock = t.p(&format!("L {weird}.lock"));
    let remote_lock = t.p(&format!("R {weird}.lock"));
    let local_blocker = t.p(&format!("B {weird}.blk"));
    let remote_blocker = t.p(&format!("RB {weird}.blk"));
    let dest = t.p(&format!("D {weird}"));
    let src = t.p("src");
    make_hostile_tree(&src);
    // rsync makes only the last component of a dest; the `/` inside `$(touch /tmp/…)` nests it.
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let job = sh
        .job("j")
        .remote(&sh.remote())
        .retries(0)
        .lock_local(&local_lock)
        .lock(sh.lock(&remote_lock))
        .blocks_on_local(&local_blocker, "30s")
        .blocks_on(sh.blocker(&remote_blocker, "30s"))
        .sync(format!("{}/", s(&src)), format!("{}/", s(&dest)), &["-a"]);
    let cfg = config(&t, &[&job]);

    // Each blocker is looked for at exactly its path.
    for b in [&remote_blocker, &local_blocker] {
        fs::create_dir_all(b.parent().unwrap()).unwrap();
        fs::write(b, "busy\n").unwrap();
        let (code, bm) = run(&cfg, "j", &["--no-wait"]);
        assert_eq!(code, BLOCKED, "{}: {}", b.display(), bm.log());
        assert_eq!(fs::read_to_string(b).unwrap(), "busy\n");
        fs::remove_file(b).unwrap();
    }
    let (code, bm) = run(&cfg, "j", &[]);
    assert_eq!(code, OK, "{}", bm.log());
    assert_same_tree(&src, &dest);
    // The locks were made (their directories exist, made for them) and removed, nothing else.
    for l in [&local_lock, &remote_lock] {
        assert!(!l.exists(), "{} released", l.display());
        assert_dir_holds(l.parent().unwrap(), &[]);
    }
    for p in &pwned[..2] {
        assert!(!p.exists(), "injection ran: {}", p.display());
    }
    assert!(
        pwned_existed || !pwned[2].exists(),
        "injection ran: /tmp/pwned"
    );
    for p in &pwned[..2] {
        let _ = fs::remove_file(p);
    }
}

// ---------------------------------------------------------------------------------------------
// The empty-source guard

#[test]
fn delete_sync_refuses_an_empty_or_missing_source_unless_allowed() {
    let t = tmp();
    let empty = t.p("empty");
    fs::create_dir(&empty).unwrap();
    let dst = t.p("dst");
    make_hostile_tree(&dst);
    let keep = t.p("keep");
    make_hostile_tree(&keep);
    let lock = t.p("locks/j.lock");
    let delete_into_dst =
        |source: &str| SyncEntry::new(source, format!("{}/", s(&dst)), &["-a", "--delete"]);
    let mk = |id: &str, sync: SyncEntry| JobBuilder::new(id).lock_local(&lock).sync_entry(sync);
    let empty_src = mk("empty", delete_into_dst(&format!("{}/", s(&empty))));
    let missing_src = mk("missing", delete_into_dst(&t.s("missing/")));
    let allowed = mk(
        "allowed",
        delete_into_dst(&format!("{}/", s(&empty))).allow_empty_source(),
    );
    let cfg = config(&t, &[&empty_src, &missing_src, &allowed]);

    for (id, why) in [("empty", "is empty"), ("missing", "does not exist")] {
        let (code, bm) = run(&cfg, id, &[]);
        assert_eq!(code, FAILED, "{id}: {}", bm.log());
        let log = bm.full_log();
        assert!(
            log.contains("refusing to run") && log.contains(why) && log.contains("--delete"),
            "{id}: {log}"
        );
        assert!(!bm.saw("sync 0 starting"));
        assert_same_tree(&keep, &dst);
        assert!(!lock.exists());
    }
    let (code, bm) = run(&cfg, "allowed", &[]);
    assert_eq!(code, OK, "{}", bm.log());
    assert_same_tree(&empty, &dst);
    assert!(!lock.exists());
}

// ---------------------------------------------------------------------------------------------
// Signals

#[test]
fn sigterm_stops_rsync_and_releases_the_lock() {
    let t = tmp();
    let src = t.p("src");
    big_file(&src.join("big.bin"), 8 << 20);
    let lock = t.p("locks/j.lock");
    let job = JobBuilder::new("j").lock_local(&lock).sync(
        format!("{}/", s(&src)),
        t.s("dst/"),
        &["-a", "--bwlimit=500"],
    );
    let cfg = config(&t, &[&job]);

    let mut bm = Bm::run_job(&cfg, "j", &[]);
    wait_until(Duration::from_secs(60), "rsync runs", || {
        !rsyncs_under(bm.pid()).is_empty()
    });
    assert!(lock.exists());
    let rsyncs = descendants(bm.pid());
    kill(Pid::from_raw(bm.pid() as i32), Signal::SIGTERM).unwrap();
    let code = bm.wait(Duration::from_secs(60));
    assert_ne!(code, OK, "{}", bm.log());
    assert!(bm.saw("cancelled"), "{}", bm.log());
    wait_until(Duration::from_secs(10), "rsync is gone", || {
        rsyncs.iter().all(|p| !pid_alive(*p))
    });
    assert!(!lock.exists(), "lock released on SIGTERM");
    assert_dir_holds(&t.p("locks"), &[]);
}

// ---------------------------------------------------------------------------------------------
// Mutual exclusion of chained instances

#[test]
fn chained_instances_started_together_never_sync_at_the_same_time() {
    let t = tmp();
    let (x, y) = (t.s("shared/X.lock"), t.s("shared/Y.lock"));
    for side in ["a", "b"] {
        let src = t.p(&format!("src_{side}"));
        make_hostile_tree(&src);
        big_file(&src.join("pad.bin"), 64 << 10);
        fs::create_dir(t.p(&format!("r_{side}"))).unwrap();
    }
    let a = JobBuilder::new("a")
        .lock_local(&x)
        .blocks_on_local(&y, "1s")
        .sync(t.s("src_a/"), t.s("dst_a/"), &["-a", "--bwlimit=1000"]);
    let b = JobBuilder::new("b")
        .lock_local(&y)
        .blocks_on_local(&x, "1s")
        .sync(t.s("src_b/"), t.s("dst_b/"), &["-a", "--bwlimit=1000"]);
    let cfg_a = config_in(&t, "a", "r_a", &[&a]);
    let cfg_b = config_in(&t, "b", "r_b", &[&b]);

    let (mut first_a, mut contended) = (0, 0);
    for i in 0..50 {
        // Fresh copies each time, so every run transfers something.
        for side in ["a", "b"] {
            let _ = fs::remove_dir_all(t.p(&format!("dst_{side}")));
        }
        let mut pa = Bm::run_job(&cfg_a, "a", &[]);
        let mut pb = Bm::run_job(&cfg_b, "b", &[]);
        let (ca, cb) = (pa.wait(LONG), pb.wait(LONG));
        assert_eq!(ca, OK, "iteration {i}, a: {}", pa.log());
        assert_eq!(cb, OK, "iteration {i}, b: {}", pb.log());
        let ia = (pa.time_of("sync 0 starting"), pa.time_of("sync 0 done"));
        let ib = (pb.time_of("sync 0 starting"), pb.time_of("sync 0 done"));
        assert!(
            ia.1 < ib.0 || ib.1 < ia.0,
            "iteration {i}: the syncs overlapped: a {ia:?}, b {ib:?}\na: {}\nb: {}",
            pa.log(),
            pb.log()
        );
        if ia.0 < ib.0 {
            first_a += 1;
        }
        if pa.saw("waiting:") || pb.saw("waiting:") {
            contended += 1;
        }
        assert!(!Path::new(&x).exists() && !Path::new(&y).exists());
    }
    assert_same_tree(&t.p("src_a"), &t.p("dst_a"));
    assert_same_tree(&t.p("src_b"), &t.p("dst_b"));
    eprintln!("a synced first in {first_a} of 50 iterations; {contended} had to wait");
    assert!(
        contended > 0,
        "the two instances never met: the test proved nothing"
    );
}
