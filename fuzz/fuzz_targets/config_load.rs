//! Fuzzes the whole config load: bytes → main file (and optionally one drop-in) → `load` →
//! `render`, checking the invariants callers rely on.
//!
//! Input layout: everything before the first NUL byte is the main file; everything after it (if
//! there is a NUL) becomes `jobs.d/a.yaml` next to it, so drop-in decoding and cross-file checks
//! (duplicate ids) are reached too. Files live in a per-process temp dir, rewritten per input.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use backupmanager::config::{self, yaml};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("bm-fuzz-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("jobs.d")).expect("create fuzz temp dir");
        d
    })
}

/// `include:` globs are resolved against the filesystem. A pattern that leaves the temp dir
/// (`/**`, `../..`) makes a run as slow as walking the whole disk, which is the user's request
/// and not a bug, so such inputs are skipped. Checked on the parsed tree, so quoting, escapes and
/// aliases cannot hide the key or the pattern.
fn escapes_temp_dir(text: &str, file: &Path) -> bool {
    let Ok((root, _)) = yaml::parse(text, file) else {
        return false;
    };
    let yaml::Value::Map(entries) = &root.value else {
        return false;
    };
    fn bad(n: &yaml::Node) -> bool {
        match &n.value {
            yaml::Value::Scalar { text, .. } => {
                text.starts_with('/') || text.starts_with('\\') || text.contains("..")
            }
            yaml::Value::Seq(items) => items.iter().any(bad),
            yaml::Value::Map(_) => false,
        }
    }
    entries.iter().any(|(k, v)| {
        matches!(&k.value, yaml::Value::Scalar { text, .. } if text == "include") && bad(v)
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    let main = d.join("backupmanager.yaml");
    let dropin = d.join("jobs.d").join("a.yaml");
    let (main_bytes, dropin_bytes) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    if let Ok(text) = std::str::from_utf8(main_bytes) {
        if escapes_temp_dir(text, &main) {
            return;
        }
    }
    std::fs::write(&main, main_bytes).expect("write main file");
    match dropin_bytes {
        Some(b) => std::fs::write(&dropin, b).expect("write drop-in"),
        None => {
            let _ = std::fs::remove_file(&dropin);
        }
    }

    let loaded = config::load(&main);
    let rendered = loaded.render();

    // A config is handed on only when there are no errors.
    if loaded.config.is_some() {
        assert_eq!(loaded.errors(), 0, "config with errors:\n{rendered}");
    } else {
        assert!(loaded.errors() > 0, "no config and no error:\n{rendered}");
    }
    for diag in &loaded.diagnostics {
        let cannot_read = diag.message.starts_with("cannot read config file");
        if !cannot_read {
            assert!(
                diag.span.line >= 1 && diag.span.col >= 1,
                "diagnostic without a position: {diag:?}"
            );
            // Every diagnostic points into a file that was read, at a line that exists.
            let src = loaded
                .sources
                .get(&diag.span.file)
                .map(String::as_str)
                .unwrap_or_default();
            if diag.message != "the file is not valid UTF-8" {
                assert!(
                    loaded.sources.contains_key(&diag.span.file),
                    "diagnostic for a file with no source: {diag:?}"
                );
                // Lines as YAML counts them (a lone `\r` ends a line too).
                let lines = config::diag::lines(src).count().max(1);
                assert!(
                    diag.span.line <= lines,
                    "line {} past the end ({lines} lines): {diag:?}",
                    diag.span.line
                );
            }
        }
        assert!(
            diag.span.file == main || diag.span.file == dropin,
            "diagnostic for a file that was never loaded: {diag:?}"
        );
        assert!(rendered.contains(&diag.headline()));
    }
    // The JSON form (`validate --format json`) must serialize too.
    serde_json::to_string(&loaded.diagnostics).expect("diagnostics serialize");
});
