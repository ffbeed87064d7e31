//! Time and identifiers, supplied by the host.
//!
//! With the `os` feature, [`SystemEnv`] reads the system clock and makes UUIDv7 ids. Without it
//! (`wasm32-unknown-unknown`), the host implements [`Environment`] (e.g. with `Date.now()` and
//! `crypto.getRandomValues`).

/// Where an engine gets the time and fresh ids.
pub trait Environment: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A fresh unique id (decision ids, event ids).
    fn new_id(&self) -> String;
}

/// The system clock and UUIDv7 ids.
#[cfg(feature = "os")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnv;

#[cfg(feature = "os")]
impl Environment for SystemEnv {
    fn now_ms(&self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
    }

    fn new_id(&self) -> String {
        uuid::Uuid::now_v7().to_string()
    }
}

/// A fixed clock and counting ids, for tests and conformance cases.
#[derive(Debug, Default)]
pub struct FixedEnv {
    now_ms: std::sync::atomic::AtomicI64,
    next: std::sync::atomic::AtomicU64,
}

impl FixedEnv {
    /// A clock stopped at `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        FixedEnv {
            now_ms: now_ms.into(),
            next: 1.into(),
        }
    }

    /// Moves the clock.
    pub fn set_now_ms(&self, now_ms: i64) {
        self.now_ms
            .store(now_ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Environment for FixedEnv {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn new_id(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("00000000-0000-7000-8000-{n:012x}")
    }
}

/// RFC 3339 UTC timestamp with milliseconds (`2026-11-23T06:14:23.123Z`).
pub fn format_ts(now_ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(now_ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

/// Parses an RFC 3339 timestamp into unix milliseconds.
pub fn parse_ts(ts: &str) -> Option<i64> {
    ts.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}
