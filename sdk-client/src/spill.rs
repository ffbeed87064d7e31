//! The spill file: events waiting for the gateway, on disk, in order.
//!
//! Each process appends to its own `<agent>-<pid>-<start>.spill.jsonl` in the spill directory,
//! holding an exclusive lock on it. At start (and whenever the gateway answers again) every
//! spill file of the agent that no live process holds is replayed, oldest first, then removed.
//! A file replayed in part records how far it got in `<file>.done`; a crash mid-replay resends
//! from there, and the gateway drops what it already has (event ids are idempotent).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use aa_core::{AuditError, AuditEvent};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// This process's spill files.
pub(crate) struct Spill {
    dir: PathBuf,
    prefix: String,
    file: Option<(File, PathBuf)>,
    opened: u64,
    /// Events in the file being written.
    pub pending: u64,
    /// Events in this process's closed files, not replayed yet.
    pub sealed: u64,
}

impl Spill {
    pub(crate) fn new(dir: &Path, agent: &str) -> Self {
        Spill {
            dir: dir.to_path_buf(),
            prefix: crate::config::sanitize(agent),
            file: None,
            opened: 0,
            pending: 0,
            sealed: 0,
        }
    }

    /// Appends events (each as one line) and syncs them to disk.
    pub(crate) fn append(&mut self, events: &[AuditEvent]) -> Result<(), AuditError> {
        if events.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
            let millis = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            self.opened += 1;
            let name = format!(
                "{}-{millis:013}-{}-{}.spill.jsonl",
                self.prefix,
                std::process::id(),
                self.opened
            );
            let path = self.dir.join(name);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            f.try_lock()
                .map_err(|e| AuditError::Refused(format!("cannot lock {}: {e}", path.display())))?;
            self.file = Some((f, path));
        }
        let mut buf = Vec::with_capacity(events.len() * 512);
        for e in events {
            serde_json::to_writer(&mut buf, e).map_err(|e| AuditError::Serialize(e.to_string()))?;
            buf.push(b'\n');
        }
        if let Some((f, path)) = self.file.as_mut() {
            f.write_all(&buf)
                .and_then(|()| f.sync_data())
                .map_err(io(path))?;
        }
        self.pending += events.len() as u64;
        Ok(())
    }

    /// Closes the file being written, so it can be replayed like any other.
    pub(crate) fn seal_own(&mut self) {
        if self.file.take().is_some() {
            self.sealed += self.pending;
            self.pending = 0;
        }
    }

    /// Every spill file of this agent, oldest first (names start with the creation time).
    /// Files still held by a live process are skipped by [`replay`].
    pub(crate) fn replayable(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let prefix = format!("{}-", self.prefix);
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".spill.jsonl"))
            })
            .collect();
        files.sort();
        files
    }
}

/// Why a replay stopped (the file stays for the next attempt).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReplayError {
    #[error("spill file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Send(#[from] crate::GatewayError),
}

/// Replays one spill file: `send` gets batches in order; after each accepted batch the progress
/// is saved. Returns the number of events replayed, or the error that stopped the replay (the
/// file stays for the next attempt). Skips files locked by a live process.
pub(crate) fn replay(
    path: &Path,
    batch: usize,
    mut send: impl FnMut(&[AuditEvent]) -> Result<(), crate::GatewayError>,
) -> Result<u64, ReplayError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReplayError::Io { path, source }
    };
    let Ok(file) = OpenOptions::new().read(true).write(true).open(path) else {
        return Ok(0);
    };
    if file.try_lock().is_err() {
        return Ok(0); // another process still writes to it
    }
    let done_path = PathBuf::from(format!("{}.done", path.display()));
    let mut offset: u64 = std::fs::read_to_string(&done_path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let mut reader = BufReader::new(&file);
    reader.seek(SeekFrom::Start(offset)).map_err(io(path))?;
    let mut sent = 0u64;
    let mut events = Vec::with_capacity(batch);
    let mut consumed = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(io(path))?;
        let complete = n > 0 && line.ends_with('\n');
        if complete {
            consumed += n as u64;
            // A line that does not parse was torn by a crash while spilling; it was never
            // acknowledged to anyone. Skip it rather than block the replay.
            if let Ok(e) = serde_json::from_str::<AuditEvent>(&line) {
                events.push(e);
            }
        }
        if events.len() >= batch || (!complete && !events.is_empty()) {
            send(&events)?;
            sent += events.len() as u64;
            offset += consumed;
            consumed = 0;
            events.clear();
            std::fs::write(&done_path, offset.to_string()).map_err(io(&done_path))?;
        }
        if !complete {
            break;
        }
    }
    drop(reader);
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(&done_path);
    Ok(sent)
}
