//! Paging through one job's runs, newest first, for the web API: `limit` runs that started
//! before a given run (a cursor that stays put while new runs are recorded, unlike an offset).
//!
//! Must not: write.

use rusqlite::params;

use super::query::{run_row, RunRow, RUN_COLUMNS};
use super::{History, HistoryError};

impl History {
    /// Up to `limit` runs of `job`, newest first, that come before run `before` in that order
    /// (all from the newest when `None`). `Ok(None)` when `before` names no run of `job`.
    pub fn page(
        &self,
        job: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Option<Vec<RunRow>>, HistoryError> {
        (|| {
            let cursor: Option<(i64, String)> = match before {
                None => None,
                Some(b) => {
                    let mut st = self.conn.prepare_cached(
                        "SELECT started, run_id FROM runs WHERE run_id = ?1 AND job = ?2",
                    )?;
                    let mut rows = st.query_map([b, job], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    match rows.next().transpose()? {
                        Some(c) => Some(c),
                        None => return Ok(None),
                    }
                }
            };
            let (started, id) = cursor.unwrap_or((i64::MAX, String::new()));
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE job = ?1 AND (started < ?2 OR (started = ?2 AND run_id < ?3))
                 ORDER BY started DESC, run_id DESC LIMIT ?4"
            );
            let mut st = self.conn.prepare_cached(&sql)?;
            let rows = st.query_map(params![job, started, id, limit as i64], run_row)?;
            Ok(Some(rows.collect::<rusqlite::Result<Vec<_>>>()?))
        })()
        .map_err(|e| self.err(e))
    }
}
