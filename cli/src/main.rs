//! `aasm`: the Agent Assembly command line (a thin `main` over the `aasm` library).

use std::process::ExitCode;

use aasm::{Printer, Status};
use clap::Parser;

// mimalloc: the gateway's ingest frees on one thread what another allocated, which glibc's
// arenas make costly (about 8% less gateway CPU per audit event, bench/proxy.sh's load).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // One TLS crypto provider for the process (ring): the gateway server uses it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = aasm::cli::Cli::parse();
    let out = Printer::new(cli.json);
    match aasm::run(cli.command, &out) {
        Ok(status) => status.into(),
        Err(e) => {
            out.error(&e);
            Status::Failure.into()
        }
    }
}
