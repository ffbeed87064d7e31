#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
//! Slicing never changes a decision: random policy sets and requests, decided by an engine
//! that evaluates only the slice and one that evaluates every policy, must agree exactly.

mod common;

use std::sync::Arc;

use aa_core::*;
use common::*;
use proptest::prelude::*;

fn principal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("principal".to_owned()),
        (0..4u8).prop_map(|i| format!("principal == Agent::\"a{i}\"")),
        (0..2u8).prop_map(|i| format!("principal in Team::\"t{i}\"")),
        Just("principal is Agent".to_owned()),
        (0..2u8).prop_map(|i| format!("principal is Agent in Team::\"t{i}\"")),
    ]
}

/// Conditions valid for any action (strict validation), including ones the fast path cannot
/// evaluate (an overflow Cedar raises on, an extension function) to exercise the fallback.
const COMMON: &[&str] = &[
    // Constants: the fast path folds `x && true` and `x || false` into `x`.
    "true",
    "false",
    "context.layer == \"sdk\"",
    "context.layer != \"proxy\"",
    "context.time.hour < 12",
    "context.time.weekday >= 1",
    "context.budget.exceeded",
    "context.budget.calls_remaining > 3",
    "principal in Team::\"t0\"",
    "principal in [Team::\"t1\", Team::\"t0\"]",
    "principal is Agent in Team::\"t1\"",
    "principal == Agent::\"a1\"",
    "principal.hasTag(\"env\") && principal.getTag(\"env\") like \"pr*\"",
    "principal.hasTag(\"env\")",
    "context has session_id && context.session_id == \"s1\"",
    "context has session_id",
    "if context.layer == \"sdk\" then true else principal in Team::\"t1\"",
    "[\"sdk\", \"ebpf\"].contains(context.layer)",
    "[\"x\", \"sdk\"].containsAny([context.layer])",
    "context.time.epoch_secs * 9223372036854775807 > 0",
    "ip(\"10.0.0.1\").isInRange(ip(\"10.0.0.0/8\"))",
    "action == Action::\"tool_call\"",
    "action in [Action::\"file_access\"]",
    "resource is Tool",
];

const TOOL: &[&str] = &[
    "context.tool == \"t1\"",
    "context.tool like \"t*\"",
    "context.args_json like \"*\\\"x\\\":1*\"",
    // Floating literals, searched for all at once (fast::Literals): overlapping ones, one
    // shared by two patterns, several in one pattern.
    "context.args_json like \"*\\\"y\\\":*\"",
    "context.args_json like \"*\\\":1*\"",
    "context.args_json like \"*rm*\\\"x\\\":*\"",
    "context.args_json like \"{*\\\"s\\\"*rf x*}\"",
    "resource.hasTag(\"x\") && resource.getTag(\"x\") == \"1\"",
    "resource.hasTag(\"s\") && resource.getTag(\"s\") like \"*rm -rf*\"",
    "resource.hasTag(\"x\")",
    "resource == Tool::\"t2\"",
    "resource in Tool::\"t3\"",
];

const FILE: &[&str] = &[
    "context.path like \"/p1*\"",
    "context.path like \"*1\"",
    "context.path like \"*p*2\"",
    "context.path like \"*1*\"",
    "context.access == \"write\"",
    "context.access != \"read\" && context.path == \"/p2\"",
    "resource == Path::\"/p1\"",
];

const BOTH: &[&str] = &[
    "context has path && context.path like \"/p*\"",
    "context has tool",
    "context has args_json",
];

#[derive(Debug, Clone)]
enum Act {
    Any,
    Tool,
    File,
    Both,
}

fn condition(act: Act) -> impl Strategy<Value = String> {
    let mut pool: Vec<&'static str> = COMMON.to_vec();
    match act {
        Act::Any => {}
        Act::Tool => pool.extend(TOOL),
        Act::File => pool.extend(FILE),
        Act::Both => pool.extend(BOTH),
    }
    let atom = prop::sample::select(pool).prop_map(str::to_owned);
    atom.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) || ({b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

fn policy() -> impl Strategy<Value = String> {
    let act = prop_oneof![
        Just(Act::Any),
        Just(Act::Tool),
        Just(Act::File),
        Just(Act::Both)
    ];
    (any::<bool>(), principal(), act, 0..5u8)
        .prop_flat_map(|(permit, p, act, r)| {
            let conds = (
                prop::option::weighted(0.9, condition(act.clone())),
                prop::option::weighted(0.3, condition(act.clone())),
            );
            (Just((permit, p, act, r)), conds)
        })
        .prop_map(|((permit, p, act, r), (when, unless))| {
            let (a, res) = match act {
                Act::Any => ("action".to_owned(), "resource".to_owned()),
                Act::Both => (
                    "action in [Action::\"tool_call\", Action::\"file_access\"]".to_owned(),
                    "resource".to_owned(),
                ),
                Act::Tool => (
                    "action == Action::\"tool_call\"".to_owned(),
                    match r {
                        0 => "resource".to_owned(),
                        1 => "resource is Tool".to_owned(),
                        n => format!("resource == Tool::\"t{}\"", n - 2),
                    },
                ),
                Act::File => (
                    "action == Action::\"file_access\"".to_owned(),
                    if r == 0 {
                        "resource".to_owned()
                    } else {
                        format!("resource == Path::\"/p{}\"", r - 1)
                    },
                ),
            };
            let mut text = format!(
                "{} ({p}, {a}, {res})",
                if permit { "permit" } else { "forbid" }
            );
            if let Some(w) = when {
                text.push_str(&format!(" when {{ {w} }}"));
            }
            if let Some(u) = unless {
                text.push_str(&format!(" unless {{ {u} }}"));
            }
            text.push(';');
            text
        })
}

fn request() -> impl Strategy<Value = (Agent, Action, Layer)> {
    let args = prop::collection::btree_map(
        prop::sample::select(vec!["x", "s", "y"]),
        prop_oneof![
            (0..3i64).prop_map(serde_json::Value::from),
            prop::sample::select(vec!["1", "cd / && rm -rf x", "t"])
                .prop_map(serde_json::Value::from),
        ],
        0..3,
    );
    let agent = (0..5u8, 0..3u8, any::<bool>(), any::<bool>());
    let action = prop_oneof![
        (0..5u8, args).prop_map(|(r, args)| Action::ToolCall {
            tool: format!("t{r}"),
            args: args.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }),
        (0..5u8, 0..3u8).prop_map(|(r, a)| Action::FileAccess {
            path: format!("/p{r}"),
            access: [
                FileAccessMode::Read,
                FileAccessMode::Write,
                FileAccessMode::Unlink
            ][a as usize],
        }),
    ];
    (agent, action, 0..3u8).prop_map(|((a, team, prod, session), action, layer)| {
        let mut agent = Agent::new(format!("a{a}"));
        if team < 2 {
            agent.team = Some(format!("t{team}"));
        }
        if prod {
            agent.labels.insert("env".into(), "prod".into());
        }
        if session {
            agent.session_id = Some("s1".into());
        }
        (
            agent,
            action,
            [Layer::Sdk, Layer::Proxy, Layer::Ebpf][layer as usize],
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sliced_and_full_evaluation_agree(
        policies in prop::collection::vec(policy(), 1..24),
        requests in prop::collection::vec(request(), 1..16),
    ) {
        let text = policies.join("\n");
        let compiled = Arc::new(compile(&[("p.cedar", text.as_str())]));
        let sliced = Engine::with_policy(compiled.clone(), env());
        let full = Engine::with_policy(compiled, env()).slicing(false);
        for (agent, action, layer) in &requests {
            let a = sliced.decide(agent, action, *layer);
            let b = full.decide(agent, action, *layer);
            let mut ids_a = a.policy_ids.clone();
            let mut ids_b = b.policy_ids.clone();
            ids_a.sort();
            ids_b.sort();
            prop_assert_eq!((a.effect, a.reason, ids_a), (b.effect, b.reason, ids_b), "{}\n{:?}", text, (agent, action, layer));
        }
    }
}

/// Common policies are decided by the fast path, without Cedar.
#[test]
fn the_fast_path_decides_common_policies() {
    let policies = [
        "permit (principal, action, resource) when { context.layer == \"sdk\" || principal in Team::\"t0\" };",
        "forbid (principal, action == Action::\"tool_call\", resource) when { resource.hasTag(\"s\") && resource.getTag(\"s\") like \"*rm -rf*\" };",
        "forbid (principal, action == Action::\"tool_call\", resource) when { context.args_json like \"*\\\"x\\\":2*\" };",
    ]
    .join("\n");
    let engine = Engine::with_policy(compile(&[("p.cedar", policies.as_str())]), env());
    let mut args = serde_json::Map::new();
    args.insert("s".into(), "cd / && rm -rf x".into());
    let rm = Action::ToolCall {
        tool: "t".into(),
        args,
    };
    assert_eq!(
        engine.decide(&Agent::new("a"), &rm, Layer::Sdk).reason,
        Reason::Forbidden
    );
    let mut args = serde_json::Map::new();
    args.insert("x".into(), 2.into());
    let x2 = Action::ToolCall {
        tool: "t".into(),
        args,
    };
    assert_eq!(
        engine.decide(&Agent::new("a"), &x2, Layer::Sdk).reason,
        Reason::Forbidden
    );
    assert_eq!(
        engine
            .decide(&Agent::new("a"), &tool("t"), Layer::Proxy)
            .reason,
        Reason::NoPermit
    );
    assert!(
        engine
            .decide(&Agent::new("a"), &tool("t"), Layer::Sdk)
            .is_allowed()
    );
    assert_eq!(
        engine.stats(),
        EngineStats {
            fast_path: 4,
            cedar_path: 0
        }
    );
}

/// The slice really is smaller: with 1,000 policies pinned to other agents and tools, only
/// the matching policy and the unscoped ones are evaluated, and the decision is the same.
#[test]
fn slices_of_a_large_set_decide_like_the_full_set() {
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!(
            "@id(\"p{i}\") permit (principal == Agent::\"a{i}\", action == Action::\"tool_call\", resource == Tool::\"t{i}\");\n"
        ));
    }
    text.push_str(
        "@id(\"f\") forbid (principal, action, resource) when { context.layer == \"ebpf\" };\n",
    );
    let compiled = Arc::new(compile(&[("p.cedar", text.as_str())]));
    let sliced = Engine::with_policy(compiled.clone(), env());
    let full = Engine::with_policy(compiled, env()).slicing(false);
    for (agent, t, layer) in [
        ("a7", "t7", Layer::Sdk),
        ("a7", "t8", Layer::Sdk),
        ("a999", "t999", Layer::Ebpf),
    ] {
        let a = sliced.decide(&Agent::new(agent), &tool(t), layer);
        let b = full.decide(&Agent::new(agent), &tool(t), layer);
        assert_eq!(
            (a.effect, a.reason, &a.policy_ids),
            (b.effect, b.reason, &b.policy_ids)
        );
    }
}

/// `context has <attribute>` is folded to a constant per action kind on the fast path: for every
/// kind (optional fields set and unset) and every context attribute, it must answer as Cedar
/// does on the context the request builder makes.
#[test]
fn context_has_folded_per_kind_agrees_with_cedar() {
    let args = |pairs: &[(&str, i64)]| -> serde_json::Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect()
    };
    let actions = [
        tool("t"),
        Action::ModelCall {
            provider: "openai".into(),
            model: "m".into(),
            input_tokens: Some(3),
            output_tokens: Some(4),
            tools: vec!["t".into()],
        },
        Action::ModelCall {
            provider: "openai".into(),
            model: "m".into(),
            input_tokens: None,
            output_tokens: None,
            tools: Vec::new(),
        },
        Action::HttpRequest {
            method: "GET".into(),
            scheme: "https".into(),
            host: "h.example".into(),
            port: 443,
            path: "/".into(),
        },
        Action::McpCall {
            server: "s".into(),
            method: "tools/call".into(),
            tool: Some("t".into()),
            args: Some(args(&[("x", 1)])),
        },
        Action::McpCall {
            server: "s".into(),
            method: "tools/list".into(),
            tool: None,
            args: None,
        },
        Action::ProcessExec {
            path: "/bin/true".into(),
            argv: vec!["true".into()],
        },
        Action::FileAccess {
            path: "/p".into(),
            access: FileAccessMode::Read,
        },
        Action::NetConnect {
            addr: "10.0.0.1".into(),
            port: 80,
            proto: NetProto::Tcp,
        },
        Action::NetConnect {
            addr: "h.example".into(),
            port: 80,
            proto: NetProto::Udp,
        },
    ];
    let attributes = [
        "layer",
        "session_id",
        "budget",
        "time",
        "tool",
        "args_json",
        "provider",
        "model",
        "input_tokens",
        "output_tokens",
        "tools",
        "method",
        "scheme",
        "host",
        "port",
        "path",
        "url",
        "server",
        "argv",
        "command",
        "access",
        "addr",
        "proto",
        "ip",
        "nothing",
    ];
    for attr in attributes {
        for negate in [false, true] {
            let cond = if negate {
                format!("!(context has {attr}) && context.layer == \"sdk\"")
            } else {
                format!("context has {attr} || context.layer == \"proxy\"")
            };
            let text = format!(
                "permit (principal, action, resource);\nforbid (principal, action, resource) when {{ {cond} }};"
            );
            let compiled = Arc::new(compile(&[("p.cedar", text.as_str())]));
            let sliced = Engine::with_policy(compiled.clone(), env());
            let full = Engine::with_policy(compiled, env()).slicing(false);
            for action in &actions {
                for session in [None, Some("s1")] {
                    let mut agent = Agent::new("a1");
                    agent.session_id = session.map(str::to_owned);
                    let a = sliced.decide(&agent, action, Layer::Sdk);
                    let b = full.decide(&agent, action, Layer::Sdk);
                    assert_eq!(
                        (a.effect, a.reason),
                        (b.effect, b.reason),
                        "{cond} on {action:?} ({session:?})"
                    );
                }
            }
        }
    }
}
