//! Every request through the proxy: who sends it, what it is (HTTP, LLM call, MCP tool call),
//! the decision before it is forwarded, and the outcome after.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use aa_core::{Action, Agent, Decision, Layer, NetProto, Outcome, OutcomeStatus, Usage};
use aa_inspect::llm::{Tokens, UsageReader};
use aa_sdk_client::{Governor, Mode};
use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use hudsucker::hyper::{Method, Request, Response, StatusCode, header};
use hudsucker::{Body, HttpContext, HttpHandler, RequestOrResponse};
use serde_json::json;

use crate::identity::{Identities, IdentityError};
use crate::limits::{BodyLimitError, Guarded};
use crate::stats::ProxyStats;
use crate::{ProxyConfig, mcp};

/// What every handler clone shares.
pub(crate) struct Shared {
    pub config: ProxyConfig,
    /// How WebSocket upstreams are reached (the same trust as HTTP upstreams).
    pub websocket: hudsucker::tokio_tungstenite::Connector,
    pub governor: Arc<Governor>,
    pub stats: Arc<ProxyStats>,
    identities: Arc<Identities>,
    remote: bool,
    started: Instant,
    addr: SocketAddr,
}

impl Shared {
    pub(crate) fn new(
        config: ProxyConfig,
        governor: Governor,
        stats: Arc<ProxyStats>,
        addr: SocketAddr,
        websocket: hudsucker::tokio_tungstenite::Connector,
    ) -> Self {
        let gateway = governor.gateway().cloned();
        let remote = governor.config().mode == Mode::Remote;
        Shared {
            identities: Arc::new(Identities::new(gateway, config.default_agent.clone())),
            config,
            governor: Arc::new(governor),
            stats,
            remote,
            started: Instant::now(),
            addr,
            websocket,
        }
    }

    async fn decide(&self, agent: &Agent, action: Action) -> Decision {
        if self.remote {
            let g = self.governor.clone();
            let agent = agent.clone();
            tokio::task::spawn_blocking(move || g.decide_as(&agent, &action, Layer::Proxy))
                .await
                .unwrap_or_else(|e| self.governor.unavailable(e.to_string()))
        } else {
            self.governor.decide_as(agent, &action, Layer::Proxy)
        }
    }

    fn report(&self, agent: &Agent, action: &Action, decision: &Decision, outcome: Outcome) {
        if let Err(e) = self
            .governor
            .report_as(agent, action, Layer::Proxy, decision, outcome)
        {
            tracing::error!(error = %e, "cannot record an outcome");
        }
    }

    async fn identify(&self, header: Option<String>) -> Result<Agent, IdentityError> {
        if let Some(answer) = self.identities.cached(header.as_deref()) {
            return answer;
        }
        // A new credential is checked with the gateway (blocking, at most once a minute).
        let identities = self.identities.clone();
        tokio::task::spawn_blocking(move || identities.resolve(header.as_deref()))
            .await
            .unwrap_or_else(|e| Err(IdentityError::Refused(e.to_string())))
    }
}

/// The per-connection (and, inside a tunnel, per-request) handler.
#[derive(Clone)]
pub(crate) struct GovernHandler {
    shared: Arc<Shared>,
    /// The agent authenticated on the CONNECT of this tunnel.
    agent: Option<Agent>,
    passthrough: bool,
    pending: Option<Arc<Pending>>,
}

struct Pending {
    agent: Agent,
    action: Action,
    decision: Decision,
    started: Instant,
    model: Option<(Action, Decision)>,
    mcp_list: bool,
    host: String,
}

impl GovernHandler {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        GovernHandler {
            shared,
            agent: None,
            passthrough: false,
            pending: None,
        }
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-agent-assembly", "denied")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn deny_response(d: &Decision) -> Response<Body> {
    json_response(
        StatusCode::FORBIDDEN,
        json!({
            // The `error` object is shaped so OpenAI and Anthropic SDKs surface it as-is.
            "error": {
                "type": "agent_assembly_denied",
                "code": d.reason.as_str(),
                "message": format!("denied by Agent Assembly ({}): {}", d.reason.as_str(), d.message),
            },
            "reason": d.reason.as_str(),
            "message": d.message,
            "decision_id": d.decision_id,
            "policy_ids": d.policy_ids,
        }),
    )
}

fn proxy_auth_required(e: &IdentityError) -> Response<Body> {
    let message = match e {
        IdentityError::Missing => {
            "Proxy-Authorization (Basic agent_id:token) is required".to_owned()
        }
        IdentityError::Refused(m) => m.clone(),
    };
    let mut r = json_response(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        json!({ "error": message }),
    );
    r.headers_mut().insert(
        header::PROXY_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"agent-assembly\""),
    );
    r
}

/// A body that could not be read for inspection.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the body: {0}")]
struct BodyError(Box<dyn std::error::Error + Send + Sync>);

/// Reads a whole body, refusing more than `limit` bytes.
/// Marks a message whose body the proxy collected (and maybe rewrote) as `len` bytes long: the
/// transfer coding it arrived with no longer applies, and hyper refuses a message that carries
/// both (`user sent unexpected header`).
fn set_length(headers: &mut header::HeaderMap, len: usize) {
    headers.remove(header::TRANSFER_ENCODING);
    headers.insert(header::CONTENT_LENGTH, len.into());
}

async fn collect(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let limited = http_body_util::Limited::new(body, limit);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(BodyError)
}

fn outcome(
    status: StatusCode,
    started: Instant,
    size: Option<u64>,
    usage: Option<Usage>,
) -> Outcome {
    let error = (status.is_server_error() || status.is_client_error())
        .then(|| format!("HTTP {}", status.as_u16()));
    Outcome {
        duration_us: aa_sdk_client::micros_since(started),
        error,
        result_size: size,
        status: if status.is_server_error() {
            OutcomeStatus::Error
        } else {
            OutcomeStatus::Ok
        },
        usage,
    }
}

impl HttpHandler for GovernHandler {
    async fn handle_request(
        &mut self,
        _ctx: &HttpContext,
        mut req: Request<Body>,
    ) -> RequestOrResponse {
        let shared = self.shared.clone();
        // Requests to the proxy itself (origin-form): the status endpoint.
        if req.method() != Method::CONNECT && req.uri().authority().is_none() {
            let body = json!({
                "listen": shared.addr.to_string(),
                "uptime_secs": shared.started.elapsed().as_secs(),
                "stats": shared.stats.snapshot(),
                "policy_version": shared.governor.stats().policy_version,
            });
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap_or_else(|_| Response::new(Body::empty()))
                .into();
        }
        let auth = req
            .headers()
            .get(header::PROXY_AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let agent = match (&self.agent, &auth) {
            (Some(a), None) if req.method() != Method::CONNECT => a.clone(),
            _ => match shared.identify(auth).await {
                Ok(a) => a,
                Err(e) => return proxy_auth_required(&e).into(),
            },
        };
        req.headers_mut().remove(header::PROXY_AUTHORIZATION);
        // The WebSocket relay speaks plain frames on both sides: an extension (permessage-deflate)
        // negotiated with the upstream would reach the client as frames it never agreed to.
        req.headers_mut().remove(header::SEC_WEBSOCKET_EXTENSIONS);

        if req.method() == Method::CONNECT {
            self.agent = Some(agent.clone());
            let (host, port) = match req.uri().authority() {
                Some(a) => (a.host().to_owned(), a.port_u16().unwrap_or(443)),
                None => {
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        json!({"error": "CONNECT needs host:port"}),
                    )
                    .into();
                }
            };
            // Every tunnel is decided as a connection before a byte goes through it: what
            // follows may be TLS (intercepted), HTTP, or a protocol the proxy cannot read and
            // relays as is (hudsucker tunnels those uninspected).
            let passthrough = shared.config.is_passthrough(&host);
            let action = Action::NetConnect {
                addr: host,
                port,
                proto: NetProto::Tcp,
            };
            let d = shared.decide(&agent, action).await;
            if !d.is_allowed() {
                ProxyStats::inc(&shared.stats.denies);
                return deny_response(&d).into();
            }
            if passthrough {
                ProxyStats::inc(&shared.stats.passthrough);
                self.passthrough = true;
            }
            return req.into();
        }

        let uri = req.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("http").to_owned();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let action = Action::HttpRequest {
            host: host.clone(),
            method: req.method().to_string(),
            path,
            port,
            scheme,
        };
        ProxyStats::inc(&shared.stats.requests);
        let decision = shared.decide(&agent, action.clone()).await;
        if !decision.is_allowed() {
            ProxyStats::inc(&shared.stats.denies);
            let mut denied = deny_response(&decision);
            if req.headers().contains_key(header::UPGRADE) {
                // A refused upgrade ends the connection: the client asked to leave HTTP, and a
                // WebSocket client may wait for the close before it reports the refusal.
                denied.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
            }
            return denied.into();
        }
        if hyper_tungstenite::is_upgrade_request(&req) {
            let connector = shared.websocket.clone();
            return crate::ws::relay(req, connector, shared.config.upstream_timeout)
                .await
                .into();
        }
        let limits = shared.config.limits;
        let declared: Option<u64> = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        if declared.is_some_and(|n| n > limits.max_body_bytes) {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": BodyLimitError::TooLarge(limits.max_body_bytes).to_string() }),
            )
            .into();
        }
        // A request with no body (most GETs) needs no guard, nor its timer.
        let mut req = if http_body::Body::is_end_stream(req.body()) {
            req
        } else {
            req.map(|b| {
                Body::from(http_body_util::combinators::BoxBody::new(Guarded::new(
                    b, limits,
                )))
            })
        };
        let mut pending = Pending {
            agent,
            action,
            decision,
            started: Instant::now(),
            model: None,
            mcp_list: false,
            host: host.clone(),
        };

        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        if req.method() == Method::POST && is_json {
            let (parts, body) = req.into_parts();
            let bytes = match collect(body, shared.config.max_inspect).await {
                Ok(b) => b,
                Err(e) => {
                    return json_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        json!({ "error": e.to_string() }),
                    )
                    .into();
                }
            };
            if let Some(provider) = shared.config.llm_provider(&host, port)
                && let Ok(llm) = aa_inspect::llm::parse_request(&bytes)
            {
                ProxyStats::inc(&shared.stats.model_calls);
                let model = Action::ModelCall {
                    input_tokens: None,
                    model: llm.model,
                    output_tokens: None,
                    provider: provider.to_owned(),
                    tools: llm.tools,
                };
                let d = shared.decide(&pending.agent, model.clone()).await;
                if !d.is_allowed() {
                    ProxyStats::inc(&shared.stats.denies);
                    return deny_response(&d).into();
                }
                pending.model = Some((model, d));
            } else if let Ok(calls) = aa_inspect::mcp::parse_requests(&bytes) {
                let mut denials = Vec::new();
                for call in &calls {
                    if call.method == "tools/list" {
                        pending.mcp_list = true;
                    }
                    if call.method != "tools/call" {
                        continue;
                    }
                    ProxyStats::inc(&shared.stats.mcp_calls);
                    let action = Action::McpCall {
                        args: call.args.clone(),
                        method: call.method.clone(),
                        server: host.clone(),
                        tool: call.tool.clone(),
                    };
                    let d = shared.decide(&pending.agent, action).await;
                    if !d.is_allowed() {
                        ProxyStats::inc(&shared.stats.denies);
                        denials.push(mcp::denial(
                            &call.id,
                            d.reason.as_str(),
                            &d.message,
                            &d.decision_id,
                            &d.policy_ids,
                        ));
                    }
                }
                if !denials.is_empty() {
                    // A JSON-RPC error the MCP client understands, not a bare 403.
                    let body = if denials.len() == 1 && bytes.first() != Some(&b'[') {
                        denials.remove(0)
                    } else {
                        serde_json::Value::Array(denials)
                    };
                    let mut r = json_response(StatusCode::OK, body);
                    r.headers_mut().remove("x-agent-assembly");
                    r.headers_mut().insert(
                        "x-agent-assembly",
                        header::HeaderValue::from_static("denied"),
                    );
                    return r.into();
                }
            }
            let mut rebuilt = Request::from_parts(parts, Body::from(bytes.clone()));
            set_length(rebuilt.headers_mut(), bytes.len());
            req = rebuilt;
        }
        self.pending = Some(Arc::new(pending));
        req.into()
    }

    async fn handle_response(&mut self, _ctx: &HttpContext, res: Response<Body>) -> Response<Body> {
        let Some(p) = self.pending.take() else {
            return res;
        };
        let shared = self.shared.clone();
        let status = res.status();
        let size = res
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let is_sse = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));

        if p.mcp_list && status.is_success() {
            let (mut parts, body) = res.into_parts();
            let bytes = match collect(body, shared.config.max_inspect).await {
                Ok(b) => b,
                Err(e) => {
                    return json_response(
                        StatusCode::BAD_GATEWAY,
                        json!({ "error": e.to_string() }),
                    );
                }
            };
            let governor = shared.governor.clone();
            let mut allowed = |tool: &str| {
                let action = Action::McpCall {
                    args: None,
                    method: "tools/call".into(),
                    server: p.host.clone(),
                    tool: Some(tool.to_owned()),
                };
                governor
                    .preview_as(&p.agent, &action, Layer::Proxy)
                    .is_allowed()
            };
            let body = match aa_inspect::mcp::filter_tools_list(&bytes, is_sse, &mut allowed) {
                Some(filtered) => Bytes::from(filtered),
                None => bytes,
            };
            set_length(&mut parts.headers, body.len());
            shared.report(
                &p.agent,
                &p.action,
                &p.decision,
                outcome(status, p.started, Some(body.len() as u64), None),
            );
            return Response::from_parts(parts, Body::from(body));
        }

        if p.model.is_some() {
            let (parts, body) = res.into_parts();
            let tap = UsageTap {
                inner: body,
                usage: if is_sse {
                    UsageReader::sse()
                } else {
                    UsageReader::json(shared.config.max_inspect)
                },
                bytes: 0,
                done: Some(Done {
                    shared: shared.clone(),
                    pending: p,
                    status,
                }),
            };
            return Response::from_parts(
                parts,
                Body::from(http_body_util::combinators::BoxBody::new(tap)),
            );
        }

        shared.report(
            &p.agent,
            &p.action,
            &p.decision,
            outcome(status, p.started, size, None),
        );
        res
    }

    async fn handle_error(
        &mut self,
        _ctx: &HttpContext,
        err: hyper_util::client::legacy::Error,
    ) -> Response<Body> {
        let shared = self.shared.clone();
        ProxyStats::inc(&shared.stats.upstream_errors);
        let mut reason = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        let timed_out = reason.contains("timed out") || reason.contains("deadline");
        let status = match crate::limits::body_limit_of(&err) {
            Some(BodyLimitError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            Some(BodyLimitError::TooSlow(_)) => StatusCode::REQUEST_TIMEOUT,
            Some(BodyLimitError::Read(_)) => StatusCode::BAD_REQUEST,
            None if timed_out => StatusCode::GATEWAY_TIMEOUT,
            None => StatusCode::BAD_GATEWAY,
        };
        if let Some(p) = self.pending.take() {
            let mut o = outcome(status, p.started, None, None);
            o.status = OutcomeStatus::Error;
            o.error = Some(reason.chars().take(300).collect());
            shared.report(&p.agent, &p.action, &p.decision, o);
        }
        tracing::warn!(%reason, "upstream request failed");
        let mut r = json_response(
            status,
            json!({ "error": "upstream request failed", "reason": reason }),
        );
        r.headers_mut().remove("x-agent-assembly");
        r
    }

    async fn should_intercept_connect(&mut self, _ctx: &HttpContext, _req: &Request<Body>) -> bool {
        !self.passthrough
    }
}

/// Reports a model call's usage once its response body has passed entirely (or was cut off).
struct Done {
    shared: Arc<Shared>,
    pending: Arc<Pending>,
    status: StatusCode,
}

impl Done {
    fn finish(self, tokens: Tokens, bytes: u64, complete: bool) {
        let p = &self.pending;
        let usage = tokens.seen.then_some(Usage {
            cost_usd: None,
            input_tokens: tokens.input,
            output_tokens: tokens.output,
        });
        let mut o = outcome(self.status, p.started, Some(bytes), usage);
        if !complete {
            o.status = OutcomeStatus::Error;
            o.error = Some("the response stream was cut off".into());
        }
        if let Some((action, decision)) = &p.model {
            self.shared.report(&p.agent, action, decision, o.clone());
        }
        o.usage = None;
        self.shared.report(&p.agent, &p.action, &p.decision, o);
    }
}

/// Passes a response body through unchanged while reading its token usage.
struct UsageTap {
    inner: Body,
    usage: UsageReader,
    bytes: u64,
    done: Option<Done>,
}

impl http_body::Body for UsageTap {
    type Data = Bytes;
    type Error = hudsucker::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hudsucker::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                    this.usage.feed(data);
                }
                // A body of known length is not polled again once it is complete.
                if this.inner.is_end_stream() {
                    let tokens = this.usage.tokens();
                    if let Some(done) = this.done.take() {
                        done.finish(tokens, this.bytes, true);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                let tokens = this.usage.tokens();
                if let Some(done) = this.done.take() {
                    done.finish(tokens, this.bytes, true);
                }
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UsageTap {
    fn drop(&mut self) {
        // The client went away (or the upstream broke) before the end: record what was seen.
        if let Some(done) = self.done.take() {
            let tokens = self.usage.tokens();
            done.finish(tokens, self.bytes, false);
        }
    }
}
