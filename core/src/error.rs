//! Typed errors, one enum per area. Nothing in aa-core panics on bad input.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Bad input in the data model: malformed JSON, an unknown action kind, an invalid field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The text is not JSON (with the position of the syntax error).
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// The JSON does not fit the model (unknown `kind`, missing field, wrong type).
    #[error("{0}")]
    Shape(String),
    /// A field is out of bounds.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ModelError {
    /// Wraps a serde_json error: syntax errors keep their position.
    pub fn from_json(e: serde_json::Error) -> Self {
        if e.is_syntax() || e.is_eof() {
            ModelError::Syntax {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            }
        } else {
            ModelError::Shape(e.to_string())
        }
    }

    /// Parses JSON text into `T`: syntax errors with a position, then shape errors.
    pub fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ModelError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(Self::from_json)?;
        serde_json::from_value(value).map_err(Self::from_json)
    }
}

/// One problem found in a policy, budget or price file, as plain data for every binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// File name within the policy directory (`base.cedar`, `budgets.toml`).
    pub file: String,
    /// 1-based line, when the tool that found it knows it.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    pub help: Option<String>,
    /// The source line the position points at.
    pub source_line: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

/// A policy bundle that cannot be loaded or compiled. The previously active set stays active.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory holds no `*.cedar` file.
    #[error("no .cedar policy files in {0}")]
    NoPolicies(String),
    /// Cedar syntax errors, budget or price file errors, schema validation errors.
    #[error("{} problem(s) in the policy set:\n{}", .0.len(), join(.0))]
    Invalid(Vec<Diagnostic>),
}

impl PolicyError {
    /// The diagnostics, for errors that carry them.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PolicyError::Invalid(d) => d,
            _ => &[],
        }
    }
}

fn join(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writing or opening an audit log failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// An I/O error on the audit file or key file.
    #[error("audit I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The existing audit file does not verify, so appending to it would hide the break.
    #[error("audit file {} is broken: {detail}", path.display())]
    Broken {
        /// The file.
        path: PathBuf,
        /// What the verifier found.
        detail: String,
    },
    /// The signing key file is malformed.
    #[error("bad signing key in {}: {reason}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A record could not be serialised (never expected for the model's own types).
    #[error("cannot serialise audit record: {0}")]
    Serialize(String),
    /// The sink refused the event (e.g. its bounded queue is full and it cannot spill).
    #[error("audit sink refused the event: {0}")]
    Refused(String),
}
