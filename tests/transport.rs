//! ssh + rsync against a real private sshd (tests/support).
mod support;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use backupmanager::rsync::{self, ExitClass, RsyncCommand};
use backupmanager::transport::ssh::{self, shell_quote, SshConfig, SshError, SshTarget};
use support::*;

const T: Duration = Duration::from_secs(30);

fn accepted_logins(sshd: &Sshd) -> usize {
    sshd.log().matches("Accepted publickey").count()
}

#[test]
fn run_remote_round_trip() {
    let sshd = Sshd::start();
    let out = ssh::run_remote(
        &sshd.target(),
        &sshd.ssh_config(),
        "echo hello; echo oops >&2; exit 3",
        T,
    )
    .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(out.stderr, b"oops\n");
}

#[test]
fn hostile_strings_survive_the_remote_shell() {
    let sshd = Sshd::start();
    let (t, cfg) = (sshd.target(), sshd.ssh_config());
    let hostile = [
        "",
        "a b  c",
        "it's",
        "'",
        "\"double\"",
        "$(touch /tmp/bm-pwned)",
        "`touch /tmp/bm-pwned`",
        "a;b",
        "a && b || c",
        "line1\nline2\n",
        "-n",
        "--help",
        "ünïcødé ✓ 日本",
        "*",
        "?[a-z]*",
        "~root",
        "x=1",
        "back\\slash\\",
        "$HOME ${PATH} $1",
        "tab\there",
        "!bang",
        "#comment",
        "%s %d",
    ];
    for s in hostile {
        let script = format!("printf '%s' {}", shell_quote(s));
        let out = ssh::run_remote(&t, &cfg, &script, T).unwrap();
        assert_eq!(out.status, 0, "{s:?}: {}", out.stderr_lossy());
        assert_eq!(out.stdout, s.as_bytes(), "round trip of {s:?}");
    }
    // Several quoted words in one command stay separate words.
    let words: Vec<String> = hostile.iter().map(|s| shell_quote(s)).collect();
    let out = ssh::run_remote(&t, &cfg, &format!("printf '%s\\0' {}", words.join(" ")), T).unwrap();
    let want: Vec<u8> = hostile
        .iter()
        .flat_map(|s| [s.as_bytes(), b"\0"].concat())
        .collect();
    assert_eq!(out.stdout, want);
    assert!(!std::path::Path::new("/tmp/bm-pwned").exists());
}

#[test]
fn control_master_is_reused() {
    let sshd = Sshd::start();
    let (t, cfg) = (sshd.target(), sshd.ssh_config());
    ssh::run_remote(&t, &cfg, "true", T).unwrap();
    let ctl = cfg.control_dir.clone().unwrap();
    let sockets: Vec<_> = std::fs::read_dir(&ctl).unwrap().flatten().collect();
    assert_eq!(
        sockets.len(),
        1,
        "one ControlMaster socket in {}",
        ctl.display()
    );
    assert_eq!(sockets[0].file_name().len(), 40, "%C is a 40-char hash");
    let master = ssh::master_pid(&t, &cfg).expect("master running");
    for i in 0..3 {
        let out = ssh::run_remote(&t, &cfg, &format!("echo {i}"), T).unwrap();
        assert_eq!(out.stdout_lossy(), format!("{i}\n"));
    }
    assert_eq!(ssh::master_pid(&t, &cfg), Some(master));
    // One authentication for four commands: they all rode the same connection.
    assert_eq!(accepted_logins(&sshd), 1, "sshd log:\n{}", sshd.log());
    ssh::close_master(&t, &cfg);
    wait_until(Duration::from_secs(5), "master exited", || {
        !pid_alive(master)
    });
    assert_eq!(ssh::master_pid(&t, &cfg), None);
}

#[test]
fn rsync_push_over_ssh_shares_the_master() {
    let sshd = Sshd::start();
    let (t, cfg) = (sshd.target(), sshd.ssh_config());
    ssh::run_remote(&t, &cfg, "true", T).unwrap(); // opens the master
    let src = sshd.dir().join("local src");
    make_hostile_tree(&src);
    let remote = sshd.dir().join("remote dest"); // space in the remote path
    let mut cmd = RsyncCommand::new(
        format!("{}/", src.display()),
        t.rsync_location(&format!("{}/", remote.display())),
    );
    cmd.opts = vec!["-a".into()];
    cmd.rsh = Some(ssh::rsync_rsh(&t, &cfg));
    let res = rsync::run(&cmd, |_, _| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(res.class, ExitClass::Ok, "{}", res.message());
    assert_same_tree(&src, &remote);
    assert!(res.stats.unwrap().files_transferred > 0);
    assert_eq!(accepted_logins(&sshd), 1, "rsync did not reuse the master");
}

#[test]
fn rsync_rsh_with_identity_path_containing_space_and_quotes() {
    let sshd = Sshd::start();
    let t = sshd.target();
    let keydir = sshd.dir().join("key dir \"q\" 'sq'");
    std::fs::create_dir(&keydir).unwrap();
    let key = keydir.join("id 50% it's");
    std::fs::copy(sshd.client_key(), &key).unwrap();
    let cfg = SshConfig {
        identity_file: Some(key),
        control_dir: None,
        ..sshd.ssh_config()
    };
    // Plain ssh with this config works...
    ssh::run_remote(&t, &cfg, "true", T).unwrap();
    // ...and so does rsync splitting our -e string.
    let src = sshd.dir().join("s");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "data").unwrap();
    let dst = sshd.dir().join("d");
    let mut cmd = RsyncCommand::new(
        format!("{}/", src.display()),
        t.rsync_location(&format!("{}/", dst.display())),
    );
    cmd.opts = vec!["-a".into()];
    cmd.rsh = Some(ssh::rsync_rsh(&t, &cfg));
    let res = rsync::run(&cmd, |_, _| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(res.exit_code, 0, "rsh {:?}: {}", cmd.rsh, res.message());
    assert_same_tree(&src, &dst);
}

#[test]
fn host_key_mismatch_and_unknown_are_classified() {
    let sshd = Sshd::start();
    let t = sshd.target();
    let wrong = SshConfig {
        known_hosts_file: Some(sshd.wrong_known_hosts()),
        control_dir: None,
        ..sshd.ssh_config()
    };
    match ssh::run_remote(&t, &wrong, "true", T) {
        Err(e @ SshError::HostKey { changed: true, .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&t.to_string()) && msg.contains("ssh-keyscan"),
                "{msg}"
            );
        }
        other => panic!("expected HostKey{{changed}}, got {other:?}"),
    }
    let empty = sshd.dir().join("known_hosts.empty");
    std::fs::write(&empty, "").unwrap();
    let unknown = SshConfig {
        known_hosts_file: Some(empty.clone()),
        control_dir: None,
        ..sshd.ssh_config()
    };
    let r = ssh::run_remote(&t, &unknown, "true", T);
    assert!(
        matches!(r, Err(SshError::HostKey { changed: false, .. })),
        "{r:?}"
    );
    // BatchMode + StrictHostKeyChecking=yes: nothing was auto-added.
    assert_eq!(std::fs::read_to_string(&empty).unwrap(), "");
}

#[test]
fn wrong_client_key_is_auth_error() {
    let sshd = Sshd::start();
    let other = sshd.dir().join("stranger");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let cfg = SshConfig {
        identity_file: Some(other),
        control_dir: None,
        ..sshd.ssh_config()
    };
    let r = ssh::run_remote(&sshd.target(), &cfg, "true", T);
    assert!(matches!(r, Err(SshError::Auth { .. })), "{r:?}");
}

#[test]
fn closed_port_is_connection_refused() {
    require_root_tools();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // listener dropped: nothing listens there now
    let t = SshTarget {
        user: Some("root".into()),
        host: "127.0.0.1".into(),
        port: Some(port),
    };
    let r = ssh::run_remote(&t, &SshConfig::default(), "true", T);
    match r {
        Err(e @ SshError::ConnectionRefused { .. }) => {
            assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}")
        }
        other => panic!("expected ConnectionRefused, got {other:?}"),
    }
}

#[test]
fn remote_timeout_kills_ssh() {
    let sshd = Sshd::start();
    let r = ssh::run_remote(
        &sshd.target(),
        &sshd.ssh_config(),
        "sleep 60",
        Duration::from_secs(2),
    );
    assert!(matches!(r, Err(SshError::Timeout { .. })), "{r:?}");
}

#[test]
fn nothing_started_by_a_test_survives_it() {
    let mut sshd = Sshd::start();
    let (t, cfg) = (sshd.target(), sshd.ssh_config());
    ssh::run_remote(&t, &cfg, "true", T).unwrap();
    let master = ssh::master_pid(&t, &cfg).expect("master running");
    let sshd_pid = sshd.pid().unwrap();
    let sessions = children_of(sshd_pid);
    assert!(!sessions.is_empty(), "the master holds a session open");
    // A long remote command still running when the harness stops.
    let src = sshd.dir().join("s");
    std::fs::create_dir(&src).unwrap();
    let mut cmd = RsyncCommand::new(
        format!("{}/", src.display()),
        t.rsync_location(&format!("{}/", sshd.dir().join("d").display())),
    );
    cmd.rsh = Some(ssh::rsync_rsh(&t, &cfg));
    cmd.opts = vec!["-a".into()];
    let res = rsync::run(&cmd, |_, _| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(res.exit_code, 0, "{}", res.message());
    sshd.stop();
    for (what, pid) in [("sshd", sshd_pid), ("ssh master", master)]
        .into_iter()
        .chain(sessions.iter().map(|p| ("sshd session", *p)))
    {
        wait_until(
            Duration::from_secs(5),
            &format!("{what} {pid} is gone"),
            || !pid_alive(pid),
        );
    }
    assert!(!sshd.dir().exists(), "harness dir removed");
}

#[test]
fn longest_allowed_control_dir_works() {
    let sshd = Sshd::start();
    let base = sshd.dir().to_str().unwrap().to_string();
    let pad = ssh::MAX_CONTROL_DIR_LEN - base.len() - 1;
    let dir = std::path::PathBuf::from(format!("{base}/{}", "c".repeat(pad)));
    assert_eq!(dir.as_os_str().len(), ssh::MAX_CONTROL_DIR_LEN);
    std::fs::create_dir(&dir).unwrap();
    let cfg = SshConfig {
        control_dir: Some(dir.clone()),
        ..sshd.ssh_config()
    };
    let t = sshd.target();
    ssh::run_remote(&t, &cfg, "true", T).unwrap();
    assert!(
        ssh::master_pid(&t, &cfg).is_some(),
        "master on {}",
        dir.display()
    );
    ssh::close_master(&t, &cfg);
    // One byte longer: ssh_args falls back to no multiplexing instead of failing.
    let longer = SshConfig {
        control_dir: Some(std::path::PathBuf::from(format!("{}x", dir.display()))),
        ..sshd.ssh_config()
    };
    let out = ssh::run_remote(&t, &longer, "echo ok", T).unwrap();
    assert_eq!(out.stdout, b"ok\n");
}
