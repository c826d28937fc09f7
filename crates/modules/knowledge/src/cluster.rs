//! The index in cluster mode: one node syncs, every node serves search.
//!
//! - **The shared document store** is a PostgreSQL table,
//!   `knowledge_changes`: for every document the latest change (an upsert
//!   with the whole document, or a deletion), numbered by a sequence. An
//!   upsert replaces the document's earlier rows, so the table holds each
//!   document once, however often it changes.
//! - **One node runs connector syncs**: the one holding the session-level
//!   advisory lock `knowledge` (schema-qualified) on a dedicated
//!   connection. Its index records what a sync changes, and a commit first
//!   writes those changes to the table, on the lock's own connection (so a
//!   node that lost its lock cannot write), then commits the local index.
//!   [`Index::may_sync`](crate::Index::may_sync) is false on other nodes:
//!   their periodic syncs are skipped and the `sync_knowledge` tool says
//!   which node runs them.
//! - **Followers** read the table's new rows every [`TICK`], apply them to
//!   their own tantivy index and commit, so every node converges on the
//!   leader's documents; the lag is the tick plus the apply. When the
//!   leader dies, PostgreSQL frees the lock and a follower takes it over
//!   (after applying everything), and syncs from then on.
//!
//! All database work runs on one thread with a runtime of its own; the
//! index's commit reaches it through a channel.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::{Connection, Row};

use crate::index::{Document, Index, SearchError};

/// How often a follower reads what the leader wrote.
pub const TICK: Duration = Duration::from_millis(100);
/// How often a follower tries for the lock.
const LEAD_EVERY: Duration = Duration::from_secs(1);
/// Rows applied per commit on a follower, at most.
const PAGE: i64 = 2_000;

/// One change a sync made.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Upsert(String, Box<Document>),
    Delete(String, String),
}

enum Request {
    /// Write these changes (leader only); answer whether they are durable.
    Flush(Vec<Change>, mpsc::SyncSender<Result<(), String>>),
}

/// An index's part in the cluster (see the module docs).
pub struct Replication {
    node: String,
    leader: AtomicBool,
    /// The last change applied here (or written, when leading).
    applied: AtomicU64,
    pending: Mutex<Vec<Change>>,
    requests: Mutex<mpsc::Sender<Request>>,
    /// The node named leader, for messages.
    known_leader: Mutex<Option<String>>,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("node", &self.node)
            .field("leader", &self.leads())
            .field("applied", &self.applied())
            .finish_non_exhaustive()
    }
}

impl Replication {
    /// Whether this node runs the syncs now.
    pub fn leads(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// The last change applied to this node's index.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// The node that runs the syncs, as last seen.
    pub fn leader(&self) -> Option<String> {
        self.known_leader.lock().clone()
    }

    pub(crate) fn record(&self, change: Change) {
        if self.leads() {
            self.pending.lock().push(change);
        }
    }

    /// Before the local commit: make what was recorded durable in the
    /// shared store.
    pub(crate) fn flush(&self) -> Result<(), SearchError> {
        let changes = std::mem::take(&mut *self.pending.lock());
        if changes.is_empty() {
            return Ok(());
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.requests
            .lock()
            .send(Request::Flush(changes, tx))
            .map_err(|_| SearchError::Shared("the shared document store's thread has stopped".into()))?;
        rx.recv()
            .map_err(|_| SearchError::Shared("the shared document store's thread has stopped".into()))?
            .map_err(SearchError::Shared)
    }
}

fn lock_key(name: &str) -> i64 {
    plexus_store::shared::advisory_key(&format!("plexus.knowledge.{name}"))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS knowledge_changes (
    seq      BIGSERIAL PRIMARY KEY,
    tenant   TEXT NOT NULL,
    doc_id   TEXT NOT NULL,
    document TEXT,
    node     TEXT NOT NULL,
    at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS knowledge_changes_doc ON knowledge_changes (tenant, doc_id);
CREATE TABLE IF NOT EXISTS knowledge_leaders (
    role  TEXT PRIMARY KEY,
    node  TEXT NOT NULL,
    since TIMESTAMPTZ NOT NULL DEFAULT now()
);
";

struct Db {
    url: String,
    node: String,
    key: i64,
    pool: PgPool,
    lock: Option<PgConnection>,
}

fn err(e: &sqlx::Error) -> String {
    e.to_string()
}

impl Db {
    async fn connect(url: &str, node: &str) -> Result<Self, String> {
        let (pool, schema) = plexus_store::shared::open_shared(url, 2, lock_key("schema"), SCHEMA).await?;
        Ok(Self {
            url: url.to_owned(),
            node: node.to_owned(),
            key: lock_key(&format!("{schema}.syncs")),
            pool,
            lock: None,
        })
    }

    async fn try_lead(&mut self) -> Result<bool, String> {
        if self.lock.is_none() {
            let options = PgConnectOptions::from_str(&self.url)
                .map_err(|e| err(&e))?
                .application_name(&format!("plexus knowledge {}", self.node));
            self.lock = Some(PgConnection::connect_with(&options).await.map_err(|e| err(&e))?);
        }
        let Some(conn) = self.lock.as_mut() else { return Ok(false) };
        let got =
            sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)").bind(self.key).fetch_one(&mut *conn).await;
        match got {
            Ok(false) => Ok(false),
            Ok(true) => {
                let named = sqlx::query(
                    "INSERT INTO knowledge_leaders (role, node, since) VALUES ('syncs', $1, now())
                     ON CONFLICT (role) DO UPDATE SET node = EXCLUDED.node, since = EXCLUDED.since",
                )
                .bind(&self.node)
                .execute(&mut *conn)
                .await;
                match named {
                    Ok(_) => Ok(true),
                    Err(e) => {
                        self.lock = None;
                        Err(err(&e))
                    }
                }
            }
            Err(e) => {
                self.lock = None;
                Err(err(&e))
            }
        }
    }

    async fn leader(&self) -> Option<String> {
        sqlx::query_scalar("SELECT node FROM knowledge_leaders WHERE role = 'syncs'")
            .fetch_optional(&self.pool)
            .await
            .ok()
            .flatten()
    }

    /// Write `changes` in one transaction on the lock's connection: each
    /// document's earlier rows go, its latest change is added. The last
    /// sequence number written.
    async fn write(&mut self, changes: &[Change]) -> Result<u64, String> {
        let Some(conn) = self.lock.as_mut() else { return Err("this node does not run the syncs".into()) };
        let done: Result<u64, sqlx::Error> = async {
            let mut tx = conn.begin().await?;
            let mut last = 0i64;
            for c in changes {
                let (tenant, id, document) = match c {
                    Change::Upsert(t, d) => (t, &d.id, Some(serde_json::to_string(d).unwrap_or_default())),
                    Change::Delete(t, id) => (t, id, None),
                };
                sqlx::query("DELETE FROM knowledge_changes WHERE tenant = $1 AND doc_id = $2")
                    .bind(tenant)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                last = sqlx::query_scalar(
                    "INSERT INTO knowledge_changes (tenant, doc_id, document, node) VALUES ($1, $2, $3, $4) RETURNING seq",
                )
                .bind(tenant)
                .bind(id)
                .bind(document)
                .bind(&self.node)
                .fetch_one(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(u64::try_from(last).unwrap_or(0))
        }
        .await;
        done.map_err(|e| {
            self.lock = None; // the session may be gone: give the lock up for sure
            err(&e)
        })
    }

    /// Changes after `after`, oldest first.
    async fn read(&self, after: u64) -> Result<Vec<(u64, String, String, Option<String>)>, String> {
        let rows = sqlx::query(
            "SELECT seq, tenant, doc_id, document FROM knowledge_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(PAGE)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| err(&e))?;
        Ok(rows
            .into_iter()
            .map(|r| (u64::try_from(r.get::<i64, _>(0)).unwrap_or(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }
}

/// Join the cluster: connect to the PostgreSQL database at `url` as
/// `node`, and from now on share `index`'s syncs through it (see the module
/// docs). `applied` is the last change this node's index already holds (0
/// for a new index; the app keeps it beside the index).
///
/// # Errors
/// The database cannot be reached or refuses the tables.
pub async fn join(
    index: &Arc<Index>,
    url: &str,
    node: &str,
    applied: u64,
    on_applied: Box<dyn Fn(u64) + Send>,
) -> Result<Arc<Replication>, SearchError> {
    let (tx, requests) = mpsc::channel();
    let replication = Arc::new(Replication {
        node: node.to_owned(),
        leader: AtomicBool::new(false),
        applied: AtomicU64::new(applied),
        pending: Mutex::new(Vec::new()),
        requests: Mutex::new(tx),
        known_leader: Mutex::new(None),
    });
    let (index_for_thread, r) = (Arc::clone(index), Arc::clone(&replication));
    let (url, node) = (url.to_owned(), node.to_owned());
    let (ready, connected) = tokio::sync::oneshot::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name("knowledge-replication".into())
        .spawn(move || {
            // A runtime of this thread's own (Runtime::block_on drives it).
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready.send(Err(format!("cannot start the replication runtime: {e}")));
                    return;
                }
            };
            match rt.block_on(Db::connect(&url, &node)) {
                Ok(db) => {
                    let _ = ready.send(Ok(()));
                    follow(&rt, db, &index_for_thread, &r, &requests, &*on_applied);
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        })
        .map_err(|e| SearchError::Shared(format!("cannot start the replication thread: {e}")))?;
    connected
        .await
        .map_err(|_| SearchError::Shared("the replication thread stopped".into()))?
        .map_err(SearchError::Shared)?;
    index.replicate(Arc::clone(&replication))?;
    Ok(replication)
}

/// The replication thread: flush for the leader, follow and try for the
/// lock otherwise.
fn follow(
    rt: &tokio::runtime::Runtime,
    mut db: Db,
    index: &Index,
    r: &Replication,
    requests: &mpsc::Receiver<Request>,
    on_applied: &dyn Fn(u64),
) {
    let mut next_try = Instant::now();
    let mut quiet_until = Instant::now();
    loop {
        // Requests first: a flush waits on us.
        match requests.recv_timeout(TICK) {
            Ok(Request::Flush(changes, reply)) => {
                let done = rt.block_on(db.write(&changes));
                if let Ok(last) = done {
                    r.applied.store(last, Ordering::Release);
                    on_applied(last);
                } else {
                    r.leader.store(false, Ordering::Release);
                    tracing::error!(
                        "the shared document store refused a sync's changes: this node stops running syncs"
                    );
                }
                let _ = reply.send(done.map(|_| ()));
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if r.leads() {
            continue;
        }
        if Instant::now() >= next_try {
            next_try = Instant::now() + LEAD_EVERY;
            try_lead(rt, &mut db, index, r, on_applied, &mut quiet_until);
        }
        if r.leads() {
            continue;
        }
        // Follow: apply what the leader wrote.
        match apply(rt, &db, index, r) {
            Ok(Some(last)) => on_applied(last),
            Ok(None) => {}
            Err(e) if Instant::now() >= quiet_until => {
                tracing::warn!(error = %e, "the shared document store cannot be followed");
                quiet_until = Instant::now() + Duration::from_secs(10);
            }
            Err(_) => {}
        }
    }
}

/// Try for the syncs' lock; on winning it, apply what the old leader wrote,
/// then lead. Otherwise learn who leads.
fn try_lead(
    rt: &tokio::runtime::Runtime,
    db: &mut Db,
    index: &Index,
    r: &Replication,
    on_applied: &dyn Fn(u64),
    quiet_until: &mut Instant,
) {
    match rt.block_on(db.try_lead()) {
        Ok(true) => {
            // Everything the old leader wrote is here before we write.
            match apply(rt, db, index, r) {
                Ok(last) => {
                    if let Some(last) = last {
                        on_applied(last);
                    }
                    r.leader.store(true, Ordering::Release);
                    *r.known_leader.lock() = Some(r.node.clone());
                    tracing::info!(node = %r.node, "this node runs the knowledge syncs");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot catch up before running the syncs");
                    db.lock = None;
                }
            }
        }
        Ok(false) => *r.known_leader.lock() = rt.block_on(db.leader()),
        Err(e) if Instant::now() >= *quiet_until => {
            tracing::warn!(error = %e, "the knowledge syncs' lock cannot be tried");
            *quiet_until = Instant::now() + Duration::from_secs(10);
        }
        Err(_) => {}
    }
}

/// Apply every change after the last applied one; the new last, if any.
fn apply(rt: &tokio::runtime::Runtime, db: &Db, index: &Index, r: &Replication) -> Result<Option<u64>, String> {
    let mut last = None;
    loop {
        let rows = rt.block_on(db.read(r.applied()))?;
        let Some(&(end, ..)) = rows.last() else { return Ok(last) };
        for (_, tenant, id, document) in &rows {
            match document {
                Some(json) => match serde_json::from_str::<Document>(json) {
                    Ok(d) => index.upsert_local(tenant, std::slice::from_ref(&d)).map_err(|e| e.to_string())?,
                    Err(e) => tracing::warn!(error = %e, id = %id, "a shared document does not decode; skipped"),
                },
                None => index.delete_local(tenant, std::slice::from_ref(id)),
            }
        }
        index.commit_local().map_err(|e| e.to_string())?;
        r.applied.store(end, Ordering::Release);
        last = Some(end);
    }
}
