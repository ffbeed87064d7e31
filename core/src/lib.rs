//! # aa-core
//!
//! The core of Agent Assembly, compiled into every layer (SDKs, proxy, eBPF loader, gateway):
//!
//! - [`model`]: agents, the seven action kinds, decisions, outcomes, audit records;
//! - [`policy`]: Cedar policy bundles, the shipped schema, the Action → request mapping and
//!   policy slicing;
//! - [`budget`]: budget rules, the usage ledger and the model price table;
//! - [`Engine`]: decisions against an atomically swappable policy snapshot;
//! - [`audit`]: the SHA-256 hash chain over RFC 8785 JSON, Ed25519 checkpoints, the JSON Lines
//!   audit file and its verifier;
//! - [`tool_call`]: the tool-call path every binding shares (neutral argument values, redaction,
//!   truncation, outcomes);
//! - [`wire`]: the gateway's HTTP request and response bodies.
//!
//! Embedded mode, no gateway:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use aa_core::{Action, Agent, Engine, Layer, audit::{AuditLog, AuditLogOptions}, SystemEnv};
//!
//! let env = Arc::new(SystemEnv);
//! let log = Arc::new(AuditLog::open("audit.jsonl", AuditLogOptions::default(), env.clone())?);
//! let engine = Engine::from_dir("examples/policies/permissive")?.with_audit(log.clone());
//! let action = Action::from_json(r#"{"kind":"process_exec","path":"/bin/rm","argv":["rm","-rf","/"]}"#)?;
//! let decision = engine.decide(&Agent::new("coder"), &action, Layer::Sdk);
//! assert!(!decision.is_allowed());
//! log.close()?;
//! # Ok(()) }
//! ```

pub mod audit;
pub mod budget;
mod canonical;
pub mod cases;
mod engine;
mod env;
pub mod error;
pub mod model;
pub mod policy;
pub mod tool_call;
pub mod wire;

pub use canonical::{to_canonical_vec, write_canonical, write_json};
pub use engine::{Engine, EngineStats};
pub use env::{Environment, FixedEnv, format_ts, parse_ts};
#[cfg(feature = "os")]
pub use env::{SystemEnv, reseed_ids_after_fork};
pub use error::{AuditError, Diagnostic, ModelError, PolicyError};
pub use model::*;
pub use policy::{CompiledPolicy, PolicyBundle};
