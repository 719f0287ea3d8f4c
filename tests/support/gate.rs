//! [`Gated`]: a private sshd ([`Sshd`]) whose client key may only do what `backupmanager gate`
//! allows: its `authorized_keys` holds the line `gate --print-authorized-keys-line` prints for
//! the test's built binary. The gate's syslog lines arrive on a datagram socket the test owns.
//!
//! Must not: write anywhere but its scratch directory and the sshd's.
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backupmanager::transport::ssh::{self, RemoteOutput, SshConfig};

use super::bm::BIN;
use super::scratch::Scratch;
use super::sshd::Sshd;

pub struct Gated {
    pub sshd: Sshd,
    /// Log lines, collected as they come by a thread (the gate drops a line it cannot send at
    /// once, so the socket is read all the time).
    log: Arc<Mutex<Vec<String>>>,
    pub line: String,
    _dir: Scratch,
}

impl Gated {
    /// An sshd whose key runs `gate` with `args` (e.g. `["--read-only", "/srv"]`).
    pub fn start(args: &[&str]) -> Gated {
        let sshd = Sshd::start();
        let dir = Scratch::short("bmgl");
        let sock = dir.p("log");
        let log = collect(UnixDatagram::bind(&sock).expect("bind the test's syslog socket"));
        let key = fs::read_to_string(sshd.dir().join("client_ed25519.pub")).unwrap();
        let out = Command::new(BIN)
            .arg("gate")
            .args(args)
            .arg("--syslog-socket")
            .arg(&sock)
            .arg("--print-authorized-keys-line")
            .arg("--key")
            .arg(key.trim())
            .stdin(Stdio::null())
            .output()
            .expect("run backupmanager gate --print-authorized-keys-line");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        fs::write(sshd.dir().join("authorized_keys"), &line).unwrap();
        Gated {
            sshd,
            log,
            line,
            _dir: dir,
        }
    }

    /// Our ssh settings without a ControlMaster (each request is its own session).
    pub fn ssh_config(&self) -> SshConfig {
        SshConfig {
            control_dir: None,
            ..self.sshd.ssh_config()
        }
    }

    /// Sends `command` as the ssh command (what the gate sees in SSH_ORIGINAL_COMMAND).
    pub fn request(&self, command: &str) -> RemoteOutput {
        ssh::run_remote(
            &self.sshd.target(),
            &self.ssh_config(),
            command,
            Duration::from_secs(30),
        )
        .expect("ssh reaches the gate")
    }

    /// rsync's `-e` for this sshd, without a ControlMaster.
    pub fn rsh(&self) -> String {
        ssh::rsync_rsh(&self.sshd.target(), &self.ssh_config())
    }

    /// `root@127.0.0.1:path` as rsync's operand.
    pub fn operand(&self, path: impl AsRef<Path>) -> String {
        self.sshd
            .target()
            .rsync_location(path.as_ref().to_str().unwrap())
    }

    /// Every log line received since the last call (waits briefly for late ones).
    pub fn logged(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(200));
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// The client key's path (for configs).
    pub fn key(&self) -> PathBuf {
        self.sshd.client_key()
    }
}

/// Reads `sock` on a thread for the rest of the test (it ends with the process).
pub fn collect(sock: UnixDatagram) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&lines);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = sock.recv(&mut buf) {
            out.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    lines
}
