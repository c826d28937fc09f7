//! The SQL connector: documents are the rows of a query against SQLite or
//! PostgreSQL.
//!
//! The query names its columns: `id`, `title` and `body` are required;
//! `author`, `updated` (Unix seconds, or RFC 3339 text), `url`, `space`,
//! `kind` and `readers` (comma-separated: the row's own ACL, overriding the
//! source's readers) are optional. Every sync runs the query (a table is
//! read whole, so deleted rows are noticed), re-indexes the rows whose
//! `updated` is at or after the cursor (every row when there is no
//! `updated`), and deletes documents whose row is gone. A row that does not
//! decode (a required column missing or not text) is skipped and counted.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;

use crate::connector::{self, Connector, Cursor, Fetched, Progress, SyncError, SyncReport};
use crate::index::{Document, Index};

/// A configured query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlSource {
    pub name: String,
    /// `postgres://…`, `sqlite:///path.db` or a SQLite file path.
    pub url: String,
    pub query: String,
    pub readers: Vec<String>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn text<R: Row>(row: &R, column: &str) -> Option<String>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    row.try_get::<Option<String>, _>(column).ok().flatten()
}

fn updated<R: Row>(row: &R) -> Option<i64>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    if let Ok(Some(secs)) = row.try_get::<Option<i64>, _>("updated") {
        return Some(secs);
    }
    let t = text(row, "updated")?;
    time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok().map(|d| d.unix_timestamp())
}

fn document<R: Row>(source: &SqlSource, row: &R) -> Option<Document>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id = text(row, "id").or_else(|| row.try_get::<i64, _>("id").ok().map(|n| n.to_string()))?;
    let title = text(row, "title")?;
    let body = text(row, "body")?;
    let acl = match text(row, "readers") {
        Some(r) => r.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        None => source.readers.clone(),
    };
    Some(Document {
        id: format!("{}:{id}", source.name),
        source: source.name.clone(),
        title,
        headings: Vec::new(),
        body,
        path: String::new(),
        space: text(row, "space").unwrap_or_default(),
        kind: text(row, "kind").unwrap_or_else(|| "record".into()),
        author: text(row, "author").unwrap_or_default(),
        updated: updated(row),
        url: text(row, "url").unwrap_or_default(),
        acl,
    })
}

async fn fetch(source: &SqlSource) -> Result<(Vec<Document>, usize), String> {
    let url = source.url.trim();
    let query = sqlx::AssertSqlSafe(source.query.clone());
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(|e| format!("invalid url: {e}"))?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let rows = sqlx::query(query).fetch_all(&pool).await.map_err(|e| format!("query failed: {e}"));
        pool.close().await;
        return Ok(decode(source, &rows?));
    }
    let options = if url.starts_with("sqlite:") {
        sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(|e| format!("invalid url: {e}"))?
    } else {
        sqlx::sqlite::SqliteConnectOptions::new().filename(url)
    };
    // Read only: a knowledge source never writes to the database it reads.
    let options = options.read_only(true).create_if_missing(false);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot open: {e}"))?;
    let rows = sqlx::query(query).fetch_all(&pool).await.map_err(|e| format!("query failed: {e}"));
    pool.close().await;
    Ok(decode(source, &rows?))
}

/// The documents of `rows`, and how many rows did not decode.
fn decode<R: Row>(source: &SqlSource, rows: &[R]) -> (Vec<Document>, usize)
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let docs: Vec<Document> = rows.iter().filter_map(|r| document(source, r)).collect();
    let skipped = rows.len() - docs.len();
    (docs, skipped)
}

impl Connector for SqlSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// Runs the query (blocking: on the current runtime, or on one of its
    /// own), re-indexes rows updated at or after the cursor.
    fn sync(
        &self,
        index: &Index,
        tenant: &str,
        cursor: Option<&Cursor>,
        _progress: Progress<'_>,
    ) -> Result<(SyncReport, Cursor), SyncError> {
        let (docs, skipped) =
            connector::block_on(fetch(self)).and_then(|r| r).map_err(|reason| SyncError::source(&self.name, reason))?;
        let since_secs = cursor.map(Cursor::secs);
        let present: HashSet<String> = docs.iter().map(|d| d.id.clone()).collect();
        let newest = docs.iter().filter_map(|d| d.updated).max().unwrap_or(0).max(since_secs.unwrap_or(0));
        let seen = docs.len() + skipped;
        let changed: Vec<Document> = docs
            .into_iter()
            .filter(|d| match (since_secs, d.updated) {
                (Some(since), Some(u)) => u >= since,
                _ => true,
            })
            .collect();
        let fetched = Fetched {
            changed,
            present: Some(present),
            seen,
            skipped,
            cursor: Cursor::at_secs(newest),
            ..Fetched::default()
        };
        connector::apply(index, tenant, &self.name, fetched)
    }
}
