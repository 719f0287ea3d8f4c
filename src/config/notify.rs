//! `notify:` and `notify_on:` (per job, and top-level defaults) → [`Notify`].
//!
//! What is sent when lives in [`crate::notify`]; this file only reads the YAML. URLs and token
//! files are secrets: a diagnostic about them quotes the key, never the value.

use std::path::{Path, PathBuf};

use super::decode::Decoder;
use super::fields::{self, HEALTHCHECKS, NOTIFY, NTFY, UPTIME_KUMA, WEBHOOK};
use super::yaml::{Node, Value};

/// When message services (ntfy, webhook) are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotifyOn {
    Start,
    Success,
    Warning,
    Failure,
    Recovered,
    Overdue,
}

impl NotifyOn {
    pub const ALL: [(&'static str, NotifyOn); 6] = [
        ("start", NotifyOn::Start),
        ("success", NotifyOn::Success),
        ("warning", NotifyOn::Warning),
        ("failure", NotifyOn::Failure),
        ("recovered", NotifyOn::Recovered),
        ("overdue", NotifyOn::Overdue),
    ];

    /// `notify_on` when neither the job nor the top level sets it.
    pub const DEFAULT: [NotifyOn; 3] = [NotifyOn::Failure, NotifyOn::Recovered, NotifyOn::Overdue];

    pub fn as_str(self) -> &'static str {
        NotifyOn::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(k, _)| *k)
            .expect("every variant is listed")
    }
}

/// One place notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Pinged at start (`/start`), on success, and on failure (`/fail`).
    Healthchecks {
        ping_url: String,
        ca_file: Option<PathBuf>,
    },
    Ntfy {
        server: String,
        topic: String,
        token_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
    },
    /// Pushed `status=up` on success, `status=down` on failure.
    UptimeKuma {
        push_url: String,
        ca_file: Option<PathBuf>,
    },
    /// A JSON summary.
    Webhook {
        url: String,
        method: String,
        headers: Vec<(String, String)>,
        ca_file: Option<PathBuf>,
    },
}

impl Destination {
    /// Its `ca_file`: extra trusted roots for this endpoint only.
    pub fn ca_file(&self) -> Option<&Path> {
        match self {
            Destination::Healthchecks { ca_file, .. }
            | Destination::Ntfy { ca_file, .. }
            | Destination::UptimeKuma { ca_file, .. }
            | Destination::Webhook { ca_file, .. } => ca_file.as_deref(),
        }
    }
}

/// A job's notifications (its own, or the top-level defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notify {
    pub destinations: Vec<Destination>,
    pub on: Vec<NotifyOn>,
}

/// A key as read: `None` when absent, `Some(None)` when wrong (reported), else its value.
type Read<T> = Option<Option<T>>;

impl Decoder {
    /// `notify` and `notify_on` of one mapping (the top level or a job); each `None` when the
    /// key is absent, `Some(None)` when it is wrong (reported).
    pub(super) fn notify(
        &mut self,
        list: Option<&Node>,
        on: Option<&Node>,
        path: &str,
    ) -> (Read<Vec<Destination>>, Read<Vec<NotifyOn>>) {
        let at = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        let dests = list.map(|n| {
            let p = at("notify");
            let items = self.list(n, &p)?;
            let mut out = Vec::new();
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match self.destination(item, &format!("{p}[{i}]")) {
                    Some(d) => out.push(d),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        });
        let on = on.map(|n| {
            let p = at("notify_on");
            let Value::Seq(items) = &n.value else {
                self.err(n.span.clone(), &p, "expected a list of events");
                return None;
            };
            let mut out = Vec::new();
            for item in items {
                let w = self.string(item, &p)?;
                match NotifyOn::ALL.iter().find(|(k, _)| *k == w) {
                    Some((_, v)) => out.push(*v),
                    None => {
                        self.err(
                            item.span.clone(),
                            &p,
                            format!("unknown notify_on event `{w}`"),
                        )
                        .help =
                            Some("use start, success, warning, failure, recovered, overdue".into());
                        return None;
                    }
                }
            }
            out.sort();
            out.dedup();
            Some(out)
        });
        (dests, on)
    }

    fn destination(&mut self, node: &Node, path: &str) -> Option<Destination> {
        let f = self.fields(node, path, &NOTIFY)?;
        let kinds = [
            ("healthchecks", f.get("healthchecks")),
            ("ntfy", f.get("ntfy")),
            ("uptime_kuma", f.get("uptime_kuma")),
            ("webhook", f.get("webhook")),
        ];
        let given: Vec<_> = kinds.iter().filter(|(_, n)| n.is_some()).collect();
        let [(kind, Some(n))] = given.as_slice() else {
            self.err(
                node.span.clone(),
                path,
                "a notify entry names exactly one of healthchecks, ntfy, uptime_kuma, webhook",
            )
            .help =
                Some("write one list item per service: `- ntfy: {server: ..., topic: ...}`".into());
            return None;
        };
        let p = format!("{path}.{kind}");
        match *kind {
            "healthchecks" => {
                let f = self.fields(n, &p, &HEALTHCHECKS)?;
                let ping_url = self.url(n, f.get("ping_url"), &p, "ping_url")?;
                let ca_file = self.ca_file(f.get("ca_file"), &p)?;
                Some(Destination::Healthchecks { ping_url, ca_file })
            }
            "uptime_kuma" => {
                let f = self.fields(n, &p, &UPTIME_KUMA)?;
                let push_url = self.url(n, f.get("push_url"), &p, "push_url")?;
                let ca_file = self.ca_file(f.get("ca_file"), &p)?;
                Some(Destination::UptimeKuma { push_url, ca_file })
            }
            "ntfy" => {
                let f = self.fields(n, &p, &NTFY)?;
                let server = self.url(n, f.get("server"), &p, "server")?;
                let topic = match f.get("topic") {
                    Some(t) => self.nonempty(t, &format!("{p}.topic"))?,
                    None => {
                        self.err(n.span.clone(), &p, "missing required key `topic`");
                        return None;
                    }
                };
                let token_file = match f.get("token_file") {
                    Some(t) => Some(self.abs_path(t, &format!("{p}.token_file"))?),
                    None => None,
                };
                let ca_file = self.ca_file(f.get("ca_file"), &p)?;
                Some(Destination::Ntfy {
                    server,
                    topic,
                    token_file,
                    ca_file,
                })
            }
            _ => {
                let f = self.fields(n, &p, &WEBHOOK)?;
                let url = self.url(n, f.get("url"), &p, "url")?;
                let method = match f.get("method") {
                    None => fields::default_text(&WEBHOOK, "method").to_string(),
                    Some(m) => match self.string(m, &format!("{p}.method"))?.as_str() {
                        w @ ("POST" | "PUT") => w.to_string(),
                        other => {
                            self.err(
                                m.span.clone(),
                                &format!("{p}.method"),
                                format!("unsupported method `{other}`"),
                            )
                            .help = Some("use POST or PUT (the body is the run summary)".into());
                            return None;
                        }
                    },
                };
                let mut headers = Vec::new();
                if let Some(h) = f.get("headers") {
                    let Value::Map(entries) = &h.value else {
                        self.err(
                            h.span.clone(),
                            &format!("{p}.headers"),
                            "expected a mapping of header names to values",
                        );
                        return None;
                    };
                    for (k, v) in entries {
                        let name = self.string(k, &format!("{p}.headers"))?;
                        let ok_name = !name.is_empty()
                            && name
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                        if !ok_name {
                            self.err(
                                k.span.clone(),
                                &format!("{p}.headers"),
                                format!("`{name}` is not a header name"),
                            );
                            return None;
                        }
                        let value = self.string(v, &format!("{p}.headers.{name}"))?;
                        if value.contains(['\r', '\n']) {
                            self.err(
                                v.span.clone(),
                                &format!("{p}.headers.{name}"),
                                "a header value cannot contain a line break",
                            );
                            return None;
                        }
                        headers.push((name, value));
                    }
                }
                let ca_file = self.ca_file(f.get("ca_file"), &p)?;
                Some(Destination::Webhook {
                    url,
                    method,
                    headers,
                    ca_file,
                })
            }
        }
    }

    /// An optional `ca_file`: `Some(None)` when absent, `None` when wrong (reported at its
    /// value: not absolute, or not a readable PEM file with a certificate).
    fn ca_file(&mut self, n: Option<&Node>, path: &str) -> Option<Option<PathBuf>> {
        let Some(n) = n else {
            return Some(None);
        };
        let p = format!("{path}.ca_file");
        let file = self.abs_path(n, &p)?;
        if let Err(e) = super::ca_file::load(&file) {
            self.err(n.span.clone(), &p, e.to_string()).help = Some(
                "name a readable PEM file of the CA certificates to trust for this endpoint (`-----BEGIN CERTIFICATE-----` blocks)".into(),
            );
            return None;
        }
        Some(Some(file))
    }

    /// A required `http://` or `https://` URL. Its value is a secret: never quoted back.
    fn url(&mut self, parent: &Node, n: Option<&Node>, path: &str, key: &str) -> Option<String> {
        let p = format!("{path}.{key}");
        let Some(n) = n else {
            self.err(
                parent.span.clone(),
                path,
                format!("missing required key `{key}`"),
            );
            return None;
        };
        let u = self.nonempty(n, &p)?;
        let rest = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/'))
            || u.contains(char::is_whitespace)
        {
            self.err(
                n.span.clone(),
                &p,
                "expected an http:// or https:// URL with a host",
            )
            .help = Some("e.g. `https://hc-ping.com/UUID`".into());
            return None;
        }
        Some(u)
    }
}
