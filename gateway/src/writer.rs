//! The one audit writer: a thread that owns the chain head, links events into records, appends
//! them in batched (group-committed) transactions, and signs a checkpoint every N records and
//! on shutdown. Nothing else writes audit records, so `seq` and `prev_hash` never race.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use aa_core::audit::{Chain, Signer};
use aa_core::{AuditEvent, AuditRecord, Environment, format_ts};
use tokio::sync::{broadcast, oneshot};

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Most events linked into one transaction.
const MAX_BATCH: usize = 5000;

pub use aa_core::wire::Ack;

enum Job {
    Append {
        events: Vec<AuditEvent>,
        reply: Option<oneshot::Sender<Result<Vec<Ack>, String>>>,
    },
    Checkpoint(oneshot::Sender<Result<(), String>>),
    Stop(oneshot::Sender<()>),
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    jobs: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

/// The writer's queue is full or the writer is gone.
#[derive(Debug, thiserror::Error)]
#[error("audit writer unavailable: {0}")]
pub struct WriterBusy(pub String);

impl Writer {
    /// Starts the writer over `store`, continuing its chain.
    pub fn start(
        store: Arc<dyn Store>,
        signer: Signer,
        env: Arc<dyn Environment>,
        checkpoint_every: u64,
        queue: usize,
        metrics: Arc<Metrics>,
        records: broadcast::Sender<Arc<AuditRecord>>,
    ) -> Result<Self, StoreError> {
        let (seq, hash) = store.head()?;
        let (tx, rx) = sync_channel(queue);
        let state = State {
            store,
            chain: Chain::resume(seq, hash),
            signer,
            env,
            checkpoint_every: checkpoint_every.max(1),
            since_checkpoint: 0,
            metrics: metrics.clone(),
            records,
        };
        std::thread::Builder::new()
            .name("aa-audit-writer".into())
            .spawn(move || state.run(rx))
            .map_err(|e| StoreError(format!("cannot start the audit writer: {e}")))?;
        Ok(Writer { jobs: tx, metrics })
    }

    /// Appends `events` durably; resolves once they are committed (or were already stored).
    pub async fn append(&self, events: Vec<AuditEvent>) -> Result<Vec<Ack>, WriterBusy> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Append {
            events,
            reply: Some(tx),
        })?;
        rx.await
            .map_err(|_| WriterBusy("the writer stopped".into()))?
            .map_err(WriterBusy)
    }

    /// Queues one event without waiting for it (decisions made by the gateway). Fails when the
    /// queue is full, so the caller can fail closed.
    pub fn enqueue(&self, event: AuditEvent) -> Result<(), WriterBusy> {
        self.send(Job::Append {
            events: vec![event],
            reply: None,
        })
    }

    /// Writes a checkpoint now.
    pub async fn checkpoint(&self) -> Result<(), WriterBusy> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Checkpoint(tx))?;
        rx.await
            .map_err(|_| WriterBusy("the writer stopped".into()))?
            .map_err(WriterBusy)
    }

    /// Drains the queue, writes the closing checkpoint and stops the thread.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        // A full queue still drains in order before the stop is seen; block for it.
        let jobs = self.jobs.clone();
        let sent = tokio::task::spawn_blocking(move || jobs.send(Job::Stop(tx)).is_ok()).await;
        if matches!(sent, Ok(true)) {
            let _ = rx.await;
        }
    }

    fn send(&self, job: Job) -> Result<(), WriterBusy> {
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.metrics.writer_queue.inc();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(WriterBusy("the audit queue is full".into())),
            Err(TrySendError::Disconnected(_)) => Err(WriterBusy("the writer stopped".into())),
        }
    }
}

struct State {
    store: Arc<dyn Store>,
    chain: Chain,
    signer: Signer,
    env: Arc<dyn Environment>,
    checkpoint_every: u64,
    since_checkpoint: u64,
    metrics: Arc<Metrics>,
    records: broadcast::Sender<Arc<AuditRecord>>,
}

type Reply = Option<oneshot::Sender<Result<Vec<Ack>, String>>>;

impl State {
    fn run(mut self, rx: Receiver<Job>) {
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    self.seal();
                    return;
                }
            };
            // Group commit: take what is already queued, up to a batch.
            let mut batch: Vec<(Vec<AuditEvent>, Reply)> = Vec::new();
            let mut size = 0;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                self.metrics.writer_queue.dec();
                match job {
                    Job::Append { events, reply } => {
                        size += events.len();
                        batch.push((events, reply));
                        if size < MAX_BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                    Job::Checkpoint(reply) => {
                        self.commit(std::mem::take(&mut batch));
                        let _ = reply.send(self.checkpoint());
                        size = 0;
                        next = rx.try_recv().ok();
                    }
                    Job::Stop(reply) => {
                        self.commit(std::mem::take(&mut batch));
                        // Drain what is left, then seal.
                        while let Ok(job) = rx.try_recv() {
                            if let Job::Append { events, reply } = job {
                                self.commit(vec![(events, reply)]);
                            }
                        }
                        self.seal();
                        let _ = reply.send(());
                        return;
                    }
                }
            }
            self.commit(batch);
        }
    }

    fn seal(&mut self) {
        if let Err(e) = self.checkpoint() {
            tracing::error!(error = %e, "closing checkpoint failed");
        }
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        if self.since_checkpoint == 0 {
            return Ok(());
        }
        let cp = self
            .signer
            .checkpoint(
                self.chain.last_seq(),
                self.chain.last_hash(),
                &format_ts(self.env.now_ms()),
            )
            .map_err(|e| e.to_string())?;
        self.store.put_checkpoint(&cp).map_err(|e| {
            self.metrics.store_errors.inc();
            e.to_string()
        })?;
        self.since_checkpoint = 0;
        Ok(())
    }

    fn commit(&mut self, batch: Vec<(Vec<AuditEvent>, Reply)>) {
        if batch.is_empty() {
            return;
        }
        match self.link_and_store(&batch) {
            Ok(acks) => {
                for ((_, reply), acks) in batch.into_iter().zip(acks) {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(acks));
                    }
                }
                if self.since_checkpoint >= self.checkpoint_every
                    && let Err(e) = self.checkpoint()
                {
                    tracing::error!(error = %e, "checkpoint failed");
                }
            }
            Err(e) => {
                self.metrics.store_errors.inc();
                tracing::error!(error = %e, "audit append failed; the batch was not acknowledged");
                // The transaction rolled back: continue from what the store holds.
                match self.store.head() {
                    Ok((seq, hash)) => self.chain = Chain::resume(seq, hash),
                    Err(e) => tracing::error!(error = %e, "cannot re-read the chain head"),
                }
                for (_, reply) in batch {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Links the new events of every job (skipping ids already stored or repeated in the
    /// batch), appends them in one transaction, and returns each job's acks.
    fn link_and_store(
        &mut self,
        batch: &[(Vec<AuditEvent>, Reply)],
    ) -> Result<Vec<Vec<Ack>>, String> {
        let ids: Vec<&str> = batch
            .iter()
            .flat_map(|(e, _)| e.iter().map(|e| e.id.as_str()))
            .collect();
        let mut known: HashMap<String, u64> =
            self.store.seqs_of(&ids).map_err(|e| e.to_string())?;
        let start = self.chain.clone();
        let mut rows: Vec<(AuditRecord, Vec<u8>)> = Vec::new();
        let mut acks = Vec::with_capacity(batch.len());
        for (events, _) in batch {
            let mut job_acks = Vec::with_capacity(events.len());
            for event in events {
                if let Some(seq) = known.get(&event.id) {
                    job_acks.push(Ack {
                        id: event.id.clone(),
                        seq: *seq,
                        duplicate: true,
                    });
                    continue;
                }
                let mut line = Vec::with_capacity(1024);
                let record = match self.chain.link_line(event.clone(), &mut line) {
                    Ok(r) => r,
                    Err(e) => {
                        self.chain = start;
                        return Err(e.to_string());
                    }
                };
                known.insert(record.id.clone(), record.seq);
                job_acks.push(Ack {
                    id: record.id.clone(),
                    seq: record.seq,
                    duplicate: false,
                });
                rows.push((record, line));
            }
            acks.push(job_acks);
        }
        if !rows.is_empty() {
            if let Err(e) = self.store.append(&rows) {
                self.chain = start;
                return Err(e.to_string());
            }
            self.since_checkpoint += rows.len() as u64;
            self.metrics
                .audit_seq
                .set(i64::try_from(self.chain.last_seq()).unwrap_or(i64::MAX));
            self.metrics.records_appended.inc_by(rows.len() as u64);
            for (record, _) in rows {
                let _ = self.records.send(Arc::new(record));
            }
        }
        Ok(acks)
    }
}
