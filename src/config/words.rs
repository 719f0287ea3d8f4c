//! Splitting an `opts` entry into arguments the way a POSIX shell would, without a shell.
//!
//! The design document writes rsync options as shell fragments (`"--exclude '.cache'"`). We honour
//! that by splitting each entry like `sh` splits words: whitespace separates, single quotes are
//! literal, double quotes allow `\"`, `\\`, `\$` and `` \` ``, a backslash outside quotes escapes
//! the next character. Nothing is *expanded*: `$HOME`, `~` and globs reach rsync as written, because
//! no shell ever sees them. Also here: recognising the rsync options the runner must know about.

/// Why an entry could not be split; `offset` is the character where the problem starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError {
    pub offset: usize,
    pub message: String,
}

pub fn split(s: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => cur.push(c),
                        None => return Err(unclosed(i, '\'')),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c @ ('"' | '\\' | '$' | '`'))) => cur.push(c),
                            Some((_, '\n')) => {}
                            Some((_, c)) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(unclosed(i, '"')),
                        },
                        Some((_, c)) => cur.push(c),
                        None => return Err(unclosed(i, '"')),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some((_, '\n')) => {}
                    Some((_, c)) => cur.push(c),
                    None => {
                        return Err(SplitError {
                            offset: i,
                            message: "trailing backslash escapes nothing".into(),
                        })
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn unclosed(offset: usize, q: char) -> SplitError {
    SplitError {
        offset,
        message: format!("unbalanced quote: the {q} here is never closed"),
    }
}

/// True for rsync options that delete files on the receiver (`--delete`, `--delete-after`, `--del`…).
pub fn is_delete_opt(arg: &str) -> bool {
    let name = arg.split('=').next().unwrap_or(arg);
    name == "--del" || name.starts_with("--delete")
}

/// rsync short options that take an argument; in a cluster like `-avT /tmp` scanning stops there.
const SHORT_WITH_ARG: &[char] = &['B', 'e', 'f', 'M', 'T', '@'];

/// True when `arg` sets rsync's remote shell (`-e`, `--rsh`, `-avze…`), which the tool manages.
pub fn sets_rsh(arg: &str) -> bool {
    if arg == "--rsh" || arg.starts_with("--rsh=") {
        return true;
    }
    if let Some(cluster) = arg.strip_prefix('-') {
        if cluster.starts_with('-') {
            return false;
        }
        for c in cluster.chars() {
            if c == 'e' {
                return true;
            }
            if SHORT_WITH_ARG.contains(&c) {
                return false;
            }
        }
    }
    false
}

/// True when short-option clusters in `args` contain `flag` (`-avR` for `R`), scanning each
/// cluster up to an option that takes an argument.
fn short_flag(args: &[String], flag: char) -> bool {
    args.iter().any(|a| {
        let Some(cluster) = a.strip_prefix('-') else {
            return false;
        };
        if cluster.starts_with('-') {
            return false;
        }
        for c in cluster.chars() {
            if c == flag {
                return true;
            }
            if SHORT_WITH_ARG.contains(&c) {
                return false;
            }
        }
        false
    })
}

/// Whether rsync will descend into a directory source, as `args` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recursion {
    /// `-a`, `-r`, `--archive`, `--recursive` (or a cluster holding `a` or `r`).
    On,
    /// `-d`/`--dirs` or `--no-recursive`/`--no-r`: the directory itself only, on purpose.
    Deliberate,
    /// Nothing said: rsync skips a directory source ("skipping directory") and exits 0.
    Missing,
}

pub fn recursion(args: &[String]) -> Recursion {
    if args.iter().any(|a| {
        matches!(
            a.as_str(),
            "--dirs" | "--no-recursive" | "--no-r" | "--no-dirs" | "--no-d"
        )
    }) || short_flag(args, 'd')
    {
        return Recursion::Deliberate;
    }
    if args
        .iter()
        .any(|a| matches!(a.as_str(), "--archive" | "--recursive"))
        || short_flag(args, 'a')
        || short_flag(args, 'r')
    {
        return Recursion::On;
    }
    Recursion::Missing
}

/// True when `args` turn on `--relative` (`-R`): the source path is recreated under dest.
pub fn is_relative(args: &[String]) -> bool {
    args.iter().any(|a| a == "--relative") || short_flag(args, 'R')
}

/// rsync options that must not be used to fill a snapshot, with the reason; `None` if
/// `opts` are fine. `--inplace`/`--append` would write into files hard-linked with older
/// snapshots; the `*-dest` options and `--backup-dir` fight ours.
pub fn snapshot_forbidden(opts: &[String]) -> Option<(&str, &'static str)> {
    opts.iter().find_map(|o| {
        let name = o.split('=').next().unwrap_or(o);
        let why = match name {
            "--inplace" | "--append" | "--append-verify" => {
                "would change files shared (hard-linked) with older snapshots"
            }
            "--link-dest" | "--compare-dest" | "--copy-dest" => {
                "snapshot mode sets --link-dest itself"
            }
            "--backup" | "-b" | "--backup-dir" => "snapshots already keep old versions",
            _ => return None,
        };
        Some((o.as_str(), why))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Vec<String> {
        split(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn splits_like_sh() {
        assert_eq!(ok("-av"), ["-av"]);
        assert_eq!(ok("--exclude '.cache'"), ["--exclude", ".cache"]);
        assert_eq!(ok("  --exclude   'My Music'  "), ["--exclude", "My Music"]);
        assert_eq!(ok(r#"--filter="- *.tmp""#), ["--filter=- *.tmp"]);
        assert_eq!(ok(r#""a\"b" 'c\d'"#), ["a\"b", r"c\d"]);
        assert_eq!(ok(r"a\ b"), ["a b"]);
        assert_eq!(ok("''"), [""]);
        assert_eq!(ok("--exclude=$HOME"), ["--exclude=$HOME"]);
        assert_eq!(ok(""), Vec::<String>::new());
    }

    #[test]
    fn reports_unbalanced_quotes_where_they_open() {
        let e = split("--exclude 'Downloads").unwrap_err();
        assert_eq!(e.offset, 10);
        assert!(e.message.contains("never closed"));
        assert_eq!(split(r#"-a "x"#).unwrap_err().offset, 3);
        assert!(split("abc\\").is_err());
    }

    #[test]
    fn recognises_options_that_matter() {
        for a in [
            "--delete",
            "--delete-after",
            "--del",
            "--delete-excluded",
            "--delete-delay",
        ] {
            assert!(is_delete_opt(a), "{a}");
        }
        for a in [
            "--dele",
            "-d",
            "--remove-source-files",
            "--exclude=--delete",
        ] {
            assert!(!is_delete_opt(a), "{a}");
        }
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for a in [
            &["-a"][..],
            &["-avz"],
            &["-r"],
            &["-vr"],
            &["--archive"],
            &["--recursive"],
        ] {
            assert_eq!(recursion(&v(a)), Recursion::On, "{a:?}");
        }
        for a in [&["-d"][..], &["-av", "--no-r"], &["--dirs"], &["-vd"]] {
            assert_eq!(recursion(&v(a)), Recursion::Deliberate, "{a:?}");
        }
        for a in [
            &[][..],
            &["-v"],
            &["-z", "--exclude", "a"],
            &["-Tar"],
            &["--append"],
        ] {
            assert_eq!(recursion(&v(a)), Recursion::Missing, "{a:?}");
        }
        assert!(is_relative(&v(&["-aR"])) && !is_relative(&v(&["-a"])));
        for a in ["-e", "-essh", "--rsh", "--rsh=ssh -p 2", "-ave", "-avze"] {
            assert!(sets_rsh(a), "{a}");
        }
        for a in [
            "-av",
            "--exclude",
            "-T",
            "-Tetmp",
            "--rsync-path=x",
            "--exclude=-e",
            "e",
        ] {
            assert!(!sets_rsh(a), "{a}");
        }
    }
}
