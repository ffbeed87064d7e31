//! One module per command group.

mod agents;
mod audit;
mod decide;
mod ebpf;
mod gateway;
mod policy;
mod proxy;
mod run;

use crate::cli::{Command, SchemaKind};
use crate::output::{CliError, Printer, Status};

/// Runs one command, printing its data with `out`; the status is the process's exit status.
pub fn run(command: Command, out: &Printer) -> Result<Status, CliError> {
    match command {
        Command::Policy(c) => policy::run(c, out),
        Command::Decide(args) => decide::run(args, out),
        Command::Audit(c) => audit::run(c, out),
        Command::Gateway(args) => gateway::run(args),
        Command::Agents(c) => agents::run(c, out),
        Command::Proxy(c) => proxy::run(c, out),
        Command::Ebpf(c) => ebpf::run(c, out),
        Command::Run(args) => run::run(args, out),
        Command::Schema { which } => {
            match which {
                SchemaKind::Cedar => {
                    let text = aa_core::policy::SCHEMA_TEXT;
                    out.emit(
                        "schema",
                        &serde_json::json!({ "cedarschema": text }),
                        || text.trim_end().to_owned(),
                    );
                }
                SchemaKind::Model => {
                    let schema = aa_core::model::json_schema();
                    let pretty = serde_json::to_string_pretty(&schema).unwrap_or_default();
                    out.emit("schema", &schema, || pretty);
                }
                SchemaKind::Openapi => {
                    let doc = aa_gateway::openapi::document();
                    out.emit("schema", &doc, || {
                        aa_gateway::openapi::yaml().trim_end().to_owned()
                    });
                }
            }
            Ok(Status::Success)
        }
    }
}
