//! What the package build generates from the binary: `--version` with the git commit, the man
//! pages (`reference man DIR`) and the shell completions (`completions SHELL`).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::Scratch;

fn bm(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_backupmanager"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "backupmanager {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(args: &[&str]) -> String {
    String::from_utf8(bm(args).stdout).unwrap()
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
}

#[test]
fn version_names_the_commit() {
    let v = stdout(&["--version"]);
    let rest = v
        .trim_end()
        .strip_prefix(&format!(
            "backupmanager {} (commit ",
            env!("CARGO_PKG_VERSION")
        ))
        .unwrap_or_else(|| panic!("unexpected --version: {v:?}"));
    let commit = rest.strip_suffix(')').expect("closing parenthesis");
    let here = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    let in_checkout = git(&["rev-parse", "--show-toplevel"])
        .is_some_and(|top| Path::new(&top).canonicalize().ok() == Some(here.clone()));
    if in_checkout {
        // build.rs reruns when HEAD moves, so the binary cargo just built names HEAD.
        let head = git(&["rev-parse", "HEAD"]).unwrap();
        assert!(
            commit.len() >= 7 && head.starts_with(commit),
            "--version says {commit}, HEAD is {head}"
        );
    } else {
        assert_eq!(commit, "unknown");
    }
    // Subcommands print it too.
    assert!(stdout(&["validate", "--version"]).contains(commit));
}

#[test]
fn man_pages_cover_every_subcommand() {
    let dir = Scratch::new("bm-cli-docs.");
    let listed = stdout(&["reference", "man", dir.path().to_str().unwrap()]);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // Every visible subcommand of the clap definition gets a page; the hidden `reference` does not.
    use clap::CommandFactory;
    let mut want: Vec<String> = backupmanager::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| format!("backupmanager-{}.1", c.get_name()))
        .collect();
    want.extend([
        "backupmanager.1".to_string(),
        "backupmanager.yaml.5".to_string(),
    ]);
    want.sort();
    assert!(
        want.contains(&"backupmanager-status.1".to_string())
            && !want.iter().any(|w| w.contains("reference"))
    );
    assert_eq!(
        names, want,
        "hidden `reference` gets no page, every other one does"
    );
    assert_eq!(listed.lines().count(), want.len());

    let main = std::fs::read_to_string(dir.path().join("backupmanager.1")).unwrap();
    for needle in [
        ".TH backupmanager 1",
        "backupmanager\\-validate(1)",
        ".SH EXIT STATUS",
        "/etc/backupmanager/backupmanager.yaml",
        ".BR backupmanager.yaml (5),",
    ] {
        assert!(main.contains(needle), "backupmanager.1 lacks {needle}");
    }
    assert!(!main.contains("reference"), "hidden subcommand leaked");
    let run_job = std::fs::read_to_string(dir.path().join("backupmanager-run-job.1")).unwrap();
    assert!(run_job.contains("dry\\-run"));
    assert!(run_job.contains("config"), "global options are propagated");

    // Render each page the way `man` does and require no groff warnings.
    if Command::new("man").arg("--version").output().is_ok() {
        for name in &want {
            let out = Command::new("man")
                .args(["--warnings", "-E", "UTF-8", "-l"])
                .arg(dir.path().join(name))
                .env("MANWIDTH", "80")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && err.is_empty(), "{name}: {err}");
        }
    }
}

#[test]
fn completions_for_bash_zsh_fish() {
    for (shell, marker) in [
        ("bash", "complete -F _backupmanager"),
        ("zsh", "#compdef backupmanager"),
        ("fish", "complete -c backupmanager"),
    ] {
        let script = stdout(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for word in ["run-job", "validate", "config", "dry-run", "log-format"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        assert!(
            !script.contains("reference"),
            "{shell}: hidden subcommand offered"
        );
        // Syntax-check with the shell itself where it is installed.
        let check: &[&str] = match shell {
            "bash" | "zsh" => &["-n"],
            _ => &["--no-execute"],
        };
        let dir = Scratch::new("bm-cli-docs.");
        let file = dir.path().join("completion");
        std::fs::write(&file, &script).unwrap();
        if let Ok(out) = Command::new(shell).args(check).arg(&file).output() {
            assert!(
                out.status.success(),
                "{shell} rejects its completion script: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_backupmanager"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "unknown shell is a usage error");
}
