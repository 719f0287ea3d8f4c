//! Inputs the fuzzers (`fuzz/`, run with `scripts/fuzz`) found to break the config loader, kept as
//! plain tests. Each input is stored byte for byte under `tests/fixtures/fuzz/NAME.yaml` and loaded
//! the way the `config_load` fuzz target loads it: the bytes before the first NUL are the main
//! file, the bytes after it (if any) the drop-in `jobs.d/a.yaml` next to it. Every test also checks
//! the invariants the target asserts, so a regression fails here without running the fuzzer.

mod support;

use std::path::{Path, PathBuf};

use backupmanager::config::{self, diag, Loaded};
use support::Scratch;

/// Loads `bytes` like the fuzz target does and checks its invariants; returns the result and the
/// main file's path (in a scratch directory, removed when this returns).
fn load_bytes(name: &str, bytes: &[u8]) -> (Loaded, PathBuf) {
    let d = Scratch::new(&format!("bm-fuzz-regression-{name}."));
    std::fs::create_dir_all(d.p("jobs.d")).unwrap();
    let main = d.p("backupmanager.yaml");
    let (m, drop) = match bytes.iter().position(|&b| b == 0) {
        Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
        None => (bytes, None),
    };
    std::fs::write(&main, m).unwrap();
    if let Some(b) = drop {
        std::fs::write(d.p("jobs.d/a.yaml"), b).unwrap();
    }
    let loaded = config::load(&main);
    let rendered = loaded.render();
    assert_eq!(
        loaded.config.is_some(),
        loaded.errors() == 0,
        "a config is handed on exactly when there are no errors:\n{rendered}"
    );
    for dg in &loaded.diagnostics {
        if dg.message.starts_with("cannot read config file") {
            continue;
        }
        assert!(dg.span.line >= 1 && dg.span.col >= 1, "{dg:?}");
        if let Some(src) = loaded.sources.get(&*dg.span.file) {
            let lines = diag::lines(src).count().max(1);
            assert!(dg.span.line <= lines, "line past the end ({lines}): {dg:?}");
        }
        assert!(rendered.contains(&dg.headline()));
    }
    (loaded, main)
}

fn load_fixture(name: &str) -> (Loaded, PathBuf) {
    let path = Path::new("tests/fixtures/fuzz").join(format!("{name}.yaml"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    load_bytes(name, &bytes)
}

fn only_error(loaded: &Loaded) -> &diag::Diagnostic {
    let errors: Vec<_> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{}", loaded.render());
    errors[0]
}

/// Found by `config_load`: a YAML syntax error at the end of a file that contains a lone `\r`
/// (which YAML, unlike `str::lines`, counts as a line break) was reported on a line past the end
/// of the file, and rendering looked its source line up by `\n` only.
#[test]
fn lone_cr_eof_error() {
    let (loaded, _) = load_fixture("lone_cr_eof_error");
    let e = only_error(&loaded);
    assert!(e.message.contains("simple key expected"), "{e:?}");
    // The file has 31 `\n` and one lone `\r` before `lock-`: 33 lines; the error is at its end.
    assert_eq!((e.span.line, e.span.col), (33, 6), "{e:?}");
    assert!(
        loaded.render().contains("33 | lock-\n"),
        "{}",
        loaded.render()
    );
}

/// The minimal forms of the same bug: end-of-stream errors point at the end of the last line.
#[test]
fn eof_syntax_errors_point_inside_the_file() {
    for (name, text, at, shown) in [
        ("open_flow", "a: [", (1, 5), "1 | a: ["),
        ("open_flow_nl", "a: [\n\n", (1, 5), "1 | a: ["),
        ("lone_cr", "a: b\rc-", (2, 3), "2 | c-"),
        ("crlf", "a: b\r\nc-\r\n", (2, 3), "2 | c-"),
    ] {
        let (loaded, _) = load_bytes(name, text.as_bytes());
        let e = only_error(&loaded);
        assert_eq!((e.span.line, e.span.col), at, "{text:?}: {e:?}");
        assert!(loaded.render().contains(shown), "{}", loaded.render());
    }
}

/// Found by `config_load`: `? ` (an explicit key with no content) as the whole file. The parser
/// places the empty key on the line after the last one, so the "unknown key" error pointed past
/// the end of the file. Event positions at the end of the stream now land at the end of the last
/// line with content.
#[test]
fn empty_key_at_eof() {
    let (loaded, main) = load_fixture("empty_key_at_eof");
    // The drop-in part of the input is NULs, a syntax error of its own.
    assert_eq!(loaded.errors(), 2, "{}", loaded.render());
    let e = loaded
        .diagnostics
        .iter()
        .find(|d| d.is_error() && *d.span.file == *main)
        .expect("an error in the main file");
    assert!(e.message.contains("unknown key ``"), "{e:?}");
    assert_eq!((e.span.line, e.span.col), (1, 3), "{e:?}");
    assert!(loaded.render().contains("1 | ? \n"), "{}", loaded.render());
}

/// Found by review while writing the fuzz targets (the fuzzer had not reached it yet):
/// `lock_heartbeat` of more than half of `u64::MAX` seconds panicked on `lock_heartbeat * 2`
/// (Duration overflow) in the stale_after check. It now saturates and reports the usual error.
#[test]
fn heartbeat_overflow() {
    let (loaded, _) = load_fixture("heartbeat_overflow");
    assert!(loaded.config.is_none());
    assert!(
        loaded
            .diagnostics
            .iter()
            .any(|d| d.is_error() && d.message.contains("must be more than twice lock_heartbeat")),
        "{}",
        loaded.render()
    );
}
