//! A job's `hooks:` block → [`Hooks`]: commands run before and after the syncs.
//!
//! The meaning (order, environment, failure policy) lives in [`crate::hooks`]; this file only
//! reads the YAML, with the same diagnostics as the rest of the decoder. A job's decoding calls
//! [`Decoder::hooks`] once.
//!
//! A hook is `run:` (an argument vector, started without a shell) or `shell:` (one string given
//! to `/bin/sh -c`: the one place backupmanager uses a shell, because the user wrote one).
//! Exactly one of the two is required.

use std::time::Duration;

use super::decode::Decoder;
use super::fields::{self, HOOK};
use super::yaml::{Node, Value};
use super::Span;

/// The four hook lists of a job, each run in order.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// After the locks are taken, before the first sync.
    pub before: Vec<Hook>,
    /// After every sync succeeded.
    pub after_success: Vec<Hook>,
    /// After a failed run (a before hook or a sync failed).
    pub after_failure: Vec<Hook>,
    /// Always, last, while the locks are still held.
    pub finally: Vec<Hook>,
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.before.is_empty()
            && self.after_success.is_empty()
            && self.after_failure.is_empty()
            && self.finally.is_empty()
    }
}

/// One hook command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub command: HookCommand,
    pub place: HookPlace,
    /// The whole process group is killed when the hook runs longer.
    pub timeout: Duration,
    /// `before` hooks only: what a failure does to the run.
    pub on_error: OnError,
    pub span: Span,
}

/// What a hook runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookCommand {
    /// An argument vector; the first word is the program.
    Run(Vec<String>),
    /// A script for `/bin/sh -c`.
    Shell(String),
}

/// Where a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HookPlace {
    #[default]
    Local,
    /// On the job's `host`, over its ssh transport.
    Remote,
}

/// What a failing `before` hook does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// The run fails without syncing.
    #[default]
    Abort,
    /// A warning; the run goes on.
    Continue,
}

/// The phases, in the order a run reaches them, as written in the config.
pub const PHASES: [&str; 4] = ["before", "after_success", "after_failure", "finally"];

impl Decoder {
    /// The job's `hooks:` block (empty when absent); `None` when something in it is wrong
    /// (already reported). `has_host`: whether `where: remote` has a host to run on.
    pub(super) fn hooks(
        &mut self,
        node: Option<&Node>,
        path: &str,
        has_host: bool,
    ) -> Option<Hooks> {
        let Some(node) = node else {
            return Some(Hooks::default());
        };
        let path = format!("{path}.hooks");
        let f = self.fields(node, &path, &fields::HOOKS)?;
        let mut ok = true;
        let mut lists: [Vec<Hook>; 4] = Default::default();
        let nodes = [
            f.get("before"),
            f.get("after_success"),
            f.get("after_failure"),
            f.get("finally"),
        ];
        for ((phase, n), list) in PHASES.iter().zip(nodes).zip(lists.iter_mut()) {
            let Some(n) = n else { continue };
            let p = format!("{path}.{phase}");
            let Some(items) = self.list(n, &p) else {
                ok = false;
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                match self.hook(item, &format!("{p}[{i}]"), *phase == "before", has_host) {
                    Some(h) => list.push(h),
                    None => ok = false,
                }
            }
        }
        let [before, after_success, after_failure, finally] = lists;
        ok.then_some(Hooks {
            before,
            after_success,
            after_failure,
            finally,
        })
    }

    fn hook(&mut self, node: &Node, path: &str, before: bool, has_host: bool) -> Option<Hook> {
        let f = self.fields(node, path, &HOOK)?;
        let mut ok = true;
        let command = match (f.get("run"), f.get("shell")) {
            (Some(n), None) => self.argv(n, &format!("{path}.run")).map(HookCommand::Run),
            (None, Some(n)) => self
                .nonempty(n, &format!("{path}.shell"))
                .map(HookCommand::Shell),
            (Some(_), Some(n)) => {
                self.err(n.span.clone(), path, "a hook has `run` or `shell`, not both")
                    .help = Some(
                    "`run` is an argument vector started without a shell; `shell` is a script for /bin/sh -c"
                        .into(),
                );
                None
            }
            (None, None) => {
                self.err(node.span.clone(), path, "a hook needs `run` or `shell`")
                    .help = Some(
                    "e.g. `run: [/usr/local/bin/dump-db, --fast]` or `shell: \"echo ok | logger\"`"
                        .into(),
                );
                None
            }
        };
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
                    )
                    .help = Some("set `host` on the job, or use `where: local`".into());
                    ok = false;
                    HookPlace::Local
                }
                Some(other) => {
                    self.err(
                        n.span.clone(),
                        &format!("{path}.where"),
                        format!("unknown where `{other}`"),
                    )
                    .help = Some("use `local` (this host) or `remote` (the job's host)".into());
                    ok = false;
                    HookPlace::Local
                }
                None => {
                    ok = false;
                    HookPlace::Local
                }
            },
        };
        let timeout = match f.get("timeout") {
            None => fields::default_duration(&HOOK, "timeout"),
            Some(n) => match self.positive_duration(n, &format!("{path}.timeout")) {
                Some(d) => d,
                None => {
                    ok = false;
                    Duration::ZERO
                }
            },
        };
        let on_error = match f.get("on_error") {
            None => OnError::Abort,
            Some(n) => {
                let p = format!("{path}.on_error");
                match self.string(n, &p).as_deref() {
                    Some(_) if !before => {
                        self.err(n.span.clone(), &p, "`on_error` applies to `before` hooks only")
                            .help = Some(
                            "a failing after or finally hook is a warning and never changes the outcome"
                                .into(),
                        );
                        ok = false;
                        OnError::Abort
                    }
                    Some("abort") => OnError::Abort,
                    Some("continue") => OnError::Continue,
                    Some(other) => {
                        self.err(n.span.clone(), &p, format!("unknown on_error `{other}`"))
                            .help = Some(
                            "use `abort` (the run fails without syncing) or `continue` (a warning)"
                                .into(),
                        );
                        ok = false;
                        OnError::Abort
                    }
                    None => {
                        ok = false;
                        OnError::Abort
                    }
                }
            }
        };
        if !ok {
            return None;
        }
        Some(Hook {
            command: command?,
            place,
            timeout,
            on_error,
            span: node.span.clone(),
        })
    }

    /// A non-empty list of strings, the first one non-empty.
    pub(super) fn argv(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let Value::Seq(items) = &node.value else {
            self.err(
                node.span.clone(),
                path,
                format!("expected a list of words, found {}", node.kind_name()),
            )
            .help = Some(
                "write the program and its arguments as a list: `[/usr/bin/prog, --flag]`; for a shell line use `shell:`"
                    .into(),
            );
            return None;
        };
        let mut words = Vec::new();
        for (i, item) in items.iter().enumerate() {
            words.push(self.string(item, &format!("{path}[{i}]"))?);
        }
        match words.first() {
            None => {
                self.err(node.span.clone(), path, "the argument vector is empty")
                    .help = Some("name the program to run first".into());
                None
            }
            Some(w) if w.is_empty() => {
                self.err(items[0].span.clone(), path, "the program name is empty");
                None
            }
            Some(_) => Some(words),
        }
    }
}
