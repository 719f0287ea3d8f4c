//! `gate --print-authorized-keys-line`: the line to paste into the client's
//! `~/.ssh/authorized_keys`, with this very binary and these options as its forced command.
//!
//! Must not: write any file.

use super::GateArgs;
use crate::transport::shell_quote;

/// `command="…",restrict KEY` for `args` (the public key from `--key`).
pub fn line(exe: &str, args: &GateArgs, key: &str) -> String {
    let mut words = vec![shell_quote(exe), "gate".to_string()];
    for (flag, values) in [
        ("--read-only", &args.read_only),
        ("--allow-locks", &args.allow_locks),
    ] {
        for v in values {
            words.push(flag.into());
            words.push(shell_quote(&v.to_string_lossy()));
        }
    }
    for d in &args.allow_dump {
        words.push("--allow-dump".into());
        words.push(shell_quote(d));
    }
    for (flag, value) in [
        ("--rsync", &args.rsync),
        ("--syslog-socket", &args.syslog_socket),
    ] {
        if let Some(v) = value {
            words.push(flag.into());
            words.push(shell_quote(&v.to_string_lossy()));
        }
    }
    // Inside command="…" sshd reads only \" as an escape.
    let command = words.join(" ").replace('"', "\\\"");
    format!("command=\"{command}\",restrict {}", key.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn quotes_for_sh_and_sshd() {
        let args = GateArgs {
            read_only: vec![
                PathBuf::from("/srv/data"),
                PathBuf::from("/srv/my \"files\""),
            ],
            allow_locks: vec![PathBuf::from("/var/lib/backupmanager/locks")],
            allow_dump: vec!["db=/usr/bin/pg_dumpall -U postgres".into()],
            ..GateArgs::default()
        };
        assert_eq!(
            line("/usr/bin/backupmanager", &args, "ssh-ed25519 AAAA backup@server\n"),
            "command=\"/usr/bin/backupmanager gate --read-only /srv/data --read-only '/srv/my \\\"files\\\"' --allow-locks /var/lib/backupmanager/locks --allow-dump 'db=/usr/bin/pg_dumpall -U postgres'\",restrict ssh-ed25519 AAAA backup@server"
        );
    }
}
