//! The face: parse arguments, call one function, exit with the code it decided.

use clap::Parser;

use backupmanager::cli::{Cli, Command};
use backupmanager::commands;
use backupmanager::run::RunOptions;

fn main() {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Daemon | Command::RunJob { .. }) {
        // Commands that only print (`status | head -1`) end quietly, like any Unix filter, when
        // the reader of stdout is gone: the default SIGPIPE action instead of `println!`
        // panicking on EPIPE. A run keeps Rust's SIG_IGN: a closed pipe must never kill it
        // while it holds locks (its log writes then just fail, see `logging`).
        restore_sigpipe();
    }
    // Taken out of the environment before any thread starts, so no child inherits it.
    let notifier = matches!(cli.command, Command::Daemon)
        .then(backupmanager::daemon::notify::Notifier::from_env);
    backupmanager::logging::init(cli.log_level.as_deref(), cli.log_format);
    if matches!(cli.command, Command::Daemon | Command::RunJob { .. }) {
        // Ctrl-Z stops rsync's process group with us (it has its own, so the terminal's
        // SIGTSTP would not reach it) and continues it only once the locks are re-verified.
        if let Err(e) = backupmanager::sys::jobctl::install() {
            eprintln!("backupmanager: cannot handle SIGTSTP: {e}");
            std::process::exit(backupmanager::exit::FAILED);
        }
    }
    let code = match &cli.command {
        Command::Status {
            jobs,
            format,
            check,
        } => commands::status::run(&cli.config, *format, jobs, *check),
        Command::Schema => {
            let schema = backupmanager::config::reference::json_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("schema serializes")
            );
            0
        }
        Command::Completions { shell } => {
            match commands::reference::write_completions(*shell, &mut std::io::stdout()) {
                Ok(()) => 0,
                // A closed pipe (`| head`) is not worth a message.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
                Err(e) => {
                    eprintln!("backupmanager: writing completions: {e}");
                    backupmanager::exit::FAILED
                }
            }
        }
        Command::Reference { kind } => {
            use backupmanager::cli::ReferenceKind;
            use backupmanager::config::reference;
            match kind {
                ReferenceKind::Markdown => print!("{}", reference::markdown()),
                ReferenceKind::ConfigMan => {
                    print!("{}", reference::man_page(env!("CARGO_PKG_VERSION")))
                }
                ReferenceKind::Man { dir } => match commands::reference::write_man_pages(dir) {
                    Ok(pages) => {
                        for p in pages {
                            println!("{}", p.display());
                        }
                    }
                    Err(e) => {
                        eprintln!("backupmanager: writing man pages to {}: {e}", dir.display());
                        std::process::exit(backupmanager::exit::FAILED);
                    }
                },
            }
            0
        }
        Command::CompleteJobs => commands::reference::print_job_ids(&cli.config),
        Command::Daemon => {
            backupmanager::daemon::run(&cli.config, notifier.expect("set for daemon"))
        }
        Command::RunJob {
            id,
            dry_run,
            no_wait,
        } => commands::run_job::run(
            &cli.config,
            id,
            RunOptions {
                dry_run: *dry_run,
                no_wait: *no_wait,
                ..RunOptions::default()
            },
            cli.log_format,
        ),
        Command::History {
            job,
            count,
            since,
            format,
            state_dir,
        } => commands::history::list(
            &cli.config,
            job.as_deref(),
            *count,
            since.as_deref(),
            *format,
            state_dir.as_deref(),
        ),
        Command::Show {
            run_id,
            format,
            state_dir,
        } => commands::history::show(&cli.config, run_id, *format, state_dir.as_deref()),
        Command::Logs {
            target,
            follow,
            state_dir,
        } => commands::logs::run(&cli.config, target, *follow, state_dir.as_deref()),
        Command::Validate { format } => commands::validate::run(&cli.config, *format),
        // A forced command: no config, nothing but its decision (and the exec of what it allows).
        Command::Gate { .. } => commands::gate::run(&cli.command),
        Command::Snapshots { id, format } => commands::snapshots::list(&cli.config, id, *format),
        Command::Prune {
            id,
            dry_run,
            format,
        } => commands::snapshots::prune(&cli.config, id, *dry_run, *format),
        Command::Restore {
            id,
            snapshot,
            sync,
            paths,
            to,
            dry_run,
            overwrite,
        } => commands::snapshots::restore(
            &cli.config,
            id,
            snapshot,
            *sync,
            paths,
            to,
            *dry_run,
            *overwrite,
        ),
        Command::Verify {
            id,
            snapshot,
            sync,
            read,
        } => commands::snapshots::verify(&cli.config, id, snapshot.as_deref(), *sync, *read),
        Command::Next {
            jobs,
            expr,
            from,
            count,
        } => commands::next::run(&cli.config, jobs, expr.as_deref(), from.as_deref(), *count),
        Command::WatchLock { timeout, path } => commands::watch_lock::run(path, *timeout),
        Command::Locks { action, format } => {
            commands::locks::run(&cli.config, action.as_ref(), *format)
        }
    };
    std::process::exit(code);
}

fn restore_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_DFL installs no handler code; nothing else has touched SIGPIPE yet.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
