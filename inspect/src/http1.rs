//! HTTP/1 request heads ([`httparse`]), whole or cut off: the kernel layer sees only the first
//! bytes of each TLS write, so a head longer than that is read up to its last whole line.

use std::str::FromStr;

use http::uri::Authority;

/// The most bytes read as a head; a longer one is refused.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header lines read.
pub const MAX_HEADERS: usize = 64;

/// An HTTP/1.x request line and the headers the inspectors use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method (upper-case ASCII letters).
    pub method: String,
    /// The request target as written (usually a path and query).
    pub target: String,
    /// The minor version (`1` for HTTP/1.1).
    pub version: u8,
    /// The host of the `Host` header (IPv6 brackets removed), when present.
    pub host: Option<String>,
    /// The port of the `Host` header, when it names one.
    pub port: Option<u16>,
    /// The `Content-Length` header, when present and a number.
    pub content_length: Option<u64>,
    /// Where the body starts; `None` when the head was cut off before its end.
    pub body_start: Option<usize>,
}

impl RequestHead {
    /// The bytes of the body present in `data` (the bytes this head was parsed from): after the
    /// head, up to `Content-Length` when it is given. Empty when the head was cut off.
    pub fn body<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let Some(start) = self.body_start else {
            return &[];
        };
        let rest = data.get(start..).unwrap_or_default();
        match self.content_length.and_then(|n| usize::try_from(n).ok()) {
            Some(n) => rest.get(..n).unwrap_or(rest),
            None => rest,
        }
    }
}

/// Why bytes are not an HTTP/1 request head.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// Malformed (this includes other protocols, such as an HTTP/2 preface or binary frames).
    #[error("not an HTTP/1 request head: {0}")]
    Malformed(#[from] httparse::Error),
    /// The method is not upper-case ASCII letters.
    #[error("not an HTTP/1 request method")]
    Method,
    /// The bytes end before the request line does.
    #[error("the request line is cut off")]
    Incomplete,
    /// Longer than [`MAX_HEAD`].
    #[error("the request head is longer than {MAX_HEAD} bytes")]
    TooLarge,
}

/// Parses the request head at the start of `data`. A head cut off before its blank line is read
/// up to its last whole header line (`body_start` is then `None`); a request line cut off is
/// [`HeadError::Incomplete`]. Pipelined requests: the next one starts at the end of this one's
/// body.
pub fn parse_request_head(data: &[u8]) -> Result<RequestHead, HeadError> {
    if data.len() > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if let httparse::Status::Complete(len) = req.parse(data)? {
        return head(&req, Some(len));
    }
    // Cut off: close the head after its last whole line and read that.
    let line_end = memchr::memmem::rfind(data, b"\r\n").ok_or(HeadError::Incomplete)?;
    let mut closed = data.get(..line_end).unwrap_or_default().to_vec();
    closed.extend_from_slice(b"\r\n\r\n");
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&closed)? {
        httparse::Status::Complete(_) => head(&req, None),
        httparse::Status::Partial => Err(HeadError::Incomplete),
    }
}

fn head(
    req: &httparse::Request<'_, '_>,
    body_start: Option<usize>,
) -> Result<RequestHead, HeadError> {
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Incomplete);
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HeadError::Method);
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let (host, port) = match header("host") {
        Some(value) => match Authority::from_str(value) {
            Ok(a) => (
                Some(
                    a.host()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                ),
                a.port_u16(),
            ),
            Err(_) => (Some(value.to_owned()), None),
        },
        None => (None, None),
    };
    Ok(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        version,
        host,
        port,
        content_length: header("content-length").and_then(|v| v.parse().ok()),
        body_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_whole_head_and_its_body() {
        let data = b"POST /v1/chat/completions HTTP/1.1\r\nhost: api.openai.com\r\nContent-Length: 2\r\n\r\n{}";
        let h = parse_request_head(data).unwrap();
        assert_eq!(
            h,
            RequestHead {
                method: "POST".into(),
                target: "/v1/chat/completions".into(),
                version: 1,
                host: Some("api.openai.com".into()),
                port: None,
                content_length: Some(2),
                body_start: Some(data.len() - 2),
            }
        );
        assert_eq!(h.body(data), b"{}");
    }

    #[test]
    fn hosts_with_ports_and_ipv6() {
        let host = |v: &str| {
            let data = format!("GET / HTTP/1.1\r\nHost: {v}\r\n\r\n");
            let h = parse_request_head(data.as_bytes()).unwrap();
            (h.host, h.port)
        };
        assert_eq!(
            host("tools.internal:8443"),
            (Some("tools.internal".into()), Some(8443))
        );
        assert_eq!(host("[::1]:22"), (Some("::1".into()), Some(22)));
        assert_eq!(host("[2001:db8::1]"), (Some("2001:db8::1".into()), None));
        assert_eq!(host("x:99999"), (Some("x".into()), None));
        assert_eq!(host("a b:1"), (Some("a b:1".into()), None));
        let none = parse_request_head(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!((none.host, none.version), (None, 0));
    }

    #[test]
    fn pipelined_requests_are_read_one_after_another() {
        let data = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: y\r\n\r\n";
        let first = parse_request_head(data).unwrap();
        assert_eq!(
            (first.target.as_str(), first.body(data)),
            ("/a", &b"abc"[..])
        );
        let next = first.body_start.unwrap() + 3;
        let second = parse_request_head(&data[next..]).unwrap();
        assert_eq!(
            (second.target.as_str(), second.host.as_deref()),
            ("/b", Some("y"))
        );
        assert!(second.body(&data[next..]).is_empty());
    }

    #[test]
    fn a_cut_off_head_is_read_to_its_last_whole_line() {
        let data =
            b"POST /mcp HTTP/1.1\r\nHost: tools.internal:8443\r\nAuthorization: Bearer sk-abc";
        let h = parse_request_head(data).unwrap();
        assert_eq!(
            (h.host.as_deref(), h.port, h.body_start),
            (Some("tools.internal"), Some(8443), None)
        );
        assert!(h.body(data).is_empty());
        for cut in [
            "POST /mcp HTTP/1.1\r\n",
            "POST /mcp HTTP/1.1\r\nHost: a\r\n",
        ] {
            assert!(parse_request_head(cut.as_bytes()).is_ok(), "{cut:?}");
        }
        for cut in ["", "POST", "POST /mcp HTTP/1.1", "POST /mcp HTTP/1.1\r"] {
            assert!(
                matches!(
                    parse_request_head(cut.as_bytes()),
                    Err(HeadError::Incomplete)
                ),
                "{cut:?}"
            );
        }
    }

    #[test]
    fn other_bytes_are_refused() {
        for data in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            b"\x00\x00\x12\x04binary h2 frame\r\n",
            b"hello world HTTP/1.1\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert!(parse_request_head(data).is_err(), "{data:?}");
        }
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "a: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(matches!(
            parse_request_head(many.as_bytes()),
            Err(HeadError::Malformed(httparse::Error::TooManyHeaders))
        ));
        assert!(matches!(
            parse_request_head(&vec![b'A'; MAX_HEAD + 1]),
            Err(HeadError::TooLarge)
        ));
    }

    proptest! {
        #[test]
        fn any_prefix_of_a_head_parses_or_is_a_typed_error(cut in 0usize..120) {
            let data = b"POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\nContent-Type: application/json\r\n\r\n{}";
            let data = &data[..cut.min(data.len())];
            if let Ok(h) = parse_request_head(data) {
                prop_assert_eq!(h.target, "/v1/messages");
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(h) = parse_request_head(&data) {
                let _ = h.body(&data);
            }
        }
    }
}
