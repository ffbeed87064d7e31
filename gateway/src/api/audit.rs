//! `GET /v1/audit` (filters, cursor), `/v1/audit/verify`, `/v1/audit/checkpoints`,
//! `/v1/audit/public-key`, and the resumable SSE stream `/v1/audit/stream`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use aa_core::Checkpoint;
use aa_core::audit::{Verifier, VerifyOptions, VerifyReport};
use aa_core::wire::{AuditPage, PublicKey};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::Auth;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, require_admin};
use crate::store::AuditFilter;

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this agent.
    pub agent: Option<String>,
    /// Only this layer.
    pub layer: Option<aa_core::Layer>,
    /// Only this effect.
    pub decision: Option<aa_core::Effect>,
    /// Only this action kind.
    pub kind: Option<aa_core::ActionKind>,
    /// From this time (RFC 3339), inclusive.
    pub since: Option<String>,
    /// Until this time (RFC 3339), exclusive.
    pub until: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<u64>,
    /// Page size (1..=1000, default 100).
    pub limit: Option<usize>,
}

fn time(field: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    v.map(|t| {
        aa_core::parse_ts(t)
            .ok_or_else(|| ApiError::bad_request(format!("`{field}` is not an RFC 3339 time: {t}")))
    })
    .transpose()
}

/// Admin: audit records, filtered, with a cursor.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    require_admin(&caller)?;
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let filter = AuditFilter {
        agent: q.agent,
        layer: q.layer.map(|l| l.as_str().to_owned()),
        decision: q.decision.map(|d| d.as_str().to_owned()),
        kind: q.kind.map(|k| k.as_str().to_owned()),
        since_ms: time("since", q.since.as_deref())?,
        until_ms: time("until", q.until.as_deref())?,
        after_seq: q.cursor.unwrap_or(0),
        limit,
    };
    let store = state.store.clone();
    let records = tokio::task::spawn_blocking(move || store.query(&filter))
        .await
        .map_err(ApiError::internal)??;
    let next_cursor = (records.len() == limit)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    Ok(Json(AuditPage {
        records,
        next_cursor,
    }))
}

/// Admin: the signed checkpoints.
pub async fn checkpoints(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Vec<Checkpoint>>> {
    require_admin(&caller)?;
    let store = state.store.clone();
    Ok(Json(
        tokio::task::spawn_blocking(move || store.checkpoints())
            .await
            .map_err(ApiError::internal)??,
    ))
}

/// The checkpoint signer's public key (any token).
pub async fn public_key(
    State(state): State<Arc<AppState>>,
    Auth(_caller): Auth,
) -> Json<PublicKey> {
    Json(PublicKey {
        public_key: state.public_key.clone(),
    })
}

/// Verifies the whole stored chain and every checkpoint, with the gateway's own key pinned.
pub async fn verify(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
) -> ApiResult<Json<VerifyReport>> {
    require_admin(&caller)?;
    let store = state.store.clone();
    let key = state.public_key.clone();
    let report =
        tokio::task::spawn_blocking(move || -> Result<VerifyReport, crate::store::StoreError> {
            let mut v = Verifier::new(VerifyOptions {
                public_key: Some(key),
                strict: false,
            })
            .with_checkpoints(store.checkpoints()?);
            let mut after = 0;
            loop {
                let page = store.lines_after(after, 2000)?;
                let Some((last, _)) = page.last() else { break };
                if v.failed() {
                    break;
                }
                after = *last;
                for (seq, line) in &page {
                    v.push_line(line, *seq);
                }
            }
            Ok(v.finish())
        })
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(report))
}

/// Query of the stream.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    /// Start after this seq (as `Last-Event-ID` does).
    pub after: Option<u64>,
}

/// Server-sent events: every record after `Last-Event-ID` (or `?after=`), then new ones live.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    require_admin(&caller)?;
    let Query(q) = query?;
    let from_header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("Last-Event-ID must be a seq"))
        })
        .transpose()?;
    let mut last = from_header.or(q.after).unwrap_or(0);
    // Subscribe before reading the backlog, so nothing falls between the two.
    let mut live = state.records.subscribe();
    let mut remote = state.replicas.as_ref().map(|r| r.audit_head());
    let metrics = state.metrics.clone();
    metrics.streams.inc();
    let stream = async_stream(state, move |state, tx| async move {
        let event = |seq: u64, json: String| {
            Event::default()
                .id(seq.to_string())
                .event("record")
                .data(json)
        };
        loop {
            // Backlog (and catch-up after lagging) from the store.
            loop {
                let store = state.store.clone();
                let page =
                    match tokio::task::spawn_blocking(move || store.lines_after(last, 500)).await {
                        Ok(Ok(p)) => p,
                        _ => return,
                    };
                if page.is_empty() {
                    break;
                }
                for (seq, line) in page {
                    if tx
                        .send(event(seq, String::from_utf8_lossy(&line).into_owned()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    last = seq;
                }
            }
            // Live: this gateway's records as they commit; with replicas, also a wake-up when
            // another replica commits (then the shared table is read). A gap in seq means
            // records from elsewhere came between: read them from the store first.
            loop {
                let received = tokio::select! {
                    r = live.recv() => r,
                    changed = wait_remote(&mut remote, last) => {
                        if changed { break } else { return }
                    }
                };
                match received {
                    Ok(record) if record.seq <= last => {}
                    Ok(record) if record.seq != last + 1 => break,
                    Ok(record) => {
                        let json = serde_json::to_string(&*record).unwrap_or_default();
                        if tx.send(event(record.seq, json)).await.is_err() {
                            return;
                        }
                        last = record.seq;
                    }
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                }
            }
        }
    });
    let guard = StreamGuard(metrics);
    let stream = futures_util::StreamExt::map(stream, move |e| {
        let _keep = &guard;
        Ok(e)
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Resolves `true` once another replica has committed records past `last`; `false` if the
/// replica link is gone. Never resolves for a single gateway.
async fn wait_remote(remote: &mut Option<tokio::sync::watch::Receiver<u64>>, last: u64) -> bool {
    let Some(rx) = remote else {
        return std::future::pending().await;
    };
    loop {
        if *rx.borrow_and_update() > last {
            return true;
        }
        if rx.changed().await.is_err() {
            return false;
        }
    }
}

struct StreamGuard(Arc<crate::metrics::Metrics>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.dec();
    }
}

/// A stream fed by a task through a small channel; the task ends when the client goes away.
fn async_stream<F, Fut>(state: Arc<AppState>, f: F) -> impl Stream<Item = Event>
where
    F: FnOnce(Arc<AppState>, tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(state, tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
