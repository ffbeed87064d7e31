//! # aa-proxy
//!
//! The sidecar proxy of Agent Assembly: a forward proxy (plain HTTP and `CONNECT`) that
//! terminates TLS with per-host certificates from a local CA, speaks HTTP/1.1 and HTTP/2 on both
//! sides, passes WebSockets, re-originates TLS to the upstream with full verification, and
//! decides every request before it leaves the machine: `http_request` for all, `model_call` for
//! LLM APIs (usage charged from the response, streamed or not), `mcp_call` for MCP `tools/call`
//! (a deny is a JSON-RPC error; `tools/list` answers are filtered to what the agent may call).
//! Built on `hudsucker` (hyper + rustls), with our own CA (rcgen) for IP-literal hosts and a
//! bounded leaf cache.

pub mod ca;
pub use limits::{BodyLimitError, Limits};
mod config;
mod handler;
mod identity;
mod limits;
mod mcp;
mod stall;
mod stats;
mod upstream;
mod ws;

use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder as ServerBuilder;

pub use config::{LlmEndpoint, ProxyConfig};
pub use stats::ProxyStats;

/// Why the proxy cannot start or run.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Files and sockets.
    #[error("{0}")]
    Io(String),
    /// The local CA.
    #[error("local CA: {0}")]
    Ca(String),
    /// The decision client.
    #[error(transparent)]
    Client(#[from] aa_sdk_client::ClientError),
    /// The proxy library.
    #[error("proxy: {0}")]
    Proxy(String),
}

/// Runs the proxy until `shutdown` resolves. `on_listen` receives the bound address.
pub async fn run(
    config: ProxyConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(std::net::SocketAddr) + Send + 'static,
) -> Result<(), ProxyError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert_pem, key) = ca::load_or_create(&config.ca_dir)?;
    let local_ca = ca::LocalCa::new(&cert_pem, key, config.leaf_cache)?;
    let governor = {
        let input = config.client.clone();
        tokio::task::spawn_blocking(move || {
            aa_sdk_client::ClientConfig::resolve(input).and_then(|mut c| {
                c.layer = aa_core::Layer::Proxy;
                aa_sdk_client::Governor::start(c)
            })
        })
        .await
        .map_err(|e| ProxyError::Proxy(e.to_string()))??
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| ProxyError::Io(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ProxyError::Io(e.to_string()))?;
    let stats = Arc::new(ProxyStats::default());
    let upstreams = upstream::connectors(&config)?;
    let shared = Arc::new(handler::Shared::new(
        config.clone(),
        governor,
        stats.clone(),
        addr,
        upstreams.websocket.clone(),
    ));
    // hudsucker's own server settings, plus the client-side limits.
    let mut server = ServerBuilder::new(TokioExecutor::new());
    server
        .http1()
        .title_case_headers(true)
        .preserve_header_case(true)
        .timer(TokioTimer::new())
        .header_read_timeout(config.limits.header_timeout)
        .max_buf_size(config.limits.max_header_bytes.max(8192));
    server
        .http2()
        .max_header_list_size(u32::try_from(config.limits.max_header_bytes).unwrap_or(u32::MAX));
    let proxy = hudsucker::Proxy::builder()
        .with_listener(listener)
        .with_ca(local_ca)
        .with_http_connector(upstreams.http.clone())
        .with_http1_connector(upstreams.http1)
        .with_http_handler(handler::GovernHandler::new(shared.clone()))
        .with_server(server)
        .with_graceful_shutdown(shutdown)
        .build()
        .map_err(|e| ProxyError::Proxy(e.to_string()))?;
    on_listen(addr);
    let result = proxy
        .start()
        .await
        .map_err(|e| ProxyError::Proxy(e.to_string()));
    let g = shared.governor.clone();
    let _ = tokio::task::spawn_blocking(move || g.close(std::time::Duration::from_secs(5))).await;
    result
}
