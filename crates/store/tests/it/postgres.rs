//! What only the PostgreSQL backend has: row-level security under the
//! tenant scope, and the guard that keeps CI from skipping these tests.

use std::sync::Arc;

use plexus_core::context::TenantId;
use plexus_store::{Keyring, MasterKey, NewTenant, SensitiveField, key_digest};

use crate::harness::{Kind, POSTGRES_ENV, TestDb, postgres_url, run};

#[test]
fn ci_runs_the_postgres_tests() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci || postgres_url().is_some(),
        "CI=true but {POSTGRES_ENV} is not set: the PostgreSQL storage tests would be skipped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_hides_other_tenants_rows_from_hand_written_sql() {
    run(Kind::Postgres, rls).await;
}

async fn rls(db: Arc<TestDb>) {
    let store = db.open().await;
    for id in ["acme", "globex"] {
        let t = NewTenant { id: TenantId::new(id), name: id.into(), tier: "standard".into() };
        store.create_tenant(&t).await.unwrap();
    }
    store.tenant(&TenantId::new("acme")).create_key("a1", &[]).await.unwrap();
    store.tenant(&TenantId::new("acme")).create_key("a2", &[]).await.unwrap();
    let g = store.tenant(&TenantId::new("globex")).create_key("g1", &[]).await.unwrap();

    let pool = db.postgres_app_pool().await;
    // The role plexus runs as here is what production should use: neither
    // a superuser nor exempt from row-level security.
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!superuser && !bypass);

    // In acme's scope, SQL without any tenant filter sees acme's rows only.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('plexus.tenant', $1, true)").bind("acme").execute(&mut *tx).await.unwrap();
    let tenants: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM api_keys").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(tenants, ["acme", "acme"]);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE tenant_id = 'globex'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = 'globex'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 0, "another tenant's rows cannot be changed");
    let n = sqlx::query("DELETE FROM api_keys").execute(&mut *tx).await.unwrap().rows_affected();
    assert_eq!(n, 2, "only acme's own rows are reachable");
    tx.rollback().await.unwrap();

    // Nor can acme's scope write a row for globex.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('plexus.tenant', $1, true)").bind("acme").execute(&mut *tx).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, name, roles, key_sha256, created_at) \
         VALUES ('key_x', 'globex', 'x', '[]', 'x', now())",
    )
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    tx.rollback().await.unwrap();

    // The setting is transaction-local: the next transaction on the same
    // connection, and a connection that never set it, see nothing.
    let mut conn = pool.acquire().await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    sqlx::query("SELECT set_config('plexus.tenant', $1, true)").bind("globex").execute(&mut *tx).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(n, 1);
    tx.commit().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(n, 0);
    drop(conn);

    // Authentication's lookup sees the one row whose digest it presents.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('plexus.key_lookup', $1, true)")
        .bind(key_digest(g.secret.expose()))
        .execute(&mut *tx)
        .await
        .unwrap();
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM api_keys").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(names, ["g1"]);
    let n = sqlx::query("UPDATE api_keys SET name = 'y'").execute(&mut *tx).await.unwrap().rows_affected();
    assert_eq!(n, 0, "the lookup policy is read-only");
    tx.rollback().await.unwrap();

    // Data keys are tenant-owned too.
    store.set_keyring(Some(Keyring::new(MasterKey::generate().unwrap().0, [])));
    let field = SensitiveField::new("t", "c");
    store.tenant(&TenantId::new("acme")).seal_str(&field, "a").await.unwrap();
    store.tenant(&TenantId::new("globex")).seal_str(&field, "g").await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('plexus.tenant', $1, true)").bind("acme").execute(&mut *tx).await.unwrap();
    let tenants: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM data_keys").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(tenants, ["acme"]);
    tx.rollback().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM data_keys").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 0, "no tenant, no data keys");
    pool.close().await;
}
