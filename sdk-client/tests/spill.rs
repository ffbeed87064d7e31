#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use aa_core::*;

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        action: Action::ToolCall {
            tool: "step".into(),
            args: serde_json::from_str(&format!(r#"{{"i":{i}}}"#)).unwrap(),
        },
        agent_id: "phoenix".into(),
        combined: false,
        decision: Decision {
            budget: None,
            decision_id: format!("d{i}"),
            effect: Effect::Allow,
            fail_open: true,
            message: "m".into(),
            policy_ids: vec![],
            policy_version: None,
            reason: Reason::Unavailable,
        },
        id: format!("e{i}"),
        layer: Layer::Sdk,
        outcome: Some(Outcome {
            duration_us: 1,
            error: None,
            result_size: None,
            status: OutcomeStatus::Ok,
            usage: None,
        }),
        session_id: None,
        ts: "2026-01-05T12:00:00.000Z".into(),
    }
}

#[test]
fn spilled_events_parse_back() {
    let e = event(1);
    let text = serde_json::to_string(&e).unwrap();
    let back: AuditEvent = serde_json::from_str(&format!("{text}\n")).unwrap();
    assert_eq!(back, e);
}
