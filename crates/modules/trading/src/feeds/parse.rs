//! Field parsers shared by the venue protocols: decimals given as strings or
//! numbers, `[price, qty]` levels, integer ids and RFC 3339 times. Every
//! parser refuses what it cannot vouch for instead of guessing.

use serde_json::{Map, Value};

use super::book::BookLevel;

/// Why a venue message was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MessageError {
    /// Not JSON, or not a JSON object.
    #[error("not a json object: {0}")]
    NotJson(String),
    /// A field is missing or has the wrong type or an impossible value.
    #[error("field {field}: {problem}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// An event type this handler does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A symbol the feed did not subscribe to.
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
    /// The venue answered with an error.
    #[error("venue error: {0}")]
    Venue(String),
    /// A binary frame that is not UTF-8 text.
    #[error("binary frame that is not utf-8 text")]
    Binary,
}

pub(crate) type Fields = Map<String, Value>;

/// Parses a message into a JSON object.
pub(crate) fn object(text: &str) -> Result<Fields, MessageError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(MessageError::NotJson("not an object".to_owned())),
        Err(e) => Err(MessageError::NotJson(e.to_string())),
    }
}

const fn bad(field: &'static str, problem: &'static str) -> MessageError {
    MessageError::Field { field, problem }
}

/// A required string field.
pub(crate) fn str_field<'a>(fields: &'a Fields, field: &'static str) -> Result<&'a str, MessageError> {
    match fields.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(bad(field, "not a string")),
        None => Err(bad(field, "missing")),
    }
}

/// A required non-negative integer field (a JSON integer, or a string of digits).
pub(crate) fn u64_field(fields: &Fields, field: &'static str) -> Result<u64, MessageError> {
    match fields.get(field) {
        Some(value) => u64_value(value).ok_or_else(|| bad(field, "not a non-negative integer")),
        None => Err(bad(field, "missing")),
    }
}

fn u64_value(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }
}

/// An optional integer field (milliseconds since the epoch and the like); a
/// present field of the wrong type is an error.
pub(crate) fn opt_i64_field(fields: &Fields, field: &'static str) -> Result<Option<i64>, MessageError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| bad(field, "not an integer")),
        Some(_) => Err(bad(field, "not an integer")),
    }
}

/// A required boolean field.
pub(crate) fn bool_field(fields: &Fields, field: &'static str) -> Result<bool, MessageError> {
    match fields.get(field) {
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(field, "not a boolean")),
        None => Err(bad(field, "missing")),
    }
}

/// A required array field.
pub(crate) fn array_field<'a>(fields: &'a Fields, field: &'static str) -> Result<&'a [Value], MessageError> {
    match fields.get(field) {
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(bad(field, "not an array")),
        None => Err(bad(field, "missing")),
    }
}

/// A decimal given as a string (as venues send them) or a JSON number.
fn decimal(value: &Value) -> Option<f64> {
    let parsed = match value {
        Value::String(s) => {
            // Refuse what `f64::from_str` accepts but no venue means: "inf", "NaN", "1e400".
            if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) {
                return None;
            }
            s.parse::<f64>().ok()?
        }
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    parsed.is_finite().then_some(parsed)
}

/// A price: finite and strictly positive.
pub(crate) fn price_value(value: &Value, field: &'static str) -> Result<f64, MessageError> {
    match decimal(value) {
        Some(p) if p > 0.0 => Ok(p),
        Some(_) => Err(bad(field, "price is not positive")),
        None => Err(bad(field, "price is not a finite decimal")),
    }
}

/// A quantity: finite and non-negative (zero means "remove the level" in books).
pub(crate) fn qty_value(value: &Value, field: &'static str) -> Result<f64, MessageError> {
    match decimal(value) {
        // -0.0 becomes 0.0
        Some(q) if q >= 0.0 => Ok(q + 0.0),
        Some(_) => Err(bad(field, "quantity is negative")),
        None => Err(bad(field, "quantity is not a finite decimal")),
    }
}

/// A required decimal price field.
pub(crate) fn price_field(fields: &Fields, field: &'static str) -> Result<f64, MessageError> {
    price_value(fields.get(field).ok_or_else(|| bad(field, "missing"))?, field)
}

/// A required decimal quantity field.
pub(crate) fn qty_field(fields: &Fields, field: &'static str) -> Result<f64, MessageError> {
    qty_value(fields.get(field).ok_or_else(|| bad(field, "missing"))?, field)
}

/// `[[price, qty, ...], ...]` (extra elements ignored, as in Binance's old
/// three-element levels); every level checked before any is used.
pub(crate) fn levels(items: &[Value], field: &'static str) -> Result<Vec<BookLevel>, MessageError> {
    items
        .iter()
        .map(|item| match item {
            Value::Array(pair) if pair.len() >= 2 => {
                Ok(BookLevel { price: price_value(&pair[0], field)?, qty: qty_value(&pair[1], field)? })
            }
            _ => Err(bad(field, "a level is not a [price, quantity] array")),
        })
        .collect()
}

/// An RFC 3339 UTC time like `2014-11-07T08:19:27.028459Z` (or with a
/// `+hh:mm` offset) as milliseconds since the Unix epoch.
pub(crate) fn rfc3339_millis(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0i64;
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in rest[1..=digits].iter().take(3).enumerate() {
            millis += i64::from(c - b'0') * [100, 10, 1][i];
        }
        rest = &rest[1 + digits..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let all = [*h1, *h2, *m1, *m2];
            if !all.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let minutes = i64::from((h1 - b'0') * 10 + (h2 - b'0')) * 60 + i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_millis("2014-11-07T08:19:27.028459Z"), Some(1_415_348_367_028));
        assert_eq!(rfc3339_millis("2014-11-07T09:19:27.028+01:00"), Some(1_415_348_367_028));
        assert_eq!(rfc3339_millis("2014-11-07"), None);
        assert_eq!(rfc3339_millis("2014-11-07T08:19:27.Z"), None);
        assert_eq!(rfc3339_millis("2014-13-07T08:19:27Z"), None);
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal(&Value::from("0.00100000")), Some(0.001));
        assert_eq!(decimal(&Value::from("NaN")), None);
        assert_eq!(decimal(&Value::from("inf")), None);
        assert_eq!(decimal(&Value::from("1e400")), None);
        assert!(price_value(&Value::from("-1"), "p").is_err());
        assert!(price_value(&Value::from("0"), "p").is_err());
        assert_eq!(qty_value(&Value::from("-0"), "q"), Ok(0.0));
        assert!(qty_value(&Value::from("-0.5"), "q").is_err());
        assert!(levels(&[Value::from(1)], "b").is_err());
    }
}
