//! A job's `archive:` block → [`ArchiveSettings`], and the checks only archive jobs need.
//!
//! The block is optional on a `mode: archive` job (every key has a default in the field table)
//! and an error on any other job: it would promise chains that are never made.
//!
//! Must not: know what a chain is beyond the words users read (the archive engine does).

use super::decode::{Decoder, Entries, Fields};
use super::fields::{self, ARCHIVE};
use super::yaml::Value;
use super::{ArchiveSettings, Compression, Mode};

impl Decoder {
    /// The job's archive settings: `Ok(Some)` for an archive job, `Ok(None)` for any other,
    /// `Err(())` when something was reported.
    pub(super) fn archive_settings(
        &mut self,
        f: &Fields<'_>,
        path: &str,
        mode: Option<Mode>,
    ) -> Result<Option<ArchiveSettings>, ()> {
        let node = f.get("archive");
        let path = format!("{path}.archive");
        match (mode, node) {
            (None, _) => return Err(()),
            (Some(Mode::Archive), _) => {}
            (Some(_), None) => return Ok(None),
            (Some(_), Some(_)) => {
                let key = f
                    .entries
                    .iter()
                    .find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == "archive"))
                    .map(|(k, _)| k)
                    .expect("the key of a value");
                self.err(
                    key.inner_span(0, 7),
                    &path,
                    "`archive` applies to `mode: archive` only",
                )
                .help = Some("add `mode: archive`, or remove the `archive` block".into());
                return Err(());
            }
        }
        let mut s = ArchiveSettings {
            full_every: fields::default_duration(&ARCHIVE, "full_every"),
            max_chain_length: fields::default_int(&ARCHIVE, "max_chain_length") as u32,
            compression: compression(fields::default_text(&ARCHIVE, "compression"))
                .expect("the default is a known word"),
        };
        let Some(node) = node else {
            return Ok(Some(s));
        };
        let Some(a) = self.fields(node, &path, &ARCHIVE) else {
            return Err(());
        };
        let mut ok = true;
        if let Some(n) = a.get("full_every") {
            match self.positive_duration(n, &format!("{path}.full_every")) {
                Some(d) => s.full_every = d,
                None => ok = false,
            }
        }
        if let Some(n) = a.get("max_chain_length") {
            let p = format!("{path}.max_chain_length");
            match self.int(n, &p) {
                Some(i) if (0..=10_000).contains(&i) => s.max_chain_length = i as u32,
                Some(i) => {
                    self.err(
                        n.span.clone(),
                        &p,
                        format!("max_chain_length must be between 0 and 10000, got {i}"),
                    )
                    .help = Some(
                        "0 makes every archive a level 0; 14 (the default) allows two weeks of daily incrementals"
                            .into(),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        if let Some(n) = a.get("compression") {
            let p = format!("{path}.compression");
            match self.string(n, &p) {
                Some(w) => match compression(&w) {
                    Some(c) => s.compression = c,
                    None => {
                        self.err(
                            n.inner_span(0, w.chars().count()),
                            &p,
                            format!("unknown compression `{w}`"),
                        )
                        .help = Some("use `zstd` (default), `gzip` or `none`".into());
                        ok = false;
                    }
                },
                None => ok = false,
            }
        }
        if ok {
            Ok(Some(s))
        } else {
            Err(())
        }
    }

    /// What an archive job cannot have: rsync options, a destination that cannot hold a series.
    pub(super) fn check_archive_job(&mut self, path: &str, e: &Entries) -> bool {
        let mut ok = true;
        let default_opts = fields::default_list(&fields::SYNC, "opts");
        for (i, s) in e.syncs.iter().enumerate() {
            if s.opts != default_opts {
                self.err(
                    s.span.clone(),
                    &format!("{path}.syncs[{i}].opts"),
                    "`opts` are rsync options; an archive job runs GNU tar and takes none",
                )
                .help = Some("remove `opts` from this sync".into());
                ok = false;
            }
            if s.dest.trim_end_matches('/').is_empty() || s.dest.split('/').any(|c| c == "..") {
                self.err(
                    s.span.clone(),
                    &format!("{path}.syncs[{i}].dest"),
                    format!("`{}` cannot hold an archive series", s.dest),
                )
                .help = Some(
                    "use a dedicated directory such as /srv/archives/home: archives, their snapshot files and manifests are created in it"
                        .into(),
                );
                ok = false;
            }
        }
        ok
    }
}

fn compression(word: &str) -> Option<Compression> {
    match word {
        "zstd" => Some(Compression::Zstd),
        "gzip" => Some(Compression::Gzip),
        "none" => Some(Compression::None),
        _ => None,
    }
}
