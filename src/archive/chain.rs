//! Pure decisions about chains: an archive's ancestors, and whether the next run continues
//! the newest chain or starts a new one (and why).
//!
//! Must not: read files or clocks (callers pass what they saw and `now`).

use std::time::Duration;

use jiff::Timestamp;

use super::manifest::ArchiveManifest;
use super::names::Stem;
use crate::config::ArchiveSettings;

/// `target` and its ancestors, level 0 first, from `list` (any order). `Err` names the first
/// missing link.
pub fn chain_of<'a>(
    list: &'a [ArchiveManifest],
    target: &Stem,
) -> Result<Vec<&'a ArchiveManifest>, Stem> {
    let find = |s: &Stem| list.iter().find(|m| &m.stem == s);
    let mut out = Vec::new();
    let mut at = find(target).ok_or_else(|| target.clone())?;
    loop {
        out.push(at);
        match &at.parent {
            None => break,
            Some(p) => at = find(p).ok_or_else(|| p.clone())?,
        }
    }
    out.reverse();
    Ok(out)
}

/// What the next archive of a series is.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// A level 0. `warn` when the reason is a problem the user should know about.
    Full {
        why: String,
        warn: bool,
    },
    Incremental {
        parent: Stem,
        level: u32,
    },
}

/// What the caller observed, for [`decide`].
pub struct Seen<'a> {
    /// Complete archives, any order.
    pub list: &'a [ArchiveManifest],
    /// The source's device number now.
    pub source_device: u64,
    /// Whether the newest archive's state file (`.snar`) is there.
    pub newest_snar_present: bool,
    /// Archives of the newest chain that retention keeps only because newer ones depend on them.
    pub kept_only_as_parents: Vec<Stem>,
    pub now: Timestamp,
}

pub fn decide(settings: &ArchiveSettings, seen: &Seen) -> Next {
    let full = |why: String, warn: bool| Next::Full { why, warn };
    let Some(newest) = seen.list.iter().max_by(|a, b| a.stem.cmp(&b.stem)) else {
        return full("the first archive of the series".into(), false);
    };
    let chain = match chain_of(seen.list, &newest.stem) {
        Ok(c) => c,
        Err(missing) => {
            return full(
                format!(
                    "the newest chain is broken ({missing} is missing), so it cannot be continued"
                ),
                true,
            )
        }
    };
    if !seen.newest_snar_present {
        return full(
            format!(
                "the state file {}.snar is missing, so the chain cannot be continued",
                newest.stem
            ),
            true,
        );
    }
    if newest.source_device != seen.source_device {
        return full(
            format!(
                "the source is on another device than when the chain began (device {:#x}, now {:#x}); an incremental would silently copy everything",
                newest.source_device, seen.source_device
            ),
            true,
        );
    }
    if newest.stem.level >= settings.max_chain_length {
        return full(
            format!(
                "the chain has {} incremental(s), max_chain_length is {}",
                newest.stem.level, settings.max_chain_length
            ),
            false,
        );
    }
    let base = chain[0];
    let age = seen.now.as_second() - base.time.timestamp().as_second();
    if age >= 0 && Duration::from_secs(age as u64) >= settings.full_every {
        return full(
            format!(
                "the chain's level 0 ({}) is older than full_every",
                base.stem.id
            ),
            false,
        );
    }
    if let Some(s) = seen
        .kept_only_as_parents
        .iter()
        .find(|s| s.chain == newest.stem.chain)
    {
        return full(
            format!(
                "retention keeps {} only as a parent of newer archives; a new chain lets the old one age out",
                s.id
            ),
            false,
        );
    }
    Next::Incremental {
        parent: newest.stem.clone(),
        level: newest.stem.level + 1,
    }
}
