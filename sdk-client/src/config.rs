use std::path::PathBuf;
use std::time::Duration;

use aa_core::{Agent, Layer};

use crate::ClientError;

/// How decisions are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In-process decisions against the gateway's policy, kept fresh; audit shipped.
    Local,
    /// The gateway decides (shared budgets).
    Remote,
    /// No gateway: a policy directory and a local audit file.
    Embedded,
}

impl std::str::FromStr for Mode {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(Mode::Local),
            "remote" => Ok(Mode::Remote),
            "embedded" => Ok(Mode::Embedded),
            other => Err(ClientError::Config(format!(
                "mode must be local, remote or embedded, not `{other}`"
            ))),
        }
    }
}

/// What a binding passes: every field optional; the environment fills the gaps
/// (`AA_GATEWAY_URL`, `AA_AGENT_ID`, `AA_TOKEN`, `AA_POLICY`, `AA_MODE`, `AA_TEAM`,
/// `AA_SESSION_ID`, `AA_FAIL_OPEN`, `AA_SPILL_DIR`, `AA_AUDIT_FILE`, `AA_CA_CERT`).
#[derive(Debug, Clone, Default)]
pub struct ConfigInput {
    /// Gateway base URL.
    pub gateway_url: Option<String>,
    /// Agent id.
    pub agent_id: Option<String>,
    /// The agent's bearer token.
    pub token: Option<String>,
    /// Policy directory (embedded mode).
    pub policy: Option<PathBuf>,
    /// `local`, `remote` or `embedded`.
    pub mode: Option<String>,
    /// Team of the agent (embedded mode; at a gateway the registry's team is used).
    pub team: Option<String>,
    /// Session id carried into audit records.
    pub session_id: Option<String>,
    /// Allow (flagged) instead of deny when no decision can be made.
    pub fail_open: Option<bool>,
    /// Where events are spilled while the gateway is unreachable.
    pub spill_dir: Option<PathBuf>,
    /// The local audit file (embedded mode).
    pub audit_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) for a TLS gateway.
    pub ca_cert: Option<PathBuf>,
    /// In-memory queue length before events spill to disk.
    pub queue_capacity: Option<usize>,
}

/// A complete, validated configuration.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Who acts.
    pub agent: Agent,
    /// How decisions are made.
    pub mode: Mode,
    /// Gateway base URL (local, remote).
    pub gateway_url: Option<String>,
    /// Bearer token (local, remote).
    pub token: Option<String>,
    /// Policy directory (embedded).
    pub policy_dir: Option<PathBuf>,
    /// Audit file (embedded).
    pub audit_file: PathBuf,
    /// Embedded mode keeps the audit file (default); off, decisions are made but not recorded
    /// (`aasm decide` without `--audit`).
    pub embedded_audit: bool,
    /// Records between signed checkpoints in the audit file (embedded).
    pub checkpoint_every: u64,
    /// Spill directory (local, remote).
    pub spill_dir: PathBuf,
    /// Fail open.
    pub fail_open: bool,
    /// The layer events are reported as.
    pub layer: Layer,
    /// Queue length before spilling.
    pub queue_capacity: usize,
    /// Events that make a batch worth sending at once (a backlog is sent in larger ones).
    pub batch_size: usize,
    /// How long the shipper waits to fill a batch.
    pub flush_interval: Duration,
    /// Timeout of one gateway request.
    pub request_timeout: Duration,
    /// Long-poll wait for a new policy version, seconds.
    pub policy_wait_secs: u64,
    /// Extra CA certificate.
    pub ca_cert: Option<PathBuf>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn bool_env(name: &str) -> Result<Option<bool>, ClientError> {
    match env(name).as_deref() {
        None => Ok(None),
        Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
        Some("0" | "false" | "no" | "off") => Ok(Some(false)),
        Some(other) => Err(ClientError::Config(format!(
            "{name} must be true or false, not `{other}`"
        ))),
    }
}

impl ClientConfig {
    /// Merges `input` over the environment and checks it.
    pub fn resolve(input: ConfigInput) -> Result<Self, ClientError> {
        let gateway_url = input.gateway_url.or_else(|| env("AA_GATEWAY_URL"));
        let policy_dir = input.policy.or_else(|| env("AA_POLICY").map(PathBuf::from));
        let mode = match input.mode.or_else(|| env("AA_MODE")) {
            Some(m) => m.parse()?,
            None if gateway_url.is_some() => Mode::Local,
            None if policy_dir.is_some() => Mode::Embedded,
            None => {
                return Err(ClientError::Config(
                    "give a gateway (gateway_url= or AA_GATEWAY_URL) or a policy directory \
                     (policy= or AA_POLICY) to decide against"
                        .into(),
                ));
            }
        };
        let agent_id = input
            .agent_id
            .or_else(|| env("AA_AGENT_ID"))
            .ok_or_else(|| {
                ClientError::Config("agent_id is required (agent_id= or AA_AGENT_ID)".into())
            })?;
        let mut agent = Agent::new(agent_id);
        agent.team = input.team.or_else(|| env("AA_TEAM"));
        agent.session_id = input.session_id.or_else(|| env("AA_SESSION_ID"));
        agent
            .validate()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let token = input.token.or_else(|| env("AA_TOKEN"));
        match mode {
            Mode::Local | Mode::Remote => {
                let url = gateway_url.as_deref().ok_or_else(|| {
                    ClientError::Config(format!(
                        "{mode:?} mode needs a gateway URL (gateway_url= or AA_GATEWAY_URL)"
                    ))
                })?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ClientError::Config(format!(
                        "gateway URL must start with http:// or https://, got `{url}`"
                    )));
                }
                if token.is_none() {
                    return Err(ClientError::Config(format!(
                        "{mode:?} mode needs the agent's token (token= or AA_TOKEN)"
                    )));
                }
            }
            Mode::Embedded => match &policy_dir {
                None => {
                    return Err(ClientError::Config(
                        "embedded mode needs a policy directory (policy= or AA_POLICY)".into(),
                    ));
                }
                Some(dir) if !dir.is_dir() => {
                    return Err(ClientError::Config(format!(
                        "policy directory {} does not exist",
                        dir.display()
                    )));
                }
                Some(_) => {}
            },
        }
        let fail_open = match input.fail_open {
            Some(f) => f,
            None => bool_env("AA_FAIL_OPEN")?.unwrap_or(false),
        };
        let data_home = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("agent-assembly");
        let spill_dir = input
            .spill_dir
            .or_else(|| env("AA_SPILL_DIR").map(PathBuf::from))
            .unwrap_or_else(|| data_home.join("spill"));
        let audit_file = input
            .audit_file
            .or_else(|| env("AA_AUDIT_FILE").map(PathBuf::from))
            .unwrap_or_else(|| {
                data_home.join(format!("audit-{}.jsonl", sanitize(&agent.agent_id)))
            });
        Ok(ClientConfig {
            agent,
            mode,
            gateway_url: gateway_url.map(|u| u.trim_end_matches('/').to_owned()),
            token,
            policy_dir,
            audit_file,
            embedded_audit: true,
            checkpoint_every: aa_core::audit::AuditLogOptions::default().checkpoint_every,
            spill_dir,
            fail_open,
            layer: Layer::Sdk,
            queue_capacity: input.queue_capacity.unwrap_or(10_000).max(1),
            // Small, frequent batches: the gateway links and stores a batch in one go, so a
            // large one takes a core for milliseconds, and on a shared host that stall is the
            // proxy's latency tail (3,000 req/s through the proxy in gateway mode: p99 about
            // 5.1 ms with 500 / 100 ms, about 3.0 ms with 64 / 10 ms).
            batch_size: 64,
            flush_interval: Duration::from_millis(10),
            request_timeout: Duration::from_secs(5),
            policy_wait_secs: 30,
            ca_cert: input
                .ca_cert
                .or_else(|| env("AA_CA_CERT").map(PathBuf::from)),
        })
    }
}

/// A file-name-safe form of an id.
pub(crate) fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
