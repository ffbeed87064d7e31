//! Who is behind a request: `Proxy-Authorization: Basic base64(agent_id:token)`, checked with
//! the gateway (`GET /v1/whoami`, cached), or the configured default agent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aa_core::Agent;
use aa_core::wire::Role;
use aa_sdk_client::GatewayClient;
use base64::Engine as _;

/// How long a verified credential is trusted before it is checked again.
const TRUST_FOR: Duration = Duration::from_secs(60);
/// How long a refused credential stays refused.
const REFUSE_FOR: Duration = Duration::from_secs(5);

/// A checked credential and when it was checked.
type Verdict = (Result<Agent, IdentityError>, Instant);

/// Why a request has no agent.
#[derive(Debug, Clone)]
pub(crate) enum IdentityError {
    /// No credentials and no default agent.
    Missing,
    /// Credentials that the gateway does not accept for that agent.
    Refused(String),
}

/// Verifies and caches credentials.
pub(crate) struct Identities {
    gateway: Option<GatewayClient>,
    default_agent: Option<Agent>,
    cache: Mutex<HashMap<String, Verdict>>,
}

impl Identities {
    /// Checks credentials with `gateway` (the governor's client; each check uses the agent's
    /// own token), or accepts only `default_agent` without one.
    pub(crate) fn new(gateway: Option<GatewayClient>, default_agent: Option<String>) -> Self {
        Identities {
            gateway,
            default_agent: default_agent.map(Agent::new),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The agent of a request, from its `Proxy-Authorization` value (if any). Blocking (one
    /// gateway call per new credential per minute): call from a blocking context.
    pub(crate) fn resolve(&self, header: Option<&str>) -> Result<Agent, IdentityError> {
        let Some(header) = header else {
            return self.default_agent.clone().ok_or(IdentityError::Missing);
        };
        let (user, token) = parse_basic(header)
            .ok_or_else(|| IdentityError::Refused("malformed Proxy-Authorization".into()))?;
        let key = format!("{user}\0{token}");
        if let Some((result, at)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            let ttl = if result.is_ok() {
                TRUST_FOR
            } else {
                REFUSE_FOR
            };
            if at.elapsed() < ttl {
                return result.clone();
            }
        }
        let result = self.verify(&user, &token);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (result.clone(), Instant::now()));
        result
    }

    /// Cached answer only (no gateway call): `None` when the credential must be verified.
    pub(crate) fn cached(&self, header: Option<&str>) -> Option<Result<Agent, IdentityError>> {
        let Some(header) = header else {
            return Some(self.default_agent.clone().ok_or(IdentityError::Missing));
        };
        let (user, token) = parse_basic(header)?;
        let key = format!("{user}\0{token}");
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (result, at) = cache.get(&key)?;
        let ttl = if result.is_ok() {
            TRUST_FOR
        } else {
            REFUSE_FOR
        };
        (at.elapsed() < ttl).then(|| result.clone())
    }

    fn verify(&self, user: &str, token: &str) -> Result<Agent, IdentityError> {
        let refused = |m: String| IdentityError::Refused(m);
        let Some(gateway) = &self.gateway else {
            return Err(refused(
                "this proxy has no gateway to check agent credentials with".into(),
            ));
        };
        let who = gateway.with_token(token).whoami().map_err(|e| {
            refused(match e.status() {
                Some(_) => "the gateway does not accept this agent's token".into(),
                None => format!("cannot check the credentials with the gateway: {e}"),
            })
        })?;
        match (who.role, who.agent_id) {
            (Role::Agent, Some(id)) if id == user => {
                let mut agent = Agent::new(id);
                agent.team = who.team;
                agent.labels = who.labels;
                Ok(agent)
            }
            _ => Err(refused(format!("the token is not agent `{user}`'s"))),
        }
    }
}

/// `Basic base64(user:password)` → (user, password).
pub(crate) fn parse_basic(header: &str) -> Option<(String, String)> {
    let b64 = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}
