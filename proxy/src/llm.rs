//! LLM APIs: the `model_call` in a request, and the token usage in its response — a JSON body,
//! or a server-sent event stream read as it passes (never buffered).

use serde_json::Value;

/// What a request to an LLM API asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LlmRequest {
    pub model: String,
    pub stream: bool,
    pub tools: Vec<String>,
}

/// Reads the model, stream flag and tool names from a request body (OpenAI Chat Completions,
/// Responses, and compatible; Anthropic Messages).
pub(crate) fn parse_request(body: &[u8]) -> Option<LlmRequest> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let model = v.get("model")?.as_str()?.to_owned();
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
    Some(LlmRequest {
        model,
        stream,
        tools,
    })
}

/// Token counts seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    pub input: u64,
    pub output: u64,
    pub seen: bool,
}

impl Tokens {
    /// Reads a `usage` object: OpenAI chat (`prompt_tokens`/`completion_tokens`), Responses and
    /// Anthropic (`input_tokens`/`output_tokens`, plus Anthropic's cache tokens).
    fn absorb_usage(&mut self, usage: &Value) {
        let n = |k: &str| usage.get(k).and_then(Value::as_u64);
        let input = n("input_tokens").or_else(|| n("prompt_tokens"));
        let output = n("output_tokens").or_else(|| n("completion_tokens"));
        let cached = n("cache_creation_input_tokens").unwrap_or(0)
            + n("cache_read_input_tokens").unwrap_or(0);
        if let Some(i) = input {
            self.input = i + cached;
            self.seen = true;
        }
        if let Some(o) = output {
            // Anthropic's message_delta reports the cumulative output count.
            self.output = o;
            self.seen = true;
        }
    }

    /// One JSON value of a response (a whole body, or one SSE event's data).
    pub(crate) fn absorb(&mut self, v: &Value) {
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

/// Reads an SSE stream chunk by chunk, keeping the partial last line.
#[derive(Debug, Default)]
pub(crate) struct SseScanner {
    partial: Vec<u8>,
    pub tokens: Tokens,
}

impl SseScanner {
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        let mut start = 0;
        for (i, b) in chunk.iter().enumerate() {
            if *b == b'\n' {
                let line = chunk.get(start..i).unwrap_or_default();
                if self.partial.is_empty() {
                    self.line(line);
                } else {
                    self.partial.extend_from_slice(line);
                    let whole = std::mem::take(&mut self.partial);
                    self.line(&whole);
                }
                start = i + 1;
            }
        }
        if let Some(rest) = chunk.get(start..) {
            // Bounded: a line longer than 1 MiB is not an LLM usage event.
            if self.partial.len() + rest.len() <= 1 << 20 {
                self.partial.extend_from_slice(rest);
            } else {
                self.partial.clear();
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" || !data.contains(&b'u') {
            return; // no "usage" in it
        }
        if let Ok(v) = serde_json::from_slice::<Value>(data) {
            self.tokens.absorb(&v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_usage_of_both_providers() {
        let r = parse_request(br#"{"model":"gpt-4o-mini","stream":true,"messages":[],"tools":[{"type":"function","function":{"name":"search"}}]}"#);
        assert_eq!(
            r,
            Some(LlmRequest {
                model: "gpt-4o-mini".into(),
                stream: true,
                tools: vec!["search".into()]
            })
        );
        let r = parse_request(
            br#"{"model":"claude-haiku-4-5","max_tokens":5,"tools":[{"name":"calc"}]}"#,
        );
        assert_eq!(r.map(|r| r.tools), Some(vec!["calc".to_owned()]));
        assert_eq!(parse_request(b"not json"), None);

        let mut openai = SseScanner::default();
        // Split mid-line on purpose.
        openai.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usa");
        openai.feed(b"ge\":{\"prompt_tokens\":11,\"completion_tokens\":7}}\n\ndata: [DONE]\n\n");
        assert_eq!((openai.tokens.input, openai.tokens.output), (11, 7));

        let mut anthropic = SseScanner::default();
        anthropic.feed(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n");
        anthropic.feed(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n");
        assert_eq!((anthropic.tokens.input, anthropic.tokens.output), (25, 15));

        let mut whole = Tokens::default();
        whole.absorb(&serde_json::json!({"usage": {"input_tokens": 3, "output_tokens": 4}}));
        assert_eq!((whole.input, whole.output, whole.seen), (3, 4, true));
    }
}
