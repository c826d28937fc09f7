//! Computerized adaptive testing: one examinee's session over an
//! [`ItemBank`].
//!
//! A session starts at the prior (θ̂ = prior mean, SE = prior SD). Each step:
//!
//! 1. [`next_item`] (or [`CatSession::next_item`]) picks the eligible item
//!    with maximum Fisher information at the current θ̂. *Eligible*: not
//!    answered or excluded in this session and, when content targets are
//!    configured, in the content area furthest below its target share
//!    (Kingsbury–Zara: largest `target − answered_in_area / answered`, ties
//!    to the larger target, then to configuration order; areas with no
//!    eligible item left are skipped, and when no targeted area has one the
//!    whole bank is eligible). Exposure control: *randomesque* picks
//!    uniformly among the `k` most informative eligible items; *Sympson–
//!    Hetter* then administers the pick with probability `K` (the item's
//!    [`Item::exposure`](crate::irt::Item::exposure)) and otherwise moves on
//!    to the next pick, reporting the rejected items in
//!    [`Selection::exposure_rejected`] (the classic procedure also blocks
//!    them for the rest of the session: call [`CatSession::exclude`]).
//! 2. [`CatSession::answer`] records the answer, updates the EAP estimate
//!    and its standard error (O(grid nodes), see [`crate::irt::Posterior`]),
//!    and applies the stopping rules in this order: SE ≤ target (after at
//!    least `min_items`), `max_items` answered, bank exhausted.
//!
//! The selection evaluates items in decreasing order of their maximum
//! possible information and stops as soon as no remaining item can beat the
//! `k`-th best so far, so a 10,000-item bank costs far fewer than 10,000
//! information evaluations.

mod rng;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use rng::{RandomSource, SplitMix64};

use crate::irt::{EapGrid, Estimate, IrtError, ItemBank, Posterior};

/// Errors of session configuration, selection and answering.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CatError {
    /// A configuration value that cannot be used.
    #[error("invalid CAT configuration: {0}")]
    InvalidConfig(String),
    /// A content target names an area without items in the bank.
    #[error("content area `{0}` has no items in the bank")]
    UnknownContentArea(String),
    /// The bank differs from the one the session was started with.
    #[error("the item bank is not the one this session was started with")]
    BankMismatch,
    /// The session has met a stopping rule.
    #[error("the session has ended: {0}")]
    Finished(StopReason),
    /// An item index outside the bank.
    #[error("item index {index} is out of range for a bank of {len} items")]
    ItemOutOfRange {
        /// The index.
        index: usize,
        /// The bank's size.
        len: usize,
    },
    /// An item id that is not in the bank.
    #[error("unknown item `{0}`")]
    UnknownItem(String),
    /// The item was already answered in this session.
    #[error("item `{0}` was already answered in this session")]
    AlreadyAnswered(String),
    /// The item was excluded from this session.
    #[error("item `{0}` was excluded from this session")]
    Excluded(String),
    /// An item-level error.
    #[error(transparent)]
    Irt(#[from] IrtError),
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The standard error reached the target.
    SeTarget,
    /// The maximum number of items was answered.
    MaxItems,
    /// No eligible item is left.
    BankExhausted,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::SeTarget => "the standard error reached its target",
            Self::MaxItems => "the maximum number of items was answered",
            Self::BankExhausted => "the item bank is exhausted",
        })
    }
}

/// A content area's target share of the administered items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentTarget {
    /// The content area (an item's `skill`).
    pub area: String,
    /// Its target share; shares are normalized to sum to 1.
    pub proportion: f64,
}

/// Session configuration. Defaults: the default [`EapGrid`] (121 nodes on
/// [−6, 6], N(0, 1) prior), SE target 0.3, 1 to 40 items, pure maximum
/// information (randomesque 1, no Sympson–Hetter), no content targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatConfig {
    /// EAP grid and prior.
    pub grid: EapGrid,
    /// Stop when the EAP standard error is at most this (none: only the item limits stop).
    pub se_target: Option<f64>,
    /// The SE rule applies only after this many answers.
    pub min_items: usize,
    /// Stop after this many answers (≥ 1).
    pub max_items: usize,
    /// Randomesque exposure control: choose uniformly among the `k` most
    /// informative eligible items (1 = pure maximum information).
    pub randomesque: usize,
    /// Sympson–Hetter exposure control with the items' `exposure` parameters.
    pub sympson_hetter: bool,
    /// Content balancing targets (empty: none).
    pub content_targets: Vec<ContentTarget>,
}

impl Default for CatConfig {
    fn default() -> Self {
        Self {
            grid: EapGrid::default(),
            se_target: Some(0.3),
            min_items: 1,
            max_items: 40,
            randomesque: 1,
            sympson_hetter: false,
            content_targets: Vec::new(),
        }
    }
}

/// Upper limit of [`CatConfig::randomesque`].
pub const MAX_RANDOMESQUE: usize = 1000;

/// One answered item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Bank index.
    pub index: usize,
    /// Item id.
    pub item_id: String,
    /// Whether it was answered correctly.
    pub correct: bool,
    /// The estimate after this answer.
    pub estimate: Estimate,
}

/// The item [`next_item`] chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Bank index.
    pub index: usize,
    /// Item id.
    pub item_id: String,
    /// Its information at the current θ̂.
    pub information: f64,
    /// The content area balancing chose (an index into [`ItemBank::areas`]), if any.
    pub content_area: Option<usize>,
    /// Items Sympson–Hetter declined in this selection, in order.
    pub exposure_rejected: Vec<usize>,
}

/// One step of a session's history, as [`SessionRecord`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SessionEvent {
    /// An answer.
    Answer {
        /// Item id.
        item_id: String,
        /// Whether it was correct.
        correct: bool,
    },
    /// An exclusion ([`CatSession::exclude`]).
    Exclude {
        /// Item id.
        item_id: String,
    },
}

/// What a store persists of a session: its configuration, its bank's
/// fingerprint and its history. [`CatSession::restore`] replays it exactly
/// (the same floating-point operations in the same order), so a restored
/// session continues bit for bit as the original would have, whatever the
/// text format does to floats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRecord {
    /// The configuration.
    pub config: CatConfig,
    /// [`ItemBank::fingerprint`] of the session's bank.
    pub bank_fingerprint: u64,
    /// Answers and exclusions in order.
    pub events: Vec<SessionEvent>,
}

/// One examinee's adaptive test: answers, the EAP posterior, the current
/// estimate and whether a stopping rule has been met. Persist it with
/// [`CatSession::record`] and [`CatSession::restore`]; it remembers its
/// bank's fingerprint and refuses any other bank.
#[derive(Debug, Clone, PartialEq)]
pub struct CatSession {
    config: CatConfig,
    bank_fingerprint: u64,
    bank_len: usize,
    /// `(area index, normalized share)`, in configuration order.
    targets: Vec<(usize, f64)>,
    posterior: Posterior,
    estimate: Estimate,
    responses: Vec<Response>,
    events: Vec<SessionEvent>,
    /// Bitset of items answered or excluded.
    used: Vec<u64>,
    used_count: usize,
    excluded: Vec<usize>,
    /// Per bank area: items answered, items answered or excluded.
    area_answered: Vec<usize>,
    area_used: Vec<usize>,
    stop: Option<StopReason>,
}

fn invalid(m: impl Into<String>) -> CatError {
    CatError::InvalidConfig(m.into())
}

impl CatSession {
    /// Validates `config` against `bank` and starts a session at the prior.
    pub fn new(bank: &ItemBank, config: CatConfig) -> Result<Self, CatError> {
        if let Some(t) = config.se_target
            && !(t.is_finite() && t > 0.0)
        {
            return Err(invalid(format!("se_target must be finite and > 0, got {t}")));
        }
        if config.max_items == 0 {
            return Err(invalid("max_items must be at least 1"));
        }
        if config.min_items > config.max_items {
            return Err(invalid(format!(
                "min_items ({}) must not exceed max_items ({})",
                config.min_items, config.max_items
            )));
        }
        if !(1..=MAX_RANDOMESQUE).contains(&config.randomesque) {
            return Err(invalid(format!("randomesque must be in 1..={MAX_RANDOMESQUE}, got {}", config.randomesque)));
        }
        let mut targets = Vec::with_capacity(config.content_targets.len());
        let mut total = 0.0;
        for t in &config.content_targets {
            if !(t.proportion.is_finite() && t.proportion >= 0.0) {
                return Err(invalid(format!(
                    "the proportion of content area `{}` must be finite and ≥ 0, got {}",
                    t.area, t.proportion
                )));
            }
            let area = bank.area_index(&t.area).ok_or_else(|| CatError::UnknownContentArea(t.area.clone()))?;
            if targets.iter().any(|&(a, _)| a == area) {
                return Err(invalid(format!("content area `{}` has two targets", t.area)));
            }
            targets.push((area, t.proportion));
            total += t.proportion;
        }
        if !targets.is_empty() && total <= 0.0 {
            return Err(invalid("content target proportions must not all be 0"));
        }
        for t in &mut targets {
            t.1 /= total;
        }
        let posterior = Posterior::new(&config.grid);
        let estimate = posterior.estimate(&config.grid);
        let areas = bank.areas().len();
        Ok(Self {
            bank_fingerprint: bank.fingerprint(),
            bank_len: bank.len(),
            targets,
            posterior,
            estimate,
            responses: Vec::new(),
            events: Vec::new(),
            used: vec![0; bank.len().div_ceil(64)],
            used_count: 0,
            excluded: Vec::new(),
            area_answered: vec![0; areas],
            area_used: vec![0; areas],
            stop: None,
            config,
        })
    }

    /// The session's history, for persistence.
    pub fn record(&self) -> SessionRecord {
        SessionRecord {
            config: self.config.clone(),
            bank_fingerprint: self.bank_fingerprint,
            events: self.events.clone(),
        }
    }

    /// Rebuilds a session from its record by replaying every event on
    /// `bank`. Refuses another bank ([`CatError::BankMismatch`]), an invalid
    /// configuration, and a history the session would not have accepted
    /// (unknown items, repeats, events after the end).
    pub fn restore(bank: &ItemBank, record: SessionRecord) -> Result<Self, CatError> {
        if record.bank_fingerprint != bank.fingerprint() {
            return Err(CatError::BankMismatch);
        }
        let mut session = Self::new(bank, record.config)?;
        for event in record.events {
            match event {
                SessionEvent::Answer { item_id, correct } => {
                    session.answer_id(bank, &item_id, correct)?;
                }
                SessionEvent::Exclude { item_id } => {
                    let index = bank.index_of(&item_id).ok_or(CatError::UnknownItem(item_id))?;
                    session.exclude(bank, index)?;
                }
            }
        }
        Ok(session)
    }

    /// The configuration.
    pub fn config(&self) -> &CatConfig {
        &self.config
    }

    /// The current EAP estimate (the prior before any answer).
    pub fn estimate(&self) -> Estimate {
        self.estimate
    }

    /// The current θ̂.
    pub fn theta(&self) -> f64 {
        self.estimate.theta
    }

    /// The current standard error.
    pub fn se(&self) -> f64 {
        self.estimate.se
    }

    /// The answers so far, in order.
    pub fn responses(&self) -> &[Response] {
        &self.responses
    }

    /// The items excluded so far, in order.
    pub fn excluded(&self) -> &[usize] {
        &self.excluded
    }

    /// Number of answered items.
    pub fn answered(&self) -> usize {
        self.responses.len()
    }

    /// Why the session ended, or `None` while it continues.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// Whether a stopping rule has been met.
    pub fn is_finished(&self) -> bool {
        self.stop.is_some()
    }

    /// Whether the item at `index` was answered or excluded.
    pub fn is_used(&self, index: usize) -> bool {
        self.used.get(index / 64).is_some_and(|w| w >> (index % 64) & 1 == 1)
    }

    /// Items answered per content area (indexed like [`ItemBank::areas`]).
    pub fn area_counts(&self) -> &[usize] {
        &self.area_answered
    }

    fn check_bank(&self, bank: &ItemBank) -> Result<(), CatError> {
        if bank.fingerprint() != self.bank_fingerprint || bank.len() != self.bank_len {
            return Err(CatError::BankMismatch);
        }
        Ok(())
    }

    /// The next item to administer (see [`next_item`]).
    pub fn next_item(&self, bank: &ItemBank, rng: &mut impl RandomSource) -> Result<Selection, CatError> {
        next_item(bank, self, rng)
    }

    fn check_open(&self, bank: &ItemBank, index: usize) -> Result<(), CatError> {
        self.check_bank(bank)?;
        if let Some(reason) = self.stop {
            return Err(CatError::Finished(reason));
        }
        let item = bank.get(index).ok_or(CatError::ItemOutOfRange { index, len: bank.len() })?;
        if self.is_used(index) {
            return Err(if self.excluded.contains(&index) {
                CatError::Excluded(item.id.clone())
            } else {
                CatError::AlreadyAnswered(item.id.clone())
            });
        }
        Ok(())
    }

    fn mark_used(&mut self, bank: &ItemBank, index: usize) {
        if let Some(w) = self.used.get_mut(index / 64) {
            *w |= 1 << (index % 64);
        }
        self.used_count += 1;
        if let Some(n) = bank.area_of(index).and_then(|a| self.area_used.get_mut(a)) {
            *n += 1;
        }
    }

    fn update_stop(&mut self) {
        let n = self.responses.len();
        self.stop = if n >= self.config.min_items && self.config.se_target.is_some_and(|t| self.estimate.se <= t) {
            Some(StopReason::SeTarget)
        } else if n >= self.config.max_items {
            Some(StopReason::MaxItems)
        } else if self.used_count >= self.bank_len {
            Some(StopReason::BankExhausted)
        } else {
            None
        };
    }

    /// Records the answer to the item at `index` and returns the updated
    /// estimate. Refuses a different bank, an ended session, an unknown
    /// index, and an item already answered or excluded; nothing changes on
    /// error. Any eligible item may be answered, not only the one
    /// [`next_item`] chose.
    pub fn answer(&mut self, bank: &ItemBank, index: usize, correct: bool) -> Result<Estimate, CatError> {
        self.check_open(bank, index)?;
        let item = bank.item(index)?;
        self.posterior.observe(&self.config.grid, item, correct);
        self.estimate = self.posterior.estimate(&self.config.grid);
        self.responses.push(Response { index, item_id: item.id.clone(), correct, estimate: self.estimate });
        self.events.push(SessionEvent::Answer { item_id: item.id.clone(), correct });
        self.mark_used(bank, index);
        if let Some(n) = bank.area_of(index).and_then(|a| self.area_answered.get_mut(a)) {
            *n += 1;
        }
        self.update_stop();
        Ok(self.estimate)
    }

    /// [`CatSession::answer`] by item id.
    pub fn answer_id(&mut self, bank: &ItemBank, id: &str, correct: bool) -> Result<Estimate, CatError> {
        let index = bank.index_of(id).ok_or_else(|| CatError::UnknownItem(id.to_owned()))?;
        self.answer(bank, index, correct)
    }

    /// Removes an item from this session without an answer (e.g. rejected
    /// by Sympson–Hetter, or retired); it will not be selected or accepted.
    /// Ends the session when no item is left.
    pub fn exclude(&mut self, bank: &ItemBank, index: usize) -> Result<(), CatError> {
        self.check_open(bank, index)?;
        self.events.push(SessionEvent::Exclude { item_id: bank.item(index)?.id.clone() });
        self.excluded.push(index);
        self.mark_used(bank, index);
        self.update_stop();
        Ok(())
    }

    /// The content area to select from, or `None` for the whole bank.
    fn choose_area(&self, bank: &ItemBank) -> Option<usize> {
        let n = self.responses.len();
        let mut best: Option<(usize, f64, f64)> = None;
        for &(area, share) in &self.targets {
            let total = bank.area_items(area).len();
            if self.area_used.get(area).copied().unwrap_or(total) >= total {
                continue;
            }
            let done = self.area_answered.get(area).copied().unwrap_or(0);
            let current = if n == 0 { 0.0 } else { done as f64 / n as f64 };
            let deficit = share - current;
            let better = match best {
                None => true,
                Some((_, d, s)) => deficit > d || (deficit == d && share > s),
            };
            if better {
                best = Some((area, deficit, share));
            }
        }
        best.map(|(a, _, _)| a)
    }
}

/// Information of the item with packed parameters `[a, b, c, d]` at `θ`
/// (the same value as [`crate::irt::information`], 2PL fast path).
#[inline]
fn info_at(theta: f64, p: &[f64; 4]) -> f64 {
    let [a, b, c, d] = *p;
    if c == 0.0 && d == 1.0 {
        let x = a * (theta - b);
        let e = (-x.abs()).exp();
        let s = 1.0 / (1.0 + e);
        a * a * e * s * s
    } else {
        crate::irt::information(theta, a, b, c, d)
    }
}

/// Inserts `(info, index)` into `top` (descending, at most `k` long); ties keep the earlier entry first.
#[inline]
fn push_top(top: &mut Vec<(f64, u32)>, k: usize, info: f64, index: u32) {
    if top.len() == k {
        match top.last() {
            Some(&(worst, _)) if info > worst => {
                top.pop();
            }
            _ => return,
        }
    }
    let pos = top.iter().position(|&(v, _)| info > v).unwrap_or(top.len());
    top.insert(pos, (info, index));
}

/// The `k` most informative eligible items of `order` at `θ`, skipping `rejected`.
fn top_k(
    bank: &ItemBank,
    session: &CatSession,
    order: &[u32],
    theta: f64,
    k: usize,
    rejected: &[usize],
    top: &mut Vec<(f64, u32)>,
) {
    top.clear();
    for &i in order {
        let iu = i as usize;
        if top.len() == k && top.last().is_some_and(|&(worst, _)| bank.max_info[iu] <= worst) {
            break; // the rest are sorted by max_info: none can beat the k-th best
        }
        if session.is_used(iu) || rejected.contains(&iu) {
            continue;
        }
        push_top(top, k, info_at(theta, &bank.params[iu]), i);
    }
}

/// Picks the next item for `session` from `bank` (maximum information at
/// the current θ̂ with content balancing and exposure control as
/// configured; see the [module documentation](self)). Draws from `rng` only
/// for randomesque choices among several candidates and Sympson–Hetter
/// trials of items with `exposure < 1`. Does not change the session.
pub fn next_item(bank: &ItemBank, session: &CatSession, rng: &mut impl RandomSource) -> Result<Selection, CatError> {
    session.check_bank(bank)?;
    if let Some(reason) = session.stop {
        return Err(CatError::Finished(reason));
    }
    let theta = session.estimate.theta;
    let area = session.choose_area(bank);
    let order: &[u32] = match area {
        Some(a) => bank.area_order.get(a).map(Vec::as_slice).unwrap_or(&[]),
        None => &bank.order,
    };
    let k = session.config.randomesque.max(1);
    let mut top = Vec::with_capacity(k + 1);
    let mut rejected: Vec<usize> = Vec::new();
    let mut best_rejected: Option<(f64, usize)> = None;
    loop {
        top_k(bank, session, order, theta, k, &rejected, &mut top);
        let (information, index) = if top.is_empty() {
            // Sympson–Hetter declined every eligible item: give the most informative of them.
            match best_rejected {
                Some((info, i)) => {
                    rejected.retain(|&r| r != i);
                    (info, i)
                }
                None => return Err(CatError::Finished(StopReason::BankExhausted)),
            }
        } else {
            let pick = if top.len() == 1 { 0 } else { rng.below(top.len()) };
            let (info, i) = top[pick];
            (info, i as usize)
        };
        let item = bank.item(index)?;
        let accept =
            !session.config.sympson_hetter || item.exposure >= 1.0 || top.is_empty() || rng.next_f64() < item.exposure;
        if accept {
            return Ok(Selection {
                index,
                item_id: item.id.clone(),
                information,
                content_area: area,
                exposure_rejected: rejected,
            });
        }
        if best_rejected.is_none_or(|(v, _)| information > v) {
            best_rejected = Some((information, index));
        }
        rejected.push(index);
    }
}
