//! The rsync server command line a client's rsync asks for, parsed and checked: only a
//! *sender* (the client's files are read, never written), only options that cannot write on the
//! client, follow symlinks out of a root or hide arguments from the gate, and only paths inside
//! the read-only roots. The gate then runs rsync with an argument vector rebuilt from what it
//! parsed ([`Sender::argv`]), never with the client's text.
//!
//! The shape rsync builds (`rsync --server --sender -<letters>e.<caps> [--long=value…] . PATH…`)
//! is the only one accepted; see DESIGN.md, "The gate", for the comparison with `rrsync -ro`.
//!
//! Must not: run anything.

use std::path::PathBuf;

use super::paths;

/// Single-letter options a sender may get: none of them writes on the sender's side, follows a
/// symlink out of a root or hides arguments.
const SHORT_OK: &str = "ACDEHIJNOSUWXbcdglmnopqrtuvxyz";

/// Single-letter options refused, and why.
const SHORT_REFUSED: &[(char, &str)] = &[
    (
        's',
        "-s/--protect-args sends the paths inside the protocol, hidden from the gate",
    ),
    (
        'L',
        "-L/--copy-links would send what symlinks point to, outside the roots",
    ),
    (
        'k',
        "-k/--copy-dirlinks would follow symlinked directories out of the roots",
    ),
    ('K', "-K/--keep-dirlinks is a receiver option"),
    (
        'R',
        "-R/--relative would send the gate's pinned /proc/self/fd paths as names",
    ),
];

/// Long options a sender may get: (name, takes a `=value`).
const LONG_OK: &[(&str, bool)] = &[
    ("numeric-ids", false),
    ("list-only", false),
    ("one-file-system", false),
    ("size-only", false),
    ("ignore-times", false),
    ("stats", false),
    ("inplace", false),
    ("append", false),
    ("append-verify", false),
    ("partial", false),
    ("sparse", false),
    ("safe-links", false),
    ("munge-links", false),
    ("ignore-errors", false),
    ("ignore-existing", false),
    ("existing", false),
    ("delay-updates", false),
    ("open-noatime", false),
    ("no-implied-dirs", false),
    ("use-qsort", false),
    ("msgs2stderr", false),
    ("no-msgs2stderr", false),
    ("new-compress", false),
    ("old-compress", false),
    ("fake-super", false),
    ("timeout", true),
    ("bwlimit", true),
    ("compress-level", true),
    ("compress-choice", true),
    ("checksum-choice", true),
    ("checksum-seed", true),
    ("block-size", true),
    ("max-size", true),
    ("min-size", true),
    ("modify-window", true),
    ("info", true),
    ("max-alloc", true),
];

/// Long options refused with a reason of their own (everything not in [`LONG_OK`] is refused
/// too, as unknown).
const LONG_REFUSED: &[(&str, &str)] = &[
    ("remove-source-files", "it would delete the client's files"),
    ("remove-sent-files", "it would delete the client's files"),
    (
        "copy-links",
        "it would send what symlinks point to, outside the roots",
    ),
    (
        "copy-unsafe-links",
        "it would send what symlinks out of the tree point to",
    ),
    (
        "copy-dirlinks",
        "it would follow symlinked directories out of the roots",
    ),
    ("protect-args", "it hides the paths from the gate"),
    ("secluded-args", "it hides the paths from the gate"),
    ("files-from", "it names files the gate cannot check"),
    ("log-file", "it writes a file on the client"),
    ("write-batch", "it writes a file on the client"),
    ("only-write-batch", "it writes a file on the client"),
    (
        "iconv",
        "it changes file names between what the gate checked and what rsync opens",
    ),
    ("copy-devices", "it reads device contents"),
];

/// A checked sender request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// Single-letter options, without `e`.
    pub letters: String,
    /// The protocol capabilities after `-e` (e.g. `.iLsfxCIvu`), if sent.
    pub caps: Option<String>,
    pub long: Vec<String>,
    pub paths: Vec<String>,
    /// The root each path is in.
    pub roots: Vec<PathBuf>,
}

impl Sender {
    /// The argument vector for rsync (after the program), rebuilt from the parsed parts, with
    /// `paths` in place of the checked ones (their pinned forms, see [`super::pin`]).
    pub fn argv(&self, paths: &[String]) -> Vec<String> {
        let mut a = vec!["--server".to_string(), "--sender".to_string()];
        let mut cluster = format!("-{}", self.letters);
        if let Some(c) = &self.caps {
            cluster.push('e');
            cluster.push_str(c);
        }
        if cluster != "-" {
            a.push(cluster);
        }
        a.extend(self.long.iter().cloned());
        a.push(".".into());
        a.extend(paths.iter().cloned());
        a
    }
}

/// Parses and checks `words` (the whole command, `rsync` first) against `roots`.
pub fn check(words: &[String], roots: &[PathBuf]) -> Result<Sender, String> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    if w.first() != Some(&"rsync") {
        return Err("not an rsync command".into());
    }
    if w.get(1) != Some(&"--server") {
        return Err("not an rsync server command (rsync --server …)".into());
    }
    if w.contains(&"--daemon") {
        return Err("rsync daemon mode is refused".into());
    }
    if w.get(2) != Some(&"--sender") {
        return Err(
            "refusing an rsync receiver: this key may only read (push to this host is refused)"
                .into(),
        );
    }
    let mut s = Sender {
        letters: String::new(),
        caps: None,
        long: Vec::new(),
        paths: Vec::new(),
        roots: Vec::new(),
    };
    let mut i = 3;
    let mut seen_short = false;
    while i < w.len() && w[i] != "." {
        let a = w[i];
        if let Some(long) = a.strip_prefix("--") {
            check_long(long)?;
            s.long.push(a.to_string());
        } else if let Some(cluster) = a.strip_prefix('-') {
            if seen_short {
                return Err(format!("a second option cluster `{a}`"));
            }
            seen_short = true;
            check_cluster(cluster, &mut s)?;
        } else {
            return Err(format!("unexpected argument `{a}` before `.`"));
        }
        i += 1;
    }
    if i >= w.len() {
        return Err("no `.` argument: not the command line rsync builds".into());
    }
    let paths = &w[i + 1..];
    if paths.is_empty() {
        return Err("no path to send".into());
    }
    for p in paths {
        let root = paths::inside(p, roots, true).map_err(|e| format!("{e} (read-only roots)"))?;
        s.paths.push(p.to_string());
        s.roots.push(root.to_path_buf());
    }
    Ok(s)
}

fn check_cluster(cluster: &str, s: &mut Sender) -> Result<(), String> {
    for (at, c) in cluster.char_indices() {
        if c == 'e' {
            // rsync writes `e` + optional digits + `.` + capability letters (`e.iLsfxCIvu`).
            let caps = &cluster[at + 1..];
            let after_digits = caps.trim_start_matches(|c: char| c.is_ascii_digit());
            let well_formed = after_digits.strip_prefix('.').is_some_and(|letters| {
                letters
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if !well_formed {
                return Err(format!("unexpected protocol capabilities `{caps}`"));
            }
            s.caps = Some(caps.to_string());
            return Ok(());
        }
        if let Some((_, why)) = SHORT_REFUSED.iter().find(|(l, _)| *l == c) {
            return Err(format!("option -{c} is refused: {why}"));
        }
        if !SHORT_OK.contains(c) {
            return Err(format!("option -{c} is not allowed by the gate"));
        }
        s.letters.push(c);
    }
    Ok(())
}

fn check_long(long: &str) -> Result<(), String> {
    let (name, value) = match long.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (long, None),
    };
    if name.starts_with("delete") || name == "del" {
        return Err(format!(
            "option --{name} is refused: nothing is deleted on this host"
        ));
    }
    if let Some((_, why)) = LONG_REFUSED.iter().find(|(n, _)| *n == name) {
        return Err(format!("option --{name} is refused: {why}"));
    }
    match (LONG_OK.iter().find(|(n, _)| *n == name), value) {
        (Some((_, false)), None) => Ok(()),
        (Some((_, true)), Some(v))
            if !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._,:+-".contains(c)) =>
        {
            Ok(())
        }
        (Some(_), _) => Err(format!("option --{long} has an unexpected value")),
        (None, _) => Err(format!("option --{name} is not allowed by the gate")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::words::split;

    fn roots() -> Vec<PathBuf> {
        vec![PathBuf::from("/usr/share")]
    }

    fn ok(cmd: &str) -> Sender {
        check(&split(cmd).unwrap(), &roots()).unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    fn refused(cmd: &str) -> String {
        match check(&split(cmd).unwrap(), &roots()) {
            Ok(s) => panic!("{cmd}: accepted as {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn accepts_what_rsync_sends_for_pulls() {
        let s = ok("rsync --server --sender -lHogDtpAXrze.iLsfxCIvu --numeric-ids --timeout=300 --bwlimit=100 . /usr/share/doc/");
        assert_eq!(
            s.argv(&s.paths),
            [
                "--server",
                "--sender",
                "-lHogDtpAXrze.iLsfxCIvu",
                "--numeric-ids",
                "--timeout=300",
                "--bwlimit=100",
                ".",
                "/usr/share/doc/"
            ]
        );
        ok("rsync --server --sender -de.LsfxCIvu --list-only --timeout=60 . /usr/share/");
        ok("rsync --server --sender -logDtpre.iLsfxCIvu . /usr/share/a\\ b /usr/share/./doc");
        refused("rsync --server --sender -logDtpRre.iLsfxCIvu . /usr/share/doc");
    }

    #[test]
    fn refuses_writes_escapes_and_hidden_args() {
        for (cmd, why) in [
            ("rsync --server -logDtpre.iLsfxCIvu . /usr/share/", "receiver"),
            ("rsync --server -logDtpre.iLsfxCIvu --delete . /usr/share/", "receiver"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu --delete . /usr/share/", "--delete"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu --delete-after . /usr/share/", "--delete-after"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu --remove-source-files . /usr/share/", "remove-source-files"),
            ("rsync --server --sender -lLogDtpre.iLsfxCIvu . /usr/share/", "-L"),
            ("rsync --server --sender -lkogDtpre.iLsfxCIvu . /usr/share/", "-k"),
            ("rsync --server --sender -slogDtpre.iLsfxCIvu", "-s"),
            ("rsync --server --sender -slogDtpre.iLsfxCIvu . /usr/share/", "-s"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu --copy-unsafe-links . /usr/share/", "copy-unsafe-links"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu --copy-links . /usr/share/", "copy-links"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu --protect-args . /usr/share/", "protect-args"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu --files-from=/etc/passwd . /usr/share/", "files-from"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu --log-file=/etc/x . /usr/share/", "log-file"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu --rsync-path=/bin/sh . /usr/share/", "rsync-path"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu --timeout . /usr/share/", "value"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu --info=a/b . /usr/share/", "value"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu . /etc/", "outside"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu . /usr/share/../../etc", ".."),
            ("rsync --server --sender -logDtpre.iLsfxCIvu . /usr/sharex", "outside"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu . usr/share", "absolute"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu . /usr/share/\\*", "contains"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu . /usr/share/ /etc/", "outside"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu .", "no path"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu /usr/share/", "`.`"),
            ("rsync --server --sender -logDtpre.iLs\\;id . /usr/share/", "capabilities"),
            ("rsync --server --sender -elogDtpr . /usr/share/", "capabilities"),
            ("rsync --server --sender -logDtpre.i.L . /usr/share/", "capabilities"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu -v . /usr/share/", "second"),
            ("rsync --server --sender --daemon . /usr/share/", "daemon"),
            ("rsync --server --sender -logDtpre.iLsfxCIvu x . /usr/share/", "unexpected"),
            ("rsync --sender --server . /usr/share/", "server command"),
            ("/usr/bin/rsync --server --sender . /usr/share/", "not an rsync"),
            ("id", "not an rsync"),
        ] {
            let e = refused(cmd);
            assert!(e.contains(why), "{cmd}: {e}");
        }
    }

    /// Every printable ASCII character and a few others, at every position of a valid
    /// request: the gate never panics, and whatever it accepts still only reads inside the root.
    #[test]
    fn hostile_characters_anywhere() {
        let base = "rsync --server --sender -logDtpre.iLsfxCIvu --timeout=300 . /usr/share/doc/";
        let extra = ['\n', '\t', '\0', '\u{7f}', 'é', '\u{202e}'];
        for c in (' '..='~').chain(extra) {
            for at in base.char_indices().map(|(i, _)| i).chain([base.len()]) {
                for insert in [c.to_string(), format!("\\{c}"), format!(" {c}")] {
                    let cmd = format!("{}{insert}{}", &base[..at], &base[at..]);
                    let Ok(words) = split(&cmd) else { continue };
                    if let Ok(s) = check(&words, &roots()) {
                        assert_eq!(s.paths.len(), s.roots.len());
                        for p in &s.paths {
                            let lex = paths::lexical(p).unwrap();
                            assert!(lex.starts_with("/usr/share"), "{cmd:?} reads {p}");
                        }
                        assert!(!s.letters.contains(['s', 'L', 'k', 'K', 'R']), "{cmd:?}");
                        assert!(
                            s.long
                                .iter()
                                .all(|l| !l.contains("delete") && !l.contains("remove")),
                            "{cmd:?}"
                        );
                    }
                }
            }
        }
    }
}
