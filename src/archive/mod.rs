//! Archive series: chains of GNU tar incremental archives of a sync's source in its `dest`.
//!
//! Owns: the layout of a series directory ([`names`]), manifests ([`manifest`]), making an
//! archive ([`create`]), committing, listing and removing them ([`series`]; on another host
//! through `remote`, scripts and streams over the job's transport), chain decisions
//! ([`chain`]: ancestors, continue or start a new chain), verification and restore
//! ([`restore`]), and this host's temporary files ([`scratch`]).
//!
//! Must not: decide what to keep (the archive pruning plan in the engine does, over
//! [`ArchiveSeries::list`]), or touch a name [`names::classify`] does not call ours.
//!
//! # Layout of `DEST`
//! ```text
//! DEST/2026-11-28T093902Z_L00_2026-11-28T093902Z.tar.zst   level 0 of chain 2026-11-28T093902Z
//! DEST/2026-11-28T093902Z_L00_2026-11-28T093902Z.snar      tar's state after it
//! DEST/2026-11-28T093902Z_L00_2026-11-28T093902Z.json      its manifest (the commit point)
//! DEST/2026-11-28T093902Z_L01_2026-11-29T093914Z.tar.zst   level 1: changes since the level 0
//! ...
//! DEST/.incomplete-<stem>.tar.zst, .snar, .json            being written, or left by a failure
//! ```
//! Files left by a failed or killed run are never listed (only a committed manifest makes an
//! archive count); the job's next run removes them before it writes (locally and in a remote
//! series alike) and says so, and `snapshots` and `verify` ignore them.
//! A level N is made from a **copy** of its parent's `.snar`; the parent's file is never
//! written again, so a failed run cannot damage the chain it extends.

pub mod chain;
pub mod create;
mod error;
pub mod manifest;
pub mod names;
mod remote;
pub mod restore;
mod scratch;
mod series;

pub use error::ArchiveError;
pub use manifest::ArchiveManifest;
pub use names::Stem;
pub use series::{ArchiveSeries, Pending, Source};
