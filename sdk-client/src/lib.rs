//! # aa-sdk-client
//!
//! What every SDK binding (Python, Node, FFI) wraps: a [`Governor`] that decides actions in one
//! of three modes and ships audit events without ever blocking the caller.
//!
//! - **local** (default with a gateway): the policy is fetched from the gateway and kept fresh
//!   by a long-polling thread; decisions are made in-process by `aa-core`; audit events go to the
//!   gateway in batches from a background thread.
//! - **remote**: the gateway decides (`POST /v1/decide`, shared budgets); outcomes are shipped.
//! - **embedded**: no gateway; a policy directory and a local hash-chained audit file.
//!
//! [`GatewayClient`] is the one client of the gateway's HTTP API (`aa_core::wire` bodies), for
//! the governor, the proxy and the `aasm` command line.
//!
//! Shipping: a bounded in-memory queue drained by a background thread in batches, retried with
//! backoff; while the gateway is unreachable (or the queue is full) events are spilled to a file
//! and replayed, in order, when it returns or on the next start. Event ids make the replay
//! idempotent, so every event arrives exactly once. Nothing is dropped silently: when the queue
//! is full and the spill file cannot be written, the decision fails closed with the reason.

mod audit_stream;
mod config;
mod error;
mod gateway;
mod governor;
mod pending;
mod policy_sync;
mod shipper;
mod spill;

pub use audit_stream::AuditStream;
pub use config::{ClientConfig, ConfigInput, Mode};
pub use error::ClientError;
pub use gateway::{GatewayClient, GatewayError, GatewayOptions, Records};
pub use governor::{ClientStats, Governor};
pub use pending::{ABANDONED, Began, MAX_PENDING};
pub use shipper::ShipStats;

/// Microseconds since `started`: the duration an outcome records.
pub fn micros_since(started: std::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}
