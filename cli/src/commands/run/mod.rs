//! `aasm run -- CMD`: one command governs a program end to end.
//!
//! Start-up, in order: a gateway (embedded on an ephemeral port with its SQLite file in the
//! run's directory, or joined with `--gateway`), the agent's token, the proxy with a CA of the
//! run's own, and as root the eBPF layer on a new cgroup v2 (watching egress for bypasses);
//! then the command, launched through `aasm ebpf exec` (join the cgroup, refuse io_uring,
//! Landlock) with the environment that points every client at the proxy and the SDKs at the
//! gateway. Signals are forwarded; when the command ends everything is torn down in reverse
//! and a summary is printed. The exit status is the command's.

mod layers;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use aa_ebpf::OnBypass;
use aa_sdk_client::GatewayClient;

use crate::cli::{OnBypassArg, RunArgs, RunLayer, RunLevel};
use crate::output::{CliError, Printer, Status};

use layers::{Ebpf, Gateway, Proxy};

/// Exit status when `--level native` was asked and no SDK announced itself (and the command
/// itself succeeded).
const NOT_NATIVE: u8 = 3;

pub fn run(args: RunArgs, out: &Printer) -> Result<Status, CliError> {
    let started = Instant::now();
    let progress = |what: &str| {
        out.note(&format!(
            "aasm run [{:>4} ms] {what}",
            started.elapsed().as_millis()
        ))
    };
    let dir = run_dir(args.state_dir.as_deref())?;
    if let Ok(log) = std::fs::File::create(dir.join("run.log")) {
        aa_gateway::init_logging_to(log);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let signals = Signals::install(&runtime)?;

    let agent_id = args
        .agent_id
        .clone()
        .unwrap_or_else(|| default_agent(&args.command));
    let gateway = match &args.gateway {
        Some(url) => Gateway::join(url, args.ca_cert.clone())?,
        None => {
            let policy = args.policy.as_deref().ok_or_else(|| {
                CliError::Input("give --policy DIR (an embedded gateway) or --gateway URL".into())
            })?;
            Gateway::embedded(&runtime, &dir, policy)?
        }
    };
    progress(&gateway.describe());
    let since = Since::now();
    let result = (|| {
        let token = gateway.agent_token(&agent_id)?;
        progress(&format!("agent     {agent_id}"));
        let report_token = gateway.admin_token().unwrap_or(&token).to_owned();
        let proxy = if args.without.contains(&RunLayer::Proxy) {
            progress("proxy     left out (--without proxy)");
            None
        } else {
            let p = Proxy::start(&runtime, &dir, &gateway, &agent_id, &report_token, &args)?;
            progress(&format!(
                "proxy     http://{} (CA {})",
                p.addr,
                p.ca_cert.display()
            ));
            Some(p)
        };
        let on_bypass = match args.on_bypass {
            OnBypassArg::Record => OnBypass::Record,
            OnBypassArg::Kill => OnBypass::Kill,
            OnBypassArg::Suspend => OnBypass::Suspend,
        };
        if on_bypass == OnBypass::Suspend && gateway.admin().is_none() {
            return Err(CliError::Input(
                "--on-bypass suspend needs the admin token (AA_ADMIN_TOKEN) of a joined gateway"
                    .into(),
            ));
        }
        let ebpf = if args.without.contains(&RunLayer::Ebpf) {
            progress("eBPF      left out (--without ebpf)");
            None
        } else if !crate::dirs::is_root() {
            progress(
                "eBPF      not started: the kernel layer needs root (the proxy and the SDKs still govern)",
            );
            None
        } else {
            let via: Vec<_> = proxy
                .iter()
                .map(|p| p.addr)
                .chain(gateway.addrs())
                .collect();
            match Ebpf::start(&dir, &gateway, &agent_id, &report_token, via, on_bypass) {
                Ok(e) => {
                    progress(&format!(
                        "eBPF      {} programs on cgroup {}",
                        e.programs,
                        e.cgroup.display()
                    ));
                    Some(e)
                }
                Err(err) => {
                    progress(&format!("eBPF      not started: {err}"));
                    None
                }
            }
        };
        let landlock = !args.allow_write.is_empty() && !args.without.contains(&RunLayer::Landlock);
        if landlock {
            progress(&format!(
                "Landlock  writes only beneath {} and /dev",
                args.allow_write
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut ebpf = ebpf;
        let bypass_thread = ebpf
            .as_mut()
            .and_then(|e| e.bypasses(gateway.admin().cloned(), &agent_id, on_bypass));
        let mut child = layers::command(
            ebpf.as_ref().map(|e| e.cgroup.as_path()),
            if landlock { &args.allow_write } else { &[] },
            &args.command,
        )?;
        child.envs(layers::child_env(
            &gateway,
            proxy.as_ref(),
            &agent_id,
            &token,
        ));
        if signals.stopped() {
            return Err(CliError::Input(
                "interrupted before the command started".into(),
            ));
        }
        let launched = Instant::now();
        let child = child.spawn().map_err(|source| CliError::Spawn {
            what: args.command.join(" "),
            source,
        })?;
        progress(&format!(
            "started   {} (pid {})",
            args.command.join(" "),
            child.id()
        ));
        let startup = started.elapsed();
        let status = signals.wait(&runtime, child);
        let ran = launched.elapsed();
        // Tear down in reverse: the cgroup's last processes, the kernel layer (its records
        // flushed), the proxy (flushed); the gateway stays up for the summary.
        let ebpf_summary = ebpf.and_then(|e| e.stop());
        if let Some(t) = bypass_thread {
            let _ = t.join();
        }
        if let Some(p) = proxy {
            p.stop(&runtime);
        }
        let mut report = summary::collect(&gateway, &agent_id, since.ms, ebpf_summary.as_ref());
        report.command = args.command.clone();
        report.state_dir = dir.display().to_string();
        report.startup_ms = startup.as_secs_f64() * 1e3;
        report.duration_ms = ran.as_secs_f64() * 1e3;
        report.exit_code = status.code;
        report.signal = status.signal;
        report.governed =
            args.level == RunLevel::Observe || report.level == summary::Level::L3Native;
        Ok((report, status))
    })();
    gateway.stop(&runtime);
    let (report, status) = result?;
    out.emit("run", &report, || report.human());
    let code = status.exit_code();
    if !report.governed {
        out.note("aasm run: --level native, but no SDK announced itself: the run is not governed at L3Native");
        if code == 0 {
            return Ok(Status::Child(NOT_NATIVE));
        }
    }
    Ok(Status::Child(code))
}

/// When the run began (unix ms): the summary counts what came after.
struct Since {
    ms: i64,
}

impl Since {
    fn now() -> Self {
        use aa_core::Environment;
        Since {
            ms: aa_core::SystemEnv.now_ms(),
        }
    }
}

/// The run's directory: given, or a new one under the state directory (0700).
fn run_dir(given: Option<&Path>) -> Result<PathBuf, CliError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match given {
        Some(d) => d.to_path_buf(),
        None => {
            use aa_core::Environment;
            crate::dirs::state("runs").join(format!(
                "{}-{}",
                aa_core::SystemEnv.now_ms(),
                std::process::id()
            ))
        }
    };
    std::fs::create_dir_all(&dir).map_err(CliError::io(&dir))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(CliError::io(&dir))?;
    Ok(dir)
}

/// The command's file name as a registrable agent id: `python3 agent.py` runs as agent
/// `python3`; characters an id cannot hold become `-`.
fn default_agent(command: &[String]) -> String {
    let name = command
        .first()
        .and_then(|c| Path::new(c).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id: String = name
        .chars()
        .map(|c| match c {
            c if c.is_ascii_alphanumeric() || "._:@-".contains(c) => c,
            _ => '-',
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(aa_core::MAX_REGISTERED_ID_LEN)
        .collect();
    if id.is_empty() { "agent".into() } else { id }
}

/// How the command ended.
#[derive(Debug, Clone, Copy)]
struct Ended {
    code: Option<i32>,
    signal: Option<i32>,
}

impl Ended {
    /// The shell's convention: the code, or 128 + the signal.
    fn exit_code(self) -> u8 {
        match (self.code, self.signal) {
            (Some(c), _) => u8::try_from(c.clamp(0, 255)).unwrap_or(1),
            (None, Some(s)) => u8::try_from((128 + s).clamp(0, 255)).unwrap_or(1),
            _ => 1,
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP: caught from the start, forwarded to the command once it runs.
struct Signals {
    child: Arc<AtomicI32>,
    stopped: Arc<AtomicBool>,
}

impl Signals {
    fn install(runtime: &tokio::runtime::Runtime) -> Result<Self, CliError> {
        use tokio::signal::unix::{SignalKind, signal};
        let child = Arc::new(AtomicI32::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let _guard = runtime.enter();
        for (kind, signum) in [
            (SignalKind::interrupt(), libc::SIGINT),
            (SignalKind::terminate(), libc::SIGTERM),
            (SignalKind::hangup(), libc::SIGHUP),
        ] {
            let mut stream = signal(kind).map_err(CliError::Runtime)?;
            let (child, stopped) = (child.clone(), stopped.clone());
            runtime.spawn(async move {
                while stream.recv().await.is_some() {
                    stopped.store(true, Ordering::SeqCst);
                    let pid = child.load(Ordering::SeqCst);
                    if pid > 0 {
                        #[allow(unsafe_code)]
                        // SAFETY: kill has no memory preconditions.
                        unsafe {
                            libc::kill(pid, signum);
                        }
                    }
                }
            });
        }
        Ok(Signals { child, stopped })
    }

    /// A signal arrived before the command started.
    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Waits for the command, forwarding signals to it meanwhile.
    fn wait(&self, runtime: &tokio::runtime::Runtime, mut child: std::process::Child) -> Ended {
        use std::os::unix::process::ExitStatusExt;
        let pid = i32::try_from(child.id()).unwrap_or(0);
        self.child.store(pid, Ordering::SeqCst);
        if self.stopped() {
            // The signal came between the check and the spawn: pass it on.
            #[allow(unsafe_code)]
            // SAFETY: as above.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let status = runtime.block_on(async move {
            tokio::task::spawn_blocking(move || child.wait())
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
        });
        self.child.store(0, Ordering::SeqCst);
        match status {
            Ok(s) => Ended {
                code: s.code(),
                signal: s.signal(),
            },
            Err(_) => Ended {
                code: None,
                signal: None,
            },
        }
    }
}

/// An admin client for the gateway, when the run has the admin token.
pub(crate) type Admin = Arc<GatewayClient>;

/// How long teardown waits for late records.
pub(crate) const SETTLE: Duration = Duration::from_millis(300);

#[cfg(test)]
mod tests {
    use super::default_agent;

    #[test]
    fn the_default_agent_id_is_registrable() {
        for (cmd, want) in [
            ("python3", "python3"),
            ("/usr/bin/node", "node"),
            ("./my agent.sh", "my-agent.sh"),
            ("-x", "x"),
            ("Þ", "agent"),
            ("", "agent"),
        ] {
            let id = default_agent(&[cmd.to_owned()]);
            assert_eq!(id, want);
            aa_core::Agent::validate_registered_id(&id).unwrap();
        }
    }
}
