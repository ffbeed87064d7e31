//! `aasm proxy install-ca | uninstall-ca | start | run | stop | status | logs`

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::ffi::OsString;

use aa_proxy::{LlmEndpoint, ProxyConfig};
use aa_sdk_client::ConfigInput;
use serde_json::json;

use crate::cli::{ProxyCommand, ProxyRunArgs};
use crate::output::{CliError, Printer, Status};

const PIDFILE: &str = "proxy.pid";
const ADDRFILE: &str = "proxy.addr";
const LOGFILE: &str = "proxy.log";

pub fn run(command: ProxyCommand, out: &Printer) -> Result<Status, CliError> {
    match command {
        ProxyCommand::InstallCa { dir, trust_dir } => install_ca(&dir.ca(), &trust_dir, out),
        ProxyCommand::UninstallCa { trust_dir } => {
            let removed = aa_proxy::ca::uninstall_system(&trust_dir)?;
            out.emit("uninstall-ca", &json!({ "removed": removed }), || {
                if removed {
                    "removed the Agent Assembly CA from the trust store".into()
                } else {
                    "the CA was not installed".into()
                }
            });
            Ok(Status::Success)
        }
        ProxyCommand::Start(args) => start(args, out),
        ProxyCommand::Run(args) => run_foreground(args),
        ProxyCommand::Stop { dir } => stop(&dir.state(), out),
        ProxyCommand::Status { dir } => status(&dir.state(), out),
        ProxyCommand::Logs { dir, follow } => logs(&dir.state(), follow),
    }
}

fn install_ca(dir: &Path, trust_dir: &Path, out: &Printer) -> Result<Status, CliError> {
    std::fs::create_dir_all(dir).map_err(CliError::io(dir))?;
    let (cert, _key) = aa_proxy::ca::load_or_create(dir)?;
    let installed = aa_proxy::ca::install_system(&cert, trust_dir)?;
    // A bundle of the system roots plus our CA, for tools that replace rather than add roots.
    let system = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    let bundle = dir.join("bundle.pem");
    let mut text = system;
    if !text.contains(cert.trim()) {
        text.push_str(&cert);
    }
    std::fs::write(&bundle, text).map_err(CliError::io(&bundle))?;
    let ca = dir.join(aa_proxy::ca::CA_CERT);
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let env = json!({
        "SSL_CERT_FILE": abs(&bundle),
        "REQUESTS_CA_BUNDLE": abs(&bundle),
        "NODE_EXTRA_CA_CERTS": abs(&ca),
        "trust_store": installed,
    });
    out.emit("install-ca", &env, || {
        format!(
            "CA {} installed into {}\n# point clients at the proxy and trust its CA:\nexport HTTPS_PROXY=http://127.0.0.1:8899 HTTP_PROXY=http://127.0.0.1:8899\nexport SSL_CERT_FILE={b} REQUESTS_CA_BUNDLE={b} NODE_EXTRA_CA_CERTS={c}",
            abs(&ca).display(),
            installed.display(),
            b = abs(&bundle).display(),
            c = abs(&ca).display()
        )
    });
    Ok(Status::Success)
}

fn config(args: &ProxyRunArgs) -> ProxyConfig {
    let client = ConfigInput {
        fail_open: Some(args.fail_open),
        spill_dir: Some(args.dir.state().join("spill")),
        ..args.source.client_input(
            args.default_agent
                .clone()
                .unwrap_or_else(|| "aa-proxy".into()),
        )
    };
    let mut c = ProxyConfig::new(args.listen, args.dir.ca(), client);
    c.default_agent = args.default_agent.clone();
    c.passthrough = args.passthrough.clone();
    c.llm.extend(args.llm.iter().map(|s| LlmEndpoint::parse(s)));
    c.upstream_ca = args.upstream_ca.clone();
    c.upstream_timeout = Duration::from_secs(args.upstream_timeout.max(1));
    c.limits = aa_proxy::Limits {
        max_header_bytes: args.max_header_bytes,
        header_timeout: Duration::from_secs(args.header_timeout.max(1)),
        max_body_bytes: args.max_body_bytes,
        body_timeout: Duration::from_secs(args.body_timeout.max(1)),
    };
    c
}

fn run_foreground(args: ProxyRunArgs) -> Result<Status, CliError> {
    aa_gateway::init_logging(false);
    let config = config(&args);
    let state = args.dir.state();
    std::fs::create_dir_all(&state).map_err(CliError::io(&state))?;
    let addr_file = state.join(ADDRFILE);
    let pid_file = state.join(PIDFILE);
    if let Some(pid) = pid_of(&state).filter(|&p| p != std::process::id()) {
        return Err(CliError::Input(format!(
            "a proxy already runs with the state directory {} (pid {pid}); `aasm proxy stop` first, or give another --state-dir",
            state.display()
        )));
    }
    std::fs::write(&pid_file, std::process::id().to_string()).map_err(CliError::io(&pid_file))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let ran = runtime.block_on(aa_proxy::run(
        config,
        super::gateway::shutdown_signal(),
        move |addr| {
            let _ = std::fs::write(&addr_file, addr.to_string());
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on http://{addr}");
            let _ = out.flush();
        },
    ));
    let _ = std::fs::remove_file(&pid_file);
    let _ = std::fs::remove_file(state.join(ADDRFILE));
    ran?;
    Ok(Status::Success)
}

fn pid_of(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(PIDFILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

fn start(args: ProxyRunArgs, out: &Printer) -> Result<Status, CliError> {
    let dir = args.dir.state();
    std::fs::create_dir_all(&dir).map_err(CliError::io(&dir))?;
    if let Some(pid) = pid_of(&dir) {
        return Err(CliError::Input(format!(
            "the proxy already runs (pid {pid}); `aasm proxy stop` first"
        )));
    }
    let spawn = |source| CliError::Spawn {
        what: "the proxy".into(),
        source,
    };
    let exe = std::env::current_exe().map_err(spawn)?;
    let log_path = dir.join(LOGFILE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(CliError::io(&log_path))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    // The child is this very command line with `start` turned into `run`, so every flag
    // reaches it as given and is parsed once, by the same grammar.
    let mut cmd = std::process::Command::new(exe);
    cmd.args(run_argv(std::env::args_os())?);
    // The token goes through the environment, never argv.
    if let Some(t) = &args.source.token {
        cmd.env("AA_TOKEN", t);
    }
    let err = log.try_clone().map_err(CliError::io(&log_path))?;
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(spawn)?;
    let pid = child.id();
    std::fs::write(dir.join(PIDFILE), pid.to_string()).map_err(CliError::io(&dir))?;
    // Wait for it to listen (or die).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read(&log_path).unwrap_or_default();
        let new = String::from_utf8_lossy(text.get(log_start as usize..).unwrap_or_default())
            .into_owned();
        if let Some(line) = new.lines().find(|l| l.starts_with("listening on ")) {
            let url = line.trim_start_matches("listening on ").to_owned();
            out.emit(
                "started",
                &json!({ "pid": pid, "url": url, "log": log_path }),
                || {
                    format!(
                        "proxy started: pid {pid}, {url} (log: {})",
                        log_path.display()
                    )
                },
            );
            return Ok(Status::Success);
        }
        // try_wait, not /proc: the child that failed stays a zombie until its parent reaps it.
        if !matches!(child.try_wait(), Ok(None)) || Instant::now() > deadline {
            let _ = std::fs::remove_file(dir.join(PIDFILE));
            return Err(CliError::Input(format!("the proxy did not start:\n{new}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(dir: &Path, out: &Printer) -> Result<Status, CliError> {
    let Some(pid) = pid_of(dir) else {
        let _ = std::fs::remove_file(dir.join(PIDFILE));
        out.emit("stopped", &json!({ "running": false }), || {
            "the proxy is not running".into()
        });
        return Ok(Status::Success);
    };
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(dir.join(PIDFILE));
    out.emit("stopped", &json!({ "pid": pid }), || {
        format!("proxy stopped (pid {pid})")
    });
    Ok(Status::Success)
}

fn status(dir: &Path, out: &Printer) -> Result<Status, CliError> {
    let Some(pid) = pid_of(dir) else {
        out.emit("status", &json!({ "running": false }), || {
            "not running".into()
        });
        return Ok(Status::Failed);
    };
    let addr = std::fs::read_to_string(dir.join(ADDRFILE)).unwrap_or_default();
    let local: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(3)))
        .build()
        .into();
    let stats: serde_json::Value = local
        .get(format!("http://{}/_aa/status", addr.trim()))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_json().ok())
        .unwrap_or_default();
    let data = json!({ "running": true, "pid": pid, "listen": addr.trim(), "status": stats });
    out.emit("status", &data, || {
        let n = |k: &str| stats.pointer(&format!("/stats/{k}")).and_then(|v| v.as_u64()).unwrap_or(0);
        format!(
            "running: pid {pid}, listening on {}, {} requests, {} denies, {} upstream errors, policy {}",
            addr.trim(),
            n("requests"),
            n("denies"),
            n("upstream_errors"),
            stats.get("policy_version").and_then(|v| v.as_str()).unwrap_or("none")
        )
    });
    Ok(Status::Success)
}

fn logs(dir: &Path, follow: bool) -> Result<Status, CliError> {
    let path: PathBuf = dir.join(LOGFILE);
    let file = std::fs::File::open(&path).map_err(CliError::io(&path))?;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut stdout = std::io::stdout().lock();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(CliError::io(&path))?;
        if n == 0 {
            if !follow {
                return Ok(Status::Success);
            }
            std::thread::sleep(Duration::from_millis(200));
            let pos = reader.stream_position().unwrap_or(0);
            reader
                .seek(SeekFrom::Start(pos))
                .map_err(CliError::io(&path))?;
            continue;
        }
        if stdout.write_all(line.as_bytes()).is_err() {
            return Ok(Status::Success);
        }
        let _ = stdout.flush();
    }
}

/// The arguments of `aasm proxy run` for a `aasm [--json] proxy start …` command line (the
/// program name first): `start` becomes `run`, `--token` is dropped (it goes through the
/// environment), everything else is passed on as given.
fn run_argv(argv: impl IntoIterator<Item = OsString>) -> Result<Vec<OsString>, CliError> {
    let mut out: Vec<OsString> = Vec::new();
    let mut args = argv.into_iter().skip(1);
    let (mut group_seen, mut verb_seen) = (false, false);
    while let Some(arg) = args.next() {
        // Only the global `--json` may come between `proxy` and `start`.
        if !verb_seen {
            if group_seen && arg == "start" {
                out.push("run".into());
                verb_seen = true;
            } else {
                group_seen |= arg == "proxy";
                out.push(arg);
            }
            continue;
        }
        if arg == "--token" {
            let _value = args.next();
        } else if !arg.to_str().is_some_and(|a| a.starts_with("--token=")) {
            out.push(arg);
        }
    }
    if verb_seen {
        Ok(out)
    } else {
        Err(CliError::Input(
            "`proxy start` must be run as `aasm proxy start …`".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn start_becomes_run_and_the_token_leaves_argv() {
        let child = run_argv(argv(&[
            "/bin/aasm",
            "proxy",
            "--json",
            "start",
            "--ca-dir",
            "proxy",
            "--token",
            "secret",
            "--llm=h=openai",
            "--token=secret2",
            "--passthrough",
            "start",
        ]))
        .unwrap();
        assert_eq!(
            child,
            argv(&[
                "proxy",
                "--json",
                "run",
                "--ca-dir",
                "proxy",
                "--llm=h=openai",
                "--passthrough",
                "start"
            ])
        );
    }

    #[test]
    fn another_command_line_is_refused() {
        assert!(run_argv(argv(&["aasm", "proxy", "run"])).is_err());
    }
}
