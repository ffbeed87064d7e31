//! `aasm policy check | test | schema`

use std::path::Path;

use aa_core::cases::{CaseFile, StepResult};
use aa_core::{CompiledPolicy, PolicyBundle};
use serde_json::json;

use crate::cli::PolicyCommand;
use crate::output::{CliError, Printer, Status, render_diagnostic};

pub fn run(command: PolicyCommand, out: &Printer) -> Result<Status, CliError> {
    match command {
        PolicyCommand::Check { dir } => check(&dir, out),
        PolicyCommand::Test { dir, cases } => test(&dir, &cases, out),
        PolicyCommand::Push { dir, remote } => {
            let bundle = PolicyBundle::from_dir(&dir)?;
            // Check locally first: the same diagnostics, without a round trip.
            if let Err(e) = CompiledPolicy::compile(bundle.clone()) {
                out.error(&CliError::Policy(e));
                return Ok(Status::Failed);
            }
            let v = remote.client()?.put_policy(&bundle)?;
            out.emit("pushed", &v, || {
                format!("pushed {}: version {}", dir.display(), v.version)
            });
            Ok(Status::Success)
        }
    }
}

fn check(dir: &Path, out: &Printer) -> Result<Status, CliError> {
    let bundle = PolicyBundle::from_dir(dir)?;
    let files = bundle.files.len();
    match CompiledPolicy::compile(bundle) {
        Ok(policy) => {
            for w in policy.warnings() {
                out.emit("warning", w, || format!("warning:{}", render_diagnostic(w)));
            }
            let summary = json!({
                "ok": true,
                "dir": dir.display().to_string(),
                "version": policy.version(),
                "files": files,
                "policies": policy.policies().len(),
                "budgets": policy.budgets().rules.len(),
                "warnings": policy.warnings().len(),
            });
            out.emit("check", &summary, || {
                format!(
                    "ok: {} — {} policies in {files} file(s), {} budget(s), version {}",
                    dir.display(),
                    policy.policies().len(),
                    policy.budgets().rules.len(),
                    policy.version()
                )
            });
            Ok(Status::Success)
        }
        Err(e @ aa_core::PolicyError::Invalid(_)) => {
            out.error(&CliError::Policy(e));
            Ok(Status::Failed)
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads a TOML or JSON case file (by extension).
pub fn read_cases(path: &Path) -> Result<CaseFile, CliError> {
    let text = std::fs::read_to_string(path).map_err(CliError::io(path))?;
    let bad = |e: &dyn std::fmt::Display| CliError::Input(format!("{}: {e}", path.display()));
    let file: CaseFile = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| bad(&e))?
    } else {
        toml::from_str(&text).map_err(|e| bad(&e))?
    };
    if let Some(c) = file.cases.iter().find(|c| c.all_steps().is_empty()) {
        return Err(CliError::Input(format!(
            "{}: case `{}` has no step (give agent, action and expect, or steps)",
            path.display(),
            c.name
        )));
    }
    Ok(file)
}

fn test(dir: &Path, cases_path: &Path, out: &Printer) -> Result<Status, CliError> {
    let cases = read_cases(cases_path)?;
    let bundle = PolicyBundle::from_dir(dir)?;
    let policy = std::sync::Arc::new(CompiledPolicy::compile(bundle.clone())?);
    let mut results: Vec<StepResult> = Vec::new();
    for case in &cases.cases {
        if case.suspended.is_empty() {
            results.extend(case.run(policy.clone()));
        } else {
            results.extend(case.run_bundle(&bundle)?);
        }
    }
    let width = results
        .iter()
        .map(|r| r.case.len() + 8)
        .max()
        .unwrap_or(4)
        .clamp(4, 70);
    if !out.json() {
        out.emit("header", &(), || {
            format!(
                "{:<6} {:<width$} {:<6} {:<17} policies / budget",
                "result", "case", "effect", "reason"
            )
        });
    }
    // Repetitions of a step that all pass print as one line (`×N`).
    let mut i = 0;
    while let Some(r) = results.get(i) {
        let same_step = results
            .iter()
            .skip(i)
            .take_while(|o| o.case == r.case && o.step == r.step)
            .count();
        let group = results.get(i..i + same_step).unwrap_or_default();
        let shown: Vec<&StepResult> = if out.json() || group.iter().any(|g| !g.passed()) {
            group.iter().collect()
        } else {
            group.last().into_iter().collect()
        };
        for r in shown {
            out.emit("case", r, || {
                let mut name = r.case.clone();
                if r.step > 1 || group.len() > 1 {
                    name.push_str(&format!(" #{}", r.step));
                }
                if group.len() > 1 {
                    if r.passed() {
                        name.push_str(&format!(" ×{}", group.len()));
                    } else {
                        name.push_str(&format!(".{}", r.repetition));
                    }
                }
                let detail = r
                    .decision
                    .budget
                    .clone()
                    .unwrap_or_else(|| r.decision.policy_ids.join(","));
                let mut line = format!(
                    "{:<6} {:<width$} {:<6} {:<17} {detail}",
                    if r.passed() { "pass" } else { "FAIL" },
                    name,
                    r.decision.effect.as_str(),
                    r.decision.reason.as_str(),
                );
                if let Some(m) = &r.mismatch {
                    line.push_str(&format!("\n       ↳ {m}"));
                }
                line
            });
        }
        i += same_step.max(1);
    }
    let failed = results.iter().filter(|r| !r.passed()).count();
    let summary =
        json!({ "passed": results.len() - failed, "failed": failed, "cases": cases.cases.len() });
    out.emit("summary", &summary, || {
        format!(
            "{} of {} decisions as expected ({} cases)",
            results.len() - failed,
            results.len(),
            cases.cases.len()
        )
    });
    Ok(if failed == 0 {
        Status::Success
    } else {
        Status::Failed
    })
}
