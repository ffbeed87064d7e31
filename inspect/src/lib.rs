//! # aa-inspect
//!
//! What Agent Assembly reads out of traffic, in one place for the proxy and the kernel layer:
//!
//! - [`llm`]: the model, stream flag and tools of an LLM API request, and the token usage of its
//!   response — a JSON body, or a server-sent event stream read chunk by chunk as it passes;
//! - [`mcp`]: MCP JSON-RPC requests and responses (`tools/call`, `tools/list`, batches, errors);
//! - [`framing`]: strict HTTP/1.1 request framing ahead of the proxy's server (ambiguous
//!   lengths and bare LF refused, not normalised);
//! - [`http1`]: HTTP/1 request heads, whole or cut off (the kernel sees the first bytes of each
//!   TLS write);
//! - [`sse`]: the server-sent event parser they share, and rewriting a stream's JSON events.
//!
//! Everything here reads untrusted bytes: every parser returns a typed error or `None`, never
//! panics, and holds a bounded amount of memory.
//!
//! ```
//! use aa_inspect::llm::UsageReader;
//!
//! let mut usage = UsageReader::sse();
//! usage.feed(b"data: {\"usage\":{\"prompt_tokens\":11,\"comp");
//! usage.feed(b"letion_tokens\":7}}\n\ndata: [DONE]\n\n");
//! let tokens = usage.tokens();
//! assert_eq!((tokens.input, tokens.output), (11, 7));
//! ```

pub mod framing;
pub mod http1;
pub mod llm;
pub mod mcp;
pub mod sse;
