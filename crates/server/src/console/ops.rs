//! The console's pages over the ops hub's shared registry and the audit
//! log: feature flags (toggle with confirmation, rollout, an evaluation
//! tester), the config registry (documents, versions, diffs, rollback) and
//! the audit log (search, CSV export). Each reads and changes through the
//! ops and system tools, as the signed-in user.

use std::fmt::Write as _;

use axum::extract::{Form, Path, Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::i18n::Lang;
use super::pages::{Frame, failure, page, s as field};
use super::{Console, Failure, NoSession, St, client_addr, csrf_ok, csrf_refused, html, no_session, redirect};

/// The flags document of the ops hub.
const FLAGS: &str = "config/feature-flags.json";

/// A query-string value, percent-encoded (everything but unreserved characters).
pub(super) fn enc(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn list(v: &Value) -> String {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

// ------------------------------------------------------------------ flags

/// A flag change: `on`, `off` (confirmed on a second page) or `rollout`.
#[derive(Debug, Deserialize)]
pub(super) struct FlagChange {
    csrf: String,
    version: u64,
    action: String,
    #[serde(default)]
    rollout: String,
    #[serde(default)]
    confirmed: String,
}

/// The flag tester's form.
#[derive(Debug, Default, Deserialize)]
pub(super) struct FlagTest {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    flag: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    environment: String,
}

fn flags_table(lang: Lang, frame: &Frame, doc: &Result<Value, Failure>) -> Markup {
    let t = lang.text();
    let may_change = frame.tools.contains("update_shared_config");
    html! {
        @match doc {
            Err(e) => (failure(lang, e)),
            Ok(doc) => {
                @let version = doc["version"].as_u64().unwrap_or(0);
                @let value = &doc["value"];
                @if value.get("features").is_some() {
                    p class="muted" { (t.flags_unleash) }
                    ul { @for f in value["features"].as_array().map(Vec::as_slice).unwrap_or_default() {
                        li class="mono" { (field(f, "name")) " — " (if f["enabled"].as_bool() == Some(true) { t.on } else { t.off }) }
                    } }
                } @else if value.as_object().is_none_or(serde_json::Map::is_empty) {
                    p class="muted" { (t.no_flags) }
                } @else {
                    p class="muted" { (FLAGS) " · " (t.version) " " (version) }
                    table class="tools" data-testid="flags" {
                        thead { tr { th { (t.flag) } th { (t.enabled) } th { (t.rollout) } th { (t.targeting) } th { (t.description) } } }
                        tbody {
                            @for (name, f) in value.as_object().into_iter().flatten() {
                                @let on = f["enabled"].as_bool() == Some(true);
                                tr data-flag=(name) {
                                    td class="mono" { (name) }
                                    td {
                                        span class={ "state " (if on { "on" } else { "off" }) } data-testid="flag-state" { (if on { t.on } else { t.off }) }
                                        @if may_change {
                                            form method="post" action={ "/console/flags/" (enc(name)) } class="inline" {
                                                input type="hidden" name="csrf" value=(frame.csrf);
                                                input type="hidden" name="version" value=(version);
                                                input type="hidden" name="action" value=(if on { "off" } else { "on" });
                                                button type="submit" data-testid="flag-toggle" { (if on { t.turn_off } else { t.turn_on }) }
                                            }
                                        }
                                    }
                                    td {
                                        @let rollout = f["rollout"].as_u64().unwrap_or(100);
                                        @if may_change {
                                            form method="post" action={ "/console/flags/" (enc(name)) } class="inline" {
                                                input type="hidden" name="csrf" value=(frame.csrf);
                                                input type="hidden" name="version" value=(version);
                                                input type="hidden" name="action" value="rollout";
                                                input type="number" name="rollout" min="0" max="100" value=(rollout) aria-label=(t.rollout) class="short";
                                                button type="submit" { (t.save) }
                                            }
                                        } @else { (rollout) " %" }
                                    }
                                    td {
                                        @let targets = [("teams", list(&f["teams"])), ("users", list(&f["users"])), ("environments", list(&f["environments"]))];
                                        @if targets.iter().all(|(_, v)| v.is_empty()) { span class="muted" { (t.everyone) } }
                                        @for (k, v) in targets.iter().filter(|(_, v)| !v.is_empty()) { div { span class="muted" { (k) ": " } (v) } }
                                    }
                                    td { (field(f, "description")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn flags_page(
    lang: Lang,
    frame: &Frame,
    doc: &Result<Value, Failure>,
    error: Option<&Failure>,
    tested: Option<(&FlagTest, &Result<Value, Failure>)>,
) -> Markup {
    let t = lang.text();
    let names: Vec<String> = doc
        .as_ref()
        .ok()
        .and_then(|d| d["value"].as_object())
        .map(|m| m.keys().filter(|k| *k != "features").cloned().collect())
        .unwrap_or_default();
    let form = tested.map(|(f, _)| f);
    let body = html! {
        h1 { (t.flags_title) }
        @if let Some(e) = error { (failure(lang, e)) }
        section class="card" {
            div id="flag-table" data-live="flags" { (flags_table(lang, frame, doc)) }
        }
        @if frame.tools.contains("evaluate_feature_flag") {
            section class="card" {
                h2 { (t.tester) }
                form method="post" action="/console/flags-test" class="grid" data-testid="flag-tester" {
                    input type="hidden" name="csrf" value=(frame.csrf);
                    label for="t-flag" { (t.flag) }
                    select id="t-flag" name="flag" {
                        @for n in &names { option value=(n) selected[form.is_some_and(|f| &f.flag == n)] { (n) } }
                    }
                    label for="t-user" { (t.user_id) }
                    input id="t-user" name="user_id" value=(form.map_or("", |f| f.user_id.as_str()));
                    label for="t-team" { (t.team) }
                    input id="t-team" name="team" value=(form.map_or("", |f| f.team.as_str()));
                    label for="t-env" { (t.environment) }
                    input id="t-env" name="environment" value=(form.map_or("", |f| f.environment.as_str()));
                    span {}
                    button type="submit" { (t.evaluate) }
                }
                @if let Some((_, result)) = tested {
                    @match result {
                        Ok(r) => dl class="result" data-testid="flag-result" {
                            dt { (t.value) } dd data-testid="flag-value" { (r["value"].to_string()) }
                            dt { (t.reason) } dd data-testid="flag-reason" { (field(r, "reason")) }
                            dt { (t.variant) } dd { (field(r, "variant")) }
                        },
                        Err(e) => (failure(lang, e)),
                    }
                }
            }
        }
    };
    page(lang, t.flags_title, "flags", Some(frame), body)
}

async fn flags_doc(c: &Console, s: &super::Session, addr: Option<std::net::SocketAddr>) -> Result<Value, Failure> {
    c.call(s, addr, "get_shared_config", json!({"name": FLAGS})).await
}

pub(super) async fn flags(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/flags", false);
    let addr = client_addr(&ext);
    let frame = frame!(c, s, addr, "/console/flags");
    let doc = flags_doc(&c, &s, addr).await;
    html(StatusCode::OK, flags_page(Lang::of(&headers), &frame, &doc, None, None))
}

pub(super) async fn flags_fragment(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/flags", true);
    let addr = client_addr(&ext);
    let Ok(frame) = c.frame(&s, addr).await else {
        return (StatusCode::UNAUTHORIZED, "sign in again").into_response();
    };
    let doc = flags_doc(&c, &s, addr).await;
    html(StatusCode::OK, flags_table(Lang::of(&headers), &frame, &doc))
}

fn confirm_page(lang: Lang, frame: &Frame, flag: &str, f: &FlagChange) -> Markup {
    let t = lang.text();
    let body = html! {
        section class="card narrow" data-testid="confirm" {
            h1 { (t.confirm_title) }
            p { span class="mono" { (flag) } ": " (if f.action == "on" { t.confirm_toggle_on } else { t.confirm_toggle_off }) }
            form method="post" action={ "/console/flags/" (enc(flag)) } {
                input type="hidden" name="csrf" value=(frame.csrf);
                input type="hidden" name="version" value=(f.version);
                input type="hidden" name="action" value=(f.action);
                input type="hidden" name="confirmed" value="yes";
                button type="submit" data-testid="confirm-button" { (t.confirm) " — " (if f.action == "on" { t.turn_on } else { t.turn_off }) }
                " " a href="/console/flags" { (t.cancel) }
            }
        }
    };
    page(lang, t.confirm_title, "flags", Some(frame), body)
}

pub(super) async fn change_flag(
    State(c): St,
    headers: HeaderMap,
    ext: Extensions,
    Path(flag): Path<String>,
    Form(f): Form<FlagChange>,
) -> Response {
    let s = session!(c, headers, "/console/flags", false);
    if !csrf_ok(&s, &headers, &f.csrf) {
        return csrf_refused();
    }
    let addr = client_addr(&ext);
    let lang = Lang::of(&headers);
    if matches!(f.action.as_str(), "on" | "off") && f.confirmed != "yes" {
        let frame = frame!(c, s, addr, "/console/flags");
        return html(StatusCode::OK, confirm_page(lang, &frame, &flag, &f));
    }
    let outcome = async {
        let doc = flags_doc(&c, &s, addr).await?;
        let mut value = doc["value"].clone();
        if doc["version"].as_u64() != Some(f.version) {
            return Err(Failure::Refused(format!(
                "{FLAGS} changed meanwhile (version {} is live, the page showed {}): look again and retry",
                doc["version"], f.version
            )));
        }
        let entry = value
            .get_mut(&flag)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| Failure::Refused(format!("no flag `{flag}` in {FLAGS}")))?;
        match f.action.as_str() {
            "on" => entry.insert("enabled".into(), json!(true)),
            "off" => entry.insert("enabled".into(), json!(false)),
            "rollout" => match f.rollout.trim().parse::<u8>() {
                Ok(r) if r <= 100 => entry.insert("rollout".into(), json!(r)),
                _ => {
                    return Err(Failure::Refused(format!(
                        "rollout must be a whole number from 0 to 100, not `{}`",
                        f.rollout
                    )));
                }
            },
            other => return Err(Failure::Refused(format!("unknown action `{other}`"))),
        };
        c.call(&s, addr, "update_shared_config", json!({"name": FLAGS, "content": value, "expectedVersion": f.version}))
            .await
    }
    .await;
    match outcome {
        Ok(_) => redirect("/console/flags"),
        Err(Failure::SignedOut) => no_session(NoSession::Expired, "/console/flags", false),
        Err(e) => {
            let frame = frame!(c, s, addr, "/console/flags");
            let doc = flags_doc(&c, &s, addr).await;
            html(e.status(), flags_page(lang, &frame, &doc, Some(&e), None))
        }
    }
}

pub(super) async fn test_flag(State(c): St, headers: HeaderMap, ext: Extensions, Form(f): Form<FlagTest>) -> Response {
    let s = session!(c, headers, "/console/flags", false);
    if !csrf_ok(&s, &headers, &f.csrf) {
        return csrf_refused();
    }
    let addr = client_addr(&ext);
    let frame = frame!(c, s, addr, "/console/flags");
    let mut context = serde_json::Map::new();
    for (k, v) in [("userId", &f.user_id), ("team", &f.team), ("environment", &f.environment)] {
        if !v.trim().is_empty() {
            context.insert(k.into(), json!(v.trim()));
        }
    }
    let result = c.call(&s, addr, "evaluate_feature_flag", json!({"flag": f.flag, "context": context})).await;
    let doc = flags_doc(&c, &s, addr).await;
    html(StatusCode::OK, flags_page(Lang::of(&headers), &frame, &doc, None, Some((&f, &result))))
}

// ----------------------------------------------------------------- config

/// The shared documents and any refused edits (the config page's live part).
fn config_list(lang: Lang, docs: &Result<Value, Failure>) -> Markup {
    let t = lang.text();
    html! {
        @match docs {
            Err(e) => (failure(lang, e)),
            Ok(v) => {
                @let documents = v["documents"].as_array().map(Vec::as_slice).unwrap_or_default();
                @if documents.is_empty() { p class="muted" { (t.no_documents) } }
                @else {
                    table class="tools" data-testid="documents" {
                        thead { tr { th { (t.document) } th { (t.version) } th { (t.format) } th { (t.updated_at) } th { (t.author) } } }
                        tbody { @for d in documents {
                            tr data-document=(field(d, "name")) {
                                td class="mono" { a href={ "/console/config/view?name=" (enc(field(d, "name"))) } { (field(d, "name")) } }
                                td data-testid="document-version" { (d["version"]) } td { (field(d, "format")) }
                                td class="mono" { (field(d, "updatedAt")) } td { (field(d, "author")) }
                            }
                        } }
                    }
                }
                @let problems = v["problems"].as_array().map(Vec::as_slice).unwrap_or_default();
                @if !problems.is_empty() {
                    h2 { (t.problems) }
                    ul data-testid="problems" { @for p in problems {
                        li { span class="mono" { (field(p, "name")) } ": " (list(&p["errors"])) }
                    } }
                }
            }
        }
    }
}

pub(super) async fn config(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/config", false);
    let addr = client_addr(&ext);
    let frame = frame!(c, s, addr, "/console/config");
    let lang = Lang::of(&headers);
    let t = lang.text();
    let docs = c.call(&s, addr, "list_shared_configs", json!({})).await;
    let body = html! {
        h1 { (t.config_title) }
        section class="card" id="config-list" { (config_list(lang, &docs)) }
    };
    html(StatusCode::OK, page(lang, t.config_title, "config", Some(&frame), body))
}

pub(super) async fn config_fragment(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/config", true);
    let addr = client_addr(&ext);
    let docs = c.call(&s, addr, "list_shared_configs", json!({})).await;
    html(StatusCode::OK, config_list(Lang::of(&headers), &docs))
}

#[derive(Debug, Deserialize)]
pub(super) struct DocQuery {
    name: String,
}

/// A unified diff, each line marked added, removed or context.
fn diff(text: &str) -> Markup {
    html! {
        pre class="diff" { @for line in text.lines() {
            @let class = if line.starts_with("+++") || line.starts_with("---") { "meta" }
                else if line.starts_with('+') { "add" } else if line.starts_with('-') { "del" }
                else if line.starts_with("@@") { "meta" } else { "ctx" };
            span class=(class) { (line) } "\n"
        } }
    }
}

fn config_doc_page(
    lang: Lang,
    frame: &Frame,
    name: &str,
    doc: &Result<Value, Failure>,
    history: &Result<Value, Failure>,
    error: Option<&Failure>,
) -> Markup {
    let t = lang.text();
    let body = html! {
        h1 class="mono" { (name) }
        @if let Some(e) = error { (failure(lang, e)) }
        div id="config-doc" data-name=(name) { (config_doc(lang, frame, name, doc, history)) }
    };
    page(lang, t.config_title, "config", Some(frame), body)
}

/// A document's live content and its versions with diffs and rollback
/// buttons (the document page's live part).
fn config_doc(
    lang: Lang,
    frame: &Frame,
    name: &str,
    doc: &Result<Value, Failure>,
    history: &Result<Value, Failure>,
) -> Markup {
    let t = lang.text();
    let may_roll_back = frame.tools.contains("rollback_shared_config");
    let live = doc.as_ref().ok().and_then(|d| d["version"].as_u64());
    html! {
        section class="card" {
            h2 { (t.content) @if let Some(v) = live { " · " (t.version) " " span data-testid="live-version" { (v) } } }
            @match doc {
                Ok(d) => pre class="content" data-testid="content" { (field(d, "content")) },
                Err(e) => (failure(lang, e)),
            }
        }
        section class="card" {
            h2 { (t.history) }
            @match history {
                Err(e) => (failure(lang, e)),
                Ok(h) => @for v in h["versions"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    @let version = v["version"].as_u64().unwrap_or(0);
                    article class="version" data-testid="version" data-version=(version) {
                        h3 {
                            (t.version) " " (version)
                            @if Some(version) == live { " " span class="state on" { (t.live_version) } }
                        }
                        p class="meta" { (field(v, "time")) " · " (field(v, "author")) " · " (t.source) ": " (field(v, "source")) }
                        @if let Some(d) = v["diff"].as_str() { (diff(d)) }
                        @if may_roll_back && Some(version) != live && v["deleted"].as_bool() != Some(true) {
                            form method="post" action="/console/config/rollback" {
                                input type="hidden" name="csrf" value=(frame.csrf);
                                input type="hidden" name="name" value=(name);
                                input type="hidden" name="version" value=(version);
                                button type="submit" data-testid="rollback" { (t.roll_back) " (" (version) ")" }
                            }
                        }
                    }
                },
            }
        }
    }
}

pub(super) async fn config_view(
    State(c): St,
    headers: HeaderMap,
    ext: Extensions,
    Query(q): Query<DocQuery>,
) -> Response {
    let back = format!("/console/config/view?name={}", enc(&q.name));
    let s = session!(c, headers, &enc(&back), false);
    let addr = client_addr(&ext);
    let frame = frame!(c, s, addr, &enc(&back));
    let (doc, history) = doc_and_history(&c, &s, addr, &q.name).await;
    html(StatusCode::OK, config_doc_page(Lang::of(&headers), &frame, &q.name, &doc, &history, None))
}

async fn doc_and_history(
    c: &Console,
    s: &super::Session,
    addr: Option<std::net::SocketAddr>,
    name: &str,
) -> (Result<Value, Failure>, Result<Value, Failure>) {
    let doc = c.call(s, addr, "get_shared_config", json!({"name": name})).await;
    let history = c.call(s, addr, "get_shared_config_history", json!({"name": name, "limit": 50})).await;
    (doc, history)
}

pub(super) async fn config_doc_fragment(
    State(c): St,
    headers: HeaderMap,
    ext: Extensions,
    Query(q): Query<DocQuery>,
) -> Response {
    let s = session!(c, headers, "/console/config", true);
    let addr = client_addr(&ext);
    let Ok(frame) = c.frame(&s, addr).await else {
        return (StatusCode::UNAUTHORIZED, "sign in again").into_response();
    };
    let (doc, history) = doc_and_history(&c, &s, addr, &q.name).await;
    html(StatusCode::OK, config_doc(Lang::of(&headers), &frame, &q.name, &doc, &history))
}

#[derive(Debug, Deserialize)]
pub(super) struct Rollback {
    csrf: String,
    name: String,
    version: u64,
}

pub(super) async fn config_rollback(
    State(c): St,
    headers: HeaderMap,
    ext: Extensions,
    Form(f): Form<Rollback>,
) -> Response {
    let s = session!(c, headers, "/console/config", false);
    if !csrf_ok(&s, &headers, &f.csrf) {
        return csrf_refused();
    }
    let addr = client_addr(&ext);
    match c.call(&s, addr, "rollback_shared_config", json!({"name": f.name, "version": f.version})).await {
        Ok(_) => redirect(&format!("/console/config/view?name={}", enc(&f.name))),
        Err(Failure::SignedOut) => no_session(NoSession::Expired, "/console/config", false),
        Err(e) => {
            let frame = frame!(c, s, addr, "/console/config");
            let (doc, history) = doc_and_history(&c, &s, addr, &f.name).await;
            html(e.status(), config_doc_page(Lang::of(&headers), &frame, &f.name, &doc, &history, Some(&e)))
        }
    }
}

// ------------------------------------------------------------------ audit

/// The platform administrators' audit search.
const ALL_TENANTS: &str = "query_audit_log_all_tenants";

#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditQuery {
    /// Platform administrators only (`query_audit_log_all_tenants`).
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    principal: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    outcome: String,
    /// `datetime-local` (taken as UTC) or RFC 3339.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// A `datetime-local` value (`2026-11-22T07:30`) as RFC 3339 UTC; RFC 3339 as is.
fn instant(v: &str) -> Option<String> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    let with_seconds = if v.len() == 16 { format!("{v}:00") } else { v.to_owned() };
    let zoned =
        with_seconds.ends_with('Z') || with_seconds[with_seconds.len().saturating_sub(6)..].contains(['+', '-']);
    Some(if zoned { with_seconds } else { format!("{with_seconds}Z") })
}

fn today() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

pub(super) async fn audit(State(c): St, headers: HeaderMap, ext: Extensions, Query(q): Query<AuditQuery>) -> Response {
    let s = session!(c, headers, "/console/audit", false);
    let addr = client_addr(&ext);
    let frame = frame!(c, s, addr, "/console/audit");
    let lang = Lang::of(&headers);
    let t = lang.text();
    // Platform administrators search every tenant; everyone else their own.
    let all_tenants = frame.tools.contains(ALL_TENANTS);
    let mut args = json!({"limit": 200});
    let filters = [("tenant", &q.tenant), ("principal", &q.principal), ("target", &q.target), ("outcome", &q.outcome)];
    for (k, v) in filters.into_iter().skip(usize::from(!all_tenants)) {
        if !v.trim().is_empty() {
            args[k] = json!(v.trim());
        }
    }
    for (k, v) in [("from", &q.from), ("to", &q.to)] {
        if let Some(i) = instant(v) {
            args[k] = json!(i);
        }
    }
    let records = c.call(&s, addr, if all_tenants { ALL_TENANTS } else { "query_audit_log" }, args).await;
    let day = today();
    let body = html! {
        h1 { (t.audit_title) }
        section class="card" {
            p class="muted" { (if all_tenants { t.audit_scope_all } else { t.audit_scope }) }
            form method="get" action="/console/audit" class="row" data-testid="audit-search" {
                @if all_tenants {
                    input name="tenant" placeholder=(t.tenant) aria-label=(t.tenant) value=(q.tenant);
                }
                input name="principal" placeholder=(t.principal) aria-label=(t.principal) value=(q.principal);
                input name="target" placeholder=(t.tool) aria-label=(t.tool) value=(q.target);
                input name="outcome" placeholder=(t.outcome) aria-label=(t.outcome) value=(q.outcome);
                label { (t.from) " " input type="datetime-local" name="from" value=(q.from); }
                label { (t.to) " " input type="datetime-local" name="to" value=(q.to); }
                button type="submit" { (t.search) }
            }
            @match &records {
                Err(e) => (failure(lang, e)),
                Ok(v) => {
                    @let rows = v["records"].as_array().map(Vec::as_slice).unwrap_or_default();
                    @if rows.is_empty() { p class="muted" { (t.no_records) } }
                    @else {
                        table class="tools" data-testid="audit-records" {
                            thead { tr {
                                th { "#" } th { (t.time) } @if all_tenants { th { (t.tenant) } }
                                th { (t.principal) } th { "" } th { (t.tool) } th { (t.outcome) } th { "µs" }
                            } }
                            tbody { @for r in rows {
                                tr {
                                    td { (r["seq"]) } td class="mono" { (field(r, "time")) }
                                    @if all_tenants { td data-testid="audit-tenant" { (field(r, "tenant")) } }
                                    td { (field(r, "principal")) }
                                    td class="mono" { (field(r, "operation")) } td class="mono" { (field(r, "target")) }
                                    td { (field(r, "outcome")) } td { (r["latency_us"]) }
                                }
                            } }
                        }
                    }
                }
            }
        }
        @if frame.tools.contains("verify_audit_chain") {
            section class="card" {
                h2 { (t.verify_chain) }
                form method="post" action="/console/audit/verify" data-testid="audit-verify" {
                    input type="hidden" name="csrf" value=(frame.csrf);
                    button type="submit" { (t.verify_chain) }
                }
            }
        }
        @if frame.tools.contains("export_audit_logs") {
            section class="card" {
                h2 { (t.export_csv) }
                form method="post" action="/console/audit/export" class="row" data-testid="audit-export" {
                    input type="hidden" name="csrf" value=(frame.csrf);
                    span class="muted" { (t.export_range) }
                    input type="date" name="start" value=(day) aria-label=(t.from) required;
                    input type="date" name="end" value=(day) aria-label=(t.to) required;
                    button type="submit" { (t.export_csv) }
                }
            }
        }
    };
    html(StatusCode::OK, page(lang, t.audit_title, "audit", Some(&frame), body))
}

#[derive(Debug, Deserialize)]
pub(super) struct Export {
    csrf: String,
    start: String,
    end: String,
}

/// Export through `export_audit_logs` (the CSV lands in the shared
/// registry's `audit/`, as the ops hub keeps it) and hand it to the browser.
pub(super) async fn audit_export(State(c): St, headers: HeaderMap, ext: Extensions, Form(f): Form<Export>) -> Response {
    let s = session!(c, headers, "/console/audit", false);
    if !csrf_ok(&s, &headers, &f.csrf) {
        return csrf_refused();
    }
    let addr = client_addr(&ext);
    let outcome = async {
        let out = c.call(&s, addr, "export_audit_logs", json!({"startDate": f.start, "endDate": f.end})).await?;
        let name = s_owned(&out["uri"]).trim_start_matches("shared://").to_owned();
        let doc = c.call(&s, addr, "get_shared_config", json!({"name": name})).await?;
        Ok::<_, Failure>((name, s_owned(&doc["content"])))
    }
    .await;
    match outcome {
        Ok((name, csv)) => {
            let file = name.rsplit('/').next().unwrap_or("audit.csv").replace(['"', '\\', '\r', '\n'], "_");
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
                ],
                csv,
            )
                .into_response()
        }
        Err(Failure::SignedOut) => no_session(NoSession::Expired, "/console/audit", false),
        Err(e) => {
            let frame = frame!(c, s, addr, "/console/audit");
            let lang = Lang::of(&headers);
            html(e.status(), page(lang, lang.text().audit_title, "audit", Some(&frame), failure(lang, &e)))
        }
    }
}

pub(super) async fn audit_verify(
    State(c): St,
    headers: HeaderMap,
    ext: Extensions,
    Form(f): Form<super::CsrfForm>,
) -> Response {
    let s = session!(c, headers, "/console/audit", false);
    if !csrf_ok(&s, &headers, &f.csrf) {
        return csrf_refused();
    }
    let addr = client_addr(&ext);
    let result = c.call(&s, addr, "verify_audit_chain", json!({})).await;
    if matches!(result, Err(Failure::SignedOut)) {
        return no_session(NoSession::Expired, "/console/audit", false);
    }
    let frame = frame!(c, s, addr, "/console/audit");
    let lang = Lang::of(&headers);
    let t = lang.text();
    let body = html! {
        h1 { (t.verify_chain) }
        section class="card" {
            @match &result {
                Err(e) => (failure(lang, e)),
                Ok(v) => {
                    @if v["intact"].as_bool() == Some(true) {
                        p class="ok" data-testid="chain-result" { (t.chain_intact) }
                    } @else {
                        p class="error" data-testid="chain-result" { (t.chain_broken) }
                    }
                    table class="tools" {
                        thead { tr { th { (t.document) } th { (t.records) } th { (t.head) } th { (t.errors) } } }
                        tbody { @for ch in v["chains"].as_array().map(Vec::as_slice).unwrap_or_default() {
                            tr {
                                td class="mono" { (field(ch, "name")) }
                                td data-testid="chain-records" { (ch["records"]) }
                                td class="mono" { (field(ch, "head").get(..16).unwrap_or("")) "…" }
                                td { (list(&ch["errors"])) }
                            }
                        } }
                    }
                }
            }
            p { a href="/console/audit" { "← " (t.audit_title) } }
        }
    };
    let status = result.as_ref().err().map_or(StatusCode::OK, Failure::status);
    html(status, page(lang, t.verify_chain, "audit", Some(&frame), body))
}

// ---------------------------------------------------------------- tenants

fn rate(rate: &Value, burst: &Value, unlimited: &str) -> String {
    match rate.as_f64() {
        Some(r) => format!("{r} /s, {}", burst.as_u64().unwrap_or(0)),
        None => unlimited.to_owned(),
    }
}

pub(super) async fn tenants(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/tenants", false);
    let addr = client_addr(&ext);
    let frame = frame!(c, s, addr, "/console/tenants");
    let lang = Lang::of(&headers);
    let t = lang.text();
    let list = c.call(&s, addr, "list_tenants", json!({})).await;
    let body = html! {
        h1 { (t.tenants_title) }
        section class="card" {
            @match &list {
                Err(e) => (failure(lang, e)),
                Ok(v) => {
                    p class="muted" { (t.usage_since) }
                    table class="tools" data-testid="tenants" {
                        thead { tr {
                            th { (t.tenant) } th { (t.name) } th { (t.tier) } th { (t.active) }
                            th { (t.per_principal) } th { (t.per_tenant) }
                            th { (t.calls) } th { (t.errors) } th { (t.rate_limited) }
                        } }
                        tbody { @for x in v["tenants"].as_array().map(Vec::as_slice).unwrap_or_default() {
                            tr data-tenant=(field(x, "id")) {
                                td class="mono" { (field(x, "id")) } td { (field(x, "name")) } td { (field(x, "tier")) }
                                td { @if x["active"].as_bool() == Some(true) { "✓" } @else { span class="error" { (t.suspended) } } }
                                td { (rate(&x["quotas"]["principalPerSecond"], &x["quotas"]["principalBurst"], t.unlimited)) }
                                td { (rate(&x["quotas"]["tenantPerSecond"], &x["quotas"]["tenantBurst"], t.unlimited)) }
                                td data-testid="tenant-calls" { (x["usage"]["calls"]) }
                                td { (x["usage"]["errors"]) }
                                td { (x["usage"]["rateLimited"]) }
                            }
                        } }
                    }
                }
            }
        }
    };
    html(StatusCode::OK, page(lang, t.tenants_title, "tenants", Some(&frame), body))
}

fn s_owned(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(enc("config/feature-flags.json"), "config%2Ffeature-flags.json");
        assert_eq!(enc("a b&c=d<"), "a%20b%26c%3Dd%3C");
        assert_eq!(enc("障"), "%E9%9A%9C");
    }

    #[test]
    fn datetime_local_values_become_utc_instants() {
        assert_eq!(instant("2026-11-22T07:30").as_deref(), Some("2026-11-22T07:30:00Z"));
        assert_eq!(instant("2026-11-22T07:30:15+09:00").as_deref(), Some("2026-11-22T07:30:15+09:00"));
        assert_eq!(instant("2026-11-22T07:30:15Z").as_deref(), Some("2026-11-22T07:30:15Z"));
        assert_eq!(instant("  "), None);
    }

    #[test]
    fn diffs_mark_lines_and_escape_them() {
        let out = diff("--- a\n+++ b\n@@ -1 +1 @@\n-<old>\n+<script>\n same").into_string();
        assert!(out.contains("<span class=\"del\">-&lt;old&gt;</span>"), "{out}");
        assert!(out.contains("<span class=\"add\">+&lt;script&gt;</span>"), "{out}");
        assert!(out.contains("<span class=\"meta\">@@ -1 +1 @@</span>"));
    }
}
