//! The face: parse arguments, call one function, exit with the code it decided.

use clap::Parser;

use backupmanager::cli::{Cli, Command};
use backupmanager::commands;

fn main() {
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Validate { format } => commands::validate::run(&cli.config, *format),
        Command::Next {
            jobs,
            expr,
            from,
            count,
        } => commands::next::run(&cli.config, jobs, expr.as_deref(), from.as_deref(), *count),
    };
    std::process::exit(code);
}
