//! `backupmanager gate`: the forced command of a backup server's key on a client, which lets
//! that key read and nothing else.
//!
//! sshd runs the gate instead of whatever the server asked for and puts the request in
//! `SSH_ORIGINAL_COMMAND`. The gate allows exactly:
//! - an rsync *sender* for paths under the `--read-only` roots ([`rsync`]: parsed and checked,
//!   then rsync is executed with an argument vector rebuilt from the parsed parts, no shell);
//! - the lock operations of the lock protocol for lock files below an `--allow-locks` directory
//!   ([`locks`]: the four scripts of [`crate::lock::remote`], recognised byte for byte);
//! - `dump NAME` for a command declared on the client with `--allow-dump NAME=COMMAND`
//!   (executed as its whitespace-separated words, no shell);
//! - `tar DIR`: a tar stream on stdout of a directory under a `--read-only` root (pinned like an
//!   rsync path; symlinks stored as symlinks), for an archive pull.
//!
//! Everything else is refused with one line on stderr (`backupmanager gate: refused: WHY`), and
//! every decision is logged ([`syslog`]). Words are read by [`words`], paths checked by
//! [`paths`]. `--print-authorized-keys-line` prints the line to paste ([`keys`]).
//!
//! Must not: run a shell on text it did not recognise whole, write anything itself, or import
//! the daemon, run or engine layers.

pub mod keys;
pub mod locks;
pub mod paths;
pub mod pin;
pub mod rsync;
pub mod syslog;
pub mod words;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use crate::exit;

/// The gate's options, as given on the forced command line.
#[derive(Debug, Clone, Default)]
pub struct GateArgs {
    pub read_only: Vec<PathBuf>,
    pub allow_locks: Vec<PathBuf>,
    pub allow_dump: Vec<String>,
    /// The rsync to execute (default: `rsync` from `PATH`).
    pub rsync: Option<PathBuf>,
    /// Where log lines go (default `/dev/log`).
    pub syslog_socket: Option<PathBuf>,
    pub print_authorized_keys_line: bool,
    /// The public key for `--print-authorized-keys-line` (the text of a `.pub` file).
    pub key: Option<String>,
}

/// A named dump command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    pub name: String,
    pub argv: Vec<String>,
}

/// `NAME=COMMAND`: a name of letters, digits, `_`, `-`, `.`, and an absolute program with its
/// arguments, separated by whitespace.
pub fn parse_dump(spec: &str) -> Result<Dump, String> {
    let (name, command) = spec
        .split_once('=')
        .ok_or_else(|| format!("--allow-dump {spec:?}: expected NAME=COMMAND"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(format!(
            "--allow-dump {spec:?}: the name may hold only letters, digits, `_`, `-` and `.`"
        ));
    }
    let argv: Vec<String> = command.split_whitespace().map(str::to_string).collect();
    if !argv.first().is_some_and(|p| p.starts_with('/')) {
        return Err(format!(
            "--allow-dump {spec:?}: the command must start with an absolute program path"
        ));
    }
    Ok(Dump {
        name: name.into(),
        argv,
    })
}

/// What the gate decided to run.
#[derive(Debug)]
enum Allowed {
    /// The request, and its paths pinned (see [`pin`]).
    Rsync(rsync::Sender, Vec<pin::Pinned>),
    Lock(locks::LockOp),
    Dump(Dump),
    /// `tar DIR`: the directory, pinned.
    Tar(String, pin::Pinned),
}

/// The checked configuration of one gate invocation.
struct Gate {
    roots: Vec<PathBuf>,
    lock_dirs: Vec<PathBuf>,
    dumps: Vec<Dump>,
}

impl Gate {
    fn new(args: &GateArgs) -> Result<Gate, String> {
        let norm = |flag: &str, ps: &[PathBuf]| -> Result<Vec<PathBuf>, String> {
            ps.iter()
                .map(|p| paths::lexical(&p.to_string_lossy()).map_err(|e| format!("{flag}: {e}")))
                .collect()
        };
        Ok(Gate {
            roots: norm("--read-only", &args.read_only)?,
            lock_dirs: norm("--allow-locks", &args.allow_locks)?,
            dumps: args
                .allow_dump
                .iter()
                .map(|d| parse_dump(d))
                .collect::<Result<_, _>>()?,
        })
    }

    fn decide(&self, cmd: &str) -> Result<Allowed, String> {
        if locks::looks_like_lock(cmd) {
            return locks::check(cmd, &self.lock_dirs).map(Allowed::Lock);
        }
        let words = words::split(cmd)?;
        match words.first().map(String::as_str) {
            Some("rsync") => {
                if self.roots.is_empty() {
                    return Err("rsync is not allowed (no --read-only roots)".into());
                }
                let s = rsync::check(&words, &self.roots)?;
                let pins = s
                    .paths
                    .iter()
                    .zip(&s.roots)
                    .map(|(p, root)| pin::pin(p, &paths::lexical(p)?, root))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Allowed::Rsync(s, pins))
            }
            Some("tar") if words.len() == 2 => {
                let dir = &words[1];
                let root = paths::inside(dir, &self.roots, true)
                    .map_err(|e| format!("{e} (read-only roots)"))?;
                // A trailing slash pins the directory itself (never a symlink's parent).
                let pinned = pin::pin(
                    &format!("{}/", dir.trim_end_matches('/')),
                    &paths::lexical(dir)?,
                    root,
                )?;
                Ok(Allowed::Tar(dir.clone(), pinned))
            }
            Some("dump") if words.len() == 2 => self
                .dumps
                .iter()
                .find(|d| d.name == words[1])
                .cloned()
                .map(Allowed::Dump)
                .ok_or_else(|| format!("no dump named {:?} (--allow-dump)", words[1])),
            _ => Err(
                "only rsync senders, lock operations, tar streams and declared dumps are allowed through this key"
                    .into(),
            ),
        }
    }
}

/// Runs the gate; returns an exit code only when it does not execute the allowed command.
pub fn run(args: &GateArgs) -> i32 {
    let gate = match Gate::new(args) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("backupmanager gate: {e}");
            return exit::CONFIG;
        }
    };
    if args.print_authorized_keys_line {
        return print_line(args);
    }
    let socket = args
        .syslog_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from("/dev/log"));
    let from = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|c| c.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let Some(cmd) = std::env::var_os("SSH_ORIGINAL_COMMAND") else {
        let why = "no command: an interactive login is refused";
        eprintln!("backupmanager gate: refused: {why}");
        syslog::log(&socket, true, &format!("refused: {why}; from {from}"));
        return exit::FAILED;
    };
    let (cmd, decided) = match cmd.into_string() {
        Ok(c) => {
            let d = gate.decide(&c);
            (c, d)
        }
        Err(raw) => (
            raw.to_string_lossy().into_owned(),
            Err("the command is not UTF-8".to_string()),
        ),
    };
    let shown = syslog::shown(&cmd);
    let mut command = match decided {
        Err(why) => {
            eprintln!("backupmanager gate: refused: {why}");
            syslog::log(
                &socket,
                true,
                &format!("refused: {why}; from {from}; command \"{shown}\""),
            );
            return exit::FAILED;
        }
        Ok(Allowed::Rsync(s, pins)) => {
            syslog::log(
                &socket,
                false,
                &format!(
                    "allowed: rsync sender of {}; from {from}",
                    s.paths.join(" ")
                ),
            );
            let pinned: Vec<String> = pins.iter().map(|p| p.arg.clone()).collect();
            let mut c = Command::new(args.rsync.clone().unwrap_or_else(|| "rsync".into()));
            c.args(s.argv(&pinned));
            // The pinned directories stay open into rsync (exec keeps them: no CLOEXEC).
            std::mem::forget(pins);
            c
        }
        Ok(Allowed::Lock(op)) => {
            syslog::log(
                &socket,
                false,
                &format!("allowed: {}; from {from}", op.describe()),
            );
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(&cmd);
            c
        }
        Ok(Allowed::Tar(dir, pinned)) => {
            syslog::log(
                &socket,
                false,
                &format!("allowed: tar of {dir}; from {from}"),
            );
            let mut c = Command::new("tar");
            c.arg("--create")
                .arg("--file=-")
                .arg(format!("--directory={}", pinned.arg))
                .arg(".");
            // Kept open into tar, like rsync's pins.
            std::mem::forget(pinned);
            c
        }
        Ok(Allowed::Dump(d)) => {
            syslog::log(
                &socket,
                false,
                &format!("allowed: dump {}; from {from}", d.name),
            );
            let mut c = Command::new(&d.argv[0]);
            c.args(&d.argv[1..]);
            c
        }
    };
    let e = command.exec();
    eprintln!("backupmanager gate: cannot execute {command:?}: {e}");
    exit::FAILED
}

fn print_line(args: &GateArgs) -> i32 {
    let Some(key) = &args.key else {
        eprintln!(
            "backupmanager gate: --print-authorized-keys-line needs --key \"$(cat /path/to/server_key.pub)\""
        );
        return exit::USAGE;
    };
    if args.read_only.is_empty() {
        eprintln!("backupmanager gate: give at least one --read-only root");
        return exit::USAGE;
    }
    let exe = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/usr/bin/backupmanager".into());
    println!("{}", keys::line(&exe, args, key));
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_specs() {
        let d = parse_dump("db=/usr/bin/pg_dumpall  -U postgres").unwrap();
        assert_eq!(d.name, "db");
        assert_eq!(d.argv, ["/usr/bin/pg_dumpall", "-U", "postgres"]);
        for bad in [
            "db",
            "=/bin/true",
            "d b=/bin/true",
            "db=true",
            "db=",
            "x;y=/bin/true",
        ] {
            assert!(parse_dump(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decisions() {
        let gate = Gate::new(&GateArgs {
            read_only: vec!["/usr/share".into()],
            allow_locks: vec!["/tmp/bm-gate-locks".into()],
            allow_dump: vec!["db=/bin/echo dump".into()],
            ..GateArgs::default()
        })
        .unwrap();
        assert!(matches!(gate.decide("dump db"), Ok(Allowed::Dump(_))));
        assert!(matches!(
            gate.decide("rsync --server --sender -logDtpre.iLsfxCIvu . /usr/share/doc/"),
            Ok(Allowed::Rsync(..))
        ));
        for bad in [
            "",
            "id",
            "sh -c id",
            "dump other",
            "dump db extra",
            "scp -f /usr/share/x",
            "rsync --server -logDtpre.iLsfxCIvu . /usr/share/",
            "p=/etc/passwd; cat \"$p\"",
        ] {
            assert!(gate.decide(bad).is_err(), "{bad:?}");
        }
        let none = Gate::new(&GateArgs::default()).unwrap();
        assert!(none
            .decide("rsync --server --sender -logDtpre.iLsfxCIvu . /usr/share/")
            .is_err());
        assert!(Gate::new(&GateArgs {
            read_only: vec!["relative".into()],
            ..GateArgs::default()
        })
        .is_err());
    }
}
