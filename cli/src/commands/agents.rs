//! `aasm agents list | register | suspend | resume | revoke`

use aa_core::wire::{AgentInfo, RegisterRequest};

use crate::cli::AgentsCommand;
use crate::output::{CliError, Printer, Status};

fn describe(a: &AgentInfo) -> String {
    format!(
        "{:<24} team={:<12} {}",
        a.agent_id,
        a.team.as_deref().unwrap_or("-"),
        if a.suspended { "SUSPENDED" } else { "active" }
    )
}

pub fn run(command: AgentsCommand, out: &Printer) -> Result<Status, CliError> {
    match command {
        AgentsCommand::List { remote } => {
            for a in &remote.client()?.agents()? {
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
            let request = RegisterRequest {
                agent_id: id,
                team,
                labels: labels.into_iter().collect(),
                rotate,
            };
            let reg = remote.client()?.register(&request)?;
            out.emit("registered", &reg, || {
                format!(
                    "registered {}\ntoken (shown once; store it now): {}",
                    describe(&reg.agent),
                    reg.token
                )
            });
        }
        AgentsCommand::Suspend { id, remote } => {
            let a = remote.client()?.suspend(&id)?;
            out.emit("agent", &a, || describe(&a));
        }
        AgentsCommand::Resume { id, remote } => {
            let a = remote.client()?.resume(&id)?;
            out.emit("agent", &a, || describe(&a));
        }
        AgentsCommand::Revoke { id, remote } => {
            let a = remote.client()?.revoke(&id)?;
            out.emit("agent", &a, || {
                format!("revoked the token of {}", describe(&a))
            });
        }
    }
    Ok(Status::Success)
}
