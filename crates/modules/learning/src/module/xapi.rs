//! The xAPI Statement Resource over HTTP: `POST`, `PUT` and `GET
//! /xapi/statements`, each one call of a tool of this module through the
//! whole pipeline (authenticated like `/mcp`, rate limited, authorized,
//! validated, audited). The tenant is the caller's; the authority of every
//! stored statement is the caller (an account of the tenant's home page).
//!
//! The route checks `X-Experience-API-Version` (400 when missing or not
//! 1.0.x) and answers with `X-Experience-API-Version: 1.0.3` and
//! `X-Experience-API-Consistent-Through`; statuses follow the
//! specification: POST 200 with the ids, PUT 204, GET 200 (a statement or
//! a StatementResult with `more`), 400 with the precise message, 403 (not
//! allowed, or a tenant limit), 404, 409.
//!
//! Who: teachers, administrators and LRS clients (role `xapi`); learners
//! record their activity with `track_learning_progress`.

use plexus_core::spec::{RestRequest, RestResponse, RouteMethod};
use serde_json::json;

use super::*;
use crate::activity;
use crate::xapi::{
    CONSISTENT_THROUGH_HEADER, STATEMENTS_PATH, Statement, StatementQuery, VERSION_HEADER, XAPI_VERSION, XapiError,
    check_version, consistent_through, parse_statements,
};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PostArgs {
    /// One xAPI statement or an array of them.
    statements: Value,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct PutArgs {
    /// The statement's id (a UUID); an `id` in the statement must be the same.
    statement_id: String,
    /// The statement.
    statement: Value,
}

/// One query parameter.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Param {
    /// `statementId`, `voidedStatementId`, `agent` (JSON), `verb`, `activity`, `registration`,
    /// `related_activities`, `related_agents`, `since`, `until`, `limit`, `format`, `attachments`,
    /// `ascending` or `more`.
    name: String,
    value: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GetArgs {
    /// The GET Statements parameters, as the specification names them.
    #[serde(default)]
    params: Vec<Param>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PostOutput {
    /// The stored statements' ids, in order (generated where absent).
    statement_ids: Vec<String>,
    consistent_through: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PutOutput {
    statement_id: String,
    consistent_through: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct GetOutput {
    /// One statement (`statementId`, `voidedStatementId`) or a StatementResult `{"statements", "more"}`.
    result: Value,
    consistent_through: String,
}

fn allowed(cx: &CallContext) -> Result<(), LearningError> {
    let p = &cx.principal;
    if is_staff(p) || p.has_role(XAPI_ROLE) {
        Ok(())
    } else {
        Err(LearningError::Forbidden(
            "forbidden: the xAPI statement resource is for teachers, administrators and LRS clients (role `xapi`); \
             learners record activity with track_learning_progress"
                .into(),
        ))
    }
}

/// An xAPI refusal as a tool error the route maps back to its status.
fn xapi_error(e: XapiError) -> ToolError {
    match e {
        XapiError::NotFound(m) => ToolError::NotFound { kind: "statement", name: m },
        other => LearningError::from(other).into(),
    }
}

/// Store statements and record what they say about the tenant's learners.
async fn store(svc: &Service, cx: &CallContext, statements: Vec<Statement>) -> Result<Vec<String>, ToolError> {
    let t = tenant(cx);
    let home = svc.home(t);
    let catalog = svc.catalog(t).await?;
    let course = catalog.as_ref().map(|c| &c.course);
    let bank = catalog.as_ref().and_then(|c| c.bank.as_ref());
    let events: Vec<_> = statements.iter().filter_map(|s| activity::event_of(s, &home, course, bank)).collect();
    let authority = activity::learner_agent(&home, &cx.principal.subject);
    match svc.record(t, statements, &events, &authority).await {
        Ok((ids, _)) => Ok(ids),
        Err(LearningError::Xapi(x)) => Err(xapi_error(x)),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn post(svc: Arc<Service>, cx: CallContext, a: PostArgs) -> Result<PostOutput, ToolError> {
    allowed(&cx)?;
    let body = serde_json::to_vec(&a.statements).map_err(ToolError::internal)?;
    let statements = parse_statements(&body).map_err(xapi_error)?;
    let statement_ids = store(&svc, &cx, statements).await?;
    Ok(PostOutput { statement_ids, consistent_through: consistent_through() })
}

pub(super) async fn put(svc: Arc<Service>, cx: CallContext, a: PutArgs) -> Result<PutOutput, ToolError> {
    allowed(&cx)?;
    let id = a.statement_id.trim().to_ascii_lowercase();
    let standard = id.len() == 36 && uuid::Uuid::try_parse(&id).is_ok();
    if !standard {
        return Err(xapi_error(XapiError::invalid("statementId", "must be a UUID in standard string form")));
    }
    let Value::Object(mut m) = a.statement else {
        return Err(xapi_error(XapiError::invalid("body", "must be a statement object")));
    };
    match m.get("id") {
        Some(Value::String(given)) if given.to_ascii_lowercase() != id => {
            return Err(xapi_error(XapiError::invalid("statement.id", "does not match the statementId parameter")));
        }
        Some(_) => {}
        None => {
            m.insert("id".into(), Value::String(id.clone()));
        }
    }
    let statement = Statement::from_value(&Value::Object(m)).map_err(xapi_error)?;
    store(&svc, &cx, vec![statement]).await?;
    Ok(PutOutput { statement_id: id, consistent_through: consistent_through() })
}

pub(super) async fn get(svc: Arc<Service>, cx: CallContext, a: GetArgs) -> Result<GetOutput, ToolError> {
    allowed(&cx)?;
    let params: Vec<(String, String)> = a.params.into_iter().map(|p| (p.name, p.value)).collect();
    let query = StatementQuery::parse(&params).map_err(xapi_error)?;
    let result = svc.xapi().get(tenant(&cx), &query).await.map_err(xapi_error)?;
    Ok(GetOutput { result: result.to_json(), consistent_through: consistent_through() })
}

// ------------------------------------------------------------------ routes

/// An answer with the xAPI headers.
fn answer(status: u16, body: Option<&Value>, through: Option<String>) -> RestResponse {
    let r = match body {
        Some(b) => RestResponse::json(status, b),
        None => RestResponse::empty(status),
    };
    let r = r.with_header(VERSION_HEADER, XAPI_VERSION);
    match through {
        Some(t) => r.with_header(CONSISTENT_THROUGH_HEADER, t),
        None => r,
    }
}

fn refusal(status: u16, message: &str) -> RestResponse {
    answer(status, Some(&json!({"error": {"status": status, "message": message}})), None)
}

/// The request's version header, checked.
fn version_ok(req: &RestRequest) -> Result<(), RestResponse> {
    check_version(req.header(&VERSION_HEADER.to_ascii_lowercase())).map_err(|e| refusal(400, &e.to_string()))
}

/// A tool's failure in xAPI terms.
fn error_answer(e: &ToolError) -> RestResponse {
    match e {
        ToolError::InvalidArguments(m) | ToolError::InvalidRequest(m) => refusal(400, m),
        ToolError::NotFound { kind: "statement", name } => refusal(404, name),
        // The pipeline refused the tool itself.
        ToolError::NotFound { .. } => refusal(403, "this operation is not available to you"),
        ToolError::Failed(m) => refusal(403, m),
        ToolError::Conflict(m) => refusal(409, m),
        ToolError::Unauthenticated { .. } => refusal(401, "authentication required"),
        ToolError::InsufficientScope(m) => refusal(403, &format!("insufficient scope: {m}")),
        ToolError::RateLimited { retry_after } => {
            refusal(429, &e.to_string()).with_header("retry-after", retry_after.as_secs().max(1).to_string())
        }
        ToolError::Timeout(_) => refusal(504, &e.to_string()),
        ToolError::TenantUnavailable(_) | ToolError::Unavailable { .. } => refusal(503, &e.to_string()),
        _ => refusal(500, "internal error"),
    }
}

fn structured(out: &ToolOutput) -> Option<&Value> {
    if out.is_error { None } else { out.structured.as_ref() }
}

fn through_of(v: &Value) -> Option<String> {
    v.get("consistentThrough").and_then(Value::as_str).map(str::to_owned)
}

/// A body as a statement JSON, with the specification's strictness
/// (a property given twice is refused, which serde_json alone would not).
fn statement_body(req: &RestRequest, single: bool) -> Result<Value, RestResponse> {
    parse_statements(&req.body).map_err(|e| refusal(400, &e.to_string()))?;
    let v: Value = serde_json::from_slice(&req.body).map_err(|e| refusal(400, &format!("body: invalid json: {e}")))?;
    if single && !v.is_object() {
        return Err(refusal(400, "body: must be one statement object"));
    }
    Ok(v)
}

/// The three routes, each over its tool.
pub(super) fn routes() -> Vec<RouteSpec> {
    let post = RouteSpec {
        method: RouteMethod::Post,
        path: STATEMENTS_PATH.into(),
        tool: "xapi_post_statements".into(),
        args: Arc::new(|req: &RestRequest| {
            version_ok(req)?;
            if let Some((name, _)) = req.query.first() {
                return Err(refusal(
                    400,
                    &format!("{name}: parameter not supported on POST (the alternate request syntax is not supported)"),
                ));
            }
            Ok(json!({"statements": statement_body(req, false)?}))
        }),
        reply: Arc::new(|_req: &RestRequest, out| match out {
            Ok(o) => match structured(&o) {
                Some(v) => answer(200, Some(&v["statementIds"]), through_of(v)),
                None => refusal(500, "the tool gave no answer"),
            },
            Err(e) => error_answer(&e),
        }),
        module: NAME,
    };
    let put = RouteSpec {
        method: RouteMethod::Put,
        path: STATEMENTS_PATH.into(),
        tool: "xapi_put_statement".into(),
        args: Arc::new(|req: &RestRequest| {
            version_ok(req)?;
            let mut id = None;
            for (name, value) in &req.query {
                match name.as_str() {
                    "statementId" if id.is_none() => id = Some(value.clone()),
                    "statementId" => return Err(refusal(400, "statementId: given more than once")),
                    other => return Err(refusal(400, &format!("{other}: parameter not supported on PUT"))),
                }
            }
            let id = id.ok_or_else(|| refusal(400, "statementId: is required"))?;
            Ok(json!({"statementId": id, "statement": statement_body(req, true)?}))
        }),
        reply: Arc::new(|_req: &RestRequest, out| match out {
            Ok(o) => match structured(&o) {
                Some(v) => answer(204, None, through_of(v)),
                None => refusal(500, "the tool gave no answer"),
            },
            Err(e) => error_answer(&e),
        }),
        module: NAME,
    };
    let get = RouteSpec {
        method: RouteMethod::Get,
        path: STATEMENTS_PATH.into(),
        tool: "xapi_get_statements".into(),
        args: Arc::new(|req: &RestRequest| {
            version_ok(req)?;
            let params: Vec<Value> = req.query.iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
            Ok(json!({"params": params}))
        }),
        reply: Arc::new(|_req: &RestRequest, out| match out {
            Ok(o) => match structured(&o) {
                Some(v) => answer(200, Some(&v["result"]), through_of(v)),
                None => refusal(500, "the tool gave no answer"),
            },
            Err(e) => error_answer(&e),
        }),
        module: NAME,
    };
    vec![post, put, get]
}
