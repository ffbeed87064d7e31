//! Compiling a [`PolicyBundle`] into an immutable, validated, indexed snapshot.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::OnceLock;

use cedar_policy::{
    Effect as CedarEffect, Policy, PolicyId, PolicySet, Schema, ValidationMode, Validator,
};

use super::bundle::{BUDGETS_FILE, PRICES_FILE, PolicyBundle};
use super::index::PolicyIndex;
use super::request::names;
use crate::budget::{BudgetConfig, PriceTable, diagnostic_at};
use crate::error::{Diagnostic, PolicyError};

/// The Cedar schema of the entity/action model (`core/schema/agent-assembly.cedarschema`).
pub const SCHEMA_TEXT: &str = include_str!("../../schema/agent-assembly.cedarschema");

/// Name used for the schema in diagnostics.
const SCHEMA_FILE: &str = "agent-assembly.cedarschema";

pub(crate) fn schema() -> Result<&'static Schema, PolicyError> {
    static SCHEMA: OnceLock<Result<Schema, Box<cedar_policy::CedarSchemaError>>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Schema::from_cedarschema_str(SCHEMA_TEXT)
                .map(|(s, _warnings)| s)
                .map_err(Box::new)
        })
        .as_ref()
        .map_err(|e| {
            PolicyError::Invalid(vec![Diagnostic {
                file: SCHEMA_FILE.into(),
                line: None,
                column: None,
                message: format!("the shipped Cedar schema does not parse: {e}"),
                help: None,
                source_line: None,
            }])
        })
}

/// What a policy is, beyond its Cedar text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// Its id (`@id` annotation, else `<file stem>:<n>` counting from 0 in the file).
    pub id: String,
    /// True for `forbid`.
    pub forbid: bool,
    /// Its `@reason` annotation, used as the deny message.
    pub reason: Option<String>,
    /// File it came from.
    pub file: String,
    /// 1-based line of its first token.
    pub line: Option<usize>,
}

/// A compiled, validated, immutable policy snapshot: what every decision is made against.
pub struct CompiledPolicy {
    version: String,
    bundle: PolicyBundle,
    pub(crate) index: PolicyIndex,
    pub(crate) full: std::sync::Arc<PolicySet>,
    info: HashMap<String, PolicyInfo>,
    pub(crate) budgets: BudgetConfig,
    pub(crate) prices: PriceTable,
    warnings: Vec<Diagnostic>,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("version", &self.version)
            .field("policies", &self.info.len())
            .field("budgets", &self.budgets.rules.len())
            .finish_non_exhaustive()
    }
}

fn miette_diags(file: &str, text: &str, err: &dyn miette::Diagnostic) -> Diagnostic {
    let offset = err
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|l| l.offset());
    let mut message = err.to_string();
    if let Some(related) = err.related() {
        for r in related {
            message.push_str("; ");
            message.push_str(&r.to_string());
        }
    }
    diagnostic_at(
        file,
        text,
        offset,
        message,
        err.help().map(|h| h.to_string()),
    )
}

impl CompiledPolicy {
    /// Parses every Cedar file, validates the set against the shipped schema (strict mode),
    /// parses budgets and prices, and indexes the policies. All problems are reported at once,
    /// each with file, line and column.
    pub fn compile(bundle: PolicyBundle) -> Result<Self, PolicyError> {
        let names = names().ok_or_else(|| PolicyError::Invalid(Vec::new()))?;
        let schema = schema()?;
        let mut diags = Vec::new();
        let mut policies: Vec<Policy> = Vec::new();
        let mut info: HashMap<String, PolicyInfo> = HashMap::new();
        let mut file_of: HashMap<String, (String, String)> = HashMap::new();

        if bundle.files.is_empty() {
            return Err(PolicyError::NoPolicies("the policy bundle".into()));
        }
        for (file, text) in &bundle.files {
            let parsed = match PolicySet::from_str(text) {
                Ok(p) => p,
                Err(errs) => {
                    diags.extend(errs.iter().map(|e| miette_diags(file, text, e)));
                    continue;
                }
            };
            if let Some(t) = parsed.templates().next() {
                diags.push(diagnostic_at(
                    file,
                    text,
                    offset_in(text, &t.to_string()),
                    "policy templates (?principal / ?resource slots) are not supported",
                    Some("write the entity uid in place of the slot".into()),
                ));
            }
            let stem = file.strip_suffix(".cedar").unwrap_or(file);
            let mut ordered: Vec<&Policy> = parsed.policies().collect();
            ordered.sort_by_key(|p| auto_index(p.id()));
            for (n, p) in ordered.into_iter().enumerate() {
                let id = p
                    .annotation("id")
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{stem}:{n}"));
                let offset = offset_in(text, &p.to_string());
                if let Some(prev) = info.get(&id) {
                    diags.push(diagnostic_at(
                        file,
                        text,
                        offset,
                        format!("duplicate policy id `{id}` (also in {})", prev.file),
                        Some("give each policy a unique @id(\"…\")".into()),
                    ));
                    continue;
                }
                let line = offset.map(|o| crate::budget::line_col(text, o).0);
                info.insert(
                    id.clone(),
                    PolicyInfo {
                        id: id.clone(),
                        forbid: p.effect() == CedarEffect::Forbid,
                        reason: p.annotation("reason").map(str::to_owned),
                        file: file.clone(),
                        line,
                    },
                );
                file_of.insert(id.clone(), (file.clone(), text.clone()));
                policies.push(p.new_id(PolicyId::new(&id)));
            }
        }

        let mut full = PolicySet::new();
        for p in &policies {
            if let Err(e) = full.add(p.clone()) {
                diags.push(Diagnostic {
                    file: "(policy set)".into(),
                    line: None,
                    column: None,
                    message: e.to_string(),
                    help: None,
                    source_line: None,
                });
            }
        }

        let mut warnings = Vec::new();
        if diags.is_empty() {
            let result = Validator::new(schema.clone()).validate(&full, ValidationMode::Strict);
            for e in result.validation_errors() {
                let (file, text) = file_of
                    .get(e.policy_id().to_string().as_str())
                    .cloned()
                    .unwrap_or_default();
                diags.push(miette_diags(&file, &text, e));
            }
            for w in result.validation_warnings() {
                let (file, text) = file_of
                    .get(w.policy_id().to_string().as_str())
                    .cloned()
                    .unwrap_or_default();
                warnings.push(miette_diags(&file, &text, w));
            }
        }

        let budgets = match &bundle.budgets {
            Some(text) => BudgetConfig::parse(BUDGETS_FILE, text).unwrap_or_else(|d| {
                diags.extend(d);
                BudgetConfig::default()
            }),
            None => BudgetConfig::default(),
        };
        let prices = match &bundle.prices {
            Some(text) => PriceTable::with_overrides(PRICES_FILE, text).unwrap_or_else(|d| {
                diags.extend(d);
                PriceTable::default()
            }),
            None => PriceTable::default(),
        };

        if !diags.is_empty() {
            return Err(PolicyError::Invalid(diags));
        }
        Ok(CompiledPolicy {
            version: bundle.version(),
            bundle,
            index: PolicyIndex::build(names, policies),
            full: std::sync::Arc::new(full),
            info,
            budgets,
            prices,
            warnings,
        })
    }

    /// Reads and compiles a policy directory.
    #[cfg(feature = "os")]
    pub fn from_dir(dir: impl AsRef<std::path::Path>) -> Result<Self, PolicyError> {
        Self::compile(PolicyBundle::from_dir(dir)?)
    }

    /// Content hash of the sources (see [`PolicyBundle::version`]).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The sources this snapshot was compiled from.
    pub fn bundle(&self) -> &PolicyBundle {
        &self.bundle
    }

    /// Facts about one policy.
    pub fn policy(&self, id: &str) -> Option<&PolicyInfo> {
        self.info.get(id)
    }

    /// All policies, by id.
    pub fn policies(&self) -> BTreeMap<&str, &PolicyInfo> {
        self.info.iter().map(|(k, v)| (k.as_str(), v)).collect()
    }

    /// The budget rules.
    pub fn budgets(&self) -> &BudgetConfig {
        &self.budgets
    }

    /// The price table.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// Validator warnings (the set is usable).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// True if `agent_id` is under the kill switch.
    pub fn is_suspended(&self, agent_id: &str) -> bool {
        self.bundle.suspended.contains(agent_id)
    }
}

/// Cedar names unannotated policies `policy0`, `policy1`, … in file order.
fn auto_index(id: &PolicyId) -> usize {
    id.to_string()
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Byte offset of a parsed policy in its file: Cedar keeps each policy's original text.
fn offset_in(text: &str, policy_text: &str) -> Option<usize> {
    text.find(policy_text.trim())
}
