//! [`EtcdCluster`]: a real etcd cluster (the distribution's `etcd` binary) on 127.0.0.1, each
//! member on its own free ports with its data directory in a scratch directory; every member is
//! killed (by pid) and the directory removed on drop.
//!
//! Must not: touch any etcd it did not start, or listen anywhere but 127.0.0.1.
use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::scratch::Scratch;

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Panics with instructions when etcd or etcdctl is missing.
pub fn require_etcd() {
    for p in ["etcd", "etcdctl"] {
        if !super::on_path(p) {
            panic!("{p} is missing: run scripts/test (it installs etcd-server and etcd-client via scripts/deps.sh)");
        }
    }
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

pub struct EtcdCluster {
    dir: Scratch,
    members: Vec<Member>,
    initial: String,
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one answers.
    pub fn start(n: usize) -> EtcdCluster {
        require_etcd();
        let dir = Scratch::short("bm-etcd.");
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: free_port(),
                peer: free_port(),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = EtcdCluster {
            dir,
            members,
            initial,
        };
        for i in 0..n {
            c.spawn(i);
        }
        c.wait_healthy(&(0..n).collect::<Vec<_>>());
        c
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let data = self.dir.p(&m.name);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.p(&format!("{}.log", m.name)))
            .unwrap();
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let state = if data.exists() { "existing" } else { "new" };
        let child = Command::new("etcd")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-state", state])
            .args([
                "--initial-cluster-token",
                &format!("bm-test-{}", std::process::id()),
            ])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[i].child = Some(child);
    }

    /// Client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    fn etcdctl(&self, members: &[usize], args: &[&str]) -> std::process::Output {
        let eps: Vec<String> = members
            .iter()
            .map(|&i| format!("http://127.0.0.1:{}", self.members[i].client))
            .collect();
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", eps.join(",")))
            .args(["--command-timeout=3s", "--dial-timeout=2s"])
            .args(args)
            .output()
            .expect("run etcdctl")
    }

    fn wait_healthy(&self, members: &[usize]) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.etcdctl(members, &["endpoint", "health"]);
            if out.status.success() {
                return;
            }
            if Instant::now() > end {
                panic!(
                    "etcd did not become healthy: {}\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The index of the current leader.
    pub fn leader(&self) -> usize {
        let all: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].child.is_some())
            .collect();
        let out = self.etcdctl(&all, &["endpoint", "status", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
        for s in v.as_array().expect("status list") {
            let st = &s["Status"];
            if st["header"]["member_id"] == st["leader"] {
                let ep = s["Endpoint"].as_str().unwrap();
                return self
                    .members
                    .iter()
                    .position(|m| ep.ends_with(&format!(":{}", m.client)))
                    .unwrap();
            }
        }
        panic!("no leader in {v}");
    }

    /// kill -9 of member `i`.
    pub fn kill9(&mut self, i: usize) {
        self.signal(i, Signal::SIGKILL);
    }

    /// Stops member `i` (SIGTERM) and waits for it.
    pub fn stop(&mut self, i: usize) {
        self.signal(i, Signal::SIGTERM);
    }

    fn signal(&mut self, i: usize, sig: Signal) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), sig);
            let _ = c.wait();
        }
    }

    /// Starts member `i` again (with its data) and waits for the cluster to be healthy.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        let up: Vec<usize> = (0..self.members.len())
            .filter(|&j| self.members[j].child.is_some())
            .collect();
        self.wait_healthy(&up);
    }

    /// etcdctl `args` against every running member; panics unless it succeeds.
    pub fn ctl(&self, args: &[&str]) -> String {
        let up: Vec<usize> = (0..self.members.len())
            .filter(|&j| self.members[j].child.is_some())
            .collect();
        let out = self.etcdctl(&up, args);
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Keys under `prefix`, via etcdctl.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let up: Vec<usize> = (0..self.members.len())
            .filter(|&j| self.members[j].child.is_some())
            .collect();
        let out = self.etcdctl(&up, &["get", "--prefix", "--keys-only", prefix]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let t =
                    fs::read_to_string(self.dir.p(&format!("{}.log", m.name))).unwrap_or_default();
                let lines: Vec<&str> = t.lines().collect();
                format!(
                    "--- {}:\n{}",
                    m.name,
                    lines[lines.len().saturating_sub(10)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.signal(i, Signal::SIGKILL);
        }
    }
}
