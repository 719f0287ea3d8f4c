//! The JSON Schema that `backupmanager schema` prints (and the package installs for editors)
//! agrees with the decoder, checked by an independent reader and validator: `serde_yaml_ng`
//! reads the YAML the way an editor's YAML 1.2 parser would, `jsonschema` validates.
//!
//! - Every file under `examples/` (recursively) and the packaged `config/backupmanager.yaml`
//!   is accepted.
//! - Invalid fixtures whose mistake is structural (unknown keys, wrong types, missing required
//!   keys, out-of-range numbers, relative paths, bad enum words) are rejected, at the places
//!   listed below.
//! - The other fixtures are listed too, with the reason a schema cannot see their mistake, so a
//!   new fixture must be classified here before this test passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn schema() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_backupmanager"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn validator() -> jsonschema::Validator {
    let schema = schema();
    assert!(
        jsonschema::meta::is_valid(&schema),
        "the schema itself is not valid JSON Schema"
    );
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// YAML → JSON with a YAML parser that is not ours.
fn read_yaml(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::from_str::<Value>(&text).map_err(|e| e.to_string())
}

/// (instance path, words in the message) for every error.
fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<(String, String)> {
    v.iter_errors(doc)
        .map(|e| (e.instance_path().to_string(), e.to_string()))
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn schema_accepts_examples_and_packaged_config() {
    let v = validator();
    let mut files = Vec::new();
    yaml_files(Path::new("examples"), &mut files);
    assert!(
        files.iter().any(|f| f.components().count() > 2),
        "expected examples in subdirectories too: {files:?}"
    );
    files.push("config/backupmanager.yaml".into());
    files.sort();
    for file in &files {
        let doc = read_yaml(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let errs = errors(&v, &doc);
        assert!(errs.is_empty(), "{} rejected: {errs:#?}", file.display());
    }
}

/// Fixtures the schema must reject, each with the (instance path, message words) of every
/// error it must report.
const SCHEMA_REJECTS: &[(&str, &[(&str, &str)])] = &[
    (
        "unknown_key",
        &[
            ("", "'pid_dir' was unexpected"),
            ("/jobs/0/syncs/0", "'opt' was unexpected"),
            ("/jobs/0/blocks_on/0", "'wait_tme' was unexpected"),
        ],
    ),
    (
        "wrong_type",
        &[
            ("/jobs/0/port", "is not of type \"integer\""),
            ("/jobs/0/enabled", "is not of type \"boolean\""),
            ("/jobs/0/lock_files", "is not of types"),
            ("/jobs/0/syncs/0/opts", "is not of types"),
        ],
    ),
    (
        "missing_required",
        &[
            ("/jobs/0", "\"id\" is a required property"),
            ("/jobs/0/syncs/0", "\"dest\" is a required property"),
            ("/jobs/1", "\"syncs\" is a required property"),
            ("/jobs/2/lock_files/0", "\"type\" is a required property"),
            (
                "/jobs/2/blocks_on/0",
                "\"lock_file_path\" is a required property",
            ),
            ("/jobs/2/blocks_on/0", "'path' was unexpected"),
            ("/jobs/2/syncs/0", "\"source\" is a required property"),
        ],
    ),
    (
        "port_range",
        &[
            ("/jobs/0/port", "70000 is greater than the maximum of 65535"),
            (
                "/jobs/0/blocks_on/0/port",
                "0 is less than the minimum of 1",
            ),
        ],
    ),
    (
        "relative_path",
        &[
            ("/pid_file_dir", "does not match \"^/\""),
            ("/jobs/0/lock_files/0/path", "does not match \"^/\""),
            (
                "/jobs/0/blocks_on/0/lock_file_path",
                "does not match \"^/\"",
            ),
            ("/jobs/0/syncs/0/source", "does not match \"^/\""),
        ],
    ),
    (
        "bad_type_value",
        &[(
            "/jobs/0/lock_files/0/type",
            "is not one of \"local\" or \"remote\"",
        )],
    ),
    (
        "retention_values",
        &[
            ("/jobs/0/retention/keep_last", "0"),
            ("/jobs/0/retention/keep_hourly", "-1"),
            ("/jobs/0/retention/keep_daily", "1.5"),
            ("/jobs/0/retention/keep_weekly", "\"forever\""),
            ("/jobs/0/retention", "'keep_dayly' was unexpected"),
            ("/jobs/1/retention/keep_within", "is not of type \"string\""),
            ("/jobs/1/retention/keep_within_daily", "does not match"),
            ("/jobs/1/retention/keep_within_monthly", "does not match"),
            ("/jobs/2/retention/keep_last", "0"),
        ],
    ),
    (
        "archive_settings",
        &[
            ("/jobs/0/archive/max_chain_length", "-1"),
            ("/jobs/0/archive/compression", "\"xz\""),
            ("/jobs/0/archive", "'level' was unexpected"),
        ],
    ),
    (
        "wait_time",
        &[
            ("/jobs/0/blocks_on/1/wait_time", "-5"),
            ("/jobs/0/blocks_on/2/wait_time", "\"soon\""),
        ],
    ),
];

/// Fixtures a schema cannot reject, and why. They must be *accepted* by it (or, for YAML
/// errors, rejected by the YAML parser already), so a schema change that starts catching one
/// shows up here.
const SCHEMA_BLIND: &[(&str, &str)] = &[
    ("bad_cron", "cron syntax is inside a string"),
    (
        "name_too_long",
        "byte lengths of path components and of a name derived from the id",
    ),
    (
        "never_fires",
        "which days exist is calendar arithmetic on a string",
    ),
    (
        "duplicate_id",
        "ids are unique across files; a schema sees one file",
    ),
    (
        "duplicate_key",
        "a parsed document has no duplicate keys left to see",
    ),
    (
        "http_listen",
        "address syntax inside strings, and which addresses need token_file",
    ),
    ("include_recursive", "glob syntax inside a string"),
    (
        "lock_in_deleted_dest",
        "a path inside another entry's path, and rsync option words",
    ),
    (
        "remote_no_host",
        "a remote lock's host may come from its job",
    ),
    (
        "rsh_on_remote",
        "-e inside opts words, and only for remote jobs",
    ),
    (
        "pull_direction",
        "which direction needs a host, which characters a pull source may hold, and where a pull's dest is",
    ),
    ("self_block", "a relation between two keys' values"),
    (
        "self_wait_spellings",
        "paths that name one file when normalized, across entries",
    ),
    (
        "snapshot_mode",
        "which mode needs a retention block (and a zero span) is beyond the schema's value checks",
    ),
    (
        "snapshot_opts",
        "rsync option words inside opts strings, and which mode forbids them",
    ),
    ("unbalanced_quote", "shell word syntax inside a string"),
    (
        "etcd_settings",
        "URL syntax, loopback addresses and pairs of keys inside the etcd block",
    ),
    (
        "etcd_missing",
        "which lock_backend value needs the etcd block",
    ),
    (
        "slots",
        "which backend can hold slots, and slot names used across keys",
    ),
    (
        "notify",
        "one service per entry, URL syntax and notify_on words inside strings",
    ),
    (
        "hooks",
        "`run` xor `shell`, `where: remote` needing the job's host, `on_error` only on before hooks",
    ),
    (
        "notify_ca_file",
        "whether a file exists and holds PEM certificates is beyond any schema",
    ),
];

/// Not YAML at all, or YAML no parser should expand: the YAML parser rejects them before any
/// schema is involved (`alias_bomb`: serde_yaml_ng has its own repetition limit).
const NOT_YAML: &[&str] = &[
    "alias_bomb",
    "unquoted_cron",
    "unquoted_macro",
    "yaml_syntax",
];

fn fixture(name: &str) -> PathBuf {
    let dir = Path::new("tests/fixtures/invalid").join(name);
    if dir.is_dir() {
        dir.join("backupmanager.yaml")
    } else {
        dir.with_extension("yaml")
    }
}

#[test]
fn every_invalid_fixture_is_classified() {
    let mut names: Vec<String> = std::fs::read_dir("tests/fixtures/invalid")
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_stem()?.to_str()?.to_string();
            (p.is_dir() || p.extension().is_some_and(|e| e == "yaml")).then_some(name)
        })
        .collect();
    names.sort();
    let mut classified: Vec<String> = SCHEMA_REJECTS
        .iter()
        .map(|(n, _)| *n)
        .chain(SCHEMA_BLIND.iter().map(|(n, _)| *n))
        .chain(NOT_YAML.iter().copied())
        .map(String::from)
        .collect();
    classified.sort();
    assert_eq!(
        names, classified,
        "classify each fixture in tests/schema.rs"
    );
}

#[test]
fn schema_rejects_structural_mistakes() {
    let v = validator();
    for (name, want) in SCHEMA_REJECTS {
        let doc = read_yaml(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = errors(&v, &doc);
        for (path, words) in *want {
            assert!(
                got.iter().any(|(p, m)| p == path && m.contains(words)),
                "{name}: expected an error at {path:?} containing {words:?}; got {got:#?}"
            );
        }
    }
}

#[test]
fn schema_cannot_see_semantic_mistakes() {
    let v = validator();
    for (name, why) in SCHEMA_BLIND {
        let doc = read_yaml(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = errors(&v, &doc);
        assert!(
            got.is_empty(),
            "{name} ({why}) is now rejected by the schema: move it to SCHEMA_REJECTS: {got:#?}"
        );
    }
    for name in NOT_YAML {
        assert!(
            read_yaml(&fixture(name)).is_err(),
            "{name} parses as YAML elsewhere"
        );
    }
}
