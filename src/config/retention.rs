//! A job's `mode:` and `retention:` keys → [`Mode`] and a [`Policy`], checked together.
//!
//! The policy's meaning lives in [`crate::retention`]; this file only reads the YAML, with the
//! same diagnostics as the rest of the decoder (`file:line:col`, config path, what to write
//! instead). A job's decoding calls [`Decoder::mode_and_retention`] once.
//!
//! `retention:` on a mirror job is an error, not a warning: a mirror has one copy and no history,
//! so the block would promise seven dailies that do not exist. The fix is one line either way
//! (`mode: snapshot`, or delete the block), and `validate` is where such a promise must fail.

use super::decode::{Decoder, Fields};
use super::fields;
use super::yaml::{Node, Scalar, Value};
use super::Mode;
use crate::retention::{CalendarSpan, Count, Policy, SpanError};

const RETENTION_EXAMPLE: &str = "retention: {keep_daily: 7, keep_weekly: 5, keep_monthly: 12}";

impl Decoder {
    /// The job's `mode` and `retention`; `None` when either is wrong (already reported).
    pub(super) fn mode_and_retention(
        &mut self,
        f: &Fields<'_>,
        path: &str,
    ) -> Option<(Mode, Option<Policy>)> {
        let mode_node = f.get("mode");
        let mode = match mode_node {
            None => Some(Mode::Mirror),
            Some(n) => self.mode(n, &format!("{path}.mode")),
        };
        let retention_node = f.get("retention");
        let retention = retention_node.map(|n| self.policy(n, &format!("{path}.retention")));
        match (mode?, retention_node) {
            (Mode::Mirror, Some(_)) => {
                let key = f.key_node("retention").expect("the key of a value");
                let msg = "`retention` applies to `mode: snapshot` only; this job mirrors (one copy, no history to keep)";
                self.err(key.inner_span(0, 9), &format!("{path}.retention"), msg)
                    .help = Some(
                    "add `mode: snapshot` to keep dated snapshots, or remove the `retention` block"
                        .into(),
                );
                None
            }
            (m @ (Mode::Snapshot | Mode::Archive), None) => {
                let n = mode_node.expect("snapshot and archive are written out");
                let word = if m == Mode::Snapshot {
                    "snapshot"
                } else {
                    "archive"
                };
                self.err(
                    n.inner_span(0, word.len()),
                    &format!("{path}.mode"),
                    format!("`mode: {word}` needs a `retention` block saying which {word}s to keep"),
                )
                .help = Some(format!(
                    "add e.g. `{RETENTION_EXAMPLE}` to the job; `keep_last: all` keeps every snapshot"
                ));
                None
            }
            (mode, _) => match retention {
                None => Some((mode, None)),
                Some(policy) => Some((mode, Some(policy?))),
            },
        }
    }

    fn mode(&mut self, n: &Node, path: &str) -> Option<Mode> {
        let word = self.string(n, path)?;
        let span = n.inner_span(0, word.chars().count());
        let help = "use `mirror` (one copy, kept up to date), `snapshot` (a dated copy per run, aged out by `retention`) or `archive` (incremental tar archives in chains)";
        let msg = match word.as_str() {
            "mirror" => return Some(Mode::Mirror),
            "snapshot" => return Some(Mode::Snapshot),
            "archive" => return Some(Mode::Archive),
            other => format!("unknown mode `{other}`"),
        };
        self.err(span, path, msg).help = Some(help.into());
        None
    }

    /// The `retention:` mapping; `None` when a rule is wrong or none keeps anything.
    fn policy(&mut self, node: &Node, path: &str) -> Option<Policy> {
        let f = self.fields(node, path, &fields::RETENTION)?;
        let mut ok = true;
        let p = Policy {
            keep_last: self.count(f.get("keep_last"), path, "keep_last", &mut ok),
            keep_hourly: self.count(f.get("keep_hourly"), path, "keep_hourly", &mut ok),
            keep_daily: self.count(f.get("keep_daily"), path, "keep_daily", &mut ok),
            keep_weekly: self.count(f.get("keep_weekly"), path, "keep_weekly", &mut ok),
            keep_monthly: self.count(f.get("keep_monthly"), path, "keep_monthly", &mut ok),
            keep_yearly: self.count(f.get("keep_yearly"), path, "keep_yearly", &mut ok),
            keep_within: self.span(f.get("keep_within"), path, "keep_within", &mut ok),
            keep_within_hourly: self.span(
                f.get("keep_within_hourly"),
                path,
                "keep_within_hourly",
                &mut ok,
            ),
            keep_within_daily: self.span(
                f.get("keep_within_daily"),
                path,
                "keep_within_daily",
                &mut ok,
            ),
            keep_within_weekly: self.span(
                f.get("keep_within_weekly"),
                path,
                "keep_within_weekly",
                &mut ok,
            ),
            keep_within_monthly: self.span(
                f.get("keep_within_monthly"),
                path,
                "keep_within_monthly",
                &mut ok,
            ),
            keep_within_yearly: self.span(
                f.get("keep_within_yearly"),
                path,
                "keep_within_yearly",
                &mut ok,
            ),
            keep_tags: Vec::new(),
        };
        // A misspelt key was reported as unknown; "keeps nothing" would only repeat it.
        let known = fields::RETENTION.keys();
        let all_known = f.entries.iter().all(|(k, _)| {
            matches!(&k.value, Value::Scalar { text, .. } if known.contains(&text.as_str()))
        });
        if ok && all_known && !p.keeps_something() {
            self.err(
                node.span.clone(),
                path,
                "the retention policy keeps nothing; every snapshot would be deleted",
            )
            .help = Some(format!("set at least one rule, e.g. `{RETENTION_EXAMPLE}`"));
            return None;
        }
        ok.then_some(p)
    }

    /// A `keep_*` count: a whole number >= 1, or `all`.
    fn count(&mut self, n: Option<&Node>, path: &str, key: &str, ok: &mut bool) -> Option<Count> {
        let n = n?;
        let path = format!("{path}.{key}");
        let (msg, help) = match &n.value {
            Value::Scalar {
                kind: Scalar::Int(i),
                ..
            } => match u32::try_from(*i) {
                Ok(c) if c >= 1 => return Some(Count::N(c)),
                Ok(_) => (
                    format!("{key} must be at least 1, got 0"),
                    "remove the key to turn this rule off".to_string(),
                ),
                Err(_) if *i < 0 => (
                    format!("{key} must be at least 1, got {i}"),
                    format!("write `{key}: all` to keep every period"),
                ),
                Err(_) => (
                    format!("{key} is too large: {i}"),
                    format!("write `{key}: all` to keep every period"),
                ),
            },
            Value::Scalar {
                kind: Scalar::Str,
                text,
            } if text == "all" => return Some(Count::All),
            Value::Scalar {
                kind: Scalar::Str,
                text,
            } => (
                format!("expected a count (a whole number >= 1) or `all`, found `{text}`"),
                "write a number such as 7, or `all` to keep every period".into(),
            ),
            _ => (
                format!(
                    "expected a count (a whole number >= 1) or `all`, found {}",
                    n.kind_name()
                ),
                "write a number such as 7, or `all` to keep every period".into(),
            ),
        };
        self.err(n.span.clone(), &path, msg).help = Some(help);
        *ok = false;
        None
    }

    /// A `keep_within*` span such as `2d` or `1y6mo`, longer than zero.
    fn span(
        &mut self,
        n: Option<&Node>,
        path: &str,
        key: &str,
        ok: &mut bool,
    ) -> Option<CalendarSpan> {
        let n = n?;
        let path = format!("{path}.{key}");
        let result = match &n.value {
            Value::Scalar {
                kind: Scalar::Str | Scalar::Int(_),
                text,
            } => text.parse::<CalendarSpan>(),
            _ => {
                self.err(
                    n.span.clone(),
                    &path,
                    format!(
                        "expected a calendar span such as 7d or 1y6mo, found {}",
                        n.kind_name()
                    ),
                )
                .help = Some(
                    "units: y (years), mo (months), w (weeks), d (days), h (hours), m (minutes)"
                        .into(),
                );
                *ok = false;
                return None;
            }
        };
        let width = match &n.value {
            Value::Scalar { text, .. } => text.chars().count(),
            _ => 1,
        };
        match result {
            Ok(s) if !s.is_zero() => Some(s),
            Ok(_) => {
                self.err(
                    n.inner_span(0, width),
                    &path,
                    format!("{key} must be longer than 0"),
                )
                .help = Some("remove the key to turn this rule off".into());
                *ok = false;
                None
            }
            Err(e) => {
                let months = matches!(&e, SpanError::Syntax(t) if t.contains('M'));
                let d = self.err(n.inner_span(0, width), &path, e.to_string());
                if months {
                    d.help = Some("write `mo` for months (`m` is minutes)".into());
                }
                *ok = false;
                None
            }
        }
    }
}

impl<'n> Fields<'n> {
    /// The key node of `key`, for pointing at a key rather than its value.
    fn key_node(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))
            .map(|(k, _)| k)
    }
}
