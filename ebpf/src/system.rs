//! What the host provides: root, BTF, the cgroup v2 mount, tracefs and bpffs, libssl.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::EbpfError;

/// Checks what every program needs: root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN) and kernel BTF.
pub fn preflight() -> Result<(), EbpfError> {
    if crate::sys::euid() != 0 {
        return Err(EbpfError::NotRoot);
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(EbpfError::Unsupported {
            feature: "kernel BTF (/sys/kernel/btf/vmlinux)".into(),
            detail: "the kernel was built without CONFIG_DEBUG_INFO_BTF".into(),
        });
    }
    mount_if_absent("/sys/kernel/tracing", "tracefs", "tracefs")?;
    mount_if_absent("/sys/fs/bpf", "bpf", "bpf")?;
    Ok(())
}

fn mounts() -> Result<String, EbpfError> {
    std::fs::read_to_string("/proc/mounts").map_err(|e| EbpfError::Io(format!("/proc/mounts: {e}")))
}

fn mount_if_absent(dir: &str, fstype: &str, source: &str) -> Result<(), EbpfError> {
    let mounted = mounts()?.lines().any(|l| {
        l.split_whitespace().nth(1) == Some(dir) && l.split_whitespace().nth(2) == Some(fstype)
    });
    if mounted {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", fstype, source, dir])
        .status()
        .map_err(|e| EbpfError::Io(format!("mount {fstype} on {dir}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(EbpfError::Io(format!(
            "mount -t {fstype} {source} {dir} failed"
        )))
    }
}

/// The cgroup v2 mount point, read from /proc/mounts (hybrid hosts mount it at
/// `/sys/fs/cgroup/unified`, unified hosts at `/sys/fs/cgroup`).
pub fn cgroup2_mount() -> Result<PathBuf, EbpfError> {
    mounts()?
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let (_src, dir, fstype) = (f.next()?, f.next()?, f.next()?);
            (fstype == "cgroup2").then(|| PathBuf::from(dir))
        })
        .ok_or_else(|| EbpfError::Unsupported {
            feature: "cgroup v2".into(),
            detail: "no cgroup2 file system in /proc/mounts".into(),
        })
}

/// The kernel's id of a cgroup v2 directory (its inode number, what
/// `bpf_get_current_cgroup_id` returns).
pub fn cgroup_id(dir: &Path) -> Result<u64, EbpfError> {
    let meta =
        std::fs::metadata(dir).map_err(|e| EbpfError::Cgroup(format!("{}: {e}", dir.display())))?;
    if !dir.join("cgroup.procs").exists() {
        return Err(EbpfError::Cgroup(format!(
            "{} is not a cgroup v2 directory (no cgroup.procs)",
            dir.display()
        )));
    }
    Ok(meta.ino())
}

/// Every cgroup directory at or below `dir` (programs scope by id, so sub-cgroups are added).
pub fn cgroup_tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while let Some(d) = out.get(i).cloned() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

/// libssl shared objects to probe (OpenSSL 3 and 1.1 where present).
pub fn libssl_paths() -> Vec<PathBuf> {
    const CANDIDATES: [&str; 4] = [
        "/usr/lib/x86_64-linux-gnu/libssl.so.3",
        "/usr/lib/aarch64-linux-gnu/libssl.so.3",
        "/usr/lib/x86_64-linux-gnu/libssl.so.1.1",
        "/usr/lib64/libssl.so.3",
    ];
    CANDIDATES
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
}
