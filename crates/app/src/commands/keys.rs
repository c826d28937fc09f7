//! `plexus keys ...` and `plexus tenants ...`: identities in the store.

use std::io::Write;
use std::process::ExitCode;

use plexus_core::TenantId;
use plexus_store::{Keyring, MasterKey, NewTenant, Store};

use crate::cli::{Common, KeysCommand, TenantsCommand};
use crate::wiring;

pub(super) fn with_store<F, Fut>(common: &Common, f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let config = super::load(common)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let store = wiring::open_store(&config).await?;
        let result = f(store.clone()).await;
        store.close().await;
        result
    })
}

fn out(line: &str) -> std::io::Result<()> {
    writeln!(std::io::stdout().lock(), "{line}")
}

async fn known_tenant(store: &Store, id: &str) -> anyhow::Result<TenantId> {
    let id = TenantId::new(id);
    if store.get_tenant(&id).await?.is_none() {
        anyhow::bail!("tenant `{id}` does not exist (create it with `plexus tenants create {id}`)");
    }
    Ok(id)
}

pub(super) fn keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create { common, name, tenant, roles } => with_store(&common, |store| async move {
            let tenant = known_tenant(&store, &tenant).await?;
            let issued = store.tenant(&tenant).create_key(&name, &roles).await?;
            out(&format!("key id:  {}", issued.key.id))?;
            out(&format!("tenant:  {tenant}"))?;
            out(&format!("roles:   {}", issued.key.roles.join(", ")))?;
            out(&format!("secret:  {}", issued.secret.expose()))?;
            eprintln!("The secret is shown once and stored only as a hash: keep it now.");
            Ok(ExitCode::SUCCESS)
        }),
        KeysCommand::List { common, tenant } => with_store(&common, |store| async move {
            let tenant = known_tenant(&store, &tenant).await?;
            out("ID                    NAME                  ROLES                 STATE")?;
            for k in store.tenant(&tenant).list_keys().await? {
                let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                out(&format!("{:<21} {:<21} {:<21} {state}", k.id, k.name, k.roles.join(",")))?;
            }
            Ok(ExitCode::SUCCESS)
        }),
        KeysCommand::Revoke { common, id, tenant } => with_store(&common, |store| async move {
            let tenant = known_tenant(&store, &tenant).await?;
            store.tenant(&tenant).revoke_key(&id).await?;
            out(&format!("revoked {id}"))?;
            Ok(ExitCode::SUCCESS)
        }),
        KeysCommand::GenerateMaster { out: None } => {
            let (key, text) = MasterKey::generate()?;
            out(&text)?;
            eprintln!("master key {} (keep it where only the server can read it)", key.id());
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::GenerateMaster { out: Some(path) } => {
            let key = MasterKey::generate_file(&path)?;
            out(&format!("wrote master key {} to {}", key.id(), path.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::RotateMaster { common, to } => {
            let config = super::load(&common)?;
            let configured = config.keyring()?;
            let keyring = match (to, configured) {
                (None, Some(k)) => k,
                (None, None) => anyhow::bail!(plexus_store::StoreError::NoMasterKey),
                (Some(path), configured) => {
                    let new = MasterKey::read_file(&path)?;
                    let old = configured.map(|k| k.all()).unwrap_or_default();
                    Keyring::new(new, old)
                }
            };
            with_store(&common, |store| async move {
                store.set_keyring(Some(keyring.clone()));
                let r = store.rotate_master().await?;
                out(&format!(
                    "rewrapped {} data key(s) of {} tenant(s) under master key {}; {} already were",
                    r.rewrapped,
                    r.tenants,
                    keyring.primary_id(),
                    r.current
                ))?;
                eprintln!(
                    "Serve with {} as crypto.master_key_file (or PLEXUS_MASTER_KEY) from now on; the old key is no longer needed.",
                    keyring.primary_id()
                );
                Ok(ExitCode::SUCCESS)
            })
        }
        KeysCommand::RotateData { common, tenant } => with_store(&common, |store| async move {
            let tenant = known_tenant(&store, &tenant).await?;
            let id = store.tenant(&tenant).rotate_data_key().await?;
            out(&format!("tenant {tenant} seals new values with data key {id}"))?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}

pub(super) fn tenants(command: TenantsCommand) -> anyhow::Result<ExitCode> {
    match command {
        TenantsCommand::Create { common, id, name, tier } => with_store(&common, |store| async move {
            let new = NewTenant { id: TenantId::new(&id), name: name.unwrap_or_else(|| id.clone()), tier };
            let t = store.create_tenant(&new).await?;
            out(&format!("created tenant {} ({}, tier {})", t.id, t.name, t.tier))?;
            Ok(ExitCode::SUCCESS)
        }),
        TenantsCommand::List { common } => with_store(&common, |store| async move {
            out("ID                    TIER          STATE      NAME")?;
            for t in store.list_tenants().await? {
                let state = if t.active { "active" } else { "suspended" };
                out(&format!("{:<21} {:<13} {:<10} {}", t.id, t.tier, state, t.name))?;
            }
            Ok(ExitCode::SUCCESS)
        }),
        TenantsCommand::SetTier { common, id, tier } => with_store(&common, |store| async move {
            store.set_tenant_tier(&TenantId::new(&id), &tier).await?;
            out(&format!("tenant {id} is now on tier {tier}"))?;
            Ok(ExitCode::SUCCESS)
        }),
        TenantsCommand::Suspend { common, id } => with_store(&common, |store| async move {
            store.set_tenant_active(&TenantId::new(&id), false).await?;
            out(&format!("suspended {id}"))?;
            Ok(ExitCode::SUCCESS)
        }),
        TenantsCommand::Resume { common, id } => with_store(&common, |store| async move {
            store.set_tenant_active(&TenantId::new(&id), true).await?;
            out(&format!("resumed {id}"))?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}
