//! Upstream connections that fail once nothing moves on them for a while, and connects (TCP and
//! TLS) held to the same limit.
//!
//! This replaces hyper-timeout's read and write timeouts, which re-armed a timer on every read
//! and write: two trips through the runtime's timer lock per read, and a wake-up of the thread
//! that drives the timers, on every request. Here one timer per connection is armed for the
//! limit and moved on only when it fires: a read or a write that makes progress just notes the
//! time.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

/// A connector whose connects, and then every connection, may not stall longer than `limit`.
#[derive(Clone, Debug)]
pub(crate) struct StallConnector<C> {
    inner: C,
    limit: Duration,
}

impl<C> StallConnector<C> {
    pub(crate) fn new(inner: C, limit: Duration) -> Self {
        StallConnector { inner, limit }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> Service<Uri> for StallConnector<C>
where
    C: Service<Uri> + Send,
    C::Response: Read + Write + Connection + Unpin + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = Stalled<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let limit = self.limit;
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(Ok(io)) => Ok(Stalled::new(io, limit)),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(Box::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection to the upstream within {limit:?}"),
                )) as BoxError),
            }
        })
    }
}

/// A connection that fails with [`io::ErrorKind::TimedOut`] once a read or a write has waited
/// `limit` since the last byte moved either way.
#[derive(Debug)]
pub(crate) struct Stalled<S> {
    inner: S,
    limit: Duration,
    /// When a read or a write last made progress.
    moved: Instant,
    /// Armed for `moved + limit` as of when it last fired (or was first polled).
    timer: Pin<Box<Sleep>>,
}

impl<S> Stalled<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        let now = Instant::now();
        Stalled {
            inner,
            limit,
            moved: now,
            timer: Box::pin(tokio::time::sleep_until(now + limit)),
        }
    }

    /// After the inner stream answered `Pending`: an error if it has stalled past the limit,
    /// else `Pending` with the timer set to wake this task when the limit could be reached.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let due = self.moved + self.limit;
            if Instant::now() >= due {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the upstream connection stalled for {:?}", self.limit),
                )));
            }
            self.timer.as_mut().reset(due);
        }
        Poll::Pending
    }

    /// Passes on what the inner stream answered, noting progress (bytes read or written, or the
    /// end of the stream: not a flush that had nothing to do) or checking for a stall.
    fn track<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
        moved: impl FnOnce(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(Ok(done)) => {
                if moved(&done) {
                    self.moved = Instant::now();
                }
                Poll::Ready(Ok(done))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.pending(cx),
        }
    }
}

impl<S: Read + Unpin> Read for Stalled<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.track(cx, poll, |()| true)
    }
}

impl<S: Write + Unpin> Write for Stalled<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.track(cx, poll, |n| *n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.track(cx, poll, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.track(cx, poll, |()| false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.track(cx, poll, |()| false)
    }
}

impl<S: Connection> Connection for Stalled<S> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;
    use tokio::io::AsyncWriteExt;

    /// Reads one byte through hyper's `Read`.
    async fn read_byte<S: Read + Unpin>(s: &mut S) -> io::Result<usize> {
        let mut storage = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        std::future::poll_fn(|cx| {
            let mut buf = hyper::rt::ReadBuf::uninit(&mut storage);
            match Pin::new(&mut *s).poll_read(cx, buf.unfilled()) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_fails_once_nothing_moved_for_the_limit() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut s = Stalled::new(TokioIo::new(a), Duration::from_secs(5));
        let started = Instant::now();
        // Bytes keep coming for 8 s, one every 2 s: longer than the limit in all, never stalled.
        let feeder = tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                b.write_all(b"x").await.unwrap();
            }
            b // held open, silent
        });
        for _ in 0..4 {
            assert_eq!(read_byte(&mut s).await.unwrap(), 1);
        }
        assert_eq!(started.elapsed(), Duration::from_secs(8));
        let err = read_byte(&mut s).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // It failed at the limit after the last byte, not before and not at a stale deadline.
        assert_eq!(started.elapsed(), Duration::from_secs(13));
        drop(feeder.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flush_with_nothing_to_do_is_not_progress() {
        // hyper's connection task flushes each time it is woken, the stall timer's wake-up too.
        let (a, _b) = tokio::io::duplex(64);
        let mut s = Stalled::new(TokioIo::new(a), Duration::from_secs(5));
        let started = Instant::now();
        let mut storage = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        let stalled = std::future::poll_fn(|cx| {
            assert!(Pin::new(&mut s).poll_flush(cx).is_ready());
            let mut buf = hyper::rt::ReadBuf::uninit(&mut storage);
            Pin::new(&mut s).poll_read(cx, buf.unfilled())
        });
        let err = tokio::time::timeout(Duration::from_secs(60), stalled)
            .await
            .expect("the stall was never detected")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connect_that_hangs_fails_at_the_limit() {
        /// A connection that never comes.
        #[derive(Debug)]
        struct Never;
        impl Read for Never {
            fn poll_read(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: ReadBufCursor<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Pending
            }
        }
        impl Write for Never {
            fn poll_write(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &[u8],
            ) -> Poll<io::Result<usize>> {
                Poll::Pending
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Pending
            }
            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Pending
            }
        }
        impl Connection for Never {
            fn connected(&self) -> Connected {
                Connected::new()
            }
        }
        struct Hang;
        impl Service<Uri> for Hang {
            type Response = Never;
            type Error = io::Error;
            type Future = std::future::Pending<io::Result<Never>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: Uri) -> Self::Future {
                std::future::pending()
            }
        }
        let started = Instant::now();
        let mut c = StallConnector::new(Hang, Duration::from_secs(3));
        let err = c
            .call(Uri::from_static("https://example.test/"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("within 3s"), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
