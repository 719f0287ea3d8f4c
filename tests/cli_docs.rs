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
        // Job ids come from `__complete-jobs` (bash is exercised in bash_completes_job_ids...).
        let job_ids = match shell {
            "bash" => "_backupmanager_clap \"$@\"",
            "zsh" => ":id -- The job'\\''s id:_backupmanager_job_ids'",
            _ => "-f -a \"(__fish_backupmanager_job_ids)\"",
        };
        assert!(script.contains(job_ids), "{shell}: no {job_ids:?}");
        assert!(script.contains("__complete-jobs 2>/dev/null"), "{shell}");
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

#[test]
fn man_pages_have_examples_and_a_synopsis_with_values() {
    use backupmanager::commands::reference::EXAMPLES;
    use clap::{CommandFactory, Parser};
    // Every example is a real invocation of the clap definition.
    for (sub, args, _) in EXAMPLES {
        let argv = std::iter::once("backupmanager").chain(args.iter().copied());
        let cli = backupmanager::cli::Cli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("example {args:?} does not parse: {e}"));
        let name = format!("{:?}", cli.command).to_lowercase().replace('_', "");
        assert!(
            name.starts_with(&sub.replace('-', "")),
            "example {args:?} is listed under {sub}"
        );
    }
    let dir = Scratch::new("bm-cli-docs.");
    stdout(&["reference", "man", dir.path().to_str().unwrap()]);
    let page = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    for sub in backupmanager::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
    {
        let name = sub.get_name();
        assert!(
            EXAMPLES.iter().any(|(s, _, _)| *s == name),
            "{name} has no example"
        );
        let text = page(&format!("backupmanager-{name}.1"));
        let examples = text
            .split_once(".SH EXAMPLES\n")
            .unwrap_or_else(|| panic!("backupmanager-{name}.1 has no EXAMPLES"))
            .1;
        assert!(examples.contains(&format!("\\fBbackupmanager {}", name.replace('-', "\\-"))));
        // The synopsis names the subcommand's own options, not the global ones.
        let synopsis = text
            .split_once(".SH SYNOPSIS\n")
            .unwrap()
            .1
            .split_once(".SH ")
            .unwrap()
            .0;
        assert!(synopsis.contains("[\\fIGLOBAL OPTIONS\\fR]"), "{synopsis}");
        assert!(!synopsis.contains("log\\-level"), "{synopsis}");
    }
    let restore = page("backupmanager-restore.1");
    for needle in [
        "[\\fB\\-\\-path\\fR \\fISUBPATH\\fR]...",
        " \\fB\\-\\-to\\fR \\fIDIR\\fR ",
        "\\fIJOB_ID\\fR\n",
        "\\fBbackupmanager restore projects_hourly \\-\\-to /tmp/restore\\fR",
    ] {
        assert!(restore.contains(needle), "restore page lacks {needle}");
    }
    assert!(page("backupmanager-validate.1")
        .contains("[\\fB\\-\\-format\\fR \\fBtext\\fR|\\fBjson\\fR]"));
    assert!(page("backupmanager-next.1").contains("\\-\\-expr '30 1 * * *' \\-n 3"));
    let main = page("backupmanager.1");
    assert!(main.contains(".SH EXAMPLES\n"));
    assert!(main.contains("\\fBbackupmanager run\\-job \\-\\-dry\\-run home_to_usb\\fR"));
    assert!(main.contains("[\\fB\\-c\\fR|\\fB\\-\\-config\\fR \\fIPATH\\fR]"));
    for text in std::fs::read_dir(dir.path()).unwrap() {
        let text = std::fs::read_to_string(text.unwrap().path()).unwrap();
        assert!(
            !text.contains("complete\\-jobs"),
            "hidden subcommand in a man page"
        );
    }

    // The examples that need no jobs run as printed.
    for (_, args, _) in EXAMPLES {
        if matches!(args[0], "schema" | "completions") || args.contains(&"--expr") {
            bm(args);
        }
    }
}

/// A config of two jobs, for completion.
fn two_jobs(dir: &Scratch) -> String {
    let path = dir.p("bm.yaml");
    std::fs::write(
        &path,
        "cron_schedule: '0 3 * * *'\njobs:\n  - id: alpha_job\n    syncs:\n      - source: /nonexistent/a/\n        dest: /nonexistent/b/\n  - id: beta_job\n    syncs:\n      - source: /nonexistent/a/\n        dest: /nonexistent/c/\n",
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn complete_jobs_prints_the_job_ids_and_never_fails() {
    let dir = Scratch::new("bm-cli-docs.");
    let config = two_jobs(&dir);
    assert_eq!(
        stdout(&["--config", &config, "__complete-jobs"]),
        "alpha_job\nbeta_job\n"
    );
    let missing = dir.s("missing.yaml");
    let out = bm(&["--config", &missing, "__complete-jobs"]);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    std::fs::write(dir.p("broken.yaml"), "jobs: [\n").unwrap();
    assert!(bm(&["-c", &dir.s("broken.yaml"), "__complete-jobs"])
        .stdout
        .is_empty());
    // Hidden: not in --help, nor offered by the completions.
    assert!(!stdout(&["--help"]).contains("complete-jobs"));
    let bash = stdout(&["completions", "bash"]);
    assert!(
        !bash.contains("opts=\"__complete-jobs") && !bash.contains(" __complete-jobs validate")
    );
}

#[test]
fn bash_completes_job_ids_from_the_config() {
    if Command::new("bash").arg("--version").output().is_err() {
        return;
    }
    let dir = Scratch::new("bm-cli-docs.");
    let config = two_jobs(&dir);
    let script = dir.p("completion.bash");
    std::fs::write(&script, stdout(&["completions", "bash"])).unwrap();
    // The completion runs `backupmanager` from PATH.
    let bin = Path::new(env!("CARGO_BIN_EXE_backupmanager"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let complete = |words: &[&str]| -> Vec<String> {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let body = format!(
            "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
             COMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n\
             _backupmanager backupmanager \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            script.display(),
            quoted.join(" ")
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(body)
            .env("PATH", &path)
            .env("BACKUPMANAGER_CONFIG", dir.p("none.yaml"))
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{words:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    let both = vec!["alpha_job".to_string(), "beta_job".to_string()];
    let c = config.as_str();
    assert_eq!(
        complete(&["backupmanager", "--config", c, "run-job", ""]),
        both
    );
    assert_eq!(
        complete(&["backupmanager", "-c", c, "snapshots", "b"]),
        ["beta_job"]
    );
    assert_eq!(
        complete(&["backupmanager", "run-job", "--config", c, "--dry-run", ""]),
        both
    );
    assert_eq!(
        complete(&["backupmanager", "--config", "=", c, "logs", ""]),
        both
    );
    assert_eq!(
        complete(&["backupmanager", "-c", c, "status", "alpha_job", ""]),
        both
    );
    assert_eq!(
        complete(&["backupmanager", "-c", c, "history", "-n", "30", ""]),
        both
    );
    for sub in ["prune", "restore", "next"] {
        assert_eq!(
            complete(&["backupmanager", "-c", c, sub, ""]),
            both,
            "{sub}"
        );
    }
    // Once the one job id is given, or for a run id, or with no readable config: no ids.
    let no_ids = |words: &[&str]| {
        let got = complete(words);
        assert!(
            !got.iter().any(|w| w.ends_with("_job")),
            "{words:?}: {got:?}"
        );
    };
    no_ids(&["backupmanager", "-c", c, "run-job", "alpha_job", ""]);
    no_ids(&["backupmanager", "-c", c, "show", ""]);
    no_ids(&["backupmanager", "-c", c, "next", "--expr", ""]);
    no_ids(&["backupmanager", "run-job", ""]);
    // Option values still come from clap.
    assert_eq!(
        complete(&["backupmanager", "-c", c, "validate", "--format", ""]),
        ["text", "json"]
    );
    assert_eq!(
        complete(&["backupmanager", "-c", c, "snapshots", "--format", ""]),
        ["text", "json"]
    );
    assert_eq!(
        complete(&["backupmanager", "-c", c, "run-job", "--d"]),
        ["--dry-run"]
    );
}
