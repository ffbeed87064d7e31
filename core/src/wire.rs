//! The gateway's HTTP protocol: every request and response body, defined once and used by the
//! server (aa-gateway), its client (aa-sdk-client), the proxy, the CLI and the generated OpenAPI
//! document. Plain serde structs, so they build for every target the core does.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cases::AgentSpec;
use crate::{Action, AuditEvent, AuditRecord, Layer, PolicyBundle};

/// The active policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PolicyDocument {
    /// Content hash; also the ETag.
    pub version: String,
    /// The sources, with the suspended agents.
    pub bundle: PolicyBundle,
}

/// Answer of `PUT /v1/policy`: the version now active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Version"))]
pub struct PolicyVersion {
    /// Content hash of the installed policy (also its ETag).
    pub version: String,
}

/// Body of `POST /v1/decide`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// The agent: an id, or `{agent_id, session_id, …}`. Team and labels of a registered agent
    /// come from the registry, never from the request.
    pub agent: AgentSpec,
    /// What it is about to do.
    pub action: Action,
    /// Who saw it (default `sdk`).
    #[serde(default)]
    pub layer: Option<Layer>,
}

/// Most events in one `POST /v1/events` (the gateway refuses a larger batch).
pub const MAX_EVENTS: usize = 1000;

// Borrowed when sent, owned when received.
/// Body of `POST /v1/events`: at most 1,000 events (`MAX_EVENTS`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EventsRequest<'a> {
    /// The events, oldest first.
    pub events: Cow<'a, [AuditEvent]>,
}

/// What became of one submitted event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Ack {
    /// Event id.
    pub id: String,
    /// Its seq in the chain.
    pub seq: u64,
    /// True if it was already stored (a replay); it was not stored twice.
    pub duplicate: bool,
}

/// Answer of `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventsResponse {
    /// Events stored now.
    pub accepted: usize,
    /// Events already stored before (replays).
    pub duplicates: usize,
    /// One ack per stored or duplicate event, in order.
    pub acks: Vec<Ack>,
    /// Events refused, each with its reason; the rest of the batch is stored all the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejection>,
}

/// An event the gateway refused for good, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Rejection {
    /// Event id (as sent; may be the invalid one).
    pub id: String,
    /// Why it was refused.
    pub reason: String,
}

/// A registered agent, as the API shows it (never its token or token hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AgentInfo {
    /// Id.
    pub agent_id: String,
    /// Team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Under the kill switch.
    pub suspended: bool,
    /// Registration time, unix ms.
    pub created_ms: i64,
}

/// What an SDK says about itself when it starts (`POST /v1/announce`, with the agent's token):
/// the run it belongs to then knows tool calls are decided at SDK depth (`L3Native`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Announcement {
    /// The layer announcing (`sdk`).
    pub layer: Layer,
    /// The host runtime, e.g. `python3.11` or `node`.
    pub runtime: String,
    /// The SDK core's version.
    pub version: String,
    /// The process id of the agent.
    pub pid: u32,
}

/// An announcement as the gateway keeps it (`GET /v1/agents/{id}/announcements`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Announced {
    /// The agent whose token announced.
    pub agent_id: String,
    /// When, unix ms.
    pub at_ms: i64,
    /// What it said.
    pub announcement: Announcement,
}

/// Body of `POST /v1/agents`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Id: a letter or digit, then up to 127 letters, digits, `.`, `_`, `-`, `:` or `@`.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = crate::REGISTERED_ID_PATTERN)))]
    pub agent_id: String,
    /// Team.
    #[serde(default)]
    pub team: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Issue a new token for an agent that exists (the old token stops working).
    #[serde(default)]
    pub rotate: bool,
}

/// Answer of `POST /v1/agents`: the token is shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Registered {
    /// The agent.
    pub agent: AgentInfo,
    /// Its bearer token. Store it now: only its hash is kept.
    pub token: String,
}

/// A page of records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditPage {
    /// Records, oldest first.
    pub records: Vec<AuditRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<u64>,
}

/// The checkpoint signer's key, so clients can verify the chain themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PublicKey {
    /// Hex Ed25519 public key.
    pub public_key: String,
}

/// What kind of token a caller holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The admin token.
    Admin,
    /// An agent's token.
    Agent,
}

/// Who a token belongs to (the proxy checks agent credentials with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WhoAmI {
    /// `admin` or `agent`.
    pub role: Role,
    /// The agent, for an agent token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The agent's team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The agent's labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Health {
    /// `ok`, or `stale` for a replica out of step with its database.
    pub status: String,
    /// Active policy version, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
}

/// Every failure's body: `{"error": {"code", "message", "details"?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Error"))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error inside an error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorDetail {
    /// Stable code (`bad_request`, `unauthorized`, `invalid_policy`, …).
    pub code: String,
    /// Human text.
    pub message: String,
    /// Extra data (Cedar diagnostics of a rejected policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn error_body_keeps_its_field_order() {
        let body = ErrorBody {
            error: ErrorDetail {
                code: "invalid_policy".into(),
                message: "bad".into(),
                details: Some(serde_json::json!({"diagnostics": []})),
            },
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"invalid_policy","message":"bad","details":{"diagnostics":[]}}}"#
        );
    }

    #[test]
    fn whoami_role_is_a_lowercase_string() {
        let who: WhoAmI = serde_json::from_str(r#"{"role":"agent","agent_id":"a"}"#).unwrap();
        assert_eq!(who.role, Role::Agent);
        assert_eq!(
            serde_json::to_string(&who).unwrap(),
            r#"{"role":"agent","agent_id":"a"}"#
        );
    }

    #[test]
    fn an_events_request_round_trips_borrowed_and_owned() {
        let text = r#"{"events":[]}"#;
        let owned: EventsRequest<'static> = serde_json::from_str(text).unwrap();
        assert!(owned.events.is_empty());
        let borrowed = EventsRequest {
            events: Cow::Borrowed(&[]),
        };
        assert_eq!(serde_json::to_string(&borrowed).unwrap(), text);
        assert!(serde_json::from_str::<EventsRequest<'_>>(r#"{"events":[],"x":1}"#).is_err());
    }
}
