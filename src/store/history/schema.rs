//! The schema, as forward-only migrations: migration `i` (0-based) takes `user_version` from
//! `i` to `i + 1`. A released migration is never edited; a change is a new one appended.
//! Each runs in its own `BEGIN IMMEDIATE` transaction that re-reads the version first, so two
//! processes opening a fresh database at once migrate it once.

use rusqlite::{Connection, TransactionBehavior};

/// Times are milliseconds since the epoch (UTC); `outcome` is running, success, failed,
/// blocked, cancelled or interrupted.
pub const MIGRATIONS: &[&str] = &[
    // 1: runs and their syncs.
    "CREATE TABLE runs (
        run_id         TEXT PRIMARY KEY,
        job            TEXT NOT NULL,
        trigger        TEXT NOT NULL,
        slot           INTEGER,
        started        INTEGER NOT NULL,
        lock_acquired  INTEGER,
        wait_ms        INTEGER,
        finished       INTEGER,
        outcome        TEXT NOT NULL,
        error_kind     TEXT,
        error          TEXT,
        exit_code      INTEGER,
        files          INTEGER,
        bytes          INTEGER,
        total_size     INTEGER,
        restore_points TEXT,
        pid            INTEGER NOT NULL,
        pid_start      INTEGER NOT NULL,
        boot_id        TEXT NOT NULL
    );
    CREATE TABLE steps (
        run_id    TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        sync      INTEGER NOT NULL,
        started   INTEGER,
        finished  INTEGER,
        exit_code INTEGER,
        attempts  INTEGER,
        files     INTEGER,
        bytes     INTEGER,
        PRIMARY KEY (run_id, sync)
    );",
    // 2: the lookups `history` and trimming make.
    "CREATE INDEX runs_by_started ON runs(started);
     CREATE INDEX runs_by_job ON runs(job, started);
     CREATE INDEX runs_running ON runs(outcome) WHERE outcome = 'running';",
    // 3: `status` asks each job's newest run of one outcome: one index seek each, not a scan
    // and sort of every run of the job (2.5 s for 100 jobs and 1,000,000 runs without it).
    "CREATE INDEX runs_by_job_outcome ON runs(job, outcome, started, run_id);",
    // 4: a run's hooks and dumps as steps of their own (`phase` is before, dump, after_success,
    // after_failure or finally; `hook` the place in that list). And per job and outcome, how
    // many runs ended so and how long they waited for locks: counters for metrics that
    // trimming (`history_keep`) never makes go down, started from the rows kept so far.
    "CREATE TABLE hook_steps (
        run_id    TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        phase     TEXT NOT NULL,
        hook      INTEGER NOT NULL,
        command   TEXT NOT NULL,
        remote    INTEGER NOT NULL,
        started   INTEGER NOT NULL,
        finished  INTEGER,
        exit_code INTEGER,
        error     TEXT,
        fatal     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, phase, hook)
    );
    CREATE TABLE job_totals (
        job     TEXT NOT NULL,
        outcome TEXT NOT NULL,
        runs    INTEGER NOT NULL,
        wait_ms INTEGER NOT NULL,
        PRIMARY KEY (job, outcome)
    );
    INSERT INTO job_totals (job, outcome, runs, wait_ms)
        SELECT job, outcome, count(*), coalesce(sum(wait_ms), 0) FROM runs
        WHERE outcome <> 'running' GROUP BY job, outcome;",
];

/// The version this build writes.
pub fn current() -> i64 {
    MIGRATIONS.len() as i64
}

#[derive(Debug)]
pub enum MigrateError {
    TooNew { found: i64, known: i64 },
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sqlite(e)
    }
}

pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Brings the database to [`current`].
pub fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    migrate_to(conn, current())
}

/// Applies migrations up to version `target` (tests start from an older version this way).
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), MigrateError> {
    let found = version(conn)?;
    if found > current() {
        return Err(MigrateError::TooNew {
            found,
            known: current(),
        });
    }
    if found >= target {
        return Ok(());
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().take(target as usize) {
        let to = i as i64 + 1;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have migrated while this one waited for the write lock.
        if version(&tx)? >= to {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", to)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_forward_from_every_older_version_and_refuses_a_newer_one() {
        for from in 0..current() {
            let mut c = Connection::open_in_memory().unwrap();
            migrate_to(&mut c, from).unwrap();
            assert_eq!(version(&c).unwrap(), from);
            migrate(&mut c).unwrap();
            assert_eq!(version(&c).unwrap(), current());
            // Migrating again changes nothing.
            migrate(&mut c).unwrap();
            let idx: i64 = c
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'runs_%'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(
                idx, 4,
                "runs_by_started, runs_by_job, runs_running, runs_by_job_outcome"
            );
        }
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", current() + 1)
            .unwrap();
        assert!(matches!(migrate(&mut c), Err(MigrateError::TooNew { .. })));
    }
}
