//! The one client of the gateway's HTTP API (blocking, ureq), with the bodies of
//! [`aa_core::wire`]. The governor's background threads, its remote decisions, the proxy's
//! identity check and the `aasm` command line all use it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aa_core::audit::VerifyReport;
use aa_core::budget::BudgetStatus;
use aa_core::cases::AgentSpec;
use aa_core::wire::{
    AgentInfo, Announced, Announcement, AuditPage, DecideRequest, ErrorBody, EventsRequest,
    EventsResponse, PolicyDocument, PolicyVersion, PublicKey, RegisterRequest, Registered, WhoAmI,
};
use aa_core::{Action, Agent, AuditEvent, AuditRecord, Checkpoint, Decision, Layer, PolicyBundle};
use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::http::{Method, Response};

use crate::audit_stream::AuditStream;

/// Why a gateway request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The extra CA certificate could not be read.
    #[error("cannot read the CA certificate {}: {source}", path.display())]
    CaCert {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The extra CA certificate file holds no PEM certificate.
    #[error("{}: no certificate found", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// Not reached, refused, timed out or cut off: try again later.
    #[error("cannot reach the gateway at {url}: {source}")]
    Transport {
        /// The URL requested.
        url: String,
        /// The transport error.
        source: Box<ureq::Error>,
    },
    /// The gateway answered with an error status.
    #[error("gateway answered {status}: {message}")]
    Remote {
        /// HTTP status.
        status: u16,
        /// The error body's stable code (`unknown` when the body was not an error body).
        code: String,
        /// The error body's message (or the start of the body).
        message: String,
        /// The error body's details (Cedar diagnostics of a rejected policy).
        details: Option<Box<serde_json::Value>>,
    },
    /// A success status with a body that is not what the API promises.
    #[error("unexpected answer from the gateway to {what}: {source}")]
    Decode {
        /// The request.
        what: &'static str,
        /// Why the body did not decode.
        source: Box<ureq::Error>,
    },
    /// A request body could not be encoded as JSON.
    #[error("cannot encode the request: {0}")]
    Encode(serde_json::Error),
    /// The audit stream broke off.
    #[error("the audit stream was cut: {0}")]
    StreamCut(std::io::Error),
    /// A record of the audit stream that is not an audit record.
    #[error("malformed record in the audit stream: {0}")]
    Record(#[from] serde_json::Error),
}

impl GatewayError {
    /// Whether the same request may succeed later (unreachable, overloaded, 408/429/5xx, a
    /// token not known yet, no policy loaded yet). Anything else will always fail the same way.
    pub fn is_retryable(&self) -> bool {
        match self {
            GatewayError::Transport { .. }
            | GatewayError::Decode { .. }
            | GatewayError::StreamCut(_) => true,
            GatewayError::Remote { status, code, .. } => {
                matches!(status, 401 | 408 | 429 | 500..=599) || code == "no_policy"
            }
            GatewayError::CaCert { .. }
            | GatewayError::NoCertificate { .. }
            | GatewayError::Encode(_)
            | GatewayError::Record(_) => false,
        }
    }

    /// The HTTP status the gateway answered with, if it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            GatewayError::Remote { status, .. } => Some(*status),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, GatewayError>;

/// Timeouts and trust of a [`GatewayClient`].
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Timeout of one request, connection included.
    pub timeout: Duration,
    /// Longest policy long poll (added to `timeout` for `GET /v1/policy?wait=`).
    pub poll_wait: Duration,
    /// Extra CA certificate (PEM) to trust for a TLS gateway (instead of the built-in roots).
    pub ca_cert: Option<PathBuf>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            timeout: Duration::from_secs(5),
            poll_wait: Duration::from_secs(30),
            ca_cert: None,
        }
    }
}

/// A client of one gateway, with one bearer token. Cheap to clone.
#[derive(Clone)]
pub struct GatewayClient {
    agent: ureq::Agent,
    polling: ureq::Agent,
    tls: ureq::tls::TlsConfig,
    timeout: Duration,
    base: String,
    auth: String,
}

impl std::fmt::Debug for GatewayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn tls_config(ca_cert: Option<&Path>) -> Result<ureq::tls::TlsConfig> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).map_err(|source| GatewayError::CaCert {
            path: path.to_owned(),
            source,
        })?;
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(GatewayError::NoCertificate {
                path: path.to_owned(),
            });
        }
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    Ok(tls.build())
}

fn http_agent(
    tls: &ureq::tls::TlsConfig,
    timeout: Option<Duration>,
    connect: Duration,
) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(timeout)
        .timeout_connect(Some(connect))
        .http_status_as_error(false)
        .tls_config(tls.clone())
        // Never through an HTTP(S)_PROXY of the environment: an agent under `aasm run` has
        // one, and the gateway's bearer tokens are not for it.
        .proxy(None)
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        LiteralFirst::default(),
    )
}

/// ureq's resolver, minus a thread per request for an IP address: with a timeout set, ureq's
/// own resolver looks the host up on a new thread before every request, even for
/// `127.0.0.1` and even when a pooled connection is then reused (a shipper at 100 batches a
/// second started 100 threads a second; a remote decision paid for one each).
#[derive(Debug, Default)]
struct LiteralFirst(ureq::unversioned::resolver::DefaultResolver);

impl ureq::unversioned::resolver::Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> std::result::Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        if let Some(addr) = ip_literal(uri).filter(|a| {
            config
                .ip_family()
                .keep_wanted([*a].into_iter())
                .next()
                .is_some()
        }) {
            let mut addrs = self.0.empty();
            addrs.push(addr);
            return Ok(addrs);
        }
        self.0.resolve(uri, config, timeout)
    }
}

/// The socket address of a URI whose host is an IP address (`http` and `https` only).
fn ip_literal(uri: &ureq::http::Uri) -> Option<std::net::SocketAddr> {
    let authority = uri.authority()?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: std::net::IpAddr = host.parse().ok()?;
    let port = match (authority.port_u16(), uri.scheme_str()) {
        (Some(port), _) => port,
        (None, Some("http")) => 80,
        (None, Some("https")) => 443,
        (None, _) => return None,
    };
    Some(std::net::SocketAddr::new(ip, port))
}

/// Percent-encodes one path segment.
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The error of a non-success answer, from its `{"error": …}` body when it has one.
fn remote_error(status: u16, body: &str) -> GatewayError {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => GatewayError::Remote {
            status,
            code: error.code,
            message: error.message,
            details: error.details.map(Box::new),
        },
        Err(_) => GatewayError::Remote {
            status,
            code: "unknown".into(),
            message: if body.trim().is_empty() {
                "no error body".into()
            } else {
                body.chars().take(300).collect()
            },
            details: None,
        },
    }
}

impl GatewayClient {
    /// A client of the gateway at `base` (`http://host:port`), authenticating with `token`.
    pub fn new(base: &str, token: &str, options: &GatewayOptions) -> Result<Self> {
        let tls = tls_config(options.ca_cert.as_deref())?;
        let connect = options.timeout.min(Duration::from_secs(5));
        Ok(GatewayClient {
            agent: http_agent(&tls, Some(options.timeout), connect),
            polling: http_agent(&tls, Some(options.poll_wait + options.timeout), connect),
            tls,
            timeout: options.timeout,
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {token}"),
        })
    }

    /// The same gateway with another token (the proxy checks each agent's own token).
    pub fn with_token(&self, token: &str) -> Self {
        GatewayClient {
            auth: format!("Bearer {token}"),
            ..self.clone()
        }
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn transport(&self, path: &str) -> impl FnOnce(ureq::Error) -> GatewayError + '_ {
        let url = self.url(path);
        move |e| GatewayError::Transport {
            url,
            source: Box::new(e),
        }
    }

    /// Checks the status of an answer: 2xx passes, anything else becomes [`GatewayError`].
    fn check(mut resp: Response<ureq::Body>) -> Result<Response<ureq::Body>> {
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        Err(remote_error(status, &text))
    }

    fn decode<T: DeserializeOwned>(what: &'static str, resp: Response<ureq::Body>) -> Result<T> {
        Self::check(resp)?
            .body_mut()
            .read_json()
            .map_err(|e| GatewayError::Decode {
                what,
                source: Box::new(e),
            })
    }

    /// Sends one request (bearer token, optional JSON body, extra headers) with `agent`.
    fn call(
        &self,
        agent: &ureq::Agent,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Response<ureq::Body>> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("Authorization", &self.auth);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        match body {
            Some(b) => req
                .header("Content-Type", "application/json")
                .body(b)
                .map_err(ureq::Error::from)
                .and_then(|r| agent.run(r)),
            None => req
                .body(())
                .map_err(ureq::Error::from)
                .and_then(|r| agent.run(r)),
        }
        .map_err(self.transport(path))
    }

    /// One request and its decoded answer.
    fn exchange<T: DeserializeOwned>(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T> {
        let resp = self.call(&self.agent, method, path, body, &[])?;
        Self::decode(what, resp)
    }

    fn get<T: DeserializeOwned>(&self, what: &'static str, path: &str) -> Result<T> {
        self.exchange(what, Method::GET, path, None)
    }

    fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let bytes = serde_json::to_vec(body).map_err(GatewayError::Encode)?;
        self.exchange(what, method, path, Some(bytes))
    }

    /// `POST /v1/decide`: the gateway decides (shared budgets) and records the decision.
    pub fn decide(&self, agent: &Agent, action: &Action, layer: Layer) -> Result<Decision> {
        let body = DecideRequest {
            agent: AgentSpec::Full(agent.clone()),
            action: action.clone(),
            layer: Some(layer),
        };
        self.send("POST /v1/decide", Method::POST, "/v1/decide", &body)
    }

    /// `POST /v1/events`; `Ok` once the gateway committed them.
    pub fn post_events(&self, events: &[AuditEvent]) -> Result<EventsResponse> {
        let body = EventsRequest {
            events: events.into(),
        };
        self.send("POST /v1/events", Method::POST, "/v1/events", &body)
    }

    /// `GET /v1/policy`, long-polling up to `wait` seconds when `etag` (the version held) is
    /// given. `Ok(None)`: unchanged.
    pub fn policy(&self, etag: Option<&str>, wait: u64) -> Result<Option<PolicyDocument>> {
        let client = if wait > 0 { &self.polling } else { &self.agent };
        let etag = etag.map(|e| format!("\"{e}\""));
        let headers: Vec<(&str, &str)> =
            etag.iter().map(|e| ("If-None-Match", e.as_str())).collect();
        let path = format!("/v1/policy?wait={wait}");
        let resp = self.call(client, Method::GET, &path, None, &headers)?;
        if resp.status().as_u16() == 304 {
            return Ok(None);
        }
        Self::decode("GET /v1/policy", resp).map(Some)
    }

    /// `PUT /v1/policy` (admin): validated by the gateway; the old policy stays on error.
    pub fn put_policy(&self, bundle: &PolicyBundle) -> Result<PolicyVersion> {
        self.send("PUT /v1/policy", Method::PUT, "/v1/policy", bundle)
    }

    /// `GET /v1/agents` (admin).
    pub fn agents(&self) -> Result<Vec<AgentInfo>> {
        self.get("GET /v1/agents", "/v1/agents")
    }

    /// `POST /v1/agents` (admin): the token is in the answer, once.
    pub fn register(&self, request: &RegisterRequest) -> Result<Registered> {
        self.send("POST /v1/agents", Method::POST, "/v1/agents", request)
    }

    /// `POST /v1/agents/{id}/suspend` (admin): the kill switch on.
    pub fn suspend(&self, agent_id: &str) -> Result<AgentInfo> {
        let path = format!("/v1/agents/{}/suspend", encode_segment(agent_id));
        self.exchange("POST /v1/agents/{id}/suspend", Method::POST, &path, None)
    }

    /// `POST /v1/agents/{id}/resume` (admin): the kill switch off.
    pub fn resume(&self, agent_id: &str) -> Result<AgentInfo> {
        let path = format!("/v1/agents/{}/resume", encode_segment(agent_id));
        self.exchange("POST /v1/agents/{id}/resume", Method::POST, &path, None)
    }

    /// `POST /v1/agents/{id}/revoke` (admin): the agent's token stops working at once.
    pub fn revoke(&self, agent_id: &str) -> Result<AgentInfo> {
        let path = format!("/v1/agents/{}/revoke", encode_segment(agent_id));
        self.exchange("POST /v1/agents/{id}/revoke", Method::POST, &path, None)
    }

    /// `POST /v1/announce` (agent token): this SDK tells the gateway it runs.
    pub fn announce(&self, announcement: &Announcement) -> Result<()> {
        let bytes = serde_json::to_vec(announcement).map_err(GatewayError::Encode)?;
        let resp = self.call(&self.agent, Method::POST, "/v1/announce", Some(bytes), &[])?;
        Self::check(resp).map(drop)
    }

    /// `GET /v1/agents/{id}/announcements` (admin).
    pub fn announcements(&self, agent_id: &str) -> Result<Vec<Announced>> {
        let path = format!("/v1/agents/{}/announcements", encode_segment(agent_id));
        self.exchange(
            "GET /v1/agents/{id}/announcements",
            Method::GET,
            &path,
            None,
        )
    }

    /// `GET /v1/whoami`: who this client's token belongs to.
    pub fn whoami(&self) -> Result<WhoAmI> {
        self.get("GET /v1/whoami", "/v1/whoami")
    }

    /// `GET /v1/budgets` (admin).
    pub fn budgets(&self) -> Result<Vec<BudgetStatus>> {
        self.get("GET /v1/budgets", "/v1/budgets")
    }

    /// `GET /v1/audit` (admin): up to `limit` records after `cursor` (a seq).
    pub fn audit_page(&self, cursor: u64, limit: usize) -> Result<AuditPage> {
        self.audit_page_where(cursor, limit, "")
    }

    /// `GET /v1/audit` with extra query parameters (`&agent=…`).
    fn audit_page_where(&self, cursor: u64, limit: usize, filter: &str) -> Result<AuditPage> {
        self.get(
            "GET /v1/audit",
            &format!("/v1/audit?limit={limit}&cursor={cursor}{filter}"),
        )
    }

    /// Every stored record, oldest first, a page at a time (admin).
    pub fn records(&self) -> Records<'_> {
        Records {
            client: self,
            page: Vec::new().into_iter(),
            next: Some(0),
            filter: String::new(),
        }
    }

    /// The records of one agent, oldest first, a page at a time (admin).
    pub fn records_of(&self, agent_id: &str) -> Records<'_> {
        Records {
            filter: format!("&agent={}", encode_segment(agent_id)),
            ..self.records()
        }
    }

    /// `GET /v1/audit/checkpoints` (admin).
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        self.get("GET /v1/audit/checkpoints", "/v1/audit/checkpoints")
    }

    /// `GET /v1/audit/public-key`.
    pub fn public_key(&self) -> Result<PublicKey> {
        self.get("GET /v1/audit/public-key", "/v1/audit/public-key")
    }

    /// `GET /v1/audit/verify` (admin): the gateway's own verdict over its chain.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.get("GET /v1/audit/verify", "/v1/audit/verify")
    }

    /// `GET /v1/audit/stream?after=SEQ` (admin): every record after `after`, then new ones as
    /// they are stored, until the gateway goes away.
    pub fn audit_stream(&self, after: u64) -> Result<AuditStream> {
        let path = format!("/v1/audit/stream?after={after}");
        // No overall deadline: the stream lasts as long as the gateway does.
        let streaming = http_agent(&self.tls, None, self.timeout.min(Duration::from_secs(5)));
        let accept = [("Accept", "text/event-stream")];
        let resp = self.call(&streaming, Method::GET, &path, None, &accept)?;
        let resp = Self::check(resp)?;
        Ok(AuditStream::new(resp.into_body().into_reader()))
    }
}

/// The records of a gateway, fetched a page at a time ([`GatewayClient::records`]).
#[derive(Debug)]
pub struct Records<'a> {
    client: &'a GatewayClient,
    page: std::vec::IntoIter<AuditRecord>,
    next: Option<u64>,
    filter: String,
}

impl Iterator for Records<'_> {
    type Item = Result<AuditRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.page.next() {
                return Some(Ok(r));
            }
            let cursor = self.next.take()?;
            match self.client.audit_page_where(cursor, 1000, &self.filter) {
                Ok(page) => {
                    self.page = page.records.into_iter();
                    self.next = page.next_cursor;
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_hosts_resolve_without_a_lookup_and_names_do_not() {
        let addr = |u: &str| ip_literal(&u.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(
            addr("http://127.0.0.1:8080/v1/events").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(addr("https://[::1]/x").as_deref(), Some("[::1]:443"));
        assert_eq!(addr("http://10.0.0.7").as_deref(), Some("10.0.0.7:80"));
        assert_eq!(addr("http://gateway.internal:8080/"), None);
        assert_eq!(addr("http://localhost:8080/"), None);
    }

    #[test]
    fn error_bodies_become_remote_errors() {
        let e = remote_error(
            422,
            r#"{"error":{"code":"invalid_policy","message":"bad","details":{"diagnostics":[]}}}"#,
        );
        assert!(matches!(
            &e,
            GatewayError::Remote { status: 422, code, message, details: Some(_) }
                if code == "invalid_policy" && message == "bad"
        ));
        assert!(!e.is_retryable());
        assert_eq!(e.to_string(), "gateway answered 422: bad");
        let e = remote_error(502, "<html>bad gateway</html>");
        assert!(e.is_retryable());
        assert!(e.to_string().contains("bad gateway"));
        assert!(
            remote_error(404, r#"{"error":{"code":"no_policy","message":"x"}}"#).is_retryable()
        );
        assert!(
            !remote_error(403, r#"{"error":{"code":"forbidden","message":"x"}}"#).is_retryable()
        );
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_segment("a b/c~d"), "a%20b%2Fc~d");
    }

    #[test]
    fn an_unreachable_gateway_is_retryable() {
        let client = GatewayClient::new(
            "http://127.0.0.1:9",
            "t",
            &GatewayOptions {
                timeout: Duration::from_secs(2),
                ..GatewayOptions::default()
            },
        )
        .unwrap();
        let e = client.whoami().err();
        assert!(matches!(e, Some(GatewayError::Transport { .. })), "{e:?}");
        assert!(e.is_some_and(|e| e.is_retryable()));
    }

    #[test]
    fn a_missing_ca_file_is_a_typed_error() {
        let e = GatewayClient::new(
            "https://x",
            "t",
            &GatewayOptions {
                ca_cert: Some("/nonexistent/ca.pem".into()),
                ..GatewayOptions::default()
            },
        )
        .err();
        assert!(matches!(e, Some(GatewayError::CaCert { .. })), "{e:?}");
    }
}
