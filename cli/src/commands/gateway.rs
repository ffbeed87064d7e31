//! `aasm gateway`: runs the server until SIGINT or SIGTERM.

use std::io::Write;

use aa_gateway::{Database, GatewayConfig, init_logging, serve};

use crate::cli::{GatewayArgs, LogFormat};
use crate::output::{CliError, Status};

pub fn run(args: GatewayArgs) -> Result<Status, CliError> {
    init_logging(matches!(args.log_format, LogFormat::Json));
    let mut config = GatewayConfig::new(args.listen, args.db);
    config.key = args.key;
    config.policy_dir = args.policy;
    config.tls = args.tls_cert.zip(args.tls_key);
    config.checkpoint_every = args.checkpoint_every;
    // Only from the environment: a token in argv shows in `ps`.
    config.admin_token = std::env::var("AA_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    if config.admin_token.is_none() && matches!(config.database(), Ok(Database::Sqlite(_))) {
        eprintln!(
            "admin token: {}",
            config.beside_db(".admin-token").display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    runtime.block_on(serve(config, shutdown_signal(), move |addr| {
        // Scripts and tests read this line to learn the port.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {scheme}://{addr}");
        let _ = out.flush();
    }))?;
    Ok(Status::Success)
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
