//! Server-sent events: one parser ([`sse_parse::SseParser`], sans-IO, chunk-boundary invariant)
//! bounded for hostile streams, and rewriting the JSON events of a whole stream.

use std::fmt::Write as _;

use serde_json::Value;
pub use sse_parse::{Event, SseParser};

/// The most bytes one event may hold; a larger one is dropped (the parser resynchronises at the
/// next blank line). No usage or JSON-RPC event comes near it.
pub const MAX_EVENT: usize = 1 << 20;

/// A parser that holds at most [`MAX_EVENT`] bytes of one event (plus the chunk being fed).
pub fn bounded_parser() -> SseParser {
    SseParser::new().max_buffer(MAX_EVENT)
}

/// Applies `edit` to the JSON data of every event of a complete stream; `edit` returns true when
/// it changed the value. Returns the re-encoded stream when any event changed, `None` when none
/// did or the stream is not UTF-8 (then the original bytes stand as they are).
///
/// The re-encoded stream carries the same events, in order, with the same type, id, retry and
/// data (changed where `edit` said so); comments and blocks without data are left out, as a
/// client would ignore them too.
pub fn rewrite_json_events(
    body: &[u8],
    edit: &mut dyn FnMut(&mut Value) -> bool,
) -> Option<Vec<u8>> {
    std::str::from_utf8(body).ok()?;
    let mut parser = bounded_parser();
    parser.feed(body);
    parser.finish();
    let mut events = Vec::new();
    let mut changed = false;
    while let Some(mut event) = parser.next_event() {
        if let Ok(mut v) = serde_json::from_str::<Value>(&event.data)
            && edit(&mut v)
        {
            event.data = v.to_string();
            changed = true;
        }
        events.push(event);
    }
    if !changed {
        return None;
    }
    let mut out = String::with_capacity(body.len());
    let mut last_id = String::new();
    for event in &events {
        encode(&mut out, event, &mut last_id);
    }
    Some(out.into_bytes())
}

/// Appends one event in the wire format; `last_id` is the id already in force.
fn encode(out: &mut String, event: &Event, last_id: &mut String) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "event: {}", event.event);
    if event.id != *last_id {
        let _ = writeln!(out, "id: {}", event.id);
        last_id.clone_from(&event.id);
    }
    if let Some(retry) = event.retry {
        let _ = writeln!(out, "retry: {}", retry.as_millis());
    }
    for line in event.data.split('\n') {
        let _ = writeln!(out, "data: {line}");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn events(body: &[u8]) -> Vec<Event> {
        let mut p = SseParser::new();
        p.feed(body);
        p.finish();
        std::iter::from_fn(|| p.next_event()).collect()
    }

    #[test]
    fn a_rewritten_stream_keeps_every_event_but_the_edit() {
        let body = b": comment\nevent: message\nid: 4\nretry: 1500\ndata: {\"n\":1}\n\nevent: other\ndata: plain\ndata:  two lines\n\ndata: {\"n\":2}\r\n\r\n";
        let out = rewrite_json_events(body, &mut |v| {
            if v["n"] == json!(2) {
                v["n"] = json!(3);
                true
            } else {
                false
            }
        })
        .unwrap();
        let before = events(body);
        let after = events(&out);
        assert_eq!(after.len(), 3);
        assert_eq!(after[..2], before[..2]);
        assert_eq!(after[2].data, r#"{"n":3}"#);
        assert_eq!(after[2].id, "4");
        assert!(rewrite_json_events(body, &mut |_| false).is_none());
        assert!(rewrite_json_events(b"data: {}\n\n\xff", &mut |_| true).is_none());
    }

    #[test]
    fn an_oversized_event_is_dropped_and_the_next_one_read() {
        let mut p = bounded_parser();
        p.feed(b"data: ");
        let big = vec![b'x'; MAX_EVENT];
        p.feed(&big);
        p.feed(b"\n\ndata: ok\n\n");
        assert_eq!(p.next_event().map(|e| e.data).as_deref(), Some("ok"));
        assert_eq!(p.overflows(), 1);
    }
}
