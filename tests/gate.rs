//! `backupmanager gate` as the forced command of a real sshd on 127.0.0.1: what the restricted
//! key can do (pull with rsync, the lock protocol, a declared dump) and everything it cannot
//! (a shell command, a push, --delete toward the client, paths outside the roots, `..` and
//! symlink escapes, -L and -s, a lock outside --allow-locks, shell metacharacters), each
//! refused with a reason on stderr and a syslog line, and with nothing changed on the client.
mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use backupmanager::lock::{Created, Identity, LockBackend, Record, RemoteFiles};
use backupmanager::transport::{SshTransport, Transport};
use support::gate::Gated;
use support::*;

/// `rsync ARGS` through the gated key.
fn rsync(g: &Gated, args: &[&str]) -> Output {
    Command::new("rsync")
        .arg("-e")
        .arg(g.rsh())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rsync")
}

/// The client's data: a root with a file, a nested dir, a symlink out of the root, and a
/// secret outside it.
fn client(t: &Scratch) {
    fs::create_dir_all(t.p("root/sub")).unwrap();
    fs::write(t.p("root/a.txt"), "alpha\n").unwrap();
    fs::write(t.p("root/sub/b.txt"), "beta\n").unwrap();
    fs::create_dir_all(t.p("secret")).unwrap();
    fs::write(t.p("secret/key"), "TOP SECRET\n").unwrap();
    symlink(t.p("secret"), t.p("root/out")).unwrap();
    fs::create_dir_all(t.p("locks")).unwrap();
}

fn refused_and_logged(g: &Gated, out_stderr: &str, why: &str) {
    assert!(
        out_stderr.contains("backupmanager gate: refused:") && out_stderr.contains(why),
        "stderr should refuse with {why:?}:\n{out_stderr}"
    );
    let logged = g.logged();
    assert!(
        logged.iter().any(|l| l.starts_with("<36>")
            && l.contains(" backupmanager-gate[")
            && l.contains("refused:")
            && l.contains(why)),
        "syslog should say refused ({why:?}): {logged:?}"
    );
}

fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path().display().to_string());
            if e.file_type().unwrap().is_dir() {
                out.extend(all_files(&e.path()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_gated_key_reads_the_roots_and_does_nothing_else() {
    require_root_tools();
    let t = Scratch::short("bmg");
    client(&t);
    let root = t.s("root");
    let locks = t.s("locks");
    let g = Gated::start(&[
        "--read-only",
        &root,
        "--allow-locks",
        &locks,
        "--allow-dump",
        "hello=/bin/echo hello from the client",
    ]);
    assert!(g.line.starts_with("command=\"") && g.line.contains(",restrict ssh-ed25519 "));
    let _ = g.logged();

    // Allowed: a pull of the root. The symlink arrives as a symlink, never as the secret.
    let back = t.p("back");
    let out = rsync(
        &g,
        &[
            "-a",
            "--",
            &g.operand(format!("{root}/")),
            back.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(back.join("sub/b.txt")).unwrap(),
        "beta\n"
    );
    assert_eq!(fs::read_link(back.join("out")).unwrap(), t.p("secret"));
    assert!(g
        .logged()
        .iter()
        .any(|l| l.starts_with("<37>") && l.contains("allowed: rsync sender")));

    // The root named without a trailing slash arrives as a directory of that name.
    let named = t.p("named");
    let out = rsync(
        &g,
        &["-a", "--", &g.operand(&root), named.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(named.join("root/a.txt")).unwrap(),
        "alpha\n"
    );

    // Allowed: the declared dump, by name.
    let out = g.request("dump hello");
    assert_eq!(out.status, 0);
    assert_eq!(out.stdout_lossy(), "hello from the client\n");

    // Allowed: a tar stream of the root; the symlink is stored as a symlink.
    let out = g.request(&format!("tar {root}"));
    assert_eq!(out.status, 0, "{}", out.stderr_lossy());
    let mut list = Command::new("tar")
        .args(["--list", "--verbose", "--file=-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    list.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let listed = String::from_utf8_lossy(&list.wait_with_output().unwrap().stdout).into_owned();
    assert!(listed.contains("./sub/b.txt"), "{listed}");
    assert!(
        listed.contains(&format!("./out -> {}", t.s("secret"))),
        "{listed}"
    );
    assert!(!listed.contains("key"), "{listed}");
    for (cmd, why) in [
        ("tar /etc".to_string(), "outside the allowed directories"),
        (format!("tar {root}/out"), "through a symlink"),
        (format!("tar {root} /etc"), "only rsync senders"),
    ] {
        let out = g.request(&cmd);
        assert!(out.stdout.is_empty(), "{cmd}");
        refused_and_logged(&g, &out.stderr_lossy(), why);
    }

    let before = all_files(t.path());

    // A shell command.
    let out = g.request("id");
    assert_ne!(out.status, 0);
    assert!(!out.stdout_lossy().contains("uid="));
    refused_and_logged(&g, &out.stderr_lossy(), "only rsync senders");

    // A push (an rsync receiver), with and without --delete toward the client.
    fs::create_dir_all(t.p("pushme")).unwrap();
    fs::write(t.p("pushme/evil.txt"), "evil\n").unwrap();
    for opts in [&["-a"][..], &["-a", "--delete"][..]] {
        let mut args = opts.to_vec();
        let src = format!("{}/", t.s("pushme"));
        let dst = g.operand(format!("{root}/"));
        args.extend(["--", src.as_str(), dst.as_str()]);
        let out = rsync(&g, &args);
        assert!(!out.status.success());
        refused_and_logged(&g, &String::from_utf8_lossy(&out.stderr), "receiver");
    }
    // The raw server command of a --delete push.
    let out = g.request(&format!(
        "rsync --server -logDtpre.iLsfxCIvu --delete . {root}/"
    ));
    refused_and_logged(&g, &out.stderr_lossy(), "receiver");
    // --delete sent to a sender (no rsync client does this; the gate refuses it anyway).
    let out = g.request(&format!(
        "rsync --server --sender -logDtpre.iLsfxCIvu --delete . {root}/"
    ));
    refused_and_logged(&g, &out.stderr_lossy(), "--delete");

    // Paths outside the roots, `..`, a symlink out of a root, a sibling with the root's prefix.
    let dump = t.p("dump");
    for (path, why) in [
        ("/etc/".to_string(), "outside the allowed directories"),
        (format!("{root}/../secret/"), "`..`"),
        (format!("{root}/out/"), "through a symlink"),
        (format!("{root}/out/key"), "through a symlink"),
        (format!("{root}x/"), "outside the allowed directories"),
    ] {
        let out = rsync(&g, &["-a", "--", &g.operand(&path), dump.to_str().unwrap()]);
        assert!(!out.status.success(), "{path}");
        refused_and_logged(&g, &String::from_utf8_lossy(&out.stderr), why);
    }
    // Options that would follow symlinks out, or hide the paths from the gate.
    for (opt, why) in [
        ("-L", "-L/--copy-links"),
        ("--copy-unsafe-links", "copy-unsafe-links"),
        ("-k", "-k/--copy-dirlinks"),
        ("-s", "-s/--protect-args"),
        ("--remove-source-files", "remove-source-files"),
    ] {
        let out = rsync(
            &g,
            &[
                "-a",
                opt,
                "--",
                &g.operand(format!("{root}/")),
                dump.to_str().unwrap(),
            ],
        );
        assert!(!out.status.success(), "{opt}");
        refused_and_logged(&g, &String::from_utf8_lossy(&out.stderr), why);
    }
    assert!(!dump.join("key").exists() && !dump.join("out/key").exists());

    // Shell metacharacters in SSH_ORIGINAL_COMMAND.
    let pwned = t.p("pwned");
    for cmd in [
        format!(
            "rsync --server --sender -logDtpre.iLsfxCIvu . {root}/; touch {}",
            pwned.display()
        ),
        format!(
            "rsync --server --sender -logDtpre.iLsfxCIvu . {root}/$(touch {})",
            pwned.display()
        ),
        format!(
            "rsync --server --sender -logDtpre.iLsfxCIvu . {root}/`touch {}`",
            pwned.display()
        ),
        format!(
            "rsync --server --sender -logDtpre.iLsfxCIvu . {root}/ | touch {}",
            pwned.display()
        ),
        format!(
            "rsync --server --sender -logDtpre.iLsfxCIvu . {root}/\ntouch {}",
            pwned.display()
        ),
        format!("dump hello && touch {}", pwned.display()),
    ] {
        let out = g.request(&cmd);
        assert_ne!(out.status, 0, "{cmd}");
        refused_and_logged(&g, &out.stderr_lossy(), "refused");
    }
    assert!(!pwned.exists(), "a shell ran");

    // Lock operations: the protocol works below --allow-locks, and nowhere else.
    let transport: Arc<dyn Transport> =
        Arc::new(SshTransport::new(g.sshd.target(), g.ssh_config()).unwrap());
    let backend = RemoteFiles { transport };
    let me = Identity::current();
    let rec = Record::new(&me, "gated", "run-1", std::time::Duration::from_secs(600));
    let inside = format!("{locks}/sub dir/gated.lock");
    assert_eq!(backend.try_create(&inside, &rec).unwrap(), Created::Yes);
    assert!(backend.observe(&inside).unwrap().is_some());
    assert!(backend.refresh_if_token(&inside, &rec.token).unwrap());
    assert!(backend.release_if_token(&inside, &rec.token).unwrap());
    assert!(backend.observe(&inside).unwrap().is_none());
    for outside in [
        t.s("elsewhere/gated.lock"),
        format!("{locks}/../gated.lock"),
        format!("{root}/gated.lock"),
    ] {
        let e = backend.try_create(&outside, &rec).unwrap_err().to_string();
        assert!(e.contains("refused"), "{e}");
        assert!(backend.observe(&outside).is_err(), "{outside}");
    }
    assert!(!t.p("elsewhere").exists() && !t.p("gated.lock").exists());
    assert!(!t.p("root/gated.lock").exists());
    let logged = g.logged().join("\n");
    assert!(logged.contains("--allow-locks"), "{logged}");

    // Nothing on the client changed, apart from what the tests above made on purpose.
    let mut after = all_files(t.path());
    after.retain(|p| {
        !p.starts_with(&t.s("back"))
            && !p.starts_with(&t.s("locks"))
            && !p.starts_with(&t.s("pushme"))
    });
    let mut before = before;
    before.retain(|p| !p.starts_with(&t.s("back")) && !p.starts_with(&t.s("locks")));
    assert_eq!(after, before);
}

/// Without SSH_ORIGINAL_COMMAND (an interactive login) the gate refuses and logs.
#[test]
fn no_command_is_refused() {
    let t = Scratch::short("bmgn");
    let sock = t.p("log");
    let log = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    let out = Command::new(BIN)
        .args(["gate", "--read-only", "/usr/share", "--syslog-socket"])
        .arg(&sock)
        .env_remove("SSH_ORIGINAL_COMMAND")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interactive login is refused"));
    let mut buf = [0u8; 1024];
    let n = log.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("refused: no command"));
}

/// The gate is at least as strict as `rrsync -ro` (rsync's own restricted-rsync script, in
/// Debian's rsync package): every request rrsync refuses, the gate refuses too. The requests:
/// every single-letter option in the option cluster, every long option rrsync knows (from its
/// own table, with a value where it takes one), a receiver, `..`, a symlink out of the root, a
/// path outside it, a glob, and shell text. rrsync takes paths relative to its directory, the
/// gate absolute ones, so `{P}` stands for the root in each. Both run without ssh here: the
/// gate executes /bin/true for what it allows, rrsync the real rsync (which then finds no
/// client on stdin and exits).
#[test]
fn at_least_as_strict_as_rrsync_ro() {
    let rrsync = Path::new("/usr/bin/rrsync");
    assert!(
        rrsync.exists(),
        "/usr/bin/rrsync is missing: install Debian's rsync package (scripts/deps.sh)"
    );
    let t = Scratch::short("bmgr");
    client(&t);
    let root = t.s("root");
    let table = fs::read_to_string(rrsync).unwrap();
    let mut cases: Vec<String> = Vec::new();
    for c in ('A'..='Z').chain('a'..='z').chain(['@', '0']) {
        cases.push(format!(
            "rsync --server --sender -{c}logDtpre.iLsfxCIvu . {{P}}/sub/"
        ));
    }
    for line in table.lines() {
        let l = line.trim();
        let Some((name, kind)) = l
            .strip_prefix('\'')
            .and_then(|r| r.split_once("': "))
            .map(|(n, k)| (n.to_string(), k.trim_end_matches(',').to_string()))
        else {
            continue;
        };
        let opt = match kind.as_str() {
            "0" | "-1" => format!("--{name}"),
            _ => format!("--{name}={{P}}/sub"),
        };
        cases.push(format!(
            "rsync --server --sender -logDtpre.iLsfxCIvu {opt} . {{P}}/sub/"
        ));
    }
    assert!(cases.len() > 100, "rrsync's option table was not read");
    cases.extend([
        "rsync --server -logDtpre.iLsfxCIvu . {P}/sub/".to_string(),
        "rsync --server -logDtpre.iLsfxCIvu --delete . {P}/sub/".to_string(),
        "rsync --server --sender -logDtpre.iLsfxCIvu . {P}/../secret/".to_string(),
        "rsync --server --sender -logDtpre.iLsfxCIvu . {P}/out/".to_string(),
        "rsync --server --sender -logDtpre.iLsfxCIvu . {P}/out/key".to_string(),
        "rsync --server --sender -logDtpre.iLsfxCIvu . {P}/s*/".to_string(),
        "rsync --server --sender -logDtpre.iLsfxCIvu . {P}/sub/; id".to_string(),
        "rsync --server --sender -slogDtpre.iLsfxCIvu".to_string(),
        "rsync --daemon".to_string(),
        "sh -c id".to_string(),
        "id".to_string(),
    ]);
    let mut rr_refused = 0;
    let mut only_gate = Vec::new();
    for case in &cases {
        let rr = Command::new(rrsync)
            .args(["-ro", &root])
            .env("SSH_ORIGINAL_COMMAND", case.replace("{P}", ""))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let rr_err = String::from_utf8_lossy(&rr.stderr);
        let rr_refuses = rr_err.contains("rrsync error:");
        let gate = Command::new(BIN)
            .args([
                "gate",
                "--read-only",
                &root,
                "--rsync",
                "/bin/true",
                "--syslog-socket",
            ])
            .arg(t.p("nolog"))
            .env("SSH_ORIGINAL_COMMAND", case.replace("{P}", &root))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let gate_err = String::from_utf8_lossy(&gate.stderr);
        let gate_refuses = gate_err.contains("backupmanager gate: refused:");
        assert_eq!(
            gate_refuses,
            !gate.status.success(),
            "{case}: the gate neither ran it nor refused it: {gate_err}"
        );
        if rr_refuses {
            rr_refused += 1;
            assert!(
                gate_refuses,
                "rrsync -ro refuses {case:?} ({rr_err}) but the gate allows it"
            );
        } else if gate_refuses {
            only_gate.push(case.clone());
        }
    }
    assert!(
        rr_refused > 10,
        "rrsync refused only {rr_refused} requests: is it working?"
    );
    eprintln!(
        "{} requests: rrsync -ro refused {rr_refused}, the gate all of those and {} more",
        cases.len(),
        only_gate.len()
    );
}
