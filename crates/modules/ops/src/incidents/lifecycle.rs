//! The incident lifecycle: plain data and the rules that change it.
//!
//! Transitions (rank investigating 0 < identified 1 < monitoring 2 <
//! resolved 3):
//! - forward, skipping allowed: investigating → identified, monitoring or
//!   resolved; identified → monitoring or resolved; monitoring → resolved;
//! - back from monitoring to investigating or identified: the fix did not
//!   hold (a regression);
//! - nothing else: identified → investigating is refused (go on to
//!   monitoring and fall back from there if the fix does not hold), and a
//!   resolved incident is never reopened: it takes notes only (follow-ups,
//!   the postmortem link); a recurrence is a new incident;
//! - an update naming the current status is a note, like one naming none.
//!
//! Every accepted update appends a [`TimelineEntry`]; a refused one leaves
//! the incident exactly as it was. Time is the caller's `now`; if it is
//! earlier than the last update (a clock stepped back) the entry is stamped
//! with the last update's time instead, so the timeline stays ordered.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Longest title, in characters (not bytes: titles are often Japanese).
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 10_000;
/// Longest affected system or team name, in characters.
pub const MAX_ENTRY_CHARS: usize = 100;
/// Longest author, in characters.
pub const MAX_AUTHOR_CHARS: usize = 200;
/// Most affected systems, and most teams, on one incident.
pub const MAX_ENTRIES: usize = 50;
/// Most timeline entries on one incident.
pub const MAX_TIMELINE: usize = 1_000;

/// Why an incident could not be created, changed or read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IncidentError {
    #[error("the title is empty")]
    EmptyTitle,
    #[error("the title must be one line")]
    MultilineTitle,
    #[error("the author is empty")]
    EmptyAuthor,
    #[error("the author must be one line")]
    MultilineAuthor,
    #[error("{field} is {len} characters long, over the limit of {max}")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("{field} has {len} entries, over the limit of {max}")]
    TooMany { field: &'static str, len: usize, max: usize },
    #[error("{field} has an empty or multi-line entry")]
    BadEntry { field: &'static str },
    #[error("an incident needs at least one team")]
    NoTeams,
    #[error("unknown severity `{0}`: expected sev1, sev2, sev3, sev4 or critical, high, medium, low")]
    UnknownSeverity(String),
    #[error("unknown status `{0}`: expected investigating, identified, monitoring or resolved")]
    UnknownStatus(String),
    #[error("an update needs a new status or a note")]
    EmptyUpdate,
    #[error("cannot move {id} from {from} to {to}: {why}")]
    InvalidTransition { id: String, from: Status, to: Status, why: &'static str },
    #[error("the timeline of {id} is full ({max} entries): open a follow-up incident")]
    TimelineFull { id: String, max: usize },
    #[error("no incident `{0}`")]
    UnknownIncident(String),
    #[error("`{0}` is not an incident id: expected INC- and digits, e.g. INC-0001")]
    BadId(String),
    #[error("incident {0} appears in two documents")]
    DuplicateId(String),
    #[error("incident document {index} is not valid JSON for an incident")]
    Unreadable {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("incident document {id} is inconsistent: {reason}")]
    Inconsistent { id: String, reason: String },
}

/// How bad it is. Written `sev1`..`sev4`; `critical`, `high`, `medium`,
/// `low` (and `SEV-1`, `Sev 2`, any case) are read as the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Severity {
    #[serde(rename = "sev1", alias = "critical")]
    Sev1,
    #[serde(rename = "sev2", alias = "high")]
    Sev2,
    #[serde(rename = "sev3", alias = "medium")]
    Sev3,
    #[serde(rename = "sev4", alias = "low")]
    Sev4,
}

impl Severity {
    /// `sev1`..`sev4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sev1 => "sev1",
            Self::Sev2 => "sev2",
            Self::Sev3 => "sev3",
            Self::Sev4 => "sev4",
        }
    }

    /// `critical`, `high`, `medium`, `low`.
    pub fn word(self) -> &'static str {
        match self {
            Self::Sev1 => "critical",
            Self::Sev2 => "high",
            Self::Sev3 => "medium",
            Self::Sev4 => "low",
        }
    }

    /// `SEV1 (critical)`, for people.
    pub fn label(self) -> String {
        format!("{} ({})", self.as_str().to_uppercase(), self.word())
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = IncidentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let folded: String =
            s.trim().chars().filter(|c| !matches!(c, '-' | '_' | ' ')).flat_map(char::to_lowercase).collect();
        match folded.as_str() {
            "sev1" | "critical" => Ok(Self::Sev1),
            "sev2" | "high" => Ok(Self::Sev2),
            "sev3" | "medium" => Ok(Self::Sev3),
            "sev4" | "low" => Ok(Self::Sev4),
            _ => Err(IncidentError::UnknownSeverity(s.chars().take(40).collect())),
        }
    }
}

/// Where an incident is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl Status {
    /// `investigating`, `identified`, `monitoring`, `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Investigating => "investigating",
            Self::Identified => "identified",
            Self::Monitoring => "monitoring",
            Self::Resolved => "resolved",
        }
    }

    fn rank(self) -> u8 {
        match self {
            Self::Investigating => 0,
            Self::Identified => 1,
            Self::Monitoring => 2,
            Self::Resolved => 3,
        }
    }

    /// Whether `self → to` is allowed (`self != to`); if not, why.
    fn check(self, to: Self) -> Result<(), &'static str> {
        if self == Self::Resolved {
            return Err("a resolved incident takes notes only; open a new incident if it recurs");
        }
        if to.rank() > self.rank() || self == Self::Monitoring {
            return Ok(());
        }
        Err("only monitoring may go back (to investigating or identified)")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = IncidentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_lowercase().as_str() {
            "investigating" => Ok(Self::Investigating),
            "identified" => Ok(Self::Identified),
            "monitoring" => Ok(Self::Monitoring),
            "resolved" => Ok(Self::Resolved),
            _ => Err(IncidentError::UnknownStatus(s.chars().take(40).collect())),
        }
    }
}

/// One line of the timeline: a status change, a note, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// RFC 3339.
    #[serde(with = "rfc3339")]
    #[schemars(with = "String")]
    pub at: OffsetDateTime,
    pub author: String,
    /// The status after this entry.
    pub status: Status,
    /// May be empty on a status change.
    pub note: String,
}

/// An incident and its timeline; stored as `incidents/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    /// `INC-` and a sequence number of at least four digits: `INC-0001`.
    pub id: String,
    pub severity: Severity,
    pub title: String,
    /// Affected systems.
    pub affected: Vec<String>,
    /// Teams responding.
    pub teams: Vec<String>,
    pub status: Status,
    #[serde(with = "rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    #[serde(with = "rfc3339")]
    #[schemars(with = "String")]
    pub updated_at: OffsetDateTime,
    /// When it was resolved; stays set for notes after resolution.
    #[serde(default, with = "rfc3339_option")]
    #[schemars(with = "Option<String>")]
    pub resolved_at: Option<OffsetDateTime>,
    /// Oldest first; the first entry is the declaration.
    pub timeline: Vec<TimelineEntry>,
}

/// What a new incident is declared with.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub severity: Severity,
    pub title: String,
    pub affected: Vec<String>,
    pub teams: Vec<String>,
    pub author: String,
    /// The first timeline entry's note; may be empty.
    pub note: String,
}

/// A change to an incident: a new status, a note, or both.
#[derive(Debug, Clone)]
pub struct Update {
    pub status: Option<Status>,
    pub note: String,
    pub author: String,
}

impl Update {
    /// A note without a status change.
    pub fn note(author: impl Into<String>, note: impl Into<String>) -> Self {
        Self { status: None, note: note.into(), author: author.into() }
    }

    /// A status change with a note (which may be empty).
    pub fn status(author: impl Into<String>, status: Status, note: impl Into<String>) -> Self {
        Self { status: Some(status), note: note.into(), author: author.into() }
    }
}

impl Incident {
    /// The registry document this incident is stored as.
    pub fn document_path(&self) -> String {
        format!("incidents/{}.json", self.id)
    }

    /// The stored form: pretty JSON.
    pub fn to_json(&self) -> String {
        // A struct of strings, enums and vectors: serialization cannot fail,
        // but an empty object is a safer fallback than a panic.
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Read back a stored document, checked as [`IncidentBook::from_documents`]
    /// checks each one.
    pub fn from_json(json: &str) -> Result<Self, IncidentError> {
        let incident: Self =
            serde_json::from_str(json).map_err(|source| IncidentError::Unreadable { index: 0, source })?;
        incident.check_document()?;
        Ok(incident)
    }

    /// How long it lasted (created → resolved), if resolved.
    pub fn duration(&self) -> Option<time::Duration> {
        self.resolved_at.map(|r| r - self.created_at)
    }

    /// The latest non-empty note and its entry.
    pub fn latest_note(&self) -> Option<&TimelineEntry> {
        self.timeline.iter().rev().find(|e| !e.note.is_empty())
    }

    /// Apply `update` at `now`; on error the incident is unchanged.
    pub fn update(&mut self, update: Update, now: OffsetDateTime) -> Result<&TimelineEntry, IncidentError> {
        let author = check_author(&update.author)?;
        check_note(&update.note)?;
        let to = match update.status {
            Some(to) if to != self.status => {
                self.status.check(to).map_err(|why| IncidentError::InvalidTransition {
                    id: self.id.clone(),
                    from: self.status,
                    to,
                    why,
                })?;
                to
            }
            _ if update.note.trim().is_empty() => return Err(IncidentError::EmptyUpdate),
            _ => self.status,
        };
        if self.timeline.len() >= MAX_TIMELINE {
            return Err(IncidentError::TimelineFull { id: self.id.clone(), max: MAX_TIMELINE });
        }
        let at = now.max(self.updated_at);
        if to == Status::Resolved && self.status != Status::Resolved {
            self.resolved_at = Some(at);
        }
        self.status = to;
        self.updated_at = at;
        self.timeline.push(TimelineEntry { at, author, status: to, note: update.note });
        Ok(&self.timeline[self.timeline.len() - 1])
    }

    fn check_document(&self) -> Result<(), IncidentError> {
        parse_id(&self.id)?;
        let bad = |reason: &str| IncidentError::Inconsistent { id: self.id.clone(), reason: reason.to_owned() };
        let Some(last) = self.timeline.last() else {
            return Err(bad("the timeline is empty"));
        };
        if last.status != self.status {
            return Err(bad("the status is not the last timeline entry's"));
        }
        if self.resolved_at.is_some() != (self.status == Status::Resolved) {
            return Err(bad("resolvedAt is set exactly when the status is resolved"));
        }
        if self.teams.is_empty() {
            return Err(IncidentError::NoTeams);
        }
        Ok(())
    }
}

/// Every incident, by sequence number; the next id is one past the
/// highest ever seen.
#[derive(Debug, Clone)]
pub struct IncidentBook {
    incidents: BTreeMap<u64, Incident>,
    next: u64,
}

impl IncidentBook {
    /// An empty book; the first incident is `INC-0001`.
    pub fn new() -> Self {
        Self { incidents: BTreeMap::new(), next: 1 }
    }

    /// Rebuild from stored documents (`incidents/<id>.json`, any order).
    /// The next id follows the highest id read, so ids never repeat.
    pub fn from_documents<'a>(documents: impl IntoIterator<Item = &'a str>) -> Result<Self, IncidentError> {
        let mut book = Self::new();
        for (index, json) in documents.into_iter().enumerate() {
            let incident: Incident =
                serde_json::from_str(json).map_err(|source| IncidentError::Unreadable { index, source })?;
            incident.check_document()?;
            let seq = parse_id(&incident.id)?;
            if book.incidents.contains_key(&seq) {
                return Err(IncidentError::DuplicateId(incident.id));
            }
            book.next = book.next.max(seq.saturating_add(1));
            book.incidents.insert(seq, incident);
        }
        Ok(book)
    }

    /// Declare an incident (status investigating) at `now`.
    pub fn create(&mut self, new: NewIncident, now: OffsetDateTime) -> Result<&Incident, IncidentError> {
        let title = check_title(&new.title)?;
        let affected = check_list("affected", &new.affected)?;
        let teams = check_list("teams", &new.teams)?;
        if teams.is_empty() {
            return Err(IncidentError::NoTeams);
        }
        let author = check_author(&new.author)?;
        check_note(&new.note)?;
        let seq = self.next.max(1);
        let id = format!("INC-{seq:04}");
        let incident = Incident {
            id,
            severity: new.severity,
            title,
            affected,
            teams,
            status: Status::Investigating,
            created_at: now,
            updated_at: now,
            resolved_at: None,
            timeline: vec![TimelineEntry { at: now, author, status: Status::Investigating, note: new.note }],
        };
        self.next = seq.saturating_add(1);
        Ok(self.incidents.entry(seq).or_insert(incident))
    }

    /// Change incident `id`; on error it is unchanged.
    pub fn update(&mut self, id: &str, update: Update, now: OffsetDateTime) -> Result<&Incident, IncidentError> {
        let seq = parse_id(id).map_err(|_| IncidentError::UnknownIncident(id.chars().take(40).collect()))?;
        let incident = self
            .incidents
            .get_mut(&seq)
            .ok_or_else(|| IncidentError::UnknownIncident(id.chars().take(40).collect()))?;
        incident.update(update, now)?;
        Ok(incident)
    }

    /// Incident `id`.
    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(&parse_id(id).ok()?)
    }

    /// Every incident, oldest id first.
    pub fn iter(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    /// The incidents not yet resolved, oldest id first.
    pub fn open(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values().filter(|i| i.status != Status::Resolved)
    }

    /// The id the next [`create`](Self::create) will hand out.
    pub fn next_id(&self) -> String {
        format!("INC-{:04}", self.next.max(1))
    }

    pub fn len(&self) -> usize {
        self.incidents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
    }
}

impl Default for IncidentBook {
    fn default() -> Self {
        Self::new()
    }
}

/// `INC-0042` → 42.
fn parse_id(id: &str) -> Result<u64, IncidentError> {
    let bad = || IncidentError::BadId(id.chars().take(40).collect());
    let digits = id.strip_prefix("INC-").ok_or_else(bad)?;
    if digits.len() < 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match digits.parse::<u64>() {
        Ok(n) if n > 0 && format!("{n:04}") == digits => Ok(n),
        _ => Err(bad()),
    }
}

fn check_len(field: &'static str, s: &str, max: usize) -> Result<(), IncidentError> {
    let len = s.chars().count();
    if len > max {
        return Err(IncidentError::TooLong { field, len, max });
    }
    Ok(())
}

fn check_title(title: &str) -> Result<String, IncidentError> {
    let t = title.trim();
    if t.is_empty() {
        return Err(IncidentError::EmptyTitle);
    }
    if t.chars().any(char::is_control) {
        return Err(IncidentError::MultilineTitle);
    }
    check_len("title", t, MAX_TITLE_CHARS)?;
    Ok(t.to_owned())
}

fn check_author(author: &str) -> Result<String, IncidentError> {
    let a = author.trim();
    if a.is_empty() {
        return Err(IncidentError::EmptyAuthor);
    }
    if a.chars().any(char::is_control) {
        return Err(IncidentError::MultilineAuthor);
    }
    check_len("author", a, MAX_AUTHOR_CHARS)?;
    Ok(a.to_owned())
}

fn check_note(note: &str) -> Result<(), IncidentError> {
    check_len("note", note, MAX_NOTE_CHARS)
}

/// Trimmed, one line each, no duplicates (first kept), within the limits.
fn check_list(field: &'static str, items: &[String]) -> Result<Vec<String>, IncidentError> {
    if items.len() > MAX_ENTRIES {
        return Err(IncidentError::TooMany { field, len: items.len(), max: MAX_ENTRIES });
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let t = item.trim();
        if t.is_empty() || t.chars().any(char::is_control) {
            return Err(IncidentError::BadEntry { field });
        }
        check_len(field, t, MAX_ENTRY_CHARS)?;
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    Ok(out)
}

/// RFC 3339 timestamps (time's `serde` feature is not enabled here).
pub(crate) mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub(crate) fn serialize<S: Serializer>(at: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = at.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod rfc3339_option {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub(crate) fn serialize<S: Serializer>(at: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::rfc3339::serialize(at, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::rfc3339")] OffsetDateTime);
        Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(at)| at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_strictly() {
        assert_eq!(parse_id("INC-0001").ok(), Some(1));
        assert_eq!(parse_id("INC-12345").ok(), Some(12345));
        for bad in ["INC-1", "INC-0000", "INC-00012", "inc-0001", "INC-00a1", "INC-", "X-0001"] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn transitions_follow_the_table() {
        use Status::*;
        let all = [Investigating, Identified, Monitoring, Resolved];
        let allowed = [
            (Investigating, Identified),
            (Investigating, Monitoring),
            (Investigating, Resolved),
            (Identified, Monitoring),
            (Identified, Resolved),
            (Monitoring, Resolved),
            (Monitoring, Investigating),
            (Monitoring, Identified),
        ];
        for from in all {
            for to in all.into_iter().filter(|t| *t != from) {
                assert_eq!(from.check(to).is_ok(), allowed.contains(&(from, to)), "{from} → {to}");
            }
        }
    }
}
