//! One line per decision to the client's system log: a datagram in the syslog format to
//! `/dev/log` (journald and every syslog daemon listen there), facility `auth`, tag
//! `backupmanager-gate`. Refusals are warnings, allowed requests notices.
//!
//! Must not: fail or delay the gate's decision: the send never blocks (a syslog reader that
//! stalls must not hang a backup; the datagram is dropped), a log that cannot be written is said
//! on stderr, and a refusal stays a refusal.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// How long a logged command may be (it is the client's text).
const MAX_SHOWN: usize = 300;

/// The text of `cmd` safe for one log line (escaped, cut).
pub fn shown(cmd: &str) -> String {
    let mut s: String = cmd.escape_debug().collect();
    if s.len() > MAX_SHOWN {
        let mut cut = MAX_SHOWN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Sends `message` to the syslog socket at `socket`; `refused` picks the severity.
pub fn log(socket: &Path, refused: bool, message: &str) {
    // auth (4) * 8 + warning (4) or notice (5).
    let pri = 4 * 8 + if refused { 4 } else { 5 };
    // The layout glibc's syslog(3) writes (`<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG`), which
    // journald and rsyslog both read.
    let stamp = jiff::Zoned::now().strftime("%b %e %H:%M:%S").to_string();
    let line = format!(
        "<{pri}>{stamp} backupmanager-gate[{}]: {message}",
        std::process::id()
    );
    let sent = UnixDatagram::unbound().and_then(|s| {
        s.set_nonblocking(true)?;
        s.send_to(line.as_bytes(), socket)
    });
    if let Err(e) = sent {
        eprintln!(
            "backupmanager gate: cannot log to {}: {e}",
            socket.display()
        );
    }
}
