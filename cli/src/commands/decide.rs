//! `aasm decide`: one decision per stdin line.

use std::io::BufRead;
use std::sync::Arc;

use aa_core::audit::{AuditLog, AuditLogOptions};
use aa_core::{Action, Agent, Engine, Layer, SystemEnv};
use serde::Deserialize;
use serde_json::json;

use crate::cli::DecideArgs;
use crate::output::{CliError, Printer, Status};

/// A line is a bare action, or `{"agent": …, "action": …, "layer": …}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    agent: aa_core::cases::AgentSpec,
    action: Action,
    #[serde(default)]
    layer: Option<Layer>,
}

fn parse_line(
    line: &str,
    default_agent: &Agent,
    default_layer: Layer,
) -> Result<(Agent, Action, Layer), String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    if value.get("kind").is_some() {
        let action: Action = serde_json::from_value(value).map_err(|e| e.to_string())?;
        return Ok((default_agent.clone(), action, default_layer));
    }
    let env: Envelope = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok((
        env.agent.agent(),
        env.action,
        env.layer.unwrap_or(default_layer),
    ))
}

/// Where decisions are made.
enum Decider {
    Local(Engine),
    Remote(crate::client::Gateway),
}

impl Decider {
    fn decide(
        &self,
        agent: &Agent,
        action: &Action,
        layer: Layer,
    ) -> Result<aa_core::Decision, CliError> {
        match self {
            Decider::Local(engine) => Ok(engine.decide(agent, action, layer)),
            Decider::Remote(gw) => gw.post(
                "/v1/decide",
                &serde_json::json!({ "agent": agent, "action": action, "layer": layer }),
            ),
        }
    }
}

pub fn run(args: DecideArgs, out: &Printer) -> Result<Status, CliError> {
    if let Some(url) = &args.gateway {
        let token = args.token.as_deref().ok_or_else(|| {
            CliError::Input("--gateway needs a token (--token or AA_TOKEN)".into())
        })?;
        let gw = crate::client::Gateway::new(url, token, None)?;
        return decide_lines(&Decider::Remote(gw), &args, out);
    }
    let policy = args
        .policy
        .as_ref()
        .ok_or_else(|| CliError::Input("give --policy or --gateway".into()))?;
    let env = Arc::new(SystemEnv);
    let mut engine = Engine::from_dir(policy)?.fail_open(args.fail_open);
    let log = match &args.audit {
        Some(path) => {
            let options = AuditLogOptions {
                checkpoint_every: args.checkpoint_every,
                ..AuditLogOptions::default()
            };
            let log = Arc::new(AuditLog::open(path, options, env)?);
            if log.recovered_bytes() > 0 {
                out.note(&format!(
                    "note: cut {} bytes of a torn last line from {}",
                    log.recovered_bytes(),
                    path.display()
                ));
            }
            engine = engine.with_audit(log.clone());
            Some(log)
        }
        None => None,
    };
    let status = decide_lines(&Decider::Local(engine), &args, out)?;
    if let Some(log) = log {
        let last = log.last_seq();
        log.close()?;
        out.note(&format!(
            "audit: {last} records in {}, sealed",
            log.path().display()
        ));
    }
    Ok(status)
}

fn decide_lines(decider: &Decider, args: &DecideArgs, out: &Printer) -> Result<Status, CliError> {
    let mut agent = Agent::new(args.agent.clone());
    agent.team = args.team.clone();

    let mut bad_lines = 0usize;
    let stdin = std::io::stdin().lock();
    for (n, line) in stdin.lines().enumerate() {
        let line = line.map_err(CliError::io(std::path::Path::new("<stdin>")))?;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line, &agent, args.layer) {
            Ok((agent, action, layer)) => {
                let d = decider.decide(&agent, &action, layer)?;
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
                        &json!({ "line": n + 1, "message": e }),
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
