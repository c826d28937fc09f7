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
//! - a writer whose body succeeded leaves its work in the transaction (on
//!   sqlx's connection its savepoint stays open and later writers' nest
//!   inside it; on the synchronous one it is released, see [`RELEASE`]; the
//!   commit makes them all durable at once) and does not commit itself: the
//!   first writer of a batch to finish while others wait queues one
//!   *settle* task behind them, which commits the batch, with everything
//!   that joined it meanwhile, in one `fsync`; every writer of the batch
//!   waits for that outcome outside the gate, so the gate passes from
//!   writer to writer without detours.
//!
//! A writer returns success only once its batch is committed (durable), and
//! an error if the batch failed to commit. The gate is fair (first come,
//! first served), so a batch holds the writers that were queued when its
//! first writer finished, and nobody starves. Settling runs in a task of
//! its own, so a caller that gives up waiting (a dropped future) never
//! leaves a transaction open; a writer dropped in the middle of its body has
//! its work rolled back before the next writer runs.
//!
//! On a file, the gate has two connections, and a batch runs on one of
//! them: sqlx's (the writers' pool of one, [`WriteGate::enter`]), which
//! runs on a thread of its own, so that each statement, `BEGIN` and
//! `COMMIT` is a round trip between threads; and a synchronous one
//! ([`WriteGate::enter_sync`], rusqlite on the same SQLite library), whose
//! statements run on the thread that holds the gate. A writer that finds a
//! batch open on the other connection commits it first (its writers learn
//! the outcome as from a settle task) and begins its own. The synchronous
//! connection is for hot writers whose bodies do not wait for anything
//! else while they hold the gate (learning's answers): on the 2-core
//! machine of BENCHMARKS.md, four-fifths of a writer's time in the gate
//! were hand-offs between threads.
//!
//! On a file, the work that does not need the write lock leaves the gate
//! ([`AfterCommit`]):
//!
//! - **the `fsync`**: the gate's connection commits at `synchronous=NORMAL`
//!   (`COMMIT` writes the batch's pages into the WAL and returns), and the
//!   batch's writers are told it committed only once an `fdatasync` of the
//!   WAL that began after the commit has returned. The next batch's writers
//!   run their statements meanwhile, and one `fdatasync` covers every batch
//!   committed before it began. A caller is never told of a commit before
//!   it is on disk (durability `fsync` means what it meant with
//!   `synchronous=FULL`); what changes is that other connections may read a
//!   batch's rows during its `fdatasync`, before its writers are answered,
//!   as InnoDB's readers may see a transaction before its redo log is
//!   flushed. A writer that finishes with [`Member::finish_by_answer`]
//!   inside a call's durability barrier (`plexus_core::durability`) is
//!   told at once that its batch committed, and the call's answer waits for
//!   the `fdatasync` alongside its audit record's. If an `fdatasync` fails,
//!   the WAL's state on disk is unknown (the kernel may have dropped the
//!   pages it failed to write): the gate
//!   refuses every later writer with the reason, until the process restarts;
//! - **checkpoints**: a connection of their own copies the WAL back into the
//!   database file (`wal_checkpoint(PASSIVE)`, which waits for no writer) at
//!   most every [`CHECKPOINT_EVERY`] while commits come, and `fsync`s the
//!   database file, outside the gate. A passive checkpoint cannot restart the
//!   WAL while writers keep appending to it, so once the WAL has grown to
//!   [`CHECKPOINT_RESTART_PAGES`] the checkpointer takes the gate in turn
//!   right after such a checkpoint (one that copied the whole WAL: no
//!   reader's older snapshot in the way), commits the batch left open, and copies
//!   the few milliseconds' pages since: the next batch begins the WAL again
//!   ([`AfterCommit::restart`]). The database file's `fdatasync` that must
//!   come before is mostly done before the gate is taken, where it waits
//!   for nobody ([`AfterCommit::presync`]). SQLite's own automatic checkpoint stays on
//!   the gate's connections as a backstop at [`CHECKPOINT_BACKSTOP_PAGES`];
//!   at 1,000 pages it had been the restart, every 15-20 ms under load, run
//!   inside a commit and copying everything since the last background
//!   checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

/// The savepoint a joining writer runs in.
///
/// A writer that fails is the innermost savepoint of that name, so
/// `ROLLBACK TO` reaches exactly its own work. A writer that succeeds on
/// sqlx's connection leaves its savepoint open: releasing it would cost a
/// round trip to the connection's thread, and the batch commits as a whole.
/// On the synchronous connection it releases it ([`RELEASE`]).
const SAVEPOINT: &str = "SAVEPOINT plexus_write";
/// A synchronous writer's savepoint, released when its body succeeded (no
/// round trip there). Its work stays in the batch; what goes is the
/// savepoint's copy of the pages it changed (SQLite's sub-journal, in
/// memory). Left open, the savepoints of a batch's earlier writers cost
/// every later statement: SQLite adds each page a statement changes to every
/// open savepoint, and at each statement's end truncates the sub-journal,
/// walking it from its start. At 64 clients, with 15-20 writers a batch,
/// that walk was 6.6 % of the answers' writes in the gate (BENCHMARKS.md
/// section 7).
const RELEASE: &str = "RELEASE plexus_write";
const UNDO: &str = "ROLLBACK TO plexus_write; RELEASE plexus_write";
const UNDO_STEPS: [&str; 2] = ["ROLLBACK TO plexus_write", RELEASE];

/// How one batch ended: `Ok(None)` committed, `Ok(Some(seq))` committed as
/// the gate's commit `seq`, on disk once an `fdatasync` that began after it
/// returns ([`AfterCommit::durable`]), `Err(reason)` failed. Set once when
/// the batch ends, shared by the gate and every writer of the batch, so a
/// writer learns its own batch's outcome however many batches ended since.
type Outcome = Arc<OnceLock<Result<Option<u64>, String>>>;

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
    /// Whether the gate has a synchronous connection ([`WriteGate::enter_sync`]).
    synchronous: bool,
}

/// Counters of the write gate, for `/metrics`: how an operator sees whether
/// SQLite's one writer is the bottleneck (time waiting against time held)
/// and how well group commit batches (writers per commit).
#[derive(Debug, Clone, Default)]
pub struct WriteCounters {
    /// Writers that entered the gate.
    pub writers: Arc<AtomicU64>,
    /// Batches committed or rolled back.
    pub batches: Arc<AtomicU64>,
    /// Microseconds writers waited to enter.
    pub wait_us: Arc<AtomicU64>,
    /// Microseconds writers held the gate (their bodies).
    pub held_us: Arc<AtomicU64>,
    /// Microseconds spent committing, holding the gate (without the WAL's
    /// `fdatasync` on a file with durability `fsync`: see `sync_us`).
    pub commit_us: Arc<AtomicU64>,
    /// `fdatasync`s of the WAL after commits, outside the gate.
    pub syncs: Arc<AtomicU64>,
    /// Microseconds those `fdatasync`s took.
    pub sync_us: Arc<AtomicU64>,
    /// Restarts of the WAL through the gate ([`CHECKPOINT_RESTART_PAGES`]).
    pub restarts: Arc<AtomicU64>,
    /// Microseconds those restarts held the gate.
    pub restart_us: Arc<AtomicU64>,
}

fn add_us(counter: &AtomicU64, since: Instant) {
    counter.fetch_add(u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

impl Default for WriteGate {
    fn default() -> Self {
        Self::build(None, None, None)
    }
}

impl WriteGate {
    fn build(writer: Option<SqlitePool>, after: Option<AfterCommit>, sync: Option<rusqlite::Connection>) -> Self {
        let (tx, settled) = watch::channel(0);
        let counters: Arc<OnceLock<WriteCounters>> = Arc::default();
        let after = after.map(|a| Arc::new(AfterCommit { counters: counters.clone(), ..a }));
        let synchronous = sync.is_some();
        let checkpoints = after.clone();
        let slot = Slot {
            tx: None,
            sync,
            sync_open: false,
            batch: 0,
            settler: 0,
            undo: None,
            outcome: Arc::default(),
            settled: Arc::new(tx),
            counters: counters.clone(),
            after,
        };
        let slot = Arc::new(Mutex::new(slot));
        if let Some(after) = checkpoints {
            // Weak: the slot holds `after`.
            let _ = after.gate.set(Arc::downgrade(&slot));
        }
        Self { slot, queued: Arc::default(), settled, counters, writer, beside: Default::default(), synchronous }
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
    /// The gate's synchronous connection, on a file: its statements run on
    /// the thread that holds the gate ([`WriteGate::enter_sync`]).
    sync: Option<rusqlite::Connection>,
    /// Whether the open batch is a transaction on `sync` instead of `tx`
    /// (never both).
    sync_open: bool,
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
    /// The `fdatasync` and checkpoints outside the gate, on a file.
    after: Option<Arc<AfterCommit>>,
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
        if self.sync_open {
            self.clean_sync(undo);
            return;
        }
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
                    ending.end(Err(reason));
                }
            },
            Undo::Whole => {
                let _ = tx.rollback().await;
                ending.end(Err("the batch was rolled back".into()));
            }
        }
    }

    /// [`Slot::clean`] for a batch on the synchronous connection.
    fn clean_sync(&mut self, undo: Undo) {
        let ending = self.ending(self.batch);
        let undone = match undo {
            Undo::Savepoint => UNDO_STEPS.iter().try_for_each(|step| self.sync_run(step)).map_err(|e| {
                // The batch cannot be trusted any more: roll it all back.
                let reason = format!("a write batch could not roll back a failed writer: {e}");
                tracing::warn!(%reason);
                reason
            }),
            Undo::Whole => Err("the batch was rolled back".into()),
        };
        match undone {
            Ok(()) => ending.keep(),
            Err(reason) => {
                self.sync_rollback();
                ending.end(Err(reason));
            }
        }
    }

    /// Run one statement without values on the synchronous connection.
    fn sync_run(&self, sql: &str) -> Result<(), String> {
        let Some(conn) = self.sync.as_ref() else { return Err("the write gate has no synchronous connection".into()) };
        conn.prepare_cached(sql).and_then(|mut s| s.raw_execute()).map(drop).map_err(|e| e.to_string())
    }

    /// Roll back the synchronous connection's transaction, if one is open.
    fn sync_rollback(&mut self) {
        self.sync_open = false;
        if self.sync.as_ref().is_some_and(|c| !c.is_autocommit())
            && let Err(e) = self.sync_run("ROLLBACK")
        {
            tracing::warn!(error = %e, "the write gate's connection could not roll back");
        }
    }

    /// Whether a batch is open (on either connection).
    fn open(&self) -> bool {
        self.tx.is_some() || self.sync_open
    }

    /// Commit the batch if it is still open. A committed batch that must
    /// still wait for its `fdatasync` comes back as [`Syncing`], for the
    /// caller to start once it has left the gate; its writers learn it
    /// committed at once, and wait for the `fdatasync` themselves.
    async fn commit(&mut self) -> Option<Syncing> {
        if !self.open() {
            return None;
        }
        let ending = self.ending(self.batch);
        let started = Instant::now();
        let outcome = match self.tx.take() {
            Some(tx) => tx.commit().await.err().map(|e| e.to_string()),
            None => {
                let outcome = self.sync_run("COMMIT").err();
                // A failed COMMIT leaves the transaction open: roll it back.
                self.sync_rollback();
                outcome
            }
        };
        if let Some(c) = self.counters.get() {
            add_us(&c.commit_us, started);
        }
        match (outcome, &self.after) {
            (Some(reason), _) => {
                tracing::warn!(%reason, "a write batch failed to commit");
                ending.end(Err(reason));
                None
            }
            (None, Some(after)) if after.sync => {
                let seq = after.committed();
                ending.end(Ok(Some(seq)));
                Some(Syncing { seq, after: after.clone() })
            }
            (None, after) => {
                ending.end(Ok(None));
                if let Some(after) = after {
                    after.committed();
                    after.maybe_checkpoint();
                }
                None
            }
        }
    }

    /// Why no writer may enter any more, if that is so.
    fn refused(&self) -> Result<(), sqlx::Error> {
        match self.after.as_ref().and_then(|a| a.failed.get()) {
            None => Ok(()),
            Some(reason) => Err(sqlx::Error::Protocol(reason.clone())),
        }
    }
}

/// A committed batch's `fdatasync`, started outside the gate as soon as it
/// has committed (its writers, waiting for it in [`AfterCommit::durable`],
/// find it running, or over).
struct Syncing {
    seq: u64,
    after: Arc<AfterCommit>,
}

impl Syncing {
    async fn finish(self) {
        let _ = self.after.sync_to(self.seq).await;
    }
}

/// How often, at most, the checkpointer copies the WAL into the database
/// file while commits come (see the module documentation).
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(10);

/// The WAL's size (pages) from which the checkpointer restarts it through
/// the gate ([`AfterCommit::restart`]), about 130 MB of WAL with 4 KiB
/// pages. A restart holds the gate for the WAL's `fdatasync`, a short copy
/// and the file's `fdatasync` (under the learning benchmark's answers
/// 1.6-3.4 ms at 1,000 pages, 2-11 ms at 32,000; 2.5 ms at 8 clients once
/// most of the file's `fdatasync` moved before the gate), so it is made rare: at
/// 1,000 pages (SQLite's default automatic checkpoint) it came every 15-20
/// ms there and delayed about one answer in eight; at 8,000 still one in
/// fifty, which set the p99; at 32,000 about once a second (BENCHMARKS.md
/// section 7). Between restarts the background checkpoints
/// keep the database file a few milliseconds behind the WAL, so readers
/// look up only those pages in it; a busy file's WAL stays this size on
/// disk.
pub(crate) const CHECKPOINT_RESTART_PAGES: i64 = 32_000;

/// The gate's connections' own automatic checkpoint, a backstop that
/// bounds the WAL (pages) should the checkpointer's restarts fail (a
/// reader holding an old snapshot through every attempt): SQLite runs it
/// inside a commit, holding the gate for a synced copy of everything since
/// the last background checkpoint.
pub(crate) const CHECKPOINT_BACKSTOP_PAGES: u32 = 64_000;

/// What follows a commit outside the write gate, on a database file: the
/// WAL's `fdatasync` (durability `fsync`) and checkpoints (see the module
/// documentation).
#[derive(Debug)]
pub(crate) struct AfterCommit {
    /// The database file; its WAL is `<file>-wal`.
    file: PathBuf,
    /// Whether writers wait for an `fdatasync` of the WAL.
    sync: bool,
    /// Commits made through the gate (counted under it, in the WAL's order).
    commits: AtomicU64,
    /// The last commit an `fdatasync` covered. Held while one runs: a commit
    /// that comes meanwhile waits for it, then for one that covers it too.
    synced: Mutex<u64>,
    /// Why the WAL can no longer be trusted to be on disk, once an
    /// `fdatasync` failed.
    failed: OnceLock<String>,
    /// The checkpointer's connection (a pool of one).
    checkpointer: SqlitePool,
    checkpointing: AtomicBool,
    last_checkpoint: parking_lot::Mutex<Instant>,
    /// The gate whose commits this follows, for [`AfterCommit::restart`].
    gate: OnceLock<std::sync::Weak<Mutex<Slot>>>,
    counters: Arc<OnceLock<WriteCounters>>,
    /// Tests hold `fdatasync`s here until they add permits.
    #[cfg(test)]
    hold: Option<Arc<tokio::sync::Semaphore>>,
}

impl AfterCommit {
    /// For the database `file`, writers waiting for `fdatasync` if `sync`,
    /// checkpoints on `checkpointer`.
    pub(crate) fn new(file: PathBuf, sync: bool, checkpointer: SqlitePool) -> Self {
        Self {
            file,
            sync,
            commits: AtomicU64::new(0),
            synced: Mutex::new(0),
            failed: OnceLock::new(),
            checkpointer,
            checkpointing: AtomicBool::new(false),
            last_checkpoint: parking_lot::Mutex::new(Instant::now()),
            gate: OnceLock::new(),
            counters: Arc::default(),
            #[cfg(test)]
            hold: None,
        }
    }

    /// Count a commit (under the gate): its number.
    fn committed(&self) -> u64 {
        self.commits.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Return once commit `seq` is on disk: at once if an `fdatasync` that
    /// began after it has returned, else after one more.
    async fn durable(&self, seq: u64) -> Result<(), String> {
        if !self.sync {
            return Ok(());
        }
        let mut synced = self.synced.lock().await;
        if let Some(reason) = self.failed.get() {
            return Err(reason.clone());
        }
        if *synced >= seq {
            return Ok(());
        }
        #[cfg(test)]
        if let Some(hold) = &self.hold
            && let Ok(permit) = hold.acquire().await
        {
            permit.forget();
        }
        let through = self.commits.load(Ordering::SeqCst);
        let started = Instant::now();
        let done = self.fdatasync(sync_wal).await;
        if let Some(c) = self.counters.get() {
            c.syncs.fetch_add(1, Ordering::Relaxed);
            add_us(&c.sync_us, started);
        }
        match done {
            Ok(()) => {
                *synced = through;
                Ok(())
            }
            Err(error) => Err(self.refuse(format!(
                "the write-ahead log of {} could not be made durable (fdatasync: {error}); whether the last \
                 commits survive a power loss is unknown, so writes are refused until plexus restarts: check the disk",
                self.file.display()
            ))),
        }
    }

    /// Run `sync` (an `fdatasync` of the WAL or the file) on a blocking
    /// thread; what failed, in words, if it did.
    async fn fdatasync(&self, sync: fn(&Path) -> std::io::Result<()>) -> Result<(), String> {
        let file = self.file.clone();
        match tokio::task::spawn_blocking(move || sync(&file)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("the task running it failed: {e}")),
        }
    }

    /// An `fdatasync` failed: what is on disk is unknown, so every later
    /// writer is refused with `reason` (the first one given stays).
    fn refuse(&self, reason: String) -> String {
        tracing::error!(%reason);
        self.failed.get_or_init(|| reason).clone()
    }

    /// [`AfterCommit::durable`], then a checkpoint if one is due.
    async fn sync_to(self: Arc<Self>, seq: u64) -> Result<(), String> {
        let durable = self.durable(seq).await;
        self.maybe_checkpoint();
        durable
    }

    /// Start a passive checkpoint on the checkpointer's connection, unless
    /// one runs or the last began less than [`CHECKPOINT_EVERY`] ago.
    fn maybe_checkpoint(self: &Arc<Self>) {
        {
            let mut last = self.last_checkpoint.lock();
            if last.elapsed() < CHECKPOINT_EVERY || self.checkpointing.swap(true, Ordering::SeqCst) {
                return;
            }
            *last = Instant::now();
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.checkpointing.store(false, Ordering::SeqCst);
            return;
        };
        let me = self.clone();
        rt.spawn(async move {
            match me.checkpoint().await {
                Ok((wal, copied)) => {
                    tracing::trace!(wal, copied, "checkpoint");
                    // Not while a reader's older snapshot kept pages from
                    // this copy: the restart would wait for that reader too.
                    if wal >= CHECKPOINT_RESTART_PAGES && copied == wal {
                        me.restart().await;
                    }
                }
                // The next one tries again; the backstop bounds the WAL.
                Err(e) => tracing::debug!(error = %e, "a background checkpoint failed"),
            }
            me.checkpointing.store(false, Ordering::SeqCst);
        });
    }

    /// A passive checkpoint on the checkpointer's connection: the WAL's
    /// pages and how many of them are in the database file now.
    async fn checkpoint(&self) -> Result<(i64, i64), sqlx::Error> {
        let (_, wal, copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&self.checkpointer).await?;
        Ok((wal, copied))
    }

    /// Restart the WAL, grown to [`CHECKPOINT_RESTART_PAGES`]. A
    /// checkpoint outside the gate never finds the WAL all copied while
    /// commits keep appending to it, and SQLite begins a WAL again only at
    /// a transaction that starts when it is. So, right after one: take the
    /// gate (in turn, as a writer), commit the batch left open if there is
    /// one, and copy what came since that checkpoint (a few milliseconds'
    /// pages, [`AfterCommit::copy_rest`]). The gate's next batch then
    /// writes from the WAL's start. Without this SQLite's automatic
    /// checkpoint ([`CHECKPOINT_BACKSTOP_PAGES`]) does the same inside a
    /// commit, copying everything since the last background checkpoint.
    /// The database file is made durable before the gate is taken
    /// ([`AfterCommit::presync`]), so that the `fdatasync` in the gate has
    /// only the pages copied since to write.
    async fn restart(&self) {
        let Some(gate) = self.gate.get().and_then(std::sync::Weak::upgrade) else { return };
        if self.presync().await.is_err() {
            return;
        }
        let mut slot = gate.lock_owned().await;
        slot.clean().await;
        if slot.refused().is_err() {
            return;
        }
        if let Some(syncing) = slot.commit().await {
            drop(tokio::spawn(syncing.finish()));
        }
        let held = Instant::now();
        let done = self.copy_rest().await;
        drop(slot);
        if let Some(c) = self.counters.get() {
            c.restarts.fetch_add(1, Ordering::Relaxed);
            add_us(&c.restart_us, held);
        }
        match done {
            Ok((wal, copied)) => tracing::trace!(wal, copied, held = ?held.elapsed(), "checkpoint in the gate"),
            Err(e) => tracing::debug!(error = %e, "a checkpoint in the gate failed"),
        }
    }

    /// Before a restart takes the gate: write the database file's pages
    /// the background checkpoints copied since its last `fdatasync` (those
    /// that did not catch up with the WAL leave the file unsynced), and copy
    /// what came meanwhile, so that the `fdatasync` in the gate
    /// ([`AfterCommit::copy_rest`]) has only the last few milliseconds'
    /// pages to write. The WAL still holds every page, so nothing depends on
    /// this one; but a failed `fdatasync` may have dropped pages the WAL is
    /// about to be written over, so it refuses every later writer, as one in
    /// the gate does.
    async fn presync(&self) -> Result<(), String> {
        if let Err(error) = self.fdatasync(sync_file).await {
            return Err(self.refuse(format!(
                "the database file {} could not be made durable before the write-ahead log began again \
                 (fdatasync: {error}); writes are refused until plexus restarts: check the disk",
                self.file.display()
            )));
        }
        // The next checkpoint, in the gate, copies whatever this one leaves.
        if let Err(e) = self.checkpoint().await {
            tracing::debug!(error = %e, "a checkpoint before a restart failed");
        }
        Ok(())
    }

    /// With the gate held and no batch open, copy the WAL's pages the last
    /// checkpoint left, durably, before any batch can begin the WAL again:
    /// the WAL's pages on disk first (with durability `fsync` the writers'
    /// own `fdatasync`, usually under way already), the copy without
    /// SQLite's syncs (`synchronous = OFF` on the checkpointer's
    /// connection, for this checkpoint only), then the database file's
    /// `fdatasync`, still in the gate. SQLite's checkpoint would run two
    /// `fdatasync`s of its own here. A failed `fdatasync` of the file
    /// refuses every later writer, as a failed one of the WAL does: the WAL
    /// is all that holds those pages for sure, and the next batch would
    /// write over it.
    async fn copy_rest(&self) -> Result<(i64, i64), String> {
        if !self.sync {
            return self.checkpoint().await.map_err(|e| e.to_string());
        }
        self.durable(self.commits.load(Ordering::SeqCst)).await?;
        let mut conn = self.checkpointer.acquire().await.map_err(|e| e.to_string())?;
        let copied = async {
            sqlx::query("PRAGMA synchronous = OFF").execute(&mut *conn).await?;
            let (_, wal, copied): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut *conn).await?;
            sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
            Ok::<_, sqlx::Error>((wal, copied))
        }
        .await;
        if copied.is_err() {
            // Never back to the pool without its syncs.
            conn.close_on_drop();
        }
        let copied = copied.map_err(|e| e.to_string())?;
        self.fdatasync(sync_file).await.map_err(|error| {
            self.refuse(format!(
                "the database file {} could not be made durable after a checkpoint (fdatasync: {error}); \
                 writes are refused until plexus restarts: check the disk",
                self.file.display()
            ))
        })?;
        Ok(copied)
    }

    pub(crate) async fn close(&self) {
        self.checkpointer.close().await;
    }
}

/// `fdatasync` the WAL of the database `file`; the file itself if the WAL
/// is gone (the last connection checkpointed it into the file and removed
/// it).
fn sync_wal(file: &Path) -> std::io::Result<()> {
    let mut wal = file.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::File::open(&wal) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => sync_file(file),
        Err(e) => Err(e),
    }
}

/// `fdatasync` the database `file` itself.
fn sync_file(file: &Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_data()
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
    fn end(mut self, outcome: Result<Option<u64>, String>) {
        self.announce(outcome);
    }

    /// The batch goes on (its transaction is back in the slot).
    fn keep(mut self) {
        self.ended = true;
    }

    fn announce(&mut self, outcome: Result<Option<u64>, String>) {
        self.ended = true;
        // Counted before the outcome is set: a writer that finds it set may
        // return at once, and its batch is counted by then.
        if let Some(c) = self.counters.get() {
            c.batches.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.outcome.set(outcome);
        // Never backwards: writers wait for the number to reach theirs.
        let batch = self.batch;
        self.settled.send_modify(|last| *last = (*last).max(batch));
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if !self.ended {
            let reason = "the write batch was interrupted (the task committing or rolling it back was dropped); \
                          whether it was committed is unknown";
            tracing::warn!(batch = self.batch, reason);
            self.announce(Err(reason.into()));
        }
    }
}

/// How a batch ended, from its cell (set before the batch is announced).
fn lookup(cell: &Outcome, batch: u64) -> Result<Option<u64>, String> {
    match cell.get() {
        Some(outcome) => outcome.clone(),
        None => Err(format!("write batch {batch} ended without an outcome")),
    }
}

impl WriteGate {
    /// A gate whose batches run on `writer` (a pool of one connection)
    /// instead of a connection of the pool passed to [`WriteGate::enter`],
    /// and whose commits are followed outside the gate by `after`.
    pub(crate) fn with_writer(writer: SqlitePool, after: AfterCommit, sync: Option<rusqlite::Connection>) -> Self {
        Self::build(Some(writer), Some(after), sync)
    }

    /// Close the writers' own connection and the checkpointer's, if there
    /// are.
    pub(crate) async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        let (after, sync) = {
            let mut slot = self.slot.lock().await;
            // A batch still open on the synchronous connection holds
            // writers that finished and wait for its commit: commit it.
            slot.clean().await;
            if slot.sync_open
                && let Some(syncing) = slot.commit().await
            {
                syncing.finish().await;
            }
            (slot.after.clone(), slot.sync.take())
        };
        if let Some(Err((_, e))) = sync.map(rusqlite::Connection::close) {
            tracing::warn!(error = %e, "the write gate's synchronous connection did not close cleanly");
        }
        if let Some(after) = after {
            after.close().await;
        }
    }

    /// Join the open batch, or begin one. Holds the gate until
    /// [`Member::finish`] or until the member is dropped.
    pub async fn enter(&self, pool: &SqlitePool) -> Result<Member, sqlx::Error> {
        let (slot, entered) = self.lock().await;
        self.member(slot, entered, pool, false).await
    }

    /// Whether the gate has a synchronous connection (a database file).
    pub fn synchronous(&self) -> bool {
        self.synchronous
    }

    /// As [`WriteGate::enter`], but the body runs on the gate's synchronous
    /// connection ([`Member::sync_conn`]): its statements run on the thread
    /// that holds the gate, with no round trip to a connection's thread.
    /// The body must not hold the gate across an await that waits for
    /// anything else. An error if the gate has none
    /// ([`WriteGate::synchronous`]).
    pub async fn enter_sync(&self, pool: &SqlitePool) -> Result<Member, sqlx::Error> {
        if !self.synchronous {
            return Err(sqlx::Error::Protocol("the write gate has no synchronous connection".into()));
        }
        let (slot, entered) = self.lock().await;
        self.member(slot, entered, pool, true).await
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
        slot.refused()?;
        if slot.open() || self.queued.load(Ordering::SeqCst) > 0 {
            return Ok(OneWriter(One::Batch(self.member(slot, entered, pool, false).await?)));
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
        sync: bool,
    ) -> Result<Member, sqlx::Error> {
        slot.refused()?;
        // A batch open on the other connection commits first (its writers
        // learn how it ended as from a settle task).
        let other = if sync { slot.tx.is_some() } else { slot.sync_open };
        if other && let Some(syncing) = slot.commit().await {
            drop(tokio::spawn(syncing.finish()));
        }
        let joined = if sync {
            let joined = slot.sync_open;
            slot.sync_run(if joined { SAVEPOINT } else { "BEGIN IMMEDIATE" }).map_err(sqlx::Error::Protocol)?;
            if !joined {
                slot.sync_open = true;
                slot.batch += 1;
                slot.outcome = Arc::default();
            }
            joined
        } else {
            match slot.tx.as_mut() {
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
    /// The transaction's synchronous connection (a member from
    /// [`WriteGate::enter_sync`]).
    pub fn sync_conn(&mut self) -> Result<&mut rusqlite::Connection, sqlx::Error> {
        match self.slot.as_mut().filter(|s| s.sync_open).and_then(|s| s.sync.as_mut()) {
            Some(conn) => Ok(conn),
            None => Err(sqlx::Error::Protocol("the write batch is closed".into())),
        }
    }

    /// The transaction's connection.
    pub fn conn(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        match self.slot.as_mut().and_then(|s| s.tx.as_mut()) {
            Some(tx) => Ok(&mut **tx),
            None => Err(sqlx::Error::Protocol("the write batch is closed".into())),
        }
    }

    /// The body succeeded: leave the gate and return once the batch is
    /// committed and durable (an error if it failed to commit, or its
    /// `fdatasync` failed).
    pub async fn finish(self) -> Result<(), sqlx::Error> {
        match self.committed().await? {
            Some((after, seq)) => after.durable(seq).await.map_err(not_durable),
            None => Ok(()),
        }
    }

    /// As [`Member::finish`], but once the batch is committed the wait for
    /// its `fdatasync` goes to the current call's durability barrier, if it
    /// runs in one ([`plexus_core::durability::by_answer`]): the call goes
    /// on, and its answer waits for the `fdatasync` alongside its audit
    /// record's. Only for writes whose caller does nothing outside the
    /// process before its answer.
    pub async fn finish_by_answer(self) -> Result<(), sqlx::Error> {
        match self.committed().await? {
            Some((after, seq)) => {
                plexus_core::durability::by_answer(async move { after.durable(seq).await }).await.map_err(not_durable)
            }
            None => Ok(()),
        }
    }

    /// Leave the gate and return once the batch is committed: with the
    /// `fdatasync` still to wait for, if there is one.
    async fn committed(mut self) -> Result<Option<(Arc<AfterCommit>, u64)>, sqlx::Error> {
        let Some(mut slot) = self.slot.take() else {
            return Err(sqlx::Error::Protocol("the write batch is closed".into()));
        };
        if self.joined
            && slot.sync_open
            && let Err(e) = slot.sync_run(RELEASE)
        {
            // Still open, as a writer on sqlx's connection leaves its own:
            // the batch commits as a whole either way.
            tracing::warn!(error = %e, "a writer's savepoint could not be released");
        }
        if let Some(c) = slot.counters.get() {
            add_us(&c.held_us, self.entered);
        }
        let batch = self.batch;
        // Where the commit's `fdatasync` is waited for (on a file).
        let after = slot.after.clone();
        if self.queued.load(Ordering::SeqCst) == 0 {
            // Nobody waits to join: commit now, without leaving the gate,
            // and start the `fdatasync` outside it (in a task of its own,
            // so that it runs even if this caller gives up).
            let syncing = slot.commit().await;
            drop(slot);
            if let Some(syncing) = syncing {
                drop(tokio::spawn(syncing.finish()));
            }
        } else {
            // Others wait: leave the gate with the batch open, and make sure
            // one settle task is queued behind them to commit it.
            let spawn = slot.settler != batch;
            slot.settler = batch;
            drop(slot);
            if spawn {
                tokio::spawn(settle(self.gate.clone(), batch));
            }
        }
        // Batches may be announced in any order: wait for this one's own
        // outcome.
        let mut settled = self.settled.clone();
        let cell = self.outcome.clone();
        if settled.wait_for(|_| cell.get().is_some()).await.is_err() {
            return Err(sqlx::Error::Protocol("the write batch's commit was lost".into()));
        }
        match lookup(&self.outcome, batch) {
            Ok(Some(seq)) => Ok(after.map(|after| (after, seq))),
            Ok(None) => Ok(None),
            Err(reason) => Err(failed(reason)),
        }
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

    /// The statement succeeded: return once it is committed and durable
    /// (alone, it committed as it ran).
    pub async fn finish(self) -> Result<(), sqlx::Error> {
        match self.0 {
            One::Batch(member) => member.finish().await,
            One::Alone { slot, conn, entered } => {
                if let Some(c) = slot.counters.get() {
                    add_us(&c.held_us, entered);
                    c.batches.fetch_add(1, Ordering::Relaxed);
                }
                let after = slot.after.clone();
                let seq = after.as_ref().map(|a| a.committed());
                drop(conn);
                drop(slot);
                let (Some(after), Some(seq)) = (after, seq) else { return Ok(()) };
                after.sync_to(seq).await.map_err(not_durable)
            }
        }
    }
}

/// A writer's error when its batch failed to commit.
fn failed(reason: String) -> sqlx::Error {
    sqlx::Error::Protocol(format!("the write batch failed to commit: {reason}"))
}

/// A writer's error when its commit could not be made durable.
fn not_durable(reason: String) -> sqlx::Error {
    sqlx::Error::Protocol(format!("the write failed to commit: {reason}"))
}

/// Commit batch `batch` unless someone did already (its writers learn how
/// it ended from its cell).
async fn settle(gate: Arc<Mutex<Slot>>, batch: u64) {
    let mut slot = gate.lock().await;
    slot.clean().await;
    if slot.batch != batch {
        return;
    }
    let syncing = slot.commit().await;
    drop(slot);
    if let Some(syncing) = syncing {
        syncing.finish().await;
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
        until_queued(gate).await;
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
        until_queued(&gate).await;
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

    /// A gate on a file as `Store` makes one (its own writer connection at
    /// NORMAL, `fdatasync` outside the gate), with `fdatasync`s held until
    /// the test adds permits, and a reader's pool. `file` is the file the
    /// gate syncs (the real one unless a test says otherwise).
    async fn synced_gate(
        name: &str,
        file: Option<&str>,
    ) -> (Arc<WriteGate>, SqlitePool, Arc<tokio::sync::Semaphore>, std::path::PathBuf) {
        let (pool, dir) = database(name, sqlx::sqlite::SqliteSynchronous::Full).await;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("g.db"))
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let one = || sqlx::sqlite::SqlitePoolOptions::new().max_connections(1);
        let writer =
            one().connect_with(options.clone().synchronous(sqlx::sqlite::SqliteSynchronous::Normal)).await.unwrap();
        let checkpointer = one().connect_with(options).await.unwrap();
        let hold = Arc::new(tokio::sync::Semaphore::new(0));
        let synced = dir.join(file.unwrap_or("g.db"));
        let after = AfterCommit { hold: Some(hold.clone()), ..AfterCommit::new(synced, true, checkpointer) };
        let sync = crate::db::open_sync_writer(&dir.join("g.db")).unwrap();
        let gate = Arc::new(WriteGate::with_writer(writer, after, Some(sync)));
        gate.count(WriteCounters::default());
        (gate, pool, hold, dir)
    }

    /// Wait until a writer queues for the gate.
    async fn until_queued(gate: &WriteGate) {
        while gate.queued.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    }

    /// Wait until a reader sees `x` in `t`.
    async fn until_visible(pool: &SqlitePool, x: i64) {
        loop {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM t WHERE x = $1").bind(x).fetch_one(pool).await.unwrap();
            if n == 1 {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Wait until the gate has numbered `n` commits (it does so just after
    /// SQLite commits, under the gate).
    async fn until_numbered(gate: &WriteGate, n: u64) {
        loop {
            let after = gate.slot.lock().await.after.clone().expect("a gate on a file");
            if after.commits.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    /// A committed batch waits for its `fdatasync` outside the gate: the
    /// next writer enters and commits meanwhile, neither is answered before
    /// an `fdatasync` that began after its commit has returned, and one
    /// `fdatasync` answers both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_syncs_outside_the_gate_and_one_fdatasync_covers_the_next() {
        let (gate, pool, hold, dir) = synced_gate("sync-outside", None).await;
        let enter = |g: Arc<WriteGate>, p: SqlitePool| async move {
            tokio::time::timeout(Duration::from_secs(10), g.enter(&p)).await.expect("the gate is free").unwrap()
        };

        let mut a = enter(gate.clone(), pool.clone()).await;
        sqlx::query("INSERT INTO t VALUES (1)").execute(a.conn().unwrap()).await.unwrap();
        let a = tokio::spawn(a.finish());
        // Committed (other connections see it), not yet on disk as far as
        // the writer is told.
        until_visible(&pool, 1).await;
        let mut b = enter(gate.clone(), pool.clone()).await;
        assert!(!a.is_finished(), "the first writer waits for its fdatasync");
        sqlx::query("INSERT INTO t VALUES (2)").execute(b.conn().unwrap()).await.unwrap();
        let b = tokio::spawn(b.finish());
        // Readers see a commit before the gate has numbered it: wait for
        // the number too, or the fdatasync released below might begin
        // between the two and rightly cover the first commit only.
        until_visible(&pool, 2).await;
        until_numbered(&gate, 2).await;
        assert!(!a.is_finished() && !b.is_finished(), "neither is answered before an fdatasync returns");
        let counters = gate.counters.get().unwrap();
        assert_eq!(counters.syncs.load(Ordering::SeqCst), 0);

        // The first fdatasync begins after both commits: it answers both.
        hold.add_permits(1);
        let answered = |h| async move { tokio::time::timeout(Duration::from_secs(10), h).await.expect("answered") };
        answered(a).await.unwrap().unwrap();
        answered(b).await.unwrap().unwrap();
        assert_eq!(counters.syncs.load(Ordering::SeqCst), 1, "one fdatasync for both batches");
        assert_eq!(gate.batches().await, 2);
        gate.close().await;
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Writers on the gate's synchronous connection batch as writers on
    /// sqlx's do: alone, a writer commits; one that joins an open batch and
    /// fails takes only its own work back; a writer of the other kind
    /// commits the open batch before it begins its own; every row of a
    /// writer that finished is there, durable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn synchronous_writers_batch_and_roll_back_as_others_do() {
        let (gate, pool, hold, dir) = synced_gate("sync-writers", None).await;
        hold.add_permits(1_000);
        let insert = |m: &mut Member, x: i64| m.sync_conn().unwrap().execute("INSERT INTO t VALUES (?1)", [x]);
        let xs = |pool: SqlitePool| async move {
            sqlx::query_scalar::<_, i64>("SELECT x FROM t ORDER BY x").fetch_all(&pool).await.unwrap()
        };

        // Alone: begins a batch and commits it.
        let mut a = gate.enter_sync(&pool).await.unwrap();
        assert!(a.conn().is_err(), "no sqlx connection for a synchronous writer");
        insert(&mut a, 1).unwrap();
        a.finish().await.unwrap();
        assert_eq!(xs(pool.clone()).await, [1]);
        assert_eq!(gate.batches().await, 1);

        // A second writer joins the first's open batch, fails and leaves:
        // its own rows go (3), the first's stay (2).
        let mut first = gate.enter_sync(&pool).await.unwrap();
        insert(&mut first, 2).unwrap();
        let (g, p) = (gate.clone(), pool.clone());
        let second = tokio::spawn(async move { g.enter_sync(&p).await.unwrap() });
        until_queued(&gate).await;
        let first = tokio::spawn(first.finish());
        let mut second = second.await.unwrap();
        assert!(second.joined, "it joined the open batch");
        insert(&mut second, 3).unwrap();
        assert!(insert(&mut second, 2).is_err(), "the UNIQUE constraint refuses 2 again");
        drop(second);
        first.await.unwrap().unwrap();
        assert_eq!(xs(pool.clone()).await, [1, 2], "nothing of the failed writer");
        assert_eq!(gate.batches().await, 2);

        // An sqlx writer's batch is open when a synchronous writer enters:
        // it commits that batch first and begins its own.
        let mut s = gate.enter(&pool).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (4)").execute(s.conn().unwrap()).await.unwrap();
        let (g, p) = (gate.clone(), pool.clone());
        let waiting = tokio::spawn(async move { g.enter_sync(&p).await.unwrap() });
        until_queued(&gate).await;
        let s = tokio::spawn(s.finish());
        let mut y = waiting.await.unwrap();
        assert!(!y.joined, "a batch on the other connection is committed, not joined");
        insert(&mut y, 5).unwrap();
        // And the other way round: an sqlx writer after it commits its batch.
        let (g, p) = (gate.clone(), pool.clone());
        let after = tokio::spawn(async move {
            let mut w = g.enter(&p).await.unwrap();
            sqlx::query("INSERT INTO t VALUES (6)").execute(w.conn().unwrap()).await.unwrap();
            w.finish().await
        });
        until_queued(&gate).await;
        y.finish().await.unwrap();
        s.await.unwrap().unwrap();
        after.await.unwrap().unwrap();
        assert_eq!(xs(pool.clone()).await, [1, 2, 4, 5, 6]);
        assert_eq!(gate.batches().await, 5, "each kind's batch committed on its own");
        let counters = gate.counters.get().unwrap();
        assert!(counters.syncs.load(Ordering::SeqCst) >= 1, "the batches waited for an fdatasync");
        gate.close().await;
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A synchronous writer that joined a batch releases its savepoint when
    /// it finishes: the next writer's savepoint is the only one open, its
    /// rows stay in the batch, and a later writer that fails still takes
    /// back its own work only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_synchronous_writer_releases_its_savepoint_when_it_finishes() {
        let (gate, pool, hold, dir) = synced_gate("sync-release", None).await;
        hold.add_permits(1_000);
        let insert = |m: &mut Member, x: i64| m.sync_conn().unwrap().execute("INSERT INTO t VALUES (?1)", [x]);
        let queue = |gate: &Arc<WriteGate>| {
            let (g, p) = (gate.clone(), pool.clone());
            tokio::spawn(async move { g.enter_sync(&p).await.unwrap() })
        };
        let until_waiting = |n: usize| {
            let gate = gate.clone();
            async move {
                while gate.queued.load(Ordering::SeqCst) < n {
                    tokio::task::yield_now().await;
                }
            }
        };
        let before = gate.batches().await;
        let mut first = gate.enter_sync(&pool).await.unwrap();
        insert(&mut first, 10).unwrap();
        let second = queue(&gate);
        until_waiting(1).await;
        let third = queue(&gate);
        until_waiting(2).await;
        let fourth = queue(&gate);
        until_waiting(3).await;
        // The first leaves with the batch open; the settle task queues
        // behind the three.
        let first = tokio::spawn(first.finish());

        let mut second = second.await.unwrap();
        assert!(second.joined);
        insert(&mut second, 11).unwrap();
        let second = tokio::spawn(second.finish());

        let mut third = third.await.unwrap();
        assert!(third.joined);
        let conn = third.sync_conn().unwrap();
        conn.execute_batch(RELEASE).unwrap();
        let e = conn.execute_batch(RELEASE).expect_err("the second writer's savepoint was released");
        assert!(e.to_string().contains("no such savepoint"), "{e}");
        conn.execute_batch(SAVEPOINT).unwrap();
        insert(&mut third, 12).unwrap();
        let third = tokio::spawn(third.finish());

        // A writer after them fails: its rows go, the others' stay.
        let mut fourth = fourth.await.unwrap();
        assert!(fourth.joined);
        insert(&mut fourth, 13).unwrap();
        assert!(insert(&mut fourth, 11).is_err(), "the UNIQUE constraint refuses 11 again");
        drop(fourth);
        for w in [first, second, third] {
            w.await.unwrap().unwrap();
        }
        let xs: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x").fetch_all(&pool).await.unwrap();
        assert_eq!(xs, [10, 11, 12], "the three writers' rows, nothing of the fourth's");
        assert_eq!(gate.batches().await, before + 1, "one batch");
        gate.close().await;
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A writer that finishes by answer inside a durability barrier's scope
    /// returns once its batch has committed, and the barrier waits for the
    /// `fdatasync`; outside a scope it waits for it as `finish` does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_by_answer_hands_its_fdatasync_to_the_barrier() {
        let (gate, pool, hold, dir) = synced_gate("by-answer", None).await;
        let counters = gate.counters.get().unwrap().clone();
        async fn within<F: Future>(f: F) -> F::Output {
            tokio::time::timeout(Duration::from_secs(10), f).await.expect("answered")
        }

        let barrier = plexus_core::durability::Barrier::default();
        let mut a = gate.enter(&pool).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)").execute(a.conn().unwrap()).await.unwrap();
        within(barrier.scope(a.finish_by_answer())).await.expect("committed");
        until_visible(&pool, 1).await;
        assert_eq!(counters.syncs.load(Ordering::SeqCst), 0, "returned before any fdatasync");
        assert!(!barrier.is_empty(), "the fdatasync's wait went to the barrier");
        let waiting = tokio::spawn({
            let barrier = barrier.clone();
            async move { barrier.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the barrier waits for the fdatasync");
        hold.add_permits(1);
        within(waiting).await.unwrap().expect("durable");
        assert_eq!(counters.syncs.load(Ordering::SeqCst), 1);

        let mut b = gate.enter(&pool).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (2)").execute(b.conn().unwrap()).await.unwrap();
        let b = tokio::spawn(b.finish_by_answer());
        until_visible(&pool, 2).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!b.is_finished(), "no barrier: the writer waits for its fdatasync");
        hold.add_permits(1);
        within(b).await.unwrap().expect("durable");
        assert_eq!(counters.syncs.load(Ordering::SeqCst), 2);
        gate.close().await;
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An `fdatasync` that fails fails its writer with the reason, and the
    /// gate refuses every later writer (in a batch or alone) before it
    /// writes anything.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_fdatasync_refuses_every_later_writer() {
        // The gate syncs a file that does not exist: its fdatasync fails.
        let (gate, pool, hold, dir) = synced_gate("sync-fails", Some("gone/g.db")).await;
        hold.add_permits(100);

        let mut a = gate.enter(&pool).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)").execute(a.conn().unwrap()).await.unwrap();
        let e = a.finish().await.unwrap_err().to_string();
        assert!(e.contains("could not be made durable") && e.contains("fdatasync"), "{e}");
        assert!(e.contains("gone/g.db") && e.contains("until plexus restarts"), "{e}");

        let refused = gate.enter(&pool).await.map(|_| ()).unwrap_err().to_string();
        assert!(refused.contains("could not be made durable"), "{refused}");
        let refused = gate.enter_one(&pool).await.map(|_| ()).unwrap_err().to_string();
        assert!(refused.contains("could not be made durable"), "{refused}");
        assert_eq!(gate.batches().await, 1, "no batch began after the failure");
        gate.close().await;
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Checkpoints run outside the gate: with the gate's own automatic
    /// checkpoint far away (the backstop), the rows reach the database file
    /// anyway, copied by the checkpointer once commits come after
    /// `CHECKPOINT_EVERY`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_copies_the_wal_into_the_database_file() {
        let (gate, pool, hold, dir) = synced_gate("checkpoints", None).await;
        hold.add_permits(1_000);
        let file = dir.join("g.db");
        let before = std::fs::metadata(&file).unwrap().len();
        let blob = "ページ".repeat(20_000); // 180 KB, some 45 pages
        for round in 0..2 {
            let mut w = gate.enter(&pool).await.unwrap();
            sqlx::query("INSERT INTO t VALUES ($1)").bind(round).execute(w.conn().unwrap()).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS big (b TEXT); INSERT INTO big VALUES ('{blob}')"
            )))
            .execute(w.conn().unwrap())
            .await
            .unwrap();
            w.finish().await.unwrap();
            // The second commit comes after CHECKPOINT_EVERY: it starts one.
            tokio::time::sleep(CHECKPOINT_EVERY + Duration::from_millis(50)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file).unwrap().len() < before + 2 * 180_000 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let after = std::fs::metadata(&file).unwrap().len();
        assert!(after >= before + 2 * 180_000, "the database file grew from {before} to {after} bytes only");
        gate.close().await;
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A restart first makes the database file durable outside the gate;
    /// if that `fdatasync` fails, the restart never takes the gate and
    /// every later writer is refused with the reason before it writes
    /// anything (the WAL is all that holds those pages for sure).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_whose_file_cannot_be_made_durable_refuses_later_writers() {
        let (gate, pool, hold, dir) = synced_gate("presync-fails", Some("gone/g.db")).await;
        hold.add_permits(100);
        let after = gate.slot.lock().await.after.clone().unwrap();
        after.restart().await;
        let counters = gate.counters.get().unwrap();
        assert_eq!(counters.restarts.load(Ordering::Relaxed), 0, "no restart went through the gate");
        let e = gate.enter(&pool).await.map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("before the write-ahead log began again") && e.contains("gone/g.db"), "{e}");
        assert!(e.contains("until plexus restarts"), "{e}");
        let e = gate.enter_sync(&pool).await.map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("before the write-ahead log began again"), "the synchronous connection too: {e}");
        gate.close().await;
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A restart through the gate commits the batch left open and copies
    /// the WAL with no writer in it, so the next batch writes from the
    /// WAL's start: the WAL file stops growing. Without it every batch
    /// would append (background checkpoints are off here, the backstop far),
    /// and so would they if the restart copied with the batch still open
    /// (that batch began before the copy).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_through_the_gate_begins_the_wal_again() {
        let (gate, pool, hold, dir) = synced_gate("restart", None).await;
        hold.add_permits(1_000);
        let after = gate.slot.lock().await.after.clone().unwrap();
        after.checkpointing.store(true, Ordering::SeqCst);
        let wal_size = || std::fs::metadata(dir.join("g.db-wal")).unwrap().len();
        let blob = "ページ".repeat(20_000); // 180 KB, some 45 pages
        let mut w = gate.enter(&pool).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE TABLE big (b TEXT); INSERT INTO big VALUES ('{blob}')")))
            .execute(w.conn().unwrap())
            .await
            .unwrap();
        w.finish().await.unwrap();
        assert!(wal_size() > 180_000, "the WAL holds the blob");
        // A batch left open, with the restart next in line for the gate: a
        // writer finishes while the restart and then another writer wait.
        let mut first = gate.enter_sync(&pool).await.unwrap();
        first.sync_conn().unwrap().execute("INSERT INTO t VALUES (1)", []).unwrap();
        let restart = tokio::spawn({
            let after = after.clone();
            async move { after.restart().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (g, p) = (gate.clone(), pool.clone());
        let second = tokio::spawn(async move {
            let mut w = g.enter_sync(&p).await.unwrap();
            w.sync_conn().unwrap().execute("INSERT INTO t VALUES (2)", []).unwrap();
            w.finish().await.unwrap();
        });
        until_queued(&gate).await;
        // Left open for the writer waiting; the restart commits it first.
        first.finish().await.unwrap();
        restart.await.unwrap();
        second.await.unwrap();
        assert!(!gate.slot.lock().await.open(), "the batches committed");
        let counters = gate.counters.get().unwrap();
        assert_eq!(counters.restarts.load(Ordering::Relaxed), 1, "the restart is counted for /metrics");
        assert!(counters.restart_us.load(Ordering::Relaxed) > 0);
        let grown = wal_size();
        for x in 3..6 {
            let mut w = gate.enter(&pool).await.unwrap();
            sqlx::query("INSERT INTO t VALUES ($1)").bind(x).execute(w.conn().unwrap()).await.unwrap();
            w.finish().await.unwrap();
        }
        assert_eq!(wal_size(), grown, "later batches wrote from the WAL's start");
        let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x").fetch_all(&pool).await.unwrap();
        assert_eq!(rows, [1, 2, 3, 4, 5]);
        let big: i64 = sqlx::query_scalar("SELECT count(*) FROM big").fetch_one(&pool).await.unwrap();
        assert_eq!(big, 1);
        gate.close().await;
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
