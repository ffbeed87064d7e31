use std::io::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Chain, Signer};
use crate::canonical::write_canonical;
use crate::env::{Environment, format_ts};
use crate::error::AuditError;
use crate::model::{AuditEvent, AuditRecord, Checkpoint};

/// One line of an audit file: a record or a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AuditLine {
    /// `{"checkpoint": {...}}`
    Checkpoint {
        /// The checkpoint.
        checkpoint: Checkpoint,
    },
    /// A chained record.
    Record(Box<AuditRecord>),
}

/// Chains events and writes them as canonical JSON lines to `W`, with a signed checkpoint every
/// `checkpoint_every` records and on [`AuditWriter::finish`].
///
/// Each line goes to `W` in one `write_all`, so with an unbuffered file a process crash never
/// leaves a record half-acknowledged. Durability (fsync) is the caller's: see
/// [`crate::audit::AuditLog`].
pub struct AuditWriter<W: Write> {
    out: W,
    chain: Chain,
    signer: Signer,
    env: Arc<dyn Environment>,
    checkpoint_every: u64,
    since_checkpoint: u64,
    line: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for AuditWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("last_seq", &self.chain.last_seq())
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl<W: Write> AuditWriter<W> {
    /// A writer continuing `chain` (use [`Chain::new`] for a new file).
    pub fn new(
        out: W,
        chain: Chain,
        signer: Signer,
        env: Arc<dyn Environment>,
        checkpoint_every: u64,
    ) -> Self {
        AuditWriter {
            out,
            chain,
            signer,
            env,
            checkpoint_every: checkpoint_every.max(1),
            since_checkpoint: 0,
            line: Vec::with_capacity(1024),
        }
    }

    /// Chains and writes one event; returns its seq and whether a checkpoint followed it.
    pub fn append(&mut self, event: AuditEvent) -> Result<(u64, bool), AuditError> {
        let record = self.chain.link_line(event, &mut self.line)?;
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .map_err(|e| io_err(e, "write"))?;
        self.since_checkpoint += 1;
        let checkpointed = if self.since_checkpoint >= self.checkpoint_every {
            self.checkpoint()?;
            true
        } else {
            false
        };
        Ok((record.seq, checkpointed))
    }

    /// Writes a signed checkpoint for the current head (nothing if no record since the last).
    pub fn checkpoint(&mut self) -> Result<Option<Checkpoint>, AuditError> {
        if self.since_checkpoint == 0 {
            return Ok(None);
        }
        let ts = format_ts(self.env.now_ms());
        let cp = self
            .signer
            .checkpoint(self.chain.last_seq(), self.chain.last_hash(), &ts)?;
        self.line.clear();
        let line = AuditLine::Checkpoint { checkpoint: cp };
        write_canonical(&line, &mut self.line)?;
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .map_err(|e| io_err(e, "write"))?;
        self.since_checkpoint = 0;
        match line {
            AuditLine::Checkpoint { checkpoint } => Ok(Some(checkpoint)),
            AuditLine::Record(_) => Ok(None),
        }
    }

    /// Writes the closing checkpoint and flushes; returns the underlying writer.
    pub fn finish(mut self) -> Result<W, AuditError> {
        self.checkpoint()?;
        self.out.flush().map_err(|e| io_err(e, "flush"))?;
        Ok(self.out)
    }

    /// The chain head.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The underlying writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// The signer's public key, hex.
    pub fn public_key(&self) -> &str {
        self.signer.public_key()
    }
}

fn io_err(e: std::io::Error, what: &str) -> AuditError {
    AuditError::Io {
        path: format!("(audit {what})").into(),
        source: e,
    }
}
