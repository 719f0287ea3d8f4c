//! A private sshd on 127.0.0.1 for integration tests.
//!
//! Owns: starting an sshd (foreground `-D`, our child, its own scratch directory, host key,
//! client key, known_hosts), hiding root's `~/.bashrc` from its sessions (private mount
//! namespace), and stopping exactly the processes it started, by pid ([`stop_sshd_child`], also
//! used by the netns bed).
//!
//! Must not: touch the system sshd or its config, kill anything by name, listen on anything
//! but 127.0.0.1, or silently skip when tools are missing (it panics with instructions).
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backupmanager::transport::ssh::{self, SshConfig, SshTarget};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::procfs::{children_of, pid_alive};
use super::require_root_tools;
use super::scratch::Scratch;

pub const SSHD: &str = "/usr/sbin/sshd";

pub(super) fn keygen(path: &Path, comment: &str) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(st.success(), "ssh-keygen failed for {}", path.display());
}

pub(super) fn pubkey_fields(pubfile: &Path) -> String {
    let text = fs::read_to_string(pubfile).expect("read public key");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// A private sshd on 127.0.0.1, stopped (with its sessions and our ControlMaster) on drop.
pub struct Sshd {
    dir: Option<Scratch>,
    path: PathBuf,
    port: u16,
    child: Option<Child>,
    /// A directory put first in the sessions' PATH (`SetEnv`), e.g. one holding backupmanager.
    path_first: Option<PathBuf>,
}

impl Sshd {
    /// Start a fresh sshd on a free port. Panics with sshd's log if it does not come up.
    pub fn start() -> Sshd {
        Sshd::start_with_path(None)
    }

    /// As [`Sshd::start`], with `dir` first in the PATH of every session (a remote host that has
    /// backupmanager installed).
    pub fn start_with_path(path_first: Option<&Path>) -> Sshd {
        require_root_tools();
        // Short path under /tmp: the ControlMaster socket must fit in 108 bytes.
        let dir = Scratch::short("bm-sshd.");
        let path = dir.path().to_path_buf();
        fs::create_dir_all("/run/sshd").expect("create /run/sshd (sshd privsep dir)");
        keygen(&path.join("ssh_host_ed25519_key"), "bm-test-host");
        keygen(&path.join("client_ed25519"), "bm-test-client");
        fs::copy(
            path.join("client_ed25519.pub"),
            path.join("authorized_keys"),
        )
        .unwrap();
        fs::create_dir(path.join("ctl m")).unwrap(); // a space, to exercise quoting
        fs::write(path.join("empty-bashrc"), "").unwrap();

        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let mut sshd = Sshd {
                dir: None,
                path: path.clone(),
                port,
                child: None,
                path_first: path_first.map(Path::to_path_buf),
            };
            sshd.write_config();
            let child = sshd.spawn();
            sshd.child = Some(child);
            match sshd.wait_listening() {
                Ok(()) => {
                    sshd.dir = Some(dir);
                    return sshd;
                }
                Err(log) => {
                    sshd.kill_listener();
                    last_log = log;
                    if !last_log.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("private sshd did not start; its log:\n{last_log}");
    }

    fn write_config(&self) {
        let d = &self.path;
        let cfg = format!(
            "# private sshd for backupmanager tests\n\
             Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {d}/ssh_host_ed25519_key\n\
             PidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             X11Forwarding no\n\
             MaxStartups 100:30:200\n\
             MaxSessions 64\n\
             LogLevel INFO\n",
            port = self.port,
            d = d.display()
        );
        let cfg = match &self.path_first {
            Some(p) => format!(
                "{cfg}SetEnv PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
                p.display()
            ),
            None => cfg,
        };
        fs::write(d.join("sshd_config"), cfg).unwrap();
        let host = pubkey_fields(&d.join("ssh_host_ed25519_key.pub"));
        fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{} {host}\n", self.port),
        )
        .unwrap();
        let _ = fs::remove_file(d.join("sshd.log"));
    }

    fn spawn(&self) -> Child {
        let d = &self.path;
        let sshd_args = [
            SSHD.into(),
            "-D".into(),
            "-f".into(),
            d.join("sshd_config"),
            "-E".into(),
            d.join("sshd.log"),
        ];
        let bashrc = Path::new("/root/.bashrc");
        let mut cmd = if bashrc.exists() {
            // Private mount namespace: hide root's bashrc (pyenv init, ~120 ms per command)
            // from sessions only. unshare and sh both exec, so the child pid IS sshd.
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "slave", "sh", "-c"])
                .arg(r#"mount --bind "$1" /root/.bashrc || exit 1; shift; exec "$@""#)
                .arg("sh")
                .arg(d.join("empty-bashrc"))
                .args(&sshd_args);
            c
        } else {
            let mut c = Command::new(&sshd_args[0]);
            c.args(&sshd_args[1..]);
            c
        };
        let errlog = fs::File::create(d.join("sshd.stderr")).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(errlog.try_clone().unwrap())
            .stderr(errlog);
        let parent = nix::unistd::getpid();
        // SAFETY: only async-signal-safe syscalls.
        unsafe {
            cmd.pre_exec(move || {
                // If the test thread dies without Drop (e.g. SIGKILL), take sshd with it.
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
                if nix::unistd::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
                }
                Ok(())
            });
        }
        cmd.spawn().expect("spawn sshd")
    }

    /// Poll the port until sshd accepts; Err(log) if it exited or never listened.
    fn wait_listening(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = self.child.as_mut().unwrap().try_wait() {
                return Err(self.all_logs());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.all_logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn all_logs(&self) -> String {
        format!(
            "{}{}",
            fs::read_to_string(self.path.join("sshd.stderr")).unwrap_or_default(),
            self.log()
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn dir(&self) -> &Path {
        &self.path
    }
    pub fn client_key(&self) -> PathBuf {
        self.path.join("client_ed25519")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.path.join("known_hosts")
    }
    /// The sshd listener's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    /// sshd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.path.join("sshd.log")).unwrap_or_default()
    }
    /// root@127.0.0.1:PORT.
    pub fn target(&self) -> SshTarget {
        SshTarget {
            user: Some("root".into()),
            host: "127.0.0.1".into(),
            port: Some(self.port),
        }
    }
    /// A config using our client key and known_hosts, multiplexed through `<dir>/ctl m`.
    pub fn ssh_config(&self) -> SshConfig {
        SshConfig {
            identity_file: Some(self.client_key()),
            known_hosts_file: Some(self.known_hosts()),
            control_dir: Some(self.path.join("ctl m")),
            ..SshConfig::default()
        }
    }
    /// A known_hosts file naming this sshd's address with a DIFFERENT (fresh) host key,
    /// for host-key-mismatch tests.
    pub fn wrong_known_hosts(&self) -> PathBuf {
        let other = self.path.join("other_host_key");
        if !other.exists() {
            keygen(&other, "bm-test-impostor");
        }
        let file = self.path.join("known_hosts.wrong");
        let key = pubkey_fields(&other.with_extension("pub"));
        fs::write(&file, format!("[127.0.0.1]:{} {key}\n", self.port)).unwrap();
        file
    }

    fn kill_listener(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        stop_sshd_child(child);
    }

    /// Stops the listener and its sessions, keeping keys, config and port: connections are
    /// refused until [`Sshd::resume`].
    pub fn pause(&mut self) {
        self.kill_listener();
    }

    /// Starts the listener again on the same port (panics with its log if it cannot).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "sshd is running");
        let child = self.spawn();
        self.child = Some(child);
        if let Err(log) = self.wait_listening() {
            panic!("sshd did not come back on port {}:\n{log}", self.port);
        }
    }

    /// Close our ControlMaster, stop sshd and its sessions, remove the directory.
    pub fn stop(&mut self) {
        if self.child.is_some() {
            ssh::close_master(&self.target(), &self.ssh_config());
        }
        self.kill_listener();
        drop(self.dir.take());
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops an sshd listener started in the foreground (`-D`) and every per-connection session it
/// spawned (they live in their own sessions), by pid, so no session or ssh master outlives a test.
pub fn stop_sshd_child(mut child: Child) {
    let pid = child.id();
    let sessions = children_of(pid);
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    for s in &sessions {
        let _ = kill(Pid::from_raw(*s as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    for s in sessions {
        if pid_alive(s) {
            let _ = kill(Pid::from_raw(s as i32), Signal::SIGKILL);
        }
    }
}
