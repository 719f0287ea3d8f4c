//! Lock unit tests: the remote scripts run by a local `sh`, local create/release, judging.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::remote::{parse_observation, OBSERVE_SCRIPT};
use super::*;
use crate::sys::procfs::{process_alive, process_start};
use crate::sys::random::hex as random_hex;
use crate::transport::shell_quote;

/// The remote observe script, run by a local `sh`: present, absent, and a path that exists
/// but cannot be read as a file (counts as present, unknown holder).
#[test]
fn observe_script_reports_present_absent_and_unreadable() {
    let d = std::env::temp_dir().join(format!("bm-observe-{}", random_hex(4)));
    fs::create_dir_all(d.join("dir")).unwrap();
    fs::write(d.join("f"), "busy\n").unwrap();
    let run = |name: &str| {
        let p = d.join(name);
        let script = format!("p={}; {OBSERVE_SCRIPT}", shell_quote(p.to_str().unwrap()));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run("f");
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("BM1 PRESENT\n") && out.ends_with("\nbusy\n"),
        "{out:?}"
    );
    assert!(parse_observation(&out).unwrap().is_some());
    assert_eq!(run("missing"), (Some(0), "BM1 ABSENT\n".to_string()));
    let (code, out) = run("dir");
    assert_eq!(code, Some(0));
    let err = parse_observation(&out).unwrap_err();
    assert!(err.contains("is a directory, not a lock file"), "{err}");
    fs::remove_dir_all(d).unwrap();
}

fn me() -> Identity {
    Identity::current()
}

/// Runs the remote scripts with a local `sh` (with these extra environment variables), so
/// [`RemoteFiles`] can be tested without ssh.
#[derive(Debug, Default)]
struct Sh(Vec<(String, String)>);

impl std::fmt::Display for Sh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sh")
    }
}

impl crate::transport::Transport for Sh {
    fn run_script(
        &self,
        script: &str,
        _timeout: Duration,
    ) -> Result<crate::transport::RemoteOutput, crate::transport::TransportError> {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .envs(self.0.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("sh runs");
        Ok(crate::transport::RemoteOutput {
            status: o.status.code().unwrap_or(-1),
            stdout: o.stdout,
            stderr: o.stderr,
        })
    }
    fn rsync_operand(&self, path: &str) -> String {
        path.into()
    }
    fn rsync_rsh(&self) -> String {
        String::new()
    }
    fn host(&self) -> &str {
        "sh"
    }
}

fn sh_remote() -> RemoteFiles {
    RemoteFiles {
        transport: std::sync::Arc::new(Sh::default()),
    }
}

/// This machine's uptime in the judging tests.
const UP: Duration = Duration::from_secs(3600);

/// The reboot rule: only for this machine's id (not its host name), another boot, and a lock
/// last written before this boot; everything else falls back to the lease. Pure: no record
/// here has our boot id, so no pid is looked up.
#[test]
fn the_reboot_rule_needs_our_machine_id_and_a_lock_older_than_this_boot() {
    let me = Identity {
        host: "raspberrypi".into(),
        pid: 100,
        pid_start: 1,
        boot_id: "boot-now".into(),
        machine_id: "machine-a".into(),
        pid_ns: "pid:[1]".into(),
    };
    // A lease longer than the uptime, so "live" below is not the lease running out.
    let lease = Duration::from_secs(7200);
    let mut rec = Record::new(&me, "j", "r", lease);
    rec.boot_id = "boot-before".into();
    let verdict = |rec: &Record, age: u64, local: bool| {
        let obs = Observed {
            holder: Holder::Ours(rec.clone()),
            age: Duration::from_secs(age),
        };
        judge(&obs, &me, local, lease, None, &|_: &str| false, UP)
    };
    let rebooted = |v: Verdict| matches!(v, Verdict::Stale(s) if s.contains("rebooted"));
    // Ours, written before this boot: stale at once, long before its lease would end.
    assert!(rebooted(verdict(&rec, UP.as_secs() + 1, true)));
    // Ours by machine id but refreshed since this boot began: a clone of this machine (same
    // machine id, its own boot) keeps it fresh. Within the lease it is live.
    assert_eq!(verdict(&rec, UP.as_secs() - 1, true), Verdict::Live);
    assert_eq!(verdict(&rec, 0, true), Verdict::Live);
    // A remote file: the lease decides, whatever the ids say.
    assert_eq!(verdict(&rec, UP.as_secs() + 1, false), Verdict::Live);
    // Another machine with the same host name (another machine id): the lease decides.
    let mut twin = rec.clone();
    twin.machine_id = "machine-b".into();
    assert_eq!(twin.host, me.host);
    assert_eq!(verdict(&twin, UP.as_secs() + 1, true), Verdict::Live);
    assert!(matches!(verdict(&twin, 7201, true), Verdict::Stale(s) if s.contains("lease")));
    // No machine id on either side (an old record, or a machine without one): the lease.
    let mut old = rec.clone();
    old.machine_id = String::new();
    assert_eq!(verdict(&old, UP.as_secs() + 1, true), Verdict::Live);
    let anon = Identity {
        machine_id: String::new(),
        ..me.clone()
    };
    let obs = Observed {
        holder: Holder::Ours(old.clone()),
        age: UP + Duration::from_secs(1),
    };
    assert_eq!(
        judge(&obs, &anon, true, lease, None, &|_: &str| false, UP),
        Verdict::Live
    );
}

/// A record written before `machine_id` existed still parses (as having none).
#[test]
fn a_record_without_machine_id_parses() {
    let line = r#"{"tool":"backupmanager","host":"h","pid":1,"pid_start":2,"boot_id":"b","pid_ns":"pid:[1]","job":"j","run_id":"r","started":"2024-01-01T00:00:00Z","lease_secs":60,"token":"abcd"}"#;
    let r = Record::parse(line).expect("parses");
    assert_eq!(r.machine_id, "");
    assert_eq!(r.host, "h");
}

fn tmp() -> PathBuf {
    let d = std::env::temp_dir().join(format!("bm-lock-unit-{}", random_hex(6)));
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn identity_reads_this_process() {
    let me = me();
    assert_eq!(me.pid, std::process::id());
    assert!(me.pid_start > 0);
    assert_eq!(me.boot_id.len(), 36);
    assert!(me.pid_ns.starts_with("pid:["));
    assert!(process_alive(me.pid, me.pid_start));
    assert!(
        !process_alive(me.pid, me.pid_start + 1),
        "a different start time is another process"
    );
}

#[test]
fn create_is_exclusive_and_release_needs_the_token() {
    let d = tmp();
    let path = d.join("sub/dir/job.lock").to_string_lossy().into_owned();
    let a = Record::new(&me(), "j", "run-a", Duration::from_secs(600));
    let b = Record::new(&me(), "j", "run-b", Duration::from_secs(600));
    assert_eq!(LocalFiles.try_create(&path, &a).unwrap(), Created::Yes);
    let Created::Exists(Some(obs)) = LocalFiles.try_create(&path, &b).unwrap() else {
        panic!()
    };
    assert_eq!(obs.holder, Holder::Ours(a.clone()));
    assert!(!LocalFiles.release_if_token(&path, &b.token).unwrap());
    assert!(Path::new(&path).exists());
    assert!(LocalFiles.refresh_if_token(&path, &a.token).unwrap());
    assert!(!LocalFiles.refresh_if_token(&path, &b.token).unwrap());
    assert!(LocalFiles.release_if_token(&path, &a.token).unwrap());
    assert!(!Path::new(&path).exists());
    // No temporary files are left behind.
    assert_eq!(fs::read_dir(d.join("sub/dir")).unwrap().count(), 0);
    fs::remove_dir_all(d).unwrap();
}

#[test]
fn foreign_files_are_never_ours() {
    let d = tmp();
    let path = d.join("other.lock").to_string_lossy().into_owned();
    fs::write(&path, "12345\n").unwrap();
    let obs = LocalFiles.observe(&path).unwrap().unwrap();
    assert_eq!(obs.holder, Holder::Foreign(Foreign::File { size: Some(6) }));
    assert!(!obs.to_string().contains("12345"), "{obs}");
    assert!(!LocalFiles.release_if_token(&path, "12345").unwrap());
    assert!(Path::new(&path).exists());
    fs::remove_dir_all(d).unwrap();
}

#[test]
fn judging() {
    let me = me();
    let lease = Duration::from_secs(600);
    let live = Record::new(&me, "j", "r-live", lease);
    let obs = |r: Record, age| Observed {
        holder: Holder::Ours(r),
        age: Duration::from_secs(age),
    };
    // Same kernel: the process decides, not the age. This very process: the run decides.
    let active = |r: &str| r == "r-live";
    let ended = |_: &str| false;
    assert_eq!(
        judge(
            &obs(live.clone(), 99_999),
            &me,
            true,
            lease,
            None,
            &active,
            UP
        ),
        Verdict::Live
    );
    assert!(
        matches!(judge(&obs(live.clone(), 0), &me, true, lease, None, &ended, UP), Verdict::Stale(s) if s.contains("earlier run")),
        "a lock of this process whose run has ended is a leftover"
    );
    // Another live process on this kernel (our parent): live, whatever its age.
    let mut other = live.clone();
    other.pid = std::os::unix::process::parent_id();
    other.pid_start = process_start(other.pid).unwrap();
    assert_eq!(
        judge(&obs(other, 99_999), &me, true, lease, None, &ended, UP),
        Verdict::Live
    );
    let mut dead = live.clone();
    dead.pid = u32::MAX - 1;
    assert!(
        matches!(judge(&obs(dead, 0), &me, true, lease, None, &ended, UP), Verdict::Stale(s) if s.contains("is gone"))
    );
    // Written by this machine before a reboot (last written before this boot began).
    let mut old_boot = live.clone();
    old_boot.boot_id = "00000000-0000-0000-0000-000000000000".into();
    assert!(
        matches!(judge(&obs(old_boot.clone(), UP.as_secs() + 1), &me, true, lease, None, &ended, UP), Verdict::Stale(s) if s.contains("rebooted"))
    );
    // Another machine: the lease decides.
    let mut other = old_boot;
    other.host = "elsewhere".into();
    other.lease_secs = 60;
    assert_eq!(
        judge(&obs(other.clone(), 59), &me, false, lease, None, &ended, UP),
        Verdict::Live
    );
    assert!(matches!(
        judge(&obs(other, 61), &me, false, lease, None, &ended, UP),
        Verdict::Stale(_)
    ));
    // Someone else's file: only a blocks_on stale_after can discount it.
    let foreign = Observed {
        holder: Holder::Foreign(Foreign::File { size: Some(2) }),
        age: Duration::from_secs(1_000_000),
    };
    assert_eq!(
        judge(&foreign, &me, true, lease, None, &ended, UP),
        Verdict::Live
    );
    assert!(matches!(
        judge(
            &foreign,
            &me,
            true,
            lease,
            Some(Duration::from_secs(60)),
            &ended,
            UP
        ),
        Verdict::Stale(_)
    ));
}

/// The remote observe script, run by a local `sh`, with `tool` (stat or head) replaced by a
/// wrapper that removes the lock first: the owner releasing it mid-observation.
fn observe_while_released_by(tool: &str) -> (bool, String) {
    let d = tmp();
    let bin = d.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|p| p.join(tool))
        .find(|p| p.is_file())
        .unwrap();
    let wrapper = bin.join(tool);
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nrm -f -- \"$BM_VANISH\"\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let path = d.join("lock").to_string_lossy().into_owned();
    let r = Record::new(&me(), "j", "r", Duration::from_secs(600));
    fs::write(&path, r.to_line()).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("p={}; {OBSERVE_SCRIPT}", shell_quote(&path)))
        .env("BM_VANISH", &path)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    fs::remove_dir_all(d).unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_lock_released_while_observed_remotely_is_absent() {
    for tool in ["stat", "dd"] {
        let (ok, out) = observe_while_released_by(tool);
        assert!(ok, "{tool}: the script fails: {out}");
        assert_eq!(parse_observation(&out), Ok(None), "{tool}: {out}");
    }
    // Undisturbed, the same script reports the record.
    let d = tmp();
    let path = d.join("lock").to_string_lossy().into_owned();
    let r = Record::new(&me(), "j", "r", Duration::from_secs(600));
    fs::write(&path, r.to_line()).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("p={}; {OBSERVE_SCRIPT}", shell_quote(&path)))
        .output()
        .unwrap();
    let obs = parse_observation(&String::from_utf8_lossy(&out.stdout))
        .unwrap()
        .unwrap();
    assert_eq!(obs.holder, Holder::Ours(r));
    fs::remove_dir_all(d).unwrap();
}

#[test]
fn parses_remote_observations() {
    let r = Record::new(&me(), "j", "r", Duration::from_secs(600));
    let out = format!("BM1 PRESENT\n1000\n990\n{}", r.to_line());
    let o = parse_observation(&out).unwrap().unwrap();
    assert_eq!(o.age, Duration::from_secs(10));
    assert_eq!(o.holder, Holder::Ours(r));
    assert_eq!(parse_observation("BM1 ABSENT\n"), Ok(None));
    let o = parse_observation("BM1 PRESENT\n1000\n2000\n")
        .unwrap()
        .unwrap();
    assert_eq!(
        (o.age, o.holder),
        (
            Duration::ZERO,
            Holder::Foreign(Foreign::File { size: None })
        )
    );
}

/// Runs the observe script for `path` with `PATH` starting at `bin` (wrappers that imitate
/// another userland), as user `nobody` when `as_nobody`.
fn observe_with(path: &str, bin: Option<&Path>) -> String {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("p={}; {OBSERVE_SCRIPT}", shell_quote(path)));
    if let Some(bin) = bin {
        cmd.env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        );
    }
    String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
}

fn wrapper(bin: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(bin).unwrap();
    let w = bin.join(name);
    fs::write(&w, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&w, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A BSD userland: `stat` rejects GNU's `-c` and answers `-f %m`. The lock is still seen, with
/// its age; and where neither form works the check is an error, never "absent".
#[test]
fn observe_script_works_with_bsd_stat_and_fails_closed_without_one() {
    let d = tmp();
    let path = d.join("lock").to_string_lossy().into_owned();
    let r = Record::new(&me(), "j", "r", Duration::from_secs(600));
    fs::write(&path, r.to_line()).unwrap();
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|p| p.join("stat"))
        .find(|p| p.is_file())
        .unwrap();
    let bsd = d.join("bsd");
    wrapper(
        &bsd,
        "stat",
        &format!(
            "case \"$1\" in -c) echo 'stat: illegal option -- c' >&2; exit 1;; \
             -f) [ \"$2\" = %m ] || exit 1; shift 2; [ \"$1\" = -- ] && shift; exec {} -c %Y -- \"$1\";; esac; exit 1",
            real.display()
        ),
    );
    let out = observe_with(&path, Some(&bsd));
    let obs = parse_observation(&out).unwrap().expect("present");
    assert_eq!(obs.holder, Holder::Ours(r));
    assert!(obs.age < Duration::from_secs(60), "{obs:?}");

    let none = d.join("none");
    wrapper(&none, "stat", "echo 'stat: not supported' >&2; exit 1");
    let out = observe_with(&path, Some(&none));
    let err = parse_observation(&out).unwrap_err();
    assert!(err.contains("modification time"), "{err}");
    // A missing lock needs no stat at all.
    let out = observe_with(&d.join("missing").to_string_lossy(), Some(&none));
    assert_eq!(parse_observation(&out), Ok(None));
    fs::remove_dir_all(d).unwrap();
}

/// A lock in a directory the ssh user cannot enter is not "absent"; one in a directory that
/// does not exist is.
#[test]
fn observe_script_fails_closed_on_a_directory_it_cannot_enter() {
    let d = tmp();
    let locked = d.join("locked");
    fs::create_dir_all(&locked).unwrap();
    fs::write(locked.join("lock"), "x\n").unwrap();
    let path = locked.join("lock").to_string_lossy().into_owned();
    // Root enters any directory; run the script as nobody, who cannot enter a 0700 root dir.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
    let as_nobody = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let out = if as_nobody {
        let o = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg(format!("p={}; {OBSERVE_SCRIPT}", shell_quote(&path)))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    } else {
        observe_with(&path, None)
    };
    let err = parse_observation(&out).unwrap_err();
    assert!(err.contains("cannot enter directory"), "{err}");
    let gone = d.join("no/such/dir/lock").to_string_lossy().into_owned();
    assert_eq!(parse_observation(&observe_with(&gone, None)), Ok(None));
    fs::remove_dir_all(d).unwrap();
}

/// A symlink at a lock path, locally and by the remote script: present, described as a
/// symlink, its target never read (nor shown), never released or refreshed through, even when
/// the target holds our token. The same for a FIFO, which must not hang the check.
#[test]
fn a_symlink_at_a_lock_path_is_present_and_never_followed() {
    let d = tmp();
    let secret = d.join("secret");
    let r = Record::new(&me(), "j", "r", Duration::from_secs(600));
    fs::write(&secret, format!("{}TOP-SECRET\n", r.to_line())).unwrap();
    let link = d.join("lock");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let path = link.to_string_lossy().into_owned();

    let obs = LocalFiles.observe(&path).unwrap().expect("present");
    assert_eq!(obs.holder, Holder::Foreign(Foreign::Symlink));
    assert!(obs.to_string().contains("symbolic link"), "{obs}");
    assert!(!LocalFiles.release_if_token(&path, &r.token).unwrap());
    assert!(!LocalFiles.refresh_if_token(&path, &r.token).unwrap());
    let Created::Exists(Some(obs)) = LocalFiles.try_create(&path, &r).unwrap() else {
        panic!("a symlink holds the name")
    };
    assert_eq!(obs.holder, Holder::Foreign(Foreign::Symlink));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    let out = observe_with(&path, None);
    assert!(out.starts_with("BM1 SYMLINK\n"), "{out:?}");
    assert!(
        !out.contains("SECRET") && !out.contains("backupmanager"),
        "{out:?}"
    );
    let obs = parse_observation(&out).unwrap().expect("present");
    assert_eq!(obs.holder, Holder::Foreign(Foreign::Symlink));
    // A dangling symlink is present too.
    let dangling = d.join("dangling");
    std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
    let obs = LocalFiles.observe(&dangling.to_string_lossy()).unwrap();
    assert_eq!(obs.unwrap().holder, Holder::Foreign(Foreign::Symlink));
    let out = observe_with(&dangling.to_string_lossy(), None);
    assert!(out.starts_with("BM1 SYMLINK\n"), "{out:?}");
    // The remote scripts: observe says symlink, release and refresh leave it (and its target)
    // alone, create does not take the name.
    let remote = sh_remote();
    let obs = remote.observe(&path).unwrap().expect("present");
    assert_eq!(obs.holder, Holder::Foreign(Foreign::Symlink));
    let before = fs::metadata(&secret).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(!remote.refresh_if_token(&path, &r.token).unwrap());
    assert!(!remote.release_if_token(&path, &r.token).unwrap());
    let Created::Exists(Some(obs)) = remote.try_create(&path, &r).unwrap() else {
        panic!("a symlink holds the name")
    };
    assert_eq!(obs.holder, Holder::Foreign(Foreign::Symlink));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::metadata(&secret).unwrap().modified().unwrap(), before);

    let fifo = d.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let obs = LocalFiles.observe(&fifo.to_string_lossy()).unwrap();
    assert_eq!(obs.unwrap().holder, Holder::Foreign(Foreign::Special));
    let out = observe_with(&fifo.to_string_lossy(), None);
    assert!(out.starts_with("BM1 SPECIAL\n"), "{out:?}");
    fs::remove_dir_all(d).unwrap();
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A directory at a lock path is an error that says so, locally and remotely, for creating and
/// for observing; nothing is left behind, next to it or inside it. Remotely also when the
/// directory appears between the script's test and its `ln` (which would then create a file
/// inside it): an `ln` wrapper makes the directory first.
#[test]
fn a_directory_at_a_lock_path_is_an_error_and_nothing_is_left_behind() {
    let d = tmp();
    let dir = d.join("locks/j.lock");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.to_string_lossy().into_owned();
    let r = Record::new(&me(), "j", "r", Duration::from_secs(600));
    let is_dir = |e: LockError| {
        let e = e.to_string();
        assert!(e.contains("is a directory, not a lock file"), "{e}");
    };
    is_dir(LocalFiles.try_create(&path, &r).unwrap_err());
    is_dir(LocalFiles.observe(&path).unwrap_err());
    assert!(!LocalFiles.release_if_token(&path, &r.token).unwrap());
    let remote = sh_remote();
    is_dir(remote.try_create(&path, &r).unwrap_err());
    is_dir(remote.observe(&path).unwrap_err());
    assert!(!remote.release_if_token(&path, &r.token).unwrap());
    assert_eq!(names(&d.join("locks")), ["j.lock"]);
    assert!(names(&dir).is_empty());

    // The race: the directory appears just before `ln` runs.
    let bin = d.join("bin");
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|p| p.join("ln"))
        .find(|p| p.is_file())
        .unwrap();
    wrapper(
        &bin,
        "ln",
        &format!("mkdir -p -- \"$BM_DIR_AT\"\nexec {} \"$@\"", real.display()),
    );
    let racy = d.join("racy/j.lock");
    let remote = RemoteFiles {
        transport: std::sync::Arc::new(Sh(vec![
            (
                "PATH".into(),
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            ),
            ("BM_DIR_AT".into(), racy.to_string_lossy().into_owned()),
        ])),
    };
    is_dir(remote.try_create(&racy.to_string_lossy(), &r).unwrap_err());
    assert_eq!(names(&d.join("racy")), ["j.lock"]);
    assert!(names(&racy).is_empty(), "ln left {:?}", names(&racy));
    fs::remove_dir_all(d).unwrap();
}

/// Anything but the frame is an error: login noise, a non-POSIX shell's complaint, nothing.
#[test]
fn unframed_replies_are_errors_not_absent() {
    for out in [
        "",
        "Welcome to backup_a!\nBM1 ABSENT\n",
        "fish: Unsupported use of '='.\n",
        "ABSENT\n",
        "BM1 PRESENT\nnot-a-number\n1\n",
    ] {
        assert!(parse_observation(out).is_err(), "{out:?}");
    }
    // The body of a malformed frame (another program's file) is not quoted in the error.
    let err = parse_observation("motd\nBM1 PRESENT\n1\nx\nSECRET\n").unwrap_err();
    assert!(err.contains("motd") && !err.contains("SECRET"), "{err}");
    assert_eq!(
        parse_observation("BM1 ERROR cannot enter /x\n"),
        Err("cannot enter /x".to_string())
    );
}
