//! xAPI (Experience API 1.0.3): the Statement Resource of a learning
//! record store, multi-tenant.
//!
//! - [`parse_statements`] / [`Statement::from_value`]: validation of
//!   statements per Part Two (Data) of the specification, with errors that
//!   name the JSON path of the problem (`statement[2].actor.mbox: must be a
//!   mailto IRI (mailto:name@example.com)`) and the HTTP status
//!   ([`XapiError::status`]). No input panics.
//! - [`Statement`]: a validated statement and what the learning engines
//!   read from it (actor key, verb, activity, success, scaled score,
//!   duration, timestamp); [`SimpleStatement`] builds one from plain
//!   parts.
//! - [`StatementQuery::parse`]: GET Statements parameters, including the
//!   `more` continuation token.
//! - [`XapiStore`]: POST, PUT and GET Statements on [`plexus_store`], every
//!   row tenant-owned (row-level security on PostgreSQL), voiding,
//!   idempotent re-posts, filters and paging, and a per-tenant limit on
//!   stored statements ([`StatementQuota`]) checked inside the write.
//! - [`check_version`] and [`consistent_through`] for the
//!   `X-Experience-API-Version` and `X-Experience-API-Consistent-Through`
//!   headers.
//!
//! Not covered: attachment data (multipart/mixed; statements with
//! attachments must give `fileUrl`), signed statements' JWS verification,
//! canonical language filtering (`format=canonical` returns what `exact`
//! does), the document resources (state, profiles).
//!
//! ```
//! use plexus_learning::xapi::{SimpleStatement, parse_statements};
//!
//! let body = r#"{"actor": {"mbox": "mailto:hanako@example.jp", "name": "山田花子"},
//!                 "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"ja": "完了した"}},
//!                 "object": {"id": "https://example.jp/courses/算数/1"},
//!                 "result": {"success": true, "score": {"scaled": 0.8}, "duration": "PT5M30S"}}"#;
//! let statements = parse_statements(body.as_bytes())?;
//! let s = &statements[0];
//! assert_eq!(s.actor_key(), Some("mbox:mailto:hanako@example.jp"));
//! assert_eq!(s.duration_seconds(), Some(330.0));
//! assert_eq!(s.scaled_score(), Some(0.8));
//!
//! let err = parse_statements(br#"{"actor": {"mbox": "hanako@example.jp"}, "verb": {"id": "http://x.org/v"},
//!                                 "object": {"id": "http://x.org/a"}}"#).unwrap_err();
//! assert_eq!(err.status(), 400);
//! assert_eq!(err.to_string(), "statement.actor.mbox: must be a mailto IRI (mailto:name@example.com)");
//!
//! let tracked = SimpleStatement {
//!     home_page: "https://lms.example.jp".into(),
//!     account_name: "hanako".into(),
//!     verb_id: "http://adlnet.gov/expapi/verbs/answered".into(),
//!     activity_id: "https://example.jp/items/q1".into(),
//!     success: Some(false),
//!     ..SimpleStatement::default()
//! }
//! .build()?;
//! assert_eq!(tracked.actor_key(), Some("account:https://lms.example.jp hanako"));
//! # Ok::<(), plexus_learning::xapi::XapiError>(())
//! ```

mod error;
mod format;
mod json;
mod query;
mod statement;
mod store;

pub use error::XapiError;
pub use query::{
    Format, GetResult, ListQuery, MAX_LIMIT, STATEMENTS_PATH, StatementFilter, StatementQuery, StatementResult,
};
pub use statement::{SimpleStatement, Statement, VOIDED_VERB, agent_key, parse_statements};
pub(crate) use store::{Bind, Guard, PreparedBatch, Run, Sql, SyncConn, gate_write, write_statements_then};
pub use store::{StatementLimit, StatementQuota, XapiStore};

/// The xAPI version this LRS implements, for the `X-Experience-API-Version`
/// response header.
pub const XAPI_VERSION: &str = "1.0.3";

/// The request and response header naming the xAPI version.
pub const VERSION_HEADER: &str = "X-Experience-API-Version";

/// The response header of the Statement Resource saying up to when stored
/// statements are available.
pub const CONSISTENT_THROUGH_HEADER: &str = "X-Experience-API-Consistent-Through";

/// Check a request's `X-Experience-API-Version` header: `1.0` and `1.0.x`
/// (1.0.0 to 1.0.3 and later patches) are accepted; anything else, or no
/// header, is a 400.
pub fn check_version(header: Option<&str>) -> Result<(), XapiError> {
    let Some(v) = header.map(str::trim) else {
        return Err(XapiError::invalid(VERSION_HEADER, "is required (1.0.3)"));
    };
    let patch_ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if v == "1.0" || v.strip_prefix("1.0.").is_some_and(patch_ok) {
        Ok(())
    } else {
        Err(XapiError::invalid(
            VERSION_HEADER,
            format!("version {v:?} is not supported (use 1.0.x; this lrs speaks 1.0.3)"),
        ))
    }
}

/// The `X-Experience-API-Consistent-Through` value: now, in UTC. Every
/// statement write commits before it answers, so every acknowledged
/// statement is readable; a write in flight while this is taken (its
/// `stored` is set when it starts) may become readable a few milliseconds
/// later.
pub fn consistent_through() -> String {
    format::format_timestamp(time::OffsetDateTime::now_utc())
}
