//! The upstream side: TLS re-originated with full verification (webpki roots, the system store,
//! and an optional extra CA bundle), HTTP/1.1 and HTTP/2 by ALPN, connect and stall timeouts.

use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::stall::StallConnector;
use crate::{ProxyConfig, ProxyError};

/// How the proxy reaches upstreams: HTTP(S) requests, and WebSockets (same trust, HTTP/1.1 only).
pub(crate) struct Upstreams {
    /// For requests from HTTP/2 clients: HTTP/2 or HTTP/1.1, as the upstream offers.
    pub(crate) http: StallConnector<HttpsConnector<HttpConnector>>,
    /// For requests from HTTP/1.x clients: HTTP/1.1 only, one pooled connection per request in
    /// flight, as the client itself would have had (no stream on a shared HTTP/2 connection).
    pub(crate) http1: StallConnector<HttpsConnector<HttpConnector>>,
    pub(crate) websocket: hudsucker::tokio_tungstenite::Connector,
}

/// Builds the upstream connectors from the proxy configuration.
pub(crate) fn connectors(config: &ProxyConfig) -> Result<Upstreams, ProxyError> {
    let tls = client_tls(config)?;
    Ok(Upstreams {
        websocket: hudsucker::tokio_tungstenite::Connector::Rustls(Arc::new(tls.clone())),
        http1: http_connector(config, tls.clone(), false),
        http: http_connector(config, tls, true),
    })
}

fn client_tls(config: &ProxyConfig) -> Result<rustls::ClientConfig, ProxyError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots_anchors());
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &config.upstream_ca {
        let pem =
            std::fs::read(path).map_err(|e| ProxyError::Io(format!("{}: {e}", path.display())))?;
        let mut added = 0;
        for item in rustls_pemfile_certs(&pem) {
            if roots.add(item).is_ok() {
                added += 1;
            }
        }
        if added == 0 {
            return Err(ProxyError::Io(format!(
                "{}: no certificate found",
                path.display()
            )));
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ProxyError::Proxy(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

fn http_connector(
    config: &ProxyConfig,
    tls: rustls::ClientConfig,
    http2: bool,
) -> StallConnector<HttpsConnector<HttpConnector>> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(config.upstream_timeout));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1();
    let https = if http2 {
        https.enable_http2().wrap_connector(http)
    } else {
        https.wrap_connector(http)
    };
    // An upstream that accepts and then hangs is cut off: neither the connect (TCP and TLS) nor,
    // later, any read or write may stall longer.
    StallConnector::new(https, config.upstream_timeout)
}

fn webpki_roots_anchors() -> impl Iterator<Item = rustls::pki_types::TrustAnchor<'static>> {
    webpki_roots::TLS_SERVER_ROOTS.iter().cloned()
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}
