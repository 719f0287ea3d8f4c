//! Notifications end to end: `run-job` tells Healthchecks, ntfy, Uptime Kuma and a webhook
//! (all played by a loopback HTTP recorder started by the test) about start, success, failure
//! and recovery; a failing service is a warning that never fails the run, and no secret (ping
//! URL path, topic, token, header value) appears in the logs, the run log or `status`. HTTPS is
//! checked against a test CA made with openssl, trusted through `SSL_CERT_FILE` or an endpoint's
//! own `ca_file` only, behind a real TLS terminator (socat).
mod support;

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

const SECRETS: [&str; 5] = [
    "HCSECRET0001",
    "topicsecret",
    "KUMASECRET",
    "HOOKSECRET",
    "hdrsecret",
];
const TOKEN: &str = "tk_tokensecret";

fn tmp() -> Scratch {
    require_root_tools();
    let t = Scratch::short("bmn");
    fs::create_dir(t.p("r")).unwrap();
    fs::create_dir(t.p("src")).unwrap();
    fs::write(t.p("src/f"), "data").unwrap();
    fs::write(t.p("token"), format!("{TOKEN}\n")).unwrap();
    t
}

fn notify_yaml(base: &str, t: &Scratch) -> String {
    format!(
        "[{{healthchecks: {{ping_url: '{base}/ping/HCSECRET0001'}}}}, \
          {{ntfy: {{server: '{base}', topic: topicsecret, token_file: {token}}}}}, \
          {{uptime_kuma: {{push_url: '{base}/api/push/KUMASECRET?status=up&msg=OK&ping='}}}}, \
          {{webhook: {{url: '{base}/hook/HOOKSECRET', headers: {{authorization: 'Bearer hdrsecret'}}}}}}]",
        token = t.s("token")
    )
}

fn config(t: &Scratch, notify: &str, on: &str) -> std::path::PathBuf {
    ConfigBuilder::in_scratch(t)
        .job(
            JobBuilder::new("nj")
                .yaml("notify", notify)
                .yaml("notify_on", on)
                .sync(t.p("src/"), t.p("dst"), &["-a"]),
        )
        .write(t.p("bm.yaml"))
}

fn run(cfg: &Path, env: &[(&str, OsString)]) -> (i32, Bm) {
    let mut bm = Bm::spawn_env(cfg, &["run-job", "nj"], env);
    (bm.wait(LONG), bm)
}

/// The webhook's JSON bodies' `event`s, in order.
fn webhook_events(rec: &HttpRecorder) -> Vec<String> {
    rec.requests()
        .iter()
        .filter(|r| r.target.starts_with("/hook/"))
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            v["event"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn each_service_hears_start_success_failure_and_recovery() {
    let t = tmp();
    let rec = HttpRecorder::start();
    let cfg = config(
        &t,
        &notify_yaml(&rec.url(), &t),
        "[start, success, failure, recovered]",
    );

    // 1: success.
    let (code, bm) = run(&cfg, &[]);
    assert_eq!(code, OK, "{}", bm.log());
    let reqs = rec.requests();
    let targets: Vec<String> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    let hc: Vec<&String> = targets.iter().filter(|t| t.contains("/ping/")).collect();
    assert_eq!(hc.len(), 2, "{targets:#?}");
    assert!(
        hc[0].starts_with("POST /ping/HCSECRET0001/start?rid="),
        "{targets:#?}"
    );
    assert!(
        hc[1].starts_with("POST /ping/HCSECRET0001?rid="),
        "{targets:#?}"
    );
    let rid = |s: &str| s.split("rid=").nth(1).unwrap().to_string();
    assert_eq!(rid(hc[0]), rid(hc[1]), "one rid per run");
    let kuma: Vec<&String> = targets
        .iter()
        .filter(|t| t.contains("/api/push/"))
        .collect();
    assert_eq!(kuma.len(), 1, "{targets:#?}");
    assert!(
        kuma[0].starts_with("GET /api/push/KUMASECRET?status=up&msg="),
        "{targets:#?}"
    );
    let ntfy: Vec<_> = reqs.iter().filter(|r| r.target == "/topicsecret").collect();
    assert_eq!(ntfy.len(), 2, "{targets:#?}");
    assert_eq!(
        ntfy[0].header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert!(
        ntfy[1].header("title").unwrap().contains("nj success"),
        "{:?}",
        ntfy[1]
    );
    assert_eq!(webhook_events(&rec), ["start", "success"]);
    let hook = reqs
        .iter()
        .find(|r| r.target == "/hook/HOOKSECRET")
        .unwrap();
    assert_eq!(hook.header("authorization"), Some("Bearer hdrsecret"));
    assert_eq!(hook.header("content-type"), Some("application/json"));

    // 2: failure (the source is gone).
    rec.clear();
    fs::remove_dir_all(t.p("src")).unwrap();
    let (code, bm) = run(&cfg, &[]);
    assert_eq!(code, FAILED, "{}", bm.log());
    let targets: Vec<String> = rec
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert!(
        targets
            .iter()
            .any(|t| t.starts_with("POST /ping/HCSECRET0001/fail?rid=")),
        "{targets:#?}"
    );
    assert!(
        targets
            .iter()
            .any(|t| t.starts_with("GET /api/push/KUMASECRET?status=down")),
        "{targets:#?}"
    );
    assert_eq!(webhook_events(&rec), ["start", "failure"]);
    let body = rec
        .requests()
        .into_iter()
        .find(|r| r.target.starts_with("/ping/HCSECRET0001/fail"))
        .unwrap()
        .body;
    assert!(
        body.contains("failed"),
        "the failure ping carries the error: {body}"
    );

    // 3: success again: recovered.
    rec.clear();
    fs::create_dir(t.p("src")).unwrap();
    let (code, bm) = run(&cfg, &[]);
    assert_eq!(code, OK, "{}", bm.log());
    assert_eq!(webhook_events(&rec), ["start", "recovered"]);
}

/// Every file under `dir`, concatenated (logs, run logs, configs excluded).
fn all_output(t: &Scratch, bm: &Bm) -> String {
    let mut s = bm.full_log();
    let logs = t.p("state/logs/nj");
    for e in fs::read_dir(&logs).unwrap() {
        s.push_str(&fs::read_to_string(e.unwrap().path()).unwrap());
    }
    for args in [
        &["status", "--format", "json"][..],
        &["history", "--format", "json"][..],
    ] {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(t.p("bm.yaml"))
            .args(args)
            .output()
            .unwrap();
        s.push_str(&String::from_utf8_lossy(&out.stdout));
        s.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    s
}

#[test]
fn a_failing_service_is_a_warning_and_no_secret_is_ever_printed() {
    let t = tmp();
    let rec = HttpRecorder::start();
    rec.set_status(500);
    // One destination answering 500, one on a closed port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let notify = format!(
        "{}, {{webhook: {{url: 'http://127.0.0.1:{closed}/hook/HOOKSECRET'}}}}]",
        notify_yaml(&rec.url(), &t).trim_end_matches(']')
    );
    let cfg = config(&t, &notify, "[start, success, failure]");
    let (code, bm) = run(&cfg, &[]);
    assert_eq!(
        code,
        OK,
        "a failed notification never fails the run: {}",
        bm.log()
    );
    assert!(t.p("dst/f").exists());
    assert!(
        bm.saw(&format!("notification to webhook at {} failed", rec.url())),
        "{}",
        bm.log()
    );
    assert!(
        bm.saw(&format!(
            "notification to webhook at http://127.0.0.1:{closed} failed"
        )),
        "{}",
        bm.log()
    );
    assert!(
        bm.saw("notification to ntfy at http://127.0.0.1"),
        "{}",
        bm.log()
    );
    let everything = all_output(&t, &bm);
    for s in SECRETS.iter().chain([&TOKEN]) {
        assert!(
            !everything.contains(s),
            "secret {s:?} printed:\n{everything}"
        );
    }
}

/// openssl: a CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn make_certs(dir: &Path) {
    let sh = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=bm test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    sh(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// socat terminating TLS on a free port of 127.0.0.1, forwarding to `to`; killed on drop.
struct Tls(Child, u16);

impl Tls {
    fn start(dir: &Path, to: u16) -> Tls {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            ))
            .arg(format!("TCP:127.0.0.1:{to}"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (scripts/deps.sh installs it)");
        wait_until(Duration::from_secs(10), "socat listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Tls(child, port)
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn https_is_verified_against_the_configured_trust_store() {
    let t = tmp();
    fs::create_dir(t.p("pki")).unwrap();
    make_certs(&t.p("pki"));
    let rec = HttpRecorder::start();
    let tls = Tls::start(&t.p("pki"), rec.port());
    let notify = format!(
        "[{{webhook: {{url: 'https://127.0.0.1:{}/hook/HOOKSECRET'}}}}]",
        tls.1
    );
    let cfg = config(&t, &notify, "[success]");

    // The test CA is in no trust store: the certificate is refused, the run still succeeds.
    let (code, bm) = run(
        &cfg,
        &[(
            "SSL_CERT_FILE",
            t.p("pki/ca.pem").with_extension("missing").into(),
        )],
    );
    assert_eq!(code, OK, "{}", bm.log());
    assert!(
        bm.saw("notification to webhook at https://127.0.0.1"),
        "{}",
        bm.log()
    );
    assert!(webhook_events(&rec).is_empty(), "{:?}", rec.requests());

    // Trusted through SSL_CERT_FILE: delivered over TLS.
    let (code, bm) = run(&cfg, &[("SSL_CERT_FILE", t.p("pki/ca.pem").into())]);
    assert_eq!(code, OK, "{}", bm.log());
    assert!(!bm.saw("notification to webhook"), "{}", bm.log());
    assert_eq!(webhook_events(&rec), ["success"]);

    // Trusted through the endpoint's own `ca_file`, with no SSL_CERT_FILE: that endpoint is
    // told, and a second one without `ca_file` (same server) still refuses the certificate.
    let notify = format!(
        "[{{webhook: {{url: 'https://127.0.0.1:{p}/hook/WITHCA', ca_file: {ca}}}}}, \
          {{webhook: {{url: 'https://127.0.0.1:{p}/hook/NOCA'}}}}]",
        p = tls.1,
        ca = t.s("pki/ca.pem"),
    );
    let cfg = config(&t, &notify, "[success]");
    let mut bm = Bm::spawn_without(&cfg, &["run-job", "nj"], &["SSL_CERT_FILE", "SSL_CERT_DIR"]);
    assert_eq!(bm.wait(LONG), OK, "{}", bm.log());
    let targets: Vec<String> = rec.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(
        targets
            .iter()
            .filter(|t| t.starts_with("/hook/WITHCA"))
            .count(),
        1,
        "{targets:?}\n{}",
        bm.log()
    );
    assert!(!targets.iter().any(|t| t.contains("NOCA")), "{targets:?}");
    assert_eq!(
        bm.count("notification to webhook at https://127.0.0.1"),
        1,
        "one warning, for the endpoint without ca_file: {}",
        bm.log()
    );
}

#[test]
fn the_daemon_reports_an_overdue_job_and_writes_the_metrics_file_at_start() {
    let t = tmp();
    let rec = HttpRecorder::start();
    let prom = t.p("bm.prom");
    let cfg = ConfigBuilder::in_scratch(&t)
        .metrics_textfile(&prom)
        .job(
            JobBuilder::new("nj")
                .yaml(
                    "notify",
                    &format!("[{{webhook: {{url: '{}/hook/HOOKSECRET'}}}}]", rec.url()),
                )
                .yaml("notify_on", "[overdue]")
                .sync(t.p("src/"), t.p("dst"), &["-a"]),
        )
        .write(t.p("bm.yaml"));
    // A failed run and no success: overdue ("never succeeded") once the daemon looks.
    fs::remove_dir_all(t.p("src")).unwrap();
    let (code, bm) = run(&cfg, &[]);
    assert_eq!(code, FAILED, "{}", bm.log());
    assert!(
        webhook_events(&rec).is_empty(),
        "failure is not in notify_on"
    );
    fs::remove_file(&prom).unwrap();
    let daemon = Bm::spawn(&cfg, &["daemon"]);
    wait_until(Duration::from_secs(60), "the overdue notification", || {
        !webhook_events(&rec).is_empty()
    });
    assert_eq!(webhook_events(&rec), ["overdue"]);
    let body: serde_json::Value = serde_json::from_str(&rec.requests()[0].body).unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("never succeeded"),
        "{body}"
    );
    wait_until(Duration::from_secs(30), "the metrics file", || {
        prom.exists()
    });
    let text = fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("backupmanager_job_runs_total{job=\"nj\",outcome=\"failed\"} 1"),
        "{text}"
    );
    drop(daemon);
}
