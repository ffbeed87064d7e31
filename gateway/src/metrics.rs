//! Prometheus metrics (`GET /metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allow` or `deny`.
    pub effect: String,
    /// Reason code.
    pub reason: String,
    /// `sdk`, `proxy` or `ebpf`.
    pub layer: String,
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// Decisions made by `POST /v1/decide`.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Decision latency in seconds (engine time, without HTTP).
    pub decision_seconds: Histogram,
    /// Events received by `POST /v1/events`, stored for the first time.
    pub events_ingested: Counter,
    /// Events received again (idempotent replays), not stored twice.
    pub events_duplicate: Counter,
    /// Records appended to the chain.
    pub records_appended: Counter,
    /// Seq of the chain head.
    pub audit_seq: Gauge,
    /// Jobs waiting for the audit writer.
    pub writer_queue: Gauge,
    /// Storage errors.
    pub store_errors: Counter,
    /// Open `GET /v1/audit/stream` connections.
    pub streams: Gauge,
    /// Policy swaps (PUT, suspend, resume).
    pub policy_reloads: Counter,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("aa");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Decisions by effect, reason and layer",
            decisions.clone(),
        );
        let decision_seconds = Histogram::new(exponential_buckets(0.000_002, 2.0, 16));
        registry.register(
            "decision_seconds",
            "Decision latency (engine)",
            decision_seconds.clone(),
        );
        let events_ingested = Counter::default();
        registry.register(
            "events_ingested",
            "Audit events stored",
            events_ingested.clone(),
        );
        let events_duplicate = Counter::default();
        registry.register(
            "events_duplicate",
            "Replayed audit events not stored twice",
            events_duplicate.clone(),
        );
        let records_appended = Counter::default();
        registry.register(
            "records_appended",
            "Records appended to the hash chain",
            records_appended.clone(),
        );
        let audit_seq = Gauge::default();
        registry.register("audit_seq", "Seq of the chain head", audit_seq.clone());
        let writer_queue = Gauge::default();
        registry.register(
            "writer_queue_depth",
            "Jobs waiting for the audit writer",
            writer_queue.clone(),
        );
        let store_errors = Counter::default();
        registry.register("store_errors", "Storage errors", store_errors.clone());
        let streams = Gauge::default();
        registry.register("audit_streams", "Open audit SSE streams", streams.clone());
        let policy_reloads = Counter::default();
        registry.register("policy_reloads", "Policy swaps", policy_reloads.clone());
        Metrics {
            registry,
            decisions,
            decision_seconds,
            events_ingested,
            events_duplicate,
            records_appended,
            audit_seq,
            writer_queue,
            store_errors,
            streams,
            policy_reloads,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
