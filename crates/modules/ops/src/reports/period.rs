//! Report periods, the monthly schedule, and audit export ranges.
//!
//! All dates are UTC days. A [`Period`] is a calendar month (`2026-11`) or
//! quarter (`2025-Q2`) with half-open bounds `[from, to)` at midnight UTC; a
//! [`DateRange`] is a span of whole days with an inclusive end date, as
//! people write them (`2025-04-01` to `2025-06-30`). Years run from 1970 to
//! 9998.

use std::fmt;
use std::str::FromStr;

use time::format_description::well_known::Rfc3339;
use time::macros::time;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::{ReportError, clip};

const MIN_YEAR: i32 = 1970;
const MAX_YEAR: i32 = 9998;

/// The longest audit export, in days (inclusive of both ends): a leap year.
/// It bounds the memory and time of one export; a longer audit is several
/// exports.
pub const MAX_EXPORT_DAYS: i64 = 366;

/// A calendar month or quarter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    year: i32,
    /// 1..=12; for a quarter, its first month.
    first_month: u8,
    /// 1 for a month, 3 for a quarter.
    months: u8,
}

impl Period {
    /// The month `year-month` (`month` 1..=12).
    pub fn month(year: i32, month: u8) -> Result<Self, ReportError> {
        let p = Period { year, first_month: month, months: 1 };
        check(p, || format!("{year:04}-{month:02}"))
    }

    /// The quarter `year-Qquarter` (`quarter` 1..=4).
    pub fn quarter(year: i32, quarter: u8) -> Result<Self, ReportError> {
        let p = Period { year, first_month: quarter.wrapping_sub(1).wrapping_mul(3).wrapping_add(1), months: 3 };
        if !(1..=4).contains(&quarter) {
            return Err(ReportError::InvalidPeriod {
                input: format!("{year:04}-Q{quarter}"),
                reason: "the quarter must be Q1 to Q4".to_owned(),
            });
        }
        check(p, || format!("{year:04}-Q{quarter}"))
    }

    /// The month before the one `date` is in: the period the monthly run on
    /// the first of a month reports on.
    pub fn previous_month(date: Date) -> Self {
        let (year, month) = match date.month() {
            Month::January => (date.year() - 1, 12),
            m => (date.year(), u8::from(m) - 1),
        };
        Period { year, first_month: month, months: 1 }
    }

    /// The month `date` is in.
    pub fn month_of(date: Date) -> Self {
        Period { year: date.year(), first_month: u8::from(date.month()), months: 1 }
    }

    /// The year.
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The month (1..=12) of a monthly period.
    pub fn month_number(&self) -> Option<u8> {
        (self.months == 1).then_some(self.first_month)
    }

    /// The quarter (1..=4) of a quarterly period.
    pub fn quarter_number(&self) -> Option<u8> {
        (self.months == 3).then_some((self.first_month - 1) / 3 + 1)
    }

    /// The first day.
    pub fn first_day(&self) -> Date {
        first_of(self.year, self.first_month).unwrap_or(Date::MIN)
    }

    /// The day after the last day.
    pub fn end_day(&self) -> Date {
        let m = u32::from(self.first_month) + u32::from(self.months);
        let (year, month) = if m > 12 { (self.year + 1, m - 12) } else { (self.year, m) };
        u8::try_from(month).ok().and_then(|month| first_of(year, month)).unwrap_or(Date::MAX)
    }

    /// Midnight UTC of the first day (inclusive).
    pub fn from(&self) -> OffsetDateTime {
        midnight(self.first_day())
    }

    /// Midnight UTC of the day after the last day (exclusive).
    pub fn to(&self) -> OffsetDateTime {
        midnight(self.end_day())
    }

    /// `[from, to)` in RFC 3339: `("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")`.
    pub fn bounds(&self) -> (String, String) {
        (rfc3339(self.from()), rfc3339(self.to()))
    }

    /// Whether `t` is in `[from, to)`.
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        self.from() <= t && t < self.to()
    }

    /// Where the module writes the report: `reports/monthly/2026-11.md` and
    /// `.csv` (`reports/quarterly/2025-Q2.*` for a quarter).
    pub fn report_paths(&self) -> (String, String) {
        let dir = if self.months == 1 { "monthly" } else { "quarterly" };
        (format!("reports/{dir}/{self}.md"), format!("reports/{dir}/{self}.csv"))
    }
}

fn check(p: Period, input: impl Fn() -> String) -> Result<Period, ReportError> {
    let reason = if !(MIN_YEAR..=MAX_YEAR).contains(&p.year) {
        format!("the year must be {MIN_YEAR} to {MAX_YEAR}")
    } else if !(1..=12).contains(&p.first_month) {
        "the month must be 01 to 12".to_owned()
    } else {
        return Ok(p);
    };
    Err(ReportError::InvalidPeriod { input: input(), reason })
}

/// `2026-11` or `2025-Q2`.
impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.quarter_number() {
            Some(q) => write!(f, "{:04}-Q{q}", self.year),
            None => write!(f, "{:04}-{:02}", self.year, self.first_month),
        }
    }
}

/// `YYYY-MM` (a month) or `YYYY-Qn` (a quarter, `q` in either case).
impl FromStr for Period {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ReportError::InvalidPeriod { input: clip(s), reason: reason.to_owned() };
        let t = s.trim();
        let Some((year, rest)) = t.split_once('-') else {
            return Err(err("expected a month YYYY-MM or a quarter YYYY-Qn"));
        };
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("the year must be four digits"));
        }
        let year: i32 = year.parse().map_err(|_| err("the year must be four digits"))?;
        if let Some(q) = rest.strip_prefix(['Q', 'q']) {
            let quarter = match q {
                "1" => 1,
                "2" => 2,
                "3" => 3,
                "4" => 4,
                _ => return Err(err("the quarter must be Q1 to Q4")),
            };
            return Period::quarter(year, quarter).map_err(|e| match e {
                ReportError::InvalidPeriod { reason, .. } => err(&reason),
                other => other,
            });
        }
        if rest.len() != 2 || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("expected a month YYYY-MM (two-digit month) or a quarter YYYY-Qn"));
        }
        let month: u8 = rest.parse().map_err(|_| err("the month must be 01 to 12"))?;
        Period::month(year, month).map_err(|e| match e {
            ReportError::InvalidPeriod { reason, .. } => err(&reason),
            other => other,
        })
    }
}

/// The next monthly run strictly after `now`: the first day of a month at
/// 00:05 UTC (this month's, when `now` is on the first before 00:05).
pub fn next_monthly_run(now: OffsetDateTime) -> OffsetDateTime {
    let now = now.to_offset(UtcOffset::UTC);
    let run_on = |d: Date| PrimitiveDateTime::new(d, time!(00:05)).assume_utc();
    let this_month = Period::month_of(now.date());
    let candidate = run_on(this_month.first_day());
    if candidate > now { candidate } else { run_on(this_month.end_day()) }
}

/// Days from `start` to `end`, both included, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// The first day.
    pub start: Date,
    /// The last day (inclusive).
    pub end: Date,
}

impl DateRange {
    /// Midnight UTC of the start date (inclusive).
    pub fn from(&self) -> OffsetDateTime {
        midnight(self.start)
    }

    /// Midnight UTC of the day after the end date (exclusive).
    pub fn to(&self) -> OffsetDateTime {
        midnight(self.end.next_day().unwrap_or(Date::MAX))
    }

    /// `[from, to)` in RFC 3339.
    pub fn bounds(&self) -> (String, String) {
        (rfc3339(self.from()), rfc3339(self.to()))
    }

    /// Days covered, both ends included.
    pub fn days(&self) -> i64 {
        (self.end - self.start).whole_days() + 1
    }

    /// Whether the RFC 3339 time `time` is in the range; false when it does
    /// not parse.
    pub fn contains_time(&self, time: &str) -> bool {
        OffsetDateTime::parse(time, &Rfc3339).is_ok_and(|t| self.from() <= t && t < self.to())
    }

    /// The export's file name (see [`audit_export_name`]).
    pub fn export_name(&self) -> String {
        audit_export_name(self.start, self.end)
    }
}

/// A range of `YYYY-MM-DD` dates, the end included, of at most
/// [`MAX_EXPORT_DAYS`] days.
pub fn parse_date_range(start: &str, end: &str) -> Result<DateRange, ReportError> {
    let start_date = parse_date("start", start)?;
    let end_date = parse_date("end", end)?;
    if end_date < start_date {
        return Err(ReportError::EndBeforeStart { start: ymd(start_date), end: ymd(end_date) });
    }
    let range = DateRange { start: start_date, end: end_date };
    if range.days() > MAX_EXPORT_DAYS {
        return Err(ReportError::RangeTooLong {
            start: ymd(start_date),
            end: ymd(end_date),
            days: range.days(),
            max: MAX_EXPORT_DAYS,
        });
    }
    Ok(range)
}

fn parse_date(which: &'static str, input: &str) -> Result<Date, ReportError> {
    let err = |reason: String| ReportError::InvalidDate { which, input: clip(input), reason };
    let t = input.trim();
    let parts: Vec<&str> = t.split('-').collect();
    let shape_ok = parts.len() == 3
        && [4, 2, 2].iter().zip(&parts).all(|(len, p)| p.len() == *len && p.bytes().all(|b| b.is_ascii_digit()));
    if !shape_ok {
        return Err(err("expected YYYY-MM-DD".to_owned()));
    }
    let number = |p: &str| p.parse::<u16>().map_err(|_| err("expected YYYY-MM-DD".to_owned()));
    let (year, month, day) = (i32::from(number(parts[0])?), number(parts[1])?, number(parts[2])?);
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return Err(err(format!("the year must be {MIN_YEAR} to {MAX_YEAR}")));
    }
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or_else(|| err("the month must be 01 to 12".to_owned()))?;
    let day = u8::try_from(day).map_err(|_| err("no such day".to_owned()))?;
    Date::from_calendar_date(year, month, day).map_err(|e| err(format!("no such day ({e})")))
}

/// The export's file name for `start..=end`: `audit/Q2_2025.csv` for a
/// calendar quarter, `audit/2025-04.csv` for a calendar month,
/// `audit/2025-04-01.csv` for one day, else
/// `audit/2025-04-01_2025-05-15.csv`.
pub fn audit_export_name(start: Date, end: Date) -> String {
    let whole = |p: Period| p.first_day() == start && p.end_day().previous_day() == Some(end);
    let month = Period::month_of(start);
    let quarter_number = (u8::from(start.month()) - 1) / 3 + 1;
    let quarter = Period { year: start.year(), first_month: (quarter_number - 1) * 3 + 1, months: 3 };
    if whole(quarter) {
        format!("audit/Q{quarter_number}_{:04}.csv", start.year())
    } else if whole(month) {
        format!("audit/{month}.csv")
    } else if start == end {
        format!("audit/{}.csv", ymd(start))
    } else {
        format!("audit/{}_{}.csv", ymd(start), ymd(end))
    }
}

fn first_of(year: i32, month: u8) -> Option<Date> {
    Date::from_calendar_date(year, Month::try_from(month).ok()?, 1).ok()
}

fn midnight(d: Date) -> OffsetDateTime {
    PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc()
}

/// `2025-04-01`.
pub(crate) fn ymd(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// RFC 3339, or the `Display` form for a year RFC 3339 cannot write.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}
