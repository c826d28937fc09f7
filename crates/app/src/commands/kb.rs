//! `plexus kb ...`: the knowledge module from the command line.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use crate::cli::KbCommand;
use crate::wiring;

fn out(line: &str) -> std::io::Result<()> {
    writeln!(std::io::stdout().lock(), "{line}")
}

pub(super) fn kb(command: KbCommand) -> anyhow::Result<ExitCode> {
    match command {
        KbCommand::Sources { common } => {
            let config = super::load(&common)?;
            out("TENANT                SOURCE                KIND          READERS               PATH")?;
            for s in &config.knowledge_sources {
                let path = s.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                out(&format!("{:<21} {:<21} {:<13} {:<21} {path}", s.tenant, s.name, s.kind, s.readers.join(",")))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::Sync { common, source, tenant, full } => {
            let config = super::load(&common)?;
            if config.knowledge_sources.is_empty() {
                anyhow::bail!("no knowledge sources are configured ([[knowledge.sources]] in plexus.toml)");
            }
            if let Some(name) = &source
                && !config.knowledge_sources.iter().any(|s| &s.name == name)
            {
                anyhow::bail!("no knowledge source named `{name}` (see `plexus kb sources`)");
            }
            let k = wiring::Knowledge::open(&config)?;
            let tty = std::io::stderr().is_terminal();
            let started = std::time::Instant::now();
            let outcomes = k.syncer.sync(tenant.as_deref(), source.as_deref(), full, &|name, done, total| {
                if tty {
                    let width = 30;
                    let filled = (done * width).checked_div(total).unwrap_or(width).min(width);
                    eprint!("\r{name:<20} [{}{}] {done}/{total}", "#".repeat(filled), " ".repeat(width - filled));
                }
            });
            if tty {
                eprintln!();
            }
            let mut failed = false;
            for o in &outcomes {
                match (&o.report, &o.error) {
                    (Some(r), _) => out(&format!(
                        "{}/{}: {} files, {} indexed, {} unchanged, {} deleted, {} skipped",
                        o.tenant, o.source, r.files, r.indexed, r.unchanged, r.deleted, r.skipped
                    ))?,
                    (None, Some(e)) => {
                        failed = true;
                        out(&format!("{}/{}: failed: {e}", o.tenant, o.source))?;
                    }
                    (None, None) => {}
                }
            }
            eprintln!("synced in {:.1} s", started.elapsed().as_secs_f64());
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        KbCommand::Search { common, query, tenant, readers, limit, json } => {
            let config = super::load(&common)?;
            let k = wiring::Knowledge::open(&config)?;
            let reader = plexus_knowledge::Reader { tenant, principals: readers };
            let results = k.index.search(&reader, &query, &plexus_knowledge::Filters::default(), limit, 0)?;
            if json {
                out(&serde_json::to_string_pretty(&results)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out(&format!("{} documents match", results.total))?;
            for (i, h) in results.hits.iter().enumerate() {
                out(&format!("{:>2}. {}  [{}] {}", i + 1, h.title, h.source, h.id))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
