#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aa_core::*;
use common::*;

#[test]
fn no_policy_fails_closed_unless_fail_open() {
    let engine = Engine::new(env());
    let d = engine.decide(&Agent::new("a"), &tool("t"), Layer::Sdk);
    assert_eq!((d.effect, d.reason), (Effect::Deny, Reason::Unavailable));
    assert!(!d.fail_open);

    let engine = Engine::new(env()).fail_open(true);
    let d = engine.decide(&Agent::new("a"), &tool("t"), Layer::Sdk);
    assert_eq!((d.effect, d.reason), (Effect::Allow, Reason::Unavailable));
    assert!(d.fail_open);
}

#[test]
fn an_erroring_forbid_fails_closed() {
    // `context.input_tokens` is optional; guarded by `has` it validates, but a policy can still
    // raise at run time (here: integer overflow). Cedar alone would skip the erroring forbid and
    // allow; the engine denies.
    let policy = compile(&[(
        "p.cedar",
        r#"permit(principal, action, resource);
@id("overflow") forbid(principal, action == Action::"model_call", resource)
when { context has input_tokens && context.input_tokens * 9223372036854775807 > 0 };"#,
    )]);
    let engine = Engine::with_policy(policy, env());
    let call = action(r#"{"kind":"model_call","provider":"p","model":"m","input_tokens":2}"#);
    let d = engine.decide(&Agent::new("a"), &call, Layer::Sdk);
    assert_eq!(
        (d.effect, d.reason),
        (Effect::Deny, Reason::EvaluationError),
        "{d:?}"
    );
    assert!(d.message.contains("overflow"), "{}", d.message);
}

#[test]
fn suspended_agents_are_denied_everything() {
    let mut b = bundle(&[("p.cedar", "permit(principal, action, resource);")]);
    b.suspended.insert("rogue".into());
    let engine = Engine::with_policy(CompiledPolicy::compile(b).unwrap(), env());
    let d = engine.decide(&Agent::new("rogue"), &tool("t"), Layer::Ebpf);
    assert_eq!((d.effect, d.reason), (Effect::Deny, Reason::Suspended));
    assert!(
        engine
            .decide(&Agent::new("fine"), &tool("t"), Layer::Ebpf)
            .is_allowed()
    );
}

#[test]
fn bad_input_is_denied_with_a_typed_reason() {
    let engine = Engine::with_policy(
        compile(&[("p.cedar", "permit(principal, action, resource);")]),
        env(),
    );
    let d = engine.decide(&Agent::new(""), &tool("t"), Layer::Sdk);
    assert_eq!((d.effect, d.reason), (Effect::Deny, Reason::InvalidInput));
    let d = engine.decide(&Agent::new("a\nb"), &tool("t"), Layer::Sdk);
    assert_eq!(d.reason, Reason::InvalidInput);
    let d = engine.decide(&Agent::new("a"), &tool(&"x".repeat(10_000)), Layer::Sdk);
    assert_eq!(d.reason, Reason::InvalidInput);
}

#[test]
fn budgets_deny_by_name_reset_per_window_and_count_only_allowed_calls() {
    let mut b = bundle(&[(
        "p.cedar",
        "permit(principal, action, resource);\nforbid(principal, action, resource == Tool::\"no\");",
    )]);
    b.budgets = Some(
        "[[budget]]\nname = \"three-a-minute\"\nwindow = \"minute\"\ncalls = 3\nkinds = [\"tool_call\"]\n".into(),
    );
    let env = env();
    let engine = Engine::with_policy(CompiledPolicy::compile(b).unwrap(), env.clone());
    let a = Agent::new("a");
    for _ in 0..5 {
        // Denied by policy: never charged.
        assert!(!engine.decide(&a, &tool("no"), Layer::Sdk).is_allowed());
    }
    for _ in 0..3 {
        assert!(engine.decide(&a, &tool("yes"), Layer::Sdk).is_allowed());
    }
    let d = engine.decide(&a, &tool("yes"), Layer::Sdk);
    assert_eq!((d.effect, d.reason), (Effect::Deny, Reason::BudgetExceeded));
    assert_eq!(d.budget.as_deref(), Some("three-a-minute"));
    assert!(d.message.contains("3/3 calls this minute"), "{}", d.message);
    // Another agent has its own counter; other kinds are not counted.
    assert!(
        engine
            .decide(&Agent::new("b"), &tool("yes"), Layer::Sdk)
            .is_allowed()
    );
    let exec = action(r#"{"kind":"process_exec","path":"/bin/true"}"#);
    assert!(engine.decide(&a, &exec, Layer::Sdk).is_allowed());
    // The next minute starts afresh.
    env.set_now_ms(NOW + 60_000);
    assert!(engine.decide(&a, &tool("yes"), Layer::Sdk).is_allowed());
    let status = engine.budget_status();
    let mine = status.iter().find(|s| s.key == "agent:a").unwrap();
    assert_eq!((mine.calls_used, mine.calls_limit), (1, Some(3)));
}

#[test]
fn reported_usage_is_priced_and_charged() {
    let mut b = bundle(&[("p.cedar", "permit(principal, action, resource);")]);
    b.budgets = Some(
        "[[budget]]\nname = \"spend\"\nper = \"team\"\nwindow = \"day\"\ncost_usd = 1.0\n".into(),
    );
    let engine = Engine::with_policy(CompiledPolicy::compile(b).unwrap(), env());
    let a = Agent::new("a").with_team("t");
    let call = action(r#"{"kind":"model_call","provider":"openai","model":"gpt-4o-2024-08-06"}"#);
    let d = engine.decide(&a, &call, Layer::Proxy);
    assert!(d.is_allowed());
    // 100k output tokens of gpt-4o at $10/M = $1.00: the team budget is spent.
    let usage = Usage {
        input_tokens: 0,
        output_tokens: 100_000,
        cost_usd: None,
    };
    let outcome = Outcome {
        status: OutcomeStatus::Ok,
        duration_us: 1,
        result_size: None,
        error: None,
        usage: Some(usage),
    };
    engine.report(&a, &call, Layer::Proxy, &d, outcome).unwrap();
    let d = engine.decide(&Agent::new("b").with_team("t"), &call, Layer::Proxy);
    assert_eq!(d.reason, Reason::BudgetExceeded);
    assert!(
        d.message.contains("$1.000000 of $1.000000"),
        "{}",
        d.message
    );
}

#[test]
fn budget_state_reaches_the_policy() {
    let mut b = bundle(&[(
        "p.cedar",
        r#"permit(principal, action, resource);
@id("slow-down") forbid(principal, action, resource) when { context.budget.calls_remaining < 2 };"#,
    )]);
    b.budgets = Some("[[budget]]\nname = \"b\"\nwindow = \"total\"\ncalls = 5\n".into());
    let engine = Engine::with_policy(CompiledPolicy::compile(b).unwrap(), env());
    let a = Agent::new("a");
    let effects: Vec<Effect> = (0..5)
        .map(|_| engine.decide(&a, &tool("t"), Layer::Sdk).effect)
        .collect();
    assert_eq!(
        effects,
        [
            Effect::Allow,
            Effect::Allow,
            Effect::Allow,
            Effect::Allow,
            Effect::Deny
        ]
    );
}

#[test]
fn bad_budget_files_are_rejected_with_positions() {
    for (text, needle, line) in [
        (
            "[[budget]]\nname = \"x\"\nwindow = \"day\"\ncalls = -5\n",
            "calls must be ≥ 0, got -5",
            4,
        ),
        (
            "[[budget]]\nname = \"x\"\nwindow = \"fortnight\"\ncalls = 5\n",
            "fortnight",
            3,
        ),
        (
            "[[budget]]\nname = \"x\"\nwindow = \"day\"\n",
            "sets no limit",
            2,
        ),
        (
            "[[budget]]\nname = \"x\"\nwindow = \"day\"\ncalls = 1\nkinds = [\"tool_cal\"]\n",
            "unknown action kind",
            5,
        ),
        (
            "[[budget]]\nname = \"x\"\nwindow = \"day\"\ncost_usd = -1.0\n",
            "cost_usd",
            4,
        ),
    ] {
        let mut b = bundle(&[("p.cedar", "permit(principal, action, resource);")]);
        b.budgets = Some(text.into());
        let err = CompiledPolicy::compile(b).unwrap_err();
        let d = &err.diagnostics()[0];
        assert_eq!(d.file, "budgets.toml");
        assert!(d.message.contains(needle), "{}", d.message);
        assert_eq!(d.line, Some(line), "{d}");
    }
}

#[test]
fn bad_policies_are_rejected_with_positions() {
    let err = CompiledPolicy::compile(bundle(&[(
        "a.cedar",
        "permit(principal, action, resource)\nwhen { context.nope };",
    )]))
    .unwrap_err();
    let d = &err.diagnostics()[0];
    assert_eq!(
        (d.file.as_str(), d.line, d.column),
        ("a.cedar", Some(2), Some(8)),
        "{d}"
    );

    let err = CompiledPolicy::compile(bundle(&[(
        "b.cedar",
        "permit(principal, action, resource);\nforbid(principal,,);",
    )]))
    .unwrap_err();
    assert_eq!(err.diagnostics()[0].line, Some(2));

    let dup = "@id(\"x\") permit(principal, action, resource);\n@id(\"x\") forbid(principal, action, resource);";
    let err = CompiledPolicy::compile(bundle(&[("c.cedar", dup)])).unwrap_err();
    assert!(
        err.diagnostics()[0]
            .message
            .contains("duplicate policy id `x`")
    );

    let tpl = "permit(principal == ?principal, action, resource);";
    let err = CompiledPolicy::compile(bundle(&[("d.cedar", tpl)])).unwrap_err();
    assert!(err.diagnostics()[0].message.contains("templates"));

    assert!(matches!(
        CompiledPolicy::compile(PolicyBundle::default()),
        Err(PolicyError::NoPolicies(_))
    ));
}

#[test]
fn malformed_and_unknown_actions_are_typed_errors() {
    match Action::from_json(r#"{"kind":"teleport","to":"mars"}"#) {
        Err(ModelError::Shape(message)) => {
            assert!(message.contains("unknown variant `teleport`"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    match Action::from_json("{\"kind\":\"tool_call\",\n\"tool\": 5}") {
        Err(ModelError::Shape(message)) => assert!(message.contains("invalid type"), "{message}"),
        other => panic!("{other:?}"),
    }
    match Action::from_json("{\"kind\":\"tool_call\",\n\"tool\": ]") {
        Err(ModelError::Syntax { line, column, .. }) => assert_eq!((line, column), (2, 9)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Action::from_json("{"),
        Err(ModelError::Syntax { .. })
    ));
    assert!(matches!(
        Action::from_json(r#"{"kind":"tool_call","tool":"t","extra":1}"#),
        Err(ModelError::Shape(m)) if m.contains("extra")
    ));
    assert!(matches!(
        Action::from_json(r#"{"kind":"tool_call","tool":""}"#),
        Err(ModelError::Invalid { field: "tool", .. })
    ));
    assert!(matches!(
        Action::from_json(r#"{"kind":"net_connect","addr":"1.2.3.4","port":70000,"proto":"tcp"}"#),
        Err(ModelError::Shape(_))
    ));
}

/// Policy swaps while 4 threads decide: every decision is made against exactly one version and
/// reports it. Version A permits everything, version B forbids everything.
#[test]
fn decisions_see_one_consistent_version_during_swaps() {
    let a = Arc::new(compile(&[(
        "p.cedar",
        "@id(\"A\") permit(principal, action, resource);",
    )]));
    let b = Arc::new(compile(&[(
        "p.cedar",
        "@id(\"B-permit\") permit(principal, action, resource);\n@id(\"B\") forbid(principal, action, resource);",
    )]));
    let (va, vb) = (a.version().to_owned(), b.version().to_owned());
    assert_ne!(va, vb);
    let engine = Arc::new(Engine::with_policy(a.clone(), env()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let engine = engine.clone();
            let stop = stop.clone();
            let (va, vb) = (va.clone(), vb.clone());
            std::thread::spawn(move || {
                let (mut seen_a, mut seen_b) = (0u64, 0u64);
                let agent = Agent::new(format!("w{i}"));
                while !stop.load(Ordering::Relaxed) || seen_a + seen_b < 1000 {
                    let d = engine.decide(&agent, &tool("t"), Layer::Sdk);
                    let v = d.policy_version.clone().unwrap();
                    if v == va {
                        assert_eq!(
                            (d.effect, d.policy_ids.as_slice()),
                            (Effect::Allow, ["A".to_owned()].as_slice())
                        );
                        seen_a += 1;
                    } else {
                        assert_eq!(v, vb);
                        assert_eq!(
                            (d.effect, d.policy_ids.as_slice()),
                            (Effect::Deny, ["B".to_owned()].as_slice())
                        );
                        seen_b += 1;
                    }
                }
                (seen_a, seen_b)
            })
        })
        .collect();
    for i in 0..2000 {
        engine.swap_policy(if i % 2 == 0 { b.clone() } else { a.clone() });
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    let (mut total_a, mut total_b) = (0, 0);
    for w in workers {
        let (sa, sb) = w.join().unwrap();
        total_a += sa;
        total_b += sb;
    }
    assert!(
        total_a > 0 && total_b > 0,
        "both versions were seen: {total_a} / {total_b}"
    );
}
