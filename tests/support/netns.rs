//! Fake hosts for multi-machine tests: each one a network namespace with its own address, its
//! own sshd on port 22 (own host key), and its own view of one directory.
//!
//! Topology: a bridge `br0` in a namespace of its own (`<id>-br`), and per host a namespace
//! `<id>-<host>` whose `eth0` is one end of a veth pair; the other end (`v<i>`) is a bridge port.
//! Host i gets `10.213.0.(21+i)/24`. Nothing is created in the root namespace, so these addresses
//! exist only inside the bed: the test process itself never dials them (everything that does runs
//! through [`Bed::command`]).
//!
//! Filesystem: every process of a host (its sshd and the sessions it spawns, daemons started with
//! [`Bed::command`]) runs in a private mount namespace (`ip netns exec` makes one) in which
//! `<root>/fs/<host>` is bind-mounted on [`Bed::view`], and an empty file on `/root/.bashrc`
//! (root's bashrc costs ~100 ms per ssh command on these images). So the same path holds
//! different data on each host; the test reads a host's files through [`Host::fs`].
//!
//! Names: `bmc-<6 random letters and digits>` per bed: the bed's root is a [`Scratch`] directory
//! `/tmp/bmc-XXXXXX` (removed on drop; `BM_KEEP_BED` keeps it), holding an `owner` file with the
//! test process's pid and start time. [`cleanup_leftovers`] removes namespaces and directories of
//! beds whose owner is gone (a crashed earlier run), never a live one's.
//!
//! Must not: touch the root namespace's interfaces, kill anything by name (only pids we started
//! and pids inside our own namespaces), or dial 10.213.0.x from the root namespace.
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::procfs::{pid_alive, start_time};
use super::require_root_tools;
use super::scratch::Scratch;
use super::sshd::{keygen, pubkey_fields, stop_sshd_child, SSHD};

/// Names of beds (directories in /tmp and namespaces); [`cleanup_leftovers`] owns every name with it.
pub const PREFIX: &str = "bmc-";

/// Why a bed could not be built: namespaces are not available here (not a test failure by
/// itself; see [`Bed::new_or_skip`]).
#[derive(Debug)]
pub struct Unavailable(pub String);

pub struct Host {
    pub name: String,
    pub ns: String,
    pub addr: String,
    /// This host's files, as seen from the test process (what the host sees at [`Bed::view`]).
    pub fs: PathBuf,
    /// The bridge-side end of this host's veth pair.
    port: String,
    sshd_dir: PathBuf,
    sshd: Option<Child>,
}

pub struct Bed {
    pub id: String,
    pub root: PathBuf,
    /// Owns `root`: removed on drop, after the namespaces are gone.
    dir: Option<Scratch>,
    br_ns: String,
    pub hosts: Vec<Host>,
    namespaces: Vec<String>,
    /// Processes started with [`Bed::spawn`] (daemons); killed by pid on drop.
    children: Vec<Child>,
}

/// `ip ARGS`; the error names the command and what `ip` said.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn netns_list() -> Vec<String> {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn netns_pids(ns: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills every process inside `ns` (TERM, then KILL), then deletes it.
pub fn destroy_ns(ns: &str) {
    for sig in [Signal::SIGTERM, Signal::SIGKILL] {
        let pids = netns_pids(ns);
        if pids.is_empty() {
            break;
        }
        for p in pids {
            let _ = kill(Pid::from_raw(p), sig);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !netns_pids(ns).is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

/// Removes namespaces and directories left by beds whose test process is gone.
pub fn cleanup_leftovers() {
    let owner_alive = |id: &str| -> bool {
        let Ok(text) = fs::read_to_string(format!("/tmp/{id}/owner")) else {
            return false;
        };
        let mut it = text.split_whitespace();
        let (Some(pid), Some(start)) = (it.next(), it.next()) else {
            return false;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            return false;
        };
        pid_alive(pid) && start_time(pid).is_some_and(|t| t.to_string() == start)
    };
    let mut dead_ids = Vec::new();
    for ns in netns_list() {
        let Some(rest) = ns.strip_prefix(PREFIX) else {
            continue;
        };
        let id = format!("{PREFIX}{}", rest.split('-').next().unwrap_or(""));
        if !owner_alive(&id) {
            eprintln!("chain bed: removing namespace {ns} left by a crashed earlier run");
            destroy_ns(&ns);
            dead_ids.push(id);
        }
    }
    if let Ok(rd) = fs::read_dir("/tmp") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|a| a > Duration::from_secs(120));
            // Young directories may be a bed being built right now (owner not yet written).
            if name.starts_with(PREFIX)
                && name.len() == PREFIX.len() + 6
                && old
                && !owner_alive(&name)
            {
                dead_ids.push(name);
            }
        }
    }
    for id in dead_ids {
        let dir = PathBuf::from("/tmp").join(&id);
        // The view mount point is only ever mounted inside namespaces; nothing is mounted here.
        let _ = fs::remove_dir_all(&dir);
    }
}

impl Bed {
    /// Builds the bed, or explains why namespaces are unavailable. Panics on any other problem.
    pub fn new(names: &[&str]) -> Result<Bed, Unavailable> {
        require_root_tools();
        cleanup_leftovers();
        let dir = Scratch::short(PREFIX);
        let root = dir.path().to_path_buf();
        let id = dir
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        // Owner first: a concurrent cleanup must never take a bed being built for a leftover.
        let me = std::process::id();
        fs::write(
            root.join("owner"),
            format!("{me} {}\n", start_time(me).unwrap_or_default()),
        )
        .unwrap();
        let mut bed = Bed {
            br_ns: format!("{id}-br"),
            id,
            root,
            dir: Some(dir),
            hosts: Vec::new(),
            namespaces: Vec::new(),
            children: Vec::new(),
        };
        if let Err(e) = ip(&["netns", "add", &bed.br_ns]) {
            return Err(Unavailable(e));
        }
        bed.namespaces.push(bed.br_ns.clone());
        let br = bed.br_ns.clone();
        let setup = || -> Result<(), String> {
            ip(&["-n", &br, "link", "set", "lo", "up"])?;
            ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
            ip(&["-n", &br, "link", "set", "br0", "up"])
        };
        if let Err(e) = setup() {
            return Err(Unavailable(e));
        }
        fs::create_dir_all(bed.view()).unwrap();
        fs::create_dir_all(bed.root.join("keys")).unwrap();
        fs::write(bed.root.join("empty-bashrc"), "").unwrap();
        keygen(&bed.client_key(), "bm-chain-client");
        let mut known = String::new();
        for (i, name) in names.iter().enumerate() {
            let ns = format!("{}-{name}", bed.id);
            ip(&["netns", "add", &ns]).map_err(Unavailable)?;
            bed.namespaces.push(ns.clone());
            let addr = format!("10.213.0.{}", 21 + i);
            let port = format!("v{i}");
            let r = (|| {
                ip(&["-n", &ns, "link", "set", "lo", "up"])?;
                ip(&[
                    "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ])?;
                ip(&["-n", &br, "link", "set", &port, "master", "br0"])?;
                ip(&["-n", &br, "link", "set", &port, "up"])?;
                ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    "eth0",
                ])?;
                ip(&["-n", &ns, "link", "set", "eth0", "up"])
            })();
            r.map_err(Unavailable)?;
            let fs_dir = bed.root.join("fs").join(name);
            fs::create_dir_all(&fs_dir).unwrap();
            let sshd_dir = bed.root.join("sshd").join(name);
            fs::create_dir_all(&sshd_dir).unwrap();
            keygen(
                &sshd_dir.join("ssh_host_ed25519_key"),
                &format!("bm-chain-{name}"),
            );
            known.push_str(&format!(
                "{addr} {}\n",
                pubkey_fields(&sshd_dir.join("ssh_host_ed25519_key.pub"))
            ));
            bed.hosts.push(Host {
                name: name.to_string(),
                ns,
                addr,
                fs: fs_dir,
                port,
                sshd_dir,
                sshd: None,
            });
        }
        fs::write(bed.known_hosts(), known).unwrap();
        fs::copy(
            bed.client_key().with_extension("pub"),
            bed.root.join("keys/authorized_keys"),
        )
        .unwrap();
        for name in names {
            bed.start_sshd(name);
        }
        // Every host reaches every other over ssh, from inside the namespaces.
        for a in names {
            for b in names {
                if a != b {
                    let out = bed
                        .ssh(a, b, "true")
                        .output()
                        .expect("run ssh inside the bed");
                    assert!(
                        out.status.success(),
                        "ssh {a} -> {b} failed: {}\nsshd log of {b}:\n{}",
                        String::from_utf8_lossy(&out.stderr),
                        bed.sshd_log(b)
                    );
                }
            }
        }
        Ok(bed)
    }

    /// Like [`Bed::new`], but prints `SKIPPED: …` and returns None when namespaces are not
    /// available, unless `CI` is set: CI can create them, so there it fails.
    pub fn new_or_skip(test: &str, names: &[&str]) -> Option<Bed> {
        match Bed::new(names) {
            Ok(b) => Some(b),
            Err(Unavailable(why)) => {
                let msg = format!(
                    "SKIPPED: {test}: cannot create network namespaces ({why}); \
                     the multi-host chain tests need root with CAP_SYS_ADMIN and CAP_NET_ADMIN"
                );
                if std::env::var_os("CI").is_some() {
                    panic!("{msg} (CI is set, so this is a failure)");
                }
                eprintln!("\n{}\n{msg}\n{}\n", "*".repeat(78), "*".repeat(78));
                None
            }
        }
    }

    /// The path at which every host sees its own files.
    pub fn view(&self) -> PathBuf {
        self.root.join("host")
    }
    pub fn client_key(&self) -> PathBuf {
        self.root.join("keys/client_ed25519")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.root.join("keys/known_hosts")
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} in the bed"))
    }

    fn host_mut(&mut self, name: &str) -> &mut Host {
        self.hosts.iter_mut().find(|h| h.name == name).unwrap()
    }

    /// `program args…` to run inside `host`: its network namespace and its view of the files.
    /// `ip netns exec` and `sh` both exec, so the child's pid is the program's.
    pub fn command(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let h = self.host(host);
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &h.ns, "sh", "-c"])
            .arg(r#"mount --bind "$1" "$2" && mount --bind "$3" /root/.bashrc && shift 3 && exec "$@""#)
            .arg("sh")
            .arg(&h.fs)
            .arg(self.view())
            .arg(self.root.join("empty-bashrc"))
            .arg(program);
        c.stdin(Stdio::null());
        c
    }

    /// `ssh` from `from` to `to` running `cmd`, with the bed's key and known_hosts.
    pub fn ssh(&self, from: &str, to: &str, cmd: &str) -> Command {
        let mut c = self.command(from, "ssh");
        c.args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .arg("-i")
            .arg(self.client_key())
            .args(["-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5"])
            .arg(format!("root@{}", self.host(to).addr))
            .arg(cmd);
        c
    }

    /// Starts `program` inside `host` with stdout and stderr appended to `log`; killed on drop.
    /// Returns its pid.
    pub fn spawn(&mut self, host: &str, program: &Path, args: &[&str], log: &Path) -> u32 {
        let f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut c = self.command(host, program);
        c.args(args).stdout(f.try_clone().unwrap()).stderr(f);
        die_with_parent(&mut c);
        let child = c.spawn().expect("spawn inside the bed");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Waits for a child started with [`Bed::spawn`] to exit (after a signal); returns its code.
    pub fn reap(&mut self, pid: u32, timeout: Duration) -> Option<std::process::ExitStatus> {
        let i = self.children.iter().position(|c| c.id() == pid)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.children[i].try_wait() {
                // Already reaped by try_wait; wait() returns the same status at once.
                let _ = self.children.remove(i).wait();
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, pid: u32, sig: Signal) {
        assert!(
            self.children.iter().any(|c| c.id() == pid),
            "pid {pid} is not ours"
        );
        kill(Pid::from_raw(pid as i32), sig).unwrap();
    }

    /// Starts `host`'s sshd (foreground, our child) and waits until it accepts connections.
    pub fn start_sshd(&mut self, host: &str) {
        let h = self.host(host);
        let d = h.sshd_dir.clone();
        let keys = self.root.join("keys");
        let cfg = format!(
            "# sshd of fake host {name} (backupmanager chain test bed)\n\
             Port 22\nListenAddress {addr}\n\
             HostKey {d}/ssh_host_ed25519_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {keys}/authorized_keys\n\
             PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nUseDNS no\nPrintMotd no\nPrintLastLog no\nX11Forwarding no\n\
             MaxStartups 100:30:200\nMaxSessions 64\nLogLevel INFO\n",
            name = h.name,
            addr = h.addr,
            d = d.display(),
            keys = keys.display()
        );
        fs::write(d.join("sshd_config"), cfg).unwrap();
        fs::create_dir_all("/run/sshd").expect("create /run/sshd (sshd privsep dir)");
        let _ = fs::remove_file(d.join("sshd.pid"));
        let errlog = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("sshd.stderr"))
            .unwrap();
        let mut c = self.command(host, SSHD);
        c.arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdout(errlog.try_clone().unwrap())
            .stderr(errlog);
        die_with_parent(&mut c);
        let child = c.spawn().expect("spawn sshd");
        self.host_mut(host).sshd = Some(child);
        let pidfile = d.join("sshd.pid");
        let stderr = d.join("sshd.stderr");
        let deadline = Instant::now() + Duration::from_secs(10);
        // sshd -D writes its pid file once it listens.
        while !pidfile.exists() {
            let exited = self.host_mut(host).sshd.as_mut().unwrap().try_wait();
            if matches!(exited, Ok(Some(_))) || Instant::now() >= deadline {
                panic!(
                    "sshd of {host} did not start: {}{}",
                    fs::read_to_string(&stderr).unwrap_or_default(),
                    fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops `host`'s sshd and every session it spawned (so ControlMaster connections to it drop).
    pub fn stop_sshd(&mut self, host: &str) {
        let Some(child) = self.host_mut(host).sshd.take() else {
            return;
        };
        stop_sshd_child(child);
    }

    pub fn sshd_log(&self, host: &str) -> String {
        fs::read_to_string(self.host(host).sshd_dir.join("sshd.log")).unwrap_or_default()
    }

    /// Cuts `host` off the bridge (its veth's bridge end goes down) or reconnects it.
    pub fn set_link(&self, host: &str, up: bool) {
        let port = &self.host(host).port;
        ip(&[
            "-n",
            &self.br_ns,
            "link",
            "set",
            port,
            if up { "up" } else { "down" },
        ])
        .unwrap();
    }
}

/// The child gets SIGKILL if the test thread that started it dies without running Drop.
pub fn die_with_parent(c: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: only async-signal-safe syscalls.
    unsafe {
        c.pre_exec(move || {
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let names: Vec<String> = self.hosts.iter().map(|h| h.name.clone()).collect();
        for n in names {
            self.stop_sshd(&n);
        }
        // Whatever is left inside our namespaces (ssh masters, sessions, rsync): by pid.
        for ns in self.namespaces.iter().rev() {
            destroy_ns(ns);
        }
        if std::env::var_os("BM_KEEP_BED").is_some() {
            eprintln!("chain bed: keeping {} (BM_KEEP_BED)", self.root.display());
            let _ = fs::remove_file(self.root.join("owner"));
            if let Some(d) = self.dir.take() {
                d.keep();
            }
        } else {
            drop(self.dir.take());
        }
    }
}
