//! PATCHED (Agent Assembly): not part of hudsucker. A client stream whose HTTP/1 request heads
//! reach hyper complete only once `aa_inspect::framing` has checked them. A request framed two
//! ways (both `Content-Length` and `Transfer-Encoding`, a bare LF, …), which hyper would
//! normalise, is refused: in its place hyper reads bytes it rejects itself (a NUL where a head
//! line or chunk size goes on), so it answers 400 after whatever it answered before, or fails
//! the body, and the connection ends. HTTP/2, upgrades and tunnels pass unchanged after their
//! first head.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use aa_inspect::framing::RequestFraming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::warn;

pub(crate) struct Strict<S> {
    inner: S,
    framing: RequestFraming,
    /// Bytes read from the client and not handed to hyper yet.
    held: Vec<u8>,
    /// How many of `held` (from the front) were checked and may be handed over.
    ready: usize,
    /// `held` changed since it was last checked.
    unchecked: bool,
    eof: bool,
    refused: bool,
}

/// What hyper reads instead of a refused request: invalid in a request line, a header line, a
/// chunk size and a trailer alike.
const POISON: &[u8] = b"\x00\r\n\r\n";

impl<S> Strict<S> {
    pub(crate) fn new(inner: S) -> Self {
        Strict {
            inner,
            framing: RequestFraming::default(),
            held: Vec::new(),
            ready: 0,
            unchecked: false,
            eof: false,
            refused: false,
        }
    }
}

impl<S> Strict<S> {
    /// Hands hyper the poison instead of the refused request, then the end of the stream.
    fn refuse(&mut self, e: aa_inspect::framing::FramingError) {
        warn!(error = %e, "refused a request framed ambiguously");
        self.refused = true;
        self.held.clear();
        self.held.extend_from_slice(POISON);
        self.ready = POISON.len();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Strict<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready > 0 {
                let n = this.ready.min(buf.remaining());
                buf.put_slice(this.held.get(..n).unwrap_or_default());
                this.held.drain(..n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if this.refused {
                // After the poison, the end of the stream.
                return Poll::Ready(Ok(()));
            }
            if this.unchecked && !this.held.is_empty() {
                this.unchecked = false;
                match this.framing.advance(&this.held) {
                    Ok(n) => this.ready = n,
                    Err(e) => this.refuse(e),
                }
                continue;
            }
            if this.eof {
                // What is left is an incomplete request: hyper answers it as it would.
                this.ready = this.held.len();
                if this.ready == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if this.held.is_empty() && buf.remaining() > 0 {
                // The usual case: read straight into hyper's buffer, check the new bytes there,
                // and keep back only what may not go yet.
                let before = buf.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                let new = buf.filled().get(before..).unwrap_or_default();
                if new.is_empty() {
                    this.eof = true;
                    continue;
                }
                let (len, verdict) = (new.len(), this.framing.advance(new));
                match verdict {
                    Ok(n) if n == len => return Poll::Ready(Ok(())),
                    Ok(n) => {
                        this.held.extend_from_slice(new.get(n..).unwrap_or_default());
                        this.unchecked = true;
                        buf.set_filled(before + n);
                        if n > 0 {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    Err(e) => {
                        buf.set_filled(before);
                        this.refuse(e);
                    }
                }
                continue;
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
            } else {
                this.held.extend_from_slice(read.filled());
                this.unchecked = true;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Strict<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
