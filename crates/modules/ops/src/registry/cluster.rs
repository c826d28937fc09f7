//! The registry in cluster mode: every node's registry holds the same
//! versions.
//!
//! - **PostgreSQL decides who makes version n** of a document: every change
//!   on any node (API, rollback, a file edited on its disk, the system's
//!   own documents) first claims `(name, version)` in
//!   `ops_registry_versions` (unique), with its content. The node that
//!   loses a race gets the registry's usual [`RegistryError::Conflict`]
//!   and changes nothing; a caller sends again on the version it now sees.
//! - **Every node adopts the versions other nodes claimed**, in version
//!   order, with the same numbers, author, time and source: the file is
//!   written and the history recorded as for a local change, and the
//!   registry's change event follows, so flags, access rules and
//!   subscribers on that node see it. A node reads the newest version of
//!   every document every [`TICK`] (one small query) and fetches only what
//!   it lacks. Ordering by version per document, not by a global sequence,
//!   is what makes this safe with several writers: a row committed late
//!   can never be skipped.
//! - **Joining**: a node first offers the store its own latest versions
//!   that the store lacks (the first node of an empty store brings its
//!   history's head), then adopts what it lacks.
//!
//! Database work runs on one thread with a runtime of its own; the
//! (synchronous) engine reaches it through a channel. Adoption needs the
//! registry's lock, which a change holds while it claims: the thread only
//! tries the lock, and adopts at the next tick when it is busy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sqlx::Row;
use sqlx::postgres::PgPool;

use super::engine::Inner;
use super::{RegistryError, Source, VersionInfo};

/// How often a node looks for versions other nodes made.
pub const TICK: Duration = Duration::from_millis(100);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ops_registry_versions (
    name    TEXT    NOT NULL,
    version BIGINT  NOT NULL CHECK (version > 0),
    content TEXT,
    deleted BOOLEAN NOT NULL,
    author  TEXT    NOT NULL,
    time    TEXT    NOT NULL,
    source  TEXT    NOT NULL,
    sha256  TEXT    NOT NULL,
    node    TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);
";

/// One claimed version as stored.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) name: String,
    pub(crate) info: VersionInfo,
    pub(crate) content: Option<String>,
}

enum Request {
    Claim(Claimed, mpsc::SyncSender<Result<bool, String>>),
}

thread_local! {
    /// Set on the cluster thread, which serves claims and so must never wait for one.
    static ON_CLUSTER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What the engine calls to claim a version (cluster mode only).
pub(crate) struct Claims {
    requests: parking_lot::Mutex<mpsc::Sender<Request>>,
}

impl Claims {
    /// `Ok(true)`: this node made the version; `Ok(false)`: another node
    /// made it first.
    pub(crate) fn claim(&self, name: &str, info: &VersionInfo, content: Option<&str>) -> Result<bool, RegistryError> {
        let gone = || {
            RegistryError::io(
                format!("cannot claim version {} of `{name}`", info.version),
                std::io::Error::other("the cluster's version store thread has stopped"),
            )
        };
        if ON_CLUSTER_THREAD.with(std::cell::Cell::get) {
            // A change found while adopting (a file that a newly adopted
            // schema now accepts): refused, and listed as the document's
            // problem; `revalidate` or the next edit of the file takes it.
            return Err(RegistryError::io(
                format!("version {} of `{name}` is left for later", info.version),
                std::io::Error::other(
                    "found while adopting another node's version; revalidate the document to take it",
                ),
            ));
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let claimed = Claimed { name: name.to_owned(), info: info.clone(), content: content.map(str::to_owned) };
        self.requests.lock().send(Request::Claim(claimed, tx)).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?.map_err(|e| {
            RegistryError::io(
                format!("cannot claim version {} of `{name}` in the cluster's version store", info.version),
                std::io::Error::other(e),
            )
        })
    }
}

fn source_of(s: &str) -> Source {
    match s {
        "disk" => Source::Disk,
        "rollback" => Source::Rollback,
        "system" => Source::System,
        _ => Source::Api,
    }
}

struct Db {
    pool: PgPool,
    node: String,
}

impl Db {
    async fn connect(url: &str, node: &str) -> Result<Self, String> {
        // The key serializes the CREATE TABLE of joining nodes.
        let key = plexus_store::shared::advisory_key("plexus.ops.registry.schema");
        let (pool, _) = plexus_store::shared::open_shared(url, 2, key, SCHEMA).await?;
        Ok(Self { pool, node: node.to_owned() })
    }

    async fn claim(&self, c: &Claimed) -> Result<bool, String> {
        let done = sqlx::query(
            "INSERT INTO ops_registry_versions (name, version, content, deleted, author, time, source, sha256, node)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name, version) DO NOTHING",
        )
        .bind(&c.name)
        .bind(i64::try_from(c.info.version).unwrap_or(i64::MAX))
        .bind(c.content.as_deref())
        .bind(c.info.deleted)
        .bind(&c.info.author)
        .bind(&c.info.time)
        .bind(c.info.source.as_str())
        .bind(&c.info.sha256)
        .bind(&self.node)
        .execute(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        Ok(done.rows_affected() == 1)
    }

    /// The newest version of every document.
    async fn heads(&self) -> Result<BTreeMap<String, u64>, String> {
        let rows = sqlx::query("SELECT name, max(version) FROM ops_registry_versions GROUP BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows.into_iter().map(|r| (r.get::<String, _>(0), u64::try_from(r.get::<i64, _>(1)).unwrap_or(0))).collect())
    }

    /// Versions of `name` after `after`, in order.
    async fn versions(&self, name: &str, after: u64) -> Result<Vec<Claimed>, String> {
        let rows = sqlx::query(
            "SELECT version, content, deleted, author, time, source, sha256 FROM ops_registry_versions
             WHERE name = $1 AND version > $2 ORDER BY version",
        )
        .bind(name)
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let content: Option<String> = r.get(1);
                Claimed {
                    name: name.to_owned(),
                    info: VersionInfo {
                        version: u64::try_from(r.get::<i64, _>(0)).unwrap_or(0),
                        author: r.get(3),
                        time: r.get(4),
                        sha256: r.get(6),
                        size: content.as_ref().map_or(0, |c| c.len() as u64),
                        source: source_of(r.get::<String, _>(5).as_str()),
                        deleted: r.get(2),
                    },
                    content,
                }
            })
            .collect())
    }
}

/// Join the cluster's registry (see the module docs): connect, offer this
/// node's heads, adopt what it lacks, and keep adopting.
pub(crate) async fn join(inner: &Arc<Inner>, url: &str, node: &str) -> Result<(), RegistryError> {
    let failed =
        |e: String| RegistryError::io("cannot join the cluster's registry".to_owned(), std::io::Error::other(e));
    let (tx, requests) = mpsc::channel();
    let (ready, connected) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let (inner_for_thread, url, node) = (Arc::clone(inner), url.to_owned(), node.to_owned());
    std::thread::Builder::new()
        .name("ops-registry-cluster".into())
        .spawn(move || {
            ON_CLUSTER_THREAD.with(|on| on.set(true));
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready.send(Err(format!("cannot start the runtime: {e}")));
                    return;
                }
            };
            let db = match rt.block_on(Db::connect(&url, &node)) {
                Ok(db) => db,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            // Offer this node's heads the store lacks.
            for (name, info, content) in inner_for_thread.heads() {
                let c = Claimed { name, info, content };
                if let Err(e) = rt.block_on(db.claim(&c)) {
                    let _ = ready.send(Err(e));
                    return;
                }
            }
            let _ = ready.send(Ok(()));
            follow(&rt, &db, &inner_for_thread, &requests);
        })
        .map_err(|e| failed(format!("cannot start its thread: {e}")))?;
    connected.await.map_err(|_| failed("its thread stopped".into()))?.map_err(failed)?;
    inner.set_claims(Claims { requests: parking_lot::Mutex::new(tx) })?;
    Ok(())
}

fn follow(rt: &tokio::runtime::Runtime, db: &Db, inner: &Inner, requests: &mpsc::Receiver<Request>) {
    let mut quiet_until = Instant::now();
    let mut next_look = Instant::now();
    loop {
        let wait = next_look.saturating_duration_since(Instant::now());
        match requests.recv_timeout(wait) {
            Ok(Request::Claim(c, reply)) => {
                let _ = reply.send(rt.block_on(db.claim(&c)));
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        next_look = Instant::now() + TICK;
        if let Err(e) = adopt_missing(rt, db, inner)
            && Instant::now() >= quiet_until
        {
            tracing::warn!(error = %e, "the cluster's registry cannot be followed");
            quiet_until = Instant::now() + Duration::from_secs(10);
        }
    }
}

/// Adopt every version other nodes made that this node lacks (skipped,
/// to the next tick, while a change holds the registry's lock).
fn adopt_missing(rt: &tokio::runtime::Runtime, db: &Db, inner: &Inner) -> Result<(), String> {
    let heads = rt.block_on(db.heads())?;
    let behind: Vec<(String, u64)> = heads
        .into_iter()
        .filter_map(|(name, head)| {
            let local = inner.latest_of(&name);
            (head > local).then_some((name, local))
        })
        .collect();
    if behind.is_empty() {
        return Ok(());
    }
    let Some(held) = inner.try_lock() else { return Ok(()) };
    for (name, local) in behind {
        for c in rt.block_on(db.versions(&name, local))? {
            if let Err(e) = inner.adopt(&held, &c) {
                tracing::error!(name = %c.name, version = c.info.version, error = %e, "a version made on another node cannot be adopted");
                break;
            }
        }
    }
    Ok(())
}
