//! One file per subcommand.

mod audit;
mod config;
mod health;
mod kb;
mod keys;
mod learning;
mod serve;
mod tools;

use std::process::ExitCode;

use crate::cli::{AuditCommand, Cli, Command, Common, ConfigCommand, ToolsCommand};
use crate::config::{Config, ProcessEnv};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Tools { command: ToolsCommand::List { common, json } } => tools::list(&load(&common)?, json),
        Command::Config { command: ConfigCommand::Check { common } } => config::check(&common),
        Command::Config { command: ConfigCommand::Env } => config::env(),
        Command::Audit { command: AuditCommand::Verify { common } } => audit::verify(&load(&common)?),
        Command::Audit { command: AuditCommand::Export { common, from, to, format } } => {
            audit::export(&load(&common)?, from.as_deref(), to.as_deref(), format)
        }
        Command::Keys { command } => keys::keys(command),
        Command::Kb { command } => kb::kb(command),
        Command::Health { command } => health::health(command),
        Command::Learning { command } => learning::learning(command),
        Command::Tenants { command } => keys::tenants(command),
    }
}

/// The configuration with the command line's overrides applied.
pub(crate) fn load(common: &Common) -> anyhow::Result<Config> {
    let mut c = Config::load(common.config.as_deref(), &ProcessEnv)?;
    if let Some(m) = &common.modules {
        let text = format!("[modules]\nenabled = {:?}\n", m);
        // Re-validate the module list through the same checks as the file.
        c.modules = Config::parse(&text, &std::collections::HashMap::new())?.modules;
    }
    if let Some(d) = &common.data_dir {
        c.data_dir = d.clone();
    }
    Ok(c)
}

/// Where the audit log lives.
pub(crate) fn audit_path(c: &Config) -> std::path::PathBuf {
    c.data_dir.join("audit").join("audit.jsonl")
}
