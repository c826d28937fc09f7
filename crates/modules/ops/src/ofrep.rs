//! Evaluations in the OpenFeature Remote Evaluation Protocol's shapes
//! (`../shared/data/ofrep/openapi.yaml`, v0.3.0): the body of
//! `POST /ofrep/v1/evaluate/flags/{key}` and of the bulk evaluation. The
//! MCP tool `evaluate_feature_flag` answers the same shape, so an assistant
//! and an OpenFeature SDK see one truth.
//!
//! Mapping from Unleash: a feature without variant payloads is a boolean
//! flag (`value` = enabled, `variant` = `on`/`off`, or the variant's name
//! when the feature has variants); a variant with a payload gives the
//! payload, typed (`string` and `csv` as strings, `number` as a number,
//! `json` as the parsed value). Reasons: see [`crate::flags::Reason`]. The OpenFeature
//! `targetingKey` is Unleash's `userId`.

use serde_json::{Map, Value, json};

use crate::flags::{Context, Engine, Evaluation};

/// An evaluation request that cannot be evaluated (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    /// `PARSE_ERROR`, `INVALID_CONTEXT` or `TARGETING_KEY_MISSING`.
    pub code: &'static str,
    pub details: String,
}

/// Reads an OFREP request body (`{"context": {...}}`) into an evaluation
/// context. A missing `targetingKey` is allowed (flags that do not target
/// users still evaluate); a non-string one is not.
pub fn parse_request(body: &[u8]) -> Result<Context, BadRequest> {
    context_from_map(&request_context(body)?)
}

/// The `context` object of an OFREP request body, as sent.
pub fn request_context(body: &[u8]) -> Result<Map<String, Value>, BadRequest> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| BadRequest { code: "PARSE_ERROR", details: format!("the body is not JSON: {e}") })?;
    match v {
        Value::Object(mut m) => match m.remove("context") {
            Some(Value::Object(ctx)) => Ok(ctx),
            Some(_) => Err(invalid("`context` must be an object")),
            None => Err(invalid("the body must have a `context` object")),
        },
        _ => Err(invalid("the body must be an object with a `context`")),
    }
}

fn invalid(details: &str) -> BadRequest {
    BadRequest { code: "INVALID_CONTEXT", details: details.to_owned() }
}

/// An evaluation context from OpenFeature's JSON context: `targetingKey`
/// (or `userId`), `sessionId`, `remoteAddress`, `environment`, `appName`,
/// `currentTime`; everything else is a custom property (numbers and
/// booleans as their text).
pub fn context_from_map(m: &Map<String, Value>) -> Result<Context, BadRequest> {
    let mut ctx = Context::default();
    for (k, v) in m {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            _ if k == "targetingKey" => {
                return Err(BadRequest {
                    code: "INVALID_CONTEXT",
                    details: "`targetingKey` must be a string".to_owned(),
                });
            }
            // Nested attributes cannot be targeted by Unleash constraints.
            _ => continue,
        };
        match k.as_str() {
            "targetingKey" | "userId" => ctx.user_id = Some(text),
            "sessionId" => ctx.session_id = Some(text),
            "remoteAddress" => ctx.remote_address = Some(text),
            "environment" => ctx.environment = Some(text),
            "appName" => ctx.app_name = Some(text),
            "currentTime" => ctx.current_time = Some(text),
            _ => {
                ctx.properties.insert(k.clone(), text);
            }
        }
    }
    Ok(ctx)
}

/// The OFREP success body for `key` (`evaluationSuccess`), or `None` when
/// no such flag exists.
pub fn evaluate(engine: &Engine, key: &str, ctx: &Context) -> Option<Value> {
    engine.evaluate_full(key, ctx).map(|e| success(key, &e))
}

/// The OFREP `flagNotFound` body.
pub fn not_found(key: &str) -> Value {
    json!({"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": format!("flag `{key}` was not found")})
}

/// Every flag, evaluated (sorted by key).
pub fn evaluate_all(engine: &Engine, ctx: &Context) -> Vec<Value> {
    let mut names: Vec<&str> = engine.feature_names().collect();
    names.sort_unstable();
    names.into_iter().filter_map(|k| evaluate(engine, k, ctx)).collect()
}

fn success(key: &str, e: &Evaluation) -> Value {
    let payload = e.variant.payload.as_ref().filter(|_| e.enabled && e.variant.enabled);
    let (value, variant) = match payload {
        Some(p) => (typed(&p.kind, &p.value), e.variant.name.clone()),
        None if e.variant.enabled => (Value::Bool(e.enabled), e.variant.name.clone()),
        None => (Value::Bool(e.enabled), if e.enabled { "on" } else { "off" }.to_owned()),
    };
    json!({"key": key, "value": value, "reason": e.reason.as_str(), "variant": variant})
}

fn typed(kind: &str, text: &str) -> Value {
    match kind {
        "number" => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.trim().parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(text.to_owned())),
        "json" => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
        _ => Value::String(text.to_owned()),
    }
}
