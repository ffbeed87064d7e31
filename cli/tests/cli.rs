#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
//! The `aasm` binary, run as a user would.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn aasm(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aasm"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn example_policies_check_and_pass_their_cases() {
    for name in ["permissive", "strict"] {
        let dir = format!("examples/policies/{name}");
        let out = aasm(&["policy", "check", &dir], None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with("ok: "));
        let out = aasm(
            &["policy", "test", &dir, &format!("{dir}/cases.toml")],
            None,
        );
        assert!(
            out.status.success(),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(!text(&out.stdout).contains("FAIL"));
    }
}

#[test]
fn a_broken_policy_points_at_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ok.cedar"),
        "permit(principal, action, resource);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.cedar"),
        "// a comment\npermit(principal, action == Action::\"tool_call\", resource)\nwhen { context.nope == 3 };\n",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let out = aasm(&["policy", "check", d], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("bad.cedar:3:8:"), "{err}");
    assert!(err.contains("attribute `nope`"), "{err}");

    let out = aasm(&["--json", "policy", "check", d], None);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["type"], "error");
    let diag = &v["data"]["diagnostics"][0];
    assert_eq!(
        (
            diag["file"].as_str(),
            diag["line"].as_u64(),
            diag["column"].as_u64()
        ),
        (Some("bad.cedar"), Some(3), Some(8))
    );

    std::fs::write(
        dir.path().join("budgets.toml"),
        "[[budget]]\nname = \"b\"\nwindow = \"day\"\ncalls = -1\n",
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("bad.cedar")).unwrap();
    let out = aasm(&["policy", "check", d], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("budgets.toml:4:9"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn policy_test_fails_on_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.toml");
    std::fs::write(
        &cases,
        "[[case]]\nname = \"wrong\"\nagent = \"a\"\naction = { kind = \"file_access\", path = \"/etc/passwd\", access = \"write\" }\nexpect = \"allow\"\n",
    )
    .unwrap();
    let out = aasm(
        &[
            "policy",
            "test",
            "examples/policies/permissive",
            cases.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAIL") && stdout.contains("expected allow, got deny"),
        "{stdout}"
    );
}

#[test]
fn decide_reads_actions_from_stdin_and_keeps_going_past_bad_lines() {
    let input = concat!(
        r#"{"kind":"tool_call","tool":"search","args":{"q":"x"}}"#,
        "\n",
        "not json\n",
        r#"{"agent":{"agent_id":"ops","team":"sre"},"layer":"ebpf","action":{"kind":"process_exec","path":"/bin/rm","argv":["rm","-rf","/"]}}"#,
        "\n",
        r#"{"kind":"warp_drive"}"#,
        "\n",
    );
    let out = aasm(
        &[
            "--json",
            "decide",
            "--policy",
            "examples/policies/permissive",
        ],
        Some(input),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad lines make the exit status 1"
    );
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["data"]["decision"]["effect"], "allow");
    assert_eq!(lines[1]["type"], "input_error");
    assert_eq!(lines[2]["data"]["agent_id"], "ops");
    assert_eq!(lines[2]["data"]["decision"]["reason"], "forbidden");
    assert_eq!(lines[3]["type"], "input_error");
    assert!(
        lines[3]["data"]["message"]
            .as_str()
            .unwrap()
            .contains("warp_drive")
    );
}

fn decide_into(audit: &Path, n: usize) {
    let input: String = (0..n)
        .map(|i| format!("{{\"kind\":\"tool_call\",\"tool\":\"t{i}\",\"args\":{{\"i\":{i}}}}}\n"))
        .collect();
    let out = aasm(
        &[
            "decide",
            "--policy",
            "examples/policies/permissive",
            "--audit",
            audit.to_str().unwrap(),
            "--checkpoint-every",
            "4",
        ],
        Some(&input),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn audit_verify_names_the_tampered_record_and_a_deleted_tail() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    decide_into(&audit, 10);
    let a = audit.to_str().unwrap();
    let out = aasm(&["audit", "verify", a], None);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("ok: 10 records"),
        "{}",
        text(&out.stdout)
    );

    let original = std::fs::read_to_string(&audit).unwrap();
    // Change one byte inside the record with seq 7.
    let lines: Vec<&str> = original.lines().collect();
    let idx = lines
        .iter()
        .position(|l| l.starts_with("{\"action\"") && l.contains("\"seq\":7,"))
        .unwrap();
    let tampered_line = lines[idx].replacen("\"t6\"", "\"t9\"", 1);
    assert_ne!(tampered_line, lines[idx]);
    let mut tampered: Vec<String> = lines.iter().map(|s| (*s).to_owned()).collect();
    tampered[idx] = tampered_line;
    std::fs::write(&audit, tampered.join("\n") + "\n").unwrap();
    let out = aasm(&["--json", "audit", "verify", a], None);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["data"]["failure"]["seq"], 7);
    assert_eq!(v["data"]["failure"]["kind"], "hash_mismatch");
    let human = aasm(&["audit", "verify", a], None);
    assert!(
        text(&human.stdout).contains("BROKEN at seq 7"),
        "{}",
        text(&human.stdout)
    );

    // Delete the last record (the closing checkpoint stays).
    let mut cut: Vec<&str> = original.lines().collect();
    let last = cut
        .iter()
        .rposition(|l| l.starts_with("{\"action\"") && l.contains("\"seq\":10,"))
        .unwrap();
    cut.remove(last);
    std::fs::write(&audit, cut.join("\n") + "\n").unwrap();
    let out = aasm(&["--json", "audit", "verify", a], None);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["data"]["failure"]["seq"], 10);
    assert_eq!(v["data"]["failure"]["kind"], "missing_records");
}

#[test]
fn audit_tail_prints_and_follows() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    decide_into(&audit, 3);
    let out = aasm(&["audit", "tail", audit.to_str().unwrap(), "-n", "2"], None);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    // The last two lines: record 3 and the closing checkpoint.
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.contains("checkpoint"), "{stdout}");

    let mut follower = Command::new(env!("CARGO_BIN_EXE_aasm"))
        .args([
            "--json",
            "audit",
            "tail",
            "-f",
            "-n",
            "0",
            audit.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(follower.stdout.take().unwrap());
    decide_into(&audit, 1);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    follower.kill().unwrap();
    follower.wait().unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["type"], "record");
    assert_eq!(v["data"]["seq"], 4);
}

#[test]
fn the_published_json_schema_is_current() {
    let out = aasm(&["schema", "model"], None);
    assert!(out.status.success());
    let published =
        std::fs::read_to_string(root().join("docs/schema/aa-model.schema.json")).unwrap();
    assert!(
        text(&out.stdout).trim() == published.trim(),
        "docs/schema/aa-model.schema.json is stale: run `aasm schema model > docs/schema/aa-model.schema.json`"
    );
}

#[test]
fn the_published_openapi_is_current() {
    let out = aasm(&["schema", "openapi"], None);
    assert!(out.status.success());
    let published = std::fs::read_to_string(root().join("docs/openapi.yaml")).unwrap();
    assert!(
        text(&out.stdout).trim() == published.trim(),
        "docs/openapi.yaml is stale: run `aasm schema openapi > docs/openapi.yaml`"
    );
}

#[test]
fn a_database_url_the_gateway_cannot_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |db: &str, extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_aasm"))
            .args(["gateway", "--listen", "127.0.0.1:0", "--db", db])
            .args(extra)
            .env("AA_ADMIN_TOKEN", "test-admin-token-0123456789")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A URL of a database the gateway has no store for; the password never shows.
    let err = refused("mysql://aa:s3cret@localhost/aa", &[]);
    assert!(
        err.contains("mysql://aa:***@localhost/aa")
            && err.contains("postgres://")
            && !err.contains("s3cret"),
        "{err}"
    );
    // PostgreSQL replicas share one signing key: it is never created per replica.
    let err = refused("postgres://aa@localhost/aa", &[]);
    assert!(err.contains("--key"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created in the working directory"
    );
}
