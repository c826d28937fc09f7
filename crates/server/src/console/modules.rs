//! One console page per module, each over that module's own read-only
//! tools (and, for knowledge, its sync): knowledge sources and their sync
//! state, the FHIR store's counts (no patient data), the trading desk's
//! books and the user's positions, and a learning cohort's mastery.

use axum::extract::{Form, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::i18n::Lang;
use super::pages::{failure, page, s as field};
use super::{Failure, NoSession, St, client_addr, csrf_ok, csrf_refused, html, no_session, redirect};

/// The modules with a page: (path, the tool that backs it, title key).
pub(crate) const PAGES: [(&str, &str); 4] = [
    ("knowledge", "list_knowledge_sources"),
    ("health", "get_fhir_store_summary"),
    ("trading", "list_portfolios"),
    ("learning", "analyze_learning_data"),
];

/// A number as people read it: whole numbers plain, others to at most 8
/// decimals without trailing zeros (crypto quantities are small), never `-0`.
fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{:.0}", x + 0.0),
        Some(x) => {
            let text = format!("{x:.8}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            if text == "-0" { "0".into() } else { text.to_owned() }
        }
        None => "—".into(),
    }
}

fn pct(v: &Value) -> String {
    v.as_f64().map_or_else(|| "—".into(), |x| format!("{:.1} %", x * 100.0))
}

pub(super) async fn knowledge(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/modules/knowledge", false);
    let addr = client_addr(&ext);
    let frame = frame!(c, s, addr, "/console/modules/knowledge");
    let lang = Lang::of(&headers);
    let t = lang.text();
    let sources = c.call(&s, addr, "list_knowledge_sources", json!({})).await;
    let body = html! {
        h1 { (t.module_knowledge) }
        section class="card" {
            @match &sources {
                Err(e) => (failure(lang, e)),
                Ok(v) => {
                    table class="tools" data-testid="sources" {
                        thead { tr { th { (t.name) } th { (t.kind) } th { (t.last_sync) } th { (t.outcome) } } }
                        tbody { @for src in v["sources"].as_array().map(Vec::as_slice).unwrap_or_default() {
                            @let o = &src["lastOutcome"];
                            tr data-source=(field(src, "name")) {
                                td class="mono" { (field(src, "name")) }
                                td { (field(src, "kind")) @if src["live"].as_bool() == Some(true) { " (" (t.live_search) ")" } }
                                td class="mono" { @if let Some(at) = src["lastSync"].as_str() { (at) } @else { span class="muted" { (t.never) } } }
                                td data-testid="sync-outcome" {
                                    @if let Some(e) = o["error"].as_str() { span class="error" { (e) } }
                                    @else if o["report"].is_object() {
                                        (t.indexed) " " (o["report"]["indexed"]) ", " (t.unchanged) " " (o["report"]["unchanged"])
                                        ", " (t.deleted) " " (o["report"]["deleted"]) ", " (t.skipped) " " (o["report"]["skipped"])
                                    }
                                }
                            }
                        } }
                    }
                }
            }
            @if frame.tools.contains("sync_knowledge") {
                form method="post" action="/console/modules/knowledge/sync" data-testid="sync" {
                    input type="hidden" name="csrf" value=(frame.csrf);
                    button type="submit" { (t.sync_now) }
                }
            }
        }
    };
    html(StatusCode::OK, page(lang, t.module_knowledge, "modules/knowledge", Some(&frame), body))
}

pub(super) async fn knowledge_sync(
    State(c): St,
    headers: HeaderMap,
    ext: Extensions,
    Form(f): Form<super::CsrfForm>,
) -> Response {
    let s = session!(c, headers, "/console/modules/knowledge", false);
    if !csrf_ok(&s, &headers, &f.csrf) {
        return csrf_refused();
    }
    let addr = client_addr(&ext);
    match c.call(&s, addr, "sync_knowledge", json!({})).await {
        Ok(_) => redirect("/console/modules/knowledge"),
        Err(Failure::SignedOut) => no_session(NoSession::Expired, "/console/modules/knowledge", false),
        Err(e) => {
            let frame = frame!(c, s, addr, "/console/modules/knowledge");
            let lang = Lang::of(&headers);
            html(
                e.status(),
                page(lang, lang.text().module_knowledge, "modules/knowledge", Some(&frame), failure(lang, &e)),
            )
        }
    }
}

pub(super) async fn health(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/modules/health", false);
    let addr = client_addr(&ext);
    let frame = frame!(c, s, addr, "/console/modules/health");
    let lang = Lang::of(&headers);
    let t = lang.text();
    let summary = c.call(&s, addr, "get_fhir_store_summary", json!({})).await;
    let body = html! {
        h1 { (t.module_health) }
        section class="card" {
            p class="muted" { (t.no_phi) }
            @match &summary {
                Err(e) => (failure(lang, e)),
                Ok(v) => {
                    table class="tools" data-testid="fhir-counts" {
                        thead { tr { th { (t.resource_type) } th { (t.stored) } } }
                        tbody {
                            @for (kind, n) in v["resources"].as_object().into_iter().flatten() {
                                tr data-kind=(kind) { td class="mono" { (kind) } td { (num(n)) } }
                            }
                            tr { th { (t.total) } th data-testid="fhir-total" { (num(&v["total"])) } }
                        }
                    }
                    p { (t.fhir_servers) ": "
                        @let servers = v["servers"].as_array().map(Vec::as_slice).unwrap_or_default();
                        @if servers.is_empty() { span class="muted" { "—" } }
                        @for (i, srv) in servers.iter().enumerate() { @if i > 0 { ", " } span class="mono" { (srv.as_str().unwrap_or("")) } }
                    }
                }
            }
        }
    };
    html(StatusCode::OK, page(lang, t.module_health, "modules/health", Some(&frame), body))
}

fn book(lang: Lang, m: &Value) -> Markup {
    let t = lang.text();
    let bids = m["orderbook"]["bids"].as_array().map(Vec::as_slice).unwrap_or_default();
    let asks = m["orderbook"]["asks"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows = bids.len().max(asks.len());
    html! {
        table class="tools book" data-testid="book" data-symbol=(field(m, "symbol")) {
            thead { tr { th { (t.bid_qty) } th { (t.bid) } th { (t.ask) } th { (t.ask_qty) } } }
            tbody { @for i in 0..rows {
                tr {
                    td { @if let Some(b) = bids.get(i) { (num(&b["quantity"])) } }
                    td class="bid" { @if let Some(b) = bids.get(i) { (num(&b["price"])) } }
                    td class="ask" { @if let Some(a) = asks.get(i) { (num(&a["price"])) } }
                    td { @if let Some(a) = asks.get(i) { (num(&a["quantity"])) } }
                }
            } }
        }
    }
}

pub(super) async fn trading(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/modules/trading", false);
    let addr = client_addr(&ext);
    let frame = frame!(c, s, addr, "/console/modules/trading");
    let lang = Lang::of(&headers);
    let t = lang.text();
    let overview = c.call(&s, addr, "list_portfolios", json!({})).await;
    let symbols: Vec<String> = overview
        .as_ref()
        .ok()
        .and_then(|v| v["symbols"].as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let market = if symbols.is_empty() {
        None
    } else {
        Some(
            c.call(&s, addr, "get_market_data", json!({"symbols": symbols, "dataTypes": ["quotes", "orderbook"]}))
                .await,
        )
    };
    let mut positions = Vec::new();
    for p in overview.as_ref().ok().and_then(|v| v["portfolios"].as_array()).map(Vec::as_slice).unwrap_or_default() {
        let name = p.as_str().unwrap_or("").to_owned();
        let r = c.call(&s, addr, "get_portfolio_positions", json!({"portfolioId": name})).await;
        positions.push((name, r));
    }
    let body = html! {
        h1 { (t.module_trading) }
        @if let Err(e) = &overview { (failure(lang, e)) }
        @if let Some(Ok(m)) = &market {
            section class="card" {
                h2 { (t.order_books) }
                p class="muted" { (field(m, "source")) }
                div class="columns" {
                    @for entry in m["symbols"].as_array().map(Vec::as_slice).unwrap_or_default().iter().filter(|e| e["venue"] == "internal") {
                        div {
                            h3 class="mono" { (field(entry, "symbol")) }
                            (book(lang, entry))
                        }
                    }
                }
            }
        }
        @if let Some(Err(e)) = &market { (failure(lang, e)) }
        section class="card" {
            h2 { (t.positions) }
            @if positions.is_empty() { p class="muted" { (t.no_portfolios) } }
            @for (name, r) in &positions {
                h3 class="mono" { (name) }
                @match r {
                    Err(e) => (failure(lang, e)),
                    Ok(v) => table class="tools" data-testid="positions" data-portfolio=(name) {
                        thead { tr { th { (t.symbol) } th { (t.quantity) } th { (t.average_price) } th { (t.mark) } th { (t.unrealized) } th { (t.realized) } } }
                        tbody { @for p in v["positions"].as_array().map(Vec::as_slice).unwrap_or_default() {
                            tr { td class="mono" { (field(p, "symbol")) } td { (num(&p["quantity"])) } td { (num(&p["averagePrice"])) }
                                 td { (num(&p["markPrice"])) } td { (num(&p["unrealizedPnl"])) } td { (num(&p["realizedPnl"])) } }
                        } }
                    },
                }
            }
        }
    };
    html(StatusCode::OK, page(lang, t.module_trading, "modules/trading", Some(&frame), body))
}

pub(super) async fn learning(State(c): St, headers: HeaderMap, ext: Extensions) -> Response {
    let s = session!(c, headers, "/console/modules/learning", false);
    let addr = client_addr(&ext);
    let frame = frame!(c, s, addr, "/console/modules/learning");
    let lang = Lang::of(&headers);
    let t = lang.text();
    let cohort = c.call(&s, addr, "analyze_learning_data", json!({"scope": "cohort"})).await;
    let body = html! {
        h1 { (t.module_learning) }
        section class="card" {
            @match &cohort {
                Err(e) => (failure(lang, e)),
                Ok(v) => {
                    p { (t.learners) ": " strong data-testid="learners" { (v["learners"]) } " · " (t.answers) ": " (v["answers"])
                        " · " (t.accuracy) ": " (pct(&v["accuracy"])) }
                    table class="tools" data-testid="mastery" {
                        thead { tr { th { (t.skill) } th { (t.learners) } th { (t.mean_mastery) } th { (t.mastered) } th {} } }
                        tbody { @for m in v["mastery"].as_array().map(Vec::as_slice).unwrap_or_default() {
                            @let share = m["shareMastered"].as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
                            tr data-skill=(field(m, "skill")) {
                                td { (m["name"].as_str().unwrap_or_else(|| field(m, "skill"))) }
                                td { (m["learners"]) } td { (num(&m["mean"])) } td { (pct(&m["shareMastered"])) }
                                td { svg class="bar" viewBox="0 0 100 8" role="img" aria-label=(pct(&m["shareMastered"])) {
                                    rect class="track" x="0" y="0" width="100" height="8" {}
                                    rect class="fill" x="0" y="0" width=(format!("{:.1}", share * 100.0)) height="8" {}
                                } }
                            }
                        } }
                    }
                }
            }
        }
    };
    html(StatusCode::OK, page(lang, t.module_learning, "modules/learning", Some(&frame), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        let n = |x: f64| num(&json!(x));
        assert_eq!(
            [n(3000.0), n(230.03), n(0.0001), n(-0.0), n(94_999.984_375), n(-1.5e-9)],
            ["3000", "230.03", "0.0001", "0", "94999.984375", "0"]
        );
        assert_eq!(num(&Value::Null), "—");
    }
}
