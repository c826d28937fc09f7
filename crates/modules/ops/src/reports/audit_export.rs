//! Audit records as CSV (RFC 4180).
//!
//! One header row naming every field of [`AuditRecord`], then one row per
//! record in `seq` order (a stable sort: records of several chains with the
//! same `seq` keep the order given). Lines end with CRLF as RFC 4180 says; a
//! field holding a comma, a double quote, CR or LF is quoted and its quotes
//! doubled. Text is written as it is (UTF-8, Japanese untouched, no byte
//! order mark, no formula neutralizing: an audit export is evidence and is
//! not rewritten). Absent `session` and `client_addr` are empty fields.

use std::borrow::Cow;

use plexus_core::audit::AuditRecord;

/// The header row, every field of [`AuditRecord`] in its order.
pub const AUDIT_CSV_HEADER: [&str; 14] = [
    "seq",
    "time",
    "request_id",
    "session",
    "principal",
    "tenant",
    "operation",
    "target",
    "args_digest",
    "outcome",
    "latency_us",
    "client_addr",
    "prev_hash",
    "hash",
];

/// `s` as one CSV field: quoted, with its quotes doubled, when it holds a
/// comma, a double quote, CR or LF; else as it is.
pub fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\r', '\n']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// Appends one CSV row (fields escaped, CRLF) to `out`.
pub(crate) fn push_row<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&csv_field(f));
    }
    out.push_str("\r\n");
}

/// Every record as CSV, header first, in `seq` order.
pub fn audit_csv(records: &[AuditRecord]) -> String {
    let mut sorted: Vec<&AuditRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.seq);
    let mut out = String::with_capacity(64 + records.len() * 400);
    push_row(&mut out, AUDIT_CSV_HEADER);
    for r in sorted {
        let (seq, latency) = (r.seq.to_string(), r.latency_us.to_string());
        push_row(
            &mut out,
            [
                seq.as_str(),
                &r.time,
                &r.request_id,
                r.session.as_deref().unwrap_or(""),
                &r.principal,
                &r.tenant,
                &r.operation,
                &r.target,
                &r.args_digest,
                &r.outcome,
                &latency,
                r.client_addr.as_deref().unwrap_or(""),
                &r.prev_hash,
                &r.hash,
            ],
        );
    }
    out
}
