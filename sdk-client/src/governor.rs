//! The object every binding wraps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aa_core::audit::{AuditLog, AuditLogOptions, AuditSink};
use aa_core::tool_call::{ArgRules, ArgValue, CallEnd, outcome};
use aa_core::{Action, Agent, Decision, Engine, Layer, Outcome, SystemEnv};

use crate::gateway::{GatewayClient, GatewayError, GatewayOptions};
use crate::pending::{ABANDONED, Began, Pending, PendingCalls};
use crate::shipper::Shipper;
use crate::{ClientConfig, ClientError, Mode, policy_sync};

/// Counters for a status line or a test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Events waiting in memory.
    pub queued: u64,
    /// Events spilled to disk, not yet delivered.
    pub spilled: u64,
    /// Events the gateway acknowledged.
    pub shipped: u64,
    /// Events the gateway refused for good (kept beside the spill file).
    pub rejected: u64,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// The policy version decisions are made against (local, embedded).
    pub policy_version: Option<String>,
}

/// Decides and records the actions of one agent.
pub struct Governor {
    config: ClientConfig,
    engine: Arc<Engine>,
    http: Option<Arc<GatewayClient>>,
    shipper: Option<Arc<Shipper>>,
    log: Option<Arc<AuditLog>>,
    stop_sync: Arc<AtomicBool>,
    running: PendingCalls,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("agent", &self.config.agent.agent_id)
            .field("mode", &self.config.mode)
            .finish_non_exhaustive()
    }
}

impl Governor {
    /// Starts a governor: loads or fetches the policy, opens the audit file or starts the
    /// shipper and the policy sync.
    pub fn start(config: ClientConfig) -> Result<Self, ClientError> {
        let env = Arc::new(SystemEnv);
        let stop_sync = Arc::new(AtomicBool::new(false));
        let http = match (&config.gateway_url, &config.token) {
            (Some(url), Some(token)) if config.mode != Mode::Embedded => {
                Some(Arc::new(GatewayClient::new(
                    url,
                    token,
                    &GatewayOptions {
                        timeout: config.request_timeout,
                        poll_wait: Duration::from_secs(config.policy_wait_secs),
                        ca_cert: config.ca_cert.clone(),
                    },
                )?))
            }
            _ => None,
        };
        let (engine, shipper, log) = match config.mode {
            Mode::Embedded => {
                let dir = config.policy_dir.as_ref().ok_or_else(|| {
                    ClientError::Config("embedded mode needs a policy directory".into())
                })?;
                let engine = Engine::from_dir(dir)?.fail_open(config.fail_open);
                if !config.embedded_audit {
                    (engine, None, None)
                } else {
                    if let Some(parent) = config.audit_file.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            ClientError::Config(format!("cannot create {}: {e}", parent.display()))
                        })?;
                    }
                    let options = AuditLogOptions {
                        checkpoint_every: config.checkpoint_every,
                        ..AuditLogOptions::default()
                    };
                    let log = Arc::new(AuditLog::open(&config.audit_file, options, env.clone())?);
                    let engine = engine.with_audit(log.clone() as Arc<dyn AuditSink>);
                    (engine, None, Some(log))
                }
            }
            Mode::Local | Mode::Remote => {
                let http = http.clone().ok_or_else(|| {
                    ClientError::Config("a gateway URL and token are required".into())
                })?;
                let shipper = Arc::new(Shipper::start(
                    http.clone(),
                    config.spill_dir.clone(),
                    &config.agent.agent_id,
                    config.queue_capacity,
                    config.batch_size,
                    config.flush_interval,
                )?);
                let mut engine = Engine::new(env.clone()).fail_open(config.fail_open);
                if config.mode == Mode::Local {
                    engine = engine.with_audit(shipper.clone() as Arc<dyn AuditSink>);
                }
                (engine, Some(shipper), None)
            }
        };
        let engine = Arc::new(engine);
        if config.mode == Mode::Local
            && let Some(http) = &http
        {
            // A first fetch now; if the gateway is down the engine fails closed until the
            // sync thread gets a policy.
            let _ = policy_sync::fetch_once(http, &engine);
            policy_sync::start(
                http.clone(),
                engine.clone(),
                config.policy_wait_secs,
                stop_sync.clone(),
            );
        }
        if config.layer == Layer::Sdk
            && let Some(http) = &http
        {
            announce(http.clone());
        }
        Ok(Governor {
            config,
            engine,
            http,
            shipper,
            log,
            stop_sync,
            running: PendingCalls::default(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The agent.
    pub fn agent(&self) -> &Agent {
        &self.config.agent
    }

    /// Decides `action` for this agent. Never fails: when no decision can be made the answer is
    /// `deny` / `unavailable` (or `allow` flagged `fail_open` when configured).
    pub fn decide(&self, action: &Action) -> Decision {
        self.decide_as(&self.config.agent, action, self.config.layer)
    }

    /// Decides for another agent or layer (the proxy decides for many agents).
    pub fn decide_as(&self, agent: &Agent, action: &Action, layer: Layer) -> Decision {
        match (self.config.mode, &self.http) {
            (Mode::Remote, Some(http)) => match http.decide(agent, action, layer) {
                Ok(d) => d,
                Err(e) => self.unreachable(e),
            },
            _ => self.engine.decide(agent, action, layer),
        }
    }

    /// What the decision would be, without recording it or charging a budget (local and
    /// embedded mode; remote mode asks the gateway, which records it).
    pub fn preview_as(&self, agent: &Agent, action: &Action, layer: Layer) -> Decision {
        match (self.config.mode, &self.http) {
            (Mode::Remote, Some(_)) => self.decide_as(agent, action, layer),
            _ => self.engine.preview(agent, action, layer),
        }
    }

    fn unreachable(&self, e: GatewayError) -> Decision {
        self.unavailable(format!("the gateway could not decide: {e}"))
    }

    /// The answer when no decision could be made: denied with `unavailable`, or allowed and
    /// marked when the configuration fails open.
    pub fn unavailable(&self, message: impl Into<String>) -> Decision {
        let id = aa_core::Environment::new_id(self.engine.env().as_ref());
        Decision::unavailable(id, message, None, self.config.fail_open)
    }

    /// Records what happened after an allowed action ran (charges usage locally in local and
    /// embedded mode; the gateway charges it from the event in remote mode).
    pub fn report(
        &self,
        action: &Action,
        decision: &Decision,
        outcome: Outcome,
    ) -> Result<(), ClientError> {
        self.report_as(
            &self.config.agent,
            action,
            self.config.layer,
            decision,
            outcome,
        )
    }

    /// [`Governor::report`] for another agent or layer.
    pub fn report_as(
        &self,
        agent: &Agent,
        action: &Action,
        layer: Layer,
        decision: &Decision,
        outcome: Outcome,
    ) -> Result<(), ClientError> {
        self.report_owned_as(agent, action.clone(), layer, decision.clone(), outcome)
    }

    /// [`Governor::report_as`] taking the action and decision, which move into the event.
    pub fn report_owned_as(
        &self,
        agent: &Agent,
        action: Action,
        layer: Layer,
        decision: Decision,
        outcome: Outcome,
    ) -> Result<(), ClientError> {
        match (self.config.mode, &self.shipper) {
            (Mode::Remote, Some(shipper)) => {
                let event = self
                    .engine
                    .event_owned(agent, action, layer, decision, Some(outcome));
                shipper.append(event)?;
                Ok(())
            }
            _ => Ok(self
                .engine
                .report_owned(agent, action, layer, decision, outcome)?),
        }
    }

    /// Records a decision the caller made with [`Governor::preview_as`] (and annotated) as an
    /// audit event: to the audit file (embedded) or the gateway (local, remote).
    pub fn record_as(
        &self,
        agent: &Agent,
        action: &Action,
        layer: Layer,
        decision: &Decision,
    ) -> Result<(), ClientError> {
        match (self.config.mode, &self.shipper) {
            (Mode::Remote, Some(shipper)) => {
                shipper.append(self.engine.event(agent, action, layer, decision, None))?;
                Ok(())
            }
            _ => Ok(self
                .engine
                .record_decision(agent, action, layer, decision)?),
        }
    }

    /// Decides calling `tool` with `args` (converted by a binding; redacted, converted and
    /// truncated by `rules`, see [`aa_core::tool_call`]). Returns the action as decided, to
    /// hand back to [`Governor::report_tool`] with the decision.
    pub fn decide_tool<I>(&self, tool: &str, args: I, rules: &ArgRules) -> (Action, Decision)
    where
        I: IntoIterator<Item = (String, ArgValue)>,
    {
        let action = rules.action(tool, args);
        let decision = self.decide(&action);
        (action, decision)
    }

    /// Decides calling `tool` with `args` like [`Governor::decide_tool`]; an allowed call is held
    /// until [`Governor::end_tool`] reports its end, under the ticket returned. A denied call
    /// gives its decision.
    pub fn begin_tool<I>(&self, tool: &str, args: I, rules: &ArgRules) -> Began
    where
        I: IntoIterator<Item = (String, ArgValue)>,
    {
        self.begin_action(rules.action(tool, args))
    }

    /// Decides `action` and holds it when allowed, as [`Governor::begin_tool`] (a binding that
    /// built the tool call itself, say from arguments received as JSON text).
    pub fn begin_action(&self, action: Action) -> Began {
        let decision = self.decide(&action);
        self.begin(action, decision)
    }

    /// Holds an allowed call decided elsewhere (the decision made off the binding's thread):
    /// [`Governor::begin_tool`]'s second half.
    pub fn begin(&self, action: Action, decision: Decision) -> Began {
        if !decision.is_allowed() {
            return Began::Denied(decision);
        }
        let call = Pending {
            action,
            decision,
            started: Instant::now(),
        };
        let (ticket, abandoned) = self.running.insert(call);
        if let Some(old) = abandoned {
            // Fails only when the audit sink refuses; the new call is not at fault.
            let _ = self.finish(old, CallEnd::Raised(ABANDONED));
        }
        Began::Running(ticket)
    }

    /// Records how the call of `ticket` ended (the duration measured since it began). `false`
    /// when the ticket is unknown: reported already, or abandoned.
    pub fn end_tool(&self, ticket: u64, end: CallEnd<'_>) -> Result<bool, ClientError> {
        match self.running.take(ticket) {
            Some(call) => self.finish(call, end).map(|()| true),
            None => Ok(false),
        }
    }

    fn finish(&self, call: Pending, end: CallEnd<'_>) -> Result<(), ClientError> {
        let duration_us = crate::micros_since(call.started);
        self.report_owned_as(
            &self.config.agent,
            call.action,
            self.config.layer,
            call.decision,
            outcome(end, duration_us),
        )
    }

    /// Records how an allowed tool call from [`Governor::decide_tool`] ended, after
    /// `duration_us` microseconds.
    pub fn report_tool(
        &self,
        action: &Action,
        decision: &Decision,
        end: CallEnd<'_>,
        duration_us: u64,
    ) -> Result<(), ClientError> {
        self.report(action, decision, outcome(end, duration_us))
    }

    /// The configuration of a governor for a process forked from this one: the same, except
    /// that in embedded mode the child writes its own audit file, `<audit_file>.<pid>` (one
    /// writer per hash chain). The parent's governor must not be used in the child: its
    /// threads did not survive the fork.
    pub fn config_after_fork(&self, pid: u32) -> ClientConfig {
        let mut config = self.config.clone();
        if config.mode == Mode::Embedded {
            let mut name = config.audit_file.clone().into_os_string();
            name.push(format!(".{pid}"));
            config.audit_file = name.into();
        }
        config
    }

    /// Waits until every event is delivered (or written to the audit file), up to `timeout`.
    /// On timeout the events stay spilled on disk and are replayed later.
    pub fn flush(&self, timeout: Duration) -> Result<(), ClientError> {
        if let Some(s) = &self.shipper {
            s.flush(timeout)?;
        }
        if let Some(log) = &self.log {
            log.checkpoint()?;
        }
        Ok(())
    }

    /// Flushes (up to `timeout`), stops the background threads, seals the audit file.
    pub fn close(&self, timeout: Duration) -> Result<(), ClientError> {
        self.stop_sync.store(true, Ordering::Relaxed);
        let shipped = match &self.shipper {
            Some(s) => s.close(timeout),
            None => Ok(()),
        };
        if let Some(log) = &self.log {
            log.close()?;
        }
        shipped
    }

    /// Counters.
    pub fn stats(&self) -> ClientStats {
        let s = self.shipper.as_ref().map(|s| s.stats()).unwrap_or_default();
        ClientStats {
            queued: s.queued,
            spilled: s.spilled,
            shipped: s.shipped,
            rejected: s.rejected,
            last_error: s.last_error,
            policy_version: self.engine.policy_version(),
        }
    }

    /// The gateway client (local and remote modes), with this agent's token.
    pub fn gateway(&self) -> Option<&GatewayClient> {
        self.http.as_deref()
    }

    /// The audit file (embedded mode, unless `embedded_audit` is off).
    pub fn audit_log(&self) -> Option<&Arc<AuditLog>> {
        self.log.as_ref()
    }

    /// The engine (local and embedded modes decide with it).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

/// Tells the gateway, off the caller's thread, that an SDK runs in this process (`aasm run`
/// reports the run as `L3Native`). A few tries; a gateway that never answers only loses the
/// level report, never a decision or a record.
fn announce(http: Arc<GatewayClient>) {
    let runtime = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let announcement = aa_core::wire::Announcement {
        layer: Layer::Sdk,
        runtime,
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
    };
    let _ = std::thread::Builder::new()
        .name("aa-announce".into())
        .spawn(move || {
            for wait in [0u64, 200, 1000, 3000] {
                std::thread::sleep(Duration::from_millis(wait));
                if http.announce(&announcement).is_ok() {
                    return;
                }
            }
        });
}
