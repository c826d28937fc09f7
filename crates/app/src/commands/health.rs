//! `plexus health ...`: the health module from the command line.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use plexus_core::TenantId;

use crate::cli::{DisclosureFormat, HealthCommand};

fn out(line: &str) -> std::io::Result<()> {
    writeln!(std::io::stdout().lock(), "{line}")
}

/// A progress bar on standard error when it is a terminal.
fn bar(done: usize, total: usize, what: &str) {
    if std::io::stderr().is_terminal() {
        let width = 30;
        let filled = (done * width).checked_div(total).unwrap_or(width).min(width);
        eprint!("\r[{}{}] {done}/{total} {what:<40.40}", "#".repeat(filled), " ".repeat(width - filled));
        if done == total {
            eprintln!();
        }
    }
}

async fn known_tenant(store: &plexus_store::Store, id: &str) -> anyhow::Result<TenantId> {
    let t = TenantId::new(id);
    if store.get_tenant(&t).await?.is_none() {
        anyhow::bail!("no tenant `{id}` (create it with `plexus tenants create {id}`)");
    }
    Ok(t)
}

fn print_report(r: &plexus_health::load::Report, elapsed: std::time::Duration) -> std::io::Result<()> {
    let read: usize = r.per_type.values().sum();
    out(&format!(
        "{} resources in {:.1} s ({:.0}/s): {} created, {} updated, {} unchanged; {} bundles stored, {} rejected",
        read,
        elapsed.as_secs_f64(),
        read as f64 / elapsed.as_secs_f64().max(1e-9),
        r.stored.created,
        r.stored.updated,
        r.stored.unchanged,
        r.bundles,
        r.bundles_rejected
    ))?;
    if r.repeated > 0 {
        out(&format!("{} resources were given more than once: the last one read was stored", r.repeated))?;
    }
    for (kind, n) in &r.per_type {
        out(&format!("  {kind:<24} {n}"))?;
    }
    for rej in &r.rejected {
        out(&format!("rejected {}: {}", rej.at, rej.reason))?;
    }
    Ok(())
}

pub(super) fn health(command: HealthCommand) -> anyhow::Result<ExitCode> {
    match command {
        HealthCommand::Import { common, tenant, paths } => super::keys::with_store(&common, |store| async move {
            let tenant = known_tenant(&store, &tenant).await?;
            let fhir = plexus_health::FhirStore::open(store).await?;
            let started = std::time::Instant::now();
            let report = plexus_health::load::import_paths(&fhir, &tenant, &paths, &bar).await?;
            print_report(&report, started.elapsed())?;
            Ok(if report.rejected.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }),
        HealthCommand::Generate { common, tenant, patients, seed } => {
            if !(1..=1_000_000).contains(&patients) {
                anyhow::bail!("--patients: 1 to 1,000,000");
            }
            super::keys::with_store(&common, |store| async move {
                let tenant = known_tenant(&store, &tenant).await?;
                let fhir = plexus_health::FhirStore::open(store).await?;
                let started = std::time::Instant::now();
                let report = plexus_health::load::generate(&fhir, &tenant, seed, patients, &bar).await?;
                print_report(&report, started.elapsed())?;
                Ok(if report.rejected.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            })
        }
        HealthCommand::Disclosures { common, tenant, patient, format, json } => {
            let format = if json { DisclosureFormat::Json } else { format };
            // The AuditEvents' observer: this node's name in the audit log.
            let observer = match format {
                DisclosureFormat::AuditEvent => super::load(&common)?.node_id,
                DisclosureFormat::Table | DisclosureFormat::Json => String::new(),
            };
            super::keys::with_store(&common, |store| async move {
                let tenant = known_tenant(&store, &tenant).await?;
                let fhir = plexus_health::FhirStore::open(store).await?;
                let list = fhir.disclosures(&tenant, Some(&patient), None, None, 100_000).await?;
                match format {
                    DisclosureFormat::Json => out(&serde_json::to_string_pretty(&list)?)?,
                    DisclosureFormat::AuditEvent => {
                        let events = list.iter().map(|d| plexus_health::balp::audit_event(d, &observer)).collect();
                        out(&serde_json::to_string_pretty(&plexus_health::balp::bundle(events))?)?;
                    }
                    DisclosureFormat::Table => {
                        out(
                            "AT                    USER                  ROLES            TOOL                     OUTCOME  TYPES / WHY",
                        )?;
                        for d in &list {
                            out(&format!(
                                "{:<21} {:<21} {:<16} {:<24} {:<8} {}{} — {}",
                                d.at,
                                d.subject,
                                d.roles.join(","),
                                d.tool,
                                d.outcome,
                                if d.break_glass { "BREAK-THE-GLASS " } else { "" },
                                d.types.join(","),
                                d.purpose
                            ))?;
                        }
                        out(&format!("{} disclosure(s) of patient {patient}", list.len()))?;
                    }
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        HealthCommand::Stats { common, tenant } => super::keys::with_store(&common, |store| async move {
            let tenant = known_tenant(&store, &tenant).await?;
            let fhir = plexus_health::FhirStore::open(store).await?;
            for (kind, n) in fhir.counts(&tenant).await? {
                out(&format!("{kind:<24} {n}"))?;
            }
            Ok(ExitCode::SUCCESS)
        }),
    }
}
