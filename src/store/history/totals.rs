//! Totals over a job's runs, for metrics: how many ended each way, and how long they waited
//! for locks and blockers altogether. They live in `job_totals`, counted when a run ends (in
//! the transaction that records its end), not in the `runs` rows: trimming old runs
//! (`history_keep`) removes rows, and a Prometheus counter must never go down.

use rusqlite::{params, Connection};

use super::{History, HistoryError};

/// Counts one run of `job` that ended with `outcome` after waiting `wait_ms` for its locks.
pub(super) fn count_end(
    c: &Connection,
    job: &str,
    outcome: &str,
    wait_ms: i64,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO job_totals (job, outcome, runs, wait_ms) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (job, outcome) DO UPDATE SET runs = runs + 1,
            wait_ms = wait_ms + excluded.wait_ms",
    )?
    .execute(params![job, outcome, wait_ms.max(0)])
    .map(drop)
}

impl History {
    /// Ended runs of `job` by outcome, ever (trimmed runs included).
    pub fn outcome_counts(&self, job: &str) -> Result<Vec<(String, u64)>, HistoryError> {
        (|| {
            let mut st = self.conn.prepare_cached(
                "SELECT outcome, runs FROM job_totals WHERE job = ?1 ORDER BY outcome",
            )?;
            let rows = st.query_map(params![job], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.err(e))
    }

    /// Milliseconds `job`'s ended runs spent waiting for their locks, summed, ever.
    pub fn lock_wait_ms(&self, job: &str) -> Result<u64, HistoryError> {
        self.conn
            .prepare_cached("SELECT coalesce(sum(wait_ms), 0) FROM job_totals WHERE job = ?1")
            .and_then(|mut st| st.query_row(params![job], |r| r.get::<_, i64>(0)))
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }
}
