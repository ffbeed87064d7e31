//! What a run did, read back from the gateway's audit: actions per layer, denials and their
//! reasons, bypasses, budgets, tokens and cost, the audit range and whether the chain verifies.

use std::collections::BTreeMap;

use aa_core::budget::BudgetStatus;
use aa_core::{AuditRecord, Effect, Reason, parse_ts};
use serde::Serialize;

use super::layers::Gateway;

/// The governance level a run reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Level {
    /// An SDK announced itself: tool calls were decided at SDK depth.
    L3Native,
    /// The proxy and the kernel layer enforced.
    L1Observe,
}

/// Counts of one layer.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct LayerCounts {
    pub seen: u64,
    pub allowed: u64,
    pub denied: u64,
}

/// A denial reason and how often it came.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Denial {
    pub layer: String,
    pub why: String,
    pub count: u64,
}

/// One bypass, as recorded.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BypassSeen {
    pub seq: u64,
    pub action: serde_json::Value,
    pub message: String,
    pub stopped: bool,
}

/// The audit range the run wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct AuditRange {
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub records: u64,
    /// The gateway's verdict over its whole chain.
    pub verified: Option<bool>,
    pub verify_detail: Option<String>,
}

/// The summary printed when the command has ended.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub command: Vec<String>,
    pub agent_id: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub level: Level,
    /// False when `--level native` was asked and no SDK announced itself.
    pub governed: bool,
    pub sdk_runtimes: Vec<String>,
    pub layers: BTreeMap<String, LayerCounts>,
    pub top_denials: Vec<Denial>,
    pub bypasses: Vec<BypassSeen>,
    pub budgets: Vec<BudgetStatus>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub audit: AuditRange,
    /// Kernel counters: events, lost, execs killed, connects refused.
    pub kernel: Option<serde_json::Value>,
    pub startup_ms: f64,
    pub duration_ms: f64,
    pub state_dir: String,
    /// What could not be read back (no admin token for a joined gateway, say).
    pub notes: Vec<String>,
}

/// Reads the run back: the agent's records since `since_ms`.
pub(crate) fn collect(
    gateway: &Gateway,
    agent_id: &str,
    since_ms: i64,
    kernel: Option<&aa_ebpf::Summary>,
) -> Report {
    let mut report = Report {
        command: Vec::new(),
        agent_id: agent_id.to_owned(),
        exit_code: None,
        signal: None,
        level: Level::L1Observe,
        governed: true,
        sdk_runtimes: Vec::new(),
        layers: BTreeMap::new(),
        top_denials: Vec::new(),
        bypasses: Vec::new(),
        budgets: Vec::new(),
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        audit: AuditRange::default(),
        kernel: kernel.map(|k| {
            serde_json::json!({
                "events": k.events, "lost": k.lost, "killed": k.killed, "refused": k.refused,
                "recorded": k.recorded, "bypasses": k.bypasses,
                "repeats_filtered": k.repeats_filtered,
            })
        }),
        startup_ms: 0.0,
        duration_ms: 0.0,
        state_dir: String::new(),
        notes: Vec::new(),
    };
    let Some(admin) = gateway.admin() else {
        report
            .notes
            .push("no admin token for the joined gateway: the audit was not read back (set AA_ADMIN_TOKEN)".into());
        return report;
    };
    match admin.announcements(agent_id) {
        Ok(list) => {
            report.sdk_runtimes = list
                .iter()
                .filter(|a| a.at_ms >= since_ms)
                .map(|a| {
                    format!(
                        "{} (pid {}, sdk {})",
                        a.announcement.runtime, a.announcement.pid, a.announcement.version
                    )
                })
                .collect();
            if !report.sdk_runtimes.is_empty() {
                report.level = Level::L3Native;
            }
        }
        Err(e) => report.notes.push(format!("announcements: {e}")),
    }
    let mut denials: BTreeMap<(String, String), u64> = BTreeMap::new();
    for record in admin.records_of(agent_id) {
        let r = match record {
            Ok(r) => r,
            Err(e) => {
                report.notes.push(format!("audit: {e}"));
                break;
            }
        };
        if parse_ts(&r.ts).is_none_or(|ms| ms < since_ms) {
            continue;
        }
        count(&mut report, &mut denials, &r);
    }
    let mut top: Vec<Denial> = denials
        .into_iter()
        .map(|((layer, why), count)| Denial { layer, why, count })
        .collect();
    top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.why.cmp(&b.why)));
    top.truncate(8);
    report.top_denials = top;
    let key = format!("agent:{agent_id}");
    match admin.budgets() {
        Ok(all) => {
            report.budgets = all
                .into_iter()
                .filter(|b| {
                    b.key == key
                        && (b.calls_used > 0 || b.tokens_used > 0 || b.cost_used_micros > 0)
                })
                .collect();
        }
        Err(e) => report.notes.push(format!("budgets: {e}")),
    }
    match admin.verify() {
        Ok(v) => {
            report.audit.verified = Some(v.ok);
            if !v.ok {
                report.audit.verify_detail = Some(format!("{v:?}"));
            }
        }
        Err(e) => report.notes.push(format!("verify: {e}")),
    }
    report
}

fn count(report: &mut Report, denials: &mut BTreeMap<(String, String), u64>, r: &AuditRecord) {
    let audit = &mut report.audit;
    audit.first_seq = Some(audit.first_seq.map_or(r.seq, |s| s.min(r.seq)));
    audit.last_seq = Some(audit.last_seq.map_or(r.seq, |s| s.max(r.seq)));
    audit.records += 1;
    if let Some(usage) = r.outcome.as_ref().and_then(|o| o.usage.as_ref()) {
        report.input_tokens += usage.input_tokens;
        report.output_tokens += usage.output_tokens;
        report.cost_usd += usage.cost_usd.unwrap_or(0.0);
    }
    if r.decision.reason == Reason::Bypass {
        report.bypasses.push(BypassSeen {
            seq: r.seq,
            action: serde_json::to_value(&r.action).unwrap_or_default(),
            message: r.decision.message.clone(),
            stopped: r.decision.effect == Effect::Deny,
        });
        return;
    }
    // An outcome record follows its decision record: count each action once.
    if !r.records_decision() {
        return;
    }
    let layer = report
        .layers
        .entry(r.layer.as_str().to_owned())
        .or_default();
    layer.seen += 1;
    match r.decision.effect {
        Effect::Allow => layer.allowed += 1,
        Effect::Deny => {
            layer.denied += 1;
            let why = if r.decision.policy_ids.is_empty() {
                r.decision
                    .budget
                    .clone()
                    .unwrap_or_else(|| r.decision.reason.as_str().to_owned())
            } else {
                r.decision.policy_ids.join(",")
            };
            let why = format!("{} {why}", r.decision.reason.as_str());
            *denials
                .entry((r.layer.as_str().to_owned(), why))
                .or_default() += 1;
        }
    }
}

impl Report {
    /// The human rendering.
    pub fn human(&self) -> String {
        let mut l = vec![format!(
            "── aasm run: {} (agent {}) exited {}{} after {:.0} ms; start-up {:.0} ms",
            self.command.join(" "),
            self.agent_id,
            self.exit_code
                .map_or("by a signal".to_owned(), |c| c.to_string()),
            self.signal
                .map(|s| format!(" (signal {s})"))
                .unwrap_or_default(),
            self.duration_ms,
            self.startup_ms,
        )];
        l.push(match self.level {
            Level::L3Native => format!("level: L3Native (SDK: {})", self.sdk_runtimes.join("; ")),
            Level::L1Observe => "level: L1Observe (no SDK announced itself; the proxy and the kernel layer enforced)".into(),
        });
        if !self.governed {
            l.push("NOT GOVERNED at the level asked (--level native)".into());
        }
        for (layer, c) in &self.layers {
            l.push(format!(
                "  {layer:<6} {:>6} actions  {:>6} allowed  {:>5} denied",
                c.seen, c.allowed, c.denied
            ));
        }
        if !self.top_denials.is_empty() {
            l.push("top denials:".into());
            for d in &self.top_denials {
                l.push(format!("  {:>4}× {:<6} {}", d.count, d.layer, d.why));
            }
        }
        if self.bypasses.is_empty() {
            l.push("bypasses: none".into());
        } else {
            l.push(format!("bypasses: {}", self.bypasses.len()));
            for b in &self.bypasses {
                l.push(format!("  #{} {}", b.seq, b.message));
            }
        }
        for b in &self.budgets {
            let limit = b.calls_limit.map(|n| format!("/{n}")).unwrap_or_default();
            l.push(format!(
                "budget {} ({}, {}): {}{limit} calls, {} tokens",
                b.budget, b.key, b.window, b.calls_used, b.tokens_used
            ));
        }
        l.push(format!(
            "tokens: {} in / {} out, cost ${:.6}",
            self.input_tokens, self.output_tokens, self.cost_usd
        ));
        if let Some(k) = &self.kernel {
            l.push(format!("kernel: {k}"));
        }
        let range = match (self.audit.first_seq, self.audit.last_seq) {
            (Some(a), Some(b)) => format!("seq {a}..={b} ({} records)", self.audit.records),
            _ => "no records".into(),
        };
        let verified = match self.audit.verified {
            Some(true) => "the chain verifies",
            Some(false) => "THE CHAIN DOES NOT VERIFY",
            None => "not verified",
        };
        l.push(format!(
            "audit: {range}; {verified}; kept in {}",
            self.state_dir
        ));
        for n in &self.notes {
            l.push(format!("note: {n}"));
        }
        l.join("\n")
    }
}
