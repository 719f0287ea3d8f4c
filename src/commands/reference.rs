//! Generated documentation from the clap definition: man pages (`backupmanager reference man
//! DIR`, hidden, called by `scripts/package`) and shell completions (`backupmanager completions
//! SHELL`, which complete job ids through the hidden `backupmanager __complete-jobs`). Each man
//! page gets a SYNOPSIS with option values and an EXAMPLES section from [`EXAMPLES`]. Nothing
//! here is checked in; the package build runs these.

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

pub use super::examples::EXAMPLES;

/// The examples shown in backupmanager(1).
const MAIN_EXAMPLES: &[&str] = &["validate", "run-job", "status", "history", "next"];

/// Roff text: backslashes and hyphens escaped.
fn roff_escape(s: &str) -> String {
    s.replace('\\', "\\e").replace('-', "\\-")
}

/// An argument quoted for a POSIX shell where it needs it.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// EXAMPLES of `backupmanager-SUB(1)`, or of backupmanager(1) for `None` (the first example of
/// a few subcommands).
fn examples_section(sub: Option<&str>) -> String {
    let picked: Vec<&(&str, &[&str], &str)> = match sub {
        Some(sub) => EXAMPLES.iter().filter(|(s, _, _)| *s == sub).collect(),
        None => MAIN_EXAMPLES
            .iter()
            .filter_map(|m| EXAMPLES.iter().find(|(s, _, _)| s == m))
            .collect(),
    };
    if picked.is_empty() {
        return String::new();
    }
    let mut s = String::from(".SH EXAMPLES\n");
    for (_, args, what) in picked {
        let line: Vec<String> = std::iter::once("backupmanager".to_string())
            .chain(args.iter().map(|a| shell_quote(a)))
            .collect();
        s.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            roff_escape(&line.join(" ")),
            roff_escape(what)
        ));
    }
    s
}

/// One argument in a synopsis: `[\-\-format text|json]`, `\fIJOB_ID\fR`, `[\fIJOB_ID\fR]...`.
fn synopsis_arg(a: &clap::Arg) -> String {
    let value = || {
        let possible: Vec<String> = a
            .get_possible_values()
            .iter()
            .filter(|p| !p.is_hide_set())
            .map(|p| format!("\\fB{}\\fR", roff_escape(p.get_name())))
            .collect();
        if !possible.is_empty() {
            possible.join("|")
        } else {
            let name = a
                .get_value_names()
                .map(|v| v.join(" "))
                .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
            format!("\\fI{}\\fR", roff_escape(&name))
        }
    };
    let mut s = if a.is_positional() {
        value()
    } else {
        let mut names = Vec::new();
        if let Some(c) = a.get_short() {
            names.push(format!("\\fB\\-{c}\\fR"));
        }
        if let Some(l) = a.get_long() {
            names.push(format!("\\fB\\-\\-{}\\fR", roff_escape(l)));
        }
        let mut s = names.join("|");
        if a.get_action().takes_values() {
            s = format!("{s} {}", value());
        }
        s
    };
    if !a.is_required_set() {
        s = format!("[{s}]");
    }
    let many = matches!(a.get_action(), clap::ArgAction::Append)
        || a.get_num_args().is_some_and(|n| n.max_values() > 1);
    if many {
        s.push_str("...");
    }
    s
}

/// SYNOPSIS: the options with their values. A subcommand page shows its own options and
/// `[GLOBAL OPTIONS]` (described under OPTIONS); the main page shows the global ones.
fn synopsis_section(cmd: &clap::Command, is_sub: bool) -> String {
    let globals: Vec<String> = Cli::command()
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    let shown =
        |a: &&clap::Arg| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version");
    // No hyphenation: `\-\-snapshot` must not break at a hyphen of its own.
    let mut s = String::from(".SH SYNOPSIS\n.nh\n");
    if is_sub {
        let mut own: Vec<&clap::Arg> = cmd
            .get_arguments()
            .filter(shown)
            .filter(|a| !globals.iter().any(|g| g == a.get_id().as_str()))
            .collect();
        // Options first, then the positionals.
        own.sort_by_key(|a| a.is_positional());
        let own = own.into_iter().map(synopsis_arg);
        let mut line = vec![
            "\\fBbackupmanager\\fR".to_string(),
            "[\\fIGLOBAL OPTIONS\\fR]".to_string(),
            format!("\\fB{}\\fR", roff_escape(cmd.get_name())),
        ];
        line.extend(own);
        s.push_str(&line.join(" "));
        s.push('\n');
    } else {
        let mut line = vec!["\\fBbackupmanager\\fR".to_string()];
        line.extend(cmd.get_arguments().filter(shown).map(synopsis_arg));
        line.push("\\fICOMMAND\\fR [\\fIARGS\\fR]".to_string());
        s.push_str(&line.join(" "));
        s.push_str("\n.br\n\\fBbackupmanager\\fR \\fB\\-h\\fR|\\fB\\-\\-help\\fR|\\fB\\-V\\fR|\\fB\\-\\-version\\fR\n");
    }
    s.push_str(".hy\n");
    s
}

/// `page` with the body of section `name` replaced by `section` (which has its own `.SH`).
fn replace_section(page: &str, name: &str, section: &str) -> String {
    let head = format!(".SH {name}\n");
    let Some(start) = page.find(&head) else {
        return page.to_string();
    };
    let end = page[start + head.len()..]
        .find("\n.SH ")
        .map_or(page.len(), |i| start + head.len() + i + 1);
    format!("{}{}{}", &page[..start], section, &page[end..])
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
    let sub = name.strip_prefix("backupmanager-").map(str::to_string);
    let synopsis = synopsis_section(&cmd, sub.is_some());
    let man = clap_mangen::Man::new(cmd)
        .section("1")
        .source(format!("backupmanager {}", crate::cli::VERSION))
        .manual("backupmanager manual");
    let mut rendered = Vec::new();
    man.render(&mut rendered)?;
    let rendered = String::from_utf8(rendered).expect("roff is UTF-8");
    let mut out = replace_section(&rendered, "SYNOPSIS", &synopsis).into_bytes();
    out.extend_from_slice(examples_section(sub.as_deref()).as_bytes());
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
    let mut script = String::from_utf8(buf).expect("completion scripts are UTF-8");
    match shell {
        clap_complete::Shell::Bash => script = bash_job_ids(&script),
        clap_complete::Shell::Fish => script.push_str(&fish_job_ids()),
        clap_complete::Shell::Zsh => script = zsh_job_ids(&script),
        _ => {}
    }
    out.write_all(script.as_bytes())?;
    out.flush()
}

/// `__complete-jobs`: the job ids of the config at `path`, one a line. Prints nothing, and
/// still exits 0, when the config cannot be read: a completion must never complain.
pub fn print_job_ids(path: &Path) -> i32 {
    if let Some(config) = crate::config::load(path).config {
        let mut out = io::stdout().lock();
        for job in &config.jobs {
            if writeln!(out, "{}", job.id).is_err() {
                break;
            }
        }
    }
    0
}

/// The subcommands whose positional is a job id (value name `JOB_ID`, or `JOB|RUN_ID` for
/// `logs`), and whether it takes several: derived from the clap definition.
fn job_id_subcommands() -> Vec<(String, bool)> {
    public_command()
        .get_subcommands()
        .filter_map(|sub| {
            let pos = sub.get_positionals().find(|a| {
                a.get_value_names().is_some_and(|v| {
                    v.iter()
                        .any(|n| n.split('|').any(|p| p == "JOB_ID" || p == "JOB"))
                })
            })?;
            let many = matches!(pos.get_action(), clap::ArgAction::Append)
                || pos.get_num_args().is_some_and(|n| n.max_values() > 1);
            Some((sub.get_name().to_string(), many))
        })
        .collect()
}

/// The options of `cmd` that take a value, as ` -n --count ` (spaces around each).
fn value_options(cmd: &clap::Command) -> String {
    let mut s = String::from(" ");
    for a in cmd.get_arguments().filter(|a| !a.is_positional()) {
        if !a.get_action().takes_values() {
            continue;
        }
        if let Some(c) = a.get_short() {
            s.push_str(&format!("-{c} "));
        }
        if let Some(l) = a.get_long() {
            s.push_str(&format!("--{l} "));
        }
    }
    s
}

/// clap_complete's bash function, renamed `_backupmanager_clap`, under a `_backupmanager` that
/// calls it and then, where the word is a job id, offers the ids `backupmanager __complete-jobs`
/// prints for the config on the command line (`-c`/`--config`, else the default/environment).
fn bash_job_ids(clap_script: &str) -> String {
    const CLAP_FN: &str = "_backupmanager() {\n";
    if !clap_script.starts_with(CLAP_FN) {
        // clap_complete changed its layout: keep its completion as it is.
        return clap_script.to_string();
    }
    let mut s = clap_script.replacen(CLAP_FN, "_backupmanager_clap() {\n", 1);
    let root = public_command();
    let globals = value_options(&root);
    let mut takes = String::new();
    for sub in root.get_subcommands() {
        let own = value_options(sub);
        if own.trim().is_empty() {
            continue;
        }
        takes.push_str(&format!(
            "        {}) opts=\"{}\" ;;\n",
            sub.get_name(),
            own.trim()
        ));
    }
    let mut single = Vec::new();
    let mut many = Vec::new();
    for (name, m) in job_id_subcommands() {
        if m {
            many.push(name)
        } else {
            single.push(name)
        }
    }
    s.push_str(&format!(
        r#"
# Job ids from the config (`backupmanager __complete-jobs`), for the JOB_ID arguments.
_backupmanager_job_ids() {{
    local i w cfg=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        if [[ $w == -c || $w == --config ]]; then
            w="${{COMP_WORDS[i+1]}}"
            [[ $w == = ]] && w="${{COMP_WORDS[i+2]}}"
            [[ $w == "~/"* ]] && w="$HOME/${{w#\~/}}"
            cfg=(--config "$w")
        fi
    done
    backupmanager "${{cfg[@]}}" __complete-jobs 2>/dev/null
}}

# Whether option $2 of subcommand $1 takes a value.
_backupmanager_takes_value() {{
    local opts=""
    case "$1" in
{takes}    esac
    opts=" $opts {globals} "
    [[ $opts == *" $2 "* ]]
}}

_backupmanager() {{
    _backupmanager_clap "$@"
    local cur="${{COMP_WORDS[COMP_CWORD]}}"
    [[ $cur == -* ]] && return 0
    local i w sub="" value=0 npos=0 expr=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        if [[ $w == = ]]; then
            value=1
            continue
        fi
        if ((value)); then
            value=0
            continue
        fi
        if [[ $w == -* ]]; then
            [[ $w == --expr ]] && expr=1
            _backupmanager_takes_value "$sub" "${{w%%=*}}" && [[ $w != *=* ]] && value=1
            continue
        fi
        if [[ -z $sub ]]; then
            sub="$w"
        else
            npos=$((npos + 1))
        fi
    done
    ((value)) && return 0
    case "$sub" in
        {single}) ((npos == 0)) || return 0 ;;
        {many}) ((expr == 0)) || return 0 ;;
        *) return 0 ;;
    esac
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$(_backupmanager_job_ids)" -- "$cur"))
}}
"#,
        single = single.join("|"),
        many = many.join("|"),
        globals = globals.trim(),
    ));
    s
}

/// Zsh: the `_default` action of the job-id positionals becomes `_backupmanager_job_ids`,
/// defined before the script's last block (which runs `_backupmanager` on autoload).
fn zsh_job_ids(clap_script: &str) -> String {
    const LAST: &str = "if [ \"$funcstack[1]\" = \"_backupmanager\" ]; then";
    let root = public_command();
    let jobs: Vec<String> = job_id_subcommands().into_iter().map(|(n, _)| n).collect();
    let ids = |job_subs: bool| -> Vec<String> {
        root.get_subcommands()
            .filter(|s| jobs.iter().any(|j| j == s.get_name()) == job_subs)
            .flat_map(|s| {
                s.get_positionals()
                    .map(|a| a.get_id().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (job_ids, other_ids) = (ids(true), ids(false));
    let Some(at) = clap_script.rfind(LAST) else {
        return clap_script.to_string();
    };
    if job_ids.iter().any(|i| other_ids.contains(i)) {
        // A positional name used by both kinds: it cannot be told apart in the script.
        return clap_script.to_string();
    }
    let mut out = String::new();
    for line in clap_script[..at].split_inclusive('\n') {
        let spec = line.trim_start();
        let is_job = job_ids.iter().any(|id| {
            [":", "::", "*::"]
                .iter()
                .any(|p| spec.starts_with(&format!("'{p}{id} -- ")))
        });
        if is_job && line.contains(":_default'") {
            out.push_str(&line.replacen(":_default'", ":_backupmanager_job_ids'", 1));
        } else {
            out.push_str(line);
        }
    }
    out.push_str(
        r#"# Job ids from the config (`backupmanager __complete-jobs`), for the JOB_ID arguments.
(( $+functions[_backupmanager_job_ids] )) ||
_backupmanager_job_ids() {
    local -a words_ ids cfg expl
    local i
    words_=(${(z)LBUFFER})
    for ((i = 1; i < ${#words_}; i++)); do
        case ${words_[i]} in
            -c|--config) cfg=(--config ${~words_[i+1]}) ;;
            --config=*) cfg=(--config ${~words_[i]#--config=}) ;;
        esac
    done
    ids=(${(f)"$(backupmanager $cfg __complete-jobs 2>/dev/null)"})
    _wanted jobs expl 'job id' compadd -a ids
}

"#,
    );
    out.push_str(&clap_script[at..]);
    out
}

/// Fish: job ids for the subcommands that take them, from the config on the command line.
fn fish_job_ids() -> String {
    let subs: Vec<String> = job_id_subcommands().into_iter().map(|(n, _)| n).collect();
    format!(
        r#"
# Job ids from the config (`backupmanager __complete-jobs`), for the JOB_ID arguments.
function __fish_backupmanager_job_ids
    command -q backupmanager; or return
    set -l words (commandline -opc)
    set -l cfg
    for i in (seq (count $words))
        if contains -- $words[$i] -c --config; and test $i -lt (count $words)
            set cfg --config $words[(math $i + 1)]
        end
    end
    backupmanager $cfg __complete-jobs 2>/dev/null
end
complete -c backupmanager -n "__fish_seen_subcommand_from {}" -f -a "(__fish_backupmanager_job_ids)"
"#,
        subs.join(" ")
    )
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
