//! Reports: the monthly operations report and the audit export, as Markdown
//! and CSV.
//!
//! Plain functions over data the module reads (audit records, incidents,
//! flag changes); no IO and no clock here.
//! - [`period`]: report periods (`2026-11`, `2025-Q2`) and their
//!   `[from, to)` bounds, the schedule of the monthly run, and the date
//!   ranges of audit exports with their file names.
//! - [`monthly`]: the report (calls per system and tool, error rate,
//!   availability, latency percentiles, incidents, flag changes) and its
//!   Markdown and CSV renderings.
//! - [`audit_export`]: every field of audit records as RFC 4180 CSV.

pub mod audit_export;
pub mod monthly;
pub mod period;

pub use audit_export::{AUDIT_CSV_HEADER, audit_csv, csv_field};
pub use monthly::{
    CallStats, FlagChange, IncidentRow, IncidentSummary, OperationRow, REPORT_CSV_HEADER, Report, SystemRow, ToolRow,
    monthly_report, render_csv, render_markdown,
};
pub use period::{DateRange, MAX_EXPORT_DAYS, Period, audit_export_name, next_monthly_run, parse_date_range};

/// A period or date range that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Not `YYYY-MM` or `YYYY-Qn`.
    #[error("invalid period {input:?}: {reason}")]
    InvalidPeriod { input: String, reason: String },
    /// Not a `YYYY-MM-DD` calendar date.
    #[error("invalid {which} date {input:?}: {reason}")]
    InvalidDate { which: &'static str, input: String, reason: String },
    /// The end date is before the start date.
    #[error("end date {end} is before start date {start}")]
    EndBeforeStart { start: String, end: String },
    /// The range is longer than an export may be.
    #[error("the range {start} to {end} covers {days} days, more than the {max} an export may cover")]
    RangeTooLong { start: String, end: String, days: i64, max: i64 },
}

/// At most 40 characters of outside text in an error.
pub(crate) fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
