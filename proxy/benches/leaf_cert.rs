#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Minting a new host's leaf certificate, and serving a cached one.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use aa_proxy::ca::{LocalCa, load_or_create};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = load_or_create(dir.path()).unwrap();
    let ca = LocalCa::new(&cert, key, 20_000).unwrap();
    let n = AtomicU64::new(0);
    c.bench_function("leaf/mint-new-host", |b| {
        b.iter(|| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            black_box(ca.server_config(&format!("host-{i}.example.com")).unwrap())
        })
    });
    c.bench_function("leaf/cached-host", |b| {
        b.iter(|| black_box(ca.server_config("host-1.example.com").unwrap()))
    });
    // A fresh CA (same capacity) keeps at least 10,000 distinct hosts.
    let (cert, key) = load_or_create(dir.path()).unwrap();
    let fresh = LocalCa::new(&cert, key, 20_000).unwrap();
    for i in 0..12_000 {
        fresh
            .server_config(&format!("fill-{i}.example.com"))
            .unwrap();
    }
    println!(
        "hosts cached after 12,000 distinct hosts: {}",
        fresh.cached()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
