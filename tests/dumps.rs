//! Database dumps end to end: the real binary dumps a real SQLite database with the sqlite3
//! CLI and a real PostgreSQL server (started by the test, unprivileged, from the installed
//! `postgresql` package; SKIPPED loudly when the package is missing), the sync copies the dump,
//! and the copy is restored and compared. A failed dump leaves the previous dump and no
//! partial file; a remote `command` dump runs over the test sshd on 127.0.0.1.
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

fn tmp() -> Scratch {
    require_root_tools();
    let t = Scratch::short("bmd");
    fs::create_dir(t.p("r")).unwrap();
    fs::create_dir(t.p("src")).unwrap();
    t
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sqlite(db: &Path, sql: &str) -> String {
    ok(
        Command::new("sqlite3").arg(db).arg(sql).output().unwrap(),
        "sqlite3",
    )
}

fn run(t: &Scratch, id: &str, j: JobBuilder) -> (i32, Bm) {
    let cfg = ConfigBuilder::in_scratch(t).job(j).write(t.p("bm.yaml"));
    let mut bm = Bm::run_job(&cfg, id, &[]);
    let code = bm.wait(LONG);
    (code, bm)
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains("bm-partial"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_sqlite_dump_is_synced_and_restores_to_the_same_data() {
    let t = tmp();
    let db = t.p("live.db");
    sqlite(
        &db,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 500) \
         INSERT INTO t(v) SELECT 'row ' || i FROM n;",
    );
    let j = JobBuilder::new("sq")
        .yaml(
            "dumps",
            &format!(
                "[{{type: sqlite, database: {}, to: {}}}]",
                t.s("live.db"),
                t.s("src/app.db")
            ),
        )
        .sync(t.p("src/"), t.p("dst"), &["-a"]);
    let (code, bm) = run(&t, "sq", j);
    assert_eq!(code, OK, "{}", bm.log());
    let copy = t.p("dst/app.db");
    assert_eq!(
        sqlite(&copy, "SELECT count(*), max(v) FROM t;"),
        "500|row 99\n"
    );
    assert_eq!(sqlite(&copy, ".dump"), sqlite(&db, ".dump"));
    assert!(leftovers(&t.p("src")).is_empty());
    let mode = fs::metadata(t.p("src/app.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "a dump is private to its owner: {mode:o}");
    assert!(
        bm.saw("dump hook 0 starting: sqlite dump to"),
        "{}",
        bm.log()
    );
}

#[test]
fn a_failed_dump_fails_the_run_keeps_the_previous_dump_and_leaves_no_partial_file() {
    let t = tmp();
    fs::write(t.p("src/app.db"), "previous dump").unwrap();
    let j = JobBuilder::new("bad")
        .yaml(
            "dumps",
            &format!(
                "[{{type: sqlite, database: {}, to: {}}}]",
                t.s("no-such.db"),
                t.s("src/app.db")
            ),
        )
        .sync(t.p("src/"), t.p("dst"), &["-a"]);
    let (code, bm) = run(&t, "bad", j);
    assert_eq!(code, FAILED, "{}", bm.log());
    assert!(bm.saw("run failed: dump 0 (sqlite dump to"), "{}", bm.log());
    assert_eq!(
        fs::read_to_string(t.p("src/app.db")).unwrap(),
        "previous dump"
    );
    assert!(
        leftovers(&t.p("src")).is_empty(),
        "{:?}",
        leftovers(&t.p("src"))
    );
    assert!(
        !t.p("no-such.db").exists(),
        "a mistyped database is not created"
    );
    assert!(!t.p("dst").exists(), "no sync after a failed dump");
    // The run history has the dump as a step of the run: failed, and fatal to it.
    let runs: serde_json::Value =
        serde_json::from_str(&bm_ok(&t.p("bm.yaml"), &["history", "--format", "json"])).unwrap();
    let id = runs[0]["run_id"].as_str().unwrap();
    let run: serde_json::Value =
        serde_json::from_str(&bm_ok(&t.p("bm.yaml"), &["show", id, "--format", "json"])).unwrap();
    let dump = &run["hooks"][0];
    assert_eq!(dump["phase"], "dump", "{run}");
    assert_eq!(dump["index"], 0);
    assert_eq!(dump["fatal"], true, "{dump}");
    assert!(
        dump["error"].is_string() && dump["finished"].is_string(),
        "{dump}"
    );
    assert_eq!(run["hooks"].as_array().unwrap().len(), 1, "{run}");
}

#[test]
fn a_remote_command_dump_runs_on_the_jobs_host() {
    let t = tmp();
    let sshd = Sshd::start();
    let _master = Master::of(&sshd, t.p("r/ssh"));
    let to = t.p("remote dir/out.txt");
    fs::create_dir(to.parent().unwrap()).unwrap();
    let j = JobBuilder::new("rd")
        .identity_file(sshd.client_key())
        .known_hosts_file(sshd.known_hosts())
        .remote(&Remote::new("root", "127.0.0.1", sshd.port()))
        .yaml(
            "dumps",
            &format!(
                "[{{type: command, where: remote, run: [/bin/sh, -c, 'echo \"$BACKUPMANAGER_JOB $0\"', '$(x) y'], to: '{}'}}]",
                to.display()
            ),
        )
        .sync(t.p("src/"), t.s("dst"), &["-a"]);
    let (code, bm) = run(&t, "rd", j);
    assert_eq!(code, OK, "{}", bm.log());
    assert_eq!(fs::read_to_string(&to).unwrap(), "rd $(x) y\n");
    assert!(leftovers(to.parent().unwrap()).is_empty());
}

/// The newest installed PostgreSQL's bin directory, if any.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

/// A PostgreSQL server run as `nobody` in a scratch directory, on 127.0.0.1 and a socket in
/// that directory; stopped (immediate mode) on drop.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

fn as_nobody(bin: &Path, prog: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(bin.join(prog));
    c
}

impl Postgres {
    fn start(t: &Scratch, bin: PathBuf) -> Postgres {
        let dir = t.p("pg");
        fs::create_dir(&dir).unwrap();
        // nobody must reach its directory.
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let data = dir.join("data");
        ok(
            as_nobody(&bin, "initdb")
                .args(["-D"])
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
                .output()
                .unwrap(),
            "initdb",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off",
            dir.display()
        );
        ok(
            as_nobody(&bin, "pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-w", "-t", "60", "-o", &opts, "-l"])
                .arg(dir.join("log"))
                .arg("start")
                .output()
                .unwrap(),
            "pg_ctl start",
        );
        Postgres { bin, data, port }
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        ok(
            Command::new(self.bin.join("psql"))
                .args([
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                ])
                .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
                .output()
                .unwrap(),
            "psql",
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_nobody(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

#[test]
fn a_postgresql_dump_of_a_live_server_restores_to_the_same_data() {
    let Some(bin) = postgres_bin() else {
        eprintln!(
            "\n*** SKIPPED a_postgresql_dump_of_a_live_server_restores_to_the_same_data: \
             no PostgreSQL under /usr/lib/postgresql (install the `postgresql` package; \
             scripts/deps.sh does) ***\n"
        );
        return;
    };
    let t = tmp();
    let pg = Postgres::start(&t, bin.clone());
    pg.psql("postgres", "CREATE DATABASE app");
    pg.psql(
        "app",
        "CREATE TABLE t(id serial PRIMARY KEY, v text); \
         INSERT INTO t(v) SELECT 'row ' || i FROM generate_series(1, 300) i;",
    );
    let port = pg.port.to_string();
    let j = JobBuilder::new("pg")
        .yaml(
            "dumps",
            &format!(
                "[{{type: postgresql, database: app, options: [--host=127.0.0.1, --port={port}, --username=postgres, --no-owner], to: {}}}]",
                t.s("src/app.sql")
            ),
        )
        .sync(t.p("src/"), t.p("dst"), &["-a"]);
    // pg_dump from the installed version (Debian's /usr/bin/pg_dump wrapper picks a cluster).
    let (code, bm) = {
        let cfg = ConfigBuilder::in_scratch(&t).job(j).write(t.p("bm.yaml"));
        let mut bm = Bm::spawn_with_path(&cfg, &["run-job", "pg"], &bin);
        (bm.wait(LONG), bm)
    };
    assert_eq!(code, OK, "{}", bm.log());
    let dump = fs::read_to_string(t.p("dst/app.sql")).unwrap();
    assert!(dump.contains("CREATE TABLE public.t"), "{dump}");
    pg.psql("postgres", "CREATE DATABASE restored");
    ok(
        Command::new(bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &port, "-d", "restored", "-f"])
            .arg(t.p("dst/app.sql"))
            .output()
            .unwrap(),
        "restore",
    );
    let q = "SELECT count(*), max(v), sum(id) FROM t";
    assert_eq!(pg.psql("restored", q), pg.psql("app", q));
    assert_eq!(pg.psql("restored", q), "300|row 99|45150\n");
}
