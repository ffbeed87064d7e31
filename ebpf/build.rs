//! Builds the kernel programs (`probes/`, aya-ebpf) for `bpfel-unknown-none` with Debian's
//! rustc-web toolchain (`rustup toolchain link web /usr`, see scripts/setup.sh) and bpf-linker,
//! and leaves the object in `OUT_DIR/aa-probes` for `include_bytes!`.
//!
//! `AA_BUILD_EBPF=0` (as aya's integration tests do with `AYA_BUILD_INTEGRATION_BPF`) leaves an
//! empty stub object instead, so the other crates check, lint and test on a machine without
//! the BPF toolchain; loading the stub fails with `EbpfError::NoKernelObject`.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let probes = manifest.join("probes");
    for p in ["Cargo.toml", "src", "../common/src", "../common/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", probes.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=AA_BUILD_EBPF");
    if std::env::var("AA_BUILD_EBPF").is_ok_and(|v| matches!(v.as_str(), "0" | "false" | "no")) {
        println!(
            "cargo:warning=AA_BUILD_EBPF=0: aa-ebpf is built with an empty stub kernel object"
        );
        if let Err(e) = std::fs::write(out.join("aa-probes"), []) {
            fail(&format!("cannot write the stub object: {e}"));
        }
        return;
    }
    let target_dir = out.join("probes-target");
    let mut cmd = Command::new("rustup");
    cmd.args([
        "run",
        "web",
        "cargo",
        "build",
        "--release",
        "--target",
        "bpfel-unknown-none",
    ])
    .arg("--manifest-path")
    .arg(probes.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir)
    .env("RUSTC_BOOTSTRAP", "1")
    .env(
        "CARGO_ENCODED_RUSTFLAGS",
        "-Cdebuginfo=2\u{1f}-Clink-arg=--btf",
    );
    // The host build's settings must not leak into the kernel build.
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let host_setting = (k.starts_with("CARGO_") && k != "CARGO_HOME")
            || k.starts_with("RUSTC")
            || k == "RUSTFLAGS"
            || k == "RUSTDOC";
        if host_setting && k != "RUSTC_BOOTSTRAP" && k != "CARGO_ENCODED_RUSTFLAGS" {
            cmd.env_remove(&key);
        }
    }
    // bpf-linker is installed into cargo's bin dir by scripts/setup.sh.
    if let Some(home) = std::env::var_os("CARGO_HOME").or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo").into_os_string())
    }) {
        let bin = PathBuf::from(home).join("bin");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths: Vec<PathBuf> = std::env::split_paths(&path).collect();
        paths.push(bin);
        if let Ok(joined) = std::env::join_paths(paths) {
            cmd.env("PATH", joined);
        }
    }
    let status = cmd.status().unwrap_or_else(|e| {
        fail(&format!("cannot run `rustup run web cargo`: {e}"));
    });
    if !status.success() {
        fail("building the kernel programs failed (see above)");
    }
    let object = target_dir.join("bpfel-unknown-none/release/aa-probes");
    if let Err(e) = std::fs::copy(&object, out.join("aa-probes")) {
        fail(&format!("no kernel object at {}: {e}", object.display()));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!(
        "aa-ebpf: {msg}\n  the kernel programs need Debian's rustc-web linked as the rustup toolchain \
         `web`, libstd-rust-web-dev-bpf and bpf-linker: run scripts/setup.sh \
         (or set AA_BUILD_EBPF=0 to build with an empty stub object that cannot be loaded)"
    );
    std::process::exit(1)
}
