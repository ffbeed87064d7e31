#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use aa_core::audit::*;
use aa_core::*;
use common::*;

fn write_log(path: &std::path::Path, n: u64, checkpoint_every: u64) {
    let env = env();
    let options = AuditLogOptions {
        checkpoint_every,
        ..AuditLogOptions::default()
    };
    let log = AuditLog::open(path, options, env.clone()).unwrap();
    for i in 0..n {
        log.append(event(env.as_ref(), i)).unwrap();
    }
    log.close().unwrap();
}

fn verify(bytes: &[u8]) -> VerifyReport {
    Verifier::verify_bytes(bytes, VerifyOptions::default())
}

/// Byte ranges of each line (without the newline), and whether the line is a record.
fn lines(bytes: &[u8]) -> Vec<(std::ops::Range<usize>, bool)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            out.push((start..i, !bytes[start..i].starts_with(b"{\"checkpoint\"")));
            start = i + 1;
        }
    }
    out
}

#[test]
fn a_written_chain_verifies_and_is_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 25, 10);
    let report = verify(&std::fs::read(&path).unwrap());
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 25);
    assert_eq!(report.checkpoints, 3, "every 10 records and on close");
    assert_eq!(report.sealed_seq, 25);
    // Every line is canonical JSON that parses back into the model.
    for line in std::fs::read_to_string(&path).unwrap().lines() {
        let parsed: AuditLine = serde_json::from_str(line).unwrap();
        if let AuditLine::Record(r) = parsed {
            assert_eq!(aa_core::to_canonical_vec(&*r).unwrap(), line.as_bytes());
        }
    }
}

#[test]
fn every_single_byte_change_in_a_record_is_caught_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 6, 100);
    let original = std::fs::read(&path).unwrap();
    let (range, is_record) = lines(&original)[3].clone(); // the record with seq 4
    assert!(is_record);
    for pos in range {
        for flip in [0x01u8, 0x20] {
            let mut bytes = original.clone();
            bytes[pos] ^= flip;
            if bytes[pos] == b'\n' {
                continue; // splitting the line is a different test (malformed / gap)
            }
            let report = verify(&bytes);
            let failure = report.failure.unwrap_or_else(|| {
                panic!(
                    "byte {pos} ^ {flip:#x} went unnoticed: {}",
                    String::from_utf8_lossy(&bytes)
                )
            });
            assert_eq!(failure.seq, 4, "byte {pos}: {failure:?}");
            assert_eq!(report.records, 3);
        }
    }
}

#[test]
fn deleting_the_last_record_is_caught_by_the_closing_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 5, 100);
    let bytes = std::fs::read(&path).unwrap();
    let ls = lines(&bytes);
    let (last_record, _) = ls[4].clone();
    let mut cut = bytes[..last_record.start].to_vec();
    cut.extend_from_slice(&bytes[last_record.end + 1..]);
    let f = verify(&cut).failure.unwrap();
    assert_eq!(f.kind, FailureKind::MissingRecords);
    assert_eq!(f.seq, 5);
}

#[test]
fn gaps_reorders_and_truncation_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 5, 100);
    let bytes = std::fs::read(&path).unwrap();
    let ls = lines(&bytes);
    let line = |i: usize| bytes[ls[i].0.clone()].to_vec();

    // Deleting a middle record.
    let mut gap = Vec::new();
    for i in [0, 1, 3, 4, 5] {
        gap.extend(line(i));
        gap.push(b'\n');
    }
    let f = verify(&gap).failure.unwrap();
    assert_eq!((f.kind, f.seq), (FailureKind::Gap, 3));

    // Swapping two records.
    let mut swapped = Vec::new();
    for i in [0, 2, 1, 3, 4, 5] {
        swapped.extend(line(i));
        swapped.push(b'\n');
    }
    let f = verify(&swapped).failure.unwrap();
    assert_eq!((f.kind, f.seq), (FailureKind::Gap, 2));

    // A torn last line.
    let torn = &bytes[..bytes.len() - 10];
    let f = verify(torn).failure.unwrap();
    assert_eq!(f.kind, FailureKind::TruncatedTail);

    // Strict mode fails on records after the last checkpoint.
    let unsealed: Vec<u8> = bytes[..ls[4].0.end + 1].to_vec();
    assert!(verify(&unsealed).ok);
    let strict = Verifier::verify_bytes(
        &unsealed,
        VerifyOptions {
            public_key: None,
            strict: true,
        },
    );
    assert_eq!(strict.failure.unwrap().kind, FailureKind::Unsealed);
}

#[test]
fn a_rewritten_chain_signed_by_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    write_log(&a, 3, 100);
    let key_a = std::fs::read_to_string(dir.path().join("a.jsonl.key")).unwrap();
    let signer = Signer::from_seed(&hex::decode(key_a.trim()).unwrap().try_into().unwrap());
    // An attacker rewrites the whole file with their own key: each link is consistent…
    let b = dir.path().join("b.jsonl");
    write_log(&b, 3, 100);
    let bytes = std::fs::read(&b).unwrap();
    assert!(verify(&bytes).ok);
    // …but it is not signed by the key the verifier pins.
    let pinned = VerifyOptions {
        public_key: Some(signer.public_key().to_owned()),
        strict: false,
    };
    let f = Verifier::verify_bytes(&bytes, pinned).failure.unwrap();
    assert_eq!(f.kind, FailureKind::KeyMismatch);
}

#[test]
fn reopening_continues_the_chain_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 4, 100);
    // A crash mid-write leaves half a line.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"action\":{\"kind\":\"tool_");
    std::fs::write(&path, &bytes).unwrap();

    let env = env();
    let log = AuditLog::open(&path, AuditLogOptions::default(), env.clone()).unwrap();
    assert_eq!(log.recovered_bytes(), 24);
    assert_eq!(log.last_seq(), 4);
    log.append(event(env.as_ref(), 9)).unwrap();
    log.close().unwrap();
    let report = verify(&std::fs::read(&path).unwrap());
    assert!(report.ok, "{report:?}");
    assert_eq!((report.records, report.sealed_seq), (5, 5));
}

#[test]
fn a_broken_file_is_not_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 3, 100);
    let mut bytes = std::fs::read(&path).unwrap();
    let pos = bytes.windows(7).position(|w| w == b"query 1").unwrap();
    bytes[pos] = b'Q';
    std::fs::write(&path, &bytes).unwrap();
    match AuditLog::open(&path, AuditLogOptions::default(), env()) {
        Err(AuditError::Broken { detail, .. }) => assert!(detail.contains("seq 2"), "{detail}"),
        other => panic!("expected Broken, got {other:?}"),
    }
}

#[test]
fn the_signing_key_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 1, 100);
    let key = dir.path().join("audit.jsonl.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    match AuditLog::open(&path, AuditLogOptions::default(), env()) {
        Err(AuditError::BadKey { reason, .. }) => assert!(reason.contains("chmod 600")),
        other => panic!("expected BadKey, got {other:?}"),
    }
}

#[test]
fn the_engine_writes_decisions_and_outcomes_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let env = env();
    let log = Arc::new(AuditLog::open(&path, AuditLogOptions::default(), env.clone()).unwrap());
    let engine = Engine::with_policy(
        compile(&[("p.cedar", "permit(principal, action, resource);\n@id(\"no-sh\") forbid(principal, action == Action::\"tool_call\", resource == Tool::\"sh\");")]),
        env.clone(),
    )
    .with_audit(log.clone());
    let agent = Agent::new("a");
    let d = engine.decide(&agent, &tool("search"), Layer::Sdk);
    assert!(d.is_allowed());
    let outcome = Outcome {
        status: OutcomeStatus::Ok,
        duration_us: 5,
        result_size: Some(3),
        error: None,
        usage: None,
    };
    engine
        .report(&agent, &tool("search"), Layer::Sdk, &d, outcome)
        .unwrap();
    assert!(!engine.decide(&agent, &tool("sh"), Layer::Sdk).is_allowed());
    log.close().unwrap();
    // A closed log refuses more, and the engine then fails closed.
    let d = engine.decide(&agent, &tool("search"), Layer::Sdk);
    assert_eq!((d.effect, d.reason), (Effect::Deny, Reason::Unavailable));

    let text = std::fs::read_to_string(&path).unwrap();
    let records: Vec<AuditRecord> = text
        .lines()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    assert!(records[0].outcome.is_none() && records[1].outcome.is_some());
    assert_eq!(
        records[0].decision.decision_id,
        records[1].decision.decision_id
    );
    assert_eq!(records[2].decision.policy_ids, vec!["no-sh".to_owned()]);
    assert!(verify(text.as_bytes()).ok);
}

/// A written file split as a gateway's store keeps it: record lines, and checkpoints apart.
fn split(bytes: &[u8]) -> (Vec<Vec<u8>>, Vec<Checkpoint>) {
    let mut records = Vec::new();
    let mut checkpoints = Vec::new();
    for (range, is_record) in lines(bytes) {
        let line = bytes[range].to_vec();
        if is_record {
            records.push(line);
        } else {
            let l: AuditLine = serde_json::from_slice(&line).unwrap();
            match l {
                AuditLine::Checkpoint { checkpoint } => checkpoints.push(checkpoint),
                AuditLine::Record(_) => unreachable!(),
            }
        }
    }
    (records, checkpoints)
}

fn verify_detached(records: &[Vec<u8>], checkpoints: Vec<Checkpoint>) -> VerifyReport {
    let mut v = Verifier::new(VerifyOptions::default()).with_checkpoints(checkpoints);
    for (i, line) in records.iter().enumerate() {
        v.push_line(line, i as u64 + 1);
    }
    v.finish()
}

#[test]
fn checkpoints_kept_apart_from_the_records_are_checked_as_the_chain_reaches_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 25, 10);
    let (records, mut checkpoints) = split(&std::fs::read(&path).unwrap());
    assert_eq!((records.len(), checkpoints.len()), (25, 3));
    // In any order they are given.
    checkpoints.reverse();
    let report = verify_detached(&records, checkpoints.clone());
    assert!(report.ok, "{report:?}");
    assert_eq!((report.checkpoints, report.sealed_seq), (3, 25));
    // A deleted tail is caught by the checkpoint beyond the last record.
    let report = verify_detached(&records[..24], checkpoints.clone());
    assert!(!report.ok);
    assert_eq!(report.failure.unwrap().kind, FailureKind::MissingRecords);
    // A checkpoint naming another hash is caught.
    let mut forged = checkpoints;
    forged[1].hash = "0".repeat(64);
    let report = verify_detached(&records, forged);
    assert!(!report.ok);
}
