//! `aasm`: the Agent Assembly command line.

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let out = output::Printer::new(cli.json);
    match commands::run(cli.command, &out) {
        Ok(status) => status.into(),
        Err(e) => {
            out.error(&e);
            output::Status::Failure.into()
        }
    }
}
