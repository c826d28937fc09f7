//! Group commit for SQLite's writers.
//!
//! SQLite has one writer at a time, and a commit in WAL mode with
//! `synchronous=FULL` waits for an `fsync` (a fifth of a millisecond on a
//! good day, several milliseconds in its tail). Writers of this process
//! therefore queue on one gate, in order, and the gate batches them:
//!
//! - the first writer to find no transaction open begins one
//!   (`BEGIN IMMEDIATE`) and runs its body in it;
//! - a writer that finds a transaction open (another writer's body ran in it
//!   and is waiting for the commit) runs its body inside a savepoint of that
//!   transaction, so its failure rolls back its own work only;
//! - a writer whose body succeeded does not commit itself: it leaves the
//!   gate and queues again to *settle* its batch. Whoever settles first
//!   commits the batch, with everything that joined it meanwhile, in one
//!   `fsync`; the others find it committed and return.
//!
//! A writer returns success only once its batch is committed (durable), and
//! an error if the batch failed to commit. The gate is fair (first come,
//! first served), so a batch holds the writers that were queued when its
//! first writer finished, and nobody starves. Settling runs in a task of
//! its own, so a caller that gives up waiting (a dropped future) never
//! leaves a transaction open; a writer dropped in the middle of its body has
//! its work rolled back before the next writer runs.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The savepoint a joining writer runs in.
const SAVEPOINT: &str = "SAVEPOINT plexus_write";
const RELEASE: &str = "RELEASE plexus_write";
const UNDO: &str = "ROLLBACK TO plexus_write; RELEASE plexus_write";
/// How many settled batches are remembered (a writer looks its batch up
/// right after it finishes, behind at most the writers queued then).
const OUTCOMES_KEPT: usize = 4096;

/// The gate every SQLite write transaction of this process passes (see the
/// module documentation).
#[derive(Debug, Default)]
pub struct WriteGate {
    slot: Arc<Mutex<Slot>>,
    /// Writers waiting to enter: a writer that finishes while nobody waits
    /// commits at once instead of leaving the batch open for others.
    queued: Arc<AtomicUsize>,
}

/// One writer counted in [`WriteGate::queued`] until it enters (or gives up).
struct Queued(Arc<AtomicUsize>);

impl Queued {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// The open batch, if a writer finished in it and it is not settled yet.
    tx: Option<Transaction<'static, Sqlite>>,
    /// The number of the open batch (or of the last one).
    batch: u64,
    /// Work of a writer that left without finishing, to roll back first.
    undo: Option<Undo>,
    /// How recent batches ended: `None` committed, `Some(reason)` failed.
    outcomes: VecDeque<(u64, Option<String>)>,
}

#[derive(Debug, Clone, Copy)]
enum Undo {
    /// Roll back to the writer's savepoint.
    Savepoint,
    /// The writer began the transaction: roll it all back.
    Whole,
}

impl Slot {
    fn record(&mut self, batch: u64, outcome: Option<String>) {
        if self.outcomes.len() == OUTCOMES_KEPT {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((batch, outcome));
    }

    /// Roll back what a writer that left without finishing did.
    async fn clean(&mut self) {
        let Some(undo) = self.undo.take() else { return };
        let Some(mut tx) = self.tx.take() else { return };
        match undo {
            Undo::Savepoint => match sqlx::raw_sql(UNDO).execute(&mut *tx).await {
                Ok(_) => self.tx = Some(tx),
                Err(e) => {
                    // The batch cannot be trusted any more: roll it all back.
                    let reason = format!("a write batch could not roll back a failed writer: {e}");
                    tracing::warn!(%reason);
                    let _ = tx.rollback().await;
                    self.record(self.batch, Some(reason));
                }
            },
            Undo::Whole => {
                let _ = tx.rollback().await;
                self.record(self.batch, Some("the batch was rolled back".into()));
            }
        }
    }

    /// Commit the batch if it is still open.
    async fn commit(&mut self) {
        if let Some(tx) = self.tx.take() {
            let outcome = tx.commit().await.err().map(|e| e.to_string());
            if let Some(reason) = &outcome {
                tracing::warn!(%reason, "a write batch failed to commit");
            }
            self.record(self.batch, outcome);
        }
    }

    /// How batch `batch` ended: `None` committed, `Some(reason)` not.
    fn outcome(&self, batch: u64) -> Option<String> {
        match self.outcomes.iter().rev().find(|(b, _)| *b == batch) {
            Some((_, outcome)) => outcome.clone(),
            None => Some(format!("the outcome of write batch {batch} is no longer known")),
        }
    }
}

impl WriteGate {
    /// Join the open batch, or begin one. Holds the gate until
    /// [`Member::finish`] or until the member is dropped.
    pub async fn enter(&self, pool: &SqlitePool) -> Result<Member, sqlx::Error> {
        let queued = Queued::new(&self.queued);
        let mut slot = self.slot.clone().lock_owned().await;
        drop(queued);
        slot.clean().await;
        let joined = match slot.tx.as_mut() {
            Some(tx) => {
                sqlx::raw_sql(SAVEPOINT).execute(&mut **tx).await?;
                true
            }
            None => {
                slot.tx = Some(pool.begin_with("BEGIN IMMEDIATE").await?);
                slot.batch += 1;
                false
            }
        };
        let batch = slot.batch;
        Ok(Member { slot: Some(slot), gate: self.slot.clone(), queued: self.queued.clone(), batch, joined })
    }

    /// How many batches have begun (for tests and diagnostics).
    pub(crate) async fn batches(&self) -> u64 {
        self.slot.lock().await.batch
    }
}

/// A writer inside the gate: its body runs on [`Member::conn`].
#[derive(Debug)]
pub struct Member {
    /// The gate, held while the body runs (`None` once finished).
    slot: Option<OwnedMutexGuard<Slot>>,
    gate: Arc<Mutex<Slot>>,
    queued: Arc<AtomicUsize>,
    batch: u64,
    /// Whether the member joined an open batch (runs in a savepoint).
    joined: bool,
}

impl Member {
    /// The transaction's connection.
    pub fn conn(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        match self.slot.as_mut().and_then(|s| s.tx.as_mut()) {
            Some(tx) => Ok(&mut **tx),
            None => Err(sqlx::Error::Protocol("the write batch is closed".into())),
        }
    }

    /// The body succeeded: leave the gate and return once the batch is
    /// committed (an error if it failed to commit).
    pub async fn finish(mut self) -> Result<(), sqlx::Error> {
        if self.joined {
            let conn = self.conn()?;
            // On failure, dropping `self` rolls the savepoint back.
            sqlx::raw_sql(RELEASE).execute(conn).await?;
        }
        if self.queued.load(Ordering::SeqCst) == 0
            && let Some(mut slot) = self.slot.take()
        {
            // Nobody waits to join: commit now, without leaving the gate.
            slot.commit().await;
            return outcome(slot.outcome(self.batch));
        }
        // Finished: dropping the guard leaves the gate with the batch open.
        self.slot = None;
        let (gate, batch) = (self.gate.clone(), self.batch);
        let settle = tokio::spawn(settle(gate, batch));
        match settle.await {
            Ok(failed) => outcome(failed),
            Err(e) => Err(sqlx::Error::Protocol(format!("the write batch's commit was lost: {e}"))),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // Left in the middle of the body (an error returned early, or the
        // caller's future dropped): its work is rolled back by the next
        // writer, or by a task if nobody comes.
        if let Some(mut slot) = self.slot.take() {
            slot.undo = Some(if self.joined { Undo::Savepoint } else { Undo::Whole });
            drop(slot);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(settle(self.gate.clone(), self.batch));
            }
        }
    }
}

/// A writer's result from how its batch ended.
fn outcome(failed: Option<String>) -> Result<(), sqlx::Error> {
    match failed {
        None => Ok(()),
        Some(reason) => Err(sqlx::Error::Protocol(format!("the write batch failed to commit: {reason}"))),
    }
}

/// Commit batch `batch` unless someone did already; how it ended.
async fn settle(gate: Arc<Mutex<Slot>>, batch: u64) -> Option<String> {
    let mut slot = gate.lock().await;
    slot.clean().await;
    if slot.batch == batch {
        slot.commit().await;
    }
    slot.outcome(batch)
}
