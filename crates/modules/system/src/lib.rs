//! The `system` module: tools every Plexus server has, whatever else it hosts.
//!
//! - `echo(text)`: returns its argument; the trivial tool the protocol
//!   benchmarks call on every server they compare.
//! - `whoami()`: the caller's principal, tenant, roles and protocol era, as
//!   the pipeline established them.
//! - `query_audit_log(...)`: audit records of the caller's own tenant, newest
//!   first (when the server gives the module an audit reader). Who may call
//!   it is the policy's business: grant it to an `auditor` role.

use std::sync::Arc;

use plexus_core::context::Era;
use plexus_core::ports::{AuditQuery, AuditReader};
use plexus_core::{CallContext, Module, ToolDef, ToolError, ToolOutput, ToolSpec, Toolbox};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The module's name.
pub const NAME: &str = "system";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoArgs {
    /// Text to return unchanged.
    text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// Who the server thinks the caller is.
#[derive(Debug, Serialize, JsonSchema)]
struct Identity {
    subject: String,
    tenant: String,
    roles: Vec<String>,
    scopes: Vec<String>,
    /// Groups (from a token's groups claim).
    groups: Vec<String>,
    /// How the caller authenticated: `api_key`, `jwt`, `local` or `anonymous`.
    method: String,
    /// `2025-11-25` (sessions) or `2026-07-28` (stateless).
    era: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AuditQueryArgs {
    /// First time included, RFC 3339 (e.g. 2026-11-01T00:00:00Z).
    from: Option<String>,
    /// First time excluded, RFC 3339.
    to: Option<String>,
    /// Only calls by this principal.
    principal: Option<String>,
    /// Only calls of this tool, prompt or resource.
    target: Option<String>,
    /// Only this outcome: ok, denied, tool_error, invalid_arguments, ...
    outcome: Option<String>,
    /// Most records returned, newest first (1 to 1000, default 100).
    limit: Option<u32>,
}

/// One audit record as an auditor sees it.
#[derive(Debug, Serialize, JsonSchema)]
struct AuditEntry {
    seq: u64,
    time: String,
    request_id: String,
    principal: String,
    operation: String,
    target: String,
    outcome: String,
    latency_us: u64,
    args_digest: String,
    hash: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct AuditPage {
    records: Vec<AuditEntry>,
}

fn check_time(field: &str, v: &Option<String>) -> Result<(), ToolError> {
    match v {
        Some(t) if time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_err() => {
            Err(ToolError::InvalidArguments(format!("`{field}` must be an RFC 3339 time such as 2026-11-01T00:00:00Z")))
        }
        _ => Ok(()),
    }
}

/// The system module.
pub struct System {
    tools: Toolbox,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System").finish_non_exhaustive()
    }
}

impl Default for System {
    fn default() -> Self {
        let tools = Toolbox::new(NAME)
            .typed_args(
                ToolDef::new("echo", "Return the given text unchanged").title("Echo").read_only().idempotent(),
                |_cx: CallContext, a: EchoArgs| async move { Ok(ToolOutput::text(a.text)) },
            )
            .typed(
                ToolDef::new("whoami", "Show the caller's identity, tenant and roles as the server sees them")
                    .title("Who am I")
                    .read_only()
                    .idempotent(),
                |cx: CallContext, _: NoArgs| async move {
                    let p = &cx.principal;
                    Ok(Identity {
                        subject: p.subject.clone(),
                        tenant: p.tenant.to_string(),
                        roles: p.roles.clone(),
                        scopes: p.scopes.clone(),
                        groups: p.groups.clone(),
                        method: p.method.to_owned(),
                        era: match cx.era {
                            Era::Legacy => "2025-11-25",
                            Era::Stateless => "2026-07-28",
                        }
                        .to_owned(),
                    })
                },
            );
        Self { tools }
    }
}

/// The module, ready to register.
pub fn module() -> Arc<dyn Module> {
    Arc::new(System::default())
}

impl System {
    /// Add `query_audit_log`, reading from `reader`.
    pub fn with_audit(mut self, reader: Arc<dyn AuditReader>) -> Self {
        self.tools = self.tools.typed(
            ToolDef::new(
                "query_audit_log",
                "Read the audit log of your own tenant: who called what, when, with which outcome (newest first)",
            )
            .title("Query the audit log")
            .read_only()
            .idempotent(),
            move |cx: CallContext, a: AuditQueryArgs| {
                let reader = Arc::clone(&reader);
                async move {
                    check_time("from", &a.from)?;
                    check_time("to", &a.to)?;
                    let limit = a.limit.unwrap_or(100);
                    if !(1..=1000).contains(&limit) {
                        return Err(ToolError::InvalidArguments("`limit` must be between 1 and 1000".into()));
                    }
                    let q = AuditQuery {
                        tenant: cx.tenant().to_string(),
                        from: a.from,
                        to: a.to,
                        principal: a.principal,
                        target: a.target,
                        outcome: a.outcome,
                        limit: limit as usize,
                    };
                    let records = reader.query(&q).await.map_err(|e| ToolError::unavailable(e.to_string()))?;
                    Ok(AuditPage {
                        records: records
                            .into_iter()
                            .map(|r| AuditEntry {
                                seq: r.seq,
                                time: r.time,
                                request_id: r.request_id,
                                principal: r.principal,
                                operation: r.operation,
                                target: r.target,
                                outcome: r.outcome,
                                latency_us: r.latency_us,
                                args_digest: r.args_digest,
                                hash: r.hash,
                            })
                            .collect(),
                    })
                }
            },
        );
        self
    }
}

#[async_trait::async_trait]
impl Module for System {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tools(&self) -> Vec<ToolSpec> {
        self.tools.specs()
    }

    async fn call(&self, cx: &CallContext, tool: &str, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        self.tools.call(cx, tool, args).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn echo_returns_text_and_rejects_extra_fields() {
        let m = System::default();
        let cx = CallContext::detached("t");
        let out = m.call(&cx, "echo", json!({"text": "こんにちは"})).await.unwrap();
        assert_eq!(out.content[0].as_text(), Some("こんにちは"));
        let err = m.call(&cx, "echo", json!({"text": "a", "x": 1})).await.unwrap_err();
        assert!(err.to_string().contains("unknown field `x`"), "{err}");
        let spec = m.tools().into_iter().find(|t| t.name == "echo").unwrap();
        assert_eq!(spec.input_schema["additionalProperties"], json!(false));
    }

    #[tokio::test]
    async fn whoami_reports_the_principal() {
        let m = System::default();
        let cx = CallContext::detached("t");
        let out = m.call(&cx, "whoami", json!({})).await.unwrap();
        let v = out.structured.unwrap();
        assert_eq!(v["subject"], "unauthenticated");
        assert_eq!(v["era"], "2026-07-28");
    }
}
