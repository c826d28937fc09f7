//! The desk: one writer over the venue, its journal, pre-trade risk,
//! surveillance and the order book of record (orders, fills, positions),
//! plus the market data the venue publishes.
//!
//! **One writer, journal before acknowledgement, group commit.** Commands
//! reach a single writer through a queue: a thread of its own with
//! [`Sync::Always`] (and in cluster mode), and with [`Sync::Os`] whichever
//! caller finds the writer free ([`Combiner`], flat combining: no thread
//! hand-off on the way in or out). The writer takes what is
//! queued (up to `max_batch`), handles each request in turn in memory —
//! risk check, then compliance check, then the venue, each seeing the
//! effects of the requests before it — appends every accepted command of
//! the batch to the journal with one write (and one `fdatasync` with
//! [`Sync::Always`]), and only then answers the batch's callers. Readers
//! (positions, market data) take the same lock, so they never see a state
//! the journal does not hold. A journal that fails to write stops the desk:
//! nothing more is accepted until a restart replays the journal.
//!
//! **Restart.** Opening replays the journal through the same code as live
//! commands: the venue, the orders, the fills, the positions, the risk
//! state, the surveillance history and the recent trades are rebuilt, so
//! every acknowledged order is there after `kill -9`. A refused order of a
//! known account and symbol is journaled as a note the books ignore
//! ([`Command::Refused`]), so compliance reports count it after a restart;
//! kill switches are not journaled (configuration).
//!
//! Accounts and beneficial owners get stable numeric ids from their names
//! (FNV-1a), so the journal stays valid when the configuration lists
//! accounts in another order; two names with the same id are refused.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::cluster::{Answer, Ask, ForwardError, Forwarder, SharedVenue};
use crate::engine::{
    Cancel, CancelReason, ClientOrderId, Command, Event, NewOrder, OrderStatus, Refused, RejectReason as VenueReject,
    Venue,
};
use crate::journal::{Journal, JournalError, OpenOptions, Sync};
use crate::oms::Position;
use crate::pretrade::{
    self, LimitOverrides, OrderIntent, PreTradeConfig, PreTradeRisk, RiskLimits, RiskMetrics, Scope,
};
use crate::surveillance::{self, Surveillance, SurveillanceConfig};
use crate::types::{AccountId, Instrument, OrderId, OrderType, Price, Qty, Side, SymbolId, TimeInForce};

/// Recent trades kept per symbol.
pub const TRADE_RING: usize = 1_000;
/// L2 level changes kept per symbol for `market://{symbol}/deltas`.
pub const DELTA_RING: usize = 1_000;

/// An account of the desk.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSpec {
    /// Its name (the portfolio id tools use).
    pub name: String,
    /// The beneficial owner (wash trades and self-trade prevention compare owners).
    pub owner: String,
    /// The risk role whose limits apply.
    pub role: String,
    /// Its own limits, over the role's.
    pub overrides: LimitOverrides,
}

/// An instrument listed on the venue.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedInstrument {
    pub instrument: Instrument,
    /// The reference price for the price collar until the first trade (price units).
    pub reference: Option<Price>,
}

/// How the desk is set up.
#[derive(Debug, Clone)]
pub struct DeskConfig {
    /// The journal file.
    pub journal: PathBuf,
    pub sync: Sync,
    pub instruments: Vec<ListedInstrument>,
    pub accounts: Vec<AccountSpec>,
    /// Limits per role.
    pub roles: Vec<(String, RiskLimits)>,
    /// Symbols nobody may trade.
    pub restricted: Vec<String>,
    pub pretrade: PreTradeConfig,
    pub surveillance: SurveillanceConfig,
    /// The most requests one journal write carries.
    pub max_batch: usize,
}

/// Why the desk could not do something (as opposed to an order being refused).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeskError {
    #[error("trading journal: {0}")]
    Journal(#[from] JournalError),
    #[error("desk configuration: {0}")]
    Config(String),
    #[error("the desk stopped after a journal failure; restart to recover from the journal")]
    Stopped,
    #[error("unknown {what} `{name}`")]
    Unknown { what: &'static str, name: String },
    /// Cluster mode: this node does not lead the venue.
    #[error("this node does not lead the trading venue")]
    NotLeader,
    /// Cluster mode: the shared journal failed.
    #[error("shared trading journal: {0}")]
    Shared(String),
    /// Cluster mode: the leader could not do a forwarded request.
    #[error("the trading venue's leader: {0}")]
    Leader(String),
    /// Cluster mode: no node led the venue within the forwarding deadline.
    #[error("no node leads the trading venue at the moment; try again shortly")]
    NoLeader,
    /// Cluster mode: the request reached the leader, or may have, and no
    /// answer came.
    #[error(
        "the trading venue's leader did not answer, so the order's outcome is unknown; send it again with the same client order id, or look it up"
    )]
    Unsettled,
}

/// An order as a caller sends it, in decimals.
/// (Also the cluster's forwarding wire format: see [`crate::cluster`].)
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrderRequest {
    pub account: String,
    /// The caller's idempotency key: the same key on the same account gives the same order.
    pub client_order_id: Option<String>,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub tif: TimeInForce,
    /// The limit price (limit orders only).
    pub price: Option<f64>,
    pub qty: f64,
    pub post_only: bool,
}

/// Which order a cancel means.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderRef {
    Id(OrderId),
    Client(String),
}

/// An order's lifecycle status as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
}

impl Status {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::PartiallyFilled => "partially_filled",
            Status::Filled => "filled",
            Status::Canceled => "canceled",
            Status::Rejected => "rejected",
        }
    }
}

/// One fill of an order.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Fill {
    pub trade_id: u64,
    pub price: f64,
    pub qty: f64,
    /// `maker` or `taker`.
    pub liquidity: &'static str,
    pub ts_ns: u64,
}

/// What the risk check used, in decimals.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RiskUsed {
    pub notional: f64,
    pub price_used: f64,
    pub reference_price: Option<f64>,
    pub collar: Option<(f64, f64)>,
    pub position: f64,
    pub projected_position: f64,
    pub position_limit: Option<f64>,
    pub credit_used: f64,
    pub credit_limit: Option<f64>,
    pub max_order_qty: Option<f64>,
    pub max_order_notional: Option<f64>,
}

/// An order's state as a caller sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrderReport {
    pub order_id: Option<OrderId>,
    pub client_order_id: Option<String>,
    pub account: String,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub tif: TimeInForce,
    pub price: Option<f64>,
    pub qty: f64,
    pub status: Status,
    pub executed_qty: f64,
    pub remaining_qty: f64,
    pub avg_price: Option<f64>,
    /// Stable code and message of a refusal or of a cancel.
    pub reason: Option<(String, String)>,
    pub fills: Vec<Fill>,
    pub risk: Option<RiskUsed>,
    /// The answer repeats an earlier order with the same client order id.
    pub repeated: bool,
    pub ts_ns: u64,
}

/// A [`Fill`] as it arrives (its liquidity a string of the two known ones).
#[derive(serde::Deserialize)]
struct FillWire {
    trade_id: u64,
    price: f64,
    qty: f64,
    liquidity: String,
    ts_ns: u64,
}

impl<'de> serde::Deserialize<'de> for Fill {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = FillWire::deserialize(d)?;
        let liquidity = match w.liquidity.as_str() {
            "maker" => "maker",
            "taker" => "taker",
            other => return Err(serde::de::Error::custom(format!("unknown liquidity `{other}`"))),
        };
        Ok(Fill { trade_id: w.trade_id, price: w.price, qty: w.qty, liquidity, ts_ns: w.ts_ns })
    }
}

/// A position as a caller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionReport {
    pub symbol: String,
    pub qty: f64,
    pub avg_price: f64,
    pub mark: Option<f64>,
    pub market_value: f64,
    pub realized_pnl: f64,
    pub unrealized_pnl: f64,
}

/// A trade as market data shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeTick {
    pub trade_id: u64,
    pub ts_ns: u64,
    pub price: f64,
    pub qty: f64,
    pub aggressor: Side,
}

/// One change of an L2 price level: its new totals (`qty == 0`: the level is gone).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelDelta {
    /// The book's sequence number after this change (1, 2, ... per symbol).
    pub sequence: u64,
    pub side: Side,
    pub price: f64,
    pub qty: f64,
    pub orders: u32,
}

/// A symbol's recent L2 changes: apply them, in order, to a book snapshot
/// taken at sequence `n` (those with `sequence > n`) to follow the book.
#[derive(Debug, Clone, PartialEq)]
pub struct BookDeltas {
    pub symbol: String,
    /// The book's sequence number now.
    pub sequence: u64,
    /// Whether every change after the sequence asked for is here (the ring
    /// keeps the last [`DELTA_RING`]); when not, take a new snapshot.
    pub complete: bool,
    /// Oldest first.
    pub deltas: Vec<LevelDelta>,
}

/// A symbol's market data.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketSnapshot {
    pub symbol: String,
    pub bid: Option<(f64, f64)>,
    pub ask: Option<(f64, f64)>,
    pub last: Option<f64>,
    pub reference: Option<f64>,
    /// Top levels: (price, qty, orders).
    pub bids: Vec<(f64, f64, u32)>,
    pub asks: Vec<(f64, f64, u32)>,
    /// The book's sequence number: how many L2 level changes it has had.
    pub book_sequence: u64,
    /// Most recent first.
    pub trades: Vec<TradeTick>,
    pub volume: f64,
    pub vwap: Option<f64>,
    pub high: Option<f64>,
    pub low: Option<f64>,
}

struct OrderRecord {
    order: NewOrder,
    client_order_id: Option<String>,
    filled: Qty,
    canceled: Qty,
    value: f64,
    status: OrderStatus,
    cancel_reason: Option<CancelReason>,
    fills: Vec<Fill>,
    risk: Option<RiskUsed>,
    ts_ns: u64,
}

#[derive(Default)]
struct SymbolData {
    trades: VecDeque<TradeTick>,
    last: Option<Price>,
    /// The number of L2 level changes so far (the book's sequence number).
    book_seq: u64,
    /// The most recent level changes, oldest first (at most [`DELTA_RING`]).
    deltas: VecDeque<(u64, Side, Price, Qty, u32)>,
}

struct State {
    venue: Venue,
    risk: PreTradeRisk,
    surveillance: Surveillance,
    accounts: BTreeMap<String, (AccountId, u32)>,
    account_names: HashMap<AccountId, String>,
    orders: HashMap<OrderId, OrderRecord>,
    client_ids: HashMap<(AccountId, String), OrderId>,
    positions: BTreeMap<(AccountId, SymbolId), Position>,
    market: HashMap<SymbolId, SymbolData>,
    /// Client order ids waiting for their order (replay).
    pending_client_id: Option<ClientOrderId>,
    stopped: bool,
    events: Vec<Event>,
    /// Tests: the next journal append fails as a full disk would.
    #[cfg(test)]
    fail_next_append: bool,
}

type Reply = tokio::sync::oneshot::Sender<Result<OrderReport, DeskError>>;

enum Job {
    Place(OrderRequest, Reply),
    Cancel(String, OrderRef, Reply),
    /// Cluster mode: read the shared journal now (a forwarded answer waits).
    Tail,
    Stop,
}

/// How requests reach the writer.
#[derive(Clone)]
enum Entry {
    /// A writer thread and its queue ([`Sync::Always`], cluster mode).
    Thread { jobs: mpsc::SyncSender<Job>, handle: Arc<Mutex<Option<std::thread::JoinHandle<()>>>> },
    /// [`Sync::Os`]: the callers take turns as the writer (see [`Combiner`]).
    Combining(Arc<Combiner>),
}

/// The desk (cheap to clone).
#[derive(Clone)]
pub struct Desk {
    state: Arc<Mutex<State>>,
    entry: Entry,
    changed: tokio::sync::broadcast::Sender<String>,
    /// Cluster mode: this node's part in the venue.
    member: Option<Arc<Member>>,
}

/// How long a follower keeps trying to hand an order to a leader.
pub const FORWARD_DEADLINE: Duration = Duration::from_secs(5);

/// Cluster mode: what the desk and its member thread share.
struct Member {
    leader: AtomicBool,
    /// The journal's sequence number applied to the state.
    applied: tokio::sync::watch::Sender<u64>,
    venue: Arc<SharedVenue>,
    forward: Arc<dyn Forwarder>,
    known_leader: Mutex<Option<String>>,
    jobs: mpsc::SyncSender<Job>,
}

impl Member {
    async fn leader_node(&self) -> Option<String> {
        if let Some(n) = self.known_leader.lock().clone() {
            return Some(n);
        }
        let found = self.venue.leader().await.ok().flatten().filter(|n| n != self.venue.node());
        self.known_leader.lock().clone_from(&found);
        found
    }

    /// Returns once `node` no longer leads: this node or another took over.
    async fn replaced(&self, node: &str) {
        loop {
            tokio::time::sleep(Duration::from_millis(25)).await;
            if self.leader.load(Ordering::Acquire) {
                return;
            }
            if let Ok(Some(now)) = self.venue.leader().await
                && now != node
            {
                return;
            }
        }
    }

    fn forget_leader(&self) {
        *self.known_leader.lock() = None;
    }

    /// Wait (a bounded while) until the state holds record `seq`.
    async fn caught_up(&self, seq: u64) {
        if *self.applied.borrow() >= seq {
            return;
        }
        let _ = self.jobs.try_send(Job::Tail);
        let mut rx = self.applied.subscribe();
        let _ = tokio::time::timeout(FORWARD_DEADLINE, rx.wait_for(|a| *a >= seq)).await;
    }
}

/// What replaying the shared journal reached.
struct CaughtUp {
    last: u64,
    /// Symbols whose books changed.
    touched: Vec<SymbolId>,
    /// An instrument was listed.
    listed: bool,
}

/// Records read from the shared journal in one go, at most.
const PAGE: u32 = 4096;

impl CaughtUp {
    fn apply(&mut self, state: &mut State, records: &[crate::journal::Record]) {
        for r in records {
            match &r.command {
                Command::New(o) => self.touched.push(o.symbol),
                Command::Cancel(c) => self.touched.push(c.symbol),
                Command::Replace(c) => self.touched.push(c.symbol),
                Command::AddInstrument(_) => self.listed = true,
                Command::ClientOrderId(_) | Command::Refused(_) => {}
            }
            state.apply(&r.command, r.time_ns, None);
            self.last = r.seq;
        }
    }
}

/// Apply what the shared journal holds after `after`.
async fn catch_up(state: &mut State, venue: &SharedVenue, after: u64) -> Result<CaughtUp, DeskError> {
    let mut out = CaughtUp { last: after, touched: Vec::new(), listed: false };
    loop {
        let records = venue.read_after(out.last, PAGE).await?;
        if records.is_empty() {
            return Ok(out);
        }
        out.apply(state, &records);
    }
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk").finish_non_exhaustive()
    }
}

/// A stable 32-bit id for a name (FNV-1a; 0 is never used).
#[must_use]
pub fn name_id(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.max(1)
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Desk {
    /// Open the desk: replay the journal, list configured instruments it
    /// does not hold yet, start the writer thread.
    ///
    /// # Errors
    /// A configuration that does not hold together, or a journal that
    /// cannot be opened or replayed.
    pub fn open(config: DeskConfig) -> Result<Self, DeskError> {
        let mut state = State::fresh(&config)?;
        let (mut journal, _recovery) = Journal::open_each(&config.journal, OpenOptions::new(config.sync), |record| {
            state.apply(&record.command, record.time_ns, None);
            Ok(())
        })?;
        let listed = state.list(&config)?;
        if !listed.is_empty() {
            journal.append_batch_at(&listed, now_ns())?;
        }
        state.settle(&config, true)?;
        let state = Arc::new(Mutex::new(state));
        let (changed, _) = tokio::sync::broadcast::channel(1024);
        let writer = Writer::new(Arc::clone(&state), Sink::File(journal), changed.clone(), config.max_batch);
        if config.sync == Sync::Os {
            let entry = Entry::Combining(Arc::new(Combiner::new(writer)));
            return Ok(Self { state, entry, changed, member: None });
        }
        let (jobs, queue) = mpsc::sync_channel::<Job>(4096);
        let handle = std::thread::Builder::new()
            .name("trading-desk".into())
            .spawn(move || {
                let mut writer = writer;
                writer.run(&queue);
            })
            .map_err(|e| DeskError::Config(format!("cannot start the desk's writer thread: {e}")))?;
        let entry = Entry::Thread { jobs, handle: Arc::new(Mutex::new(Some(handle))) };
        Ok(Self { state, entry, changed, member: None })
    }

    /// Open the desk as a member of a cluster: the journal is the venue's
    /// shared one, one node leads and the others follow and forward order
    /// entry to it (see [`crate::cluster`]). `config.journal` and
    /// `config.sync` are not used. Must be called within a Tokio runtime,
    /// whose handle the member thread uses for the database.
    ///
    /// # Errors
    /// A configuration that does not hold together, or a shared journal
    /// that cannot be read or replayed.
    pub async fn open_shared(
        config: DeskConfig,
        venue: Arc<SharedVenue>,
        forward: Arc<dyn Forwarder>,
    ) -> Result<Self, DeskError> {
        let mut state = State::fresh(&config)?;
        let applied = catch_up(&mut state, &venue, 0).await?;
        state.settle(&config, false)?;
        let state = Arc::new(Mutex::new(state));
        let (jobs, queue) = mpsc::sync_channel::<Job>(4096);
        let (changed, _) = tokio::sync::broadcast::channel(1024);
        let (seen, _) = tokio::sync::watch::channel(applied.last);
        let member = Arc::new(Member {
            leader: AtomicBool::new(false),
            applied: seen,
            venue: Arc::clone(&venue),
            forward,
            known_leader: Mutex::new(None),
            jobs: jobs.clone(),
        });
        let (mine, thread_state, thread_member, thread_changed) =
            (Arc::clone(&venue), Arc::clone(&state), Arc::clone(&member), changed.clone());
        let next = applied.last + 1;
        // The member thread runs its database work on a runtime of its own
        // (its own connections): it writes while holding the state's lock,
        // and must never wait on the workers that readers may be blocking.
        let handle = std::thread::Builder::new()
            .name("trading-desk".into())
            .spawn(move || {
                // (Runtime::block_on, not Handle::block_on: only the former
                // drives a current-thread runtime's I/O and timers.)
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => Arc::new(rt),
                    Err(e) => {
                        tracing::error!(error = %e, "the trading desk's member thread cannot start its runtime");
                        return;
                    }
                };
                let Some(venue) = connect_member(&mine, &queue, &rt) else { return };
                let sink = Sink::Shared { venue, next, member: thread_member, rt: Arc::clone(&rt) };
                let writer = Writer::new(thread_state, sink, thread_changed, config.max_batch);
                run_member(writer, &queue, &config, &rt);
            })
            .map_err(|e| DeskError::Config(format!("cannot start the desk's member thread: {e}")))?;
        let entry = Entry::Thread { jobs, handle: Arc::new(Mutex::new(Some(handle))) };
        Ok(Self { state, entry, changed, member: Some(member) })
    }

    /// Cluster mode: whether this node leads the venue now (always `true`
    /// for a desk on a journal file).
    #[must_use]
    pub fn leads(&self) -> bool {
        self.member.as_ref().is_none_or(|m| m.leader.load(Ordering::Acquire))
    }

    /// Cluster mode: the journal's sequence number this node has applied.
    #[must_use]
    pub fn applied(&self) -> Option<u64> {
        self.member.as_ref().map(|m| *m.applied.borrow())
    }

    /// Cluster mode: answer a request another node forwarded (the
    /// [`Forwarder`]'s far end). Never fails: every outcome is an answer.
    pub async fn serve(&self, body: &[u8]) -> Vec<u8> {
        let answer = match serde_json::from_slice::<Ask>(body) {
            Err(e) => Answer::Failed {
                kind: "malformed".into(),
                what: String::new(),
                name: String::new(),
                message: format!("the forwarded request does not decode: {e}"),
            },
            Ok(_) if !self.leads() => Answer::NotLeader,
            Ok(ask) => {
                let done = match ask {
                    Ask::Place(req) => self.enqueue_place(req).await,
                    Ask::Cancel { account, order } => self.enqueue_cancel(account, order).await,
                };
                match done {
                    Ok(report) => Answer::Done { report: Box::new(report), seq: self.applied().unwrap_or(0) },
                    Err(e) => Answer::failed(&e),
                }
            }
        };
        serde_json::to_vec(&answer).unwrap_or_default()
    }

    /// Stop the writer once what is queued is answered, and wait for it (the
    /// journal is closed and unlocked afterwards). Later calls get
    /// [`DeskError::Stopped`].
    pub fn close(&self) {
        match &self.entry {
            Entry::Thread { jobs, handle } => {
                let _ = jobs.send(Job::Stop);
                let handle = handle.lock().take();
                if let Some(h) = handle {
                    let _ = h.join();
                }
            }
            Entry::Combining(c) => c.close(),
        }
    }

    /// Place an order: risk, then compliance, then the venue; answered once journaled.
    ///
    /// # Errors
    /// The desk stopped (a journal failure).
    pub async fn place(&self, req: OrderRequest) -> Result<OrderReport, DeskError> {
        if self.leads() {
            match self.enqueue_place(req.clone()).await {
                Err(DeskError::NotLeader) => {}
                done => return done,
            }
        }
        self.forward(Ask::Place(req)).await
    }

    /// Cancel an order of `account`.
    ///
    /// # Errors
    /// Unknown account or order; the desk stopped.
    pub async fn cancel(&self, account: &str, order: OrderRef) -> Result<OrderReport, DeskError> {
        if self.leads() {
            match self.enqueue_cancel(account.to_owned(), order.clone()).await {
                Err(DeskError::NotLeader) => {}
                done => return done,
            }
        }
        self.forward(Ask::Cancel { account: account.to_owned(), order }).await
    }

    async fn enqueue_place(&self, req: OrderRequest) -> Result<OrderReport, DeskError> {
        self.enqueue(|reply| Job::Place(req, reply)).await
    }

    async fn enqueue_cancel(&self, account: String, order: OrderRef) -> Result<OrderReport, DeskError> {
        self.enqueue(|reply| Job::Cancel(account, order, reply)).await
    }

    /// Hand a request to the writer and wait for its answer (with the
    /// combining entry, usually answered before the first poll of `rx`).
    async fn enqueue(&self, job: impl FnOnce(Reply) -> Job) -> Result<OrderReport, DeskError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match &self.entry {
            Entry::Thread { jobs, .. } => jobs.send(job(tx)).map_err(|_| DeskError::Stopped)?,
            Entry::Combining(c) => c.submit(job(tx)),
        }
        rx.await.map_err(|_| DeskError::Stopped)?
    }

    /// Send `ask` to the leader, again while nobody received it (or it is
    /// idempotent), until [`FORWARD_DEADLINE`]; then wait until this node
    /// has applied what the leader wrote, so its reads show the answer.
    async fn forward(&self, ask: Ask) -> Result<OrderReport, DeskError> {
        let Some(m) = &self.member else { return Err(DeskError::Stopped) };
        let body = serde_json::to_vec(&ask).map_err(|e| DeskError::Leader(e.to_string()))?;
        // A cancel, and an order with a client order id, may be sent twice.
        let repeatable = match &ask {
            Ask::Place(r) => r.client_order_id.is_some(),
            Ask::Cancel { .. } => true,
        };
        let deadline = tokio::time::Instant::now() + FORWARD_DEADLINE;
        loop {
            if self.leads() {
                // This node took the lead meanwhile.
                let local = match ask.clone() {
                    Ask::Place(req) => self.enqueue_place(req).await,
                    Ask::Cancel { account, order } => self.enqueue_cancel(account, order).await,
                };
                if !matches!(local, Err(DeskError::NotLeader)) {
                    return local;
                }
            } else if let Some(node) = m.leader_node().await {
                // An order in flight to a leader that dies gets no answer:
                // stop waiting as soon as another node leads instead.
                let sent = tokio::select! {
                    sent = m.forward.send(&node, body.clone()) => sent,
                    () = m.replaced(&node) => {
                        Err(ForwardError::Unanswered(format!("`{node}` no longer leads the venue")))
                    }
                };
                match sent {
                    Ok(bytes) => match serde_json::from_slice::<Answer>(&bytes) {
                        Ok(Answer::Done { report, seq }) => {
                            m.caught_up(seq).await;
                            return Ok(*report);
                        }
                        Ok(Answer::Failed { kind, what, name, message }) => {
                            return Err(Answer::error(&kind, &what, name, message));
                        }
                        Ok(Answer::NotLeader) => m.forget_leader(),
                        Ok(Answer::Unsettled) => {
                            m.forget_leader();
                            if !repeatable {
                                return Err(DeskError::Unsettled);
                            }
                        }
                        Err(e) => return Err(DeskError::Leader(format!("its answer does not decode: {e}"))),
                    },
                    Err(ForwardError::Unreached(_)) => m.forget_leader(),
                    Err(ForwardError::Unanswered(e)) => {
                        tracing::warn!(leader = %node, error = %e, "a forwarded order went unanswered");
                        m.forget_leader();
                        if !repeatable {
                            return Err(DeskError::Unsettled);
                        }
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DeskError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Symbols whose market data changed (for resource notifications).
    #[must_use]
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.changed.subscribe()
    }

    /// The listed symbols.
    #[must_use]
    pub fn symbols(&self) -> Vec<String> {
        let s = self.state.lock();
        s.venue.books().iter().map(|b| b.instrument().symbol.clone()).collect()
    }

    /// The accounts.
    #[must_use]
    pub fn accounts(&self) -> Vec<String> {
        self.state.lock().accounts.keys().cloned().collect()
    }

    /// A symbol's instrument.
    #[must_use]
    pub fn instrument(&self, symbol: &str) -> Option<Instrument> {
        let s = self.state.lock();
        s.venue.symbol(symbol).and_then(|sym| s.venue.instrument(sym)).cloned()
    }

    /// A symbol's market data with `depth` levels.
    #[must_use]
    pub fn market(&self, symbol: &str, depth: usize, trades: usize) -> Option<MarketSnapshot> {
        self.state.lock().market(symbol, depth, trades)
    }

    /// A symbol's L2 changes after sequence `after` (0: all that are kept).
    #[must_use]
    pub fn book_deltas(&self, symbol: &str, after: u64) -> Option<BookDeltas> {
        self.state.lock().book_deltas(symbol, after)
    }

    /// An order of `account`.
    ///
    /// # Errors
    /// Unknown account or order.
    pub fn order(&self, account: &str, order: &OrderRef) -> Result<OrderReport, DeskError> {
        let s = self.state.lock();
        let id = s.resolve(account, order)?;
        s.report(id, false).ok_or_else(|| unknown_order(order))
    }

    /// An account's positions, with marks from the last trade (else the reference price).
    ///
    /// # Errors
    /// Unknown account.
    pub fn positions(&self, account: &str) -> Result<Vec<PositionReport>, DeskError> {
        let s = self.state.lock();
        let &(id, _) =
            s.accounts.get(account).ok_or_else(|| DeskError::Unknown { what: "portfolio", name: account.into() })?;
        Ok(s.positions
            .range((id, 0)..=(id, SymbolId::MAX))
            .filter_map(|(&(_, sym), p)| {
                let inst = s.venue.instrument(sym)?;
                let mark = s.mark(sym);
                let qty = inst.signed_qty_to_decimal(p.qty);
                Some(PositionReport {
                    symbol: inst.symbol.clone(),
                    qty,
                    avg_price: p.avg_price / 10f64.powi(i32::from(inst.price_decimals)),
                    mark: mark.map(|m| inst.price_to_decimal(m)),
                    market_value: mark.map_or(0.0, |m| qty * inst.price_to_decimal(m)),
                    realized_pnl: inst.value_to_currency(p.realized),
                    unrealized_pnl: mark.map_or(0.0, |m| inst.value_to_currency(p.unrealized(m))),
                })
            })
            .collect())
    }

    /// An account's open orders.
    ///
    /// # Errors
    /// Unknown account.
    pub fn open_orders(&self, account: &str) -> Result<Vec<OrderReport>, DeskError> {
        let s = self.state.lock();
        let &(id, _) =
            s.accounts.get(account).ok_or_else(|| DeskError::Unknown { what: "portfolio", name: account.into() })?;
        let mut ids: Vec<OrderId> =
            s.orders.iter().filter(|(_, o)| o.order.account == id && !o.status.is_done()).map(|(k, _)| *k).collect();
        ids.sort_unstable();
        Ok(ids.into_iter().filter_map(|i| s.report(i, false)).collect())
    }

    /// Turn the kill switch of an account (or, with `None`, of everyone) on or off.
    ///
    /// # Errors
    /// Unknown account.
    pub fn kill_switch(&self, account: Option<&str>, on: bool) -> Result<(), DeskError> {
        let mut s = self.state.lock();
        let scope = match account {
            None => Scope::Global,
            Some(a) => Scope::Account(
                s.accounts.get(a).ok_or_else(|| DeskError::Unknown { what: "account", name: a.into() })?.0,
            ),
        };
        s.risk.set_kill_switch(scope, on).map_err(|e| DeskError::Config(e.to_string()))
    }

    /// The compliance report over `[from, to)` (ns since the epoch), with
    /// account and symbol names.
    #[must_use]
    pub fn compliance(&self, from_ns: u64, to_ns: u64) -> (surveillance::ComplianceReport, BTreeMap<u32, String>) {
        let s = self.state.lock();
        let mut names: BTreeMap<u32, String> = s.account_names.iter().map(|(k, v)| (*k, v.clone())).collect();
        for b in s.venue.books() {
            names.insert(b.symbol(), b.instrument().symbol.clone());
        }
        (s.surveillance.report(from_ns, to_ns), names)
    }

    /// Whether a symbol name is listed, and its id.
    #[must_use]
    pub fn symbol_id(&self, symbol: &str) -> Option<SymbolId> {
        self.state.lock().venue.symbol(symbol)
    }
}

fn unknown_order(order: &OrderRef) -> DeskError {
    let name = match order {
        OrderRef::Id(i) => i.to_string(),
        OrderRef::Client(c) => c.clone(),
    };
    DeskError::Unknown { what: "order", name }
}

/// Where the writer appends.
enum Sink {
    File(Journal),
    /// Cluster mode: the venue's shared journal; `next` is the next record's number.
    Shared {
        venue: Arc<SharedVenue>,
        next: u64,
        member: Arc<Member>,
        rt: Arc<tokio::runtime::Runtime>,
    },
}

struct Writer {
    state: Arc<Mutex<State>>,
    sink: Sink,
    changed: tokio::sync::broadcast::Sender<String>,
    max_batch: usize,
    /// A batch's journal commands and answers (kept to reuse their memory).
    commands: Vec<Command>,
    replies: Vec<(Result<OrderReport, DeskError>, Reply)>,
}

/// Why the writer returned.
enum Exit {
    Stop,
    /// Cluster mode: an append failed; the lock is gone and the state may
    /// hold commands the journal does not.
    Lost,
}

/// What a batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    /// Ready for the next.
    Going,
    /// It held a [`Job::Stop`].
    Stop,
    /// Cluster mode: the shared journal failed (see [`Exit::Lost`]).
    Lost,
}

impl Writer {
    fn new(
        state: Arc<Mutex<State>>,
        sink: Sink,
        changed: tokio::sync::broadcast::Sender<String>,
        max_batch: usize,
    ) -> Self {
        Self { state, sink, changed, max_batch: max_batch.max(1), commands: Vec::new(), replies: Vec::new() }
    }

    fn append(&mut self, now: u64) -> Result<(), DeskError> {
        let commands = &self.commands;
        match &mut self.sink {
            Sink::File(j) => j.append_batch_at(commands, now).map(|_| ()).map_err(DeskError::from),
            Sink::Shared { venue, next, member, rt } => {
                rt.block_on(venue.append(*next, now, commands))?;
                *next += commands.len() as u64;
                member.applied.send_replace(*next - 1);
                Ok(())
            }
        }
    }

    /// The writer thread's loop: batches of what is queued, until a
    /// [`Job::Stop`] (or, in cluster mode, a failed append).
    fn run(&mut self, queue: &mpsc::Receiver<Job>) -> Exit {
        let mut jobs = Vec::with_capacity(self.max_batch);
        loop {
            let Ok(first) = queue.recv() else { return Exit::Stop };
            jobs.push(first);
            while jobs.len() < self.max_batch {
                match queue.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            match self.run_batch(&mut jobs) {
                Batch::Going => {}
                Batch::Stop => return Exit::Stop,
                Batch::Lost => return Exit::Lost,
            }
        }
    }

    /// Handle `jobs` (drained) as one batch: each request in turn in
    /// memory under the state's lock, one journal append for them all, then
    /// the answers (after the lock is released).
    fn run_batch(&mut self, jobs: &mut Vec<Job>) -> Batch {
        let shared = matches!(self.sink, Sink::Shared { .. });
        let mut stop = false;
        let mut touched = Vec::new();
        let state = Arc::clone(&self.state);
        let mut s = state.lock();
        let now = now_ns();
        for job in jobs.drain(..) {
            let before = self.commands.len();
            let (result, reply) = match job {
                Job::Place(req, reply) => (s.place(&req, now, &mut self.commands), reply),
                Job::Cancel(account, order, reply) => (s.cancel(&account, &order, now, &mut self.commands), reply),
                Job::Tail => continue,
                Job::Stop => {
                    stop = true;
                    s.stopped = true;
                    continue;
                }
            };
            for c in &self.commands[before..] {
                if let Command::New(o) = c {
                    touched.push(o.symbol);
                } else if let Command::Cancel(c) = c {
                    touched.push(c.symbol);
                }
            }
            self.replies.push((result, reply));
        }
        #[cfg(test)]
        let injected = std::mem::take(&mut s.fail_next_append);
        #[cfg(not(test))]
        let injected = false;
        let written = if self.commands.is_empty() {
            Ok(())
        } else if injected {
            let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device (a test)");
            Err(DeskError::Journal(JournalError::Io(full)))
        } else {
            self.append(now)
        };
        let lost = shared && written.is_err();
        if let Err(e) = &written {
            if shared {
                tracing::error!(error = %e, "the shared trading journal failed: this node gives up the venue");
            } else {
                tracing::error!(error = %e, "the trading journal failed: the desk stops accepting orders");
                s.stopped = true;
            }
        }
        let names = symbol_names(&s, &mut touched);
        drop(s);
        self.commands.clear();
        for (result, reply) in self.replies.drain(..) {
            let answer = match (&written, lost) {
                (Ok(()), _) => result,
                (Err(_), true) => Err(DeskError::Unsettled),
                (Err(_), false) => Err(DeskError::Stopped),
            };
            let _ = reply.send(answer);
        }
        for n in names {
            let _ = self.changed.send(n);
        }
        if lost {
            Batch::Lost
        } else if stop {
            Batch::Stop
        } else {
            Batch::Going
        }
    }
}

/// The most batches one caller runs for others before it hands the rest to
/// a task of its own and returns to its own answer.
const COMBINE_ROUNDS: usize = 32;

/// Flat combining, for [`Sync::Os`] (where an append is one `write(2)`, a
/// few microseconds): there is no writer thread. A caller queues its
/// request and, if no other caller is writing, becomes the writer: it
/// takes what is queued (its own request and any that arrived meanwhile)
/// and runs it as one batch, again while more is queued. A caller that
/// finds another one writing leaves its request to it. Either way the
/// answer is usually there before the caller first waits for it, so an
/// order costs no thread hand-off. (With [`Sync::Always`] an append waits
/// for the disk, which must not happen on the async runtime's threads:
/// that mode keeps its thread.)
///
/// No request is left behind: a caller queues before it tries the writer's
/// lock, and a writer looks at the queue again after it lets go of the
/// lock, so either the caller gets the lock or the writer sees the request.
struct Combiner {
    queue: Mutex<Queue>,
    /// `None` once closed (the journal is closed and unlocked).
    writer: Mutex<Option<Writer>>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

fn refuse(job: Job) {
    if let Job::Place(_, reply) | Job::Cancel(_, _, reply) = job {
        let _ = reply.send(Err(DeskError::Stopped));
    }
}

impl Combiner {
    fn new(writer: Writer) -> Self {
        Self { queue: Mutex::new(Queue::default()), writer: Mutex::new(Some(writer)) }
    }

    fn submit(self: &Arc<Self>, job: Job) {
        {
            let mut q = self.queue.lock();
            if q.closed {
                drop(q);
                refuse(job);
                return;
            }
            q.jobs.push_back(job);
        }
        self.drain();
    }

    /// Run what is queued unless another caller is writing.
    fn drain(self: &Arc<Self>) {
        let mut jobs = Vec::new();
        loop {
            let Some(mut guard) = self.writer.try_lock() else { return };
            let Some(writer) = guard.as_mut() else {
                drop(guard);
                let left: Vec<Job> = self.queue.lock().jobs.drain(..).collect();
                left.into_iter().for_each(refuse);
                return;
            };
            let max = writer.max_batch;
            for _ in 0..COMBINE_ROUNDS {
                {
                    let mut q = self.queue.lock();
                    let n = q.jobs.len().min(max);
                    jobs.extend(q.jobs.drain(..n));
                }
                if jobs.is_empty() {
                    break;
                }
                // A panic must not leave callers waiting on a writer that
                // is gone: stop the desk as a journal failure does.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.run_batch(&mut jobs)));
                if ran.is_err() {
                    tracing::error!("the trading desk's writer panicked: the desk stops accepting orders");
                    writer.state.lock().stopped = true;
                    *guard = None;
                    jobs.clear();
                    self.queue.lock().closed = true;
                    break;
                }
            }
            drop(guard);
            if self.queue.lock().jobs.is_empty() {
                return;
            }
            // More is queued (its rounds ran out, or a request arrived as it
            // let go): this caller hands it to a task of its own and returns
            // to its own answer (outside a runtime, it keeps going).
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let me = Arc::clone(self);
                rt.spawn(async move { me.drain() });
                return;
            }
        }
    }

    /// Answer what is queued, then close the journal; later requests are
    /// refused with [`DeskError::Stopped`].
    fn close(&self) {
        self.queue.lock().closed = true;
        let mut guard = self.writer.lock();
        let mut jobs: Vec<Job> = self.queue.lock().jobs.drain(..).collect();
        if let Some(writer) = guard.as_mut() {
            jobs.push(Job::Stop);
            let _ = writer.run_batch(&mut jobs);
        }
        *guard = None;
        drop(guard);
        jobs.into_iter().for_each(refuse);
    }
}

fn symbol_names(s: &State, touched: &mut Vec<SymbolId>) -> Vec<String> {
    touched.sort_unstable();
    touched.dedup();
    touched.iter().filter_map(|t| s.venue.instrument(*t).map(|i| i.symbol.clone())).collect()
}

/// The member thread's own connections to the shared venue (retried until
/// they open, or the desk closes).
fn connect_member(
    venue: &SharedVenue,
    queue: &mpsc::Receiver<Job>,
    rt: &tokio::runtime::Runtime,
) -> Option<Arc<SharedVenue>> {
    loop {
        match rt.block_on(venue.another()) {
            Ok(v) => return Some(Arc::new(v)),
            Err(e) => tracing::warn!(error = %e, "the trading desk cannot connect to the shared venue; retrying"),
        }
        match queue.recv_timeout(Duration::from_secs(1)) {
            Ok(Job::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            Ok(Job::Place(_, reply) | Job::Cancel(_, _, reply)) => {
                let _ = reply.send(Err(DeskError::NotLeader));
            }
            Ok(Job::Tail) | Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Cluster mode's member thread: follow the shared journal, take the lead
/// when the lock is free, write while leading.
fn run_member(mut writer: Writer, queue: &mpsc::Receiver<Job>, config: &DeskConfig, rt: &tokio::runtime::Runtime) {
    let Sink::Shared { venue, member, .. } = &writer.sink else { return };
    let (venue, member) = (Arc::clone(venue), Arc::clone(member));
    let mut quiet_until = std::time::Instant::now();
    loop {
        match rt.block_on(venue.try_lead()) {
            Ok(true) => match take_lead(&mut writer, &venue, &member, config, rt) {
                Ok(()) => {
                    tracing::info!(node = %venue.node(), "this node leads the trading venue");
                    member.leader.store(true, Ordering::Release);
                    let exit = writer.run(queue);
                    member.leader.store(false, Ordering::Release);
                    rt.block_on(venue.resign());
                    if matches!(exit, Exit::Stop) {
                        return;
                    }
                    // The state may hold commands the journal does not: rebuild it.
                    if let Err(e) = rebuild(&writer, &venue, &member, config, rt) {
                        tracing::error!(error = %e, "the trading desk cannot rebuild from the shared journal");
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "this node won the trading venue's lock but cannot take the lead");
                    rt.block_on(venue.resign());
                }
            },
            Ok(false) => {}
            Err(e) if std::time::Instant::now() >= quiet_until => {
                tracing::warn!(error = %e, "the trading venue's lock cannot be tried");
                quiet_until = std::time::Instant::now() + Duration::from_secs(10);
            }
            Err(_) => {}
        }
        // Follow: apply what the leader wrote (read first, then lock, so
        // readers never wait on the database).
        let after = *member.applied.borrow();
        match rt.block_on(venue.read_after(after, PAGE)) {
            Ok(records) if !records.is_empty() => {
                let mut got = CaughtUp { last: after, touched: Vec::new(), listed: false };
                let mut s = writer.state.lock();
                got.apply(&mut s, &records);
                if got.listed {
                    let _ = s.settle(config, false);
                }
                let names = symbol_names(&s, &mut got.touched);
                drop(s);
                member.applied.send_replace(got.last);
                for n in names {
                    let _ = writer.changed.send(n);
                }
                if records.len() == PAGE as usize {
                    continue; // more to read
                }
            }
            Ok(_) => {}
            Err(e) => {
                if std::time::Instant::now() >= quiet_until {
                    tracing::warn!(error = %e, "the shared trading journal cannot be read");
                    quiet_until = std::time::Instant::now() + Duration::from_secs(10);
                }
            }
        }
        match queue.recv_timeout(crate::cluster::TICK) {
            Ok(Job::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                writer.state.lock().stopped = true;
                return;
            }
            Ok(Job::Place(_, reply) | Job::Cancel(_, _, reply)) => {
                let _ = reply.send(Err(DeskError::NotLeader));
            }
            Ok(Job::Tail) | Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Having won the lock: read the journal to its end, list what the
/// configuration adds, and aim the writer at the next record.
fn take_lead(
    writer: &mut Writer,
    venue: &SharedVenue,
    member: &Member,
    config: &DeskConfig,
    rt: &tokio::runtime::Runtime,
) -> Result<(), DeskError> {
    let after = *member.applied.borrow();
    let mut s = writer.state.lock();
    let got = rt.block_on(catch_up(&mut s, venue, after))?;
    s.stopped = false;
    let listed = s.list(config)?;
    let mut last = got.last;
    if !listed.is_empty() {
        rt.block_on(venue.append(last + 1, now_ns(), &listed))?;
        last += listed.len() as u64;
    }
    s.settle(config, false)?;
    drop(s);
    member.applied.send_replace(last);
    if let Sink::Shared { next, .. } = &mut writer.sink {
        *next = last + 1;
    }
    Ok(())
}

/// Rebuild the state from the whole shared journal.
fn rebuild(
    writer: &Writer,
    venue: &SharedVenue,
    member: &Member,
    config: &DeskConfig,
    rt: &tokio::runtime::Runtime,
) -> Result<(), DeskError> {
    let mut fresh = State::fresh(config)?;
    let got = rt.block_on(catch_up(&mut fresh, venue, 0))?;
    fresh.settle(config, false)?;
    *writer.state.lock() = fresh;
    member.applied.send_replace(got.last);
    Ok(())
}

impl State {
    /// A state with the configuration's accounts and limits and nothing traded.
    fn fresh(config: &DeskConfig) -> Result<Self, DeskError> {
        let mut risk = PreTradeRisk::new(config.pretrade);
        for (role, limits) in &config.roles {
            risk.set_role_limits(role, *limits);
        }
        let mut accounts = BTreeMap::new();
        let mut account_names = HashMap::new();
        let mut owners: HashMap<u32, &str> = HashMap::new();
        for a in &config.accounts {
            let id = name_id(&a.name);
            if let Some(other) = account_names.insert(id, a.name.clone()) {
                return Err(DeskError::Config(format!("accounts `{other}` and `{}` have the same id", a.name)));
            }
            let owner = name_id(&a.owner);
            if let Some(other) = owners.insert(owner, &a.owner)
                && other != a.owner
            {
                return Err(DeskError::Config(format!("owners `{other}` and `{}` have the same id", a.owner)));
            }
            risk.set_account_role(id, &a.role).map_err(|e| DeskError::Config(format!("account `{}`: {e}", a.name)))?;
            risk.set_account_overrides(id, a.overrides).map_err(|e| DeskError::Config(e.to_string()))?;
            accounts.insert(a.name.clone(), (id, owner));
        }
        Ok(State {
            venue: Venue::new(),
            risk,
            surveillance: Surveillance::new(config.surveillance),
            accounts,
            account_names,
            orders: HashMap::new(),
            client_ids: HashMap::new(),
            positions: BTreeMap::new(),
            market: HashMap::new(),
            pending_client_id: None,
            stopped: false,
            events: Vec::new(),
            #[cfg(test)]
            fail_next_append: false,
        })
    }

    /// List (apply) the configured instruments the venue does not hold yet;
    /// the commands to journal.
    fn list(&mut self, config: &DeskConfig) -> Result<Vec<Command>, DeskError> {
        let mut listed = Vec::new();
        for l in &config.instruments {
            if self.venue.symbol(&l.instrument.symbol).is_none() {
                let cmd = Command::AddInstrument(l.instrument.clone());
                self.venue
                    .check(&cmd)
                    .map_err(|e| DeskError::Config(format!("instrument `{}`: {}", l.instrument.symbol, e.as_str())))?;
                let _ = self.apply(&cmd, now_ns(), None);
                listed.push(cmd);
            }
        }
        Ok(listed)
    }

    /// Reference prices and the restricted list for the instruments the
    /// venue holds. `strict`: a restricted symbol must be listed.
    fn settle(&mut self, config: &DeskConfig, strict: bool) -> Result<(), DeskError> {
        for l in &config.instruments {
            if let Some(sym) = self.venue.symbol(&l.instrument.symbol)
                && self.risk.reference_price(sym).is_none()
            {
                let _ = self.risk.set_reference_price(sym, l.reference);
            }
        }
        for s in &config.restricted {
            match self.venue.symbol(s) {
                Some(sym) => {
                    let _ = self.risk.set_restricted(Scope::Global, sym, true);
                }
                None if strict => return Err(DeskError::Unknown { what: "symbol", name: s.clone() }),
                None => {}
            }
        }
        Ok(())
    }

    /// Apply a command that the venue accepts, updating everything else from its events.
    fn apply(&mut self, cmd: &Command, ts_ns: u64, metrics: Option<&RiskMetrics>) -> bool {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let accepted = self.venue.apply(cmd, &mut events).is_ok();
        if accepted {
            if let Command::ClientOrderId(c) = cmd {
                self.pending_client_id = Some(c.clone());
            }
            if let Command::Refused(r) = cmd {
                self.surveillance.record(surveillance::Event::Rejected(surveillance::OrderRejected {
                    ts_ns,
                    order_id: None,
                    account: r.account,
                    symbol: r.symbol,
                    side: r.side,
                    qty: 0,
                    price: None,
                    reason: r.reason.clone(),
                }));
            }
            for e in &events {
                self.on_event(e, ts_ns, metrics);
            }
        }
        self.events = events;
        accepted
    }

    fn intent(o: &NewOrder, ts_ns: u64) -> OrderIntent {
        OrderIntent {
            account: o.account,
            symbol: o.symbol,
            side: o.side,
            qty: o.qty,
            limit_price: (o.order_type == OrderType::Limit).then_some(o.price),
            ts_ns,
        }
    }

    fn on_event(&mut self, e: &Event, ts_ns: u64, metrics: Option<&RiskMetrics>) {
        match *e {
            Event::InstrumentAdded { symbol } => {
                if let Some(i) = self.venue.instrument(symbol).cloned() {
                    self.risk.add_instrument(symbol, &i);
                }
            }
            Event::Accepted(o) => {
                let intent = Self::intent(&o, ts_ns);
                let _ = match metrics {
                    Some(m) => self.risk.on_accepted(o.id, &intent, m),
                    None => self.risk.restore_accepted(o.id, &intent),
                };
                let client_order_id = match self.pending_client_id.take() {
                    Some(c) if c.order_id == o.id => {
                        self.client_ids.insert((o.account, c.client_order_id.clone()), o.id);
                        Some(c.client_order_id)
                    }
                    _ => None,
                };
                self.surveillance.record(surveillance::Event::Placed(surveillance::OrderPlaced {
                    ts_ns,
                    order_id: o.id,
                    account: o.account,
                    symbol: o.symbol,
                    side: o.side,
                    qty: o.qty,
                    price: intent.limit_price,
                }));
                let risk = metrics.and_then(|m| self.risk_used(o.symbol, m));
                self.orders.insert(
                    o.id,
                    OrderRecord {
                        order: o,
                        client_order_id,
                        filled: 0,
                        canceled: 0,
                        value: 0.0,
                        status: OrderStatus::New,
                        cancel_reason: None,
                        fills: Vec::new(),
                        risk,
                        ts_ns,
                    },
                );
            }
            Event::Trade(t) => {
                let inst = self.venue.instrument(t.symbol).cloned();
                for (id, account, liquidity) in
                    [(t.maker_id, t.maker_account, "maker"), (t.taker_id, t.taker_account, "taker")]
                {
                    let _ = self.risk.on_fill(id, t.qty, t.price);
                    let side = if id == t.maker_id { t.aggressor.opposite() } else { t.aggressor };
                    self.positions.entry((account, t.symbol)).or_default().apply_fill(side, t.qty, t.price);
                    if let (Some(o), Some(inst)) = (self.orders.get_mut(&id), &inst) {
                        o.filled += t.qty;
                        #[allow(clippy::cast_precision_loss)]
                        {
                            o.value += t.qty as f64 * t.price as f64;
                        }
                        o.status = if o.filled + o.canceled >= o.order.qty {
                            OrderStatus::Filled
                        } else {
                            OrderStatus::PartiallyFilled
                        };
                        o.fills.push(Fill {
                            trade_id: t.trade_id,
                            price: inst.price_to_decimal(t.price),
                            qty: inst.qty_to_decimal(t.qty),
                            liquidity,
                            ts_ns,
                        });
                    }
                }
                let (buy, sell) =
                    if t.aggressor == Side::Buy { (t.taker_id, t.maker_id) } else { (t.maker_id, t.taker_id) };
                let (buy_account, sell_account, buy_owner, sell_owner) = if t.aggressor == Side::Buy {
                    (t.taker_account, t.maker_account, t.taker_owner, t.maker_owner)
                } else {
                    (t.maker_account, t.taker_account, t.maker_owner, t.taker_owner)
                };
                self.surveillance.record(surveillance::Event::Trade(surveillance::Trade {
                    ts_ns,
                    symbol: t.symbol,
                    price: t.price,
                    qty: t.qty,
                    buy_order: buy,
                    sell_order: sell,
                    buy_account,
                    sell_account,
                    buy_owner,
                    sell_owner,
                }));
                let _ = self.risk.set_reference_price(t.symbol, Some(t.price));
                let m = self.market.entry(t.symbol).or_default();
                m.last = Some(t.price);
                if let Some(inst) = &inst {
                    if m.trades.len() == TRADE_RING {
                        m.trades.pop_front();
                    }
                    m.trades.push_back(TradeTick {
                        trade_id: t.trade_id,
                        ts_ns,
                        price: inst.price_to_decimal(t.price),
                        qty: inst.qty_to_decimal(t.qty),
                        aggressor: t.aggressor,
                    });
                }
            }
            Event::Filled { id, .. } => {
                if let Some(o) = self.orders.get_mut(&id) {
                    o.status = OrderStatus::Filled;
                }
            }
            Event::Reduced { id, by, .. } => {
                if let Some(o) = self.orders.get_mut(&id) {
                    o.canceled += by;
                }
            }
            Event::Canceled { id, canceled, reason, .. } => {
                let _ = self.risk.on_cancel(id);
                if let Some(o) = self.orders.get_mut(&id) {
                    o.canceled += canceled;
                    o.status = OrderStatus::Canceled;
                    o.cancel_reason = Some(reason);
                    self.surveillance.record(surveillance::Event::Canceled(surveillance::OrderCanceled {
                        ts_ns,
                        order_id: id,
                        account: o.order.account,
                        symbol: o.order.symbol,
                        canceled_qty: canceled,
                    }));
                }
            }
            Event::Level { symbol, side, price, qty, orders } => {
                let m = self.market.entry(symbol).or_default();
                m.book_seq += 1;
                if m.deltas.len() == DELTA_RING {
                    m.deltas.pop_front();
                }
                m.deltas.push_back((m.book_seq, side, price, qty, orders));
            }
            _ => {}
        }
    }

    fn book_deltas(&self, symbol: &str, after: u64) -> Option<BookDeltas> {
        let sym = self.venue.symbol(symbol)?;
        let inst = self.venue.instrument(sym)?;
        let data = self.market.get(&sym);
        let sequence = data.map_or(0, |d| d.book_seq);
        let oldest = data.and_then(|d| d.deltas.front()).map_or(sequence + 1, |d| d.0);
        let deltas = data
            .map(|d| {
                d.deltas
                    .iter()
                    .filter(|d| d.0 > after)
                    .map(|&(sequence, side, price, qty, orders)| LevelDelta {
                        sequence,
                        side,
                        price: inst.price_to_decimal(price),
                        qty: inst.qty_to_decimal(qty),
                        orders,
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Complete when every change after `after` is still in the ring.
        Some(BookDeltas { symbol: inst.symbol.clone(), sequence, complete: after + 1 >= oldest, deltas })
    }

    fn risk_used(&self, symbol: SymbolId, m: &RiskMetrics) -> Option<RiskUsed> {
        let inst = self.venue.instrument(symbol)?;
        let qty = |q: Qty| (q != Qty::MAX).then(|| inst.qty_to_decimal(q));
        let money = |n: pretrade::Notional| (n != pretrade::Notional::MAX).then(|| pretrade::notional_to_f64(n));
        Some(RiskUsed {
            notional: pretrade::notional_to_f64(m.notional),
            price_used: inst.price_to_decimal(m.price_used),
            reference_price: m.reference_price.map(|p| inst.price_to_decimal(p)),
            collar: m.collar.map(|(lo, hi)| (inst.price_to_decimal(lo), inst.price_to_decimal(hi))),
            position: inst.signed_qty_to_decimal(m.position),
            projected_position: inst.signed_qty_to_decimal(m.projected_position),
            position_limit: qty(m.position_limit),
            credit_used: pretrade::notional_to_f64(m.credit_used),
            credit_limit: money(m.credit_limit),
            max_order_qty: qty(m.limits.max_order_qty),
            max_order_notional: money(m.limits.max_order_notional),
        })
    }

    fn mark(&self, sym: SymbolId) -> Option<Price> {
        self.market.get(&sym).and_then(|m| m.last).or_else(|| self.risk.reference_price(sym))
    }

    fn resolve(&self, account: &str, order: &OrderRef) -> Result<OrderId, DeskError> {
        let &(acc, _) =
            self.accounts.get(account).ok_or_else(|| DeskError::Unknown { what: "account", name: account.into() })?;
        let id = match order {
            OrderRef::Id(id) => *id,
            OrderRef::Client(c) => *self.client_ids.get(&(acc, c.clone())).ok_or_else(|| unknown_order(order))?,
        };
        // Another account's order is unknown, exactly like a missing one.
        match self.orders.get(&id) {
            Some(o) if o.order.account == acc => Ok(id),
            _ => Err(unknown_order(order)),
        }
    }

    fn report(&self, id: OrderId, repeated: bool) -> Option<OrderReport> {
        let o = self.orders.get(&id)?;
        let inst = self.venue.instrument(o.order.symbol)?;
        let status = match o.status {
            OrderStatus::New => Status::New,
            OrderStatus::PartiallyFilled => Status::PartiallyFilled,
            OrderStatus::Filled => Status::Filled,
            OrderStatus::Canceled => Status::Canceled,
        };
        #[allow(clippy::cast_precision_loss)]
        let avg = (o.filled > 0).then(|| o.value / o.filled as f64 / 10f64.powi(i32::from(inst.price_decimals)));
        Some(OrderReport {
            order_id: Some(id),
            client_order_id: o.client_order_id.clone(),
            account: self.account_names.get(&o.order.account).cloned().unwrap_or_default(),
            symbol: inst.symbol.clone(),
            side: o.order.side,
            order_type: o.order.order_type,
            tif: o.order.tif,
            price: (o.order.order_type == OrderType::Limit).then(|| inst.price_to_decimal(o.order.price)),
            qty: inst.qty_to_decimal(o.order.qty),
            status,
            executed_qty: inst.qty_to_decimal(o.filled),
            remaining_qty: inst.qty_to_decimal(o.order.qty.saturating_sub(o.filled + o.canceled)),
            avg_price: avg,
            reason: o
                .cancel_reason
                .map(|r| (r.as_str().to_owned(), format!("canceled: {}", r.as_str().replace('_', " ")))),
            fills: o.fills.clone(),
            risk: o.risk.clone(),
            repeated,
            ts_ns: o.ts_ns,
        })
    }

    fn rejected(req: &OrderRequest, code: &str, message: String, ts_ns: u64) -> OrderReport {
        OrderReport {
            order_id: None,
            client_order_id: req.client_order_id.clone(),
            account: req.account.clone(),
            symbol: req.symbol.clone(),
            side: req.side,
            order_type: req.order_type,
            tif: req.tif,
            price: req.price,
            qty: req.qty,
            status: Status::Rejected,
            executed_qty: 0.0,
            remaining_qty: 0.0,
            avg_price: None,
            reason: Some((code.to_owned(), message)),
            fills: Vec::new(),
            risk: None,
            repeated: false,
            ts_ns,
        }
    }

    /// Record a refusal for compliance (journaled, so reports of refusals
    /// survive a restart), then report it.
    fn refuse(
        &mut self,
        req: &OrderRequest,
        ids: Option<(AccountId, SymbolId)>,
        code: &str,
        message: String,
        ts: u64,
        out: &mut Vec<Command>,
    ) -> OrderReport {
        if let Some((account, symbol)) = ids {
            let note = Command::Refused(Refused { account, symbol, side: req.side, reason: code.to_owned() });
            if self.apply(&note, ts, None) {
                out.push(note);
            }
        }
        Self::rejected(req, code, message, ts)
    }

    fn place(&mut self, req: &OrderRequest, ts: u64, out: &mut Vec<Command>) -> Result<OrderReport, DeskError> {
        if self.stopped {
            return Err(DeskError::Stopped);
        }
        let Some(&(account, owner)) = self.accounts.get(&req.account) else {
            return Ok(Self::rejected(req, "unknown_account", format!("unknown account `{}`", req.account), ts));
        };
        if let Some(c) = &req.client_order_id {
            if let Some(&id) = self.client_ids.get(&(account, c.clone())) {
                return Ok(self
                    .report(id, true)
                    .unwrap_or_else(|| Self::rejected(req, "unknown_order", String::new(), ts)));
            }
            let check = ClientOrderId { order_id: 0, account, client_order_id: c.clone() };
            if self.venue.check(&Command::ClientOrderId(check)).is_err() {
                return Ok(Self::rejected(
                    req,
                    "invalid_client_order_id",
                    "clientOrderId must be 1 to 64 bytes without control characters".into(),
                    ts,
                ));
            }
        }
        let Some(symbol) = self.venue.symbol(&req.symbol) else {
            return Ok(Self::rejected(req, "unknown_symbol", format!("unknown symbol `{}`", req.symbol), ts));
        };
        let Some(inst) = self.venue.instrument(symbol).cloned() else {
            return Ok(Self::rejected(req, "unknown_symbol", format!("unknown symbol `{}`", req.symbol), ts));
        };
        let ids = Some((account, symbol));
        let qty = match inst.qty_from_decimal(req.qty) {
            Ok(q) => q,
            Err(e) => return Ok(self.refuse(req, ids, unit_code(&e), e.to_string(), ts, out)),
        };
        let price = match (req.order_type, req.price) {
            (OrderType::Limit, Some(p)) => match inst.price_from_decimal(p) {
                Ok(p) => p,
                Err(e) => return Ok(self.refuse(req, ids, unit_code(&e), e.to_string(), ts, out)),
            },
            (OrderType::Limit, None) => {
                return Ok(self.refuse(req, ids, "missing_price", "a limit order needs a price".into(), ts, out));
            }
            (OrderType::Market, Some(_)) => {
                return Ok(self.refuse(req, ids, "invalid_order", "a market order takes no price".into(), ts, out));
            }
            (OrderType::Market, None) => 0,
        };
        let intent = OrderIntent {
            account,
            symbol,
            side: req.side,
            qty,
            limit_price: (req.order_type == OrderType::Limit).then_some(price),
            ts_ns: ts,
        };
        // Risk first.
        let metrics = match self.risk.check(&intent) {
            Ok(m) => m,
            Err(r) => return Ok(self.refuse(req, ids, r.reason.as_str(), r.message, ts, out)),
        };
        // Then compliance: the order-to-trade ratio, counting this order.
        let otr = self.surveillance.check_order_to_trade(account, ts);
        if otr.exceeds {
            let msg = format!(
                "order-to-trade ratio {:.1} ({} orders, {} trades in the window) is above the limit {:.1}",
                otr.ratio, otr.orders, otr.trades, otr.limit
            );
            return Ok(self.refuse(req, ids, "order_to_trade_ratio", msg, ts, out));
        }
        // Then the venue.
        let id = self.venue.next_order_id();
        let mut order = match req.order_type {
            OrderType::Limit => NewOrder::limit(id, symbol, req.side, price, qty),
            OrderType::Market => NewOrder::market(id, symbol, req.side, qty),
        }
        .by(account, owner)
        .tif(req.tif);
        if req.post_only {
            order = order.post_only();
        }
        let cmd = Command::New(order);
        if let Err(r) = self.venue.check(&cmd) {
            return Ok(self.refuse(req, ids, r.as_str(), venue_message(r), ts, out));
        }
        if let Some(c) = &req.client_order_id {
            let note = Command::ClientOrderId(ClientOrderId { order_id: id, account, client_order_id: c.clone() });
            if self.apply(&note, ts, None) {
                out.push(note);
            }
        }
        if self.apply(&cmd, ts, Some(&metrics)) {
            out.push(cmd);
        }
        Ok(self.report(id, false).unwrap_or_else(|| Self::rejected(req, "internal", "the order vanished".into(), ts)))
    }

    fn cancel(
        &mut self,
        account: &str,
        order: &OrderRef,
        ts: u64,
        out: &mut Vec<Command>,
    ) -> Result<OrderReport, DeskError> {
        if self.stopped {
            return Err(DeskError::Stopped);
        }
        let id = self.resolve(account, order)?;
        let symbol = self.orders.get(&id).map(|o| o.order.symbol).ok_or_else(|| unknown_order(order))?;
        let cmd = Command::Cancel(Cancel { symbol, id });
        // A refusal (the order is done already) changes nothing and journals nothing.
        if self.apply(&cmd, ts, None) {
            out.push(cmd);
        }
        // An order already done is reported as it is (cancel is idempotent).
        self.report(id, false).ok_or_else(|| unknown_order(order))
    }

    fn market(&self, symbol: &str, depth: usize, trades: usize) -> Option<MarketSnapshot> {
        let sym = self.venue.symbol(symbol)?;
        let inst = self.venue.instrument(sym)?;
        let book = self.venue.book(sym)?;
        let px = |p: Price| inst.price_to_decimal(p);
        let q = |x: Qty| inst.qty_to_decimal(x);
        let level = |l: &crate::engine::DepthLevel| (px(l.price), q(l.qty), l.orders);
        let bids: Vec<_> = book.depth(Side::Buy, depth.max(1)).iter().map(level).collect();
        let asks: Vec<_> = book.depth(Side::Sell, depth.max(1)).iter().map(level).collect();
        let data = self.market.get(&sym);
        let ring: Vec<TradeTick> = data.map(|d| d.trades.iter().rev().copied().collect()).unwrap_or_default();
        let volume: f64 = ring.iter().map(|t| t.qty).sum();
        let value: f64 = ring.iter().map(|t| t.qty * t.price).sum();
        Some(MarketSnapshot {
            symbol: inst.symbol.clone(),
            bid: bids.first().map(|l| (l.0, l.1)),
            ask: asks.first().map(|l| (l.0, l.1)),
            last: data.and_then(|d| d.last).map(px),
            reference: self.risk.reference_price(sym).map(px),
            book_sequence: data.map_or(0, |d| d.book_seq),
            bids: bids.into_iter().take(depth).collect(),
            asks: asks.into_iter().take(depth).collect(),
            high: ring.iter().map(|t| t.price).reduce(f64::max),
            low: ring.iter().map(|t| t.price).reduce(f64::min),
            vwap: (volume > 0.0).then(|| value / volume),
            volume,
            trades: ring.into_iter().take(trades).collect(),
        })
    }
}

fn unit_code(e: &crate::types::UnitError) -> &'static str {
    use crate::types::UnitError as U;
    match e {
        U::NotFinite { .. } => "not_a_number",
        U::NotPositive { what: "price", .. } => "invalid_price",
        U::NotPositive { .. } => "invalid_quantity",
        U::TooLarge { .. } => "too_large",
        U::OffGrid { unit: "tick size", .. } => "off_tick",
        U::OffGrid { .. } => "off_lot",
    }
}

fn venue_message(r: VenueReject) -> String {
    match r {
        VenueReject::PostOnlyWouldCross => "a post-only order would take liquidity".into(),
        VenueReject::FokNotFillable => "a fill-or-kill order cannot be filled in full now".into(),
        VenueReject::PostOnlyRequiresGtcLimit => "post-only needs a good-till-canceled limit order".into(),
        other => format!("the venue refused the order: {}", other.as_str().replace('_', " ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(journal: PathBuf, sync: Sync) -> DeskConfig {
        DeskConfig {
            journal,
            sync,
            instruments: vec![ListedInstrument {
                instrument: Instrument {
                    symbol: "7203.T".into(),
                    price_decimals: 1,
                    qty_decimals: 0,
                    tick: 5,
                    lot: 100,
                },
                reference: Some(30_000),
            }],
            accounts: vec![AccountSpec {
                name: "alpha".into(),
                owner: "fund-a".into(),
                role: "trader".into(),
                overrides: LimitOverrides::default(),
            }],
            roles: vec![("trader".into(), RiskLimits::UNLIMITED)],
            restricted: vec![],
            pretrade: PreTradeConfig { duplicate_window_ns: 0 },
            surveillance: SurveillanceConfig { otr_limit: 1e9, ..SurveillanceConfig::default() },
            max_batch: 64,
        }
    }

    fn bid(price: f64) -> OrderRequest {
        OrderRequest {
            account: "alpha".into(),
            client_order_id: None,
            symbol: "7203.T".into(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            tif: TimeInForce::Gtc,
            price: Some(price),
            qty: 100.0,
            post_only: false,
        }
    }

    /// A journal that fails to write stops the desk, in both modes: the
    /// order it could not journal is refused, so is every later one, and
    /// after a restart the journal holds exactly the orders acknowledged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_journal_append_stops_the_desk_and_acknowledges_nothing_unjournaled() {
        for sync in [Sync::Always, Sync::Os] {
            let dir = std::env::temp_dir().join(format!("plexus-desk-unit-{}-{sync:?}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("trading.journal");
            let desk = Desk::open(config(path.clone(), sync)).unwrap();
            let kept = desk.place(bid(2990.0)).await.unwrap();
            assert_eq!(kept.status, Status::New, "{sync:?}");
            desk.state.lock().fail_next_append = true;
            let lost = desk.place(bid(2985.0)).await;
            assert!(matches!(lost, Err(DeskError::Stopped)), "{sync:?}: {lost:?}");
            let later = desk.place(bid(2980.0)).await;
            assert!(matches!(later, Err(DeskError::Stopped)), "{sync:?}: {later:?}");
            // (The order that could not be journaled stays in memory until
            // the restart the desk now demands; the journal never had it.)
            desk.close();
            let again = Desk::open(config(path, sync)).unwrap();
            let open = again.open_orders("alpha").unwrap();
            assert_eq!(open.iter().map(|o| o.order_id).collect::<Vec<_>>(), vec![kept.order_id], "{sync:?}");
            assert_eq!(again.place(bid(2975.0)).await.unwrap().status, Status::New, "{sync:?}");
            again.close();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
