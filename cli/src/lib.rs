//! # aasm
//!
//! The Agent Assembly command line as a library: [`run`] executes a parsed [`cli::Command`]
//! and returns the exit [`Status`]; the `aasm` binary only parses, calls, prints the error and
//! exits. Every gateway call goes through [`aa_sdk_client::GatewayClient`], every decision
//! through [`aa_sdk_client::Governor`].

pub mod cli;
mod commands;
mod dirs;
mod output;

pub use commands::run;
pub use output::{CliError, Printer, Status, render_diagnostic};
