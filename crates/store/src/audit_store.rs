//! The audit log in the database: one hash chain per node, group commit.
//!
//! Callers hand events to one writer task per [`AuditStore`], which takes
//! whatever has queued (up to [`MAX_BATCH`]), chains it after the node's
//! last record with [`AuditRecord::chain`], inserts it in one transaction
//! and only then answers every caller. On SQLite the database runs in WAL
//! mode and the write gate `fdatasync`s the WAL after the commit before it
//! answers (durability `fsync`), so a committed batch survives power loss;
//! on PostgreSQL a commit is durable as the server is configured
//! (`synchronous_commit`, on by default).
//!
//! The table is append-only: the store has no method that updates or
//! deletes a record, and triggers in the schema refuse `UPDATE` and
//! `DELETE` (and `TRUNCATE` on PostgreSQL) for every role.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use plexus_core::audit::{AuditEvent, AuditRecord, GENESIS};
use plexus_core::ports::{AuditError, AuditSink};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::db::{Db, Store, on_db};
use crate::error::StoreError;
use crate::tenants::check_text;

/// Most records chained into one transaction.
pub const MAX_BATCH: usize = 1024;

/// The newest record of a node's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    /// Its sequence number (the chain holds `seq + 1` records).
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// Where the next record of a chain goes.
#[derive(Debug, Clone)]
struct Tail {
    next: u64,
    prev: String,
}

impl Tail {
    fn after(head: Option<AuditHead>) -> Self {
        match head {
            Some(h) => Self { next: h.seq + 1, prev: h.hash },
            None => Self { next: 0, prev: GENESIS.to_owned() },
        }
    }
}

struct Pending {
    event: AuditEvent,
    done: oneshot::Sender<Result<(), String>>,
}

/// An [`AuditSink`] writing one node's chain to the database.
pub struct AuditStore {
    tx: mpsc::UnboundedSender<Pending>,
    depth: Arc<AtomicUsize>,
    node_id: Arc<str>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditStore").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

const SELECT_RECORD: &str = "SELECT seq, time, request_id, session, principal, tenant, operation, target, \
     args_digest, outcome, latency_us, client_addr, prev_hash, hash FROM audit_log";

type RecordRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    String,
    String,
);

fn record_from_row(node: &str, row: RecordRow) -> Result<AuditRecord, StoreError> {
    let (
        seq,
        time,
        request_id,
        session,
        principal,
        tenant,
        operation,
        target,
        args_digest,
        outcome,
        latency_us,
        client_addr,
        prev_hash,
        hash,
    ) = row;
    let unsigned = |field: &str, v: i64| {
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("audit record {node}/{seq}: negative {field}")))
    };
    Ok(AuditRecord {
        seq: unsigned("seq", seq)?,
        time,
        request_id,
        session,
        principal,
        tenant,
        operation,
        target,
        args_digest,
        outcome,
        latency_us: unsigned("latency_us", latency_us)?,
        client_addr,
        prev_hash,
        hash,
    })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const SQLITE_INSERT: &str = "INSERT INTO audit_log (node_id, seq, time, request_id, session, principal, tenant, \
     operation, target, args_digest, outcome, latency_us, client_addr, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// One statement per batch, whatever its size.
const POSTGRES_INSERT: &str = "INSERT INTO audit_log (node_id, seq, time, request_id, session, principal, tenant, \
     operation, target, args_digest, outcome, latency_us, client_addr, prev_hash, hash) \
     SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::text[], $14::text[], $15::text[])";

/// Insert a chained batch in one transaction.
async fn insert(db: &Db, node: &str, records: &[AuditRecord]) -> Result<(), StoreError> {
    match db {
        Db::Sqlite(pool, gate) => {
            // The records join the writers' batch (group commit).
            let mut member = gate.enter(pool).await?;
            let tx = member.conn()?;
            for r in records {
                sqlx::query(SQLITE_INSERT)
                    .bind(node)
                    .bind(to_i64(r.seq))
                    .bind(&r.time)
                    .bind(&r.request_id)
                    .bind(&r.session)
                    .bind(&r.principal)
                    .bind(&r.tenant)
                    .bind(&r.operation)
                    .bind(&r.target)
                    .bind(&r.args_digest)
                    .bind(&r.outcome)
                    .bind(to_i64(r.latency_us))
                    .bind(&r.client_addr)
                    .bind(&r.prev_hash)
                    .bind(&r.hash)
                    .execute(&mut *tx)
                    .await?;
            }
            member.finish().await?;
        }
        Db::Postgres(pool) => {
            fn col<T>(records: &[AuditRecord], f: impl Fn(&AuditRecord) -> T) -> Vec<T> {
                records.iter().map(f).collect()
            }
            let mut tx = pool.begin().await?;
            sqlx::query(POSTGRES_INSERT)
                .bind(node)
                .bind(col(records, |r| to_i64(r.seq)))
                .bind(col(records, |r| r.time.clone()))
                .bind(col(records, |r| r.request_id.clone()))
                .bind(col(records, |r| r.session.clone()))
                .bind(col(records, |r| r.principal.clone()))
                .bind(col(records, |r| r.tenant.clone()))
                .bind(col(records, |r| r.operation.clone()))
                .bind(col(records, |r| r.target.clone()))
                .bind(col(records, |r| r.args_digest.clone()))
                .bind(col(records, |r| r.outcome.clone()))
                .bind(col(records, |r| to_i64(r.latency_us)))
                .bind(col(records, |r| r.client_addr.clone()))
                .bind(col(records, |r| r.prev_hash.clone()))
                .bind(col(records, |r| r.hash.clone()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// The writer task: batch, chain, commit, answer.
async fn write_loop(
    store: Store,
    node: Arc<str>,
    mut tail: Tail,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    depth: Arc<AtomicUsize>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let n = batch.len();
        let mut records = Vec::with_capacity(n);
        let mut waiting = Vec::with_capacity(n);
        let mut prev = tail.prev.clone();
        for (i, p) in batch.drain(..).enumerate() {
            let mut event = p.event;
            // The column is a signed 64-bit integer; chain what is stored.
            event.latency_us = event.latency_us.min(i64::MAX as u64);
            let r = AuditRecord::chain(tail.next + i as u64, &prev, event);
            prev.clone_from(&r.hash);
            records.push(r);
            waiting.push(p.done);
        }
        let result = insert(&store.db, &node, &records).await;
        match &result {
            Ok(()) => {
                tail = Tail { next: tail.next + n as u64, prev };
            }
            Err(e) => {
                tracing::error!(error = %e, node = %node, records = n, "audit write failed");
                // The commit may have happened even though it failed to
                // answer: continue from what the database holds.
                match store.audit_head(&node).await {
                    Ok(head) => tail = Tail::after(head),
                    Err(e) => tracing::error!(error = %e, node = %node, "could not re-read the audit chain's head"),
                }
            }
        }
        depth.fetch_sub(n, Ordering::Relaxed);
        let result = result.map_err(|e| e.to_string());
        for done in waiting {
            let _ = done.send(result.clone());
        }
    }
}

impl AuditStore {
    /// Start writing `node_id`'s chain, continuing after its last record.
    /// Spawns the writer task on the current Tokio runtime. Run one
    /// `AuditStore` per node id at a time (a second writer of the same
    /// chain has its batches refused by the primary key, not interleaved).
    pub async fn open(store: &Store, node_id: &str) -> Result<Self, StoreError> {
        check_text("node id", node_id)?;
        let tail = Tail::after(store.audit_head(node_id).await?);
        let node_id: Arc<str> = Arc::from(node_id);
        let (tx, rx) = mpsc::unbounded_channel();
        let depth = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn(write_loop(store.clone(), Arc::clone(&node_id), tail, rx, Arc::clone(&depth)));
        Ok(Self { tx, depth, node_id, writer: Mutex::new(Some(writer)) })
    }

    /// The node whose chain this writes.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Stop accepting records and wait until every queued one is written.
    pub async fn close(self) {
        let Self { tx, writer, .. } = self;
        drop(tx);
        let handle = writer.lock().take();
        if let Some(handle) = handle
            && let Err(e) = handle.await
        {
            tracing::error!(error = %e, "audit writer task failed");
        }
    }
}

#[async_trait::async_trait]
impl AuditSink for AuditStore {
    async fn append(&self, event: AuditEvent) -> Result<(), AuditError> {
        let (done, rx) = oneshot::channel();
        self.depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Pending { event, done }).is_err() {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            return Err(AuditError(StoreError::WriterStopped.to_string()));
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AuditError(e)),
            Err(_) => Err(AuditError(StoreError::WriterStopped.to_string())),
        }
    }

    fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

impl Store {
    /// The node ids that have an audit chain, in order.
    pub async fn audit_nodes(&self) -> Result<Vec<String>, StoreError> {
        let nodes = on_db!(&self.db, pool => {
            sqlx::query_scalar::<_, String>("SELECT DISTINCT node_id FROM audit_log ORDER BY node_id")
                .fetch_all(pool)
                .await?
        });
        Ok(nodes)
    }

    /// The newest record of `node_id`'s chain, if it has one. Compare it
    /// with the head of a verified export to detect truncation.
    pub async fn audit_head(&self, node_id: &str) -> Result<Option<AuditHead>, StoreError> {
        let row = on_db!(&self.db, pool => {
            sqlx::query_as::<_, (i64, String)>(
                "SELECT seq, hash FROM audit_log WHERE node_id = $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(node_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(seq, hash)| {
            let seq = u64::try_from(seq)
                .map_err(|_| StoreError::Corrupt(format!("audit record {node_id}/{seq}: negative seq")))?;
            Ok(AuditHead { seq, hash })
        })
        .transpose()
    }

    /// `node_id`'s records with `from <= seq < to`, in chain order. From 0,
    /// the result is what [`plexus_core::audit::verify`] takes.
    pub async fn audit_records(&self, node_id: &str, from: u64, to: u64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = on_db!(&self.db, pool => {
            sqlx::query_as::<_, RecordRow>(sqlx::AssertSqlSafe(format!(
                "{SELECT_RECORD} WHERE node_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq"
            )))
            .bind(node_id)
            .bind(to_i64(from))
            .bind(to_i64(to))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(|r| record_from_row(node_id, r)).collect()
    }

    /// `node_id`'s records whose `time` (RFC 3339, UTC) satisfies
    /// `since <= time < until`, in chain order: the export range query.
    pub async fn audit_records_between(
        &self,
        node_id: &str,
        since: &str,
        until: &str,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = on_db!(&self.db, pool => {
            sqlx::query_as::<_, RecordRow>(sqlx::AssertSqlSafe(format!(
                "{SELECT_RECORD} WHERE node_id = $1 AND time >= $2 AND time < $3 ORDER BY seq"
            )))
            .bind(node_id)
            .bind(since)
            .bind(until)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(|r| record_from_row(node_id, r)).collect()
    }
}

/// Reads the audit table back for `query_audit_log`: every node's records in
/// the time range, filtered to the query.
#[async_trait::async_trait]
impl plexus_core::ports::AuditReader for Store {
    async fn query(
        &self,
        q: &plexus_core::ports::AuditQuery,
    ) -> Result<Vec<AuditRecord>, plexus_core::ports::AuditError> {
        let err = |e: StoreError| plexus_core::ports::AuditError(e.to_string());
        let since = q.from.clone().unwrap_or_default();
        let until = q.to.clone().unwrap_or_else(|| "9999".into());
        let mut all = Vec::new();
        for node in self.audit_nodes().await.map_err(err)? {
            all.extend(self.audit_records_between(&node, &since, &until).await.map_err(err)?);
        }
        Ok(plexus_core::ports::newest_matches(all, q))
    }

    async fn chains(&self) -> Result<Vec<(String, Vec<AuditRecord>)>, plexus_core::ports::AuditError> {
        let err = |e: StoreError| plexus_core::ports::AuditError(e.to_string());
        let mut chains = Vec::new();
        for node in self.audit_nodes().await.map_err(err)? {
            let records = self.audit_records(&node, 0, u64::MAX).await.map_err(err)?;
            chains.push((format!("node {node}"), records));
        }
        Ok(chains)
    }
}
