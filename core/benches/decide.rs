#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
//! Decision latency for policy sets of 10, 100 and 1,000 policies.
//!
//! - criterion: mean time of a full decision (mapping + Cedar + budget check + audit event);
//! - a percentile pass (each call timed alone, 20,000 calls, nearest-rank p50/p99) printed and,
//!   with `AA_BENCH_JSON=FILE`, appended as JSON Lines in the peers' format
//!   (`../shared/bench/summarize.py` merges them with cedarpy and cedar-wasm);
//! - with `AA_PEER_DATA=DIR` (the output of `../shared/bench/cedar_policies.py`), raw
//!   `cedar-policy` on the peers' exact files, as the library baseline.

mod policy_sets;

use std::hint::black_box;
use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aa_core::audit::{AuditSink, AuditWriter, Chain, Signer};
use aa_core::*;
use criterion::{Criterion, criterion_group};

const SIZES: [usize; 3] = [10, 100, 1000];

/// Takes each event (it has been fully built) and counts it.
#[derive(Default)]
struct CountingSink(AtomicU64);

impl AuditSink for CountingSink {
    fn append(&self, event: AuditEvent) -> Result<(), AuditError> {
        black_box(&event);
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Chains each event into an in-memory audit file (JCS + SHA-256), as embedded mode does.
struct ChainSink(std::sync::Mutex<AuditWriter<std::io::Sink>>);

impl AuditSink for ChainSink {
    fn append(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.0.lock().unwrap().append(event).map(|_| ())
    }
}

fn engine(n: usize, slicing: bool, sink: Arc<dyn AuditSink>) -> Engine {
    let bundle = PolicyBundle {
        files: [("set.cedar".to_owned(), policy_sets::policy_text(n))].into(),
        budgets: Some(policy_sets::BUDGETS.to_owned()),
        ..PolicyBundle::default()
    };
    let policy = CompiledPolicy::compile(bundle).unwrap_or_else(|e| panic!("{e}"));
    Engine::with_policy(policy, Arc::new(SystemEnv))
        .slicing(slicing)
        .with_audit(sink)
}

fn request(n: usize) -> (Agent, Action) {
    let (agent, action) = policy_sets::request(n);
    (Agent::new(agent), Action::from_json(&action).unwrap())
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    for n in SIZES {
        let (agent, action) = request(n);
        let e = engine(n, true, Arc::new(CountingSink::default()));
        assert!(
            e.decide(&agent, &action, Layer::Sdk).is_allowed(),
            "the request must be allowed"
        );
        g.bench_function(format!("sliced/{n}"), |b| {
            b.iter(|| e.decide(black_box(&agent), black_box(&action), Layer::Sdk))
        });
        // The decision without its audit event: what building and handing off the event costs
        // is the difference.
        g.bench_function(format!("sliced-no-event/{n}"), |b| {
            b.iter(|| e.evaluate(black_box(&agent), black_box(&action), Layer::Sdk))
        });
        let e = engine(n, false, Arc::new(CountingSink::default()));
        g.bench_function(format!("full-set/{n}"), |b| {
            b.iter(|| e.decide(black_box(&agent), black_box(&action), Layer::Sdk))
        });
    }
    g.finish();
}

fn percentiles(mut ns: Vec<u64>) -> (f64, f64, f64) {
    ns.sort_unstable();
    let rank = |p: usize| ns[(ns.len() * p).div_ceil(100).saturating_sub(1)] as f64 / 1000.0;
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0;
    (rank(50), rank(99), mean)
}

fn measure(iters: usize, mut f: impl FnMut()) -> (f64, f64, f64) {
    for _ in 0..iters / 10 {
        f();
    }
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_nanos() as u64);
    }
    percentiles(samples)
}

fn report(peer: &str, mode: &str, n: usize, (p50, p99, mean): (f64, f64, f64)) {
    println!(
        "{peer:<28} {mode:<22} N={n:<5} p50 {p50:>8.2} µs   p99 {p99:>8.2} µs   mean {mean:>8.2} µs"
    );
    if let Ok(path) = std::env::var("AA_BENCH_JSON") {
        let line = serde_json::json!({
            "peer": peer, "version": env!("CARGO_PKG_VERSION"), "n": n, "mode": mode,
            "p50_us": p50, "p99_us": p99, "mean_us": mean,
        });
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }
}

fn latency_pass() {
    let iters: usize = std::env::var("AA_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    println!("\nper-call latency, {iters} calls each, nearest-rank percentiles");
    for n in SIZES {
        let (agent, action) = request(n);
        let e = engine(n, true, Arc::new(CountingSink::default()));
        report(
            "aa-core",
            "decide",
            n,
            measure(iters, || {
                black_box(e.decide(&agent, &action, Layer::Sdk));
            }),
        );
        let e = engine(n, false, Arc::new(CountingSink::default()));
        report(
            "aa-core",
            "decide-unsliced",
            n,
            measure(iters, || {
                black_box(e.decide(&agent, &action, Layer::Sdk));
            }),
        );
        let signer = Signer::from_seed(&[7; 32]);
        let writer = AuditWriter::new(
            std::io::sink(),
            Chain::new(),
            signer,
            Arc::new(SystemEnv),
            1000,
        );
        let e = engine(n, true, Arc::new(ChainSink(std::sync::Mutex::new(writer))));
        report(
            "aa-core",
            "decide+chained-audit",
            n,
            measure(iters, || {
                black_box(e.decide(&agent, &action, Layer::Sdk));
            }),
        );
        if let Ok(dir) = std::env::var("AA_PEER_DATA") {
            raw_cedar(&dir, n, iters);
        }
    }
}

/// Raw cedar-policy on the peers' exact files: a pre-parsed policy set, the request built from
/// the peers' JSON once, `is_authorized` timed (the floor any Cedar-based engine starts from).
fn raw_cedar(dir: &str, n: usize, iters: usize) {
    use cedar_policy::*;
    let text = std::fs::read_to_string(format!("{dir}/policies_{n}.cedar")).unwrap();
    let req: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/request_{n}.json")).unwrap())
            .unwrap();
    let set = PolicySet::from_str(&text).unwrap();
    let uid = |s: &serde_json::Value| EntityUid::from_str(s.as_str().unwrap()).unwrap();
    let entities = Entities::empty();
    let authorizer = Authorizer::new();
    let build = || {
        let context = Context::from_json_value(req["context"].clone(), None).unwrap();
        Request::new(
            uid(&req["principal_str"]),
            uid(&req["action_str"]),
            uid(&req["resource_str"]),
            context,
            None,
        )
        .unwrap()
    };
    let request = build();
    assert_eq!(
        authorizer
            .is_authorized(&request, &set, &entities)
            .decision(),
        Decision::Allow
    );
    report(
        "cedar-policy (raw, Rust)",
        "prebuilt-request",
        n,
        measure(iters, || {
            black_box(authorizer.is_authorized(&request, &set, &entities));
        }),
    );
    report(
        "cedar-policy (raw, Rust)",
        "request-from-json",
        n,
        measure(iters, || {
            black_box(authorizer.is_authorized(&build(), &set, &entities));
        }),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}

/// `AA_PROFILE_LOOP=N[:CALLS]`: only decide the request of the N-policy set CALLS times
/// (default 200,000), for a profiler (`perf record`, `valgrind --tool=callgrind`).
fn profile_loop(spec: &str) {
    let (n, calls) = spec.split_once(':').unwrap_or((spec, "200000"));
    let (n, calls): (usize, usize) = (n.parse().unwrap(), calls.parse().unwrap());
    let (agent, action) = request(n);
    let e = engine(n, true, Arc::new(CountingSink::default()));
    let t = Instant::now();
    for _ in 0..calls {
        black_box(e.decide(black_box(&agent), black_box(&action), Layer::Sdk));
    }
    println!(
        "N={n}: {calls} decisions, mean {:?}",
        t.elapsed() / calls as u32
    );
}

fn main() {
    if let Ok(spec) = std::env::var("AA_PROFILE_LOOP") {
        return profile_loop(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::var_os("AA_BENCH_NO_LATENCY").is_none() {
        latency_pass();
    }
}
