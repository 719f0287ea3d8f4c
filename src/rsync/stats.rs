//! Parsing rsync's `--stats` block into numbers.
//!
//! Must not: run rsync. Pitfalls: `-q` suppresses the block (stats are then `None`); `-h` would
//! print `3.01M`, which is why the command appends `--no-human-readable`.

/// Numbers from rsync's `--stats` block. Fields missing from the output stay 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RsyncStats {
    /// "Number of files" (all types, including dirs).
    pub files_total: u64,
    /// "Number of created files" (all types).
    pub files_created: u64,
    /// The regular files among them: `(reg: N, ...)`. Regular files transferred but not
    /// created are the changed ones (with `--link-dest` too: a file hard-linked from the
    /// previous snapshot is neither).
    #[serde(default)]
    pub files_created_reg: u64,
    /// "Number of deleted files".
    pub files_deleted: u64,
    /// "Number of regular files transferred".
    pub files_transferred: u64,
    /// "Total file size" (bytes).
    pub total_size: u64,
    /// "Total transferred file size" (bytes).
    pub transferred_size: u64,
    /// "Literal data" (bytes).
    pub literal_data: u64,
    /// "Matched data" (bytes).
    pub matched_data: u64,
    /// "Total bytes sent".
    pub bytes_sent: u64,
    /// "Total bytes received".
    pub bytes_received: u64,
}

/// Leading number of `s`, ignoring thousands separators: `"1,234 (reg: 3)"` → 1234.
fn leading_number(s: &str) -> Option<u64> {
    let s = s.trim_start();
    let mut n: u64 = 0;
    let mut seen = false;
    for c in s.chars() {
        match c {
            '0'..='9' => {
                n = n.checked_mul(10)?.checked_add(u64::from(c as u8 - b'0'))?;
                seen = true;
            }
            ',' | '.' if seen => {} // ',' default, '.' in some locales
            _ => break,
        }
    }
    seen.then_some(n)
}

impl RsyncStats {
    /// Feed one output line; returns true if it was a stats line.
    pub fn parse_line(&mut self, line: &str) -> bool {
        let Some((key, value)) = line.split_once(": ") else {
            return false;
        };
        if key.trim() == "Number of created files" {
            if let Some(reg) = value
                .split_once("reg: ")
                .and_then(|(_, r)| leading_number(r))
            {
                self.files_created_reg = reg;
            }
        }
        let field = match key.trim() {
            "Number of files" => &mut self.files_total,
            "Number of created files" => &mut self.files_created,
            "Number of deleted files" => &mut self.files_deleted,
            "Number of regular files transferred" => &mut self.files_transferred,
            "Total file size" => &mut self.total_size,
            "Total transferred file size" => &mut self.transferred_size,
            "Literal data" => &mut self.literal_data,
            "Matched data" => &mut self.matched_data,
            "Total bytes sent" => &mut self.bytes_sent,
            "Total bytes received" => &mut self.bytes_received,
            _ => return false,
        };
        match leading_number(value) {
            Some(n) => {
                *field = n;
                true
            }
            None => false,
        }
    }

    /// Parse a whole output; `None` if it holds no stats block.
    pub fn parse(output: &str) -> Option<RsyncStats> {
        let mut s = RsyncStats::default();
        let mut any = false;
        for line in output.lines() {
            any |= s.parse_line(line);
        }
        any.then_some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_fixture_verbose_delete() {
        let s = RsyncStats::parse(include_str!("testdata/stats_av_delete.txt")).unwrap();
        assert_eq!(
            s,
            RsyncStats {
                files_total: 1199,
                files_created: 0,
                files_created_reg: 0,
                files_deleted: 3,
                files_transferred: 1,
                total_size: 3_010_872,
                transferred_size: 8,
                literal_data: 8,
                matched_data: 0,
                bytes_sent: 18_005,
                bytes_received: 63,
            }
        );
    }

    /// Captured from `rsync -a --stats` (3.2.7), a first full copy.
    #[test]
    fn stats_fixture_full() {
        let s = RsyncStats::parse(include_str!("testdata/stats_a_full.txt")).unwrap();
        assert_eq!(s.files_total, 1199);
        assert_eq!(s.files_created, 1199);
        assert_eq!(s.files_created_reg, 1198);
        assert_eq!(s.files_transferred, 1198);
        assert_eq!(s.total_size, 3_010_872);
        assert_eq!(s.bytes_sent, 3_081_068);
        assert_eq!(s.bytes_received, 22_781);
    }

    #[test]
    fn stats_without_separators_and_none() {
        let s =
            RsyncStats::parse("Total file size: 3010872 bytes\nTotal bytes sent: 12\n").unwrap();
        assert_eq!(s.total_size, 3_010_872);
        assert_eq!(s.bytes_sent, 12);
        assert_eq!(
            RsyncStats::parse("sending incremental file list\nfoo\n"),
            None
        );
        // A file literally named like a stats key in -v output does not parse as a number.
        assert_eq!(RsyncStats::parse("Total file size: lots\n"), None);
    }
}
