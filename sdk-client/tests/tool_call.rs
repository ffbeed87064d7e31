#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

//! The Governor's tool-call methods in embedded mode: the action the core builds (redacted,
//! converted), its decision and outcome in the audit file, and the forked child's file name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aa_core::tool_call::{ArgRules, ArgValue, CallEnd, ResultShape};
use aa_sdk_client::{ClientConfig, ConfigInput, Governor};

fn policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies/permissive")
}

fn embedded(dir: &Path) -> Governor {
    let config = ClientConfig::resolve(ConfigInput {
        agent_id: Some("tools".into()),
        policy: Some(policy()),
        mode: Some("embedded".into()),
        audit_file: Some(dir.join("audit.jsonl")),
        spill_dir: Some(dir.join("spill")),
        ..ConfigInput::default()
    })
    .unwrap();
    Governor::start(config).unwrap()
}

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("checkpoint").is_none())
        .collect()
}

#[test]
fn a_tool_call_is_decided_and_its_outcome_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let g = embedded(dir.path());
    let rules = ArgRules::new(["ssn"]);
    let args = vec![
        ("cmd".to_owned(), ArgValue::Str("ls -l".into())),
        ("ssn".to_owned(), ArgValue::Str("123".into())),
        ("api_token".to_owned(), ArgValue::Str("t".into())),
        (
            "auth".to_owned(),
            ArgValue::Str("Bearer abcdefghijklmnop0123".into()),
        ),
        ("raw".to_owned(), ArgValue::Bytes(b"a\x00".to_vec())),
    ];
    let (action, decision) = g.decide_tool("shell", args, &rules);
    assert!(decision.is_allowed());
    g.report_tool(
        &action,
        &decision,
        CallEnd::Returned(ResultShape::Text(4)),
        42,
    )
    .unwrap();
    let (denied_action, denied) = g.decide_tool(
        "shell",
        [("cmd".to_owned(), ArgValue::Str("rm -rf /".into()))],
        &rules,
    );
    assert!(!denied.is_allowed());
    assert_eq!(denied.policy_ids, ["no-rm-rf-via-shell"]);
    g.close(Duration::from_secs(5)).unwrap();

    let recs = records(&dir.path().join("audit.jsonl"));
    assert_eq!(recs.len(), 3);
    assert_eq!(
        recs[0]["action"],
        serde_json::json!({"kind": "tool_call", "tool": "shell", "args": {
            "cmd": "ls -l", "ssn": "[redacted]", "api_token": "[redacted]",
            "auth": "[redacted]", "raw": "b'a\\x00'"}})
    );
    assert_eq!(
        recs[1]["outcome"],
        serde_json::json!({"duration_us": 42, "result_size": 4, "status": "ok"})
    );
    assert_eq!(recs[1]["decision"], recs[0]["decision"]);
    assert_eq!(
        recs[2]["action"],
        serde_json::to_value(&denied_action).unwrap()
    );
}

#[test]
fn a_forked_child_writes_its_own_audit_file_in_embedded_mode_only() {
    let dir = tempfile::tempdir().unwrap();
    let g = embedded(dir.path());
    let child = g.config_after_fork(4242);
    assert_eq!(child.audit_file, dir.path().join("audit.jsonl.4242"));
    assert_eq!(child.agent.agent_id, "tools");
    g.close(Duration::from_secs(5)).unwrap();

    // Local mode (nothing listens on the gateway's port): no audit file of its own to rename.
    let local = Governor::start(
        ClientConfig::resolve(ConfigInput {
            agent_id: Some("tools".into()),
            gateway_url: Some("http://127.0.0.1:9".into()),
            token: Some("t".into()),
            spill_dir: Some(dir.path().join("spill")),
            ..ConfigInput::default()
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(local.config().mode, aa_sdk_client::Mode::Local);
    assert_eq!(
        local.config_after_fork(4242).audit_file,
        local.config().audit_file
    );
    let _ = local.close(Duration::from_millis(100));
}
