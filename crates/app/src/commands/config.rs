//! `plexus config check` and `plexus config env`.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::Common;
use crate::config::ENV;
use crate::wiring;

pub(crate) fn check(common: &Common) -> anyhow::Result<ExitCode> {
    let c = super::load(common)?;
    // Building the registry proves the modules fit together (names, schemas).
    let registry = wiring::registry(&c, wiring::modules(&c, &wiring::ModuleDeps::offline()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "configuration ok")?;
    writeln!(out, "  modules:        {}", c.modules.join(", "))?;
    writeln!(out, "  tools:          {}", registry.tools().len())?;
    writeln!(out, "  data dir:       {}", c.data_dir.display())?;
    writeln!(out, "  allowed hosts:  {}", c.allowed_hosts.join(", "))?;
    writeln!(out, "  call timeout:   {} ms", c.call_timeout.as_millis())?;
    let mut roles: Vec<_> = c.roles.keys().cloned().collect();
    roles.sort();
    writeln!(out, "  roles:          {}", roles.join(", "))?;
    writeln!(out, "  api keys:       {}", c.api_keys.len())?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn env() -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for (k, v) in ENV {
        writeln!(out, "{k:<20} {v}")?;
    }
    Ok(ExitCode::SUCCESS)
}
