//! A PostgreSQL schema of its own for one test.

/// A fresh schema owned by a fresh role that is neither superuser nor exempt
/// from row-level security (so the policies are what isolates tenants);
/// [`PgSchema::stop`] drops both.
#[derive(Debug)]
pub struct PgSchema {
    admin: sqlx::PgPool,
    role: String,
    /// The connection URL of the role (its `search_path` is its schema).
    pub url: String,
}

impl PgSchema {
    /// A schema on the server of `PLEXUS_TEST_POSTGRES_URL`, or `None` with
    /// a `SKIPPED` line naming `what` when the variable is unset (outside
    /// CI; under `CI` an unset variable fails the test). `prefix` starts the
    /// role's name (lowercase letters and `_`).
    ///
    /// # Panics
    /// When the server cannot be reached or refuses to create the role: a
    /// test fixture that fails loudly.
    pub async fn start(prefix: &str, what: &str) -> Option<Self> {
        let Some(admin_url) = std::env::var("PLEXUS_TEST_POSTGRES_URL").ok().filter(|u| !u.trim().is_empty()) else {
            assert!(std::env::var("CI").is_err(), "CI must set PLEXUS_TEST_POSTGRES_URL");
            eprintln!("SKIPPED: {what} on PostgreSQL: PLEXUS_TEST_POSTGRES_URL is not set");
            return None;
        };
        let admin = match sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&admin_url).await {
            Ok(p) => p,
            Err(e) => panic!("PLEXUS_TEST_POSTGRES_URL is set but PostgreSQL cannot be reached: {e}"),
        };
        let role = format!("{prefix}_{}_{}", std::process::id(), crate::unique_suffix());
        for sql in [
            format!("CREATE ROLE {role} LOGIN PASSWORD 'pw' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"),
            format!("CREATE SCHEMA {role} AUTHORIZATION {role}"),
            format!("ALTER ROLE {role} SET search_path = {role}"),
        ] {
            if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&admin).await {
                panic!("could not prepare the test schema {role}: {e}");
            }
        }
        let (scheme, rest) = admin_url.split_once("://").unwrap_or(("postgres", admin_url.as_str()));
        let host = rest.split_once('@').map_or(rest, |(_, h)| h);
        let url = format!("{scheme}://{role}:pw@{host}");
        Some(Self { admin, role, url })
    }

    /// The role's name (also its schema's).
    pub fn role(&self) -> &str {
        &self.role
    }

    /// A pool with the server's administrative credentials, to look behind
    /// the store's back.
    pub fn admin(&self) -> &sqlx::PgPool {
        &self.admin
    }

    /// Drop the schema and the role (their connections are ended first).
    pub async fn stop(self) {
        let _ = sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
            .bind(&self.role)
            .execute(&self.admin)
            .await;
        for sql in [format!("DROP OWNED BY {} CASCADE", self.role), format!("DROP ROLE {}", self.role)] {
            if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&self.admin).await {
                eprintln!("could not drop the test role {}: {e}", self.role);
            }
        }
    }
}
