//! Running a job's hooks: one phase's list in order, locally (an argument vector, or
//! `/bin/sh -c` for `shell:`) or on the job's host over its [`Transport`], with the run's
//! environment, a timeout, and every output line sent as a run event.
//!
//! Owns: what a hook sees ([`HookEnv`] → `BACKUPMANAGER_*` variables), how a phase ends
//! ([`Before`]), and [`HookError`]. The order of phases within a run is the run's
//! ([`crate::run`]); this module runs one phase when asked.
//!
//! Must not: take or release locks, decide a run's outcome (it reports; the run decides), or
//! build a remote command except through [`shell_quote`].

pub mod dump;
pub mod process;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::config::hooks::{Hook, HookCommand, HookPlace, OnError};
use crate::events::{Emitter, EventKind};
use crate::rsync::Stream;
use crate::transport::{shell_quote, Transport, TransportError};
use process::Ended;

/// The exit code with which a `before` hook skips the run (EX_TEMPFAIL, borgmatic's "soft
/// failure").
pub const SKIP_EXIT: i32 = 75;

/// The one shell, for `shell:` hooks.
pub const SHELL: &str = "/bin/sh";

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("exited with code {code}")]
    Exit { code: i32 },
    #[error("was killed by signal {signal}")]
    Signaled { signal: i32 },
    #[error("did not finish within {} and was stopped", crate::config::duration::format(*.limit))]
    TimedOut { limit: Duration },
    #[error("was stopped because the run was cancelled")]
    Cancelled,
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl HookError {
    /// The host could not be reached (a remote hook): transient, like any transport failure.
    pub fn is_transport(&self) -> bool {
        matches!(self, HookError::Transport(_))
    }
}

/// What hooks are told about the run, as `BACKUPMANAGER_*` variables.
#[derive(Debug, Clone, Default)]
pub struct HookEnv {
    pub job: String,
    pub run_id: String,
    pub log_file: Option<PathBuf>,
    /// After and finally phases: how the run ended so far (`success`, `failed`, ...).
    pub outcome: Option<String>,
    /// The run's error, empty on success.
    pub error: String,
    /// What `run-job` will exit with.
    pub exit_code: Option<i32>,
    /// The newest restore point this run committed (snapshot mode).
    pub restore_point: Option<String>,
}

impl HookEnv {
    /// The variables for a hook of `phase`, in a fixed order.
    pub fn vars(&self, phase: &str) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("BACKUPMANAGER_JOB", self.job.clone()),
            ("BACKUPMANAGER_RUN_ID", self.run_id.clone()),
            ("BACKUPMANAGER_PHASE", phase.to_string()),
            (
                "BACKUPMANAGER_OUTCOME",
                self.outcome.clone().unwrap_or_default(),
            ),
            ("BACKUPMANAGER_ERROR", self.error.clone()),
            (
                "BACKUPMANAGER_EXIT_CODE",
                self.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            ),
            (
                "BACKUPMANAGER_LOG_FILE",
                self.log_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        ];
        if let Some(r) = &self.restore_point {
            v.push(("BACKUPMANAGER_RESTORE_POINT", r.clone()));
        }
        v
    }
}

/// How the `before` phase ended.
#[derive(Debug)]
pub enum Before {
    /// Every hook succeeded, or failed with `on_error: continue`.
    Go,
    /// Hook `index` exited [`SKIP_EXIT`]: the run is skipped.
    Skip { index: usize },
    /// Hook `index` failed with `on_error: abort`.
    Abort { index: usize, error: HookError },
}

/// Where hooks of one job run.
pub struct Runner<'a> {
    /// The job's host, for `where: remote`.
    pub remote: Option<&'a dyn Transport>,
    pub events: &'a Emitter,
}

impl Runner<'_> {
    /// Runs the `before` hooks in order; stops at the first that skips or aborts.
    pub fn before(&self, hooks: &[Hook], env: &HookEnv, cancel: &AtomicBool) -> Before {
        for (index, hook) in hooks.iter().enumerate() {
            let fatal = hook.on_error == OnError::Abort;
            match self.one("before", index, hook, env, cancel, fatal, None) {
                Ok(()) => {}
                Err(HookError::Exit { code: SKIP_EXIT }) => return Before::Skip { index },
                Err(error) if fatal => return Before::Abort { index, error },
                Err(_) => {}
            }
        }
        Before::Go
    }

    /// Runs the hooks of an after or finally `phase` in order. A failure is a warning (its
    /// event says so) and the next hook still runs. `cap` shortens every timeout (a cancelled
    /// run still runs them, briefly).
    pub fn after(
        &self,
        phase: &'static str,
        hooks: &[Hook],
        env: &HookEnv,
        cancel: &AtomicBool,
        cap: Option<Duration>,
    ) {
        for (index, hook) in hooks.iter().enumerate() {
            let _ = self.one(phase, index, hook, env, cancel, false, cap);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn one(
        &self,
        phase: &'static str,
        index: usize,
        hook: &Hook,
        env: &HookEnv,
        cancel: &AtomicBool,
        fatal: bool,
        cap: Option<Duration>,
    ) -> Result<(), HookError> {
        let timeout = cap.map_or(hook.timeout, |c| c.min(hook.timeout));
        let remote = hook.place == HookPlace::Remote;
        self.events.emit(EventKind::HookStarted {
            phase,
            index,
            command: describe(&hook.command),
            remote,
        });
        let start = Instant::now();
        let emit_line = |stream: Stream, line: &str| {
            self.events.emit(EventKind::HookOutput {
                phase,
                index,
                stream,
                line: line.to_string(),
            })
        };
        let vars = env.vars(phase);
        let result = match (remote, self.remote) {
            (true, Some(t)) => run_remote(t, &hook.command, &vars, timeout, emit_line),
            // The decoder refuses `where: remote` on a job without a host.
            (true, None) => Err(HookError::Spawn {
                program: describe(&hook.command),
                source: std::io::Error::other("the job has no host to run a remote hook on"),
            }),
            (false, _) => run_local(&hook.command, &vars, timeout, cancel, emit_line),
        };
        let exit_code = match &result {
            Ok(()) => Some(0),
            Err(HookError::Exit { code }) => Some(*code),
            Err(_) => None,
        };
        let skip = phase == "before" && matches!(result, Err(HookError::Exit { code: SKIP_EXIT }));
        self.events.emit(EventKind::HookDone {
            phase,
            index,
            exit_code,
            duration: start.elapsed(),
            error: if skip {
                None
            } else {
                result.as_ref().err().map(ToString::to_string)
            },
            fatal: fatal && result.is_err() && !skip,
        });
        result
    }
}

/// A readable form of a hook's command, for the log (argv words quoted as a shell would need).
pub fn describe(c: &HookCommand) -> String {
    match c {
        HookCommand::Run(argv) => argv
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" "),
        HookCommand::Shell(s) => format!("sh -c {}", shell_quote(s)),
    }
}

fn run_local(
    command: &HookCommand,
    vars: &[(&'static str, String)],
    timeout: Duration,
    cancel: &AtomicBool,
    on_line: impl FnMut(Stream, &str),
) -> Result<(), HookError> {
    let (program, mut cmd) = match command {
        HookCommand::Run(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            (argv[0].clone(), c)
        }
        HookCommand::Shell(script) => {
            let mut c = Command::new(SHELL);
            c.arg("-c").arg(script);
            (SHELL.to_string(), c)
        }
    };
    cmd.envs(vars.iter().map(|(k, v)| (k, v)));
    match process::run(cmd, timeout, cancel, None, on_line) {
        Err(source) => Err(HookError::Spawn { program, source }),
        Ok(Ended::Exited(0)) => Ok(()),
        Ok(Ended::Exited(code)) => Err(HookError::Exit { code }),
        Ok(Ended::Signaled(signal)) => Err(HookError::Signaled { signal }),
        Ok(Ended::TimedOut) => Err(HookError::TimedOut { limit: timeout }),
        Ok(Ended::Cancelled) => Err(HookError::Cancelled),
    }
}

/// ssh's own timeout is the hook's (not a transport failure to retry); others pass through.
pub fn timed_out(e: TransportError, limit: Duration) -> HookError {
    match e {
        TransportError::Timeout { .. } => HookError::TimedOut { limit },
        e => HookError::Transport(e),
    }
}

/// The start of a remote script that sets `$bm_t` to the prefix that makes the remote host
/// enforce `limit` itself: `timeout -k GRACE N` when the host has `timeout` (GNU coreutils
/// signals the command's whole process group, then SIGKILLs it after the grace period), else
/// nothing. Ending our ssh session at the limit does not stop what it started there (no
/// terminal, no hangup), so without this a stuck remote hook or dump would run on.
pub fn remote_limit(limit: Duration) -> String {
    let secs = limit.as_secs() + u64::from(limit.subsec_nanos() > 0);
    format!(
        "if command -v timeout >/dev/null 2>&1; then bm_t='timeout -k {} {}'; else bm_t=; fi; ",
        process::GRACE.as_secs(),
        secs.max(1)
    )
}

/// The script a remote hook runs in the login shell: the variables exported, then the
/// command by `exec` (every word through [`shell_quote`]) under the remote host's own
/// enforcement of `limit` ([`remote_limit`]).
pub fn remote_script(
    command: &HookCommand,
    vars: &[(&'static str, String)],
    limit: Duration,
) -> String {
    let mut s = remote_limit(limit);
    for (k, v) in vars {
        s.push_str(&format!("{k}={}; export {k}; ", shell_quote(v)));
    }
    s.push_str("exec $bm_t ");
    s.push_str(&match command {
        HookCommand::Run(argv) => argv
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" "),
        HookCommand::Shell(script) => format!("{SHELL} -c {}", shell_quote(script)),
    });
    s
}

fn run_remote(
    t: &dyn Transport,
    command: &HookCommand,
    vars: &[(&'static str, String)],
    timeout: Duration,
    mut on_line: impl FnMut(Stream, &str),
) -> Result<(), HookError> {
    let out = t
        .run_script(&remote_script(command, vars, timeout), timeout)
        .map_err(|e| timed_out(e, timeout))?;
    for (stream, bytes) in [(Stream::Stdout, &out.stdout), (Stream::Stderr, &out.stderr)] {
        for line in String::from_utf8_lossy(bytes).lines() {
            on_line(stream, line);
        }
    }
    match out.status {
        0 => Ok(()),
        code => Err(HookError::Exit { code }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_script_quotes_every_word() {
        let env = HookEnv {
            job: "j".into(),
            error: "it's $HOME; `x`".into(),
            ..HookEnv::default()
        };
        let s = remote_script(
            &HookCommand::Run(vec!["/bin/echo".into(), "a b".into(), "$(id)".into()]),
            &env.vars("after_failure"),
            Duration::from_millis(1500),
        );
        assert!(
            s.starts_with("if command -v timeout >/dev/null 2>&1; then bm_t='timeout -k 3 2'; else bm_t=; fi; "),
            "{s}"
        );
        assert!(
            s.contains("BACKUPMANAGER_ERROR='it'\\''s $HOME; `x`'; export BACKUPMANAGER_ERROR;"),
            "{s}"
        );
        assert!(s.ends_with("exec $bm_t /bin/echo 'a b' '$(id)'"), "{s}");
        let s = remote_script(
            &HookCommand::Shell("echo ok | logger".into()),
            &[],
            Duration::from_secs(3600),
        );
        assert_eq!(
            s,
            "if command -v timeout >/dev/null 2>&1; then bm_t='timeout -k 3 3600'; else bm_t=; fi; \
             exec $bm_t /bin/sh -c 'echo ok | logger'"
        );
    }

    #[test]
    fn the_environment_names_every_variable() {
        let env = HookEnv {
            job: "j".into(),
            run_id: "r".into(),
            outcome: Some("success".into()),
            exit_code: Some(0),
            restore_point: Some("2026-01-01T000000".into()),
            ..HookEnv::default()
        };
        let names: Vec<&str> = env.vars("finally").iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "BACKUPMANAGER_JOB",
                "BACKUPMANAGER_RUN_ID",
                "BACKUPMANAGER_PHASE",
                "BACKUPMANAGER_OUTCOME",
                "BACKUPMANAGER_ERROR",
                "BACKUPMANAGER_EXIT_CODE",
                "BACKUPMANAGER_LOG_FILE",
                "BACKUPMANAGER_RESTORE_POINT"
            ]
        );
    }
}
