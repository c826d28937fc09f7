//! Statements at rest: one row per statement in `learning_xapi_statements`
//! (the normalized JSON and the columns the filters use) and the agents
//! and activities each mentions in `learning_xapi_related`. Every
//! statement runs in a transaction bound to the caller's tenant
//! ([`plexus_store::tenant_tx!`]; row-level security on PostgreSQL).

use std::collections::{HashMap, HashSet};

use plexus_core::context::TenantId;
use plexus_store::{Backend, Store, StoreError};
use serde_json::Value;
use sha2::Digest as _;
use time::OffsetDateTime;

use super::XapiError;
use super::format::{format_timestamp, sort_key, uuid};
use super::json;
use super::query::{Format, GetResult, ListQuery, StatementQuery, StatementResult, ids_format, more_url};
use super::statement::{self, Facts, Statement, check_unique_ids, comparison_digest};

/// The statement version the LRS sets when a statement has none.
const DEFAULT_VERSION: &str = "1.0.0";

/// Rows per multi-row INSERT (14 values each: well under both databases'
/// limits on bind parameters).
const INSERT_CHUNK: usize = 40;

/// Ids per `IN (...)` list.
const ID_CHUNK: usize = 400;

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    Bool(bool),
    OptBool(Option<bool>),
    Int(i64),
    Real(f64),
    OptReal(Option<f64>),
}

/// SQL text with `$n` placeholders and the values they stand for. The text
/// is built from constants only; every value is bound.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) binds: Vec<Bind>,
}

/// A caller's write that must change exactly one row before its statements
/// are stored (for example a session moving from the version the caller
/// read): run first in the same transaction, on SQLite in the same round
/// trip as the duplicate check. `sql` numbers its values `$1`..`$n`, in the
/// order of `binds`. If it changes no row the write is refused with
/// [`XapiError::Overtaken`] and `refusal`.
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) sql: &'static str,
    pub(crate) binds: Vec<Bind>,
    pub(crate) refusal: String,
}

impl Sql {
    /// `text` with `binds` for its `$1`..`$n`.
    pub(crate) fn new(text: &str, binds: impl IntoIterator<Item = Bind>) -> Self {
        Self { text: text.to_owned(), binds: binds.into_iter().collect() }
    }

    /// Bind `b`; returns its placeholder.
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }

    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// Bind `values` and push `($a, $b, …)`, after a comma unless `first`: one
    /// row of a multi-row `INSERT … VALUES`.
    fn push_row(&mut self, first: bool, values: impl IntoIterator<Item = Bind>) {
        let placeholders: Vec<String> = values.into_iter().map(|b| self.bind(b)).collect();
        self.push(if first { "(" } else { ", (" });
        self.push(&placeholders.join(", "));
        self.push(")");
    }

    /// Bind each of `ids` and push `$a, $b, …)`: the rest of an `IN (` list.
    fn push_ids<'i>(&mut self, ids: impl IntoIterator<Item = &'i str>) {
        for (i, id) in ids.into_iter().enumerate() {
            let p = self.bind(Bind::Text(id.to_owned()));
            self.push(if i == 0 { "" } else { ", " });
            self.push(&p);
        }
        self.push(")");
    }
}

/// Most values bound to one multi-statement text on SQLite (its limit is
/// 32,766 per text; one statement here binds at most a few thousand).
const SQLITE_BINDS_PER_TEXT: usize = 16_000;

/// Write statements to run in order. SQLite runs several statements of one
/// text in one round trip to its connection's thread (each `$n` is bound by
/// number in every statement), so they share one text; PostgreSQL takes one
/// statement per text.
struct Writes {
    postgres: bool,
    texts: Vec<Sql>,
}

impl Writes {
    fn new(postgres: bool) -> Self {
        Self { postgres, texts: Vec::new() }
    }

    /// The text to push the next statement to.
    fn next(&mut self) -> &mut Sql {
        let fresh = match self.texts.last_mut() {
            Some(last) if !self.postgres && last.binds.len() < SQLITE_BINDS_PER_TEXT => {
                last.push(";\n");
                false
            }
            _ => true,
        };
        if fresh {
            self.texts.push(Sql::default());
        }
        let n = self.texts.len();
        &mut self.texts[n - 1]
    }

    fn done(self) -> Vec<Sql> {
        self.texts
    }
}

/// `$query` with every value of `$binds` bound in order.
macro_rules! bound {
    ($query:expr, $binds:expr) => {{
        let mut q = $query;
        for b in $binds {
            q = match b {
                Bind::Text(s) => q.bind(s.clone()),
                Bind::OptText(s) => q.bind(s.clone()),
                Bind::Bool(v) => q.bind(*v),
                Bind::OptBool(v) => q.bind(*v),
                Bind::Int(v) => q.bind(*v),
                Bind::Real(v) => q.bind(*v),
                Bind::OptReal(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// A connection that runs [`Sql`] texts in the caller's transaction:
/// sqlx's connections to either database, or the SQLite write gate's
/// synchronous connection ([`SyncConn`]), whose statements run on the
/// calling thread (its futures are ready at once). On SQLite a text may
/// hold several statements, separated by `;\n`.
pub(crate) trait Run: Send {
    /// Run `sql`; the rows its statements changed.
    fn exec(&mut self, sql: Sql) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Run `sql`; the rows its statements returned.
    fn rows<T: Decoded>(&mut self, sql: Sql) -> impl Future<Output = Result<Vec<T>, sqlx::Error>> + Send;

    /// Run `sql`; its first row, if it returned one.
    fn first<T: Decoded>(&mut self, sql: Sql) -> impl Future<Output = Result<Option<T>, sqlx::Error>> + Send {
        async move { Ok(self.rows(sql).await?.into_iter().next()) }
    }

    /// Run `sql`; its first row, an error if it returned none.
    fn one<T: Decoded>(&mut self, sql: Sql) -> impl Future<Output = Result<T, sqlx::Error>> + Send {
        async move { self.first(sql).await?.ok_or(sqlx::Error::RowNotFound) }
    }
}

/// A row type every [`Run`] decodes: a tuple of plain values.
pub(crate) trait Decoded:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + FromSync
    + Send
    + Unpin
{
}

impl<T> Decoded for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + FromSync
        + Send
        + Unpin
{
}

/// A row as the synchronous connection reads it.
pub(crate) trait FromSync: Sized {
    fn from_sync(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

macro_rules! from_sync {
    ($($t:ident $i:tt),+) => {
        impl<$($t: rusqlite::types::FromSql),+> FromSync for ($($t,)+) {
            fn from_sync(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok(($(row.get::<_, $t>($i)?,)+))
            }
        }
    };
}

from_sync!(A 0);
from_sync!(A 0, B 1);
from_sync!(A 0, B 1, C 2);
from_sync!(A 0, B 1, C 2, D 3);
from_sync!(A 0, B 1, C 2, D 3, E 4);
from_sync!(A 0, B 1, C 2, D 3, E 4, F 5);

macro_rules! run_sqlx {
    ($conn_ty:ty) => {
        impl Run for $conn_ty {
            async fn exec(&mut self, sql: Sql) -> Result<u64, sqlx::Error> {
                let q = sqlx::query(sqlx::AssertSqlSafe(sql.text));
                Ok(bound!(q, &sql.binds).execute(&mut *self).await?.rows_affected())
            }

            async fn rows<T: Decoded>(&mut self, sql: Sql) -> Result<Vec<T>, sqlx::Error> {
                let q = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql.text));
                bound!(q, &sql.binds).fetch_all(&mut *self).await
            }
        }
    };
}

run_sqlx!(sqlx::SqliteConnection);
run_sqlx!(sqlx::PgConnection);

/// The SQLite write gate's synchronous connection, inside the gate's
/// transaction (`plexus_store::WriteGate::enter_sync`).
pub(crate) struct SyncConn<'c>(pub(crate) &'c mut rusqlite::Connection);

impl SyncConn<'_> {
    /// Run each statement of `sql` in turn (prepared once, then cached),
    /// each `$n` bound to the `n`th value, passing every row to `row`; the
    /// rows the writing statements changed.
    fn each(
        &self,
        sql: &Sql,
        mut row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<()>,
    ) -> Result<u64, sqlx::Error> {
        let failed = |e: rusqlite::Error| sqlx::Error::Protocol(format!("sqlite: {e}"));
        let mut changed = 0;
        for text in sql.text.split(";\n").filter(|t| !t.trim().is_empty()) {
            let mut stmt = self.0.prepare_cached(text).map_err(failed)?;
            for i in 1..=stmt.parameter_count() {
                let name = stmt.parameter_name(i).unwrap_or("?");
                let value = name
                    .strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| sql.binds.get(n.checked_sub(1)?));
                let Some(value) = value else {
                    return Err(sqlx::Error::Protocol(format!("sqlite: no value for parameter {name}")));
                };
                match value {
                    Bind::Text(v) => stmt.raw_bind_parameter(i, v),
                    Bind::OptText(v) => stmt.raw_bind_parameter(i, v),
                    Bind::Bool(v) => stmt.raw_bind_parameter(i, v),
                    Bind::OptBool(v) => stmt.raw_bind_parameter(i, v),
                    Bind::Int(v) => stmt.raw_bind_parameter(i, v),
                    Bind::Real(v) => stmt.raw_bind_parameter(i, v),
                    Bind::OptReal(v) => stmt.raw_bind_parameter(i, v),
                }
                .map_err(failed)?;
            }
            let writes = !stmt.readonly();
            let mut rows = stmt.raw_query();
            while let Some(r) = rows.next().map_err(failed)? {
                row(r).map_err(failed)?;
            }
            drop(rows);
            if writes {
                changed += self.0.changes();
            }
        }
        Ok(changed)
    }
}

impl Run for SyncConn<'_> {
    async fn exec(&mut self, sql: Sql) -> Result<u64, sqlx::Error> {
        self.each(&sql, |_| Ok(()))
    }

    async fn rows<T: Decoded>(&mut self, sql: Sql) -> Result<Vec<T>, sqlx::Error> {
        let mut out = Vec::new();
        self.each(&sql, |r| {
            out.push(T::from_sync(r)?);
            Ok(())
        })?;
        Ok(out)
    }
}

/// One write transaction of a tenant's scope, its body run with `$run`
/// bound to a [`Run`]: on a SQLite file the write gate's synchronous
/// connection ([`SyncConn`]; its statements run on this thread), else
/// sqlx's connection inside [`plexus_store::tenant_tx`]. `$mode` is
/// `write` (the call waits for the commit's `fdatasync`) or
/// `write_by_answer` (the wait goes to the call's durability barrier,
/// beside its audit record's: only for writes followed by nothing outside
/// the process before the answer). An error in the body rolls the writer
/// back on either path. Evaluates to the body's value.
macro_rules! gate_write {
    ($scope:expr, $mode:ident, $run:ident => $body:expr) => {{
        let scope: &plexus_store::TenantScope<'_> = $scope;
        match scope.enter_sync().await? {
            Some(mut member) => {
                let out = {
                    let $run = &mut $crate::xapi::SyncConn(member.sync_conn()?);
                    $body
                };
                $crate::xapi::gate_write!(@finish $mode, member);
                out
            }
            None => plexus_store::tenant_tx!(scope, $mode, conn => {
                let $run = &mut *conn;
                $body
            }),
        }
    }};
    (@finish write, $member:ident) => {
        $member.finish().await?
    };
    (@finish write_by_answer, $member:ident) => {
        $member.finish_by_answer().await?
    };
}
pub(crate) use gate_write;

/// A statement stored before, as the duplicate and voiding checks see it.
struct Existing {
    digest: String,
    occurred: String,
    ts_given: bool,
    voiding: bool,
}

/// A statement ready to insert.
struct Row {
    id: String,
    actor_key: Option<String>,
    verb_id: String,
    activity_id: Option<String>,
    registration: Option<String>,
    ref_target: Option<String>,
    voiding: bool,
    /// The `stored` column (sort key).
    stored: String,
    occurred: String,
    ts_given: bool,
    digest: String,
    body: String,
    agents: Vec<(String, bool)>,
    activities: Vec<(String, bool)>,
}

/// A cap on the statements a tenant may store (voided ones included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLimit {
    /// At most this many statements stored.
    pub max: u64,
    /// The message of the refusal (403) when a write would exceed it.
    pub refusal: String,
}

/// Where an [`XapiStore`] learns each tenant's [`StatementLimit`]. The
/// limit is checked inside the write transaction, under the tenant's write
/// lock, against a counter kept by every write, so concurrent writers
/// cannot overshoot it.
#[async_trait::async_trait]
pub trait StatementQuota: std::fmt::Debug + Send + Sync + 'static {
    /// The tenant's limit; `None`: unlimited.
    async fn limit(&self, tenant: &TenantId) -> Result<Option<StatementLimit>, XapiError>;
}

/// The xAPI Statement Resource over a [`Store`]. The caller runs
/// `store.migrate(&crate::store::MIGRATIONS)` first; tenants must exist in
/// the store's tenant directory.
#[derive(Debug, Clone)]
pub struct XapiStore {
    shards: crate::store::Shards,
    quota: Option<std::sync::Arc<dyn StatementQuota>>,
}

impl XapiStore {
    /// The statement store over `store`.
    pub fn new(store: Store) -> Self {
        Self::over(crate::store::Shards::single(store))
    }

    /// The statement store over `shards` (each tenant's statements in its
    /// place).
    pub fn over(shards: crate::store::Shards) -> Self {
        Self { shards, quota: None }
    }

    /// The same store, refusing writes beyond each tenant's limit.
    #[must_use]
    pub fn with_quota(mut self, quota: std::sync::Arc<dyn StatementQuota>) -> Self {
        self.quota = Some(quota);
        self
    }

    /// The underlying (main) store.
    pub fn inner(&self) -> &Store {
        self.shards.main()
    }

    /// POST Statements: one statement or an array, all or nothing. Returns
    /// the ids in order (generated where absent). `authority` (an Agent or
    /// Group, from the caller's credentials) replaces any the statements
    /// carry. A statement whose id is stored already is accepted if it is
    /// the same statement (see the comparison rules on
    /// [`XapiStore::post_statements`]) and refused with 409 otherwise; ids
    /// repeated within the batch are refused with 400.
    pub async fn post(&self, tenant: &TenantId, body: &[u8], authority: &Value) -> Result<Vec<String>, XapiError> {
        let (statements, array) = statement::parse_body(body)?;
        self.store_batch(tenant, statements, authority, array).await
    }

    /// PUT Statements: store one statement under `statement_id`; an `id`
    /// in the body must be the same. Idempotent like [`XapiStore::post`].
    pub async fn put(
        &self,
        tenant: &TenantId,
        statement_id: &str,
        body: &[u8],
        authority: &Value,
    ) -> Result<(), XapiError> {
        let id = uuid(statement_id)
            .ok_or_else(|| XapiError::invalid("statementId", "must be a UUID in standard string form"))?;
        let mut v = json::parse(body)?;
        let Some(m) = v.as_object_mut() else {
            return Err(XapiError::invalid("body", format!("must be a statement object, not {}", json::kind(&v))));
        };
        if let Some(given) = m.get("id") {
            if let Some(given_id) = given.as_str().and_then(uuid)
                && given_id != id
            {
                return Err(XapiError::invalid("statement.id", "does not match the statementId parameter"));
            }
        } else {
            m.insert("id".into(), Value::String(id));
        }
        let s = Statement::validate(&v, "statement")?;
        self.store_batch(tenant, vec![s], authority, false).await.map(|_| ())
    }

    /// Store validated statements (from [`statement::parse_statements`],
    /// [`Statement::from_value`] or [`super::SimpleStatement::build`]), as
    /// [`XapiStore::post`] does.
    ///
    /// The LRS sets `stored` (now), `authority`, `version` (`1.0.0` when
    /// absent) and `timestamp` (`stored` when absent). A statement whose id
    /// exists already is the same statement when it differs only in what
    /// the specification exempts from immutability: `stored`,
    /// `authority`, `version`, a `timestamp` the LRS assigned, attachments,
    /// verb `display`, activity definitions, the order of group members
    /// and the case of email domains. Voiding a voiding statement is
    /// refused (400); voiding a statement not stored (yet) is accepted.
    pub async fn post_statements(
        &self,
        tenant: &TenantId,
        statements: Vec<Statement>,
        authority: &Value,
    ) -> Result<Vec<String>, XapiError> {
        let array = statements.len() != 1;
        self.store_batch(tenant, statements, authority, array).await
    }

    async fn store_batch(
        &self,
        tenant: &TenantId,
        statements: Vec<Statement>,
        authority: &Value,
        array: bool,
    ) -> Result<Vec<String>, XapiError> {
        let ids: Vec<String> = statements.iter().map(|s| s.id().to_owned()).collect();
        let batch = self.prepare(tenant, statements, authority, array).await?;
        // A concurrent writer of the same id wins the unique index: run the
        // whole batch again once, which then compares against its row.
        match self.write(tenant, &batch).await {
            Err(XapiError::Store(StoreError::Database(e))) if is_unique_violation(&e) => {
                self.write(tenant, &batch).await?;
            }
            other => other?,
        }
        Ok(ids)
    }

    /// Validate `statements` as one batch and prepare their rows (what the
    /// LRS sets filled in) and the tenant's statement limit, for a write
    /// transaction: [`XapiStore::post_statements`]'s, or a caller's own
    /// through [`WriteStatements`], which stores them together with its
    /// other rows. `array`: error paths say `statement[i]`.
    pub(crate) async fn prepare(
        &self,
        tenant: &TenantId,
        statements: Vec<Statement>,
        authority: &Value,
        array: bool,
    ) -> Result<PreparedBatch, XapiError> {
        check_unique_ids(&statements)?;
        let authority = statement::authority(authority)?;
        let now = OffsetDateTime::now_utc();
        let now = now.replace_microsecond(now.microsecond()).unwrap_or(now);
        let path = |i: usize| statement_path(array, i);
        // Voiding within the batch: a voiding statement cannot be voided.
        let voiding_in_batch: HashSet<&str> = statements.iter().filter(|s| s.is_voiding()).map(Statement::id).collect();
        for (i, s) in statements.iter().enumerate() {
            if let Some(target) = s.voided_target()
                && voiding_in_batch.contains(target)
            {
                return Err(XapiError::invalid(
                    format!("{}.object.id", path(i)),
                    "a voiding statement cannot be voided",
                ));
            }
        }
        let rows = statements.into_iter().map(|s| prepare(s, now, &authority)).collect::<Result<Vec<_>, _>>()?;
        let limit = match &self.quota {
            Some(q) => q.limit(tenant).await?,
            None => None,
        };
        Ok(PreparedBatch {
            tenant: tenant.as_str().to_owned(),
            rows,
            array,
            limit,
            postgres: self.shards.main().backend() == Backend::Postgres,
            lock_key: write_lock_key(tenant),
        })
    }

    /// Insert `batch` in one transaction of its own.
    async fn write(&self, tenant: &TenantId, batch: &PreparedBatch) -> Result<(), XapiError> {
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        plexus_store::tenant_tx!(&scope, write, conn => {
            write_statements(&mut *conn, batch).await?;
        });
        Ok(())
    }

    /// GET Statements: one statement (404 if the tenant has none with that
    /// id, or if it is voided and asked for by `statementId`, or not voided
    /// and asked for by `voidedStatementId`) or a page of statements, never
    /// voided ones, with a `more` link when there are more.
    pub async fn get(&self, tenant: &TenantId, q: &StatementQuery) -> Result<GetResult, XapiError> {
        match q {
            StatementQuery::Single { id, voided, format, .. } => {
                let scope = self.shards.of(tenant).await?.tenant(tenant);
                let body: Option<String> = plexus_store::tenant_tx!(&scope, single, conn => {
                    sqlx::query_scalar(
                        "SELECT body FROM learning_xapi_statements \
                         WHERE tenant_id = $1 AND statement_id = $2 AND voided = $3",
                    )
                    .bind(scope.id().as_str())
                    .bind(id.as_str())
                    .bind(*voided)
                    .fetch_optional(&mut *conn)
                    .await?
                });
                let Some(body) = body else {
                    let what = if *voided { "voided statement" } else { "statement" };
                    return Err(XapiError::NotFound(format!("no {what} {id}")));
                };
                Ok(GetResult::Statement(shape(&body, *format)?))
            }
            StatementQuery::List(list) => self.list(tenant, list).await.map(GetResult::Statements),
        }
    }

    async fn list(&self, tenant: &TenantId, q: &ListQuery) -> Result<StatementResult, XapiError> {
        let tag = tenant_tag(tenant);
        if let Some(c) = &q.cursor
            && c.tenant_tag != tag
        {
            return Err(XapiError::invalid("more", "invalid continuation token"));
        }
        let page = q.page_size();
        let sql = list_sql(tenant, q);
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let mut rows: Vec<(i64, String, String)> = plexus_store::tenant_tx!(&scope, single, conn => {
            let query = sqlx::query_as::<_, (i64, String, String)>(sqlx::AssertSqlSafe(sql.text.clone()));
            bound!(query, &sql.binds).fetch_all(&mut *conn).await?
        });
        let page = usize::try_from(page).unwrap_or(usize::MAX);
        let more = if rows.len() > page {
            rows.truncate(page);
            rows.last().map(|(seq, stored, _)| more_url(q, &tag, stored, *seq))
        } else {
            None
        };
        let statements = rows.iter().map(|(_, _, body)| shape(body, q.format)).collect::<Result<Vec<_>, _>>()?;
        Ok(StatementResult { statements, more })
    }

    /// How many statements the tenant has stored (voided ones included),
    /// for quotas.
    pub async fn count(&self, tenant: &TenantId) -> Result<u64, XapiError> {
        let scope = self.shards.of(tenant).await?.tenant(tenant);
        let n: i64 = plexus_store::tenant_tx!(&scope, single, conn => {
            sqlx::query_scalar("SELECT count(*) FROM learning_xapi_statements WHERE tenant_id = $1")
                .bind(scope.id().as_str())
                .fetch_one(&mut *conn)
                .await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// The text of a statement list query (one page and one row more, to
/// know whether there is a next page), ordered by `stored` and `seq`.
fn list_sql(tenant: &TenantId, q: &ListQuery) -> Sql {
    let f = &q.filter;
    let mut sql = Sql::default();
    let tp = sql.bind(Bind::Text(tenant.as_str().to_owned()));
    let no = sql.bind(Bind::Bool(false));
    let content = f.matches_content();
    if content {
        let mut conditions: Vec<String> = Vec::new();
        if let Some(v) = &f.verb {
            conditions.push(format!("s.verb_id = {}", sql.bind(Bind::Text(v.clone()))));
        }
        if let Some(r) = &f.registration {
            conditions.push(format!("s.registration = {}", sql.bind(Bind::Text(r.clone()))));
        }
        // Activities and agents through the rows of `learning_xapi_related`
        // (from its index by item, not statement by statement); without
        // `related_*`, only the `direct` ones (the statement's own object
        // activity; its actor or agent object).
        for (kind, item, related) in
            [("activity", &f.activity, f.related_activities), ("agent", &f.agent, f.related_agents)]
        {
            let Some(item) = item else { continue };
            let p = sql.bind(Bind::Text(item.clone()));
            let direct =
                if related { String::new() } else { format!(" AND x.direct = {}", sql.bind(Bind::Bool(true))) };
            conditions.push(format!(
                "s.statement_id IN (SELECT x.statement_id FROM learning_xapi_related x WHERE x.tenant_id = {tp} \
                     AND x.kind = '{kind}' AND x.item = {p}{direct})"
            ));
        }
        // A statement whose object is a StatementRef to a matching
        // statement matches too, recursively (voided targets included:
        // their voiding statement is returned).
        sql.push(&format!(
            "WITH RECURSIVE matched(statement_id) AS (\
                 SELECT s.statement_id FROM learning_xapi_statements s WHERE s.tenant_id = {tp} AND {} \
                 UNION \
                 SELECT r.statement_id FROM learning_xapi_statements r JOIN matched m ON r.ref_target = m.statement_id \
                 WHERE r.tenant_id = {tp}) ",
            conditions.join(" AND ")
        ));
    }
    sql.push(&format!(
        "SELECT s.seq, s.stored, s.body FROM learning_xapi_statements s WHERE s.tenant_id = {tp} AND s.voided = {no}"
    ));
    if content {
        sql.push(" AND s.statement_id IN (SELECT statement_id FROM matched)");
    }
    if let Some(since) = f.since {
        let p = sql.bind(Bind::Text(sort_key(since)));
        sql.push(&format!(" AND s.stored > {p}"));
    }
    if let Some(until) = f.until {
        let p = sql.bind(Bind::Text(sort_key(until)));
        sql.push(&format!(" AND s.stored <= {p}"));
    }
    let (cmp, order) = if f.ascending { (">", "ASC") } else { ("<", "DESC") };
    if let Some(c) = &q.cursor {
        let at = sql.bind(Bind::Text(c.stored.clone()));
        let seq = sql.bind(Bind::Int(c.seq));
        sql.push(&format!(" AND (s.stored {cmp} {at} OR (s.stored = {at} AND s.seq {cmp} {seq}))"));
    }
    let limit = sql.bind(Bind::Int(i64::from(q.page_size()) + 1));
    sql.push(&format!(" ORDER BY s.stored {order}, s.seq {order} LIMIT {limit}"));
    sql
}

/// Statements validated and prepared for one tenant's write transaction
/// ([`XapiStore::prepare`]).
pub(crate) struct PreparedBatch {
    tenant: String,
    rows: Vec<Row>,
    array: bool,
    limit: Option<StatementLimit>,
    postgres: bool,
    lock_key: i64,
}

/// Store a [`PreparedBatch`] on a connection inside the caller's write
/// transaction (bound to the batch's tenant): all or nothing with the
/// caller's other writes. A statement whose id is stored already is the
/// same statement or a [`XapiError::Conflict`] (see
/// [`XapiStore::post_statements`]); the statement limit is checked here,
/// against the counter every write keeps.
pub(crate) async fn write_statements<C: Run>(conn: &mut C, batch: &PreparedBatch) -> Result<(), XapiError> {
    if let Some(last) = write_statements_then(conn, batch, None).await? {
        conn.exec(last).await?;
    }
    Ok(())
}

/// As [`write_statements`], after `guard` (if any), but on SQLite the last
/// text of writes is returned instead of run: the caller runs it at the
/// head of its own next text (one round trip for both), or alone. On
/// PostgreSQL everything has run (`None`).
pub(crate) async fn write_statements_then<C: Run>(
    conn: &mut C,
    batch: &PreparedBatch,
    guard: Option<&Guard>,
) -> Result<Option<Sql>, XapiError> {
    let PreparedBatch { tenant: t, rows, array, limit, postgres, lock_key } = batch;
    let (t, array, postgres, lock_key) = (t.as_str(), *array, *postgres, *lock_key);
    // PostgreSQL: the guard alone, first (before the writers' lock,
    // as the caller's own statement would be).
    if let Some(g) = guard.filter(|_| postgres)
        && conn.exec(Sql { text: g.sql.to_owned(), binds: g.binds.clone() }).await? != 1
    {
        return Err(XapiError::Overtaken(g.refusal.clone()));
    }
    // SQLite: in the first read's text, its changes read back.
    let mut guard_changed: Option<i64> = None;
    let path = |i: usize| statement_path(array, i);
    let mut wanted: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    wanted.extend(rows.iter().filter(|r| r.voiding).filter_map(|r| r.ref_target.clone()));
    wanted.sort();
    wanted.dedup();
    let new_ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    // One statement writer per tenant at a time, so the duplicate and
    // voiding checks below see every statement committed before
    // (SQLite's BEGIN IMMEDIATE does this already; PostgreSQL's
    // READ COMMITTED does not).
    if postgres {
        conn.exec(Sql::new("SELECT pg_advisory_xact_lock($1)", [Bind::Int(lock_key)])).await?;
    }
    // What is stored already, in one query per chunk of ids (one
    // round trip for most batches): the batch's ids and voiding
    // targets (`e`), the stored voiding statements that void a new
    // statement (`v`), and the tenant's statement counter (`u`).
    let mut existing: HashMap<String, Existing> = HashMap::new();
    let mut voided_before: HashSet<String> = HashSet::new();
    let mut kept: Option<i64> = None;
    let chunks = wanted.len().div_ceil(ID_CHUNK).max(new_ids.len().div_ceil(ID_CHUNK)).max(1);
    for c in 0..chunks {
        let mut sql = Sql::default();
        let guard_here = guard.filter(|_| c == 0 && !postgres);
        if let Some(g) = guard_here {
            // Bound first, so its `$1`..`$n` are its own values.
            for b in &g.binds {
                sql.bind(b.clone());
            }
            sql.push(g.sql);
            sql.push(";\n");
        }
        let tp = sql.bind(Bind::Text(t.to_owned()));
        let no = sql.bind(Bind::Bool(false));
        let yes = sql.bind(Bind::Bool(true));
        let mut parts = 0;
        if let Some(ids) = wanted.chunks(ID_CHUNK).nth(c) {
            parts += 1;
            sql.push(&format!(
                "SELECT 'e', statement_id, digest, occurred, ts_given, is_voiding FROM learning_xapi_statements \
                 WHERE tenant_id = {tp} AND statement_id IN ("
            ));
            sql.push_ids(ids.iter().map(String::as_str));
        }
        if let Some(ids) = new_ids.chunks(ID_CHUNK).nth(c) {
            sql.push(if parts > 0 { " UNION ALL " } else { "" });
            parts += 1;
            sql.push(&format!(
                "SELECT 'v', ref_target, '', '', {no}, {no} FROM learning_xapi_statements \
                 WHERE tenant_id = {tp} AND is_voiding = {yes} AND ref_target IN ("
            ));
            sql.push_ids(ids.iter().map(String::as_str));
        }
        if c == 0 && limit.is_some() {
            sql.push(if parts > 0 { " UNION ALL " } else { "" });
            parts += 1;
            sql.push(&format!(
                "SELECT 'u', CAST(statements AS TEXT), '', '', {no}, {no} FROM learning_usage WHERE tenant_id = {tp}"
            ));
        }
        if guard_here.is_some() {
            sql.push(if parts > 0 { " UNION ALL " } else { "" });
            parts += 1;
            sql.push(&format!("SELECT 'g', CAST(changes() AS TEXT), '', '', {no}, {no}"));
        }
        if parts == 0 {
            continue;
        }
        type Found = (String, Option<String>, String, String, bool, bool);
        for (kind, id, digest, occurred, ts_given, voiding) in conn.rows::<Found>(sql).await? {
            match (kind.as_str(), id) {
                ("e", Some(id)) => {
                    existing.insert(id, Existing { digest, occurred, ts_given, voiding });
                }
                ("v", Some(id)) => {
                    voided_before.insert(id);
                }
                ("u", Some(n)) => kept = n.parse().ok(),
                ("g", Some(n)) => guard_changed = n.parse().ok(),
                _ => {}
            }
        }
    }
    if let Some(g) = guard.filter(|_| !postgres)
        && guard_changed != Some(1)
    {
        return Err(XapiError::Overtaken(g.refusal.clone()));
    }
    let mut insert: Vec<&Row> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if let Some(e) = existing.get(&r.id) {
            let same_time = !r.ts_given || !e.ts_given || r.occurred == e.occurred;
            if e.digest != r.digest || !same_time {
                return Err(XapiError::Conflict(format!(
                    "{}: statement {} exists with different content",
                    path(i),
                    r.id
                )));
            }
            continue;
        }
        if let Some(target) = r.ref_target.as_ref().filter(|_| r.voiding)
            && existing.get(target).is_some_and(|e| e.voiding)
        {
            return Err(XapiError::invalid(format!("{}.object.id", path(i)), "a voiding statement cannot be voided"));
        }
        insert.push(r);
    }
    let added = i64::try_from(insert.len()).unwrap_or(i64::MAX);
    if let Some(limit) = limit.as_ref().filter(|_| added > 0) {
        // The counter, counted once from the table when it is not
        // kept yet (then kept by every write below).
        let used = match kept {
            Some(n) => n,
            None => {
                let count = "SELECT count(*) FROM learning_xapi_statements WHERE tenant_id = $1";
                let (n,): (i64,) = conn.one(Sql::new(count, [Bind::Text(t.to_owned())])).await?;
                conn.exec(Sql::new(
                    "INSERT INTO learning_usage (tenant_id, statements, answers, answers_at_fit) \
                     VALUES ($1, $2, 0, 0) ON CONFLICT (tenant_id) DO UPDATE SET statements = excluded.statements",
                    [Bind::Text(t.to_owned()), Bind::Int(n)],
                ))
                .await?;
                n
            }
        };
        let max = i64::try_from(limit.max).unwrap_or(i64::MAX);
        if used.saturating_add(added) > max {
            return Err(XapiError::Forbidden(limit.refusal.clone()));
        }
    }
    // The writes: on SQLite as few multi-statement round trips as
    // possible, on PostgreSQL one statement each.
    let mut writes = Writes::new(postgres);
    if added > 0 {
        let sql = writes.next();
        let tp = sql.bind(Bind::Text(t.to_owned()));
        let n = sql.bind(Bind::Int(added));
        sql.push(&format!(
            "UPDATE learning_usage SET statements = statements + {n} WHERE tenant_id = {tp} AND statements IS NOT NULL"
        ));
    }
    let voided_in_batch: HashSet<&str> =
        insert.iter().filter(|r| r.voiding).filter_map(|r| r.ref_target.as_deref()).collect();
    for chunk in insert.chunks(INSERT_CHUNK) {
        let sql = writes.next();
        sql.push(
            "INSERT INTO learning_xapi_statements (tenant_id, statement_id, actor_key, verb_id, activity_id, \
             registration, ref_target, is_voiding, voided, stored, occurred, ts_given, digest, body) VALUES ",
        );
        for (i, r) in chunk.iter().enumerate() {
            let voided = !r.voiding && (voided_before.contains(&r.id) || voided_in_batch.contains(r.id.as_str()));
            let values = [
                Bind::Text(t.to_owned()),
                Bind::Text(r.id.clone()),
                Bind::OptText(r.actor_key.clone()),
                Bind::Text(r.verb_id.clone()),
                Bind::OptText(r.activity_id.clone()),
                Bind::OptText(r.registration.clone()),
                Bind::OptText(r.ref_target.clone()),
                Bind::Bool(r.voiding),
                Bind::Bool(voided),
                Bind::Text(r.stored.clone()),
                Bind::Text(r.occurred.clone()),
                Bind::Bool(r.ts_given),
                Bind::Text(r.digest.clone()),
                Bind::Text(r.body.clone()),
            ];
            sql.push_row(i == 0, values);
        }
    }
    let related: Vec<(&str, &str, &str, bool)> = insert
        .iter()
        .flat_map(|r| {
            let agents = r.agents.iter().map(move |(k, d)| (r.id.as_str(), "agent", k.as_str(), *d));
            let activities = r.activities.iter().map(move |(k, d)| (r.id.as_str(), "activity", k.as_str(), *d));
            agents.chain(activities)
        })
        .collect();
    for chunk in related.chunks(INSERT_CHUNK * 3) {
        let sql = writes.next();
        sql.push("INSERT INTO learning_xapi_related (tenant_id, statement_id, kind, item, direct) VALUES ");
        for (i, (id, kind, item, direct)) in chunk.iter().enumerate() {
            let values = [
                Bind::Text(t.to_owned()),
                Bind::Text((*id).to_owned()),
                Bind::Text((*kind).to_owned()),
                Bind::Text((*item).to_owned()),
                Bind::Bool(*direct),
            ];
            sql.push_row(i == 0, values);
        }
    }
    // Void the stored targets of the new voiding statements.
    let targets: Vec<&str> = voided_in_batch.iter().copied().collect();
    for chunk in targets.chunks(ID_CHUNK) {
        let sql = writes.next();
        let yes = sql.bind(Bind::Bool(true));
        let no = sql.bind(Bind::Bool(false));
        let tp = sql.bind(Bind::Text(t.to_owned()));
        sql.push(&format!(
            "UPDATE learning_xapi_statements SET voided = {yes} \
             WHERE tenant_id = {tp} AND is_voiding = {no} AND statement_id IN ("
        ));
        sql.push_ids(chunk.iter().copied());
    }
    let mut texts = writes.done();
    let last = if postgres { None } else { texts.pop() };
    for sql in texts {
        conn.exec(sql).await?;
    }
    Ok(last)
}

/// The row for `s`, with what the LRS sets filled in.
fn prepare(s: Statement, now: OffsetDateTime, authority: &Value) -> Result<Row, XapiError> {
    let digest = comparison_digest(s.json());
    let ts_given = s.timestamp().is_some();
    let occurred = format_timestamp(s.timestamp().unwrap_or(now));
    let id = s.id().to_owned();
    let mut s = s;
    if let Some(m) = s.json_mut().as_object_mut() {
        m.insert("stored".into(), Value::String(format_timestamp(now)));
        m.insert("authority".into(), authority.clone());
        m.entry("version").or_insert_with(|| Value::String(DEFAULT_VERSION.into()));
        m.entry("timestamp").or_insert_with(|| Value::String(occurred.clone()));
    }
    // Again, now with the authority the LRS set (related_agents matches it).
    let facts = Facts::of(s.json());
    let body = serde_json::to_string(s.json()).map_err(|e| XapiError::Store(StoreError::Corrupt(e.to_string())))?;
    Ok(Row {
        id,
        actor_key: facts.actor_key,
        verb_id: facts.verb_id,
        activity_id: facts.activity_id,
        registration: facts.registration,
        ref_target: facts.ref_target,
        voiding: facts.voiding,
        stored: sort_key(now),
        occurred,
        ts_given,
        digest,
        body,
        agents: facts.agents,
        activities: facts.activities,
    })
}

/// A stored body in the asked format.
fn shape(body: &str, format: Format) -> Result<Value, XapiError> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| XapiError::Store(StoreError::Corrupt(format!("stored xapi statement: {e}"))))?;
    Ok(match format {
        Format::Ids => ids_format(&v),
        Format::Exact | Format::Canonical => v,
    })
}

/// A tag of the tenant that `more` tokens carry, so a token is refused
/// outside the tenant it was issued to (its query would run inside the
/// caller's tenant anyway).
fn tenant_tag(tenant: &TenantId) -> String {
    let digest = sha2::Sha256::digest(format!("plexus-xapi-more\0{}", tenant.as_str()).as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The PostgreSQL advisory lock key of a tenant's statement writes.
fn write_lock_key(tenant: &TenantId) -> i64 {
    let digest = sha2::Sha256::digest(format!("plexus-learning-xapi-write\0{}", tenant.as_str()).as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// `statement[i]` in a batch, `statement` alone.
fn statement_path(array: bool, i: usize) -> String {
    if array { format!("statement[{i}]") } else { "statement".to_owned() }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::super::query::StatementFilter;
    use super::*;

    /// The synchronous connection runs a text of several statements as
    /// sqlx does: each `$n` bound to the `n`th value in whichever statement
    /// it appears, the rows of the statements that return some, the rows
    /// the writing statements changed; a placeholder without a value is an
    /// error, and so is a text it cannot split into statements.
    #[test]
    fn the_synchronous_connection_runs_multi_statement_texts_as_sqlx_does() {
        /// The output of a future that never waits (the synchronous
        /// connection's).
        fn now<T>(f: impl Future<Output = T>) -> T {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match std::pin::pin!(f).poll(&mut cx) {
                std::task::Poll::Ready(out) => out,
                std::task::Poll::Pending => panic!("the synchronous connection never waits"),
            }
        }
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, x REAL, b INTEGER)").unwrap();
        let mut sync = SyncConn(&mut conn);
        let text = "INSERT INTO t VALUES ($1, $2, $3, $4), ($5, $2, NULL, $6);\n\
                    UPDATE t SET n = n + $2 WHERE k = $5";
        let binds = [Bind::Text("a".into()), Bind::Int(2), Bind::Real(0.5), Bind::Bool(true)]
            .into_iter()
            .chain([Bind::Text("日本語".into()), Bind::OptBool(None)]);
        assert_eq!(now(sync.exec(Sql::new(text, binds))).unwrap(), 3, "two rows inserted, one updated");

        let rows = now(sync.rows::<(String, i64, Option<f64>, Option<bool>)>(Sql::new(
            "UPDATE t SET x = $1 WHERE k = $2;\n SELECT k, n, x, b FROM t WHERE n >= $3 ORDER BY k",
            [Bind::Real(1.25), Bind::Text("a".into()), Bind::Int(2)],
        )));
        assert_eq!(
            rows.unwrap(),
            [("a".to_owned(), 2, Some(1.25), Some(true)), ("日本語".to_owned(), 4, None, None)],
            "the rows of the SELECT, after the UPDATE before it in the same text"
        );

        let missing = now(sync.exec(Sql::new("UPDATE t SET n = $2 WHERE k = $1", [Bind::Int(1)])));
        let e = missing.unwrap_err().to_string();
        assert!(e.contains("no value for parameter $2"), "{e}");
        let joined = now(sync.exec(Sql::new("UPDATE t SET n = 1; UPDATE t SET n = 2", [])));
        assert!(joined.is_err(), "statements not separated by a semicolon and a newline are refused, not half run");
        let n: i64 = conn.query_row("SELECT sum(n) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 6, "nothing of the refused texts ran");
    }

    /// SQLite's plan for the list query of `filter` (the detail column of
    /// `EXPLAIN QUERY PLAN`, one line per step).
    async fn plan(store: &Store, filter: StatementFilter) -> String {
        let t = TenantId::new("t1");
        let sql = list_sql(&t, &ListQuery::new(filter));
        let scope = store.tenant(&t);
        let rows = async {
            Ok::<_, StoreError>(plexus_store::tenant_tx!(&scope, single, conn => {
                let text = format!("EXPLAIN QUERY PLAN {}", sql.text);
                let query = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(text));
                bound!(query, &sql.binds).fetch_all(&mut *conn).await?
            }))
        }
        .await
        .unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    /// The statement filters reach their statements through their indexes,
    /// the partial ones included: the registration filter through the
    /// registration index, the activity and agent filters through the key of
    /// the related items, and the step that follows StatementRefs to
    /// matching statements through the reference index. No step reads a
    /// whole table.
    #[tokio::test]
    async fn statement_filters_use_their_indexes_the_partial_ones_too() {
        let dir = std::env::temp_dir().join(format!("plexus-xapi-plans-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(dir.join("plexus.db").to_str().unwrap()).await.unwrap();
        store.migrate(&crate::store::MIGRATIONS).await.unwrap();
        let registration = StatementFilter {
            registration: Some("6f1c2a54-93f1-4d4e-9a0b-2c5e0d9b7a11".into()),
            ..StatementFilter::default()
        };
        let verb = StatementFilter {
            verb: Some("http://adlnet.gov/expapi/verbs/answered".into()),
            ..StatementFilter::default()
        };
        // The table of related items is its key's B-tree, in filter order.
        const RELATED: &str = "SEARCH x USING PRIMARY KEY (tenant_id=? AND kind=? AND item=?)";
        let quiz = "https://example.jp/クイズ/1".to_owned();
        let activity = StatementFilter { activity: Some(quiz.clone()), ..StatementFilter::default() };
        let related = StatementFilter { activity: Some(quiz), related_activities: true, ..StatementFilter::default() };
        let agent =
            StatementFilter { agent: Some("mbox:mailto:hanako@example.jp".into()), ..StatementFilter::default() };
        for (name, filter, index) in [
            ("registration", registration, "learning_xapi_statements_by_registration"),
            ("verb", verb, "learning_xapi_statements_by_verb"),
            ("activity", activity, RELATED),
            ("related activities", related, RELATED),
            ("agent", agent, RELATED),
        ] {
            let p = plan(&store, filter).await;
            assert!(p.contains(index), "{name}: no {index} in the plan:\n{p}");
            assert!(p.contains("learning_xapi_statements_by_ref"), "{name}: StatementRefs not followed by index:\n{p}");
            assert!(
                !p.lines().any(|l| ["SCAN s", "SCAN r", "SCAN x"].iter().any(|scan| l.starts_with(scan))),
                "{name}: a step scans a whole table:\n{p}"
            );
        }
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    /// Migration 4 on a store that has statements: the related rows move to
    /// the table without a rowid, unchanged, the indexes nothing reads are
    /// gone, and the activity filter still finds the statement.
    #[tokio::test]
    async fn the_lean_migration_keeps_the_related_rows() {
        const BEFORE: plexus_store::Migrations =
            plexus_store::Migrations { owner: "learning", steps: crate::store::MIGRATIONS.steps.split_at(3).0 };
        let dir = std::env::temp_dir().join(format!("plexus-xapi-lean-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(dir.join("plexus.db").to_str().unwrap()).await.unwrap();
        store.migrate(&BEFORE).await.unwrap();
        let t = plexus_store::NewTenant { id: TenantId::new("t1"), name: "学校".into(), tier: "free".into() };
        store.create_tenant(&t).await.unwrap();
        let quiz = "https://example.jp/クイズ/1";
        let scope = store.tenant(&t.id);
        let wrote: Result<(), StoreError> = async {
            plexus_store::tenant_tx!(&scope, write, conn => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO learning_xapi_statements (tenant_id, statement_id, actor_key, verb_id, activity_id, \
                         is_voiding, voided, stored, occurred, ts_given, digest, body) VALUES ('t1', 's1', 'a', 'v', '{quiz}', \
                         0, 0, '2026-11-24T00:00:00.000000Z', '2026-11-24T00:00:00.000000Z', 1, 'd', '{{}}'); \
                     INSERT INTO learning_xapi_related (tenant_id, statement_id, kind, item, direct) VALUES \
                         ('t1', 's1', 'activity', '{quiz}', 1), ('t1', 's1', 'agent', 'mbox:mailto:はなこ@example.jp', 0)"
                )))
                .execute(&mut *conn)
                .await?;
            });
            Ok(())
        }
        .await;
        wrote.unwrap();

        store.migrate(&crate::store::MIGRATIONS).await.unwrap();
        let read = async {
            Ok::<_, StoreError>(plexus_store::tenant_tx!(&scope, single, conn => {
                let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
                    "SELECT statement_id, kind, item, direct FROM learning_xapi_related ORDER BY kind",
                )
                .fetch_all(&mut *conn)
                .await?;
                let (table,): (String,) =
                    sqlx::query_as("SELECT sql FROM sqlite_schema WHERE name = 'learning_xapi_related'")
                        .fetch_one(&mut *conn)
                        .await?;
                let indexes: Vec<(String,)> = sqlx::query_as(
                    "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name LIKE 'learning_xapi_%' ORDER BY name",
                )
                .fetch_all(&mut *conn)
                .await?;
                (rows, table, indexes.into_iter().map(|i| i.0).collect::<Vec<_>>())
            }))
        }
        .await
        .unwrap();
        let (rows, table, indexes) = read;
        assert_eq!(
            rows,
            vec![
                ("s1".into(), "activity".into(), quiz.into(), 1),
                ("s1".into(), "agent".into(), "mbox:mailto:はなこ@example.jp".into(), 0)
            ]
        );
        assert!(
            table.contains("WITHOUT ROWID") && table.contains("PRIMARY KEY (tenant_id, kind, item, statement_id)"),
            "{table}"
        );
        let left: Vec<&str> =
            indexes.iter().map(String::as_str).filter(|i| !i.starts_with("sqlite_autoindex")).collect();
        assert_eq!(
            left,
            [
                "learning_xapi_statements_by_ref",
                "learning_xapi_statements_by_registration",
                "learning_xapi_statements_by_stored",
                "learning_xapi_statements_by_verb"
            ]
        );

        let x = XapiStore::new(store.clone());
        let found = x
            .list(&t.id, &ListQuery::new(StatementFilter { activity: Some(quiz.into()), ..StatementFilter::default() }))
            .await;
        assert_eq!(found.map(|r| r.statements.len()).map_err(|e| e.to_string()), Ok(1));
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
