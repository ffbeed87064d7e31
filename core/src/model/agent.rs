use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::MAX_ID_LEN;
use crate::error::ModelError;

/// An agent: the principal of every decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Stable identifier, registered at the gateway (`Agent::"<agent_id>"` in Cedar).
    pub agent_id: String,
    /// Free-form labels, exposed to Cedar as tags of the principal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Session (one run of the agent), carried into audit records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Team the agent belongs to (`Team::"<team>"`, the agent's parent in Cedar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

impl Agent {
    /// An agent with only an id.
    pub fn new(agent_id: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
            team: None,
            session_id: None,
            labels: BTreeMap::new(),
        }
    }

    /// The same agent in `team`.
    #[must_use]
    pub fn with_team(mut self, team: impl Into<String>) -> Self {
        self.team = Some(team.into());
        self
    }

    /// Checks the identifiers an agent supplied: non-empty, bounded, no control characters.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_id("agent_id", &self.agent_id)?;
        if let Some(team) = &self.team {
            check_id("team", team)?;
        }
        if let Some(session) = &self.session_id {
            check_id("session_id", session)?;
        }
        for (k, v) in &self.labels {
            check_id("labels key", k)?;
            check_text("labels value", v, MAX_ID_LEN)?;
        }
        Ok(())
    }

    /// Checks the id an agent is registered under. It names a resource at
    /// `/v1/agents/{id}/…`, a cgroup and log lines, so it is kept to [`REGISTERED_ID_PATTERN`]:
    /// no dot segments, percent signs or slashes that URL handling rewrites, no look-alike
    /// Unicode, no leading `-` that a command line reads as a flag.
    pub fn validate_registered_id(agent_id: &str) -> Result<(), ModelError> {
        let mut chars = agent_id.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "._:@-".contains(c));
        if first_ok && rest_ok && agent_id.len() <= MAX_REGISTERED_ID_LEN {
            return Ok(());
        }
        Err(ModelError::Invalid {
            field: "agent_id",
            reason: format!(
                "`{}` cannot be registered: an agent id starts with a letter or digit and has at \
                 most {MAX_REGISTERED_ID_LEN} letters, digits, `.`, `_`, `-`, `:` or `@`",
                agent_id.escape_debug()
            ),
        })
    }
}

/// The longest id an agent can be registered under.
pub const MAX_REGISTERED_ID_LEN: usize = 128;

/// The ids an agent can be registered under, as a JSON Schema (ECMA-262) pattern; the rule
/// [`Agent::validate_registered_id`] applies.
pub const REGISTERED_ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$";

/// Which interception layer saw an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// In-process SDK (Python, Node, WASM, FFI).
    Sdk,
    /// The sidecar MitM proxy.
    Proxy,
    /// The kernel (eBPF) layer.
    Ebpf,
}

impl Layer {
    /// Every layer, in declaration order.
    pub const ALL: [Layer; 3] = [Layer::Sdk, Layer::Proxy, Layer::Ebpf];

    /// Position in [`Layer::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The wire name (`sdk`, `proxy`, `ebpf`).
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Sdk => "sdk",
            Layer::Proxy => "proxy",
            Layer::Ebpf => "ebpf",
        }
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Layer {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sdk" => Ok(Layer::Sdk),
            "proxy" => Ok(Layer::Proxy),
            "ebpf" => Ok(Layer::Ebpf),
            other => Err(ModelError::Invalid {
                field: "layer",
                reason: format!("unknown layer `{other}` (expected sdk, proxy or ebpf)"),
            }),
        }
    }
}

/// An identifier: non-empty, at most [`MAX_ID_LEN`] bytes, no control characters.
pub(crate) fn check_id(field: &'static str, value: &str) -> Result<(), ModelError> {
    if value.is_empty() {
        return Err(ModelError::Invalid {
            field,
            reason: "must not be empty".into(),
        });
    }
    check_text(field, value, MAX_ID_LEN)?;
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(ModelError::Invalid {
            field,
            reason: format!("contains the control character U+{:04X}", c as u32),
        });
    }
    Ok(())
}

/// Free text (paths, argv, labels): at most `max` bytes. Control characters are kept:
/// an argv may hold a newline, and the audit record must show what really ran.
pub(crate) fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), ModelError> {
    if value.len() > max {
        return Err(ModelError::Invalid {
            field,
            reason: format!("is {} bytes long, the limit is {max}", value.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_ids_are_url_safe_names() {
        for ok in [
            "a",
            "py-agent",
            "Agent_7",
            "ns:team.bot@host",
            &"x".repeat(128),
        ] {
            assert!(Agent::validate_registered_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-rm",
            "a/b",
            "a%2Fb",
            "%C3%9E",
            "a b",
            "Þ",
            "аdmin",
            "a\u{1}",
            &"x".repeat(129),
        ] {
            assert!(Agent::validate_registered_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_pattern_states_the_same_rule() {
        assert_eq!(
            REGISTERED_ID_PATTERN,
            format!(
                "^[A-Za-z0-9][A-Za-z0-9._:@-]{{0,{}}}$",
                MAX_REGISTERED_ID_LEN - 1
            )
        );
    }
}
