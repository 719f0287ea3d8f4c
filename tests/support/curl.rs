//! [`curl`]: an HTTP request with the real `curl` (over TCP or `--unix-socket`), its status,
//! headers and body; [`free_port`] for a loopback listener a daemon takes a moment later.
use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// A free loopback port (bound and released: the daemon takes it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A curl response: status, headers (lower-case names), body.
pub struct Got {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Got {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// `curl` with `via` (`--unix-socket PATH` or nothing) and `extra` arguments.
pub fn curl(via: &[&str], url: &str, extra: &[&str]) -> Got {
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "--max-time", "20"])
        .args(via)
        .args(extra)
        .arg(url)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Got {
        status,
        headers,
        body: body.to_string(),
    }
}
