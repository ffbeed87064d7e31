//! Where the CLI's daemons keep their files, found the same way from any working directory.
//!
//! | | root | a user |
//! |---|---|---|
//! | state (pidfile, address, log, spill) | `/run/agent-assembly/<what>` | `$XDG_STATE_HOME/agent-assembly/<what>` (`~/.local/state/…`) |
//! | data (the proxy's CA) | `/var/lib/agent-assembly/<what>` | `$XDG_DATA_HOME/agent-assembly/<what>` (`~/.local/share/…`) |

use std::path::PathBuf;

const APP: &str = "agent-assembly";

/// Whether the process runs with root's effective uid.
pub fn is_root() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    euid == 0
}

/// Runtime state of `what`: gone after a reboot for root, kept per user otherwise.
pub fn state(what: &str) -> PathBuf {
    base(is_root(), "/run", dirs::state_dir()).join(what)
}

/// Long-lived data of `what` (a CA that clients were told to trust).
pub fn data(what: &str) -> PathBuf {
    base(is_root(), "/var/lib", dirs::data_dir()).join(what)
}

fn base(root: bool, system: &str, user: Option<PathBuf>) -> PathBuf {
    match user {
        Some(dir) if !root => dir.join(APP),
        // No home directory (a service account): the working directory, as a last resort.
        None if !root => PathBuf::from(".aa"),
        _ => PathBuf::from(system).join(APP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_uses_system_dirs_and_users_their_own() {
        let home = Some(PathBuf::from("/home/u/.local/state"));
        assert_eq!(
            base(true, "/run", home.clone()),
            PathBuf::from("/run/agent-assembly")
        );
        assert_eq!(
            base(false, "/run", home),
            PathBuf::from("/home/u/.local/state/agent-assembly")
        );
        assert_eq!(base(false, "/run", None), PathBuf::from(".aa"));
    }
}
