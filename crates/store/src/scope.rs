//! Tenant scopes: the only way to tenant-owned rows.
//!
//! Every method of [`TenantScope`] runs in one transaction that is bound to
//! the scope's tenant: each statement filters or writes `tenant_id = <the
//! scope's tenant>`, and on PostgreSQL the transaction also sets
//! `plexus.tenant` (transaction-local, like `SET LOCAL`), which the
//! row-level security policies check, so even a statement that forgot its
//! filter sees and writes the scope's tenant only. There is no method that
//! reads tenant-owned rows without a tenant.

use plexus_core::context::TenantId;

use crate::db::Store;
use crate::error::StoreError;
use crate::tenants::Tenant;

/// Sets the tenant for the rest of the transaction (`SET LOCAL
/// plexus.tenant = $1`, with a bind parameter).
pub(crate) const PG_SET_TENANT: &str = "SELECT set_config('plexus.tenant', $1, true)";

/// Run `$body` in a transaction scoped to `$scope`'s tenant, with `$conn`
/// bound to its connection; commit at the end, roll back on early return.
/// `write` takes SQLite's write lock up front (`BEGIN IMMEDIATE`); `read`
/// does not.
macro_rules! scoped {
    ($scope:expr, $mode:ident, $conn:ident => $body:expr) => {{
        let scope: &$crate::scope::TenantScope<'_> = $scope;
        match &scope.store.db {
            $crate::db::Db::Sqlite(pool) => {
                let mut tx = $crate::scope::scoped!(@sqlite_begin $mode, pool);
                let $conn = &mut *tx;
                let out = $body;
                tx.commit().await?;
                out
            }
            $crate::db::Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query($crate::scope::PG_SET_TENANT).bind(scope.tenant.as_str()).execute(&mut *tx).await?;
                let $conn = &mut *tx;
                let out = $body;
                tx.commit().await?;
                out
            }
        }
    }};
    (@sqlite_begin write, $pool:ident) => {
        $pool.begin_with("BEGIN IMMEDIATE").await?
    };
    (@sqlite_begin read, $pool:ident) => {
        $pool.begin().await?
    };
}
pub(crate) use scoped;

/// Everything one tenant owns, and nothing any other tenant does. Obtained
/// from [`Store::tenant`].
#[derive(Debug, Clone)]
pub struct TenantScope<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: TenantId,
}

impl<'a> TenantScope<'a> {
    pub(crate) fn new(store: &'a Store, tenant: TenantId) -> Self {
        Self { store, tenant }
    }

    /// The scope's tenant.
    pub fn id(&self) -> &TenantId {
        &self.tenant
    }

    /// The scope's tenant as the directory has it, if it exists.
    pub async fn info(&self) -> Result<Option<Tenant>, StoreError> {
        self.store.get_tenant(&self.tenant).await
    }
}
