//! rsync's exit codes: what each means (rsync(1) "EXIT VALUES") and what it means for a run
//! (retry or not).
//!
//! Must not: decide retries itself; the engine does, from the class.

/// What an rsync exit code means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// 0: success.
    Ok,
    /// 24: some source files vanished during the transfer (normal for live data).
    Vanished,
    /// 23: partial transfer due to errors (some files/attrs were not transferred).
    Partial,
    /// Network/protocol/timeouts (5, 10, 12, 30, 35, 255): worth retrying.
    Transient(i32),
    /// Everything else: configuration or local problem, retrying will not help.
    Fatal(i32),
}

/// Classify an rsync exit code.
pub fn classify(code: i32) -> ExitClass {
    match code {
        0 => ExitClass::Ok,
        24 => ExitClass::Vanished,
        23 => ExitClass::Partial,
        5 | 10 | 12 | 30 | 35 | 255 => ExitClass::Transient(code),
        c => ExitClass::Fatal(c),
    }
}

/// rsync's documented meaning of an exit code (rsync(1) "EXIT VALUES").
pub fn describe(code: i32) -> &'static str {
    match code {
        0 => "success",
        1 => "syntax or usage error",
        2 => "protocol incompatibility",
        3 => "errors selecting input/output files, dirs",
        4 => "requested action not supported",
        5 => "error starting client-server protocol",
        6 => "daemon unable to append to log-file",
        10 => "error in socket I/O",
        11 => "error in file I/O",
        12 => "error in rsync protocol data stream",
        13 => "errors with program diagnostics",
        14 => "error in IPC code",
        20 => "received SIGUSR1 or SIGINT",
        21 => "some error returned by waitpid()",
        22 => "error allocating core memory buffers",
        23 => "partial transfer due to error",
        24 => "partial transfer due to vanished source files",
        25 => "the --max-delete limit stopped deletions",
        30 => "timeout in data send/receive",
        35 => "timeout waiting for daemon connection",
        124 => "remote shell failed",
        125 => "remote shell killed",
        126 => "remote command could not be run",
        127 => "remote command not found",
        255 => "remote shell (ssh) failed: connection or authentication error",
        _ => "unknown rsync exit code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify(0), ExitClass::Ok);
        assert_eq!(classify(24), ExitClass::Vanished);
        assert_eq!(classify(23), ExitClass::Partial);
        for c in [5, 10, 12, 30, 35, 255] {
            assert_eq!(classify(c), ExitClass::Transient(c));
        }
        for c in [
            1, 2, 3, 4, 6, 11, 13, 14, 20, 21, 22, 25, 124, 125, 126, 127, 99,
        ] {
            assert_eq!(classify(c), ExitClass::Fatal(c));
        }
        assert_eq!(describe(23), "partial transfer due to error");
        assert_eq!(
            describe(24),
            "partial transfer due to vanished source files"
        );
        assert_eq!(describe(42), "unknown rsync exit code");
    }
}
