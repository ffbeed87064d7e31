//! `aasm ebpf attach | status | exec`

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aa_ebpf::{AttachOptions, STATUS_DIR};
use serde_json::json;

use crate::cli::{EbpfAttachArgs, EbpfCommand};
use crate::output::{CliError, Printer, Status};

pub fn run(command: EbpfCommand, out: &Printer) -> Result<Status, CliError> {
    match command {
        EbpfCommand::Attach(args) => attach(args, out),
        EbpfCommand::Status { dir } => status(&dir, out),
        EbpfCommand::Exec {
            cgroup,
            allow_write,
            command,
        } => exec(cgroup.as_deref(), &allow_write, &command),
    }
}

/// A cgroup path: absolute as given, or relative to the cgroup2 mount; created if absent.
fn cgroup_dir(path: &Path) -> Result<PathBuf, CliError> {
    let dir = if path.is_absolute() {
        path.to_path_buf()
    } else {
        aa_ebpf::system::cgroup2_mount()?.join(path)
    };
    if !dir.exists() {
        std::fs::create_dir_all(&dir).map_err(CliError::io(&dir))?;
    }
    Ok(dir)
}

fn attach(args: EbpfAttachArgs, out: &Printer) -> Result<Status, CliError> {
    aa_gateway::init_logging(false);
    let cgroup = cgroup_dir(&args.cgroup)?;
    let id = aa_ebpf::system::cgroup_id(&cgroup)?;
    let status_file = args
        .status_file
        .unwrap_or_else(|| Path::new(STATUS_DIR).join(format!("{id}.json")));
    let options = AttachOptions {
        cgroup,
        client: args.source.client_input(args.agent),
        force_proxy: args.force_proxy,
        status_file,
        ring_bytes: Some(args.ring_bytes),
        egress: None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(super::gateway::shutdown_signal());
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    let summary = aa_ebpf::run(options, stop, |s| {
        out.emit("attached", s, || {
            let mut lines = vec![format!("attached to {} (agent {})", s.cgroup, s.agent_id)];
            for p in &s.programs {
                lines.push(match &p.error {
                    None => format!("  ok   {:<16} {}", p.name, p.hook),
                    Some(e) => format!("  FAIL {:<16} {}: {e}", p.name, p.hook),
                });
            }
            lines.push(format!(
                "  enforcement: {} exec paths killed, {} connect rules (policy {})",
                s.exec_rules,
                s.connect_rules,
                s.policy_version.as_deref().unwrap_or("none")
            ));
            for n in &s.notes {
                lines.push(format!("  note: {n}"));
            }
            lines.join("\n")
        });
    })?;
    out.emit("detached", &summary, || {
        format!(
            "detached: {} events, {} recorded, {} lost, {} execs killed, {} connects/sends refused, {} io_uring rings (unobserved)",
            summary.events,
            summary.recorded,
            summary.lost,
            summary.killed,
            summary.refused,
            summary.io_uring_rings
        )
    });
    Ok(Status::Success)
}

fn status(dir: &Path, out: &Printer) -> Result<Status, CliError> {
    let all = aa_ebpf::read_statuses(dir);
    let running = !all.is_empty();
    out.emit("status", &json!({ "attached": all }), || {
        if all.is_empty() {
            return "no eBPF layer is attached".into();
        }
        let mut lines = Vec::new();
        for s in &all {
            let n = |k: &str| s.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            lines.push(format!(
                "pid {} cgroup {} agent {}: {:.0} events/s, {} events, {} lost, {} killed, {} refused, {} recorded, {} repeated reads filtered in the kernel, {} io_uring rings (unobserved)",
                n("pid"),
                s.get("cgroup").and_then(|v| v.as_str()).unwrap_or("?"),
                s.get("agent_id").and_then(|v| v.as_str()).unwrap_or("?"),
                s.get("events_per_sec").and_then(serde_json::Value::as_f64).unwrap_or(0.0),
                n("events"),
                n("lost"),
                n("killed"),
                n("refused"),
                n("recorded"),
                n("repeats_filtered"),
                n("io_uring_rings"),
            ));
            for p in s.get("programs").and_then(|v| v.as_array()).into_iter().flatten() {
                let name = p.get("name").and_then(|v| v.as_str()).unwrap_or("?");
                let hook = p.get("hook").and_then(|v| v.as_str()).unwrap_or("?");
                match p.get("error").and_then(|v| v.as_str()) {
                    None => lines.push(format!("  ok   {name:<16} {hook}")),
                    Some(e) => lines.push(format!("  FAIL {name:<16} {hook}: {e}")),
                }
            }
            let own_openssl: Vec<&str> = s
                .get("tls_binaries")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            if !own_openssl.is_empty() {
                lines.push(format!(
                    "  TLS uprobes also in executables with their own OpenSSL: {}",
                    own_openssl.join(", ")
                ));
            }
        }
        lines.join("\n")
    });
    Ok(if running {
        Status::Success
    } else {
        Status::Failure
    })
}

fn exec(
    cgroup: Option<&Path>,
    allow_write: &[PathBuf],
    command: &[String],
) -> Result<Status, CliError> {
    if let Some(cgroup) = cgroup {
        aa_ebpf::sandbox::join_cgroup(&cgroup_dir(cgroup)?)?;
    }
    aa_ebpf::sandbox::refuse_io_uring()?;
    if !allow_write.is_empty() {
        aa_ebpf::sandbox::restrict_writes(allow_write)?;
    }
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| CliError::Input("give the command after --".into()))?;
    let e = std::process::Command::new(program).args(rest).exec();
    Err(CliError::Spawn {
        what: program.clone(),
        source: e,
    })
}
