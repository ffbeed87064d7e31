//! MCP over JSON-RPC 2.0: the requests in a body (a single message or a batch), the responses,
//! error responses, and `tools/list` results filtered to the tools a caller may use — in a JSON
//! body or in the events of a streamable-HTTP event stream.

use serde_json::{Map, Value, json};

/// One JSON-RPC request (or notification).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcRequest {
    /// Its id (`null` for a notification).
    pub id: Value,
    /// The method, e.g. `tools/call`.
    pub method: String,
    /// For `tools/call`: the tool's name.
    pub tool: Option<String>,
    /// For `tools/call`: the arguments, when they are an object.
    pub args: Option<Map<String, Value>>,
}

/// One JSON-RPC response.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcResponse {
    /// The id of the request it answers.
    pub id: Value,
    /// Its `result`, or its `error`.
    pub outcome: Result<Value, ErrorObject>,
}

/// The `error` member of a JSON-RPC response.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorObject {
    /// The error code.
    pub code: i64,
    /// The message.
    pub message: String,
    /// Additional data, if any.
    pub data: Option<Value>,
}

/// Why a body is not JSON-RPC.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The body is not JSON.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A message lacks `"jsonrpc": "2.0"`.
    #[error("a message is not JSON-RPC 2.0")]
    NotJsonRpc,
    /// A response has neither a `result` nor a well-formed `error`.
    #[error("a JSON-RPC response has neither a result nor an error object")]
    BadResponse,
}

/// The messages of a body: one message, or the items of a batch.
fn messages(v: &Value) -> Result<Vec<&Value>, RpcError> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    if items
        .iter()
        .any(|m| m.get("jsonrpc").and_then(Value::as_str) != Some("2.0"))
    {
        return Err(RpcError::NotJsonRpc);
    }
    Ok(items)
}

/// The requests in a body, in order; the responses of a mixed batch are skipped.
pub fn parse_requests(body: &[u8]) -> Result<Vec<RpcRequest>, RpcError> {
    let v: Value = serde_json::from_slice(body)?;
    Ok(messages(&v)?.into_iter().filter_map(request).collect())
}

fn request(m: &Value) -> Option<RpcRequest> {
    let method = m.get("method")?.as_str()?;
    let params = m.get("params").filter(|_| method == "tools/call");
    Some(RpcRequest {
        id: m.get("id").cloned().unwrap_or(Value::Null),
        method: method.to_owned(),
        tool: params
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        args: params
            .and_then(|p| p.get("arguments"))
            .and_then(Value::as_object)
            .cloned(),
    })
}

/// The responses in a body, in order; the requests of a mixed batch are skipped.
pub fn parse_responses(body: &[u8]) -> Result<Vec<RpcResponse>, RpcError> {
    let v: Value = serde_json::from_slice(body)?;
    messages(&v)?
        .into_iter()
        .filter(|m| m.get("method").is_none())
        .map(response)
        .collect()
}

fn response(m: &Value) -> Result<RpcResponse, RpcError> {
    let id = m.get("id").cloned().unwrap_or(Value::Null);
    let outcome = match (m.get("result"), m.get("error")) {
        (Some(r), None) => Ok(r.clone()),
        (None, Some(e)) => Err(ErrorObject {
            code: e
                .get("code")
                .and_then(Value::as_i64)
                .ok_or(RpcError::BadResponse)?,
            message: e
                .get("message")
                .and_then(Value::as_str)
                .ok_or(RpcError::BadResponse)?
                .to_owned(),
            data: e.get("data").cloned(),
        }),
        _ => return Err(RpcError::BadResponse),
    };
    Ok(RpcResponse { id, outcome })
}

/// The JSON-RPC error response answering request `id`.
pub fn error_response(id: &Value, error: &ErrorObject) -> Value {
    let mut e = json!({ "code": error.code, "message": error.message });
    if let (Some(data), Some(obj)) = (&error.data, e.as_object_mut()) {
        obj.insert("data".into(), data.clone());
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": e })
}

/// Removes, from a `tools/list` response body (JSON, a batch, or an event stream of JSON-RPC
/// messages), every tool `allowed` refuses. Returns the new body, or `None` if nothing changed
/// (or the body is not one of those).
pub fn filter_tools_list(
    body: &[u8],
    is_sse: bool,
    allowed: &mut dyn FnMut(&str) -> bool,
) -> Option<Vec<u8>> {
    if is_sse {
        return crate::sse::rewrite_json_events(body, &mut |v| filter_body(v, allowed));
    }
    let mut v: Value = serde_json::from_slice(body).ok()?;
    if !filter_body(&mut v, allowed) {
        return None;
    }
    serde_json::to_vec(&v).ok()
}

/// Filters every message of a body (one message or a batch); true if any changed.
fn filter_body(v: &mut Value, allowed: &mut dyn FnMut(&str) -> bool) -> bool {
    match v {
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, m| filter_message(m, allowed) | changed),
        m => filter_message(m, allowed),
    }
}

fn filter_message(v: &mut Value, allowed: &mut dyn FnMut(&str) -> bool) -> bool {
    let Some(tools) = v.pointer_mut("/result/tools").and_then(Value::as_array_mut) else {
        return false;
    };
    let before = tools.len();
    tools.retain(|t| {
        t.get("name")
            .and_then(Value::as_str)
            .is_none_or(&mut *allowed)
    });
    tools.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn requests_single_and_batched() {
        let calls = parse_requests(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_repo","arguments":{"repo":"x"}}}"#).unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].id, json!(7));
        assert_eq!(calls[0].tool.as_deref(), Some("delete_repo"));
        assert_eq!(
            calls[0].args.as_ref().and_then(|a| a.get("repo")),
            Some(&json!("x"))
        );

        let batch = parse_requests(br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"result":{}},{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"t","arguments":[1]}}]"#).unwrap();
        let methods: Vec<_> = batch.iter().map(|c| c.method.as_str()).collect();
        assert_eq!(
            methods,
            ["tools/list", "notifications/initialized", "tools/call"]
        );
        assert_eq!(batch[1].id, Value::Null);
        assert_eq!(batch[0].tool, None);
        assert_eq!(
            (batch[2].tool.as_deref(), &batch[2].args),
            (Some("t"), &None)
        );
        // Only tools/call has a tool.
        let other = parse_requests(
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"x"}}"#,
        )
        .unwrap();
        assert_eq!(other[0].tool, None);
    }

    #[test]
    fn malformed_bodies_are_typed_errors() {
        assert!(matches!(
            parse_requests(br#"{"id":1,"method":"x"}"#),
            Err(RpcError::NotJsonRpc)
        ));
        assert!(matches!(
            parse_requests(br#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"1.0","method":"b"}]"#),
            Err(RpcError::NotJsonRpc)
        ));
        assert!(matches!(parse_requests(b"[1,2"), Err(RpcError::Json(_))));
        assert!(matches!(
            parse_requests(b"[1,2]"),
            Err(RpcError::NotJsonRpc)
        ));
        assert!(matches!(
            parse_requests(b"\"2.0\""),
            Err(RpcError::NotJsonRpc)
        ));
        assert_eq!(parse_requests(b"[]").unwrap(), vec![]);
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse_requests(deep.as_bytes()),
            Err(RpcError::Json(_))
        ));
        assert!(matches!(
            parse_responses(br#"{"jsonrpc":"2.0","id":1}"#),
            Err(RpcError::BadResponse)
        ));
        assert!(matches!(
            parse_responses(br#"{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}"#),
            Err(RpcError::BadResponse)
        ));
    }

    #[test]
    fn responses_and_errors_round_trip() {
        let err = ErrorObject {
            code: -32003,
            message: "denied".into(),
            data: Some(json!({"reason": "forbidden"})),
        };
        let body = json!([
            error_response(&json!(3), &err),
            {"jsonrpc": "2.0", "id": 4, "result": {"content": []}},
            {"jsonrpc": "2.0", "id": 5, "method": "ping"},
        ]);
        let got = parse_responses(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            got,
            vec![
                RpcResponse {
                    id: json!(3),
                    outcome: Err(err)
                },
                RpcResponse {
                    id: json!(4),
                    outcome: Ok(json!({"content": []}))
                },
            ]
        );
        let bare = error_response(
            &Value::Null,
            &ErrorObject {
                code: -32600,
                message: "x".into(),
                data: None,
            },
        );
        assert_eq!(bare["error"].get("data"), None);
    }

    #[test]
    fn tools_lists_are_filtered_in_json_batches_and_streams() {
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read"},{"name":"delete_repo"}]}}"#;
        let out = filter_tools_list(body, false, &mut |n| n != "delete_repo").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"], json!([{"name": "read"}]));
        assert!(filter_tools_list(body, false, &mut |_| true).is_none());
        assert!(filter_tools_list(b"{", false, &mut |_| false).is_none());

        let batch = br#"[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}},{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"b"}]}}]"#;
        let out = filter_tools_list(batch, false, &mut |n| n == "b").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (&v[0]["result"]["tools"], &v[1]["result"]["tools"]),
            (&json!([]), &json!([{"name": "b"}]))
        );

        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}\n\n";
        let out =
            String::from_utf8(filter_tools_list(sse, true, &mut |n| n == "b").unwrap()).unwrap();
        assert!(
            out.starts_with("event: message\ndata: {")
                && out.contains("\"b\"")
                && !out.contains("\"a\""),
            "{out}"
        );
        assert!(out.ends_with("\n\n"));
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(v in arb_json()) {
            let body = v.to_string();
            let _ = parse_requests(body.as_bytes());
            let _ = parse_responses(body.as_bytes());
            let _ = filter_tools_list(body.as_bytes(), false, &mut |n| n.len() % 2 == 0);
        }
    }

    /// JSON values shaped like JSON-RPC messages, often slightly wrong.
    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just("2.0"),
                Just("tools/call"),
                Just("tools/list"),
                Just("x")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("jsonrpc"),
                            Just("id"),
                            Just("method"),
                            Just("params"),
                            Just("name"),
                            Just("arguments"),
                            Just("result"),
                            Just("error"),
                            Just("code"),
                            Just("message"),
                            Just("tools"),
                        ],
                        inner
                    ),
                    0..6
                )
                .prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }
}
