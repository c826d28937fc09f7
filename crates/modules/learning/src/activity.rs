//! Between xAPI statements and what the learning engines read.
//!
//! A learner of tenant `t` is the xAPI agent
//! `{"account": {"homePage": "<home_page>/<t>", "name": "<userId>"}}`; the
//! tenant's activities are IRIs under that home page:
//! `…/items/<item id>`, `…/content/<content id>`, `…/skills/<skill id>` and
//! `…/assessments/<assessment id>` (ids percent-encoded where an IRI needs
//! it; Japanese stays as it is, IRIs allow it). [`event_of`] turns a stored
//! statement into an [`Event`] when it is about one of the tenant's
//! learners and items, skills or content: the one mapping that
//! `track_learning_progress`, assessment answers and statements posted
//! through the xAPI endpoint share.

use serde_json::{Value, json};
use sha2::Digest as _;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::graph::Course;
use crate::irt::ItemBank;
use crate::xapi::Statement;

/// `answered`.
pub const VERB_ANSWERED: &str = "http://adlnet.gov/expapi/verbs/answered";
/// `completed`.
pub const VERB_COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An answer to an item (or to a skill, without an item).
    Answered,
    /// A content item completed.
    Completed,
}

impl EventKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Answered => "answered",
            EventKind::Completed => "completed",
        }
    }
}

/// One learner activity, as stored beside its statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The statement recording it.
    pub statement_id: String,
    /// The learner.
    pub user_id: String,
    /// Answer or completion.
    pub kind: EventKind,
    /// The item answered, if any.
    pub item: Option<String>,
    /// The content completed, if any.
    pub content: Option<String>,
    /// The skill involved (may be empty).
    pub skill: String,
    /// Whether the answer was correct.
    pub correct: Option<bool>,
    /// Seconds spent.
    pub duration: f64,
    /// When.
    pub at: OffsetDateTime,
}

/// The tenant's account home page.
pub fn home_page(base: &str, tenant: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), encode(tenant))
}

/// The xAPI agent of a learner.
pub fn learner_agent(home: &str, user: &str) -> Value {
    json!({"objectType": "Agent", "account": {"homePage": home, "name": user}})
}

/// The activity IRI of an id of `kind` (`items`, `content`, `skills`, `assessments`).
pub fn activity_iri(home: &str, kind: &str, id: &str) -> String {
    format!("{home}/{kind}/{}", encode(id))
}

/// The learner a statement's actor is, when it is an account of `home`.
pub fn learner_of(s: &Statement, home: &str) -> Option<String> {
    let key = s.actor_key()?;
    let rest = key.strip_prefix("account:")?.strip_prefix(home)?.strip_prefix(' ')?;
    (!rest.is_empty()).then(|| rest.to_owned())
}

/// `(kind, id)` of one of the tenant's activity IRIs.
pub fn parse_activity<'a>(iri: &'a str, home: &str) -> Option<(&'a str, String)> {
    let rest = iri.strip_prefix(home)?.strip_prefix('/')?;
    let (kind, id) = rest.split_once('/')?;
    let id = decode(id)?;
    (!id.is_empty()).then_some((kind, id))
}

/// The event a stored statement records, if it is about one of the
/// tenant's learners and an item, skill or content item the tenant has:
/// an answer needs `result.success` (item or skill); a completion needs
/// the verb `completed` or `result.completion: true` (content). Voiding
/// statements record nothing.
pub fn event_of(s: &Statement, home: &str, course: Option<&Course>, bank: Option<&ItemBank>) -> Option<Event> {
    if s.is_voiding() {
        return None;
    }
    let user = learner_of(s, home)?;
    let (kind, id) = parse_activity(s.activity_id()?, home)?;
    let at = s.timestamp().unwrap_or_else(OffsetDateTime::now_utc);
    let duration = s.duration_seconds().filter(|d| d.is_finite() && *d >= 0.0).unwrap_or(0.0);
    let base = Event {
        statement_id: s.id().to_owned(),
        user_id: user,
        kind: EventKind::Answered,
        item: None,
        content: None,
        skill: String::new(),
        correct: None,
        duration,
        at,
    };
    match kind {
        "items" => {
            let item = bank?.by_id(&id)?;
            let correct = s.success()?;
            Some(Event { skill: item.skill.clone(), item: Some(id), correct: Some(correct), ..base })
        }
        "skills" => {
            course?.skill(&id)?;
            let correct = s.success()?;
            Some(Event { skill: id, correct: Some(correct), ..base })
        }
        "content" => {
            let c = course?.content_item(&id)?;
            let done = s.verb_id() == VERB_COMPLETED || s.completion() == Some(true);
            done.then(|| Event { kind: EventKind::Completed, skill: c.skill.clone(), content: Some(id), ..base })
        }
        _ => None,
    }
}

/// A UUID (version 4 layout) derived from `parts`: the same parts give the
/// same id, so re-recording the same thing is idempotent.
pub fn derived_uuid(parts: &[&str]) -> String {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// A fresh random UUID.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// UTC text of fixed width (text order is time order), as stored.
pub fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"))
        .unwrap_or_default()
}

/// [`fmt_time`]'s text, read back.
pub fn parse_stored_time(s: &str) -> Option<OffsetDateTime> {
    let body = s.strip_suffix('Z')?;
    time::PrimitiveDateTime::parse(
        body,
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
    )
    .ok()
    .map(time::PrimitiveDateTime::assume_utc)
}

/// An RFC 3339 time, or a date (`2025-04-07`, midnight UTC), from a caller.
pub fn parse_user_time(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Some(t);
    }
    time::Date::parse(s, format_description!("[year]-[month]-[day]")).ok().map(|d| d.midnight().assume_utc())
}

/// RFC 3339, for answers.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Percent-encode what an IRI path segment may not hold as is: ASCII
/// other than unreserved characters; other characters (Japanese) stay.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~') || (!c.is_ascii() && !c.is_control()) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Undo [`encode`] (any percent escape); `None` for a malformed escape or
/// bytes that are not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_keeps_japanese() {
        for s in ["q1", "代数-01", "a b/c%d?", "é"] {
            assert_eq!(decode(&encode(s)).as_deref(), Some(s));
        }
        assert_eq!(encode("代数 1"), "代数%201");
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%4"), None);
    }

    #[test]
    fn derived_ids_are_stable_uuids() {
        let a = derived_uuid(&["t", "s", "q1"]);
        assert_eq!(a, derived_uuid(&["t", "s", "q1"]));
        assert_ne!(a, derived_uuid(&["t", "s", "q2"]));
        assert_ne!(derived_uuid(&["ab", "c"]), derived_uuid(&["a", "bc"]));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }

    #[test]
    fn stored_times_round_trip() {
        let t = time::macros::datetime!(2025-04-07 09:30:15.123456 +09:00);
        let s = fmt_time(t);
        assert_eq!(s, "2025-04-07T00:30:15.123456Z");
        assert_eq!(parse_stored_time(&s), Some(t));
        assert_eq!(parse_user_time("2025-04-07"), Some(time::macros::datetime!(2025-04-07 00:00 UTC)));
        assert!(parse_user_time("yesterday").is_none());
    }
}
