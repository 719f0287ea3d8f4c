//! The HTTP side of notifications: one request per destination and event, with ureq (rustls,
//! the platform's CA store, plus a destination's own `ca_file`), a 10 s timeout, and every secret of the destination removed from
//! anything that is logged.
//!
//! Must not: log a URL, token or header value (only [`public_name`]), or retry (a missed
//! notification is a warning; the next run sends again).

use std::time::Duration;

use crate::config::notify::Destination;

/// Every request's limit, connecting included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One message: what happened to which run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Message {
    pub job: String,
    pub run_id: String,
    /// start, success, warning, failure, recovered or overdue.
    pub event: &'static str,
    /// How the run ended (empty for start and overdue).
    pub outcome: String,
    pub message: String,
    pub error_kind: Option<String>,
    pub duration_seconds: Option<f64>,
    pub host: String,
}

impl Message {
    fn title(&self) -> String {
        format!(
            "backupmanager: {} {} on {}",
            self.job, self.event, self.host
        )
    }

    fn text(&self) -> String {
        let mut t = match self.event {
            "start" => format!("run {} of {} started", self.run_id, self.job),
            "overdue" => format!("{}: {}", self.job, self.message),
            _ => format!("run {} of {}: {}", self.run_id, self.job, self.outcome),
        };
        if let Some(d) = self.duration_seconds {
            t.push_str(&format!(" after {d:.0}s"));
        }
        if !self.message.is_empty() && self.event != "overdue" {
            t.push_str(": ");
            t.push_str(&self.message);
        }
        t
    }
}

/// How a heartbeat monitor is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    Start,
    Up,
    Down,
}

/// The service and the URL's scheme and host: all a log line may say about a destination.
pub fn public_name(d: &Destination) -> String {
    let (kind, url) = match d {
        Destination::Healthchecks { ping_url, .. } => ("healthchecks", ping_url),
        Destination::Ntfy { server, .. } => ("ntfy", server),
        Destination::UptimeKuma { push_url, .. } => ("uptime_kuma", push_url),
        Destination::Webhook { url, .. } => ("webhook", url),
    };
    format!("{kind} at {}", origin(url))
}

/// `scheme://host[:port]` of `url`.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // user:password@ is a secret too.
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}")
}

/// What must never be printed about `d`: its URL (and every part after the host), its topic,
/// its header values and its token.
pub fn secrets(d: &Destination, token: Option<&str>) -> Vec<String> {
    let mut s: Vec<String> = Vec::new();
    let mut url = |u: &str| {
        s.push(u.to_string());
        if let Some((_, rest)) = u.split_once("://") {
            if let Some(i) = rest.find(['/', '?']) {
                s.push(rest[i..].to_string());
            }
            if let Some((cred, _)) = rest.split_once('@') {
                s.push(cred.to_string());
            }
        }
    };
    match d {
        Destination::Healthchecks { ping_url, .. } => url(ping_url),
        Destination::UptimeKuma { push_url, .. } => url(push_url),
        Destination::Ntfy { server, topic, .. } => {
            url(server);
            s.push(topic.clone());
        }
        Destination::Webhook {
            url: u, headers, ..
        } => {
            url(u);
            s.extend(headers.iter().map(|(_, v)| v.clone()));
        }
    }
    s.extend(token.map(String::from));
    // Longest first, so a secret inside another is not left half-replaced.
    s.retain(|x| x.len() >= 3);
    s.sort_by_key(|x| std::cmp::Reverse(x.len()));
    s
}

/// `text` with every secret replaced by `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut t = text.to_string();
    for s in secrets {
        t = t.replace(s.as_str(), "***");
    }
    t
}

/// The agent every notification uses: 10 s timeout, HTTP errors as errors, no redirects,
/// certificates checked against the platform's store (which honours `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`).
pub fn agent() -> ureq::Agent {
    build(ureq::tls::RootCerts::PlatformVerifier)
}

/// The agent for `d`: `shared` ([`agent`]), or for a destination with a `ca_file` one that
/// trusts the system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured, as the platform
/// verifier does on Linux) and that file's, for this destination only. The file is read now,
/// so a replaced CA file counts at the next send; an unreadable one is this send's error.
pub fn agent_for(shared: &ureq::Agent, d: &Destination) -> Result<ureq::Agent, String> {
    let Some(file) = d.ca_file() else {
        return Ok(shared.clone());
    };
    let extra = crate::config::ca_file::load(file).map_err(|e| e.to_string())?;
    // The system's store may be partly unreadable (or, with SSL_CERT_FILE pointing nowhere,
    // empty): the CA file's roots are still trusted, as configured.
    let system = rustls_native_certs::load_native_certs().certs;
    let roots: Vec<ureq::tls::Certificate<'static>> = system
        .iter()
        .map(|c| c.as_ref())
        .chain(extra.iter().map(Vec::as_slice))
        .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
        .collect();
    Ok(build(ureq::tls::RootCerts::new_with_certs(&roots)))
}

fn build(roots: ureq::tls::RootCerts) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(true)
        // A redirect would carry the body (and maybe a token) to a place nobody configured.
        .max_redirects(0)
        .tls_config(tls)
        .user_agent(concat!("backupmanager/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// A heartbeat for Healthchecks or Uptime Kuma; `Ok(false)` when `d` is not a heartbeat
/// monitor (or has nothing to say for `beat`).
pub fn beat(agent: &ureq::Agent, d: &Destination, beat: Beat, m: &Message) -> Result<bool, String> {
    match d {
        Destination::Healthchecks { ping_url, .. } => {
            let base = ping_url.trim_end_matches('/');
            let suffix = match beat {
                Beat::Start => "/start",
                Beat::Up => "",
                Beat::Down => "/fail",
            };
            let url = format!("{base}{suffix}?rid={}", rid(&m.run_id));
            agent
                .post(&url)
                .header("Content-Type", "text/plain; charset=utf-8")
                .send(m.text())
                .map_err(|e| e.to_string())?;
            Ok(true)
        }
        Destination::UptimeKuma { push_url, .. } if beat != Beat::Start => {
            let base = push_url.split('?').next().unwrap_or(push_url);
            let status = if beat == Beat::Up { "up" } else { "down" };
            let ping = m
                .duration_seconds
                .map(|d| format!("{}", (d * 1000.0) as u64))
                .unwrap_or_default();
            let url = format!(
                "{base}?status={status}&msg={}&ping={ping}",
                percent(&m.text())
            );
            agent.get(&url).call().map_err(|e| e.to_string())?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A message for ntfy or a webhook; `Ok(false)` for heartbeat monitors.
pub fn message(
    agent: &ureq::Agent,
    d: &Destination,
    m: &Message,
    token: Option<&str>,
) -> Result<bool, String> {
    match d {
        Destination::Ntfy { server, topic, .. } => {
            let url = format!("{}/{}", server.trim_end_matches('/'), percent(topic));
            let priority = match m.event {
                "failure" | "overdue" => "high",
                _ => "default",
            };
            let mut req = agent
                .post(&url)
                .header("Title", m.title())
                .header("Priority", priority)
                .header("Tags", format!("backupmanager,{}", m.event));
            if let Some(t) = token {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            req.send(m.text()).map_err(|e| e.to_string())?;
            Ok(true)
        }
        Destination::Webhook {
            url,
            method,
            headers,
            ..
        } => {
            let body = serde_json::to_string(m).map_err(|e| e.to_string())?;
            let mut req = if method == "PUT" {
                agent.put(url)
            } else {
                agent.post(url)
            };
            req = req.header("Content-Type", "application/json");
            for (k, v) in headers {
                req = req.header(k, v);
            }
            req.send(body).map_err(|e| e.to_string())?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A UUID-shaped id derived from the run id, for Healthchecks' `rid` (which must be a UUID).
pub fn rid(run_id: &str) -> String {
    use std::hash::{Hash, Hasher};
    let h = |salt: u8| {
        let mut s = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut s);
        run_id.hash(&mut s);
        s.finish()
    };
    let x = format!("{:016x}{:016x}", h(1), h(2));
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// Percent-encoding of everything but unreserved characters (RFC 3986).
pub fn percent(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_only_the_origin_is_named() {
        let d = Destination::Webhook {
            url: "https://user:pw@hooks.example:8443/T0K3N/x?key=s3cr3t".into(),
            method: "POST".into(),
            headers: vec![("Authorization".into(), "Bearer abcdef".into())],
            ca_file: None,
        };
        assert_eq!(public_name(&d), "webhook at https://hooks.example:8443");
        let s = secrets(&d, None);
        let err = "io: failed https://user:pw@hooks.example:8443/T0K3N/x?key=s3cr3t, Bearer abcdef; /T0K3N/x?key=s3cr3t";
        let r = redact(err, &s);
        for bad in ["T0K3N", "s3cr3t", "abcdef", "pw@"] {
            assert!(!r.contains(bad), "{r}");
        }
    }

    #[test]
    fn rid_is_a_stable_uuid_shape() {
        let r = rid("20260101T000000-abcdef");
        assert_eq!(r, rid("20260101T000000-abcdef"));
        assert_eq!(r.len(), 36);
        assert_eq!(r.matches('-').count(), 4);
        assert_eq!(percent("a b/ü"), "a%20b%2F%C3%BC");
    }
}
