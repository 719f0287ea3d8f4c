//! The daemon's web status page and JSON API (`http:`), through real sockets: curl over the
//! unix socket and loopback TCP, every JSON endpoint against the shapes in docs/api.md, the
//! token and method rules, a real headless Chromium on the pages (screenshots kept in the
//! scratch directory, printed when BM_KEEP_TMP is set), and a bounded load during which a
//! scheduled run still starts on time.
mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::browser::Browser;
use support::curl::{curl, free_port};
use support::*;

const TOKEN: &str = "s3cret-token-0123456789";

fn tmp() -> Scratch {
    let t = Scratch::short("bmw");
    fs::create_dir_all(t.p("src")).unwrap();
    fs::write(t.p("src/file"), "data\n").unwrap();
    t
}

fn job(t: &Scratch, id: &str) -> JobBuilder {
    JobBuilder::new(id).cron_schedule("0 0 1 1 *").sync(
        t.s("src/"),
        t.s(&format!("dst-{id}/")),
        &["-a"],
    )
}

fn daemon(cfg: &Path) -> Bm {
    let d = Bm::spawn_verbose(cfg, &["daemon"]);
    wait_until(Duration::from_secs(30), "the daemon to start", || {
        d.full_log().contains("daemon started")
    });
    d
}

/// The keys of an object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

fn sorted(k: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = k.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The shape of a JSON value: objects by keys (recursively), arrays by their first element.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().take(1).map(shape).collect()),
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
    }
}

const RUN_KEYS: &[&str] = &[
    "run_id",
    "job",
    "trigger",
    "slot",
    "started",
    "lock_acquired",
    "wait_ms",
    "finished",
    "duration_ms",
    "outcome",
    "error_kind",
    "error",
    "exit_code",
    "files",
    "bytes",
    "total_size",
    "restore_points",
    "pid",
    "pid_start",
];

#[test]
fn the_api_over_a_unix_socket_and_loopback_tcp_matches_its_documented_shapes() {
    let t = tmp();
    let port = free_port();
    let tcp = format!("127.0.0.1:{port}");
    let good = job(&t, "good").yaml("hooks", "{before: [{run: [/bin/true]}]}");
    let bad = JobBuilder::new("bad")
        .cron_schedule("0 0 1 1 *")
        .lock_local(t.p("locks/bad.lock"))
        .sync(t.s("missing/"), t.s("dst-bad/"), &["-a"]);
    let cfg = ConfigBuilder::in_scratch(&t)
        .http(&["unix:http.sock", &tcp], None)
        .jobs([&good, &bad])
        .write(t.p("bm.yaml"));
    assert_eq!(Bm::run_job(&cfg, "good", &[]).wait(LONG), OK);
    assert_eq!(Bm::run_job(&cfg, "good", &[]).wait(LONG), OK);
    assert_eq!(Bm::run_job(&cfg, "bad", &[]).wait(LONG), FAILED);
    let d = daemon(&cfg);
    let sock = t.s("r/http.sock");
    let unix: &[&str] = &["--unix-socket", &sock];
    let base = format!("http://{tcp}");

    // /api/v1/status is `status --format json`: the same shape and the same jobs.
    for (via, url) in [(unix, "http://localhost"), (&[][..], base.as_str())] {
        let got = curl(via, &format!("{url}/api/v1/status"), &[]);
        assert_eq!(got.status, 200, "{}", got.body);
        assert_eq!(got.headers["content-type"], "application/json");
        let api = got.json();
        let out = Command::new(BIN)
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "status",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shape(&api), shape(&cli), "api {api}\ncli {cli}");
        assert_eq!(api["jobs"][0]["id"], "good");
        assert_eq!(api["jobs"][1]["id"], "bad");
        assert_eq!(api["check"], cli["check"]);
        assert_eq!(api["daemon"]["pid"], cli["daemon"]["pid"]);
    }
    let get = |path: &str| curl(&[], &format!("{base}{path}"), &[]);

    // /api/v1/jobs/{id}: the status entry and the job's configuration, without ssh settings.
    let j = get("/api/v1/jobs/bad").json();
    assert_eq!(keys(&j), sorted(&["status", "config"]));
    assert_eq!(j["status"]["id"], "bad");
    assert_eq!(
        keys(&j["config"]),
        sorted(&[
            "enabled",
            "cron_schedule",
            "mode",
            "host",
            "lock_files",
            "blocks_on",
            "syncs"
        ])
    );
    assert_eq!(j["config"]["lock_files"][0]["location"], "local");
    assert_eq!(j["config"]["lock_files"][0]["path"], t.s("locks/bad.lock"));
    assert_eq!(keys(&j["config"]["syncs"][0]), sorted(&["source", "dest"]));
    assert_eq!(get("/api/v1/jobs/nope").status, 404);

    // /api/v1/jobs/{id}/runs: pages by `before`, newest first.
    let p1 = get("/api/v1/jobs/good/runs?limit=1").json();
    assert_eq!(keys(&p1), sorted(&["job", "runs", "next_before"]));
    assert_eq!(keys(&p1["runs"][0]), sorted(RUN_KEYS));
    let first = p1["runs"][0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(p1["next_before"], first.as_str());
    let p2 = get(&format!("/api/v1/jobs/good/runs?limit=1&before={first}")).json();
    let second = p2["runs"][0]["run_id"].as_str().unwrap();
    assert_ne!(second, first);
    assert!(p2["runs"][0]["started"].as_str() <= p1["runs"][0]["started"].as_str());
    let p3 = get(&format!("/api/v1/jobs/good/runs?limit=5&before={second}")).json();
    assert_eq!(p3["runs"].as_array().unwrap().len(), 0, "{p3}");
    assert!(p3["next_before"].is_null());
    assert_eq!(get("/api/v1/jobs/good/runs?limit=0").status, 400);
    assert_eq!(get("/api/v1/jobs/good/runs?before=nope").status, 400);

    // /api/v1/runs/{id}: the row, its steps, whether it is active and where its log is.
    let r = get(&format!("/api/v1/runs/{first}")).json();
    let mut want: Vec<&str> = RUN_KEYS.to_vec();
    want.extend(["steps", "hooks", "active", "log"]);
    assert_eq!(keys(&r), sorted(&want));
    // Its hooks, as steps of the run.
    assert_eq!(r["hooks"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(
        keys(&r["hooks"][0]),
        sorted(&[
            "phase",
            "index",
            "command",
            "remote",
            "started",
            "finished",
            "duration_ms",
            "exit_code",
            "error",
            "fatal"
        ])
    );
    assert_eq!(r["hooks"][0]["phase"], "before");
    assert_eq!(r["hooks"][0]["exit_code"], 0);
    assert_eq!(r["outcome"], "success");
    assert_eq!(r["active"], false);
    assert_eq!(
        keys(&r["steps"][0]),
        sorted(&[
            "sync",
            "started",
            "finished",
            "exit_code",
            "attempts",
            "files",
            "bytes"
        ])
    );
    assert_eq!(get("/api/v1/runs/nope").status, 404);

    // /api/v1/runs/{id}/log?offset=N: bytes from N, the next offset and whether it is active.
    let log = get(r["log"].as_str().unwrap());
    assert_eq!(log.status, 200);
    assert!(log.body.contains("run ended: "), "{}", log.body);
    assert_eq!(log.headers["x-log-offset"], "0");
    assert_eq!(log.headers["x-log-next-offset"], log.body.len().to_string());
    assert_eq!(log.headers["x-run-active"], "false");
    let tail = get(&format!("/api/v1/runs/{first}/log?offset=10"));
    assert_eq!(tail.body, log.body[10..]);
    let end = get(&format!(
        "/api/v1/runs/{first}/log?offset={}",
        log.body.len()
    ));
    assert_eq!(end.body, "");
    assert_eq!(
        get(&format!("/api/v1/runs/{first}/log?offset=x")).status,
        400
    );

    // /metrics: Prometheus text that promtool accepts, one sample per job per family.
    let m = get("/metrics");
    assert_eq!(m.status, 200, "{}", m.body);
    assert!(m.headers["content-type"].starts_with("text/plain; version=0.0.4"));
    for id in ["good", "bad"] {
        assert!(
            m.body.contains(&format!(
                "backupmanager_job_last_run_timestamp_seconds{{job=\"{id}\"}}"
            )),
            "{}",
            m.body
        );
    }
    assert!(
        m.body
            .contains("backupmanager_job_last_success_timestamp_seconds{job=\"good\"}"),
        "{}",
        m.body
    );
    promtool_check(&m.body);

    // /healthz, the pages, HEAD, 404, 405.
    let h = get("/healthz");
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let page = get("/");
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert!(page.headers["content-security-policy"].contains("default-src 'none'"));
    for id in ["good", "bad"] {
        assert!(
            page.body.contains(&format!("data-job=\"{id}\"")),
            "{}",
            page.body
        );
    }
    assert!(page.body.contains("<svg") && page.body.contains("<polyline"));
    assert!(get("/jobs/bad").body.contains(&t.s("locks/bad.lock")));
    let page = get(&format!("/runs/{first}")).body;
    assert!(page.contains("run ended: "));
    assert!(page.contains("before hook 0: exit 0"), "{page}");
    assert_eq!(get("/jobs/nope").status, 404);
    assert_eq!(get("/nope").status, 404);
    // HEAD: the GET's headers, no body (read raw: curl would not read one anyway).
    let mut s = TcpStream::connect(&tcp).unwrap();
    s.write_all(b"HEAD /api/v1/status HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(
        raw.starts_with("HTTP/1.1 200 OK\r\n") && raw.ends_with("\r\n\r\n"),
        "{raw}"
    );
    let len = raw
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap();
    assert!(len.parse::<usize>().unwrap() > 100, "{raw}");
    for m in ["POST", "PUT", "DELETE"] {
        let got = curl(&[], &format!("{base}/api/v1/status"), &["-X", m]);
        assert_eq!(got.status, 405, "{m}");
        assert_eq!(got.headers["allow"], "GET, HEAD");
    }
    let got = curl(unix, "http://localhost/", &["-X", "POST", "-d", "x=1"]);
    assert_eq!(got.status, 405);
    // Strict reading: an oversized head, a body on a GET, a folded header; each closes.
    let raw = |req: &[u8]| {
        let mut s = TcpStream::connect(&tcp).unwrap();
        let _ = s.write_all(req);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert!(raw(big.as_bytes()).starts_with("HTTP/1.1 431 "));
    let body = raw(b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    assert!(
        body.starts_with("HTTP/1.1 400 ") && body.contains("Connection: close"),
        "{body}"
    );
    assert!(raw(b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n").starts_with("HTTP/1.1 400 "));

    // The socket goes with the daemon.
    drop(d);
    assert!(!t.p("r/http.sock").exists());
}

#[test]
fn a_token_is_required_on_every_listener_when_configured() {
    let t = tmp();
    let port = free_port();
    let tcp = format!("127.0.0.1:{port}");
    fs::write(t.p("token"), format!("{TOKEN}\n")).unwrap();
    let cfg = ConfigBuilder::in_scratch(&t)
        .http(&["unix:http.sock", &tcp], Some(&t.p("token")))
        .job(job(&t, "good"))
        .write(t.p("bm.yaml"));
    let d = daemon(&cfg);
    let sock = t.s("r/http.sock");
    let right = format!("Authorization: Bearer {TOKEN}");
    let wrong = format!("Authorization: Bearer {TOKEN}x");
    for (via, url) in [
        (
            vec!["--unix-socket", sock.as_str()],
            "http://localhost".to_string(),
        ),
        (vec![], format!("http://{tcp}")),
    ] {
        for path in ["/api/v1/status", "/", "/healthz"] {
            let none = curl(&via, &format!("{url}{path}"), &[]);
            assert_eq!(none.status, 401, "{path}");
            assert_eq!(none.headers["www-authenticate"], "Bearer");
            assert!(!none.body.contains(TOKEN));
            assert_eq!(
                curl(&via, &format!("{url}{path}"), &["-H", &wrong]).status,
                401
            );
            let ok = curl(&via, &format!("{url}{path}"), &["-H", &right]);
            assert_eq!(ok.status, 200, "{path}");
            assert!(!ok.body.contains(TOKEN), "the token is never in a response");
        }
    }
    drop(d);

    // A port in use: the daemon does not start, and the socket it had bound is gone again.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().to_string();
    let cfg = ConfigBuilder::in_scratch(&t)
        .http(&["unix:http.sock", &taken], None)
        .job(job(&t, "good"))
        .write(t.p("busy.yaml"));
    let mut d = Bm::spawn(&cfg, &["daemon"]);
    assert_eq!(d.wait(LONG), 78, "{}", d.log());
    assert!(d.saw(&format!("cannot listen on {taken}")), "{}", d.log());
    assert!(!t.p("r/http.sock").exists());
    drop(busy);

    // A public address without a token: validate names the line, the daemon refuses.
    let bad = ConfigBuilder::in_scratch(&t)
        .http(&["0.0.0.0:1"], None)
        .job(job(&t, "good"))
        .write(t.p("public.yaml"));
    let out = Command::new(BIN)
        .args(["--config", bad.to_str().unwrap(), "validate"])
        .output()
        .unwrap();
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("public.yaml:") && err.contains("http.listen[0]"),
        "{err}"
    );
    assert!(err.contains("token_file"), "{err}");
}

/// The source of a job slow enough to watch: rsync copies 6 files at 32 KiB/s, naming each.
fn slow_source(t: &Scratch) -> PathBuf {
    let src = t.p("slow");
    fs::create_dir_all(&src).unwrap();
    for i in 0..6 {
        big_file(&src.join(format!("file-{i}")), 40 * 1024);
    }
    src
}

#[test]
fn in_a_browser_the_dashboard_lists_jobs_and_a_running_jobs_log_grows_until_polling_stops() {
    let t = tmp();
    let port = free_port();
    let tcp = format!("127.0.0.1:{port}");
    let src = slow_source(&t);
    let slow = JobBuilder::new("slow").cron_schedule("@reboot").sync(
        format!("{}/", src.display()),
        t.p("dst-slow/"),
        &["-a", "-v", "--bwlimit=32"],
    );
    // A snapshot job with one restore point, made before the daemon starts (which counts it).
    let snap = job(&t, "snap").snapshot(&[("keep_last", "3")]);
    let cfg = ConfigBuilder::in_scratch(&t)
        .http(&[&tcp], None)
        .jobs([&slow, &job(&t, "other"), &snap])
        .write(t.p("bm.yaml"));
    assert_eq!(Bm::run_job(&cfg, "snap", &[]).wait(LONG), OK);
    let d = daemon(&cfg);
    let base = format!("http://{tcp}");
    let mut run_id = String::new();
    wait_until(Duration::from_secs(30), "the slow run to start", || {
        let st = curl(&[], &format!("{base}/api/v1/status"), &[]).json();
        let j = &st["jobs"][0];
        match (j["state"].as_str(), j["run_id"].as_str()) {
            (Some("running"), Some(id)) => {
                run_id = id.to_string();
                true
            }
            _ => false,
        }
    });
    let shots = t.p("screenshots");
    fs::create_dir_all(&shots).unwrap();
    let mut b = Browser::start(&t.p("chromium"));

    b.open(&format!("{base}/"));
    let jobs = b.eval("[...document.querySelectorAll('tr.job')].map(e => e.dataset.job).join(',')");
    assert_eq!(jobs, "slow,other,snap");
    b.screenshot(&shots.join("dashboard.png"));

    b.open(&format!("{base}/runs/{run_id}"));
    let len = |b: &mut Browser| {
        b.eval("document.getElementById('log').textContent.length")
            .as_u64()
            .unwrap()
    };
    let first = len(&mut b);
    assert_eq!(b.eval("document.body.dataset.polling"), "on");
    wait_until(
        Duration::from_secs(60),
        "log lines to appear in the page",
        || len(&mut b) > first && b.eval("window.bmPolls").as_u64().unwrap() > 0,
    );
    assert_eq!(
        b.eval("document.getElementById('run-state').textContent"),
        "active"
    );
    b.screenshot(&shots.join("run-active.png"));

    wait_until(
        Duration::from_secs(90),
        "the page to stop polling after the run ends",
        || b.eval("document.body.dataset.polling") == "stopped",
    );
    let text = b.eval("document.getElementById('log').textContent");
    let text = text.as_str().unwrap();
    assert!(text.contains("run ended: "), "{text}");
    assert!(
        text.contains("file-5"),
        "rsync's lines reached the page: {text}"
    );
    // The page's log is the file, byte for byte: no line lost or doubled between polls.
    let file = curl(&[], &format!("{base}/api/v1/runs/{run_id}/log"), &[]).body;
    assert_eq!(text, file);
    wait_until(
        Duration::from_secs(10),
        "the page to show the outcome",
        || b.eval("document.getElementById('outcome').textContent") == "success",
    );
    let polls = b.eval("window.bmPolls");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(b.eval("window.bmPolls"), polls, "no request after the end");
    b.screenshot(&shots.join("run-ended.png"));

    // The restore-point count per job, as the daemon counted it (at its start and after each
    // run): in the API, then on the dashboard.
    wait_until(
        Duration::from_secs(10),
        "the restore points counted",
        || {
            curl(&[], &format!("{base}/api/v1/status"), &[]).json()["jobs"][2]["restore_points"]
                == 1
        },
    );
    b.open(&format!("{base}/"));
    let points = b.eval(
        "[...document.querySelectorAll('tr.job')].map(e => e.querySelector('td.points').textContent).join(',')",
    );
    assert_eq!(points, "-,-,1", "restore points per job on the dashboard");
    let page = curl(&[], &format!("{base}/jobs/snap"), &[]).body;
    assert!(
        page.contains("<span id=\"restore-points\">1</span> restore points"),
        "{page}"
    );
    for s in ["dashboard.png", "run-active.png", "run-ended.png"] {
        assert!(fs::metadata(shots.join(s)).unwrap().len() > 1000, "{s}");
    }
    if std::env::var_os("BM_KEEP_TMP").is_some() {
        drop(b);
        drop(d);
        eprintln!(
            "screenshots kept in {}",
            t.keep().join("screenshots").display()
        );
    }
}

fn rss_kib(pid: u32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// One keep-alive client: GET /api/v1/status (and now and then a page) until `until`.
/// Returns how many 200s it got.
fn client(addr: String, until: Instant) -> u64 {
    let mut ok = 0;
    let mut n = 0u64;
    while Instant::now() < until {
        let Ok(mut s) = TcpStream::connect(&addr) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        while Instant::now() < until {
            n += 1;
            let path = if n.is_multiple_of(10) {
                "/"
            } else {
                "/api/v1/status"
            };
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            if s.write_all(req.as_bytes()).is_err() {
                break;
            }
            match read_response(&mut s) {
                Some(200) => ok += 1,
                Some(_) => {}
                None => break,
            }
        }
    }
    ok
}

/// Reads one response (Content-Length framed); its status.
fn read_response(s: &mut TcpStream) -> Option<u16> {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))?
        .trim()
        .parse()
        .ok()?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    head.contains("Connection: keep-alive").then_some(status)
}

#[test]
fn under_load_a_scheduled_run_starts_on_time_and_memory_stays_bounded() {
    let t = tmp();
    let port = free_port();
    let tcp = format!("127.0.0.1:{port}");
    let minutely = job(&t, "minutely").cron_schedule("* * * * *");
    let mut jobs = vec![minutely];
    jobs.extend((0..20).map(|i| job(&t, &format!("idle-{i}"))));
    let cfg = ConfigBuilder::in_scratch(&t)
        .http(&[&tcp], None)
        .jobs(jobs.iter())
        .write(t.p("bm.yaml"));
    let d = daemon(&cfg);
    // Load from 5 s before the next minute until 5 s after it (10 s, 20 clients).
    let now = jiff::Timestamp::now();
    let next_minute = (now.as_second() / 60 + 1) * 60;
    let (mut slot_at, mut start_in) = (next_minute, next_minute - now.as_second() - 5);
    if start_in < 1 {
        start_in += 60;
        slot_at += 60;
    }
    std::thread::sleep(Duration::from_secs(start_in as u64));
    let before = rss_kib(d.pid());
    let until = Instant::now() + Duration::from_secs(10);
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let a = tcp.clone();
            std::thread::spawn(move || client(a, until))
        })
        .collect();
    let served: Vec<u64> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let after = rss_kib(d.pid());
    assert!(
        served.iter().all(|&n| n > 0),
        "every client was served: {served:?}"
    );
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB under load"
    );
    // The slot inside the load window started on time (a wide margin: never a speed test).
    let slot = jiff::Timestamp::from_second(slot_at).unwrap();
    let mut run = Value::Null;
    wait_until(
        Duration::from_secs(30),
        "the minutely run to be recorded",
        || {
            let runs = curl(&[], &format!("http://{tcp}/api/v1/jobs/minutely/runs"), &[]).json();
            let found = runs["runs"].as_array().into_iter().flatten().find(|r| {
                r["slot"]
                    .as_str()
                    .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                    == Some(slot)
            });
            run = found.cloned().unwrap_or(Value::Null);
            !run.is_null()
        },
    );
    let started: jiff::Timestamp = run["started"].as_str().unwrap().parse().unwrap();
    assert_eq!(run["trigger"], "schedule", "{run}");
    let late = started.duration_since(slot);
    assert!(
        late < jiff::SignedDuration::from_secs(5),
        "slot {slot} started {late:?} late under load"
    );
    drop(d);
}
