//! Lock operations through the gate: the framed POSIX scripts of [`crate::lock::remote`]
//! (create, observe, release, refresh), recognised by rebuilding them.
//!
//! The gate reads the parameters back out of the script (the lock path, the token, the record
//! line: each one word made by [`crate::transport::shell_quote`]), rebuilds the script with the
//! very functions the backup server used, and accepts it only when the two are identical byte
//! for byte; then it checks the parameters (the path below an `--allow-locks` directory, also
//! after resolving symlinks; a token of hex digits; one short record line). Any other text,
//! however close, is refused: the gate never interprets shell code, it only recognises four
//! fixed shapes with checked holes. The accepted script then runs in `/bin/sh`, as it would in
//! the login shell without the gate.
//!
//! Must not: accept a script it cannot rebuild, or a path outside the allowed directories.

use std::path::PathBuf;

use super::paths;
use crate::lock::remote::{create_script, if_token_script, observe_script, IF_TOKEN_COMMANDS};

/// The longest record line accepted (a record is one short line of JSON).
const MAX_RECORD: usize = 4096;

/// A recognised lock operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOp {
    Create { path: String },
    Observe { path: String },
    Release { path: String },
    Refresh { path: String },
}

impl LockOp {
    pub fn describe(&self) -> String {
        match self {
            LockOp::Create { path } => format!("lock create {path}"),
            LockOp::Observe { path } => format!("lock observe {path}"),
            LockOp::Release { path } => format!("lock release {path}"),
            LockOp::Refresh { path } => format!("lock refresh {path}"),
        }
    }
}

/// Reads one word as [`crate::transport::shell_quote`] writes it at the start of `s`; returns
/// it and the rest.
fn unquote(s: &str) -> Option<(String, &str)> {
    let bare = |c: char| c.is_ascii_alphanumeric() || "_./:@%+,-".contains(c);
    if !s.starts_with('\'') {
        let end = s.find(|c| !bare(c)).unwrap_or(s.len());
        return (end > 0).then(|| (s[..end].to_string(), &s[end..]));
    }
    let mut out = String::new();
    let mut rest = &s[1..];
    loop {
        let close = rest.find('\'')?;
        out.push_str(&rest[..close]);
        rest = &rest[close + 1..];
        match rest.strip_prefix("\\''") {
            Some(r) => {
                out.push('\'');
                rest = r;
            }
            None => return Some((out, rest)),
        }
    }
}

/// The word after the first `marker` in `script`.
fn word_after(script: &str, marker: &str) -> Option<String> {
    let at = script.find(marker)? + marker.len();
    unquote(&script[at..]).map(|(w, _)| w)
}

/// The token inside `"token":"…"`.
fn token_of(pattern: &str) -> Option<String> {
    let t = pattern.strip_prefix("\"token\":\"")?.strip_suffix('"')?;
    (!t.is_empty() && t.len() <= 64 && t.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| t.to_string())
}

/// Which lock operation `script` is, exactly; `None` when it is none of them.
fn recognise(script: &str) -> Option<LockOp> {
    if let Some(rest) = script.strip_prefix("umask 022; p=") {
        let (path, _) = unquote(rest)?;
        let token = token_of(&word_after(script, "grep -qF -- ")?)?;
        let record = word_after(script, "printf '%s' ")?;
        // One line (to_line ends it with a newline), no NUL.
        let body = record.strip_suffix('\n').unwrap_or(&record);
        if record.len() > MAX_RECORD || body.contains(['\n', '\0']) {
            return None;
        }
        return (create_script(&path, &token, &record) == script)
            .then_some(LockOp::Create { path });
    }
    let rest = script.strip_prefix("p=")?;
    let (path, _) = unquote(rest)?;
    if observe_script(&path) == script {
        return Some(LockOp::Observe { path });
    }
    let token = token_of(&word_after(script, "grep -qF -- ")?)?;
    let [rm, touch] = IF_TOKEN_COMMANDS;
    if if_token_script(&path, &token, rm) == script {
        return Some(LockOp::Release { path });
    }
    if if_token_script(&path, &token, touch) == script {
        return Some(LockOp::Refresh { path });
    }
    None
}

/// Whether `script` looks like a lock operation at all (so its refusal can say why).
pub fn looks_like_lock(script: &str) -> bool {
    script.starts_with("p=") || script.starts_with("umask 022; p=")
}

/// The lock operation `script` is, with its path below one of `dirs`; `Err` says why not.
pub fn check(script: &str, dirs: &[PathBuf]) -> Result<LockOp, String> {
    let op = recognise(script)
        .ok_or_else(|| "not one of backupmanager's lock operations".to_string())?;
    if dirs.is_empty() {
        return Err("lock operations are not allowed (no --allow-locks)".into());
    }
    let (LockOp::Create { path }
    | LockOp::Observe { path }
    | LockOp::Release { path }
    | LockOp::Refresh { path }) = &op;
    paths::inside(path, dirs, false).map_err(|e| format!("{e} (--allow-locks)"))?;
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{Identity, Record};
    use std::time::Duration;

    #[test]
    fn recognises_exactly_the_four_scripts() {
        let dirs = vec![PathBuf::from("/var/lib/bm locks")];
        let p = "/var/lib/bm locks/job's.lock";
        let rec = Record::new(&Identity::current(), "job", "run", Duration::from_secs(600));
        let create = create_script(p, &rec.token, &rec.to_line());
        assert_eq!(check(&create, &dirs), Ok(LockOp::Create { path: p.into() }));
        assert_eq!(
            check(&observe_script(p), &dirs),
            Ok(LockOp::Observe { path: p.into() })
        );
        let release = if_token_script(p, &rec.token, "rm -f");
        assert_eq!(
            check(&release, &dirs),
            Ok(LockOp::Release { path: p.into() })
        );
        let refresh = if_token_script(p, &rec.token, "touch -c");
        assert_eq!(
            check(&refresh, &dirs),
            Ok(LockOp::Refresh { path: p.into() })
        );

        // Anything added, removed or changed is refused.
        for bad in [
            format!("{create}; id"),
            format!("id; {create}"),
            create.replace("mkdir -p", "rm -rf"),
            if_token_script(p, &rec.token, "rm -rf"),
            if_token_script(p, &rec.token, "chmod 777"),
            if_token_script(p, "abc; id", "rm -f"),
            observe_script(p).replace("BM1 ABSENT", "BM1 ABSENT; id"),
            "p=/var/lib/bm\\ locks/x; id".to_string(),
            "p=$(id)".to_string(),
        ] {
            assert!(check(&bad, &dirs).is_err(), "{bad}");
        }
        // Well-formed, but outside the directory or escaping it.
        for path in [
            "/etc/passwd",
            "/var/lib/bm locks/../x",
            "/var/lib/bm locks",
            "/var/lib/bm locksmith/x",
            "relative",
        ] {
            assert!(check(&observe_script(path), &dirs).is_err(), "{path}");
            assert!(check(&create_script(path, &rec.token, &rec.to_line()), &dirs).is_err());
        }
        assert!(check(&observe_script(p), &[]).is_err());
    }

    #[test]
    fn unquotes_what_shell_quote_writes() {
        for w in ["plain", "a b", "it's", "''", "-x", "$(id)", "a\nb", "ü"] {
            let q = crate::transport::shell_quote(w);
            assert_eq!(
                unquote(&format!("{q}; rest")),
                Some((w.to_string(), "; rest")),
                "{q}"
            );
        }
    }
}
