//! Executables that carry their own OpenSSL: `node` links it statically and exports
//! `SSL_write`, so the libssl uprobes never see its TLS. Every executable started in the
//! watched cgroups (and every one already running there at attach) is checked once; those that
//! export the symbols get the TLS uprobes too.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::loader::Probes;

/// The executables checked so far and those hooked.
#[derive(Debug, Default)]
pub struct TlsBinaries {
    checked: HashSet<PathBuf>,
    /// Hooked executables, for the status.
    pub hooked: Vec<String>,
}

impl TlsBinaries {
    /// Checks `exe` (once) and hooks it when it exports OpenSSL's `SSL_write`.
    pub fn consider(&mut self, probes: &mut Probes, exe: &Path, libssl: &[PathBuf]) {
        if !self.checked.insert(exe.to_path_buf()) || libssl.iter().any(|l| l == exe) {
            return;
        }
        if exports_ssl_write(exe) && probes.attach_tls_binary(exe) > 0 {
            tracing::info!(exe = %exe.display(), "TLS uprobes attached to an executable with its own OpenSSL");
            self.hooked.push(exe.display().to_string());
        }
    }

    /// Checks the executables of the processes already in `cgroups`.
    pub fn scan_running(&mut self, probes: &mut Probes, cgroups: &[PathBuf], libssl: &[PathBuf]) {
        for cg in cgroups {
            let Ok(procs) = std::fs::read_to_string(cg.join("cgroup.procs")) else {
                continue;
            };
            for pid in procs.lines() {
                if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
                    self.consider(probes, &exe, libssl);
                }
            }
        }
    }
}

/// Whether an ELF file defines and exports `SSL_write` (read lazily: only the headers and the
/// dynamic symbol table, not the whole 100 MB of a `node`).
pub fn exports_ssl_write(path: &Path) -> bool {
    use object::{Object, ObjectSymbol};
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let cache = object::ReadCache::new(file);
    let Ok(elf) = object::File::parse(&cache) else {
        return false;
    };
    elf.dynamic_symbols()
        .any(|s| s.is_definition() && s.name() == Ok("SSL_write"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_without_openssl_does_not_export_it() {
        assert!(!exports_ssl_write(Path::new("/bin/true")));
        assert!(!exports_ssl_write(Path::new("/nonexistent")));
        if let Some(lib) = crate::system::libssl_paths().first() {
            assert!(exports_ssl_write(lib), "{}", lib.display());
        }
    }
}
