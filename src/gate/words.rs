//! `SSH_ORIGINAL_COMMAND` → words, the way a POSIX shell would split the command rsync builds,
//! and nothing more: words are separated by unescaped spaces or tabs, and a backslash makes the
//! next character literal (rsync 3.2.4+ escapes its remote arguments this way). Any character
//! a shell would act on (`$`, backticks, quotes, `;`, `|`, `&`, redirections, globs, `~`, `#`,
//! newlines, other control characters) is refused unless escaped: the gate never guesses what a
//! shell would have made of it.
//!
//! Must not: expand anything (no variables, no globs, no quotes).

/// Characters refused unless escaped.
const SPECIAL: &str = "$`\"';|&<>(){}*?[]~#!\\";

/// Splits `cmd` into words; `Err` names the first character a shell would interpret.
pub fn split(cmd: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => match chars.next() {
                Some(n) if n == '\n' || n.is_control() => {
                    return Err(format!("an escaped control character {n:?}"))
                }
                Some(n) => {
                    cur.push(n);
                    in_word = true;
                }
                None => return Err("a trailing backslash".into()),
            },
            c if c.is_control() => return Err(format!("the control character {c:?}")),
            c if SPECIAL.contains(c) => {
                return Err(format!("the shell character `{c}` (unescaped)"));
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_rsync_escaping() {
        assert_eq!(
            split("rsync --server --sender -logDtpre.iLsfxCIvu . /a\\ b/c\\$d\\`e\\`\\;f").unwrap(),
            [
                "rsync",
                "--server",
                "--sender",
                "-logDtpre.iLsfxCIvu",
                ".",
                "/a b/c$d`e`;f"
            ]
        );
        assert_eq!(split("  a\t b  ").unwrap(), ["a", "b"]);
        assert_eq!(split("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn refuses_hostile_input() {
        for bad in [
            "rsync --server --sender . /srv; id",
            "rsync --server --sender . /srv && id",
            "rsync --server --sender . /srv | id",
            "rsync --server --sender . $(id)",
            "rsync --server --sender . `id`",
            "rsync --server --sender . /srv/'x'",
            "rsync --server --sender . /srv/\"x\"",
            "rsync --server --sender . /srv/* ",
            "rsync --server --sender . /srv/?",
            "rsync --server --sender . /srv/[a]",
            "rsync --server --sender . ~root",
            "rsync --server --sender . /srv > /etc/passwd",
            "rsync --server --sender . /srv < /etc/shadow",
            "rsync --server --sender . /srv\nid",
            "rsync --server --sender . /srv\rid",
            "rsync --server --sender . /srv\\\nid",
            "rsync --server --sender . /srv #x",
            "rsync --server --sender . /srv\\",
            "rsync --server --sender . {a,b}",
            "rsync --server --sender . /srv\0",
            "rsync --server --sender . /srv\u{1b}[2J",
            "id;",
            "!id",
        ] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
    }
}
