#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
//! Three real `aasm gateway` replicas on one real PostgreSQL (started by scripts/pg.sh).
//!
//! A test skips only when PostgreSQL cannot start on this machine, and says so loudly; under
//! CI (`CI` set) that is a failure instead.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ADMIN: &str = "test-admin-token-0123456789";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A throwaway cluster, stopped and removed on drop.
struct Postgres {
    dir: PathBuf,
    url: String,
}

impl Postgres {
    fn start() -> Option<Self> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "aa-pg-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let out = Command::new(root().join("scripts/pg.sh"))
            .arg("start")
            .arg(&dir)
            .output()
            .unwrap();
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL did not start (CI must run the replica tests): {why}");
            }
            eprintln!(
                "\n\n*** SKIPPED: PostgreSQL cannot start on this machine, so the replica tests did not run ***\n{why}\n"
            );
            return None;
        }
        let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        Some(Postgres { dir, url })
    }
}

impl Postgres {
    fn stop(&self) {
        let _ = Command::new(root().join("scripts/pg.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(70)))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

/// One `aasm gateway` process on the shared database.
struct Replica {
    child: Option<Child>,
    url: String,
    http: ureq::Agent,
}

impl Replica {
    fn start(pg: &Postgres, dir: &Path, policy: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aasm"))
            .args(["gateway", "--listen", "127.0.0.1:0", "--db", &pg.url])
            .arg("--key")
            .arg(dir.join("signing.key"))
            .arg("--policy")
            .arg(policy)
            .args(["--checkpoint-every", "100"])
            .env("AA_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "warn")
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
            .unwrap_or_else(|| panic!("no listen line: {line:?}"))
            .to_owned();
        Replica {
            child: Some(child),
            url,
            http: agent(),
        }
    }

    fn send(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {token}"));
        let resp = match body {
            Some(b) => self.http.run(
                req.header("content-type", "application/json")
                    .body(serde_json::to_vec(b).unwrap())
                    .unwrap(),
            ),
            None => self.http.run(req.body(()).unwrap()),
        };
        match resp {
            Ok(mut r) => {
                let status = r.status().as_u16();
                (status, r.body_mut().read_json().unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.send("POST", path, token, Some(body))
    }

    fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send("GET", path, token, None)
    }

    fn register(&self, id: &str) -> String {
        let (s, v) = self.post("/v1/agents", ADMIN, &json!({"agent_id": id}));
        assert_eq!(s, 201, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    fn decide(&self, token: &str, agent: &str) -> (u16, Value) {
        self.post(
            "/v1/decide",
            token,
            &json!({"agent": agent, "action": {"kind": "tool_call", "tool": "t"}}),
        )
    }

    fn records(&self, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = 0;
        loop {
            let (s, page) = self.get(
                &format!("/v1/audit?limit=1000&cursor={cursor}{query}"),
                ADMIN,
            );
            assert_eq!(s, 200, "{page}");
            out.extend(page["records"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_u64() {
                Some(c) => cursor = c,
                None => return out,
            }
        }
    }

    /// SIGTERM, and waits for the graceful stop.
    #[allow(unsafe_code)]
    fn term(&mut self) {
        let mut child = self.child.take().unwrap();
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().unwrap();
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// PostgreSQL, a policy directory (permit all, plus `budgets`), and three replicas on it.
struct Cluster {
    replicas: Vec<Replica>,
    dir: tempfile::TempDir,
    pg: Postgres,
}

impl Cluster {
    fn start(budgets: Option<&str>) -> Option<Self> {
        let pg = Postgres::start()?;
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy");
        std::fs::create_dir_all(&policy).unwrap();
        std::fs::write(
            policy.join("p.cedar"),
            "permit(principal, action, resource);",
        )
        .unwrap();
        if let Some(b) = budgets {
            std::fs::write(policy.join("budgets.toml"), b).unwrap();
        }
        let replicas = (0..3)
            .map(|_| Replica::start(&pg, dir.path(), &policy))
            .collect();
        Some(Cluster { replicas, dir, pg })
    }

    fn verify_with_aasm(&self, replica: usize) {
        let out = Command::new(env!("CARGO_BIN_EXE_aasm"))
            .args(["audit", "verify", "--gateway", &self.replicas[replica].url])
            .env("AA_TOKEN", ADMIN)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "aasm audit verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn event(agent: &str, id: &str) -> Value {
    json!({"id": id, "ts": "2026-01-05T12:00:00.000Z", "agent_id": agent, "layer": "sdk",
           "action": {"kind": "tool_call", "tool": "t"},
           "decision": {"effect": "deny", "reason": "forbidden", "message": "m", "policy_ids": [], "decision_id": "d"}})
}

#[test]
fn fifty_concurrent_decides_on_three_replicas_allow_exactly_ten() {
    let Some(c) = Cluster::start(Some(
        "[[budget]]\nname = \"ten\"\nper = \"global\"\nwindow = \"total\"\ncalls = 10\n",
    )) else {
        return;
    };
    let token = c.replicas[0].register("busy");
    let c = Arc::new(c);
    let start = Arc::new(std::sync::Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let (c, token, start) = (c.clone(), token.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let (s, v) = c.replicas[i % 3].decide(&token, "busy");
                assert_eq!(s, 200, "{v}");
                v
            })
        })
        .collect();
    let decisions: Vec<Value> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let allowed = decisions.iter().filter(|d| d["effect"] == "allow").count();
    assert_eq!(allowed, 10, "{decisions:?}");
    assert!(
        decisions
            .iter()
            .filter(|d| d["effect"] == "deny")
            .all(|d| d["reason"] == "budget_exceeded" && d["budget"] == "ten"),
        "{decisions:?}"
    );
    // Every replica reads the one log: exactly 10 allows (stored before they were answered),
    // and all 50 decisions once the denials' records (queued, not awaited) are in.
    for r in &c.replicas {
        assert_eq!(r.records("&decision=allow").len(), 10);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.replicas[0].records("").len() < 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for r in &c.replicas {
        assert_eq!(r.records("").len(), 50);
    }
    let (_, budgets) = c.replicas[2].get("/v1/budgets", ADMIN);
    assert_eq!(budgets[0]["calls_used"], 10, "{budgets}");
    c.verify_with_aasm(1);
}

#[test]
fn budget_leases_are_spent_in_memory_returned_when_unused_and_lost_with_a_killed_replica() {
    let Some(mut c) = Cluster::start(Some(
        "[[budget]]\nname = \"big\"\nper = \"global\"\nwindow = \"total\"\ncalls = 100000\n",
    )) else {
        return;
    };
    let token = c.replicas[0].register("leaser");
    let used = |c: &Cluster, r: usize| {
        let (s, b) = c.replicas[r].get("/v1/budgets", ADMIN);
        assert_eq!(s, 200, "{b}");
        b[0]["calls_used"].as_u64().unwrap()
    };
    // One after another: each replica leases one slice of 100 calls and spends from it.
    for (r, n) in [(0, 5), (1, 7), (2, 9)] {
        for _ in 0..n {
            let (s, v) = c.replicas[r].decide(&token, "leaser");
            assert_eq!((s, v["effect"].as_str()), (200, Some("allow")), "{v}");
        }
    }
    assert_eq!(used(&c, 2), 300, "three slices of 100 reserved");
    // Decisions spent from a lease have their records queued (the charge was durable with the
    // lease): all 21 are in the log shortly.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.replicas[2].records("&decision=allow").len() < 21 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.replicas[2].records("&decision=allow").len(), 21);
    // Killed: replica 0's 95 unspent calls are never returned — they count as spent.
    c.replicas[0].kill9();
    // Stopped: replica 1 returns its 93 at once.
    c.replicas[1].term();
    assert_eq!(used(&c, 2), 207);
    // Replica 2's lease expires (10 s) and its 91 go back.
    let deadline = Instant::now() + Duration::from_secs(20);
    while used(&c, 2) != 116 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(used(&c, 2), 5 + 7 + 9 + 95);
    // Calls decided elsewhere and reported are added to the counter (one delta per batch),
    // once: a replay adds nothing.
    let allowed = |id: &str| {
        let mut e = event("leaser", id);
        e["decision"] = json!({"effect": "allow", "reason": "permitted", "message": "m", "policy_ids": [], "decision_id": id});
        e
    };
    let batch = json!({"events": [allowed("x1"), allowed("x2"), allowed("x3")]});
    for _ in 0..2 {
        let (s, v) = c.replicas[2].post("/v1/events", &token, &batch);
        assert_eq!(s, 200, "{v}");
    }
    assert_eq!(used(&c, 2), 116 + 3);
}

#[test]
fn kill_9_of_a_replica_during_an_event_flood_loses_nothing_acknowledged() {
    let Some(mut c) = Cluster::start(None) else {
        return;
    };
    let token = c.replicas[0].register("flooder");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let urls: Vec<String> = c.replicas.iter().map(|r| r.url.clone()).collect();
    let floods: Vec<_> = urls
        .into_iter()
        .enumerate()
        .map(|(i, url)| {
            let (acked, stop, token) = (acked.clone(), stop.clone(), token.clone());
            std::thread::spawn(move || {
                let r = Replica {
                    child: None,
                    url,
                    http: agent(),
                };
                let mut batch = 0;
                while !stop.load(Ordering::Relaxed) {
                    let ids: Vec<String> = (0..100).map(|n| format!("r{i}-b{batch}-{n}")).collect();
                    let events: Vec<Value> = ids.iter().map(|id| event("flooder", id)).collect();
                    let (s, v) = r.post("/v1/events", &token, &json!({ "events": events }));
                    if s != 200 {
                        // The killed replica: what it never acknowledged may or may not be stored.
                        return;
                    }
                    let mut acked = acked.lock().unwrap();
                    for a in v["acks"].as_array().unwrap() {
                        acked.push(a["id"].as_str().unwrap().to_owned());
                    }
                    batch += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    c.replicas[0].kill9();
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        f.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 1000,
        "the flood was too small: {}",
        acked.len()
    );
    // Every acknowledged event is stored exactly once, on a gapless chain.
    let records = c.replicas[1].records("&agent=flooder");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in &records {
        *seen.entry(r["id"].as_str().unwrap()).or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "an event is stored twice");
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !seen.contains_key(id.as_str()))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let all = c.replicas[2].records("");
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r["seq"].as_u64(), Some(i as u64 + 1), "the chain has a gap");
    }
    c.verify_with_aasm(2);
    // A replayed batch is a duplicate on any replica, whichever stored it first.
    let replay: Vec<Value> = acked
        .iter()
        .take(50)
        .map(|id| event("flooder", id))
        .collect();
    let (s, v) = c.replicas[2].post("/v1/events", &token, &json!({ "events": replay }));
    assert_eq!((s, v["duplicates"].as_u64()), (200, Some(50)), "{v}");
    // The killed replica holds nothing the others wait for for long: a kill switch answers
    // within the staleness bound (5 s) once its acknowledgement row has expired.
    let started = Instant::now();
    let (s, _) = c.replicas[1].post("/v1/agents/flooder/suspend", ADMIN, &json!({}));
    assert_eq!(s, 200);
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    let _ = &c.dir;
}

#[test]
fn suspend_and_revoke_through_one_replica_hold_on_the_others_before_the_call_returns() {
    let Some(c) = Cluster::start(None) else {
        return;
    };
    let token = c.replicas[0].register("runner");
    let c = Arc::new(c);
    // Replica 2 is flooded with decides while replica 0 suspends the agent.
    let log: Arc<Mutex<Vec<(Instant, String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let floods: Vec<_> = (0..4)
        .map(|_| {
            let (c, token, log, stop) = (c.clone(), token.clone(), log.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let (s, v) = c.replicas[2].decide(&token, "runner");
                    assert_eq!(s, 200, "{v}");
                    log.lock().unwrap().push((
                        sent,
                        v["effect"].as_str().unwrap().to_owned(),
                        v["reason"].as_str().unwrap().to_owned(),
                    ));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (s, v) = c.replicas[0].post("/v1/agents/runner/suspend", ADMIN, &json!({}));
    assert_eq!(s, 200, "{v}");
    let returned = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        f.join().unwrap();
    }
    let log = log.lock().unwrap();
    let before = log
        .iter()
        .filter(|(t, e, _)| *t < returned && e == "allow")
        .count();
    let after: Vec<_> = log.iter().filter(|(t, _, _)| *t >= returned).collect();
    assert!(
        before > 0,
        "the flood allowed nothing before the suspension"
    );
    assert!(!after.is_empty(), "no decide after the suspension");
    assert!(
        after
            .iter()
            .all(|(_, e, r)| e == "deny" && r == "suspended"),
        "allowed after the suspend call returned: {:?}",
        after.iter().filter(|(_, e, _)| e == "allow").count()
    );
    // Revoked through replica 1: refused by every replica at once.
    let (s, _) = c.replicas[1].post("/v1/agents/runner/revoke", ADMIN, &json!({}));
    assert_eq!(s, 200);
    for r in &c.replicas {
        assert_eq!(r.get("/v1/whoami", &token).0, 401, "{}", r.url);
    }
    // Resumed and rotated through replica 2: the new token works on replica 0.
    assert_eq!(
        c.replicas[2]
            .post("/v1/agents/runner/resume", ADMIN, &json!({}))
            .0,
        200
    );
    let (s, v) = c.replicas[2].post(
        "/v1/agents",
        ADMIN,
        &json!({"agent_id": "runner", "rotate": true}),
    );
    assert_eq!(s, 201, "{v}");
    let fresh = v["token"].as_str().unwrap();
    assert_eq!(c.replicas[0].decide(fresh, "runner").1["effect"], "allow");

    // The database goes away: within the staleness bound every replica fails closed — health
    // 503 `stale`, agents refused, decisions `unavailable` — and never allows.
    c.pg.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.replicas[1].get("/healthz", "").0 != 503 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for r in &c.replicas {
        let (s, v) = r.get("/healthz", "");
        assert_eq!((s, v["status"].as_str()), (503, Some("stale")), "{}", r.url);
        assert_eq!(r.decide(fresh, "runner").0, 503);
        let (s, v) = r.decide(ADMIN, "runner");
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (v["effect"].as_str(), v["reason"].as_str()),
            (Some("deny"), Some("unavailable")),
            "{v}"
        );
    }
}

#[test]
fn a_policy_push_reaches_long_pollers_and_sse_resumes_on_other_replicas() {
    let Some(c) = Cluster::start(None) else {
        return;
    };
    let token = c.replicas[0].register("reporter");
    // One id registered through all replicas at once: exactly one registration wins.
    let c = Arc::new(c);
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let c = c.clone();
            std::thread::spawn(move || {
                c.replicas[i % 3]
                    .post("/v1/agents", ADMIN, &json!({"agent_id": "twin"}))
                    .0
            })
        })
        .collect();
    let mut statuses: Vec<u16> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409]);
    // Long polls on replicas 1 and 2, then a push through replica 0.
    let resp = c.replicas[1]
        .http
        .get(format!("{}/v1/policy", c.replicas[1].url))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let pollers: Vec<_> = [1, 2]
        .into_iter()
        .map(|i| {
            let (url, token, etag) = (c.replicas[i].url.clone(), token.clone(), etag.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut resp = agent()
                    .get(format!("{url}/v1/policy?wait=30"))
                    .header("authorization", format!("Bearer {token}"))
                    .header("if-none-match", &etag)
                    .call()
                    .unwrap();
                let status = resp.status().as_u16();
                let body: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
                (status, body, started.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let bundle = json!({"files": {"p.cedar": "permit(principal, action, resource);\n// v2\n"}});
    let (s, v) = c.replicas[0].send("PUT", "/v1/policy", ADMIN, Some(&bundle));
    assert_eq!(s, 200, "{v}");
    let version = v["version"].as_str().unwrap().to_owned();
    for p in pollers {
        let (status, body, waited) = p.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["version"], version.as_str());
        assert!(waited < Duration::from_secs(10), "{waited:?}");
    }

    // SSE: 20 records through replica 0, resumed after seq 10 on replica 1; then records
    // stored through replica 2 arrive live on that stream.
    let events: Vec<Value> = (0..20)
        .map(|n| event("reporter", &format!("e{n}")))
        .collect();
    assert_eq!(
        c.replicas[0]
            .post("/v1/events", &token, &json!({ "events": events }))
            .0,
        200
    );
    let first = c.replicas[1].records("")[0]["seq"].as_u64().unwrap();
    let resp = c.replicas[1]
        .http
        .get(format!("{}/v1/audit/stream", c.replicas[1].url))
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("last-event-id", (first + 9).to_string())
        .call()
        .unwrap();
    let mut lines = BufReader::new(resp.into_body().into_reader()).lines();
    let mut next_id = || loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(id) = line.strip_prefix("id:") {
            return id.trim().parse::<u64>().unwrap();
        }
    };
    let resumed: Vec<u64> = (0..10).map(|_| next_id()).collect();
    let expected: Vec<u64> = (first + 10..first + 20).collect();
    assert_eq!(resumed, expected);
    let more: Vec<Value> = (0..5)
        .map(|n| event("reporter", &format!("late{n}")))
        .collect();
    assert_eq!(
        c.replicas[2]
            .post("/v1/events", &token, &json!({ "events": more }))
            .0,
        200
    );
    let live: HashSet<u64> = (0..5).map(|_| next_id()).collect();
    assert_eq!(live, (first + 20..first + 25).collect());
}

#[test]
fn an_sdk_announcement_through_one_replica_is_listed_by_the_others() {
    let Some(c) = Cluster::start(None) else {
        return;
    };
    let token = c.replicas[0].register("announcer");
    let hello = json!({"layer": "sdk", "runtime": "python3.11", "version": "0.1.0", "pid": 42});
    let (s, v) = c.replicas[1].send("POST", "/v1/announce", &token, Some(&hello));
    assert_eq!(s, 204, "{v}");
    // The admin token cannot announce for an agent.
    let (s, _) = c.replicas[1].send("POST", "/v1/announce", ADMIN, Some(&hello));
    assert_eq!(s, 403);
    for r in [0, 2] {
        let (s, v) = c.replicas[r].send("GET", "/v1/agents/announcer/announcements", ADMIN, None);
        assert_eq!(s, 200, "{v}");
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), 1, "{v}");
        assert_eq!(list[0]["announcement"], hello);
        assert_eq!(list[0]["agent_id"], "announcer");
    }
}
