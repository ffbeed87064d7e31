use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use aa_sdk_client::ConfigInput;

/// An LLM API the proxy recognises: requests to it also become `model_call` actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmEndpoint {
    /// Host (and optional `:port`) of the API.
    pub host: String,
    /// `openai` (Chat Completions / Responses shapes, incl. OpenAI-compatible servers) or
    /// `anthropic` (Messages).
    pub provider: String,
}

impl LlmEndpoint {
    /// `host=provider`, or just `host` (OpenAI-compatible).
    pub fn parse(s: &str) -> Self {
        match s.split_once('=') {
            Some((h, p)) => LlmEndpoint {
                host: h.to_owned(),
                provider: p.to_owned(),
            },
            None => LlmEndpoint {
                host: s.to_owned(),
                provider: "openai".to_owned(),
            },
        }
    }
}

/// How to run the proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the local CA (`ca.pem`, `ca.key`).
    pub ca_dir: PathBuf,
    /// The decision client: a gateway (local mode; the token must be allowed to report for the
    /// agents behind the proxy — the admin token) or a policy directory (embedded).
    pub client: ConfigInput,
    /// The agent for requests without `Proxy-Authorization` (none: such requests get 407).
    pub default_agent: Option<String>,
    /// Hosts tunnelled without inspection (`example.com` or `*.example.com`); still decided
    /// and recorded as `net_connect`.
    pub passthrough: Vec<String>,
    /// LLM APIs (the defaults: api.openai.com, api.anthropic.com).
    pub llm: Vec<LlmEndpoint>,
    /// Extra CA certificates (PEM) trusted for upstreams, besides webpki and the system store.
    pub upstream_ca: Option<PathBuf>,
    /// Upstream connect and read timeout.
    pub upstream_timeout: Duration,
    /// Hosts whose leaf certificates are cached.
    pub leaf_cache: usize,
    /// Largest request or response body the proxy buffers to inspect (LLM, MCP).
    pub max_inspect: usize,
    /// What a client may send (header and body size and time).
    pub limits: crate::Limits,
}

impl ProxyConfig {
    /// Defaults around the essentials.
    pub fn new(listen: SocketAddr, ca_dir: PathBuf, client: ConfigInput) -> Self {
        ProxyConfig {
            listen,
            ca_dir,
            client,
            default_agent: None,
            passthrough: Vec::new(),
            llm: vec![
                LlmEndpoint::parse("api.openai.com=openai"),
                LlmEndpoint::parse("api.anthropic.com=anthropic"),
            ],
            upstream_ca: None,
            upstream_timeout: Duration::from_secs(30),
            leaf_cache: 16_384,
            max_inspect: 16 << 20,
            limits: crate::Limits::default(),
        }
    }

    /// True if `host` is tunnelled without inspection.
    pub fn is_passthrough(&self, host: &str) -> bool {
        self.passthrough.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")) || host == suffix,
            None => p == host,
        })
    }

    /// The LLM provider of `host:port`, if it is an LLM API.
    pub fn llm_provider(&self, host: &str, port: u16) -> Option<&str> {
        let with_port = format!("{host}:{port}");
        self.llm
            .iter()
            .find(|e| e.host == host || e.host == with_port)
            .map(|e| e.provider.as_str())
    }
}
