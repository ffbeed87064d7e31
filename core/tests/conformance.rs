#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
//! The language-neutral conformance table, run through the Rust API. Every binding runs the
//! same file through its own API.

use std::path::Path;

use aa_core::PolicyBundle;
use aa_core::cases::CaseFile;

#[test]
fn conformance_cases_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance");
    let file: CaseFile =
        serde_json::from_str(&std::fs::read_to_string(root.join("cases.json")).unwrap()).unwrap();
    assert!(file.cases.len() >= 30);
    let mut failures = Vec::new();
    let mut decisions = 0;
    for case in &file.cases {
        assert!(
            !case.all_steps().is_empty(),
            "case `{}` has no step",
            case.name
        );
        let dir = root.join(
            case.policy
                .as_deref()
                .expect("conformance cases name their policy"),
        );
        let bundle =
            PolicyBundle::from_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for r in case
            .run_bundle(&bundle)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name))
        {
            decisions += 1;
            if let Some(m) = r.mismatch {
                failures.push(format!("{} step {}.{}: {m}", r.case, r.step, r.repetition));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {decisions} decisions differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A mismatch is reported, not swallowed: the runner itself can fail.
#[test]
fn the_runner_reports_mismatches() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance");
    let text = r#"{"case":[{"name":"wrong on purpose","agent":"a",
        "action":{"kind":"file_access","path":"/etc/shadow","access":"read"},
        "expect":{"decision":"allow","policy_ids":["base"]}}]}"#;
    let file: CaseFile = serde_json::from_str(text).unwrap();
    let bundle = PolicyBundle::from_dir(root.join("policies/kinds")).unwrap();
    let results = file.cases[0].run_bundle(&bundle).unwrap();
    assert_eq!(results.len(), 1);
    let m = results[0].mismatch.as_deref().unwrap();
    assert!(
        m.contains("expected allow, got deny") && m.contains("file-shadow"),
        "{m}"
    );
}
