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
//! - a writer whose body succeeded keeps its savepoint open (savepoints of
//!   later writers nest inside it; the commit makes them all durable at
//!   once) and does not commit itself: the first writer of a batch to
//!   finish while others wait queues one *settle* task behind them, which
//!   commits the batch, with everything that joined it meanwhile, in one
//!   `fsync`; every writer of the batch waits for that outcome outside the
//!   gate, so the gate passes from writer to writer without detours.
//!
//! A writer returns success only once its batch is committed (durable), and
//! an error if the batch failed to commit. The gate is fair (first come,
//! first served), so a batch holds the writers that were queued when its
//! first writer finished, and nobody starves. Settling runs in a task of
//! its own, so a caller that gives up waiting (a dropped future) never
//! leaves a transaction open; a writer dropped in the middle of its body has
//! its work rolled back before the next writer runs.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

/// The savepoint a joining writer runs in.
///
/// A writer that succeeds leaves its savepoint open: releasing it would cost
/// a round trip to the connection's thread and change nothing, since the
/// batch commits as a whole. A writer that fails is the innermost savepoint
/// of that name, so `ROLLBACK TO` reaches exactly its own work.
const SAVEPOINT: &str = "SAVEPOINT plexus_write";
const UNDO: &str = "ROLLBACK TO plexus_write; RELEASE plexus_write";

/// How one batch ended (`None` committed, `Some(reason)` failed): set once
/// when it ends, shared by the gate and every writer of the batch, so a
/// writer learns its own batch's outcome however many batches ended since.
type Outcome = Arc<OnceLock<Option<String>>>;

/// The gate every SQLite write transaction of this process passes (see the
/// module documentation).
#[derive(Debug)]
pub struct WriteGate {
    slot: Arc<Mutex<Slot>>,
    /// Writers waiting to enter: a writer that finishes while nobody waits
    /// commits at once instead of leaving the batch open for others.
    queued: Arc<AtomicUsize>,
    /// The number of the last batch that ended (its outcome is set in its
    /// cell before), for writers waiting outside the gate.
    settled: watch::Receiver<u64>,
    /// Where the gate counts its work, once the application says.
    counters: Arc<OnceLock<WriteCounters>>,
    /// The writers' own connection (a pool of one), if the database has
    /// one apart from the readers' pool.
    writer: Option<SqlitePool>,
    /// The gates of stores beside this one's (`Store::beside`): they count
    /// into the same counters.
    beside: parking_lot::Mutex<Vec<std::sync::Weak<WriteGate>>>,
}

/// Counters of the write gate, for `/metrics`: how an operator sees whether
/// SQLite's one writer is the bottleneck (time waiting against time held)
/// and how well group commit batches (writers per commit).
#[derive(Debug, Clone)]
pub struct WriteCounters {
    /// Writers that entered the gate.
    pub writers: Arc<AtomicU64>,
    /// Batches committed or rolled back.
    pub batches: Arc<AtomicU64>,
    /// Microseconds writers waited to enter.
    pub wait_us: Arc<AtomicU64>,
    /// Microseconds writers held the gate (their bodies).
    pub held_us: Arc<AtomicU64>,
    /// Microseconds spent committing (the `fsync`), holding the gate.
    pub commit_us: Arc<AtomicU64>,
}

fn add_us(counter: &AtomicU64, since: Instant) {
    counter.fetch_add(u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

impl Default for WriteGate {
    fn default() -> Self {
        let (tx, settled) = watch::channel(0);
        let slot = Slot {
            tx: None,
            batch: 0,
            settler: 0,
            undo: None,
            outcome: Arc::default(),
            settled: Arc::new(tx),
            counters: Arc::default(),
        };
        let counters = slot.counters.clone();
        Self {
            slot: Arc::new(Mutex::new(slot)),
            queued: Arc::default(),
            settled,
            counters,
            writer: None,
            beside: Default::default(),
        }
    }
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

#[derive(Debug)]
struct Slot {
    /// The open batch, if a writer finished in it and it is not settled yet.
    tx: Option<Transaction<'static, Sqlite>>,
    /// The number of the open batch (or of the last one).
    batch: u64,
    /// The last batch a settle task was queued for.
    settler: u64,
    /// Work of a writer that left without finishing, to roll back first.
    undo: Option<Undo>,
    /// How the open batch (or the last one) ends. Set under the gate, read
    /// by writers waiting outside it.
    outcome: Outcome,
    /// Announces each batch that ended, after its outcome is recorded.
    settled: Arc<watch::Sender<u64>>,
    counters: Arc<OnceLock<WriteCounters>>,
}

#[derive(Debug, Clone, Copy)]
enum Undo {
    /// Roll back to the writer's savepoint.
    Savepoint,
    /// The writer began the transaction: roll it all back.
    Whole,
}

impl Slot {
    /// The end of batch `batch`, to be recorded: if it is dropped first
    /// (the future holding the gate was dropped while the batch's
    /// transaction was out of the slot, in a commit or a rollback), the
    /// batch is recorded as failed, so that its writers never wait forever.
    fn ending(&self, batch: u64) -> Ending {
        Ending {
            batch,
            outcome: self.outcome.clone(),
            settled: self.settled.clone(),
            counters: self.counters.clone(),
            ended: false,
        }
    }

    /// Roll back what a writer that left without finishing did.
    async fn clean(&mut self) {
        let Some(undo) = self.undo.take() else { return };
        let Some(mut tx) = self.tx.take() else { return };
        let ending = self.ending(self.batch);
        match undo {
            Undo::Savepoint => match sqlx::raw_sql(UNDO).execute(&mut *tx).await {
                Ok(_) => {
                    ending.keep();
                    self.tx = Some(tx);
                }
                Err(e) => {
                    // The batch cannot be trusted any more: roll it all back.
                    let reason = format!("a write batch could not roll back a failed writer: {e}");
                    tracing::warn!(%reason);
                    let _ = tx.rollback().await;
                    ending.end(Some(reason));
                }
            },
            Undo::Whole => {
                let _ = tx.rollback().await;
                ending.end(Some("the batch was rolled back".into()));
            }
        }
    }

    /// Commit the batch if it is still open.
    async fn commit(&mut self) {
        if let Some(tx) = self.tx.take() {
            let ending = self.ending(self.batch);
            let started = Instant::now();
            let outcome = tx.commit().await.err().map(|e| e.to_string());
            if let Some(c) = self.counters.get() {
                add_us(&c.commit_us, started);
            }
            if let Some(reason) = &outcome {
                tracing::warn!(%reason, "a write batch failed to commit");
            }
            ending.end(outcome);
        }
    }
}

/// A batch whose transaction left the slot: its outcome is recorded once,
/// by [`Ending::end`] or, if the future holding it is dropped, as failed.
struct Ending {
    batch: u64,
    outcome: Outcome,
    settled: Arc<watch::Sender<u64>>,
    counters: Arc<OnceLock<WriteCounters>>,
    ended: bool,
}

impl Ending {
    /// Record how the batch ended, and tell its waiting writers.
    fn end(mut self, outcome: Option<String>) {
        self.announce(outcome);
    }

    /// The batch goes on (its transaction is back in the slot).
    fn keep(mut self) {
        self.ended = true;
    }

    fn announce(&mut self, outcome: Option<String>) {
        self.ended = true;
        let _ = self.outcome.set(outcome);
        // Never backwards: writers wait for the number to reach theirs.
        let batch = self.batch;
        self.settled.send_modify(|last| *last = (*last).max(batch));
        if let Some(c) = self.counters.get() {
            c.batches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if !self.ended {
            let reason = "the write batch was interrupted (the task committing or rolling it back was dropped); \
                          whether it was committed is unknown";
            tracing::warn!(batch = self.batch, reason);
            self.announce(Some(reason.into()));
        }
    }
}

/// How a batch ended, from its cell (set before the batch is announced).
fn lookup(cell: &Outcome, batch: u64) -> Option<String> {
    match cell.get() {
        Some(outcome) => outcome.clone(),
        None => Some(format!("write batch {batch} ended without an outcome")),
    }
}

impl WriteGate {
    /// A gate whose batches run on `writer` (a pool of one connection)
    /// instead of a connection of the pool passed to [`WriteGate::enter`].
    pub(crate) fn with_writer(writer: SqlitePool) -> Self {
        Self { writer: Some(writer), ..Self::default() }
    }

    /// Close the writers' own connection, if there is one.
    pub(crate) async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
    }

    /// Join the open batch, or begin one. Holds the gate until
    /// [`Member::finish`] or until the member is dropped.
    pub async fn enter(&self, pool: &SqlitePool) -> Result<Member, sqlx::Error> {
        let (slot, entered) = self.lock().await;
        self.member(slot, entered, pool).await
    }

    /// Enter for a body of exactly one statement. When no batch is open and
    /// nobody waits, the statement runs alone on the writers' connection in
    /// SQLite's own implicit transaction: its commit (and `fsync`) is part
    /// of the statement, one round trip to the connection's thread instead
    /// of three (`BEGIN IMMEDIATE`, the statement, `COMMIT`). Otherwise the
    /// writer joins or begins a batch, as [`WriteGate::enter`] does, so that
    /// writers queued behind it share the commit.
    pub async fn enter_one(&self, pool: &SqlitePool) -> Result<OneWriter, sqlx::Error> {
        let (slot, entered) = self.lock().await;
        if slot.tx.is_some() || self.queued.load(Ordering::SeqCst) > 0 {
            return Ok(OneWriter(One::Batch(self.member(slot, entered, pool).await?)));
        }
        let conn = self.writer.as_ref().unwrap_or(pool).acquire().await?;
        Ok(OneWriter(One::Alone { slot, conn, entered }))
    }

    /// Take the gate (first come, first served), counted, and roll back
    /// what a writer that left without finishing did.
    async fn lock(&self) -> (OwnedMutexGuard<Slot>, Instant) {
        let queued = Queued::new(&self.queued);
        let arrived = Instant::now();
        let mut slot = self.slot.clone().lock_owned().await;
        drop(queued);
        let entered = Instant::now();
        if let Some(c) = self.counters.get() {
            c.writers.fetch_add(1, Ordering::Relaxed);
            add_us(&c.wait_us, arrived);
        }
        slot.clean().await;
        (slot, entered)
    }

    /// The writer holding `slot` joins the open batch or begins one.
    async fn member(
        &self,
        mut slot: OwnedMutexGuard<Slot>,
        entered: Instant,
        pool: &SqlitePool,
    ) -> Result<Member, sqlx::Error> {
        let joined = match slot.tx.as_mut() {
            Some(tx) => {
                sqlx::raw_sql(SAVEPOINT).execute(&mut **tx).await?;
                true
            }
            None => {
                let pool = self.writer.as_ref().unwrap_or(pool);
                slot.tx = Some(pool.begin_with("BEGIN IMMEDIATE").await?);
                slot.batch += 1;
                slot.outcome = Arc::default();
                false
            }
        };
        let batch = slot.batch;
        let outcome = slot.outcome.clone();
        Ok(Member {
            slot: Some(slot),
            gate: self.slot.clone(),
            queued: self.queued.clone(),
            settled: self.settled.clone(),
            outcome,
            batch,
            joined,
            entered,
        })
    }

    /// Count the gate's work in `counters` from now on (once; later calls
    /// are ignored).
    pub fn count(&self, counters: WriteCounters) {
        for gate in self.beside.lock().iter().filter_map(std::sync::Weak::upgrade) {
            gate.count(counters.clone());
        }
        let _ = self.counters.set(counters);
    }

    /// Count `other`'s work (the gate of a store beside this one's) where
    /// this gate counts its own, now or once it is told where.
    pub(crate) fn adopt(&self, other: &Arc<WriteGate>) {
        if let Some(c) = self.counters.get() {
            other.count(c.clone());
        }
        let mut beside = self.beside.lock();
        beside.retain(|g| g.strong_count() > 0);
        beside.push(Arc::downgrade(other));
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
    settled: watch::Receiver<u64>,
    /// How this member's batch ends.
    outcome: Outcome,
    batch: u64,
    /// Whether the member joined an open batch (runs in a savepoint).
    joined: bool,
    entered: Instant,
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
        let Some(mut slot) = self.slot.take() else {
            return Err(sqlx::Error::Protocol("the write batch is closed".into()));
        };
        if let Some(c) = slot.counters.get() {
            add_us(&c.held_us, self.entered);
        }
        if self.queued.load(Ordering::SeqCst) == 0 {
            // Nobody waits to join: commit now, without leaving the gate.
            slot.commit().await;
            return outcome(lookup(&self.outcome, self.batch));
        }
        // Others wait: leave the gate with the batch open, and make sure one
        // settle task is queued behind them to commit it.
        let batch = self.batch;
        let spawn = slot.settler != batch;
        slot.settler = batch;
        drop(slot);
        if spawn {
            tokio::spawn(settle(self.gate.clone(), batch));
        }
        let mut settled = self.settled.clone();
        if settled.wait_for(|&b| b >= batch).await.is_err() {
            return Err(sqlx::Error::Protocol("the write batch's commit was lost".into()));
        }
        outcome(lookup(&self.outcome, batch))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // Left in the middle of the body (an error returned early, or the
        // caller's future dropped): its work is rolled back by the next
        // writer, or by a task if nobody comes.
        if let Some(mut slot) = self.slot.take() {
            if let Some(c) = slot.counters.get() {
                add_us(&c.held_us, self.entered);
            }
            slot.undo = Some(if self.joined { Undo::Savepoint } else { Undo::Whole });
            drop(slot);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(settle(self.gate.clone(), self.batch));
            }
        }
    }
}

/// A writer of one statement inside the gate (see [`WriteGate::enter_one`]).
#[derive(Debug)]
pub struct OneWriter(One);

#[derive(Debug)]
enum One {
    /// In a batch, like any writer.
    Batch(Member),
    /// Alone, in autocommit: the statement commits itself. The gate is held
    /// until it has run.
    Alone { slot: OwnedMutexGuard<Slot>, conn: PoolConnection<Sqlite>, entered: Instant },
}

impl OneWriter {
    /// The connection the statement runs on.
    pub fn conn(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        match &mut self.0 {
            One::Batch(member) => member.conn(),
            One::Alone { conn, .. } => Ok(&mut **conn),
        }
    }

    /// The statement succeeded: return once it is committed (alone, it
    /// committed as it ran).
    pub async fn finish(self) -> Result<(), sqlx::Error> {
        match self.0 {
            One::Batch(member) => member.finish().await,
            One::Alone { slot, conn, entered } => {
                if let Some(c) = slot.counters.get() {
                    add_us(&c.held_us, entered);
                    c.batches.fetch_add(1, Ordering::Relaxed);
                }
                drop(conn);
                drop(slot);
                Ok(())
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

/// Commit batch `batch` unless someone did already (its writers learn how
/// it ended from its cell).
async fn settle(gate: Arc<Mutex<Slot>>, batch: u64) {
    let mut slot = gate.lock().await;
    slot.clean().await;
    if slot.batch == batch {
        slot.commit().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::time::Duration;

    /// A fresh file database with `CREATE TABLE t (x INTEGER UNIQUE)`, and
    /// its directory (removed by the caller).
    async fn database(name: &str, sync: sqlx::sqlite::SqliteSynchronous) -> (SqlitePool, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("plexus-group-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("g.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sync);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (x INTEGER UNIQUE)").execute(&pool).await.unwrap();
        (pool, dir)
    }

    /// A first writer in the gate that inserted 1, and a second one queued
    /// behind it (entering as soon as the first leaves).
    async fn first_and_one_waiting(
        gate: &Arc<WriteGate>,
        pool: &SqlitePool,
    ) -> (Member, tokio::task::JoinHandle<Member>) {
        let mut first = gate.enter(pool).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)").execute(first.conn().unwrap()).await.unwrap();
        let (g, p) = (gate.clone(), pool.clone());
        let second = tokio::spawn(async move { g.enter(&p).await.unwrap() });
        while gate.queued.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        (first, second)
    }

    /// A one-statement writer alone in the gate runs in autocommit: no
    /// batch begins, its row is committed when `finish` returns, and a
    /// statement that fails changes nothing and leaves the gate usable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_one_statement_writer_commits_by_itself() {
        let (pool, dir) = database("one-alone", sqlx::sqlite::SqliteSynchronous::Full).await;
        let gate = Arc::new(WriteGate::default());

        let mut one = gate.enter_one(&pool).await.unwrap();
        assert!(matches!(one.0, One::Alone { .. }), "alone in the gate, no batch");
        sqlx::query("INSERT INTO t VALUES (1)").execute(one.conn().unwrap()).await.unwrap();
        one.finish().await.unwrap();
        assert_eq!(gate.batches().await, 0, "no BEGIN: the statement committed itself");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&pool).await.unwrap();
        assert_eq!(n, 1);

        // A duplicate fails as a whole; the writer leaves without finishing.
        let mut one = gate.enter_one(&pool).await.unwrap();
        let err = sqlx::query("INSERT INTO t VALUES (1), (2)").execute(one.conn().unwrap()).await;
        assert!(err.is_err(), "the UNIQUE constraint refuses the statement");
        drop(one);
        let mut w = gate.enter(&pool).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (3)").execute(w.conn().unwrap()).await.unwrap();
        w.finish().await.unwrap();
        let xs: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x").fetch_all(&pool).await.unwrap();
        assert_eq!(xs, [1, 3], "nothing of the failed statement (not even 2), and the gate went on");
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A one-statement writer that finds a batch open (its writers wait for
    /// the commit) joins it and shares its commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_one_statement_writer_joins_an_open_batch() {
        let (pool, dir) = database("one-joins", sqlx::sqlite::SqliteSynchronous::Full).await;
        let gate = Arc::new(WriteGate::default());

        let mut first = gate.enter(&pool).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)").execute(first.conn().unwrap()).await.unwrap();
        let (g, p) = (gate.clone(), pool.clone());
        let second = tokio::spawn(async move { g.enter_one(&p).await.unwrap() });
        while gate.queued.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let first = tokio::spawn(first.finish());
        let mut second = second.await.unwrap();
        assert!(matches!(second.0, One::Batch(_)), "a batch was open: the writer joins it");
        sqlx::query("INSERT INTO t VALUES (2)").execute(second.conn().unwrap()).await.unwrap();
        second.finish().await.unwrap();
        first.await.unwrap().unwrap();
        assert_eq!(gate.batches().await, 1, "one batch, one commit for both");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&pool).await.unwrap();
        assert_eq!(n, 2);
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A writer learns how its own batch ended however many batches end
    /// between its batch's commit and its reading the outcome (it used to
    /// look it up among the last 4,096, and got "no longer known").
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_writer_still_learns_its_batch_committed() {
        let (pool, dir) = database("late", sqlx::sqlite::SqliteSynchronous::Off).await;
        let gate = Arc::new(WriteGate::default());

        let (first, second) = first_and_one_waiting(&gate, &pool).await;
        // The first writer leaves the gate with its batch open and waits
        // for the outcome; it is not polled again until much later.
        let mut finish = Box::pin(first.finish());
        let done = std::future::poll_fn(|cx| std::task::Poll::Ready(finish.as_mut().poll(cx).is_ready())).await;
        assert!(!done, "the first writer waits for its batch to commit");
        let mut second = second.await.unwrap();
        sqlx::query("INSERT INTO t VALUES (2)").execute(second.conn().unwrap()).await.unwrap();
        second.finish().await.unwrap();
        // Many more batches end meanwhile.
        for i in 0..5_000 {
            let mut w = gate.enter(&pool).await.unwrap();
            sqlx::query("INSERT INTO t VALUES ($1)").bind(i + 10).execute(w.conn().unwrap()).await.unwrap();
            w.finish().await.unwrap();
        }
        assert!(gate.batches().await > 5_000);
        tokio::time::timeout(Duration::from_secs(10), finish)
            .await
            .expect("the first writer got an answer")
            .expect("its batch committed, and it is told so");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t WHERE x IN (1, 2)").fetch_one(&pool).await.unwrap();
        assert_eq!(n, 2, "both writers of the first batch are in the table");
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A writer whose commit is interrupted (its future dropped in the
    /// middle of `COMMIT`) still settles its batch, so another writer of
    /// the same batch gets an answer instead of waiting forever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_interrupted_commit_settles_its_batch() {
        let (pool, dir) = database("interrupted", sqlx::sqlite::SqliteSynchronous::Full).await;
        let gate = Arc::new(WriteGate::default());

        // The first writer finishes while a second one waits to enter:
        // it leaves the batch open and waits for it to settle.
        let (first, second) = first_and_one_waiting(&gate, &pool).await;
        let first = tokio::spawn(first.finish());
        let mut second = second.await.unwrap();
        sqlx::query("INSERT INTO t VALUES (2)").execute(second.conn().unwrap()).await.unwrap();
        // Nobody waits behind the second: it commits itself, and is
        // dropped right after sending COMMIT.
        let finished_at_once = {
            let mut finish = std::pin::pin!(second.finish());
            std::future::poll_fn(|cx| std::task::Poll::Ready(finish.as_mut().poll(cx).is_ready())).await
        };
        assert!(!finished_at_once, "a commit waits for the connection's thread");
        let outcome = tokio::time::timeout(Duration::from_secs(10), first)
            .await
            .expect("the first writer got an answer")
            .unwrap();
        let err = outcome.expect_err("an interrupted commit is not reported as a success");
        assert!(err.to_string().contains("interrupted"), "{err}");
        // The gate goes on.
        let mut third = gate.enter(&pool).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (3)").execute(third.conn().unwrap()).await.unwrap();
        third.finish().await.unwrap();
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
