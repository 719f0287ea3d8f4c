//! GNU tar for archive mode: the argument vectors of a level 0 / level N archive and of an
//! incremental extraction, the compressor's, and tar's exit classes; [`probe`] checks for GNU tar.
//!
//! Owns: every word passed to `tar`, `zstd` and `gzip`, and what their exit codes mean.
//! [`pipeline`] runs them as a pipeline of child processes (no shell).
//!
//! Must not: decide chains, names or where files live (the archive series does), or start
//! anything through a shell.
//!
//! Why these options:
//! * `--listed-incremental=SNAR` makes the archive a level 0 when SNAR is empty and a level N
//!   on top of whatever state SNAR holds; the caller passes a *copy* of the parent's file, so
//!   the parent's is never modified.
//! * `--numeric-owner` keeps owners as numbers both ways: a restore on a rescue system without
//!   the same user names gives the same ids.
//! * `--verbose --index-file=FILE` lists each member into a local file (buffered by tar): the
//!   file count of the manifest. On stderr through a pipe the same list would cost a write and
//!   a wake-up per member (measured: ~40% more time for 20,000 small files on 2 busy cores).
//! * Extraction uses `--listed-incremental=/dev/null` (GNU tar's `-G`): each level's
//!   directory records remove what was deleted since the level before. This also removes files
//!   that were never in any archive, which is why a restore only ever extracts into an empty
//!   directory.

pub mod pipeline;
pub mod probe;

pub use probe::{version, version_cached, ProbeError};

use std::ffi::OsString;
use std::path::Path;

use crate::config::Compression;

/// tar's program; tests may point it elsewhere via `PATH` only.
pub const TAR: &str = "tar";

/// The index file option (not recorded in manifests: a temporary path).
pub const INDEX_OPT: &str = "--index-file=";

/// The options recorded in every manifest (besides `--listed-incremental` and `-C`).
pub const CREATE_OPTS: &[&str] = &["--create", "--file=-", "--numeric-owner", "--verbose"];

/// `tar` arguments that archive `source` (a trailing `/` archives the directory's contents,
/// without it the directory itself, as rsync reads a source) with state file `snar`, listing
/// the members into `index`.
pub fn create_args(source: &str, snar: &Path, index: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = CREATE_OPTS.iter().map(OsString::from).collect();
    let mut idx = OsString::from(INDEX_OPT);
    idx.push(index);
    a.push(idx);
    let mut inc = OsString::from("--listed-incremental=");
    inc.push(snar);
    a.push(inc);
    let (dir, member) = source_operands(source);
    a.push("-C".into());
    a.push(dir.into());
    // `--` : a member name starting with `-` is never an option.
    a.push("--".into());
    a.push(member.into());
    a
}

/// The directory tar changes into and the member it archives, for a source as written.
pub fn source_operands(source: &str) -> (String, String) {
    if source.ends_with('/') {
        let dir = source.trim_end_matches('/');
        (
            if dir.is_empty() { "/" } else { dir }.to_string(),
            ".".into(),
        )
    } else {
        let p = Path::new(source);
        let parent = p.parent().map(|p| p.to_string_lossy().into_owned());
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".into());
        (
            parent
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into()),
            name,
        )
    }
}

/// `tar` arguments that extract one level of a chain from stdin into `dir`, applying its
/// deletions; `members` limits it to those paths (as stored: `./a/b`).
pub fn extract_args(dir: &Path, members: &[String]) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "--extract",
        "--file=-",
        "--listed-incremental=/dev/null",
        "--numeric-owner",
        "--preserve-permissions",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    a.push("-C".into());
    a.push(dir.into());
    if !members.is_empty() {
        a.push("--".into());
        a.extend(members.iter().map(OsString::from));
    }
    a
}

/// `tar` arguments that list an archive from stdin (reading it all), for `verify --read`.
pub fn list_args() -> Vec<OsString> {
    ["--list", "--file=-", "--listed-incremental=/dev/null"]
        .iter()
        .map(OsString::from)
        .collect()
}

/// The compressor's argument vector, or `None` for `none`.
pub fn compress_argv(c: Compression) -> Option<Vec<OsString>> {
    match c {
        Compression::Zstd => Some(vec!["zstd".into(), "-q".into(), "-T0".into(), "-c".into()]),
        Compression::Gzip => Some(vec!["gzip".into(), "-c".into()]),
        Compression::None => None,
    }
}

/// The decompressor's argument vector (reading stdin), or `None` for `none`.
pub fn decompress_argv(c: Compression) -> Option<Vec<OsString>> {
    match c {
        Compression::Zstd => Some(vec!["zstd".into(), "-q".into(), "-d".into(), "-c".into()]),
        Compression::Gzip => Some(vec!["gzip".into(), "-d".into(), "-c".into()]),
        Compression::None => None,
    }
}

/// The file name extension of an archive.
pub fn extension(c: Compression) -> &'static str {
    match c {
        Compression::Zstd => "tar.zst",
        Compression::Gzip => "tar.gz",
        Compression::None => "tar",
    }
}

/// The compression an extension names.
pub fn compression_of(ext: &str) -> Option<Compression> {
    match ext {
        "tar.zst" => Some(Compression::Zstd),
        "tar.gz" => Some(Compression::Gzip),
        "tar" => Some(Compression::None),
        _ => None,
    }
}

/// What a tar exit code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarExit {
    Ok,
    /// 1 on create: "some files differ" (a file changed as we read it). The archive is
    /// complete and usable, like rsync's 24; the run warns.
    Changed,
    Fatal,
}

pub fn classify(code: i32) -> TarExit {
    match code {
        0 => TarExit::Ok,
        1 => TarExit::Changed,
        _ => TarExit::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_slash_archives_the_contents() {
        assert_eq!(source_operands("/srv/a/"), ("/srv/a".into(), ".".into()));
        assert_eq!(source_operands("/srv/a"), ("/srv".into(), "a".into()));
        assert_eq!(source_operands("/a"), ("/".into(), "a".into()));
        assert_eq!(source_operands("/"), ("/".into(), ".".into()));
    }

    #[test]
    fn create_args_end_with_the_member_after_a_double_dash() {
        let a = create_args(
            "/srv/-x/",
            Path::new("/d/.incomplete-x.snar"),
            Path::new("/tmp/i"),
        );
        let s: Vec<String> = a.iter().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(
            s,
            [
                "--create",
                "--file=-",
                "--numeric-owner",
                "--verbose",
                "--index-file=/tmp/i",
                "--listed-incremental=/d/.incomplete-x.snar",
                "-C",
                "/srv/-x",
                "--",
                "."
            ]
        );
    }

    #[test]
    fn exit_one_is_a_warning_two_is_fatal() {
        assert_eq!(classify(0), TarExit::Ok);
        assert_eq!(classify(1), TarExit::Changed);
        assert_eq!(classify(2), TarExit::Fatal);
    }

    #[test]
    fn extensions_round_trip() {
        for c in [Compression::Zstd, Compression::Gzip, Compression::None] {
            assert_eq!(compression_of(extension(c)), Some(c));
        }
    }
}
