//! The launcher's side: put the current process in the agent's cgroup and restrict where it
//! may write with Landlock, then exec the agent.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus,
};

use crate::EbpfError;

/// Moves the calling process into `cgroup` (cgroup v2).
pub fn join_cgroup(cgroup: &Path) -> Result<(), EbpfError> {
    let procs = cgroup.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string())
        .map_err(|e| EbpfError::Cgroup(format!("{}: {e}", procs.display())))
}

/// Refuses io_uring (`EPERM`) to this process and its children: its operations bypass the
/// syscall tracepoints, so a governed agent uses the ordinary, observed syscalls instead.
pub fn refuse_io_uring() -> Result<(), EbpfError> {
    crate::sys::refuse_io_uring().map_err(|e| EbpfError::Unsupported {
        feature: "seccomp filters (to refuse io_uring)".into(),
        detail: e.to_string(),
    })
}

/// Allows writes only beneath `writable` for this process and its children (reads are not
/// restricted). Fails, naming Landlock, when the kernel cannot enforce it fully.
pub fn restrict_writes(writable: &[PathBuf]) -> Result<(), EbpfError> {
    let abi = ABI::V5;
    let write = AccessFs::from_write(abi);
    let landlock = |e: &dyn std::fmt::Display| EbpfError::Unsupported {
        feature: "Landlock".into(),
        detail: e.to_string(),
    };
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(write)
        .map_err(|e| landlock(&e))?
        .create()
        .map_err(|e| landlock(&e))?;
    for dir in writable {
        let fd = PathFd::new(dir).map_err(|e| EbpfError::Io(format!("{}: {e}", dir.display())))?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, write))
            .map_err(|e| landlock(&e))?;
    }
    let status = ruleset.restrict_self().map_err(|e| landlock(&e))?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(landlock(
            &"the ruleset is not fully enforced by this kernel",
        ));
    }
    Ok(())
}
