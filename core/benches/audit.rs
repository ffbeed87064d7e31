#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
//! Audit throughput: appending with hashing (JCS + SHA-256, in memory) and verifying.

use std::hint::black_box;
use std::sync::Arc;

use aa_core::audit::{AuditWriter, Chain, Signer, Verifier, VerifyOptions};
use aa_core::*;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn event(env: &dyn Environment, n: u64) -> AuditEvent {
    let action = Action::from_json(&format!(
        r#"{{"kind":"tool_call","tool":"web_search","args":{{"query":"agent governance {n}","limit":10}}}}"#
    ))
    .unwrap();
    AuditEvent {
        id: env.new_id(),
        ts: format_ts(env.now_ms()),
        agent_id: "research-agent-7".into(),
        combined: false,
        session_id: Some("session-42".into()),
        layer: Layer::Sdk,
        action,
        decision: Decision {
            effect: Effect::Allow,
            reason: Reason::Permitted,
            message: "permitted by allow-all".into(),
            policy_ids: vec!["allow-all".into()],
            decision_id: env.new_id(),
            budget: None,
            policy_version: Some("009d1978184cc87ce022eb2be7c93995".into()),
            fail_open: false,
        },
        outcome: None,
    }
}

const BATCH: u64 = 10_000;

fn bench(c: &mut Criterion) {
    let env: Arc<dyn Environment> = Arc::new(SystemEnv);
    let events: Vec<AuditEvent> = (0..BATCH).map(|n| event(env.as_ref(), n)).collect();

    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("append-with-hashing/10k", |b| {
        b.iter_batched(
            || events.clone(),
            |events| {
                let mut w = AuditWriter::new(
                    Vec::with_capacity(8 << 20),
                    Chain::new(),
                    Signer::from_seed(&[1; 32]),
                    env.clone(),
                    1000,
                );
                for e in events {
                    w.append(e).unwrap();
                }
                black_box(w.finish().unwrap())
            },
            BatchSize::LargeInput,
        )
    });

    let mut w = AuditWriter::new(
        Vec::new(),
        Chain::new(),
        Signer::from_seed(&[1; 32]),
        env.clone(),
        1000,
    );
    for e in events.clone() {
        w.append(e).unwrap();
    }
    let file = w.finish().unwrap();
    assert!(Verifier::verify_bytes(&file, VerifyOptions::default()).ok);
    g.bench_function("verify/10k", |b| {
        b.iter(|| {
            let r = Verifier::verify_bytes(black_box(&file), VerifyOptions::default());
            assert!(r.ok);
            r
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
