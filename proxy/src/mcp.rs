//! MCP over streamable HTTP: JSON-RPC `tools/call` requests become `mcp_call` actions (a deny is
//! answered as a JSON-RPC error), and `tools/list` results are filtered to the tools the policy
//! lets this agent call. The parsing is [`aa_inspect::mcp`]'s.

use aa_inspect::mcp::{ErrorObject, error_response};
use serde_json::{Value, json};

/// The JSON-RPC error code of a request Agent Assembly denied.
const DENIED: i64 = -32003;

/// The JSON-RPC error answering a denied request.
pub(crate) fn denial(
    id: &Value,
    reason: &str,
    message: &str,
    decision_id: &str,
    policy_ids: &[String],
) -> Value {
    error_response(
        id,
        &ErrorObject {
            code: DENIED,
            message: format!("denied by Agent Assembly ({reason}): {message}"),
            data: Some(
                json!({ "reason": reason, "decision_id": decision_id, "policy_ids": policy_ids }),
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_is_a_json_rpc_error_naming_the_decision() {
        let d = denial(&json!(7), "forbidden", "no", "d-1", &["p".to_owned()]);
        assert_eq!(
            d,
            json!({
                "jsonrpc": "2.0",
                "id": 7,
                "error": {
                    "code": -32003,
                    "message": "denied by Agent Assembly (forbidden): no",
                    "data": { "reason": "forbidden", "decision_id": "d-1", "policy_ids": ["p"] },
                }
            })
        );
    }
}
