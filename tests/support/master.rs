//! [`Master`]: closes the ssh ControlMaster a run leaves behind (ControlPersist), so no ssh
//! process outlives the test. Declare it after the `Sshd` it talks to, so it drops first.
//!
//! Must not: start a master, or kill any process but the master it found by its socket.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use backupmanager::transport::ssh::{self, SshConfig, SshTarget};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::procfs::pid_alive;
use super::sshd::Sshd;

/// The master for `target` with `cfg`'s settings (its control socket lives in `cfg.control_dir`).
pub struct Master {
    target: SshTarget,
    cfg: SshConfig,
}

impl Master {
    pub fn new(target: SshTarget, cfg: SshConfig) -> Master {
        Master { target, cfg }
    }

    /// The master a run with `sshd`'s client key and known_hosts leaves in `control_dir`
    /// (a runtime dir's `ssh`).
    pub fn of(sshd: &Sshd, control_dir: impl Into<PathBuf>) -> Master {
        Master::new(
            sshd.target(),
            SshConfig {
                control_dir: Some(control_dir.into()),
                ..sshd.ssh_config()
            },
        )
    }

    /// The master's pid, if one is running.
    pub fn pid(&self) -> Option<u32> {
        ssh::master_pid(&self.target, &self.cfg)
    }
}

impl Drop for Master {
    /// Asks the master to exit; kills it if it is still there after 5 s.
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            ssh::close_master(&self.target, &self.cfg);
            let deadline = Instant::now() + Duration::from_secs(5);
            while pid_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if pid_alive(pid) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}
