//! Statement validation (xAPI 1.0.3, Part Two: Data) and the validated
//! [`Statement`].
//!
//! Validation walks the JSON once and builds the normalized statement the
//! LRS keeps: `contextActivities` values as arrays, timestamps in UTC with
//! at least millisecond precision, UUIDs lowercased, a client's `stored`
//! dropped (the LRS sets it). Everything else is kept as sent, so a
//! statement reads back as it was written (`format=exact`).

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::XapiError;
use super::format::{
    duration_from_seconds, format_timestamp, is_iri, is_language_tag, is_mailto, is_sha1_hex, is_sha2_hex,
    normalize_mailto, parse_duration, parse_timestamp, uuid,
};
use super::json::{self, index, join, kind};

/// The reserved verb that voids the statement its StatementRef object
/// names.
pub const VOIDED_VERB: &str = "http://adlnet.gov/expapi/verbs/voided";

type R<T> = Result<T, XapiError>;

fn err(path: &str, reason: impl Into<String>) -> XapiError {
    XapiError::invalid(path, reason)
}

fn type_error(path: &str, want: &str, got: &Value) -> XapiError {
    if got.is_null() { err(path, "must not be null") } else { err(path, format!("must be {want}, not {}", kind(got))) }
}

fn object<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| type_error(path, "an object", v))
}

fn string<'a>(v: &'a Value, path: &str) -> R<&'a str> {
    v.as_str().ok_or_else(|| type_error(path, "a string", v))
}

fn boolean(v: &Value, path: &str) -> R<bool> {
    v.as_bool().ok_or_else(|| type_error(path, "a boolean", v))
}

fn number(v: &Value, path: &str) -> R<f64> {
    v.as_f64().ok_or_else(|| type_error(path, "a number", v))
}

fn array<'a>(v: &'a Value, path: &str) -> R<&'a Vec<Value>> {
    v.as_array().ok_or_else(|| type_error(path, "an array", v))
}

/// Refuse properties not in `allowed` (the first in key order).
fn only(m: &Map<String, Value>, path: &str, allowed: &[&str]) -> R<()> {
    let mut unknown: Vec<&String> = m.keys().filter(|k| !allowed.contains(&k.as_str())).collect();
    unknown.sort();
    match unknown.first() {
        Some(k) => Err(err(&join(path, k), "unknown property")),
        None => Ok(()),
    }
}

fn required<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> R<&'a Value> {
    m.get(key).ok_or_else(|| err(&join(path, key), "is required"))
}

fn iri(v: &Value, path: &str) -> R<String> {
    let s = string(v, path)?;
    if is_iri(s) { Ok(s.to_owned()) } else { Err(err(path, "must be an absolute IRI")) }
}

fn irl(v: &Value, path: &str) -> R<String> {
    let s = string(v, path)?;
    if is_iri(s) { Ok(s.to_owned()) } else { Err(err(path, "must be an absolute IRL")) }
}

fn uuid_value(v: &Value, path: &str) -> R<String> {
    let s = string(v, path)?;
    uuid(s).ok_or_else(|| err(path, "must be a UUID in standard string form"))
}

fn timestamp_value(v: &Value, path: &str) -> R<OffsetDateTime> {
    let s = string(v, path)?;
    parse_timestamp(s).ok_or_else(|| err(path, "must be an ISO 8601 timestamp with a time zone (RFC 3339)"))
}

fn language_map(v: &Value, path: &str) -> R<Value> {
    let m = object(v, path)?;
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in keys {
        let p = join(path, k);
        if !is_language_tag(k) {
            return Err(err(&p, "is not an RFC 5646 language tag"));
        }
        if let Some(text) = m.get(k) {
            string(text, &p)?;
        }
    }
    Ok(v.clone())
}

fn extensions(v: &Value, path: &str) -> R<Value> {
    let m = object(v, path)?;
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in keys {
        if !is_iri(k) {
            return Err(err(&join(path, k), "an extension key must be an absolute IRI"));
        }
    }
    // Values are anything, null included: an LRS must not reject a
    // statement for the values of an extensions map.
    Ok(v.clone())
}

/// Where an Agent or Group appears, which decides what is allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Actor, instructor, authority, the object (objectType required there
    /// and checked by the caller).
    AgentOrGroup,
    /// A member of a group.
    Member,
    /// `context.team`.
    Team,
}

const IFIS: [&str; 4] = ["mbox", "mbox_sha1sum", "openid", "account"];

/// Validate an Agent or Group; returns it as given (members validated).
fn agent(v: &Value, path: &str, role: Role) -> R<Value> {
    let m = object(v, path)?;
    let object_type = match m.get("objectType") {
        None => None,
        Some(t) => match string(t, &join(path, "objectType"))? {
            "Agent" => Some("Agent"),
            "Group" => Some("Group"),
            _ => return Err(err(&join(path, "objectType"), "must be Agent or Group")),
        },
    };
    let group = object_type == Some("Group");
    match role {
        Role::Member if group => {
            return Err(err(&join(path, "objectType"), "a group member must be an agent, not a group"));
        }
        Role::Team if !group => return Err(err(path, "must be a group (objectType Group)")),
        _ => {}
    }
    if group {
        only(m, path, &["objectType", "name", "mbox", "mbox_sha1sum", "openid", "account", "member"])?;
    } else {
        if m.contains_key("member") {
            return Err(err(&join(path, "member"), "is only allowed in a group (objectType Group)"));
        }
        only(m, path, &["objectType", "name", "mbox", "mbox_sha1sum", "openid", "account"])?;
    }
    if let Some(n) = m.get("name") {
        string(n, &join(path, "name"))?;
    }
    let present: Vec<&str> = IFIS.iter().copied().filter(|k| m.contains_key(*k)).collect();
    for k in &present {
        if let Some(value) = m.get(*k) {
            ifi(k, value, &join(path, k))?;
        }
    }
    if present.len() > 1 {
        return Err(err(
            path,
            format!("must have exactly one inverse functional identifier, found {}", present.join(" and ")),
        ));
    }
    let mut out = m.clone();
    if group {
        match m.get("member") {
            Some(members) => {
                let mp = join(path, "member");
                let list = array(members, &mp)?;
                if list.is_empty() && present.is_empty() {
                    return Err(err(&mp, "must list at least one agent in an anonymous group"));
                }
                let mut checked = Vec::with_capacity(list.len());
                for (i, a) in list.iter().enumerate() {
                    checked.push(agent(a, &index(&mp, i), Role::Member)?);
                }
                out.insert("member".into(), Value::Array(checked));
            }
            None if present.is_empty() => {
                return Err(err(
                    &join(path, "member"),
                    "is required in an anonymous group (a group without an identifier)",
                ));
            }
            None => {}
        }
    } else if present.is_empty() {
        return Err(err(
            path,
            "must have exactly one inverse functional identifier (mbox, mbox_sha1sum, openid or account)",
        ));
    }
    Ok(Value::Object(out))
}

fn ifi(key: &str, v: &Value, path: &str) -> R<()> {
    match key {
        "mbox" => {
            if !is_mailto(string(v, path)?) {
                return Err(err(path, "must be a mailto IRI (mailto:name@example.com)"));
            }
        }
        "mbox_sha1sum" => {
            if !is_sha1_hex(string(v, path)?) {
                return Err(err(path, "must be 40 hexadecimal digits (a sha1 sum)"));
            }
        }
        "openid" => {
            iri(v, path)?;
        }
        _ => {
            let m = object(v, path)?;
            only(m, path, &["homePage", "name"])?;
            irl(required(m, "homePage", path)?, &join(path, "homePage"))?;
            let np = join(path, "name");
            if string(required(m, "name", path)?, &np)?.is_empty() {
                return Err(err(&np, "must not be empty"));
            }
        }
    }
    Ok(())
}

fn verb(v: &Value, path: &str) -> R<Value> {
    let m = object(v, path)?;
    only(m, path, &["id", "display"])?;
    iri(required(m, "id", path)?, &join(path, "id"))?;
    if let Some(d) = m.get("display") {
        language_map(d, &join(path, "display"))?;
    }
    Ok(v.clone())
}

const INTERACTION_TYPES: [&str; 10] = [
    "true-false",
    "choice",
    "fill-in",
    "long-fill-in",
    "matching",
    "performance",
    "sequencing",
    "likert",
    "numeric",
    "other",
];

const COMPONENT_LISTS: [&str; 5] = ["choices", "scale", "source", "target", "steps"];

/// The component lists an interaction type supports.
fn lists_for(interaction: &str) -> &'static [&'static str] {
    match interaction {
        "choice" | "sequencing" => &["choices"],
        "likert" => &["scale"],
        "matching" => &["source", "target"],
        "performance" => &["steps"],
        _ => &[],
    }
}

fn definition(v: &Value, path: &str) -> R<()> {
    let m = object(v, path)?;
    only(
        m,
        path,
        &[
            "name",
            "description",
            "type",
            "moreInfo",
            "extensions",
            "interactionType",
            "correctResponsesPattern",
            "choices",
            "scale",
            "source",
            "target",
            "steps",
        ],
    )?;
    for k in ["name", "description"] {
        if let Some(x) = m.get(k) {
            language_map(x, &join(path, k))?;
        }
    }
    if let Some(x) = m.get("type") {
        iri(x, &join(path, "type"))?;
    }
    if let Some(x) = m.get("moreInfo") {
        irl(x, &join(path, "moreInfo"))?;
    }
    if let Some(x) = m.get("extensions") {
        extensions(x, &join(path, "extensions"))?;
    }
    let interaction = match m.get("interactionType") {
        Some(x) => {
            let p = join(path, "interactionType");
            let t = string(x, &p)?;
            if !INTERACTION_TYPES.contains(&t) {
                return Err(err(&p, format!("must be one of {}", INTERACTION_TYPES.join(", "))));
            }
            Some(t)
        }
        None => None,
    };
    if let Some(x) = m.get("correctResponsesPattern") {
        let p = join(path, "correctResponsesPattern");
        if interaction.is_none() {
            return Err(err(&join(path, "interactionType"), "is required when correctResponsesPattern is given"));
        }
        for (i, r) in array(x, &p)?.iter().enumerate() {
            string(r, &index(&p, i))?;
        }
    }
    for list in COMPONENT_LISTS {
        let Some(x) = m.get(list) else { continue };
        let p = join(path, list);
        match interaction {
            None => return Err(err(&join(path, "interactionType"), format!("is required when {list} is given"))),
            Some(t) if !lists_for(t).contains(&list) => {
                return Err(err(&p, format!("is not allowed for interactionType {t}")));
            }
            Some(_) => {}
        }
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for (i, c) in array(x, &p)?.iter().enumerate() {
            let cp = index(&p, i);
            let cm = object(c, &cp)?;
            only(cm, &cp, &["id", "description"])?;
            let idp = join(&cp, "id");
            let id = string(required(cm, "id", &cp)?, &idp)?;
            if id.is_empty() {
                return Err(err(&idp, "must not be empty"));
            }
            if let Some((_, first)) = seen.iter().find(|(s, _)| *s == id) {
                return Err(err(&idp, format!("duplicates {list}[{first}].id")));
            }
            seen.push((id, i));
            if let Some(d) = cm.get("description") {
                language_map(d, &join(&cp, "description"))?;
            }
        }
    }
    Ok(())
}

/// An Activity (objectType absent or `Activity`).
fn activity(v: &Value, path: &str) -> R<Value> {
    let m = object(v, path)?;
    if let Some(t) = m.get("objectType") {
        let p = join(path, "objectType");
        if string(t, &p)? != "Activity" {
            return Err(err(&p, "must be Activity"));
        }
    }
    only(m, path, &["objectType", "id", "definition"])?;
    iri(required(m, "id", path)?, &join(path, "id"))?;
    if let Some(d) = m.get("definition") {
        definition(d, &join(path, "definition"))?;
    }
    Ok(v.clone())
}

fn statement_ref(v: &Value, path: &str) -> R<Value> {
    let m = object(v, path)?;
    only(m, path, &["objectType", "id"])?;
    let tp = join(path, "objectType");
    if string(required(m, "objectType", path)?, &tp)? != "StatementRef" {
        return Err(err(&tp, "must be StatementRef"));
    }
    let id = uuid_value(required(m, "id", path)?, &join(path, "id"))?;
    let mut out = m.clone();
    out.insert("id".into(), Value::String(id));
    Ok(Value::Object(out))
}

/// What the object of a statement is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ObjectKind {
    Activity,
    Agent,
    StatementRef,
    SubStatement,
}

fn statement_object(v: &Value, path: &str, in_sub: bool) -> R<(Value, ObjectKind)> {
    let m = object(v, path)?;
    let tp = join(path, "objectType");
    let object_type = match m.get("objectType") {
        None => None,
        Some(t) => Some(string(t, &tp)?),
    };
    match object_type {
        None if !m.contains_key("id") && IFIS.iter().any(|k| m.contains_key(*k)) => {
            Err(err(&tp, "is required when the object is an agent or group"))
        }
        None | Some("Activity") => Ok((activity(v, path)?, ObjectKind::Activity)),
        Some("Agent" | "Group") => Ok((agent(v, path, Role::AgentOrGroup)?, ObjectKind::Agent)),
        Some("StatementRef") => Ok((statement_ref(v, path)?, ObjectKind::StatementRef)),
        Some("SubStatement") if in_sub => Err(err(&tp, "a substatement must not contain a substatement")),
        Some("SubStatement") => Ok((statement_body(v, path, true)?, ObjectKind::SubStatement)),
        Some(_) => Err(err(&tp, "must be one of Activity, Agent, Group, StatementRef or SubStatement")),
    }
}

fn result(v: &Value, path: &str) -> R<Value> {
    let m = object(v, path)?;
    only(m, path, &["score", "success", "completion", "response", "duration", "extensions"])?;
    if let Some(s) = m.get("score") {
        score(s, &join(path, "score"))?;
    }
    for k in ["success", "completion"] {
        if let Some(x) = m.get(k) {
            boolean(x, &join(path, k))?;
        }
    }
    if let Some(x) = m.get("response") {
        string(x, &join(path, "response"))?;
    }
    if let Some(x) = m.get("duration") {
        let p = join(path, "duration");
        if parse_duration(string(x, &p)?).is_none() {
            return Err(err(&p, "must be an ISO 8601 duration (PnYnMnDTnHnMnS or PnW)"));
        }
    }
    if let Some(x) = m.get("extensions") {
        extensions(x, &join(path, "extensions"))?;
    }
    Ok(v.clone())
}

fn score(v: &Value, path: &str) -> R<()> {
    let m = object(v, path)?;
    only(m, path, &["scaled", "raw", "min", "max"])?;
    let get = |k: &str| -> R<Option<f64>> { m.get(k).map(|x| number(x, &join(path, k))).transpose() };
    let (scaled, raw, min, max) = (get("scaled")?, get("raw")?, get("min")?, get("max")?);
    if let Some(s) = scaled
        && !(-1.0..=1.0).contains(&s)
    {
        return Err(err(&join(path, "scaled"), "must be between -1 and 1"));
    }
    if let (Some(lo), Some(hi)) = (min, max)
        && lo >= hi
    {
        return Err(err(&join(path, "min"), "must be less than max"));
    }
    if let Some(r) = raw {
        if let Some(lo) = min
            && r < lo
        {
            return Err(err(&join(path, "raw"), "must not be less than min"));
        }
        if let Some(hi) = max
            && r > hi
        {
            return Err(err(&join(path, "raw"), "must not be greater than max"));
        }
    }
    Ok(())
}

const CONTEXT_TYPES: [&str; 4] = ["parent", "grouping", "category", "other"];

fn context(v: &Value, path: &str, object: ObjectKind) -> R<Value> {
    let m = self::object(v, path)?;
    only(
        m,
        path,
        &[
            "registration",
            "instructor",
            "team",
            "contextActivities",
            "revision",
            "platform",
            "language",
            "statement",
            "extensions",
        ],
    )?;
    let mut out = m.clone();
    if let Some(x) = m.get("registration") {
        out.insert("registration".into(), Value::String(uuid_value(x, &join(path, "registration"))?));
    }
    if let Some(x) = m.get("instructor") {
        out.insert("instructor".into(), agent(x, &join(path, "instructor"), Role::AgentOrGroup)?);
    }
    if let Some(x) = m.get("team") {
        out.insert("team".into(), agent(x, &join(path, "team"), Role::Team)?);
    }
    if let Some(x) = m.get("contextActivities") {
        let cp = join(path, "contextActivities");
        let cm = self::object(x, &cp)?;
        let mut keys: Vec<&String> = cm.keys().collect();
        keys.sort();
        let mut normalized = Map::new();
        for k in keys {
            let kp = join(&cp, k);
            if !CONTEXT_TYPES.contains(&k.as_str()) {
                return Err(err(&kp, "unknown property (must be parent, grouping, category or other)"));
            }
            let Some(value) = cm.get(k) else { continue };
            let list = match value {
                Value::Array(items) => {
                    let mut list = Vec::with_capacity(items.len());
                    for (i, a) in items.iter().enumerate() {
                        list.push(activity(a, &index(&kp, i))?);
                    }
                    list
                }
                Value::Object(_) => vec![activity(value, &kp)?],
                other => return Err(type_error(&kp, "an activity or an array of activities", other)),
            };
            normalized.insert(k.clone(), Value::Array(list));
        }
        out.insert("contextActivities".into(), Value::Object(normalized));
    }
    for k in ["revision", "platform"] {
        if let Some(x) = m.get(k) {
            let p = join(path, k);
            string(x, &p)?;
            if object != ObjectKind::Activity {
                return Err(err(&p, "is only allowed when the object is an activity"));
            }
        }
    }
    if let Some(x) = m.get("language") {
        let p = join(path, "language");
        if !is_language_tag(string(x, &p)?) {
            return Err(err(&p, "must be an RFC 5646 language tag"));
        }
    }
    if let Some(x) = m.get("statement") {
        out.insert("statement".into(), statement_ref(x, &join(path, "statement"))?);
    }
    if let Some(x) = m.get("extensions") {
        extensions(x, &join(path, "extensions"))?;
    }
    Ok(Value::Object(out))
}

fn attachments(v: &Value, path: &str) -> R<Value> {
    for (i, a) in array(v, path)?.iter().enumerate() {
        let p = index(path, i);
        let m = object(a, &p)?;
        only(m, &p, &["usageType", "display", "description", "contentType", "length", "sha2", "fileUrl"])?;
        iri(required(m, "usageType", &p)?, &join(&p, "usageType"))?;
        language_map(required(m, "display", &p)?, &join(&p, "display"))?;
        if let Some(d) = m.get("description") {
            language_map(d, &join(&p, "description"))?;
        }
        let ct = join(&p, "contentType");
        let content_type = string(required(m, "contentType", &p)?, &ct)?;
        let well_formed = content_type.split_once('/').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
            && !content_type.chars().any(char::is_whitespace);
        if !well_formed {
            return Err(err(&ct, "must be an internet media type (type/subtype)"));
        }
        let lp = join(&p, "length");
        let length = required(m, "length", &p)?;
        if !length.is_u64() {
            return Err(if length.is_number() {
                err(&lp, "must be a non-negative integer")
            } else {
                type_error(&lp, "a non-negative integer", length)
            });
        }
        let sp = join(&p, "sha2");
        if !is_sha2_hex(string(required(m, "sha2", &p)?, &sp)?) {
            return Err(err(&sp, "must be a hexadecimal sha-2 digest"));
        }
        match m.get("fileUrl") {
            Some(u) => {
                irl(u, &join(&p, "fileUrl"))?;
            }
            None => {
                return Err(err(
                    &join(&p, "fileUrl"),
                    "is required: attachment data in multipart/mixed requests is not supported",
                ));
            }
        }
    }
    Ok(v.clone())
}

const STATEMENT_KEYS: [&str; 11] = [
    "id",
    "actor",
    "verb",
    "object",
    "result",
    "context",
    "timestamp",
    "stored",
    "authority",
    "version",
    "attachments",
];

const SUB_STATEMENT_KEYS: [&str; 8] =
    ["objectType", "actor", "verb", "object", "result", "context", "timestamp", "attachments"];

/// Validate a statement (or a substatement, `sub`) and build its
/// normalized form.
fn statement_body(v: &Value, path: &str, sub: bool) -> R<Value> {
    let m = object(v, path)?;
    if sub {
        for k in ["id", "stored", "version", "authority"] {
            if m.contains_key(k) {
                return Err(err(&join(path, k), "must not be in a substatement"));
            }
        }
        only(m, path, &SUB_STATEMENT_KEYS)?;
    } else {
        only(m, path, &STATEMENT_KEYS)?;
    }
    let mut out = Map::new();
    if sub {
        out.insert("objectType".into(), Value::String("SubStatement".into()));
    }
    if let Some(x) = m.get("id") {
        out.insert("id".into(), Value::String(uuid_value(x, &join(path, "id"))?));
    }
    out.insert("actor".into(), agent(required(m, "actor", path)?, &join(path, "actor"), Role::AgentOrGroup)?);
    let verb_value = verb(required(m, "verb", path)?, &join(path, "verb"))?;
    let voiding = verb_value.get("id").and_then(Value::as_str) == Some(VOIDED_VERB);
    out.insert("verb".into(), verb_value);
    let op = join(path, "object");
    let (object_value, object_kind) = statement_object(required(m, "object", path)?, &op, sub)?;
    if voiding && !sub && object_kind != ObjectKind::StatementRef {
        return Err(err(&op, "the object of a voiding statement must be a StatementRef"));
    }
    out.insert("object".into(), object_value);
    if let Some(x) = m.get("result") {
        out.insert("result".into(), result(x, &join(path, "result"))?);
    }
    if let Some(x) = m.get("context") {
        out.insert("context".into(), context(x, &join(path, "context"), object_kind)?);
    }
    if let Some(x) = m.get("timestamp") {
        let t = timestamp_value(x, &join(path, "timestamp"))?;
        out.insert("timestamp".into(), Value::String(format_timestamp(t)));
    }
    if let Some(x) = m.get("stored") {
        // Validated, then overwritten by the LRS when stored.
        timestamp_value(x, &join(path, "stored"))?;
    }
    if let Some(x) = m.get("authority") {
        // Validated; the LRS replaces it with the caller's when stored.
        out.insert("authority".into(), agent(x, &join(path, "authority"), Role::AgentOrGroup)?);
    }
    if let Some(x) = m.get("version") {
        let p = join(path, "version");
        let s = string(x, &p)?;
        if !is_statement_version(s) {
            return Err(err(&p, "must be a 1.0.x version (1.0.0)"));
        }
        out.insert("version".into(), x.clone());
    }
    if let Some(x) = m.get("attachments") {
        out.insert("attachments".into(), attachments(x, &join(path, "attachments"))?);
    }
    Ok(Value::Object(out))
}

/// `1.0.` followed by a number.
fn is_statement_version(s: &str) -> bool {
    s.strip_prefix("1.0.").is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A validated statement: its normalized JSON (always with an `id`) and
/// the values the store indexes and the learning engines read.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    json: Value,
    id: String,
    facts: Facts,
}

/// What is derived from a statement's JSON once, at validation.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Facts {
    pub(crate) actor_key: Option<String>,
    pub(crate) verb_id: String,
    pub(crate) activity_id: Option<String>,
    /// The id of the StatementRef object.
    pub(crate) ref_target: Option<String>,
    pub(crate) voiding: bool,
    pub(crate) registration: Option<String>,
    pub(crate) timestamp: Option<OffsetDateTime>,
    /// Agents (IFI keys) the `agent` filter matches: `true` for actor and
    /// object (and their members), `false` for the ones only
    /// `related_agents` reaches.
    pub(crate) agents: Vec<(String, bool)>,
    /// Activity ids: `true` for the object, `false` for the ones only
    /// `related_activities` reaches.
    pub(crate) activities: Vec<(String, bool)>,
}

impl Statement {
    /// Validate one statement (`path` names it in errors, `statement` or
    /// `statement[3]`) and give it an id if it has none.
    pub(crate) fn validate(v: &Value, path: &str) -> R<Self> {
        let mut json = statement_body(v, path, false)?;
        let id = match json.get("id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                if let Some(m) = json.as_object_mut() {
                    m.insert("id".into(), Value::String(id.clone()));
                }
                id
            }
        };
        let facts = Facts::of(&json);
        Ok(Self { json, id, facts })
    }

    /// Validate one statement given as JSON (errors name it `statement`);
    /// an id is generated if it has none. This also reads back a statement
    /// the store returned.
    pub fn from_value(v: &Value) -> Result<Self, XapiError> {
        Self::validate(v, "statement")
    }

    /// The statement id (a lowercase UUID).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The normalized statement JSON.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The normalized statement JSON, owned.
    pub fn into_json(self) -> Value {
        self.json
    }

    /// The actor's inverse functional identifier as a key (see
    /// [`agent_key`]); `None` for an anonymous group.
    pub fn actor_key(&self) -> Option<&str> {
        self.facts.actor_key.as_deref()
    }

    /// The verb IRI.
    pub fn verb_id(&self) -> &str {
        &self.facts.verb_id
    }

    /// The object's id when the object is an Activity.
    pub fn activity_id(&self) -> Option<&str> {
        self.facts.activity_id.as_deref()
    }

    /// `result.success`.
    pub fn success(&self) -> Option<bool> {
        self.json.pointer("/result/success").and_then(Value::as_bool)
    }

    /// `result.completion`.
    pub fn completion(&self) -> Option<bool> {
        self.json.pointer("/result/completion").and_then(Value::as_bool)
    }

    /// `result.score.scaled`, in [-1, 1].
    pub fn scaled_score(&self) -> Option<f64> {
        self.json.pointer("/result/score/scaled").and_then(Value::as_f64)
    }

    /// `result.score.raw`.
    pub fn raw_score(&self) -> Option<f64> {
        self.json.pointer("/result/score/raw").and_then(Value::as_f64)
    }

    /// `result.duration` in seconds (years and months at their average
    /// Gregorian lengths).
    pub fn duration_seconds(&self) -> Option<f64> {
        self.json.pointer("/result/duration").and_then(Value::as_str).and_then(parse_duration)
    }

    /// `timestamp`, when the statement has one (the store sets it to
    /// `stored` when the provider did not).
    pub fn timestamp(&self) -> Option<OffsetDateTime> {
        self.facts.timestamp
    }

    /// `context.registration` (a lowercase UUID).
    pub fn registration(&self) -> Option<&str> {
        self.facts.registration.as_deref()
    }

    /// Whether this statement voids another (verb `voided`).
    pub fn is_voiding(&self) -> bool {
        self.facts.voiding
    }

    /// The id of the statement this one voids.
    pub fn voided_target(&self) -> Option<&str> {
        if self.facts.voiding { self.facts.ref_target.as_deref() } else { None }
    }

    pub(crate) fn json_mut(&mut self) -> &mut Value {
        &mut self.json
    }
}

/// Parse a POST body: one statement or an array of them, validated
/// (errors name `statement` or `statement[i]`), ids generated where absent.
/// Ids within one batch must be unique.
pub fn parse_statements(body: &[u8]) -> Result<Vec<Statement>, XapiError> {
    parse_body(body).map(|(statements, _)| statements)
}

/// [`parse_statements`], also saying whether the body was an array.
pub(crate) fn parse_body(body: &[u8]) -> R<(Vec<Statement>, bool)> {
    let v = json::parse(body)?;
    let statements = match &v {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, s) in items.iter().enumerate() {
                out.push(Statement::validate(s, &index("statement", i))?);
            }
            out
        }
        Value::Object(_) => vec![Statement::validate(&v, "statement")?],
        other => return Err(type_error("body", "a statement or an array of statements", other)),
    };
    check_unique_ids(&statements)?;
    Ok((statements, v.is_array()))
}

pub(crate) fn check_unique_ids(statements: &[Statement]) -> R<()> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, s) in statements.iter().enumerate() {
        if let Some(first) = seen.insert(s.id(), i) {
            return Err(err(&format!("statement[{i}].id"), format!("duplicates statement[{first}].id")));
        }
    }
    Ok(())
}

/// The key of an Agent or Identified Group: its inverse functional
/// identifier, prefixed by its kind: `mbox:mailto:a@example.com` (domain
/// lowercased), `mbox_sha1sum:<hex, lowercase>`, `openid:<IRI>`,
/// `account:<homePage> <name>` (a homePage holds no whitespace, so the
/// first space separates). `None` without an identifier (anonymous group).
/// Expects a validated agent.
pub fn agent_key(agent: &Value) -> Option<String> {
    if let Some(m) = agent.get("mbox").and_then(Value::as_str) {
        return Some(format!("mbox:{}", normalize_mailto(m)));
    }
    if let Some(s) = agent.get("mbox_sha1sum").and_then(Value::as_str) {
        return Some(format!("mbox_sha1sum:{}", s.to_ascii_lowercase()));
    }
    if let Some(o) = agent.get("openid").and_then(Value::as_str) {
        return Some(format!("openid:{o}"));
    }
    let account = agent.get("account")?;
    let home = account.get("homePage").and_then(Value::as_str)?;
    let name = account.get("name").and_then(Value::as_str)?;
    Some(format!("account:{home} {name}"))
}

/// Validate an `agent` query parameter's JSON: an Agent or Identified
/// Group; returns its key.
pub(crate) fn agent_param(v: &Value, path: &str) -> R<String> {
    let checked = agent(v, path, Role::AgentOrGroup)?;
    agent_key(&checked).ok_or_else(|| err(path, "must be an agent or an identified group"))
}

/// Validate the authority the LRS assigns.
pub(crate) fn authority(v: &Value) -> R<Value> {
    agent(v, "authority", Role::AgentOrGroup)
}

fn object_kind(object: &Value) -> ObjectKind {
    match object.get("objectType").and_then(Value::as_str) {
        Some("Agent" | "Group") => ObjectKind::Agent,
        Some("StatementRef") => ObjectKind::StatementRef,
        Some("SubStatement") => ObjectKind::SubStatement,
        _ => ObjectKind::Activity,
    }
}

impl Facts {
    /// The facts of a normalized statement.
    pub(crate) fn of(json: &Value) -> Self {
        let mut facts = Facts {
            actor_key: json.get("actor").and_then(agent_key),
            verb_id: json.pointer("/verb/id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            registration: json.pointer("/context/registration").and_then(Value::as_str).map(str::to_owned),
            timestamp: json.get("timestamp").and_then(Value::as_str).and_then(parse_timestamp),
            ..Facts::default()
        };
        facts.voiding = facts.verb_id == VOIDED_VERB;
        if let Some(object) = json.get("object") {
            match object_kind(object) {
                ObjectKind::Activity => {
                    facts.activity_id = object.get("id").and_then(Value::as_str).map(str::to_owned);
                }
                ObjectKind::StatementRef => {
                    facts.ref_target = object.get("id").and_then(Value::as_str).map(str::to_owned);
                }
                _ => {}
            }
        }
        facts.collect(json, true);
        if let Some(a) = json.get("authority") {
            facts.add_agent(a, false);
        }
        facts
    }

    /// Agents and activities of a statement or substatement (`top`: the
    /// statement itself, whose actor and object are direct matches).
    fn collect(&mut self, s: &Value, top: bool) {
        if let Some(a) = s.get("actor") {
            self.add_agent(a, top);
        }
        if let Some(object) = s.get("object") {
            match object_kind(object) {
                ObjectKind::Activity => {
                    if let Some(id) = object.get("id").and_then(Value::as_str) {
                        self.add(false, id, top);
                    }
                }
                ObjectKind::Agent => self.add_agent(object, top),
                ObjectKind::SubStatement => self.collect(object, false),
                ObjectKind::StatementRef => {}
            }
        }
        if let Some(c) = s.get("context") {
            for k in ["instructor", "team"] {
                if let Some(a) = c.get(k) {
                    self.add_agent(a, false);
                }
            }
            if let Some(ca) = c.get("contextActivities").and_then(Value::as_object) {
                for list in ca.values() {
                    for a in list.as_array().into_iter().flatten() {
                        if let Some(id) = a.get("id").and_then(Value::as_str) {
                            self.add(false, id, false);
                        }
                    }
                }
            }
        }
    }

    /// An agent or group and, for a group, its members.
    fn add_agent(&mut self, a: &Value, direct: bool) {
        if let Some(k) = agent_key(a) {
            self.add(true, &k, direct);
        }
        for m in a.get("member").and_then(Value::as_array).into_iter().flatten() {
            if let Some(k) = agent_key(m) {
                self.add(true, &k, direct);
            }
        }
    }

    fn add(&mut self, agent: bool, key: &str, direct: bool) {
        let list = if agent { &mut self.agents } else { &mut self.activities };
        match list.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 |= direct,
            None => list.push((key.to_owned(), direct)),
        }
    }
}

/// The parts of a simple statement: an account actor did a verb to an
/// activity, with an optional result. What the `track_learning_progress`
/// tool records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimpleStatement {
    /// The actor's account system (`account.homePage`, an IRL).
    pub home_page: String,
    /// The actor's account name.
    pub account_name: String,
    /// The actor's display name.
    pub actor_name: Option<String>,
    /// The verb IRI.
    pub verb_id: String,
    /// The verb's display text, in `language`.
    pub verb_display: Option<String>,
    /// The activity IRI.
    pub activity_id: String,
    /// The activity's name, in `language`.
    pub activity_name: Option<String>,
    /// The RFC 5646 tag of `verb_display` and `activity_name`; `und`
    /// (undetermined) when absent.
    pub language: Option<String>,
    /// `result.success`.
    pub success: Option<bool>,
    /// `result.completion`.
    pub completion: Option<bool>,
    /// `result.score.scaled`, in [-1, 1].
    pub score_scaled: Option<f64>,
    /// `result.duration`, in seconds (kept to a hundredth).
    pub duration_seconds: Option<f64>,
    /// `context.registration` (a UUID).
    pub registration: Option<String>,
    /// When it happened; the store uses the time it stores the statement
    /// when absent.
    pub timestamp: Option<OffsetDateTime>,
}

impl SimpleStatement {
    /// Build and validate the statement (an id is generated). Errors name
    /// the statement's JSON path, as for a posted statement.
    pub fn build(&self) -> Result<Statement, XapiError> {
        let lang = self.language.as_deref().unwrap_or("und");
        let mut actor = Map::new();
        actor.insert("objectType".into(), "Agent".into());
        if let Some(n) = &self.actor_name {
            actor.insert("name".into(), n.as_str().into());
        }
        actor.insert("account".into(), serde_json::json!({ "homePage": self.home_page, "name": self.account_name }));
        let mut verb = Map::new();
        verb.insert("id".into(), self.verb_id.as_str().into());
        if let Some(d) = &self.verb_display {
            verb.insert("display".into(), serde_json::json!({ lang: d }));
        }
        let mut object = Map::new();
        object.insert("objectType".into(), "Activity".into());
        object.insert("id".into(), self.activity_id.as_str().into());
        if let Some(n) = &self.activity_name {
            object.insert("definition".into(), serde_json::json!({ "name": { lang: n } }));
        }
        let mut statement = Map::new();
        statement.insert("actor".into(), Value::Object(actor));
        statement.insert("verb".into(), Value::Object(verb));
        statement.insert("object".into(), Value::Object(object));
        let mut result = Map::new();
        if let Some(s) = self.success {
            result.insert("success".into(), s.into());
        }
        if let Some(c) = self.completion {
            result.insert("completion".into(), c.into());
        }
        if let Some(scaled) = self.score_scaled {
            let n = serde_json::Number::from_f64(scaled)
                .ok_or_else(|| err("statement.result.score.scaled", "must be a finite number"))?;
            result.insert("score".into(), serde_json::json!({ "scaled": n }));
        }
        if let Some(secs) = self.duration_seconds {
            let d = duration_from_seconds(secs)
                .ok_or_else(|| err("statement.result.duration", "must be a finite, non-negative number of seconds"))?;
            result.insert("duration".into(), d.into());
        }
        if !result.is_empty() {
            statement.insert("result".into(), Value::Object(result));
        }
        if let Some(r) = &self.registration {
            statement.insert("context".into(), serde_json::json!({ "registration": r }));
        }
        if let Some(t) = self.timestamp {
            let utc = t
                .checked_to_offset(time::UtcOffset::UTC)
                .ok_or_else(|| err("statement.timestamp", "is out of range"))?;
            statement.insert("timestamp".into(), format_timestamp(utc).into());
        }
        Statement::validate(&Value::Object(statement), "statement")
    }
}

/// The SHA-256 (hex) of a statement's comparison form: the statement
/// without what the specification lists as exceptions to immutability
/// (`id`, `stored`, `authority`, `version`, `timestamp` (compared apart),
/// attachments, verb `display`, activity definitions, the order of group
/// members, the case of an email domain). Two statements with the same id
/// and the same digest (and compatible timestamps) are the same statement.
pub(crate) fn comparison_digest(statement: &Value) -> String {
    use sha2::Digest as _;
    let mut form = statement.clone();
    if let Some(m) = form.as_object_mut() {
        for k in ["id", "stored", "authority", "version", "timestamp"] {
            m.remove(k);
        }
        strip(m);
    }
    let digest = sha2::Sha256::digest(json::canonical(&form).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Remove the parts of a statement (or substatement) comparison ignores.
fn strip(m: &mut Map<String, Value>) {
    m.remove("attachments");
    if let Some(verb) = m.get_mut("verb").and_then(Value::as_object_mut) {
        verb.remove("display");
    }
    if let Some(actor) = m.get_mut("actor") {
        comparable_agent(actor);
    }
    if let Some(object) = m.get_mut("object") {
        match object_kind(object) {
            ObjectKind::Activity => {
                if let Some(o) = object.as_object_mut() {
                    o.remove("definition");
                }
            }
            ObjectKind::Agent => comparable_agent(object),
            ObjectKind::SubStatement => {
                if let Some(o) = object.as_object_mut() {
                    strip(o);
                }
            }
            ObjectKind::StatementRef => {}
        }
    }
    if let Some(c) = m.get_mut("context").and_then(Value::as_object_mut) {
        for k in ["instructor", "team"] {
            if let Some(a) = c.get_mut(k) {
                comparable_agent(a);
            }
        }
        if let Some(ca) = c.get_mut("contextActivities").and_then(Value::as_object_mut) {
            for list in ca.values_mut() {
                for a in list.as_array_mut().into_iter().flatten() {
                    if let Some(o) = a.as_object_mut() {
                        o.remove("definition");
                    }
                }
            }
        }
    }
}

fn comparable_agent(a: &mut Value) {
    let Some(m) = a.as_object_mut() else { return };
    if let Some(Value::String(mbox)) = m.get_mut("mbox") {
        *mbox = normalize_mailto(mbox);
    }
    if let Some(Value::String(sum)) = m.get_mut("mbox_sha1sum") {
        *sum = sum.to_ascii_lowercase();
    }
    if let Some(Value::Array(members)) = m.get_mut("member") {
        members.iter_mut().for_each(comparable_agent);
        members.sort_by_cached_key(json::canonical);
    }
}
