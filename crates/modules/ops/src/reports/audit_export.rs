//! Audit records as CSV (RFC 4180).
//!
//! One header row naming every field of [`AuditRecord`], then one row per
//! record in `seq` order (a stable sort: records of several chains with the
//! same `seq` keep the order given). Lines end with CRLF as RFC 4180 says; a
//! field holding a comma, a double quote, CR or LF is quoted and its quotes
//! doubled. Text is written as it is (UTF-8, Japanese untouched, no byte
//! order mark, no formula neutralizing: an audit export is evidence and is
//! not rewritten). Absent `session` and `client_addr` are empty fields.

use plexus_core::audit::AuditRecord;

/// The header row and the field escaping are the audit log's own (`plexus audit export` uses them too).
pub use plexus_core::audit::{CSV_HEADER as AUDIT_CSV_HEADER, csv_field};

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
        let row = r.csv_row();
        push_row(&mut out, row.iter().map(|f| f.as_ref()));
    }
    out
}
