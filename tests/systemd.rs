//! The shipped unit file passes `systemd-analyze verify`, with its paths pointed at the binary
//! this build produced (the packaged paths are checked again after `dpkg -i` in CI).

mod support;

use std::fs;
use std::process::Command;

use support::Scratch;

#[test]
fn unit_file_verifies() {
    let unit = fs::read_to_string("systemd/backupmanager.service").unwrap();
    for needle in [
        "Type=notify",
        "ExecStartPre=/usr/bin/backupmanager validate",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "KillMode=mixed",
        "StateDirectory=backupmanager",
        "RuntimeDirectory=backupmanager",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.contains(needle), "unit lacks {needle}");
    }
    // Lock files and pid_file_dir are shared with ssh sessions, run-job and status: a private
    // /tmp or /var/tmp would split the ones there in two (validate warns about such paths).
    assert!(
        !unit
            .lines()
            .any(|l| l.trim_start().starts_with("PrivateTmp=")),
        "the unit must not hide /tmp from the daemon"
    );
    // The stop timeout must exceed the default shutdown_timeout (30 s).
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(stop > 30);

    assert!(
        Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok(),
        "systemd-analyze is missing: run the README's test command, which installs it"
    );
    let dir = Scratch::new("bm-systemd.");
    let bin = env!("CARGO_BIN_EXE_backupmanager");
    let local = unit.replace("/usr/bin/backupmanager", bin);
    let path = dir.path().join("backupmanager.service");
    fs::write(&path, local).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Only problems with our unit count (verify also loads unrelated system units).
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("backupmanager"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{err}"
    );
}
