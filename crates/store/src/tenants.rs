//! The tenant directory: who the tenants are, their tier, and whether they
//! are active. Directory rows are not tenant-owned (they are the tenants).

use plexus_core::context::TenantId;
use plexus_core::ports::{TenantDirectory, TenantInfo};
use time::OffsetDateTime;

use crate::db::{Store, on_db};
use crate::error::{StoreError, is_unique_violation};

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Stable identifier, the `tenant` of principals and audit records.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Service tier (`free`, `standard`, ...), read by quotas.
    pub tier: String,
    /// Inactive tenants are refused by the pipeline's tenant gate.
    pub active: bool,
    /// When the tenant was created.
    pub created_at: OffsetDateTime,
}

/// What it takes to create a tenant (created active).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    /// Stable identifier: 1 to 128 characters, no control characters.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Service tier.
    pub tier: String,
}

type TenantRow = (String, String, String, bool, OffsetDateTime);

fn tenant_from_row((id, name, tier, active, created_at): TenantRow) -> Tenant {
    Tenant { id: TenantId::new(&id), name, tier, active, created_at }
}

/// Refuse empty, overlong or control-character text.
pub(crate) fn check_text(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > 128 {
        return Err(StoreError::invalid(field, "must be at most 128 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(StoreError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Now, to the microsecond (what both databases keep).
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_microsecond(t.microsecond()).unwrap_or(t)
}

impl Store {
    /// Create an active tenant. [`StoreError::Conflict`] if the id is taken.
    pub async fn create_tenant(&self, new: &NewTenant) -> Result<Tenant, StoreError> {
        check_text("tenant id", new.id.as_str())?;
        check_text("tenant name", &new.name)?;
        check_text("tenant tier", &new.tier)?;
        let tenant = Tenant {
            id: new.id.clone(),
            name: new.name.clone(),
            tier: new.tier.clone(),
            active: true,
            created_at: now(),
        };
        let result = on_db!(&self.db, pool => {
            sqlx::query("INSERT INTO tenants (id, name, tier, active, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(tenant.id.as_str())
                .bind(&tenant.name)
                .bind(&tenant.tier)
                .bind(tenant.active)
                .bind(tenant.created_at)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match result {
            Ok(()) => Ok(tenant),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!("tenant {}", new.id))),
            Err(e) => Err(e.into()),
        }
    }

    /// One tenant, if it exists.
    pub async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let row = on_db!(&self.db, pool => {
            sqlx::query_as::<_, TenantRow>("SELECT id, name, tier, active, created_at FROM tenants WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(tenant_from_row))
    }

    /// Every tenant, by id.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = on_db!(&self.db, pool => {
            sqlx::query_as::<_, TenantRow>("SELECT id, name, tier, active, created_at FROM tenants ORDER BY id")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(tenant_from_row).collect())
    }

    /// Move a tenant to another tier (its quotas follow within the tenant
    /// cache's lifetime). [`StoreError::UnknownTenant`] if there is no such
    /// tenant.
    pub async fn set_tenant_tier(&self, id: &TenantId, tier: &str) -> Result<(), StoreError> {
        check_text("tier", tier)?;
        self.update_tenant(id, "UPDATE tenants SET tier = $1 WHERE id = $2", tier).await
    }

    /// Activate or deactivate a tenant. [`StoreError::UnknownTenant`] if
    /// there is no such tenant.
    pub async fn set_tenant_active(&self, id: &TenantId, active: bool) -> Result<(), StoreError> {
        self.update_tenant(id, "UPDATE tenants SET active = $1 WHERE id = $2", active).await
    }

    /// Run `sql` (`$1` = `value`, `$2` = the tenant id) on one tenant's row.
    async fn update_tenant<V>(&self, id: &TenantId, sql: &'static str, value: V) -> Result<(), StoreError>
    where
        V: for<'q> sqlx::Encode<'q, sqlx::Sqlite>
            + for<'q> sqlx::Encode<'q, sqlx::Postgres>
            + sqlx::Type<sqlx::Sqlite>
            + sqlx::Type<sqlx::Postgres>
            + Send
            + Clone,
    {
        let done = on_db!(&self.db, pool => {
            sqlx::query(sql).bind(value.clone()).bind(id.as_str()).execute(pool).await?.rows_affected()
        });
        if done == 0 {
            return Err(StoreError::UnknownTenant(id.to_string()));
        }
        Ok(())
    }
}

/// The pipeline's tenant gate reads the directory. A database failure is
/// logged and the tenant treated as unknown, so calls fail closed.
#[async_trait::async_trait]
impl TenantDirectory for Store {
    async fn tenant(&self, id: &TenantId) -> Option<TenantInfo> {
        match self.get_tenant(id).await {
            Ok(t) => t.map(|t| TenantInfo { id: t.id, tier: t.tier, active: t.active }),
            Err(e) => {
                tracing::error!(error = %e, tenant = %id, "tenant lookup failed");
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl plexus_core::ports::TenantLister for Store {
    async fn tenants(&self) -> Result<Vec<plexus_core::ports::TenantOverview>, String> {
        let list = self.list_tenants().await.map_err(|e| e.to_string())?;
        Ok(list
            .into_iter()
            .map(|t| plexus_core::ports::TenantOverview { id: t.id, name: t.name, tier: t.tier, active: t.active })
            .collect())
    }
}
