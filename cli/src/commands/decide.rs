//! `aasm decide`: one decision per stdin line, made by the SDK's [`Governor`] (embedded mode
//! with `--policy`, remote mode with `--gateway`).

use std::io::BufRead;
use std::time::Duration;

use aa_core::wire::DecideRequest;
use aa_core::{Action, Agent, Layer};
use aa_sdk_client::{ClientConfig, ConfigInput, Governor};
use serde_json::json;

use crate::cli::DecideArgs;
use crate::output::{CliError, Printer, Status};

/// Why a stdin line is not a decision request.
#[derive(Debug, thiserror::Error)]
enum BadLine {
    #[error("invalid JSON: {0}")]
    Json(serde_json::Error),
    #[error("{0}")]
    Shape(serde_json::Error),
}

/// A line is a bare action, or a decide request `{"agent": …, "action": …, "layer": …}`.
fn parse_line(
    line: &str,
    default_agent: &Agent,
    default_layer: Layer,
) -> Result<(Agent, Action, Layer), BadLine> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(BadLine::Json)?;
    if value.get("kind").is_some() {
        let action: Action = serde_json::from_value(value).map_err(BadLine::Shape)?;
        return Ok((default_agent.clone(), action, default_layer));
    }
    let req: DecideRequest = serde_json::from_value(value).map_err(BadLine::Shape)?;
    Ok((
        req.agent.agent(),
        req.action,
        req.layer.unwrap_or(default_layer),
    ))
}

pub fn run(args: DecideArgs, out: &Printer) -> Result<Status, CliError> {
    let remote = args.remote.remote()?;
    let input = ConfigInput {
        agent_id: Some(args.agent.clone()),
        team: args.team.clone(),
        fail_open: Some(args.fail_open),
        ..match &remote {
            Some(r) => ConfigInput {
                mode: Some("remote".into()),
                gateway_url: Some(r.url.clone()),
                token: Some(r.token.clone()),
                ca_cert: r.ca_cert.clone(),
                ..ConfigInput::default()
            },
            None => ConfigInput {
                mode: Some("embedded".into()),
                policy: Some(
                    args.policy
                        .clone()
                        .ok_or_else(|| CliError::Input("give --policy or --gateway".into()))?,
                ),
                audit_file: args.audit.clone(),
                ..ConfigInput::default()
            },
        }
    };
    let mut config = ClientConfig::resolve(input)?;
    config.layer = args.layer;
    config.embedded_audit = args.audit.is_some();
    config.checkpoint_every = args.checkpoint_every;
    let governor = Governor::start(config)?;
    // The governor turns an unreachable gateway into `unavailable` decisions; a command line
    // with a wrong URL or token should fail before the first line instead.
    if let Some(gateway) = governor.gateway() {
        gateway.whoami()?;
    }
    if let Some(log) = governor.audit_log()
        && log.recovered_bytes() > 0
    {
        out.note(&format!(
            "note: cut {} bytes of a torn last line from {}",
            log.recovered_bytes(),
            log.path().display()
        ));
    }
    let status = decide_lines(&governor, out);
    let sealed = governor
        .audit_log()
        .map(|log| (log.last_seq(), log.path().to_owned()));
    governor.close(Duration::from_secs(10))?;
    if let Some((last, path)) = sealed {
        out.note(&format!(
            "audit: {last} records in {}, sealed",
            path.display()
        ));
    }
    status
}

fn decide_lines(governor: &Governor, out: &Printer) -> Result<Status, CliError> {
    let agent = governor.agent();

    let mut bad_lines = 0usize;
    let stdin = std::io::stdin().lock();
    for (n, line) in stdin.lines().enumerate() {
        let line = line.map_err(CliError::io(std::path::Path::new("<stdin>")))?;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line, agent, governor.config().layer) {
            Ok((agent, action, layer)) => {
                let d = governor.decide_as(&agent, &action, layer);
                let data = json!({ "line": n + 1, "agent_id": agent.agent_id, "action": action, "decision": d });
                out.emit("decision", &data, || {
                    let what = match d.budget.as_deref() {
                        Some(b) => format!("budget {b}"),
                        None => d.policy_ids.join(","),
                    };
                    format!(
                        "{:<5} {:<16} {:<13} {:<16} {} — {}",
                        d.effect.as_str().to_uppercase(),
                        d.reason.as_str(),
                        action.kind().as_str(),
                        what,
                        summarize(&action),
                        d.message
                    )
                });
            }
            Err(e) => {
                bad_lines += 1;
                if out.json() {
                    out.emit(
                        "input_error",
                        &json!({ "line": n + 1, "message": e.to_string() }),
                        String::new,
                    );
                } else {
                    eprintln!("error: stdin line {}: {e}", n + 1);
                }
            }
        }
    }
    Ok(if bad_lines == 0 {
        Status::Success
    } else {
        Status::Failed
    })
}

/// A short human description of an action.
pub fn summarize(action: &Action) -> String {
    match action {
        Action::ToolCall { tool, .. } => format!("tool {tool}"),
        Action::ModelCall {
            provider, model, ..
        } => format!("{provider}/{model}"),
        Action::HttpRequest {
            method,
            scheme,
            host,
            port,
            path,
        } => format!("{method} {scheme}://{host}:{port}{path}"),
        Action::McpCall {
            server,
            method,
            tool,
            ..
        } => {
            format!(
                "mcp {server} {method}{}",
                tool.as_ref().map(|t| format!(" {t}")).unwrap_or_default()
            )
        }
        Action::ProcessExec { path, argv } => {
            if argv.is_empty() {
                format!("exec {path}")
            } else {
                format!("exec {}", argv.join(" "))
            }
        }
        Action::FileAccess { path, access } => format!("{} {path}", access.as_str()),
        Action::NetConnect { addr, port, proto } => {
            format!("connect {} {addr}:{port}", proto.as_str())
        }
    }
}
