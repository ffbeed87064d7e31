//! Cross-layer bypass detection: when every egress of the cgroup must go through known
//! endpoints (the proxy, the gateway), a connect or datagram the kernel saw to anywhere else is
//! traffic no proxy request accounts for — a bypass. It gets its own audit record
//! ([`Reason::Bypass`]) naming the process and destination, and the configured response.

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;

use aa_core::{Decision, Effect, Environment, NetProto, Reason, SystemEnv};

/// What to do about a bypass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBypass {
    /// Record it (the traffic went out).
    Record,
    /// Record it and SIGKILL the process.
    Kill,
    /// Record it; whoever receives the [`Bypass`] suspends the agent everywhere.
    Suspend,
}

/// Egress that must use known endpoints.
#[derive(Debug, Clone)]
pub struct EgressWatch {
    /// The endpoints that account for traffic (the proxy's and the gateway's addresses).
    pub via: Vec<SocketAddr>,
    /// The response.
    pub on_bypass: OnBypass,
    /// Receives every bypass (for the launcher's summary and the suspension).
    pub sink: Option<mpsc::Sender<Bypass>>,
}

/// One bypass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bypass {
    /// The process that sent it.
    pub pid: u32,
    /// Its command name, when it was still running.
    pub comm: Option<String>,
    /// Destination.
    pub dest: SocketAddr,
    /// Protocol.
    pub proto: NetProto,
    /// The process was killed.
    pub killed: bool,
}

impl EgressWatch {
    /// Whether a connect or send to `ip:port` is accounted for. A wildcard listener address
    /// (`0.0.0.0`, `::`) accounts for every local address on its port.
    pub fn accounts_for(&self, ip: IpAddr, port: u16) -> bool {
        self.via.iter().any(|v| {
            v.port() == port && (v.ip() == ip || (v.ip().is_unspecified() && ip.is_loopback()))
        })
    }

    /// Responds to a bypass by `pid` to `dest`: kills when asked, and builds the record's
    /// decision from the one the policy gave (its version kept).
    pub fn respond(
        &self,
        pid: u32,
        dest: SocketAddr,
        proto: NetProto,
        policy: &Decision,
    ) -> (Decision, Bypass) {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|c| c.trim_end().to_owned());
        let killed = self.on_bypass == OnBypass::Kill && kill(pid);
        let done = match (self.on_bypass, killed) {
            (OnBypass::Kill, true) => "the process was killed",
            (OnBypass::Kill, false) => "the process had already exited",
            (OnBypass::Suspend, _) => "the agent is suspended",
            (OnBypass::Record, _) => "recorded only",
        };
        let decision = Decision {
            budget: None,
            decision_id: SystemEnv.new_id(),
            effect: if killed { Effect::Deny } else { Effect::Allow },
            fail_open: false,
            message: format!(
                "{} {dest} by pid {pid} ({}) went around the proxy: no proxy request accounts for it; {done}",
                proto_name(proto),
                comm.as_deref().unwrap_or("exited"),
            ),
            policy_ids: Vec::new(),
            policy_version: policy.policy_version.clone(),
            reason: Reason::Bypass,
        };
        let bypass = Bypass {
            pid,
            comm,
            dest,
            proto,
            killed,
        };
        if let Some(sink) = &self.sink {
            let _ = sink.send(bypass.clone());
        }
        (decision, bypass)
    }
}

fn proto_name(proto: NetProto) -> &'static str {
    match proto {
        NetProto::Udp => "a UDP send to",
        _ => "a connection to",
    }
}

/// SIGKILL; false when the process is gone.
fn kill(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    #[allow(unsafe_code)]
    // SAFETY: kill has no memory preconditions; a stale pid fails with ESRCH.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(via: &[&str]) -> EgressWatch {
        EgressWatch {
            via: via.iter().map(|s| s.parse().unwrap()).collect(),
            on_bypass: OnBypass::Record,
            sink: None,
        }
    }

    #[test]
    fn only_the_listed_endpoints_account_for_traffic() {
        let w = watch(&["127.0.0.1:8899", "0.0.0.0:7000"]);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(w.accounts_for(lo, 8899));
        assert!(!w.accounts_for(lo, 8900));
        assert!(!w.accounts_for("10.0.0.1".parse().unwrap(), 8899));
        assert!(w.accounts_for(lo, 7000));
        assert!(!w.accounts_for("10.0.0.1".parse().unwrap(), 7000));
    }
}
