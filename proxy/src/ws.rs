//! WebSockets, upstream first: the proxy completes the upstream handshake before it answers the
//! client's, so a refused or unreachable upstream fails the client's handshake with the
//! upstream's status (or 502) instead of a 101 followed by a dropped connection.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::uri::Scheme;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use hudsucker::Body;
use hudsucker::tokio_tungstenite::{Connector, connect_async_tls_with_config};
use hyper_tungstenite::tungstenite::{self, Message};
use serde_json::json;

/// Why an upstream WebSocket handshake failed, for the client's answer.
fn refusal(error: &tungstenite::Error) -> (StatusCode, String) {
    match error {
        // The upstream answered the handshake with something other than 101: pass its status.
        tungstenite::Error::Http(r) => (
            r.status(),
            format!("the upstream refused the WebSocket with {}", r.status()),
        ),
        e => (
            StatusCode::BAD_GATEWAY,
            format!("the WebSocket upstream is unreachable: {e}"),
        ),
    }
}

fn error_response(status: StatusCode, message: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "error": message }).to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// The upstream handshake request for a client's upgrade request: same headers (key, version,
/// protocols), `ws`/`wss` in place of `http`/`https`.
fn upstream_request(req: &Request<Body>) -> Option<Request<()>> {
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(if parts.scheme == Some(Scheme::HTTPS) {
        "wss".parse().ok()?
    } else {
        "ws".parse().ok()?
    });
    let mut out = Request::builder().uri(Uri::from_parts(parts).ok()?);
    for (name, value) in req.headers() {
        out = out.header(name, value);
    }
    out.body(()).ok()
}

/// Forwards frames from one side to the other until either ends or a close frame passed, then
/// closes the receiving side.
async fn pump<S, K>(mut from: S, mut to: K)
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
    K: futures_util::Sink<Message> + Unpin,
{
    while let Some(Ok(m)) = from.next().await {
        let close = matches!(m, Message::Close(_));
        if to.send(m).await.is_err() || close {
            break;
        }
    }
    let _ = to.close().await;
}

/// Relays an allowed WebSocket upgrade: connects upstream (bounded by `timeout`), then accepts
/// the client's upgrade with the subprotocol the upstream chose and pumps frames both ways.
pub(crate) async fn relay(
    mut req: Request<Body>,
    connector: Connector,
    timeout: Duration,
) -> Response<Body> {
    let Some(up_req) = upstream_request(&req) else {
        return error_response(StatusCode::BAD_REQUEST, "bad WebSocket request".into());
    };
    let connect = connect_async_tls_with_config(up_req, None, false, Some(connector));
    let (upstream, up_res) = match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(ok)) => ok,
        Ok(Err(e)) => {
            let (status, message) = refusal(&e);
            return error_response(status, message);
        }
        Err(_) => {
            return error_response(
                StatusCode::GATEWAY_TIMEOUT,
                "the WebSocket upstream did not answer in time".into(),
            );
        }
    };
    let (res, client) = match hyper_tungstenite::upgrade(&mut req, None) {
        Ok(ok) => ok,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.to_string()),
    };
    tokio::spawn(async move {
        let Ok(client) = client.await else { return };
        let (to_client, from_client) = client.split();
        let (to_upstream, from_upstream) = upstream.split();
        let up = pump(from_client, to_upstream);
        let down = pump(from_upstream, to_client);
        tokio::join!(up, down);
    });
    let (mut parts, _) = res.into_parts();
    if let Some(p) = up_res.headers().get(header::SEC_WEBSOCKET_PROTOCOL) {
        parts
            .headers
            .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::clone(p));
    }
    Response::from_parts(parts, Body::empty())
}
