//! `aasm agents list | register | suspend | resume`

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::cli::{AgentsCommand, Remote};
use crate::client::Gateway;
use crate::output::{CliError, Printer, Status};

fn gateway(r: &Remote) -> Result<Gateway, CliError> {
    Gateway::new(&r.url, &r.token, r.ca_cert.as_deref())
}

fn describe(a: &Value) -> String {
    let text = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    let suspended = a.get("suspended").and_then(Value::as_bool).unwrap_or(false);
    format!(
        "{:<24} team={:<12} {}",
        text("agent_id"),
        text("team"),
        if suspended { "SUSPENDED" } else { "active" }
    )
}

pub fn run(command: AgentsCommand, out: &Printer) -> Result<Status, CliError> {
    match command {
        AgentsCommand::List { remote } => {
            let agents: Vec<Value> = gateway(&remote)?.get("/v1/agents")?;
            for a in &agents {
                out.emit("agent", a, || describe(a));
            }
        }
        AgentsCommand::Register {
            id,
            team,
            labels,
            rotate,
            remote,
        } => {
            let labels: BTreeMap<String, String> = labels.into_iter().collect();
            let body = json!({ "agent_id": id, "team": team, "labels": labels, "rotate": rotate });
            let reg: Value = gateway(&remote)?.post("/v1/agents", &body)?;
            out.emit("registered", &reg, || {
                format!(
                    "registered {}\ntoken (shown once; store it now): {}",
                    describe(reg.get("agent").unwrap_or(&Value::Null)),
                    reg.get("token").and_then(Value::as_str).unwrap_or_default()
                )
            });
        }
        AgentsCommand::Suspend { id, remote } => {
            let a: Value = gateway(&remote)?
                .post(&format!("/v1/agents/{}/suspend", encode(&id)), &json!({}))?;
            out.emit("agent", &a, || describe(&a));
        }
        AgentsCommand::Resume { id, remote } => {
            let a: Value = gateway(&remote)?
                .post(&format!("/v1/agents/{}/resume", encode(&id)), &json!({}))?;
            out.emit("agent", &a, || describe(&a));
        }
    }
    Ok(Status::Success)
}

/// Percent-encodes a path segment.
pub fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
