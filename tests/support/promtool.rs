//! `promtool check metrics` (Debian package `prometheus`; scripts/deps.sh installs it): the
//! exposition format checked by Prometheus's own tool.
use std::io::Write;
use std::process::{Command, Stdio};

/// Checks `text` with `promtool check metrics`; panics with its complaint.
pub fn promtool_check(text: &str) {
    let mut c = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`; scripts/deps.sh installs it)");
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
