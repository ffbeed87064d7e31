#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
//! Every example of the wire model round-trips through serde unchanged.

mod common;

use aa_core::*;
use serde_json::{Value, json};

fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
    v: Value,
) {
    let parsed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"));
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        v,
        "re-serialised differs"
    );
    let again: T = serde_json::from_value(serde_json::to_value(&parsed).unwrap()).unwrap();
    assert_eq!(again, parsed);
}

#[test]
fn actions_of_every_kind_roundtrip() {
    for v in [
        json!({"kind": "tool_call", "tool": "search", "args": {"q": "x", "n": 3, "deep": {"a": [1, 2.5, null]}}}),
        json!({"kind": "tool_call", "tool": "noargs"}),
        json!({"kind": "model_call", "provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 20, "tools": ["a"]}),
        json!({"kind": "model_call", "provider": "anthropic", "model": "claude-haiku-4-5"}),
        json!({"kind": "http_request", "method": "GET", "scheme": "https", "host": "example.com", "port": 443, "path": "/?q=1"}),
        json!({"kind": "mcp_call", "server": "github", "method": "tools/call", "tool": "create_issue", "args": {"title": "t"}}),
        json!({"kind": "mcp_call", "server": "github", "method": "tools/list"}),
        json!({"kind": "process_exec", "path": "/bin/sh", "argv": ["sh", "-c", "echo hi\nthere"]}),
        json!({"kind": "file_access", "path": "/tmp/x", "access": "unlink"}),
        json!({"kind": "net_connect", "addr": "2001:db8::1", "port": 443, "proto": "tcp"}),
    ] {
        roundtrip::<Action>(v);
    }
}

#[test]
fn agents_decisions_outcomes_records_roundtrip() {
    roundtrip::<Agent>(
        json!({"agent_id": "a", "team": "t", "session_id": "s", "labels": {"env": "prod"}}),
    );
    roundtrip::<Agent>(json!({"agent_id": "a"}));
    roundtrip::<Decision>(json!({
        "effect": "deny", "reason": "budget_exceeded", "message": "budget `b` exceeded",
        "policy_ids": [], "decision_id": "d1", "budget": "b", "policy_version": "v"
    }));
    roundtrip::<Decision>(json!({
        "effect": "allow", "reason": "unavailable", "message": "m", "policy_ids": [], "decision_id": "d2", "fail_open": true
    }));
    roundtrip::<Outcome>(json!({
        "status": "error", "duration_us": 5, "error": "TimeoutError",
        "usage": {"input_tokens": 1, "output_tokens": 2, "cost_usd": 0.0001}
    }));
    let env = common::env();
    let mut chain = aa_core::audit::Chain::new();
    for n in 0..3 {
        let record = chain.link(common::event(env.as_ref(), n)).unwrap();
        roundtrip::<AuditRecord>(serde_json::to_value(&record).unwrap());
        roundtrip::<AuditEvent>(serde_json::to_value(record.event()).unwrap());
    }
    for layer in ["sdk", "proxy", "ebpf"] {
        roundtrip::<Layer>(json!(layer));
    }
}

/// The hash covers exactly the record minus `hash`: recomputing it from the re-serialised JSON
/// gives the same value, so any language can verify a chain from the JSON alone.
#[test]
fn the_hash_covers_the_record_without_its_hash() {
    use sha2::{Digest, Sha256};
    let env = common::env();
    let mut chain = aa_core::audit::Chain::new();
    let record = chain.link(common::event(env.as_ref(), 2)).unwrap();
    let mut v = serde_json::to_value(&record).unwrap();
    v.as_object_mut().unwrap().remove("hash");
    let mut h = Sha256::new();
    h.update(record.prev_hash.as_bytes());
    h.update(aa_core::to_canonical_vec(&v).unwrap());
    assert_eq!(hex::encode(h.finalize()), record.hash);
    assert_eq!(record.prev_hash, GENESIS_HASH);
}

/// The line `link_line` writes is the record's canonical JSON, with and without the optional
/// members, so the stored line and the hashed body never disagree.
#[test]
fn the_stored_line_is_the_canonical_record() {
    let env = common::env();
    let mut chain = aa_core::audit::Chain::new();
    let mut line = Vec::new();
    for n in 1..=4 {
        let mut event = common::event(env.as_ref(), n);
        if n > 2 {
            event.session_id = Some(format!("s-{n}"));
        }
        if n == 3 {
            let outcome = AuditEvent {
                outcome: Some(ok_outcome()),
                ..event.clone()
            };
            assert!(event.combine(outcome).is_none());
        }
        let record = chain.link_line(event, &mut line).unwrap();
        assert_eq!(
            line,
            aa_core::to_canonical_vec(&record).unwrap(),
            "record {n}"
        );
        let back: aa_core::AuditRecord = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, record);
    }
}

#[test]
fn an_outcome_combines_only_with_its_own_allowed_decision() {
    let env = common::env();
    let decision = common::event(env.as_ref(), 1);
    assert!(decision.outcome.is_none());
    let outcome = |e: &AuditEvent| AuditEvent {
        id: "later".into(),
        outcome: Some(ok_outcome()),
        ..e.clone()
    };
    assert!(decision.counts_call() && decision.records_decision());

    // Another decision, another action, no outcome, or a second outcome: kept apart.
    let mut other = outcome(&decision);
    other.decision.decision_id = "another".into();
    assert!(decision.clone().combine(other).is_some());
    let mut other = outcome(&decision);
    other.action = aa_core::Action::from_json(r#"{"kind":"tool_call","tool":"x"}"#).unwrap();
    assert!(decision.clone().combine(other).is_some());
    assert!(decision.clone().combine(decision.clone()).is_some());
    let mut denied = decision.clone();
    denied.decision.effect = aa_core::Effect::Deny;
    assert!(denied.clone().combine(outcome(&denied)).is_some());

    let alone = outcome(&decision);
    assert!(!alone.records_decision() && !alone.counts_call());
    let mut combined = decision.clone();
    assert!(combined.combine(outcome(&decision)).is_none());
    assert!(combined.combined && combined.records_decision() && combined.counts_call());
    assert_eq!(combined.id, decision.id, "the decision's id and time stay");
    assert!(combined.outcome.is_some());
    assert!(combined.clone().combine(outcome(&decision)).is_some());
    let json = serde_json::to_string(&combined).unwrap();
    assert!(json.contains(r#""combined":true"#), "{json}");
    assert!(
        !serde_json::to_string(&decision)
            .unwrap()
            .contains("combined")
    );
}

fn ok_outcome() -> Outcome {
    Outcome {
        duration_us: 7,
        error: None,
        result_size: Some(2),
        status: OutcomeStatus::Ok,
        usage: None,
    }
}
