//! An archive's manifest (`<stem>.json`): what the archive is, how it was made, and what it
//! depends on. Written once, at commit (its rename is the commit point), never changed.
//!
//! Must not: read or write files.

use jiff::Zoned;

use super::names::Stem;
use crate::config::Compression;
use crate::snapshot::manifest::{parse_rfc3339, rfc3339};

/// The manifest format written by this version.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveManifest {
    pub stem: Stem,
    /// When the run started, with the local offset it had then.
    pub time: Zoned,
    /// The stem of the archive this one is an increment on (`None` for a level 0).
    pub parent: Option<Stem>,
    pub sha256: String,
    /// Bytes of the archive file.
    pub size: u64,
    pub compression: Compression,
    pub tar_version: String,
    pub tar_options: Vec<String>,
    /// Members tar listed (files, directories, links) in this level.
    pub files: u64,
    /// tar's exit code: 0, or 1 (a file changed while it was read).
    pub tar_exit: i32,
    /// The source as configured, and its device number when the chain was cut (a new device
    /// starts a new chain).
    pub source: String,
    pub source_device: u64,
    pub job: String,
    pub run_id: String,
    pub version: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    format: u32,
    kind: String,
    id: String,
    stem: String,
    chain: String,
    level: u32,
    parent: Option<String>,
    time: String,
    sha256: String,
    size: u64,
    compression: String,
    tar_version: String,
    tar_options: Vec<String>,
    files: u64,
    tar_exit: i32,
    source: String,
    source_device: u64,
    job: String,
    run_id: String,
    version: String,
}

fn compression_word(c: Compression) -> &'static str {
    match c {
        Compression::Zstd => "zstd",
        Compression::Gzip => "gzip",
        Compression::None => "none",
    }
}

impl ArchiveManifest {
    pub fn time_rfc3339(&self) -> String {
        rfc3339(&self.time)
    }

    /// The archive's file name in the series directory.
    pub fn archive_file(&self) -> String {
        format!("{}.{}", self.stem, crate::tar::extension(self.compression))
    }

    pub fn to_json(&self) -> String {
        let w = Wire {
            format: FORMAT,
            kind: "archive".into(),
            id: self.stem.id.to_string(),
            stem: self.stem.to_string(),
            chain: self.stem.chain.to_string(),
            level: self.stem.level,
            parent: self.parent.as_ref().map(|p| p.to_string()),
            time: self.time_rfc3339(),
            sha256: self.sha256.clone(),
            size: self.size,
            compression: compression_word(self.compression).into(),
            tar_version: self.tar_version.clone(),
            tar_options: self.tar_options.clone(),
            files: self.files,
            tar_exit: self.tar_exit,
            source: self.source.clone(),
            source_device: self.source_device,
            job: self.job.clone(),
            run_id: self.run_id.clone(),
            version: self.version.clone(),
        };
        serde_json::to_string(&w).expect("serializes") + "\n"
    }

    /// Reads a manifest back, checking it names `expected` and is self-consistent.
    pub fn from_json(bytes: &[u8], expected: &Stem) -> Result<ArchiveManifest, String> {
        let w: Wire = serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
        if w.kind != "archive" {
            return Err(format!("kind is {:?}, not \"archive\"", w.kind));
        }
        let stem = Stem::parse(&w.stem).ok_or("bad stem")?;
        if &stem != expected || w.level != stem.level || w.chain != stem.chain.to_string() {
            return Err(format!("names {} instead of {expected}", w.stem));
        }
        let parent = match w.parent {
            None if stem.level == 0 => None,
            Some(p) if stem.level > 0 => {
                let p = Stem::parse(&p).ok_or("bad parent")?;
                if p.chain != stem.chain || p.level + 1 != stem.level || p.id >= stem.id {
                    return Err(format!("parent {p} cannot precede {stem}"));
                }
                Some(p)
            }
            _ => return Err("parent does not match the level".into()),
        };
        let compression = match w.compression.as_str() {
            "zstd" => Compression::Zstd,
            "gzip" => Compression::Gzip,
            "none" => Compression::None,
            c => return Err(format!("unknown compression {c:?}")),
        };
        if w.sha256.len() != 64 || !w.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("bad sha256".into());
        }
        Ok(ArchiveManifest {
            stem,
            time: parse_rfc3339(&w.time).ok_or("bad time")?,
            parent,
            sha256: w.sha256,
            size: w.size,
            compression,
            tar_version: w.tar_version,
            tar_options: w.tar_options,
            files: w.files,
            tar_exit: w.tar_exit,
            source: w.source,
            source_device: w.source_device,
            job: w.job,
            run_id: w.run_id,
            version: w.version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_round_trips_and_must_name_its_stem() {
        let stem = Stem::parse("2026-11-28T093902Z_L01_2026-11-29T093902Z").unwrap();
        let m = ArchiveManifest {
            stem: stem.clone(),
            time: parse_rfc3339("2026-11-29T10:39:02+01:00").unwrap(),
            parent: Stem::parse("2026-11-28T093902Z_L00_2026-11-28T093902Z"),
            sha256: "a".repeat(64),
            size: 10,
            compression: Compression::Zstd,
            tar_version: "tar (GNU tar) 1.34".into(),
            tar_options: vec!["--create".into()],
            files: 3,
            tar_exit: 0,
            source: "/srv/a/".into(),
            source_device: 2049,
            job: "j".into(),
            run_id: "r".into(),
            version: "0.1.0".into(),
        };
        let json = m.to_json();
        assert!(json.contains("\"time\":\"2026-11-29T10:39:02+01:00\""));
        assert_eq!(
            ArchiveManifest::from_json(json.as_bytes(), &stem).unwrap(),
            m
        );
        let other = Stem::parse("2026-11-28T093902Z_L01_2026-11-30T093902Z").unwrap();
        assert!(ArchiveManifest::from_json(json.as_bytes(), &other).is_err());
    }
}
