//! Audit: the hash chain, signed checkpoints, the append-only JSON Lines file, the verifier.
//!
//! Format (docs/audit.md): one JSON object per line, each the RFC 8785 canonical encoding of an
//! [`AuditRecord`] or of `{"checkpoint": Checkpoint}`. `hash = SHA-256(prev_hash ‖ JCS(record
//! without "hash"))`, hex; the first record's `prev_hash` is [`crate::GENESIS_HASH`].

mod chain;
mod checkpoint;
#[cfg(feature = "os")]
mod file;
mod sink;
mod verify;
mod writer;

pub use chain::{Chain, record_hash};
pub use checkpoint::{CheckpointError, Signer, checkpoint_payload, verify_checkpoint};
#[cfg(feature = "os")]
pub use file::{AuditLog, AuditLogOptions, FsyncPolicy, load_or_create_key};
pub use sink::{AuditSink, MemorySink};
pub use verify::{FailureKind, Verifier, VerifyFailure, VerifyOptions, VerifyReport};
pub use writer::{AuditLine, AuditWriter};
