//! [`ExperimentLog`]: the durable event store and its in-memory aggregates.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::ExperimentError;
use super::analysis::{ExperimentResults, VariantCounts, analyze};

/// The longest variant name or unit id accepted, in characters.
const MAX_LABEL_CHARS: usize = 256;

/// Exposure or conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The unit saw the variant.
    Exposure,
    /// The unit converted.
    Conversion,
}

/// One thing that happened to one unit in one variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Exposure or conversion.
    pub kind: EventKind,
    /// The variant.
    pub variant: String,
    /// The unit (user, session, device...).
    pub unit: String,
    /// An optional amount (e.g. revenue), summed over counted conversions.
    pub value: Option<f64>,
    /// When it happened.
    pub at: OffsetDateTime,
}

impl Event {
    /// An exposure now.
    pub fn exposure(variant: impl Into<String>, unit: impl Into<String>) -> Self {
        Self::new(EventKind::Exposure, variant.into(), unit.into())
    }

    /// A conversion now.
    pub fn conversion(variant: impl Into<String>, unit: impl Into<String>) -> Self {
        Self::new(EventKind::Conversion, variant.into(), unit.into())
    }

    fn new(kind: EventKind, variant: String, unit: String) -> Self {
        Self { kind, variant, unit, value: None, at: OffsetDateTime::now_utc() }
    }

    /// With a value.
    #[must_use]
    pub fn with_value(mut self, value: f64) -> Self {
        self.value = Some(value);
        self
    }

    /// At another time.
    #[must_use]
    pub fn at(mut self, at: OffsetDateTime) -> Self {
        self.at = at;
        self
    }
}

/// What [`ExperimentLog::record`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored and counted.
    Counted,
    /// Already counted (same unit, variant and kind): nothing stored.
    Duplicate,
    /// Stored and counted, but the unit is now exposed to more than one
    /// variant.
    Contaminated,
}

/// One line of a log file.
#[derive(Serialize, Deserialize)]
struct Line {
    t: String,
    kind: EventKind,
    variant: String,
    unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
}

/// Checks an experiment id: 1 to 64 characters of `A-Z a-z 0-9 _ -`.
pub fn validate_id(id: &str) -> Result<(), ExperimentError> {
    let ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(ExperimentError::InvalidId { id: id.to_owned() }) }
}

fn check_label(what: &str, s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        Err(format!("{what} must not be empty"))
    } else if s.chars().count() > MAX_LABEL_CHARS {
        Err(format!("{what} is longer than {MAX_LABEL_CHARS} characters"))
    } else if s.chars().any(char::is_control) {
        Err(format!("{what} {s:?} contains control characters"))
    } else {
        Ok(())
    }
}

fn validate_event(e: &Event) -> Result<(), ExperimentError> {
    let invalid = |reason| ExperimentError::InvalidEvent { reason };
    check_label("variant", &e.variant).map_err(invalid)?;
    check_label("unit", &e.unit).map_err(invalid)?;
    if e.value.is_some_and(|v| !v.is_finite()) {
        return Err(invalid("value must be a finite number".to_owned()));
    }
    Ok(())
}

#[derive(Default)]
struct VariantAgg {
    exposed: HashSet<String>,
    converted: HashSet<String>,
    value_total: f64,
}

/// The counts of one experiment.
#[derive(Default)]
struct Aggregates {
    variants: BTreeMap<String, VariantAgg>,
    contaminated: HashSet<String>,
    first: Option<OffsetDateTime>,
    last: Option<OffsetDateTime>,
}

impl Aggregates {
    fn classify(&self, experiment: &str, e: &Event) -> Result<Recorded, ExperimentError> {
        let agg = self.variants.get(&e.variant);
        match e.kind {
            EventKind::Exposure => {
                if agg.is_some_and(|a| a.exposed.contains(&e.unit)) {
                    return Ok(Recorded::Duplicate);
                }
                let elsewhere = self.variants.iter().any(|(name, a)| *name != e.variant && a.exposed.contains(&e.unit));
                Ok(if elsewhere { Recorded::Contaminated } else { Recorded::Counted })
            }
            EventKind::Conversion => match agg.filter(|a| a.exposed.contains(&e.unit)) {
                None => Err(ExperimentError::NotExposed {
                    experiment: experiment.to_owned(),
                    variant: e.variant.clone(),
                    unit: e.unit.clone(),
                }),
                Some(a) if a.converted.contains(&e.unit) => Ok(Recorded::Duplicate),
                Some(_) => Ok(Recorded::Counted),
            },
        }
    }

    /// Applies an event [`Self::classify`] accepted.
    fn apply(&mut self, e: Event, outcome: Recorded) {
        if outcome == Recorded::Duplicate {
            return;
        }
        self.first = Some(self.first.map_or(e.at, |t| t.min(e.at)));
        self.last = Some(self.last.map_or(e.at, |t| t.max(e.at)));
        if outcome == Recorded::Contaminated {
            self.contaminated.insert(e.unit.clone());
        }
        let agg = self.variants.entry(e.variant).or_default();
        match e.kind {
            EventKind::Exposure => {
                agg.exposed.insert(e.unit);
            }
            EventKind::Conversion => {
                agg.value_total += e.value.unwrap_or(0.0);
                agg.converted.insert(e.unit);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.variants.is_empty()
    }
}

/// The expected allocation of an experiment.
struct Definition {
    variants: Vec<String>,
    control: String,
    weights: Vec<f64>,
}

#[derive(Default)]
struct State {
    aggregates: Aggregates,
    definition: Option<Definition>,
}

/// The append handle of one log file and its length (to roll back a failed
/// write).
#[derive(Default)]
struct Writer {
    file: Option<File>,
    len: u64,
}

impl Writer {
    /// Appends one line with a single `write_all`; on failure the file is
    /// truncated back to its previous length so no partial line stays.
    fn append(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                self.len = file.metadata()?.len();
                self.file.insert(file)
            }
        };
        if let Err(e) = file.write_all(bytes) {
            let _ = file.set_len(self.len);
            self.file = None;
            return Err(e);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// One experiment: writers queue on `writer` (so a check and the write that
/// follows it are not interleaved with another writer); `state` is held only
/// for short, synchronous reads and updates.
#[derive(Default)]
struct Entry {
    writer: tokio::sync::Mutex<Writer>,
    state: Mutex<State>,
}

/// Experiments' events on disk and their counts in memory. See the
/// [module documentation](super) for the format and the counting rules.
pub struct ExperimentLog {
    dir: PathBuf,
    experiments: RwLock<BTreeMap<String, Arc<Entry>>>,
    /// Cluster mode: the events of every node, in PostgreSQL.
    shared: std::sync::OnceLock<Shared>,
}

/// Cluster mode: every node's events in one PostgreSQL table, inserted one
/// at a time (a transaction-level advisory lock), so that sequence order is
/// commit order and every node counts the same events in the same order.
struct Shared {
    pool: sqlx::PgPool,
    node: String,
    /// The last row counted here; also serializes catching up.
    applied: tokio::sync::Mutex<i64>,
}

const SHARED_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ops_experiment_events (
    seq        BIGSERIAL PRIMARY KEY,
    experiment TEXT NOT NULL,
    line       TEXT NOT NULL,
    node       TEXT NOT NULL
);
";

/// The advisory lock that orders inserts (and the table's creation).
const SHARED_LOCK: i64 = 0x706c_6578_7573_6578; // "plexusex"

fn shared_error(e: impl std::fmt::Display) -> ExperimentError {
    ExperimentError::Io {
        action: "share",
        path: PathBuf::from("ops_experiment_events"),
        source: std::io::Error::other(e.to_string()),
    }
}

impl std::fmt::Debug for ExperimentLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExperimentLog").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl ExperimentLog {
    /// Opens (creating it if needed) the log directory and rebuilds every
    /// experiment's counts from its `<id>.jsonl` file. Reads synchronously:
    /// call it at start-up or on the blocking pool. A torn last line is cut
    /// off with a warning; files whose names are not valid ids are ignored
    /// with a warning.
    pub fn open(dir: PathBuf) -> Result<Self, ExperimentError> {
        std::fs::create_dir_all(&dir).map_err(|source| io("create", &dir, source))?;
        let mut experiments = BTreeMap::new();
        let listing = std::fs::read_dir(&dir).map_err(|source| io("list", &dir, source))?;
        for item in listing {
            let item = item.map_err(|source| io("list", &dir, source))?;
            let path = item.path();
            if path.extension().and_then(|e| e.to_str()) != Some("jsonl") || !path.is_file() {
                continue;
            }
            let Some(id) = path.file_stem().and_then(|s| s.to_str()).filter(|id| validate_id(id).is_ok()) else {
                tracing::warn!(path = %path.display(), "ignoring an experiment log whose name is not a valid id");
                continue;
            };
            let aggregates = load(id, &path)?;
            let entry = Entry { writer: Default::default(), state: Mutex::new(State { aggregates, definition: None }) };
            experiments.insert(id.to_owned(), Arc::new(entry));
        }
        Ok(Self { dir, experiments: RwLock::new(experiments), shared: std::sync::OnceLock::new() })
    }

    /// Cluster mode: count every node's events, kept in the PostgreSQL
    /// database at `url`, instead of this node's files. From now on
    /// [`Self::record`] writes to the database, and every node counts the
    /// same events in the same order (a follower task reads what other nodes
    /// recorded every 100 ms; a node's own event is counted before `record`
    /// returns). This node's files stay as they were.
    ///
    /// # Errors
    /// The database cannot be reached or refuses the table.
    pub async fn share(self: &Arc<Self>, url: &str, node: &str) -> Result<(), ExperimentError> {
        let (pool, _) =
            plexus_store::shared::open_shared(url, 4, SHARED_LOCK, SHARED_SCHEMA).await.map_err(shared_error)?;
        // Counts start over from the shared events.
        for entry in self.experiments.read().values() {
            entry.state.lock().aggregates = Aggregates::default();
        }
        let shared = Shared { pool, node: node.to_owned(), applied: tokio::sync::Mutex::new(0) };
        if self.shared.set(shared).is_err() {
            return Err(shared_error("the experiment log is shared already"));
        }
        self.catch_up().await?;
        let log = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut quiet_until = std::time::Instant::now();
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let Some(log) = log.upgrade() else { return };
                if let Err(e) = log.catch_up().await
                    && std::time::Instant::now() >= quiet_until
                {
                    tracing::warn!(error = %e, "the cluster's experiment events cannot be read");
                    quiet_until = std::time::Instant::now() + std::time::Duration::from_secs(10);
                }
            }
        });
        Ok(())
    }

    /// Count the shared events not counted here yet.
    async fn catch_up(&self) -> Result<(), ExperimentError> {
        let Some(shared) = self.shared.get() else { return Ok(()) };
        let mut applied = shared.applied.lock().await;
        loop {
            let rows: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT seq, experiment, line FROM ops_experiment_events WHERE seq > $1 ORDER BY seq LIMIT 5000",
            )
            .bind(*applied)
            .fetch_all(&shared.pool)
            .await
            .map_err(shared_error)?;
            let Some(&(last, ..)) = rows.last() else { return Ok(()) };
            for (seq, id, line) in rows {
                match parse_line(line.as_bytes()) {
                    Ok(event) => {
                        let entry = self.entry_or_insert(&id);
                        let mut state = entry.state.lock();
                        match state.aggregates.classify(&id, &event) {
                            Ok(outcome) => state.aggregates.apply(event, outcome),
                            Err(e) => tracing::warn!(seq, error = %e, "skipping a shared experiment event"),
                        }
                    }
                    Err(reason) => tracing::warn!(seq, %reason, "skipping a shared experiment event"),
                }
            }
            *applied = last;
        }
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.jsonl"))
    }

    fn entry(&self, id: &str) -> Option<Arc<Entry>> {
        self.experiments.read().get(id).cloned()
    }

    fn entry_or_insert(&self, id: &str) -> Arc<Entry> {
        if let Some(entry) = self.entry(id) {
            return entry;
        }
        Arc::clone(self.experiments.write().entry(id.to_owned()).or_default())
    }

    /// Declares an experiment's variants, its control and the expected
    /// allocation (`weights`, one positive number per variant, any scale;
    /// empty for equal). Events for other variants are then refused.
    /// Definitions are not stored: declare them again after each
    /// [`Self::open`] (they come from configuration). Replaces an earlier
    /// definition.
    pub async fn define(
        &self,
        id: &str,
        variants: Vec<String>,
        control: String,
        weights: Vec<f64>,
    ) -> Result<(), ExperimentError> {
        validate_id(id)?;
        let invalid = |reason: String| ExperimentError::InvalidDefinition { experiment: id.to_owned(), reason };
        if variants.len() < 2 {
            return Err(invalid(format!("expected at least two variants, got {}", variants.len())));
        }
        let mut seen = HashSet::new();
        for v in &variants {
            check_label("variant", v).map_err(invalid)?;
            if !seen.insert(v.as_str()) {
                return Err(invalid(format!("variant {v} is listed twice")));
            }
        }
        if !seen.contains(control.as_str()) {
            return Err(invalid(format!("control {control} is not one of the variants")));
        }
        let weights = if weights.is_empty() { vec![1.0; variants.len()] } else { weights };
        if weights.len() != variants.len() {
            return Err(invalid(format!("{} weights for {} variants", weights.len(), variants.len())));
        }
        if let Some(w) = weights.iter().find(|w| !w.is_finite() || **w <= 0.0) {
            return Err(invalid(format!("weight {w} is not a positive number")));
        }
        let entry = self.entry_or_insert(id);
        let _writer = entry.writer.lock().await;
        let mut state = entry.state.lock();
        if let Some(v) = state.aggregates.variants.keys().find(|v| !seen.contains(v.as_str())) {
            return Err(invalid(format!("events exist for variant {v}, which the definition does not list")));
        }
        state.definition = Some(Definition { variants, control, weights });
        Ok(())
    }

    /// Stores and counts one event (see the counting rules in the
    /// [module documentation](super)). The write runs on the blocking pool;
    /// the counts change only once the line is in the file.
    pub async fn record(&self, id: &str, event: Event) -> Result<Recorded, ExperimentError> {
        validate_id(id)?;
        validate_event(&event)?;
        let t = event.at.format(&Rfc3339).map_err(|e| ExperimentError::InvalidEvent {
            reason: format!("time {} cannot be written as RFC 3339: {e}", event.at),
        })?;
        // Cluster mode: classify against every node's events so far.
        self.catch_up().await?;
        let entry = self.entry_or_insert(id);
        let mut writer = entry.writer.lock().await;
        let outcome = {
            let state = entry.state.lock();
            if let Some(def) = &state.definition
                && !def.variants.contains(&event.variant)
            {
                return Err(ExperimentError::UnknownVariant {
                    experiment: id.to_owned(),
                    variant: event.variant.clone(),
                    defined: def.variants.join(", "),
                });
            }
            state.aggregates.classify(id, &event)?
        };
        if outcome == Recorded::Duplicate {
            return Ok(outcome);
        }
        let line =
            Line { t, kind: event.kind, variant: event.variant.clone(), unit: event.unit.clone(), value: event.value };
        let mut bytes = serde_json::to_vec(&line)
            .map_err(|e| ExperimentError::InvalidEvent { reason: format!("cannot encode the event: {e}") })?;
        if let Some(shared) = self.shared.get() {
            // Cluster mode: the shared table is the log; counted in its order.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            drop(writer);
            let mut tx = shared.pool.begin().await.map_err(shared_error)?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SHARED_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(shared_error)?;
            sqlx::query("INSERT INTO ops_experiment_events (experiment, line, node) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(text)
                .bind(&shared.node)
                .execute(&mut *tx)
                .await
                .map_err(shared_error)?;
            tx.commit().await.map_err(shared_error)?;
            self.catch_up().await?;
            return Ok(outcome);
        }
        bytes.push(b'\n');
        let path = self.path(id);
        let mut slot = std::mem::take(&mut *writer);
        let task_path = path.clone();
        let (slot, written) = tokio::task::spawn_blocking(move || {
            let written = slot.append(&task_path, &bytes);
            (slot, written)
        })
        .await
        .map_err(|e| io("write", &path, std::io::Error::other(e)))?;
        *writer = slot;
        written.map_err(|source| io("write", &path, source))?;
        entry.state.lock().aggregates.apply(event, outcome);
        Ok(outcome)
    }

    /// Ids of the experiments with events or a definition, sorted.
    pub fn experiments(&self) -> Vec<String> {
        self.experiments
            .read()
            .iter()
            .filter(|(_, e)| {
                let state = e.state.lock();
                !state.aggregates.is_empty() || state.definition.is_some()
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The statistics of one experiment.
    pub fn results(&self, id: &str) -> Result<ExperimentResults, ExperimentError> {
        validate_id(id)?;
        let unknown = || ExperimentError::UnknownExperiment { experiment: id.to_owned() };
        let entry = self.entry(id).ok_or_else(unknown)?;
        let (control, counts, contaminated, first, last) = {
            let state = entry.state.lock();
            let agg = &state.aggregates;
            if agg.is_empty() && state.definition.is_none() {
                return Err(unknown());
            }
            let counts_of = |variant: &str, weight: f64| {
                let a = agg.variants.get(variant);
                VariantCounts {
                    variant: variant.to_owned(),
                    exposures: a.map_or(0, |a| a.exposed.len() as u64),
                    conversions: a.map_or(0, |a| a.converted.len() as u64),
                    value_total: a.map_or(0.0, |a| a.value_total),
                    weight,
                }
            };
            let (control, counts) = match &state.definition {
                Some(def) => (
                    def.control.clone(),
                    def.variants.iter().zip(&def.weights).map(|(v, w)| counts_of(v, *w)).collect::<Vec<_>>(),
                ),
                None => {
                    let control = if agg.variants.contains_key("control") {
                        "control".to_owned()
                    } else {
                        agg.variants.keys().next().cloned().unwrap_or_default()
                    };
                    (control, agg.variants.keys().map(|v| counts_of(v, 1.0)).collect())
                }
            };
            (control, counts, agg.contaminated.len() as u64, agg.first, agg.last)
        };
        let mut results = analyze(id, &control, &counts);
        results.contaminated_units = contaminated;
        let utc = |t: OffsetDateTime| t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok();
        results.first_event = first.and_then(utc);
        results.last_event = last.and_then(utc);
        Ok(results)
    }

    /// The statistics of every experiment, in id order.
    pub fn all_results(&self) -> Vec<ExperimentResults> {
        self.experiments().iter().filter_map(|id| self.results(id).ok()).collect()
    }
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> ExperimentError {
    ExperimentError::Io { action, path: path.to_owned(), source }
}

fn parse_line(bytes: &[u8]) -> Result<Event, String> {
    let line: Line = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let at = OffsetDateTime::parse(&line.t, &Rfc3339).map_err(|e| format!("time {:?}: {e}", line.t))?;
    let event = Event { kind: line.kind, variant: line.variant, unit: line.unit, value: line.value, at };
    validate_event(&event).map_err(|e| e.to_string())?;
    Ok(event)
}

/// Rebuilds one experiment's counts from its file, cutting off a torn last
/// line.
fn load(id: &str, path: &Path) -> Result<Aggregates, ExperimentError> {
    let bytes = std::fs::read(path).map_err(|source| io("read", path, source))?;
    let mut aggregates = Aggregates::default();
    let mut offset = 0;
    let mut number = 0;
    while offset < bytes.len() {
        number += 1;
        let rest = &bytes[offset..];
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], true),
            None => (rest, false),
        };
        let start = offset;
        offset += line.len() + usize::from(complete);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event = match parse_line(line) {
            Ok(event) => event,
            Err(reason) if complete => {
                return Err(ExperimentError::Corrupt { path: path.to_owned(), line: number, reason });
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), line = number, %reason,
                    "cutting off a torn last line of an experiment log (an interrupted write)");
                truncate(path, start as u64)?;
                break;
            }
        };
        if !complete {
            // A whole event whose newline did not make it: keep it, and end
            // the line so the next append starts a line of its own.
            tracing::warn!(path = %path.display(), line = number, "completing an unterminated last line");
            let mut file = OpenOptions::new().append(true).open(path).map_err(|source| io("write", path, source))?;
            file.write_all(b"\n").map_err(|source| io("write", path, source))?;
        }
        match aggregates.classify(id, &event) {
            Ok(outcome) => aggregates.apply(event, outcome),
            Err(e) => tracing::warn!(path = %path.display(), line = number, error = %e, "skipping an event"),
        }
    }
    Ok(aggregates)
}

fn truncate(path: &Path, len: u64) -> Result<(), ExperimentError> {
    let file = OpenOptions::new().write(true).open(path).map_err(|source| io("write", path, source))?;
    file.set_len(len).map_err(|source| io("write", path, source))
}
