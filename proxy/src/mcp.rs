//! MCP over streamable HTTP: JSON-RPC `tools/call` requests become `mcp_call` actions (a deny is
//! answered as a JSON-RPC error), and `tools/list` results are filtered to the tools the policy
//! lets this agent call.

use serde_json::{Value, json};

/// One JSON-RPC request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcCall {
    pub id: Value,
    pub method: String,
    pub tool: Option<String>,
    pub args: Option<serde_json::Map<String, Value>>,
}

/// The JSON-RPC requests in a body (a single request or a batch); `None` if it is not JSON-RPC.
pub(crate) fn parse(body: &[u8]) -> Option<Vec<RpcCall>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let items: Vec<&Value> = match &v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut calls = Vec::new();
    for item in items {
        if item.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return None;
        }
        let Some(method) = item.get("method").and_then(Value::as_str) else {
            continue;
        };
        let params = item.get("params");
        let tool = (method == "tools/call")
            .then(|| {
                params
                    .and_then(|p| p.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .flatten();
        let args = (method == "tools/call")
            .then(|| {
                params
                    .and_then(|p| p.get("arguments"))
                    .and_then(Value::as_object)
                    .cloned()
            })
            .flatten();
        calls.push(RpcCall {
            id: item.get("id").cloned().unwrap_or(Value::Null),
            method: method.to_owned(),
            tool,
            args,
        });
    }
    Some(calls)
}

/// The JSON-RPC error answering a denied request.
pub(crate) fn denial(
    id: &Value,
    reason: &str,
    message: &str,
    decision_id: &str,
    policy_ids: &[String],
) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": -32003,
            "message": format!("denied by Agent Assembly ({reason}): {message}"),
            "data": { "reason": reason, "decision_id": decision_id, "policy_ids": policy_ids },
        }
    })
}

/// Removes, from a `tools/list` response body (JSON, or SSE events carrying JSON-RPC
/// messages), every tool `allowed` refuses. Returns the new body, or `None` if unchanged.
pub(crate) fn filter_tools_list(
    body: &[u8],
    is_sse: bool,
    allowed: &mut dyn FnMut(&str) -> bool,
) -> Option<Vec<u8>> {
    if !is_sse {
        let mut v: Value = serde_json::from_slice(body).ok()?;
        return filter_message(&mut v, allowed).then(|| serde_json::to_vec(&v).unwrap_or_default());
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut changed = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        if let Some(data) = content.strip_prefix("data:")
            && let Ok(mut v) = serde_json::from_str::<Value>(data.trim_start())
            && filter_message(&mut v, allowed)
        {
            changed = true;
            out.push_str("data: ");
            out.push_str(&v.to_string());
            out.push_str(&line[content.len()..]);
            continue;
        }
        out.push_str(line);
    }
    changed.then(|| out.into_bytes())
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

    #[test]
    fn parses_calls_and_filters_lists() {
        let calls = parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_repo","arguments":{"repo":"x"}}}"#).unwrap();
        assert_eq!(calls[0].tool.as_deref(), Some("delete_repo"));
        assert_eq!(
            calls[0].args.as_ref().and_then(|a| a.get("repo")),
            Some(&json!("x"))
        );
        assert!(parse(br#"{"id":1,"method":"x"}"#).is_none());
        assert!(parse(b"[1,2").is_none());

        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read"},{"name":"delete_repo"}]}}"#;
        let out = filter_tools_list(body, false, &mut |n| n != "delete_repo").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"], json!([{"name": "read"}]));
        assert!(filter_tools_list(body, false, &mut |_| true).is_none());

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
}
