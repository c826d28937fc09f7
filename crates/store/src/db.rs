//! The database handle: one [`Store`] over SQLite or PostgreSQL.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::error::StoreError;
use crate::migrate::CORE_MIGRATIONS;
use crate::scope::TenantScope;
use plexus_core::context::TenantId;

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file (WAL; each commit `fdatasync`ed before it is acknowledged).
    Sqlite,
    /// A PostgreSQL database, with row-level security on tenant-owned tables.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// When a SQLite commit counts as done: `storage.durability`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Commit {
    /// On disk: the WAL is `fdatasync`ed after every commit before the
    /// commit is acknowledged, so a committed transaction survives power
    /// loss (the default). The write gate's connection commits at
    /// `synchronous=NORMAL` and syncs outside the gate
    /// ([`crate::group`]); every other connection runs at
    /// `synchronous=FULL`.
    #[default]
    Fsync,
    /// In the kernel: `synchronous=NORMAL`, the WAL is written at every
    /// commit and `fsync`ed at checkpoints, so a committed transaction
    /// survives the process crashing but not the machine losing power
    /// (the last commits before it may roll back; the database stays
    /// consistent).
    Os,
}

impl Commit {
    /// `fsync` or `os`, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Commit::Fsync => "fsync",
            Commit::Os => "os",
        }
    }

    fn synchronous(self) -> SqliteSynchronous {
        match self {
            Commit::Fsync => SqliteSynchronous::Full,
            Commit::Os => SqliteSynchronous::Normal,
        }
    }
}

/// The pool of one backend.
#[derive(Clone)]
/// The pool of whichever backend the store runs on (for [`crate::tenant_tx`]).
#[doc(hidden)]
#[derive(Debug)]
pub enum Db {
    /// The pool, and the gate every write transaction passes first (see [`WriteGate`]).
    Sqlite(SqlitePool, std::sync::Arc<WriteGate>),
    Postgres(PgPool),
}

/// SQLite has one writer at a time. Writers of this process queue here, in
/// order, before `BEGIN IMMEDIATE`, instead of meeting the database lock
/// and polling for it (SQLite's busy handler sleeps up to 100 ms between
/// tries, which under load turns a sub-millisecond commit into a tail of
/// hundreds of milliseconds), and the gate commits them in batches (see
/// [`crate::group`]). The busy timeout still covers other processes (a CLI
/// command beside a running server).
pub(crate) use crate::group::WriteGate;

/// Run `$body` with `$pool` bound to the pool of whichever backend `$db` is.
/// The body is compiled once per backend, so it may use anything both
/// drivers support (runtime `sqlx::query` with `$n` binds, which SQLite
/// accepts too).
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool, _) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// Run `$body` in a write transaction with `$conn` bound to its connection
/// (`&mut SqliteConnection` or `&mut PgConnection`), then commit. An early
/// return (`?`) rolls back. On SQLite the transaction is `BEGIN IMMEDIATE`,
/// so it waits for the write lock up front instead of failing on upgrade.
macro_rules! in_write_tx {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(pool, gate) => {
                let mut member = gate.enter(pool).await?;
                let $conn = member.conn()?;
                let out = $body;
                member.finish().await?;
                out
            }
            $crate::db::Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let $conn = &mut *tx;
                let out = $body;
                tx.commit().await?;
                out
            }
        }
    };
}
pub(crate) use in_write_tx;

/// The write gate's synchronous connection to the database `file` (see
/// `crate::group`), with the writer's settings: WAL, `synchronous=NORMAL`
/// (the gate syncs the WAL itself), foreign keys, the checkpoint backstop,
/// journals in memory, the memory map and the busy timeout.
pub(crate) fn open_sync_writer(file: &std::path::Path) -> Result<rusqlite::Connection, StoreError> {
    let failed = |e: rusqlite::Error| {
        StoreError::Database(sqlx::Error::Protocol(format!(
            "opening the write gate's connection to {}: {e}",
            file.display()
        )))
    };
    let conn = rusqlite::Connection::open(file).map_err(failed)?;
    conn.busy_timeout(SQLITE_BUSY_TIMEOUT).map_err(failed)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = {}; PRAGMA temp_store = memory; PRAGMA mmap_size = {};",
        crate::group::CHECKPOINT_BACKSTOP_PAGES,
        SQLITE_MMAP_SIZE
    ))
    .map_err(failed)?;
    conn.set_prepared_statement_cache_capacity(SYNC_STATEMENT_CACHE);
    Ok(conn)
}

/// Statements the write gate's synchronous connection keeps prepared.
const SYNC_STATEMENT_CACHE: usize = 256;

/// Whether `e` is SQLite's "database is locked" or "database table is
/// locked" (SQLITE_BUSY, SQLITE_LOCKED).
fn is_sqlite_busy(e: &StoreError) -> bool {
    let db = match e {
        StoreError::Database(sqlx::Error::Database(d)) => d,
        StoreError::Migration { reason, .. } => return reason.contains("database is locked"),
        _ => return false,
    };
    matches!(db.code().as_deref(), Some("5" | "6" | "517" | "261")) || db.message().contains("database is locked")
}

/// Most connections per pool.
const SQLITE_MAX_CONNECTIONS: u32 = 8;
const POSTGRES_MAX_CONNECTIONS: u32 = 16;
/// How much of a SQLite file is read through a memory map (bytes).
const SQLITE_MMAP_SIZE: u64 = 1 << 30;
/// How long a SQLite writer waits for the lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The database: tenants, API keys, the audit log, and every owner's
/// migrations. Cheap to clone (the pool is shared).
///
/// Tenant-owned data is reached only through [`Store::tenant`], which
/// returns a [`TenantScope`]; nothing on `Store` itself reads or writes
/// another tenant's rows.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
    pub(crate) crypto: std::sync::Arc<crate::crypto::Crypto>,
    /// The SQLite file, if the store is one (not in memory, not PostgreSQL).
    file: Option<std::sync::Arc<std::path::Path>>,
    /// When a SQLite commit counts as done (stores beside this one too).
    commit: Commit,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend()).finish_non_exhaustive()
    }
}

impl Store {
    /// Open the database named by `url` and run the core migrations.
    ///
    /// - `postgres://user@host:5432/db` (or `postgresql://`): PostgreSQL;
    /// - `sqlite:///abs/path/plexus.db`, `sqlite://rel/path.db`, `sqlite::memory:`:
    ///   SQLite;
    /// - anything without a scheme: a SQLite file path.
    ///
    /// A SQLite file (and its directory) is created if missing, and runs in
    /// WAL mode with every commit `fdatasync`ed before it is acknowledged,
    /// so a committed transaction survives power loss.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, Commit::Fsync).await
    }

    /// [`Store::open`] with commits durable as `commit` says. [`Commit::Os`]
    /// is for SQLite only: on PostgreSQL durability is the server's own
    /// setting (`synchronous_commit`), and asking for it here is an error.
    pub async fn open_with(url: &str, commit: Commit) -> Result<Self, StoreError> {
        // Two processes creating the same SQLite file at once can meet
        // SQLITE_BUSY outside the busy handler's reach (switching a new
        // database to WAL needs an exclusive lock, and SQLite does not wait
        // for it): retry the whole open for a while before giving up.
        let deadline = std::time::Instant::now() + SQLITE_BUSY_TIMEOUT;
        loop {
            let attempt = async {
                let store = Self::connect(url, commit).await?;
                store.migrate(&CORE_MIGRATIONS).await?;
                Ok::<_, StoreError>(store)
            };
            match attempt.await {
                Err(e) if is_sqlite_busy(&e) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    /// Connect without running any migration.
    async fn connect(url: &str, commit: Commit) -> Result<Self, StoreError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(StoreError::InvalidUrl("empty".into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if commit != Commit::Fsync {
                return Err(StoreError::Invalid {
                    field: "storage.durability",
                    reason: format!(
                        "`{}` applies to SQLite; on PostgreSQL commits are as durable as the server's \
                         `synchronous_commit` setting makes them",
                        commit.as_str()
                    ),
                });
            }
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
                .application_name("plexus");
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            let (superuser, bypass): (bool, bool) =
                sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
                    .fetch_one(&pool)
                    .await?;
            if superuser || bypass {
                tracing::warn!(
                    "connected to PostgreSQL as a superuser or BYPASSRLS role: row-level security does not apply; \
                     run plexus as an ordinary role that owns its schema"
                );
            }
            return Ok(Self { db: Db::Postgres(pool), crypto: Default::default(), file: None, commit });
        }
        let (options, memory) = if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            let options = SqliteConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
            (options, memory)
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(StoreError::InvalidUrl(format!("unsupported scheme {scheme:?} (use sqlite or postgres)")));
        } else {
            (SqliteConnectOptions::new().filename(url), false)
        };
        if !memory && let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file: Option<std::sync::Arc<std::path::Path>> = (!memory).then(|| options.get_filename().into());
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(commit.synchronous())
            .foreign_keys(true)
            // Pages are read through a memory map. It was off for a while:
            // a reader whose transaction begins after another connection's
            // commit drops its page cache and unmaps and maps the file again,
            // which cost more than the `pread` copies it saved while health's
            // disclosure log committed to the same file every millisecond.
            // With logs written on every call in files of their own
            // (`Store::beside`) the map is neutral for health and gives
            // learning's content reads 7-18% more calls/s (BENCHMARKS.md sections 4, 7).
            .pragma("mmap_size", SQLITE_MMAP_SIZE.to_string())
            // Statement journals and savepoints' journals (each writer that
            // joins a batch runs in a savepoint) in memory: with the default
            // (a file), a batch's savepoint journal spilled past 64 KiB into
            // a temporary file that was created, written and deleted every
            // commit, a tenth of the server's CPU under answers (BENCHMARKS.md
            // section 7). Sorts that outgrow the page cache stay in memory too.
            .pragma("temp_store", "memory")
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        let (pool, gate) = if memory {
            // An in-memory database lives as long as one connection to it:
            // keep exactly one, forever, for readers and the writer alike.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            (pool, WriteGate::default())
        } else {
            // The write gate has a connection of its own: a writer never
            // waits for a reader to hand a pooled connection back while the
            // other writers wait for it.
            //
            // It commits at `synchronous=NORMAL` whatever the durability: with
            // `fsync` the gate's writers wait for an `fdatasync` of the WAL
            // after the commit, outside the gate, so that the next batch's
            // statements run while the disk syncs this one's. Its automatic
            // checkpoint restarts the WAL and finds the pages mostly copied: a
            // connection of their own runs checkpoints outside the gate
            // (`crate::group`).
            let one = || {
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .test_before_acquire(false)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
            };
            let writer = one()
                .connect_with(
                    options
                        .clone()
                        .synchronous(SqliteSynchronous::Normal)
                        .pragma("wal_autocheckpoint", crate::group::CHECKPOINT_BACKSTOP_PAGES.to_string()),
                )
                .await?;
            let checkpointer = one().connect_with(options.clone()).await?;
            // The file as SQLite resolved it when the writer opened it (it
            // exists now), whatever the working directory becomes.
            let path = options.get_filename();
            let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            let sync = open_sync_writer(&path)?;
            let after = crate::group::AfterCommit::new(path, commit == Commit::Fsync, checkpointer);
            let pool = SqlitePoolOptions::new()
                .max_connections(SQLITE_MAX_CONNECTIONS)
                // A connection to a local file does not go stale the way a
                // network connection does: no ping before every use.
                .test_before_acquire(false)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            (pool, WriteGate::with_writer(writer, after, Some(sync)))
        };
        Ok(Self { db: Db::Sqlite(pool, std::sync::Arc::new(gate)), crypto: Default::default(), file, commit })
    }

    /// A store for tables written on nearly every call (append-only logs):
    /// on SQLite a file of its own beside this one, `<stem>-<name>.db` (a
    /// database of its own for an in-memory store), with the core tables;
    /// on PostgreSQL this same store.
    ///
    /// Why: in WAL mode a connection whose read transaction begins after
    /// another connection's commit to the file drops its whole page cache,
    /// so a log committed every millisecond in the same file as the data
    /// read on every call makes every read start cold. Commits to a file
    /// of its own leave the readers' caches of this one intact (and have a
    /// write gate of their own, counted in this store's write counters).
    pub async fn beside(&self, name: &str) -> Result<Store, StoreError> {
        let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(StoreError::InvalidUrl(format!("`{name}` is not a store name (ASCII letters, digits, -)")));
        }
        match &self.db {
            Db::Postgres(_) => Ok(self.clone()),
            Db::Sqlite(_, gate) => {
                let other = match self.beside_file(name) {
                    None => Store::open_with("sqlite::memory:", self.commit).await?,
                    Some(path) => Store::open_with(&path.to_string_lossy(), self.commit).await?,
                };
                if let Db::Sqlite(_, other_gate) = &other.db {
                    gate.adopt(other_gate);
                }
                Ok(other)
            }
        }
    }

    /// The file [`Store::beside`] opens for `name`: `<stem>-<name>.db` in
    /// this store's directory, whether or not it exists yet; `None` for a
    /// PostgreSQL or in-memory store, which keep no file beside.
    pub fn beside_file(&self, name: &str) -> Option<std::path::PathBuf> {
        let file = self.file.as_ref().filter(|_| matches!(self.db, Db::Sqlite(..)))?;
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("plexus");
        Some(file.with_file_name(format!("{stem}-{name}.db")))
    }

    /// The SQLite file, if the store is one.
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// Count SQLite's write gate's work (writers, batches, time waiting,
    /// held and committing) in `counters` from now on; nothing on
    /// PostgreSQL, which has no such gate.
    pub fn count_writes(&self, counters: crate::group::WriteCounters) {
        if let Db::Sqlite(_, gate) = &self.db {
            gate.count(counters);
        }
    }

    /// How many write batches (group commits) SQLite has begun since the
    /// store was opened; `None` on PostgreSQL, which commits each writer's
    /// transaction apart.
    #[doc(hidden)]
    pub async fn write_batches(&self) -> Option<u64> {
        match &self.db {
            Db::Sqlite(_, gate) => Some(gate.batches().await),
            Db::Postgres(_) => None,
        }
    }

    /// When a SQLite commit counts as done.
    pub fn commit(&self) -> Commit {
        self.commit
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(..) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The scope through which every tenant-owned row of `tenant` is read
    /// and written. It does not check that the tenant exists; operations
    /// that need it to fail with [`StoreError::UnknownTenant`].
    pub fn tenant(&self, tenant: &TenantId) -> TenantScope<'_> {
        TenantScope::new(self, tenant.clone())
    }

    /// Close every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        if let Db::Sqlite(_, gate) = &self.db {
            gate.close().await;
        }
        on_db!(&self.db, pool => pool.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of SQLite pragma `name` on a reader's connection and on
    /// the write gate's.
    async fn pragma(store: &Store, name: &str) -> (i64, i64) {
        let Db::Sqlite(pool, gate) = &store.db else { panic!("not sqlite") };
        let text = format!("PRAGMA {name}");
        let mut conn = pool.acquire().await.unwrap();
        let reader: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(text.clone())).fetch_one(&mut *conn).await.unwrap();
        drop(conn);
        let mut member = gate.enter(pool).await.unwrap();
        let writer: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(text)).fetch_one(&mut *member.conn().unwrap()).await.unwrap();
        member.finish().await.unwrap();
        (reader, writer)
    }

    #[tokio::test]
    async fn sqlite_connections_are_wal_with_full_sync_foreign_keys_and_journals_in_memory_the_writer_normal() {
        let dir = std::env::temp_dir().join(format!("plexus-store-pragmas-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(dir.join("plexus.db").to_str().unwrap()).await.unwrap();
        let Db::Sqlite(pool, _) = &store.db else { panic!("not sqlite") };
        let mut conn = pool.acquire().await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await.unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await.unwrap();
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&mut *conn).await.unwrap();
        assert_eq!((mode.as_str(), sync, fk), ("wal", 2, 1));
        drop(conn);
        // Savepoint and statement journals in memory, on the readers' and
        // the writer's connections alike (2 is MEMORY).
        assert_eq!(pragma(&store, "temp_store").await, (2, 2), "(a reader's connection, the writer's)");
        // The gate's connection commits at NORMAL (1) and its writers wait
        // for the WAL's fdatasync outside the gate.
        assert_eq!(pragma(&store, "synchronous").await, (2, 1), "(a reader's connection, the writer's)");
        let backstop = i64::from(crate::group::CHECKPOINT_BACKSTOP_PAGES);
        assert_eq!(pragma(&store, "wal_autocheckpoint").await, (1000, backstop));
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `storage.durability = "os"`: `synchronous=NORMAL` on every
    /// connection, the writer's too, and in the stores beside; refused on
    /// PostgreSQL, whose durability is the server's to set.
    #[tokio::test]
    async fn os_durability_is_normal_sync_here_and_beside_and_refused_on_postgres() {
        let dir = std::env::temp_dir().join(format!("plexus-store-os-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open_with(dir.join("plexus.db").to_str().unwrap(), Commit::Os).await.unwrap();
        let log = store.beside("log").await.unwrap();
        for s in [&store, &log] {
            assert_eq!(s.commit(), Commit::Os);
            assert_eq!(pragma(s, "synchronous").await, (1, 1), "(a reader's connection, the writer's)");
        }
        log.close().await;
        store.close().await;
        let e = Store::open_with("postgres://nobody@127.0.0.1:1/none", Commit::Os).await.unwrap_err().to_string();
        assert!(e.contains("storage.durability") && e.contains("synchronous_commit"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `beside` names a file next to the store's own (or a database of its
    /// own in memory) whose rows the store does not see, and refuses names
    /// that could reach elsewhere.
    #[tokio::test]
    async fn a_store_beside_is_a_database_of_its_own() {
        let dir = std::env::temp_dir().join(format!("plexus-store-beside-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(dir.join("main.db").to_str().unwrap()).await.unwrap();
        for bad in ["", "../x", "a/b", "log.db"] {
            assert!(store.beside(bad).await.is_err(), "{bad:?}");
        }
        assert_eq!(store.beside_file("audit-log"), Some(dir.join("main-audit-log.db")));
        assert!(!dir.join("main-audit-log.db").exists(), "named before it is opened");
        let log = store.beside("audit-log").await.unwrap();
        assert_eq!(log.sqlite_file(), Some(dir.join("main-audit-log.db").as_path()));
        // Counters given to the main store later count the other's writers too.
        let counters = crate::WriteCounters::default();
        store.count_writes(counters.clone());
        let tenant = crate::NewTenant { id: TenantId::new("t1"), name: "t1".into(), tier: "standard".into() };
        store.create_tenant(&tenant).await.unwrap();
        let beside = crate::NewTenant { id: TenantId::new("t2"), name: "t2".into(), tier: "standard".into() };
        log.create_tenant(&beside).await.unwrap();
        const TABLE: crate::Migrations = crate::Migrations {
            owner: "beside-test",
            steps: &[crate::Migration { version: 1, name: "t", sqlite: "CREATE TABLE t (x INTEGER)", postgres: "" }],
        };
        let written = counters.writers.load(std::sync::atomic::Ordering::Relaxed);
        log.migrate(&TABLE).await.unwrap();
        assert!(counters.writers.load(std::sync::atomic::Ordering::Relaxed) > written, "counted together");
        assert!(log.get_tenant(&tenant.id).await.unwrap().is_none(), "the main file's rows are not beside");
        assert!(store.get_tenant(&beside.id).await.unwrap().is_none(), "nor the other way round");
        log.close().await;

        let memory = Store::open("sqlite::memory:").await.unwrap();
        let other = memory.beside("log").await.unwrap();
        memory.create_tenant(&tenant).await.unwrap();
        assert_eq!(other.sqlite_file(), None);
        assert_eq!(memory.beside_file("log"), None, "no file beside an in-memory store");
        assert!(other.get_tenant(&tenant.id).await.unwrap().is_none(), "another in-memory database");
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
