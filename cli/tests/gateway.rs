#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
//! The real `aasm gateway` process, over real HTTP.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ureq::http::{Method, StatusCode};

/// A small request builder over ureq, so each test reads as one chained call.
#[derive(Clone)]
struct Client(ureq::Agent);

struct Req {
    agent: ureq::Agent,
    request: ureq::http::request::Builder,
    body: Option<Vec<u8>>,
}

struct Resp(ureq::http::Response<ureq::Body>);

impl Client {
    fn request(&self, method: Method, url: String) -> Req {
        Req {
            agent: self.0.clone(),
            request: ureq::http::Request::builder().method(method).uri(url),
            body: None,
        }
    }

    fn get(&self, url: String) -> Req {
        self.request(Method::GET, url)
    }

    fn post(&self, url: String) -> Req {
        self.request(Method::POST, url)
    }
}

impl Req {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    fn bearer_auth(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    fn json<T: serde::Serialize>(mut self, body: &T) -> Self {
        self.body = Some(serde_json::to_vec(body).unwrap());
        self.header("content-type", "application/json")
    }

    fn body(mut self, body: &str) -> Self {
        self.body = Some(body.as_bytes().to_vec());
        self
    }

    fn send(self) -> Result<Resp, ureq::Error> {
        match self.body {
            Some(b) => self.agent.run(self.request.body(b).unwrap()),
            None => self.agent.run(self.request.body(()).unwrap()),
        }
        .map(Resp)
    }
}

impl Resp {
    fn status(&self) -> StatusCode {
        self.0.status()
    }

    fn headers(&self) -> &ureq::http::HeaderMap {
        self.0.headers()
    }

    fn json<T: serde::de::DeserializeOwned>(mut self) -> Result<T, ureq::Error> {
        self.0.body_mut().read_json()
    }

    fn text(mut self) -> Result<String, ureq::Error> {
        self.0.body_mut().read_to_string()
    }

    fn into_reader(self) -> impl Read {
        self.0.into_body().into_reader()
    }
}

const ADMIN: &str = "test-admin-token-0123456789";

struct Gateway {
    child: Option<Child>,
    url: String,
    db: PathBuf,
    http: Client,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn http(timeout: Duration) -> Client {
    Client(
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .proxy(None)
            // A fresh connection per request: some tests post bodies that a route does not
            // read, after which the server closes that connection.
            .max_idle_connections(0)
            .build()
            .into(),
    )
}

impl Gateway {
    fn start(db: &Path, policy: Option<&Path>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aasm"));
        cmd.args(["gateway", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(["--checkpoint-every", "50", "--log-format", "json"])
            .env("AA_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(p) = policy {
            cmd.arg("--policy").arg(p);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("no listen line: {line:?}"))
            .to_owned();
        Gateway {
            child: Some(child),
            url,
            db: db.to_owned(),
            http: http(Duration::from_secs(70)),
        }
    }

    fn req(&self, method: Method, path: &str, token: Option<&str>) -> Req {
        let r = self.http.request(method, format!("{}{path}", self.url));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let resp = self.req(Method::GET, path, token).send().unwrap();
        let status = resp.status();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let resp = self
            .req(Method::POST, path, token)
            .json(body)
            .send()
            .unwrap();
        let status = resp.status();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn register(&self, id: &str, team: Option<&str>) -> String {
        let (s, v) = self.post(
            "/v1/agents",
            Some(ADMIN),
            &json!({"agent_id": id, "team": team}),
        );
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    fn decide(&self, token: &str, agent: &str, action: Value) -> Value {
        let (s, v) = self.post(
            "/v1/decide",
            Some(token),
            &json!({"agent": agent, "action": action}),
        );
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    fn all_records(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = 0;
        loop {
            let (s, page) = self.get(
                &format!("/v1/audit?limit=1000&cursor={cursor}"),
                Some(ADMIN),
            );
            assert_eq!(s, StatusCode::OK, "{page}");
            out.extend(page["records"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_u64() {
                Some(c) => cursor = c,
                None => return out,
            }
        }
    }

    fn signal(&mut self, sig: i32) -> String {
        let mut child = self.child.take().unwrap();
        unsafe_kill(child.id(), sig);
        child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    }

    fn restart(mut self) -> Self {
        self.signal(libc::SIGTERM);
        Gateway::start(&self.db.clone(), None)
    }
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: u32, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn policy_dir(dir: &Path, cedar: &str, budgets: Option<&str>) -> PathBuf {
    let p = dir.join("policy");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("p.cedar"), cedar).unwrap();
    if let Some(b) = budgets {
        std::fs::write(p.join("budgets.toml"), b).unwrap();
    }
    p
}

fn tool(name: &str) -> Value {
    json!({"kind": "tool_call", "tool": name})
}

#[test]
fn auth_rules_hold_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        &dir.path().join("gw.db"),
        Some(&root().join("examples/policies/permissive")),
    );
    let a = gw.register("agent-a", Some("eng"));
    let b = gw.register("agent-b", None);

    // No token, a wrong token: 401 with a JSON error body.
    let (s, v) = gw.post(
        "/v1/decide",
        None,
        &json!({"agent": "agent-a", "action": tool("t")}),
    );
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "unauthorized");
    assert_eq!(
        gw.get("/v1/policy", Some("aa_not-a-real-token")).0,
        StatusCode::UNAUTHORIZED
    );

    // An agent decides and reports as itself, never as another agent.
    assert_eq!(gw.decide(&a, "agent-a", tool("t"))["effect"], "allow");
    let (s, v) = gw.post(
        "/v1/decide",
        Some(&a),
        &json!({"agent": "agent-b", "action": tool("t")}),
    );
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let event = |agent: &str, id: &str| {
        json!({"id": id, "ts": "2026-01-05T12:00:00.000Z", "agent_id": agent, "layer": "sdk", "action": tool("t"),
               "decision": {"effect": "allow", "reason": "permitted", "message": "m", "policy_ids": [], "decision_id": "d"}})
    };
    let (s, _) = gw.post(
        "/v1/events",
        Some(&a),
        &json!({"events": [event("agent-b", "e1")]}),
    );
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = gw.post(
        "/v1/events",
        Some(&b),
        &json!({"events": [event("agent-b", "e1")]}),
    );
    assert_eq!(s, StatusCode::OK, "{v}");

    // Agent tokens on admin routes: 403.
    for path in [
        "/v1/agents",
        "/v1/budgets",
        "/v1/audit",
        "/v1/audit/verify",
        "/v1/audit/checkpoints",
    ] {
        assert_eq!(gw.get(path, Some(&a)).0, StatusCode::FORBIDDEN, "{path}");
    }
    let (s, _) = gw.post("/v1/agents", Some(&a), &json!({"agent_id": "x"}));
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        gw.post("/v1/agents/agent-b/suspend", Some(&a), &json!({}))
            .0,
        StatusCode::FORBIDDEN
    );
    let put = gw
        .req(Method::PUT, "/v1/policy", Some(&a))
        .json(&json!({"files": {}}))
        .send()
        .unwrap();
    assert_eq!(put.status(), StatusCode::FORBIDDEN);
    // Agents may read the policy (local mode) and the public key.
    assert_eq!(gw.get("/v1/policy", Some(&a)).0, StatusCode::OK);
    assert_eq!(gw.get("/v1/audit/public-key", Some(&a)).0, StatusCode::OK);

    // Dot segments cannot name an agent: clients resolve them away, so its kill switch and
    // revocation (/v1/agents/{id}/…) would be out of reach.
    for id in [".", ".."] {
        let (s, v) = gw.post("/v1/agents", Some(ADMIN), &json!({"agent_id": id}));
        assert_eq!(s, StatusCode::BAD_REQUEST, "{id}: {v}");
    }

    // Malformed JSON is a 400 with a JSON body, never a 500.
    let resp = gw
        .req(Method::POST, "/v1/decide", Some(ADMIN))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.json::<Value>().unwrap()["error"]["code"],
        "bad_request"
    );
    let (s, v) = gw.post(
        "/v1/decide",
        Some(ADMIN),
        &json!({"agent": "a", "action": {"kind": "warp"}}),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Registering twice is a conflict; rotating issues a new token and the old one stops.
    assert_eq!(
        gw.post("/v1/agents", Some(ADMIN), &json!({"agent_id": "agent-b"}))
            .0,
        StatusCode::CONFLICT
    );
    let (s, v) = gw.post(
        "/v1/agents",
        Some(ADMIN),
        &json!({"agent_id": "agent-b", "rotate": true}),
    );
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(gw.get("/v1/policy", Some(&b)).0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        gw.get("/v1/policy", Some(v["token"].as_str().unwrap())).0,
        StatusCode::OK
    );

    // Health and metrics need no token; metrics count decisions by result and layer.
    assert_eq!(gw.get("/healthz", None).1["status"], "ok");
    let metrics = gw
        .req(Method::GET, "/metrics", None)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("aa_decisions_total{effect=\"allow\",reason=\"permitted\",layer=\"sdk\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("aa_decision_seconds_bucket"));
    assert!(metrics.contains("aa_writer_queue_depth"));
}

#[test]
fn tokens_and_secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(
        &dir.path().join("gw.db"),
        Some(&root().join("examples/policies/permissive")),
    );
    let a = gw.register("agent-a", None);
    gw.decide(&a, "agent-a", tool("t"));
    gw.get("/v1/policy", Some("aa_wrong_token_value"));
    let log = gw.signal(libc::SIGTERM);
    assert!(log.contains("agent registered"), "{log}");
    for secret in [ADMIN, a.as_str(), "aa_wrong_token_value"] {
        assert!(!log.contains(secret), "a token leaked into the log");
    }
    let key = std::fs::read_to_string(dir.path().join("gw.db.key")).unwrap();
    assert!(!log.contains(key.trim()));
}

#[test]
fn policy_etag_long_poll_and_bad_policy_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Arc::new(Gateway::start(
        &dir.path().join("gw.db"),
        Some(&root().join("examples/policies/permissive")),
    ));
    let resp = gw
        .req(Method::GET, "/v1/policy", Some(ADMIN))
        .send()
        .unwrap();
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let doc: Value = resp.json().unwrap();
    let v1 = doc["version"].as_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{v1}\""));
    let resp = gw
        .req(Method::GET, "/v1/policy", Some(ADMIN))
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);

    // A bad policy is rejected with file:line:column diagnostics, and the old one stays.
    let bad = json!({"files": {"bad.cedar": "permit(principal, action, resource)\nwhen { context.nope };"}});
    let resp = gw
        .req(Method::PUT, "/v1/policy", Some(ADMIN))
        .json(&bad)
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = resp.json().unwrap();
    let d = &v["error"]["details"]["diagnostics"][0];
    assert_eq!(
        (d["file"].as_str(), d["line"].as_u64(), d["column"].as_u64()),
        (Some("bad.cedar"), Some(2), Some(8)),
        "{v}"
    );
    assert_eq!(gw.get("/v1/policy", Some(ADMIN)).1["version"], v1.as_str());
    assert_eq!(gw.decide(ADMIN, "x", tool("t"))["effect"], "allow");

    // A long poll returns as soon as a new version is put.
    let poller = {
        let gw = gw.clone();
        let etag = etag.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let resp = gw
                .req(Method::GET, "/v1/policy?wait=30", Some(ADMIN))
                .header("if-none-match", &etag)
                .send()
                .unwrap();
            (
                resp.status(),
                resp.json::<Value>().unwrap(),
                started.elapsed(),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let strict = json!({"files": {"p.cedar": "@id(\"only-calc\") permit(principal, action == Action::\"tool_call\", resource == Tool::\"calc\");"}});
    let resp = gw
        .req(Method::PUT, "/v1/policy", Some(ADMIN))
        .json(&strict)
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v2 = resp.json::<Value>().unwrap()["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, doc, waited) = poller.join().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["version"], v2.as_str());
    assert!(
        waited < Duration::from_secs(10),
        "the long poll waited {waited:?}"
    );
    assert_eq!(gw.decide(ADMIN, "x", tool("t"))["reason"], "no_permit");
    assert_eq!(gw.decide(ADMIN, "x", tool("calc"))["effect"], "allow");
}

#[test]
fn kill_switch_denies_on_every_layer_and_changes_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        &dir.path().join("gw.db"),
        Some(&root().join("examples/policies/permissive")),
    );
    let rogue = gw.register("rogue", None);
    let v1 = gw.get("/v1/policy", Some(ADMIN)).1["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = gw.post("/v1/agents/rogue/suspend", Some(ADMIN), &json!({}));
    assert_eq!((s, v["suspended"].as_bool()), (StatusCode::OK, Some(true)));
    let doc = gw.get("/v1/policy", Some(&rogue)).1;
    assert_ne!(
        doc["version"],
        v1.as_str(),
        "suspending changes the policy version clients poll"
    );
    assert_eq!(doc["bundle"]["suspended"], json!(["rogue"]));
    for layer in ["sdk", "proxy", "ebpf"] {
        let (_, d) = gw.post(
            "/v1/decide",
            Some(&rogue),
            &json!({"agent": "rogue", "layer": layer, "action": tool("t")}),
        );
        assert_eq!(
            (d["effect"].as_str(), d["reason"].as_str()),
            (Some("deny"), Some("suspended")),
            "{layer}"
        );
    }
    assert_eq!(
        gw.post("/v1/agents/nobody/suspend", Some(ADMIN), &json!({}))
            .0,
        StatusCode::NOT_FOUND
    );
    gw.post("/v1/agents/rogue/resume", Some(ADMIN), &json!({}));
    assert_eq!(gw.decide(&rogue, "rogue", tool("t"))["effect"], "allow");
    // Suspension survives a restart.
    gw.post("/v1/agents/rogue/suspend", Some(ADMIN), &json!({}));
    let gw = gw.restart();
    assert_eq!(gw.decide(&rogue, "rogue", tool("t"))["reason"], "suspended");
}

#[test]
fn fifty_concurrent_decides_against_a_budget_of_ten_allow_exactly_ten() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_dir(
        dir.path(),
        "permit(principal, action, resource);",
        Some("[[budget]]\nname = \"ten\"\nwindow = \"total\"\ncalls = 10\n"),
    );
    let gw = Arc::new(Gateway::start(&dir.path().join("gw.db"), Some(&policy)));
    let token = gw.register("busy", None);
    let barrier = Arc::new(std::sync::Barrier::new(50));
    let results = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let (gw, token, barrier, results) =
                (gw.clone(), token.clone(), barrier.clone(), results.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let d = gw.decide(&token, "busy", tool("t"));
                results.lock().unwrap().push(d);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let results = results.lock().unwrap();
    let allowed = results.iter().filter(|d| d["effect"] == "allow").count();
    assert_eq!(allowed, 10);
    assert!(
        results
            .iter()
            .filter(|d| d["effect"] == "deny")
            .all(|d| d["budget"] == "ten")
    );
    let budgets = gw.get("/v1/budgets", Some(ADMIN)).1;
    assert_eq!(budgets[0]["calls_used"], 10);
    assert_eq!(budgets[0]["calls_limit"], 10);

    // Usage reported by events is charged too.
    let policy = policy_dir(
        dir.path(),
        "permit(principal, action, resource);",
        Some("[[budget]]\nname = \"tokens\"\nwindow = \"day\"\ntokens = 1000\n"),
    );
    let bundle = json!({"files": {"p.cedar": std::fs::read_to_string(policy.join("p.cedar")).unwrap()},
                        "budgets": std::fs::read_to_string(policy.join("budgets.toml")).unwrap()});
    assert_eq!(
        gw.req(Method::PUT, "/v1/policy", Some(ADMIN))
            .json(&bundle)
            .send()
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let call = json!({"kind": "model_call", "provider": "openai", "model": "gpt-4o"});
    assert_eq!(gw.decide(&token, "busy", call.clone())["effect"], "allow");
    let outcome_event = json!({"events": [{"id": "usage-1", "ts": "2026-01-05T12:00:00.000Z", "agent_id": "busy", "layer": "proxy",
        "action": call, "decision": {"effect": "allow", "reason": "permitted", "message": "m", "policy_ids": [], "decision_id": "d1"},
        "outcome": {"status": "ok", "duration_us": 5, "usage": {"input_tokens": 700, "output_tokens": 400}}}]});
    assert_eq!(
        gw.post("/v1/events", Some(&token), &outcome_event).0,
        StatusCode::OK
    );
    // Replaying the same event does not charge twice (and is not stored twice).
    let (_, v) = gw.post("/v1/events", Some(&token), &outcome_event);
    assert_eq!(v["duplicates"], 1);
    let d = gw.decide(
        &token,
        "busy",
        json!({"kind": "model_call", "provider": "openai", "model": "gpt-4o"}),
    );
    assert_eq!(
        (d["reason"].as_str(), d["budget"].as_str()),
        (Some("budget_exceeded"), Some("tokens"))
    );
    let b = gw.get("/v1/budgets", Some(ADMIN)).1;
    assert_eq!(b[0]["tokens_used"], 1100);
}

#[test]
fn a_combined_event_counts_its_call_and_charges_its_usage_once() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_dir(
        dir.path(),
        "permit(principal, action, resource);",
        Some("[[budget]]\nname = \"mixed\"\nwindow = \"day\"\ncalls = 100\ntokens = 100000\n"),
    );
    let gw = Gateway::start(&dir.path().join("gw.db"), Some(&policy));
    let token = gw.register("local", None);
    let event = |id: &str, decision: &str, outcome: bool, combined: bool| {
        let mut e = json!({"id": id, "ts": "2026-01-05T12:00:00.000Z", "agent_id": "local", "layer": "proxy",
            "action": {"kind": "model_call", "provider": "openai", "model": "gpt-4o"},
            "decision": {"effect": "allow", "reason": "permitted", "message": "m", "policy_ids": [], "decision_id": decision}});
        if outcome {
            e["outcome"] = json!({"status": "ok", "duration_us": 5, "usage": {"input_tokens": 60, "output_tokens": 40}});
        }
        if combined {
            e["combined"] = json!(true);
        }
        e
    };
    let used = || {
        let b = gw.get("/v1/budgets", Some(ADMIN)).1;
        (
            b[0]["calls_used"].as_u64().unwrap(),
            b[0]["tokens_used"].as_u64().unwrap(),
        )
    };
    let post = |events: Value| {
        let (s, v) = gw.post("/v1/events", Some(&token), &json!({"events": events}));
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    };
    // A decision and its outcome in one record: one call and its tokens.
    post(json!([event("c1", "d1", true, true)]));
    assert_eq!(used(), (1, 100));
    // The same pair as two records charges the same.
    post(json!([
        event("p1", "d2", false, false),
        event("p2", "d2", true, false)
    ]));
    assert_eq!(used(), (2, 200));
    // Replayed, nothing is charged again; the stored record keeps `combined`, in the chain.
    assert_eq!(
        post(json!([event("c1", "d1", true, true)]))["duplicates"],
        1
    );
    assert_eq!(used(), (2, 200));
    let recs = gw.get("/v1/audit?limit=10", Some(ADMIN)).1;
    assert_eq!(recs["records"][0]["combined"], true, "{recs}");
    assert!(recs["records"][1].get("combined").is_none(), "{recs}");
    assert_eq!(gw.get("/v1/audit/verify", Some(ADMIN)).1["ok"], true);
    // `combined` without an outcome is refused, alone.
    let v = post(json!([event("bad", "d3", false, true)]));
    assert_eq!(v["rejected"][0]["id"], "bad", "{v}");
    assert_eq!(used(), (2, 200));
}

#[test]
fn events_are_idempotent_and_the_audit_api_filters_pages_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        &dir.path().join("gw.db"),
        Some(&root().join("examples/policies/permissive")),
    );
    let token = gw.register("reporter", None);
    let events: Vec<Value> = (0..120)
        .map(|i| {
            let (layer, effect) = if i % 3 == 0 { ("ebpf", "deny") } else { ("proxy", "allow") };
            json!({"id": format!("ev-{i}"), "ts": format!("2026-01-05T12:{:02}:00.000Z", i % 60), "agent_id": "reporter", "layer": layer,
                   "action": {"kind": "net_connect", "addr": "10.0.0.1", "port": 443, "proto": "tcp"},
                   "decision": {"effect": effect, "reason": if effect == "deny" { "forbidden" } else { "permitted" }, "message": "m", "policy_ids": [], "decision_id": format!("d{i}")}})
        })
        .collect();
    let (s, v) = gw.post("/v1/events", Some(&token), &json!({"events": events}));
    assert_eq!(
        (s, v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (StatusCode::OK, Some(120), Some(0))
    );
    let seqs: Vec<u64> = v["acks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=120).collect::<Vec<_>>());
    // The same batch again: acknowledged, nothing stored twice, same seqs.
    let (_, again) = gw.post("/v1/events", Some(&token), &json!({"events": events}));
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(120))
    );
    assert_eq!(again["acks"][5]["seq"], 6);
    assert_eq!(gw.all_records().len(), 120);

    // Filters and cursor pagination.
    let (_, page) = gw.get(
        "/v1/audit?layer=ebpf&decision=deny&kind=net_connect&agent=reporter&limit=15",
        Some(ADMIN),
    );
    assert_eq!(page["records"].as_array().unwrap().len(), 15);
    assert!(
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["layer"] == "ebpf" && r["decision"]["effect"] == "deny")
    );
    let cursor = page["next_cursor"].as_u64().unwrap();
    let (_, page2) = gw.get(
        &format!("/v1/audit?layer=ebpf&limit=100&cursor={cursor}"),
        Some(ADMIN),
    );
    assert_eq!(page2["records"].as_array().unwrap().len(), 40 - 15);
    assert!(page2.get("next_cursor").is_none());
    let (_, timed) = gw.get(
        "/v1/audit?since=2026-01-05T12:10:00Z&until=2026-01-05T12:20:00Z&limit=1000",
        Some(ADMIN),
    );
    assert_eq!(timed["records"].as_array().unwrap().len(), 20);
    assert_eq!(
        gw.get("/v1/audit?since=yesterday", Some(ADMIN)).0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        gw.get("/v1/audit?limit=0", Some(ADMIN)).0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        gw.get("/v1/audit?layer=kernel", Some(ADMIN)).0,
        StatusCode::BAD_REQUEST
    );

    // The verify endpoint checks the whole chain with the checkpoints.
    let (_, report) = gw.get("/v1/audit/verify", Some(ADMIN));
    assert_eq!(
        (report["ok"].as_bool(), report["records"].as_u64()),
        (Some(true), Some(120)),
        "{report}"
    );
    assert_eq!(
        report["sealed_seq"].as_u64(),
        Some(120),
        "a checkpoint follows the batch"
    );

    // SSE: resume after seq 118 with Last-Event-ID, then see a new record live.
    let resp = gw
        .req(Method::GET, "/v1/audit/stream", Some(ADMIN))
        .header("last-event-id", "118")
        .send()
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut lines = BufReader::new(resp.into_reader()).lines();
    let mut ids = Vec::new();
    let mut next_id = || loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(id) = line.strip_prefix("id:") {
            return id.trim().parse::<u64>().unwrap();
        }
    };
    ids.push(next_id());
    ids.push(next_id());
    let (_, _) = gw.post("/v1/events", Some(&token), &json!({"events": [{"id": "live-1", "ts": "2026-01-05T13:00:00.000Z", "agent_id": "reporter", "layer": "sdk",
        "action": {"kind": "tool_call", "tool": "t"}, "decision": {"effect": "allow", "reason": "permitted", "message": "m", "policy_ids": [], "decision_id": "dl"}}]}));
    ids.push(next_id());
    assert_eq!(ids, vec![119, 120, 121]);
}

#[test]
fn kill_9_during_an_event_flood_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    let mut gw = Gateway::start(&db, Some(&root().join("examples/policies/permissive")));
    let token = gw.register("flooder", None);
    let url = gw.url.clone();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (url, token, acked, stop) = (url.clone(), token.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let http = http(Duration::from_secs(5));
                let mut batch_no = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let ids: Vec<String> = (0..50).map(|i| format!("w{w}-b{batch_no}-{i}")).collect();
                    let events: Vec<Value> = ids.iter().map(|id| json!({"id": id, "ts": "2026-01-05T12:00:00.000Z", "agent_id": "flooder", "layer": "ebpf",
                        "action": {"kind": "process_exec", "path": "/bin/true", "argv": ["true"]},
                        "decision": {"effect": "allow", "reason": "permitted", "message": "m", "policy_ids": [], "decision_id": id}})).collect();
                    match http.post(format!("{url}/v1/events")).bearer_auth(&token).json(&json!({"events": events})).send() {
                        Ok(r) if r.status().is_success() => acked.lock().unwrap().extend(ids),
                        _ => return,
                    }
                    batch_no += 1;
                }
            })
        })
        .collect();
    // Let the flood run, then kill -9 in the middle of it.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 3000 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    gw.signal(libc::SIGKILL);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 3000,
        "the flood acknowledged only {}",
        acked.len()
    );

    let gw = Gateway::start(&db, None);
    let (_, report) = gw.get("/v1/audit/verify", Some(ADMIN));
    assert_eq!(report["ok"], true, "{report}");
    let stored: std::collections::HashSet<String> = gw
        .all_records()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events were lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    // The chain goes on after the crash.
    let (s, v) = gw.post("/v1/events", Some(ADMIN), &json!({"events": [{"id": "after-crash", "ts": "2026-01-05T12:00:00.000Z", "agent_id": "flooder", "layer": "sdk",
        "action": {"kind": "tool_call", "tool": "t"}, "decision": {"effect": "allow", "reason": "permitted", "message": "m", "policy_ids": [], "decision_id": "x"}}]}));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(gw.get("/v1/audit/verify", Some(ADMIN)).1["ok"], true);
}

#[test]
fn sigterm_drains_and_seals_and_the_cli_verifies_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    let mut gw = Gateway::start(&db, Some(&root().join("examples/policies/permissive")));
    for i in 0..7 {
        gw.decide(ADMIN, "cli-agent", tool(&format!("t{i}")));
    }
    let err = gw.signal(libc::SIGTERM);
    assert!(err.contains("audit flushed and sealed"), "{err}");
    let gw = Gateway::start(&db, None);
    let (_, report) = gw.get("/v1/audit/verify", Some(ADMIN));
    assert_eq!(
        (report["records"].as_u64(), report["sealed_seq"].as_u64()),
        (Some(7), Some(7)),
        "{report}"
    );

    let aasm = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_aasm"))
            .args(args)
            .env("AA_GATEWAY_URL", &gw.url)
            .env("AA_TOKEN", ADMIN)
            .output()
            .unwrap()
    };
    let out = aasm(&["--json", "audit", "verify"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["data"]["ok"].as_bool(), v["data"]["records"].as_u64()),
        (Some(true), Some(7))
    );
    // Export, then verify the file offline against the gateway's key.
    let file = dir.path().join("export.jsonl");
    assert!(
        aasm(&["audit", "export", "--out", file.to_str().unwrap()])
            .status
            .success()
    );
    let key = gw.get("/v1/audit/public-key", Some(ADMIN)).1["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_aasm"))
        .args([
            "audit",
            "verify",
            file.to_str().unwrap(),
            "--public-key",
            &key,
            "--strict",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = aasm(&[
        "--json", "agents", "register", "cli-made", "--team", "ops", "--label", "env=prod",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = aasm(&["--json", "agents", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("cli-made"));
    assert!(aasm(&["agents", "suspend", "cli-made"]).status.success());
    let tail = aasm(&["audit", "tail", "-n", "3"]);
    assert_eq!(String::from_utf8_lossy(&tail.stdout).lines().count(), 3);
}

#[test]
fn tls_gateway_serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    let ext = dir.path().join("leaf.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "openssl {args:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-days",
            "1",
            "-subj",
            "/CN=aa-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_aasm"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("gw.db"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("AA_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    assert!(url.starts_with("https://"), "{url}");
    let out = Command::new(env!("CARGO_BIN_EXE_aasm"))
        .args([
            "--json",
            "agents",
            "register",
            "tls-agent",
            "--gateway",
            &url,
            "--ca-cert",
        ])
        .arg(&ca)
        .env("AA_TOKEN", ADMIN)
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the CA, the certificate is refused: no silent downgrade.
    let plain = http(Duration::from_secs(5))
        .get(format!("{url}/healthz"))
        .send();
    assert!(plain.is_err());
}

#[test]
fn events_the_gateway_refuses_are_kept_even_before_the_spill_dir_exists() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_dir(dir.path(), "permit (principal, action, resource);", None);
    let gw = Gateway::start(&dir.path().join("gw.db"), Some(&policy));
    let spill = dir.path().join("not-yet").join("spill");
    let governor = aa_sdk_client::Governor::start(
        aa_sdk_client::ClientConfig::resolve(aa_sdk_client::ConfigInput {
            gateway_url: Some(gw.url.clone()),
            agent_id: Some("refused".into()),
            token: Some(ADMIN.into()),
            spill_dir: Some(spill.clone()),
            ..Default::default()
        })
        .unwrap(),
    )
    .unwrap();
    // An empty path is invalid: decided as `invalid_input`, recorded, and refused by the gateway.
    let bad = aa_core::Action::FileAccess {
        path: String::new(),
        access: aa_core::FileAccessMode::Write,
    };
    let d = governor.decide(&bad);
    assert_eq!(d.reason, aa_core::Reason::InvalidInput);
    governor.flush(Duration::from_secs(10)).unwrap();
    let stats = governor.stats();
    assert_eq!(stats.rejected, 1, "{stats:?}");
    let kept = std::fs::read_to_string(spill.join("refused.rejected.jsonl")).unwrap();
    assert_eq!(kept.lines().count(), 1);
    governor.close(Duration::from_secs(5)).unwrap();
}

#[test]
fn concurrent_policy_pushes_suspends_and_resumes_end_in_the_last_write_of_each() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        &dir.path().join("gw.db"),
        Some(&root().join("examples/policies/permissive")),
    );
    const AGENTS: usize = 6;
    const ROUNDS: u64 = 25;
    let tokens: Vec<String> = (0..AGENTS)
        .map(|i| gw.register(&format!("storm-{i}"), None))
        .collect();
    let bundle = |round: u64| json!({"files": {"p.cedar": format!("// round {round}\npermit(principal, action, resource);\n")}});
    let gw = Arc::new(gw);
    let last_push = std::thread::scope(|s| {
        // Each agent flips its own kill switch at random; the last flip is its expected state.
        let flippers: Vec<_> = (0..AGENTS)
            .map(|i| {
                let gw = gw.clone();
                s.spawn(move || {
                    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (i as u64 + 1);
                    let mut last = false;
                    for _ in 0..ROUNDS {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        last = seed >> 63 == 1;
                        let verb = if last { "suspend" } else { "resume" };
                        let (st, v) = gw.post(
                            &format!("/v1/agents/storm-{i}/{verb}"),
                            Some(ADMIN),
                            &json!({}),
                        );
                        assert_eq!(st, StatusCode::OK, "{v}");
                    }
                    last
                })
            })
            .collect();
        let pusher = {
            let gw = gw.clone();
            s.spawn(move || {
                for round in 0..ROUNDS {
                    let status = gw
                        .req(Method::PUT, "/v1/policy", Some(ADMIN))
                        .json(&bundle(round))
                        .send()
                        .unwrap()
                        .status();
                    assert_eq!(status, StatusCode::OK);
                }
                ROUNDS - 1
            })
        };
        let expected: Vec<bool> = flippers.into_iter().map(|h| h.join().unwrap()).collect();
        (pusher.join().unwrap(), expected)
    });
    let (round, expected) = last_push;
    let check = |gw: &Gateway| {
        let doc = gw.get("/v1/policy", Some(ADMIN)).1;
        assert_eq!(
            doc["bundle"]["files"],
            bundle(round)["files"],
            "the last push is active"
        );
        let want: Vec<String> = (0..AGENTS)
            .filter(|&i| expected[i])
            .map(|i| format!("storm-{i}"))
            .collect();
        let got: Vec<String> = doc["bundle"]["suspended"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        assert_eq!(
            got, want,
            "the effective suspended set is the last flip of each agent"
        );
        let rows = gw.get("/v1/agents", Some(ADMIN)).1;
        for (i, token) in tokens.iter().enumerate() {
            let agent = format!("storm-{i}");
            let row = rows
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["agent_id"] == agent.as_str())
                .unwrap();
            assert_eq!(row["suspended"].as_bool(), Some(expected[i]), "{agent} row");
            let d = gw.decide(token, &agent, tool("t"));
            let want = if expected[i] {
                "suspended"
            } else {
                "permitted"
            };
            assert_eq!(d["reason"], want, "{agent}: {d}");
        }
    };
    check(&gw);
    let gw = Arc::into_inner(gw).unwrap().restart();
    check(&gw);
}

#[test]
fn budget_usage_survives_sigterm_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_dir(
        dir.path(),
        "permit(principal, action, resource);",
        Some("[[budget]]\nname = \"three\"\nwindow = \"total\"\ncalls = 3\n"),
    );
    let db = dir.path().join("gw.db");
    let gw = Gateway::start(&db, Some(&policy));
    let token = gw.register("thrifty", None);
    let allowed = |gw: &Gateway| gw.decide(&token, "thrifty", tool("t"))["effect"] == "allow";
    assert!(allowed(&gw) && allowed(&gw));
    // SIGTERM: two calls spent stay spent.
    let gw = gw.restart();
    assert!(allowed(&gw), "the third call");
    let d = gw.decide(&token, "thrifty", tool("t"));
    assert_eq!(
        (d["effect"].as_str(), d["budget"].as_str()),
        (Some("deny"), Some("three"))
    );
    // kill -9 right after the answers: what the answers allowed was durable before they left.
    let mut gw = gw;
    gw.signal(libc::SIGKILL);
    let gw = Gateway::start(&db, None);
    let d = gw.decide(&token, "thrifty", tool("t"));
    assert_eq!(
        d["budget"], "three",
        "a restart after kill -9 gives no call back: {d}"
    );

    // A call decided locally by a layer and reported as an event is charged in the same
    // transaction that stores it: acknowledged = charged, across kill -9.
    let other = gw.register("reporter", None);
    for i in 0..3 {
        let event = json!({"events": [{"id": format!("local-{i}"), "ts": "2026-01-05T12:00:00.000Z",
            "agent_id": "reporter", "layer": "sdk", "action": tool("t"),
            "decision": {"effect": "allow", "reason": "permitted", "message": "m", "policy_ids": [], "decision_id": format!("d{i}")}}]});
        assert_eq!(
            gw.post("/v1/events", Some(&other), &event).0,
            StatusCode::OK
        );
    }
    let mut gw = gw;
    gw.signal(libc::SIGKILL);
    let gw = Gateway::start(&db, None);
    let d = gw.decide(&other, "reporter", tool("t"));
    assert_eq!(d["budget"], "three", "{d}");
    let budgets = gw.get("/v1/budgets", Some(ADMIN)).1;
    let used: Vec<u64> = budgets
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["calls_used"].as_u64().unwrap())
        .collect();
    assert_eq!(used, vec![3, 3], "{budgets}");
}

#[test]
fn decide_asks_the_gateway_and_tail_follows_its_stream() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_dir(
        dir.path(),
        "@id(\"calc-only\") permit (principal, action == Action::\"tool_call\", resource == Tool::\"calc\");",
        None,
    );
    let gw = Gateway::start(&dir.path().join("gw.db"), Some(&policy));
    let token = gw.register("decider", None);

    // `aasm decide --gateway`: remote mode through the SDK governor; the gateway records.
    let mut child = Command::new(env!("CARGO_BIN_EXE_aasm"))
        .args([
            "--json",
            "decide",
            "--agent",
            "decider",
            "--gateway",
            &gw.url,
        ])
        .env("AA_TOKEN", &token)
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}", tool("calc")).unwrap();
        writeln!(stdin, "{}", tool("shell")).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effects: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["data"]["decision"]["effect"].to_string()
        })
        .collect();
    assert_eq!(effects, ["\"allow\"", "\"deny\""]);
    // The gateway records its decisions through its writer queue: wait for both.
    let started = Instant::now();
    while gw.all_records().len() < 2 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gw.all_records().len(), 2, "the gateway recorded both");

    // A token the gateway does not know fails the command (exit 2), not each decision.
    let out = Command::new(env!("CARGO_BIN_EXE_aasm"))
        .args(["decide", "--agent", "decider", "--gateway", &gw.url])
        .env("AA_TOKEN", "not-a-token")
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gateway answered 401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `aasm audit tail -f --gateway`: the backlog, then records as they are stored (SSE).
    let mut tail = Command::new(env!("CARGO_BIN_EXE_aasm"))
        .args([
            "--json",
            "audit",
            "tail",
            "-f",
            "-n",
            "1",
            "--gateway",
            &gw.url,
        ])
        .env("AA_TOKEN", ADMIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut next_seq = || {
        let line = lines.next().unwrap().unwrap();
        serde_json::from_str::<Value>(&line).unwrap()["data"]["seq"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(next_seq(), 2, "the last record of the backlog");
    gw.decide(&token, "decider", tool("calc"));
    assert_eq!(next_seq(), 3, "a live record from the stream");
    let _ = tail.kill();
    let _ = tail.wait();
}

#[test]
fn a_revoked_token_is_refused_at_once_after_a_restart_and_until_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_dir(dir.path(), "permit(principal, action, resource);", None);
    let db = dir.path().join("gw.db");
    let gw = Gateway::start(&db, Some(&policy));
    let token = gw.register("leaky", None);
    let other = gw.register("other", None);
    assert_eq!(gw.get("/v1/whoami", Some(&token)).0, StatusCode::OK);
    // Only the admin may revoke.
    let empty = json!({});
    assert_eq!(
        gw.post("/v1/agents/leaky/revoke", Some(&other), &empty).0,
        StatusCode::FORBIDDEN
    );
    let (status, info) = gw.post("/v1/agents/leaky/revoke", Some(ADMIN), &empty);
    assert_eq!(
        (status, info["agent_id"].as_str()),
        (StatusCode::OK, Some("leaky"))
    );
    assert_eq!(
        gw.post("/v1/agents/nobody/revoke", Some(ADMIN), &empty).0,
        StatusCode::NOT_FOUND
    );
    let refused = |gw: &Gateway| {
        let decide = json!({"agent": {"agent_id": "leaky"}, "action": tool("t"), "layer": "sdk"});
        gw.get("/v1/whoami", Some(&token)).0 == StatusCode::UNAUTHORIZED
            && gw.post("/v1/decide", Some(&token), &decide).0 == StatusCode::UNAUTHORIZED
    };
    assert!(refused(&gw), "the revoked token still works");
    assert_eq!(gw.get("/v1/whoami", Some(&other)).0, StatusCode::OK);
    // A restart (and a kill -9) does not bring it back.
    let mut gw = gw.restart();
    assert!(
        refused(&gw),
        "the revoked token works again after a restart"
    );
    gw.signal(libc::SIGKILL);
    let gw = Gateway::start(&db, None);
    assert!(refused(&gw), "the revoked token works again after kill -9");
    // Rotating issues a new token; the old one stays dead.
    let (status, reg) = gw.post(
        "/v1/agents",
        Some(ADMIN),
        &json!({"agent_id": "leaky", "rotate": true}),
    );
    assert_eq!(status, StatusCode::CREATED);
    let fresh = reg["token"].as_str().unwrap().to_owned();
    assert_eq!(gw.get("/v1/whoami", Some(&fresh)).0, StatusCode::OK);
    assert!(refused(&gw));
}

#[test]
fn events_answer_per_event_and_an_invalid_one_does_not_sink_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_dir(dir.path(), "permit(principal, action, resource);", None);
    let gw = Gateway::start(&dir.path().join("gw.db"), Some(&policy));
    let token = gw.register("mixed", None);
    let event = |id: &str, action: Value| {
        json!({"id": id, "ts": "2026-01-05T12:00:00.000Z", "agent_id": "mixed", "layer": "sdk",
               "action": action,
               "decision": {"effect": "allow", "reason": "permitted", "message": "m", "policy_ids": [], "decision_id": format!("d-{id}")}})
    };
    let bad_path = json!({"kind": "file_access", "path": "", "access": "write"});
    let batch = json!({"events": [event("ok-1", tool("t")), event("bad-1", bad_path), event("ok-2", tool("t"))]});
    let (status, v) = gw.post("/v1/events", Some(&token), &batch);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(2), Some(0)),
        "{v}"
    );
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{v}");
    assert_eq!(rejected[0]["id"], "bad-1");
    assert!(
        rejected[0]["reason"].as_str().unwrap().contains("path"),
        "{v}"
    );
    // Sent again: the two stored are duplicates, the invalid one is refused again.
    let (_, again) = gw.post("/v1/events", Some(&token), &batch);
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(2)),
        "{again}"
    );
    assert_eq!(again["rejected"].as_array().map(Vec::len), Some(1));
    let ids: Vec<String> = gw
        .all_records()
        .iter()
        .filter(|r| r["agent_id"] == "mixed")
        .map(|r| {
            r["event_id"]
                .as_str()
                .or(r["id"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
}
