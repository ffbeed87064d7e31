//! # aa-ebpf
//!
//! The kernel layer of Agent Assembly. It loads the probes of `ebpf/probes` (aya), scoped to an
//! agent's cgroup v2: `execve` (path, argv), `openat` (path, read or write), `unlinkat`,
//! `connect` (IPv4, IPv6) and TLS plaintext from libssl `SSL_write`/`SSL_read`. Events cross a
//! BPF ring buffer (a full buffer is counted, never silent), become aa-core actions, are decided
//! against the policy and recorded as `layer: ebpf` audit records. Enforcement in the kernel:
//! `cgroup/connect4|6` refuse forbidden connects, a forbidden exec is killed from the exec
//! tracepoint; the launcher adds a Landlock write ruleset.

pub mod btf;
pub mod bypass;
mod event;
mod layer;
mod loader;
pub mod rules;
pub mod sandbox;
mod sys;
pub mod system;
mod tls_binaries;

pub use bypass::{Bypass, EgressWatch, OnBypass};
pub use event::{KernelEvent, Observed, Translator, decode};
pub use layer::{AttachOptions, STATUS_DIR, Status, Summary, read_statuses, run};
pub use loader::{Probes, ProgramStatus};

/// Why the layer cannot attach or run.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// Loading programs needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN).
    #[error("the eBPF layer needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN); run it with sudo")]
    NotRoot,
    /// The kernel lacks a feature.
    #[error("this kernel does not support {feature}: {detail}")]
    Unsupported {
        /// The feature, by name.
        feature: String,
        /// What the kernel said.
        detail: String,
    },
    /// The cgroup path.
    #[error("cgroup: {0}")]
    Cgroup(String),
    /// This build carries the empty stub object (`AA_BUILD_EBPF=0`), not the kernel programs.
    #[error(
        "this aasm was built without the kernel programs (AA_BUILD_EBPF=0); rebuild it with the BPF toolchain (scripts/setup.sh)"
    )]
    NoKernelObject,
    /// Loading the object or using its maps.
    #[error("loading the kernel programs: {0}")]
    Load(String),
    /// Files and threads.
    #[error("{0}")]
    Io(String),
    /// The decision client.
    #[error(transparent)]
    Client(#[from] aa_sdk_client::ClientError),
}
