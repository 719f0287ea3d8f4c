//! Database dumps (`dumps:`), run after the `before` hooks and before the syncs: each writes a
//! hidden temporary file next to its `to` (`.NAME.bm-partial`, mode 0600) and renames it to
//! `to` only once the program exited 0, so `to` is always a complete dump (the previous one
//! until the new one is done) and a failed dump leaves no partial file.
//!
//! Owns: the argument vector of each dump type, and the temporary file's life. Runs the
//! program like a hook ([`super::process`] locally, [`Transport::run_script`] remotely), with
//! the same events (phase `dump`).
//!
//! Must not: use a local shell, or build a remote command except through [`shell_quote`].

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::{process, HookEnv, HookError, Runner};
use crate::config::dumps::{Dump, DumpKind};
use crate::config::hooks::HookPlace;
use crate::events::EventKind;
use crate::rsync::Stream;
use crate::transport::shell_quote;
use process::Ended;

/// Why a dump failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{0}")]
    Run(#[from] HookError),
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DumpError {
    pub fn is_transport(&self) -> bool {
        matches!(self, DumpError::Run(e) if e.is_transport())
    }
}

/// The temporary file a dump to `to` is written to first.
pub fn partial_path(to: &str) -> String {
    match to.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}.bm-partial"),
        None => format!(".{to}.bm-partial"),
    }
}

/// The program and arguments of `dump`, writing to `tmp` (`command`: to standard output).
pub fn argv(dump: &Dump, tmp: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    match &dump.kind {
        DumpKind::Sqlite { database } => {
            // -readonly: a mistyped path fails instead of creating an empty database.
            v.extend(["sqlite3".into(), "-readonly".into(), database.clone()]);
            v.push(format!(".backup '{tmp}'"));
        }
        DumpKind::Postgresql { database } => {
            v.push("pg_dump".into());
            v.extend(dump.options.iter().cloned());
            v.push(format!("--file={tmp}"));
            v.push(format!("--dbname={database}"));
        }
        DumpKind::Mysql { database } => {
            v.push("mysqldump".into());
            v.extend(dump.options.iter().cloned());
            v.push(format!("--result-file={tmp}"));
            v.push(database.clone());
        }
        DumpKind::Command { argv } => v.extend(argv.iter().cloned()),
    }
    v
}

/// A readable form for the log.
pub fn describe(dump: &Dump) -> String {
    format!("{} dump to {}", dump.kind.name(), dump.to)
}

/// The remote script: umask 077, the variables, the program (under the remote host's own
/// enforcement of the dump's timeout, [`super::remote_limit`]), then rename or clean up.
pub fn remote_script(dump: &Dump, vars: &[(&'static str, String)]) -> String {
    let tmp = partial_path(&dump.to);
    let q = |s: &str| shell_quote(s);
    let mut s = super::remote_limit(dump.timeout);
    s.push_str("umask 077; ");
    for (k, v) in vars {
        s.push_str(&format!("{k}={}; export {k}; ", q(v)));
    }
    let cmd = argv(dump, &tmp)
        .iter()
        .map(|w| q(w))
        .collect::<Vec<_>>()
        .join(" ");
    let redirect = match dump.kind {
        DumpKind::Command { .. } => format!(" > {}", q(&tmp)),
        _ => String::new(),
    };
    s.push_str(&format!(
        "rm -f -- {t}; if $bm_t {cmd}{redirect}; then mv -f -- {t} {to}; else st=$?; rm -f -- {t}; exit $st; fi",
        t = q(&tmp),
        to = q(&dump.to),
    ));
    s
}

impl Runner<'_> {
    /// Runs every dump in order; the first failure ends the phase with its index.
    pub fn dumps(
        &self,
        dumps: &[Dump],
        env: &HookEnv,
        cancel: &AtomicBool,
    ) -> Result<(), (usize, DumpError)> {
        for (index, dump) in dumps.iter().enumerate() {
            let remote = dump.place == HookPlace::Remote;
            self.events.emit(EventKind::HookStarted {
                phase: "dump",
                index,
                command: describe(dump),
                remote,
            });
            let start = Instant::now();
            let emit = |stream: Stream, line: &str| {
                self.events.emit(EventKind::HookOutput {
                    phase: "dump",
                    index,
                    stream,
                    line: line.to_string(),
                })
            };
            let vars = env.vars("dump");
            let result = match (remote, self.remote) {
                (true, Some(t)) => t
                    .run_script(&remote_script(dump, &vars), dump.timeout)
                    .map_err(|e| DumpError::Run(super::timed_out(e, dump.timeout)))
                    .and_then(|out| {
                        for (s, b) in [(Stream::Stdout, &out.stdout), (Stream::Stderr, &out.stderr)]
                        {
                            for l in String::from_utf8_lossy(b).lines() {
                                emit(s, l);
                            }
                        }
                        match out.status {
                            0 => Ok(()),
                            code => Err(HookError::Exit { code }.into()),
                        }
                    }),
                (true, None) => Err(DumpError::Run(HookError::Spawn {
                    program: describe(dump),
                    source: std::io::Error::other("the job has no host to dump on"),
                })),
                (false, _) => local(dump, &vars, cancel, emit),
            };
            self.events.emit(EventKind::HookDone {
                phase: "dump",
                index,
                exit_code: match &result {
                    Ok(()) => Some(0),
                    Err(DumpError::Run(HookError::Exit { code })) => Some(*code),
                    Err(_) => None,
                },
                duration: start.elapsed(),
                error: result.as_ref().err().map(ToString::to_string),
                fatal: result.is_err(),
            });
            result.map_err(|e| (index, e))?;
        }
        Ok(())
    }
}

fn local(
    dump: &Dump,
    vars: &[(&'static str, String)],
    cancel: &AtomicBool,
    on_line: impl FnMut(Stream, &str),
) -> Result<(), DumpError> {
    let tmp = partial_path(&dump.to);
    let io = |path: &str| {
        let path = PathBuf::from(path);
        move |source| DumpError::Io { path, source }
    };
    // A leftover of an earlier, killed dump: ours by name.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&tmp)(e)),
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let words = argv(dump, &tmp);
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]).envs(vars.iter().map(|(k, v)| (k, v)));
    let stdout = match dump.kind {
        DumpKind::Command { .. } => Some(file),
        _ => {
            drop(file);
            None
        }
    };
    let ended = process::run(cmd, dump.timeout, cancel, stdout, on_line);
    let result = match ended {
        Err(source) => Err(HookError::Spawn {
            program: words[0].clone(),
            source,
        }
        .into()),
        Ok(Ended::Exited(0)) => finish(&tmp, &dump.to),
        Ok(Ended::Exited(code)) => Err(HookError::Exit { code }.into()),
        Ok(Ended::Signaled(signal)) => Err(HookError::Signaled { signal }.into()),
        Ok(Ended::TimedOut) => Err(HookError::TimedOut {
            limit: dump.timeout,
        }
        .into()),
        Ok(Ended::Cancelled) => Err(HookError::Cancelled.into()),
    };
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes the finished temporary file durable and gives it its name.
fn finish(tmp: &str, to: &str) -> Result<(), DumpError> {
    let io = |path: &str| {
        let path = PathBuf::from(path);
        move |source| DumpError::Io { path, source }
    };
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(tmp))?;
    fs::rename(tmp, to).map_err(io(to))?;
    if let Some(dir) = Path::new(to).parent() {
        // The rename itself survives a crash once the directory is synced.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn dump(kind: DumpKind, options: &[&str]) -> Dump {
        Dump {
            kind,
            options: options.iter().map(|s| s.to_string()).collect(),
            to: "/var/backups/app db.sql".into(),
            place: HookPlace::Local,
            timeout: Duration::from_secs(60),
            span: crate::config::Span {
                file: std::sync::Arc::from(Path::new("t.yaml")),
                line: 1,
                col: 1,
                len: 1,
            },
        }
    }

    #[test]
    fn argument_vectors() {
        assert_eq!(partial_path("/a/b.sql"), "/a/.b.sql.bm-partial");
        let d = dump(
            DumpKind::Postgresql {
                database: "app".into(),
            },
            &["--format=custom"],
        );
        assert_eq!(
            argv(&d, "/t"),
            ["pg_dump", "--format=custom", "--file=/t", "--dbname=app"]
        );
        let d = dump(
            DumpKind::Mysql {
                database: "app".into(),
            },
            &["--single-transaction"],
        );
        assert_eq!(
            argv(&d, "/t"),
            [
                "mysqldump",
                "--single-transaction",
                "--result-file=/t",
                "app"
            ]
        );
        let d = dump(
            DumpKind::Sqlite {
                database: "/db".into(),
            },
            &[],
        );
        assert_eq!(
            argv(&d, "/t"),
            ["sqlite3", "-readonly", "/db", ".backup '/t'"]
        );
    }

    #[test]
    fn remote_script_quotes_and_cleans_up() {
        let d = dump(
            DumpKind::Command {
                argv: vec!["/bin/echo".into(), "$(x)".into()],
            },
            &[],
        );
        let s = remote_script(&d, &[]);
        assert_eq!(
            s,
            "if command -v timeout >/dev/null 2>&1; then bm_t='timeout -k 3 60'; else bm_t=; fi; \
             umask 077; rm -f -- '/var/backups/.app db.sql.bm-partial'; if $bm_t /bin/echo '$(x)' > '/var/backups/.app db.sql.bm-partial'; \
             then mv -f -- '/var/backups/.app db.sql.bm-partial' '/var/backups/app db.sql'; \
             else st=$?; rm -f -- '/var/backups/.app db.sql.bm-partial'; exit $st; fi"
        );
    }
}
