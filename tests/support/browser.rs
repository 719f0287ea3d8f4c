//! [`Browser`]: a real headless Chromium (Debian's `chromium`, installed by scripts/deps.sh)
//! driven over the DevTools protocol on `--remote-debugging-pipe`: commands go to its fd 3 and
//! answers come from its fd 4, each a JSON object ended by a NUL byte. No websocket, no crate.
//!
//! Only what the tests need: open a page, evaluate an expression, save a screenshot. Dropping
//! it kills the browser's process group (by pid) and reaps it.
//!
//! Must not: load anything but 127.0.0.1 pages the test serves.
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    child: Child,
    to: fs::File,
    from: BufReader<fs::File>,
    next_id: u64,
    session: Option<String>,
}

impl Browser {
    /// Starts Chromium with its profile in `profile` (a scratch directory). Panics with the
    /// install hint when it is missing.
    pub fn start(profile: &Path) -> Browser {
        assert!(
            Path::new(CHROMIUM).is_file(),
            "the page tests need {CHROMIUM}: run scripts/deps.sh (apt-get install chromium)"
        );
        let (cmd_r, cmd_w) = nix::unistd::pipe().unwrap();
        let (resp_r, resp_w) = nix::unistd::pipe().unwrap();
        let (a, b) = (cmd_r.as_raw_fd(), resp_w.as_raw_fd());
        let mut c = Command::new(CHROMIUM);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
        unsafe {
            c.pre_exec(move || {
                use nix::libc;
                // Move both ends above 4 first, so dup2 onto 3 and 4 cannot clobber either.
                let a2 = libc::fcntl(a, libc::F_DUPFD, 10);
                let b2 = libc::fcntl(b, libc::F_DUPFD, 10);
                if a2 < 0 || b2 < 0 || libc::dup2(a2, 3) < 0 || libc::dup2(b2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c.spawn().expect("spawn chromium");
        drop((cmd_r, resp_w));
        Browser {
            child,
            to: fs::File::from(cmd_w),
            from: BufReader::new(fs::File::from(resp_r)),
            next_id: 1,
            session: None,
        }
    }

    /// Sends one command (to the attached page when there is one) and returns its `result`.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            if !method.starts_with("Target.") && !method.starts_with("Browser.") {
                msg["sessionId"] = json!(s);
            }
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        loop {
            let mut buf = Vec::new();
            let n = self
                .from
                .read_until(0, &mut buf)
                .expect("read from chromium");
            assert!(n > 0, "chromium closed its pipe");
            buf.pop();
            let v: Value = serde_json::from_slice(&buf).unwrap();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Opens `url` in a new tab and waits until the document has loaded.
    pub fn open(&mut self, url: &str) {
        let t = self.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = t["targetId"].as_str().unwrap().to_string();
        let s = self.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        self.session = Some(s["sessionId"].as_str().unwrap().to_string());
        self.call("Page.enable", json!({}));
        self.call("Page.navigate", json!({"url": url}));
        super::wait_until(Duration::from_secs(30), "the page to load", || {
            self.eval("document.readyState") == "complete"
        });
    }

    /// The value of `expr` in the page.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// Saves a PNG of the page to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64(r["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        // Its renderers and helpers: its process group (process_group(0) above) and anything
        // below it that left the group.
        let pid = self.child.id();
        let tree = super::procfs::descendants(pid);
        let _ = kill(Pid::from_raw(-(pid as i32)), Signal::SIGKILL);
        let _ = self.child.wait();
        for p in tree {
            if super::procfs::pid_alive(p) {
                let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
            }
        }
    }
}

/// Standard base64 (the screenshot's encoding).
fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for ch in bytes.chunks(4) {
        let n = ch
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &v)| n | (u32::from(v) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..ch.len()]);
    }
    out
}
