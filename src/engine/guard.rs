//! The empty-source guard: a `--delete` sync whose local source is missing or empty would wipe
//! the destination, and an unmounted disk looks exactly like that. Refuse unless the sync
//! allows it.
//!
//! Must not: touch the destination.

use std::fs;
use std::path::Path;

use crate::config::Sync;

/// `Err(message)` when `sync` must not run.
pub fn empty_source(sync: &Sync) -> Result<(), String> {
    if !sync.deletes() || sync.allow_empty_source {
        return Ok(());
    }
    let p = Path::new(&sync.source);
    let problem = match fs::metadata(p) {
        Err(_) => Some("does not exist"),
        Ok(m) if m.is_dir() => match fs::read_dir(p) {
            Ok(mut entries) => entries.next().is_none().then_some("is empty"),
            Err(_) => Some("cannot be read"),
        },
        Ok(_) => None,
    };
    match problem {
        None => Ok(()),
        Some(what) => Err(format!(
            "refusing to run: source {} {what} and the sync has --delete, which would delete everything at the destination (an unmounted disk looks like this); mount the source, or set `allow_empty_source: true` on the sync if this is intended",
            sync.source
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(source: &str, args: &[&str], allow: bool) -> Sync {
        Sync {
            source: source.into(),
            dest: "/nonexistent-dest/".into(),
            opts: vec![],
            args: args.iter().map(|s| s.to_string()).collect(),
            allow_empty_source: allow,
            span: crate::config::Span::new(Path::new("t"), 1, 1, 1),
        }
    }

    #[test]
    fn empty_source_guard_refuses_only_deleting_syncs() {
        let d = tempfile::tempdir().unwrap();
        let src = format!("{}/", d.path().display());
        assert!(empty_source(&sync(&src, &["-a", "--delete"], false))
            .unwrap_err()
            .contains("is empty"));
        assert!(
            empty_source(&sync("/nonexistent-src/", &["--delete-after"], false))
                .unwrap_err()
                .contains("does not exist")
        );
        assert!(empty_source(&sync(&src, &["-a"], false)).is_ok());
        assert!(empty_source(&sync(&src, &["--delete"], true)).is_ok());
        fs::write(d.path().join("f"), "x").unwrap();
        assert!(empty_source(&sync(&src, &["--delete"], false)).is_ok());
    }
}
