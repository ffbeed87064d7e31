//! LLM APIs: what a request asks for, and the token usage in its response — a JSON body, or a
//! server-sent event stream read chunk by chunk as it passes (never buffered whole).
//!
//! Understood: OpenAI Chat Completions and Responses (and compatible APIs), Anthropic Messages.

use serde_json::Value;

use crate::sse::{SseParser, bounded_parser};

/// What a request to an LLM API asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmRequest {
    /// The `model` field.
    pub model: String,
    /// The `stream` field (false when absent).
    pub stream: bool,
    /// The names of the tools offered to the model (a function's name, else the tool's name or
    /// type).
    pub tools: Vec<String>,
}

/// Why a body is not an LLM API request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The body is not JSON.
    #[error("the request body is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The body has no string `model` field.
    #[error("the request names no model")]
    NoModel,
}

/// Reads the model, stream flag and tool names from a request body.
pub fn parse_request(body: &[u8]) -> Result<LlmRequest, RequestError> {
    let v: Value = serde_json::from_slice(body)?;
    let model = v
        .get("model")
        .and_then(Value::as_str)
        .ok_or(RequestError::NoModel)?
        .to_owned();
    let stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let tools = v
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| {
                    t.pointer("/function/name")
                        .or_else(|| t.get("name"))
                        .or_else(|| t.get("type"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(LlmRequest {
        model,
        stream,
        tools,
    })
}

/// Token counts seen so far in a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input (prompt) tokens, Anthropic's cache tokens included.
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
    /// A usage count was seen at all.
    pub seen: bool,
}

impl Tokens {
    /// Reads a `usage` object: OpenAI chat (`prompt_tokens`/`completion_tokens`), Responses and
    /// Anthropic (`input_tokens`/`output_tokens`, plus Anthropic's cache tokens).
    fn absorb_usage(&mut self, usage: &Value) {
        let n = |k: &str| usage.get(k).and_then(Value::as_u64);
        let input = n("input_tokens").or_else(|| n("prompt_tokens"));
        let output = n("output_tokens").or_else(|| n("completion_tokens"));
        let cached = n("cache_creation_input_tokens")
            .unwrap_or(0)
            .saturating_add(n("cache_read_input_tokens").unwrap_or(0));
        if let Some(i) = input {
            self.input = i.saturating_add(cached);
            self.seen = true;
        }
        if let Some(o) = output {
            // Anthropic's message_delta reports the cumulative output count.
            self.output = o;
            self.seen = true;
        }
    }

    /// Reads one JSON value of a response: a whole body, or one event's data.
    pub fn absorb(&mut self, v: &Value) {
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.absorb_usage(u);
        }
        // Anthropic message_start carries the input count inside `message`; the Responses API
        // sends `response.completed` with the usage inside `response`.
        for inner in ["message", "response"] {
            if let Some(u) = v
                .get(inner)
                .and_then(|m| m.get("usage"))
                .filter(|u| u.is_object())
            {
                self.absorb_usage(u);
            }
        }
    }
}

/// Reads the token usage of a response body as it passes, chunk by chunk.
#[derive(Debug)]
pub struct UsageReader {
    kind: Kind,
    tokens: Tokens,
}

#[derive(Debug)]
enum Kind {
    /// An event stream: each event is read as it completes.
    Sse(Box<SseParser>),
    /// A JSON body, kept up to `limit` bytes (`None` once it grew past it) and read at the end.
    Json { buf: Option<Vec<u8>>, limit: usize },
}

impl UsageReader {
    /// A reader of a `text/event-stream` body; it holds at most one event
    /// ([`MAX_EVENT`](crate::sse::MAX_EVENT) bytes) at a time.
    pub fn sse() -> Self {
        UsageReader {
            kind: Kind::Sse(Box::new(bounded_parser())),
            tokens: Tokens::default(),
        }
    }

    /// A reader of a JSON body of at most `limit` bytes (a larger body reports no usage).
    pub fn json(limit: usize) -> Self {
        UsageReader {
            kind: Kind::Json {
                buf: Some(Vec::new()),
                limit,
            },
            tokens: Tokens::default(),
        }
    }

    /// Reads the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        match &mut self.kind {
            Kind::Sse(parser) => {
                parser.feed(chunk);
                while let Some(event) = parser.next_event() {
                    // Most events are content deltas: skip those without parsing them.
                    if event.data.contains("usage")
                        && let Ok(v) = serde_json::from_str::<Value>(&event.data)
                    {
                        self.tokens.absorb(&v);
                    }
                }
            }
            Kind::Json { buf, limit } => {
                if let Some(b) = buf {
                    if b.len().saturating_add(chunk.len()) <= *limit {
                        b.extend_from_slice(chunk);
                    } else {
                        *buf = None;
                    }
                }
            }
        }
    }

    /// The usage read so far; for a JSON body, the usage of what has been fed as a whole body.
    pub fn tokens(&self) -> Tokens {
        match &self.kind {
            Kind::Sse(_) => self.tokens,
            Kind::Json { buf, .. } => {
                let mut t = Tokens::default();
                if let Some(v) = buf
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                {
                    t.absorb(&v);
                }
                t
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OPENAI: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7}}\n\ndata: [DONE]\n\n";
    const ANTHROPIC: &[u8] = b"event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1,\"cache_read_input_tokens\":5}}}\r\n\r\nevent: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"usage\"}}\r\n\r\nevent: message_delta\r\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\r\n\r\n";

    fn streamed(chunks: &[&[u8]]) -> Tokens {
        let mut r = UsageReader::sse();
        for c in chunks {
            r.feed(c);
        }
        r.tokens()
    }

    #[test]
    fn requests_of_both_providers() {
        let r = parse_request(br#"{"model":"gpt-4o-mini","stream":true,"messages":[],"tools":[{"type":"function","function":{"name":"search"}},{"type":"web_search"}]}"#).unwrap();
        assert_eq!(
            r,
            LlmRequest {
                model: "gpt-4o-mini".into(),
                stream: true,
                tools: vec!["search".into(), "web_search".into()]
            }
        );
        let r = parse_request(
            br#"{"model":"claude-haiku-4-5","max_tokens":5,"tools":[{"name":"calc"}]}"#,
        )
        .unwrap();
        assert_eq!((r.tools, r.stream), (vec!["calc".to_owned()], false));
        assert!(matches!(
            parse_request(b"not json"),
            Err(RequestError::Json(_))
        ));
        assert!(matches!(
            parse_request(br#"{"model":5}"#),
            Err(RequestError::NoModel)
        ));
    }

    #[test]
    fn usage_of_both_providers_streamed_and_whole() {
        let openai = streamed(&[OPENAI]);
        assert_eq!((openai.input, openai.output, openai.seen), (11, 7, true));
        let anthropic = streamed(&[ANTHROPIC]);
        assert_eq!((anthropic.input, anthropic.output), (30, 15));

        let mut whole = UsageReader::json(1 << 20);
        whole.feed(br#"{"id":"x","usage":{"input_tokens":3,"#);
        whole.feed(br#""output_tokens":4}}"#);
        assert_eq!(
            whole.tokens(),
            Tokens {
                input: 3,
                output: 4,
                seen: true
            }
        );
        let mut responses = UsageReader::json(1 << 20);
        responses.feed(br#"{"type":"response.completed","response":{"usage":{"input_tokens":9,"output_tokens":2}}}"#);
        assert_eq!(
            (responses.tokens().input, responses.tokens().output),
            (9, 2)
        );
    }

    #[test]
    fn usage_is_the_same_at_every_chunk_boundary() {
        for stream in [OPENAI, ANTHROPIC] {
            let whole = streamed(&[stream]);
            for i in 0..=stream.len() {
                let (a, b) = stream.split_at(i);
                assert_eq!(streamed(&[a, b]), whole, "split at {i}");
            }
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            assert_eq!(streamed(&bytes), whole);
        }
    }

    #[test]
    fn hostile_bodies_report_nothing() {
        assert!(!streamed(&[b"data: {\"usage\":{\"input_tokens\":-1}}\n\n"]).seen);
        assert!(!streamed(&[b"data: {\"usage\": 5}\n\ndata: [DONE]\n\n\xff\xfe"]).seen);
        // An event past the bound is dropped; the next one is still read.
        let big = vec![b'x'; crate::sse::MAX_EVENT + 1];
        let t = streamed(&[
            b"data: {\"usage\":",
            &big,
            b"\n\ndata: {\"usage\":{\"output_tokens\":2}}\n\n",
        ]);
        assert_eq!((t.output, t.seen), (2, true));
        let mut too_big = UsageReader::json(8);
        too_big.feed(br#"{"usage":{"input_tokens":1}}"#);
        assert!(!too_big.tokens().seen);
        // Counts saturate instead of overflowing.
        let t = streamed(&[format!(
            "data: {{\"usage\":{{\"input_tokens\":{},\"cache_read_input_tokens\":{}}}}}\n\n",
            u64::MAX,
            u64::MAX
        )
        .as_bytes()]);
        assert_eq!(t.input, u64::MAX);
    }

    proptest! {
        #[test]
        fn any_chunking_reads_the_same_usage(cuts in proptest::collection::vec(0..ANTHROPIC.len(), 0..12)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for c in cuts {
                chunks.push(&ANTHROPIC[start..c]);
                start = c;
            }
            chunks.push(&ANTHROPIC[start..]);
            prop_assert_eq!(streamed(&chunks), streamed(&[ANTHROPIC]));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), at in 0usize..512) {
            let at = at.min(data.len());
            let (a, b) = data.split_at(at);
            let _ = streamed(&[a, b]);
            let mut j = UsageReader::json(256);
            j.feed(a);
            j.feed(b);
            let _ = j.tokens();
            let _ = parse_request(&data);
        }
    }
}
