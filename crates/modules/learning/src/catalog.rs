//! A tenant's course, item bank and item content, parsed once and shared
//! (the service caches one [`Catalog`] per tenant until the next import).
//!
//! Item content is what a learner sees of an item and what scores an
//! answer: a stem, options (labelled A, B, C, …) and the answer key (an
//! option label, or the expected text for an item without options). An
//! item without a key is scored by the caller, who says whether the answer
//! was correct.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::LearningError;
use crate::graph::Course;
use crate::irt::{Item, ItemBank};

/// Most options an item may have (labels A to J).
pub const MAX_OPTIONS: usize = 10;

/// What a learner sees of an item and what scores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemContent {
    /// The item's id in the bank.
    pub id: String,
    /// The question (1 to 10,000 characters).
    pub stem: String,
    /// The options, labelled A, B, C, … in this order (none: a free answer).
    #[serde(default)]
    pub options: Vec<String>,
    /// The key: an option's label (`B`) or its exact text, or the expected
    /// free answer; absent: the caller scores answers (`response: true/false`).
    #[serde(default)]
    pub answer: Option<String>,
}

/// How an answer is scored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    /// The option at this index.
    Option(usize),
    /// A free answer, compared trimmed and case-insensitively.
    Text(String),
    /// The caller says whether it was correct.
    Caller,
}

/// An item's content with its key normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// As imported.
    pub raw: ItemContent,
    key: Key,
}

/// The label of option `i` (`A` for 0).
pub fn label(i: usize) -> String {
    char::from(b'A' + (i % 26) as u8).to_string()
}

fn option_index(options: &[String], given: &str) -> Option<usize> {
    let g = given.trim();
    if g.chars().count() == 1
        && let Some(c) = g.chars().next()
    {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_uppercase() {
            let i = usize::from(c as u8 - b'A');
            if i < options.len() {
                return Some(i);
            }
        }
    }
    let lower = g.to_lowercase();
    options.iter().position(|o| o.trim().to_lowercase() == lower)
}

impl Content {
    /// Checks `raw` (`at` names it in errors: `items[3]`).
    pub fn new(raw: ItemContent, at: &str) -> Result<Self, LearningError> {
        let bad = |m: String| LearningError::Invalid(format!("{at} (item `{}`): {m}", raw.id));
        let n = raw.stem.chars().count();
        if raw.stem.trim().is_empty() || n > 10_000 {
            return Err(bad(format!("stem must be 1 to 10000 characters, got {n}")));
        }
        if raw.options.len() > MAX_OPTIONS || raw.options.len() == 1 {
            return Err(bad(format!("options: give 2 to {MAX_OPTIONS} options or none, got {}", raw.options.len())));
        }
        for (i, o) in raw.options.iter().enumerate() {
            if o.trim().is_empty() || o.chars().count() > 1000 {
                return Err(bad(format!("options[{i}] must be 1 to 1000 characters")));
            }
            if raw.options[..i].iter().any(|p| p.trim().to_lowercase() == o.trim().to_lowercase()) {
                return Err(bad(format!("options[{i}] repeats an earlier option")));
            }
        }
        let key = match (&raw.answer, raw.options.is_empty()) {
            (None, _) => Key::Caller,
            (Some(a), false) => Key::Option(option_index(&raw.options, a).ok_or_else(|| {
                bad(format!(
                    "answer `{a}` is neither an option label (A to {}) nor the text of an option",
                    label(raw.options.len() - 1)
                ))
            })?),
            (Some(a), true) => {
                if a.trim().is_empty() || a.chars().count() > 1000 {
                    return Err(bad("answer must be 1 to 1000 characters".to_owned()));
                }
                Key::Text(a.trim().to_lowercase())
            }
        };
        Ok(Self { raw, key })
    }

    /// Whether `response` is correct. A keyed item takes an option label
    /// or text (or the free answer); an item without a key takes `true` /
    /// `false` or `{"correct": …}`.
    pub fn score(&self, response: &Value) -> Result<bool, LearningError> {
        let bad = |m: String| LearningError::Invalid(format!("response: {m}"));
        match &self.key {
            Key::Caller => match response {
                Value::Bool(b) => Ok(*b),
                Value::Object(m) if m.len() == 1 && m.get("correct").is_some_and(Value::is_boolean) => {
                    Ok(m.get("correct").and_then(Value::as_bool).unwrap_or(false))
                }
                _ => Err(bad(format!(
                    "item `{}` has no answer key: say whether the answer was correct with true or false",
                    self.raw.id
                ))),
            },
            Key::Option(k) => {
                let Some(given) = response.as_str() else {
                    return Err(bad(format!(
                        "item `{}` is a choice: answer with an option label (A to {}) or an option's text",
                        self.raw.id,
                        label(self.raw.options.len().saturating_sub(1))
                    )));
                };
                let i = option_index(&self.raw.options, given).ok_or_else(|| {
                    bad(format!(
                        "`{given}` is not an option of item `{}` (A to {})",
                        self.raw.id,
                        label(self.raw.options.len().saturating_sub(1))
                    ))
                })?;
                Ok(i == *k)
            }
            Key::Text(expected) => match response.as_str() {
                Some(given) if given.chars().count() <= 1000 => Ok(given.trim().to_lowercase() == *expected),
                _ => Err(bad(format!("item `{}` takes a text answer (at most 1000 characters)", self.raw.id))),
            },
        }
    }

    /// `choice`, `text` or `selfScored`.
    pub fn format(&self) -> &'static str {
        match self.key {
            Key::Option(_) => "choice",
            Key::Text(_) => "text",
            Key::Caller if !self.raw.options.is_empty() => "choice",
            Key::Caller => "selfScored",
        }
    }
}

/// The items of one assessment topic: a bank of its own (sessions keep its
/// fingerprint) and the skills it covers.
#[derive(Debug)]
pub struct TopicBank {
    /// The topic as resolved (a skill id, a subject, an item topic or `all`).
    pub topic: String,
    /// The items.
    pub bank: ItemBank,
    /// The distinct skills of its items, in bank order (empty skill left out).
    pub skills: Vec<String>,
}

/// A tenant's course, bank and item content.
#[derive(Debug)]
pub struct Catalog {
    /// Imports so far (sessions remember the version they started on).
    pub version: i64,
    /// The course.
    pub course: Course,
    /// The item bank, if one was imported.
    pub bank: Option<ItemBank>,
    /// Item content by item id.
    pub content: HashMap<String, Content>,
    topics: Mutex<HashMap<String, Arc<TopicBank>>>,
}

/// The stored form of item content: by id.
pub type StoredContent = BTreeMap<String, ItemContent>;

impl Catalog {
    /// A catalog from validated parts.
    pub fn new(version: i64, course: Course, bank: Option<ItemBank>, content: HashMap<String, Content>) -> Self {
        Self { version, course, bank, content, topics: Mutex::new(HashMap::new()) }
    }

    /// Reads the stored form back.
    pub fn from_stored(version: i64, course: &str, bank: Option<&str>, content: &str) -> Result<Self, LearningError> {
        let course: Course =
            serde_json::from_str(course).map_err(|e| LearningError::Corrupt(format!("stored course: {e}")))?;
        let bank = bank
            .map(ItemBank::from_json_str)
            .transpose()
            .map_err(|e| LearningError::Corrupt(format!("stored item bank: {e}")))?;
        let stored: StoredContent =
            serde_json::from_str(content).map_err(|e| LearningError::Corrupt(format!("stored item content: {e}")))?;
        let mut map = HashMap::with_capacity(stored.len());
        for (id, c) in stored {
            let c = Content::new(c, "stored item content").map_err(|e| LearningError::Corrupt(e.to_string()))?;
            map.insert(id, c);
        }
        Ok(Self::new(version, course, bank, map))
    }

    /// The item bank, or why there is none.
    pub fn bank(&self) -> Result<&ItemBank, LearningError> {
        self.bank.as_ref().ok_or_else(|| {
            LearningError::NotFound(
                "this tenant has no item bank yet: an administrator imports one with import_learning_course".into(),
            )
        })
    }

    /// The items of `topic`: a skill id, a subject, an item `topic`, or
    /// `all`; cached per topic.
    pub fn topic_bank(&self, topic: &str) -> Result<Arc<TopicBank>, LearningError> {
        let topic_trim = topic.trim();
        let all = topic_trim.eq_ignore_ascii_case("all");
        let key = if all { "all" } else { topic_trim };
        if let Some(t) = self.topics.lock().get(key) {
            return Ok(Arc::clone(t));
        }
        let bank = self.bank()?;
        let wanted: Box<dyn Fn(&Item) -> bool> = if all {
            Box::new(|_| true)
        } else if self.course.skill(topic_trim).is_some() {
            Box::new(move |i: &Item| i.skill == topic_trim)
        } else if self.course.skills().iter().any(|s| s.subject == topic_trim) {
            let skills: Vec<&str> =
                self.course.skills().iter().filter(|s| s.subject == topic_trim).map(|s| s.id.as_str()).collect();
            Box::new(move |i: &Item| skills.contains(&i.skill.as_str()))
        } else if bank.items().iter().any(|i| i.topic == topic_trim) {
            Box::new(move |i: &Item| i.topic == topic_trim)
        } else {
            let subjects = self.course.subjects().join(", ");
            let skills: Vec<&str> = self.course.skills().iter().take(8).map(|s| s.id.as_str()).collect();
            return Err(LearningError::Invalid(format!(
                "topic: `{topic}` is not a skill, a subject or an item topic of this tenant's course \
                 (subjects: {subjects}; skills include {}; or `all`)",
                skills.join(", ")
            )));
        };
        let items: Vec<Item> = bank.items().iter().filter(|i| wanted(i)).cloned().collect();
        if items.is_empty() {
            return Err(LearningError::NotFound(format!("no item of the bank assesses topic `{topic}`")));
        }
        let mut skills: Vec<String> = Vec::new();
        for i in &items {
            if !i.skill.is_empty() && !skills.contains(&i.skill) {
                skills.push(i.skill.clone());
            }
        }
        let bank = ItemBank::new(items).map_err(|e| LearningError::Corrupt(format!("topic bank: {e}")))?;
        let t = Arc::new(TopicBank { topic: key.to_owned(), bank, skills });
        self.topics.lock().insert(key.to_owned(), Arc::clone(&t));
        Ok(t)
    }
}

/// Parse an item bank given as CSV text or JSON (`bank` a string: CSV
/// unless `format` says `json`; an array or object: JSON).
pub fn parse_bank(bank: &Value, format: Option<&str>) -> Result<ItemBank, LearningError> {
    let bad = |e: crate::irt::IrtError| LearningError::Invalid(format!("bank: {e}"));
    match (bank, format) {
        (Value::String(text), None | Some("csv")) => ItemBank::from_csv_str(text).map_err(bad),
        (Value::String(text), Some("json")) => ItemBank::from_json_str(text).map_err(bad),
        (Value::Array(_) | Value::Object(_), None | Some("json")) => {
            ItemBank::from_json_str(&bank.to_string()).map_err(bad)
        }
        (Value::Array(_) | Value::Object(_), Some("csv")) => {
            Err(LearningError::Invalid("bank: bankFormat is csv, so bank must be the CSV text".into()))
        }
        (_, Some(other)) if other != "csv" && other != "json" => {
            Err(LearningError::Invalid(format!("bankFormat: `{other}` is not csv or json")))
        }
        _ => Err(LearningError::Invalid(
            "bank: give the CSV text (a string) or the JSON item bank (an array of items or {\"items\": [...]})".into(),
        )),
    }
}
