//! The data model of the contract: one JSON shape in every language.
//!
//! Every type here (de)serialises with serde to the wire format in
//! `docs/architecture.md` §2; `docs/schema/aa-model.schema.json` is its JSON Schema.

mod action;
mod agent;
mod decision;
mod outcome;
mod record;

pub use action::{Action, ActionKind, FileAccessMode, NetProto};
pub use agent::{Agent, Layer, MAX_REGISTERED_ID_LEN, REGISTERED_ID_PATTERN};
pub use decision::{Decision, Effect, Reason};
pub use outcome::{Outcome, OutcomeStatus, Usage};
pub use record::{AuditEvent, AuditRecord, Checkpoint, GENESIS_HASH};

/// Longest identifier (agent id, team, tool, model, host …) accepted from an agent.
pub const MAX_ID_LEN: usize = 512;

/// Longest free-text field (paths, argv entries, URL paths) accepted from an agent.
pub const MAX_TEXT_LEN: usize = 16 * 1024;

/// JSON Schema (draft 2020-12) of the wire model: `Agent`, `Action`, `Layer`, `Decision`,
/// `Outcome`, `AuditEvent`, `AuditRecord` and `Checkpoint` under `$defs`.
#[cfg(feature = "schema")]
pub fn json_schema() -> serde_json::Value {
    let mut generator = schemars::SchemaGenerator::default();
    let mut defs = serde_json::Map::new();
    macro_rules! def {
        ($($t:ty),*) => {$(
            let s = generator.subschema_for::<$t>();
            let _ = s;
        )*};
    }
    def!(
        Agent,
        Action,
        Layer,
        Decision,
        Outcome,
        AuditEvent,
        AuditRecord,
        Checkpoint
    );
    for (name, schema) in generator.take_definitions(true) {
        defs.insert(name, schema);
    }
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://agent-assembly.dev/schema/aa-model.schema.json",
        "title": "Agent Assembly wire model",
        "description": "One JSON shape in every language: see docs/architecture.md §2.",
        "$defs": defs,
    })
}
