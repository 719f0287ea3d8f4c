//! Locks and slots on a real 3-member etcd cluster on 127.0.0.1 (`lock_backend: etcd`), with
//! several `run-job` processes, each with its own config directory (its own host), copying with
//! real rsync slowed by `--bwlimit`. Intervals come from each process's JSON log (sync started
//! → done). Checked: no overlap per lock, never more than N per slot, every job finishes; a
//! holder killed with -9 frees its lock within the lease TTL; with the leader killed and a
//! second member stopped (no quorum) the holder stops its rsync and a waiter waits naming etcd,
//! then proceeds once quorum is back; a member cut off (network namespaces, `etcd_netns`) stops
//! the run that talks only to it before its lease expires, and a run on the healthy side takes
//! the lock only after that; `both` mode excludes a files-only job; `locks break` of a held key
//! stops its holder at once (its key guard sees the key gone) and a queued run then takes it.
//!
//! Needs etcd-server and etcd-client (scripts/deps.sh installs them); the tests panic with
//! instructions when they are missing.
mod support;

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use support::etcd::EtcdCluster;
use support::*;

const PREFIX: &str = "/bmtest";
/// Payload per run: at --bwlimit=128 (KiB/s) about 2.5 s of rsync.
const PAYLOAD: usize = 320 * 1024;
const BWLIMIT: &str = "--bwlimit=128";

/// One host: its own directory with a config, a source and a destination.
struct Host {
    dir: Scratch,
    cfg: PathBuf,
}

fn host(
    name: &str,
    cluster: &EtcdCluster,
    backend: &str,
    ttl: &str,
    slots: &[(&str, u32)],
    job: impl FnOnce(JobBuilder) -> JobBuilder,
    payload: usize,
) -> Host {
    host_on(
        name,
        &cluster.endpoints(),
        backend,
        ttl,
        slots,
        job,
        payload,
    )
}

/// As [`host`], with these etcd endpoints.
fn host_on(
    name: &str,
    endpoints: &[String],
    backend: &str,
    ttl: &str,
    slots: &[(&str, u32)],
    job: impl FnOnce(JobBuilder) -> JobBuilder,
    payload: usize,
) -> Host {
    let dir = Scratch::short(&format!("bm-etcd-{name}."));
    big_file(&dir.p("src/payload.bin"), payload);
    let j = job(JobBuilder::new("push").retries(0).sync(
        format!("{}/", dir.s("src")),
        dir.p("dest"),
        &["-a", BWLIMIT, "--whole-file"],
    ));
    let mut c = ConfigBuilder::in_scratch(&dir)
        .lock_backend(backend)
        .etcd(endpoints, ttl, PREFIX);
    if !slots.is_empty() {
        c = c.slots(slots);
    }
    let cfg = c.job(j).write(dir.p("bm.yaml"));
    Host { dir, cfg }
}

/// (start, end) of each sync 0 attempt in a log; an attempt still open ends at `open_end`.
fn intervals(bm: &Bm, open_end: Timestamp) -> Vec<(Timestamp, Timestamp)> {
    let mut out = Vec::new();
    let mut open: Option<Timestamp> = None;
    for e in bm.events() {
        let ts: Timestamp = match e["timestamp"].as_str().and_then(|t| t.parse().ok()) {
            Some(t) => t,
            None => continue,
        };
        let ev = field(&e, "event");
        if ev == "sync_started" {
            open = Some(ts);
        } else if open.is_some()
            && matches!(
                ev.as_str(),
                "sync_done" | "sync_retry" | "sync_stopped" | "run_end"
            )
        {
            out.push((open.take().unwrap(), ts));
        }
    }
    if let Some(s) = open {
        out.push((s, open_end));
    }
    out
}

/// A field of a JSON log line, at the top level or under `fields`.
fn field(e: &serde_json::Value, key: &str) -> String {
    e.get(key)
        .or_else(|| e.get("fields").and_then(|f| f.get(key)))
        .and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| Some(v.to_string()))
        })
        .unwrap_or_default()
}

/// The most intervals open at once.
fn max_concurrent(all: &[(Timestamp, Timestamp)]) -> usize {
    let mut points: Vec<(Timestamp, i32)> = Vec::new();
    for (s, e) in all {
        points.push((*s, 1));
        points.push((*e, -1));
    }
    // Ends before starts at the same instant: touching intervals do not overlap.
    points.sort_by_key(|(t, d)| (*t, *d));
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in points {
        now += d;
        max = max.max(now);
    }
    max as usize
}

fn all_intervals(bms: &[&Bm]) -> Vec<(Timestamp, Timestamp)> {
    bms.iter()
        .flat_map(|b| intervals(b, Timestamp::now()))
        .collect()
}

#[test]
fn locks_exclude_slots_count_and_every_job_finishes() {
    let cluster = EtcdCluster::start(3);
    // Three hosts push into backup_a: one lock key between them.
    let lockers: Vec<Host> = (0..3)
        .map(|i| {
            host(
                &format!("l{i}"),
                &cluster,
                "etcd",
                "5s",
                &[],
                |j| {
                    j.lock(
                        LockFile::remote("/locks/backup_a")
                            .on(&Remote::new("root", "backup_a", 22)),
                    )
                },
                PAYLOAD,
            )
        })
        .collect();
    // Four hosts share a slot of two.
    let slotted: Vec<Host> = (0..4)
        .map(|i| {
            host(
                &format!("s{i}"),
                &cluster,
                "etcd",
                "5s",
                &[("into_b", 2)],
                |j| j.uses_slots(&["into_b"]),
                PAYLOAD,
            )
        })
        .collect();
    let mut l: Vec<Bm> = lockers
        .iter()
        .map(|h| Bm::run_job(&h.cfg, "push", &[]))
        .collect();
    let mut s: Vec<Bm> = slotted
        .iter()
        .map(|h| Bm::run_job(&h.cfg, "push", &[]))
        .collect();
    for b in l.iter_mut().chain(s.iter_mut()) {
        let code = b.wait(LONG);
        assert_eq!(code, OK, "a job did not finish; its log:\n{}", b.log());
    }
    let li = all_intervals(&l.iter().collect::<Vec<_>>());
    let si = all_intervals(&s.iter().collect::<Vec<_>>());
    assert_eq!(li.len(), 3, "one rsync per locker: {li:?}");
    assert_eq!(si.len(), 4, "one rsync per slot user: {si:?}");
    assert_eq!(
        max_concurrent(&li),
        1,
        "two lock holders copied at once: {li:?}"
    );
    assert!(
        max_concurrent(&si) <= 2,
        "more than 2 in slot into_b: {si:?}"
    );
    // They did contend (otherwise the checks above prove nothing): someone waited, for the lock
    // key and for the slot, said so, and was woken by a watch, not by the 300 s backstop.
    assert!(
        l.iter().any(|b| b.saw("on etcd is held by job push")),
        "no locker waited:\n{}",
        l.iter().map(Bm::log).collect::<Vec<_>>().join("\n----\n")
    );
    assert!(
        s.iter().any(|b| b.saw("slot into_b is full")),
        "no slot user waited:\n{}",
        s.iter().map(Bm::log).collect::<Vec<_>>().join("\n----\n")
    );
    // Nothing is left behind.
    wait_until(Duration::from_secs(10), "every key released", || {
        cluster.keys(PREFIX).is_empty()
    });
    for h in lockers.iter().chain(&slotted) {
        assert!(h.dir.p("dest/payload.bin").is_file());
    }
}

/// The run failed because etcd stopped confirming its hold: its lease, or its keys (whichever
/// watchdog rule saw it first; with etcd away both go unconfirmed, each stops at TTL/2).
fn lost_its_hold(bm: &Bm) -> bool {
    bm.saw("etcd lease of this run was lost") || bm.saw("could not be proven ours for")
}

/// The first sync_started of a log, if any.
fn rsync_start(bm: &Bm) -> Option<Timestamp> {
    intervals(bm, Timestamp::now()).first().map(|(s, _)| *s)
}

#[test]
fn a_holder_killed_with_minus_9_frees_its_lock_within_the_lease_ttl() {
    let cluster = EtcdCluster::start(3);
    let lock = || LockFile::remote("/locks/backup_a").on(&Remote::new("root", "backup_a", 22));
    // About 40 s of rsync: killed long before it ends.
    let a = host(
        "a",
        &cluster,
        "etcd",
        "5s",
        &[],
        |j| j.lock(lock()),
        5 << 20,
    );
    let b = host(
        "b",
        &cluster,
        "etcd",
        "5s",
        &[],
        |j| j.lock(lock()),
        64 * 1024,
    );
    let mut ra = Bm::run_job(&a.cfg, "push", &[]);
    wait_until(LONG, "a's rsync to start", || ra.saw("sync 0 starting"));
    let mut rb = Bm::run_job(&b.cfg, "push", &[]);
    wait_until(LONG, "b to wait for a", || {
        rb.saw("on etcd is held by job push")
    });
    let killed = Timestamp::now();
    ra.kill9_tree();
    assert_eq!(rb.wait(LONG), OK, "b did not finish:\n{}", rb.log());
    let started = rsync_start(&rb).expect("b ran rsync");
    assert!(started > killed, "b started before a was killed");
    // The lease (5 s) expires, the watch wakes b. Wide margin: promptness, not speed.
    let after = started.duration_since(killed);
    assert!(
        after < jiff::SignedDuration::from_secs(5 + 20),
        "b started {after:?} after the kill, far beyond the 5 s lease:\n{}",
        rb.log()
    );
}

#[test]
fn without_quorum_the_holder_stops_and_a_waiter_waits_naming_etcd() {
    let mut cluster = EtcdCluster::start(3);
    let lock = || LockFile::remote("/locks/backup_a").on(&Remote::new("root", "backup_a", 22));
    let a = host(
        "a",
        &cluster,
        "etcd",
        "5s",
        &[],
        |j| j.lock(lock()),
        5 << 20,
    );
    let b = host(
        "b",
        &cluster,
        "etcd",
        "5s",
        &[],
        |j| j.lock(lock()),
        64 * 1024,
    );
    let mut ra = Bm::run_job(&a.cfg, "push", &[]);
    wait_until(LONG, "a's rsync to start", || ra.saw("sync 0 starting"));
    let mut rb = Bm::run_job(&b.cfg, "push", &[]);
    wait_until(LONG, "b to wait for a", || {
        rb.saw("on etcd is held by job push")
    });
    // kill -9 of the leader, and one more member stopped: one of three left, no quorum.
    let leader = cluster.leader();
    let other = (leader + 1) % 3;
    cluster.kill9(leader);
    cluster.stop(other);
    // a cannot renew its lease: it stops its rsync and fails, naming the lease.
    assert_eq!(ra.wait(LONG), FAILED, "a did not stop:\n{}", ra.log());
    assert!(lost_its_hold(&ra), "{}", ra.log());
    // b says etcd is unavailable, naming the endpoints, and starts nothing.
    let ep = &cluster.endpoints()[0];
    wait_until(LONG, "b to say etcd is unavailable", || {
        rb.messages()
            .iter()
            .any(|m| m.contains("etcd unavailable") && m.contains(ep.as_str()))
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        rsync_start(&rb).is_none(),
        "b ran rsync without quorum:\n{}",
        rb.log()
    );
    assert_eq!(rb.try_code(), None, "b gave up:\n{}", rb.log());
    // Quorum back: a's lease expires (it was stopped, never released), then b proceeds.
    cluster.restart(other);
    cluster.restart(leader);
    assert_eq!(rb.wait(LONG), OK, "b did not finish:\n{}", rb.log());
    let a_end = intervals(&ra, Timestamp::now())
        .last()
        .map(|(_, e)| *e)
        .expect("a ran rsync");
    let b_start = rsync_start(&rb).expect("b ran rsync");
    assert!(
        b_start > a_end,
        "b's rsync began before a's ended:\n{}\n----\n{}",
        ra.log(),
        rb.log()
    );
}

/// The holder talks only to m2; m2's namespace is cut off mid-rsync. The lease is observed on
/// the healthy side: the last read that still saw the holder's key bounds the lease's expiry
/// from below, so "stopped before that read" means stopped while the lease still lived.
#[test]
fn a_member_cut_off_stops_its_clients_before_their_lease_expires() {
    use support::etcd_netns::SplitCluster;
    let cluster = match SplitCluster::start() {
        Ok(c) => c,
        Err(support::netns::Unavailable(why)) => {
            let msg = format!("SKIPPED: cannot create network namespaces ({why})");
            assert!(std::env::var_os("CI").is_none(), "{msg} (CI is set)");
            eprintln!("{msg}");
            return;
        }
    };
    let lock = || LockFile::remote("/locks/backup_a").on(&Remote::new("root", "backup_a", 22));
    let key = format!("{PREFIX}/locks/backup_a:/locks/backup_a");
    // a: ~40 s of rsync through m2 only; b: a short one through m0 and m1.
    let (ttl, cut_ep) = (5, vec![cluster.cut_endpoint()]);
    let lease = format!("{ttl}s");
    let a = host_on(
        "a",
        &cut_ep,
        "etcd",
        &lease,
        &[],
        |j| j.lock(lock()),
        5 << 20,
    );
    let b = host_on(
        "b",
        &cluster.hub_endpoints(),
        "etcd",
        &lease,
        &[],
        |j| j.lock(lock()),
        64 * 1024,
    );
    let mut ra = Bm::run_job_in_netns(&cluster.cut, &a.cfg, "push", &[]);
    wait_until(LONG, "a's rsync to start", || ra.saw("sync 0 starting"));
    let mut rb = Bm::run_job_in_netns(&cluster.hub, &b.cfg, "push", &[]);
    wait_until(LONG, "b to wait for a", || {
        rb.saw("on etcd is held by job push")
    });
    let leader = cluster.leader_name();
    // a's record (b later puts its own under the same key).
    let held = cluster
        .hub_get(&key)
        .flatten()
        .expect("a's key on the hub side");
    let cut_at = Timestamp::now();
    cluster.set_link(false);
    // Until a's record is gone: the last instant before a read that still saw it.
    let mut alive_at = cut_at;
    wait_until(LONG, "a's key to expire on the healthy side", || {
        let before = Timestamp::now();
        let v = cluster.hub_get(&key);
        if v.as_ref().is_some_and(|v| v.as_ref() == Some(&held)) {
            alive_at = before;
        }
        std::thread::sleep(Duration::from_millis(50));
        v.is_some_and(|v| v.as_ref() != Some(&held))
    });
    let ctx = |ra: &Bm, rb: &Bm| {
        format!(
            "leader before the cut: {leader}; cut at {cut_at}, key last seen at {alive_at}\n\
             a:\n{}\n----\nb:\n{}\n----\n{}",
            ra.log(),
            rb.log(),
            cluster.logs()
        )
    };
    assert!(
        alive_at.duration_since(cut_at) < jiff::SignedDuration::from_secs(3 * ttl),
        "the lease outlived the cut by far more than its {ttl} s TTL: {}",
        ctx(&ra, &rb)
    );
    // a stopped its rsync while its lease was still alive, and failed naming etcd.
    let code = ra.wait(LONG);
    assert_eq!(code, FAILED, "a did not fail: {}", ctx(&ra, &rb));
    assert!(lost_its_hold(&ra), "{}", ctx(&ra, &rb));
    let ia = intervals(&ra, Timestamp::now());
    assert_eq!(ia.len(), 1, "a ran rsync once: {ia:?}");
    assert!(
        ia[0].1 < alive_at,
        "a's rsync ran until {} although its key (lease) was still seen at {alive_at}: {}",
        ia[0].1,
        ctx(&ra, &rb)
    );
    // b took the lock only once the lease had expired, and finished.
    let code = rb.wait(LONG);
    assert_eq!(code, OK, "b did not finish: {}", ctx(&ra, &rb));
    let ib = intervals(&rb, Timestamp::now());
    assert_eq!(ib.len(), 1, "b ran rsync once: {ib:?}");
    assert!(
        ib[0].0 > alive_at,
        "b's rsync began while a's key existed: {}",
        ctx(&ra, &rb)
    );
    let all = [ia, ib].concat();
    assert_eq!(max_concurrent(&all), 1, "a and b copied at once: {all:?}");
    assert!(b.dir.p("dest/payload.bin").is_file());
    cluster.set_link(true);
}

#[test]
fn both_mode_takes_etcd_and_files_and_excludes_a_files_only_host() {
    let cluster = EtcdCluster::start(3);
    let shared = Scratch::new("bm-etcd-shared.");
    let path = shared.p("locks/backup_a.lock");
    let x = host(
        "x",
        &cluster,
        "both",
        "5s",
        &[],
        |j| j.lock(LockFile::local(&path)),
        PAYLOAD,
    );
    let y = host(
        "y",
        &cluster,
        "files",
        "5s",
        &[],
        |j| j.lock(LockFile::local(&path)),
        PAYLOAD,
    );
    let mut rx = Bm::run_job(&x.cfg, "push", &[]);
    let mut ry = Bm::run_job(&y.cfg, "push", &[]);
    assert_eq!(rx.wait(LONG), OK, "{}", rx.log());
    assert_eq!(ry.wait(LONG), OK, "{}", ry.log());
    let all = all_intervals(&[&rx, &ry]);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(max_concurrent(&all), 1, "x and y copied at once: {all:?}");
    // x held the etcd key (named host:path) and the file; both are gone.
    let key = format!("{PREFIX}/locks/");
    assert!(
        rx.messages().iter().any(|m| m.contains("lock taken")
            && m.contains(&key)
            && m.contains(path.to_str().unwrap())),
        "{}",
        rx.log()
    );
    assert!(
        rx.saw(&format!("lock taken: {}", path.display())),
        "{}",
        rx.log()
    );
    assert!(!path.exists());
    assert!(cluster.keys(PREFIX).is_empty());
}

fn bm_cmd(cfg: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run backupmanager")
}

/// `locks break` of a lock key stops its holder at once (its watch sees the key gone): rsync
/// stopped, the run fails naming the key, nothing of it left in etcd; a waiter then takes it.
#[test]
fn locks_lists_holders_and_slots_and_break_stops_the_holder() {
    let cluster = EtcdCluster::start(3);
    let lock = || LockFile::remote("/locks/backup_a").on(&Remote::new("root", "backup_a", 22));
    let a = host(
        "a",
        &cluster,
        "etcd",
        "5s",
        &[("into_b", 1)],
        |j| j.lock(lock()).uses_slots(&["into_b"]),
        5 << 20,
    );
    let mut ra = Bm::run_job(&a.cfg, "push", &[]);
    wait_until(LONG, "a's rsync to start", || ra.saw("sync 0 starting"));
    // Another host's config sees the same fleet-wide view.
    let b = host("b", &cluster, "etcd", "5s", &[("into_b", 1)], |j| j, 1024);
    let out = bm_cmd(&b.cfg, &["locks", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let locks = v["etcd"]["locks"].as_array().unwrap();
    assert_eq!(locks.len(), 1, "{v}");
    assert_eq!(locks[0]["name"], "backup_a:/locks/backup_a");
    assert_eq!(locks[0]["record"]["job"], "push");
    assert_eq!(locks[0]["record"]["pid"], ra.pid());
    let slots = v["etcd"]["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 1, "{v}");
    assert_eq!(slots[0]["slot"], "into_b");
    assert_eq!(slots[0]["holding"], true);
    let text = String::from_utf8(bm_cmd(&b.cfg, &["locks"]).stdout).unwrap();
    assert!(
        text.contains("lock backup_a:/locks/backup_a  held by job push"),
        "{text}"
    );
    // A dry run of a job blocking on the key says who holds it, and takes nothing.
    let c = host(
        "c",
        &cluster,
        "etcd",
        "5s",
        &[],
        |j| {
            j.blocks_on(
                Blocker::remote("/locks/backup_a", "5m").on(&Remote::new("root", "backup_a", 22)),
            )
        },
        1024,
    );
    let mut dry = Bm::run_job(&c.cfg, "push", &["--dry-run"]);
    assert_eq!(dry.wait(LONG), OK, "{}", dry.log());
    assert!(
        dry.saw(
            "blocker /bmtest/locks/backup_a:/locks/backup_a on etcd: present, held by job push"
        ),
        "{}",
        dry.log()
    );
    // A waiter on the same lock and slot, queued behind a.
    let d = host(
        "d",
        &cluster,
        "etcd",
        "5s",
        &[("into_b", 1)],
        |j| j.lock(lock()).uses_slots(&["into_b"]),
        64 * 1024,
    );
    let mut rd = Bm::run_job(&d.cfg, "push", &[]);
    wait_until(LONG, "d to wait for a", || rd.saw("slot into_b is full"));
    // Without --yes and without a terminal nothing is removed.
    let out = bm_cmd(&b.cfg, &["locks", "break", "backup_a:/locks/backup_a"]);
    assert!(!out.status.success());
    assert_eq!(cluster.keys(&format!("{PREFIX}/locks/")).len(), 1);
    assert!(
        !ra.saw("sync_stopped") && ra.try_code().is_none(),
        "{}",
        ra.log()
    );
    let broke = Timestamp::now();
    let out = bm_cmd(
        &b.cfg,
        &["locks", "break", "backup_a:/locks/backup_a", "--yes"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("broke etcd key /bmtest/locks/backup_a:/locks/backup_a held by job push")
            && err.contains("that holder will stop its run"),
        "{err}"
    );
    // The holder stops rsync promptly (wide margin: 10 s) and fails naming the key.
    assert_eq!(ra.wait(Duration::from_secs(20)), FAILED, "{}", ra.log());
    let stopped = ra.time_of("the run was cancelled and rsync has ended");
    assert!(
        stopped.duration_since(broke) < jiff::SignedDuration::from_secs(10),
        "rsync stopped {:?} after the break:\n{}",
        stopped.duration_since(broke),
        ra.log()
    );
    assert!(
        ra.saw("etcd key /bmtest/locks/backup_a:/locks/backup_a was deleted"),
        "{}",
        ra.log()
    );
    // Its slot went with its lease; d takes both and copies only after a stopped.
    assert_eq!(rd.wait(LONG), OK, "d did not finish:\n{}", rd.log());
    let d_started = rsync_start(&rd).expect("d ran rsync");
    assert!(d_started >= stopped, "d's rsync began before a's stopped");
    assert!(d.dir.p("dest/payload.bin").is_file());
    assert!(
        cluster.keys(PREFIX).is_empty(),
        "{:?}",
        cluster.keys(PREFIX)
    );
}
