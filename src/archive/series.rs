//! A local archive series directory: listing complete archives, making room for a new one,
//! committing it, removing old ones. All by system calls (see DESIGN: no local shell).
//!
//! Crash safety: a new archive is written as `.incomplete-<stem>.<ext>` and
//! `.incomplete-<stem>.snar`, both fsynced, then its manifest as `.incomplete-<stem>.json`;
//! the archive and state file are renamed into place, then the manifest (**the commit
//! point**), then the directory is fsynced. A crash before the commit point leaves files that
//! are not listed; [`ArchiveSeries::cleanup`] (run by the next begin) removes the
//! `.incomplete-` ones. Removal unlinks the manifest first, so a crash halfway leaves an
//! unlisted archive, never a listed archive without its data. An archive or state file under a
//! committed name whose manifest is gone (such a crash, or a manifest deleted by hand) is
//! never removed automatically: it is not a restore point, but it may be someone's only copy
//! of that data; `verify` names the missing manifest of a chain that needs it.
//!
//! Remotely ([`super::remote`]) the same steps run as scripts over the job's transport: the
//! archive streams over ssh into `.incomplete-<stem>.<ext>` there, the state file is fetched
//! into and uploaded from a local temporary file, `sha256sum` on the remote side must agree
//! with the hash taken on the stream, and `sync` flushes before and after the renames.
//!
//! Must not: decide what to keep or which level comes next, or touch any name that
//! [`names::classify`] does not call ours.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::ArchiveError;
use super::manifest::ArchiveManifest;
use super::names::{self, File, Stem};
use super::remote::RemoteDir;
use crate::snapshot::SnapshotId;
use crate::transport::Transport;

#[derive(Debug, Clone)]
pub struct ArchiveSeries {
    dest: PathBuf,
    remote: Option<RemoteDir>,
}

/// Where a reader of an archive gets its bytes: a local file, or a process printing it.
pub enum Source {
    File(fs::File),
    Command(Vec<OsString>),
}

/// An archive being written.
#[derive(Debug)]
pub struct Pending {
    pub stem: Stem,
    pub parent: Option<Stem>,
    /// `.incomplete-<stem>.<ext>`.
    pub archive: PathBuf,
    /// `.incomplete-<stem>.snar`: a copy of the parent's, or empty for a level 0. For a
    /// remote series a local temporary file, uploaded before the commit.
    pub snar: PathBuf,
    /// What [`ArchiveSeries::begin`] removed first: `.incomplete-` files in the series (a
    /// failed or killed run's) and this host's temporary files of killed runs
    /// ([`super::scratch`]).
    pub leftovers: Vec<String>,
}

impl Pending {
    /// The pending state file's name in the series directory (for a remote series the local
    /// `snar` is a temporary file elsewhere).
    pub fn snar_remote(&self) -> PathBuf {
        PathBuf::from(format!("{}{}.snar", names::INCOMPLETE, self.stem))
    }
}

impl ArchiveSeries {
    pub fn new(dest: &str, remote: Option<&Arc<dyn Transport>>) -> ArchiveSeries {
        let trimmed = dest.trim_end_matches('/');
        ArchiveSeries {
            dest: PathBuf::from(trimmed),
            remote: remote.map(|t| RemoteDir {
                transport: Arc::clone(t),
                dest: trimmed.to_string(),
            }),
        }
    }

    pub fn remote(&self) -> Option<&RemoteDir> {
        self.remote.as_ref()
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// How messages name the series.
    pub fn where_(&self) -> String {
        match &self.remote {
            Some(r) => r.where_(),
            None => self.dest.display().to_string(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dest.join(name)
    }

    fn names(&self) -> Result<Vec<(String, File)>, ArchiveError> {
        if let Some(r) = &self.remote {
            return Ok(r
                .inventory()?
                .files
                .into_iter()
                .map(|(n, f, _)| (n, f))
                .collect());
        }
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
        if let Some(r) = &self.remote {
            for (name, bytes) in r.inventory()?.manifests {
                let Some(File::Committed { stem, .. }) = names::classify(&name) else {
                    continue;
                };
                out.push(self.parse_manifest(&stem, &bytes)?);
            }
            out.sort_by(|a, b| b.stem.cmp(&a.stem));
            return Ok(out);
        }
        for (name, f) in self.names()? {
            let File::Committed { stem, suffix } = f else {
                continue;
            };
            if suffix != "json" {
                continue;
            }
            let path = self.path(&name);
            let bytes = fs::read(&path).map_err(|e| ArchiveError::io(&path, e))?;
            out.push(self.parse_manifest(&stem, &bytes)?);
        }
        out.sort_by(|a, b| b.stem.cmp(&a.stem));
        Ok(out)
    }

    fn parse_manifest(&self, stem: &Stem, bytes: &[u8]) -> Result<ArchiveManifest, ArchiveError> {
        ArchiveManifest::from_json(bytes, stem).map_err(|why| ArchiveError::BadManifest {
            where_: self.where_(),
            stem: stem.to_string(),
            why,
        })
    }

    /// Whether a regular file of ours named `name` is there.
    pub fn has_file(&self, name: &str) -> Result<bool, ArchiveError> {
        match &self.remote {
            Some(_) => Ok(self.names()?.iter().any(|(n, _)| n == name)),
            None => Ok(self.path(name).is_file()),
        }
    }

    /// Copies the file `name` of the series to the local `to` (a parent's state file).
    pub fn fetch(&self, name: &str, to: &Path) -> Result<(), ArchiveError> {
        match &self.remote {
            Some(r) => {
                let bytes = r.fetch(name)?;
                write_synced(to, &bytes)
            }
            None => {
                let from = self.path(name);
                fs::copy(&from, to).map_err(|e| ArchiveError::io(&from, e))?;
                Ok(())
            }
        }
    }

    /// Where a reader gets the bytes of `name`.
    pub fn source(&self, name: &str) -> Result<Source, ArchiveError> {
        match &self.remote {
            Some(r) => Ok(Source::Command(r.reader_argv(name)?)),
            None => {
                let p = self.path(name);
                Ok(Source::File(
                    fs::File::open(&p).map_err(|e| ArchiveError::io(&p, e))?,
                ))
            }
        }
    }

    /// sha256 and size of `name` (read here, or with `sha256sum` there).
    pub fn sha256(&self, name: &str) -> Result<(String, u64), ArchiveError> {
        match &self.remote {
            Some(r) => r.sha256(name),
            None => {
                let p = self.path(name);
                let mut f = fs::File::open(&p).map_err(|e| ArchiveError::io(&p, e))?;
                super::restore::sha256_of(&mut f).map_err(|e| ArchiveError::io(&p, e))
            }
        }
    }

    fn remove_names(&self, names: &[String]) -> Result<(), ArchiveError> {
        match &self.remote {
            Some(r) => r.remove(names),
            None => {
                for n in names {
                    remove_file(&self.path(n))?;
                }
                Ok(())
            }
        }
    }

    /// Removes leftovers of failed or killed runs: `.incomplete-` files (never anything under
    /// a committed name, see the module doc).
    /// Returns the names removed.
    pub fn cleanup(&self) -> Result<Vec<String>, ArchiveError> {
        let leftovers: Vec<String> = self
            .names()?
            .into_iter()
            .filter(|(_, f)| matches!(f, File::Incomplete { .. }))
            .map(|(n, _)| n)
            .collect();
        self.remove_names(&leftovers)?;
        Ok(leftovers)
    }

    /// Makes room for a new archive: the series directory, a stem later than every one there.
    pub fn begin(
        &self,
        started: jiff::Timestamp,
        parent: Option<&Stem>,
        ext: &str,
    ) -> Result<Pending, ArchiveError> {
        match &self.remote {
            Some(r) => r.mkdir()?,
            None => fs::create_dir_all(&self.dest).map_err(|e| ArchiveError::io(&self.dest, e))?,
        }
        let mut leftovers = self.cleanup()?;
        leftovers.extend(
            super::scratch::sweep()
                .into_iter()
                .map(|p| p.display().to_string()),
        );
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
        let snar = match &self.remote {
            Some(_) => super::scratch::path(&format!("{}{stem}.snar", names::INCOMPLETE)),
            None => self.incomplete(&stem, "snar"),
        };
        Ok(Pending {
            leftovers,
            archive: self.incomplete(&stem, ext),
            snar,
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
        if let Some(r) = &self.remote {
            let inc = |ext: &str| format!("{}{}.{ext}", names::INCOMPLETE, p.stem);
            let ext = crate::tar::extension(m.compression);
            return r.commit(
                &inc("json"),
                &m.to_json(),
                &[
                    (inc(ext), m.archive_file()),
                    (inc("snar"), format!("{}.snar", p.stem)),
                    (inc("json"), format!("{}.json", p.stem)),
                ],
            );
        }
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
        let mut victims = Vec::new();
        for s in stems {
            let Some(m) = list.iter().find(|m| &m.stem == s) else {
                continue;
            };
            // The manifest first: from then on it is not listed.
            victims.push(format!("{s}.json"));
            victims.push(m.archive_file());
            victims.push(format!("{s}.snar"));
        }
        self.remove_names(&victims)?;
        match &self.remote {
            Some(_) => Ok(()),
            None => sync_dir(&self.dest),
        }
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
