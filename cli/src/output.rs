//! One printer for human and JSON output. Data goes to stdout, chatter and errors to stderr;
//! with `--json` every stdout line is `{"type": ..., "data": ...}`.

use std::io::Write;
use std::process::ExitCode;

use aa_core::Diagnostic;
use serde::Serialize;

/// Exit statuses: 0 ok, 1 a check failed (deny, mismatch, broken chain, invalid policy),
/// 2 the command could not run (bad arguments, unreadable files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: done, every check passed.
    Success,
    /// 1: a check failed.
    Failed,
    /// 2: the command could not run.
    Failure,
    /// The exit status of the command `aasm run` governed (128 + N when signal N ended it).
    Child(u8),
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> Self {
        match s {
            Status::Success => ExitCode::SUCCESS,
            Status::Failed => ExitCode::from(1),
            Status::Failure => ExitCode::from(2),
            Status::Child(code) => ExitCode::from(code),
        }
    }
}

/// An error that stops a command (exit status 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A policy that does not load or compile.
    #[error(transparent)]
    Policy(#[from] aa_core::PolicyError),
    /// An audit file that cannot be read or written.
    #[error(transparent)]
    Audit(#[from] aa_core::AuditError),
    /// A file that cannot be read or written.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Bad input: arguments, a case file, a command that cannot start.
    #[error("{0}")]
    Input(String),
    /// The gateway could not be reached or refused the request.
    #[error(transparent)]
    Gateway(Box<aa_sdk_client::GatewayError>),
    /// The SDK client (the governor behind `decide`) could not start.
    #[error(transparent)]
    Client(Box<aa_sdk_client::ClientError>),
    /// The gateway server failed.
    #[error(transparent)]
    Server(Box<aa_gateway::GatewayError>),
    /// The proxy (or its CA) failed.
    #[error(transparent)]
    Proxy(Box<aa_proxy::ProxyError>),
    /// The kernel layer failed.
    #[error(transparent)]
    Ebpf(Box<aa_ebpf::EbpfError>),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// A child process could not start.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// What.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// `From` for the errors a `CliError` boxes, so `?` works on them.
macro_rules! boxed_from {
    ($($variant:ident($t:ty)),* $(,)?) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                CliError::$variant(Box::new(e))
            }
        }
    )*};
}

boxed_from!(
    Server(aa_gateway::GatewayError),
    Proxy(aa_proxy::ProxyError),
    Ebpf(aa_ebpf::EbpfError),
);

boxed_from!(Gateway(aa_sdk_client::GatewayError));

impl From<aa_sdk_client::ClientError> for CliError {
    fn from(e: aa_sdk_client::ClientError) -> Self {
        match e {
            aa_sdk_client::ClientError::Policy(p) => CliError::Policy(p),
            aa_sdk_client::ClientError::Audit(a) => CliError::Audit(a),
            other => CliError::Client(Box::new(other)),
        }
    }
}

impl CliError {
    /// Maps an I/O error on `path`.
    pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
        move |source| CliError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Writes data to stdout (human lines or `--json` envelopes) and notes and errors to stderr.
#[derive(Debug)]
pub struct Printer {
    json: bool,
}

impl Printer {
    /// A printer; `json` for JSON Lines.
    pub fn new(json: bool) -> Self {
        Printer { json }
    }

    /// Whether output is JSON Lines.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Prints one datum: JSON envelope, or the human rendering.
    pub fn emit<T: Serialize>(&self, kind: &str, data: &T, human: impl FnOnce() -> String) {
        let mut stdout = std::io::stdout().lock();
        let line = if self.json {
            serde_json::json!({ "type": kind, "data": data }).to_string()
        } else {
            human()
        };
        // A closed pipe (`aasm ... | head`) is not an error worth reporting.
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }

    /// Progress and notes for people (stderr; silent with --json).
    pub fn note(&self, text: &str) {
        if !self.json {
            eprintln!("{text}");
        }
    }

    /// Prints an error (with a policy's diagnostics, local or from the gateway).
    pub fn error(&self, e: &CliError) {
        let diags = match e {
            CliError::Policy(p) => p.diagnostics().to_vec(),
            CliError::Gateway(g) => match g.as_ref() {
                aa_sdk_client::GatewayError::Remote {
                    details: Some(d), ..
                } => d
                    .get("diagnostics")
                    .and_then(|d| serde_json::from_value(d.clone()).ok())
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        if self.json {
            self.emit(
                "error",
                &serde_json::json!({ "message": e.to_string(), "diagnostics": diags }),
                String::new,
            );
            return;
        }
        if diags.is_empty() {
            eprintln!("error: {e}");
        } else {
            eprintln!("error: {} problem(s) in the policy set", diags.len());
            for d in &diags {
                eprint!("{}", render_diagnostic(d));
            }
        }
    }
}

/// `file:line:col: message`, the source line with a caret under the column, and the help.
pub fn render_diagnostic(d: &Diagnostic) -> String {
    let mut out = format!("\n{d}\n");
    if let (Some(line), Some(col), Some(src)) = (d.line, d.column, &d.source_line) {
        let gutter = line.to_string().len();
        out.push_str(&format!(
            "{:gutter$} |\n{line} | {src}\n{:gutter$} | {}^\n",
            "",
            "",
            " ".repeat(col.saturating_sub(1))
        ));
    }
    out
}
