//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::sync::Arc;

use aa_core::*;

pub const NOW: i64 = 1_767_614_400_000;

pub fn env() -> Arc<FixedEnv> {
    Arc::new(FixedEnv::new(NOW))
}

pub fn bundle(files: &[(&str, &str)]) -> PolicyBundle {
    PolicyBundle {
        files: files
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect(),
        ..PolicyBundle::default()
    }
}

pub fn compile(files: &[(&str, &str)]) -> CompiledPolicy {
    CompiledPolicy::compile(bundle(files)).unwrap_or_else(|e| panic!("{e}"))
}

pub fn action(json: &str) -> Action {
    Action::from_json(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

pub fn tool(name: &str) -> Action {
    Action::ToolCall {
        tool: name.into(),
        args: Default::default(),
    }
}

/// An allow decision event for tests of the audit chain.
pub fn event(env: &dyn Environment, n: u64) -> AuditEvent {
    AuditEvent {
        id: env.new_id(),
        ts: format_ts(env.now_ms()),
        agent_id: format!("agent-{}", n % 3),
        combined: false,
        session_id: None,
        layer: Layer::Sdk,
        action: Action::ToolCall {
            tool: "search".into(),
            args: serde_json::from_str(&format!(r#"{{"q":"query {n}","n":{n},"price":1.5e-7}}"#))
                .unwrap(),
        },
        decision: Decision {
            effect: Effect::Allow,
            reason: Reason::Permitted,
            message: "permitted by allow-all".into(),
            policy_ids: vec!["allow-all".into()],
            decision_id: env.new_id(),
            budget: None,
            policy_version: Some("0123456789abcdef0123456789abcdef".into()),
            fail_open: false,
        },
        outcome: n.is_multiple_of(2).then_some(Outcome {
            status: OutcomeStatus::Ok,
            duration_us: 1234,
            result_size: Some(99),
            error: None,
            usage: Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
                cost_usd: Some(0.000125),
            }),
        }),
    }
}
