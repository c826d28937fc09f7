//! The embedded FHIR store: every resource sealed at rest with its tenant's
//! data key (the trust layer's envelope encryption), search values beside
//! it (see [`crate::params`]), care relationships, access grants and the
//! disclosure log, all in tenant-bound transactions
//! ([`plexus_store::tenant_tx!`]; row-level security on PostgreSQL).
//!
//! A bundle is written in one transaction: all of it or none. Writing a
//! resource whose content did not change changes nothing (its digest is
//! compared), so a re-import is idempotent and reports what it left alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use plexus_core::TenantId;
use plexus_store::{Migration, Migrations, SensitiveField, Store, StoreError, TenantScope};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::import::Entry;
use crate::params::{self, SearchValue};

/// The module's tables.
pub const MIGRATIONS: Migrations = Migrations {
    owner: "health",
    steps: &[
        Migration {
            version: 1,
            name: "fhir_store",
            sqlite: include_str!("../migrations/0001_fhir_store.sqlite.sql"),
            postgres: include_str!("../migrations/0001_fhir_store.postgres.sql"),
        },
        Migration {
            version: 2,
            name: "covering_indexes",
            sqlite: include_str!("../migrations/0002_covering_indexes.sqlite.sql"),
            postgres: include_str!("../migrations/0002_covering_indexes.postgres.sql"),
        },
        Migration {
            version: 3,
            name: "disclosure_log",
            sqlite: include_str!("../migrations/0003_disclosure_log.sqlite.sql"),
            postgres: include_str!("../migrations/0003_disclosure_log.postgres.sql"),
        },
    ],
};

/// The disclosure log's own file on SQLite (see [`Store::beside`]); on
/// PostgreSQL the log stays in the main database.
pub const LOG_STORE: &str = "health-log";

/// The tables of the disclosure log's own SQLite file.
pub const LOG_MIGRATIONS: Migrations = Migrations {
    owner: "health-log",
    steps: &[Migration {
        version: 1,
        name: "disclosures",
        sqlite: include_str!("../migrations/log/0001_disclosures.sqlite.sql"),
        postgres: "SELECT 1",
    }],
};

/// Disclosures moved at a time from the main SQLite file to the log's.
const MOVE: usize = 500;

/// Resources are stored sealed in this column.
pub const BODY: SensitiveField = SensitiveField::new("health_resources", "body");
/// The tenant's blind-index key, sealed.
const BLIND_KEY: SensitiveField = SensitiveField::new("health_keys", "blind");

/// A grant's kind: emergency access.
pub const BREAK_GLASS: &str = "break-the-glass";
/// A grant's kind: an administrator's assignment.
pub const ASSIGNMENT: &str = "assignment";

/// Rows per multi-row INSERT.
const CHUNK: usize = 400;

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PutReport {
    /// Resources that did not exist before.
    pub created: usize,
    /// Resources whose content changed (a new version).
    pub updated: usize,
    /// Resources already stored with the same content.
    pub unchanged: usize,
}

impl PutReport {
    /// Add another report's counts.
    pub fn add(&mut self, o: PutReport) {
        self.created += o.created;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
    }
}

/// A search of the store.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Resource types (empty: every indexed type).
    pub kinds: Vec<String>,
    /// Only this patient's resources.
    pub patient: Option<String>,
    /// A code, with its system when given (`system|code`).
    pub code: Option<(Option<String>, String)>,
    /// Words that must appear in the display text of a code.
    pub text: Option<String>,
    /// Dates (ISO 8601, compared as written, to the precision given).
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

/// A resource a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: String,
    pub id: String,
    pub patient: Option<String>,
}

/// Access to a patient granted to a user: an explicit assignment by an
/// administrator, or break-the-glass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Grant {
    pub id: String,
    /// The user (principal subject) it is for.
    pub subject: String,
    pub patient: String,
    /// `assignment` or `break-the-glass`.
    pub kind: String,
    pub reason: String,
    pub granted_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: access ends then.
    pub until: String,
}

/// One disclosure: who reached which patient's data, when, why and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Disclosure {
    /// RFC 3339.
    pub at: String,
    /// The call (its audit record has the same id).
    pub request_id: String,
    pub subject: String,
    pub roles: Vec<String>,
    pub patient: String,
    pub tool: String,
    /// `read` or `search` (IHE BALP patterns).
    pub action: String,
    /// Data types released.
    pub types: Vec<String>,
    /// Why: the care relationship, the assignment, the break-the-glass
    /// reason, research (de-identified), or the refusal.
    pub purpose: String,
    pub break_glass: bool,
    /// `success`, `denied`, `partial`.
    pub outcome: String,
    /// The client's network address, when known.
    pub client: String,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct FhirStore {
    store: Store,
    /// Where the disclosure log is: a SQLite file of its own (its commits,
    /// one every few calls, would otherwise empty the readers' page caches
    /// of the clinical data), or the same PostgreSQL database.
    log: Store,
    blind_keys: Arc<Mutex<HashMap<TenantId, Arc<[u8; 32]>>>>,
    /// Each clinician's practitioner keys (two reads per call otherwise).
    /// Emptied whenever this store writes a Practitioner; the time to live
    /// bounds how long another node's change takes to count here.
    practitioners: moka::sync::Cache<(TenantId, String), Arc<Vec<String>>>,
    /// Disclosures waiting for the group commit.
    disclosures: tokio::sync::mpsc::UnboundedSender<PendingDisclosures>,
}

/// One caller's disclosures, and where to tell it they are committed.
type PendingDisclosures = (TenantId, Vec<Disclosure>, tokio::sync::oneshot::Sender<Result<(), StoreError>>);

/// Callers whose practitioner keys are kept, and for how long.
const PRACTITIONER_CACHE_ENTRIES: u64 = 10_000;
const PRACTITIONER_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// Most callers' disclosures written in one transaction.
const GROUP: usize = 256;

/// The group commit of disclosures: whatever callers queued while the last
/// transaction was committing goes into the next one (per tenant), so
/// concurrent calls share a commit (and its fsync) instead of queueing for
/// the write lock one by one. Each caller still waits for its own rows to
/// be committed. If a shared transaction fails, each caller's rows are
/// retried on their own, so one caller's failure is only its own.
async fn commit_disclosures(store: Store, mut rx: tokio::sync::mpsc::UnboundedReceiver<PendingDisclosures>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        while !batch.is_empty() {
            let tenant = batch[0].0.clone();
            let (mine, rest): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(t, _, _)| *t == tenant);
            batch = rest;
            let rows: Vec<&Disclosure> = mine.iter().flat_map(|(_, list, _)| list.iter()).collect();
            match write_disclosures(&store, &tenant, &rows).await {
                Ok(()) => {
                    for (_, _, done) in mine {
                        let _ = done.send(Ok(()));
                    }
                }
                Err(e) if mine.len() == 1 => {
                    let (_, _, done) = mine.into_iter().next().expect("one");
                    let _ = done.send(Err(e));
                }
                Err(_) => {
                    for (_, list, done) in mine {
                        let rows: Vec<&Disclosure> = list.iter().collect();
                        let _ = done.send(write_disclosures(&store, &tenant, &rows).await);
                    }
                }
            }
        }
    }
}

/// Bind the columns of disclosure `$d` of tenant `$tenant` (from
/// `tenant_id` to `client`, in table order) to the row builder `$b`.
macro_rules! bind_disclosure {
    ($b:ident, $tenant:expr, $d:expr) => {
        $b.push_bind($tenant)
            .push_bind(&$d.at)
            .push_bind(&$d.request_id)
            .push_bind(&$d.subject)
            .push_bind($d.roles.join(","))
            .push_bind(&$d.patient)
            .push_bind(&$d.tool)
            .push_bind(&$d.action)
            .push_bind($d.types.join(","))
            .push_bind(&$d.purpose)
            .push_bind($d.break_glass)
            .push_bind(&$d.outcome)
            .push_bind(&$d.client)
    };
}

/// Insert the disclosures `$chunk` of tenant `$tenant` on `$conn`, in one
/// statement.
macro_rules! insert_disclosures {
    ($conn:ident, $tenant:expr, $chunk:expr) => {{
        let mut qb = sqlx::QueryBuilder::new(
            "INSERT INTO health_disclosures (tenant_id, at, request_id, subject, roles, patient, tool, action, \
             types, purpose, break_glass, outcome, client) ",
        );
        qb.push_values($chunk, |mut b, d| {
            bind_disclosure!(b, $tenant, d);
        });
        qb.build().execute(&mut *$conn).await?;
    }};
}

async fn write_disclosures(store: &Store, tenant: &TenantId, list: &[&Disclosure]) -> Result<(), StoreError> {
    let scope = store.tenant(tenant);
    if list.len() <= CHUNK {
        // One statement: on SQLite it commits itself when the write gate is
        // free (one round trip to the connection's thread instead of three).
        plexus_store::tenant_tx!(&scope, write_one, conn => insert_disclosures!(conn, scope.id().as_str(), list));
    } else {
        plexus_store::tenant_tx!(&scope, write, conn => {
            for chunk in list.chunks(CHUNK) {
                insert_disclosures!(conn, scope.id().as_str(), chunk);
            }
        });
    }
    Ok(())
}

impl std::fmt::Debug for FhirStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirStore").field("backend", &self.store.backend()).finish_non_exhaustive()
    }
}

/// SHA-256 of the resource's JSON text.
pub fn content_digest(v: &Value) -> String {
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

/// Now, RFC 3339 in UTC.
pub fn now_text() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// `t` as RFC 3339 (seconds).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// A search value ready to insert (blind ones hashed).
struct Row_ {
    kind: String,
    id: String,
    patient: Option<String>,
    param: &'static str,
    system: String,
    code: String,
    lo: Option<String>,
    hi: Option<String>,
    num: Option<f64>,
}

/// A resource ready to write.
struct Prepared {
    kind: String,
    id: String,
    patient: Option<String>,
    digest: String,
    sealed: String,
    version: i64,
    rows: Vec<Row_>,
    carers: Vec<String>,
}

impl FhirStore {
    /// The store over `store`, its tables created or brought up to date.
    pub async fn open(store: Store) -> Result<Self, StoreError> {
        store.migrate(&MIGRATIONS).await?;
        let log = store.beside(LOG_STORE).await?;
        if store.backend() == plexus_store::Backend::Sqlite {
            log.migrate(&LOG_MIGRATIONS).await?;
            let moved = move_disclosures(&store, &log).await?;
            if moved > 0 {
                tracing::info!(moved, "disclosures moved to the disclosure log's own file");
            }
        }
        let (disclosures, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(commit_disclosures(log.clone(), rx));
        let practitioners = moka::sync::Cache::builder()
            .max_capacity(PRACTITIONER_CACHE_ENTRIES)
            .time_to_live(PRACTITIONER_CACHE_TTL)
            .build();
        Ok(Self { store, log, blind_keys: Arc::default(), practitioners, disclosures })
    }

    /// The underlying store.
    pub fn inner(&self) -> &Store {
        &self.store
    }

    fn scope(&self, tenant: &TenantId) -> TenantScope<'_> {
        self.store.tenant(tenant)
    }

    /// The tenant's blind-index key: made on first use, kept sealed.
    async fn blind_key(&self, tenant: &TenantId) -> Result<Arc<[u8; 32]>, StoreError> {
        if let Some(k) = self.blind_keys.lock().get(tenant) {
            return Ok(Arc::clone(k));
        }
        let scope = self.scope(tenant);
        let sealed = match stored_blind_key(&scope).await? {
            Some(s) => s,
            None => {
                let mut fresh = [0u8; 32];
                getrandom::fill(&mut fresh).map_err(|e| StoreError::Crypto(format!("no randomness: {e}")))?;
                let sealed = scope.seal(&BLIND_KEY, &fresh).await?;
                plexus_store::tenant_tx!(&scope, write, conn => {
                    sqlx::query("INSERT INTO health_keys (tenant_id, blind) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(scope.id().as_str())
                        .bind(&sealed)
                        .execute(&mut *conn)
                        .await?;
                });
                // Another writer may have won the race: use what is stored.
                stored_blind_key(&scope).await?.ok_or_else(|| StoreError::NotFound("health blind-index key".into()))?
            }
        };
        let raw = scope.open(&BLIND_KEY, &sealed).await?;
        let key: [u8; 32] =
            raw.try_into().map_err(|_| StoreError::Crypto("health blind-index key has the wrong length".into()))?;
        let key = Arc::new(key);
        self.blind_keys.lock().insert(tenant.clone(), Arc::clone(&key));
        Ok(key)
    }

    /// The keyed hash a blind search value is stored as.
    fn blind(key: &[u8; 32], param: &str, material: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"));
        mac.update(param.as_bytes());
        mac.update(b"\0");
        mac.update(material.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The blind form of a person's identifier, name part or birth date, for
    /// an exact-match search.
    pub async fn blind_value(&self, tenant: &TenantId, param: &str, material: &str) -> Result<String, StoreError> {
        let key = self.blind_key(tenant).await?;
        Ok(Self::blind(&key, param, material))
    }

    /// Store `entries` (one bundle, or a batch of NDJSON lines) for
    /// `tenant` in one transaction. Content already stored as it is is left
    /// alone.
    pub async fn put(&self, tenant: &TenantId, entries: &[Entry]) -> Result<PutReport, StoreError> {
        let scope = self.scope(tenant);
        let mut report = PutReport::default();
        // What is stored now.
        let digests: Vec<Option<(String, i64)>> = plexus_store::tenant_tx!(&scope, read, conn => {
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                let row = sqlx::query(
                    "SELECT digest, version FROM health_resources WHERE tenant_id = $1 AND kind = $2 AND id = $3",
                )
                .bind(scope.id().as_str())
                .bind(&e.kind)
                .bind(&e.id)
                .fetch_optional(&mut *conn)
                .await?;
                out.push(match row {
                    Some(r) => Some((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)),
                    None => None,
                });
            }
            out
        });
        let key = self.blind_key(tenant).await?;
        let mut prepared = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (e, old) in entries.iter().zip(digests) {
            let digest = content_digest(&e.resource);
            // The same resource twice in one input: the last one counts.
            if !seen.insert((e.kind.as_str(), e.id.as_str())) {
                prepared.retain(|p: &Prepared| !(p.kind == e.kind && p.id == e.id));
            }
            let version = match &old {
                Some((d, _)) if *d == digest => {
                    report.unchanged += 1;
                    continue;
                }
                Some((_, v)) => {
                    report.updated += 1;
                    v + 1
                }
                None => {
                    report.created += 1;
                    1
                }
            };
            let patient = crate::fhir::patient_of(&e.resource);
            let rows = params::extract(&e.kind, &e.resource)
                .into_iter()
                .map(|v: SearchValue| Row_ {
                    kind: e.kind.clone(),
                    id: e.id.clone(),
                    patient: patient.clone(),
                    param: v.param,
                    code: if v.blind { Self::blind(&key, v.param, &v.code) } else { v.code },
                    system: v.system,
                    lo: v.lo,
                    hi: v.hi,
                    num: v.num,
                })
                .collect();
            let sealed = scope.seal(&BODY, e.resource.to_string().as_bytes()).await?;
            prepared.push(Prepared {
                kind: e.kind.clone(),
                id: e.id.clone(),
                carers: params::carers(&e.kind, &e.resource),
                patient,
                digest,
                sealed,
                version,
                rows,
            });
        }
        if prepared.is_empty() {
            return Ok(report);
        }
        let now = now_text();
        plexus_store::tenant_tx!(&scope, write, conn => {
            let t = scope.id().as_str();
            for p in &prepared {
                sqlx::query(
                    "INSERT INTO health_resources (tenant_id, kind, id, patient, version, digest, body, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (tenant_id, kind, id) DO UPDATE SET patient = excluded.patient, \
                     version = excluded.version, digest = excluded.digest, body = excluded.body, \
                     updated_at = excluded.updated_at",
                )
                .bind(t)
                .bind(&p.kind)
                .bind(&p.id)
                .bind(&p.patient)
                .bind(p.version)
                .bind(&p.digest)
                .bind(&p.sealed)
                .bind(&now)
                .execute(&mut *conn)
                .await?;
                if p.version > 1 {
                    sqlx::query("DELETE FROM health_search WHERE tenant_id = $1 AND kind = $2 AND id = $3")
                        .bind(t)
                        .bind(&p.kind)
                        .bind(&p.id)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("DELETE FROM health_care WHERE tenant_id = $1 AND via = $2")
                        .bind(t)
                        .bind(format!("{}/{}", p.kind, p.id))
                        .execute(&mut *conn)
                        .await?;
                }
            }
            let rows: Vec<&Row_> = prepared.iter().flat_map(|p| p.rows.iter()).collect();
            for chunk in rows.chunks(CHUNK) {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO health_search (tenant_id, kind, id, patient, param, system, code, lo, hi, num) ",
                );
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(t)
                        .push_bind(&r.kind)
                        .push_bind(&r.id)
                        .push_bind(&r.patient)
                        .push_bind(r.param)
                        .push_bind(&r.system)
                        .push_bind(&r.code)
                        .push_bind(&r.lo)
                        .push_bind(&r.hi)
                        .push_bind(r.num);
                });
                qb.build().execute(&mut *conn).await?;
            }
            for p in prepared.iter().filter(|p| !p.carers.is_empty()) {
                let Some(patient) = &p.patient else { continue };
                for c in &p.carers {
                    sqlx::query(
                        "INSERT INTO health_care (tenant_id, patient, practitioner, via) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(t)
                    .bind(patient)
                    .bind(c)
                    .bind(format!("{}/{}", p.kind, p.id))
                    .execute(&mut *conn)
                    .await?;
                }
            }
        });
        if prepared.iter().any(|p| p.kind == "Practitioner") {
            self.practitioners.invalidate_all();
        }
        Ok(report)
    }

    async fn open_body(scope: &TenantScope<'_>, sealed: &str) -> Result<Value, StoreError> {
        parse_body(&scope.open_str(&BODY, sealed).await?)
    }

    /// One resource.
    pub async fn get(&self, tenant: &TenantId, kind: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let scope = self.scope(tenant);
        let sealed: Option<String> = plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_scalar("SELECT body FROM health_resources WHERE tenant_id = $1 AND kind = $2 AND id = $3")
                .bind(scope.id().as_str())
                .bind(kind)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
        });
        match sealed {
            Some(s) => Ok(Some(Self::open_body(&scope, &s).await?)),
            None => Ok(None),
        }
    }

    /// The patient's resources of each of `kinds` (the Patient itself
    /// included when asked), read in one statement: kind → resources in id
    /// order (kinds without any are absent).
    pub async fn record(
        &self,
        tenant: &TenantId,
        patient: &str,
        kinds: &[&str],
    ) -> Result<BTreeMap<String, Vec<Value>>, StoreError> {
        let texts = self.record_texts(tenant, patient, kinds).await?;
        texts
            .into_iter()
            .map(|(kind, list)| {
                let values = list.into_iter().map(|(_, text)| parse_body(&text)).collect::<Result<_, _>>()?;
                Ok((kind, values))
            })
            .collect()
    }

    /// [`Self::record`] without parsing: kind → (id, the resource's JSON
    /// text as stored) in id order. The stored text is the resource's
    /// canonical JSON (compact, keys in code-point order: it was written
    /// from a parsed value), so it can go into an answer as it is; it is
    /// checked to be JSON without building a tree.
    pub async fn record_texts(
        &self,
        tenant: &TenantId,
        patient: &str,
        kinds: &[&str],
    ) -> Result<BTreeMap<String, Vec<(String, String)>>, StoreError> {
        let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        if kinds.is_empty() {
            return Ok(out);
        }
        let scope = self.scope(tenant);
        let rows: Vec<(String, String, String)> = plexus_store::tenant_tx!(&scope, single, conn => {
            let mut qb = sqlx::QueryBuilder::new("SELECT kind, id, body FROM health_resources WHERE tenant_id = ");
            qb.push_bind(scope.id().as_str()).push(" AND patient = ").push_bind(patient).push(" AND kind IN (");
            let mut sep = qb.separated(", ");
            for k in kinds {
                sep.push_bind(*k);
            }
            qb.push(") ORDER BY kind, id");
            qb.build_query_as().fetch_all(&mut *conn).await?
        });
        for (kind, id, sealed) in rows {
            let text = scope.open_str(&BODY, &sealed).await?;
            serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(not_json)?;
            out.entry(kind).or_default().push((id, text));
        }
        Ok(out)
    }

    /// Resources matching `q`, in (type, id) order.
    pub async fn find(&self, tenant: &TenantId, q: &Query) -> Result<Vec<Found>, StoreError> {
        let scope = self.scope(tenant);
        let kinds: Vec<String> = if q.kinds.is_empty() {
            crate::fhir::INDEXED.iter().map(|k| (*k).to_owned()).collect()
        } else {
            q.kinds.clone()
        };
        let text = q.text.as_ref().map(|t| {
            let escaped = t.trim().to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        // A `to` date covers the whole of what it names (2020-01-02 covers
        // 2020-01-02T23:59): '~' sorts after every digit, 'T', ':' and 'Z'.
        let to = q.to.as_ref().map(|t| format!("{t}~"));
        let rows: Vec<(String, String, Option<String>)> = plexus_store::tenant_tx!(&scope, single, conn => {
            let mut qb = sqlx::QueryBuilder::new("SELECT r.kind, r.id, r.patient FROM health_resources r WHERE r.tenant_id = ");
            qb.push_bind(scope.id().as_str());
            qb.push(" AND r.kind IN (");
            let mut sep = qb.separated(", ");
            for k in &kinds {
                sep.push_bind(k.as_str());
            }
            qb.push(")");
            if let Some(p) = &q.patient {
                qb.push(" AND r.patient = ").push_bind(p.as_str());
            }
            let exists = " AND EXISTS (SELECT 1 FROM health_search s WHERE s.tenant_id = r.tenant_id \
                          AND s.kind = r.kind AND s.id = r.id AND s.param = ";
            if let Some((system, code)) = &q.code {
                qb.push(exists).push("'code' AND s.code = ").push_bind(code.as_str());
                if let Some(sys) = system {
                    qb.push(" AND s.system = ").push_bind(sys.as_str());
                }
                qb.push(")");
            }
            if let Some(t) = &text {
                qb.push(exists).push("'text' AND s.code LIKE ").push_bind(t.as_str()).push(" ESCAPE '\\')");
            }
            if q.from.is_some() || to.is_some() {
                qb.push(exists).push("'date'");
                if let Some(f) = &q.from {
                    qb.push(" AND s.hi >= ").push_bind(f.as_str());
                }
                if let Some(t) = &to {
                    qb.push(" AND s.lo <= ").push_bind(t.as_str());
                }
                qb.push(")");
            }
            qb.push(" ORDER BY r.kind, r.id LIMIT ")
                .push_bind(q.limit as i64)
                .push(" OFFSET ")
                .push_bind(q.offset as i64);
            let rows = qb.build().fetch_all(&mut *conn).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
            }
            out
        });
        Ok(rows.into_iter().map(|(kind, id, patient)| Found { kind, id, patient }).collect())
    }

    /// Ids of resources of `kind` with a blind value (identifier, name part,
    /// birth date) equal to `material`.
    pub async fn find_blind(
        &self,
        tenant: &TenantId,
        kind: &str,
        param: &str,
        material: &str,
    ) -> Result<Vec<String>, StoreError> {
        let hashed = self.blind_value(tenant, param, material).await?;
        let scope = self.scope(tenant);
        Ok(plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_scalar::<_, String>(
                "SELECT DISTINCT id FROM health_search WHERE tenant_id = $1 AND param = $2 AND code = $3 AND kind = $4 \
                 ORDER BY id",
            )
            .bind(scope.id().as_str())
            .bind(param)
            .bind(&hashed)
            .bind(kind)
            .fetch_all(&mut *conn)
            .await?
        }))
    }

    /// The practitioner a user is, as care relationships name it: the
    /// `Practitioner` whose id is `subject` or that has `subject` as an
    /// identifier value; its id and `?identifier=system|value` forms.
    pub async fn practitioner_keys(&self, tenant: &TenantId, subject: &str) -> Result<Arc<Vec<String>>, StoreError> {
        let cached = (tenant.clone(), subject.to_owned());
        if let Some(keys) = self.practitioners.get(&cached) {
            return Ok(keys);
        }
        let keys = Arc::new(self.read_practitioner_keys(tenant, subject).await?);
        self.practitioners.insert(cached, Arc::clone(&keys));
        Ok(keys)
    }

    async fn read_practitioner_keys(&self, tenant: &TenantId, subject: &str) -> Result<Vec<String>, StoreError> {
        let mut ids = self.find_blind(tenant, "Practitioner", "identifier-value", subject).await?;
        if crate::fhir::is_id(subject) {
            ids.push(subject.to_owned());
        }
        ids.sort();
        ids.dedup();
        let mut keys = Vec::new();
        for id in &ids {
            let Some(p) = self.get(tenant, "Practitioner", id).await? else { continue };
            keys.push(id.clone());
            for ident in p.get("identifier").and_then(Value::as_array).into_iter().flatten() {
                if let (Some(s), Some(v)) =
                    (ident.get("system").and_then(Value::as_str), ident.get("value").and_then(Value::as_str))
                {
                    keys.push(format!("?identifier={s}|{v}"));
                }
            }
        }
        Ok(keys)
    }

    /// The resource that puts one of `keys` (a practitioner) in a care
    /// relationship with `patient`, if any (`CareTeam/<id>`, `Encounter/<id>`).
    pub async fn care_relationship(
        &self,
        tenant: &TenantId,
        keys: &[String],
        patient: &str,
    ) -> Result<Option<String>, StoreError> {
        if keys.is_empty() {
            return Ok(None);
        }
        let scope = self.scope(tenant);
        Ok(plexus_store::tenant_tx!(&scope, single, conn => {
            let mut qb = sqlx::QueryBuilder::new("SELECT via FROM health_care WHERE tenant_id = ");
            qb.push_bind(scope.id().as_str()).push(" AND patient = ").push_bind(patient).push(" AND practitioner IN (");
            let mut sep = qb.separated(", ");
            for k in keys {
                sep.push_bind(k.as_str());
            }
            qb.push(") ORDER BY via LIMIT 1");
            match qb.build().fetch_optional(&mut *conn).await? {
                Some(r) => Some(r.try_get::<String, _>(0)?),
                None => None,
            }
        }))
    }

    /// The grant in force for `subject` on `patient` at `now` (RFC 3339),
    /// the latest-ending first.
    pub async fn active_grant(
        &self,
        tenant: &TenantId,
        subject: &str,
        patient: &str,
        now: &str,
    ) -> Result<Option<Grant>, StoreError> {
        let scope = self.scope(tenant);
        let row = plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query(
                "SELECT id, subject, patient, kind, reason, granted_by, created_at, until FROM health_grants \
                 WHERE tenant_id = $1 AND subject = $2 AND patient = $3 AND until > $4 ORDER BY until DESC LIMIT 1",
            )
            .bind(scope.id().as_str())
            .bind(subject)
            .bind(patient)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| grant_from(&r))
            .transpose()?
        });
        Ok(row)
    }

    /// Record a grant.
    pub async fn grant(&self, tenant: &TenantId, g: &Grant) -> Result<(), StoreError> {
        let scope = self.scope(tenant);
        plexus_store::tenant_tx!(&scope, write, conn => {
            sqlx::query(
                "INSERT INTO health_grants (tenant_id, id, subject, patient, kind, reason, granted_by, created_at, until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(scope.id().as_str())
            .bind(&g.id)
            .bind(&g.subject)
            .bind(&g.patient)
            .bind(&g.kind)
            .bind(&g.reason)
            .bind(&g.granted_by)
            .bind(&g.created_at)
            .bind(&g.until)
            .execute(&mut *conn)
            .await?;
        });
        Ok(())
    }

    /// Record disclosures: returns once they are committed (the data may
    /// then be answered). Concurrent callers share a transaction.
    pub async fn disclose(&self, tenant: &TenantId, list: &[Disclosure]) -> Result<(), StoreError> {
        if list.is_empty() {
            return Ok(());
        }
        let (done, committed) = tokio::sync::oneshot::channel();
        self.disclosures.send((tenant.clone(), list.to_vec(), done)).map_err(|_| StoreError::WriterStopped)?;
        committed.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Disclosures, oldest first: of one patient or all, within `[from, to]`.
    pub async fn disclosures(
        &self,
        tenant: &TenantId,
        patient: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Disclosure>, StoreError> {
        let scope = self.log.tenant(tenant);
        let to = to.map(|t| format!("{t}~"));
        let rows = plexus_store::tenant_tx!(&scope, single, conn => {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT at, request_id, subject, roles, patient, tool, action, types, purpose, break_glass, outcome, \
                 client FROM health_disclosures WHERE tenant_id = ",
            );
            qb.push_bind(scope.id().as_str());
            if let Some(p) = patient {
                qb.push(" AND patient = ").push_bind(p);
            }
            if let Some(f) = from {
                qb.push(" AND at >= ").push_bind(f);
            }
            if let Some(t) = &to {
                qb.push(" AND at <= ").push_bind(t.as_str());
            }
            qb.push(" ORDER BY seq LIMIT ").push_bind(limit as i64);
            qb.build().fetch_all(&mut *conn).await?.iter().map(disclosure_from).collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }

    /// Every stored resource's id and type (import resolves `urn:uuid`
    /// references to resources of earlier runs with it).
    pub async fn ids(&self, tenant: &TenantId) -> Result<HashMap<String, String>, StoreError> {
        let scope = self.scope(tenant);
        let rows: Vec<(String, String)> = plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_as("SELECT id, kind FROM health_resources WHERE tenant_id = $1")
                .bind(scope.id().as_str())
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(rows.into_iter().collect())
    }

    /// Resources stored per type.
    pub async fn counts(&self, tenant: &TenantId) -> Result<BTreeMap<String, i64>, StoreError> {
        let scope = self.scope(tenant);
        let rows: Vec<(String, i64)> = plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_as("SELECT kind, count(*) FROM health_resources WHERE tenant_id = $1 GROUP BY kind")
                .bind(scope.id().as_str())
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(rows.into_iter().collect())
    }
}

async fn stored_blind_key(scope: &TenantScope<'_>) -> Result<Option<String>, StoreError> {
    Ok(plexus_store::tenant_tx!(scope, single, conn => {
        sqlx::query_scalar::<_, String>("SELECT blind FROM health_keys WHERE tenant_id = $1")
            .bind(scope.id().as_str())
            .fetch_optional(&mut *conn)
            .await?
    }))
}

fn split_list(s: String) -> Vec<String> {
    if s.is_empty() { Vec::new() } else { s.split(',').map(str::to_owned).collect() }
}

fn grant_from<R: Row>(r: &R) -> Result<Grant, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Grant {
        id: r.try_get("id")?,
        subject: r.try_get("subject")?,
        patient: r.try_get("patient")?,
        kind: r.try_get("kind")?,
        reason: r.try_get("reason")?,
        granted_by: r.try_get("granted_by")?,
        created_at: r.try_get("created_at")?,
        until: r.try_get("until")?,
    })
}

/// Move the disclosures an older build wrote into the main SQLite file over
/// to the log's own file, tenant by tenant, oldest first, keeping their
/// sequence numbers. Each batch is committed in the log's file first and
/// then deleted from the main one: a crash in between leaves it in both,
/// and the next open copies it again, which changes nothing (same `seq`).
/// Migration 3 of the main file keeps older builds, which would write
/// there again, from opening it.
async fn move_disclosures(store: &Store, log: &Store) -> Result<usize, StoreError> {
    let mut moved = 0;
    for tenant in store.list_tenants().await? {
        let (from, to) = (store.tenant(&tenant.id), log.tenant(&tenant.id));
        loop {
            let rows: Vec<(i64, Disclosure)> = plexus_store::tenant_tx!(&from, single, conn => {
                sqlx::query(
                    "SELECT seq, at, request_id, subject, roles, patient, tool, action, types, purpose, break_glass, \
                     outcome, client FROM health_disclosures WHERE tenant_id = $1 ORDER BY seq LIMIT $2",
                )
                .bind(from.id().as_str())
                .bind(MOVE as i64)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| Ok((r.try_get::<i64, _>("seq")?, disclosure_from(r)?)))
                .collect::<Result<Vec<_>, StoreError>>()?
            });
            let Some(last) = rows.last().map(|(seq, _)| *seq) else { break };
            plexus_store::tenant_tx!(&to, write, conn => {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT OR IGNORE INTO health_disclosures (seq, tenant_id, at, request_id, subject, roles, \
                     patient, tool, action, types, purpose, break_glass, outcome, client) ",
                );
                qb.push_values(&rows, |mut b, (seq, d)| {
                    b.push_bind(*seq);
                    bind_disclosure!(b, to.id().as_str(), d);
                });
                qb.build().execute(&mut *conn).await?;
            });
            plexus_store::tenant_tx!(&from, write_one, conn => {
                sqlx::query("DELETE FROM health_disclosures WHERE tenant_id = $1 AND seq <= $2")
                    .bind(from.id().as_str())
                    .bind(last)
                    .execute(&mut *conn)
                    .await?;
            });
            moved += rows.len();
        }
    }
    Ok(moved)
}

fn disclosure_from<R: Row>(r: &R) -> Result<Disclosure, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> bool: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Disclosure {
        at: r.try_get("at")?,
        request_id: r.try_get("request_id")?,
        subject: r.try_get("subject")?,
        roles: split_list(r.try_get("roles")?),
        patient: r.try_get("patient")?,
        tool: r.try_get("tool")?,
        action: r.try_get("action")?,
        types: split_list(r.try_get("types")?),
        purpose: r.try_get("purpose")?,
        break_glass: r.try_get("break_glass")?,
        outcome: r.try_get("outcome")?,
        client: r.try_get("client")?,
    })
}

fn not_json(e: serde_json::Error) -> StoreError {
    StoreError::Crypto(format!("a stored resource is not JSON: {e}"))
}

fn parse_body(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(not_json)
}
