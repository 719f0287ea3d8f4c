//! A small etcd v3 client over the JSON gateway (`/v3/...` POST endpoints) with a blocking
//! HTTP client: ranges, transactions, leases and watches, each request failing over endpoint by
//! endpoint with a few seconds' timeout each.
//!
//! Fails closed: anything but a well-formed answer from a member is an error. A member that is
//! unreachable, times out or answers that it has no leader (no quorum) makes the next endpoint
//! be tried; when none answers the error names etcd and every endpoint.
//!
//! Must not: know about locks, slots or runs (the backend does), or retry a request on the same
//! endpoint in a loop.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};

use super::b64;
use crate::config::coord::EtcdSettings;

/// The longest one request may take on one endpoint.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Connecting to one endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No member gave a well-formed answer (down, cut off, or without quorum).
    #[error("etcd unavailable (no quorum or unreachable) at {endpoints}: {last}")]
    Unavailable { endpoints: String, last: String },
    /// A member answered, refusing the request.
    #[error("etcd at {endpoint} refused {what}: {message}")]
    Refused {
        endpoint: String,
        what: String,
        message: String,
    },
    /// A member answered something we cannot read.
    #[error("etcd at {endpoint}: malformed answer to {what}: {message}")]
    Malformed {
        endpoint: String,
        what: String,
        message: String,
    },
    #[error("etcd settings: {0}")]
    Setup(String),
}

impl EtcdError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, EtcdError::Unavailable { .. })
    }

    /// etcd says the lease a request named no longer exists (it expired).
    pub fn is_lease_gone(&self) -> bool {
        matches!(self, EtcdError::Refused { message, .. } if message.contains("requested lease not found"))
    }
}

/// One key as etcd returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

/// What a watch saw before it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// A key in the range was deleted (or expired).
    Deleted,
    /// The watch ended without a deletion (timeout, cancelled by the server, compaction).
    Ended,
}

/// The etcd cluster, reached through its members' JSON gateways.
pub struct Client {
    endpoints: Vec<String>,
    settings: EtcdSettings,
    /// Built on first use (it reads the PEM and password files), so building a plan touches
    /// no file.
    setup: OnceLock<Result<Setup, String>>,
    token: Mutex<Option<String>>,
    /// The endpoint that answered last: tried first next time.
    preferred: AtomicUsize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "etcd {}", self.endpoints.join(","))
    }
}

fn read_pem(path: &std::path::Path, what: &str) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path)
        .map_err(|e| EtcdError::Setup(format!("cannot read {what} {}: {e}", path.display())))
}

/// The HTTP agent (with TLS settings) and the login, read from the configured files.
struct Setup {
    agent: ureq::Agent,
    credentials: Option<(String, String)>,
}

fn build_setup(s: &EtcdSettings) -> Result<Setup, EtcdError> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let mut tls = TlsConfig::builder().root_certs(RootCerts::PlatformVerifier);
    if let Some(ca) = &s.ca_file {
        let pem = read_pem(ca, "ca_file")?;
        let certs = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect::<Vec<Certificate<'static>>>();
        if certs.is_empty() {
            return Err(EtcdError::Setup(format!(
                "ca_file {} holds no PEM certificate",
                ca.display()
            )));
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    if let (Some(cert), Some(key)) = (&s.cert_file, &s.key_file) {
        let pem = read_pem(cert, "cert_file")?;
        let chain = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect::<Vec<_>>();
        let key = PrivateKey::from_pem(&read_pem(key, "key_file")?)
            .map_err(|e| EtcdError::Setup(format!("key_file {}: {e}", key.display())))?;
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    let credentials = match (&s.user, &s.password_file) {
        (Some(u), Some(p)) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                EtcdError::Setup(format!("cannot read password_file {}: {e}", p.display()))
            })?;
            let pw = text.lines().next().unwrap_or("").to_string();
            Some((u.clone(), pw))
        }
        _ => None,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .tls_config(tls.build())
        .build()
        .into();
    Ok(Setup { agent, credentials })
}

impl Client {
    pub fn new(s: &EtcdSettings) -> Client {
        Client {
            endpoints: s.endpoints.clone(),
            settings: s.clone(),
            setup: OnceLock::new(),
            token: Mutex::new(None),
            preferred: AtomicUsize::new(0),
        }
    }

    /// The HTTP agent and credentials, made once (an error is kept and repeated).
    fn setup(&self) -> Result<&Setup, EtcdError> {
        self.setup
            .get_or_init(|| build_setup(&self.settings).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| EtcdError::Setup(e.clone()))
    }

    pub fn endpoints(&self) -> String {
        self.endpoints.join(", ")
    }

    /// Endpoint indexes, the one that answered last first.
    fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let first = self.preferred.load(Ordering::Relaxed) % self.endpoints.len().max(1);
        (0..self.endpoints.len()).map(move |i| (first + i) % self.endpoints.len())
    }

    /// POSTs `body` to `path` on the first member that answers well-formed; fails over on
    /// transport errors, timeouts and "no leader" answers.
    pub fn call(&self, path: &str, what: &str, body: &Value) -> Result<Value, EtcdError> {
        let mut last = String::from("no endpoints");
        for i in self.order() {
            let endpoint = &self.endpoints[i];
            match self.call_one(endpoint, path, what, body, true) {
                Ok(v) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(Failure::Next(why)) => last = format!("{endpoint}: {why}"),
                Err(Failure::Final(e)) => return Err(e),
            }
        }
        Err(EtcdError::Unavailable {
            endpoints: self.endpoints(),
            last,
        })
    }

    fn call_one(
        &self,
        endpoint: &str,
        path: &str,
        what: &str,
        body: &Value,
        may_login: bool,
    ) -> Result<Value, Failure> {
        let token = self.token(endpoint)?;
        let setup = self.setup().map_err(Failure::Final)?;
        let mut req = setup.agent.post(format!("{endpoint}{path}"));
        if let Some(t) = &token {
            req = req.header("Authorization", t);
        }
        let mut resp = req
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| Failure::Next(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(|e| Failure::Next(format!("reading the answer: {e}")))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            if status == 200 {
                Failure::Final(EtcdError::Malformed {
                    endpoint: endpoint.into(),
                    what: what.into(),
                    message: e.to_string(),
                })
            } else {
                Failure::Next(format!("HTTP {status}"))
            }
        })?;
        if status == 200 && v.get("error").is_none() {
            return Ok(v);
        }
        let message = v
            .get("message")
            .or(v.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // No leader, a leader change, a timeout inside the cluster: another member may do.
        if status >= 500 && !message.contains("requested lease not found") {
            return Err(Failure::Next(format!("HTTP {status}: {message}")));
        }
        if may_login && setup.credentials.is_some() && message.contains("invalid auth token") {
            *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return self.call_one(endpoint, path, what, body, false);
        }
        Err(Failure::Final(EtcdError::Refused {
            endpoint: endpoint.into(),
            what: what.into(),
            message: format!("HTTP {status}: {message}"),
        }))
    }

    /// The auth token, logging in at `endpoint` when there are credentials and none yet.
    fn token(&self, endpoint: &str) -> Result<Option<String>, Failure> {
        let setup = self.setup().map_err(Failure::Final)?;
        let Some((user, password)) = &setup.credentials else {
            return Ok(None);
        };
        if let Some(t) = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(Some(t));
        }
        let mut resp = setup
            .agent
            .post(format!("{endpoint}/v3/auth/authenticate"))
            .send(json!({"name": user, "password": password}).to_string())
            .map_err(|e| Failure::Next(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::Next(e.to_string()))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match v.get("token").and_then(Value::as_str) {
            Some(t) if status == 200 => {
                *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.to_string());
                Ok(Some(t.to_string()))
            }
            _ if status >= 500 => Err(Failure::Next(format!("HTTP {status} logging in"))),
            _ => Err(Failure::Final(EtcdError::Refused {
                endpoint: endpoint.into(),
                what: format!("login as {user}"),
                message: format!("HTTP {status}: {}", text.trim()),
            })),
        }
    }

    /// Grants a lease of `ttl`; returns its id.
    pub fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let v = self.call(
            "/v3/lease/grant",
            "a lease grant",
            &json!({"TTL": ttl.as_secs()}),
        )?;
        let id = int_field(&v, "ID");
        match id {
            Some(id) if id != 0 => Ok(id),
            _ => Err(self.malformed("a lease grant", &v)),
        }
    }

    /// Renews `lease`; returns the TTL left (0: the lease is gone).
    pub fn keep_alive(&self, lease: i64) -> Result<i64, EtcdError> {
        let v = self.call(
            "/v3/lease/keepalive",
            "a lease keep-alive",
            &json!({"ID": lease.to_string()}),
        )?;
        // The gateway wraps stream answers in "result".
        let r = v.get("result").unwrap_or(&v);
        if r.get("ID").is_none() && r.get("header").is_none() {
            return Err(self.malformed("a lease keep-alive", &v));
        }
        Ok(int_field(r, "TTL").unwrap_or(0))
    }

    pub fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        match self.call(
            "/v3/lease/revoke",
            "a lease revoke",
            &json!({"ID": lease.to_string()}),
        ) {
            Ok(_) => Ok(()),
            Err(EtcdError::Refused { message, .. }) if message.contains("lease not found") => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Keys from `key` (up to `range_end`, or just `key`), sorted by creation revision.
    /// Returns the store revision with them.
    pub fn range(&self, key: &str, range_end: Option<&str>) -> Result<(i64, Vec<Kv>), EtcdError> {
        let mut body = json!({"key": b64::encode(key.as_bytes()), "sort_order": "ASCEND", "sort_target": "CREATE"});
        if let Some(end) = range_end {
            body["range_end"] = json!(b64::encode(end.as_bytes()));
        }
        let v = self.call("/v3/kv/range", "a range", &body)?;
        let rev = self.revision(&v, "a range")?;
        let kvs = self.kvs(&v, "a range")?;
        Ok((rev, kvs))
    }

    /// A transaction: `compare`, then `success` or `failure` (request objects as the gateway
    /// takes them). Returns (succeeded, revision, responses).
    pub fn txn(
        &self,
        compare: Vec<Value>,
        success: Vec<Value>,
        failure: Vec<Value>,
    ) -> Result<(bool, i64, Vec<Value>), EtcdError> {
        let v = self.call(
            "/v3/kv/txn",
            "a transaction",
            &json!({"compare": compare, "success": success, "failure": failure}),
        )?;
        let rev = self.revision(&v, "a transaction")?;
        let ok = v.get("succeeded").and_then(Value::as_bool).unwrap_or(false);
        let responses = v
            .get("responses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok((ok, rev, responses))
    }

    /// Watches `key` (to `range_end`) from `start_revision` until a deletion, the end of the
    /// watch, or `timeout`. Any event stream problem ends the watch (the caller re-checks).
    /// Only deletions for which `wake` (given the deleted key) says true end it as
    /// [`Watched::Deleted`].
    pub fn watch(
        &self,
        key: &str,
        range_end: Option<&str>,
        start_revision: i64,
        timeout: Duration,
        wake: impl FnMut(&str) -> bool,
    ) -> Result<Watched, EtcdError> {
        Ok(
            match self.open_watch(key, range_end, start_revision, timeout)? {
                Some(reader) => scan_watch(reader, wake),
                None => Watched::Ended,
            },
        )
    }

    /// Opens a watch stream on `key` (to `range_end`) from `start_revision` on the first member
    /// that accepts it; the stream ends by itself after `timeout`. `None` when opening it took
    /// the whole `timeout`. The reader yields the gateway's JSON messages, one after another.
    pub fn open_watch(
        &self,
        key: &str,
        range_end: Option<&str>,
        start_revision: i64,
        timeout: Duration,
    ) -> Result<Option<impl Read>, EtcdError> {
        let mut req = json!({"key": b64::encode(key.as_bytes()), "start_revision": start_revision.to_string()});
        if let Some(end) = range_end {
            req["range_end"] = json!(b64::encode(end.as_bytes()));
        }
        let body = json!({"create_request": req}).to_string();
        let mut last = String::from("no endpoints");
        for i in self.order() {
            let endpoint = &self.endpoints[i];
            let token = match self.token(endpoint) {
                Ok(t) => t,
                Err(Failure::Next(why)) => {
                    last = why;
                    continue;
                }
                Err(Failure::Final(e)) => return Err(e),
            };
            let mut r = self
                .setup()?
                .agent
                .post(format!("{endpoint}/v3/watch"))
                .config()
                .timeout_global(Some(timeout))
                .build();
            if let Some(t) = &token {
                r = r.header("Authorization", t);
            }
            let resp = match r.send(body.clone()) {
                Ok(resp) if resp.status() == 200 => resp,
                Ok(resp) => {
                    last = format!("{endpoint}: HTTP {}", resp.status());
                    continue;
                }
                Err(ureq::Error::Timeout(_)) => return Ok(None),
                Err(e) => {
                    last = format!("{endpoint}: {e}");
                    continue;
                }
            };
            self.preferred.store(i, Ordering::Relaxed);
            return Ok(Some(resp.into_body().into_reader()));
        }
        Err(EtcdError::Unavailable {
            endpoints: self.endpoints(),
            last,
        })
    }

    fn revision(&self, v: &Value, what: &str) -> Result<i64, EtcdError> {
        v.get("header")
            .and_then(|h| int_field(h, "revision"))
            .ok_or_else(|| self.malformed(what, v))
    }

    pub fn kvs(&self, v: &Value, what: &str) -> Result<Vec<Kv>, EtcdError> {
        let Some(list) = v.get("kvs") else {
            return Ok(Vec::new());
        };
        list.as_array()
            .ok_or_else(|| self.malformed(what, v))?
            .iter()
            .map(|kv| parse_kv(kv).ok_or_else(|| self.malformed(what, v)))
            .collect()
    }

    fn malformed(&self, what: &str, v: &Value) -> EtcdError {
        let mut text = v.to_string();
        text.truncate(200);
        EtcdError::Malformed {
            endpoint: self.endpoints
                [self.preferred.load(Ordering::Relaxed) % self.endpoints.len().max(1)]
            .clone(),
            what: what.into(),
            message: text,
        }
    }
}

enum Failure {
    /// Try the next endpoint.
    Next(String),
    /// A well-formed refusal, or an answer we cannot read: stop.
    Final(EtcdError),
}

/// Reads watch messages until a DELETE event that `wake` accepts (or the stream ends). A
/// deleted key that cannot be read wakes the watcher (it checks again; never a missed wake-up).
fn scan_watch(reader: impl Read, mut wake: impl FnMut(&str) -> bool) -> Watched {
    let stream = serde_json::Deserializer::from_reader(reader).into_iter::<Value>();
    for msg in stream {
        let Ok(msg) = msg else {
            return Watched::Ended;
        };
        let r = msg.get("result").unwrap_or(&msg);
        if r.get("canceled").and_then(Value::as_bool) == Some(true) || msg.get("error").is_some() {
            return Watched::Ended;
        }
        for e in r
            .get("events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if e.get("type").and_then(Value::as_str) != Some("DELETE") {
                continue;
            }
            let key = e
                .get("kv")
                .and_then(|kv| kv.get("key"))
                .and_then(Value::as_str)
                .and_then(b64::decode)
                .and_then(|b| String::from_utf8(b).ok());
            if key.is_none_or(|k| wake(&k)) {
                return Watched::Deleted;
            }
        }
    }
    Watched::Ended
}

/// An int64 field: the gateway writes them as strings; absent means 0 (proto3 defaults).
pub fn int_field(v: &Value, key: &str) -> Option<i64> {
    match v.get(key) {
        None => Some(0),
        Some(Value::String(s)) => s.parse().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    }
}

/// One key of a range answer or a watch event; `None` when a field does not parse.
pub fn parse_kv(kv: &Value) -> Option<Kv> {
    let text = |k: &str| -> Option<String> {
        match kv.get(k) {
            None => Some(String::new()),
            Some(Value::String(s)) => String::from_utf8(b64::decode(s)?).ok(),
            _ => None,
        }
    };
    Some(Kv {
        key: text("key")?,
        value: text("value")?,
        create_revision: int_field(kv, "create_revision")?,
        mod_revision: int_field(kv, "mod_revision")?,
        lease: int_field(kv, "lease")?,
    })
}

/// The end of the range of every key starting with `prefix`.
pub fn prefix_end(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    while let Some(last) = b.pop() {
        if last < 0xff {
            b.push(last + 1);
            return String::from_utf8_lossy(&b).into_owned();
        }
    }
    "\0".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_stream_wakes_on_delete_only() {
        let created = r#"{"result":{"header":{"revision":"5"},"created":true}}"#;
        let put = r#"{"result":{"header":{"revision":"6"},"events":[{"kv":{"key":"YQ=="}}]}}"#;
        let del = r#"{"result":{"header":{"revision":"7"},"events":[{"type":"DELETE","kv":{"key":"YQ=="}}]}}"#;
        let s = format!("{created}\n{put}\n{del}\n");
        assert_eq!(scan_watch(s.as_bytes(), |_| true), Watched::Deleted);
        // A deletion the watcher does not wait for ("a") is passed over.
        assert_eq!(scan_watch(s.as_bytes(), |k| k != "a"), Watched::Ended);
        let s = format!("{created}\n{put}\n");
        assert_eq!(scan_watch(s.as_bytes(), |_| true), Watched::Ended);
        let cancel = r#"{"result":{"canceled":true,"compact_revision":"3"}}"#;
        assert_eq!(scan_watch(cancel.as_bytes(), |_| true), Watched::Ended);
        let garbled = r#"{"result":{"events":[{"type":"DELETE","kv":{"key":"!!"}}]}}"#;
        assert_eq!(scan_watch(garbled.as_bytes(), |_| false), Watched::Deleted);
    }

    #[test]
    fn kvs_parse_and_fail_closed() {
        let kv = json!({"key": "YQ==", "value": "Yg==", "create_revision": "4", "mod_revision": "4", "lease": "99"});
        let p = parse_kv(&kv).unwrap();
        assert_eq!(
            (p.key.as_str(), p.value.as_str(), p.create_revision, p.lease),
            ("a", "b", 4, 99)
        );
        assert!(parse_kv(&json!({"key": "!!", "create_revision": "4"})).is_none());
        assert!(parse_kv(&json!({"key": "YQ==", "create_revision": "x"})).is_none());
        assert_eq!(prefix_end("/bm/locks/"), "/bm/locks0");
    }
}
