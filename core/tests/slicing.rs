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

#[derive(Debug, Clone)]
enum Act {
    Any,
    Tool,
    File,
    Both,
}

fn principal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("principal".to_owned()),
        (0..4u8).prop_map(|i| format!("principal == Agent::\"a{i}\"")),
        (0..2u8).prop_map(|i| format!("principal in Team::\"t{i}\"")),
        Just("principal is Agent".to_owned()),
        (0..2u8).prop_map(|i| format!("principal is Agent in Team::\"t{i}\"")),
    ]
}

fn policy() -> impl Strategy<Value = String> {
    let act = prop_oneof![
        Just(Act::Any),
        Just(Act::Tool),
        Just(Act::File),
        Just(Act::Both)
    ];
    (any::<bool>(), principal(), act, 0..5u8, 0..6u8).prop_map(|(permit, p, act, r, cond)| {
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
        let cond = match cond {
            0 => "",
            1 => " when { context.layer == \"sdk\" }",
            2 => " when { principal.hasTag(\"env\") && principal.getTag(\"env\") == \"prod\" }",
            3 => " unless { context.budget.exceeded }",
            // Raises an overflow error whenever its scope matches.
            4 => " when { context.time.epoch_secs * 9223372036854775807 > 0 }",
            _ => " when { context.time.hour < 12 }",
        };
        format!(
            "{} ({p}, {a}, {res}){cond};",
            if permit { "permit" } else { "forbid" }
        )
    })
}

fn request() -> impl Strategy<Value = (Agent, Action, Layer)> {
    (
        0..5u8,
        0..3u8,
        any::<bool>(),
        any::<bool>(),
        0..5u8,
        any::<bool>(),
    )
        .prop_map(|(a, team, prod, is_tool, r, sdk)| {
            let mut agent = Agent::new(format!("a{a}"));
            if team < 2 {
                agent.team = Some(format!("t{team}"));
            }
            if prod {
                agent.labels.insert("env".into(), "prod".into());
            }
            let action = if is_tool {
                tool(&format!("t{r}"))
            } else {
                Action::FileAccess {
                    path: format!("/p{r}"),
                    access: FileAccessMode::Write,
                }
            };
            (agent, action, if sdk { Layer::Sdk } else { Layer::Proxy })
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

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
            prop_assert_eq!((a.effect, a.reason, ids_a), (b.effect, b.reason, ids_b), "{}\n{:?}", text, (agent, action));
        }
    }
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
