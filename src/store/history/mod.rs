//! The run history: one row per run (and one per sync, hook and dump of it) in `<state_dir>/history.sqlite`.
//!
//! Several processes write it at once (the daemon and any number of `run-job`), so the
//! database runs in WAL mode with a `busy_timeout`, and every write is one short statement
//! or transaction. The schema is versioned with `PRAGMA user_version` and only ever migrated
//! forward ([`schema`]). Runs are recorded by an observer of their events ([`record`]), on a
//! thread of its own, so a slow or broken database never holds up or fails a run. Reading,
//! marking runs whose process died as `interrupted`, and trimming by age live in [`query`].
//!
//! Must not: run, schedule or lock anything; be required for a run to succeed.

pub mod hooks;
pub mod page;
pub mod query;
pub mod record;
pub mod schema;
pub mod totals;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

pub use hooks::HookRow;
pub use query::{Filter, RunRow, StepRow};
pub use record::Recorder;

/// How long a write waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The history database's file.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("history.sqlite")
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot create state directory {}: {source}", .path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("run history {}: {source}", .path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("run history {} has schema version {found}, newer than this backupmanager knows ({known}); upgrade backupmanager", .path.display())]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("no run history at {} yet", .path.display())]
    Missing { path: PathBuf },
}

impl HistoryError {
    /// SQLite said the database is busy or locked (another process holds it, in a way its
    /// busy handler does not wait for: switching a new file to WAL, a read snapshot that a
    /// writer overtook): worth trying again with a fresh connection.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            HistoryError::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        )
    }
}

/// An open history database.
pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl History {
    /// Opens (creating if needed) the database in `state_dir` and migrates it to the current
    /// schema.
    pub fn open(state_dir: &Path) -> Result<History, HistoryError> {
        crate::sys::runtime::ensure_private_dir(state_dir, 0o700).map_err(|source| {
            HistoryError::Dir {
                path: state_dir.to_path_buf(),
                source,
            }
        })?;
        Self::open_file(&path(state_dir), true)
    }

    /// Opens an existing database for reading (and sweeping); `Missing` if there is none.
    pub fn open_existing(state_dir: &Path) -> Result<History, HistoryError> {
        let p = path(state_dir);
        if !p.exists() {
            return Err(HistoryError::Missing { path: p });
        }
        Self::open_file(&p, false)
    }

    fn open_file(p: &Path, create: bool) -> Result<History, HistoryError> {
        use rusqlite::OpenFlags;
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let err = |source| HistoryError::Sqlite {
            path: p.to_path_buf(),
            source,
        };
        let mut conn = Connection::open_with_flags(p, flags).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // WAL: readers never block the writer; one writer at a time, others wait (busy_timeout).
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        // Leave the WAL in place when this connection closes: the checkpoint-on-close (two
        // fsyncs, the pages rewritten, the WAL and shm files unlinked and re-created by the
        // next run) was most of what recording cost a run-job. SQLite still checkpoints
        // automatically once the WAL passes `wal_autocheckpoint` pages, inside some commit.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(err)?;
        // One query plan per statement, whatever is bound: without this SQLite prepares a
        // statement again whenever a bound value could change its plan (the partial index,
        // STAT4), and `status` spent most of its time parsing the same SQL for every job.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(err)?;
        match schema::migrate(&mut conn) {
            Ok(()) => {}
            Err(schema::MigrateError::TooNew { found, known }) => {
                return Err(HistoryError::TooNew {
                    path: p.to_path_buf(),
                    found,
                    known,
                })
            }
            Err(schema::MigrateError::Sqlite(e)) => return Err(err(e)),
        }
        Ok(History {
            conn,
            path: p.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

/// Milliseconds since the epoch: how times are stored (compact, and compared for trimming).
fn ms(t: jiff::Timestamp) -> i64 {
    t.as_millisecond()
}

#[cfg(test)]
mod tests;
