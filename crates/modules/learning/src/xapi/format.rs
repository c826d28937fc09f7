//! The string formats of xAPI values: IRIs, UUIDs, mailto IRIs, SHA-1
//! sums, RFC 5646 language tags, ISO 8601 timestamps and durations.
//! Validation is best effort where the specification allows it (IRIs,
//! language tags: syntax only) and exact elsewhere (dates, durations).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Whether `s` is an absolute IRI: a scheme, a colon and something after
/// it, with no whitespace, control characters or characters that IRIs
/// never contain unescaped, and well-formed percent escapes. Relative
/// references (no scheme) are refused.
pub(crate) fn is_iri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else { return false };
    let mut sc = scheme.chars();
    if !matches!(sc.next(), Some(c) if c.is_ascii_alphabetic()) {
        return false;
    }
    if !sc.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return false;
    }
    if rest.is_empty() {
        return false;
    }
    if let Some(after) = rest.strip_prefix("//") {
        // An authority was announced: it must not be empty.
        let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        if host_end == 0 {
            return false;
        }
    }
    let bytes = rest.as_bytes();
    for (i, c) in rest.char_indices() {
        if c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`') {
            return false;
        }
        if c == '%' {
            let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
        }
    }
    true
}

/// A UUID in the standard string form (8-4-4-4-12 hexadecimal digits),
/// lowercased; `None` for anything else (braces, `urn:uuid:`, no hyphens).
pub(crate) fn uuid(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    for (i, c) in b.iter().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() };
        if !ok {
            return None;
        }
    }
    Some(s.to_ascii_lowercase())
}

/// Whether `s` is `mailto:` followed by one address (`local@domain`).
pub(crate) fn is_mailto(s: &str) -> bool {
    let Some(addr) = s.strip_prefix("mailto:") else { return false };
    let Some((local, domain)) = addr.rsplit_once('@') else { return false };
    !local.is_empty() && !domain.is_empty() && is_iri(s) && !addr.contains([',', '?'])
}

/// A mailto IRI with its domain lowercased (the domain part of an email
/// address is case insensitive; the local part is not).
pub(crate) fn normalize_mailto(s: &str) -> String {
    match s.rsplit_once('@') {
        Some((head, domain)) => format!("{head}@{}", domain.to_lowercase()),
        None => s.to_owned(),
    }
}

/// Whether `s` is 40 hexadecimal digits.
pub(crate) fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` is hexadecimal of a SHA-2 digest length (224, 256, 384 or
/// 512 bits).
pub(crate) fn is_sha2_hex(s: &str) -> bool {
    matches!(s.len(), 56 | 64 | 96 | 128) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The irregular grandfathered tags of RFC 5646, which its grammar does
/// not otherwise produce.
const IRREGULAR: &[&str] = &[
    "en-gb-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-be-fr",
    "sgn-be-nl",
    "sgn-ch-de",
];

/// Whether `s` follows the RFC 5646 grammar (language, extlang, script,
/// region, variants, extensions, private use; private-use-only and the
/// irregular grandfathered tags). Case insensitive, like the RFC.
pub(crate) fn is_language_tag(s: &str) -> bool {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if IRREGULAR.contains(&lower.as_str()) {
        return true;
    }
    let parts: Vec<&str> = lower.split('-').collect();
    if parts.iter().any(|p| p.is_empty() || p.len() > 8) {
        return false;
    }
    let alpha = |p: &str| p.bytes().all(|b| b.is_ascii_alphabetic());
    let digit = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let n = parts.len();
    let mut i = 0;
    if parts[0] == "x" {
        return n > 1;
    }
    // language
    let first = parts[0];
    if !alpha(first) || first.len() < 2 {
        return false;
    }
    i += 1;
    if first.len() <= 3 {
        let mut extlangs = 0;
        while i < n && extlangs < 3 && parts[i].len() == 3 && alpha(parts[i]) {
            i += 1;
            extlangs += 1;
        }
    }
    // script
    if i < n && parts[i].len() == 4 && alpha(parts[i]) {
        i += 1;
    }
    // region
    if i < n && ((parts[i].len() == 2 && alpha(parts[i])) || (parts[i].len() == 3 && digit(parts[i]))) {
        i += 1;
    }
    // variants
    while i < n {
        let p = parts[i];
        let variant = p.len() >= 5 || (p.len() == 4 && p.as_bytes()[0].is_ascii_digit());
        if !variant {
            break;
        }
        i += 1;
    }
    // extensions
    while i < n && parts[i].len() == 1 && parts[i] != "x" {
        i += 1;
        let mut subtags = 0;
        while i < n && parts[i].len() >= 2 {
            i += 1;
            subtags += 1;
        }
        if subtags == 0 {
            return false;
        }
    }
    // private use
    if i < n && parts[i] == "x" {
        i += 1;
        if i == n {
            return false;
        }
        i = n;
    }
    i == n
}

/// An ISO 8601 combined date and time with a time zone, as RFC 3339
/// profiles it (`2024-05-01T09:30:00.250+09:00`, `...Z`), also with a
/// comma as decimal sign and basic offsets (`+0900`, `+09`). `-00:00`
/// (which ISO 8601 does not allow) and dates that do not exist are
/// refused. Years outside 0000–9999 in UTC are refused too.
pub(crate) fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter().try_fold(0u32, |acc, d| acc.checked_mul(10)?.checked_add(u32::from(d - b'0')))
    };
    let year = num(0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b't')) {
        return None;
    }
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut i = 19;
    let mut nanos = 0u32;
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset_seconds: i32 = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let negative = *sign == b'-';
            let hh = num(i + 1, 2)?;
            i += 3;
            let mm = if b.get(i) == Some(&b':') {
                let m = num(i + 1, 2)?;
                i += 3;
                m
            } else if b.len() >= i + 2 {
                let m = num(i, 2)?;
                i += 2;
                m
            } else {
                0
            };
            if hh > 23 || mm > 59 || (negative && hh == 0 && mm == 0) {
                return None;
            }
            let secs = i32::try_from(hh * 3600 + mm * 60).ok()?;
            if negative { -secs } else { secs }
        }
        _ => return None,
    };
    if i != b.len() {
        return None;
    }
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let time =
        Time::from_hms_nano(u8::try_from(hour).ok()?, u8::try_from(minute).ok()?, u8::try_from(second).ok()?, nanos)
            .ok()?;
    let offset = UtcOffset::from_whole_seconds(offset_seconds).ok()?;
    let utc = PrimitiveDateTime::new(date, time).assume_offset(offset).checked_to_offset(UtcOffset::UTC)?;
    (0..=9999).contains(&utc.year()).then_some(utc)
}

/// `t` in UTC as RFC 3339 with at least millisecond precision
/// (`2024-05-01T00:30:00.250Z`; 6 or 9 fraction digits when needed).
pub(crate) fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.checked_to_offset(UtcOffset::UTC).unwrap_or(t);
    let nanos = t.nanosecond();
    let frac = if nanos.is_multiple_of(1_000_000) {
        format!("{:03}", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{:06}", nanos / 1_000)
    } else {
        format!("{nanos:09}")
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{frac}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `t` in UTC, truncated to microseconds, in a fixed-width form whose
/// text order is time order: the `stored` column and the `since`/`until`
/// bounds compared with it.
pub(crate) fn sort_key(t: OffsetDateTime) -> String {
    let t = t.checked_to_offset(UtcOffset::UTC).unwrap_or(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Seconds in the designators of durations: years and months are
/// averages of the Gregorian calendar (365.2425 days, a twelfth of that).
const YEAR: f64 = 31_556_952.0;
const MONTH: f64 = YEAR / 12.0;
const WEEK: f64 = 604_800.0;
const DAY: f64 = 86_400.0;

/// An ISO 8601 duration in the format with designators
/// (`P3Y1M29DT4H35M59.14S`, `PT1234S`, `P4W`; weeks alone), in seconds
/// (years and months at their average lengths). A decimal fraction is
/// allowed on the last component only. `None` for anything else,
/// including the alternative format (`P0003-01-29T...`), a bare `P` or
/// `PT`, and components out of order.
pub(crate) fn parse_duration(s: &str) -> Option<f64> {
    let rest = s.strip_prefix('P')?;
    let b = rest.as_bytes();
    // (number, designator, in the time part)
    let mut parts: Vec<(f64, u8, bool, bool)> = Vec::new();
    let mut i = 0;
    let mut in_time = false;
    while i < b.len() {
        if b[i] == b'T' {
            if in_time {
                return None;
            }
            in_time = true;
            i += 1;
            if i == b.len() {
                return None;
            }
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let mut fraction = false;
        if i < b.len() && matches!(b[i], b'.' | b',') {
            fraction = true;
            i += 1;
            let f = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == f {
                return None;
            }
        }
        let text = rest.get(start..i)?.replace(',', ".");
        let value: f64 = text.parse().ok()?;
        let designator = *b.get(i)?;
        i += 1;
        parts.push((value, designator, in_time, fraction));
    }
    if parts.is_empty() {
        return None;
    }
    // Only the last component may carry a fraction.
    if parts.iter().rev().skip(1).any(|p| p.3) {
        return None;
    }
    if parts.iter().any(|p| p.1 == b'W') {
        return match parts.as_slice() {
            [(w, b'W', false, _)] => Some(w * WEEK),
            _ => None,
        };
    }
    let mut last_rank = 0;
    let mut seconds = 0.0;
    for (value, designator, time, _) in parts {
        let (rank, unit) = match (time, designator) {
            (false, b'Y') => (1, YEAR),
            (false, b'M') => (2, MONTH),
            (false, b'D') => (3, DAY),
            (true, b'H') => (4, 3600.0),
            (true, b'M') => (5, 60.0),
            (true, b'S') => (6, 1.0),
            _ => return None,
        };
        if rank <= last_rank {
            return None;
        }
        last_rank = rank;
        seconds += value * unit;
    }
    seconds.is_finite().then_some(seconds)
}

/// `seconds` as an ISO 8601 duration to a hundredth of a second
/// (`PT90.5S`); `None` if negative, not finite or absurdly long.
pub(crate) fn duration_from_seconds(seconds: f64) -> Option<String> {
    if !seconds.is_finite() || !(0.0..=1e12).contains(&seconds) {
        return None;
    }
    let hundredths = (seconds * 100.0).round();
    // In range: at most 1e14, exactly representable as an integer.
    let cs = hundredths as u64;
    let (whole, frac) = (cs / 100, cs % 100);
    Some(if frac == 0 {
        format!("PT{whole}S")
    } else if frac % 10 == 0 {
        format!("PT{whole}.{}S", frac / 10)
    } else {
        format!("PT{whole}.{frac:02}S")
    })
}
