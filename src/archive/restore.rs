//! Checking a chain and extracting it: `verify` (every archive of a restore point's chain is
//! listed, its file present with the recorded size and sha256, each parent link right; with
//! `read`, every archive decompresses and lists) and `restore` (verify first, then extract
//! level 0 and every incremental up to the point, in order, into an empty directory, with
//! each level's deletions applied).
//!
//! Why verify first: GNU tar extracts a chain with a missing middle link with exit 0 and
//! silently loses files. A broken chain is refused before anything is written, naming the
//! archive that is missing or damaged.
//!
//! Must not: extract into a directory that is not empty (tar's deletions would remove files
//! that were never in the archives), or change the series.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};

use super::chain::chain_of;
use super::create::hex;
use super::error::ArchiveError;
use super::manifest::ArchiveManifest;
use super::names::Stem;
use super::series::{ArchiveSeries, Source};
use crate::tar::{self, pipeline};

/// Which restore point `spec` names in `list` (newest first): `latest`, an id (the time part)
/// or a full stem.
pub fn find<'a>(
    series: &ArchiveSeries,
    list: &'a [ArchiveManifest],
    spec: &str,
) -> Result<&'a ArchiveManifest, ArchiveError> {
    let found = if spec == "latest" {
        list.first()
    } else {
        list.iter()
            .find(|m| m.stem.to_string() == spec || m.stem.id.to_string() == spec)
    };
    found.ok_or_else(|| ArchiveError::NotFound {
        where_: series.where_(),
        what: if spec == "latest" {
            "yet".into()
        } else {
            format!("{spec} (see `snapshots`)")
        },
    })
}

/// Checks the chain of `target`; returns it, level 0 first.
pub fn verify<'a>(
    series: &ArchiveSeries,
    list: &'a [ArchiveManifest],
    target: &Stem,
    read: bool,
    cancel: &AtomicBool,
) -> Result<Vec<&'a ArchiveManifest>, ArchiveError> {
    let broken = |culprit: &Stem, why: String| ArchiveError::Broken {
        where_: series.where_(),
        target: target.id.to_string(),
        culprit: culprit.to_string(),
        why,
    };
    let chain = chain_of(list, target).map_err(|missing| {
        broken(
            &missing,
            format!("archive {missing} is missing (no manifest {missing}.json)"),
        )
    })?;
    for (i, m) in chain.iter().enumerate() {
        if cancel.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ArchiveError::Cancelled);
        }
        let expected_parent = i.checked_sub(1).map(|j| &chain[j].stem);
        if m.parent.as_ref() != expected_parent || m.stem.level as usize != i {
            return Err(broken(
                &m.stem,
                format!("archive {} has a wrong parent link", m.stem),
            ));
        }
        let (sum, size) = match series.sha256(&m.archive_file()) {
            Ok(s) => s,
            Err(e) => {
                return Err(broken(
                    &m.stem,
                    format!("archive file {} cannot be read: {e}", m.archive_file()),
                ))
            }
        };
        if size != m.size || sum != m.sha256 {
            return Err(broken(
                &m.stem,
                format!(
                    "archive {} is damaged: {size} bytes with sha256 {sum}, its manifest says {} bytes with sha256 {}",
                    m.archive_file(),
                    m.size,
                    m.sha256
                ),
            ));
        }
        if read {
            let (input, stages) = reading(
                series,
                m,
                std::iter::once(tar::TAR.into())
                    .chain(tar::list_args())
                    .collect(),
            )?;
            let ends = pipeline::run(&stages, input, None, cancel).map_err(|e| match e {
                pipeline::PipelineError::Cancelled => ArchiveError::Cancelled,
                e => ArchiveError::Tar(format!("reading {}: {e}", m.archive_file())),
            })?;
            if let Some(bad) = ends.iter().find(|e| e.code != Some(0)) {
                return Err(broken(
                    &m.stem,
                    format!(
                        "archive {} does not read: {}",
                        m.archive_file(),
                        bad.describe()
                    ),
                ));
            }
        }
    }
    Ok(chain)
}

/// The stages that read archive `m` (a remote `cat` first, for a remote series), decompress it
/// and hand it to `last`.
fn reading(
    series: &ArchiveSeries,
    m: &ArchiveManifest,
    last: Vec<std::ffi::OsString>,
) -> Result<(pipeline::Input, Vec<Vec<std::ffi::OsString>>), ArchiveError> {
    let mut stages = Vec::new();
    let input = match series.source(&m.archive_file())? {
        Source::File(f) => pipeline::Input::File(f),
        Source::Command(argv) => {
            stages.push(argv);
            pipeline::Input::Null
        }
    };
    stages.extend(tar::decompress_argv(m.compression));
    stages.push(last);
    Ok((input, stages))
}

pub(super) fn sha256_of(f: &mut fs::File) -> std::io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&h.finalize()), size))
}

/// The member names `paths` (as they appear in the restored tree) have in the archives.
fn members(source: &str, paths: &[String]) -> Result<Vec<String>, ArchiveError> {
    let root = tar::source_operands(source).1;
    paths
        .iter()
        .map(|p| {
            let clean = crate::snapshot::clean_subpath(p)
                .map_err(|e| ArchiveError::Refused(e.to_string()))?;
            Ok(if root == "." {
                format!("./{clean}")
            } else {
                clean
            })
        })
        .collect()
}

/// Verifies the chain of `target`, then extracts it into `to` (absent or empty). Returns the
/// chain that was extracted.
pub fn restore<'a>(
    series: &ArchiveSeries,
    list: &'a [ArchiveManifest],
    target: &Stem,
    paths: &[String],
    to: &Path,
    cancel: &AtomicBool,
) -> Result<Vec<&'a ArchiveManifest>, ArchiveError> {
    match fs::read_dir(to) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                return Err(ArchiveError::Refused(format!(
                    "{} is not empty; archives restore into an empty directory only (each level's deletions would remove files that were never in the archives)",
                    to.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ArchiveError::io(to, e)),
    }
    let chain = verify(series, list, target, false, cancel)?;
    let members = members(&chain[0].source, paths)?;
    fs::create_dir_all(to).map_err(|e| ArchiveError::io(to, e))?;
    for m in &chain {
        let (input, stages) = reading(
            series,
            m,
            std::iter::once(tar::TAR.into())
                .chain(tar::extract_args(to, &members))
                .collect(),
        )?;
        let ends = pipeline::run(&stages, input, None, cancel).map_err(|e| match e {
            pipeline::PipelineError::Cancelled => ArchiveError::Cancelled,
            e => ArchiveError::Tar(format!("extracting {}: {e}", m.archive_file())),
        })?;
        let (tar_end, rest) = ends.split_last().expect("tar is a stage");
        if let Some(bad) = rest.iter().find(|e| e.code != Some(0)) {
            return Err(ArchiveError::Tar(format!(
                "extracting {}: {}",
                m.archive_file(),
                bad.describe()
            )));
        }
        // With --path, a level that did not change a named file does not hold it: tar says
        // "Not found in archive" (exit 2). Anything else is a failure.
        let only_not_found = !members.is_empty()
            && tar_end.code == Some(2)
            && tar_end.stderr_tail.iter().all(|l| {
                l.ends_with(": Not found in archive")
                    || l.ends_with("Exiting with failure status due to previous errors")
            });
        if tar_end.code != Some(0) && !only_not_found {
            return Err(ArchiveError::Tar(format!(
                "extracting {}: {}",
                m.archive_file(),
                tar_end.describe()
            )));
        }
    }
    for p in paths {
        let clean = crate::snapshot::clean_subpath(p).expect("checked above");
        if to.join(&clean).symlink_metadata().is_err() {
            return Err(ArchiveError::NotFound {
                where_: series.where_(),
                what: format!("path {clean} in {}", target.id),
            });
        }
    }
    Ok(chain)
}
