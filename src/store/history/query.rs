//! Reading the history back, and the two kinds of upkeep: runs still marked `running` whose
//! process is gone become `interrupted` ([`History::sweep_interrupted`]), and finished runs
//! older than `history_keep` are removed ([`History::trim`]); a run in progress never is.

use jiff::Timestamp;
use rusqlite::{params, Row};
use serde::Serialize;

use super::{ms, History, HistoryError};
use crate::sys::procfs;

/// One run, as `history` and `show` print it. Times are RFC 3339 (UTC).
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub job: String,
    /// schedule, catch-up, manual or reboot.
    pub trigger: String,
    pub slot: Option<String>,
    pub started: String,
    /// When the run held all its locks (started + wait).
    pub lock_acquired: Option<String>,
    pub wait_ms: Option<i64>,
    pub finished: Option<String>,
    pub duration_ms: Option<u64>,
    /// running, success, failed, blocked, cancelled or interrupted.
    pub outcome: String,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub files: Option<i64>,
    pub bytes: Option<i64>,
    pub total_size: Option<i64>,
    pub restore_points: Vec<String>,
    pub pid: u32,
    pub pid_start: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepRow>>,
    /// Its hooks and dumps, in the order they ran (with `steps`, for one run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Vec<super::hooks::HookRow>>,
    #[serde(skip)]
    pub started_at: Timestamp,
}

/// One sync of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StepRow {
    pub sync: u32,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub exit_code: Option<i32>,
    pub attempts: Option<u32>,
    pub files: Option<i64>,
    pub bytes: Option<i64>,
}

/// Which runs `history` lists.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub job: Option<String>,
    pub since: Option<Timestamp>,
    /// At most this many (newest first); `None` for all.
    pub limit: Option<usize>,
}

pub(super) const RUN_COLUMNS: &str = "run_id, job, trigger, slot, started, lock_acquired, wait_ms, finished,
    outcome, error_kind, error, exit_code, files, bytes, total_size, restore_points, pid, pid_start";

pub(super) fn time(v: Option<i64>) -> Option<String> {
    v.and_then(|t| Timestamp::from_millisecond(t).ok())
        .map(|t| t.to_string())
}

pub(super) fn run_row(r: &Row) -> rusqlite::Result<RunRow> {
    let started: i64 = r.get("started")?;
    let finished: Option<i64> = r.get("finished")?;
    let points: Option<String> = r.get("restore_points")?;
    Ok(RunRow {
        run_id: r.get("run_id")?,
        job: r.get("job")?,
        trigger: r.get("trigger")?,
        slot: time(r.get("slot")?),
        started: time(Some(started)).unwrap_or_default(),
        lock_acquired: time(r.get("lock_acquired")?),
        wait_ms: r.get("wait_ms")?,
        finished: time(finished),
        duration_ms: finished.map(|f| (f - started).max(0) as u64),
        outcome: r.get("outcome")?,
        error_kind: r.get("error_kind")?,
        error: r.get("error")?,
        exit_code: r.get("exit_code")?,
        files: r.get("files")?,
        bytes: r.get("bytes")?,
        total_size: r.get("total_size")?,
        restore_points: points
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        pid: r.get("pid")?,
        pid_start: r.get("pid_start")?,
        steps: None,
        hooks: None,
        started_at: Timestamp::from_millisecond(started).unwrap_or(Timestamp::UNIX_EPOCH),
    })
}

impl History {
    /// Runs matching `f`, newest first.
    pub fn list(&self, f: &Filter) -> Result<Vec<RunRow>, HistoryError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE (?1 IS NULL OR job = ?1) AND (?2 IS NULL OR started >= ?2)
             ORDER BY started DESC, run_id DESC LIMIT ?3"
        );
        let limit = f.limit.map(|n| n as i64).unwrap_or(-1);
        (|| {
            let mut st = self.conn.prepare_cached(&sql)?;
            let rows = st.query_map(params![f.job, f.since.map(ms), limit], run_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.err(e))
    }

    /// The newest run of `job` whose outcome is one of `outcomes`: one index seek per outcome
    /// (`runs_by_job_outcome`), the newest of those wins.
    pub fn last_of(&self, job: &str, outcomes: &[&str]) -> Result<Option<RunRow>, HistoryError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE job = ?1 AND outcome = ?2
             ORDER BY started DESC, run_id DESC LIMIT 1"
        );
        self.newest_of(&sql, job, outcomes)
    }

    /// The newest failure of `job` (`failed`, `blocked`, `interrupted`), except a `blocked`
    /// run that started while another run of the job was going: that one met the run lock
    /// (a `run-job` while the daemon runs it), which says nothing about the backups. Runs of
    /// one job on one host never overlap otherwise (the run lock), so the only run to look at
    /// is the one that started last before it.
    pub fn last_failure(&self, job: &str) -> Result<Option<RunRow>, HistoryError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r
             WHERE job = ?1 AND outcome = ?2
               AND NOT (outcome = 'blocked' AND EXISTS (
                   SELECT 1 FROM runs o WHERE o.run_id = (
                       SELECT p.run_id FROM runs p
                       WHERE p.job = r.job AND p.run_id <> r.run_id AND p.started <= r.started
                       ORDER BY p.started DESC, p.run_id DESC LIMIT 1)
                     AND (o.finished IS NULL OR o.finished >= r.started)))
             ORDER BY started DESC, run_id DESC LIMIT 1"
        );
        self.newest_of(&sql, job, &["failed", "blocked", "interrupted"])
    }

    /// Runs `sql` (parameters: job, outcome) once per outcome; the newest row wins.
    fn newest_of(
        &self,
        sql: &str,
        job: &str,
        outcomes: &[&str],
    ) -> Result<Option<RunRow>, HistoryError> {
        (|| {
            let mut st = self.conn.prepare_cached(sql)?;
            // (started in ms, run id) orders runs as the queries do.
            let mut best: Option<((i64, String), RunRow)> = None;
            for outcome in outcomes {
                let mut rows = st.query_map([job, outcome], |r| {
                    Ok(((r.get::<_, i64>("started")?, r.get("run_id")?), run_row(r)?))
                })?;
                if let Some((key, row)) = rows.next().transpose()? {
                    if best.as_ref().is_none_or(|(k, _)| key > *k) {
                        best = Some((key, row));
                    }
                }
            }
            Ok(best.map(|(_, row)| row))
        })()
        .map_err(|e| self.err(e))
    }

    /// One run with its steps; `None` if there is no such run.
    pub fn get(&self, run_id: &str) -> Result<Option<RunRow>, HistoryError> {
        (|| {
            let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1");
            let mut st = self.conn.prepare_cached(&sql)?;
            let mut rows = st.query_map([run_id], run_row)?;
            let Some(mut run) = rows.next().transpose()? else {
                return Ok(None);
            };
            let mut st = self.conn.prepare(
                "SELECT sync, started, finished, exit_code, attempts, files, bytes
                 FROM steps WHERE run_id = ?1 ORDER BY sync",
            )?;
            let steps = st
                .query_map([run_id], |r| {
                    Ok(StepRow {
                        sync: r.get(0)?,
                        started: time(r.get(1)?),
                        finished: time(r.get(2)?),
                        exit_code: r.get(3)?,
                        attempts: r.get(4)?,
                        files: r.get(5)?,
                        bytes: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            run.steps = Some(steps);
            Ok(Some(run))
        })()
        .map_err(|e| self.err(e))
        .and_then(|run| match run {
            Some(mut run) => {
                run.hooks = Some(self.hook_steps(&run.run_id)?);
                Ok(Some(run))
            }
            None => Ok(None),
        })
    }

    /// Marks every `running` run whose writing process is gone (another boot, or its pid and
    /// start time no longer alive) as `interrupted`. Returns how many.
    pub fn sweep_interrupted(&self) -> Result<usize, HistoryError> {
        let boot = procfs::boot_id();
        (|| {
            let mut st = self.conn.prepare(
                "SELECT run_id, pid, pid_start, boot_id, job FROM runs WHERE outcome = 'running'",
            )?;
            let dead: Vec<(String, String)> = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, u32>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .filter(|(_, pid, start, b, _)| {
                    *b != boot || !procfs::process_alive(*pid, *start as u64)
                })
                .map(|(id, _, _, _, job)| (id, job))
                .collect();
            let now = ms(Timestamp::now());
            let tx = self.conn.unchecked_transaction()?;
            for (id, job) in &dead {
                let changed = tx.execute(
                    "UPDATE runs SET outcome = 'interrupted', finished = ?2,
                        error = 'the process running it ended without recording an outcome'
                     WHERE run_id = ?1 AND outcome = 'running'",
                    params![id, now],
                )?;
                if changed == 1 {
                    super::totals::count_end(&tx, job, "interrupted", 0)?;
                }
            }
            tx.commit()?;
            Ok(dead.len())
        })()
        .map_err(|e| self.err(e))
    }

    /// Removes finished runs that started before `cutoff` (with their steps). A run still
    /// marked `running` is kept whatever its age. Returns the removed runs as `(job, run_id)`
    /// (their log files go with them, see [`crate::store::runlog::trim`]).
    pub fn trim(&self, cutoff: Timestamp) -> Result<Vec<(String, String)>, HistoryError> {
        (|| {
            let tx = self.conn.unchecked_transaction()?;
            let removed = {
                let mut st = tx.prepare(
                    "SELECT job, run_id FROM runs WHERE started < ?1 AND outcome <> 'running'",
                )?;
                let rows = st.query_map([ms(cutoff)], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<(String, String)>>>()?
            };
            tx.execute(
                "DELETE FROM runs WHERE started < ?1 AND outcome <> 'running'",
                [ms(cutoff)],
            )?;
            tx.commit()?;
            Ok(removed)
        })()
        .map_err(|e| self.err(e))
    }
}
