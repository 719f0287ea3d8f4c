//! rsync child-process tests with a real local rsync (no ssh).
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backupmanager::rsync::{self, ExitClass, RsyncCommand, RsyncError, RunningRsync, Stream};
use support::*;

fn s(p: &std::path::Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn local_copy_of_hostile_names_is_byte_identical() {
    require_root_tools();
    let tmp = Scratch::new("bm-rsync.");
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    make_hostile_tree(&src);
    let mut cmd = RsyncCommand::new(format!("{}/", s(&src)), format!("{}/", s(&dst)));
    cmd.opts = vec!["-a".into(), "-v".into()];
    let mut lines = Vec::new();
    let never = AtomicBool::new(false);
    let res = rsync::run(&cmd, |w, l| lines.push((w, l.to_string())), &never).unwrap();
    assert_eq!(res.exit_code, 0, "{}", res.message());
    assert_eq!(res.class, ExitClass::Ok);
    assert_same_tree(&src, &dst);
    // The callback saw -v's file list and the stats block, line by line.
    assert!(lines
        .iter()
        .any(|(w, l)| *w == Stream::Stdout && l.contains("with space")));
    assert!(lines.iter().any(|(_, l)| l.starts_with("Number of files")));
    let stats = res.stats.expect("stats parsed");
    let files = HOSTILE_NAMES.len() as u64 * 2 + 1;
    assert_eq!(stats.files_transferred, files);
    assert_eq!(stats.files_created, files + 2); // + "." and "sub dir"
    assert_eq!(stats.files_created_reg, files);
    assert!(stats.bytes_sent > 0 && stats.total_size > 0);
}

#[test]
fn source_starting_with_dash_is_a_path() {
    require_root_tools();
    let tmp = Scratch::new("bm-rsync.");
    std::fs::write(tmp.path().join("--version"), "not an option").unwrap();
    let mut cmd = RsyncCommand::new("--version", "-copied");
    cmd.opts = vec!["-a".into()];
    // Run our exact argument vector with a relative operand (cwd set on the child only).
    let out = std::process::Command::new("rsync")
        .args(cmd.args())
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("-copied")).unwrap(),
        "not an option"
    );
}

#[test]
fn missing_source_is_partial_23() {
    require_root_tools();
    let tmp = Scratch::new("bm-rsync.");
    let cmd = RsyncCommand::new(s(&tmp.path().join("nope")), s(&tmp.path().join("d")));
    let mut err_lines = Vec::new();
    let never = AtomicBool::new(false);
    let res = rsync::run(
        &cmd,
        |w, l| {
            if w == Stream::Stderr {
                err_lines.push(l.to_string())
            }
        },
        &never,
    )
    .unwrap();
    assert_eq!(res.exit_code, 23);
    assert_eq!(res.class, ExitClass::Partial);
    assert!(
        res.stderr_tail.iter().any(|l| l.contains("No such file")),
        "{:?}",
        res.stderr_tail
    );
    assert_eq!(res.stderr_tail, err_lines);
    assert!(res.message().contains("partial transfer due to error"));
}

#[test]
fn bad_option_is_fatal() {
    require_root_tools();
    let mut cmd = RsyncCommand::new("/nonexistent-a", "/nonexistent-b");
    cmd.opts = vec!["--no-such-option".into()];
    let res = rsync::run(&cmd, |_, _| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(res.class, ExitClass::Fatal(1));
}

/// A local copy throttled to 100 KB/s of a 20 MB file: runs for minutes unless stopped.
fn slow_copy(tmp: &std::path::Path) -> RsyncCommand {
    let src = tmp.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big"), vec![7u8; 20 << 20]).unwrap();
    let mut cmd = RsyncCommand::new(format!("{}/", s(&src)), format!("{}/", s(&tmp.join("dst"))));
    cmd.opts = vec!["-a".into(), "--bwlimit=100".into()];
    cmd
}

#[test]
fn dropping_the_guard_kills_the_whole_group() {
    require_root_tools();
    let tmp = Scratch::new("bm-rsync.");
    let cmd = slow_copy(tmp.path());
    let guard = RunningRsync::spawn(&cmd).unwrap();
    let pid = guard.pid();
    // Local rsync forks a receiver (and generator): wait until the group has several members.
    wait_until(Duration::from_secs(10), "rsync forked its helpers", || {
        group_members(pid).len() >= 2
    });
    let members = group_members(pid);
    drop(guard);
    assert!(!pid_alive(pid), "rsync {pid} survived the guard");
    wait_until(
        Duration::from_secs(5),
        "rsync's process group is empty",
        || group_members(pid).is_empty(),
    );
    for m in members {
        assert!(!pid_alive(m), "group member {m} survived");
    }
}

#[test]
fn cancel_flag_terminates_run() {
    require_root_tools();
    let tmp = Scratch::new("bm-rsync.");
    let cmd = slow_copy(tmp.path());
    let cancel = Arc::new(AtomicBool::new(false));
    let dst = tmp.path().join("dst");
    let c2 = cancel.clone();
    let setter = std::thread::spawn(move || {
        // Cancel once rsync is visibly transferring (its temp file exists).
        wait_until(Duration::from_secs(10), "rsync started writing", || {
            std::fs::read_dir(&dst)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
        });
        c2.store(true, Ordering::SeqCst);
    });
    let mut pids = Vec::new();
    let res = rsync::run(&cmd, |_, _| {}, &cancel);
    setter.join().unwrap();
    assert!(matches!(res, Err(RsyncError::Cancelled { .. })), "{res:?}");
    // No rsync under our test temp dir remains.
    for p in procfs::all() {
        if String::from_utf8_lossy(&procfs::cmdline(p.pid)).contains(tmp.path().to_str().unwrap())
            && pid_alive(p.pid)
        {
            pids.push(p.pid);
        }
    }
    assert!(pids.is_empty(), "rsync processes survived cancel: {pids:?}");
}
