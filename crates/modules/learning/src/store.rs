//! The learning module's tables.

use plexus_core::context::TenantId;
use plexus_store::{Backend, Migration, Migrations, Store, StoreError};
use sha2::Digest;

/// The module's tables (every one tenant-scoped; row-level security on
/// PostgreSQL): step 1 the xAPI statements, step 2 the platform's state
/// (configuration, course and bank, learners, mastery, activity events,
/// assessment sessions, BKT parameters, usage counters), step 3 the
/// statements' registration and reference indexes made partial, step 4
/// fewer B-tree writes per statement, step 5 an index of the learners'
/// completions.
pub const MIGRATIONS: Migrations = Migrations {
    owner: "learning",
    steps: &[
        Migration {
            version: 1,
            name: "xapi",
            sqlite: include_str!("../migrations/0001_xapi.sqlite.sql"),
            postgres: include_str!("../migrations/0001_xapi.postgres.sql"),
        },
        Migration {
            version: 2,
            name: "platform",
            sqlite: include_str!("../migrations/0002_platform.sqlite.sql"),
            postgres: include_str!("../migrations/0002_platform.postgres.sql"),
        },
        Migration {
            version: 3,
            name: "partial_indexes",
            // The same text on both databases.
            sqlite: include_str!("../migrations/0003_partial_indexes.sql"),
            postgres: include_str!("../migrations/0003_partial_indexes.sql"),
        },
        Migration {
            version: 4,
            name: "lean_xapi_writes",
            sqlite: include_str!("../migrations/0004_lean_xapi_writes.sqlite.sql"),
            postgres: include_str!("../migrations/0004_lean_xapi_writes.postgres.sql"),
        },
        Migration {
            version: 5,
            name: "completions_index",
            // The same text on both databases.
            sqlite: include_str!("../migrations/0005_completions_index.sql"),
            postgres: include_str!("../migrations/0005_completions_index.sql"),
        },
    ],
};

/// The directory of [`Shards`], in the main SQLite file only (on PostgreSQL
/// every tenant's rows are in the one database and there is no directory).
pub const SHARD_MIGRATIONS: Migrations = Migrations {
    owner: "learning-shards",
    steps: &[Migration {
        version: 1,
        name: "shards",
        sqlite: include_str!("../migrations/shards/0001_shards.sqlite.sql"),
        postgres: "SELECT 1",
    }],
};

/// The most SQLite files learning's rows may spread over.
pub const MAX_SHARDS: usize = 64;

/// Where each tenant's learning rows live.
///
/// On SQLite every write queues on its file's one writer (the write gate,
/// see `plexus_store::group`), so with several tenants busy at once the
/// gate is the limit long before the cores are. With `[learning] shards =
/// N` (N > 1) a tenant's rows live in one of N files: the main one or
/// `<main>-learning-<k>.db` beside it, each with its own gate, so writers
/// of tenants in different files commit side by side. A tenant is placed
/// on first use by a hash of its id and the place is kept in the main
/// file's `learning_shards`, so changing N later moves nobody (new tenants
/// spread over the new N); tenants with rows from before there were shards
/// stay in the main file. A file beside the main one holds a copy of its
/// tenants' directory rows only as the anchor of its foreign keys (the
/// directory itself, tier and status, is read from the main file).
///
/// On PostgreSQL, and on an in-memory SQLite store, there is one place:
/// the store itself.
#[derive(Debug, Clone)]
pub struct Shards {
    inner: std::sync::Arc<ShardsInner>,
}

#[derive(Debug)]
struct ShardsInner {
    /// `files[0]` is the main store.
    files: Vec<Store>,
    /// How many files new tenants spread over.
    spread: usize,
    /// Whether places are kept in the main file's directory (a SQLite
    /// file); otherwise everything is in `files[0]`.
    directory: bool,
    placed: parking_lot::RwLock<std::collections::HashMap<TenantId, usize>>,
}

impl Shards {
    /// The places over `main` (migrated with [`MIGRATIONS`] already):
    /// `count` files for new tenants, and every file beside `main` that an
    /// earlier run with more made. On a SQLite file the directory is kept
    /// even with `count` 1, so that a later, larger `count` finds every
    /// tenant where its rows are.
    pub async fn open(main: Store, count: usize) -> Result<Self, StoreError> {
        if !(1..=MAX_SHARDS).contains(&count) {
            return Err(StoreError::Invalid {
                field: "learning.shards",
                reason: format!("must be from 1 to {MAX_SHARDS}, not {count}"),
            });
        }
        if main.backend() != Backend::Sqlite || main.sqlite_file().is_none() {
            return Ok(Self::single(main));
        }
        main.migrate(&SHARD_MIGRATIONS).await?;
        let mut files = vec![main.clone()];
        loop {
            let k = files.len();
            let name = format!("learning-{k}");
            if k >= count && !main.beside_file(&name).is_some_and(|f| f.exists()) {
                break;
            }
            let shard = main.beside(&name).await?;
            shard.migrate(&MIGRATIONS).await?;
            files.push(shard);
        }
        let placed = parking_lot::RwLock::default();
        Ok(Self { inner: std::sync::Arc::new(ShardsInner { files, spread: count, directory: true, placed }) })
    }

    /// One place: everything in `store`.
    pub fn single(store: Store) -> Self {
        let placed = parking_lot::RwLock::default();
        Self { inner: std::sync::Arc::new(ShardsInner { files: vec![store], spread: 1, directory: false, placed }) }
    }

    /// The main store (the tenant directory, and the shards' directory).
    pub fn main(&self) -> &Store {
        &self.inner.files[0]
    }

    /// How many files there are (1: everything in the main store).
    pub fn files(&self) -> usize {
        self.inner.files.len()
    }

    /// The store that holds `tenant`'s learning rows, placing the tenant on
    /// first use. [`StoreError::UnknownTenant`] for a tenant the directory
    /// does not know.
    pub async fn of(&self, tenant: &TenantId) -> Result<&Store, StoreError> {
        Ok(&self.inner.files[self.place(tenant).await?])
    }

    /// The index of `tenant`'s file (see [`Shards::of`]).
    pub async fn place(&self, tenant: &TenantId) -> Result<usize, StoreError> {
        let inner = &self.inner;
        if !inner.directory {
            return Ok(0);
        }
        if let Some(&k) = inner.placed.read().get(tenant) {
            return Ok(k);
        }
        let main = &inner.files[0];
        let scope = main.tenant(tenant);
        let read = || async {
            let k: Option<i64> = plexus_store::tenant_tx!(&scope, single, conn => {
                sqlx::query_scalar("SELECT shard FROM learning_shards WHERE tenant_id = $1")
                    .bind(scope.id().as_str())
                    .fetch_optional(&mut *conn)
                    .await?
            });
            Ok::<_, StoreError>(k)
        };
        let tenant_row =
            || async { main.get_tenant(tenant).await?.ok_or_else(|| StoreError::UnknownTenant(tenant.to_string())) };
        let k = match read().await? {
            // Placed before: the directory's foreign key says the tenant exists.
            Some(k) => k,
            None => {
                tenant_row().await?;
                let k = i64::try_from(digest_u64(tenant.as_str().as_bytes()) % inner.spread as u64).unwrap_or(0);
                plexus_store::tenant_tx!(&scope, write_one, conn => {
                    sqlx::query("INSERT INTO learning_shards (tenant_id, shard) VALUES ($1, $2) ON CONFLICT (tenant_id) DO NOTHING")
                        .bind(scope.id().as_str())
                        .bind(k)
                        .execute(&mut *conn)
                        .await?;
                });
                read().await?.unwrap_or(k)
            }
        };
        let k = usize::try_from(k).ok().filter(|k| *k < inner.files.len()).ok_or_else(|| {
            StoreError::Corrupt(format!("tenant {tenant} is placed in learning file {k}, which is not there"))
        })?;
        if k > 0 && inner.files[k].get_tenant(tenant).await?.is_none() {
            // The anchor of the file's foreign keys, written through its
            // write gate like every other write there (a write beside the
            // gate would meet a batch's lock and SQLite's busy handler).
            let t = tenant_row().await?;
            let file = inner.files[k].tenant(tenant);
            plexus_store::tenant_tx!(&file, write_one, conn => {
                sqlx::query(
                    "INSERT INTO tenants (id, name, tier, active, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(t.id.as_str())
                .bind(&t.name)
                .bind(&t.tier)
                .bind(t.active)
                .bind(t.created_at)
                .execute(&mut *conn)
                .await?;
            });
        }
        inner.placed.write().insert(tenant.clone(), k);
        Ok(k)
    }
}

/// The first 8 bytes of the SHA-256 of `input`, big-endian: a tenant's file
/// ([`Shards::place`]) and PostgreSQL advisory-lock keys.
pub(crate) fn digest_u64(input: &[u8]) -> u64 {
    let digest = sha2::Sha256::digest(input);
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}
