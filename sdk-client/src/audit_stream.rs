//! The gateway's live audit stream (`GET /v1/audit/stream`, server-sent events), decoded with
//! the sans-IO [`sse_parse::SseParser`].

use std::io::Read;

use aa_core::AuditRecord;
use sse_parse::SseParser;

use crate::gateway::GatewayError;

/// Bytes read from the connection at a time.
const CHUNK: usize = 8 << 10;

/// The records of the audit stream, as they arrive; ends when the gateway closes it.
pub struct AuditStream {
    reader: Box<dyn Read + Send>,
    parser: SseParser,
    buf: Vec<u8>,
    done: bool,
}

impl std::fmt::Debug for AuditStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditStream")
            .field("last_event_id", &self.parser.last_event_id())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl AuditStream {
    /// Records from an event stream's bytes (each `record` event's data is one record).
    pub fn new(reader: impl Read + Send + 'static) -> Self {
        AuditStream {
            reader: Box::new(reader),
            parser: SseParser::new(),
            buf: vec![0; CHUNK],
            done: false,
        }
    }

    /// The seq of the last event received (`Last-Event-ID` to resume from), if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.parser.last_event_id().parse().ok()
    }
}

impl Iterator for AuditStream {
    type Item = Result<AuditRecord, GatewayError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.parser.next_event() {
                if event.event != "record" {
                    continue;
                }
                return Some(serde_json::from_str(&event.data).map_err(GatewayError::from));
            }
            if self.done {
                return None;
            }
            match self.reader.read(&mut self.buf) {
                Ok(0) => {
                    self.parser.finish();
                    self.done = true;
                }
                Ok(n) => self.parser.feed(self.buf.get(..n).unwrap_or_default()),
                Err(e) => {
                    self.done = true;
                    return Some(Err(GatewayError::StreamCut(e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes a few at a time, as a network does.
    struct Trickle(Vec<u8>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let rest = &self.0[self.1..];
            let n = rest.len().min(buf.len()).min(7);
            buf[..n].copy_from_slice(&rest[..n]);
            self.1 += n;
            Ok(n)
        }
    }

    fn record_json(seq: u64) -> String {
        let env = aa_core::FixedEnv::new(1_700_000_000_000);
        let engine = aa_core::Engine::new(std::sync::Arc::new(env));
        let action = aa_core::Action::from_json(r#"{"kind":"tool_call","tool":"t"}"#).unwrap();
        let agent = aa_core::Agent::new("a");
        let decision = engine.preview(&agent, &action, aa_core::Layer::Sdk);
        let event = engine.event(&agent, &action, aa_core::Layer::Sdk, &decision, None);
        let mut chain = aa_core::audit::Chain::new();
        let mut record = chain.link(event).unwrap();
        record.seq = seq;
        serde_json::to_string(&record).unwrap()
    }

    #[test]
    fn records_are_decoded_across_chunk_boundaries_and_comments_skipped() {
        let (one, two) = (record_json(1), record_json(2));
        let text = format!(
            ": keep-alive\n\nid: 1\nevent: record\ndata: {one}\n\n:\n\nid: 2\r\nevent: record\r\ndata: {two}\r\n\r\n"
        );
        let mut stream = AuditStream::new(Trickle(text.into_bytes(), 0));
        assert_eq!(stream.next().unwrap().unwrap().seq, 1);
        assert_eq!(stream.next().unwrap().unwrap().seq, 2);
        assert!(stream.next().is_none());
        assert_eq!(stream.last_seq(), Some(2));
    }

    #[test]
    fn a_malformed_record_is_an_error_not_a_silent_skip() {
        let text = "event: record\ndata: {\"seq\": \n\n";
        let mut stream = AuditStream::new(Trickle(text.as_bytes().to_vec(), 0));
        assert!(matches!(stream.next(), Some(Err(GatewayError::Record(_)))));
    }
}
