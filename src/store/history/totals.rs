//! Totals over a job's runs in the history, for metrics: how many ended each way, and how long
//! they waited for locks and blockers altogether.

use rusqlite::params;

use super::{History, HistoryError};

impl History {
    /// Finished runs of `job` by outcome (`running` rows left out).
    pub fn outcome_counts(&self, job: &str) -> Result<Vec<(String, u64)>, HistoryError> {
        (|| {
            let mut st = self.conn.prepare(
                "SELECT outcome, count(*) FROM runs WHERE job = ?1 AND outcome != 'running'
                 GROUP BY outcome",
            )?;
            let rows = st.query_map(params![job], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.err(e))
    }

    /// Milliseconds `job`'s runs spent waiting for their locks, summed.
    pub fn lock_wait_ms(&self, job: &str) -> Result<u64, HistoryError> {
        self.conn
            .query_row(
                "SELECT coalesce(sum(wait_ms), 0) FROM runs WHERE job = ?1",
                params![job],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }
}
