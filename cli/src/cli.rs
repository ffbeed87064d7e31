//! Command-line grammar.

use std::path::PathBuf;

use aa_core::Layer;
use clap::{Args, Parser, Subcommand};

/// Agent Assembly: see, decide and audit every action of your AI agents.
#[derive(Debug, Parser)]
#[command(name = "aasm", version, about, propagate_version = true)]
pub struct Cli {
    /// Machine-readable output: JSON Lines on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check and test policy directories.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Decide actions read from stdin (one JSON action per line) against a policy directory.
    Decide(DecideArgs),
    /// Verify and read audit logs.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print a schema: the Cedar schema policies are validated against, or the JSON Schema of
    /// the wire model (actions, decisions, audit records).
    Schema {
        /// Which schema.
        #[arg(value_enum, default_value = "cedar")]
        which: SchemaKind,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SchemaKind {
    /// The Cedar schema (entity types, actions, context).
    Cedar,
    /// The JSON Schema of the wire model.
    Model,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate Cedar policies against the schema, and the budget and price files.
    Check {
        /// Policy directory (*.cedar, budgets.toml, prices.toml).
        dir: PathBuf,
    },
    /// Run a table of decision cases (TOML or JSON) against a policy directory.
    Test {
        /// Policy directory.
        dir: PathBuf,
        /// Case file.
        cases: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Policy directory.
    #[arg(long)]
    pub policy: PathBuf,
    /// Agent id for lines that hold a bare action.
    #[arg(long, default_value = "cli")]
    pub agent: String,
    /// Team of that agent.
    #[arg(long)]
    pub team: Option<String>,
    /// Layer to report.
    #[arg(long, default_value = "sdk", value_parser = parse_layer)]
    pub layer: Layer,
    /// Append every decision to this hash-chained audit file (embedded mode).
    #[arg(long)]
    pub audit: Option<PathBuf>,
    /// Records between signed checkpoints in the audit file.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: u64,
    /// Allow (flagged fail_open) instead of deny when no decision can be made.
    #[arg(long)]
    pub fail_open: bool,
}

fn parse_layer(s: &str) -> Result<Layer, String> {
    s.parse().map_err(|e: aa_core::ModelError| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain, check checkpoint signatures, name the first broken link.
    Verify {
        /// Audit file (JSON Lines).
        file: PathBuf,
        /// Hex Ed25519 public key the checkpoints must be signed with.
        #[arg(long, conflicts_with = "key_file")]
        public_key: Option<String>,
        /// Signing key file whose public half the checkpoints must match (default: FILE.key if
        /// it exists).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Also fail when records follow the last checkpoint.
        #[arg(long)]
        strict: bool,
    },
    /// Print the records of an audit file, optionally following new ones.
    Tail {
        /// Audit file (JSON Lines).
        file: PathBuf,
        /// Show the last N lines first.
        #[arg(short = 'n', long, default_value_t = 20, conflicts_with = "all")]
        lines: usize,
        /// Show every line first.
        #[arg(long)]
        all: bool,
        /// Keep printing records as they are appended.
        #[arg(short, long)]
        follow: bool,
    },
}
