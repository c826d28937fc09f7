//! GET Statements: the query parameters, the `more` continuation token,
//! the response shapes, and the `ids` format.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::XapiError;
use super::format::{format_timestamp, is_iri, parse_timestamp, uuid};
use super::json;
use super::statement::agent_param;

/// The most statements one page holds (`limit=0` asks for this many).
pub const MAX_LIMIT: u32 = 500;

/// The path `more` links point to; the token follows as `?more=`.
pub const STATEMENTS_PATH: &str = "/xapi/statements";

/// The longest `more` token accepted (a token this LRS wrote is far
/// shorter).
const MAX_TOKEN: usize = 8192;

/// How statements are returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// Agents, groups, activities and verbs reduced to what identifies
    /// them.
    Ids,
    /// As received (the default).
    #[default]
    Exact,
    /// Canonical activity definitions and verb displays. This LRS keeps no
    /// canonical definitions apart from the statements, so `canonical`
    /// returns exactly what `exact` does (language filtering by
    /// `Accept-Language` is not applied).
    Canonical,
}

impl Format {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "ids" => Some(Self::Ids),
            "exact" => Some(Self::Exact),
            "canonical" => Some(Self::Canonical),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Ids => "ids",
            Self::Exact => "exact",
            Self::Canonical => "canonical",
        }
    }
}

/// The filters of a statement list. The non-time filters also match a
/// statement whose object is a StatementRef to a matching statement
/// (recursively), as the specification's "filter conditions for
/// StatementRefs" require.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatementFilter {
    /// An agent or identified group key ([`super::agent_key`]): the actor
    /// or object is it, or a group with it as a member.
    pub agent: Option<String>,
    /// The verb IRI.
    pub verb: Option<String>,
    /// The object's activity IRI.
    pub activity: Option<String>,
    /// `context.registration` (a lowercase UUID).
    pub registration: Option<String>,
    /// Match `activity` also in context activities and a substatement.
    pub related_activities: bool,
    /// Match `agent` also as authority, instructor, team and in a
    /// substatement.
    pub related_agents: bool,
    /// Only statements stored after this (exclusive).
    pub since: Option<OffsetDateTime>,
    /// Only statements stored at or before this.
    pub until: Option<OffsetDateTime>,
    /// Oldest first (the default is newest first, by `stored`).
    pub ascending: bool,
}

impl StatementFilter {
    /// Whether a filter other than time and order is set.
    pub(crate) fn matches_content(&self) -> bool {
        self.agent.is_some() || self.verb.is_some() || self.activity.is_some() || self.registration.is_some()
    }
}

/// Where the previous page ended, and for which tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) tenant_tag: String,
    pub(crate) stored: String,
    pub(crate) seq: i64,
}

/// A statement list query.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// What to match.
    pub filter: StatementFilter,
    /// At most this many statements per page; 0 or more than
    /// [`MAX_LIMIT`] means [`MAX_LIMIT`].
    pub limit: u32,
    /// How statements are returned.
    pub format: Format,
    /// Whether attachment data was asked for. This LRS keeps no
    /// attachment data (statements with attachments carry a `fileUrl`);
    /// the flag is kept for the HTTP edge to answer.
    pub attachments: bool,
    pub(crate) cursor: Option<Cursor>,
}

impl ListQuery {
    /// The first page of `filter`, up to [`MAX_LIMIT`] statements, exact.
    pub fn new(filter: StatementFilter) -> Self {
        Self { filter, limit: 0, format: Format::Exact, attachments: false, cursor: None }
    }

    /// The page size in effect.
    pub fn page_size(&self) -> u32 {
        if self.limit == 0 || self.limit > MAX_LIMIT { MAX_LIMIT } else { self.limit }
    }

    /// Whether this continues an earlier page (came from a `more` token).
    pub fn is_continuation(&self) -> bool {
        self.cursor.is_some()
    }
}

/// A parsed GET Statements request.
#[derive(Debug, Clone, PartialEq)]
pub enum StatementQuery {
    /// `statementId` (`voided: false`) or `voidedStatementId` (`true`).
    Single {
        /// The statement id (lowercase UUID).
        id: String,
        /// Whether the voided statement is asked for.
        voided: bool,
        /// How it is returned.
        format: Format,
        /// Whether attachment data was asked for (see
        /// [`ListQuery::attachments`]).
        attachments: bool,
    },
    /// A filtered list, or its continuation.
    List(ListQuery),
}

const PARAMETERS: [&str; 15] = [
    "statementId",
    "voidedStatementId",
    "agent",
    "verb",
    "activity",
    "registration",
    "related_activities",
    "related_agents",
    "since",
    "until",
    "limit",
    "format",
    "attachments",
    "ascending",
    "more",
];

fn err(path: &str, reason: impl Into<String>) -> XapiError {
    XapiError::invalid(path, reason)
}

fn boolean(name: &str, value: &str) -> Result<bool, XapiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(err(name, "must be true or false")),
    }
}

impl StatementQuery {
    /// Parse GET Statements parameters (names and values already
    /// percent-decoded). Unknown or repeated parameters, bad values, and
    /// combinations the specification forbids are refused, naming the
    /// parameter.
    pub fn parse(params: &[(String, String)]) -> Result<Self, XapiError> {
        let mut unknown: Vec<&str> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for (name, _) in params {
            if !PARAMETERS.contains(&name.as_str()) {
                if !unknown.contains(&name.as_str()) {
                    unknown.push(name);
                }
            } else if seen.contains(&name.as_str()) {
                return Err(err(name, "given more than once"));
            } else {
                seen.push(name);
            }
        }
        match unknown.as_slice() {
            [] => {}
            [one] => return Err(err(one, "unknown parameter")),
            many => return Err(err("query", format!("unknown parameters: {}", many.join(", ")))),
        }
        let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());

        if let Some(token) = get("more") {
            if let Some(other) = seen.iter().find(|n| **n != "more") {
                return Err(err(other, "cannot be combined with more"));
            }
            return decode_more(token).map(StatementQuery::List);
        }

        let format = match get("format") {
            Some(f) => Format::parse(f).ok_or_else(|| err("format", "must be ids, exact or canonical"))?,
            None => Format::Exact,
        };
        let attachments = get("attachments").map(|v| boolean("attachments", v)).transpose()?.unwrap_or(false);

        let single = match (get("statementId"), get("voidedStatementId")) {
            (Some(_), Some(_)) => return Err(err("voidedStatementId", "cannot be combined with statementId")),
            (Some(id), None) => Some(("statementId", id, false)),
            (None, Some(id)) => Some(("voidedStatementId", id, true)),
            (None, None) => None,
        };
        if let Some((name, id, voided)) = single {
            if let Some(other) =
                seen.iter().find(|n| !matches!(**n, "statementId" | "voidedStatementId" | "format" | "attachments"))
            {
                return Err(err(other, format!("cannot be combined with {name}")));
            }
            let id = uuid(id).ok_or_else(|| err(name, "must be a UUID in standard string form"))?;
            return Ok(StatementQuery::Single { id, voided, format, attachments });
        }

        let mut filter = StatementFilter::default();
        if let Some(a) = get("agent") {
            let v = json::parse_str(a, "agent")?;
            filter.agent = Some(agent_param(&v, "agent")?);
        }
        if let Some(v) = get("verb") {
            if !is_iri(v) {
                return Err(err("verb", "must be an absolute IRI"));
            }
            filter.verb = Some(v.to_owned());
        }
        if let Some(v) = get("activity") {
            if !is_iri(v) {
                return Err(err("activity", "must be an absolute IRI"));
            }
            filter.activity = Some(v.to_owned());
        }
        if let Some(r) = get("registration") {
            filter.registration =
                Some(uuid(r).ok_or_else(|| err("registration", "must be a UUID in standard string form"))?);
        }
        filter.related_activities =
            get("related_activities").map(|v| boolean("related_activities", v)).transpose()?.unwrap_or(false);
        filter.related_agents =
            get("related_agents").map(|v| boolean("related_agents", v)).transpose()?.unwrap_or(false);
        filter.ascending = get("ascending").map(|v| boolean("ascending", v)).transpose()?.unwrap_or(false);
        for (name, slot) in [("since", &mut filter.since), ("until", &mut filter.until)] {
            if let Some(t) = get(name) {
                *slot = Some(
                    parse_timestamp(t)
                        .ok_or_else(|| err(name, "must be an ISO 8601 timestamp with a time zone (RFC 3339)"))?,
                );
            }
        }
        let limit = match get("limit") {
            Some(l) => {
                if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("limit", "must be a non-negative integer"));
                }
                // Digits only: a value too large for u32 is simply "as many
                // as the server allows".
                l.parse::<u32>().unwrap_or(MAX_LIMIT)
            }
            None => 0,
        };
        Ok(StatementQuery::List(ListQuery { filter, limit, format, attachments, cursor: None }))
    }
}

/// One page of statements.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementResult {
    /// The statements, newest first unless `ascending`.
    pub statements: Vec<Value>,
    /// The relative URL of the next page (`/xapi/statements?more=…`), if
    /// there is one.
    pub more: Option<String>,
}

impl StatementResult {
    /// The StatementResult object of the wire format (`more` is the empty
    /// string on the last page).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("statements".into(), Value::Array(self.statements.clone()));
        m.insert("more".into(), Value::String(self.more.clone().unwrap_or_default()));
        Value::Object(m)
    }
}

/// What GET Statements answers.
#[derive(Debug, Clone, PartialEq)]
pub enum GetResult {
    /// One statement (`statementId` / `voidedStatementId`).
    Statement(Value),
    /// A page of statements.
    Statements(StatementResult),
}

impl GetResult {
    /// The response body.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Statement(s) => s.clone(),
            Self::Statements(r) => r.to_json(),
        }
    }
}

/// The token's content: the query and where the last page ended.
#[derive(serde::Serialize, serde::Deserialize)]
struct Token {
    /// The tenant tag the token was issued to.
    t: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vb: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rg: Option<String>,
    #[serde(default)]
    ra: bool,
    #[serde(default)]
    rg_: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    si: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    un: Option<String>,
    #[serde(default)]
    asc: bool,
    l: u32,
    f: String,
    #[serde(default)]
    at: bool,
    /// `stored` sort key and sequence of the last statement returned.
    s: String,
    q: i64,
}

/// The `more` URL continuing `q` after the statement at (`stored`, `seq`).
pub(crate) fn more_url(q: &ListQuery, tenant_tag: &str, stored: &str, seq: i64) -> String {
    let f = &q.filter;
    let token = Token {
        t: tenant_tag.to_owned(),
        ag: f.agent.clone(),
        vb: f.verb.clone(),
        ac: f.activity.clone(),
        rg: f.registration.clone(),
        ra: f.related_activities,
        rg_: f.related_agents,
        si: f.since.map(format_timestamp),
        un: f.until.map(format_timestamp),
        asc: f.ascending,
        l: q.limit,
        f: q.format.as_str().to_owned(),
        at: q.attachments,
        s: stored.to_owned(),
        q: seq,
    };
    // Serializing plain strings, numbers and booleans cannot fail.
    let bytes = serde_json::to_vec(&token).unwrap_or_default();
    format!("{STATEMENTS_PATH}?more={}", URL_SAFE_NO_PAD.encode(bytes))
}

fn decode_more(token: &str) -> Result<ListQuery, XapiError> {
    let bad = || err("more", "invalid continuation token");
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let t: Token = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let time = |s: Option<String>| -> Result<Option<OffsetDateTime>, XapiError> {
        s.map(|s| parse_timestamp(&s).ok_or_else(bad)).transpose()
    };
    let filter = StatementFilter {
        agent: t.ag,
        verb: t.vb,
        activity: t.ac,
        registration: t.rg,
        related_activities: t.ra,
        related_agents: t.rg_,
        since: time(t.si)?,
        until: time(t.un)?,
        ascending: t.asc,
    };
    let format = Format::parse(&t.f).ok_or_else(bad)?;
    let cursor = Cursor { tenant_tag: t.t, stored: t.s, seq: t.q };
    Ok(ListQuery { filter, limit: t.l, format, attachments: t.at, cursor: Some(cursor) })
}

/// A statement in the `ids` format: agents and groups reduced to their
/// identifier (anonymous groups to their members'), activities to their
/// id, verbs to their id; in the statement, its substatement, context and
/// authority.
pub(crate) fn ids_format(statement: &Value) -> Value {
    let Some(m) = statement.as_object() else { return statement.clone() };
    let mut out = m.clone();
    if let Some(a) = m.get("actor") {
        out.insert("actor".into(), agent_ids(a));
    }
    if let Some(a) = m.get("authority") {
        out.insert("authority".into(), agent_ids(a));
    }
    if let Some(id) = m.get("verb").and_then(|v| v.get("id")) {
        let mut verb = Map::new();
        verb.insert("id".into(), id.clone());
        out.insert("verb".into(), Value::Object(verb));
    }
    if let Some(o) = m.get("object") {
        let reduced = match o.get("objectType").and_then(Value::as_str) {
            Some("Agent" | "Group") => agent_ids(o),
            Some("SubStatement") => ids_format(o),
            Some("StatementRef") => o.clone(),
            _ => activity_ids(o),
        };
        out.insert("object".into(), reduced);
    }
    if let Some(c) = m.get("context").and_then(Value::as_object) {
        let mut context = c.clone();
        for k in ["instructor", "team"] {
            if let Some(a) = c.get(k) {
                context.insert(k.into(), agent_ids(a));
            }
        }
        if let Some(ca) = c.get("contextActivities").and_then(Value::as_object) {
            let lists = ca
                .iter()
                .map(|(k, list)| {
                    let items = list.as_array().map(|l| l.iter().map(activity_ids).collect()).unwrap_or_default();
                    (k.clone(), Value::Array(items))
                })
                .collect();
            context.insert("contextActivities".into(), Value::Object(lists));
        }
        out.insert("context".into(), Value::Object(context));
    }
    Value::Object(out)
}

fn activity_ids(a: &Value) -> Value {
    let mut out = Map::new();
    out.insert("objectType".into(), Value::String("Activity".into()));
    if let Some(id) = a.get("id") {
        out.insert("id".into(), id.clone());
    }
    Value::Object(out)
}

fn agent_ids(a: &Value) -> Value {
    let Some(m) = a.as_object() else { return a.clone() };
    let group = m.get("objectType").and_then(Value::as_str) == Some("Group");
    let mut out = Map::new();
    out.insert("objectType".into(), Value::String(if group { "Group" } else { "Agent" }.into()));
    let mut identified = false;
    for k in ["mbox", "mbox_sha1sum", "openid", "account"] {
        if let Some(v) = m.get(k) {
            out.insert(k.into(), v.clone());
            identified = true;
        }
    }
    if group
        && !identified
        && let Some(members) = m.get("member").and_then(Value::as_array)
    {
        out.insert("member".into(), Value::Array(members.iter().map(agent_ids).collect()));
    }
    Value::Object(out)
}
