//! The running layer: a reader thread drains the ring buffer; the caller's thread turns events
//! into actions, decides them against the policy, records them as `layer: ebpf` audit records
//! (to the gateway in batches, or to a local audit file), recompiles the enforcement maps when
//! the policy changes, and writes a status file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aa_core::{Agent, Decision, Effect, Layer, Reason};
use aa_sdk_client::{ClientConfig, ConfigInput, Governor, Mode};
use serde::Serialize;

use crate::bypass::EgressWatch;
use crate::event::{KernelEvent, Observed, Translator, decode};
use crate::loader::{Probes, ProgramStatus};
use crate::rules::{self, Compiled};
use crate::tls_binaries::TlsBinaries;
use crate::{EbpfError, system};

/// How to attach.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// The agent's cgroup v2 directory.
    pub cgroup: PathBuf,
    /// Gateway or policy directory, agent id, token, audit file (as for every layer).
    pub client: ConfigInput,
    /// Refuse every non-loopback connect (egress must use the proxy on loopback).
    pub force_proxy: bool,
    /// Where the status is written (for `aasm ebpf status`).
    pub status_file: PathBuf,
    /// Ring buffer size in bytes (power of two); `None` = 16 MiB.
    pub ring_bytes: Option<u32>,
    /// Egress that must go through known endpoints: anything else is recorded as a bypass.
    pub egress: Option<EgressWatch>,
}

/// Default directory of status files.
pub const STATUS_DIR: &str = "/run/agent-assembly/ebpf";

/// What `aasm ebpf status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Process id of the attached loader.
    pub pid: u32,
    /// The cgroup directory.
    pub cgroup: String,
    /// Agent id the records carry.
    pub agent_id: String,
    /// Programs and their attach state.
    pub programs: Vec<ProgramStatus>,
    /// Events the kernel wrote to the ring buffer.
    pub events: u64,
    /// Events per second over the last interval.
    pub events_per_sec: f64,
    /// Events lost because the ring buffer was full.
    pub lost: u64,
    /// Execs killed in the kernel.
    pub killed: u64,
    /// Connects and sends refused in the kernel.
    pub refused: u64,
    /// io_uring rings created in the cgroup: their operations are not observed (the launcher
    /// refuses io_uring; a ring here comes from a process that joined the cgroup another way).
    pub io_uring_rings: u64,
    /// Filtered in the kernel: read-only opens of a path the same process opened read-only
    /// less than a second before, counted instead of sent (writes, unlinks, execs, connects
    /// are never filtered).
    pub repeats_filtered: u64,
    /// Events decided and recorded.
    pub recorded: u64,
    /// Connects and sends that went around the proxy (with an egress watch).
    pub bypasses: u64,
    /// Records that could not be written (the client spills; this counts hard failures).
    pub record_errors: u64,
    /// Events waiting for a decision.
    pub backlog: u64,
    /// Policy version the maps were compiled from.
    pub policy_version: Option<String>,
    /// Exec paths the kernel kills.
    pub exec_rules: usize,
    /// Connect rule entries.
    pub connect_rules: usize,
    /// What the maps could not express.
    pub notes: Vec<String>,
    /// Executables with their own OpenSSL (node) whose TLS the uprobes also see.
    pub tls_binaries: Vec<String>,
    /// Delivery state of the records.
    pub shipped: u64,
    /// Records spilled to disk while the gateway is unreachable.
    pub spilled: u64,
    /// Records waiting in memory for delivery.
    pub queued: u64,
    /// Records the gateway refused for good (kept beside the spill file).
    pub rejected: u64,
    /// The last delivery error.
    pub last_error: Option<String>,
}

impl Status {
    /// Copies the kernel's counters (events, lost, killed, refused).
    fn read_counters(&mut self, probes: &Probes) {
        if let Ok(c) = probes.counters() {
            (self.events, self.lost) = (c.events, c.lost);
            (self.killed, self.refused) = (c.killed, c.refused);
            self.io_uring_rings = c.io_uring;
            self.repeats_filtered = c.repeats;
        }
    }

    /// Copies the delivery state of the records.
    fn read_delivery(&mut self, governor: &Governor) {
        let s = governor.stats();
        (self.shipped, self.spilled, self.queued) = (s.shipped, s.spilled, s.queued);
        (self.rejected, self.last_error) = (s.rejected, s.last_error);
    }
}

/// Final counters, returned when the layer stops.
pub type Summary = Status;

/// Attaches, runs until `stop` is set, detaches. `on_ready` sees the first status.
pub fn run(
    options: AttachOptions,
    stop: Arc<AtomicBool>,
    on_ready: impl FnOnce(&Status),
) -> Result<Summary, EbpfError> {
    system::preflight()?;
    let cgroup = std::fs::canonicalize(&options.cgroup)
        .map_err(|e| EbpfError::Cgroup(format!("{}: {e}", options.cgroup.display())))?;
    system::cgroup_id(&cgroup)?;
    let mut config = ClientConfig::resolve(options.client.clone())?;
    config.layer = Layer::Ebpf;
    if config.mode == Mode::Remote {
        // Kernel events are decided locally against the gateway's policy (and shipped).
        config.mode = Mode::Local;
    }
    let agent = config.agent.clone();
    let governor = Governor::start(config)?;

    let libssl = system::libssl_paths();
    let mut probes = Probes::attach(&cgroup, &libssl, options.ring_bytes)?;
    let mut watched = watch_tree(&mut probes, &cgroup, &[])?;
    let mut tls = TlsBinaries::default();
    tls.scan_running(&mut probes, &system::cgroup_tree(&cgroup), &libssl);
    let mut compiled = compile(&governor, &agent);
    probes.load_rules(&compiled, options.force_proxy)?;
    let mut version = governor.engine().policy_version();

    let ring = probes.take_events()?;
    let backlog = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<KernelEvent>();
    let reader = {
        let stop = stop.clone();
        let backlog = backlog.clone();
        std::thread::Builder::new()
            .name("aa-ebpf-ring".into())
            .spawn(move || read_ring(ring, tx, &stop, &backlog))
            .map_err(|e| EbpfError::Io(e.to_string()))?
    };

    let mut translator = Translator::default();
    let mut status = Status {
        pid: std::process::id(),
        cgroup: cgroup.display().to_string(),
        agent_id: agent.agent_id.clone(),
        programs: probes.programs.clone(),
        events: 0,
        events_per_sec: 0.0,
        lost: 0,
        killed: 0,
        refused: 0,
        io_uring_rings: 0,
        repeats_filtered: 0,
        recorded: 0,
        bypasses: 0,
        record_errors: 0,
        backlog: 0,
        policy_version: version.clone(),
        exec_rules: compiled.exec_deny.len(),
        connect_rules: compiled.connect.len(),
        notes: compiled.notes.clone(),
        tls_binaries: Vec::new(),
        shipped: 0,
        spilled: 0,
        queued: 0,
        rejected: 0,
        last_error: None,
    };
    write_status(&options.status_file, &status);
    on_ready(&status);

    let mut last_tick = Instant::now();
    let mut last_events = 0u64;
    let mut reported_lost = 0u64;
    let mut reported_rings = 0u64;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(first) => {
                // Drain what is queued, but look at the clock at least every 100 ms.
                let drain_until = Instant::now() + Duration::from_millis(100);
                let mut next = Some(first);
                while let Some(event) = next {
                    backlog.fetch_sub(1, Ordering::Relaxed);
                    handle(
                        &governor,
                        &agent,
                        &compiled,
                        options.egress.as_ref(),
                        &mut translator,
                        &event,
                        &mut status,
                    );
                    if let Observed::Exec { path, .. } = &event.observed
                        && !event.enforced
                    {
                        tls.consider(&mut probes, Path::new(path), &libssl);
                    }
                    next = (Instant::now() < drain_until)
                        .then(|| rx.try_recv().ok())
                        .flatten();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= Duration::from_secs(1) || stop.load(Ordering::Relaxed) {
            let elapsed = last_tick.elapsed().as_secs_f64();
            last_tick = Instant::now();
            status.read_counters(&probes);
            status.events_per_sec = (status.events - last_events) as f64 / elapsed.max(1e-3);
            last_events = status.events;
            if status.lost > reported_lost {
                tracing::warn!(
                    lost = status.lost - reported_lost,
                    total = status.lost,
                    "ring buffer full: kernel events were lost"
                );
                reported_lost = status.lost;
            }
            if status.io_uring_rings > reported_rings {
                tracing::warn!(
                    rings = status.io_uring_rings,
                    "an io_uring ring was created in the cgroup: its file operations are not \
                     observed (start agents with `aasm ebpf exec`, which refuses io_uring)"
                );
                reported_rings = status.io_uring_rings;
            }
            let now = governor.engine().policy_version();
            if now != version {
                compiled = compile(&governor, &agent);
                match probes.load_rules(&compiled, options.force_proxy) {
                    Ok(()) => tracing::info!(version = ?now, "enforcement maps recompiled"),
                    Err(e) => tracing::error!(error = %e, "enforcement maps not updated"),
                }
                version = now;
                status.policy_version = version.clone();
                status.exec_rules = compiled.exec_deny.len();
                status.connect_rules = compiled.connect.len();
                status.notes = compiled.notes.clone();
            }
            watched = watch_tree(&mut probes, &cgroup, &watched)?;
            status.tls_binaries.clone_from(&tls.hooked);
            status.read_delivery(&governor);
            status.backlog = backlog.load(Ordering::Relaxed);
            write_status(&options.status_file, &status);
            if stop.load(Ordering::Relaxed) && status.backlog == 0 {
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    // Events that arrived while stopping are still recorded.
    while let Ok(event) = rx.try_recv() {
        handle(
            &governor,
            &agent,
            &compiled,
            options.egress.as_ref(),
            &mut translator,
            &event,
            &mut status,
        );
    }
    status.read_counters(&probes);
    governor.close(Duration::from_secs(10))?;
    status.read_delivery(&governor);
    let _ = std::fs::remove_file(&options.status_file);
    Ok(status)
}

fn compile(governor: &Governor, agent: &Agent) -> Compiled {
    let policy = governor.engine().policy();
    let literals = rules::literals(policy.as_deref());
    rules::compile(
        rules::previewer(governor, agent),
        &literals,
        policy.as_deref(),
    )
}

/// Adds the ids of new sub-cgroups to the watch list.
fn watch_tree(probes: &mut Probes, cgroup: &Path, known: &[u64]) -> Result<Vec<u64>, EbpfError> {
    let ids: Vec<u64> = system::cgroup_tree(cgroup)
        .iter()
        .filter_map(|d| system::cgroup_id(d).ok())
        .collect();
    let new: Vec<u64> = ids.iter().copied().filter(|i| !known.contains(i)).collect();
    if !new.is_empty() {
        probes.watch_cgroups(&new)?;
    }
    Ok(ids)
}

fn read_ring(
    mut ring: aya::maps::RingBuf<aya::maps::MapData>,
    tx: mpsc::Sender<KernelEvent>,
    stop: &AtomicBool,
    backlog: &AtomicU64,
) {
    use std::os::fd::AsRawFd;
    let fd = ring.as_raw_fd();
    loop {
        while let Some(item) = ring.next() {
            if let Some(event) = decode(&item) {
                backlog.fetch_add(1, Ordering::Relaxed);
                if tx.send(event).is_err() {
                    return;
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // The probes wake this thread only when the ring is a quarter full: poll often.
        crate::sys::wait_readable(fd, 10);
    }
}

/// Decides and records one event (and, under an egress watch, a bypass it reveals).
fn handle(
    governor: &Governor,
    agent: &Agent,
    compiled: &Compiled,
    egress: Option<&EgressWatch>,
    translator: &mut Translator,
    event: &KernelEvent,
    status: &mut Status,
) {
    let Some(action) = translator.action(event) else {
        return;
    };
    let mut decision = governor.preview_as(agent, &action, Layer::Ebpf);
    annotate(&mut decision, event, compiled);
    let mut record =
        |decision: &Decision| match governor.record_as(agent, &action, Layer::Ebpf, decision) {
            Ok(()) => status.recorded += 1,
            Err(e) => {
                status.record_errors += 1;
                tracing::error!(error = %e, "kernel event not recorded");
            }
        };
    record(&decision);
    // A refused connect never left: only traffic that went out can be a bypass.
    if let (Some(watch), Observed::Connect { ip, port, proto }, false) =
        (egress, &event.observed, event.enforced)
        && !watch.accounts_for(*ip, *port)
    {
        let (flagged, bypass) = watch.respond(
            event.pid,
            std::net::SocketAddr::new(*ip, *port),
            *proto,
            &decision,
        );
        tracing::warn!(pid = bypass.pid, dest = %bypass.dest, killed = bypass.killed, "egress bypassed the proxy");
        record(&flagged);
        status.bypasses += 1;
    }
}

/// Says in the record what the kernel did.
fn annotate(decision: &mut Decision, event: &KernelEvent, compiled: &Compiled) {
    let what = match event.observed {
        Observed::Exec { .. } => "exec killed in the kernel (bpf_send_signal SIGKILL)",
        Observed::Connect { .. } => {
            "connect or send refused in the kernel (cgroup/connect|sendmsg, EPERM)"
        }
        _ => "stopped in the kernel",
    };
    if event.enforced {
        let rule = compiled.rule_name(event.rule).to_owned();
        if decision.effect != Effect::Deny {
            // The map was compiled from an older policy: the action was still stopped.
            decision.effect = Effect::Deny;
            decision.reason = Reason::Forbidden;
            decision.policy_ids = vec![rule.clone()];
        }
        decision.message = format!("{what} by rule {rule}: {}", decision.message);
    } else if decision.effect == Effect::Deny {
        decision.message = format!(
            "observed by the kernel layer; its maps do not stop this (audit only, unless the \
             launcher's Landlock ruleset refused it): {}",
            decision.message
        );
    }
}

/// Writes the status atomically (0644; it holds no secret).
fn write_status(path: &Path, status: &Status) {
    let Ok(json) = serde_json::to_vec_pretty(status) else {
        return;
    };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, json).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// Reads the status files in `dir` whose loader is still running.
pub fn read_statuses(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let alive = v
            .get("pid")
            .and_then(serde_json::Value::as_u64)
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if alive {
            out.push(v);
        }
    }
    out
}
