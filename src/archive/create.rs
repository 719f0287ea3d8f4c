//! Making one archive: the state file copied from the parent (never modified), then
//! `tar --listed-incremental | compressor` into the pending file, hashed (sha256) on the way,
//! and both files flushed to stable storage. The caller commits.
//!
//! For a remote series the compressed stream goes into an ssh process that writes the pending
//! file there (no copy on local disk), the state file is uploaded afterwards, and the remote
//! `sha256sum` must agree with the hash taken here.
//!
//! Must not: rename anything into place (the series commits) or keep a failed attempt's files
//! (they are removed here; a killed run's are removed by the next begin).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
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
    let r = match series.remote() {
        None => create_inner(series, p, source, compression, cancel),
        Some(_) => create_remote(series, p, source, compression, cancel),
    };
    if let Err(e) = &r {
        match series.remote() {
            None => {
                let _ = fs::remove_file(&p.archive);
            }
            // Cancelled (shutdown): no new round trip to a host that may be the reason; the
            // next begin removes the pending files there.
            Some(_) if matches!(e, ArchiveError::Cancelled) => {}
            Some(remote) => {
                let _ = remote.remove(&[file_name(&p.archive), file_name(&p.snar_remote())]);
            }
        }
        let _ = fs::remove_file(&p.snar);
    }
    r
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A local temporary file for tar's member list, removed when dropped.
struct Index(std::path::PathBuf);

impl Index {
    fn new(p: &Pending) -> Result<Index, ArchiveError> {
        let path = super::scratch::path(&format!("{}.idx", p.stem));
        super::scratch::claim(&path).map_err(|e| ArchiveError::io(&path, e))?;
        Ok(Index(path))
    }

    /// Members listed (one a line; tar escapes newlines in names).
    fn count(&self) -> Result<u64, ArchiveError> {
        let bytes = fs::read(&self.0).map_err(|e| ArchiveError::io(&self.0, e))?;
        Ok(bytes.iter().filter(|&&b| b == b'\n').count() as u64)
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The tar and compressor stages for `source` with state file `snar`.
fn stages(
    source: &str,
    snar: &std::path::Path,
    index: &Index,
    compression: Compression,
) -> (Vec<Vec<std::ffi::OsString>>, Vec<std::ffi::OsString>) {
    let args = tar::create_args(source, snar, &index.0);
    let mut stages = vec![std::iter::once(tar::TAR.into())
        .chain(args.iter().cloned())
        .collect()];
    stages.extend(tar::compress_argv(compression));
    (stages, args)
}

/// tar's exit code if tar and the compressor succeeded.
fn check_ends(ends: &[pipeline::StageEnd], source: &str) -> Result<i32, ArchiveError> {
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
    Ok(tar_exit)
}

fn recorded_options(args: &[std::ffi::OsString], p: &Pending) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| !a.starts_with(tar::INDEX_OPT))
        .map(|a| {
            if a.starts_with("--listed-incremental=") {
                format!("--listed-incremental={}.snar", p.stem)
            } else {
                a
            }
        })
        .collect()
}

/// An ssh process writing its stdin into a file of the remote series; killed and reaped when
/// dropped before [`Upload::finish`].
struct Upload {
    child: Option<Child>,
    what: String,
}

impl Upload {
    fn start(
        argv: &[std::ffi::OsString],
        stdin: Stdio,
        what: String,
    ) -> Result<Upload, ArchiveError> {
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("NOTIFY_SOCKET")
            .process_group(0);
        crate::sys::child::die_with_parent(&mut c);
        let child = c
            .spawn()
            .map_err(|e| ArchiveError::Tar(format!("could not start ssh for {what}: {e}")))?;
        Ok(Upload {
            child: Some(child),
            what,
        })
    }

    fn finish(mut self) -> Result<(), ArchiveError> {
        let mut child = self.child.take().expect("once");
        drop(child.stdin.take());
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let st = child
            .wait()
            .map_err(|e| ArchiveError::Tar(format!("waiting for ssh ({}): {e}", self.what)))?;
        if !st.success() {
            return Err(ArchiveError::Tar(format!(
                "writing {} failed: ssh {st}\n{}",
                self.what,
                err.trim_end()
            )));
        }
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn create_remote(
    series: &ArchiveSeries,
    p: &Pending,
    source: &str,
    compression: Compression,
    cancel: &AtomicBool,
) -> Result<Made, ArchiveError> {
    let remote = series.remote().expect("a remote series");
    // The state file is built here, in the temporary directory (an empty one is a level 0).
    super::scratch::claim(&p.snar).map_err(|e| ArchiveError::io(&p.snar, e))?;
    if let Some(parent) = &p.parent {
        series.fetch(&format!("{parent}.snar"), &p.snar)?;
    }
    let archive_name = file_name(&p.archive);
    let mut up = Upload::start(
        &remote.writer_argv(&archive_name)?,
        Stdio::piped(),
        format!("{} on {}", archive_name, remote.where_()),
    )?;
    let stdin = up
        .child
        .as_mut()
        .and_then(|c| c.stdin.take())
        .expect("piped");
    let (stdin, made) = stream(stdin, source, p, compression, cancel)?;
    drop(stdin);
    up.finish()?;
    let snar_name = file_name(&p.snar_remote());
    let snar = fs::File::open(&p.snar).map_err(|e| ArchiveError::io(&p.snar, e))?;
    Upload::start(
        &remote.writer_argv(&snar_name)?,
        Stdio::from(snar),
        format!("{} on {}", snar_name, remote.where_()),
    )?
    .finish()?;
    let _ = fs::remove_file(&p.snar);
    let (there, there_size) = remote.sha256(&archive_name)?;
    if there != made.sha256 || there_size != made.size {
        return Err(ArchiveError::Tar(format!(
            "{archive_name} on {}: sha256sum there says {there} ({there_size} bytes), the stream sent was {} ({} bytes)",
            remote.where_(),
            made.sha256,
            made.size
        )));
    }
    Ok(made)
}

fn create_inner(
    series: &ArchiveSeries,
    p: &Pending,
    source: &str,
    compression: Compression,
    cancel: &AtomicBool,
) -> Result<Made, ArchiveError> {
    if let Some(parent) = &p.parent {
        series.fetch(&format!("{parent}.snar"), &p.snar)?;
    }
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p.archive)
        .map_err(|e| ArchiveError::io(&p.archive, e))?;
    let (file, made) = stream(file, source, p, compression, cancel)?;
    file.sync_all()
        .map_err(|e| ArchiveError::io(&p.archive, e))?;
    fs::File::open(&p.snar)
        .and_then(|f| f.sync_all())
        .map_err(|e| ArchiveError::io(&p.snar, e))?;
    Ok(made)
}

/// Runs tar and the compressor for `source` into `out`, hashing what is written: the part the
/// local and the remote writers share. The caller makes `out` durable (local) or has the far
/// side check it (remote).
fn stream<W: Write>(
    out: W,
    source: &str,
    p: &Pending,
    compression: Compression,
    cancel: &AtomicBool,
) -> Result<(W, Made), ArchiveError> {
    let mut sink = Hashing {
        inner: out,
        hasher: Sha256::new(),
        size: 0,
    };
    let index = Index::new(p)?;
    let (stages, args) = stages(source, &p.snar, &index, compression);
    let ends = pipeline::run(&stages, pipeline::Input::Null, Some(&mut sink), cancel).map_err(
        |e| match e {
            pipeline::PipelineError::Cancelled => ArchiveError::Cancelled,
            e => ArchiveError::Tar(format!("archiving {source}: {e}")),
        },
    )?;
    let tar_exit = check_ends(&ends, source)?;
    let Hashing {
        inner,
        hasher,
        size,
    } = sink;
    let made = Made {
        sha256: hex(&hasher.finalize()),
        size,
        files: index.count()?,
        tar_exit,
        tar_options: recorded_options(&args, p),
        warnings: if tar_exit == 1 {
            ends[0].stderr_tail.clone()
        } else {
            Vec::new()
        },
    };
    Ok((inner, made))
}
