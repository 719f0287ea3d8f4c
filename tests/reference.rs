//! Generated references stay in sync with the code: docs/configuration.md is exactly what
//! `backupmanager reference markdown` prints (regenerate it with that command), and the
//! packaged config points editors at the schema.

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_backupmanager"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn configuration_md_is_current() {
    let generated = run(&["reference", "markdown"]);
    let checked_in = std::fs::read_to_string("docs/configuration.md").unwrap();
    assert!(
        generated == checked_in,
        "docs/configuration.md is stale: run `cargo run -q -- reference markdown > docs/configuration.md`"
    );
}

#[test]
fn packaged_config_names_the_schema() {
    let cfg = std::fs::read_to_string("config/backupmanager.yaml").unwrap();
    assert!(
        cfg.starts_with("# yaml-language-server: $schema="),
        "first line must point editors at the schema"
    );
    let schema: serde_json::Value = serde_json::from_str(&run(&["schema"])).unwrap();
    assert_eq!(schema["type"], "object");
    assert_eq!(
        schema["properties"]["jobs"]["items"]["additionalProperties"],
        false
    );
}
