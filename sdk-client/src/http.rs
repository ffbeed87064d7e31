//! The gateway's HTTP API, blocking (ureq), for the background threads and remote decisions.

use std::time::Duration;

use aa_core::{Action, Agent, AuditEvent, Decision, Layer, PolicyBundle};
use serde::Deserialize;

/// Why a gateway request failed.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// Not reached, timed out, or a 5xx/408/429: try again later.
    Retry(String),
    /// A 4xx the same request will always get (bad event, wrong agent): do not retry it.
    Permanent(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Retry(m) | HttpError::Permanent(m) => f.write_str(m),
        }
    }
}

#[derive(Deserialize)]
struct PolicyDocument {
    version: String,
    bundle: PolicyBundle,
}

/// A client of one gateway, as one agent.
pub(crate) struct GatewayHttp {
    agent: ureq::Agent,
    polling: ureq::Agent,
    base: String,
    auth: String,
}

impl GatewayHttp {
    pub(crate) fn new(
        base: &str,
        token: &str,
        timeout: Duration,
        poll_wait: Duration,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let build = |t: Duration| -> Result<ureq::Agent, String> {
            let mut tls = ureq::tls::TlsConfig::builder();
            if let Some(path) = ca_cert {
                let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    return Err(format!("{}: no certificate found", path.display()));
                }
                tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
            }
            let config = ureq::Agent::config_builder()
                .timeout_global(Some(t))
                .http_status_as_error(false)
                .tls_config(tls.build())
                .build();
            Ok(config.into())
        };
        Ok(GatewayHttp {
            agent: build(timeout)?,
            polling: build(poll_wait + timeout)?,
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {token}"),
        })
    }

    fn classify(status: u16, body: String) -> HttpError {
        let msg = format!(
            "gateway answered {status}: {}",
            body.chars().take(300).collect::<String>()
        );
        match status {
            408 | 429 | 500..=599 | 401 => HttpError::Retry(msg),
            _ => HttpError::Permanent(msg),
        }
    }

    /// `POST /v1/decide`.
    pub(crate) fn decide(
        &self,
        agent: &Agent,
        action: &Action,
        layer: Layer,
    ) -> Result<Decision, HttpError> {
        let body = serde_json::json!({ "agent": agent, "action": action, "layer": layer });
        let mut resp = self
            .agent
            .post(format!("{}/v1/decide", self.base))
            .header("Authorization", &self.auth)
            .send_json(&body)
            .map_err(|e| HttpError::Retry(e.to_string()))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            return Err(Self::classify(status, text));
        }
        resp.body_mut()
            .read_json::<Decision>()
            .map_err(|e| HttpError::Retry(format!("bad decision from the gateway: {e}")))
    }

    /// `POST /v1/events`; `Ok` once the gateway committed them.
    pub(crate) fn post_events(&self, events: &[AuditEvent]) -> Result<(), HttpError> {
        let body = serde_json::json!({ "events": events });
        let mut resp = self
            .agent
            .post(format!("{}/v1/events", self.base))
            .header("Authorization", &self.auth)
            .send_json(&body)
            .map_err(|e| HttpError::Retry(e.to_string()))?;
        let status = resp.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        Err(Self::classify(status, text))
    }

    /// `GET /v1/policy`, long-polling up to `wait` seconds when `etag` is given. `Ok(None)`:
    /// unchanged.
    pub(crate) fn get_policy(
        &self,
        etag: Option<&str>,
        wait: u64,
    ) -> Result<Option<(String, PolicyBundle)>, HttpError> {
        let client = if wait > 0 { &self.polling } else { &self.agent };
        let mut req = client
            .get(format!("{}/v1/policy?wait={wait}", self.base))
            .header("Authorization", &self.auth);
        if let Some(e) = etag {
            req = req.header("If-None-Match", &format!("\"{e}\""));
        }
        let mut resp = req.call().map_err(|e| HttpError::Retry(e.to_string()))?;
        match resp.status().as_u16() {
            304 => Ok(None),
            200 => {
                let doc: PolicyDocument = resp
                    .body_mut()
                    .read_json()
                    .map_err(|e| HttpError::Retry(format!("bad policy document: {e}")))?;
                Ok(Some((doc.version, doc.bundle)))
            }
            404 => Err(HttpError::Retry("the gateway has no policy yet".into())),
            status => {
                let text = resp.body_mut().read_to_string().unwrap_or_default();
                Err(Self::classify(status, text))
            }
        }
    }
}
