//! Audit shipping: a bounded queue drained by a background thread in batches; spill to disk
//! while the gateway is unreachable or the queue is full; replay in order when it returns.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aa_core::audit::AuditSink;
use aa_core::wire::Rejection;
use aa_core::{AuditError, AuditEvent};

use crate::gateway::{GatewayClient, GatewayError};
use crate::spill::{self, Spill};

/// Counters of the shipper.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShipStats {
    /// Events in memory, waiting.
    pub queued: u64,
    /// Events written to the spill file and not replayed yet.
    pub spilled: u64,
    /// Events the gateway acknowledged.
    pub shipped: u64,
    /// Events the gateway refused for good (kept in the `.rejected.jsonl` file beside the spill).
    pub rejected: u64,
    /// The last delivery error, if the last attempt failed.
    pub last_error: Option<String>,
}

struct State {
    queue: VecDeque<AuditEvent>,
    spill: Spill,
    in_flight: usize,
    stop: bool,
    healthy: bool,
    replay_due: bool,
    /// A replay pass is running (the lock is released while it sends).
    replaying: bool,
    stats: ShipStats,
}

struct Inner {
    state: Mutex<State>,
    wake: Condvar,
    idle: Condvar,
    http: Arc<GatewayClient>,
    capacity: usize,
    batch: usize,
    interval: Duration,
    rejected_path: PathBuf,
}

/// The shipper; an [`AuditSink`].
pub(crate) struct Shipper {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Shipper {
    pub(crate) fn start(
        http: Arc<GatewayClient>,
        spill_dir: PathBuf,
        agent_id: &str,
        capacity: usize,
        batch: usize,
        interval: Duration,
    ) -> Result<Self, AuditError> {
        let spill = Spill::new(&spill_dir, agent_id);
        let rejected_path = spill_dir.join(format!(
            "{}.rejected.jsonl",
            crate::config::sanitize(agent_id)
        ));
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(capacity.min(4096)),
                spill,
                in_flight: 0,
                stop: false,
                healthy: true,
                // Replay what earlier processes left behind.
                replay_due: true,
                replaying: false,
                stats: ShipStats::default(),
            }),
            wake: Condvar::new(),
            idle: Condvar::new(),
            http,
            capacity,
            batch: batch.max(1),
            interval,
            rejected_path,
        });
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name("aa-audit-shipper".into())
            .spawn(move || run(&worker))
            .map_err(|e| AuditError::Refused(format!("cannot start the audit shipper: {e}")))?;
        Ok(Shipper {
            inner,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn stats(&self) -> ShipStats {
        let st = self.inner.lock();
        let mut s = st.stats.clone();
        s.queued = (st.queue.len() + st.in_flight) as u64;
        s.spilled = st.spill.pending + st.spill.sealed;
        s
    }

    /// Waits until everything is delivered, or `timeout`; on timeout whatever is still in
    /// memory is spilled to disk, so it survives the process.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), crate::ClientError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        st.replay_due = true;
        self.inner.wake.notify_all();
        loop {
            let pending =
                (st.queue.len() + st.in_flight) as u64 + st.spill.pending + st.spill.sealed;
            // Also wait for the replay pass this flush asked for: it delivers what earlier
            // processes spilled.
            if pending == 0 && !st.replay_due && !st.replaying {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let events: Vec<AuditEvent> = st.queue.drain(..).collect();
                st.spill.append(&events)?;
                return Err(crate::ClientError::FlushTimeout { pending });
            }
            st = self
                .inner
                .idle
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Flushes (up to `timeout`), then stops the thread. Undelivered events stay spilled.
    pub(crate) fn close(&self, timeout: Duration) -> Result<(), crate::ClientError> {
        let flushed = self.flush(timeout);
        {
            let mut st = self.inner.lock();
            st.stop = true;
            let events: Vec<AuditEvent> = st.queue.drain(..).collect();
            st.spill.append(&events)?;
        }
        self.inner.wake.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        flushed
    }
}

impl AuditSink for Shipper {
    fn append(&self, event: AuditEvent) -> Result<(), AuditError> {
        let mut st = self.inner.lock();
        if st.stop {
            return Err(AuditError::Refused("the audit shipper is closed".into()));
        }
        if st.queue.len() >= self.inner.capacity {
            // Full: the event goes to disk now. If that fails too the caller sees the error
            // (the decision fails closed) — never a silent drop.
            st.spill.append(std::slice::from_ref(&event))?;
            return Ok(());
        }
        let Some(event) = combine_queued(&mut st.queue, event) else {
            return Ok(());
        };
        st.queue.push_back(event);
        // Wake the shipper only when it has something new to do (the first event of a batch
        // window, or a full batch): a wake-up per event would cost a futex call on the hot path.
        let wake = st.queue.len() == 1 || st.queue.len() == self.inner.batch;
        drop(st);
        if wake {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), AuditError> {
        Shipper::flush(self, Duration::from_secs(5)).map_err(|e| AuditError::Refused(e.to_string()))
    }
}

/// How far back from the newest queued event an outcome looks for its decision event.
const COMBINE_WINDOW: usize = 1024;

/// Adds an outcome event to its decision event when that is still queued (not yet sent), so
/// the pair ships, is stored and is charged as one record ([`AuditEvent::combine`]); returns
/// the event when it is to be queued itself. What is sent already stays as it was: the outcome
/// then follows as its own record.
fn combine_queued(queue: &mut VecDeque<AuditEvent>, event: AuditEvent) -> Option<AuditEvent> {
    if event.outcome.is_none() {
        return Some(event);
    }
    let id = &event.decision.decision_id;
    let queued = queue
        .iter_mut()
        .rev()
        .take(COMBINE_WINDOW)
        .find(|q| q.decision.decision_id == *id);
    match queued {
        Some(decision) => decision.combine(event),
        None => Some(event),
    }
}

/// How many full batches one request may carry when the queue has a backlog (and on replay).
const BACKLOG_FACTOR: usize = 8;

/// Most events in one request: a backlog grows the batch, never past what the gateway takes.
fn max_batch(batch: usize) -> usize {
    batch
        .saturating_mul(BACKLOG_FACTOR)
        .min(aa_core::wire::MAX_EVENTS)
}

fn run(inner: &Inner) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut st = inner.lock();
        // Wait for work: a full batch, the interval passing with something queued, a replay,
        // or the stop.
        let mut waited_since = Instant::now();
        loop {
            let spill_work = st.replay_due || st.spill.pending > 0 || st.spill.sealed > 0;
            let full = st.queue.len() >= inner.batch;
            let queue_due =
                !st.queue.is_empty() && (waited_since.elapsed() >= inner.interval || !st.healthy);
            if st.stop || full || queue_due || spill_work {
                break;
            }
            let idle = st.queue.is_empty();
            let wait = if idle {
                Duration::from_millis(500)
            } else {
                inner
                    .interval
                    .saturating_sub(waited_since.elapsed())
                    .max(Duration::from_millis(1))
            };
            st = inner
                .wake
                .wait_timeout(st, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
            if idle {
                // The batch window opens with its first event: an outcome that follows its
                // decision within the interval still finds it queued.
                waited_since = Instant::now();
            }
        }
        if st.stop && st.queue.is_empty() {
            inner.idle.notify_all();
            return;
        }

        // 1. Spilled events are older than queued ones: replay them first. If this process has
        //    spilled, what is queued now is newer still, so it joins the spill to keep order.
        if st.replay_due || st.spill.pending > 0 || st.spill.sealed > 0 {
            st.replay_due = false;
            if st.spill.pending > 0 {
                let events: Vec<AuditEvent> = st.queue.drain(..).collect();
                if let Err(e) = st.spill.append(&events) {
                    st.queue.extend(events);
                    st.stats.last_error = Some(e.to_string());
                }
                st.spill.seal_own();
            }
            let files = st.spill.replayable();
            st.replaying = true;
            drop(st);
            let mut shipped = 0;
            let mut failed = None;
            for path in files {
                match spill::replay(&path, max_batch(inner.batch), |batch| send(inner, batch)) {
                    Ok(n) => shipped += n,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let mut st = inner.lock();
            st.replaying = false;
            st.stats.shipped += shipped;
            match failed {
                None => {
                    st.spill.sealed = 0;
                    backoff = Duration::from_millis(100);
                }
                Some(e) => {
                    st.healthy = false;
                    st.stats.last_error = Some(e.to_string());
                    drop(st);
                    inner.idle.notify_all();
                    sleep_backoff(inner, &mut backoff);
                    continue;
                }
            }
            drop(st);
            inner.idle.notify_all();
            continue;
        }

        // 2. A batch from the queue.
        // A full batch is sent at once; when events queue faster than the gateway takes them,
        // the batch grows (up to `BACKLOG_FACTOR` times) so each request carries more.
        let n = st.queue.len().min(max_batch(inner.batch));
        if n == 0 {
            inner.idle.notify_all();
            continue;
        }
        let batch: Vec<AuditEvent> = st.queue.drain(..n).collect();
        st.in_flight = n;
        drop(st);
        let result = inner.http.post_events(&batch);
        let mut st = inner.lock();
        st.in_flight = 0;
        match result {
            Ok(resp) => {
                let refused = refused_events(&batch, &resp.rejected);
                st.stats.shipped += (n - refused.len()) as u64;
                st.stats.last_error = None;
                if !refused.is_empty() {
                    st.stats.rejected += refused.len() as u64;
                    st.stats.last_error = resp.rejected.first().map(|r| r.reason.clone());
                    write_rejected(inner, &refused);
                }
                if !st.healthy {
                    st.healthy = true;
                    st.replay_due = true;
                }
                backoff = Duration::from_millis(100);
                drop(st);
                inner.idle.notify_all();
            }
            Err(e) if !e.is_retryable() => {
                st.stats.rejected += n as u64;
                st.stats.last_error = Some(e.to_string());
                drop(st);
                write_rejected(inner, &batch);
                inner.idle.notify_all();
            }
            Err(e) => {
                // Unreachable: keep order by spilling this batch, then the rest of the queue.
                st.healthy = false;
                st.stats.last_error = Some(e.to_string());
                let rest: Vec<AuditEvent> = st.queue.drain(..).collect();
                let spilled = st
                    .spill
                    .append(&batch)
                    .and_then(|()| st.spill.append(&rest));
                if let Err(e) = spilled {
                    // No disk either: keep them in memory, in order, and try again.
                    st.queue.extend(batch);
                    st.queue.extend(rest);
                    st.stats.last_error = Some(e.to_string());
                }
                drop(st);
                inner.idle.notify_all();
                sleep_backoff(inner, &mut backoff);
            }
        }
    }
}

/// The events of `batch` the gateway refused one by one (kept, like a refused batch).
fn refused_events(batch: &[AuditEvent], rejected: &[Rejection]) -> Vec<AuditEvent> {
    if rejected.is_empty() {
        return Vec::new();
    }
    let ids: std::collections::HashSet<&str> = rejected.iter().map(|r| r.id.as_str()).collect();
    batch
        .iter()
        .filter(|e| ids.contains(e.id.as_str()))
        .cloned()
        .collect()
}

fn send(inner: &Inner, batch: &[AuditEvent]) -> Result<(), GatewayError> {
    match inner.http.post_events(batch) {
        Ok(resp) => {
            let refused = refused_events(batch, &resp.rejected);
            if !refused.is_empty() {
                write_rejected(inner, &refused);
                let mut st = inner.lock();
                st.stats.rejected += refused.len() as u64;
                st.stats.last_error = resp.rejected.first().map(|r| r.reason.clone());
            }
            Ok(())
        }
        Err(e) if !e.is_retryable() => {
            write_rejected(inner, batch);
            let mut st = inner.lock();
            st.stats.rejected += batch.len() as u64;
            st.stats.last_error = Some(e.to_string());
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Events the gateway refuses for good are kept, never dropped.
fn write_rejected(inner: &Inner, batch: &[AuditEvent]) {
    use std::io::Write;
    let mut buf = Vec::new();
    for e in batch {
        if serde_json::to_writer(&mut buf, e).is_ok() {
            buf.push(b'\n');
        }
    }
    // The spill directory is created lazily: it may not exist yet.
    let written = inner
        .rejected_path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&inner.rejected_path)
        })
        .and_then(|mut f| f.write_all(&buf));
    if let Err(e) = written {
        inner.lock().stats.last_error = Some(format!(
            "cannot keep rejected events in {}: {e}",
            inner.rejected_path.display()
        ));
    }
}

fn sleep_backoff(inner: &Inner, backoff: &mut Duration) {
    let st = inner.lock();
    if !st.stop {
        let _ = inner.wake.wait_timeout(st, *backoff);
    }
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
    let mut st = inner.lock();
    st.replay_due = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_grows_the_batch_up_to_what_the_gateway_takes() {
        assert_eq!(max_batch(64), 64 * BACKLOG_FACTOR);
        assert_eq!(max_batch(500), aa_core::wire::MAX_EVENTS);
        assert_eq!(max_batch(usize::MAX), aa_core::wire::MAX_EVENTS);
    }

    fn event(id: &str, decision_id: &str, outcome: bool) -> AuditEvent {
        let outcome = if outcome {
            r#","outcome":{"duration_us":5,"status":"ok"}"#
        } else {
            ""
        };
        serde_json::from_str(&format!(
            r#"{{"id":"{id}","ts":"2026-12-07T00:00:00.000Z","agent_id":"a","layer":"proxy",
            "action":{{"kind":"tool_call","tool":"t","args":{{}}}},
            "decision":{{"decision_id":"{decision_id}","effect":"allow","message":"ok",
            "reason":"permitted"}}{outcome}}}"#
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_outcome_joins_its_queued_decision() {
        let mut queue = VecDeque::from([event("e1", "d1", false), event("e2", "d2", false)]);
        // Decisions are queued as they come.
        let third = combine_queued(&mut queue, event("e3", "d3", false));
        assert_eq!(third.map(|e| e.id), Some("e3".into()));
        // An outcome whose decision is queued becomes part of it.
        assert!(combine_queued(&mut queue, event("o1", "d1", true)).is_none());
        let first = queue.front().unwrap_or_else(|| panic!("empty"));
        assert!(first.combined && first.outcome.is_some() && first.id == "e1");
        // One whose decision was sent already (or differs) is queued itself.
        let late = combine_queued(&mut queue, event("o9", "d9", true));
        assert_eq!(late.map(|e| e.id), Some("o9".into()));
        let again = combine_queued(&mut queue, event("o1b", "d1", true));
        assert_eq!(again.map(|e| e.id), Some("o1b".into()));
    }
}
