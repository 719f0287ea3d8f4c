//! `backupmanager gate`: the command line → [`crate::gate::GateArgs`], then [`crate::gate::run`].

use crate::cli::Command;
use crate::gate::{self, GateArgs};

/// Runs the gate for a `Command::Gate`; any other command is a programming error.
pub fn run(command: &Command) -> i32 {
    let Command::Gate {
        read_only,
        allow_locks,
        allow_dump,
        rsync,
        syslog_socket,
        print_authorized_keys_line,
        key,
    } = command
    else {
        unreachable!("commands::gate::run is called for the gate only");
    };
    gate::run(&GateArgs {
        read_only: read_only.clone(),
        allow_locks: allow_locks.clone(),
        allow_dump: allow_dump.clone(),
        rsync: rsync.clone(),
        // The default is left out of a printed authorized_keys line.
        syslog_socket: (syslog_socket.as_os_str() != "/dev/log").then(|| syslog_socket.clone()),
        print_authorized_keys_line: *print_authorized_keys_line,
        key: key.clone(),
    })
}
