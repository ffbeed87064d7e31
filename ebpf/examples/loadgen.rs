//! Load for the eBPF overhead benchmark (`bench/ebpf.sh`): an exec loop, an open loop, or
//! opens paced at a fixed rate. Prints one JSON line with the wall time.
//!
//! `loadgen exec N` · `loadgen open N` · `loadgen rate PER_SEC SECONDS`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

fn open_close(path: &std::ffi::CStr) {
    let f = std::fs::File::open(path.to_str().unwrap_or("/dev/null"));
    drop(f);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let path = c"/dev/null";
    let start = Instant::now();
    let mut ops = 0u64;
    match mode {
        "exec" => {
            for _ in 0..n {
                let s = std::process::Command::new("/bin/true")
                    .status()
                    .expect("exec /bin/true");
                assert!(s.success());
                ops += 1;
            }
        }
        "open" => {
            for _ in 0..n {
                open_close(path);
                ops += 1;
            }
        }
        "rate" => {
            let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
            let total = n * secs;
            // Paced in 1 ms slices: n/1000 opens, then wait for the next slice.
            let per_slice = (n / 1000).max(1);
            let mut next = Instant::now();
            while ops < total {
                for _ in 0..per_slice {
                    open_close(path);
                    ops += 1;
                }
                next += Duration::from_millis(1);
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
            }
        }
        _ => {
            eprintln!("usage: loadgen exec N | open N | rate PER_SEC SECONDS");
            std::process::exit(2);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"{mode}\",\"ops\":{ops},\"secs\":{secs:.6},\"per_sec\":{:.1}}}",
        ops as f64 / secs
    );
}
