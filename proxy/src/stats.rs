use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters shown by `aasm proxy status`.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Requests decided.
    pub requests: AtomicU64,
    /// Requests denied.
    pub denies: AtomicU64,
    /// Upstream failures (502/504).
    pub upstream_errors: AtomicU64,
    /// CONNECT tunnels passed through uninspected.
    pub passthrough: AtomicU64,
    /// Model calls seen.
    pub model_calls: AtomicU64,
    /// MCP tool calls seen.
    pub mcp_calls: AtomicU64,
}

/// A snapshot of [`ProxyStats`].
#[derive(Debug, Serialize)]
pub struct StatsSnapshot {
    /// See [`ProxyStats`].
    pub requests: u64,
    /// See [`ProxyStats`].
    pub denies: u64,
    /// See [`ProxyStats`].
    pub upstream_errors: u64,
    /// See [`ProxyStats`].
    pub passthrough: u64,
    /// See [`ProxyStats`].
    pub model_calls: u64,
    /// See [`ProxyStats`].
    pub mcp_calls: u64,
}

impl ProxyStats {
    /// Current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: l(&self.requests),
            denies: l(&self.denies),
            upstream_errors: l(&self.upstream_errors),
            passthrough: l(&self.passthrough),
            model_calls: l(&self.model_calls),
            mcp_calls: l(&self.mcp_calls),
        }
    }

    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}
