//! Limits on what a client may send: header size and time (enforced by hyper's server), body
//! size and the longest pause inside a body (enforced here, on the body as it streams through).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hudsucker::Body;
use tokio::time::{Instant, Sleep};

/// The client-side limits of the proxy.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line and headers), bytes.
    pub max_header_bytes: usize,
    /// Longest time to receive a request head.
    pub header_timeout: Duration,
    /// Largest request body, bytes.
    pub max_body_bytes: u64,
    /// Longest pause while a request body streams in.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 << 10,
            header_timeout: Duration::from_secs(10),
            max_body_bytes: 100 << 20,
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a request body was cut off.
#[derive(Debug, thiserror::Error)]
pub enum BodyLimitError {
    /// More bytes than the limit.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(u64),
    /// The client paused longer than the limit.
    #[error("the client sent no body bytes for {0:?}")]
    TooSlow(Duration),
    /// The client's own body failed.
    #[error("reading the request body: {0}")]
    Read(String),
}

/// A request body held to [`Limits`]: it fails (and the upstream request with it) once it grows
/// past `max_body_bytes` or stalls for `body_timeout`.
pub struct Guarded {
    inner: Body,
    seen: u64,
    limits: Limits,
    idle: Pin<Box<Sleep>>,
}

impl Guarded {
    /// Wraps `inner`.
    pub fn new(inner: Body, limits: Limits) -> Self {
        Guarded {
            inner,
            seen: 0,
            limits,
            idle: Box::pin(tokio::time::sleep(limits.body_timeout)),
        }
    }
}

impl HttpBody for Guarded {
    type Data = Bytes;
    // hudsucker's body error; ours travels inside it as an `io::Error` (see `body_limit_of`).
    type Error = hudsucker::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hudsucker::Error>>> {
        self.poll_guarded(cx)
            .map_err(|e| hudsucker::Error::Io(std::io::Error::other(e)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Guarded {
    fn poll_guarded(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyLimitError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limits.max_body_bytes {
                        return Poll::Ready(Some(Err(BodyLimitError::TooLarge(
                            this.limits.max_body_bytes,
                        ))));
                    }
                }
                let deadline = Instant::now() + this.limits.body_timeout;
                this.idle.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(BodyLimitError::Read(e.to_string()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    Poll::Ready(Some(Err(BodyLimitError::TooSlow(this.limits.body_timeout))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// The limit a request error came from, if any (the chain of `err` searched).
pub fn body_limit_of<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyLimitError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(b) = e.downcast_ref::<BodyLimitError>() {
            return Some(b);
        }
        // An io::Error's source() skips the error it wraps; get_ref() does not.
        if let Some(b) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<BodyLimitError>())
        {
            return Some(b);
        }
        cur = e.source();
    }
    None
}
