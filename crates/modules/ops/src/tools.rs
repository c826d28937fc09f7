//! The MCP surface of the hub: a thin layer of tools, resources and REST
//! routes over the engines (see [`crate::hub`]).

use std::sync::Arc;

use plexus_core::content::{Content, ResourceContents};
use plexus_core::spec::{RestRequest, RestResponse, RouteMethod, RouteSpec};
use plexus_core::{CallContext, Module, ResourceSpec, ResourceTemplateSpec, ToolDef, ToolError, ToolOutput, Toolbox};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::hub::{Hub, URI_PREFIX};
use crate::ofrep;
use crate::registry::{Change, Document, RegistryError, VersionInfo};

/// The module's name.
pub const NAME: &str = "ops";

/// The ops module: the hub's tools, its documents as resources, and the
/// OFREP routes.
pub struct Ops {
    hub: Arc<Hub>,
    toolbox: Toolbox,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops").field("hub", &self.hub).finish_non_exhaustive()
    }
}

impl Ops {
    pub fn new(hub: Arc<Hub>) -> Self {
        let toolbox = registry_tools(Toolbox::new(NAME), &hub);
        let toolbox = flag_tools(toolbox, &hub);
        let toolbox = crate::workflows::workflow_tools(toolbox, &hub);
        let toolbox = crate::ops_reports::report_tools(toolbox, &hub, hub.alert_state());
        Self { hub, toolbox }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

/// The caller, as recorded in a document's history.
pub(crate) fn author(cx: &CallContext) -> String {
    let p = &cx.principal;
    if p.subject.is_empty() { "anonymous".into() } else { p.subject.clone() }
}

/// Registry errors as the model should see them: bad input is the caller's
/// to fix (`isError` with the exact reasons), the rest is ours.
fn registry_error(e: RegistryError) -> ToolError {
    match e {
        RegistryError::Conflict { .. } => ToolError::Conflict(e.to_string()),
        e if e.is_invalid_input() => ToolError::Failed(e.to_string()),
        RegistryError::NotFound(_) | RegistryError::UnknownVersion { .. } => ToolError::Failed(e.to_string()),
        e => ToolError::Unavailable {
            message: "the shared registry could not complete the change".into(),
            source: Some(Box::new(e)),
        },
    }
}

// ---------------------------------------------------------------- registry

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    /// Only documents whose name starts with this (`config/`, `alerts/`).
    #[serde(default)]
    prefix: Option<String>,
}

/// A shared document's current state.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct DocumentLine {
    name: String,
    uri: String,
    version: u64,
    format: String,
    size: u64,
    sha256: String,
    updated_at: String,
    author: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ProblemLine {
    name: String,
    kind: String,
    errors: Vec<String>,
    #[serde(rename = "detectedAt")]
    detected_at: String,
    #[serde(rename = "liveVersion")]
    live_version: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Listing {
    documents: Vec<DocumentLine>,
    /// Documents whose file on disk is refused (the last good version stays
    /// live) or whose live version no longer passes its schema.
    problems: Vec<ProblemLine>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NameArgs {
    /// The document's name, e.g. `config/interview-types.json`.
    name: String,
    /// An earlier version to read instead of the live one.
    #[serde(default)]
    version: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct DocumentOut {
    name: String,
    uri: String,
    version: u64,
    format: String,
    /// The text of the document.
    content: String,
    /// JSON and YAML documents, parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    updated_at: Option<String>,
    author: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateArgs {
    /// The document's name, e.g. `config/interview-types.json`.
    name: String,
    /// The new content: text, or for a JSON document the JSON value itself.
    content: Value,
    /// Refuse the change unless this is the live version (optimistic
    /// concurrency); omit to change whatever is live.
    #[serde(default)]
    expected_version: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ChangeOut {
    name: String,
    uri: String,
    /// The live version now.
    version: u64,
    previous_version: Option<u64>,
    /// False when the content was already live (nothing recorded).
    recorded: bool,
    /// Unified diff from the previous version.
    diff: Option<String>,
}

impl From<Change> for ChangeOut {
    fn from(c: Change) -> Self {
        ChangeOut {
            uri: format!("{URI_PREFIX}{}", c.name),
            name: c.name,
            version: c.version.version,
            previous_version: c.previous,
            recorded: c.recorded,
            diff: c.diff,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RollbackArgs {
    /// The document's name.
    name: String,
    /// The version whose content becomes live again (as a new version).
    version: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HistoryArgs {
    /// The document's name.
    name: String,
    /// The newest this many versions (default 20).
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct VersionLine {
    version: u64,
    author: String,
    time: String,
    source: String,
    sha256: String,
    size: u64,
    deleted: bool,
    /// Unified diff from the version before.
    diff: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct History {
    name: String,
    versions: Vec<VersionLine>,
}

fn line(v: &VersionInfo, diff: Option<String>) -> VersionLine {
    VersionLine {
        version: v.version,
        author: v.author.clone(),
        time: v.time.clone(),
        source: v.source.as_str().into(),
        sha256: v.sha256.clone(),
        size: v.size,
        deleted: v.deleted,
        diff,
    }
}

fn document_out(d: &Document) -> DocumentOut {
    DocumentOut {
        uri: format!("{URI_PREFIX}{}", d.name),
        name: d.name.clone(),
        version: d.version,
        format: d.format.as_str().into(),
        content: d.text.to_string(),
        value: d.value.as_deref().cloned(),
        updated_at: Some(d.updated_at.clone()),
        author: Some(d.author.clone()),
    }
}

fn registry_tools(tb: Toolbox, hub: &Arc<Hub>) -> Toolbox {
    let (h1, h2, h3, h4, h5) = (hub.clone(), hub.clone(), hub.clone(), hub.clone(), hub.clone());
    tb.typed(
        ToolDef::new(
            "list_shared_configs",
            "List the documents the teams share (config, alerts, reports, experiments, audit, compliance, incidents, security) with their live versions, and any refused edits",
        )
        .title("List shared documents")
        .read_only(),
        move |_cx, a: ListArgs| {
            let hub = h1.clone();
            async move {
                let documents = hub
                    .registry
                    .list()
                    .into_iter()
                    .filter(|d| a.prefix.as_deref().is_none_or(|p| d.name.starts_with(p)))
                    .map(|d| DocumentLine {
                        uri: format!("{URI_PREFIX}{}", d.name),
                        name: d.name,
                        version: d.version,
                        format: d.format.as_str().into(),
                        size: d.size,
                        sha256: d.sha256,
                        updated_at: d.updated_at,
                        author: d.author,
                    })
                    .collect();
                let problems = hub
                    .registry
                    .problems()
                    .into_iter()
                    .map(|p| ProblemLine {
                        name: p.name,
                        kind: format!("{:?}", p.kind).to_lowercase(),
                        errors: p.errors,
                        detected_at: p.detected_at,
                        live_version: p.live_version,
                    })
                    .collect();
                Ok(Listing { documents, problems })
            }
        },
    )
    .typed(
        ToolDef::new("get_shared_config", "Read a shared document: the live version, or an earlier one by number")
            .title("Read a shared document")
            .read_only(),
        move |_cx, a: NameArgs| {
            let hub = h2.clone();
            async move {
                let live = hub.registry.get(&a.name).map_err(registry_error);
                match a.version {
                    Some(v) if live.as_ref().map_or(true, |d| d.version != v) => {
                        let text = hub.registry.version(&a.name, v).await.map_err(registry_error)?;
                        let info = hub.registry.history(&a.name).map_err(registry_error)?;
                        let info = info.iter().find(|i| i.version == v);
                        let format = a.name.rsplit('.').next().unwrap_or_default().to_owned();
                        Ok(DocumentOut {
                            uri: format!("{URI_PREFIX}{}", a.name),
                            name: a.name,
                            version: v,
                            format,
                            content: text.to_string(),
                            value: None,
                            updated_at: info.map(|i| i.time.clone()),
                            author: info.map(|i| i.author.clone()),
                        })
                    }
                    _ => Ok(document_out(&live?)),
                }
            }
        },
    )
    .typed(
        ToolDef::new(
            "update_shared_config",
            "Change a shared document. It is validated (JSON/YAML syntax, its JSON Schema from schemas/, flag and access-control rules) and applied atomically as a new version; subscribers are notified. An invalid change is refused with the exact errors and the live version stays",
        )
        .title("Change a shared document")
        .destructive(false)
        .idempotent(),
        move |cx, a: UpdateArgs| {
            let hub = h3.clone();
            async move {
                let text = match a.content {
                    Value::String(s) => s,
                    v => {
                        let mut s = serde_json::to_string_pretty(&v).map_err(ToolError::internal)?;
                        s.push('\n');
                        s
                    }
                };
                let change =
                    hub.registry.put(&a.name, &text, &author(&cx), a.expected_version).await.map_err(registry_error)?;
                Ok(ChangeOut::from(change))
            }
        },
    )
    .typed(
        ToolDef::new(
            "rollback_shared_config",
            "Make an earlier version of a shared document live again (recorded as a new version; it is validated like any change)",
        )
        .title("Roll a shared document back")
        .destructive(false),
        move |cx, a: RollbackArgs| {
            let hub = h4.clone();
            async move {
                let change = hub.registry.rollback(&a.name, a.version, &author(&cx)).await.map_err(registry_error)?;
                Ok(ChangeOut::from(change))
            }
        },
    )
    .typed(
        ToolDef::new(
            "get_shared_config_history",
            "The versions of a shared document, newest first: who, when, from where (disk, api, rollback, system) and the diff of each",
        )
        .title("History of a shared document")
        .read_only(),
        move |_cx, a: HistoryArgs| {
            let hub = h5.clone();
            async move {
                let all = hub.registry.history(&a.name).map_err(registry_error)?;
                let limit = a.limit.unwrap_or(20).clamp(1, 500);
                let mut versions = Vec::new();
                for (i, v) in all.iter().enumerate().rev().take(limit) {
                    let diff = match i.checked_sub(1).map(|p| &all[p]) {
                        Some(prev) => hub.registry.diff(&a.name, prev.version, v.version).await.ok(),
                        None => None,
                    };
                    versions.push(line(v, diff));
                }
                Ok(History { name: a.name, versions })
            }
        },
    )
}

// ---------------------------------------------------------------- flags

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FlagArgs {
    /// The flag's key.
    flag: String,
    /// The evaluation context: OpenFeature's (`targetingKey`, ...) or
    /// Unleash's (`userId`, `sessionId`, `remoteAddress`, `environment`,
    /// `appName`, `currentTime`); other keys are custom properties (`team`).
    #[serde(default)]
    context: Map<String, Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FlagsArgs {
    /// The evaluation context (see `evaluate_feature_flag`).
    #[serde(default)]
    context: Map<String, Value>,
}

/// One flag's evaluation, in OFREP's shape.
#[derive(Debug, Serialize, JsonSchema)]
struct FlagOut {
    key: String,
    /// The flag's value: a boolean, or the variant's payload.
    value: Value,
    /// `STATIC`, `TARGETING_MATCH`, `SPLIT` or `DISABLED`.
    reason: String,
    variant: String,
    /// The version of `config/feature-flags.json` evaluated.
    #[serde(rename = "flagsVersion")]
    flags_version: u64,
}

/// Every flag's evaluation.
#[derive(Debug, Serialize, JsonSchema)]
struct FlagsOut {
    flags: Vec<Value>,
    /// Changes whenever the flag definitions or the context change.
    etag: String,
    #[serde(rename = "flagsVersion")]
    flags_version: u64,
}

fn context_of(m: &Map<String, Value>) -> Result<crate::flags::Context, ToolError> {
    ofrep::context_from_map(m).map_err(|e| ToolError::InvalidArguments(e.details))
}

fn flag_tools(tb: Toolbox, hub: &Arc<Hub>) -> Toolbox {
    let (h1, h2) = (hub.clone(), hub.clone());
    tb.typed(
        ToolDef::new(
            "evaluate_feature_flag",
            "Evaluate a feature flag (Unleash-compatible: strategies, constraints, segments, variants) for a context; answers OFREP's shape: value, reason, variant",
        )
        .title("Evaluate a feature flag")
        .read_only()
        .idempotent(),
        move |_cx, a: FlagArgs| {
            let hub = h1.clone();
            async move {
                let ctx = context_of(&a.context)?;
                let set = hub.flags();
                let v = ofrep::evaluate(&set.engine, &a.flag, &ctx)
                    .ok_or_else(|| ToolError::Failed(format!("flag `{}` was not found", a.flag)))?;
                Ok(FlagOut {
                    key: a.flag,
                    value: v.get("value").cloned().unwrap_or(Value::Null),
                    reason: v.get("reason").and_then(Value::as_str).unwrap_or_default().into(),
                    variant: v.get("variant").and_then(Value::as_str).unwrap_or_default().into(),
                    flags_version: set.version,
                })
            }
        },
    )
    .typed(
        ToolDef::new("evaluate_feature_flags", "Evaluate every feature flag for a context (OFREP bulk evaluation)")
            .title("Evaluate all feature flags")
            .read_only()
            .idempotent(),
        move |_cx, a: FlagsArgs| {
            let hub = h2.clone();
            async move {
                let ctx = context_of(&a.context)?;
                let set = hub.flags();
                let flags = ofrep::evaluate_all(&set.engine, &ctx);
                let mut h = Sha256::new();
                h.update(set.sha256.as_bytes());
                h.update(b"\n");
                h.update(Value::Object(a.context).to_string().as_bytes());
                let etag = format!("\"{}\"", &hex::encode(h.finalize())[..32]);
                Ok(FlagsOut { flags, etag, flags_version: set.version })
            }
        },
    )
}

// ---------------------------------------------------------------- OFREP

/// The OFREP routes: each request is one call of `evaluate_feature_flag`
/// or `evaluate_feature_flags` through the pipeline.
fn ofrep_routes() -> Vec<RouteSpec> {
    let single = RouteSpec {
        method: RouteMethod::Post,
        path: "/ofrep/v1/evaluate/flags/{key}".into(),
        tool: "evaluate_feature_flag".into(),
        args: Arc::new(|req: &RestRequest| {
            let key = req.params.get("key").cloned().unwrap_or_default();
            match ofrep_context(req) {
                Ok(context) => Ok(json!({"flag": key, "context": context})),
                Err(b) => {
                    Err(RestResponse::json(400, &json!({"key": key, "errorCode": b.code, "errorDetails": b.details})))
                }
            }
        }),
        reply: Arc::new(|req: &RestRequest, out| {
            let key = req.params.get("key").cloned().unwrap_or_default();
            match out {
                Ok(o) if !o.is_error => match o.into_structured() {
                    Some(Value::Object(mut m)) => {
                        let version = m.remove("flagsVersion");
                        if let Some(v) = version {
                            m.insert("metadata".into(), json!({"flagsVersion": v}));
                        }
                        RestResponse::json(200, &Value::Object(m))
                    }
                    _ => general_error(),
                },
                Ok(_) | Err(ToolError::Failed(_)) => RestResponse::json(404, &ofrep::not_found(&key)),
                Err(e) => ofrep_error(Some(&key), &e),
            }
        }),
        module: NAME,
    };
    let bulk = RouteSpec {
        method: RouteMethod::Post,
        path: "/ofrep/v1/evaluate/flags".into(),
        tool: "evaluate_feature_flags".into(),
        args: Arc::new(|req: &RestRequest| match ofrep_context(req) {
            Ok(context) => Ok(json!({"context": context})),
            Err(b) => Err(RestResponse::json(400, &json!({"errorCode": b.code, "errorDetails": b.details}))),
        }),
        reply: Arc::new(|req: &RestRequest, out| match out {
            Ok(o) if !o.is_error => {
                let Some(Value::Object(m)) = o.into_structured() else { return general_error() };
                let etag = m.get("etag").and_then(Value::as_str).unwrap_or_default().to_owned();
                if req
                    .header("if-none-match")
                    .is_some_and(|h| h.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
                {
                    return RestResponse::empty(304).with_header("etag", etag);
                }
                let body = json!({
                    "flags": m.get("flags").cloned().unwrap_or_else(|| json!([])),
                    "metadata": {"flagsVersion": m.get("flagsVersion").cloned().unwrap_or(json!(0))},
                });
                RestResponse::json(200, &body).with_header("etag", etag)
            }
            Ok(o) => RestResponse::json(400, &json!({"errorCode": "GENERAL", "errorDetails": tool_text(&o)})),
            Err(e) => ofrep_error(None, &e),
        }),
        module: NAME,
    };
    vec![single, bulk]
}

/// The request's context, checked as OFREP asks.
fn ofrep_context(req: &RestRequest) -> Result<Value, ofrep::BadRequest> {
    let v: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ofrep::BadRequest { code: "PARSE_ERROR", details: format!("the body is not JSON: {e}") })?;
    ofrep::parse_request(&req.body)?;
    Ok(v.get("context").cloned().unwrap_or_else(|| json!({})))
}

fn tool_text(o: &ToolOutput) -> String {
    o.content.iter().filter_map(Content::as_text).collect::<Vec<_>>().join(" ")
}

fn general_error() -> RestResponse {
    RestResponse::json(500, &json!({"errorDetails": "an internal error occurred while evaluating"}))
}

/// Pipeline refusals in OFREP's terms: 400 with `INVALID_CONTEXT` for bad
/// arguments, 401, 403, 429 with `Retry-After`, 500 with `errorDetails`.
fn ofrep_error(key: Option<&str>, e: &ToolError) -> RestResponse {
    let status = e.code().http_status();
    match (status, e) {
        (400, _) => {
            let mut body = json!({"errorCode": "INVALID_CONTEXT", "errorDetails": e.to_string()});
            if let Some(k) = key {
                body["key"] = json!(k);
            }
            RestResponse::json(400, &body)
        }
        (429, ToolError::RateLimited { retry_after }) => {
            RestResponse::empty(429).with_header("retry-after", retry_after.as_secs().max(1).to_string())
        }
        (401, _) => RestResponse::empty(401).with_header("www-authenticate", "Bearer"),
        (403, _) => RestResponse::empty(403),
        (s, _) if s >= 500 => RestResponse::json(s, &json!({"errorDetails": e.to_string()})),
        (s, _) => RestResponse::json(s, &json!({"errorDetails": e.to_string()})),
    }
}

// ---------------------------------------------------------------- module

#[async_trait::async_trait]
impl Module for Ops {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tools(&self) -> Vec<plexus_core::ToolSpec> {
        self.toolbox.specs()
    }

    fn resource_templates(&self) -> Vec<ResourceTemplateSpec> {
        vec![
            ResourceTemplateSpec::new(format!("{URI_PREFIX}{{+name}}"), "shared document")
                .description("A document the teams share: shared://config/interview-types.json, shared://alerts/..., shared://reports/monthly/2026-11.md"),
        ]
    }

    fn listed_resources(&self) -> Vec<ResourceSpec> {
        self.hub
            .registry
            .list()
            .into_iter()
            .map(|d| {
                let mut r = ResourceSpec::new(format!("{URI_PREFIX}{}", d.name), d.name.clone());
                r.mime_type = Some(d.format.mime().into());
                r.size = Some(d.size);
                r.description = Some(format!("version {} by {} at {}", d.version, d.author, d.updated_at));
                r
            })
            .collect()
    }

    fn routes(&self) -> Vec<RouteSpec> {
        ofrep_routes()
    }

    async fn call(&self, cx: &CallContext, tool: &str, args: Value) -> Result<ToolOutput, ToolError> {
        self.toolbox.call(cx, tool, args).await
    }

    async fn read(&self, _cx: &CallContext, uri: &str) -> Result<ResourceContents, ToolError> {
        let name = uri.strip_prefix(URI_PREFIX).ok_or_else(|| ToolError::unknown_resource(uri))?;
        let name = percent_decode(name).ok_or_else(|| ToolError::unknown_resource(uri))?;
        let doc = self.hub.registry.get(&name).map_err(|_| ToolError::unknown_resource(uri))?;
        Ok(ResourceContents::text(uri, Some(doc.format.mime()), doc.text.to_string()))
    }
}

/// `%E3%83%A1` sequences decoded (clients may send Japanese names encoded);
/// `None` for broken escapes or text that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
