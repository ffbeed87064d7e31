//! Loads the kernel object and attaches each program on its own, so a program type the kernel
//! refuses is reported by name while the rest keep running.

use std::fs::File;
use std::path::Path;

use aa_ebpf_common::{
    ConnectKey, ConnectRule, FileKey, Offsets, PATH_LEN, PathKey, STAT_EVENTS, STAT_IO_URING,
    STAT_KILLED, STAT_LOST, STAT_REFUSED, STAT_REPEATS,
};
use aya::Ebpf;
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray};
use aya::programs::{CgroupAttachMode, CgroupSockAddr, RawTracePoint, TracePoint, UProbe};
use serde::Serialize;

use crate::EbpfError;
use crate::rules::Compiled;

/// The kernel programs, built by this crate's build script.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/aa-probes"));

/// The kernel's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events written to the ring buffer.
    pub events: u64,
    /// Events lost because the ring buffer was full.
    pub lost: u64,
    /// Execs killed.
    pub killed: u64,
    /// Connects and sends refused.
    pub refused: u64,
    /// io_uring rings created in the cgroup.
    pub io_uring: u64,
    /// Repeated read-only opens counted in the kernel instead of sent.
    pub repeats: u64,
}

/// One program and where it is attached (or why it is not).
#[derive(Debug, Clone, Serialize)]
pub struct ProgramStatus {
    /// Program name in the object.
    pub name: String,
    /// What it hooks (`tracepoint syscalls:sys_enter_execve`, …).
    pub hook: String,
    /// Attached and running.
    pub attached: bool,
    /// Why not, naming the kernel feature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The loaded object with its programs attached.
pub struct Probes {
    bpf: Ebpf,
    /// Per-program status.
    pub programs: Vec<ProgramStatus>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes")
            .field("programs", &self.programs)
            .finish_non_exhaustive()
    }
}

/// The TLS uprobes: program, the symbols it hooks, return probe. `SSL_write_ex` /
/// `SSL_read_ex` are what OpenSSL 3 clients such as Python's `ssl` and Node call.
const TLS_UPROBES: [(&str, &[&str], bool); 5] = [
    ("aa_ssl_write", &["SSL_write", "SSL_write_ex"], false),
    ("aa_ssl_read", &["SSL_read"], false),
    ("aa_ssl_read_ret", &["SSL_read"], true),
    ("aa_ssl_read_ex", &["SSL_read_ex"], false),
    ("aa_ssl_read_ex_ret", &["SSL_read_ex"], true),
];

/// Syscall tracepoints: program and the `syscalls:sys_enter_*` events it is attached to (one
/// program serves the syscalls whose arguments sit in the same slots).
const TRACEPOINTS: [(&str, &[&str]); 12] = [
    ("aa_open", &["sys_enter_open"]),
    ("aa_openat", &["sys_enter_openat"]),
    ("aa_openat2", &["sys_enter_openat2"]),
    (
        "aa_write_path",
        &["sys_enter_creat", "sys_enter_truncate", "sys_enter_mkdir"],
    ),
    ("aa_mkdirat", &["sys_enter_mkdirat"]),
    ("aa_unlink", &["sys_enter_unlink", "sys_enter_rmdir"]),
    ("aa_unlinkat", &["sys_enter_unlinkat"]),
    ("aa_rename", &["sys_enter_rename"]),
    (
        "aa_renameat",
        &["sys_enter_renameat", "sys_enter_renameat2"],
    ),
    ("aa_link", &["sys_enter_link", "sys_enter_symlink"]),
    ("aa_linkat", &["sys_enter_linkat"]),
    ("aa_symlinkat", &["sys_enter_symlinkat"]),
];

/// Why one program was not attached (the others keep running); reported in its status.
#[derive(Debug, thiserror::Error)]
enum AttachError {
    #[error("missing from the object")]
    Missing,
    #[error("{0}")]
    WrongType(aya::programs::ProgramError),
    #[error("{what} refused: {source}")]
    Refused {
        what: String,
        source: aya::programs::ProgramError,
    },
    #[error("{}: {source}", path.display())]
    Cgroup {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("no libssl found (TLS plaintext is not observed)")]
    NoLibssl,
    #[error("kernel structure offsets: {0}")]
    Btf(crate::btf::BtfError),
    #[error("map: {0}")]
    Map(String),
}

fn refused(what: impl Into<String>) -> impl FnOnce(aya::programs::ProgramError) -> AttachError {
    let what = what.into();
    move |source| AttachError::Refused { what, source }
}

fn load_error(e: impl std::fmt::Display) -> EbpfError {
    EbpfError::Load(e.to_string())
}

impl Probes {
    /// Loads the object and attaches: the syscall tracepoints (global, filtered in the kernel
    /// by cgroup id), the libssl uprobes on every `libssl` given, and `cgroup/connect4|6` on
    /// `cgroup`.
    /// `ring_bytes` sizes the ring buffer (a power of two, at least a page; default 16 MiB).
    pub fn attach(
        cgroup: &Path,
        libssl: &[std::path::PathBuf],
        ring_bytes: Option<u32>,
    ) -> Result<Self, EbpfError> {
        if OBJECT.is_empty() {
            return Err(EbpfError::NoKernelObject);
        }
        let mut loader = aya::EbpfLoader::new();
        if let Some(bytes) = ring_bytes {
            if !bytes.is_power_of_two() || bytes < 4096 {
                return Err(EbpfError::Load(format!(
                    "the ring buffer size must be a power of two of at least 4096 bytes, not {bytes}"
                )));
            }
            loader.map_max_entries("EVENTS", bytes);
        }
        let mut bpf = loader.load(OBJECT).map_err(load_error)?;
        let mut programs = Vec::new();
        // Exec: the image that runs, whatever syscall started it. The offsets it reads come
        // from this kernel's BTF and are in place before it is attached.
        let result = (|| -> Result<(), AttachError> {
            let offsets = crate::btf::Btf::from_sys_fs()
                .and_then(|b| b.exec_offsets())
                .map_err(AttachError::Btf)?;
            let map = bpf.map_mut("OFFSETS").ok_or(AttachError::Missing)?;
            let mut m: Array<_, Offsets> =
                Array::try_from(map).map_err(|e| AttachError::Map(e.to_string()))?;
            m.set(0, offsets, 0)
                .map_err(|e| AttachError::Map(e.to_string()))?;
            let p: &mut RawTracePoint = bpf
                .program_mut("aa_exec")
                .ok_or(AttachError::Missing)?
                .try_into()
                .map_err(AttachError::WrongType)?;
            p.load().map_err(refused("raw tracepoint programs"))?;
            p.attach("sched_process_exec")
                .map_err(refused("raw tracepoint sched_process_exec"))?;
            Ok(())
        })();
        programs.push(status(
            "aa_exec",
            "raw_tracepoint sched:sched_process_exec".into(),
            result,
        ));
        let result = (|| -> Result<(), AttachError> {
            let p: &mut TracePoint = bpf
                .program_mut("aa_io_uring")
                .ok_or(AttachError::Missing)?
                .try_into()
                .map_err(AttachError::WrongType)?;
            p.load().map_err(refused("tracepoint programs"))?;
            p.attach("io_uring", "io_uring_create")
                .map_err(refused("tracepoint io_uring_create"))?;
            Ok(())
        })();
        programs.push(status(
            "aa_io_uring",
            "tracepoint io_uring:io_uring_create".into(),
            result,
        ));
        for (name, tps) in TRACEPOINTS {
            let hook = format!("tracepoint syscalls:{}", tps.join("+"));
            let result = (|| -> Result<(), AttachError> {
                let p: &mut TracePoint = bpf
                    .program_mut(name)
                    .ok_or(AttachError::Missing)?
                    .try_into()
                    .map_err(AttachError::WrongType)?;
                p.load().map_err(refused("tracepoint programs"))?;
                for tp in tps {
                    p.attach("syscalls", tp)
                        .map_err(refused(format!("tracepoint {tp}")))?;
                }
                Ok(())
            })();
            programs.push(status(name, hook, result));
        }
        // Connects and addressed sends (UDP sendto/sendmsg), decided, enforced and recorded
        // with the socket's protocol by the cgroup programs.
        for (name, attach) in [
            ("aa_connect4", "connect4"),
            ("aa_connect6", "connect6"),
            ("aa_sendmsg4", "sendmsg4"),
            ("aa_sendmsg6", "sendmsg6"),
        ] {
            let hook = format!("cgroup/{attach} {}", cgroup.display());
            let result = (|| -> Result<(), AttachError> {
                let file = File::open(cgroup).map_err(|source| AttachError::Cgroup {
                    path: cgroup.to_path_buf(),
                    source,
                })?;
                let p: &mut CgroupSockAddr = bpf
                    .program_mut(name)
                    .ok_or(AttachError::Missing)?
                    .try_into()
                    .map_err(AttachError::WrongType)?;
                p.load()
                    .map_err(refused(format!("cgroup/{attach} programs")))?;
                p.attach(file, CgroupAttachMode::Single)
                    .map_err(refused("cgroup-BPF attach"))?;
                Ok(())
            })();
            programs.push(status(name, hook, result));
        }
        for (name, symbols, ret) in TLS_UPROBES {
            let libs = libssl
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let kind = if ret { "uretprobe" } else { "uprobe" };
            let hook = format!("{kind} {} in {libs}", symbols.join("+"));
            let result = (|| -> Result<(), AttachError> {
                let p: &mut UProbe = bpf
                    .program_mut(name)
                    .ok_or(AttachError::Missing)?
                    .try_into()
                    .map_err(AttachError::WrongType)?;
                // Loaded even without a libssl: executables with their own OpenSSL are
                // attached later (`attach_tls_binary`).
                p.load().map_err(refused("uprobe programs"))?;
                if libssl.is_empty() {
                    return Err(AttachError::NoLibssl);
                }
                for lib in libssl {
                    for symbol in symbols {
                        p.attach(
                            *symbol,
                            lib,
                            aya::programs::uprobe::UProbeScope::AllProcesses,
                        )
                        .map_err(refused(format!("uprobe {symbol} in {}", lib.display())))?;
                    }
                }
                Ok(())
            })();
            programs.push(status(name, hook, result));
        }
        Ok(Probes { bpf, programs })
    }

    /// Attaches the TLS uprobes to one more file: an executable that carries its own OpenSSL
    /// and exports its symbols (`node`). They fire in every process that maps the file; the
    /// programs keep the watched cgroups' events only. Returns how many symbols were hooked.
    pub fn attach_tls_binary(&mut self, path: &std::path::Path) -> usize {
        let mut hooked = 0;
        for (name, symbols, _) in TLS_UPROBES {
            let Some(p) = self
                .bpf
                .program_mut(name)
                .and_then(|p| <&mut UProbe>::try_from(p).ok())
            else {
                continue;
            };
            for symbol in symbols {
                match p.attach(
                    *symbol,
                    path,
                    aya::programs::uprobe::UProbeScope::AllProcesses,
                ) {
                    Ok(_) => hooked += 1,
                    Err(e) => {
                        tracing::debug!(%symbol, path = %path.display(), error = %e, "uprobe not attached")
                    }
                }
            }
        }
        hooked
    }

    /// Moves the ring buffer out (the reader thread owns it).
    pub fn take_events(&mut self) -> Result<aya::maps::RingBuf<MapData>, EbpfError> {
        let map = self
            .bpf
            .take_map("EVENTS")
            .ok_or_else(|| load_error("no EVENTS map"))?;
        aya::maps::RingBuf::try_from(map).map_err(load_error)
    }

    /// Observes these cgroup ids (and only these).
    pub fn watch_cgroups(&mut self, ids: &[u64]) -> Result<(), EbpfError> {
        let map = self
            .bpf
            .map_mut("CGROUPS")
            .ok_or_else(|| load_error("no CGROUPS map"))?;
        let mut m: BpfHashMap<_, u64, u32> = BpfHashMap::try_from(map).map_err(load_error)?;
        for id in ids {
            m.insert(id, 1, 0).map_err(load_error)?;
        }
        Ok(())
    }

    /// Replaces the enforcement maps with `compiled`, plus the force-proxy rule.
    pub fn load_rules(&mut self, compiled: &Compiled, force_proxy: bool) -> Result<(), EbpfError> {
        let by_path: std::collections::HashMap<PathKey, u32> = compiled
            .exec_deny
            .iter()
            .map(|(p, r)| (path_key(p), *r))
            .collect();
        self.sync_map("EXEC_DENY", &by_path)?;
        // The same executables by identity: another name, a rename, a hard link or an exec
        // through a file descriptor reach the same inode.
        let by_id: std::collections::HashMap<FileKey, u32> = compiled
            .exec_deny
            .iter()
            .filter_map(|(p, r)| file_key(Path::new(p)).map(|k| (k, *r)))
            .collect();
        self.sync_map("EXEC_DENY_ID", &by_id)?;
        let mut connect: std::collections::HashMap<ConnectKey, ConnectRule> =
            compiled.connect.iter().copied().collect();
        if force_proxy {
            // Every non-loopback destination is refused: egress goes through the proxy.
            connect.insert(
                ConnectKey {
                    addr: [0; 16],
                    port: 0,
                },
                ConnectRule {
                    verdict: aa_ebpf_common::VERDICT_DENY,
                    rule: crate::rules::RULE_FORCE_PROXY,
                },
            );
            for ip in [
                std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ] {
                connect
                    .entry(ConnectKey {
                        addr: crate::rules::key_addr(ip),
                        port: 0,
                    })
                    .or_insert(ConnectRule {
                        verdict: aa_ebpf_common::VERDICT_ALLOW,
                        rule: 0,
                    });
            }
        }
        self.sync_map("CONNECT_RULES", &connect)
    }

    /// Makes the hash map `name` hold exactly `wanted`: stale keys removed, the rest written.
    fn sync_map<K, V>(
        &mut self,
        name: &str,
        wanted: &std::collections::HashMap<K, V>,
    ) -> Result<(), EbpfError>
    where
        K: aya::Pod + Eq + std::hash::Hash,
        V: aya::Pod,
    {
        let map = self
            .bpf
            .map_mut(name)
            .ok_or_else(|| load_error(format!("no {name} map")))?;
        let mut m: BpfHashMap<_, K, V> = BpfHashMap::try_from(map).map_err(load_error)?;
        let stale: Vec<K> = m
            .keys()
            .flatten()
            .filter(|k| !wanted.contains_key(k))
            .collect();
        for k in stale {
            let _ = m.remove(&k);
        }
        for (k, v) in wanted {
            m.insert(k, v, 0).map_err(load_error)?;
        }
        Ok(())
    }

    /// The kernel's counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, EbpfError> {
        let map = self
            .bpf
            .map("STATS")
            .ok_or_else(|| load_error("no STATS map"))?;
        let stats: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(load_error)?;
        let sum = |i: u32| -> Result<u64, EbpfError> {
            Ok(stats.get(&i, 0).map_err(load_error)?.iter().sum())
        };
        Ok(Counters {
            events: sum(STAT_EVENTS)?,
            lost: sum(STAT_LOST)?,
            killed: sum(STAT_KILLED)?,
            refused: sum(STAT_REFUSED)?,
            io_uring: sum(STAT_IO_URING)?,
            repeats: sum(STAT_REPEATS)?,
        })
    }
}

fn status(name: &str, hook: String, result: Result<(), AttachError>) -> ProgramStatus {
    if let Err(e) = &result {
        tracing::warn!(program = name, %hook, error = %e, "program not attached; the others keep running");
    }
    ProgramStatus {
        name: name.to_owned(),
        hook,
        attached: result.is_ok(),
        // The kernel's reason (errno) is in the error's source: keep the whole chain.
        error: result.err().map(|e| match std::error::Error::source(&e) {
            Some(inner) => match inner.source() {
                Some(root) => format!("{e}: {root}"),
                None => e.to_string(),
            },
            None => e.to_string(),
        }),
    }
}

/// The identity of the file at `path` (symlinks followed) as the kernel sees it: the super
/// block's `dev_t` (major << 20 | minor, not `stat`'s encoding) and the inode number.
pub fn file_key(path: &Path) -> Option<FileKey> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).ok()?;
    let dev = md.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    Some(FileKey {
        dev: (u64::from(major) << 20) | u64::from(minor),
        ino: md.ino(),
    })
}

/// A path as the exec map keys it (zero-padded).
pub fn path_key(path: &str) -> PathKey {
    let mut key = PathKey {
        path: [0; PATH_LEN],
    };
    for (dst, src) in key.path.iter_mut().zip(path.bytes().take(PATH_LEN - 1)) {
        *dst = src;
    }
    key
}
