//! A job's `dumps:` list → [`Dump`]s: database dumps written before the syncs.
//!
//! How a dump runs (the commands, the temporary file, the rename) lives in
//! [`crate::hooks::dump`]; this file only reads the YAML.

use std::time::Duration;

use super::decode::Decoder;
use super::fields::{self, DUMP};
use super::hooks::HookPlace;
use super::yaml::Node;
use super::Span;

/// What a dump reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpKind {
    /// `sqlite3 DATABASE ".backup TMP"`: `database` is the database file.
    Sqlite { database: String },
    /// `pg_dump OPTIONS --file=TMP --dbname=DATABASE`.
    Postgresql { database: String },
    /// `mysqldump OPTIONS --result-file=TMP DATABASE`.
    Mysql { database: String },
    /// Any program whose standard output is the dump.
    Command { argv: Vec<String> },
}

impl DumpKind {
    pub fn name(&self) -> &'static str {
        match self {
            DumpKind::Sqlite { .. } => "sqlite",
            DumpKind::Postgresql { .. } => "postgresql",
            DumpKind::Mysql { .. } => "mysql",
            DumpKind::Command { .. } => "command",
        }
    }
}

/// One dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    pub kind: DumpKind,
    /// Extra arguments for `pg_dump` / `mysqldump` (connection, format).
    pub options: Vec<String>,
    /// Where the finished dump is (absolute); written as a hidden temporary file next to it and
    /// renamed when complete.
    pub to: String,
    pub place: HookPlace,
    pub timeout: Duration,
    pub span: Span,
}

impl Decoder {
    /// The job's `dumps:` list (empty when absent); `None` when an entry is wrong.
    pub(super) fn dumps(
        &mut self,
        node: Option<&Node>,
        path: &str,
        has_host: bool,
    ) -> Option<Vec<Dump>> {
        let Some(node) = node else {
            return Some(Vec::new());
        };
        let path = format!("{path}.dumps");
        let items = self.list(node, &path)?;
        let mut ok = true;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match self.dump(item, &format!("{path}[{i}]"), has_host) {
                Some(d) => out.push(d),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn dump(&mut self, node: &Node, path: &str, has_host: bool) -> Option<Dump> {
        let f = self.fields(node, path, &DUMP)?;
        let Some(type_node) = f.get("type") else {
            self.err(node.span.clone(), path, "missing required key `type`")
                .help = Some("use `sqlite`, `postgresql`, `mysql` or `command`".into());
            return None;
        };
        let ty = self.string(type_node, &format!("{path}.type"))?;
        let database = f
            .get("database")
            .and_then(|n| self.nonempty(n, &format!("{path}.database")));
        let run = f
            .get("run")
            .and_then(|n| self.argv(n, &format!("{path}.run")));
        let needs_db = |me: &mut Decoder, what: &str| {
            if f.get("database").is_none() {
                me.err(
                    node.span.clone(),
                    path,
                    format!("a `{what}` dump needs `database`"),
                );
            }
        };
        let kind = match ty.as_str() {
            "sqlite" => {
                needs_db(self, "sqlite");
                database.map(|database| DumpKind::Sqlite { database })
            }
            "postgresql" => {
                needs_db(self, "postgresql");
                database.map(|database| DumpKind::Postgresql { database })
            }
            "mysql" => {
                needs_db(self, "mysql");
                database.map(|database| DumpKind::Mysql { database })
            }
            "command" => {
                if f.get("run").is_none() {
                    self.err(node.span.clone(), path, "a `command` dump needs `run`")
                        .help = Some("the program's standard output becomes the dump, e.g. `run: [/usr/bin/slapcat]`".into());
                }
                run.map(|argv| DumpKind::Command { argv })
            }
            other => {
                self.err(
                    type_node.span.clone(),
                    &format!("{path}.type"),
                    format!("unknown dump type `{other}`"),
                )
                .help = Some("use `sqlite`, `postgresql`, `mysql` or `command`".into());
                None
            }
        };
        if let (
            Some(
                DumpKind::Mysql { database }
                | DumpKind::Postgresql { database }
                | DumpKind::Sqlite { database },
            ),
            Some(n),
        ) = (&kind, f.get("database"))
        {
            if database.starts_with('-') {
                self.err(
                    n.span.clone(),
                    &format!("{path}.database"),
                    "a database name must not start with `-`",
                );
                return None;
            }
        }
        let options = match f.get("options") {
            Some(n)
                if matches!(
                    kind,
                    Some(DumpKind::Postgresql { .. } | DumpKind::Mysql { .. })
                ) =>
            {
                self.argv(n, &format!("{path}.options"))?
            }
            Some(n) => {
                self.err(
                    n.span.clone(),
                    &format!("{path}.options"),
                    "`options` applies to `postgresql` and `mysql` dumps only",
                );
                return None;
            }
            None => Vec::new(),
        };
        let to_node = f.get("to");
        let to = match to_node {
            None => {
                self.err(node.span.clone(), path, "missing required key `to`")
                    .help = Some("the absolute path the finished dump is written to, e.g. `to: /var/backups/app.sql`".into());
                None
            }
            Some(n) => self
                .abs_path(n, &format!("{path}.to"))
                .map(|p| p.display().to_string()),
        };
        if let (Some(to), Some(n), Some(DumpKind::Sqlite { .. })) = (&to, to_node, &kind) {
            // sqlite3's `.backup FILE` takes FILE in single quotes, which cannot hold one.
            if to.contains(['\'', '\n']) {
                self.err(
                    n.span.clone(),
                    &format!("{path}.to"),
                    "an sqlite dump's path cannot contain `'` or a newline",
                );
                return None;
            }
        }
        if to.as_deref().is_some_and(|t| t.ends_with('/')) {
            self.err(
                to_node?.span.clone(),
                &format!("{path}.to"),
                "`to` names a file, not a directory",
            );
            return None;
        }
        let place = match f.get("where") {
            None => HookPlace::Local,
            Some(n) => match self.string(n, &format!("{path}.where")).as_deref() {
                Some("local") => HookPlace::Local,
                Some("remote") if has_host => HookPlace::Remote,
                Some("remote") => {
                    self.err(
                        n.span.clone(),
                        &format!("{path}.where"),
                        "`where: remote` needs the job's `host`; this job has none",
                    );
                    return None;
                }
                Some(other) => {
                    self.err(
                        n.span.clone(),
                        &format!("{path}.where"),
                        format!("unknown where `{other}`"),
                    )
                    .help = Some("use `local` (this host) or `remote` (the job's host)".into());
                    return None;
                }
                None => return None,
            },
        };
        let timeout = match f.get("timeout") {
            None => fields::default_duration(&DUMP, "timeout"),
            Some(n) => self.positive_duration(n, &format!("{path}.timeout"))?,
        };
        Some(Dump {
            kind: kind?,
            options,
            to: to?,
            place,
            timeout,
            span: node.span.clone(),
        })
    }
}
