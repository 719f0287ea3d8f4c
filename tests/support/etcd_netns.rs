//! [`SplitCluster`]: a real 3-member etcd cluster spread over two network namespaces, so that one
//! member (and the clients that talk only to it) can be cut off from the other two.
//!
//! Topology: namespace `<id>-hub` holds members m0 and m1, namespace `<id>-cut` holds m2; one
//! veth pair joins them (`hub0` 10.213.1.1/24 in the hub, `eth0` 10.213.1.2/24 in the cut one).
//! Peers talk over those addresses; each member serves clients on 127.0.0.1 of its own
//! namespace only, so a client's `etcd.endpoints` decide which side it can reach (and stay
//! plain-http loopback URLs, which the config accepts). [`SplitCluster::cut`] takes the hub's end
//! of the veth down: the cut member loses its peers, its clients keep their connection to it.
//! Nothing is created in the root namespace; the test process reaches the members only through
//! [`SplitCluster::command`] (`ip netns exec`).
//!
//! Names and cleanup as [`super::netns`]: the directory `/tmp/bmc-XXXXXX` holds an `owner` file
//! (pid and start time), so `netns::cleanup_leftovers` removes a crashed run's namespaces;
//! on drop every member is killed by pid, then whatever is left inside the two namespaces, then
//! the namespaces and the directory go.
//!
//! Must not: touch the root namespace's interfaces, or kill anything but our children and the
//! processes inside our own namespaces.
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::netns::{cleanup_leftovers, destroy_ns, die_with_parent, ip, Unavailable, PREFIX};
use super::procfs::start_time;
use super::scratch::Scratch;

const HUB_ADDR: &str = "10.213.1.1";
const CUT_ADDR: &str = "10.213.1.2";

struct Member {
    name: &'static str,
    ns: String,
    /// The address its peer port listens on (its side of the veth).
    addr: &'static str,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

pub struct SplitCluster {
    dir: Option<Scratch>,
    pub hub: String,
    pub cut: String,
    namespaces: Vec<String>,
    members: Vec<Member>,
}

impl SplitCluster {
    /// Builds the namespaces and starts the members, or says why namespaces are unavailable.
    pub fn start() -> Result<SplitCluster, Unavailable> {
        super::etcd::require_etcd();
        super::require_root_tools();
        cleanup_leftovers();
        let dir = Scratch::short(PREFIX);
        let id = dir
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        // Owner first: a concurrent cleanup must never take this for a leftover.
        let me = std::process::id();
        fs::write(
            dir.p("owner"),
            format!("{me} {}\n", start_time(me).unwrap_or_default()),
        )
        .unwrap();
        let (hub, cut) = (format!("{id}-hub"), format!("{id}-cut"));
        let mut c = SplitCluster {
            dir: Some(dir),
            hub: hub.clone(),
            cut: cut.clone(),
            namespaces: Vec::new(),
            members: Vec::new(),
        };
        for ns in [&hub, &cut] {
            ip(&["netns", "add", ns]).map_err(Unavailable)?;
            c.namespaces.push(ns.clone());
            ip(&["-n", ns, "link", "set", "lo", "up"]).map_err(Unavailable)?;
        }
        (|| {
            ip(&[
                "-n", &hub, "link", "add", "hub0", "type", "veth", "peer", "name", "eth0", "netns",
                &cut,
            ])?;
            ip(&[
                "-n",
                &hub,
                "addr",
                "add",
                &format!("{HUB_ADDR}/24"),
                "dev",
                "hub0",
            ])?;
            ip(&[
                "-n",
                &cut,
                "addr",
                "add",
                &format!("{CUT_ADDR}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &hub, "link", "set", "hub0", "up"])?;
            ip(&["-n", &cut, "link", "set", "eth0", "up"])
        })()
        .map_err(Unavailable)?;
        // Fresh namespaces: fixed ports cannot collide with anything.
        c.members = vec![
            Member::new("m0", &hub, HUB_ADDR, 2379),
            Member::new("m1", &hub, HUB_ADDR, 2479),
            Member::new("m2", &cut, CUT_ADDR, 2579),
        ];
        for i in 0..3 {
            c.spawn(i);
        }
        c.wait_healthy();
        Ok(c)
    }

    /// `program` inside namespace `ns` (`ip netns exec` execs: the child's pid is the program's).
    pub fn command(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c.stdin(Stdio::null());
        c
    }

    fn spawn(&mut self, i: usize) {
        let initial = self
            .members
            .iter()
            .map(|m| format!("{}=http://{}:{}", m.name, m.addr, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let dir = self.dir.as_ref().unwrap();
        let m = &self.members[i];
        let log = fs::File::create(dir.p(&format!("{}.log", m.name))).unwrap();
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://{}:{}", m.addr, m.peer);
        let mut cmd = SplitCluster::command(&m.ns, "etcd");
        cmd.args(["--name", m.name])
            .arg("--data-dir")
            .arg(dir.p(m.name))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", "new"])
            .args([
                "--initial-cluster-token",
                &format!("bm-split-{}", std::process::id()),
            ])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        die_with_parent(&mut cmd);
        self.members[i].child = Some(cmd.spawn().expect("start etcd in a namespace"));
    }

    /// Client URLs of the members in the hub namespace (m0, m1), valid inside it.
    pub fn hub_endpoints(&self) -> Vec<String> {
        self.members[..2].iter().map(Member::url).collect()
    }

    /// The client URL of the member that can be cut off (m2), valid inside [`Self::cut`].
    pub fn cut_endpoint(&self) -> String {
        self.members[2].url()
    }

    fn etcdctl(&self, ns: &str, endpoints: &[String], args: &[&str]) -> std::process::Output {
        SplitCluster::command(ns, "etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .args(["--command-timeout=3s", "--dial-timeout=2s"])
            .args(args)
            .output()
            .expect("run etcdctl in a namespace")
    }

    fn wait_healthy(&self) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let hub = self.etcdctl(&self.hub, &self.hub_endpoints(), &["endpoint", "health"]);
            let cut = self.etcdctl(&self.cut, &[self.cut_endpoint()], &["endpoint", "health"]);
            if hub.status.success() && cut.status.success() {
                return;
            }
            if Instant::now() > end {
                panic!(
                    "split etcd did not become healthy: {}{}\n{}",
                    String::from_utf8_lossy(&hub.stderr),
                    String::from_utf8_lossy(&cut.stderr),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The value of `key`, read on the hub side: None when the read fails, Some(None) when the
    /// key does not exist.
    pub fn hub_get(&self, key: &str) -> Option<Option<String>> {
        let out = self.etcdctl(
            &self.hub,
            &self.hub_endpoints(),
            &["get", "--print-value-only", key],
        );
        if !out.status.success() {
            return None;
        }
        let v = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        Some((!v.is_empty()).then_some(v))
    }

    /// Cuts m2's namespace off (the hub's end of the veth goes down) or reconnects it.
    pub fn set_link(&self, up: bool) {
        ip(&[
            "-n",
            &self.hub,
            "link",
            "set",
            "hub0",
            if up { "up" } else { "down" },
        ])
        .unwrap();
    }

    /// Which member leads, asked on the hub side ("m0", "m1" or "m2").
    pub fn leader_name(&self) -> String {
        let out = self.etcdctl(
            &self.hub,
            &self.hub_endpoints(),
            &["endpoint", "status", "-w", "json"],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let leader = v[0]["Status"]["leader"].as_u64();
        let members = self.etcdctl(
            &self.hub,
            &self.hub_endpoints(),
            &["member", "list", "-w", "json"],
        );
        let m: serde_json::Value = serde_json::from_slice(&members.stdout).unwrap_or_default();
        m["members"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["ID"].as_u64() == leader)
            .and_then(|x| x["name"].as_str())
            .unwrap_or("?")
            .to_string()
    }

    pub fn logs(&self) -> String {
        let dir = self.dir.as_ref().unwrap();
        self.members
            .iter()
            .map(|m| {
                let t = fs::read_to_string(dir.p(&format!("{}.log", m.name))).unwrap_or_default();
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

impl Member {
    fn new(name: &'static str, ns: &str, addr: &'static str, client: u16) -> Member {
        Member {
            name,
            ns: ns.to_string(),
            addr,
            client,
            peer: client + 1,
            child: None,
        }
    }
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }
}

impl Drop for SplitCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // Whatever is left inside (a run started there by the test): by pid, then the namespaces.
        for ns in self.namespaces.iter().rev() {
            destroy_ns(ns);
        }
        drop(self.dir.take());
    }
}
