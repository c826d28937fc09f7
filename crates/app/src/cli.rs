//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "plexus", version, about = "Plexus: an MCP server platform", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over stdio or Streamable HTTP.
    Serve(ServeArgs),
    /// Inspect tools offline.
    Tools {
        #[command(subcommand)]
        command: ToolsCommand,
    },
    /// Check a configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Verify or export the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Issue, list and revoke API keys (stored as hashes; a key is shown once).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Knowledge: sync sources, search the index, list sources.
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
    /// The health module: import FHIR data, generate a synthetic population, list disclosures.
    Health {
        #[command(subcommand)]
        command: HealthCommand,
    },
    /// The learning module: load the seeded demo course, item bank and learners into tenants.
    Learning {
        #[command(subcommand)]
        command: LearningCommand,
    },
    /// Create, list, suspend and resume tenants.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key and print it once.
    Create {
        #[command(flatten)]
        common: Common,
        /// Name of the key: the principal's subject in the audit log.
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Roles, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
    },
    /// List a tenant's keys (never their secrets).
    List {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Revoke a key by id; it is refused from the next call on.
    Revoke {
        #[command(flatten)]
        common: Common,
        id: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Make a new master key for encryption at rest (64 hex characters).
    GenerateMaster {
        /// Write it to this file (created with mode 0600, never overwritten)
        /// instead of printing it.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Rewrap every tenant's data keys under a master key. Without `--to`,
    /// under the configured primary (after moving the old key to
    /// crypto.previous_master_key_files); with `--to FILE`, under the key
    /// in FILE, unwrapping with the configured keys.
    RotateMaster {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        to: Option<std::path::PathBuf>,
    },
    /// Give a tenant a new data key for new values; old values stay readable.
    RotateData {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    Create {
        #[command(flatten)]
        common: Common,
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "standard")]
        tier: String,
    },
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Move a tenant to another tier: its rate limits become `[limits.tiers.TIER]`.
    SetTier {
        #[command(flatten)]
        common: Common,
        id: String,
        tier: String,
    },
    /// Refuse every call of the tenant's principals until resumed.
    Suspend {
        #[command(flatten)]
        common: Common,
        id: String,
    },
    Resume {
        #[command(flatten)]
        common: Common,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Sync sources into the index: only what changed since the last sync, or everything with --full.
    /// (A running server syncs its own sources; this is for when none runs.)
    Sync {
        #[command(flatten)]
        common: Common,
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only this tenant's sources.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        full: bool,
    },
    /// Search the index as a reader would.
    Search {
        #[command(flatten)]
        common: Common,
        query: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The reader's principals: everyone, role:<r>, group:<g>, user:<subject> (comma-separated).
        #[arg(long = "as", value_delimiter = ',', default_value = "everyone")]
        readers: Vec<String>,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the configured sources.
    Sources {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Subcommand)]
pub enum HealthCommand {
    /// Import FHIR R4 Bundles (.json: batch or transaction) and Bulk Data NDJSON (.ndjson), files or
    /// directories. Idempotent: what is already stored unchanged is left alone.
    Import {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Store a seeded synthetic population (FHIR R4 with LOINC, SNOMED CT, RxNorm and CVX codes).
    Generate {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long)]
        patients: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Who accessed a patient's data, when, why and through which tool.
    Disclosures {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long, value_name = "ID")]
        patient: String,
        /// `table` (for people), `json` (the disclosure rows), or `auditevent` (a FHIR R4 Bundle
        /// of AuditEvents after IHE BALP, observed by this node's audit node id).
        #[arg(long, value_enum, default_value = "table")]
        format: DisclosureFormat,
        /// Print JSON (the same as `--format json`).
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Resources stored per type.
    Stats {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LearningCommand {
    /// Load the seeded demo (a course with its skills graph and content, a calibrated item bank, and
    /// simulated learners' activity) into existing tenants. A tenant that has it already is left
    /// alone; a tenant with a course of its own is refused.
    Seed {
        #[command(flatten)]
        common: Common,
        /// A tenant (repeatable).
        #[arg(long = "tenant", required = true, value_name = "ID")]
        tenants: Vec<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Simulated learners per tenant.
        #[arg(long, default_value_t = 40)]
        learners: usize,
    },
}

/// Options every command that reads the configuration shares.
#[derive(Debug, Args, Clone, Default)]
pub struct Common {
    /// Configuration file (default: $PLEXUS_CONFIG, else built-in defaults).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Modules to serve, comma-separated (overrides the configuration).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub modules: Option<Vec<String>>,
    /// Data directory (overrides the configuration).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: Common,
    /// Serve one client over stdin/stdout.
    #[arg(long, conflicts_with = "http")]
    pub stdio: bool,
    /// Serve Streamable HTTP at ADDR (for example 127.0.0.1:8080), endpoint /mcp.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Create a data directory with demo data and an admin API key, and print how to connect.
    #[arg(long)]
    pub demo: bool,
    /// Serve HTTP without credentials (every caller gets the anonymous roles). Local use only.
    #[arg(long)]
    pub allow_anonymous: bool,
    /// This node's name in a cluster and in the audit log (overrides audit.node_id).
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// List the tools a server with this configuration would expose.
    List {
        #[command(flatten)]
        common: Common,
        /// Print JSON (the MCP `tools/list` shape) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the configuration; print the effective settings.
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// List the environment variables Plexus reads.
    Env,
}

/// How `plexus health disclosures` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DisclosureFormat {
    /// One line per disclosure.
    Table,
    /// The disclosure rows as JSON.
    Json,
    /// A FHIR R4 Bundle (collection) of AuditEvents following IHE BALP.
    #[value(name = "auditevent")]
    AuditEvent,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the audit log; name every broken record.
    Verify {
        #[command(flatten)]
        common: Common,
    },
    /// Write audit records in a time range to stdout.
    Export {
        #[command(flatten)]
        common: Common,
        /// First time included (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        from: Option<String>,
        /// First time excluded (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}
