use std::sync::Mutex;

use crate::error::AuditError;
use crate::model::AuditEvent;

/// Where an engine writes audit events: the local audit file (embedded mode), the gateway
/// shipping queue (local mode), or memory (tests).
pub trait AuditSink: Send + Sync {
    /// Accepts one event. An error means the event was not accepted and nothing was lost
    /// silently: the engine turns it into an `unavailable` decision.
    fn append(&self, event: AuditEvent) -> Result<(), AuditError>;

    /// Makes accepted events durable (fsync, or delivered to the gateway).
    fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

/// Keeps events in memory, for tests and for hosts that ship them themselves.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the events written so far.
    pub fn drain(&self) -> Vec<AuditEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl AuditSink for MemorySink {
    fn append(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
        Ok(())
    }
}
