//! A local archive series directory: listing complete archives, making room for a new one,
//! committing it, removing old ones. All by system calls (see DESIGN: no local shell).
//!
//! Crash safety: a new archive is written as `.incomplete-<stem>.<ext>` and
//! `.incomplete-<stem>.snar`, both fsynced, then its manifest as `.incomplete-<stem>.json`;
//! the archive and state file are renamed into place, then the manifest (**the commit
//! point**), then the directory is fsynced. A crash before the commit point leaves files that
//! are not listed; [`ArchiveSeries::cleanup`] (run by the next begin) removes them. Removal
//! unlinks the manifest first, so a crash halfway leaves an orphan, never a listed archive
//! without its data.
//!
//! Must not: decide what to keep or which level comes next, or touch any name that
//! [`names::classify`] does not call ours.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::ArchiveError;
use super::manifest::ArchiveManifest;
use super::names::{self, File, Stem};
use crate::snapshot::SnapshotId;

#[derive(Debug, Clone)]
pub struct ArchiveSeries {
    dest: PathBuf,
}

/// An archive being written.
#[derive(Debug)]
pub struct Pending {
    pub stem: Stem,
    pub parent: Option<Stem>,
    /// `.incomplete-<stem>.<ext>`.
    pub archive: PathBuf,
    /// `.incomplete-<stem>.snar`: a copy of the parent's, or empty for a level 0.
    pub snar: PathBuf,
}

impl ArchiveSeries {
    pub fn new(dest: &str) -> ArchiveSeries {
        ArchiveSeries {
            dest: PathBuf::from(dest.trim_end_matches('/')),
        }
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// How messages name the series.
    pub fn where_(&self) -> String {
        self.dest.display().to_string()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dest.join(name)
    }

    fn names(&self) -> Result<Vec<(String, File)>, ArchiveError> {
        let rd = match fs::read_dir(&self.dest) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ArchiveError::io(&self.dest, e)),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|e| ArchiveError::io(&self.dest, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(f) = names::classify(&name) {
                // Only regular files are ours (a symlink or directory by our name is not).
                let ft = e
                    .file_type()
                    .map_err(|e| ArchiveError::io(e_path(&self.dest, &name), e))?;
                if ft.is_file() {
                    out.push((name, f));
                }
            }
        }
        Ok(out)
    }

    /// Every complete archive (a regular `<stem>.json` naming its stem), newest first.
    pub fn list(&self) -> Result<Vec<ArchiveManifest>, ArchiveError> {
        let mut out = Vec::new();
        for (name, f) in self.names()? {
            let File::Committed { stem, suffix } = f else {
                continue;
            };
            if suffix != "json" {
                continue;
            }
            let path = self.path(&name);
            let bytes = fs::read(&path).map_err(|e| ArchiveError::io(&path, e))?;
            let m = ArchiveManifest::from_json(&bytes, &stem).map_err(|why| {
                ArchiveError::BadManifest {
                    where_: self.where_(),
                    stem: stem.to_string(),
                    why,
                }
            })?;
            out.push(m);
        }
        out.sort_by(|a, b| b.stem.cmp(&a.stem));
        Ok(out)
    }

    /// Removes leftovers: incomplete files, and archives or state files whose manifest is
    /// gone (a crash during commit or removal). Never a listed archive's files.
    pub fn cleanup(&self) -> Result<(), ArchiveError> {
        let names = self.names()?;
        let committed: Vec<&Stem> = names
            .iter()
            .filter_map(|(_, f)| match f {
                File::Committed { stem, suffix } if suffix == "json" => Some(stem),
                _ => None,
            })
            .collect();
        for (name, f) in &names {
            let orphan = match f {
                File::Incomplete { .. } => true,
                File::Committed { stem, .. } => !committed.contains(&stem),
            };
            if orphan {
                remove_file(&self.path(name))?;
            }
        }
        Ok(())
    }

    /// Makes room for a new archive: the series directory, a stem later than every one there.
    pub fn begin(
        &self,
        started: jiff::Timestamp,
        parent: Option<&Stem>,
        ext: &str,
    ) -> Result<Pending, ArchiveError> {
        fs::create_dir_all(&self.dest).map_err(|e| ArchiveError::io(&self.dest, e))?;
        self.cleanup()?;
        let newest = self
            .names()?
            .into_iter()
            .map(|(_, f)| match f {
                File::Committed { stem, .. } | File::Incomplete { stem, .. } => stem.id,
            })
            .max();
        let mut id = SnapshotId::from_time(started);
        // Within the same second, or after the clock went back: right after the newest.
        if let Some(n) = newest {
            if id <= n {
                id = n.successor();
            }
        }
        let stem = match parent {
            None => Stem {
                chain: id.clone(),
                level: 0,
                id,
            },
            Some(p) => Stem {
                chain: p.chain.clone(),
                level: p.level + 1,
                id,
            },
        };
        Ok(Pending {
            archive: self.incomplete(&stem, ext),
            snar: self.incomplete(&stem, "snar"),
            stem,
            parent: parent.cloned(),
        })
    }

    /// The pending archive's file for `ext`.
    pub fn incomplete(&self, stem: &Stem, ext: &str) -> PathBuf {
        self.path(&format!("{}{stem}.{ext}", names::INCOMPLETE))
    }

    /// Makes a written archive complete (see the module doc for the order).
    pub fn commit(&self, p: &Pending, m: &ArchiveManifest) -> Result<(), ArchiveError> {
        let json_tmp = self.incomplete(&p.stem, "json");
        write_synced(&json_tmp, m.to_json().as_bytes())?;
        rename(&p.archive, &self.path(&m.archive_file()))?;
        rename(&p.snar, &self.path(&format!("{}.snar", p.stem)))?;
        rename(&json_tmp, &self.path(&format!("{}.json", p.stem)))?;
        sync_dir(&self.dest)
    }

    /// Removes archives (manifest first). Refuses the newest.
    pub fn remove_many(&self, stems: &[Stem]) -> Result<(), ArchiveError> {
        let list = self.list()?;
        let newest = list.first().map(|m| m.stem.clone());
        for s in stems {
            if Some(s) == newest.as_ref() {
                return Err(ArchiveError::RefuseNewest {
                    where_: self.where_(),
                    stem: s.to_string(),
                });
            }
        }
        for s in stems {
            let Some(m) = list.iter().find(|m| &m.stem == s) else {
                continue;
            };
            remove_file(&self.path(&format!("{s}.json")))?;
            remove_file(&self.path(&m.archive_file()))?;
            remove_file(&self.path(&format!("{s}.snar")))?;
        }
        sync_dir(&self.dest)
    }
}

fn e_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn remove_file(p: &Path) -> Result<(), ArchiveError> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ArchiveError::io(p, e)),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), ArchiveError> {
    if to.symlink_metadata().is_ok() {
        return Err(ArchiveError::io(
            to,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "exists already"),
        ));
    }
    fs::rename(from, to).map_err(|e| ArchiveError::io(from, e))
}

fn write_synced(p: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    use std::io::Write;
    let mut f = fs::File::create(p).map_err(|e| ArchiveError::io(p, e))?;
    f.write_all(bytes).map_err(|e| ArchiveError::io(p, e))?;
    f.sync_all().map_err(|e| ArchiveError::io(p, e))
}

pub(super) fn sync_dir(d: &Path) -> Result<(), ArchiveError> {
    fs::File::open(d)
        .and_then(|f| f.sync_all())
        .map_err(|e| ArchiveError::io(d, e))
}
