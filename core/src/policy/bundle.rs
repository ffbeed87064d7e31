//! The policy bundle: the source files of a policy set, as loaded from a directory and as
//! distributed by the gateway (`GET /v1/policy`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[cfg(feature = "os")]
use crate::error::PolicyError;

/// Name of the budget file inside a policy directory.
pub const BUDGETS_FILE: &str = "budgets.toml";
/// Name of the optional price-table override inside a policy directory.
pub const PRICES_FILE: &str = "prices.toml";

/// The sources of a policy set. Compile it with [`crate::CompiledPolicy::compile`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyBundle {
    /// Cedar files by name (`base.cedar` → its text).
    pub files: BTreeMap<String, String>,
    /// Text of `budgets.toml`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<String>,
    /// Text of a `prices.toml` that overrides entries of the shipped price table, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<String>,
    /// Agents under the kill switch: every action of theirs is denied with `suspended`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub suspended: BTreeSet<String>,
}

impl PolicyBundle {
    /// Reads `*.cedar`, `budgets.toml` and `prices.toml` from `dir` (not recursive).
    #[cfg(feature = "os")]
    pub fn from_dir(dir: impl AsRef<std::path::Path>) -> Result<Self, PolicyError> {
        let dir = dir.as_ref();
        let io = |path: &std::path::Path, source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut bundle = PolicyBundle::default();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let entry = entry.map_err(|e| io(dir, e))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let is_file = entry.file_type().map_err(|e| io(&path, e))?.is_file()
                || path.metadata().map(|m| m.is_file()).unwrap_or(false);
            if !is_file {
                continue;
            }
            let read = || std::fs::read_to_string(&path).map_err(|e| io(&path, e));
            if name.ends_with(".cedar") {
                bundle.files.insert(name, read()?);
            } else if name == BUDGETS_FILE {
                bundle.budgets = Some(read()?);
            } else if name == PRICES_FILE {
                bundle.prices = Some(read()?);
            }
        }
        if bundle.files.is_empty() {
            return Err(PolicyError::NoPolicies(dir.display().to_string()));
        }
        Ok(bundle)
    }

    /// Content hash of the bundle: the first 32 hex digits of SHA-256 over its parts, each
    /// length-prefixed (files in name order, then budgets, prices, suspended agents). It is the
    /// gateway's ETag; equal bundles have equal versions.
    pub fn version(&self) -> String {
        fn part(h: &mut Sha256, tag: &[u8], bytes: &[u8]) {
            h.update(tag);
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        let mut h = Sha256::new();
        for (name, text) in &self.files {
            part(&mut h, b"F", name.as_bytes());
            part(&mut h, b"T", text.as_bytes());
        }
        if let Some(b) = &self.budgets {
            part(&mut h, b"B", b.as_bytes());
        }
        if let Some(p) = &self.prices {
            part(&mut h, b"P", p.as_bytes());
        }
        for agent in &self.suspended {
            part(&mut h, b"S", agent.as_bytes());
        }
        let digest = h.finalize();
        hex::encode(digest.get(..16).unwrap_or_default())
    }
}
