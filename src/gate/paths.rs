//! Whether a path the client asked for is inside one of the gate's directories.
//!
//! Two checks, both must pass. Lexical: the path is absolute, has no `..` component and no
//! glob character (rsync's server expands globs in its arguments, so `/srv/dat*` could reach
//! `/srv/database`), and after dropping `.` components it is a directory or below it. Real: the
//! path with every symlink resolved (its longest existing ancestor, for a lock file not created
//! yet or a source that is missing) is still inside the directory resolved the same way, so a
//! symlink inside a root cannot lead the sender out of it.
//!
//! Must not: create, open or change anything.

use std::path::{Component, Path, PathBuf};

/// The normalized form of an absolute path without `..` or globs (`.` components and repeated
/// or trailing slashes dropped); `Err` says why it cannot be one.
pub fn lexical(path: &str) -> Result<PathBuf, String> {
    if !path.starts_with('/') {
        return Err(format!("path {path:?} is not absolute"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| "*?[]{}".contains(*c) || c.is_control())
    {
        return Err(format!("path {path:?} contains {c:?}"));
    }
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => return Err(format!("path {path:?} contains `..`")),
            Component::Prefix(_) => return Err(format!("path {path:?} is not a Unix path")),
        }
    }
    Ok(out)
}

/// `path` resolved through every symlink: its longest existing ancestor canonicalized, with
/// the rest appended.
fn resolved(path: &Path) -> Result<PathBuf, String> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(c) => {
                let mut out = c;
                for n in rest.iter().rev() {
                    out.push(n);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(name) = existing.file_name().map(|n| n.to_os_string()) else {
                    return Err(format!("cannot resolve {}", path.display()));
                };
                rest.push(name);
                existing.pop();
            }
            Err(e) => return Err(format!("cannot resolve {}: {e}", existing.display())),
        }
    }
}

/// The directory of `dirs` that holds `path` (lexically and after resolving symlinks), or why
/// none does. `allow_self`: the directory itself counts (a root can be read whole; a lock
/// file must be below its directory).
pub fn inside<'a>(path: &str, dirs: &'a [PathBuf], allow_self: bool) -> Result<&'a Path, String> {
    let lex = lexical(path)?;
    let real = resolved(&lex)?;
    for d in dirs {
        let under = |p: &Path, d: &Path| p.starts_with(d) && (allow_self || p != d);
        if !under(&lex, d) {
            continue;
        }
        let real_dir = resolved(d)?;
        if under(&real, &real_dir) {
            return Ok(d);
        }
        return Err(format!(
            "path {path:?} resolves to {} through a symlink, outside {}",
            real.display(),
            d.display()
        ));
    }
    Err(format!(
        "path {path:?} is outside the allowed directories ({})",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn lexical_rules() {
        assert_eq!(
            lexical("/srv//data/./x/").unwrap(),
            PathBuf::from("/srv/data/x")
        );
        for bad in [
            "srv",
            "",
            "/srv/../etc",
            "/srv/data/..",
            "/srv/*",
            "/srv/a?",
            "/srv/[ab]",
            "/srv/{a,b}",
            "/srv/a\nb",
        ] {
            assert!(lexical(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn inside_roots_and_symlinks() {
        let t = std::env::temp_dir().join(format!("bm-gate-paths-{}", std::process::id()));
        let root = t.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(t.join("rootother")).unwrap();
        symlink("/etc", root.join("out")).unwrap();
        symlink("sub", root.join("in")).unwrap();
        let roots = [root.clone()];
        let s = |p: &Path| p.to_str().unwrap().to_string();
        assert!(inside(&s(&root), &roots, true).is_ok());
        assert!(inside(&s(&root), &roots, false).is_err());
        assert!(inside(&format!("{}/sub/", s(&root)), &roots, true).is_ok());
        assert!(inside(&format!("{}/in/", s(&root)), &roots, true).is_ok());
        assert!(inside(&format!("{}/missing/x", s(&root)), &roots, true).is_ok());
        // A sibling whose name starts with the root's is not inside it.
        assert!(inside(&s(&t.join("rootother")), &roots, true).is_err());
        assert!(inside(&format!("{}/out/", s(&root)), &roots, true).is_err());
        assert!(inside(&format!("{}/out/passwd", s(&root)), &roots, true).is_err());
        assert!(inside(&format!("{}/out/nonexistent", s(&root)), &roots, true).is_err());
        assert!(inside(&format!("{}/../etc", s(&root)), &roots, true).is_err());
        assert!(inside("/etc/passwd", &roots, true).is_err());
        std::fs::remove_dir_all(&t).unwrap();
    }
}
