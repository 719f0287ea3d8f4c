//! [`shell_quote`]: the ONE function through which any text reaching a remote POSIX shell
//! must pass (lock paths, records, snapshot names, hook arguments).
//!
//! Must not: be bypassed. A script sent over ssh is built from constant text plus words quoted
//! here, nothing else.

/// Quote `s` for a remote POSIX shell so that it arrives as exactly one word, byte for byte.
///
/// A non-empty word made only of `[A-Za-z0-9_./:@%+,-]` and not starting with `-` is left
/// bare (none of these characters is special to `sh`, `bash`, `dash` or `zsh` in argument
/// position; `=` and `~` are excluded because of assignments, zsh's `=cmd` and tilde
/// expansion). Everything else is wrapped in single quotes, each embedded `'` becoming
/// `'\''`. Newlines, `$`, backticks, `\`, globs and non-ASCII text are safe inside single
/// quotes. A leading `-` is quoted only to make it visible in logs: quoting cannot stop a
/// program from reading it as an option; callers must pass `--`.
pub fn shell_quote(s: &str) -> String {
    let bare = !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:@%+,-".contains(&b));
    if bare {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_safe_words_stay_bare() {
        for w in ["abc", "/tmp/x.lock", "user@host:/p", "a+b,c%d", "v1.2_3-4"] {
            assert_eq!(shell_quote(w), w);
        }
    }

    #[test]
    fn quote_hostile() {
        let cases = [
            ("", "''"),
            ("a b", "'a b'"),
            ("it's", "'it'\\''s'"),
            ("'", "''\\'''"),
            ("\"dq\"", "'\"dq\"'"),
            ("$(rm -rf /)", "'$(rm -rf /)'"),
            ("`id`", "'`id`'"),
            ("a;b", "'a;b'"),
            ("a && b", "'a && b'"),
            ("l1\nl2", "'l1\nl2'"),
            ("-rf", "'-rf'"),
            ("héllo ✓", "'héllo ✓'"),
            ("*?[a]", "'*?[a]'"),
            ("~root", "'~root'"),
            ("x=1", "'x=1'"),
            ("back\\slash", "'back\\slash'"),
        ];
        for (input, want) in cases {
            assert_eq!(shell_quote(input), want, "input {input:?}");
        }
    }
}
