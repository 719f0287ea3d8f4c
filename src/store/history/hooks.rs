//! A run's hooks and dumps as steps in the history (`hook_steps`): a row when one starts,
//! filled in when it ends, read back with the run by `show`, `history show` and the web pages.
//!
//! Must not: decide anything about the run (the hooks' effect on the outcome is the run's).

use rusqlite::params;
use serde::Serialize;

use super::query::time;
use super::{History, HistoryError};

/// One hook or dump of a run, in the order they started. Times are RFC 3339 (UTC).
#[derive(Debug, Clone, Serialize)]
pub struct HookRow {
    /// before, dump, after_success, after_failure or finally.
    pub phase: String,
    /// Its place in that phase's list (from 0).
    pub index: u32,
    /// What it ran, in a readable form (as the run log says it).
    pub command: String,
    /// It ran on the job's host.
    pub remote: bool,
    pub started: Option<String>,
    /// `None` while it runs (or when its run was interrupted).
    pub finished: Option<String>,
    pub duration_ms: Option<u64>,
    /// `None` when it did not exit by itself (killed, timed out, could not start).
    pub exit_code: Option<i32>,
    /// Why it failed; `None` when it succeeded (or skipped the run with exit 75).
    pub error: Option<String>,
    /// Its failure failed the run (a `before` hook with `on_error: abort`, a dump).
    pub fatal: bool,
}

impl History {
    /// A hook of `run_id` began (ignored when the run is not recorded, e.g. a dry run).
    pub(super) fn hook_started(
        &self,
        run_id: &str,
        phase: &str,
        index: usize,
        command: &str,
        remote: bool,
        at: i64,
    ) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO hook_steps (run_id, phase, hook, command, remote, started)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ?1)
                 ON CONFLICT (run_id, phase, hook) DO UPDATE SET command = excluded.command,
                    remote = excluded.remote, started = excluded.started, finished = NULL,
                    exit_code = NULL, error = NULL, fatal = 0",
            )?
            .execute(params![run_id, phase, index as i64, command, remote, at])
            .map(drop)
    }

    /// A hook of `run_id` ended at `at`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hook_done(
        &self,
        run_id: &str,
        phase: &str,
        index: usize,
        exit_code: Option<i32>,
        error: Option<&str>,
        fatal: bool,
        at: i64,
    ) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE hook_steps SET finished = ?4, exit_code = ?5, error = ?6, fatal = ?7
                 WHERE run_id = ?1 AND phase = ?2 AND hook = ?3",
            )?
            .execute(params![
                run_id,
                phase,
                index as i64,
                at,
                exit_code,
                error,
                fatal
            ])
            .map(drop)
    }

    /// The hooks and dumps of `run_id`, in the order they started.
    pub fn hook_steps(&self, run_id: &str) -> Result<Vec<HookRow>, HistoryError> {
        (|| {
            let mut st = self.conn.prepare_cached(
                "SELECT phase, hook, command, remote, started, finished, exit_code, error, fatal
                 FROM hook_steps WHERE run_id = ?1 ORDER BY started, rowid",
            )?;
            let rows = st.query_map([run_id], |r| {
                let started: Option<i64> = r.get(4)?;
                let finished: Option<i64> = r.get(5)?;
                Ok(HookRow {
                    phase: r.get(0)?,
                    index: r.get(1)?,
                    command: r.get(2)?,
                    remote: r.get(3)?,
                    started: time(started),
                    finished: time(finished),
                    duration_ms: started.zip(finished).map(|(s, f)| (f - s).max(0) as u64),
                    exit_code: r.get(6)?,
                    error: r.get(7)?,
                    fatal: r.get(8)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.err(e))
    }
}
