//! `direction`: push (the default) or pull, and what a pull job's sources may hold.
//!
//! A pull source crosses the client's command line (rsync escapes it for the remote shell, or
//! `backupmanager gate` parses it), so it is held to a small alphabet that every rsync since
//! 3.2.4 escapes correctly and the gate reads back exactly. Anything else would be ambiguous:
//! a wildcard would glob on the client, a backtick is left unescaped by rsync 3.2.7.
//!
//! Must not: look at the network or the client's file system.

use super::{Decoder, Fields};
use crate::config::yaml::Node;
use crate::config::Direction;

impl Decoder {
    /// The job's `direction`; a pull job needs `host` (where its sources are).
    pub(super) fn direction(
        &mut self,
        f: &Fields<'_>,
        path: &str,
        has_host: bool,
        ok: &mut bool,
    ) -> Direction {
        let Some(n) = f.get("direction") else {
            return Direction::Push;
        };
        let p = format!("{path}.direction");
        let Some(word) = self.string(n, &p) else {
            *ok = false;
            return Direction::Push;
        };
        let span = n.inner_span(0, word.chars().count());
        let d = match word.as_str() {
            "push" => Direction::Push,
            "pull" => Direction::Pull,
            other => {
                self.err(span, &p, format!("unknown direction `{other}`"))
                    .help = Some(
                    "use `push` (sources here, dests on `host`) or `pull` (sources on `host`, dests here)"
                        .into(),
                );
                *ok = false;
                return Direction::Push;
            }
        };
        if d == Direction::Pull && !has_host {
            self.err(
                span,
                &p,
                "`direction: pull` needs `host`: the host the sources are read from",
            )
            .help = Some(
                "set `host` (and `user`, `identity_file`) to the client to pull from, or remove `direction`"
                    .into(),
            );
            *ok = false;
        }
        d
    }

    /// `mode: archive` with `direction: pull`: not built yet (tar runs on this host; a pull
    /// archive would stream from the client's gate). Always false (an error).
    pub(super) fn refuse_archive_pull(&mut self, f: &Fields<'_>, path: &str) -> bool {
        let n = f.get("direction").expect("a pull job names its direction");
        let p = format!("{path}.direction");
        self.err(
            n.inner_span(0, 4),
            &p,
            "`mode: archive` cannot pull yet: archives are made by tar on this host",
        )
        .help = Some(
            "pull with `mode: snapshot` (or mirror), or run the archive job on the client and push"
                .into(),
        );
        false
    }

    /// A pull job's `source`: an absolute path on the client in the alphabet of [`pull_char_ok`].
    pub(super) fn pull_source(&mut self, n: &Node, path: &str, source: &str) -> bool {
        let Some((at, bad)) = source.char_indices().find(|&(_, c)| !pull_char_ok(c)) else {
            return true;
        };
        let col = source[..at].chars().count();
        self.err(
            n.inner_span(col, 1),
            path,
            format!("pull source `{}` contains {bad:?}", source.escape_debug()),
        )
        .help = Some(
            "a pull source crosses the client's command line: use only letters, digits, spaces and / . _ - + , : @ % = ~ # (rename the directory, or pull its parent)"
                .into(),
        );
        false
    }
}

/// Whether `c` may appear in a pull source.
fn pull_char_ok(c: char) -> bool {
    c.is_alphanumeric() || " /._-+,:@%=~#".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull_path_ok(p: &str) -> bool {
        p.chars().all(pull_char_ok)
    }

    #[test]
    fn pull_alphabet() {
        assert!(pull_path_ok("/srv/data/Fotos Sommer/Übersicht_2024-01.d/"));
        for bad in [
            "/a`id`", "/a$b", "/a*", "/a?", "/a[1]", "/a;b", "/a\nb", "/a\\b", "/a'b", "/a\"b",
            "/a|b", "/a&b", "/a(b)", "/a{b}", "/a<b>", "/a!b", "/a\tb",
        ] {
            assert!(!pull_path_ok(bad), "{bad:?}");
        }
    }
}
