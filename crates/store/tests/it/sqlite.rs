//! What only the SQLite backend has: URL forms.

use plexus_core::context::TenantId;
use plexus_store::{Backend, NewTenant, Store, StoreError};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("plexus-store-it").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn roundtrip(store: &Store) {
    let t = NewTenant { id: TenantId::new("t"), name: "テスト".into(), tier: "free".into() };
    store.create_tenant(&t).await.unwrap();
    assert_eq!(store.get_tenant(&t.id).await.unwrap().unwrap().name, "テスト");
}

#[tokio::test]
async fn a_plain_path_or_a_sqlite_url_opens_a_file_created_with_its_directory() {
    let dir = temp_dir("urls");
    let plain = dir.join("a").join("b").join("plexus.db");
    let store = Store::open(plain.to_str().unwrap()).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    roundtrip(&store).await;
    store.close().await;
    assert!(plain.exists());

    let url_path = dir.join("c").join("plexus.db");
    let store = Store::open(&format!("sqlite://{}", url_path.display())).await.unwrap();
    roundtrip(&store).await;
    store.close().await;
    assert!(url_path.exists());
    // WAL is a property of the file
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", url_path.display())).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.unwrap();
    assert_eq!(mode, "wal");
    pool.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_in_memory_database_works() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    roundtrip(&store).await;
    assert_eq!(store.applied_migrations("core").await.unwrap(), [1, 2, 3]);
}

#[tokio::test]
async fn bad_urls_are_refused() {
    for url in ["", "   ", "mysql://root@localhost/db"] {
        let err = Store::open(url).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidUrl(_)), "{url:?}: {err}");
        assert!(err.to_string().starts_with("invalid storage url: "), "{err}");
    }
}

static BLOBS: plexus_store::Migrations = plexus_store::Migrations {
    owner: "blobs-module",
    steps: &[plexus_store::Migration {
        version: 1,
        name: "blobs",
        sqlite: "CREATE TABLE blobs (tenant_id TEXT NOT NULL REFERENCES tenants (id), id INTEGER NOT NULL, \
                 body TEXT NOT NULL, PRIMARY KEY (tenant_id, id)) STRICT",
        postgres: "",
    }],
};

/// The write gate counts its work for `/metrics`: every writer, every
/// batch, and the time spent waiting, holding the gate and committing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_gate_counts_writers_batches_and_time() {
    use std::sync::atomic::Ordering;
    let dir = temp_dir("counters");
    let store = Store::open(dir.join("plexus.db").to_str().unwrap()).await.unwrap();
    let counters = plexus_store::WriteCounters::default();
    let t = NewTenant { id: TenantId::new("t"), name: "テスト".into(), tier: "free".into() };
    store.create_tenant(&t).await.unwrap();
    store.migrate(&BLOBS).await.unwrap();
    store.count_writes(counters.clone());
    let scope = store.tenant(&t.id);
    for i in 0..3 {
        let wrote: Result<(), StoreError> = async {
            plexus_store::tenant_tx!(&scope, write, conn => {
                sqlx::query("INSERT INTO blobs (tenant_id, id, body) VALUES ($1, $2, '書き込み')")
                    .bind(scope.id().as_str())
                    .bind(i)
                    .execute(&mut *conn)
                    .await?;
            });
            Ok(())
        }
        .await;
        wrote.unwrap();
    }
    // One at a time: each writer commits its own batch.
    assert_eq!(counters.writers.load(Ordering::Relaxed), 3);
    assert_eq!(counters.batches.load(Ordering::Relaxed), 3);
    assert!(counters.held_us.load(Ordering::Relaxed) > 0);
    assert!(counters.commit_us.load(Ordering::Relaxed) > 0);
    // Each commit was followed by an fdatasync of the WAL, outside the gate,
    // before its writer was answered.
    assert_eq!(counters.syncs.load(Ordering::Relaxed), 3);
    assert!(counters.sync_us.load(Ordering::Relaxed) > 0);
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
