//! The audit writer: a thread that links events into records and appends them in batched
//! (group-committed) transactions, and signs a checkpoint every N records and on shutdown. The
//! chain head is read inside each append's transaction, which holds it: one gateway's writer
//! on SQLite, or the writers of several replicas on PostgreSQL, never race on `seq` and
//! `prev_hash`.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use aa_core::audit::{Chain, Signer};
use aa_core::budget::UsageRow;
use aa_core::{AuditEvent, AuditRecord, Engine, Environment, format_ts};
use tokio::sync::{broadcast, oneshot};

use crate::metrics::Metrics;
use crate::store::{AppendError, Linked, Store, StoreError, UsageWrite};

/// Most events linked into one transaction.
const MAX_BATCH: usize = 5000;

pub use aa_core::wire::Ack;

/// Charges what an ingested event reports to the budgets. The writer calls it for each new
/// (not replayed) event of [`Writer::ingest`] inside the batch's transaction, so the records
/// and the budget counters they charged are stored together. A single gateway charges its
/// ledger (the writer then stores the changed counters); replicas push the amounts to add.
pub type Charger = Box<dyn Fn(&AuditEvent, &mut Vec<UsageRow>) + Send>;

enum Job {
    Append {
        events: Vec<AuditEvent>,
        charge: bool,
        reply: Option<oneshot::Sender<Result<Vec<Ack>, WriterBusy>>>,
    },
    Checkpoint(oneshot::Sender<Result<(), WriterBusy>>),
    Stop(oneshot::Sender<()>),
}

/// Sizes of the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Sign a checkpoint every this many records.
    pub checkpoint_every: u64,
    /// Jobs queued before callers are refused.
    pub queue: usize,
    /// Several replicas share the store: budget counters are written as deltas.
    pub shared: bool,
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    jobs: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

/// Why the writer did not take or commit events: its queue is full, it is gone, or the store
/// (or the chain) failed. Cloned to every job of a failed batch.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WriterBusy {
    /// The queue is full: the caller fails closed or retries.
    #[error("audit writer unavailable: the audit queue is full")]
    QueueFull,
    /// The writer thread stopped.
    #[error("audit writer unavailable: the writer stopped")]
    Stopped,
    /// The store refused the batch (rolled back).
    #[error("audit writer unavailable: {0}")]
    Store(Arc<StoreError>),
    /// A record or checkpoint could not be built.
    #[error("audit writer unavailable: {0}")]
    Audit(Arc<aa_core::AuditError>),
}

impl Writer {
    /// Starts the writer over `store`, continuing its chain.
    pub fn start(
        store: Arc<dyn Store>,
        signer: Signer,
        engine: Arc<Engine>,
        charge: Charger,
        options: WriterOptions,
        metrics: Arc<Metrics>,
        records: broadcast::Sender<Arc<AuditRecord>>,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = sync_channel(options.queue);
        let state = State {
            store,
            shared: options.shared,
            signer,
            env: engine.env().clone(),
            checkpoint_every: options.checkpoint_every.max(1),
            since_checkpoint: 0,
            metrics: metrics.clone(),
            records,
            engine,
            charge,
        };
        std::thread::Builder::new()
            .name("aa-audit-writer".into())
            .spawn(move || state.run(rx))
            .map_err(|e| StoreError(format!("cannot start the audit writer: {e}")))?;
        Ok(Writer { jobs: tx, metrics })
    }

    /// Appends events reported by the layers durably and charges what they report to the
    /// budgets in the same transaction (once: a replayed event is neither stored nor charged
    /// again); resolves once they are committed.
    pub async fn ingest(&self, events: Vec<AuditEvent>) -> Result<Vec<Ack>, WriterBusy> {
        self.append_job(events, true).await
    }

    /// Appends the gateway's own decision records durably (their budgets were charged when
    /// deciding); resolves once they and the budget counters are committed.
    pub async fn append(&self, events: Vec<AuditEvent>) -> Result<Vec<Ack>, WriterBusy> {
        self.append_job(events, false).await
    }

    async fn append_job(
        &self,
        events: Vec<AuditEvent>,
        charge: bool,
    ) -> Result<Vec<Ack>, WriterBusy> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Append {
            events,
            charge,
            reply: Some(tx),
        })?;
        rx.await.map_err(|_| WriterBusy::Stopped)?
    }

    /// Queues one event without waiting for it (decisions made by the gateway). Fails when the
    /// queue is full, so the caller can fail closed.
    pub fn enqueue(&self, event: AuditEvent) -> Result<(), WriterBusy> {
        self.send(Job::Append {
            events: vec![event],
            charge: false,
            reply: None,
        })
    }

    /// Writes a checkpoint now.
    pub async fn checkpoint(&self) -> Result<(), WriterBusy> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Checkpoint(tx))?;
        rx.await.map_err(|_| WriterBusy::Stopped)?
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
            Err(TrySendError::Full(_)) => Err(WriterBusy::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(WriterBusy::Stopped),
        }
    }
}

struct State {
    store: Arc<dyn Store>,
    shared: bool,
    signer: Signer,
    env: Arc<dyn Environment>,
    checkpoint_every: u64,
    since_checkpoint: u64,
    metrics: Arc<Metrics>,
    records: broadcast::Sender<Arc<AuditRecord>>,
    engine: Arc<Engine>,
    charge: Charger,
}

type Reply = Option<oneshot::Sender<Result<Vec<Ack>, WriterBusy>>>;

/// One job of a batch: its events, whether to charge them, and who waits.
type Pending = (Vec<AuditEvent>, bool, Reply);

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
            let mut batch: Vec<Pending> = Vec::new();
            let mut size = 0;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                self.metrics.writer_queue.dec();
                match job {
                    Job::Append {
                        events,
                        charge,
                        reply,
                    } => {
                        size += events.len();
                        batch.push((events, charge, reply));
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
                            if let Job::Append {
                                events,
                                charge,
                                reply,
                            } = job
                            {
                                self.commit(vec![(events, charge, reply)]);
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

    fn checkpoint(&mut self) -> Result<(), WriterBusy> {
        if self.since_checkpoint == 0 {
            return Ok(());
        }
        // The store's head: with replicas it may be past this writer's own last record.
        let (seq, hash) = self.store.head().map_err(|e| {
            self.metrics.store_errors.inc();
            WriterBusy::Store(Arc::new(e))
        })?;
        let cp = self
            .signer
            .checkpoint(seq, &hash, &format_ts(self.env.now_ms()))
            .map_err(|e| WriterBusy::Audit(Arc::new(e)))?;
        self.store.put_checkpoint(&cp).map_err(|e| {
            self.metrics.store_errors.inc();
            WriterBusy::Store(Arc::new(e))
        })?;
        self.since_checkpoint = 0;
        Ok(())
    }

    fn commit(&mut self, batch: Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        match self.link_and_store(&batch) {
            Ok(acks) => {
                for ((_, _, reply), acks) in batch.into_iter().zip(acks) {
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
                for (_, _, reply) in batch {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Links the new events of every job (skipping ids already stored or repeated in the
    /// batch) onto the store's head, appends them in one transaction, and returns each job's
    /// acks.
    fn link_and_store(&mut self, batch: &[Pending]) -> Result<Vec<Vec<Ack>>, WriterBusy> {
        let ids: Vec<&str> = batch
            .iter()
            .flat_map(|(e, _, _)| e.iter().map(|e| e.id.as_str()))
            .collect();
        let mut acks: Vec<Vec<Ack>> = Vec::with_capacity(batch.len());
        // Counters taken from the ledger, handed back if the transaction fails.
        let mut taken: Vec<UsageRow> = Vec::new();
        let (shared, engine, charge) = (self.shared, &self.engine, &self.charge);
        let result = self.store.append_batch(&ids, &mut |(seq, hash), stored| {
            let mut chain = Chain::resume(seq, hash);
            let mut known = stored.clone();
            let mut rows: Vec<(AuditRecord, Vec<u8>)> = Vec::new();
            let mut deltas: Vec<UsageRow> = Vec::new();
            acks.clear();
            for (events, do_charge, _) in batch {
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
                    let record = chain.link_line(event.clone(), &mut line)?;
                    if *do_charge {
                        charge(event, &mut deltas);
                    }
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
            // Every counter charged so far (decisions made before their records were queued,
            // and the events above) is stored with these records.
            let usage = if shared {
                UsageWrite::Delta(merge_deltas(deltas))
            } else {
                taken = engine.ledger().take_changed();
                UsageWrite::Absolute(taken.clone())
            };
            Ok(Linked {
                records: rows,
                usage,
            })
        });
        let linked = match result {
            Ok(linked) => linked,
            Err(e) => {
                self.engine.ledger().mark_changed(&taken);
                return Err(match e {
                    AppendError::Audit(e) => WriterBusy::Audit(Arc::new(e)),
                    AppendError::Store(e) => WriterBusy::Store(Arc::new(e)),
                });
            }
        };
        if let Some((last, _)) = linked.records.last() {
            self.since_checkpoint += linked.records.len() as u64;
            self.metrics
                .audit_seq
                .set(i64::try_from(last.seq).unwrap_or(i64::MAX));
            self.metrics
                .records_appended
                .inc_by(linked.records.len() as u64);
        }
        for (record, _) in linked.records {
            let _ = self.records.send(Arc::new(record));
        }
        Ok(acks)
    }
}

/// One delta per counter and window (a batch of events often charges one counter thousands of
/// times: one row update, not thousands).
fn merge_deltas(deltas: Vec<UsageRow>) -> Vec<UsageRow> {
    let mut merged: std::collections::BTreeMap<(String, String, i64), UsageRow> =
        std::collections::BTreeMap::new();
    for d in deltas {
        match merged.entry((d.budget.clone(), d.key.clone(), d.window_start_ms)) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                let e = e.get_mut();
                e.calls = e.calls.saturating_add(d.calls);
                e.tokens = e.tokens.saturating_add(d.tokens);
                e.cost_micros = e.cost_micros.saturating_add(d.cost_micros);
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(d);
            }
        }
    }
    merged.into_values().collect()
}
