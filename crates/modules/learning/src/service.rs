//! The learning service: every tenant-owned operation the tools need, on
//! the trust layer's store, with the caches that keep a call off the
//! database where it can be (tier, configuration, course and bank, known
//! learners, BKT parameters).
//!
//! Every statement runs in a transaction bound to the caller's tenant
//! ([`plexus_store::tenant_tx!`]; row-level security on PostgreSQL). Limits
//! are checked where they cannot be overshot: a new learner is counted and
//! inserted in one write transaction (SQLite: `BEGIN IMMEDIATE`; PostgreSQL:
//! a per-tenant advisory lock in the transaction), and statements are
//! counted inside the xAPI store's own write (see
//! [`crate::xapi::StatementQuota`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use parking_lot::Mutex;
use plexus_core::TenantId;
use plexus_store::{Backend, Store, StoreError};
use serde::Serialize;
use sha2::Digest as _;
use time::OffsetDateTime;

use crate::activity::{self, Event, EventKind, fmt_time};
use crate::analytics::{Activity, ActivityEvent};
use crate::bkt::{self, BktParams, EmOptions};
use crate::cat::SessionRecord;
use crate::catalog::{Catalog, Content, ItemContent, StoredContent};
use crate::error::LearningError;
use crate::graph::Course;
use crate::irt::ItemBank;
use crate::settings::{LearningSettings, TenantConfig, TenantConfigPatch, TierLimits};
use crate::xapi::{
    Bind, Guard, PreparedBatch, Run, SimpleStatement, Sql, Statement, StatementLimit, StatementQuota, XapiError,
    XapiStore, gate_write, write_statements_then,
};

/// Learners remembered as existing (per node).
const KNOWN_LEARNERS: u64 = 1_000_000;
/// Active sessions kept in memory (see `Service::sessions`; a few KiB each),
/// and how long an untouched one stays.
const ACTIVE_SESSIONS: u64 = 100_000;
const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// A tenant's configuration as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigState {
    /// The configuration in force.
    pub config: TenantConfig,
    /// Changes so far (0: the defaults, never changed).
    pub version: i64,
    /// When it last changed.
    pub updated_at: Option<String>,
    /// Who changed it last.
    pub updated_by: Option<String>,
}

/// What one answer did to a learner's mastery of a skill.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MasteryChange {
    /// The skill.
    pub skill: String,
    /// P(known) before the answer.
    pub p_known_before: f64,
    /// P(known) after the answer and the learning transition (BKT).
    pub p_known: f64,
    /// At or above the tenant's mastery threshold.
    pub mastered: bool,
    /// Crossed the threshold with this answer.
    pub newly_mastered: bool,
    /// Answers on the skill so far.
    pub attempts: i64,
    /// Correct answers on the skill so far.
    pub correct: i64,
}

/// One skill of a learner.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillMastery {
    /// P(known).
    pub p_known: f64,
    /// Answers.
    pub attempts: i64,
    /// Correct answers.
    pub correct: i64,
}

/// What the store knows about a learner.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LearnerRecord {
    /// Ability of the last finished assessment.
    pub theta: Option<f64>,
    /// Its standard error.
    pub theta_se: Option<f64>,
    /// Mastery per skill answered on.
    pub mastery: BTreeMap<String, SkillMastery>,
    /// Content completed.
    pub completed: BTreeSet<String>,
    /// When the learner was first seen.
    pub created_at: String,
}

/// An assessment session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// The assessment id (a UUID).
    pub id: String,
    /// The learner.
    pub user_id: String,
    /// `adaptive`, `diagnostic` or `practice`.
    pub kind: String,
    /// The topic as resolved.
    pub topic: String,
    /// A practice assessment's target difficulty (b scale).
    pub target: Option<f64>,
    /// Seed of the session's item choices.
    pub seed: i64,
    /// The catalog version it started on.
    pub catalog: i64,
    /// The CAT record.
    pub record: SessionRecord,
    /// The item presented now, if any.
    pub presented: Option<String>,
    /// `active` or `finished`.
    pub status: String,
    /// Optimistic version.
    pub version: i64,
    /// When it started.
    pub started_at: String,
}

/// Fitted (or default) BKT parameters of one skill.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillFit {
    /// The skill.
    pub skill: String,
    /// p(L0).
    pub prior: f64,
    /// p(T).
    pub learn: f64,
    /// p(G).
    pub guess: f64,
    /// p(S).
    pub slip: f64,
    /// Fitted by EM (false: too few answers, the defaults).
    pub fitted: bool,
    /// Answers the fit used.
    pub observations: usize,
}

/// A tenant's use of its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Learners.
    pub learners: u64,
    /// Stored statements.
    pub statements: u64,
    /// Items in the bank.
    pub items: u64,
}

/// What [`Service::seed_demo`] did.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DemoSummary {
    /// The tenant.
    pub tenant: String,
    /// The seed.
    pub seed: u64,
    /// The tenant had the demo already; nothing was written.
    pub already_seeded: bool,
    /// Skills of the course.
    pub skills: usize,
    /// Content items.
    pub content: usize,
    /// Items in the bank.
    pub items: usize,
    /// Simulated learners.
    pub learners: usize,
    /// Statements stored.
    pub statements: usize,
}

/// The tenant directory's tiers, cached, and the limits they give.
#[derive(Debug)]
pub(crate) struct Tiers {
    store: Store,
    settings: Arc<LearningSettings>,
    cache: Cache<TenantId, Arc<str>>,
}

impl Tiers {
    /// The tenant's tier as the directory says (cached).
    async fn tier(&self, tenant: &TenantId) -> Result<Arc<str>, StoreError> {
        if let Some(t) = self.cache.get(tenant) {
            return Ok(t);
        }
        let t = self.store.get_tenant(tenant).await?.ok_or_else(|| StoreError::UnknownTenant(tenant.to_string()))?;
        let tier: Arc<str> = Arc::from(t.tier.as_str());
        self.cache.insert(tenant.clone(), Arc::clone(&tier));
        Ok(tier)
    }

    /// The tier whose limits apply, and the limits.
    async fn limits(&self, tenant: &TenantId) -> Result<(String, TierLimits), StoreError> {
        let tier = self.tier(tenant).await?;
        Ok((self.settings.effective_tier(&tier).to_owned(), self.settings.limits(&tier)))
    }
}

#[async_trait::async_trait]
impl StatementQuota for Tiers {
    async fn limit(&self, tenant: &TenantId) -> Result<Option<StatementLimit>, XapiError> {
        let (tier, limits) = self.limits(tenant).await?;
        Ok(Some(StatementLimit {
            max: limits.max_statements,
            refusal: format!("tenant {tenant} is at its limit of {} statements (tier {tier})", limits.max_statements),
        }))
    }
}

/// The learning service (see the [module docs](self)).
pub struct Service {
    /// The main store (the tenant directory).
    store: Store,
    /// Where each tenant's rows are.
    shards: crate::store::Shards,
    xapi: XapiStore,
    settings: Arc<LearningSettings>,
    tiers: Arc<Tiers>,
    configs: Cache<TenantId, Arc<ConfigState>>,
    catalogs: Cache<TenantId, Option<Arc<Catalog>>>,
    learners: Cache<(TenantId, String), ()>,
    params: Cache<TenantId, Arc<BTreeMap<String, BktParams>>>,
    /// Active assessment sessions as this node last wrote them, so that an
    /// answer needs no read first. Never trusted alone: the answer's update
    /// names the version it read, and a copy another writer overtook (a
    /// node of the cluster, an admin command) fails it, after which the
    /// answer is taken again from the stored row (`module::assess`).
    sessions: Cache<(TenantId, String), Arc<SessionRow>>,
    refitting: Arc<Mutex<HashSet<TenantId>>>,
    /// Cluster mode: where this node says a tenant's cached state changed.
    bus: std::sync::OnceLock<plexus_core::bus::Bus>,
}

/// The cache name of the learning module's invalidations on the bus.
pub const CACHE: &str = "learning";

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("backend", &self.store.backend()).finish_non_exhaustive()
    }
}

/// The PostgreSQL advisory lock key of `(namespace, tenant, extra)`.
fn lock_key(namespace: &str, tenant: &str, extra: &str) -> i64 {
    let key = crate::store::digest_u64(format!("plexus-learning-{namespace}\0{tenant}\0{extra}").as_bytes());
    i64::from_be_bytes(key.to_be_bytes())
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// PostgreSQL: take the mastery lock of each learner (sorted, once each),
/// so a learner's mastery read-modify-writes do not interleave.
async fn lock_mastery<'u, C: Run>(
    conn: &mut C,
    t: &str,
    users: impl Iterator<Item = &'u str>,
) -> Result<(), sqlx::Error> {
    let mut users: Vec<&str> = users.collect();
    users.sort_unstable();
    users.dedup();
    for u in users {
        conn.exec(Sql::new("SELECT pg_advisory_xact_lock($1)", [Bind::Int(lock_key("mastery", t, u))])).await?;
    }
    Ok(())
}

/// The mastery of one learner and skill after an answer: `current` is the
/// stored (p_known, attempts, correct), `None` before the first answer.
fn trace(
    skill: &str,
    p: BktParams,
    current: Option<(f64, i64, i64)>,
    correct: bool,
    threshold: f64,
) -> ((f64, i64, i64), MasteryChange) {
    let (before, attempts, right) = current.unwrap_or((p.prior, 0, 0));
    let before = if before.is_finite() { before.clamp(0.0, 1.0) } else { p.prior };
    let after = p.update(before, correct);
    let (attempts, right) = (attempts + 1, right + i64::from(correct));
    let change = MasteryChange {
        skill: skill.to_owned(),
        p_known_before: before,
        p_known: after,
        mastered: after >= threshold,
        newly_mastered: before < threshold && after >= threshold,
        attempts,
        correct: right,
    };
    ((after, attempts, right), change)
}

/// `sql` with every `$n` placeholder renumbered `$(n + by)`, to follow
/// `by` values bound before it in one text.
fn shift_placeholders(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

const INSERT_EVENT: &str = "INSERT INTO learning_events (tenant_id, statement_id, user_id, kind, item_id, content_id, \
     skill_id, correct, duration, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (tenant_id, statement_id) DO NOTHING";
/// Learner `$2` of tenant `$1` in one statement (one snapshot, one round
/// trip): a row per part, the part first. Part 0, the learner: theta,
/// theta_se, created_at; part 1, a skill's mastery: p_known, skill,
/// attempts, correct; part 2, a content item completed (each once): its id
/// alone, a range of the index of completions (`learning_events_completed`)
/// however many answers the learner has. The casts give each column one
/// type on PostgreSQL.
const LEARNER_RECORD: &str = "SELECT CAST(0 AS BIGINT), theta, theta_se, created_at, \
     CAST(NULL AS BIGINT), CAST(NULL AS BIGINT) FROM learning_learners WHERE tenant_id = $1 AND user_id = $2 \
     UNION ALL SELECT CAST(1 AS BIGINT), p_known, CAST(NULL AS DOUBLE PRECISION), skill_id, attempts, correct \
     FROM learning_mastery WHERE tenant_id = $1 AND user_id = $2 \
     UNION ALL SELECT CAST(2 AS BIGINT), CAST(NULL AS DOUBLE PRECISION), CAST(NULL AS DOUBLE PRECISION), content_id, \
     CAST(NULL AS BIGINT), CAST(NULL AS BIGINT) FROM (SELECT DISTINCT content_id FROM learning_events \
     WHERE tenant_id = $1 AND user_id = $2 AND kind = 'completed' AND content_id IS NOT NULL) AS completed";

/// Write the mastery of one learner and skill: tenant, user, skill,
/// p_known, attempts, correct, time as `$1`..`$7` (renumbered with
/// [`shift_placeholders`] to follow other values in one text).
const UPSERT_MASTERY: &str = "INSERT INTO learning_mastery (tenant_id, user_id, skill_id, p_known, attempts, correct, \
     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, user_id, skill_id) DO UPDATE \
     SET p_known = excluded.p_known, attempts = excluded.attempts, correct = excluded.correct, \
     updated_at = excluded.updated_at";

/// Count a tenant's answers up: tenant and count as `$1`, `$2`.
const COUNT_ANSWERS: &str = "INSERT INTO learning_usage (tenant_id, statements, answers, answers_at_fit) \
     VALUES ($1, NULL, $2, 0) ON CONFLICT (tenant_id) DO UPDATE SET answers = learning_usage.answers + excluded.answers \
     RETURNING answers, answers_at_fit";

/// Record `events` (each once: an event whose statement is recorded already
/// changes nothing) and trace the mastery their answers change; the
/// tenant's answer counter is counted up. Returns each event's mastery
/// change and the counter (answers, answers at the last fit) if it moved.
/// `lead`: writes not yet run (SQLite), run at the head of the first
/// event's text, or alone if there is no event.
async fn apply_events<C: Run>(
    conn: &mut C,
    t: &str,
    events: &[Event],
    params: &BTreeMap<String, BktParams>,
    threshold: f64,
    postgres: bool,
    mut lead: Option<Sql>,
) -> Result<Applied, sqlx::Error> {
    if let Some(l) = lead.take_if(|_| postgres || events.is_empty()) {
        conn.exec(l).await?;
    }
    let mut changes: Vec<Option<MasteryChange>> = Vec::with_capacity(events.len());
    let mut answers: i64 = 0;
    let now = fmt_time(OffsetDateTime::now_utc());
    let mastery = |user: &str, skill: &str, (after, attempts, right): (f64, i64, i64)| {
        [
            Bind::Text(t.to_owned()),
            Bind::Text(user.to_owned()),
            Bind::Text(skill.to_owned()),
            Bind::Real(after),
            Bind::Int(attempts),
            Bind::Int(right),
            Bind::Text(now.clone()),
        ]
    };
    let counters: Option<(i64, i64)> = if postgres {
        // One writer per learner: the mastery read-modify-write below
        // must not interleave (SQLite's BEGIN IMMEDIATE does this).
        lock_mastery(conn, t, events.iter().map(|e| e.user_id.as_str())).await?;
        for e in events {
            let inserted = conn.exec(Sql::new(INSERT_EVENT, event_binds(t, e))).await? > 0;
            let change = match (inserted, e.kind, e.correct) {
                (true, EventKind::Answered, Some(correct)) if !e.skill.is_empty() => {
                    answers += 1;
                    let current: Option<(f64, i64, i64)> = conn
                        .first(Sql::new(
                            "SELECT p_known, attempts, correct FROM learning_mastery \
                             WHERE tenant_id = $1 AND user_id = $2 AND skill_id = $3",
                            [Bind::Text(t.to_owned()), Bind::Text(e.user_id.clone()), Bind::Text(e.skill.clone())],
                        ))
                        .await?;
                    let p = params.get(&e.skill).copied().unwrap_or_default();
                    let (state, change) = trace(&e.skill, p, current, correct, threshold);
                    conn.exec(Sql::new(UPSERT_MASTERY, mastery(&e.user_id, &e.skill, state))).await?;
                    Some(change)
                }
                _ => None,
            };
            changes.push(change);
        }
        if answers > 0 {
            Some(conn.one(Sql::new(COUNT_ANSWERS, [Bind::Text(t.to_owned()), Bind::Int(answers)])).await?)
        } else {
            None
        }
    } else {
        // SQLite runs the statements of one text in one round trip to its
        // connection's thread: each event's insert with the mastery it
        // reads, then every mastery write with the counter. Mastery is
        // chained in memory between events of one learner and skill,
        // exactly as the writes would chain it.
        // (learner, skill) and its mastery (p_known, attempts, correct).
        type Traced<'e> = ((&'e str, &'e str), (f64, i64, i64));
        let mut traced: Vec<Traced<'_>> = Vec::new();
        for e in events {
            let event = format!(
                "{INSERT_EVENT};\n SELECT changes(), m.p_known, m.attempts, m.correct FROM (SELECT 1) AS one \
                 LEFT JOIN learning_mastery AS m ON m.tenant_id = $1 AND m.user_id = $3 AND m.skill_id = $7"
            );
            let mut sql = match lead.take() {
                Some(l) => {
                    Sql { text: format!("{};\n{}", l.text, shift_placeholders(&event, l.binds.len())), binds: l.binds }
                }
                None => Sql { text: event, binds: Vec::new() },
            };
            sql.binds.extend(event_binds(t, e));
            type Read = (i64, Option<f64>, Option<i64>, Option<i64>);
            let (inserted, p_known, attempts, right): Read = conn.one(sql).await?;
            let change = match (inserted > 0, e.kind, e.correct) {
                (true, EventKind::Answered, Some(correct)) if !e.skill.is_empty() => {
                    answers += 1;
                    let key = (e.user_id.as_str(), e.skill.as_str());
                    let chained = traced.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v);
                    let stored = p_known.map(|p| (p, attempts.unwrap_or(0), right.unwrap_or(0)));
                    let p = params.get(&e.skill).copied().unwrap_or_default();
                    let (state, change) = trace(&e.skill, p, chained.or(stored), correct, threshold);
                    traced.push((key, state));
                    Some(change)
                }
                _ => None,
            };
            changes.push(change);
        }
        if answers > 0 {
            let mut sql = Sql::default();
            for (i, ((user, skill), state)) in traced.iter().enumerate() {
                sql.text.push_str(&shift_placeholders(UPSERT_MASTERY, i * 7));
                sql.text.push_str(";\n");
                sql.binds.extend(mastery(user, skill, *state));
            }
            sql.text.push_str(&shift_placeholders(COUNT_ANSWERS, traced.len() * 7));
            sql.binds.extend([Bind::Text(t.to_owned()), Bind::Int(answers)]);
            Some(conn.one(sql).await?)
        } else {
            None
        }
    };
    Ok((changes, counters))
}

/// The writes of one answer, inside its transaction ([`Service::commit_answer`]).
struct Answer<'a> {
    t: &'a str,
    s: &'a SessionRow,
    statement: &'a PreparedBatch,
    guard: &'a Guard,
    events: &'a [Event],
    params: &'a BTreeMap<String, BktParams>,
    threshold: f64,
    postgres: bool,
    ability: Option<(f64, f64)>,
}

impl Answer<'_> {
    /// The session's move, the duplicate check and the statement's writes,
    /// then the event with them (on SQLite two texts), and a finished
    /// session's ability.
    async fn write<C: Run>(&self, conn: &mut C) -> Result<Applied, LearningError> {
        let s = self.s;
        let lead = match write_statements_then(conn, self.statement, Some(self.guard)).await {
            Ok(lead) => lead,
            Err(XapiError::Conflict(_)) => {
                return Err(LearningError::Conflict(format!(
                    "an answer to assessment {} was recorded concurrently with a different response",
                    s.id
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let t = self.t;
        let out = apply_events(conn, t, self.events, self.params, self.threshold, self.postgres, lead).await?;
        if let Some((theta, se)) = self.ability {
            conn.exec(Sql::new(
                "UPDATE learning_learners SET theta = $3, theta_se = $4 WHERE tenant_id = $1 AND user_id = $2",
                [Bind::Text(t.to_owned()), Bind::Text(s.user_id.clone()), Bind::Real(theta), Bind::Real(se)],
            ))
            .await?;
        }
        Ok(out)
    }
}

/// What [`apply_events`] did: each event's mastery change, and the
/// tenant's answer counter (answers, answers at the last fit) if it moved.
type Applied = (Vec<Option<MasteryChange>>, Option<(i64, i64)>);

/// The columns of event `e` of tenant `t`, for `$1`..`$10` of [`INSERT_EVENT`].
fn event_binds(t: &str, e: &Event) -> [Bind; 10] {
    [
        Bind::Text(t.to_owned()),
        Bind::Text(e.statement_id.clone()),
        Bind::Text(e.user_id.clone()),
        Bind::Text(e.kind.as_str().to_owned()),
        Bind::OptText(e.item.clone()),
        Bind::OptText(e.content.clone()),
        Bind::Text(e.skill.clone()),
        Bind::OptBool(e.correct),
        Bind::Real(e.duration),
        Bind::Text(fmt_time(e.at)),
    ]
}

/// Undo the events of voided statements (xAPI: a voided statement no longer
/// counts): their rows go, and the mastery of each learner and skill an
/// answer among them touched is recomputed by replaying the remaining
/// answers in the order they were recorded (`seq`) from the skill's prior.
macro_rules! unapply_voided {
    ($conn:ident, $t:expr, $voided:expr, $params:expr, $postgres:expr) => {{
        let t: &str = $t;
        let voided: &[String] = $voided;
        let params: &BTreeMap<String, BktParams> = $params;
        let mut touched: Vec<(String, String)> = Vec::new();
        for id in voided {
            let gone: Option<(String, String, String, Option<bool>)> = sqlx::query_as(
                "DELETE FROM learning_events WHERE tenant_id = $1 AND statement_id = $2 \
                 RETURNING user_id, skill_id, kind, correct",
            )
            .bind(t)
            .bind(id.as_str())
            .fetch_optional(&mut *$conn)
            .await?;
            if let Some((user, skill, kind, Some(_))) = gone
                && kind == EventKind::Answered.as_str()
                && !skill.is_empty()
            {
                touched.push((user, skill));
            }
        }
        touched.sort_unstable();
        touched.dedup();
        if $postgres {
            lock_mastery(&mut *$conn, t, touched.iter().map(|(u, _)| u.as_str())).await?;
        }
        let now = fmt_time(OffsetDateTime::now_utc());
        for (user, skill) in &touched {
            let answers: Vec<(bool,)> = sqlx::query_as(
                "SELECT correct FROM learning_events WHERE tenant_id = $1 AND user_id = $2 AND skill_id = $3 \
                 AND kind = $4 AND correct IS NOT NULL ORDER BY seq",
            )
            .bind(t)
            .bind(user.as_str())
            .bind(skill.as_str())
            .bind(EventKind::Answered.as_str())
            .fetch_all(&mut *$conn)
            .await?;
            if answers.is_empty() {
                sqlx::query("DELETE FROM learning_mastery WHERE tenant_id = $1 AND user_id = $2 AND skill_id = $3")
                    .bind(t)
                    .bind(user.as_str())
                    .bind(skill.as_str())
                    .execute(&mut *$conn)
                    .await?;
                continue;
            }
            let p = params.get(skill).copied().unwrap_or_default();
            let p_known = answers.iter().fold(p.prior, |known, (correct,)| p.update(known, *correct));
            let right = answers.iter().filter(|(c,)| *c).count();
            sqlx::query(
                "UPDATE learning_mastery SET p_known = $4, attempts = $5, correct = $6, updated_at = $7 \
                 WHERE tenant_id = $1 AND user_id = $2 AND skill_id = $3",
            )
            .bind(t)
            .bind(user.as_str())
            .bind(skill.as_str())
            .bind(p_known)
            .bind(i64::try_from(answers.len()).unwrap_or(i64::MAX))
            .bind(i64::try_from(right).unwrap_or(i64::MAX))
            .bind(now.as_str())
            .execute(&mut *$conn)
            .await?;
        }
    }};
}

impl Service {
    /// The service over `store` (migrated here) with `settings`.
    pub async fn open(store: Store, settings: LearningSettings) -> Result<Self, LearningError> {
        settings.validate().map_err(LearningError::Invalid)?;
        store.migrate(&crate::store::MIGRATIONS).await?;
        let ttl = Duration::from_secs(settings.cache_seconds.max(1));
        let settings = Arc::new(settings);
        let tiers = Arc::new(Tiers {
            store: store.clone(),
            settings: Arc::clone(&settings),
            cache: Cache::builder().max_capacity(100_000).time_to_live(ttl).build(),
        });
        let quota: Arc<dyn StatementQuota> = tiers.clone();
        let shards = crate::store::Shards::open(store.clone(), settings.shards).await?;
        let xapi = XapiStore::over(shards.clone()).with_quota(quota);
        Ok(Self {
            store,
            shards,
            xapi,
            settings,
            tiers,
            configs: Cache::builder().max_capacity(100_000).time_to_live(ttl).build(),
            catalogs: Cache::builder().max_capacity(10_000).time_to_live(ttl).build(),
            learners: Cache::builder().max_capacity(KNOWN_LEARNERS).build(),
            params: Cache::builder().max_capacity(10_000).time_to_live(ttl).build(),
            sessions: Cache::builder().max_capacity(ACTIVE_SESSIONS).time_to_idle(SESSION_IDLE).build(),
            refitting: Arc::new(Mutex::new(HashSet::new())),
            bus: std::sync::OnceLock::new(),
        })
    }

    /// Say on `bus` when a tenant's configuration or catalog changes here,
    /// and drop this node's cached copies when any node says so (in cluster
    /// mode the bus reaches every node within a second; without it the
    /// caches' time to live, `cache_seconds`, bounds how stale they get).
    pub fn follow(&self, bus: &plexus_core::bus::Bus) {
        if self.bus.set(bus.clone()).is_err() {
            return;
        }
        let mut rx = bus.subscribe();
        let (configs, catalogs, params, tiers) =
            (self.configs.clone(), self.catalogs.clone(), self.params.clone(), self.tiers.cache.clone());
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(plexus_core::context::Notification::CacheInvalidated { cache, key }) if cache == CACHE => {
                        let tenant = TenantId::new(&key);
                        configs.invalidate(&tenant);
                        catalogs.invalidate(&tenant);
                        params.invalidate(&tenant);
                        tiers.invalidate(&tenant);
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Missed some: forget everything rather than keep something stale.
                        configs.invalidate_all();
                        catalogs.invalidate_all();
                        params.invalidate_all();
                        tiers.invalidate_all();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    fn changed(&self, tenant: &TenantId) {
        if let Some(bus) = self.bus.get() {
            bus.publish(plexus_core::context::Notification::CacheInvalidated {
                cache: CACHE.to_owned(),
                key: tenant.as_str().to_owned(),
            });
        }
    }

    /// The main store (the tenant directory).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where each tenant's learning rows are.
    pub fn shards(&self) -> &crate::store::Shards {
        &self.shards
    }

    /// The xAPI statement store (with the tier limits).
    pub fn xapi(&self) -> &XapiStore {
        &self.xapi
    }

    /// The settings.
    pub fn settings(&self) -> &LearningSettings {
        &self.settings
    }

    fn postgres(&self) -> bool {
        self.store.backend() == Backend::Postgres
    }

    /// The tenant's xAPI account home page.
    pub fn home(&self, tenant: &TenantId) -> String {
        activity::home_page(&self.settings.home_page, tenant.as_str())
    }

    /// The tier whose limits apply to `tenant`, and the limits.
    pub async fn limits(&self, tenant: &TenantId) -> Result<(String, TierLimits), LearningError> {
        Ok(self.tiers.limits(tenant).await?)
    }

    // ------------------------------------------------------------ config

    /// The tenant's configuration (cached; the defaults until changed).
    pub async fn config(&self, tenant: &TenantId) -> Result<Arc<ConfigState>, LearningError> {
        if let Some(c) = self.configs.get(tenant) {
            return Ok(c);
        }
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let row: Option<(String, i64, String, String)> = plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_as(
                "SELECT config, version, updated_at, updated_by FROM learning_config WHERE tenant_id = $1",
            )
            .bind(tenant.as_str())
            .fetch_optional(&mut *conn)
            .await?
        });
        let state = match row {
            Some((json, version, at, by)) => {
                ConfigState { config: self.read_config(&json)?, version, updated_at: Some(at), updated_by: Some(by) }
            }
            None => {
                ConfigState { config: self.settings.defaults.clone(), version: 0, updated_at: None, updated_by: None }
            }
        };
        let state = Arc::new(state);
        self.configs.insert(tenant.clone(), Arc::clone(&state));
        Ok(state)
    }

    fn read_config(&self, json: &str) -> Result<TenantConfig, LearningError> {
        serde_json::from_str(json).map_err(|e| LearningError::Corrupt(format!("stored configuration: {e}")))
    }

    /// Apply `patch` to the tenant's configuration (validated as a whole;
    /// nothing changes on error); returns the new state and the fields
    /// that changed (camelCase).
    pub async fn configure(
        &self,
        tenant: &TenantId,
        patch: &TenantConfigPatch,
        by: &str,
    ) -> Result<(Arc<ConfigState>, Vec<String>), LearningError> {
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let postgres = self.postgres();
        let defaults = self.settings.defaults.clone();
        let now = fmt_time(OffsetDateTime::now_utc());
        let (state, changed) = plexus_store::tenant_tx!(&scope, write, conn => {
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(lock_key("config", tenant.as_str(), ""))
                    .execute(&mut *conn)
                    .await?;
            }
            let row: Option<(String, i64)> =
                sqlx::query_as("SELECT config, version FROM learning_config WHERE tenant_id = $1")
                    .bind(tenant.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
            let (current, version) = match row {
                Some((json, v)) => (self.read_config(&json)?, v),
                None => (defaults, 0),
            };
            let next = current.patched(patch);
            next.validate().map_err(|e| LearningError::Invalid(format!("{}: {}", e.camel_field(), e.message)))?;
            let changed = changed_fields(&current, &next);
            let json = serde_json::to_string(&next).map_err(|e| LearningError::Corrupt(e.to_string()))?;
            let version = version + 1;
            sqlx::query(
                "INSERT INTO learning_config (tenant_id, config, version, updated_at, updated_by) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id) DO UPDATE SET config = excluded.config, \
                 version = excluded.version, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            )
            .bind(tenant.as_str())
            .bind(json)
            .bind(version)
            .bind(now.as_str())
            .bind(by)
            .execute(&mut *conn)
            .await?;
            let state = ConfigState {
                config: next,
                version,
                updated_at: Some(now.clone()),
                updated_by: Some(by.to_owned()),
            };
            (state, changed)
        });
        let state = Arc::new(state);
        self.configs.insert(tenant.clone(), Arc::clone(&state));
        self.changed(tenant);
        Ok((state, changed))
    }

    // ----------------------------------------------------------- catalog

    /// The tenant's course, bank and item content (cached until the next
    /// import), if one was imported.
    pub async fn catalog(&self, tenant: &TenantId) -> Result<Option<Arc<Catalog>>, LearningError> {
        if let Some(c) = self.catalogs.get(tenant) {
            return Ok(c);
        }
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let row: Option<(i64, String, Option<String>, String)> = plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_as("SELECT version, course, bank, item_content FROM learning_catalog WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_optional(&mut *conn)
                .await?
        });
        let catalog = match row {
            Some((version, course, bank, content)) => {
                Some(Arc::new(Catalog::from_stored(version, &course, bank.as_deref(), &content)?))
            }
            None => None,
        };
        self.catalogs.insert(tenant.clone(), catalog.clone());
        Ok(catalog)
    }

    /// [`Service::catalog`], or why there is none.
    pub async fn require_catalog(&self, tenant: &TenantId) -> Result<Arc<Catalog>, LearningError> {
        self.catalog(tenant).await?.ok_or_else(|| {
            LearningError::NotFound(
                "this tenant has no course yet: an administrator imports one with import_learning_course".into(),
            )
        })
    }

    /// Replace the tenant's course, bank and item content (validated by
    /// the caller: items' skills are course skills, content ids are bank
    /// ids). Refused when the bank exceeds the tier's item limit. Returns
    /// the new catalog version.
    pub async fn import(
        &self,
        tenant: &TenantId,
        course: &Course,
        bank: Option<&ItemBank>,
        content: &StoredContent,
        by: &str,
        source: &str,
    ) -> Result<i64, LearningError> {
        let (tier, limits) = self.limits(tenant).await?;
        let items = bank.map_or(0, |b| b.len() as u64);
        if items > limits.max_items {
            return Err(LearningError::Quota(format!(
                "tenant {tenant} is limited to {} items in its bank (tier {tier}); this bank has {items}",
                limits.max_items
            )));
        }
        let course_json = serde_json::to_string(course).map_err(|e| LearningError::Corrupt(e.to_string()))?;
        let bank_json = bank.map(ItemBank::to_json);
        let content_json = serde_json::to_string(content).map_err(|e| LearningError::Corrupt(e.to_string()))?;
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let postgres = self.postgres();
        let now = fmt_time(OffsetDateTime::now_utc());
        let version: i64 = plexus_store::tenant_tx!(&scope, write, conn => {
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(lock_key("catalog", tenant.as_str(), ""))
                    .execute(&mut *conn)
                    .await?;
            }
            let before: Option<i64> = sqlx::query_scalar("SELECT version FROM learning_catalog WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_optional(&mut *conn)
                .await?;
            let version = before.unwrap_or(0) + 1;
            sqlx::query(
                "INSERT INTO learning_catalog (tenant_id, course, bank, item_content, version, source, imported_at, \
                 imported_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id) DO UPDATE SET \
                 course = excluded.course, bank = excluded.bank, item_content = excluded.item_content, \
                 version = excluded.version, source = excluded.source, imported_at = excluded.imported_at, \
                 imported_by = excluded.imported_by",
            )
            .bind(tenant.as_str())
            .bind(course_json)
            .bind(bank_json)
            .bind(content_json)
            .bind(version)
            .bind(source)
            .bind(now.as_str())
            .bind(by)
            .execute(&mut *conn)
            .await?;
            version
        });
        self.catalogs.invalidate(tenant);
        self.changed(tenant);
        Ok(version)
    }

    // ---------------------------------------------------------- learners

    /// Make sure every one of `users` is a learner of the tenant, creating
    /// the missing ones, all or none: refused when that would exceed the
    /// tier's learner limit.
    pub async fn ensure_learners(&self, tenant: &TenantId, users: &[&str]) -> Result<(), LearningError> {
        let mut missing: Vec<&str> =
            users.iter().copied().filter(|u| !self.learners.contains_key(&(tenant.clone(), (*u).to_owned()))).collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let (tier, limits) = self.limits(tenant).await?;
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let postgres = self.postgres();
        let now = fmt_time(OffsetDateTime::now_utc());
        plexus_store::tenant_tx!(&scope, write, conn => {
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(lock_key("learners", tenant.as_str(), ""))
                    .execute(&mut *conn)
                    .await?;
            }
            let mut new: Vec<&str> = Vec::new();
            for u in &missing {
                let found: Option<String> =
                    sqlx::query_scalar("SELECT user_id FROM learning_learners WHERE tenant_id = $1 AND user_id = $2")
                        .bind(tenant.as_str())
                        .bind(*u)
                        .fetch_optional(&mut *conn)
                        .await?;
                if found.is_none() {
                    new.push(u);
                }
            }
            if !new.is_empty() {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM learning_learners WHERE tenant_id = $1")
                    .bind(tenant.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
                if u64_of(n) + new.len() as u64 > limits.max_learners {
                    return Err(LearningError::Quota(format!(
                        "tenant {tenant} is at its limit of {} learners (tier {tier})",
                        limits.max_learners
                    )));
                }
                for u in &new {
                    sqlx::query(
                        "INSERT INTO learning_learners (tenant_id, user_id, theta, theta_se, created_at) \
                         VALUES ($1, $2, NULL, NULL, $3)",
                    )
                    .bind(tenant.as_str())
                    .bind(*u)
                    .bind(now.as_str())
                    .execute(&mut *conn)
                    .await?;
                }
            }
        });
        for u in missing {
            self.learners.insert((tenant.clone(), u.to_owned()), ());
        }
        Ok(())
    }

    /// A learner's ability, mastery and completed content; `None` if the
    /// tenant has no such learner.
    pub async fn learner(&self, tenant: &TenantId, user: &str) -> Result<Option<LearnerRecord>, LearningError> {
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let t = tenant.as_str();
        // (part, real, real, text, integer, integer): see LEARNER_RECORD.
        type Part = (i64, Option<f64>, Option<f64>, Option<String>, Option<i64>, Option<i64>);
        let parts: Vec<Part> = plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_as(LEARNER_RECORD).bind(t).bind(user).fetch_all(&mut *conn).await?
        });
        let mut out: Option<LearnerRecord> = None;
        let mut mastery = BTreeMap::new();
        let mut completed = BTreeSet::new();
        for part in parts {
            match part {
                (0, theta, theta_se, Some(created_at), _, _) => {
                    out = Some(LearnerRecord { theta, theta_se, created_at, ..LearnerRecord::default() });
                }
                (1, Some(p_known), _, Some(skill), Some(attempts), Some(correct)) => {
                    mastery.insert(skill, SkillMastery { p_known, attempts, correct });
                }
                (2, _, _, Some(content), _, _) => {
                    completed.insert(content);
                }
                other => {
                    return Err(LearningError::Corrupt(format!("learner `{user}`: an unreadable row {other:?}")));
                }
            }
        }
        if let Some(record) = out.as_mut() {
            record.mastery = mastery;
            record.completed = completed;
            self.learners.insert((tenant.clone(), user.to_owned()), ());
        }
        Ok(out)
    }

    /// The tenant's learners, by id.
    pub async fn learner_ids(&self, tenant: &TenantId) -> Result<Vec<String>, LearningError> {
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        Ok(plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_scalar("SELECT user_id FROM learning_learners WHERE tenant_id = $1 ORDER BY user_id")
                .bind(tenant.as_str())
                .fetch_all(&mut *conn)
                .await?
        }))
    }

    // ---------------------------------------------------------- activity

    /// Store `statements` (all or none; counted against the statement
    /// limit), after making sure the learners of `events` exist, then
    /// record `events` (each the event of one of the statements): the one
    /// path of tracked activity, xAPI posts and assessment answers.
    pub async fn record(
        &self,
        tenant: &TenantId,
        statements: Vec<Statement>,
        events: &[Event],
        authority: &serde_json::Value,
    ) -> Result<(Vec<String>, Vec<Option<MasteryChange>>), LearningError> {
        let users: Vec<&str> = events.iter().map(|e| e.user_id.as_str()).collect();
        self.ensure_learners(tenant, &users).await?;
        let voided: Vec<String> = statements.iter().filter_map(|s| s.voided_target().map(str::to_owned)).collect();
        let ids = self.xapi.post_statements(tenant, statements, authority).await?;
        let changes = self.apply(tenant, events, &voided, true).await?;
        Ok((ids, changes))
    }

    /// Record events of stored statements: each once (by statement id), an
    /// answer on a skill updating the learner's BKT mastery with the
    /// skill's parameters. The learners must exist.
    pub async fn apply_events(
        &self,
        tenant: &TenantId,
        events: &[Event],
    ) -> Result<Vec<Option<MasteryChange>>, LearningError> {
        self.apply(tenant, events, &[], true).await
    }

    async fn apply(
        &self,
        tenant: &TenantId,
        events: &[Event],
        voided: &[String],
        refit: bool,
    ) -> Result<Vec<Option<MasteryChange>>, LearningError> {
        if events.is_empty() && voided.is_empty() {
            return Ok(Vec::new());
        }
        let params = self.skill_params(tenant).await?;
        let threshold = self.config(tenant).await?.config.mastery_threshold;
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let postgres = self.postgres();
        let (changes, counters) = plexus_store::tenant_tx!(&scope, write, conn => {
            if postgres && !voided.is_empty() {
                // Every learner this call touches, locked in one sorted
                // round before any other lock: the new events' learners and
                // the voided answers' learners. Two rounds (events first,
                // then voids) could each be sorted and still deadlock
                // against another call taking them the other way round.
                // The macros below take the same locks again, at no cost
                // (a transaction's advisory locks are re-entrant).
                let mut owners: Vec<String> = Vec::with_capacity(voided.len());
                for id in voided {
                    let owner: Option<(String,)> = sqlx::query_as(
                        "SELECT user_id FROM learning_events WHERE tenant_id = $1 AND statement_id = $2",
                    )
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
                    owners.extend(owner.map(|(u,)| u));
                }
                lock_mastery(
                    &mut *conn,
                    tenant.as_str(),
                    events.iter().map(|e| e.user_id.as_str()).chain(owners.iter().map(String::as_str)),
                )
                .await?;
            }
            let out = apply_events(&mut *conn, tenant.as_str(), events, &params, threshold, postgres, None).await?;
            if !voided.is_empty() {
                unapply_voided!(conn, tenant.as_str(), voided, &params, postgres);
            }
            out
        });
        if refit {
            self.maybe_refit(tenant, counters);
        }
        Ok(changes)
    }

    // ---------------------------------------------------------- sessions

    /// The session as this node last wrote it, if it is still cached (see
    /// `sessions`: a hint, checked by the answer's versioned update).
    pub(crate) fn cached_session(&self, tenant: &TenantId, id: &str) -> Option<Arc<SessionRow>> {
        self.sessions.get(&(tenant.clone(), id.to_owned()))
    }

    /// Drop this node's copy of a session (it was overtaken, or it ended).
    pub(crate) fn forget_session(&self, tenant: &TenantId, id: &str) {
        self.sessions.invalidate(&(tenant.clone(), id.to_owned()));
    }

    /// Keep `s` as the session's latest state while it is active.
    fn remember_session(&self, tenant: &TenantId, s: &SessionRow) {
        if s.status == "active" {
            self.sessions.insert((tenant.clone(), s.id.clone()), Arc::new(s.clone()));
        } else {
            self.forget_session(tenant, &s.id);
        }
    }

    /// Store a new session. On a SQLite file on the write gate's
    /// synchronous connection, as the answers are: a start written through
    /// sqlx's connection made the gate commit the answers' open batch
    /// first, held it for round trips to sqlx's thread, and left the
    /// synchronous connection's page cache to be read again.
    pub async fn create_session(&self, tenant: &TenantId, s: &SessionRow) -> Result<(), LearningError> {
        let record = serde_json::to_string(&s.record).map_err(|e| LearningError::Corrupt(e.to_string()))?;
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let insert = || {
            Sql::new(
                "INSERT INTO learning_sessions (tenant_id, session_id, user_id, kind, topic, target, seed, catalog, \
                 record, presented, status, version, started_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
                [
                    Bind::Text(tenant.as_str().to_owned()),
                    Bind::Text(s.id.clone()),
                    Bind::Text(s.user_id.clone()),
                    Bind::Text(s.kind.clone()),
                    Bind::Text(s.topic.clone()),
                    Bind::OptReal(s.target),
                    Bind::Int(s.seed),
                    Bind::Int(s.catalog),
                    Bind::Text(record.clone()),
                    Bind::OptText(s.presented.clone()),
                    Bind::Text(s.status.clone()),
                    Bind::Int(s.version),
                    Bind::Text(s.started_at.clone()),
                ],
            )
        };
        gate_write!(&scope, write_by_answer, run => run.exec(insert()).await?);
        self.remember_session(tenant, s);
        Ok(())
    }

    /// A session of the tenant.
    pub async fn session(&self, tenant: &TenantId, id: &str) -> Result<Option<SessionRow>, LearningError> {
        type Row = (String, String, String, Option<f64>, i64, i64, String, Option<String>, String, i64, String);
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let row: Option<Row> = plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_as(
                "SELECT user_id, kind, topic, target, seed, catalog, record, presented, status, version, started_at \
                 FROM learning_sessions WHERE tenant_id = $1 AND session_id = $2",
            )
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        });
        let Some((user_id, kind, topic, target, seed, catalog, record, presented, status, version, started_at)) = row
        else {
            return Ok(None);
        };
        let record: SessionRecord =
            serde_json::from_str(&record).map_err(|e| LearningError::Corrupt(format!("session {id}: {e}")))?;
        Ok(Some(SessionRow {
            id: id.to_owned(),
            user_id,
            kind,
            topic,
            target,
            seed,
            catalog,
            record,
            presented,
            status,
            version,
            started_at,
        }))
    }

    /// Commit an answer: the session moves from `expected_version` to the next
    /// (refused if another answer got there first), the answer's xAPI
    /// `statement` is stored (a different answer stored under its id
    /// already is a conflict), its event is recorded (mastery), and a
    /// finished session's estimate becomes the learner's ability; all in one
    /// transaction.
    pub(crate) async fn commit_answer(
        &self,
        tenant: &TenantId,
        s: &SessionRow,
        expected_version: i64,
        statement: &PreparedBatch,
        events: &[Event],
        ability: Option<(f64, f64)>,
    ) -> Result<Vec<Option<MasteryChange>>, LearningError> {
        let record = serde_json::to_string(&s.record).map_err(|e| LearningError::Corrupt(e.to_string()))?;
        let params = self.skill_params(tenant).await?;
        let threshold = self.config(tenant).await?.config.mastery_threshold;
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let postgres = self.postgres();
        let now = fmt_time(OffsetDateTime::now_utc());
        let t = tenant.as_str();
        let guard = Guard {
            sql: "UPDATE learning_sessions SET record = $3, presented = $4, status = $5, version = version + 1, \
                  updated_at = $6 WHERE tenant_id = $1 AND session_id = $2 AND version = $7",
            binds: vec![
                Bind::Text(t.to_owned()),
                Bind::Text(s.id.clone()),
                Bind::Text(record),
                Bind::OptText(s.presented.clone()),
                Bind::Text(s.status.clone()),
                Bind::Text(now),
                Bind::Int(expected_version),
            ],
            refusal: format!(
                "assessment {} was answered concurrently: another response was recorded first; \
                 answer the item it presents now",
                s.id
            ),
        };
        let answer = Answer { t, s, statement, guard: &guard, events, params: &params, threshold, postgres, ability };
        // Nothing leaves the process between this commit and the answer:
        // its `fdatasync` is awaited alongside the audit record's. On a
        // SQLite file the statements run on the write gate's synchronous
        // connection, on this thread.
        let (changes, counters) = gate_write!(&scope, write_by_answer, run => answer.write(run).await?);
        self.remember_session(tenant, s);
        self.maybe_refit(tenant, counters);
        Ok(changes)
    }

    // ------------------------------------------------------------ mastery

    /// Per-skill BKT parameters (cached): fitted where there were enough
    /// answers; skills without a row use the defaults.
    pub async fn skill_params(&self, tenant: &TenantId) -> Result<Arc<BTreeMap<String, BktParams>>, LearningError> {
        if let Some(p) = self.params.get(tenant) {
            return Ok(p);
        }
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let rows: Vec<(String, f64, f64, f64, f64, f64)> = plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_as(
                "SELECT skill_id, prior, learn, guess, slip, forget FROM learning_bkt_params WHERE tenant_id = $1",
            )
            .bind(tenant.as_str())
            .fetch_all(&mut *conn)
            .await?
        });
        let mut map = BTreeMap::new();
        for (skill, prior, learn, guess, slip, forget) in rows {
            let p = BktParams { prior, learn, guess, slip, forget };
            if p.validate().is_ok() {
                map.insert(skill, p);
            }
        }
        let map = Arc::new(map);
        self.params.insert(tenant.clone(), Arc::clone(&map));
        Ok(map)
    }

    /// The stored fits, by skill.
    pub async fn skill_fits(&self, tenant: &TenantId) -> Result<Vec<SkillFit>, LearningError> {
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let rows: Vec<(String, f64, f64, f64, f64, bool, i64)> = plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_as(
                "SELECT skill_id, prior, learn, guess, slip, fitted, observations FROM learning_bkt_params \
                 WHERE tenant_id = $1 ORDER BY skill_id",
            )
            .bind(tenant.as_str())
            .fetch_all(&mut *conn)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(skill, prior, learn, guess, slip, fitted, n)| SkillFit {
                skill,
                prior,
                learn,
                guess,
                slip,
                fitted,
                observations: usize::try_from(n).unwrap_or(0),
            })
            .collect())
    }

    /// Refit every skill's BKT parameters by EM from the tenant's answers
    /// (the defaults where a skill has fewer than 50). New parameters apply
    /// to answers from now on; stored mastery is not replayed.
    pub async fn refit(&self, tenant: &TenantId) -> Result<Vec<SkillFit>, LearningError> {
        refit(self.shards.of(tenant).await?, &self.params, tenant).await
    }

    fn maybe_refit(&self, tenant: &TenantId, counters: Option<(i64, i64)>) {
        let every = i64::try_from(self.settings.refit_every).unwrap_or(i64::MAX);
        let Some((answers, at_fit)) = counters else { return };
        if !refit_due(answers, at_fit, every) {
            return;
        }
        if !self.refitting.lock().insert(tenant.clone()) {
            return;
        }
        let (shards, params, running, tenant) =
            (self.shards.clone(), self.params.clone(), Arc::clone(&self.refitting), tenant.clone());
        tokio::spawn(async move {
            let refitted = match shards.of(&tenant).await {
                Ok(store) => refit(store, &params, &tenant).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = refitted {
                tracing::warn!(tenant = %tenant, error = %e, "learning: refitting BKT parameters failed");
            }
            running.lock().remove(&tenant);
        });
    }

    // --------------------------------------------------------- analytics

    /// The tenant's events in time order, of one learner or all, between
    /// `from` and `to` (inclusive).
    pub async fn events(
        &self,
        tenant: &TenantId,
        user: Option<&str>,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<Vec<ActivityEvent>, LearningError> {
        type Row = (String, String, Option<String>, Option<String>, String, Option<bool>, f64, String);
        let mut sql = String::from(
            "SELECT user_id, kind, item_id, content_id, skill_id, correct, duration, at FROM learning_events \
             WHERE tenant_id = $1",
        );
        let mut binds: Vec<String> = vec![tenant.as_str().to_owned()];
        if let Some(u) = user {
            binds.push(u.to_owned());
            sql.push_str(&format!(" AND user_id = ${}", binds.len()));
        }
        if let Some(f) = from {
            binds.push(fmt_time(f));
            sql.push_str(&format!(" AND at >= ${}", binds.len()));
        }
        if let Some(t) = to {
            binds.push(fmt_time(t));
            sql.push_str(&format!(" AND at <= ${}", binds.len()));
        }
        sql.push_str(" ORDER BY at, seq");
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let rows: Vec<Row> = plexus_store::tenant_tx!(&scope, single, conn => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            for b in &binds {
                q = q.bind(b.clone());
            }
            q.fetch_all(&mut *conn).await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for (learner, kind, item, content, skill, correct, duration, at) in rows {
            let timestamp =
                activity::parse_stored_time(&at).ok_or_else(|| LearningError::Corrupt(format!("event time `{at}`")))?;
            let duration_seconds = if duration.is_finite() && duration >= 0.0 { duration } else { 0.0 };
            let activity = match (kind.as_str(), content) {
                ("completed", Some(content)) => Activity::Completed { content, skill, duration_seconds },
                _ => Activity::Answered {
                    item: item.unwrap_or_else(|| format!("skill:{skill}")),
                    skill,
                    correct: correct.unwrap_or(false),
                    duration_seconds,
                },
            };
            out.push(ActivityEvent { learner, timestamp, activity });
        }
        Ok(out)
    }

    /// `(learner, skill, P(known))` of every learner (or one) and skill answered on.
    pub async fn mastery_values(
        &self,
        tenant: &TenantId,
        user: Option<&str>,
    ) -> Result<Vec<(String, String, f64)>, LearningError> {
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let rows: Vec<(String, String, f64)> = plexus_store::tenant_tx!(&scope, single, conn => {
            match user {
                Some(u) => {
                    sqlx::query_as(
                        "SELECT user_id, skill_id, p_known FROM learning_mastery WHERE tenant_id = $1 AND user_id = $2 \
                         ORDER BY skill_id",
                    )
                    .bind(tenant.as_str())
                    .bind(u)
                    .fetch_all(&mut *conn)
                    .await?
                }
                None => {
                    sqlx::query_as(
                        "SELECT user_id, skill_id, p_known FROM learning_mastery WHERE tenant_id = $1 \
                         ORDER BY user_id, skill_id",
                    )
                    .bind(tenant.as_str())
                    .fetch_all(&mut *conn)
                    .await?
                }
            }
        });
        Ok(rows.into_iter().map(|(u, s, p)| (u, s, if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.0 })).collect())
    }

    /// The tenant's use of its limits.
    pub async fn usage(&self, tenant: &TenantId) -> Result<Usage, LearningError> {
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let t = tenant.as_str();
        let (learners, kept): (i64, Option<Option<i64>>) = plexus_store::tenant_tx!(&scope, read, conn => {
            let learners: i64 = sqlx::query_scalar("SELECT count(*) FROM learning_learners WHERE tenant_id = $1")
                .bind(t)
                .fetch_one(&mut *conn)
                .await?;
            let kept: Option<Option<i64>> =
                sqlx::query_scalar("SELECT statements FROM learning_usage WHERE tenant_id = $1")
                    .bind(t)
                    .fetch_optional(&mut *conn)
                    .await?;
            (learners, kept)
        });
        let statements = match kept.flatten() {
            Some(n) => u64_of(n),
            None => self.xapi.count(tenant).await?,
        };
        let items = self.catalog(tenant).await?.and_then(|c| c.bank.as_ref().map(|b| b.len() as u64)).unwrap_or(0);
        Ok(Usage { learners: u64_of(learners), statements, items })
    }

    // -------------------------------------------------------------- demo

    /// Load the seeded demo into `tenant`: the course and item bank of
    /// [`crate::demo::generate`] with generated stems, options and keys,
    /// and `learners` simulated learners' activity (28 days up to today,
    /// [`crate::demo::simulate_activity`]) as xAPI statements, with BKT
    /// parameters fitted to it and each learner's mastery traced. A tenant
    /// that has the demo already is left alone; a tenant with a course of
    /// its own is refused.
    pub async fn seed_demo(&self, tenant: &TenantId, seed: u64, learners: usize) -> Result<DemoSummary, LearningError> {
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let source: Option<String> = plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_scalar("SELECT source FROM learning_catalog WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_optional(&mut *conn)
                .await?
        });
        let spec = crate::demo::DemoSpec { seed, learners, ..crate::demo::DemoSpec::default() };
        let demo = crate::demo::generate(&spec).map_err(|e| LearningError::Invalid(format!("demo: {e}")))?;
        let summary = |already: bool, statements: usize| DemoSummary {
            tenant: tenant.to_string(),
            seed,
            already_seeded: already,
            skills: demo.course.skills().len(),
            content: demo.course.content().len(),
            items: demo.bank.len(),
            learners: demo.learners.len(),
            statements,
        };
        match source.as_deref() {
            Some(s) if s.starts_with("demo:") => return Ok(summary(true, 0)),
            Some(_) => {
                return Err(LearningError::Conflict(format!(
                    "tenant {tenant} has a course of its own; the demo is only loaded into a tenant without one"
                )));
            }
            None => {}
        }
        let content = demo_content(&demo);
        self.import(tenant, &demo.course, Some(&demo.bank), &content, "demo", &format!("demo:{seed}")).await?;
        let today = OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
        let activity_spec = crate::demo::ActivitySpec {
            seed: seed ^ 0x5eed_1e55,
            start: today - time::Duration::days(28),
            ..crate::demo::ActivitySpec::default()
        };
        let log = crate::demo::simulate_activity(&demo, &activity_spec)
            .map_err(|e| LearningError::Invalid(format!("demo: {e}")))?;
        let ids: Vec<&str> = demo.learners.iter().map(|l| l.id.as_str()).collect();
        self.ensure_learners(tenant, &ids).await?;

        // Parameters first (fitted to the demo's answers), so that the
        // mastery traced event by event below uses them.
        let sequences = crate::analytics::answer_sequences(&log.events);
        self.store_fits(tenant, sequences).await?;

        let home = self.home(tenant);
        let authority = activity::learner_agent(&home, "demo");
        let mut statements = 0;
        for (chunk_index, chunk) in log.events.chunks(500).enumerate() {
            let mut batch = Vec::with_capacity(chunk.len());
            let mut events = Vec::with_capacity(chunk.len());
            for (i, e) in chunk.iter().enumerate() {
                let n = (chunk_index * 500 + i).to_string();
                let id = activity::derived_uuid(&[tenant.as_str(), "demo", &seed.to_string(), &n]);
                let (statement, event) = demo_statement(&home, e, &id)?;
                batch.push(statement);
                events.push(event);
            }
            statements += batch.len();
            self.xapi.post_statements(tenant, batch, &authority).await?;
            self.apply(tenant, &events, &[], false).await?;
        }
        // The same fit, now from the stored answers, so that the counter
        // of answers since the last fit starts at zero.
        self.refit(tenant).await?;
        Ok(summary(false, statements))
    }

    /// Fit and store parameters from per-skill answer sequences.
    async fn store_fits(
        &self,
        tenant: &TenantId,
        sequences: BTreeMap<String, Vec<Vec<bool>>>,
    ) -> Result<Vec<SkillFit>, LearningError> {
        store_fits(self.shards.of(tenant).await?, &self.params, tenant, sequences, None).await
    }
}

/// The fields whose values differ (camelCase, dotted).
fn changed_fields(a: &TenantConfig, b: &TenantConfig) -> Vec<String> {
    let (Ok(serde_json::Value::Object(x)), Ok(serde_json::Value::Object(y))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in &y {
        match (x.get(k), v) {
            (Some(serde_json::Value::Object(old)), serde_json::Value::Object(new)) if k != "exposure" => {
                for (kk, vv) in new {
                    if old.get(kk) != Some(vv) {
                        out.push(format!("{k}.{kk}"));
                    }
                }
            }
            (old, new) if old != Some(new) => out.push(k.clone()),
            _ => {}
        }
    }
    out
}

/// A refit is due after `every` new answers (0: only on demand), or after the
/// tenant's answers grew by a tenth since the last fit (`at_fit`) if that
/// is more. EM reads every answer of the tenant, so a fixed step would
/// make the refits' total work grow with the square of its answers; a
/// step in proportion keeps it linear (a tenant with 1,000,000 answers
/// refits every 100,000, not every 200).
fn refit_due(answers: i64, at_fit: i64, every: i64) -> bool {
    every > 0 && answers.saturating_sub(at_fit) >= every.max(at_fit / 10)
}

const UPSERT_FIT: &str = "INSERT INTO learning_bkt_params (tenant_id, skill_id, prior, learn, guess, slip, forget, \
     fitted, observations, fitted_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9) \
     ON CONFLICT (tenant_id, skill_id) DO UPDATE SET prior = excluded.prior, learn = excluded.learn, \
     guess = excluded.guess, slip = excluded.slip, forget = excluded.forget, fitted = excluded.fitted, \
     observations = excluded.observations, fitted_at = excluded.fitted_at";

/// Store `fits` and, if given, the answers counter they cover.
async fn write_fits<C: Run>(
    conn: &mut C,
    t: &str,
    fits: &[SkillFit],
    now: &str,
    answers: Option<i64>,
) -> Result<(), sqlx::Error> {
    for f in fits {
        let binds = [
            Bind::Text(t.to_owned()),
            Bind::Text(f.skill.clone()),
            Bind::Real(f.prior),
            Bind::Real(f.learn),
            Bind::Real(f.guess),
            Bind::Real(f.slip),
            Bind::Bool(f.fitted),
            Bind::Int(i64::try_from(f.observations).unwrap_or(i64::MAX)),
            Bind::Text(now.to_owned()),
        ];
        conn.exec(Sql::new(UPSERT_FIT, binds)).await?;
    }
    if let Some(n) = answers {
        let sql = "UPDATE learning_usage SET answers_at_fit = $2 WHERE tenant_id = $1";
        conn.exec(Sql::new(sql, [Bind::Text(t.to_owned()), Bind::Int(n)])).await?;
    }
    Ok(())
}

/// Microseconds since `t`, for logs.
fn micros(t: std::time::Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Refit from the stored answers (see [`Service::refit`]).
async fn refit(
    store: &Store,
    params: &Cache<TenantId, Arc<BTreeMap<String, BktParams>>>,
    tenant: &TenantId,
) -> Result<Vec<SkillFit>, LearningError> {
    let started = std::time::Instant::now();
    let scope = store.tenant(tenant);
    // One row per skill, each learner's answers to it in order as a run of
    // 0s and 1s, runs separated by commas: the database groups and orders
    // them, and a handful of rows crosses to this task instead of one per
    // answer (on SQLite each row is a hand-off from the connection's
    // thread). The same SQL on both backends (SQLite 3.44 has `string_agg`
    // and ORDER BY within an aggregate).
    let (rows, answers): (Vec<(String, String)>, Option<i64>) = plexus_store::tenant_tx!(&scope, read, conn => {
        let rows: Vec<(String, String)> = sqlx::query_as(REFIT_ANSWERS).bind(tenant.as_str()).fetch_all(&mut *conn).await?;
        let answers: Option<i64> = sqlx::query_scalar("SELECT answers FROM learning_usage WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        (rows, answers)
    });
    let sequences: BTreeMap<String, Vec<Vec<bool>>> =
        rows.into_iter().map(|(skill, runs)| (skill, answer_runs(&runs))).collect();
    tracing::debug!(tenant = %tenant, read_us = micros(started), "learning: answers read for a BKT refit");
    store_fits(store, params, tenant, sequences, answers).await
}

/// A tenant's answers for a refit: per skill, each learner's answers in
/// the order given (`at`, then `seq` for answers of the same instant) as
/// `0`s and `1`s, learners in `user_id` order, separated by commas.
const REFIT_ANSWERS: &str = "SELECT skill_id, string_agg(answers, ',' ORDER BY user_id) FROM \
     (SELECT skill_id, user_id, string_agg(CASE WHEN correct THEN '1' ELSE '0' END, '' ORDER BY at, seq) AS answers \
      FROM learning_events WHERE tenant_id = $1 AND kind = 'answered' AND skill_id <> '' AND correct IS NOT NULL \
      GROUP BY skill_id, user_id) AS per_learner \
     GROUP BY skill_id ORDER BY skill_id";

/// The sequences of [`REFIT_ANSWERS`]' `runs` (`"0110,10"`: two learners).
fn answer_runs(runs: &str) -> Vec<Vec<bool>> {
    runs.split(',').filter(|r| !r.is_empty()).map(|r| r.bytes().map(|b| b == b'1').collect()).collect()
}

/// Fit each skill's parameters (EM, or the defaults with too few answers)
/// and store them; `answers`: the usage counter the fit covers.
async fn store_fits(
    store: &Store,
    params: &Cache<TenantId, Arc<BTreeMap<String, BktParams>>>,
    tenant: &TenantId,
    sequences: BTreeMap<String, Vec<Vec<bool>>>,
    answers: Option<i64>,
) -> Result<Vec<SkillFit>, LearningError> {
    // EM over every answer of the tenant is CPU work of many milliseconds:
    // off the async workers, so that calls keep being answered meanwhile.
    let started = std::time::Instant::now();
    let fits: Vec<SkillFit> = tokio::task::spawn_blocking(move || {
        let options = EmOptions::default();
        sequences
            .iter()
            .map(|(skill, seqs)| {
                let report = bkt::fit_or_default(seqs, &options);
                let p = report.params;
                SkillFit {
                    skill: skill.clone(),
                    prior: p.prior,
                    learn: p.learn,
                    guess: p.guess,
                    slip: p.slip,
                    fitted: report.fitted,
                    observations: report.observations,
                }
            })
            .collect()
    })
    .await
    .map_err(|e| LearningError::Corrupt(format!("fitting BKT parameters failed: {e}")))?;
    let scope = store.tenant(tenant);
    let now = fmt_time(OffsetDateTime::now_utc());
    let t = tenant.as_str();
    let fit_us = micros(started);
    // On a SQLite file on the write gate's synchronous connection: the
    // gate is held for the statements' own run, not for a round trip each
    // to sqlx's connection thread while answers queue behind it. Timed:
    // the statements' run, inside the transaction.
    let write_us = gate_write!(&scope, write, run => {
        let entered = std::time::Instant::now();
        write_fits(run, t, &fits, &now, answers).await?;
        micros(entered)
    });
    tracing::debug!(tenant = %tenant, skills = fits.len(), fit_us, write_us, "learning: BKT parameters refitted");
    params.invalidate(tenant);
    Ok(fits)
}

/// Stems, options and keys for the demo's items: four options, the key
/// drawn from the item id.
fn demo_content(demo: &crate::demo::Demo) -> StoredContent {
    let mut out = StoredContent::new();
    for item in demo.bank.items() {
        let skill = demo.course.skill(&item.skill);
        let name = skill.map_or(item.skill.as_str(), |s| s.name.as_str());
        let ja = skill.and_then(|s| s.translations.get("ja")).map_or("", String::as_str);
        let q = item.id.rsplit('q').next().unwrap_or("1");
        let digest = sha2::Sha256::digest(item.id.as_bytes());
        let key = usize::from(digest[0] % 4);
        let options: Vec<String> = (1..=4).map(|k| format!("{name}: answer {k}（答え{k}）")).collect();
        out.insert(
            item.id.clone(),
            ItemContent {
                id: item.id.clone(),
                stem: format!("{name}（{ja}）— question {q}: which answer is right?"),
                options,
                answer: Some(crate::catalog::label(key)),
            },
        );
    }
    out
}

/// The statement and event of one simulated activity.
fn demo_statement(home: &str, e: &ActivityEvent, id: &str) -> Result<(Statement, Event), LearningError> {
    let (kind, activity, verb, success, completion, item, content, correct) = match &e.activity {
        Activity::Answered { item, correct, .. } => (
            EventKind::Answered,
            activity::activity_iri(home, "items", item),
            activity::VERB_ANSWERED,
            Some(*correct),
            None,
            Some(item.clone()),
            None,
            Some(*correct),
        ),
        Activity::Completed { content, .. } => (
            EventKind::Completed,
            activity::activity_iri(home, "content", content),
            activity::VERB_COMPLETED,
            None,
            Some(true),
            None,
            Some(content.clone()),
            None,
        ),
    };
    let duration = e.activity.duration_seconds();
    let statement = SimpleStatement {
        home_page: home.to_owned(),
        account_name: e.learner.clone(),
        verb_id: verb.to_owned(),
        activity_id: activity,
        success,
        completion,
        duration_seconds: Some(duration),
        timestamp: Some(e.timestamp),
        ..SimpleStatement::default()
    }
    .build()
    .map_err(|x| LearningError::Invalid(format!("demo statement: {x}")))?;
    let mut json = statement.into_json();
    if let Some(m) = json.as_object_mut() {
        m.insert("id".into(), serde_json::Value::String(id.to_owned()));
    }
    let statement = Statement::from_value(&json).map_err(|x| LearningError::Invalid(format!("demo statement: {x}")))?;
    let event = Event {
        statement_id: id.to_owned(),
        user_id: e.learner.clone(),
        kind,
        item,
        content,
        skill: e.activity.skill().to_owned(),
        correct,
        duration,
        at: e.timestamp,
    };
    Ok((statement, event))
}

/// Item content checked against the bank: every id is an item of the bank.
pub fn check_content(items: Vec<ItemContent>, bank: Option<&ItemBank>) -> Result<StoredContent, LearningError> {
    let mut out = StoredContent::new();
    for (i, c) in items.into_iter().enumerate() {
        let at = format!("items[{i}]");
        let Some(bank) = bank else {
            return Err(LearningError::Invalid(format!("{at}: item content needs an item bank (give `bank`)")));
        };
        if bank.by_id(&c.id).is_none() {
            return Err(LearningError::Invalid(format!("{at}: `{}` is not an item of the bank", c.id)));
        }
        if out.contains_key(&c.id) {
            return Err(LearningError::Invalid(format!("{at}: item `{}` is given twice", c.id)));
        }
        let checked = Content::new(c, &at)?;
        out.insert(checked.raw.id.clone(), checked.raw);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{answer_runs, refit_due, shift_placeholders};

    #[test]
    fn a_refits_answer_runs_are_one_sequence_per_learner() {
        assert_eq!(answer_runs("0110,1,00"), vec![vec![false, true, true, false], vec![true], vec![false, false]]);
        assert_eq!(answer_runs(""), Vec::<Vec<bool>>::new());
    }

    #[test]
    fn refits_come_every_so_many_answers_or_a_tenth_more() {
        // (answers now, answers at the last fit, refit_every, due)
        for (answers, at_fit, every, due) in [
            (199, 0, 200, false),
            (200, 0, 200, true),
            (1_199, 1_000, 200, false),
            (1_200, 1_000, 200, true),
            // From 2,000 answers on the tenth is the larger step.
            (2_199, 2_000, 200, false),
            (2_200, 2_000, 200, true),
            (1_099_999, 1_000_000, 200, false),
            (1_100_000, 1_000_000, 200, true),
            // 0: only on demand.
            (1_000_000, 0, 0, false),
            // A counter that went back (a restored backup) is not a refit.
            (10, 500, 200, false),
        ] {
            assert_eq!(refit_due(answers, at_fit, every), due, "{answers} answers, {at_fit} at the fit, every {every}");
        }
    }

    #[test]
    fn placeholders_shift_and_nothing_else_moves() {
        assert_eq!(
            shift_placeholders("INSERT INTO t VALUES ($1, $2, $10); SELECT $3 + 1 AS x", 7),
            "INSERT INTO t VALUES ($8, $9, $17); SELECT $10 + 1 AS x"
        );
        assert_eq!(shift_placeholders("SELECT '$' || $1, $", 2), "SELECT '$' || $3, $");
        assert_eq!(shift_placeholders("SELECT 1", 5), "SELECT 1");
        assert_eq!(shift_placeholders(super::INSERT_EVENT, 0), super::INSERT_EVENT);
    }

    /// A learner's record is one statement whose every part is a search
    /// by key: the learner and the mastery by their primary keys, the
    /// completed content from the index of completions alone (no row of the
    /// events table, no sort for the `DISTINCT`, none of the learner's
    /// answers on the way).
    #[tokio::test]
    async fn a_learners_record_is_searches_by_key_the_completions_from_their_index() {
        let dir = std::env::temp_dir().join(format!("plexus-learner-plan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = plexus_store::Store::open(dir.join("plexus.db").to_str().unwrap()).await.unwrap();
        store.migrate(&crate::store::MIGRATIONS).await.unwrap();
        let t = plexus_core::context::TenantId::new("t1");
        let scope = store.tenant(&t);
        let plan: Vec<(i64, i64, i64, String)> = async {
            Ok::<_, plexus_store::StoreError>(plexus_store::tenant_tx!(&scope, single, conn => {
                let text = format!("EXPLAIN QUERY PLAN {}", super::LEARNER_RECORD);
                sqlx::query_as(sqlx::AssertSqlSafe(text)).bind("t1").bind("花子").fetch_all(&mut *conn).await?
            }))
        }
        .await
        .unwrap();
        let plan: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
        assert_eq!(
            plan,
            [
                "COMPOUND QUERY",
                "LEFT-MOST SUBQUERY",
                "SEARCH learning_learners USING INDEX sqlite_autoindex_learning_learners_1 (tenant_id=? AND user_id=?)",
                "UNION ALL",
                "SEARCH learning_mastery USING INDEX sqlite_autoindex_learning_mastery_1 (tenant_id=? AND user_id=?)",
                "UNION ALL",
                "CO-ROUTINE completed",
                "SEARCH learning_events USING COVERING INDEX learning_events_completed \
                 (tenant_id=? AND user_id=? AND content_id>?)",
                // The co-routine's rows, as the index gives them.
                "SCAN completed",
            ],
            "the plan of a learner's record"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
