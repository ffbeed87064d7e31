// The Agent Assembly policy sets of the decision benchmarks (aa-wasm, aa-node): the shapes of
// ../shared/bench/cedar_policies.py (the peers' sets: same N, scopes and effects in the same
// proportions) written against Agent Assembly's schema. A port of core/benches/policy_sets.rs.
export function policy(i) {
  switch (i % 10) {
    case 0: case 3: case 6: return target(i);
    case 1: return `@id("p${i}")\npermit (principal == Agent::"a${i}", action == Action::"http_request", resource == Host::"h${i}.example")\nwhen { context.method == "GET" && context.port < ${100 + i} };`;
    case 2: case 7: return `@id("p${i}")\nforbid (principal, action in [Action::"tool_call", Action::"process_exec"], resource)\nwhen { (context has args_json && context.args_json like "*\\"x\\":${1000 + i}*") || (context has path && context.path like "/etc/*") };`;
    case 4: return `@id("p${i}")\nforbid (principal, action, resource)\nwhen { context.layer == "high" && context.budget.utilization_pct > ${i} };`;
    case 5: return `@id("p${i}")\npermit (principal == Agent::"a${i}", action == Action::"process_exec", resource == Path::"/t${i}")\nwhen { context.command like "*sandbox*" && context.time.hour < 100 };`;
    case 8: return `@id("p${i}")\nforbid (principal == Agent::"a${i}", action, resource)\nunless { context.layer == "sdk" };`;
    default: return `@id("p${i}")\npermit (principal is Agent, action == Action::"tool_call", resource == Tool::"t${i}")\nwhen { context.time.hour < 100 && context.budget.calls_remaining < ${50 + i} };`;
  }
}
export function target(i) {
  return `@id("p${i}")\npermit (principal == Agent::"a${i}", action == Action::"tool_call", resource == Tool::"t${i}")\nwhen { resource.hasTag("x") && context.time.hour < 100 && context.budget.calls_remaining >= 0 };`;
}
export const policyText = (n) => [...Array(n - 1).keys()].map(policy).concat(target(n - 1)).join('\n\n') + '\n';
export const BUDGETS = '[[budget]]\nname = "calls"\nper = "agent"\nwindow = "total"\ncalls = 1000000000000\n';
