//! The desk in cluster mode: several nodes, one venue.
//!
//! - **The journal lives in PostgreSQL** (`trading_journal`, one row per
//!   command, keyed by venue and sequence number) instead of a file, so
//!   every node can read it.
//! - **One leader per venue**: the node that holds the session-level
//!   advisory lock of the venue (`pg_try_advisory_lock`) on a dedicated
//!   connection. The leader appends on that same connection, so an append
//!   succeeds only while its session holds the lock: a leader that lost
//!   its connection (and so its lock) cannot write another command, and a
//!   new leader never meets a stale one's writes after it has caught up.
//!   PostgreSQL releases the lock as soon as the old leader's session ends
//!   (at once when its process is killed: the kernel closes the socket).
//! - **Followers** replay the journal as it grows (their books, orders and
//!   positions follow the leader's, a tick behind), so they serve reads
//!   themselves, and forward order entry to the leader over the cluster bus
//!   ([`Forwarder`]; NATS request-reply in the binary). A forwarded answer
//!   carries the sequence number the leader had written, and the follower
//!   answers only once it has applied that far: a client that placed an
//!   order through one node reads it back from that node at once.
//! - **Failover**: a follower that wins the lock reads the journal to its
//!   end, lists configured instruments the journal lacks, and starts
//!   writing. Every acknowledged order was in the journal before it was
//!   acknowledged, so none is lost.
//!
//! The wire format of forwarding ([`Ask`], [`Answer`]) is JSON, versioned
//! by its variant names; both sides are the same build in a cluster.

use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::{Connection, Row};

use crate::desk::{DeskError, OrderRef, OrderReport, OrderRequest};
use crate::engine::Command;
use crate::journal::{Record, decode_command, encode_command};

/// The venue's name in the shared tables (one venue per deployment).
pub const VENUE: &str = "main";

/// How often a follower tries for the lock and reads what the journal gained.
pub const TICK: Duration = Duration::from_millis(20);

/// Why an order could not be forwarded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// Nothing received the request (no node listens on the leader's
    /// subject): safe to send again.
    #[error("the venue leader `{0}` was not reached")]
    Unreached(String),
    /// The request may have been received but no answer came.
    #[error("the venue leader did not answer: {0}")]
    Unanswered(String),
}

/// Carries a forwarded request to another node and brings its answer back.
#[async_trait::async_trait]
pub trait Forwarder: Send + Sync + 'static {
    /// Send `body` to `node`'s desk ([`crate::desk::Desk::serve`]).
    async fn send(&self, node: &str, body: Vec<u8>) -> Result<Vec<u8>, ForwardError>;
}

/// A request forwarded to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ask {
    Place(OrderRequest),
    Cancel { account: String, order: OrderRef },
}

/// The leader's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Done and journaled, up to `seq`.
    Done { report: Box<OrderReport>, seq: u64 },
    /// The desk refused the request (an unknown order, a stopped desk).
    Failed { kind: String, what: String, name: String, message: String },
    /// This node does not lead the venue (any more).
    NotLeader,
    /// The leader lost the venue while writing the request: its outcome is
    /// unknown (the journal says).
    Unsettled,
}

impl Answer {
    /// The answer to a request the desk could not do.
    #[must_use]
    pub fn failed(e: &DeskError) -> Self {
        match e {
            DeskError::Unknown { what, name } => Answer::Failed {
                kind: "unknown".into(),
                what: (*what).to_owned(),
                name: name.clone(),
                message: e.to_string(),
            },
            DeskError::NotLeader => Answer::NotLeader,
            DeskError::Unsettled => Answer::Unsettled,
            other => Answer::Failed {
                kind: "failed".into(),
                what: String::new(),
                name: String::new(),
                message: other.to_string(),
            },
        }
    }

    /// The desk error a `Failed` answer stands for.
    #[must_use]
    pub fn error(kind: &str, what: &str, name: String, message: String) -> DeskError {
        let what = match what {
            "account" => "account",
            "order" => "order",
            "symbol" => "symbol",
            _ => "",
        };
        if kind == "unknown" && !what.is_empty() {
            DeskError::Unknown { what, name }
        } else {
            DeskError::Leader(message)
        }
    }
}

/// A stable advisory-lock key for a name (FNV-1a, 64 bits).
fn lock_key(name: &str) -> i64 {
    plexus_store::shared::advisory_key(&format!("plexus.trading.{name}"))
}

fn db(e: &sqlx::Error) -> DeskError {
    DeskError::Shared(e.to_string())
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The venue's shared journal and its leader lock.
pub struct SharedVenue {
    url: String,
    venue: String,
    node: String,
    key: i64,
    pool: PgPool,
    /// The connection that holds the lock, while this node leads.
    lock: tokio::sync::Mutex<Option<PgConnection>>,
}

impl std::fmt::Debug for SharedVenue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedVenue").field("venue", &self.venue).field("node", &self.node).finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS trading_journal (
    venue   TEXT   NOT NULL,
    seq     BIGINT NOT NULL CHECK (seq > 0),
    time_ns BIGINT NOT NULL,
    command BYTEA  NOT NULL,
    PRIMARY KEY (venue, seq)
);
CREATE TABLE IF NOT EXISTS trading_leaders (
    venue TEXT PRIMARY KEY,
    node  TEXT NOT NULL,
    since TIMESTAMPTZ NOT NULL DEFAULT now()
);
";

impl SharedVenue {
    /// Connect to the PostgreSQL database at `url` and create the shared
    /// tables if missing, as `node`, for the venue named `venue` (the
    /// binary's is [`VENUE`]). Clusters in different schemas of one
    /// database are apart: the lock's key includes the schema.
    ///
    /// # Errors
    /// The database cannot be reached or refuses the tables.
    pub async fn connect(url: &str, node: &str, venue: &str) -> Result<Self, DeskError> {
        let (pool, schema) =
            plexus_store::shared::open_shared(url, 4, lock_key("schema"), SCHEMA).await.map_err(DeskError::Shared)?;
        Ok(Self {
            url: url.to_owned(),
            venue: venue.to_owned(),
            node: node.to_owned(),
            key: lock_key(&format!("{schema}.{venue}")),
            pool,
            lock: tokio::sync::Mutex::new(None),
        })
    }

    /// Another handle on the same venue with connections of its own, for
    /// use on the runtime it is made on.
    ///
    /// # Errors
    /// As [`Self::connect`].
    pub async fn another(&self) -> Result<Self, DeskError> {
        Self::connect(&self.url, &self.node, &self.venue).await
    }

    /// This node's id.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Try to take the venue's lock; `true` when this node now leads (and
    /// is named the leader in `trading_leaders`).
    ///
    /// # Errors
    /// The database failed.
    pub async fn try_lead(&self) -> Result<bool, DeskError> {
        let mut slot = self.lock.lock().await;
        if slot.is_none() {
            // Named, so that pg_stat_activity shows who leads (or tries to).
            let options = PgConnectOptions::from_str(&self.url)
                .map_err(|e| db(&e))?
                .application_name(&format!("plexus trading {} {}", self.venue, self.node));
            *slot = Some(PgConnection::connect_with(&options).await.map_err(|e| db(&e))?);
        }
        let Some(conn) = slot.as_mut() else { return Ok(false) };
        let got: Result<bool, _> =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(self.key).fetch_one(&mut *conn).await;
        match got {
            Ok(false) => Ok(false),
            Ok(true) => {
                let named = sqlx::query(
                    "INSERT INTO trading_leaders (venue, node, since) VALUES ($1, $2, now())
                     ON CONFLICT (venue) DO UPDATE SET node = EXCLUDED.node, since = EXCLUDED.since",
                )
                .bind(&self.venue)
                .bind(&self.node)
                .execute(&mut *conn)
                .await;
                if let Err(e) = named {
                    *slot = None; // the session ends: the lock goes with it
                    return Err(db(&e));
                }
                Ok(true)
            }
            Err(e) => {
                *slot = None;
                Err(db(&e))
            }
        }
    }

    /// Give the lock up (close its connection).
    pub async fn resign(&self) {
        if let Some(conn) = self.lock.lock().await.take() {
            let _ = conn.close().await;
        }
    }

    /// Up to `limit` records after `after`, in order.
    ///
    /// # Errors
    /// The database failed, or a record does not decode.
    pub async fn read_after(&self, after: u64, limit: u32) -> Result<Vec<Record>, DeskError> {
        let rows = sqlx::query(
            "SELECT seq, time_ns, command FROM trading_journal WHERE venue = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(&self.venue)
        .bind(i64_of(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db(&e))?;
        let mut out = Vec::with_capacity(rows.len());
        for (expected, row) in (after + 1..).zip(rows) {
            let seq = u64::try_from(row.get::<i64, _>(0)).unwrap_or(0);
            if seq != expected {
                return Err(DeskError::Shared(format!("the shared journal skips from {} to {seq}", expected - 1)));
            }
            let time_ns = u64::try_from(row.get::<i64, _>(1)).unwrap_or(0);
            let bytes: Vec<u8> = row.get(2);
            let command = decode_command(&bytes)
                .map_err(|e| DeskError::Shared(format!("record {seq} of the shared journal: {e}")))?;
            out.push(Record { seq, time_ns, command });
        }
        Ok(out)
    }

    /// Append `commands` as records `first`, `first + 1`, ... in one
    /// statement on the lock's connection.
    ///
    /// # Errors
    /// [`DeskError::NotLeader`] without the lock; a database failure (the
    /// lock is given up: whether the statement committed is unknown, so the
    /// caller must read the journal again).
    pub async fn append(&self, first: u64, time_ns: u64, commands: &[Command]) -> Result<(), DeskError> {
        let mut slot = self.lock.lock().await;
        let Some(conn) = slot.as_mut() else { return Err(DeskError::NotLeader) };
        let mut seqs = Vec::with_capacity(commands.len());
        let mut payloads = Vec::with_capacity(commands.len());
        for (i, c) in commands.iter().enumerate() {
            seqs.push(i64_of(first + i as u64));
            let mut buf = Vec::with_capacity(48);
            encode_command(c, &mut buf);
            payloads.push(buf);
        }
        let written = sqlx::query(
            "INSERT INTO trading_journal (venue, seq, time_ns, command)
             SELECT $1, s, $2, c FROM UNNEST($3::BIGINT[], $4::BYTEA[]) AS t(s, c)",
        )
        .bind(&self.venue)
        .bind(i64_of(time_ns))
        .bind(&seqs)
        .bind(&payloads)
        .execute(&mut *conn)
        .await;
        if let Err(e) = written {
            *slot = None;
            return Err(db(&e));
        }
        Ok(())
    }

    /// The node named leader of the venue (it may have died since).
    ///
    /// # Errors
    /// The database failed.
    pub async fn leader(&self) -> Result<Option<String>, DeskError> {
        sqlx::query_scalar("SELECT node FROM trading_leaders WHERE venue = $1")
            .bind(&self.venue)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("main"), lock_key("main"));
        assert_ne!(lock_key("main"), lock_key("schema"));
    }

    #[test]
    fn failed_answers_round_trip() {
        let e = DeskError::Unknown { what: "order", name: "c-1".into() };
        let Answer::Failed { kind, what, name, message } =
            serde_json::from_slice(&serde_json::to_vec(&Answer::failed(&e)).unwrap()).unwrap()
        else {
            panic!("not failed")
        };
        assert!(
            matches!(Answer::error(&kind, &what, name, message), DeskError::Unknown { what: "order", ref name } if name == "c-1")
        );
        assert!(matches!(Answer::failed(&DeskError::NotLeader), Answer::NotLeader));
    }
}
