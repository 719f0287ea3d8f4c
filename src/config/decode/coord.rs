//! `lock_backend`, `etcd:`, `slots:` (top level) and a job's `uses_slots`, with the checks
//! between them: etcd settings present when used, endpoints that parse (plain http only on
//! loopback), a client certificate with its key, a user with a password file, a lease TTL of
//! at least 5 s, and slots that exist and have a backend that can hold them.
//!
//! Must not: connect to etcd or read the password file (the run does, when it needs them).

use std::collections::BTreeMap;

use super::{Decoder, Fields};
use crate::config::coord::{
    is_loopback_host, split_endpoint, Coordination, EtcdSettings, LockBackendKind, SlotUse,
    MAX_SLOT, MIN_LEASE_TTL,
};
use crate::config::fields::{self, ETCD};
use crate::config::yaml::{Node, Value};
use crate::config::Job;

impl Decoder {
    /// Reads the top-level coordination keys.
    pub(super) fn coordination(&mut self, top: &Fields<'_>) -> Coordination {
        let lock_backend = match top.get("lock_backend") {
            None => LockBackendKind::Files,
            Some(n) => match self.string(n, "lock_backend").as_deref() {
                Some("files") | None => LockBackendKind::Files,
                Some("etcd") => LockBackendKind::Etcd,
                Some("both") => LockBackendKind::Both,
                Some(other) => {
                    self.err(
                        n.span.clone(),
                        "lock_backend",
                        format!("unknown lock_backend `{other}`"),
                    )
                    .help = Some("use `files`, `etcd` or `both`".into());
                    LockBackendKind::Files
                }
            },
        };
        let etcd = top.get("etcd").and_then(|n| self.etcd(n));
        if lock_backend.uses_etcd() && etcd.is_none() && top.get("etcd").is_none() {
            let n = top.get("lock_backend").expect("set when etcd is used");
            self.err(
                n.span.clone(),
                "lock_backend",
                format!(
                    "lock_backend `{}` needs an `etcd:` block",
                    lock_backend.as_str()
                ),
            )
            .help = Some("add `etcd:` with `endpoints:` at the top level".into());
        }
        let slots = top.get("slots").map(|n| self.slots(n)).unwrap_or_default();
        if !slots.is_empty() && !lock_backend.uses_etcd() {
            let n = top.get("slots").expect("slots read");
            self.err(
                n.span.clone(),
                "slots",
                "slots need lock_backend `etcd` or `both`",
            )
            .help = Some(
                "lock files cannot count holders across hosts; set `lock_backend: etcd`".into(),
            );
        }
        Coordination {
            lock_backend,
            etcd,
            slots,
        }
    }

    fn etcd(&mut self, node: &Node) -> Option<EtcdSettings> {
        let f = self.fields(node, "etcd", &ETCD)?;
        let mut ok = true;
        let mut endpoints = Vec::new();
        let mut plain_http = false;
        match f.get("endpoints") {
            None => {
                self.err(
                    node.span.clone(),
                    "etcd",
                    "missing required key `endpoints`",
                )
                .help = Some(
                    "list the members' client URLs, e.g. `endpoints: [\"https://10.0.0.5:2379\"]`"
                        .into(),
                );
                ok = false;
            }
            Some(n) => {
                let items = self.list(n, "etcd.endpoints").unwrap_or_default();
                if items.is_empty() {
                    self.err(
                        n.span.clone(),
                        "etcd.endpoints",
                        "needs at least one endpoint",
                    );
                    ok = false;
                }
                for (i, item) in items.iter().enumerate() {
                    let p = format!("etcd.endpoints[{i}]");
                    let Some(url) = self.nonempty(item, &p) else {
                        ok = false;
                        continue;
                    };
                    let here = item.inner_span(0, url.chars().count());
                    match split_endpoint(&url) {
                        None => {
                            self.err(here, &p, format!("`{url}` is not an etcd client URL"))
                                .help = Some(
                                "write `https://HOST:PORT` (the member's --advertise-client-urls)"
                                    .into(),
                            );
                            ok = false;
                        }
                        Some(("http", host, _)) if !is_loopback_host(host) => {
                            self.err(here, &p, format!("plain http to `{host}` would send locks and credentials unencrypted"))
                                .help = Some("use https:// (plain http is accepted only on loopback addresses, for test clusters)".into());
                            ok = false;
                        }
                        Some((scheme, _, _)) => {
                            plain_http |= scheme == "http";
                            endpoints.push(url.trim_end_matches('/').to_string());
                        }
                    }
                }
            }
        }
        let ca_file = f
            .get("ca_file")
            .and_then(|n| self.abs_path(n, "etcd.ca_file"));
        let cert_file = f
            .get("cert_file")
            .and_then(|n| self.abs_path(n, "etcd.cert_file"));
        let key_file = f
            .get("key_file")
            .and_then(|n| self.abs_path(n, "etcd.key_file"));
        let password_file = f
            .get("password_file")
            .and_then(|n| self.abs_path(n, "etcd.password_file"));
        let user = f.get("user").and_then(|n| self.nonempty(n, "etcd.user"));
        for (a, b) in [
            ("cert_file", "key_file"),
            ("key_file", "cert_file"),
            ("user", "password_file"),
            ("password_file", "user"),
        ] {
            if let (Some(n), None) = (f.get(a), f.get(b)) {
                self.err(
                    n.span.clone(),
                    &format!("etcd.{a}"),
                    format!("`{a}` needs `{b}`"),
                )
                .help = Some(format!("set both `{a}` and `{b}`, or neither"));
                ok = false;
            }
        }
        if plain_http && (user.is_some() || cert_file.is_some()) {
            let n = f.get("user").or(f.get("cert_file")).expect("one is set");
            self.err(n.span.clone(), "etcd", "credentials over plain http")
                .help = Some("use https:// endpoints with credentials".into());
            ok = false;
        }
        let prefix = match f.get("prefix") {
            None => fields::default_text(&ETCD, "prefix").to_string(),
            Some(n) => match self.nonempty(n, "etcd.prefix") {
                Some(p) if p.starts_with('/') && !p.contains('\0') => {
                    p.trim_end_matches('/').to_string()
                }
                Some(p) => {
                    self.err(
                        n.span.clone(),
                        "etcd.prefix",
                        format!("prefix `{p}` must start with `/`"),
                    )
                    .help = Some("e.g. `/backupmanager`".into());
                    ok = false;
                    String::new()
                }
                None => {
                    ok = false;
                    String::new()
                }
            },
        };
        let lease_ttl = match f.get("lease_ttl") {
            None => fields::default_duration(&ETCD, "lease_ttl"),
            Some(n) => match self.duration(n, "etcd.lease_ttl") {
                Some(d) if d >= MIN_LEASE_TTL => d,
                Some(d) => {
                    self.err(
                        n.span.clone(),
                        "etcd.lease_ttl",
                        format!("lease_ttl {}s is shorter than 5s", d.as_secs()),
                    )
                    .help = Some(
                        "use at least 5s: keep-alives need time to reach a member and back".into(),
                    );
                    ok = false;
                    d
                }
                None => {
                    ok = false;
                    MIN_LEASE_TTL
                }
            },
        };
        ok.then_some(EtcdSettings {
            endpoints,
            ca_file,
            cert_file,
            key_file,
            user,
            password_file,
            prefix,
            lease_ttl,
        })
    }

    fn slots(&mut self, node: &Node) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        let Value::Map(entries) = &node.value else {
            self.err(
                node.span.clone(),
                "slots",
                format!(
                    "expected a mapping of slot names to counts, found {}",
                    node.kind_name()
                ),
            )
            .help = Some("e.g. `slots: {into_backup_a: 3}`".into());
            return out;
        };
        for (k, v) in entries {
            let Some(name) = k.scalar_text().map(str::to_string) else {
                self.err(k.span.clone(), "slots", "a slot name must be a plain word");
                continue;
            };
            let p = format!("slots.{name}");
            if !valid_name(&name) {
                self.err(k.span.clone(), &p, format!("slot name `{name}` has characters other than letters, digits, `_`, `-`, `.`"))
                    .help = Some("rename the slot, e.g. `into_backup_a`".into());
                continue;
            }
            match self.int(v, &p) {
                Some(n) if (1..=MAX_SLOT).contains(&n) => {
                    out.insert(name, n as u32);
                }
                Some(n) => {
                    self.err(
                        v.span.clone(),
                        &p,
                        format!("slot count {n} is out of range 1-{MAX_SLOT}"),
                    );
                }
                None => {}
            }
        }
        out
    }

    /// A job's `uses_slots` entries (checked against `slots:` by [`Decoder::check_slots`]).
    pub(super) fn uses_slots(&mut self, f: &Fields<'_>, path: &str) -> Vec<SlotUse> {
        let mut out: Vec<SlotUse> = Vec::new();
        let Some(n) = f.get("uses_slots") else {
            return out;
        };
        for (i, item) in self
            .list(n, &format!("{path}.uses_slots"))
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let p = format!("{path}.uses_slots[{i}]");
            if let Some(name) = self.nonempty(item, &p) {
                let span = item.inner_span(0, name.chars().count());
                if out.iter().any(|s| s.name == name) {
                    self.err(span, &p, format!("slot `{name}` is listed twice"));
                    continue;
                }
                out.push(SlotUse { name, span });
            }
        }
        out
    }

    /// Every `uses_slots` entry names a slot of `slots:`.
    pub(super) fn check_slots(&mut self, coord: &Coordination, jobs: &[Job]) {
        for job in jobs {
            for (i, s) in job.uses_slots.iter().enumerate() {
                if !coord.slots.contains_key(&s.name) {
                    let known: Vec<&str> = coord.slots.keys().map(String::as_str).collect();
                    let help = match crate::config::diag::suggest(&s.name, &known) {
                        Some(k) => format!("did you mean `{k}`?"),
                        None => "define it under the top-level `slots:` (name: count)".into(),
                    };
                    self.err(
                        s.span.clone(),
                        &format!("jobs[{}].uses_slots[{i}]", job.id),
                        format!("unknown slot `{}`", s.name),
                    )
                    .help = Some(help);
                }
            }
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
