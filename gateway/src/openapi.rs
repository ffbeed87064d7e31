//! The OpenAPI 3.1 description of the API, generated from the same types the server uses
//! (schemas by schemars; paths listed here). `docs/openapi.yaml` is its output, and a test
//! checks the two agree; schemathesis then checks the live server against it.

// PANIC SAFETY: `value["key"] = …` only panics on non-objects; every value indexed here is an
// object literal built in this module.
#![allow(clippy::indexing_slicing)]

use serde_json::{Map, Value, json};

use aa_core::wire::{
    AgentInfo, Announced, Announcement, AuditPage, DecideRequest, ErrorBody, EventsRequest,
    EventsResponse, Health, PolicyDocument, PolicyVersion, PublicKey, RegisterRequest, Registered,
    Rejection, WhoAmI,
};

/// The document as JSON.
pub fn document() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas/".into();
    });
    let mut g = schemars::SchemaGenerator::new(settings);
    macro_rules! reg {
        ($($t:ty),* $(,)?) => {$( let _ = g.subschema_for::<$t>(); )*};
    }
    reg!(
        DecideRequest,
        aa_core::Decision,
        EventsRequest<'static>,
        EventsResponse,
        Rejection,
        PolicyDocument,
        aa_core::PolicyBundle,
        AgentInfo,
        Announcement,
        Announced,
        RegisterRequest,
        Registered,
        AuditPage,
        PublicKey,
        aa_core::audit::VerifyReport,
        aa_core::Checkpoint,
        aa_core::budget::BudgetStatus,
        Health,
        WhoAmI,
        PolicyVersion,
        ErrorBody,
    );
    let schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Agent Assembly gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Registry, policy distribution, shared budgets, remote decisions and the tamper-evident audit store. Every error is {\"error\": {\"code\", \"message\"}}.",
        },
        "servers": [{"url": "http://127.0.0.1:7700"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
        "paths": paths(),
    })
}

/// The document as YAML.
pub fn yaml() -> String {
    serde_norway::to_string(&document()).unwrap_or_default()
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_body(schema: Value) -> Value {
    json!({"content": {"application/json": {"schema": schema}}})
}

fn ok(description: &str, schema: Value) -> Value {
    let mut r = json_body(schema);
    r["description"] = json!(description);
    r
}

fn error(description: &str) -> Value {
    ok(description, schema_ref("Error"))
}

/// Responses every authenticated operation may give.
fn errors(extra: &[(&str, &str)]) -> Map<String, Value> {
    let mut m = Map::new();
    for (code, d) in [
        ("400", "Malformed request (bad JSON, bad query)"),
        ("401", "No or unknown bearer token"),
        ("403", "The token may not do this"),
        ("404", "Not found"),
        ("408", "Request timed out"),
        ("413", "Body too large"),
        ("415", "Body is not JSON"),
        ("503", "Storage or the audit writer is unavailable; retry"),
    ] {
        m.insert(code.into(), error(d));
    }
    for (code, d) in extra {
        m.insert((*code).into(), error(d));
    }
    m
}

fn op(summary: &str, ok_code: &str, ok_resp: Value, extra: &[(&str, &str)]) -> Value {
    let mut responses = errors(extra);
    responses.insert(ok_code.into(), ok_resp);
    json!({"summary": summary, "responses": responses})
}

fn with_body(mut op: Value, schema: Value) -> Value {
    let mut body = json_body(schema);
    body["required"] = json!(true);
    op["requestBody"] = body;
    op
}

fn with_params(mut op: Value, params: Value) -> Value {
    op["parameters"] = params;
    op
}

fn paths() -> Value {
    let array = |name: &str| json!({"type": "array", "items": schema_ref(name)});
    let id_param =
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let enum_of = |values: &[&str]| json!({"type": "string", "enum": values});
    let mut policy_get = op(
        "The active policy bundle (ETag = version; If-None-Match → 304; ?wait=N long-polls for a new version)",
        "200",
        ok("The policy", schema_ref("PolicyDocument")),
        &[],
    );
    policy_get["responses"]["304"] =
        json!({"description": "Not modified (the version in If-None-Match is current)"});
    policy_get = with_params(
        policy_get,
        json!([
            {"name": "wait", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}},
            {"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string"}}
        ]),
    );
    let mut metrics = json!({
        "summary": "Prometheus metrics (OpenMetrics text)",
        "security": [],
        "responses": {"200": {"description": "Metrics", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}}
    });
    metrics["responses"]["408"] = error("Request timed out");
    let mut healthz = json!({"summary": "Liveness", "security": [], "responses": {"200": ok("Healthy", schema_ref("Health"))}});
    healthz["responses"]["408"] = error("Request timed out");
    healthz["responses"]["503"] = ok(
        "A replica out of step with its database (status `stale`): it refuses agents and decisions until the database answers",
        schema_ref("Health"),
    );
    json!({
        "/v1/decide": {"post": with_body(op("Decide an action (remote mode); the decision is recorded", "200", ok("The decision", schema_ref("Decision")), &[]), schema_ref("DecideRequest"))},
        "/v1/events": {"post": with_body(op("Ingest audit events (idempotent by id; acknowledged = committed)", "200", ok("Acks", schema_ref("EventsResponse")), &[]), schema_ref("EventsRequest"))},
        "/v1/policy": {
            "get": policy_get,
            "put": with_body(op("Replace the policy (admin); an invalid bundle is rejected and the old one stays", "200", ok("The new version", schema_ref("Version")), &[("422", "The policy does not validate; details.diagnostics has file:line:column")]), schema_ref("PolicyBundle")),
        },
        "/v1/agents": {
            "get": op("Registered agents (admin)", "200", ok("Agents", array("AgentInfo")), &[]),
            "post": with_body(op("Register an agent (admin); its token is returned once", "201", ok("Registered", schema_ref("Registered")), &[("409", "Already registered (pass rotate)")]), schema_ref("RegisterRequest")),
        },
        "/v1/agents/{id}/suspend": {"post": with_params(op("Kill switch on: every action of the agent is denied (admin)", "200", ok("The agent", schema_ref("AgentInfo")), &[]), id_param.clone())},
        "/v1/agents/{id}/resume": {"post": with_params(op("Kill switch off (admin)", "200", ok("The agent", schema_ref("AgentInfo")), &[]), id_param.clone())},
        "/v1/agents/{id}/revoke": {"post": with_params(op("Revoke the agent's token at once; register with rotate for a new one (admin)", "200", ok("The agent", schema_ref("AgentInfo")), &[]), id_param.clone())},
        "/v1/agents/{id}/announcements": {"get": with_params(op("The agent's latest SDK announcements, oldest first (admin)", "200", ok("Announcements", array("Announced")), &[]), id_param)},
        "/v1/announce": {"post": with_body(op("An SDK announces itself at start (the agent's own token): the run reports L3Native", "204", json!({"description": "Noted"}), &[]), schema_ref("Announcement"))},
        "/v1/budgets": {"get": op("Live usage against every budget (admin)", "200", ok("Budgets", array("BudgetStatus")), &[])},
        "/v1/audit": {"get": with_params(op("Audit records, filtered, oldest first, with a cursor (admin)", "200", ok("A page", schema_ref("AuditPage")), &[]), json!([
            {"name": "agent", "in": "query", "required": false, "schema": {"type": "string"}},
            {"name": "layer", "in": "query", "required": false, "schema": enum_of(&["sdk", "proxy", "ebpf"])},
            {"name": "decision", "in": "query", "required": false, "schema": enum_of(&["allow", "deny"])},
            {"name": "kind", "in": "query", "required": false, "schema": enum_of(&["tool_call", "model_call", "http_request", "mcp_call", "process_exec", "file_access", "net_connect"])},
            {"name": "since", "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"}},
            {"name": "until", "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"}},
            {"name": "cursor", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}},
            {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
        ]))},
        "/v1/audit/verify": {"get": op("Verify the stored chain and checkpoints (admin)", "200", ok("The verdict", schema_ref("VerifyReport")), &[])},
        "/v1/audit/checkpoints": {"get": op("Signed checkpoints (admin)", "200", ok("Checkpoints", array("Checkpoint")), &[])},
        "/v1/audit/public-key": {"get": op("The checkpoint signer's Ed25519 public key", "200", ok("Key", schema_ref("PublicKey")), &[])},
        "/v1/audit/stream": {"get": with_params({
            let mut o = op("Server-sent events: records after Last-Event-ID (or ?after=), then live (admin)", "200", json!({"description": "An event stream; each event's id is the record's seq", "content": {"text/event-stream": {"schema": {"type": "string"}}}}), &[]);
            o["responses"].as_object_mut().map(|r| r.remove("408"));
            o
        }, json!([
            {"name": "after", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}},
            {"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "string"}}
        ]))},
        "/v1/whoami": {"get": op("Who the bearer token belongs to (admin, or which agent)", "200", ok("Identity", schema_ref("WhoAmI")), &[])},
        "/metrics": {"get": metrics},
        "/healthz": {"get": healthz},
    })
}
