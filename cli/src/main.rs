//! `aasm`: the Agent Assembly command line.

mod cli;
mod client;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // One TLS crypto provider for the process (ring): the gateway client and server use it.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
