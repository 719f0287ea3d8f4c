//! Typed readers: each reads one value of one type, reports its own error with the config path
//! and returns `None` on a bad value; and [`Fields`], a mapping's entries checked against a
//! section of the field table (unknown keys reported with a suggestion).
//!
//! Must not: know which key means what.

use std::path::PathBuf;
use std::time::Duration;

use super::Decoder;
use crate::config::diag::{self, Diagnostic};
use crate::config::fields::{self, Section};
use crate::config::yaml::{Node, Scalar, Value};
use crate::config::{duration, Zone};
use crate::schedule::Schedule;

impl Decoder {
    pub(in crate::config) fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        section: &Section,
    ) -> Option<Fields<'n>> {
        let known = section.keys();
        let known = known.as_slice();
        let what = section.what;
        let Value::Map(entries) = &node.value else {
            if node.is_null() && path.is_empty() {
                return Some(Fields { entries: &[] });
            }
            self.err(
                node.span.clone(),
                path,
                format!(
                    "expected {what} (a mapping of keys), found {}",
                    node.kind_name()
                ),
            );
            return None;
        };
        for (k, _) in entries {
            let Value::Scalar { text: key, .. } = &k.value else {
                self.err(k.span.clone(), path, "a key must be a plain word");
                continue;
            };
            if !known.contains(&key.as_str()) {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let help = match diag::suggest(key, known) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known keys here: {}", known.join(", ")),
                };
                let mut d = Diagnostic::error(
                    k.span.clone(),
                    here,
                    format!("unknown key `{key}` in {what}"),
                );
                d.help = Some(help);
                if std::ptr::eq(section, &fields::DROPIN)
                    && fields::JOB.keys().contains(&key.as_str())
                {
                    d.help =
                        Some("a drop-in file holds only `jobs:`; put this key inside a job".into());
                }
                self.diags.push(d);
            }
        }
        Some(Fields { entries })
    }

    pub(in crate::config) fn list<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ if node.is_null() => Some(&[]),
            _ => {
                self.err(
                    node.span.clone(),
                    path,
                    format!("expected a list, found {}", node.kind_name()),
                )
                .help = Some("write list items on their own lines starting with `- `".into());
                None
            }
        }
    }

    pub(in crate::config) fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Scalar {
                kind: Scalar::Null, ..
            } => {
                self.err(node.span.clone(), path, "missing value");
                None
            }
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.err(
                    node.span.clone(),
                    path,
                    format!("expected a string, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    pub(in crate::config) fn nonempty(&mut self, node: &Node, path: &str) -> Option<String> {
        let s = self.string(node, path)?;
        if s.trim().is_empty() {
            self.err(node.span.clone(), path, "must not be empty");
            return None;
        }
        Some(s)
    }

    pub(in crate::config) fn int(&mut self, node: &Node, path: &str) -> Option<i64> {
        match &node.value {
            Value::Scalar {
                kind: Scalar::Int(i),
                ..
            } => Some(*i),
            _ => {
                self.err(
                    node.span.clone(),
                    path,
                    format!("expected an integer, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    pub(in crate::config) fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            Value::Scalar {
                kind: Scalar::Bool(b),
                ..
            } => Some(*b),
            Value::Scalar { text, .. }
                if matches!(text.as_str(), "yes" | "no" | "on" | "off" | "Yes" | "No") =>
            {
                self.err(
                    node.span.clone(),
                    path,
                    format!("expected true or false, found `{text}`"),
                )
                .help = Some("YAML 1.2 reads yes/no/on/off as strings; write true or false".into());
                None
            }
            _ => {
                self.err(
                    node.span.clone(),
                    path,
                    format!("expected true or false, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    pub(in crate::config) fn port(&mut self, node: &Node, path: &str) -> Option<u16> {
        let p = self.int(node, path)?;
        match u16::try_from(p) {
            Ok(p) if p >= 1 => Some(p),
            _ => {
                self.err(
                    node.span.clone(),
                    path,
                    format!("port {p} is out of range 1-65535"),
                );
                None
            }
        }
    }

    pub(in crate::config) fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        match &node.value {
            Value::Scalar {
                kind: Scalar::Int(i),
                ..
            } => match u64::try_from(*i) {
                Ok(s) => Some(Duration::from_secs(s)),
                Err(_) => {
                    self.err(
                        node.span.clone(),
                        path,
                        format!("must be a positive duration, got {i}"),
                    );
                    None
                }
            },
            Value::Scalar {
                kind: Scalar::Str,
                text,
            } => match duration::parse(text) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(node.inner_span(0, text.chars().count()), path, e);
                    None
                }
            },
            _ => {
                self.err(
                    node.span.clone(),
                    path,
                    format!(
                        "expected a duration (300, 5m, 1h 30m), found {}",
                        node.kind_name()
                    ),
                )
                .help = Some("durations are whole seconds or units: 90s, 5m, 1h 30m, 2d".into());
                None
            }
        }
    }

    pub(in crate::config) fn positive_duration(
        &mut self,
        node: &Node,
        path: &str,
    ) -> Option<Duration> {
        let d = self.duration(node, path)?;
        if d.is_zero() {
            self.err(
                node.span.clone(),
                path,
                "must be a positive duration, got 0",
            )
            .help = Some("use at least 1 second, e.g. 30s or 5m".into());
            return None;
        }
        Some(d)
    }

    pub(in crate::config) fn abs_path(&mut self, node: &Node, path: &str) -> Option<PathBuf> {
        let s = self.nonempty(node, path)?;
        if !s.starts_with('/') {
            self.relative(node, path, &s);
            return None;
        }
        Some(PathBuf::from(s))
    }

    pub(in crate::config) fn schedule(&mut self, node: &Node, path: &str) -> Option<Schedule> {
        let text = self.nonempty(node, path)?;
        // Point into the expression: skip the whitespace `parse` trims.
        let lead = text.chars().take_while(|c| c.is_whitespace()).count();
        match Schedule::parse(&text) {
            Ok(s) if never_fires(&s) => {
                self.err(node.inner_span(lead, text.trim().chars().count()), path, format!(
                    "cron expression `{}` never fires: no month it allows has the day it names",
                    text.trim()
                ))
                .help = Some("check the day-of-month and month fields (30 February, 31 April and the like do not exist)".into());
                None
            }
            Ok(s) => Some(s),
            Err(e) => {
                let col = lead
                    + text.trim()[..e.offset.min(text.trim().len())]
                        .chars()
                        .count();
                self.err(node.inner_span(col, 1), path, format!("invalid cron expression `{}`: {e}", text.trim()))
                    .help = Some("five fields: minute hour day-of-month month day-of-week (e.g. '30 2 * * *'), or a macro such as @daily".into());
                None
            }
        }
    }

    pub(in crate::config) fn timezone(&mut self, node: &Node) -> Option<Zone> {
        let name = self.nonempty(node, "timezone")?;
        match jiff::tz::TimeZone::get(&name) {
            Ok(tz) => Some(Zone {
                name: Some(name),
                tz,
            }),
            Err(_) => {
                self.err(node.inner_span(0, name.chars().count()), "timezone", format!("unknown time zone `{name}`"))
                    .help = Some("use an IANA name such as Europe/Amsterdam or UTC (see /usr/share/zoneinfo), or leave it out to use the system zone".into());
                None
            }
        }
    }

    pub(in crate::config) fn ssh_options(&mut self, node: &Node, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in self.list(node, path).unwrap_or_default().iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(s) = self.nonempty(item, &p) else {
                continue;
            };
            let key = s.split(['=', ' ']).next().unwrap_or("");
            if !s.contains(['=', ' ']) || key.is_empty() || s.starts_with('-') {
                self.err(
                    item.inner_span(0, s.chars().count()),
                    &p,
                    format!("`{s}` is not an ssh option"),
                )
                .help = Some(
                    "write options as Key=Value, as ssh's -o takes them (e.g. Compression=yes)"
                        .into(),
                );
                continue;
            }
            out.push(s);
        }
        out
    }
}

/// True when a (non-`@reboot`) schedule has no fire time at all. Cron has no year field, so
/// the days it selects repeat with the 400-year Gregorian cycle and any that exists comes
/// within 40 years of any date (29 February on a given weekday is the rarest). The schedule's own
/// search looks [`crate::schedule::HORIZON_YEARS`] (100) ahead, so asking it once, from a fixed
/// instant in UTC (time zones move times, they do not remove days), is exact and does not
/// depend on the clock.
fn never_fires(s: &Schedule) -> bool {
    !s.is_reboot()
        && s.next_after(jiff::Timestamp::UNIX_EPOCH, &jiff::tz::TimeZone::UTC)
            .is_none()
}

/// A mapping's entries, looked up by key. Null values count as absent.
pub(in crate::config) struct Fields<'n> {
    pub(in crate::config) entries: &'n [(Node, Node)],
}

impl<'n> Fields<'n> {
    pub(in crate::config) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    pub(in crate::config) fn has_key(&self, key: &str) -> bool {
        self.entries
            .iter()
            .any(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))
    }
}
