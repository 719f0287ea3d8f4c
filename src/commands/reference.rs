//! Generated documentation from the clap definition: man pages (`backupmanager reference man
//! DIR`, hidden, called by `scripts/package`) and shell completions (`backupmanager completions
//! SHELL`). Nothing here is checked in; the package build runs these.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cli::Cli;
use crate::config::reference;

/// EXIT STATUS of backupmanager(1), from the codes in `exit.rs`.
fn exit_status_section() -> String {
    use crate::exit::{BLOCKED, CONFIG, FAILED, OK, USAGE};
    let mut s = String::from(".SH EXIT STATUS\n");
    for (code, meaning) in [
        (OK, "Success."),
        (
            FAILED,
            "A job ran and failed (rsync error, refused to sync, lock trouble).",
        ),
        (USAGE, "Wrong command-line usage."),
        (
            BLOCKED,
            "A job was blocked (max_wait passed, or \\-\\-no\\-wait) and did not run.",
        ),
        (CONFIG, "The configuration is invalid."),
    ] {
        s.push_str(&format!(".TP\n.B {code}\n{meaning}\n"));
    }
    s
}

/// Sections added to backupmanager(1) after clap_mangen's NAME, SYNOPSIS, DESCRIPTION, OPTIONS
/// and SUBCOMMANDS (and the EXIT STATUS above).
const MAIN_EXTRA: &str = r#".SH ENVIRONMENT
.TP
.B BACKUPMANAGER_CONFIG
Main config file, when \-\-config is not given.
.TP
.B RUST_LOG
Log filter, when \-\-log\-level is not given.
.TP
.B TZ
Time zone for schedules, when the config sets no timezone.
.SH FILES
.TP
.I /etc/backupmanager/backupmanager.yaml
Main config file; see
.BR backupmanager.yaml (5).
.TP
.I /etc/backupmanager/jobs.d/*.yaml
Drop-in job files.
.TP
.I /run/backupmanager/
Run locks of jobs and ssh control sockets (pid_file_dir).
.TP
.I /var/lib/backupmanager/
Persistent schedule state (state_dir).
.TP
.I /usr/share/backupmanager/backupmanager.schema.json
JSON Schema of the config file, for editors.
.TP
.I /usr/lib/systemd/system/backupmanager.service
The systemd unit. The package does not enable it: add jobs, check them with
.BR "backupmanager validate" ,
then run
.BR "systemctl enable \-\-now backupmanager" .
.TP
.I /usr/share/doc/backupmanager/examples/
Example configurations.
"#;

/// Every man page: the main one, one per visible subcommand, and backupmanager.yaml(5).
/// Returns the files written.
pub fn write_man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Propagates global options (--config, --log-level, ...) and versions into subcommands and
    // gives them their display names (backupmanager-validate).
    cmd.build();
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let sub_names: Vec<String> = subs.iter().map(page_name).collect();
    let mut written = Vec::new();

    let mut see_also = vec!["backupmanager.yaml(5)".to_string()];
    see_also.extend(sub_names.iter().map(|n| format!("{n}(1)")));
    see_also.extend(["rsync(1)", "ssh(1)", "systemctl(1)"].map(String::from));
    let extra = exit_status_section() + MAIN_EXTRA;
    written.push(write_page(dir, cmd.clone(), &extra, &see_also)?);

    for sub in subs {
        let see_also = ["backupmanager(1)", "backupmanager.yaml(5)"].map(String::from);
        written.push(write_page(dir, sub, "", &see_also)?);
    }

    let path = dir.join("backupmanager.yaml.5");
    std::fs::write(&path, reference::man_page(env!("CARGO_PKG_VERSION")))?;
    written.push(path);
    Ok(written)
}

fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

fn write_page(
    dir: &Path,
    cmd: clap::Command,
    extra: &str,
    see_also: &[String],
) -> io::Result<PathBuf> {
    let name = page_name(&cmd);
    let man = clap_mangen::Man::new(cmd)
        .section("1")
        .source(format!("backupmanager {}", crate::cli::VERSION))
        .manual("backupmanager manual");
    let mut out = Vec::new();
    man.render(&mut out)?;
    out.extend_from_slice(extra.as_bytes());
    out.extend_from_slice(b".SH \"SEE ALSO\"\n");
    for (i, page) in see_also.iter().enumerate() {
        let (n, sect) = page.split_once('(').expect("page(section)");
        let sep = if i + 1 < see_also.len() { "," } else { "" };
        writeln!(out, ".BR {} ({}{}", n.replace('-', "\\-"), sect, sep)?;
    }
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, out)?;
    Ok(path)
}

/// A completion script for `shell` on `out`. The hidden `reference` subcommand is left out
/// (clap_complete would offer it: it completes hidden subcommands too).
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut public_command(), "backupmanager", &mut buf);
    out.write_all(&buf)?;
    out.flush()
}

/// The command line without hidden subcommands.
fn public_command() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new("backupmanager")
        .version(crate::cli::VERSION)
        .args(full.get_arguments().cloned())
        .subcommand_required(true)
        .propagate_version(true);
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd.subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}
