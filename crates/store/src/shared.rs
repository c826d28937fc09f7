//! Tables that cluster nodes share on PostgreSQL (the trading journal,
//! knowledge changes, registry versions, experiment events): the pieces
//! every module's cluster code needs to set them up.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// A stable advisory-lock key for `name` (FNV-1a, 64 bits): the same on
/// every node and in every release.
pub fn advisory_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Connect a pool of at most `max_connections` to the PostgreSQL database
/// at `url` and create shared tables with `ddl` (idempotent statements)
/// under the advisory lock `schema_lock`: two nodes starting together would
/// otherwise race on `CREATE TABLE IF NOT EXISTS` (a unique violation in
/// `pg_type`). Returns the pool and the connection's current schema
/// (clusters in different schemas of one database are apart).
///
/// # Errors
/// The database cannot be reached or refuses the tables; the message says
/// which.
pub async fn open_shared(
    url: &str,
    max_connections: u32,
    schema_lock: i64,
    ddl: &'static str,
) -> Result<(PgPool, String), String> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| format!("cannot reach the database: {e}"))?;
    let setup = async {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(schema_lock).execute(&mut *tx).await?;
        sqlx::query("SET LOCAL client_min_messages = warning").execute(&mut *tx).await?;
        sqlx::raw_sql(ddl).execute(&mut *tx).await?;
        let schema: String = sqlx::query_scalar("SELECT current_schema()::TEXT").fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(schema)
    };
    let schema = setup.await.map_err(|e| e.to_string())?;
    Ok((pool, schema))
}
