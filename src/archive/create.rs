//! Making one archive: the state file copied from the parent (never modified), then
//! `tar --listed-incremental | compressor` into the pending file, hashed (sha256) on the way,
//! and both files flushed to stable storage. The caller commits.
//!
//! Must not: rename anything into place (the series commits) or keep a failed attempt's files
//! (they are removed here; a killed run's are removed by the next begin).

use std::fs;
use std::io::Write;
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};

use super::error::ArchiveError;
use super::series::{ArchiveSeries, Pending};
use crate::config::Compression;
use crate::tar::{self, pipeline, TarExit};

/// What tar and the compressor made.
#[derive(Debug, Clone)]
pub struct Made {
    pub sha256: String,
    pub size: u64,
    pub files: u64,
    pub tar_exit: i32,
    pub tar_options: Vec<String>,
    /// tar's messages when it exited 1 (a file changed as it was read).
    pub warnings: Vec<String>,
}

/// A writer that hashes and counts what goes through it.
pub struct Hashing<W> {
    pub inner: W,
    pub hasher: Sha256,
    pub size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn create(
    series: &ArchiveSeries,
    p: &Pending,
    source: &str,
    compression: Compression,
    cancel: &AtomicBool,
) -> Result<Made, ArchiveError> {
    let r = create_inner(series, p, source, compression, cancel);
    if r.is_err() {
        let _ = fs::remove_file(&p.archive);
        let _ = fs::remove_file(&p.snar);
    }
    r
}

fn create_inner(
    series: &ArchiveSeries,
    p: &Pending,
    source: &str,
    compression: Compression,
    cancel: &AtomicBool,
) -> Result<Made, ArchiveError> {
    if let Some(parent) = &p.parent {
        let from = series.path(&format!("{parent}.snar"));
        fs::copy(&from, &p.snar).map_err(|e| ArchiveError::io(&from, e))?;
    }
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p.archive)
        .map_err(|e| ArchiveError::io(&p.archive, e))?;
    let mut sink = Hashing {
        inner: file,
        hasher: Sha256::new(),
        size: 0,
    };
    let args = tar::create_args(source, &p.snar);
    let mut stages = vec![std::iter::once(tar::TAR.into())
        .chain(args.iter().cloned())
        .collect()];
    stages.extend(tar::compress_argv(compression));
    let ends = pipeline::run(&stages, pipeline::Input::Null, Some(&mut sink), cancel).map_err(
        |e| match e {
            pipeline::PipelineError::Cancelled => ArchiveError::Cancelled,
            e => ArchiveError::Tar(format!("archiving {source}: {e}")),
        },
    )?;
    let tar_end = &ends[0];
    let tar_exit = match (tar_end.code.map(tar::classify), tar_end.code) {
        (Some(TarExit::Ok | TarExit::Changed), Some(c)) => c,
        _ => {
            return Err(ArchiveError::Tar(format!(
                "archiving {source} failed: {}",
                tar_end.describe()
            )))
        }
    };
    if let Some(bad) = ends[1..].iter().find(|e| e.code != Some(0)) {
        return Err(ArchiveError::Tar(format!(
            "compressing {source} failed: {}",
            bad.describe()
        )));
    }
    sink.inner
        .sync_all()
        .map_err(|e| ArchiveError::io(&p.archive, e))?;
    fs::File::open(&p.snar)
        .and_then(|f| f.sync_all())
        .map_err(|e| ArchiveError::io(&p.snar, e))?;
    let tar_options = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .map(|a| {
            if a.starts_with("--listed-incremental=") {
                format!("--listed-incremental={}.snar", p.stem)
            } else {
                a
            }
        })
        .collect();
    Ok(Made {
        sha256: hex(&sink.hasher.finalize()),
        size: sink.size,
        files: tar_end.listed,
        tar_exit,
        tar_options,
        warnings: if tar_exit == 1 {
            tar_end.stderr_tail.clone()
        } else {
            Vec::new()
        },
    })
}
