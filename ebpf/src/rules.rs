//! Compiles the active policy into the kernel's enforcement maps.
//!
//! The kernel cannot run Cedar, so the loader asks the core engine (a preview: no record, no
//! budget) about the actions the maps can express, and writes down the answers:
//! - exec: every executable in the standard bin directories and every absolute path the policy
//!   mentions ([`CompiledPolicy::literals`]); a path whose exec a `forbid` matches goes into
//!   `EXEC_DENY`;
//! - connect: every port 1–65535 for an address no policy names (the baseline) and for each IP
//!   address the policy names; `forbid`s become `CONNECT_RULES` entries.
//!
//! Only explicit `forbid`s are enforced in the kernel; Cedar's default deny (no `permit`) stays
//! audit-only, so attaching to a cgroup never kills everything a strict allowlist omits. What the
//! maps cannot express (argv or CIDR conditions, host names) is decided and audited per event.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use aa_core::{
    Action, ActionKind, Agent, CompiledPolicy, Decision, Effect, Layer, NetProto, Reason,
};
use aa_ebpf_common::{ConnectKey, ConnectRule, VERDICT_ALLOW, VERDICT_DENY};

/// Rule index of "all egress must go through the proxy" (`--force-proxy`).
pub const RULE_FORCE_PROXY: u32 = 0;

/// Directories whose executables are checked against the exec policy.
const BIN_DIRS: [&str; 6] = [
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
];

/// A baseline address no policy names (TEST-NET-1).
const OTHER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// A baseline IPv6 address no policy names (documentation prefix).
const OTHER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// The maps' contents and the names of the rules their values point at.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// Executable paths to kill, with their rule index.
    pub exec_deny: Vec<(String, u32)>,
    /// Connect rules.
    pub connect: Vec<(ConnectKey, ConnectRule)>,
    /// Rule index → the policy ids that decided it.
    pub rules: Vec<String>,
    /// What could not be compiled, for the operator.
    pub notes: Vec<String>,
}

impl Compiled {
    fn rule(&mut self, d: &Decision) -> u32 {
        let name = if d.policy_ids.is_empty() {
            d.reason.as_str().to_owned()
        } else {
            d.policy_ids.join(",")
        };
        if let Some(i) = self.rules.iter().position(|r| *r == name) {
            return i as u32;
        }
        self.rules.push(name);
        (self.rules.len() - 1) as u32
    }

    /// The name of rule `i`.
    pub fn rule_name(&self, i: u32) -> &str {
        self.rules.get(i as usize).map_or("unknown", String::as_str)
    }
}

/// Asks `decide` (a preview of the active policy) and writes the maps' contents; `literals` are
/// the strings the policy mentions ([`CompiledPolicy::literals`]).
/// A kind no `forbid` can apply to ([`CompiledPolicy::may_forbid`]) is skipped: its map stays
/// empty without asking about every binary and port.
pub fn compile(
    decide: impl Fn(&Action) -> Decision,
    literals: &BTreeSet<String>,
    policy: Option<&CompiledPolicy>,
) -> Compiled {
    let mut out = Compiled {
        rules: vec!["aa:force-proxy".into()],
        ..Compiled::default()
    };
    let may_forbid = |kind| policy.is_none_or(|p| p.may_forbid(kind));
    if may_forbid(ActionKind::ProcessExec) {
        compile_exec(&decide, literals, &mut out);
    }
    if may_forbid(ActionKind::NetConnect) {
        // No policy reads the port and no literal names an address with one: one port stands
        // for all 65,535.
        let ports = policy.is_none_or(|p| p.reads_attr("port"))
            || literals
                .iter()
                .any(|l| l.parse::<std::net::SocketAddr>().is_ok());
        compile_connect(&decide, literals, ports, &mut out);
    }
    out
}

/// The literals of `policy`, none when there is no policy.
pub fn literals(policy: Option<&CompiledPolicy>) -> BTreeSet<String> {
    policy.map(CompiledPolicy::literals).unwrap_or_default()
}

fn forbidden(d: &Decision) -> bool {
    d.effect == Effect::Deny && d.reason == Reason::Forbidden
}

fn compile_exec(
    decide: &impl Fn(&Action) -> Decision,
    literals: &BTreeSet<String>,
    out: &mut Compiled,
) {
    let mut paths = BTreeSet::new();
    for dir in BIN_DIRS {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                paths.insert(e.path().to_string_lossy().into_owned());
            }
        }
    }
    paths.extend(literals.iter().filter(|l| l.starts_with('/')).cloned());
    for path in paths {
        if path.len() >= aa_ebpf_common::PATH_LEN {
            continue;
        }
        let name = Path::new(&path)
            .file_name()
            .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
        let d = decide(&Action::ProcessExec {
            path: path.clone(),
            argv: vec![name],
        });
        if forbidden(&d) {
            let rule = out.rule(&d);
            out.exec_deny.push((path, rule));
        }
    }
}

/// Ports 1–65535 whose connect to `ip` a `forbid` matches, with the decision; when the policy
/// does not depend on the port (`ports` false), one answer for all of them.
fn denied_ports(
    decide: &impl Fn(&Action) -> Decision,
    ip: IpAddr,
    ports: bool,
) -> BTreeMap<u16, Decision> {
    let addr = ip.to_string();
    let ask = |port| {
        decide(&Action::NetConnect {
            addr: addr.clone(),
            port,
            proto: NetProto::Tcp,
        })
    };
    if !ports {
        let d = ask(1);
        return if forbidden(&d) {
            (1..=u16::MAX).map(|p| (p, d.clone())).collect()
        } else {
            BTreeMap::new()
        };
    }
    (1..=u16::MAX)
        .filter_map(|port| {
            let d = ask(port);
            forbidden(&d).then_some((port, d))
        })
        .collect()
}

/// IPv6 bytes of an address (IPv4 mapped), as the kernel keys them.
pub fn key_addr(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn compile_connect(
    decide: &impl Fn(&Action) -> Decision,
    literals: &BTreeSet<String>,
    ports: bool,
    out: &mut Compiled,
) {
    const ANY: [u8; 16] = [0; 16];
    let baseline = denied_ports(decide, IpAddr::V4(OTHER_V4), ports);
    let baseline6 = denied_ports(decide, IpAddr::V6(OTHER_V6), ports);
    if baseline6.keys().ne(baseline.keys()) {
        out.notes.push(
            "the policy treats IPv4 and IPv6 destinations differently on some ports; the kernel \
             map follows IPv4 for addresses the policy does not name (others are audited)"
                .into(),
        );
    }
    push_ports(out, ANY, &baseline, &BTreeMap::new());
    let ips: BTreeSet<IpAddr> = literals.iter().filter_map(|l| literal_ip(l)).collect();
    for ip in ips {
        let own = denied_ports(decide, ip, ports);
        let parent = if ip.is_ipv4() { &baseline } else { &baseline6 };
        push_ports(out, key_addr(ip), &own, parent);
    }
}

/// Entries for `addr` so that its denied ports are `own`, given what a lookup would fall back
/// to (`parent`): a port-wide entry when most ports are denied, exceptions otherwise.
fn push_ports(
    out: &mut Compiled,
    addr: [u8; 16],
    own: &BTreeMap<u16, Decision>,
    parent: &BTreeMap<u16, Decision>,
) {
    let entry = |port: u16, verdict: u32, rule: u32| {
        (
            ConnectKey {
                addr,
                port: u32::from(port),
            },
            ConnectRule { verdict, rule },
        )
    };
    if own.len() > usize::from(u16::MAX / 2) {
        if let Some(d) = own.values().next() {
            let rule = out.rule(d);
            out.connect.push(entry(0, VERDICT_DENY, rule));
        }
        for port in 1..=u16::MAX {
            match own.get(&port) {
                None => out.connect.push(entry(port, VERDICT_ALLOW, 0)),
                Some(d)
                    if d.policy_ids
                        != own
                            .values()
                            .next()
                            .map(|f| f.policy_ids.clone())
                            .unwrap_or_default() =>
                {
                    let rule = out.rule(d);
                    out.connect.push(entry(port, VERDICT_DENY, rule));
                }
                Some(_) => {}
            }
        }
        return;
    }
    for (port, d) in own {
        if parent.get(port).map(|p| &p.policy_ids) != Some(&d.policy_ids) {
            let rule = out.rule(d);
            out.connect.push(entry(*port, VERDICT_DENY, rule));
        }
    }
    for port in parent.keys() {
        if !own.contains_key(port) {
            out.connect.push(entry(*port, VERDICT_ALLOW, 0));
        }
    }
}

/// The IP address in a literal (`"10.0.0.5"`, `"10.0.0.5:5432"`, `"[::1]:22"`).
fn literal_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// Agent and layer for the previews.
pub fn previewer<'a>(
    governor: &'a aa_sdk_client::Governor,
    agent: &'a Agent,
) -> impl Fn(&Action) -> Decision + 'a {
    move |a| governor.preview_as(agent, a, Layer::Ebpf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aa_core::PolicyBundle;

    #[test]
    fn the_policy_literals_name_the_paths_and_addresses_to_compile() {
        let bundle = PolicyBundle {
            files: [(
                "p.cedar".to_owned(),
                r#"
                // forbid (principal, action, resource == Addr::"10.9.9.9:1");
                forbid (principal, action == Action::"net_connect", resource == Addr::"10.0.0.5:5432");
                @reason("no \"nc\"")
                forbid (principal, action == Action::"process_exec", resource)
                when { context.path == "/usr/local/bin/n\u{63}-\"x\"" };
                "#
                .to_owned(),
            )]
            .into(),
            ..PolicyBundle::default()
        };
        let policy = CompiledPolicy::compile(bundle).unwrap();
        let lits = literals(Some(&policy));
        assert!(lits.contains("10.0.0.5:5432") && !lits.contains("10.9.9.9:1"));
        assert!(lits.contains("/usr/local/bin/nc-\"x\""), "{lits:?}");
        let ips: Vec<IpAddr> = lits.iter().filter_map(|l| literal_ip(l)).collect();
        assert_eq!(ips, vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            literal_ip("[::1]:22"),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert!(literals(None).is_empty());

        // The kernel maps follow: the named path is killed, the named address refused.
        let engine = aa_core::Engine::with_policy(policy, std::sync::Arc::new(aa_core::SystemEnv));
        let agent = Agent::new("a");
        let active = engine.policy();
        let compiled = compile(
            |a| engine.preview(&agent, a, Layer::Ebpf),
            &lits,
            active.as_deref(),
        );
        assert!(
            compiled
                .exec_deny
                .iter()
                .any(|(p, _)| p == "/usr/local/bin/nc-\"x\""),
            "{:?}",
            compiled.exec_deny
        );
        let v4 = key_addr("10.0.0.5".parse().unwrap());
        assert!(
            compiled
                .connect
                .iter()
                .any(|(k, r)| k.addr == v4 && k.port == 5432 && r.verdict == VERDICT_DENY)
        );
    }

    #[test]
    fn kinds_no_forbid_can_reach_are_not_compiled() {
        let bundle = PolicyBundle {
            files: [(
                "p.cedar".to_owned(),
                r#"
                permit (principal, action, resource);
                forbid (principal, action == Action::"tool_call", resource == Tool::"rm");
                "#
                .to_owned(),
            )]
            .into(),
            ..PolicyBundle::default()
        };
        let policy = CompiledPolicy::compile(bundle).unwrap();
        assert!(!policy.may_forbid(ActionKind::NetConnect));
        assert!(!policy.may_forbid(ActionKind::ProcessExec));
        assert!(policy.may_forbid(ActionKind::ToolCall));
        let asked = std::cell::Cell::new(0u32);
        let compiled = compile(
            |_| {
                asked.set(asked.get() + 1);
                Decision::unavailable("x".into(), "", None, false)
            },
            &BTreeSet::new(),
            Some(&policy),
        );
        assert_eq!(asked.get(), 0);
        assert!(compiled.exec_deny.is_empty() && compiled.connect.is_empty());
    }

    #[test]
    fn a_policy_that_never_reads_the_port_is_asked_once_per_address() {
        let bundle = PolicyBundle {
            files: [(
                "p.cedar".to_owned(),
                r#"
                permit (principal, action, resource);
                forbid (principal, action == Action::"net_connect", resource)
                when { context.addr like "10.*" };
                "#
                .to_owned(),
            )]
            .into(),
            ..PolicyBundle::default()
        };
        let policy = CompiledPolicy::compile(bundle).unwrap();
        assert!(!policy.reads_attr("port"));
        let engine = aa_core::Engine::with_policy(policy, std::sync::Arc::new(aa_core::SystemEnv));
        let agent = Agent::new("a");
        let active = engine.policy();
        let asked = std::cell::Cell::new(0u32);
        let compiled = compile(
            |a| {
                asked.set(asked.get() + 1);
                engine.preview(&agent, a, Layer::Ebpf)
            },
            &BTreeSet::new(),
            active.as_deref(),
        );
        assert_eq!(asked.get(), 2, "one port for IPv4 and one for IPv6");
        assert!(compiled.connect.is_empty(), "{:?}", compiled.connect);
    }
}
