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
pub const PG_SET_TENANT: &str = "SELECT set_config('plexus.tenant', $1, true)";

/// Run `$body` in a transaction scoped to `$scope`'s tenant, with `$conn`
/// bound to its connection; commit at the end, roll back on early return.
/// On SQLite `write` joins the write gate's batch (group commit, see
/// [`crate::group`]); `read` does not.
macro_rules! scoped {
    ($scope:expr, $mode:ident, $conn:ident => $body:expr) => {{
        let scope: &$crate::scope::TenantScope<'_> = $scope;
        match &scope.store.db {
            $crate::db::Db::Sqlite(pool, gate) => $crate::tenant_tx!(@sqlite $mode, pool, gate, $conn => $body),
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
}
pub(crate) use scoped;

/// Run `$body` in a transaction bound to `$scope`'s tenant, with `$conn`
/// the connection (`&mut SqliteConnection` or `&mut PgConnection`: the body
/// is compiled once per backend, so runtime `sqlx::query` with `$n` binds
/// works on both). `write` takes SQLite's write lock (it joins the write
/// gate's batch: group commit, see `WriteGate`); `read` does not; `single` is for a body of exactly one statement, which SQLite runs
/// in its own implicit transaction (no BEGIN and COMMIT round trips to the
/// connection's worker thread; PostgreSQL still needs its transaction for
/// the tenant setting); `write_one` is `write` for a body of exactly one
/// statement: when it finds the gate free and nobody waiting, that
/// statement runs in SQLite's implicit transaction too, one round trip with
/// its commit instead of three; `write_by_answer` is `write` whose wait for
/// the commit's `fdatasync` is handed to the call's durability barrier
/// (`plexus_core::durability`), for writes followed by nothing outside the
/// process before the call's answer (PostgreSQL commits as for `write`).
/// Commits at the end; an early return (`?`, which converts
/// `sqlx::Error` into the enclosing function's error) rolls back.
///
/// This is how a module reaches its own tables. Every statement filters or
/// writes `tenant_id = ` [`TenantScope::id`]; on PostgreSQL the transaction
/// also sets `plexus.tenant`, which the table's row-level security policy
/// (the module's migration creates it, as core's do) checks, so a statement
/// that forgot its filter still sees and writes the scope's tenant only.
///
/// ```text
/// let n: i64 = plexus_store::tenant_tx!(&scope, read, conn => {
///     sqlx::query_scalar("SELECT count(*) FROM notes WHERE tenant_id = $1")
///         .bind(scope.id().as_str())
///         .fetch_one(&mut *conn)
///         .await?
/// });
/// ```
#[macro_export]
macro_rules! tenant_tx {
    ($scope:expr, $mode:ident, $conn:ident => $body:expr) => {{
        let scope: &$crate::TenantScope<'_> = $scope;
        match scope.__db() {
            $crate::__private::Db::Sqlite(pool, _) if $crate::tenant_tx!(@single $mode) => {
                let mut c = pool.acquire().await?;
                let $conn = &mut *c;
                $body
            }
            $crate::__private::Db::Sqlite(pool, gate) => $crate::tenant_tx!(@sqlite $mode, pool, gate, $conn => $body),
            $crate::__private::Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                $crate::__private::sqlx::query($crate::__private::PG_SET_TENANT)
                    .bind(scope.id().as_str())
                    .execute(&mut *tx)
                    .await?;
                let $conn = &mut *tx;
                let out = $body;
                tx.commit().await?;
                out
            }
        }
    }};
    (@sqlite write, $pool:ident, $gate:ident, $conn:ident => $body:expr) => {
        // Writers join the gate's batch: one commit (one `fsync`) for all
        // the writers queued meanwhile (group commit, see `WriteGate`).
        $crate::tenant_tx!(@member finish, $pool, $gate, $conn => $body)
    };
    (@sqlite write_by_answer, $pool:ident, $gate:ident, $conn:ident => $body:expr) => {
        // As `write`, but the wait for the commit's `fdatasync` goes to the
        // call's durability barrier (`plexus_core::durability`): the call's
        // answer waits for it alongside its audit record's. Only for writes
        // followed by nothing outside the process before the answer.
        $crate::tenant_tx!(@member finish_by_answer, $pool, $gate, $conn => $body)
    };
    (@member $finish:ident, $pool:ident, $gate:ident, $conn:ident => $body:expr) => {{
        let mut member = $gate.enter($pool).await?;
        let $conn = member.conn()?;
        let out = $body;
        member.$finish().await?;
        out
    }};
    (@sqlite write_one, $pool:ident, $gate:ident, $conn:ident => $body:expr) => {{
        // One statement: alone in the gate it commits itself (autocommit,
        // one round trip); otherwise it joins a batch like `write`.
        let mut one = $gate.enter_one($pool).await?;
        let $conn = one.conn()?;
        let out = $body;
        one.finish().await?;
        out
    }};
    (@sqlite $mode:ident, $pool:ident, $gate:ident, $conn:ident => $body:expr) => {{
        let _ = &$gate;
        let mut tx = $pool.begin().await?;
        let $conn = &mut *tx;
        let out = $body;
        tx.commit().await?;
        out
    }};
    (@single single) => {
        true
    };
    (@single $mode:ident) => {
        false
    };
}

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

    /// The database, for [`crate::tenant_tx`]; not an API.
    #[doc(hidden)]
    pub fn __db(&self) -> &crate::db::Db {
        &self.store.db
    }

    /// The scope's tenant.
    pub fn id(&self) -> &TenantId {
        &self.tenant
    }

    /// On a SQLite file, a writer in the write gate whose body runs on the
    /// gate's synchronous connection ([`Member::sync_conn`](crate::Member::sync_conn)):
    /// its statements run on the calling thread instead of a round trip
    /// each to sqlx's connection thread. Statements filter and write
    /// `tenant_id = ` [`TenantScope::id`] as in [`crate::tenant_tx`]; the
    /// body ends with [`Member::finish`](crate::Member::finish) or
    /// [`Member::finish_by_answer`](crate::Member::finish_by_answer) (an
    /// early return rolls it back). `None` on PostgreSQL and in memory,
    /// where the caller writes through [`crate::tenant_tx`].
    pub async fn enter_sync(&self) -> Result<Option<crate::Member>, sqlx::Error> {
        match &self.store.db {
            crate::db::Db::Sqlite(pool, gate) if gate.synchronous() => Ok(Some(gate.enter_sync(pool).await?)),
            _ => Ok(None),
        }
    }

    /// The scope's tenant as the directory has it, if it exists.
    pub async fn info(&self) -> Result<Option<Tenant>, StoreError> {
        self.store.get_tenant(&self.tenant).await
    }
}
