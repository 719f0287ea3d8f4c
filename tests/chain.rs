//! The chain across machines, end to end: three fake hosts (network namespaces, see
//! tests/support/netns.rs) `desktop`, `backup_a`, `backup_b`, each with its own sshd and its own
//! view of the lock, state and data directories; two daemons running examples/chain/desktop.yaml
//! (on desktop) and examples/chain/backup_a.yaml (on backup_a), every minute, colliding on purpose.
//! Both jobs are `mode: snapshot`: desktop keeps a snapshot series on backup_a, and backup_a
//! snapshots that series' `latest` into a series of its own on backup_b.
//! DESIGN.md, "The chain across machines: test bed", says what each test proves.
//!
//! Events are found by the log lines' fields (`event`, `sync`, `path`, `why`, ...), never by
//! their wording; only the daemon's own start line (its pid) and a failed run's error text
//! (which must name the unreachable host) are read as text.
//!
//! Needs root (namespaces, sshd). Without namespaces the tests print `SKIPPED: …` and pass,
//! except under CI (`CI` set), where they fail.
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use nix::sys::signal::Signal;
use support::netns::Bed;

const BIN: &str = env!("CARGO_BIN_EXE_backupmanager");
const HOSTS: [&str; 3] = ["desktop", "backup_a", "backup_b"];
const D_LOCK: &str = "run/locks/desktop_to_backup_a";
const A_LOCK: &str = "run/locks/backup_a_to_backup_b";
/// Desktop's snapshot series, on backup_a (desktop.yaml's dest).
const A_SERIES: &str = "srv/backup/desktop";
/// backup_a's snapshot series of desktop's `latest`, on backup_b (backup_a.yaml's dest).
const B_SERIES: &str = "srv/backup/from-backup_a/desktop";
/// Desktop's payload per generation: at --bwlimit=128 (KiB/s) about 6 s per rsync.
const PAYLOAD: usize = 768 * 1024;

// ---------------------------------------------------------------------------------------------
// Configs: the shipped templates with per-bed paths and addresses.

fn render(bed: &Bed, template: &str, extra: &[(&str, &str)]) -> String {
    let mut text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(template))
        .unwrap_or_else(|e| panic!("read {template}: {e}"));
    let view = bed.view().display().to_string();
    let subs: Vec<(String, String)> = [
        ("/run/backupmanager", format!("{view}/run")),
        ("/var/lib/backupmanager", format!("{view}/state")),
        ("/home/user/", format!("{view}/home/user/")),
        ("/srv/backup/", format!("{view}/srv/backup/")),
        (
            "/etc/backupmanager/id_ed25519",
            bed.client_key().display().to_string(),
        ),
        (
            "/etc/backupmanager/known_hosts",
            bed.known_hosts().display().to_string(),
        ),
        ("backup-a.example.net", bed.host("backup_a").addr.clone()),
        ("backup-b.example.net", bed.host("backup_b").addr.clone()),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .chain(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())))
    .collect();
    // Every template must still use the paths the bed maps (a renamed one would escape the
    // per-host views); host names and /home/user appear in one template only.
    for must in [
        "/run/backupmanager",
        "/var/lib/backupmanager",
        "/srv/backup/",
    ] {
        assert!(text.contains(must), "{template} no longer contains {must}");
    }
    for (from, to) in subs {
        text = text.replace(&from, &to);
    }
    text
}

struct Chain {
    bed: Bed,
    desktop_cfg: PathBuf,
    backup_a_cfg: PathBuf,
    /// examples/chain/backup_b_pull.yaml: the second hop as a pull from backup_b.
    backup_b_cfg: PathBuf,
    logs: PathBuf,
    daemons: BTreeMap<&'static str, u32>,
}

impl Chain {
    fn new(test: &str, extra: &[(&str, &str)]) -> Option<Chain> {
        let bed = Bed::new_or_skip(test, &HOSTS)?;
        let etc = bed.root.join("etc");
        let logs = bed.root.join("logs");
        fs::create_dir_all(&etc).unwrap();
        fs::create_dir_all(&logs).unwrap();
        let desktop_cfg = etc.join("desktop.yaml");
        let backup_a_cfg = etc.join("backup_a.yaml");
        fs::write(
            &desktop_cfg,
            render(&bed, "examples/chain/desktop.yaml", extra),
        )
        .unwrap();
        fs::write(
            &backup_a_cfg,
            render(&bed, "examples/chain/backup_a.yaml", extra),
        )
        .unwrap();
        let backup_b_cfg = etc.join("backup_b_pull.yaml");
        fs::write(
            &backup_b_cfg,
            render(&bed, "examples/chain/backup_b_pull.yaml", extra),
        )
        .unwrap();
        Some(Chain {
            bed,
            desktop_cfg,
            backup_a_cfg,
            backup_b_cfg,
            logs,
            daemons: BTreeMap::new(),
        })
    }

    fn fs(&self, host: &str) -> &Path {
        &self.bed.host(host).fs
    }

    fn cfg(&self, host: &str) -> &Path {
        match host {
            "desktop" => &self.desktop_cfg,
            "backup_a" => &self.backup_a_cfg,
            "backup_b" => &self.backup_b_cfg,
            _ => panic!("no instance on {host}"),
        }
    }

    fn log(&self, host: &str) -> PathBuf {
        self.logs.join(format!("{host}.log"))
    }

    fn start_daemon(&mut self, host: &'static str) -> u32 {
        let cfg = self.cfg(host).to_str().unwrap().to_string();
        let log = self.log(host);
        let pid = self.bed.spawn(
            host,
            Path::new(BIN),
            &["--log-format", "json", "daemon", "-c", &cfg],
            &log,
        );
        self.daemons.insert(host, pid);
        // The daemon's pid is in its start line's text only (daemon/, not a run's log line).
        wait_for(&log, 0, Duration::from_secs(20), "daemon started", |e| {
            is_daemon_start(e) && e.msg.contains(&format!("pid {pid},"))
        });
        pid
    }

    /// SIGTERM, and the daemon must exit 0 after cancelling its run.
    fn stop_daemon(&mut self, host: &str) {
        let pid = self.daemons.remove(host).unwrap();
        self.bed.signal(pid, Signal::SIGTERM);
        let st = self
            .bed
            .reap(pid, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{host} daemon did not exit after SIGTERM"));
        assert_eq!(
            st.code(),
            Some(0),
            "{host} daemon exit status after SIGTERM"
        );
    }

    fn daemon_alive(&self, host: &str) -> bool {
        self.daemons
            .get(host)
            .is_some_and(|p| support::pid_alive(*p))
    }

    /// Rewrites desktop's tree as generation `g`; returns its contents (relative path → bytes).
    fn new_generation(&self, g: u32, payload: usize) -> Tree {
        let home = self.fs("desktop").join("home/user");
        if home.exists() {
            fs::remove_dir_all(&home).unwrap();
        }
        fs::create_dir_all(home.join("docs")).unwrap();
        fs::write(home.join("generation"), format!("{g}\n")).unwrap();
        fs::write(
            home.join(format!("docs/gen-{g}.txt")),
            format!("written in generation {g}\n"),
        )
        .unwrap();
        let bytes = backupmanager::sys::random::hex(payload / 2).into_bytes();
        fs::write(home.join("payload.bin"), bytes).unwrap();
        read_tree(&home)
    }

    /// backup_a starts out holding a snapshot of generation 0, made by a first run (`run-job`,
    /// before any daemon starts): backup_a's job refuses a missing `latest/`, and backup_a may
    /// well go first.
    fn seed_backup_a(&self) -> String {
        let log = self.logs.join("seed-desktop.log");
        let out = self
            .bed
            .command("desktop", BIN)
            .args([
                "--log-format",
                "json",
                "run-job",
                "desktop_to_backup_a",
                "-c",
            ])
            .arg(self.cfg("desktop"))
            .stderr(fs::File::create(&log).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the seeding run failed ({}):\n{}",
            out.status,
            tail(&log)
        );
        let latest = self.fs("backup_a").join(A_SERIES).join("latest");
        assert!(
            latest.is_dir(),
            "the seeding run left no {}",
            latest.display()
        );
        let snaps = complete_snapshots(&self.fs("backup_a").join(A_SERIES));
        assert_eq!(snaps.len(), 1, "{snaps:?}");
        snaps[0].1.clone()
    }

    /// `backupmanager ARGS… -c <host's config>` inside `host`; panics unless it exits 0.
    fn cli(&self, host: &str, args: &[&str]) -> String {
        let out = self
            .bed
            .command(host, BIN)
            .args(args)
            .arg("-c")
            .arg(self.cfg(host))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{host}: backupmanager {args:?} exited {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `snapshots JOB --format json` on `host`: (id, run_id) per listed snapshot.
    fn listed_snapshots(&self, host: &str, job: &str) -> Vec<(String, String)> {
        let out = self.cli(host, &["snapshots", job, "--format", "json"]);
        let v: Vec<serde_json::Value> =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v.iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["run_id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The tree of the newest complete snapshot in `host`'s series `series`.
    fn latest(&self, host: &str, series: &str) -> Tree {
        read_tree(&self.fs(host).join(series).join("latest"))
    }
}

// ---------------------------------------------------------------------------------------------
// Logs: one JSON object per line.

#[derive(Debug, Clone)]
struct Ev {
    ts: Timestamp,
    msg: String,
    run_id: String,
    phase: String,
    /// The kind of line (`sync_started`, `sync_retry`, `stale_removed`, ...; src/run/log.rs).
    event: String,
    /// The sync's index, on sync lines.
    sync: String,
    result: String,
    /// The lock's path, on lock lines.
    path: String,
    /// Why a stale lock was judged abandoned.
    why: String,
}

fn events(log: &Path) -> Vec<Ev> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let s = |k: &str| {
                v.get(k)
                    .or_else(|| v.get("span").and_then(|sp| sp.get(k)))
                    .and_then(|x| x.as_str().map(str::to_string).or(Some(x.to_string())))
                    .unwrap_or_default()
            };
            Some(Ev {
                ts: v.get("timestamp")?.as_str()?.parse().ok()?,
                msg: s("message"),
                run_id: s("run_id"),
                phase: s("phase"),
                event: s("event"),
                sync: s("sync"),
                result: s("result"),
                path: s("path"),
                why: s("why"),
            })
        })
        .collect()
}

/// Waits until an event at index >= `from` satisfies `pred`; returns (index, event).
fn wait_for(
    log: &Path,
    from: usize,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Ev) -> bool,
) -> (usize, Ev) {
    let deadline = Instant::now() + timeout;
    loop {
        let evs = events(log);
        if let Some((i, e)) = evs.iter().enumerate().skip(from).find(|(_, e)| pred(e)) {
            return (i, e.clone());
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what} in {}; last lines:\n{}",
                log.display(),
                tail(log)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn is_daemon_start(e: &Ev) -> bool {
    e.phase == "start" && e.run_id.is_empty()
}
fn is_run_end(e: &Ev) -> bool {
    e.phase == "end"
}
/// `event` of sync 0's line (`sync_started`, `sync_done`, `sync_retry`).
fn is_sync0(e: &Ev, event: &str) -> bool {
    e.event == event && e.sync == "0"
}
fn is_wait(e: &Ev) -> bool {
    e.event == "waiting"
}
/// A stale lock at `lock` (a path ending) was removed.
fn is_stale_removed(e: &Ev, lock: &str) -> bool {
    e.event == "stale_removed" && e.path.ends_with(lock)
}
fn is_success(e: &Ev) -> bool {
    e.phase == "end" && e.result == "success"
}

/// One rsync attempt of sync 0, from its `sync_started` line to its end.
#[derive(Debug, Clone)]
struct Interval {
    run_id: String,
    start: Timestamp,
    end: Timestamp,
    /// The run ended in success after this attempt.
    ok: bool,
}

/// Sync-0 intervals in a daemon's log. An attempt still open when the log shows the daemon
/// starting again (after a kill -9) ends at the first of `kills` after its start; one still open
/// at the end of the log ends "now" (it may still run).
fn intervals(evs: &[Ev], kills: &[Timestamp]) -> Vec<Interval> {
    let mut out: Vec<Interval> = Vec::new();
    let mut open: Option<(String, Timestamp)> = None;
    let close = |open: &mut Option<(String, Timestamp)>, end: Timestamp, ok, out: &mut Vec<_>| {
        if let Some((run_id, start)) = open.take() {
            out.push(Interval {
                run_id,
                start,
                end,
                ok,
            });
        }
    };
    for e in evs {
        if is_daemon_start(e) {
            if let Some((_, start)) = &open {
                let k = kills.iter().find(|k| *k > start).copied().unwrap_or(e.ts);
                close(&mut open, k, false, &mut out);
            }
        } else if is_sync0(e, "sync_started") {
            close(&mut open, e.ts, false, &mut out);
            open = Some((e.run_id.clone(), e.ts));
        } else if open.as_ref().is_some_and(|(r, _)| *r == e.run_id)
            && (is_sync0(e, "sync_done") || is_sync0(e, "sync_retry") || is_run_end(e))
        {
            let ok = is_sync0(e, "sync_done");
            close(&mut open, e.ts, ok, &mut out);
        }
    }
    close(&mut open, Timestamp::now(), false, &mut out);
    // A "done" attempt belongs to a successful run only if that run ended in success.
    for iv in &mut out {
        if iv.ok {
            iv.ok = evs.iter().any(|e| e.run_id == iv.run_id && is_success(e));
        }
    }
    out
}

/// Requirement 1: the two rsyncs touching backup_a never overlap.
fn assert_no_overlap(d: &[Interval], a: &[Interval]) {
    for x in d {
        for y in a {
            assert!(
                x.end <= y.start || y.end <= x.start,
                "desktop's rsync {} ({} .. {}) overlaps backup_a's rsync {} ({} .. {})",
                x.run_id,
                x.start,
                x.end,
                y.run_id,
                y.start,
                y.end
            );
        }
    }
}

type Tree = BTreeMap<String, Vec<u8>>;

fn read_tree(root: &Path) -> Tree {
    try_read_tree(root).unwrap_or_else(|e| panic!("read {}: {e}", root.display()))
}

/// [`read_tree`] that reports an error instead (a snapshot may be pruned while it is read).
fn try_read_tree(root: &Path) -> std::io::Result<Tree> {
    fn walk(base: &Path, dir: &Path, out: &mut Tree) -> std::io::Result<()> {
        for e in fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                walk(base, &p, out)?;
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, fs::read(&p)?);
            }
        }
        Ok(())
    }
    let mut out = Tree::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

fn describe(t: &Tree) -> String {
    let g = t
        .get("generation")
        .map(|g| String::from_utf8_lossy(g).trim().to_string())
        .unwrap_or_else(|| "?".into());
    format!("generation {g}, files {:?}", t.keys().collect::<Vec<_>>())
}

/// Seconds into the current minute (UTC minute boundaries are the zone's too).
fn second_of_minute() -> u64 {
    (Timestamp::now().as_second().rem_euclid(60)) as u64
}

/// Generations written to desktop's tree, with the instant each write finished. Writes happen
/// only while desktop's daemon is between runs, so a run sees exactly one generation.
struct Generations {
    list: Vec<(Timestamp, Tree)>,
}

impl Generations {
    /// The tree desktop held at `t`.
    fn at(&self, t: Timestamp) -> &Tree {
        &self
            .list
            .iter()
            .rev()
            .find(|(w, _)| *w < t)
            .expect("generation 0 precedes every run")
            .1
    }
}

/// Requirement 2: backup_b's latest snapshot holds what desktop had at the start of the last desktop → backup_a
/// run that completed before the last backup_a → backup_b run began.
fn assert_consistent(chain: &Chain, gens: &Generations, d: &[Interval], a: &[Interval]) {
    let last_a = a
        .iter()
        .rev()
        .find(|iv| iv.ok)
        .expect("backup_a completed a run");
    let last_d = d
        .iter()
        .rfind(|iv| iv.ok && iv.end <= last_a.start)
        .expect("desktop completed a run before backup_a's last");
    let expected = gens.at(last_d.start);
    let got = chain.latest("backup_b", B_SERIES);
    assert!(
        got == *expected,
        "backup_b's latest snapshot holds {}, expected {} (desktop's tree when its run {} started at {}; \
         backup_a's last run {} started at {})",
        describe(&got),
        describe(expected),
        last_d.run_id,
        last_d.start,
        last_a.run_id,
        last_a.start
    );
    eprintln!(
        "consistent: backup_b holds {} (desktop run {}, backup_a run {})",
        describe(&got),
        last_d.run_id,
        last_a.run_id
    );
}

// ---------------------------------------------------------------------------------------------
// Snapshot series, read straight from a host's files (layout: src/snapshot/mod.rs).

/// The complete snapshots of a series directory: (id, run id), from the manifests `<id>.json`
/// beside a directory `<id>`. A series changing under it (commit, prune) only hides entries.
fn complete_snapshots(series: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir(series).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(id) = name.strip_suffix(".json") else {
            continue;
        };
        if id.starts_with('.') || !series.join(id).is_dir() {
            continue;
        }
        let Ok(text) = fs::read_to_string(e.path()) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("manifest {}: {e}: {text}", name));
        assert_eq!(v["id"].as_str(), Some(id), "manifest {name}: {text}");
        out.push((id.to_string(), v["run_id"].as_str().unwrap().to_string()));
    }
    out.sort();
    out
}

/// Top-level names of a series directory starting with `.incomplete-` (being written, or
/// left by a failed run).
fn incomplete_at_top(series: &Path) -> Vec<String> {
    fs::read_dir(series)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".incomplete-"))
        .collect()
}

/// Every name `.incomplete-*` *below* the top level of a series: inside a snapshot, or inside
/// one being written. There, it could only have been copied from another host's series.
fn incomplete_below_top(series: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(".incomplete-") {
                out.push(e.path());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    for e in fs::read_dir(series).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), &mut out);
        }
    }
    out
}

/// Watches one snapshot series while the instances run: reads each complete snapshot once,
/// when first seen (before retention can remove it), and fails at once on any `.incomplete-*`
/// below the series' top level.
struct SeriesWatch {
    host: &'static str,
    dir: PathBuf,
    /// id → (run id from the manifest, tree)
    seen: BTreeMap<String, (String, Tree)>,
}

impl SeriesWatch {
    fn new(chain: &Chain, host: &'static str, series: &str) -> SeriesWatch {
        SeriesWatch {
            host,
            dir: chain.fs(host).join(series),
            seen: BTreeMap::new(),
        }
    }

    fn poll(&mut self) {
        for (id, run_id) in complete_snapshots(&self.dir) {
            if self.seen.contains_key(&id) {
                continue;
            }
            let tree = try_read_tree(&self.dir.join(&id));
            // Still complete after the walk: not pruned under it (a prune renames it first).
            if let (Ok(tree), true) = (tree, self.dir.join(format!("{id}.json")).is_file()) {
                if self.dir.join(&id).is_dir() {
                    self.seen.insert(id, (run_id, tree));
                }
            }
        }
        let bad = incomplete_below_top(&self.dir);
        assert!(
            bad.is_empty(),
            "{}'s series {} holds a copy of an incomplete snapshot: {bad:?}",
            self.host,
            self.dir.display()
        );
    }
}

/// No snapshot is ever copied while incomplete, and every snapshot is a whole generation.
/// On backup_a each of desktop's snapshots holds the tree desktop had when its run began (the
/// seeding run's: generation 0). On backup_b each snapshot made by a backup_a run holds exactly
/// the generation of the last desktop run that *succeeded* (so committed its snapshot) before
/// that backup_a rsync began, or the seeded generation 0: never one still being written on
/// backup_a (a failed or running desktop run's `.incomplete-*`), never a mix.
fn assert_snapshot_chain(
    gens: &Generations,
    seed_run: &str,
    watch_a: &SeriesWatch,
    watch_b: &SeriesWatch,
    d: &[Interval],
    a: &[Interval],
) {
    let seed = &gens.list[0].1;
    for (id, (run_id, tree)) in &watch_a.seen {
        let expected = if run_id == seed_run {
            seed
        } else {
            let x = d
                .iter()
                .find(|iv| iv.ok && iv.run_id == *run_id)
                .unwrap_or_else(|| {
                    panic!("backup_a holds snapshot {id} of run {run_id}, which did not succeed")
                });
            gens.at(x.start)
        };
        assert!(
            tree == expected,
            "backup_a's snapshot {id} (run {run_id}) holds {}, expected {}",
            describe(tree),
            describe(expected)
        );
    }
    for (id, (run_id, tree)) in &watch_b.seen {
        let y = a
            .iter()
            .find(|iv| iv.ok && iv.run_id == *run_id)
            .unwrap_or_else(|| {
                panic!("backup_b holds snapshot {id} of run {run_id}, which did not succeed")
            });
        let x = d.iter().rfind(|iv| iv.ok && iv.end <= y.start);
        let expected = x.map_or(seed, |x| gens.at(x.start));
        assert!(
            tree == expected,
            "backup_b's snapshot {id} (backup_a run {run_id}, rsync from {}) holds {}, expected {} \
             (desktop's last completed run before it: {:?})",
            y.start,
            describe(tree),
            describe(expected),
            x.map(|x| (&x.run_id, x.start, x.end))
        );
    }
    eprintln!(
        "snapshots checked: {} on backup_a, {} on backup_b",
        watch_a.seen.len(),
        watch_b.seen.len()
    );
}

/// Makes a new generation after each desktop run that ends early enough in its minute, and
/// watches both snapshot series meanwhile.
struct GenDriver {
    gens: Generations,
    seen: usize,
    on: bool,
    watch_a: SeriesWatch,
    watch_b: SeriesWatch,
}

impl GenDriver {
    /// `g0`: generation 0 (written before the seeding run) and when.
    fn new(chain: &Chain, g0: (Timestamp, Tree), on: bool) -> GenDriver {
        GenDriver {
            gens: Generations { list: vec![g0] },
            seen: 0,
            on,
            watch_a: SeriesWatch::new(chain, "backup_a", A_SERIES),
            watch_b: SeriesWatch::new(chain, "backup_b", B_SERIES),
        }
    }

    fn poll(&mut self, chain: &Chain) {
        self.watch_a.poll();
        self.watch_b.poll();
        let evs = events(&chain.log("desktop"));
        let ended = evs.iter().skip(self.seen).any(is_run_end);
        self.seen = evs.len();
        // After a run's end the daemon starts nothing before the next minute boundary.
        if self.on && ended && second_of_minute() < 50 {
            let g = self.gens.list.len() as u32;
            let tree = chain.new_generation(g, PAYLOAD);
            self.gens.list.push((Timestamp::now(), tree));
            eprintln!("generation {g} written at {}", Timestamp::now());
        }
    }

    /// Polls until `cond` (over both logs) holds.
    fn until(
        &mut self,
        chain: &Chain,
        timeout: Duration,
        what: &str,
        cond: impl Fn(&[Ev], &[Ev]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll(chain);
            let (d, a) = (
                events(&chain.log("desktop")),
                events(&chain.log("backup_a")),
            );
            if cond(&d, &a) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting until {what}\n--- desktop:\n{}\n--- backup_a:\n{}",
                tail(&chain.log("desktop")),
                tail(&chain.log("backup_a"))
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The last 25 lines of a JSON log, one readable line per event.
fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<String> = text
        .lines()
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) => format!(
                "  {} {} {}",
                v["timestamp"].as_str().unwrap_or(""),
                v["level"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or("")
            ),
            Err(_) => format!("  {l}"),
        })
        .collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

fn successes_after(evs: &[Ev], t: Timestamp) -> usize {
    evs.iter().filter(|e| is_success(e) && e.ts > t).count()
}

// ---------------------------------------------------------------------------------------------

/// Requirements 1, 2, 3 and 5 on one bed: minutes of colliding schedules, then a kill -9 of
/// backup_a's daemon mid-rsync, then backup_a's sshd down for one desktop slot.
#[test]
fn daemons_collide_crash_and_lose_a_host_without_overlap() {
    let Some(mut chain) = Chain::new("daemons_collide_crash_and_lose_a_host_without_overlap", &[])
    else {
        return;
    };
    let g0 = (Timestamp::now(), chain.new_generation(0, PAYLOAD));
    let seed_run = chain.seed_backup_a();
    let mut gen = GenDriver::new(&chain, g0, true);
    chain.start_daemon("desktop");
    chain.start_daemon("backup_a");
    let t0 = Timestamp::now();
    let mut kills = Vec::new();

    // Phase 1: two successful runs of each, new generations in between.
    gen.until(
        &chain,
        Duration::from_secs(200),
        "2 successful runs each",
        |d, a| successes_after(d, t0) >= 2 && successes_after(a, t0) >= 2,
    );
    let d_log = chain.log("desktop");
    let a_log = chain.log("backup_a");
    let waits = events(&d_log)
        .iter()
        .chain(events(&a_log).iter())
        .filter(|e| is_wait(e))
        .count();
    assert!(
        waits > 0,
        "the two instances never collided; nothing was tested"
    );

    // Phase 2 (requirement 3): kill -9 backup_a's daemon in the middle of its rsync.
    let from = events(&a_log).len();
    let (_, start) = wait_for(
        &a_log,
        from,
        Duration::from_secs(120),
        "backup_a's rsync to start",
        |e| is_sync0(e, "sync_started"),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !events(&a_log)
            .iter()
            .any(|e| e.run_id == start.run_id && is_sync0(e, "sync_done")),
        "backup_a's rsync ended before the kill; the payload is too small"
    );
    let old_pid = chain.daemons["backup_a"];
    chain.bed.signal(old_pid, Signal::SIGKILL);
    chain.bed.reap(old_pid, Duration::from_secs(10)).unwrap();
    chain.daemons.remove("backup_a");
    let killed = Timestamp::now();
    kills.push(killed);
    let lock = fs::read_to_string(chain.fs("backup_a").join(A_LOCK))
        .expect("the killed run's lock is left behind on backup_a");
    assert!(lock.contains(&format!("\"pid\":{old_pid},")), "{lock}");
    chain.start_daemon("backup_a");
    // The stale lock is recognised (dead pid, same boot) by whichever instance meets it first…
    gen.until(
        &chain,
        Duration::from_secs(150),
        "the stale lock is removed and both instances succeed after the crash",
        |d, a| {
            // "its process PID on HOST is gone": the killed daemon's pid.
            let broken = d.iter().chain(a.iter()).any(|e| {
                e.ts > killed
                    && is_stale_removed(e, "locks/backup_a_to_backup_b")
                    && e.why.starts_with(&format!("its process {old_pid} on "))
                    && e.why.ends_with(" is gone")
            });
            broken && successes_after(d, killed) >= 1 && successes_after(a, killed) >= 1
        },
    );

    // Phase 3 (requirement 5): backup_a's sshd down for a desktop slot.
    gen.on = false;
    gen.until(
        &chain,
        Duration::from_secs(90),
        "desktop idle, early in a minute",
        |d, _| {
            // Between runs: its last event that belongs to a run is a run's end.
            d.iter()
                .rev()
                .find(|e| !e.run_id.is_empty())
                .is_some_and(is_run_end)
                && second_of_minute() < 45
        },
    );
    chain.bed.stop_sshd("backup_a");
    let down = Timestamp::now();
    let from = events(&d_log).len();
    let (_, failed) = wait_for(
        &d_log,
        from,
        Duration::from_secs(90),
        "desktop's run to end",
        is_run_end,
    );
    assert_eq!(failed.result, "failed", "{failed:?}");
    let addr = chain.bed.host("backup_a").addr.clone();
    assert!(
        failed.msg.contains(&addr),
        "the failure names backup_a ({addr}): {}",
        failed.msg
    );
    assert!(
        chain.daemon_alive("desktop"),
        "desktop's daemon keeps running"
    );
    assert!(
        !chain.fs("desktop").join(D_LOCK).exists(),
        "desktop's local lock is released after the failed run"
    );
    chain.bed.start_sshd("backup_a");
    let up = Timestamp::now();
    assert!(up > down);
    gen.until(
        &chain,
        Duration::from_secs(100),
        "desktop succeeds once sshd is back",
        |d, _| successes_after(d, up) >= 1,
    );

    // Settle: a backup_a run that starts after a desktop run of the final generation.
    let last_gen = gen.gens.list.last().unwrap().0;
    gen.until(
        &chain,
        Duration::from_secs(150),
        "the chain settles",
        |d, a| {
            let di = intervals(d, &[]);
            let ai = intervals(a, &kills);
            di.iter().any(|x| x.ok && x.start > last_gen)
                && ai.iter().any(|y| {
                    y.ok && di
                        .iter()
                        .any(|x| x.ok && x.start > last_gen && x.end <= y.start)
                })
        },
    );
    chain.stop_daemon("desktop");
    chain.stop_daemon("backup_a");
    gen.poll(&chain);

    let d = intervals(&events(&d_log), &[]);
    let a = intervals(&events(&a_log), &kills);
    eprintln!(
        "desktop rsyncs: {}, backup_a rsyncs: {}, waits: {waits}+",
        d.len(),
        a.len()
    );
    assert_no_overlap(&d, &a);
    assert_consistent(&chain, &gen.gens, &d, &a);
    let last = &gen.gens.list.last().unwrap().1;
    assert!(
        chain.latest("backup_b", B_SERIES) == *last,
        "settled: backup_b's latest snapshot holds the final generation"
    );
    assert_snapshot_chain(&gen.gens, &seed_run, &gen.watch_a, &gen.watch_b, &d, &a);

    // Both hosts hold restorable versions, listed by the jobs' own `snapshots` command; the
    // retention (keep_last: 3) bounds them.
    let on_a = chain.listed_snapshots("desktop", "desktop_to_backup_a");
    let on_b = chain.listed_snapshots("backup_a", "backup_a_to_backup_b");
    eprintln!("listed: on backup_a {on_a:?}; on backup_b {on_b:?}");
    assert!(
        (2..=3).contains(&on_a.len()),
        "desktop's job lists {on_a:?}"
    );
    assert!(
        (1..=3).contains(&on_b.len()),
        "backup_a's job lists {on_b:?}"
    );
    for (snaps, w) in [(&on_a, &gen.watch_a), (&on_b, &gen.watch_b)] {
        let mut snaps = snaps.clone();
        snaps.sort();
        assert_eq!(
            snaps,
            complete_snapshots(&w.dir),
            "the listing is the complete snapshots in {}",
            w.dir.display()
        );
    }
    // A restore of backup_b's latest (backup_a's job, run on backup_a) is, byte for byte, the
    // generation it says it holds: here the final one.
    let to = chain.bed.view().join("restored-from-backup_b");
    chain.cli(
        "backup_a",
        &[
            "restore",
            "backup_a_to_backup_b",
            "--snapshot",
            "latest",
            "--to",
            to.to_str().unwrap(),
        ],
    );
    let restored = read_tree(&chain.fs("backup_a").join("restored-from-backup_b"));
    let g: usize = String::from_utf8_lossy(&restored["generation"])
        .trim()
        .parse()
        .unwrap();
    assert!(
        restored == gen.gens.list[g].1,
        "the restore claims generation {g} but holds {}",
        describe(&restored)
    );
    assert!(
        restored == *last,
        "restored {}, the final generation is {}",
        describe(&restored),
        describe(last)
    );
}

/// Requirement 4: the link of desktop goes down during its rsync. The run fails (after the retry
/// the exit-code rules allow), its local lock is released, the one on backup_a is left behind;
/// once the link is back the next desktop run breaks that leftover (it is its own earlier run's)
/// and backup_a, which waited on it, finishes too.
#[test]
fn a_cut_link_fails_the_run_and_the_leftover_lock_is_broken_later() {
    let Some(mut chain) = Chain::new(
        "a_cut_link_fails_the_run_and_the_leftover_lock_is_broken_later",
        &[],
    ) else {
        return;
    };
    let g0 = (Timestamp::now(), chain.new_generation(0, PAYLOAD));
    let seed_run = chain.seed_backup_a();
    let mut gen = GenDriver::new(&chain, g0, false);
    // The run that is cut carries a new generation: half of it is on backup_a, incomplete.
    gen.gens
        .list
        .push((Timestamp::now(), chain.new_generation(1, PAYLOAD)));
    chain.start_daemon("desktop");
    chain.start_daemon("backup_a");
    let d_log = chain.log("desktop");
    let a_log = chain.log("backup_a");
    let (_, start) = wait_for(
        &d_log,
        0,
        Duration::from_secs(150),
        "desktop's rsync to start",
        |e| is_sync0(e, "sync_started"),
    );
    std::thread::sleep(Duration::from_secs(2));
    chain.bed.set_link("desktop", false);
    let cut = Timestamp::now();
    let (_, end) = wait_for(
        &d_log,
        0,
        Duration::from_secs(120),
        "desktop's run to end after the cut",
        |e| e.run_id == start.run_id && is_run_end(e),
    );
    assert_eq!(end.result, "failed", "{end:?}");
    let evs = events(&d_log);
    assert!(
        evs.iter()
            .any(|e| e.run_id == start.run_id && e.event == "sync_retry"),
        "the cut is a transient failure and is retried once"
    );
    assert!(
        evs.iter().any(|e| e.run_id == start.run_id
            && e.event == "lock_release_failed"
            && e.path.ends_with("locks/desktop_to_backup_a")),
        "the lock on unreachable backup_a cannot be released"
    );
    assert!(
        !chain.fs("desktop").join(D_LOCK).exists(),
        "desktop's own local lock is released"
    );
    let left = fs::read_to_string(chain.fs("backup_a").join(D_LOCK))
        .expect("the lock on the unreachable host is left behind");
    assert!(left.contains(&start.run_id), "{left}");
    let series_a = chain.fs("backup_a").join(A_SERIES);
    assert_eq!(
        incomplete_at_top(&series_a).len(),
        1,
        "the cut run leaves its snapshot incomplete on backup_a"
    );
    assert!(
        !complete_snapshots(&series_a)
            .iter()
            .any(|(_, r)| *r == start.run_id),
        "the cut run's snapshot is not complete"
    );
    assert!(chain.daemon_alive("desktop") && chain.daemon_alive("backup_a"));
    chain.bed.set_link("desktop", true);
    let up = Timestamp::now();
    eprintln!("link cut at {cut}, back at {up}");
    gen.until(
        &chain,
        Duration::from_secs(180),
        "the leftover lock is broken and both instances succeed",
        |d, a| {
            let broken = d
                .iter()
                .chain(a.iter())
                .any(|e| e.ts > up && is_stale_removed(e, "locks/desktop_to_backup_a"));
            broken && successes_after(d, up) >= 1 && successes_after(a, up) >= 1
        },
    );
    chain.stop_daemon("desktop");
    chain.stop_daemon("backup_a");
    gen.poll(&chain);
    let (d, a) = (
        intervals(&events(&d_log), &[]),
        intervals(&events(&a_log), &[]),
    );
    assert_no_overlap(&d, &a);
    assert!(!chain.fs("backup_a").join(D_LOCK).exists());
    assert!(!chain.fs("backup_a").join(A_LOCK).exists());
    // The next desktop run took the incomplete snapshot over and completed it.
    assert_eq!(incomplete_at_top(&series_a), Vec::<String>::new());
    assert_snapshot_chain(&gen.gens, &seed_run, &gen.watch_a, &gen.watch_b, &d, &a);
}

/// Requirement 6: both instances' jobs start in the same instant, many times (run-job, no
/// daemons). Each time exactly one rsync runs at a time, and both runs succeed: nobody starves.
#[test]
fn simultaneous_starts_let_exactly_one_go_first() {
    // Short re-checks keep the iterations quick; the lock order is what is under test.
    let Some(chain) = Chain::new(
        "simultaneous_starts_let_exactly_one_go_first",
        &[("wait_time: 5s", "wait_time: 1s")],
    ) else {
        return;
    };
    simultaneous_starts(&chain, ("backup_a", "backup_a_to_backup_b"), 12);
}

/// (7) The second hop as a pull: backup_b's `backup_b_from_backup_a` (examples/chain/
/// backup_b_pull.yaml) fetches from backup_a through `backupmanager gate`, which restricts
/// backup_b's key there; its lock lives on backup_a where the desktop's instance blocks on it.
/// The same simultaneous starts as (6), fewer of them: still exactly one goes first, no overlap,
/// and the gate logged the lock operations and the rsync sender it allowed.
#[test]
fn a_pull_hop_through_the_gate_keeps_the_chain_exclusive() {
    let Some(chain) = Chain::new(
        "a_pull_hop_through_the_gate_keeps_the_chain_exclusive",
        &[("wait_time: 5s", "wait_time: 1s")],
    ) else {
        return;
    };
    let view = chain.bed.view().display().to_string();
    let sock = chain.bed.root.join("gate.sock");
    let log = support::gate::collect(std::os::unix::net::UnixDatagram::bind(&sock).unwrap());
    // One client key serves the whole bed: from backup_b's address it is gated, from anywhere
    // else it is the plain key (sshd takes the first line whose options allow the connection).
    let keys = chain.bed.root.join("keys/authorized_keys");
    let plain = fs::read_to_string(&keys).unwrap();
    let key = plain.lines().next().unwrap().to_string();
    let b = chain.bed.host("backup_b").addr.clone();
    fs::write(
        &keys,
        format!(
            "from=\"{b}\",command=\"{BIN} gate --read-only {view}/srv/backup/desktop --allow-locks {view}/run/locks --syslog-socket {}\",restrict {key}\nfrom=\"!{b},*\" {key}\n",
            sock.display()
        ),
    )
    .unwrap();
    let gated = chain
        .bed
        .ssh("backup_b", "backup_a", "id")
        .output()
        .unwrap();
    assert!(
        !gated.status.success()
            && String::from_utf8_lossy(&gated.stderr).contains("backupmanager gate: refused:"),
        "backup_b's key is not gated on backup_a: {gated:?}"
    );
    simultaneous_starts(&chain, ("backup_b", "backup_b_from_backup_a"), 4);
    std::thread::sleep(Duration::from_millis(200));
    let all = log.lock().unwrap().join("\n");
    for want in [
        "refused: only rsync senders",
        "allowed: lock create",
        "allowed: lock observe",
        "allowed: lock release",
        "allowed: rsync sender",
    ] {
        assert!(all.contains(want), "the gate never logged {want:?}:\n{all}");
    }
}

/// `iterations` times, `run-job` of the desktop's job and of `second` (host, job) released
/// together: both succeed, their rsyncs do not overlap, and what landed says who went first.
fn simultaneous_starts(chain: &Chain, second: (&'static str, &str), iterations: u32) {
    let (second_host, second_job) = second;
    let mut gens = vec![chain.new_generation(0, 4096)];
    chain.seed_backup_a();
    let mut watch_b = SeriesWatch::new(chain, "backup_b", B_SERIES);
    let mut first = BTreeMap::<&str, u32>::new();
    let mut collided = 0;
    for i in 0..iterations {
        gens.push(chain.new_generation(i + 1, 4096));
        let mut children = Vec::new();
        for (host, job) in [
            ("desktop", "desktop_to_backup_a"),
            (second_host, second_job),
        ] {
            let log = chain.logs.join(format!("run-{i}-{host}.log"));
            let mut c = chain.bed.command(host, "sh");
            // Both wait on their stdin; one write to each releases them together.
            c.arg("-c")
                .arg(r#"read -r go || { echo "barrier: no go ($?)" >&2; exit 99; }; exec "$@""#)
                .arg("sh")
                .arg(BIN)
                .args(["--log-format", "json", "run-job", job, "-c"])
                .arg(chain.cfg(host))
                .stdin(std::process::Stdio::piped())
                .stdout(fs::File::create(&log).unwrap())
                .stderr(fs::OpenOptions::new().append(true).open(&log).unwrap());
            children.push((host, log, c.spawn().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(300));
        // Same instant, or the second up to 120 ms later: sweeps the window in which desktop's
        // two lock creations (one over ssh) interleave with the second's create and check.
        let stagger = Duration::from_millis(40 * u64::from(i % 4));
        for (host, _, c) in &mut children {
            use std::io::Write;
            if *host == second_host {
                std::thread::sleep(stagger);
            }
            c.stdin.take().unwrap().write_all(b"go\n").unwrap();
        }
        let mut ivs = BTreeMap::new();
        let mut waited = 0;
        for (host, log, mut c) in children {
            let deadline = Instant::now() + Duration::from_secs(120);
            let st = loop {
                watch_b.poll();
                if let Some(st) = c.try_wait().unwrap() {
                    break st;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    panic!("iteration {i}: {host}'s run-job hangs:\n{}", tail(&log));
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            assert!(
                st.success(),
                "iteration {i}: {host}'s run failed ({st}):\n{}",
                tail(&log)
            );
            let evs = events(&log);
            waited += evs.iter().any(is_wait) as u32;
            let iv = intervals(&evs, &[]);
            assert_eq!(iv.len(), 1, "iteration {i}: {host}: {iv:?}");
            assert!(iv[0].ok);
            ivs.insert(host, iv[0].clone());
        }
        assert_no_overlap(&[ivs["desktop"].clone()], &[ivs[second_host].clone()]);
        let winner = if ivs["desktop"].start < ivs[second_host].start {
            "desktop"
        } else {
            second_host
        };
        *first.entry(winner).or_default() += 1;
        // desktop's snapshot of this iteration's generation (i + 1) is backup_a's latest;
        // backup_b's latest is that one if desktop went first, else the one before (i).
        let (on_a, on_b) = (
            chain.latest("backup_a", A_SERIES),
            chain.latest("backup_b", B_SERIES),
        );
        let i = i as usize;
        assert!(
            on_a == gens[i + 1],
            "iteration {i}: backup_a's latest holds {}",
            describe(&on_a)
        );
        let want = if winner == "desktop" { i + 1 } else { i };
        assert!(
            on_b == gens[want],
            "iteration {i}: {winner} went first, backup_b's latest holds {}, expected {}",
            describe(&on_b),
            describe(&gens[want])
        );
        collided += (waited > 0) as u32;
    }
    eprintln!("went first: {first:?}; iterations where one waited: {collided}/{iterations}");
    assert!(collided > 0, "the runs never met; nothing was tested");
    assert!(!chain.fs("backup_a").join(D_LOCK).exists());
    assert!(!chain.fs("backup_a").join(A_LOCK).exists());
    assert!(!chain.fs("desktop").join(D_LOCK).exists());
}
