//! The command-line grammar (clap).

use std::path::PathBuf;

use aa_core::Layer;
use clap::{Args, Parser, Subcommand};

/// Agent Assembly: see, decide and audit every action of your AI agents.
#[derive(Debug, Parser)]
#[command(name = "aasm", version, about, propagate_version = true)]
pub struct Cli {
    /// Machine-readable output: JSON Lines on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check and test policy directories.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Decide actions read from stdin (one JSON action per line) against a policy directory.
    Decide(DecideArgs),
    /// Verify and read audit logs.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run the gateway: registry, policy distribution, shared budgets, audit store, HTTP API.
    Gateway(GatewayArgs),
    /// Manage agents at a gateway (register, suspend, resume).
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// The sidecar proxy: install its CA, start, stop, status, logs.
    #[command(subcommand)]
    Proxy(ProxyCommand),
    /// The kernel layer: attach the eBPF probes to an agent's cgroup, show their status, or
    /// launch a command inside a cgroup with a Landlock write ruleset.
    #[command(subcommand)]
    Ebpf(EbpfCommand),
    /// Govern a command end to end: a gateway (embedded or joined), the proxy, and as root the
    /// eBPF layer on a cgroup of its own with Landlock; a summary when it exits.
    Run(RunArgs),
    /// Print a schema: the Cedar schema policies are validated against, the JSON Schema of
    /// the wire model (actions, decisions, audit records), or the gateway's OpenAPI document.
    Schema {
        /// Which schema.
        #[arg(value_enum, default_value = "cedar")]
        which: SchemaKind,
    },
}

/// Which schema `aasm schema` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SchemaKind {
    /// The Cedar schema (entity types, actions, context).
    Cedar,
    /// The JSON Schema of the wire model.
    Model,
    /// The gateway's OpenAPI 3.1 document (YAML).
    Openapi,
}

/// Where a gateway is and how to authenticate to it.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// Gateway base URL.
    #[arg(long = "gateway", env = "AA_GATEWAY_URL")]
    pub url: String,
    /// Bearer token (admin or agent). Prefer the environment variable: arguments show in `ps`.
    #[arg(long, env = "AA_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Extra CA certificate (PEM) to trust for a TLS gateway.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
}

impl Remote {
    /// A client of this gateway.
    pub fn client(&self) -> Result<aa_sdk_client::GatewayClient, aa_sdk_client::GatewayError> {
        aa_sdk_client::GatewayClient::new(
            &self.url,
            &self.token,
            &cli_options(self.ca_cert.clone()),
        )
    }
}

/// The gateway client's options for a command line: requests may take a while (long polls,
/// large pages), connections may not.
pub fn cli_options(ca_cert: Option<PathBuf>) -> aa_sdk_client::GatewayOptions {
    aa_sdk_client::GatewayOptions {
        timeout: std::time::Duration::from_secs(70),
        ca_cert,
        ..aa_sdk_client::GatewayOptions::default()
    }
}

/// An optional gateway: commands that work on a local file or directory, or on a gateway.
#[derive(Debug, Clone, Args)]
pub struct OptionalRemote {
    /// Gateway URL (instead of a local file or directory).
    #[arg(long = "gateway", env = "AA_GATEWAY_URL")]
    pub gateway: Option<String>,
    /// Bearer token for the gateway. Prefer the environment variable: arguments show in `ps`.
    #[arg(long, env = "AA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Extra CA certificate (PEM) to trust for a TLS gateway.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
}

impl OptionalRemote {
    /// The gateway, when one is given (its token is then required).
    pub fn remote(&self) -> Result<Option<Remote>, crate::CliError> {
        let Some(url) = &self.gateway else {
            return Ok(None);
        };
        let token = self.token.clone().ok_or_else(|| {
            crate::CliError::Input("--gateway needs a token (--token or AA_TOKEN)".into())
        })?;
        Ok(Some(Remote {
            url: url.clone(),
            token,
            ca_cert: self.ca_cert.clone(),
        }))
    }
}

/// `aasm gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: std::net::SocketAddr,
    /// SQLite database (WAL; the signing key is DB.key, the admin token DB.admin-token), or a
    /// postgres:// URL that several replicas share (then give --key and AA_ADMIN_TOKEN, the
    /// same on every replica).
    #[arg(long, env = "AA_GATEWAY_DB", default_value = ".aa/gateway.db")]
    pub db: PathBuf,
    /// Checkpoint signing key (Ed25519; created if absent). Default: DB.key.
    #[arg(long, env = "AA_GATEWAY_KEY")]
    pub key: Option<PathBuf>,
    /// Policy directory to load at start (replaces the stored policy).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// PEM certificate chain for TLS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Records between signed checkpoints.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: u64,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// The gateway's log format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines.
    Json,
}

/// `aasm agents`.
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// List registered agents.
    List {
        /// The gateway.
        #[command(flatten)]
        remote: Remote,
    },
    /// Register an agent and print its token (shown once).
    Register {
        /// Agent id.
        id: String,
        /// Team.
        #[arg(long)]
        team: Option<String>,
        /// Label, `key=value` (repeatable).
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Issue a new token for an existing agent.
        #[arg(long)]
        rotate: bool,
        /// The gateway.
        #[command(flatten)]
        remote: Remote,
    },
    /// Kill switch: deny every action of the agent on every layer.
    Suspend {
        /// Agent id.
        id: String,
        /// The gateway.
        #[command(flatten)]
        remote: Remote,
    },
    /// Lift the kill switch.
    Resume {
        /// Agent id.
        id: String,
        /// The gateway.
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke the agent's token at once (`register --rotate` issues a new one).
    Revoke {
        /// Agent id.
        id: String,
        /// The gateway.
        #[command(flatten)]
        remote: Remote,
    },
}

/// A `--label` that is not `key=value`.
#[derive(Debug, thiserror::Error)]
#[error("expected key=value, got `{0}`")]
pub struct BadLabel(String);

fn parse_label(s: &str) -> Result<(String, String), BadLabel> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| BadLabel(s.to_owned()))
}

/// `aasm policy`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate Cedar policies against the schema, and the budget and price files.
    Check {
        /// Policy directory (*.cedar, budgets.toml, prices.toml).
        dir: PathBuf,
    },
    /// Upload a policy directory to a gateway (validated there; the old policy stays on error).
    Push {
        /// Policy directory.
        dir: PathBuf,
        /// The gateway.
        #[command(flatten)]
        remote: Remote,
    },
    /// Run a table of decision cases (TOML or JSON) against a policy directory.
    Test {
        /// Policy directory.
        dir: PathBuf,
        /// Case file.
        cases: PathBuf,
    },
}

/// `aasm decide`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Policy directory (embedded mode).
    #[arg(long, required_unless_present = "gateway", conflicts_with = "gateway")]
    pub policy: Option<PathBuf>,
    /// The gateway to ask instead (remote mode, shared budgets; it records the decisions).
    #[command(flatten)]
    pub remote: OptionalRemote,
    /// Agent id for lines that hold a bare action.
    #[arg(long, default_value = "cli")]
    pub agent: String,
    /// Team of that agent.
    #[arg(long)]
    pub team: Option<String>,
    /// Layer to report.
    #[arg(long, default_value = "sdk", value_parser = parse_layer)]
    pub layer: Layer,
    /// Append every decision to this hash-chained audit file (embedded mode).
    #[arg(long)]
    pub audit: Option<PathBuf>,
    /// Records between signed checkpoints in the audit file.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: u64,
    /// Allow (flagged fail_open) instead of deny when no decision can be made.
    #[arg(long)]
    pub fail_open: bool,
}

fn parse_layer(s: &str) -> Result<Layer, aa_core::ModelError> {
    s.parse()
}

/// `aasm audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain, check checkpoint signatures, name the first broken link.
    Verify {
        /// Audit file (JSON Lines); or give --gateway.
        #[arg(required_unless_present = "gateway", conflicts_with = "gateway")]
        file: Option<PathBuf>,
        /// Verify the chain stored at this gateway (records and checkpoints fetched over the
        /// API, admin token).
        #[command(flatten)]
        remote: OptionalRemote,
        /// Hex Ed25519 public key the checkpoints must be signed with.
        #[arg(long, conflicts_with = "key_file")]
        public_key: Option<String>,
        /// Signing key file whose public half the checkpoints must match (default: FILE.key if
        /// it exists).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Also fail when records follow the last checkpoint.
        #[arg(long)]
        strict: bool,
    },
    /// Print the records of an audit file, optionally following new ones.
    Tail {
        /// Audit file (JSON Lines); or give --gateway.
        #[arg(required_unless_present = "gateway", conflicts_with = "gateway")]
        file: Option<PathBuf>,
        /// Read the records of this gateway (follow: its SSE stream; admin token).
        #[command(flatten)]
        remote: OptionalRemote,
        /// Show the last N lines first.
        #[arg(short = 'n', long, default_value_t = 20, conflicts_with = "all")]
        lines: usize,
        /// Show every line first.
        #[arg(long)]
        all: bool,
        /// Keep printing records as they are appended.
        #[arg(short, long)]
        follow: bool,
    },
    /// Export a gateway's chain as an audit file that `aasm audit verify FILE` checks offline.
    Export {
        /// The gateway.
        #[command(flatten)]
        remote: Remote,
        /// Output file (default: stdout).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

/// Where the proxy keeps its CA and its state; the defaults are the same from any working
/// directory, so `start`, `status`, `logs` and `stop` find one another.
#[derive(Debug, Clone, Args)]
pub struct ProxyDir {
    /// Directory of the local CA (ca.pem, ca.key) [default: /var/lib/agent-assembly/proxy as
    /// root, else $XDG_DATA_HOME/agent-assembly/proxy]
    #[arg(long, env = "AA_PROXY_DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Directory of the pidfile, address, log and spilled events [default:
    /// /run/agent-assembly/proxy as root, else $XDG_STATE_HOME/agent-assembly/proxy]
    #[arg(long, env = "AA_PROXY_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl ProxyDir {
    /// The CA directory, given or the default.
    pub fn ca(&self) -> PathBuf {
        self.ca_dir
            .clone()
            .unwrap_or_else(|| crate::dirs::data("proxy"))
    }

    /// The state directory, given or the default.
    pub fn state(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| crate::dirs::state("proxy"))
    }
}

/// Where a layer (proxy, eBPF) gets its policy and sends its records: a gateway, or a policy
/// directory and an audit file.
#[derive(Debug, Clone, Args)]
pub struct LayerSource {
    /// Gateway URL (local mode: policy from the gateway, records shipped to it in batches).
    #[arg(long, env = "AA_GATEWAY_URL")]
    pub gateway: Option<String>,
    /// Token for the gateway: the agent's, or the admin token to report for every agent behind
    /// the layer.
    #[arg(long, env = "AA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Extra CA certificate (PEM) to trust for a TLS gateway.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Policy directory (embedded mode, without a gateway).
    #[arg(long, conflicts_with = "gateway")]
    pub policy: Option<PathBuf>,
    /// Audit file in embedded mode.
    #[arg(long)]
    pub audit_file: Option<PathBuf>,
}

impl LayerSource {
    /// The SDK client's input for `agent_id`.
    pub fn client_input(&self, agent_id: String) -> aa_sdk_client::ConfigInput {
        aa_sdk_client::ConfigInput {
            gateway_url: self.gateway.clone(),
            agent_id: Some(agent_id),
            token: self.token.clone(),
            policy: self.policy.clone(),
            audit_file: self.audit_file.clone(),
            ca_cert: self.ca_cert.clone(),
            ..aa_sdk_client::ConfigInput::default()
        }
    }
}

/// `aasm proxy run` and `aasm proxy start`.
#[derive(Debug, Clone, Args)]
pub struct ProxyRunArgs {
    /// Where the CA, pidfile and log are.
    #[command(flatten)]
    pub dir: ProxyDir,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8899")]
    pub listen: std::net::SocketAddr,
    /// Policy and records.
    #[command(flatten)]
    pub source: LayerSource,
    /// Agent for requests without Proxy-Authorization.
    #[arg(long, env = "AA_AGENT_ID")]
    pub default_agent: Option<String>,
    /// Host tunnelled without inspection (repeatable; `*.example.com` matches subdomains).
    #[arg(long = "passthrough")]
    pub passthrough: Vec<String>,
    /// Extra LLM API, `host[:port]=provider` (openai or anthropic; repeatable).
    #[arg(long = "llm")]
    pub llm: Vec<String>,
    /// Extra CA bundle (PEM) to trust for upstreams.
    #[arg(long)]
    pub upstream_ca: Option<PathBuf>,
    /// Upstream connect/read timeout, seconds.
    #[arg(long, default_value_t = 60)]
    pub upstream_timeout: u64,
    /// Largest request head a client may send, bytes (at least 8192).
    #[arg(long, default_value_t = 64 << 10)]
    pub max_header_bytes: usize,
    /// Longest time a client may take to send a request head, seconds.
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,
    /// Largest request body a client may send, bytes.
    #[arg(long, default_value_t = 100 << 20)]
    pub max_body_bytes: u64,
    /// Longest pause inside a request body, seconds.
    #[arg(long, default_value_t = 30)]
    pub body_timeout: u64,
    /// Allow (flagged) instead of deny when no decision can be made.
    #[arg(long)]
    pub fail_open: bool,
}

/// `aasm proxy`.
#[derive(Debug, Subcommand)]
pub enum ProxyCommand {
    /// Create the local CA (key mode 0600), add it to the system trust store, print the env vars.
    InstallCa {
        /// Where the CA is.
        #[command(flatten)]
        dir: ProxyDir,
        /// Trust-store directory (Debian: /usr/local/share/ca-certificates).
        #[arg(long, default_value = "/usr/local/share/ca-certificates")]
        trust_dir: PathBuf,
    },
    /// Remove the CA from the system trust store.
    UninstallCa {
        /// Trust-store directory.
        #[arg(long, default_value = "/usr/local/share/ca-certificates")]
        trust_dir: PathBuf,
    },
    /// Start the proxy in the background (pidfile and log in the CA directory).
    Start(ProxyRunArgs),
    /// Run the proxy in the foreground.
    Run(ProxyRunArgs),
    /// Stop the background proxy.
    Stop {
        /// Where the pidfile is.
        #[command(flatten)]
        dir: ProxyDir,
    },
    /// Whether it runs, its pid, address and counters.
    Status {
        /// Where the pidfile is.
        #[command(flatten)]
        dir: ProxyDir,
    },
    /// Print the proxy's log.
    Logs {
        /// Where the log is.
        #[command(flatten)]
        dir: ProxyDir,
        /// Keep printing.
        #[arg(short, long)]
        follow: bool,
    },
}

/// `aasm ebpf attach`.
#[derive(Debug, Clone, Args)]
pub struct EbpfAttachArgs {
    /// The agent's cgroup v2 directory (created if absent under the cgroup2 mount).
    #[arg(long)]
    pub cgroup: PathBuf,
    /// Policy and `layer: ebpf` records.
    #[command(flatten)]
    pub source: LayerSource,
    /// Agent the records are attributed to.
    #[arg(long, env = "AA_AGENT_ID", default_value = "ebpf")]
    pub agent: String,
    /// Refuse every connect that does not go to loopback (egress only through the proxy).
    #[arg(long)]
    pub force_proxy: bool,
    /// Status file (default: /run/agent-assembly/ebpf/<cgroup id>.json).
    #[arg(long)]
    pub status_file: Option<PathBuf>,
    /// Ring buffer size in bytes (a power of two of at least 4096).
    #[arg(long, default_value_t = 16 << 20)]
    pub ring_bytes: u32,
}

/// `aasm ebpf`.
#[derive(Debug, Subcommand)]
pub enum EbpfCommand {
    /// Attach the probes to a cgroup and run until stopped (SIGINT/SIGTERM).
    Attach(EbpfAttachArgs),
    /// Attached loaders: programs, events/s, lost events, kernel denials.
    Status {
        /// Directory of status files.
        #[arg(long, default_value = "/run/agent-assembly/ebpf")]
        dir: PathBuf,
    },
    /// Run CMD inside a cgroup, with writes allowed only beneath the given directories.
    Exec {
        /// cgroup v2 directory to join (none: stay in the current cgroup).
        #[arg(long)]
        cgroup: Option<PathBuf>,
        /// Directory the command may write beneath (repeatable; Landlock). None given: no
        /// Landlock ruleset.
        #[arg(long = "allow-write")]
        allow_write: Vec<PathBuf>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// The governance level a run must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunLevel {
    /// The proxy and the kernel layer enforce (any program).
    Observe,
    /// An SDK must announce itself (tool calls decided at SDK depth), or the run is not called
    /// governed.
    Native,
}

/// What `aasm run` does about egress that went around the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnBypassArg {
    /// Record it.
    Record,
    /// Record it and kill the process.
    Kill,
    /// Record it and suspend the agent everywhere.
    Suspend,
}

/// A layer `aasm run` can leave out (for measurements and partial set-ups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunLayer {
    /// The sidecar proxy.
    Proxy,
    /// The eBPF layer and its cgroup.
    Ebpf,
    /// The Landlock write ruleset.
    Landlock,
}

/// `aasm run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Policy directory of the embedded gateway.
    #[arg(long, conflicts_with = "gateway")]
    pub policy: Option<PathBuf>,
    /// Join this gateway instead of starting one (AA_TOKEN: the agent's token; or
    /// AA_ADMIN_TOKEN, to register the agent).
    #[arg(long)]
    pub gateway: Option<String>,
    /// Extra CA certificate (PEM) to trust for a TLS gateway.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// The agent's id (default: the command's name).
    #[arg(long)]
    pub agent_id: Option<String>,
    /// The governance level the run must reach.
    #[arg(long, value_enum, default_value = "observe")]
    pub level: RunLevel,
    /// What to do about egress that went around the proxy.
    #[arg(long, value_enum, default_value = "record")]
    pub on_bypass: OnBypassArg,
    /// A directory the command may write beneath (Landlock; repeatable). Without one, writes
    /// are decided and recorded by the kernel layer but not confined.
    #[arg(long = "allow-write")]
    pub allow_write: Vec<PathBuf>,
    /// Extra LLM API for the proxy, `host[:port]=provider` (repeatable).
    #[arg(long = "llm")]
    pub llm: Vec<String>,
    /// Extra CA bundle (PEM) the proxy trusts for upstreams.
    #[arg(long)]
    pub upstream_ca: Option<PathBuf>,
    /// Leave a layer out (repeatable).
    #[arg(long = "without", value_enum)]
    pub without: Vec<RunLayer>,
    /// Where the run keeps its gateway database, CA and logs (default: a new directory under
    /// the state directory).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}
