//! The history against real SQLite files: the upgrade from schema 3 (rows kept, totals started
//! from them), hook steps recorded through the [`Recorder`], and totals that trimming never
//! lowers.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rusqlite::{params, Connection};

use super::{path, schema, History, HistoryError, Recorder};
use crate::events::{EventKind, Observer, RunEvent, Trigger};

fn ev(job: &str, run_id: &str, at: Timestamp, kind: EventKind) -> RunEvent {
    RunEvent {
        job: job.into(),
        run_id: run_id.into(),
        at,
        kind,
    }
}

fn finished(outcome: &'static str, waited_ms: u64) -> EventKind {
    EventKind::Finished {
        outcome,
        message: String::new(),
        error_kind: None,
        exit_code: 0,
        waited: Duration::from_millis(waited_ms),
        duration: Duration::from_secs(1),
        syncs: vec![],
    }
}

fn started() -> EventKind {
    EventKind::Started {
        dry_run: false,
        trigger: Trigger::Manual,
        slot: None,
    }
}

fn counts(h: &History, job: &str) -> Vec<(String, u64)> {
    h.outcome_counts(job).unwrap()
}

#[test]
fn a_version_3_database_upgrades_in_place_keeping_every_row_and_counting_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = path(dir.path());
    {
        // The database as the previous release left it: schema 3, two ended runs and a
        // running one, with a sync step.
        let mut c = Connection::open(&file).unwrap();
        schema::migrate_to(&mut c, 3).unwrap();
        assert_eq!(schema::version(&c).unwrap(), 3);
        for (id, outcome, wait) in [
            ("r1", "success", Some(100)),
            ("r2", "failed", Some(50)),
            ("r3", "running", None),
        ] {
            c.execute(
                "INSERT INTO runs (run_id, job, trigger, started, outcome, wait_ms, pid,
                    pid_start, boot_id) VALUES (?1, 'j', 'manual', 1000, ?2, ?3, 1, 1, 'b')",
                params![id, outcome, wait],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO steps (run_id, sync, exit_code, attempts) VALUES ('r1', 0, 0, 1)",
            [],
        )
        .unwrap();
    }
    let h = History::open_existing(dir.path()).unwrap();
    assert_eq!(schema::version(&h.conn).unwrap(), schema::current());
    let n: i64 = h
        .conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3, "no run lost");
    let r1 = h.get("r1").unwrap().unwrap();
    assert_eq!(r1.steps.unwrap().len(), 1, "the sync step is kept");
    assert!(r1.hooks.unwrap().is_empty());
    assert_eq!(
        counts(&h, "j"),
        [("failed".to_string(), 1), ("success".to_string(), 1)],
        "totals start from the ended rows; the running one is not counted"
    );
    assert_eq!(h.lock_wait_ms("j").unwrap(), 150);
    // Opening again migrates nothing twice.
    drop(h);
    let h = History::open_existing(dir.path()).unwrap();
    assert_eq!(counts(&h, "j").len(), 2);
}

#[test]
fn hooks_are_steps_of_their_run_and_totals_survive_trimming() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::start(dir.path());
    let t0 = Timestamp::now() - SignedDuration::from_hours(48);
    let at = |s: i64| t0 + SignedDuration::from_secs(s);
    let send = |id: &str, s: i64, kind: EventKind| rec.on_event(&ev("j", id, at(s), kind));
    send("old", 0, started());
    send(
        "old",
        1,
        EventKind::HookStarted {
            phase: "before",
            index: 0,
            command: "/bin/dump --fast".into(),
            remote: false,
        },
    );
    send(
        "old",
        3,
        EventKind::HookDone {
            phase: "before",
            index: 0,
            exit_code: Some(0),
            duration: Duration::from_secs(2),
            error: None,
            fatal: false,
        },
    );
    send(
        "old",
        4,
        EventKind::HookStarted {
            phase: "finally",
            index: 0,
            command: "sh -c 'exit 3'".into(),
            remote: true,
        },
    );
    send(
        "old",
        5,
        EventKind::HookDone {
            phase: "finally",
            index: 0,
            exit_code: Some(3),
            duration: Duration::from_secs(1),
            error: Some("exited with code 3".into()),
            fatal: false,
        },
    );
    send("old", 6, finished("success", 250));
    // A repeated end is not counted twice.
    send("old", 7, finished("success", 250));
    send("new", 100_000, started());
    send("new", 100_001, finished("failed", 0));
    rec.close(Duration::from_secs(10));

    let h = History::open_existing(dir.path()).unwrap();
    let hooks = h.get("old").unwrap().unwrap().hooks.unwrap();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert_eq!(
        (hooks[0].phase.as_str(), hooks[0].index, hooks[0].exit_code),
        ("before", 0, Some(0))
    );
    assert_eq!(hooks[0].command, "/bin/dump --fast");
    assert_eq!(hooks[0].duration_ms, Some(2000));
    assert_eq!(hooks[1].phase, "finally");
    assert!(hooks[1].remote);
    assert_eq!(hooks[1].exit_code, Some(3));
    assert_eq!(hooks[1].error.as_deref(), Some("exited with code 3"));
    assert!(!hooks[1].fatal);
    let before = counts(&h, "j");
    assert_eq!(
        before,
        [("failed".to_string(), 1), ("success".to_string(), 1)]
    );
    assert_eq!(h.lock_wait_ms("j").unwrap(), 250);

    // Trimming removes the old run and its hook steps; the totals stay.
    let removed = h.trim(at(50_000)).unwrap();
    assert_eq!(removed, [("j".to_string(), "old".to_string())]);
    assert!(h.get("old").unwrap().is_none());
    let orphans: i64 = h
        .conn
        .query_row("SELECT count(*) FROM hook_steps", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orphans, 0, "hook steps go with their run");
    assert_eq!(counts(&h, "j"), before);
    assert_eq!(h.lock_wait_ms("j").unwrap(), 250);
}

#[test]
fn a_run_swept_as_interrupted_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(dir.path()).unwrap();
    h.conn
        .execute(
            "INSERT INTO runs (run_id, job, trigger, started, outcome, pid, pid_start, boot_id)
             VALUES ('gone', 'j', 'manual', 1000, 'running', 1, 1, 'another boot')",
            [],
        )
        .unwrap();
    assert_eq!(h.sweep_interrupted().unwrap(), 1);
    assert_eq!(h.sweep_interrupted().unwrap(), 0);
    assert_eq!(counts(&h, "j"), [("interrupted".to_string(), 1)]);
}

#[test]
fn a_write_refused_while_another_connection_holds_the_lock_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(dir.path()).unwrap();
    let p = dir.path().join("history.sqlite");
    let holder = Connection::open(&p).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    // A second writer that does not wait: SQLite's own busy error, as the writer sees it.
    h.conn.busy_timeout(Duration::ZERO).unwrap();
    let source = h.conn.execute_batch("BEGIN IMMEDIATE").unwrap_err();
    let e = HistoryError::Sqlite {
        path: p.clone(),
        source,
    };
    assert!(e.is_busy(), "{e}");
    holder.execute_batch("ROLLBACK").unwrap();
    assert!(!HistoryError::Missing { path: p }.is_busy());
}
