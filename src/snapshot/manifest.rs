//! The manifest: a small JSON file that makes a snapshot a restore point.
//!
//! Owns: the on-disk format of `DEST/<id>.json` (one line of JSON) and its validation when
//! read back. Unknown fields are ignored so that an older backupmanager can still list the
//! snapshots of a newer one.
//!
//! Must not: read or write files (the backends do), or describe anything but one finished
//! snapshot.

use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, Zoned};

use super::names::SnapshotId;

/// The manifest format written by this version.
pub const FORMAT: u32 = 1;

/// What one complete snapshot is: written once, at commit, never changed afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The snapshot's directory name (stable for its whole life).
    pub id: SnapshotId,
    /// When the run started, with the local offset it had then (whole seconds).
    pub time: Zoned,
    /// The job that made it.
    pub job: String,
    /// The run that made it (as in the logs).
    pub run_id: String,
    /// The backupmanager version that wrote it.
    pub version: String,
    /// rsync's exit code: 0, or 24 (some source files vanished during the transfer).
    pub rsync_exit: i32,
    /// Regular files transferred by that run (`None` when rsync printed no stats, e.g. `-q`).
    pub files_transferred: Option<u64>,
    /// Bytes of file data transferred by that run.
    pub bytes_transferred: Option<u64>,
    /// Total size of the files in the snapshot, in bytes.
    pub total_size: Option<u64>,
}

/// The JSON shape (field names are the file format).
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    format: u32,
    id: String,
    /// RFC 3339 with the offset, e.g. `2026-11-29T10:39:14+01:00`.
    time: String,
    job: String,
    run_id: String,
    version: String,
    rsync_exit: i32,
    files_transferred: Option<u64>,
    bytes_transferred: Option<u64>,
    total_size: Option<u64>,
}

impl Manifest {
    /// `time` as RFC 3339 with its offset.
    pub fn time_rfc3339(&self) -> String {
        rfc3339(&self.time)
    }

    /// One line of JSON (no newline inside; string values are escaped).
    pub fn to_json(&self) -> String {
        let w = Wire {
            format: FORMAT,
            id: self.id.to_string(),
            time: self.time_rfc3339(),
            job: self.job.clone(),
            run_id: self.run_id.clone(),
            version: self.version.clone(),
            rsync_exit: self.rsync_exit,
            files_transferred: self.files_transferred,
            bytes_transferred: self.bytes_transferred,
            total_size: self.total_size,
        };
        serde_json::to_string(&w).expect("a manifest always serialises")
    }

    /// Parse and check a manifest read from `<expected>.json`: its id must be `expected`.
    pub fn from_json(bytes: &[u8], expected: &SnapshotId) -> Result<Manifest, String> {
        let w: Wire = serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
        if w.format != FORMAT {
            return Err(format!("unsupported manifest format {}", w.format));
        }
        let id = SnapshotId::parse(&w.id).ok_or_else(|| format!("bad id {:?}", w.id))?;
        if &id != expected {
            return Err(format!("manifest names snapshot {id}, not {expected}"));
        }
        let time = parse_rfc3339(&w.time).ok_or_else(|| format!("bad time {:?}", w.time))?;
        Ok(Manifest {
            id,
            time,
            job: w.job,
            run_id: w.run_id,
            version: w.version,
            rsync_exit: w.rsync_exit,
            files_transferred: w.files_transferred,
            bytes_transferred: w.bytes_transferred,
            total_size: w.total_size,
        })
    }
}

/// `t` truncated to the second, with its offset: `2026-11-29T10:39:14+01:00`.
pub fn rfc3339(t: &Zoned) -> String {
    let secs = Timestamp::from_second(t.timestamp().as_second()).expect("in range");
    secs.display_with_offset(t.offset()).to_string()
}

/// The inverse of [`rfc3339`]: a fixed-offset time (`Z` reads as `+00:00`).
pub fn parse_rfc3339(s: &str) -> Option<Zoned> {
    let ts: Timestamp = s.parse().ok()?;
    let offset = if s.ends_with(['Z', 'z']) {
        Offset::UTC
    } else {
        let tail = s.get(s.len().checked_sub(6)?..)?;
        let (sign, hm) = tail.split_at(1);
        let (h, m) = hm.split_once(':')?;
        let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
        let secs = match sign {
            "+" => secs,
            "-" => -secs,
            _ => return None,
        };
        Offset::from_seconds(secs).ok()?
    };
    Some(ts.to_zoned(TimeZone::fixed(offset)))
}

/// Truncate a run's start to the second, keeping its offset (what the manifest records).
pub fn start_time(started: &Zoned) -> Zoned {
    parse_rfc3339(&rfc3339(started)).expect("our own format parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let time = parse_rfc3339("2026-11-29T10:39:14+01:00").unwrap();
        Manifest {
            id: SnapshotId::from_time(time.timestamp()),
            time,
            job: "night \"ly\"\n".into(),
            run_id: "r-1".into(),
            version: "0.1.0".into(),
            rsync_exit: 24,
            files_transferred: Some(3),
            bytes_transferred: Some(12345),
            total_size: None,
        }
    }

    #[test]
    fn round_trip_one_line() {
        let m = sample();
        assert_eq!(m.id.to_string(), "2026-11-29T093914Z");
        let j = m.to_json();
        assert!(!j.contains('\n'), "{j}");
        assert!(j.contains(r#""time":"2026-11-29T10:39:14+01:00""#), "{j}");
        assert_eq!(Manifest::from_json(j.as_bytes(), &m.id).unwrap(), m);
    }

    #[test]
    fn rejects_wrong_id_and_garbage() {
        let m = sample();
        let other = m.id.successor();
        assert!(Manifest::from_json(m.to_json().as_bytes(), &other).is_err());
        assert!(Manifest::from_json(b"", &m.id).is_err());
        assert!(Manifest::from_json(b"{\"format\":1}", &m.id).is_err());
        let j = m.to_json().replace("\"format\":1", "\"format\":9");
        assert!(Manifest::from_json(j.as_bytes(), &m.id).is_err());
        // Unknown fields from a newer writer are fine.
        let j = m.to_json().replace("{", "{\"future\":true,");
        assert!(Manifest::from_json(j.as_bytes(), &m.id).is_ok());
    }

    #[test]
    fn offsets() {
        let z = parse_rfc3339("2026-11-29T09:39:14Z").unwrap();
        assert_eq!(rfc3339(&z), "2026-11-29T09:39:14+00:00");
        let n = parse_rfc3339("2026-07-01T01:00:00-05:30").unwrap();
        assert_eq!(rfc3339(&n), "2026-07-01T01:00:00-05:30");
        assert_eq!(n.timestamp().to_string(), "2026-07-01T06:30:00Z");
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
