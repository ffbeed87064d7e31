//! Policy sets for the decision benchmarks: the shapes of `../shared/bench/cedar_policies.py`
//! (the peers' sets), written against Agent Assembly's schema so the engine can load them.
//! Same N, same scopes and effects in the same proportions; conditions read our context.
#![allow(dead_code)]

/// Policy `i` of a set of `n` (kind = i % 10, as in the peer generator).
pub fn policy(i: usize) -> String {
    match i % 10 {
        0 | 3 | 6 => format!(
            "@id(\"p{i}\")\npermit (principal == Agent::\"a{i}\", action == Action::\"tool_call\", resource == Tool::\"t{i}\")\n\
             when {{ resource.hasTag(\"x\") && context.time.hour < 100 && context.budget.calls_remaining >= 0 }};"
        ),
        1 => format!(
            "@id(\"p{i}\")\npermit (principal == Agent::\"a{i}\", action == Action::\"http_request\", resource == Host::\"h{i}.example\")\n\
             when {{ context.method == \"GET\" && context.port < {} }};",
            100 + i
        ),
        2 | 7 => format!(
            "@id(\"p{i}\")\nforbid (principal, action in [Action::\"tool_call\", Action::\"process_exec\"], resource)\n\
             when {{ (context has args_json && context.args_json like \"*\\\"x\\\":{}*\") || (context has path && context.path like \"/etc/*\") }};",
            1000 + i
        ),
        4 => format!(
            "@id(\"p{i}\")\nforbid (principal, action, resource)\n\
             when {{ context.layer == \"high\" && context.budget.utilization_pct > {i} }};"
        ),
        5 => format!(
            "@id(\"p{i}\")\npermit (principal == Agent::\"a{i}\", action == Action::\"process_exec\", resource == Path::\"/t{i}\")\n\
             when {{ context.command like \"*sandbox*\" && context.time.hour < 100 }};"
        ),
        8 => format!(
            "@id(\"p{i}\")\nforbid (principal == Agent::\"a{i}\", action, resource)\nunless {{ context.layer == \"sdk\" }};"
        ),
        _ => format!(
            "@id(\"p{i}\")\npermit (principal is Agent, action == Action::\"tool_call\", resource == Tool::\"t{i}\")\n\
             when {{ context.time.hour < 100 && context.budget.calls_remaining < {} }};",
            50 + i
        ),
    }
}

/// The last policy: the one that permits the benchmark request.
pub fn target(i: usize) -> String {
    format!(
        "@id(\"p{i}\")\npermit (principal == Agent::\"a{i}\", action == Action::\"tool_call\", resource == Tool::\"t{i}\")\n\
         when {{ resource.hasTag(\"x\") && context.time.hour < 100 && context.budget.calls_remaining >= 0 }};"
    )
}

/// All `n` policies.
pub fn policy_text(n: usize) -> String {
    let mut parts: Vec<String> = (0..n.saturating_sub(1)).map(policy).collect();
    parts.push(target(n - 1));
    parts.join("\n\n") + "\n"
}

/// The request: agent `a<n-1>` calls tool `t<n-1>` with x=42, y=7, path.
pub fn request(n: usize) -> (String, String) {
    let t = n - 1;
    (
        format!("a{t}"),
        format!(
            r#"{{"kind":"tool_call","tool":"t{t}","args":{{"x":42,"y":7,"path":"/tmp/work/file.txt"}}}}"#
        ),
    )
}

/// A budget that applies to every call and never runs out during a run.
pub const BUDGETS: &str =
    "[[budget]]\nname = \"calls\"\nper = \"agent\"\nwindow = \"total\"\ncalls = 1000000000000\n";
