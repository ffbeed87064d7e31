use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{AuditSink, AuditWriter, Chain, Signer, Verifier, VerifyOptions};
use crate::env::Environment;
use crate::error::AuditError;
use crate::model::{AuditEvent, Checkpoint};

/// When the audit file is fsync'd. Every record is handed to the OS in one `write` before the
/// decision returns, so a crash of the process loses nothing in any mode; the policy decides
/// what survives a crash of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// fsync after every record: nothing acknowledged is ever lost; slowest.
    Always,
    /// fsync after every checkpoint and on close (default): a machine crash loses at most the
    /// records since the last checkpoint, and the verifier reports them as unsealed.
    #[default]
    Checkpoint,
    /// Never fsync; leave it to the OS.
    Never,
}

/// Options of [`AuditLog::open`].
#[derive(Debug, Clone)]
pub struct AuditLogOptions {
    /// Records between signed checkpoints (default 1000).
    pub checkpoint_every: u64,
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// The Ed25519 key file (default: the audit file's path with `.key` appended). Created with
    /// mode 0600 if missing.
    pub key_path: Option<PathBuf>,
}

impl Default for AuditLogOptions {
    fn default() -> Self {
        AuditLogOptions {
            checkpoint_every: 1000,
            fsync: FsyncPolicy::Checkpoint,
            key_path: None,
        }
    }
}

/// The append-only local audit file of embedded mode.
pub struct AuditLog {
    path: PathBuf,
    fsync: FsyncPolicy,
    writer: Mutex<Option<AuditWriter<File>>>,
    recovered_bytes: usize,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("fsync", &self.fsync)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Loads the hex Ed25519 seed in `path`, or creates one (mode 0600) if the file is missing.
/// A key file that others can read is refused.
pub fn load_or_create_key(path: &Path) -> Result<Signer, AuditError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let bad = |reason: String| AuditError::BadKey {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)
                .map_err(io(path))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "mode {:o} lets others read the signing key; run chmod 600",
                    mode & 0o777
                )));
            }
            let seed: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("expected 64 hex digits".into()))?;
            Ok(Signer::from_seed(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| bad(format!("no randomness: {e}")))?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io(path))?;
            f.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io(path))?;
            Ok(Signer::from_seed(&seed))
        }
        Err(e) => Err(io(path)(e)),
    }
}

impl AuditLog {
    /// Opens (or creates) the audit file at `path`.
    ///
    /// An existing file is verified first, against the key: a break refuses the open
    /// ([`AuditError::Broken`]), since appending would bury it. A torn last line (a write cut
    /// short by a crash, never acknowledged) is cut off and counted in
    /// [`AuditLog::recovered_bytes`].
    pub fn open(
        path: impl AsRef<Path>,
        options: AuditLogOptions,
        env: Arc<dyn Environment>,
    ) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let key_path = options.key_path.clone().unwrap_or_else(|| {
            let mut p = path.clone().into_os_string();
            p.push(".key");
            p.into()
        });
        let signer = load_or_create_key(&key_path)?;
        let mut chain = Chain::new();
        let mut recovered_bytes = 0;
        match std::fs::read(&path) {
            Ok(bytes) => {
                let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                recovered_bytes = bytes.len() - complete;
                let opts = VerifyOptions {
                    public_key: Some(signer.public_key().to_owned()),
                    strict: false,
                };
                let report =
                    Verifier::verify_bytes(bytes.get(..complete).unwrap_or_default(), opts);
                if let Some(f) = report.failure {
                    return Err(AuditError::Broken {
                        path,
                        detail: f.to_string(),
                    });
                }
                if recovered_bytes > 0 {
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io(&path))?;
                    f.set_len(complete as u64)
                        .and_then(|()| f.sync_all())
                        .map_err(io(&path))?;
                }
                chain = Chain::resume(report.last_seq, report.last_hash);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let writer = AuditWriter::new(file, chain, signer, env, options.checkpoint_every);
        Ok(AuditLog {
            path,
            fsync: options.fsync,
            writer: Mutex::new(Some(writer)),
            recovered_bytes,
        })
    }

    /// Bytes of a torn last line removed at open.
    pub fn recovered_bytes(&self) -> usize {
        self.recovered_bytes
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seq of the last record written.
    pub fn last_seq(&self) -> u64 {
        self.lock().as_ref().map_or(0, |w| w.chain().last_seq())
    }

    /// Hex public key of the checkpoint signer.
    pub fn public_key(&self) -> Option<String> {
        self.lock().as_ref().map(|w| w.public_key().to_owned())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<AuditWriter<File>>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn closed(&self) -> AuditError {
        AuditError::Refused(format!("audit log {} is closed", self.path.display()))
    }

    /// Writes a checkpoint now and fsyncs.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let mut guard = self.lock();
        let w = guard.as_mut().ok_or_else(|| self.closed())?;
        let cp = w.checkpoint()?;
        if self.fsync != FsyncPolicy::Never {
            w.get_mut().sync_data().map_err(io(&self.path))?;
        }
        Ok(cp)
    }

    /// Writes the closing checkpoint, fsyncs and closes. Later appends are refused.
    pub fn close(&self) -> Result<(), AuditError> {
        let Some(w) = self.lock().take() else {
            return Ok(());
        };
        let file = w.finish()?;
        if self.fsync != FsyncPolicy::Never {
            file.sync_all().map_err(io(&self.path))?;
        }
        Ok(())
    }
}

impl AuditSink for AuditLog {
    fn append(&self, event: AuditEvent) -> Result<(), AuditError> {
        let mut guard = self.lock();
        let w = guard.as_mut().ok_or_else(|| self.closed())?;
        let (_, checkpointed) = w.append(event)?;
        let sync = match self.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Checkpoint => checkpointed,
            FsyncPolicy::Never => false,
        };
        if sync {
            w.get_mut().sync_data().map_err(io(&self.path))?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), AuditError> {
        self.checkpoint().map(|_| ())
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        // Best effort: seal the chain. Errors here have nowhere to go; the verifier will
        // report the unsealed tail.
        let _ = self.close();
    }
}
