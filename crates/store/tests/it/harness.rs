//! Test databases: a fresh SQLite file, or a fresh PostgreSQL schema owned
//! by a fresh non-superuser role.

use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use futures::FutureExt;
use plexus_store::{Backend, Store};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

pub(crate) const POSTGRES_ENV: &str = "PLEXUS_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
}

/// The superuser URL of the test PostgreSQL, if configured.
pub(crate) fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|u| !u.trim().is_empty())
}

static SKIP_NOTICE: Once = Once::new();

/// Run `test` against a fresh database of `kind`, then drop the database,
/// whether the test passed or not.
pub(crate) async fn run<F, Fut>(kind: Kind, test: F)
where
    F: FnOnce(Arc<TestDb>) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = match kind {
        Kind::Sqlite => TestDb::sqlite(),
        Kind::Postgres => match postgres_url() {
            Some(url) => TestDb::postgres(&url).await,
            None => {
                SKIP_NOTICE.call_once(|| {
                    // Straight to the process's stderr, past the test harness's capture.
                    let _ = writeln!(std::io::stderr(), "skipping PostgreSQL storage tests: {POSTGRES_ENV} is not set");
                });
                return;
            }
        },
    };
    let db = Arc::new(db);
    let outcome = AssertUnwindSafe(test(Arc::clone(&db))).catch_unwind().await;
    db.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub(crate) enum TestDb {
    Sqlite {
        dir: PathBuf,
        url: String,
    },
    Postgres {
        /// Superuser connection to the test database.
        admin: PgPool,
        role: String,
        schema: String,
        /// The URL plexus uses: the non-superuser role, whose search path
        /// is the schema.
        url: String,
    },
}

impl TestDb {
    fn sqlite() -> Self {
        let dir = std::env::temp_dir().join("plexus-store-it").join(unique("db"));
        // A directory that does not exist yet: the store creates it.
        let url = format!("sqlite://{}", dir.join("data").join("plexus.db").display());
        TestDb::Sqlite { dir, url }
    }

    async fn postgres(admin_url: &str) -> Self {
        let admin =
            PgPoolOptions::new().max_connections(2).connect(admin_url).await.expect("connect to the test PostgreSQL");
        let role = unique("plexus_it");
        let schema = role.clone();
        let password = unique("pw");
        for sql in [
            format!("CREATE ROLE {role} LOGIN PASSWORD '{password}' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"),
            format!("CREATE SCHEMA {schema} AUTHORIZATION {role}"),
            format!("ALTER ROLE {role} SET search_path = {schema}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&admin).await.expect("prepare the test schema");
        }
        let (scheme, rest) = admin_url.split_once("://").expect("a postgres:// url");
        let host = rest.split_once('@').map_or(rest, |(_, host)| host);
        let url = format!("{scheme}://{role}:{password}@{host}");
        TestDb::Postgres { admin, role, schema, url }
    }

    async fn cleanup(&self) {
        match self {
            TestDb::Sqlite { dir, .. } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            TestDb::Postgres { admin, role, .. } => {
                let _ = sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
                    .bind(role)
                    .execute(admin)
                    .await;
                for sql in [format!("DROP OWNED BY {role} CASCADE"), format!("DROP ROLE {role}")] {
                    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(admin).await {
                        let _ = writeln!(std::io::stderr(), "could not drop test role {role}: {e}");
                    }
                }
                admin.close().await;
            }
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            TestDb::Sqlite { .. } => Backend::Sqlite,
            TestDb::Postgres { .. } => Backend::Postgres,
        }
    }

    pub(crate) fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    pub(crate) async fn open(&self) -> Store {
        let store = Store::open(self.url()).await.expect("open the store");
        assert_eq!(store.backend(), self.backend());
        store
    }

    /// Run hand-written SQL as the application's own database user, outside
    /// the store's API.
    pub(crate) async fn exec_as_app(&self, sql: &str) -> Result<u64, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            TestDb::Sqlite { .. } => {
                let pool = self.sqlite_pool().await;
                let r = sqlx::query(sql).execute(&pool).await.map(|r| r.rows_affected());
                pool.close().await;
                r
            }
            TestDb::Postgres { .. } => {
                let pool = self.postgres_app_pool().await;
                let r = sqlx::query(sql).execute(&pool).await.map(|r| r.rows_affected());
                pool.close().await;
                r
            }
        }
    }

    /// A connection to the SQLite file behind the store's back.
    pub(crate) async fn sqlite_pool(&self) -> SqlitePool {
        let TestDb::Sqlite { url, .. } = self else { panic!("not a SQLite test database") };
        let options: SqliteConnectOptions = url.parse().expect("sqlite url");
        SqlitePool::connect_with(options).await.expect("open the SQLite file")
    }

    /// A pool connected as the application's non-superuser role.
    pub(crate) async fn postgres_app_pool(&self) -> PgPool {
        let TestDb::Postgres { url, .. } = self else { panic!("not a PostgreSQL test database") };
        PgPoolOptions::new().max_connections(2).connect(url).await.expect("connect as the app role")
    }

    /// Change a stored audit record's principal the way someone with raw
    /// database access could: around the append-only triggers.
    pub(crate) async fn tamper_audit_record(&self, node: &str, seq: i64, principal: &str) {
        match self {
            TestDb::Sqlite { .. } => {
                let pool = self.sqlite_pool().await;
                sqlx::query("DROP TRIGGER audit_log_no_update").execute(&pool).await.expect("drop the trigger");
                let n = sqlx::query("UPDATE audit_log SET principal = $1 WHERE node_id = $2 AND seq = $3")
                    .bind(principal)
                    .bind(node)
                    .bind(seq)
                    .execute(&pool)
                    .await
                    .expect("tamper")
                    .rows_affected();
                assert_eq!(n, 1);
                pool.close().await;
            }
            TestDb::Postgres { admin, schema, .. } => {
                // A superuser can switch triggers off for its session.
                let mut tx = admin.begin().await.expect("begin");
                sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.expect("replica");
                let sql = format!("UPDATE {schema}.audit_log SET principal = $1 WHERE node_id = $2 AND seq = $3");
                let n = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(principal)
                    .bind(node)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .expect("tamper")
                    .rows_affected();
                assert_eq!(n, 1);
                tx.commit().await.expect("commit");
            }
        }
    }
}
