//! Strict HTTP/1.1 request framing, ahead of the proxy's HTTP server: a connection's bytes are
//! released to the server only once each request head in them has been checked, and a head that
//! could be framed two ways is refused instead of being normalised.
//!
//! The server (hyper) already refuses most malformed framing. It normalises two shapes that a
//! back end might frame differently: a request with both `Content-Length` and
//! `Transfer-Encoding` (it drops the length), and lines ended by a bare LF. Those are refused
//! here ([`FramingError`]), with the body framing followed (fixed length or chunked) so that each
//! pipelined head is found where the server will look for it. Sans-IO: the caller feeds the bytes
//! it holds and learns how many of them may pass.
//!
//! ```
//! use aa_inspect::framing::{FramingError, RequestFraming};
//!
//! let mut f = RequestFraming::default();
//! let ok = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
//! assert_eq!(f.advance(ok), Ok(ok.len()));
//! let both = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
//! assert_eq!(RequestFraming::default().advance(both), Err(FramingError::LengthAndChunked));
//! ```

use crate::http1::{MAX_HEAD, MAX_HEADERS};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A line ended by LF alone (or a CR not followed by LF) in a head, chunk line or trailer.
    #[error("a line ended without CRLF")]
    BareLineFeed,
    /// Both `Content-Length` and `Transfer-Encoding`.
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndChunked,
    /// A `Transfer-Encoding` whose last coding is not `chunked`, or a malformed length.
    #[error("a body length that cannot be read one way only")]
    BadLength,
    /// A head httparse cannot read, or larger than [`MAX_HEAD`].
    #[error("a malformed request head")]
    BadHead,
    /// A malformed chunk size line or a chunk not followed by CRLF.
    #[error("a malformed chunk")]
    BadChunk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a request head.
    Head,
    /// Inside a body of known length: bytes left.
    Fixed(u64),
    /// Before a chunk size line.
    ChunkSize,
    /// Inside a chunk: bytes left, then its CRLF.
    ChunkData(u64),
    /// The CRLF after a chunk.
    ChunkEnd,
    /// The trailer section after the last chunk.
    Trailers,
    /// No longer HTTP/1 requests (HTTP/2, a tunnel, an upgrade): everything passes.
    Opaque,
}

/// The framing of one connection's requests (see the module documentation).
#[derive(Debug, Clone)]
pub struct RequestFraming {
    state: State,
    /// The part of the current head already released: its lines are checked, and it cannot end
    /// the head (the blank line that ends it is held until the whole head is checked). The
    /// server keeps its own head size limit and timeout on it.
    prefix: Vec<u8>,
    /// The refusal found after bytes that were released first.
    failed: Option<FramingError>,
}

impl Default for RequestFraming {
    fn default() -> Self {
        RequestFraming {
            state: State::Head,
            prefix: Vec::new(),
            failed: None,
        }
    }
}

/// The longest chunk size line (with extensions) or trailer line.
const MAX_LINE: usize = 4096;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

impl RequestFraming {
    /// Reads `data`, the connection's bytes after those already released, and returns how many
    /// of them (from the front) may be released now: every complete head among them has been
    /// checked. The rest must be fed again, with more bytes after it. An error refuses the
    /// request whose head or framing is bad, with all of its bytes in `data` (a bad chunk behind
    /// its head in the same bytes keeps the head back too): when whole requests come before it
    /// in `data`, they are released first and the error is returned by the next call.
    pub fn advance(&mut self, data: &[u8]) -> Result<usize, FramingError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        // Where the last request seen whole in `data` starts: a refusal in its head or body
        // keeps it all from the server (not just the bytes from the bad line on).
        let mut request_start = 0;
        let mut at = 0;
        loop {
            if self.between_requests() {
                request_start = at;
            }
            match self.step(data.get(at..).unwrap_or_default()) {
                Ok(0) => return Ok(at),
                Ok(used) => at += used,
                Err(e) => {
                    self.failed = Some(e);
                    return if request_start == 0 {
                        Err(e)
                    } else {
                        Ok(request_start)
                    };
                }
            }
        }
    }

    /// One head, body piece, chunk line or trailer line at the front of `rest`: how many bytes
    /// it takes (0: it needs more).
    fn step(&mut self, rest: &[u8]) -> Result<usize, FramingError> {
        Ok(match self.state {
            State::Opaque => rest.len(),
            State::Head => self.head(rest)?,
            State::Fixed(n) | State::ChunkData(n) => {
                let take = n.min(rest.len() as u64);
                let left = n - take;
                self.state = match (self.state, left) {
                    (State::Fixed(_), 0) => State::Head,
                    (State::Fixed(_), _) => State::Fixed(left),
                    (_, 0) => State::ChunkEnd,
                    _ => State::ChunkData(left),
                };
                usize::try_from(take).unwrap_or(rest.len())
            }
            State::ChunkEnd => match rest {
                [b'\r', b'\n', ..] => {
                    self.state = State::ChunkSize;
                    2
                }
                [] | [b'\r'] => 0,
                _ => return Err(FramingError::BadChunk),
            },
            State::ChunkSize => match line(rest)? {
                None => 0,
                Some(end) => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, 0))) if n == end => {
                        self.state = State::Trailers;
                        n
                    }
                    Ok(httparse::Status::Complete((n, size))) if n == end => {
                        self.state = State::ChunkData(size);
                        n
                    }
                    _ => return Err(FramingError::BadChunk),
                },
            },
            State::Trailers => match line(rest)? {
                None => 0,
                Some(end) => {
                    if end == 2 {
                        self.state = State::Head;
                    }
                    end
                }
            },
        })
    }

    /// Whether the bytes released so far end between two requests (a refusal there is a whole
    /// request refused; elsewhere, one the server has partly read).
    fn between_requests(&self) -> bool {
        self.state == State::Head && self.prefix.is_empty()
    }

    /// The head at the front of `data` (after the released `prefix`): the bytes that may go,
    /// all of them while it is incomplete, up to its end once it is complete and checked.
    fn head(&mut self, data: &[u8]) -> Result<usize, FramingError> {
        if self.prefix.is_empty() {
            // Empty lines before a request line are allowed (and skipped by the server).
            if data.starts_with(b"\r\n") {
                return Ok(2);
            }
            if data.starts_with(H2_PREFACE) {
                self.state = State::Opaque;
                return Ok(data.len());
            }
            if H2_PREFACE.starts_with(data) && !data.is_empty() {
                return Ok(0);
            }
        }
        let prev = self.prefix.last().copied();
        let Some(end) = head_end(&self.prefix, data) else {
            check_line_ends(data, prev)?;
            // A CR last may still get its LF; the head so far goes to the server.
            if self.prefix.len() + data.len() > MAX_HEAD {
                return Err(FramingError::BadHead);
            }
            self.prefix.extend_from_slice(data);
            return Ok(data.len());
        };
        check_line_ends(data.get(..end).unwrap_or_default(), prev)?;
        let mut whole = std::mem::take(&mut self.prefix);
        whole.extend_from_slice(data.get(..end).unwrap_or_default());
        self.check_head(&whole)?;
        Ok(end)
    }

    /// Checks a complete head and sets the state for what follows it.
    fn check_head(&mut self, head: &[u8]) -> Result<(), FramingError> {
        let end = head.len();
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(n)) if n == end => {}
            _ => return Err(FramingError::BadHead),
        }
        let mut length: Option<u64> = None;
        let mut chunked: Option<bool> = None;
        let mut upgrade = req.method == Some("CONNECT");
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or(FramingError::BadLength)?;
                if length.is_some_and(|l| l != n) {
                    return Err(FramingError::BadLength);
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                let last = h.value.rsplit(|b| *b == b',').next().unwrap_or_default();
                chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        self.state = match (length, chunked) {
            (Some(_), Some(_)) => return Err(FramingError::LengthAndChunked),
            (_, Some(false)) => return Err(FramingError::BadLength),
            // After an upgrade or a tunnel the bytes are no longer requests (if the server
            // declines, it frames what follows itself, as it would without this check).
            _ if upgrade => State::Opaque,
            (_, Some(true)) => State::ChunkSize,
            (Some(n), None) if n > 0 => State::Fixed(n),
            _ => State::Head,
        };
        Ok(())
    }
}

/// Every LF in `data` follows a CR (`prev` is the byte before `data`), and every CR precedes an
/// LF (a CR last may still get its LF; a CR in `prev` must get it first in `data`).
fn check_line_ends(data: &[u8], prev: Option<u8>) -> Result<(), FramingError> {
    if prev == Some(b'\r') && data.first().is_some_and(|b| *b != b'\n') {
        return Err(FramingError::BareLineFeed);
    }
    for i in memchr::memchr2_iter(b'\r', b'\n', data) {
        let ok = match data.get(i) {
            Some(b'\n') => match i.checked_sub(1) {
                Some(j) => data.get(j) == Some(&b'\r'),
                None => prev == Some(b'\r'),
            },
            _ => matches!(data.get(i + 1), Some(b'\n') | None),
        };
        if !ok {
            return Err(FramingError::BareLineFeed);
        }
    }
    Ok(())
}

/// Where the blank line ending a head is in `data`, the head so far being `prefix` + `data`
/// (the end just after it, as an offset in `data`).
fn head_end(prefix: &[u8], data: &[u8]) -> Option<usize> {
    const END: &[u8] = b"\r\n\r\n";
    // Across the boundary: the prefix ends with the first bytes of the blank line.
    for k in (1..END.len()).rev() {
        let (before, after) = END.split_at(k);
        if prefix.ends_with(before) && data.starts_with(after) {
            return Some(after.len());
        }
    }
    memchr::memmem::find(data, END).map(|i| i + END.len())
}

/// The length of the CRLF-ended line at the front of `data`, once complete.
fn line(data: &[u8]) -> Result<Option<usize>, FramingError> {
    match memchr::memchr(b'\n', data) {
        Some(i) if i < MAX_LINE => {
            check_line_ends(data.get(..=i).unwrap_or_default(), None)?;
            Ok(Some(i + 1))
        }
        None if data.len() < MAX_LINE => check_line_ends(data, None).map(|()| None),
        _ => Err(FramingError::BadChunk),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` whole, again after each release, as a caller does.
    fn all(data: &[u8]) -> Result<usize, FramingError> {
        let mut f = RequestFraming::default();
        let mut released = 0;
        loop {
            match f.advance(data.get(released..).unwrap_or_default())? {
                0 => return Ok(released),
                n => released += n,
            }
        }
    }

    /// The same bytes fed one at a time release the same total, or fail the same way.
    fn bytewise(data: &[u8]) -> Result<usize, FramingError> {
        let mut f = RequestFraming::default();
        let (mut released, mut held) = (0, Vec::new());
        for b in data {
            held.push(*b);
            let n = f.advance(&held)?;
            released += n;
            held.drain(..n);
        }
        f.advance(&held)?;
        Ok(released)
    }

    #[test]
    fn honest_requests_pass_whole() {
        let pipeline: &[u8] = b"\r\nPOST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
            POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
            GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(all(pipeline), Ok(pipeline.len()));
        assert_eq!(bytewise(pipeline), Ok(pipeline.len()));
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\n\x04";
        assert_eq!(all(h2), Ok(h2.len()));
        // After an upgrade or a CONNECT, anything passes.
        let ws = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n\x81\n\x00";
        assert_eq!(bytewise(ws), Ok(ws.len()));
    }

    #[test]
    fn an_incomplete_head_goes_on_but_not_the_blank_line_that_ends_it() {
        let mut f = RequestFraming::default();
        let start = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n";
        // The server may read the lines (its own size limit and timeout apply to them)...
        assert_eq!(f.advance(start), Ok(start.len()));
        assert!(!f.between_requests());
        // ...but the head ends only once it is checked: here, refused.
        assert_eq!(f.advance(b"\r\n"), Err(FramingError::LengthAndChunked));
        let mut f = RequestFraming::default();
        assert_eq!(f.advance(b"GET / HTTP/1.1\r\nHost: x\r"), Ok(24));
        // A CR last goes too: the server cannot end the head without the LF checked next.
        assert_eq!(f.advance(b"\n\r"), Ok(2));
        assert!(!f.between_requests());
        assert_eq!(f.advance(b"\nGET"), Ok(4));
        assert_eq!(f.advance(b" / HTTP/1.1\r\n\r\n"), Ok(15));
        assert!(f.between_requests());
        let body = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(all(body), Ok(body.len()));
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for (raw, want) in [
            (
                &b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                FramingError::LengthAndChunked,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                FramingError::LengthAndChunked,
            ),
            (b"POST / HTTP/1.1\nHost: x\n\n", FramingError::BareLineFeed),
            (
                b"POST / HTTP/1.1\r\nHost: x\n\r\n",
                FramingError::BareLineFeed,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n",
                FramingError::BareLineFeed,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
                FramingError::BadLength,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
                FramingError::BadLength,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                FramingError::BadLength,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                FramingError::BadLength,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                FramingError::BadChunk,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab",
                FramingError::BadChunk,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nab",
                FramingError::BareLineFeed,
            ),
            (b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", FramingError::BadHead),
        ] {
            assert_eq!(all(raw), Err(want), "{}", String::from_utf8_lossy(raw));
            assert_eq!(
                bytewise(raw),
                Err(want),
                "bytewise {}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn a_smuggled_second_head_is_checked_where_the_server_will_read_it() {
        let first = b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd".to_vec();
        let mut raw = first.clone();
        raw.extend_from_slice(b"GET /s HTTP/1.1\nHost: x\n\n");
        let mut f = RequestFraming::default();
        // The honest first request passes; the second is refused.
        assert_eq!(f.advance(&first), Ok(first.len()));
        assert_eq!(
            f.advance(raw.get(first.len()..).unwrap_or_default()),
            Err(FramingError::BareLineFeed)
        );
        assert_eq!(bytewise(&raw), Err(FramingError::BareLineFeed));
    }

    proptest::proptest! {
        /// Any split of an honest pipeline releases it whole; any bytes at all never make the
        /// framing release more than it was given, nor panic.
        #[test]
        fn splits_and_garbage(cuts in proptest::collection::vec(0usize..200, 0..6),
                              junk in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let pipeline: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
                POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
                GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(pipeline.len())).collect();
            cuts.sort_unstable();
            cuts.push(pipeline.len());
            let mut f = RequestFraming::default();
            let (mut released, mut fed) = (0, 0);
            for c in cuts {
                fed = fed.max(c);
                let n = f.advance(pipeline.get(released..fed).unwrap_or_default());
                proptest::prop_assert!(n.is_ok());
                released += n.unwrap_or(0);
            }
            proptest::prop_assert_eq!(released, pipeline.len());
            let mut g = RequestFraming::default();
            if let Ok(n) = g.advance(&junk) {
                proptest::prop_assert!(n <= junk.len());
            }
        }
    }
}
