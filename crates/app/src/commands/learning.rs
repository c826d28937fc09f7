//! `plexus learning ...`: the learning module from the command line.

use std::io::Write;
use std::process::ExitCode;

use plexus_core::TenantId;

use crate::cli::LearningCommand;
use crate::wiring;

pub(super) fn learning(command: LearningCommand) -> anyhow::Result<ExitCode> {
    match command {
        LearningCommand::Seed { common, tenants, seed, learners } => {
            if !(1..=10_000).contains(&learners) {
                anyhow::bail!("--learners: 1 to 10,000");
            }
            let config = super::load(&common)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move {
                let store = wiring::open_store(&config).await?;
                let result = async {
                    // Every tenant is checked before anything is written.
                    let mut ids = Vec::with_capacity(tenants.len());
                    for t in &tenants {
                        let id = TenantId::new(t);
                        if store.get_tenant(&id).await?.is_none() {
                            anyhow::bail!("no tenant `{t}` (create it with `plexus tenants create {t}`)");
                        }
                        ids.push(id);
                    }
                    let module = plexus_learning::Learning::open(store.clone(), config.learning.clone()).await?;
                    let mut out = std::io::stdout().lock();
                    for id in &ids {
                        let s = module.seed_demo(id, seed, learners).await?;
                        if s.already_seeded {
                            writeln!(out, "{}: has the demo already (seed {})", s.tenant, s.seed)?;
                        } else {
                            writeln!(
                                out,
                                "{}: {} skills, {} content items, {} items in the bank, {} learners, {} statements",
                                s.tenant, s.skills, s.content, s.items, s.learners, s.statements
                            )?;
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                .await;
                store.close().await;
                result
            })
        }
    }
}
