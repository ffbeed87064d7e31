//! The layers `aasm run` starts and stops: the gateway, the proxy, the eBPF layer, and the
//! command's own launcher.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use aa_core::wire::RegisterRequest;
use aa_ebpf::{AttachOptions, Bypass, EgressWatch, OnBypass};
use aa_sdk_client::{ConfigInput, GatewayClient};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use super::{Admin, SETTLE};
use crate::cli::{RunArgs, cli_options};
use crate::output::CliError;

/// How long a layer may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The gateway of the run.
pub(crate) struct Gateway {
    pub url: String,
    ca_cert: Option<PathBuf>,
    admin_token: Option<String>,
    admin: Option<Admin>,
    embedded: Option<Embedded>,
}

struct Embedded {
    db: PathBuf,
    server: Server<aa_gateway::GatewayError>,
}

/// A server task of the run (the gateway, the proxy) and the way to stop it.
struct Server<E> {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), E>>,
}

impl<E: Send + 'static> Server<E> {
    /// Spawns `serve(shutdown, on_listen)` and waits for its address; its own error when it
    /// ends first, a timeout when it never listens.
    fn spawn<F>(
        runtime: &Runtime,
        what: &str,
        serve: impl FnOnce(
            std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
            Box<dyn FnOnce(SocketAddr) + Send>,
        ) -> F,
    ) -> Result<(SocketAddr, Self), CliError>
    where
        F: std::future::Future<Output = Result<(), E>> + Send + 'static,
        CliError: From<E>,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let (addr_tx, addr_rx) = oneshot::channel();
        let mut task = runtime.spawn(serve(
            Box::pin(async {
                let _ = stopped.await;
            }),
            Box::new(move |addr| {
                let _ = addr_tx.send(addr);
            }),
        ));
        let addr = runtime.block_on(async {
            tokio::select! {
                addr = addr_rx => addr.map_err(|_| None),
                ended = &mut task => Err(Some(ended)),
                () = tokio::time::sleep(START_TIMEOUT) => Err(None),
            }
        });
        match addr {
            Ok(a) => Ok((a, Server { stop, task })),
            Err(Some(Ok(Err(e)))) => Err(e.into()),
            Err(_) => Err(CliError::Input(format!("{what} did not start"))),
        }
    }

    /// Signals the shutdown and waits for the task to finish (at most `grace`, when given).
    fn stop(self, runtime: &Runtime, grace: Option<Duration>) {
        let _ = self.stop.send(());
        let _ = runtime.block_on(async {
            match grace {
                Some(g) => tokio::time::timeout(g, self.task).await.ok(),
                None => Some(self.task.await),
            }
        });
    }
}

impl Gateway {
    /// Starts a gateway on an ephemeral port of 127.0.0.2 (so `NO_PROXY` can name it without
    /// exempting upstreams on 127.0.0.1) with its SQLite file in `dir`, a fresh admin token
    /// (never written to disk) and `policy`.
    pub fn embedded(runtime: &Runtime, dir: &Path, policy: &Path) -> Result<Self, CliError> {
        let admin_token = aa_gateway::auth::new_token()
            .map_err(|e| CliError::Input(format!("no randomness for the admin token: {e}")))?;
        let db = dir.join("gateway.db");
        let mut config = aa_gateway::GatewayConfig::new(([127, 0, 0, 2], 0).into(), db.clone());
        config.policy_dir = Some(policy.to_path_buf());
        config.admin_token = Some(admin_token.clone());
        // Its only clients are this run's layers, stopped before it.
        config.drain = Duration::from_secs(1);
        let (addr, server) = Server::spawn(runtime, "the embedded gateway", |stop, on_listen| {
            aa_gateway::serve(config, stop, on_listen)
        })?;
        let url = format!("http://{addr}");
        let admin = GatewayClient::new(&url, &admin_token, &cli_options(None))?;
        Ok(Gateway {
            url,
            ca_cert: None,
            admin_token: Some(admin_token),
            admin: Some(Arc::new(admin)),
            embedded: Some(Embedded { db, server }),
        })
    }

    /// Joins a running gateway; `AA_ADMIN_TOKEN`, when set, lets the run register the agent,
    /// read the audit for the summary and suspend on a bypass.
    pub fn join(url: &str, ca_cert: Option<PathBuf>) -> Result<Self, CliError> {
        let admin_token = std::env::var("AA_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        let admin = match &admin_token {
            Some(t) => Some(Arc::new(GatewayClient::new(
                url,
                t,
                &cli_options(ca_cert.clone()),
            )?)),
            None => None,
        };
        Ok(Gateway {
            url: url.trim_end_matches('/').to_owned(),
            ca_cert,
            admin_token,
            admin,
            embedded: None,
        })
    }

    pub fn describe(&self) -> String {
        match &self.embedded {
            Some(e) => format!(
                "gateway   embedded at {} (audit {})",
                self.url,
                e.db.display()
            ),
            None => format!("gateway   {}", self.url),
        }
    }

    pub fn admin(&self) -> Option<&Admin> {
        self.admin.as_ref()
    }

    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// The agent's token: `AA_TOKEN` when joining with one, else a registration.
    pub fn agent_token(&self, agent_id: &str) -> Result<String, CliError> {
        if self.embedded.is_none()
            && let Ok(token) = std::env::var("AA_TOKEN")
            && !token.is_empty()
        {
            return Ok(token);
        }
        let admin = self.admin.as_ref().ok_or_else(|| {
            CliError::Input(format!(
                "joining {}: set AA_TOKEN (the agent's token) or AA_ADMIN_TOKEN (to register {agent_id})",
                self.url
            ))
        })?;
        let request = RegisterRequest {
            agent_id: agent_id.to_owned(),
            team: None,
            labels: [("launched_by".to_owned(), "aasm run".to_owned())].into(),
            rotate: false,
        };
        Ok(admin.register(&request)?.token)
    }

    /// The addresses the gateway's URL resolves to (traffic to them is accounted for).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        let rest = self.url.split("://").nth(1).unwrap_or(&self.url);
        let authority = rest.split('/').next().unwrap_or(rest);
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else if self.url.starts_with("https") {
            format!("{authority}:443")
        } else {
            format!("{authority}:80")
        };
        with_port
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default()
    }

    /// The SDK client's input for a layer reporting as `agent_id` with `token`.
    fn client(&self, agent_id: &str, token: &str, spill: PathBuf) -> ConfigInput {
        ConfigInput {
            gateway_url: Some(self.url.clone()),
            agent_id: Some(agent_id.to_owned()),
            token: Some(token.to_owned()),
            ca_cert: self.ca_cert.clone(),
            spill_dir: Some(spill),
            ..ConfigInput::default()
        }
    }

    /// Stops an embedded gateway: drains, flushes the audit writer, seals with a checkpoint.
    pub fn stop(mut self, runtime: &Runtime) {
        // Our own kept-alive connections must not hold the drain open.
        self.admin = None;
        if let Some(e) = self.embedded {
            // Unbounded: the audit is flushed and sealed before the run ends.
            e.server.stop(runtime, None);
        }
    }
}

/// The proxy of the run.
pub(crate) struct Proxy {
    pub addr: SocketAddr,
    pub ca_cert: PathBuf,
    pub bundle: PathBuf,
    ca_dir: PathBuf,
    server: Server<aa_proxy::ProxyError>,
}

impl Proxy {
    /// Starts the proxy on an ephemeral loopback port with a CA of the run's own.
    pub fn start(
        runtime: &Runtime,
        dir: &Path,
        gateway: &Gateway,
        agent_id: &str,
        token: &str,
        args: &RunArgs,
    ) -> Result<Self, CliError> {
        let ca_dir = dir.join("ca");
        let mut config = aa_proxy::ProxyConfig::new(
            ([127, 0, 0, 1], 0).into(),
            ca_dir.clone(),
            gateway.client(agent_id, token, dir.join("proxy-spill")),
        );
        config.default_agent = Some(agent_id.to_owned());
        config
            .llm
            .extend(args.llm.iter().map(|s| aa_proxy::LlmEndpoint::parse(s)));
        config.upstream_ca = args.upstream_ca.clone();
        let (addr, server) = Server::spawn(runtime, "the proxy", |stop, on_listen| {
            aa_proxy::run(config, stop, on_listen)
        })?;
        let ca_cert = ca_dir.join(aa_proxy::ca::CA_CERT);
        let pem = std::fs::read_to_string(&ca_cert).map_err(CliError::io(&ca_cert))?;
        // Roots plus the run's CA, for clients that replace the roots rather than add to them.
        let mut bundle_text =
            std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
        bundle_text.push_str(&pem);
        let bundle = ca_dir.join("bundle.pem");
        std::fs::write(&bundle, bundle_text).map_err(CliError::io(&bundle))?;
        Ok(Proxy {
            addr,
            ca_cert,
            bundle,
            ca_dir,
            server,
        })
    }

    /// Stops the proxy (its records flushed) and deletes the run's CA: nothing keeps trusting
    /// it after the run.
    pub fn stop(self, runtime: &Runtime) {
        self.server.stop(runtime, Some(Duration::from_secs(15)));
        let _ = std::fs::remove_dir_all(&self.ca_dir);
    }
}

/// The kernel layer of the run, on a cgroup of its own.
pub(crate) struct Ebpf {
    pub cgroup: PathBuf,
    pub programs: usize,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<aa_ebpf::Summary, aa_ebpf::EbpfError>>,
    bypasses: Option<mpsc::Receiver<Bypass>>,
}

impl Ebpf {
    /// Creates the cgroup and attaches the probes; egress not to `via` is a bypass.
    pub fn start(
        dir: &Path,
        gateway: &Gateway,
        agent_id: &str,
        token: &str,
        via: Vec<SocketAddr>,
        on_bypass: OnBypass,
    ) -> Result<Self, CliError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        let cgroup = aa_ebpf::system::cgroup2_mount()?
            .join("agent-assembly")
            .join(format!("run-{name}"));
        std::fs::create_dir_all(&cgroup).map_err(CliError::io(&cgroup))?;
        let (tx, rx) = mpsc::channel();
        let options = AttachOptions {
            cgroup: cgroup.clone(),
            client: gateway.client(agent_id, token, dir.join("ebpf-spill")),
            force_proxy: false,
            status_file: dir.join("ebpf-status.json"),
            ring_bytes: None,
            egress: Some(EgressWatch {
                via,
                on_bypass,
                sink: Some(tx),
            }),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("aa-run-ebpf".into())
                .spawn(move || {
                    aa_ebpf::run(options, stop, |s| {
                        let ok = s.programs.iter().filter(|p| p.error.is_none()).count();
                        let _ = ready_tx.send(ok);
                    })
                })
                .map_err(CliError::Runtime)?
        };
        let programs = match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(n) => n,
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                let err = match thread.join() {
                    Ok(Err(e)) => CliError::from(e),
                    _ => CliError::Input("the eBPF layer did not attach".into()),
                };
                let _ = std::fs::remove_dir(&cgroup);
                return Err(err);
            }
        };
        Ok(Ebpf {
            cgroup,
            programs,
            stop,
            thread,
            bypasses: Some(rx),
        })
    }

    /// A thread that suspends the agent on the first bypass (with `--on-bypass suspend`); it
    /// ends when the layer stops (the layer holds the sender).
    pub fn bypasses(
        &mut self,
        admin: Option<Admin>,
        agent_id: &str,
        on_bypass: OnBypass,
    ) -> Option<JoinHandle<()>> {
        let rx = self.bypasses.take()?;
        let agent_id = agent_id.to_owned();
        std::thread::Builder::new()
            .name("aa-run-bypass".into())
            .spawn(move || {
                let mut suspended = false;
                while rx.recv().is_ok() {
                    if on_bypass == OnBypass::Suspend
                        && !suspended
                        && let Some(admin) = &admin
                    {
                        suspended = admin.suspend(&agent_id).is_ok();
                    }
                }
            })
            .ok()
    }

    /// Kills what is left in the cgroup, stops the layer (its records flushed), removes the
    /// cgroup.
    pub fn stop(self) -> Option<aa_ebpf::Summary> {
        let kill = self.cgroup.join("cgroup.kill");
        let _ = std::fs::write(&kill, "1");
        // Late events (the command's last syscalls) reach the layer before it stops.
        std::thread::sleep(SETTLE);
        self.stop.store(true, Ordering::Relaxed);
        let summary = self.thread.join().ok().and_then(Result::ok);
        for _ in 0..50 {
            if std::fs::remove_dir(&self.cgroup).is_ok() || !self.cgroup.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The parent goes too once no other run uses it.
        if let Some(parent) = self.cgroup.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        summary
    }
}

/// The command, launched through `aasm ebpf exec` when there is a cgroup to join or a
/// Landlock ruleset to apply (both before the command's first instruction).
pub(crate) fn command(
    cgroup: Option<&Path>,
    allow_write: &[PathBuf],
    argv: &[String],
) -> Result<Command, CliError> {
    let (program, rest) = argv
        .split_first()
        .ok_or_else(|| CliError::Input("give the command after --".into()))?;
    if cgroup.is_none() && allow_write.is_empty() {
        let mut c = Command::new(program);
        c.args(rest);
        return Ok(c);
    }
    let me = std::env::current_exe().map_err(|source| CliError::Spawn {
        what: "aasm (to launch the command)".into(),
        source,
    })?;
    let mut c = Command::new(me);
    c.args(["ebpf", "exec"]);
    if let Some(cg) = cgroup {
        c.arg("--cgroup").arg(cg);
    }
    if !allow_write.is_empty() {
        for d in allow_write
            .iter()
            .map(PathBuf::as_path)
            .chain([Path::new("/dev")])
        {
            c.arg("--allow-write").arg(d);
        }
    }
    c.arg("--").args(argv);
    Ok(c)
}

/// The command's environment: every client through the proxy, trusting its CA; the SDKs at
/// the gateway as the agent.
pub(crate) fn child_env(
    gateway: &Gateway,
    proxy: Option<&Proxy>,
    agent_id: &str,
    token: &str,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("AA_GATEWAY_URL".to_owned(), gateway.url.clone()),
        ("AA_AGENT_ID".to_owned(), agent_id.to_owned()),
        ("AA_TOKEN".to_owned(), token.to_owned()),
    ];
    if let Some(ca) = &gateway.ca_cert {
        env.push(("AA_CA_CERT".into(), ca.display().to_string()));
    }
    if let Some(p) = proxy {
        let url = format!("http://{}", p.addr);
        let host = gateway
            .url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .map(|a| a.rsplit_once(':').map_or(a, |(h, _)| h))
            .unwrap_or_default()
            .to_owned();
        for key in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
            env.push((key.into(), url.clone()));
        }
        for key in ["NO_PROXY", "no_proxy"] {
            env.push((key.into(), host.clone()));
        }
        let bundle = p.bundle.display().to_string();
        env.push(("SSL_CERT_FILE".into(), bundle.clone()));
        env.push(("CURL_CA_BUNDLE".into(), bundle.clone()));
        env.push(("REQUESTS_CA_BUNDLE".into(), bundle));
        env.push((
            "NODE_EXTRA_CA_CERTS".into(),
            p.ca_cert.display().to_string(),
        ));
    }
    env
}
