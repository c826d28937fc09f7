//! FHIR R4 REST, read-only, for systems that speak FHIR rather than MCP
//! (another Plexus's FHIR client among them):
//! - `GET /fhir/r4/metadata`: the CapabilityStatement;
//! - `GET /fhir/r4/{type}/{id}`: read;
//! - `GET /fhir/r4/{type}?...`: search, a `searchset` Bundle with `next`
//!   links.
//!
//! Each request is one call of a tool of this module through the whole
//! pipeline (authenticated like `/mcp`, rate limited, authorized by role,
//! audited), with the same access checks and disclosures as the MCP tools:
//! a resource of a patient the caller may not see reads as 404 exactly like
//! a missing one, and a search leaves such resources out; researchers get
//! de-identified resources. Errors are OperationOutcomes.
//!
//! Search is deliberately strict: a parameter the server does not support
//! is refused (400), never ignored, since ignoring a filter on clinical data
//! would disclose more than was asked for; and every search must narrow by
//! patient, id, identifier, code or date.

use std::collections::BTreeSet;

use plexus_core::spec::{RestRequest, RestResponse, RouteMethod, RouteSpec};
use serde_json::json;

use super::*;
use crate::client::encode;

/// Where the endpoint is mounted.
pub const BASE_PATH: &str = "/fhir/r4";
const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 500;
const MAX_OFFSET: usize = 100_000;
const FHIR_JSON: &str = "application/fhir+json";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ReadArgs {
    /// The FHIR resource type: Patient, Observation, Condition, MedicationRequest, AllergyIntolerance,
    /// Encounter, DiagnosticReport, Immunization, Procedure or CareTeam.
    resource_type: String,
    /// The resource's id.
    id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchParam {
    /// The parameter's name, with its modifier if any (`date`, `code`, `patient`, `_count`, ...).
    name: String,
    /// Its value as FHIR REST writes it (`ge2020-01-01`, `http://loinc.org|8867-4`, `Patient/123`).
    value: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct FhirSearchArgs {
    /// The FHIR resource type searched.
    resource_type: String,
    /// Search parameters in order (a name may repeat, e.g. two `date`s for a range). Supported: `_id`,
    /// `_count`, `_getpagesoffset`, `_format` (JSON only); `identifier` (Patient); `patient`/`subject`,
    /// `code`, `date` (the other types).
    #[serde(default)]
    params: Vec<SearchParam>,
    /// The FHIR base URL for `fullUrl` and paging links (the REST endpoint fills it in; relative links
    /// without it).
    #[serde(default)]
    base_url: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NoArgs {}

/// The types the endpoint serves, checked.
fn check_type(kind: &str) -> Result<(), ToolError> {
    if fhir::INDEXED.contains(&kind) {
        Ok(())
    } else {
        Err(bad(format!("resource type `{kind}` is not served here (served: {})", fhir::INDEXED.join(", "))))
    }
}

/// `read_fhir_resource`.
pub(super) async fn read_tool(ctx: Arc<Ctx>, cx: CallContext, a: ReadArgs) -> Result<ToolOutput, ToolError> {
    check_type(&a.resource_type)?;
    if !fhir::is_id(&a.id) {
        return Err(bad(format!("`{}` is not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)", a.id)));
    }
    let v = ctx.read_checked(&cx, "read_fhir_resource", &a.resource_type, &a.id).await?;
    Ok(ToolOutput::structured(v))
}

/// What a search asks, parsed and checked.
#[derive(Debug, Default)]
struct Search {
    ids: Option<BTreeSet<String>>,
    identifier: Option<String>,
    patient: Option<String>,
    code: Option<String>,
    from: Option<String>,
    to: Option<String>,
    count: Option<usize>,
    offset: usize,
    /// The parameters that narrow the search, as given (for `self`/`next`).
    echoed: Vec<(String, String)>,
}

fn parse_search(kind: &str, params: &[SearchParam]) -> Result<Search, ToolError> {
    let mut s = Search::default();
    for SearchParam { name, value } in params {
        if value.len() > 512 || value.chars().any(char::is_control) {
            return Err(bad(format!("search parameter `{name}`: at most 512 characters, no control characters")));
        }
        let number = |max: usize| {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| bad(format!("`{name}` must be a whole number from 0 to {max}, not `{value}`")))
        };
        match name.as_str() {
            "_count" => s.count = Some(number(MAX_COUNT)?),
            "_getpagesoffset" => s.offset = number(MAX_OFFSET)?,
            "_format" => {
                if !matches!(value.as_str(), "json" | "application/json" | "application/fhir+json") {
                    return Err(bad(format!("`_format={value}`: this server answers JSON only")));
                }
            }
            "_id" => {
                let mut ids = BTreeSet::new();
                for id in value.split(',') {
                    if !fhir::is_id(id) {
                        return Err(bad(format!("`_id`: `{id}` is not a FHIR id")));
                    }
                    ids.insert(id.to_owned());
                }
                s.ids = Some(match s.ids.take() {
                    Some(before) => before.intersection(&ids).cloned().collect(),
                    None => ids,
                });
            }
            "identifier" if kind == "Patient" => {
                let (system, v) = split_token(value)
                    .ok_or_else(|| bad(format!("`identifier` must be system|value, not `{value}`")))?;
                if s.identifier.is_some() {
                    return Err(bad("one `identifier` per search"));
                }
                s.identifier = Some(format!("{system}|{v}"));
            }
            "patient" | "subject" if kind != "Patient" => {
                let id = value.strip_prefix("Patient/").unwrap_or(value);
                if !fhir::is_id(id) {
                    return Err(bad(format!("`{name}`: `{value}` is neither a Patient id nor Patient/<id>")));
                }
                if s.patient.as_ref().is_some_and(|p| p != id) {
                    return Err(bad("one patient per search"));
                }
                s.patient = Some(id.to_owned());
            }
            "code" if kind != "Patient" => {
                check_code(value)?;
                if unescaped(value, ',') {
                    return Err(bad("`code`: one code per search (no comma-separated alternatives)"));
                }
                s.code = Some(value.clone());
            }
            "date" if kind != "Patient" => {
                let (prefix, date) = match value.get(..2) {
                    Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &value[2..]),
                    _ => ("eq", value.as_str()),
                };
                check_date("date", date)?;
                if matches!(prefix, "ge" | "gt" | "eq") {
                    s.from = Some(date.to_owned());
                }
                if matches!(prefix, "le" | "lt" | "eq") {
                    s.to = Some(date.to_owned());
                }
            }
            other => {
                let supported = if kind == "Patient" {
                    "_id, identifier, _count, _getpagesoffset, _format"
                } else {
                    "_id, patient, subject, code, date, _count, _getpagesoffset, _format"
                };
                return Err(bad(format!(
                    "search parameter `{other}` is not supported on {kind} (supported: {supported}); \
                     this server refuses what it cannot apply rather than ignore it"
                )));
            }
        }
        if !matches!(name.as_str(), "_count" | "_getpagesoffset" | "_format") {
            s.echoed.push((name.clone(), value.clone()));
        }
    }
    let narrowed = s.ids.is_some()
        || s.identifier.is_some()
        || s.patient.is_some()
        || s.code.is_some()
        || s.from.is_some()
        || s.to.is_some();
    if !narrowed {
        return Err(bad(if kind == "Patient" {
            "a Patient search needs `_id` or `identifier`".to_owned()
        } else {
            format!("a {kind} search needs `patient`, `_id`, `code` or `date`")
        }));
    }
    if s.ids.is_some() && (s.code.is_some() || s.from.is_some() || s.to.is_some()) {
        return Err(bad("`_id` cannot be combined with `code` or `date`"));
    }
    Ok(s)
}

/// Whether `c` appears in `s` without a backslash before it.
fn unescaped(s: &str, c: char) -> bool {
    let mut escaped = false;
    for ch in s.chars() {
        if escaped {
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else if ch == c {
            return true;
        }
    }
    false
}

/// A FHIR token `system|value` with `\|`, `\,`, `\$` and `\\` unescaped.
fn split_token(token: &str) -> Option<(String, String)> {
    let (mut system, mut value) = (String::new(), String::new());
    let mut in_value = false;
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        let target = if in_value { &mut value } else { &mut system };
        match c {
            '\\' => target.push(chars.next()?),
            '|' if !in_value => in_value = true,
            '|' | ',' | '$' => return None,
            c => target.push(c),
        }
    }
    (in_value && !system.is_empty() && !value.is_empty()).then_some((system, value))
}

/// `search_fhir_resources`.
pub(super) async fn search_tool(ctx: Arc<Ctx>, cx: CallContext, a: FhirSearchArgs) -> Result<ToolOutput, ToolError> {
    let role = Role::of(&cx.principal).ok_or_else(access::no_role)?;
    if role == Role::Auditor {
        return Err(access::auditors_read_disclosures());
    }
    let kind = a.resource_type.as_str();
    check_type(kind)?;
    let s = parse_search(kind, &a.params)?;
    if s.identifier.is_some() && role == Role::Researcher {
        return Err(ToolError::Failed(
            "researchers see de-identified data and may not look patients up by identifier".into(),
        ));
    }
    let count = s.count.unwrap_or(DEFAULT_COUNT);
    let tenant = cx.principal.tenant.clone();
    // Candidates: (id, patient, the resource when already read).
    let mut candidates: Vec<(String, Option<String>, Option<Value>)> = Vec::new();
    let mut ids = s.ids.clone();
    if let Some(identifier) = &s.identifier {
        let found =
            ctx.store.find_blind(&tenant, "Patient", "identifier", identifier).await.map_err(access::unavailable)?;
        let found: BTreeSet<String> = found.into_iter().collect();
        ids = Some(match ids {
            Some(before) => before.intersection(&found).cloned().collect(),
            None => found,
        });
    }
    if let Some(ids) = ids {
        for id in ids {
            let Some(v) = ctx.store.get(&tenant, kind, &id).await.map_err(access::unavailable)? else { continue };
            let patient = fhir::patient_of(&v);
            if s.patient.is_some() && patient != s.patient {
                continue;
            }
            candidates.push((id, patient, Some(v)));
        }
    } else {
        let q = Query {
            kinds: vec![kind.to_owned()],
            patient: s.patient.clone(),
            code: s.code.as_deref().map(split_code),
            text: None,
            from: s.from.clone(),
            to: s.to.clone(),
            // Read ahead so that withheld resources do not shorten the page much.
            limit: (s.offset + count) * 4 + 50,
            offset: 0,
        };
        let found = ctx.store.find(&tenant, &q).await.map_err(access::unavailable)?;
        candidates.extend(found.into_iter().map(|f| (f.id, f.patient, None)));
    }
    let caller = access::Caller::of(&ctx.store, &cx).await?;
    let mut bases: BTreeMap<String, Option<Basis>> = BTreeMap::new();
    let mut kept = Vec::new();
    for (id, patient, v) in candidates {
        let Some(patient) = patient else { continue };
        if !bases.contains_key(&patient) {
            let b = caller.basis(&ctx.store, &cx, &patient).await.ok();
            bases.insert(patient.clone(), b);
        }
        if bases[&patient].is_some() {
            kept.push((id, patient, v));
        }
    }
    let more = kept.len() > s.offset + count;
    let mut run = (role == Role::Researcher).then(|| deid::Run::new(year_now(), fresh_seed()));
    let base = a.base_url.as_deref().map(|b| b.trim_end_matches('/').to_owned());
    let mut entries = Vec::new();
    let mut touched: BTreeMap<String, Basis> = BTreeMap::new();
    for (id, patient, v) in kept.into_iter().skip(s.offset).take(count) {
        let v = match v {
            Some(v) => v,
            None => match ctx.store.get(&tenant, kind, &id).await.map_err(access::unavailable)? {
                Some(v) => v,
                None => continue,
            },
        };
        let v = match run.as_mut() {
            Some(run) => run.resource(&v),
            None => v,
        };
        if let Some(Some(b)) = bases.get(&patient) {
            touched.insert(patient, b.clone());
        }
        let shown = v.get("id").and_then(Value::as_str).unwrap_or(&id).to_owned();
        let full_url = match &base {
            Some(b) => format!("{b}/{kind}/{shown}"),
            None => format!("{kind}/{shown}"),
        };
        entries.push(json!({"fullUrl": full_url, "resource": v, "search": {"mode": "match"}}));
    }
    let list: Vec<(String, Basis)> = touched.into_iter().collect();
    ctx.disclose(&cx, "search_fhir_resources", "search", &list, &[data_type_of(kind)], "success").await?;
    // A researcher's answer never carries a patient's real id, not even in
    // the links echoing the query: those omit `_id`, `patient` and
    // `subject`, and such a search is not paged (an outcome entry says so
    // when more matched).
    let identifying = |n: &str| matches!(n, "_id" | "patient" | "subject" | "identifier");
    let deidentified = run.is_some();
    let hidden = deidentified && s.echoed.iter().any(|(n, _)| identifying(n));
    let link = |offset: usize| {
        let mut q: Vec<String> = s
            .echoed
            .iter()
            .filter(|(n, _)| !(deidentified && identifying(n)))
            .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
            .collect();
        q.push(format!("_count={count}"));
        q.push(format!("_getpagesoffset={offset}"));
        match &base {
            Some(b) => format!("{b}/{kind}?{}", q.join("&")),
            None => format!("{kind}?{}", q.join("&")),
        }
    };
    let mut links = vec![json!({"relation": "self", "url": link(s.offset)})];
    if more && hidden {
        entries.push(json!({
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "warning", "code": "too-costly", "diagnostics":
                    format!("more than {count} matched; de-identified searches by patient or id are not paged: \
                             raise _count (up to {MAX_COUNT}) or narrow by code or date")}],
            },
            "search": {"mode": "outcome"},
        }));
    } else if more {
        links.push(json!({"relation": "next", "url": link(s.offset + count)}));
    }
    if s.offset > 0 && !hidden {
        links.push(json!({"relation": "previous", "url": link(s.offset.saturating_sub(count))}));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "id": format!("{:016x}", fresh_seed()),
        "meta": {"lastUpdated": now_text()},
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    Ok(ToolOutput::structured(bundle))
}

/// `get_fhir_capabilities`: what the endpoint serves.
pub(super) async fn capabilities_tool(_cx: CallContext, _a: NoArgs) -> Result<ToolOutput, ToolError> {
    let resources: Vec<Value> = fhir::INDEXED
        .iter()
        .map(|kind| {
            let mut params = vec![json!({"name": "_id", "type": "token"})];
            if *kind == "Patient" {
                params.push(json!({"name": "identifier", "type": "token"}));
            } else {
                params.push(json!({"name": "patient", "type": "reference"}));
                params.push(json!({"name": "subject", "type": "reference"}));
                params.push(json!({"name": "code", "type": "token"}));
                params.push(json!({"name": "date", "type": "date"}));
            }
            json!({
                "type": kind,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": params,
            })
        })
        .collect();
    Ok(ToolOutput::structured(json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now_text(),
        "publisher": "Plexus",
        "kind": "instance",
        "software": {"name": "Plexus", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Plexus health module: read-only FHIR R4 REST"},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {
                "description": "Bearer tokens (OAuth 2.1) or API keys, as for MCP. Access to a patient needs a \
                                care relationship, an assignment or break-the-glass; researchers get \
                                de-identified data; every access is disclosed and audited."
            },
            "resource": resources,
        }],
    })))
}

// ------------------------------------------------------------------ routes

/// The three routes, each over its tool.
pub(super) fn routes() -> Vec<RouteSpec> {
    let metadata = RouteSpec {
        method: RouteMethod::Get,
        path: format!("{BASE_PATH}/metadata"),
        tool: "get_fhir_capabilities".into(),
        args: Arc::new(|req: &RestRequest| {
            format_ok(req)?;
            Ok(json!({}))
        }),
        reply: Arc::new(|_req: &RestRequest, out| reply(out)),
        module: NAME,
    };
    let read = RouteSpec {
        method: RouteMethod::Get,
        path: format!("{BASE_PATH}/{{type}}/{{id}}"),
        tool: "read_fhir_resource".into(),
        args: Arc::new(|req: &RestRequest| {
            format_ok(req)?;
            if let Some((name, _)) = req.query.iter().find(|(n, _)| n != "_format") {
                return Err(outcome(400, "not-supported", &format!("parameter `{name}` is not supported on read")));
            }
            let kind = req.params.get("type").cloned().unwrap_or_default();
            let id = req.params.get("id").cloned().unwrap_or_default();
            Ok(json!({"resourceType": kind, "id": id}))
        }),
        reply: Arc::new(|_req: &RestRequest, out| reply(out)),
        module: NAME,
    };
    let search = RouteSpec {
        method: RouteMethod::Get,
        path: format!("{BASE_PATH}/{{type}}"),
        tool: "search_fhir_resources".into(),
        args: Arc::new(|req: &RestRequest| {
            format_ok(req)?;
            let kind = req.params.get("type").cloned().unwrap_or_default();
            let params: Vec<Value> = req.query.iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
            let mut args = json!({"resourceType": kind, "params": params});
            if let Some(base) = base_url(req) {
                args["baseUrl"] = Value::String(base);
            }
            Ok(args)
        }),
        reply: Arc::new(|_req: &RestRequest, out| reply(out)),
        module: NAME,
    };
    vec![metadata, read, search]
}

/// The request's FHIR base URL, from its Host (and `X-Forwarded-Proto`
/// behind a proxy), when both look sane.
fn base_url(req: &RestRequest) -> Option<String> {
    let host = req.header("host")?;
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    let scheme = match req.header("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    host_ok.then(|| format!("{scheme}://{host}{BASE_PATH}"))
}

/// JSON only: `_format` and `Accept` must allow it.
fn format_ok(req: &RestRequest) -> Result<(), RestResponse> {
    let json_ok = |v: &str| {
        v.split(',').any(|t| {
            let t = t.split(';').next().unwrap_or_default().trim();
            matches!(t, "json" | "application/json" | "application/fhir+json" | "*/*" | "application/*")
        })
    };
    if let Some(f) = req.query_param("_format")
        && !json_ok(f)
    {
        return Err(outcome(406, "not-supported", &format!("`_format={f}`: this server answers JSON only")));
    }
    if let Some(a) = req.header("accept")
        && !a.trim().is_empty()
        && !json_ok(a)
    {
        return Err(outcome(
            406,
            "not-supported",
            &format!("`Accept: {a}`: this server answers application/fhir+json only"),
        ));
    }
    Ok(())
}

/// An OperationOutcome answer.
fn outcome(status: u16, code: &str, diagnostics: &str) -> RestResponse {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    });
    RestResponse {
        status,
        headers: vec![("content-type".into(), FHIR_JSON.into())],
        body: body.to_string().into_bytes(),
    }
}

/// The tool's outcome as FHIR REST answers it.
fn reply(out: Result<ToolOutput, ToolError>) -> RestResponse {
    match out {
        Ok(o) if !o.is_error => match o.into_structured() {
            Some(v) => RestResponse {
                status: 200,
                headers: vec![("content-type".into(), FHIR_JSON.into())],
                body: serde_json::to_vec(&v).unwrap_or_default(),
            },
            None => outcome(500, "exception", "the tool gave no resource"),
        },
        Ok(o) => {
            let text: Vec<&str> = o.content.iter().filter_map(plexus_core::Content::as_text).collect();
            outcome(400, "processing", &text.join(" "))
        }
        Err(e) => error_outcome(&e),
    }
}

fn error_outcome(e: &ToolError) -> RestResponse {
    match e {
        ToolError::InvalidArguments(m) | ToolError::InvalidRequest(m) => {
            let code =
                if m.contains("not supported") || m.contains("not served") { "not-supported" } else { "invalid" };
            outcome(400, code, m)
        }
        ToolError::NotFound { kind: "resource", .. } => outcome(404, "not-found", "no such resource here"),
        ToolError::NotFound { .. } => outcome(403, "forbidden", "this operation is not available to you"),
        ToolError::Failed(m) => outcome(403, "forbidden", m),
        ToolError::Unauthenticated { .. } => outcome(401, "login", "authentication required"),
        ToolError::InsufficientScope(m) => outcome(403, "forbidden", &format!("insufficient scope: {m}")),
        ToolError::RateLimited { retry_after } => outcome(429, "throttled", &e.to_string())
            .with_header("retry-after", retry_after.as_secs().max(1).to_string()),
        ToolError::Timeout(_) => outcome(504, "timeout", &e.to_string()),
        ToolError::Unavailable { .. } | ToolError::TenantUnavailable(_) => outcome(503, "transient", &e.to_string()),
        _ => outcome(500, "exception", "internal error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, value: &str) -> SearchParam {
        SearchParam { name: name.into(), value: value.into() }
    }

    #[test]
    fn tokens_unescape_and_reject_alternatives() {
        assert_eq!(split_token("urn:x|1\\|2\\,3\\\\"), Some(("urn:x".into(), "1|2,3\\".into())));
        assert_eq!(split_token("urn:x|a,b"), None);
        assert_eq!(split_token("nosystem"), None);
        assert_eq!(split_token("|v"), None);
        assert!(unescaped("a,b", ',') && !unescaped("a\\,b", ','));
    }

    #[test]
    fn searches_parse_strictly() {
        let s =
            parse_search("Observation", &[p("patient", "Patient/abc"), p("date", "ge2020-01-01"), p("date", "lt2021")])
                .unwrap();
        assert_eq!(s.patient.as_deref(), Some("abc"));
        assert_eq!((s.from.as_deref(), s.to.as_deref()), (Some("2020-01-01"), Some("2021")));
        assert_eq!(s.echoed.len(), 3);
        let e = parse_search("Observation", &[p("patient", "x"), p("value-quantity", "5")]).unwrap_err();
        assert!(e.to_string().contains("`value-quantity` is not supported on Observation"), "{e}");
        let e = parse_search("Patient", &[p("name", "Smith")]).unwrap_err();
        assert!(e.to_string().contains("`name` is not supported on Patient"), "{e}");
        let e = parse_search("Observation", &[p("_count", "10")]).unwrap_err();
        assert!(e.to_string().contains("needs `patient`"), "{e}");
        let e = parse_search("Observation", &[p("patient", "a"), p("patient", "b")]).unwrap_err();
        assert!(e.to_string().contains("one patient per search"), "{e}");
        let e = parse_search("Observation", &[p("patient", "a"), p("_count", "-1")]).unwrap_err();
        assert!(e.to_string().contains("whole number from 0 to 500"), "{e}");
        let e = parse_search("Observation", &[p("code", "a,b")]).unwrap_err();
        assert!(e.to_string().contains("one code per search"), "{e}");
        let e = parse_search("Observation", &[p("_id", "a/b")]).unwrap_err();
        assert!(e.to_string().contains("not a FHIR id"), "{e}");
        let e = parse_search("Observation", &[p("date", "2020-13-40")]).unwrap_err();
        assert!(e.to_string().contains("`date`"), "{e}");
    }
}
