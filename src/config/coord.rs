//! Fleet coordination settings: which lock backend a host uses (`lock_backend`), how it reaches
//! etcd (`etcd:`), and the counting semaphores jobs share (`slots:`, `uses_slots`).
//!
//! Plain data, validated by `decode/coord.rs`. Must not: connect anywhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::Span;

/// Where lock_files, blocks_on and slots live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockBackendKind {
    /// Lock files, local or over ssh (the default).
    #[default]
    Files,
    /// Keys in etcd: `lock_files`/`blocks_on` entries are only keys, no ssh connection.
    Etcd,
    /// Migration: etcd first, then the lock files; release in reverse.
    Both,
}

impl LockBackendKind {
    pub fn uses_etcd(self) -> bool {
        matches!(self, LockBackendKind::Etcd | LockBackendKind::Both)
    }

    pub fn uses_files(self) -> bool {
        matches!(self, LockBackendKind::Files | LockBackendKind::Both)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LockBackendKind::Files => "files",
            LockBackendKind::Etcd => "etcd",
            LockBackendKind::Both => "both",
        }
    }
}

/// How to reach the etcd cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// `https://host:port` (or `http://` on a loopback address), tried in order.
    pub endpoints: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Every key backupmanager writes starts with this (no trailing `/`).
    pub prefix: String,
    /// The TTL of each run's lease.
    pub lease_ttl: Duration,
}

/// Fleet-wide coordination: the backend, etcd, and the slots.
#[derive(Debug, Clone, Default)]
pub struct Coordination {
    pub lock_backend: LockBackendKind,
    /// Set whenever `lock_backend` uses etcd (validation refuses it missing then).
    pub etcd: Option<EtcdSettings>,
    /// Slot name → how many runs (fleet-wide) may hold it at once.
    pub slots: BTreeMap<String, u32>,
}

/// The most runs one slot may admit.
pub const MAX_SLOT: i64 = 10_000;
/// The shortest lease TTL accepted.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(5);

/// A `uses_slots` entry of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotUse {
    pub name: String,
    pub span: Span,
}

/// True for a host name or address on the loopback interface (where plain http is accepted).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h == "::1"
        || h.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Splits `scheme://host:port` (an optional trailing `/`) into (scheme, host, port).
pub fn split_endpoint(url: &str) -> Option<(&str, &str, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('@') {
        return None;
    }
    let (host, port) = rest.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    (!host.is_empty()).then_some((scheme, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_and_loopback() {
        assert_eq!(
            split_endpoint("http://127.0.0.1:2379"),
            Some(("http", "127.0.0.1", 2379))
        );
        assert_eq!(
            split_endpoint("https://[::1]:2379/"),
            Some(("https", "[::1]", 2379))
        );
        assert_eq!(split_endpoint("127.0.0.1:2379"), None);
        assert_eq!(split_endpoint("http://h:0"), None);
        assert_eq!(split_endpoint("http://u@h:1"), None);
        assert_eq!(split_endpoint("ftp://h:1"), None);
        assert!(is_loopback_host("127.0.0.5"));
        assert!(is_loopback_host("[::1]"));
        assert!(!is_loopback_host("10.0.0.5"));
    }
}
