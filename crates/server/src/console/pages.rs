//! The console's pages. maud escapes every splice; nothing a user, a tool
//! or a document wrote is ever emitted as markup.

use std::collections::BTreeSet;
use std::time::Duration;

use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::Failure;
use super::chart;
use super::i18n::Lang;
use super::session::Session;
use crate::metrics::Gauges;
use plexus_core::telemetry::TargetSeries;

/// What every page shows around its content.
pub(crate) struct Frame {
    pub(crate) subject: String,
    pub(crate) tenant: String,
    pub(crate) roles: Vec<String>,
    pub(crate) csrf: String,
    /// The tools the user may call.
    pub(crate) tools: BTreeSet<String>,
    /// Open incidents (for the banner).
    pub(crate) incidents: Vec<Value>,
}

impl Frame {
    /// A frame when the user's tools could not be listed.
    pub(crate) fn bare(s: &Session) -> Self {
        Self {
            subject: s.subject.clone(),
            tenant: s.tenant.clone(),
            roles: s.roles.clone(),
            csrf: s.csrf.clone(),
            tools: BTreeSet::new(),
            incidents: Vec::new(),
        }
    }
}

/// The server's own figures.
pub(crate) struct Figures {
    pub(crate) gauges: Gauges,
    pub(crate) series: Vec<TargetSeries>,
    /// When they were read, seconds since the Unix epoch.
    pub(crate) now_unix: u64,
}

/// The new-incident form (kept when it is refused, so nothing typed is lost).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NewIncident {
    #[serde(default)]
    pub(crate) csrf: String,
    #[serde(default)]
    pub(crate) severity: String,
    #[serde(default)]
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) teams: String,
    #[serde(default)]
    pub(crate) note: String,
}

pub(crate) fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// Whether an open incident raises the red banner: SEV1 (critical) and SEV2 (high).
pub(crate) fn alarming(incident: &Value) -> bool {
    matches!(s(incident, "severity"), "sev1" | "sev2") && s(incident, "status") != "resolved"
}

pub(crate) fn page(lang: Lang, title: &str, current: &str, frame: Option<&Frame>, body: Markup) -> Markup {
    let t = lang.text();
    let other = if lang == Lang::En { "ja" } else { "en" };
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Plexus " (t.console) }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body data-page=(current) {
                div id="banner" data-live=[frame.map(|_| "banner")] {
                    @if let Some(f) = frame { (banner(lang, &f.incidents)) }
                }
                header {
                    nav {
                        span class="brand" { "Plexus " (t.console) }
                        @if let Some(f) = frame {
                            a href="/console/overview" aria-current=[(current == "overview").then_some("page")] { (t.nav_overview) }
                            a href="/console/incidents" aria-current=[(current == "incidents").then_some("page")] { (t.nav_incidents) }
                            a href="/console/flags" aria-current=[(current == "flags").then_some("page")] { (t.nav_flags) }
                            a href="/console/config" aria-current=[(current == "config").then_some("page")] { (t.nav_config) }
                            a href="/console/audit" aria-current=[(current == "audit").then_some("page")] { (t.nav_audit) }
                            a href="/console/tenants" aria-current=[(current == "tenants").then_some("page")] { (t.nav_tenants) }
                            @for (module, tool) in super::modules::PAGES {
                                @if f.tools.contains(tool) {
                                    a href={ "/console/modules/" (module) } aria-current=[(current.strip_prefix("modules/") == Some(module)).then_some("page")] {
                                        (module_title(lang, module))
                                    }
                                }
                            }
                        }
                        span class="spacer" {}
                        a href={ "/console/lang/" (other) "?back=/console/" (current) } lang=(other) { (t.other_language) }
                        @if let Some(f) = frame {
                            span class="who" data-testid="who" { (t.signed_in_as) " " (f.subject) " @ " (f.tenant) " (" (f.roles.join(", ")) ")" }
                            form method="post" action="/console/logout" class="inline" {
                                input type="hidden" name="csrf" value=(f.csrf);
                                button type="submit" { (t.sign_out) }
                            }
                            span class="live" id="live" hidden { "● " (t.live) }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn module_title(lang: Lang, module: &str) -> &'static str {
    let t = lang.text();
    match module {
        "knowledge" => t.module_knowledge,
        "health" => t.module_health,
        "trading" => t.module_trading,
        _ => t.module_learning,
    }
}

/// The red banner: one line per open SEV1/SEV2 incident (empty when none).
pub(crate) fn banner(lang: Lang, incidents: &[Value]) -> Markup {
    let t = lang.text();
    html! {
        @for i in incidents.iter().filter(|i| alarming(i)) {
            div class="alert-banner" role="alert" data-testid="incident-banner" {
                strong { (t.banner_open) " " (s(i, "severity").to_uppercase()) " " (s(i, "id")) }
                " " span class="incident-title" { (s(i, "title")) }
                " — " (s(i, "status"))
                " " a href="/console/incidents" { "→" }
            }
        }
    }
}

pub(crate) fn login(lang: Lang, message: Option<&str>, next: &str, oidc: Option<&str>) -> Markup {
    let t = lang.text();
    page(
        lang,
        t.sign_in,
        "login",
        None,
        html! {
            section class="card narrow" {
                h1 { (t.sign_in) }
                p { (t.sign_in_intro) }
                @if let Some(m) = message { p class="error" role="alert" data-testid="login-error" { (m) } }
                @if let Some(provider) = oidc {
                    p { a class="button" href={ "/console/oidc/start?next=" (super::ops::enc(next)) } data-testid="oidc-sign-in" { (t.sign_in_with) " " (provider) } }
                    p class="muted" { (t.or_api_key) }
                }
                form method="post" action="/console/login" {
                    input type="hidden" name="next" value=(next);
                    label for="key" { (t.api_key) }
                    input id="key" name="key" type="password" autocomplete="current-password" required autofocus;
                    button type="submit" { (t.sign_in) }
                }
            }
        },
    )
}

fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

fn ms(us: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let v = us as f64 / 1000.0;
    if v < 10.0 { format!("{v:.2}") } else { format!("{v:.1}") }
}

/// Merge minutes into (calls, errors, p50, p95, p99 of the worst minute).
fn hour(series: &TargetSeries) -> (u64, u64, u64, u64, u64) {
    let worst = |f: fn(&plexus_core::telemetry::MinutePoint) -> u64| series.minutes.iter().map(f).max().unwrap_or(0);
    (series.calls(), series.errors(), worst(|m| m.p50_us), worst(|m| m.p95_us), worst(|m| m.p99_us))
}

/// Calls per second over the last 60 s: the current minute so far plus the
/// part of the previous minute still inside the window (calls spread evenly).
fn last_minute_rate(all: &TargetSeries, now_unix: u64) -> f64 {
    let n = all.minutes.len();
    let (Some(cur), Some(prev)) = (all.minutes.get(n.wrapping_sub(1)), all.minutes.get(n.wrapping_sub(2))) else {
        return 0.0;
    };
    #[allow(clippy::cast_precision_loss)]
    let into = now_unix.saturating_sub(cur.start_unix).min(60) as f64;
    #[allow(clippy::cast_precision_loss)]
    let calls = cur.calls as f64 + prev.calls as f64 * (60.0 - into) / 60.0;
    calls / 60.0
}

/// The live figures (refreshed by the page every few seconds).
pub(crate) fn figures(lang: Lang, f: &Figures) -> Markup {
    let t = lang.text();
    let all = f.series.first();
    let (calls, errors) = all.map_or((0, 0), |s| (s.calls(), s.errors()));
    #[allow(clippy::cast_precision_loss)]
    let error_rate = if calls == 0 { 0.0 } else { errors as f64 / calls as f64 * 100.0 };
    let rate = all.map_or(0.0, |s| last_minute_rate(s, f.now_unix));
    html! {
        div class="figures" data-testid="figures" {
            div class="figure" { span class="label" { (t.uptime) } span class="value" data-testid="uptime" { (duration(f.gauges.uptime)) } }
            div class="figure" { span class="label" { (t.request_rate) } span class="value" data-testid="request-rate" { (format!("{rate:.2}")) } }
            div class="figure" { span class="label" { (t.error_rate) } span class="value" data-testid="error-rate" { (format!("{error_rate:.1} %")) } }
            div class="figure" { span class="label" { (t.calls_last_hour) } span class="value" data-testid="calls-hour" { (calls) } }
            div class="figure" { span class="label" { (t.in_flight) } span class="value" { (f.gauges.in_flight) } }
            div class="figure" { span class="label" { (t.audit_queue) } span class="value" data-testid="audit-queue" {
                @match f.gauges.audit_queue_depth { Some(d) => (d), None => "—" }
            } }
        }
        @if let Some(all) = all.filter(|s| s.calls() > 0) {
            h2 { (t.latency_all) }
            (chart::latency(all, t.latency_all, t.minutes_ago, t.now))
            h2 { (t.latency_per_tool) }
            table class="tools" data-testid="tool-table" {
                thead { tr { th { (t.tool) } th { (t.calls) } th { (t.errors) } th { "p50 ms" } th { "p95 ms" } th { "p99 ms" } th {} } }
                tbody {
                    @for series in f.series.iter().skip(1).take(12) {
                        @let (calls, errors, p50, p95, p99) = hour(series);
                        tr {
                            td class="mono" { (series.target) }
                            td { (calls) } td { (errors) }
                            td { (ms(p50)) } td { (ms(p95)) } td { (ms(p99)) }
                            td class="spark" { (chart::latency(series, &series.target, t.minutes_ago, t.now)) }
                        }
                    }
                }
            }
        } @else {
            p class="muted" { (t.no_calls) }
        }
    }
}

pub(crate) fn overview(lang: Lang, frame: &Frame, figures_now: Option<&Figures>, ops: Option<&Value>) -> Markup {
    let t = lang.text();
    let body = html! {
        h1 { (t.nav_overview) }
        section class="card" {
            @if let Some(f) = figures_now {
                div id="figures" data-live="figures" { (figures(lang, f)) }
            } @else {
                p class="muted" { (t.figures_operators) }
            }
        }
        div class="columns" {
            section class="card" {
                h2 { (t.active_alerts) }
                @match ops.and_then(|o| o["active_alerts"].as_array()) {
                    Some(alerts) if !alerts.is_empty() => ul { @for a in alerts {
                        li { strong { (s(a, "severity")) } " " (s(a, "rule")) " — " (s(a, "condition")) }
                    } },
                    Some(_) => p class="muted" { (t.no_alerts) },
                    None => p class="muted" { (t.not_permitted) },
                }
            }
            section class="card" {
                h2 { (t.open_incidents) }
                @if !frame.tools.contains("list_incidents") {
                    p class="muted" { (t.not_permitted) }
                } @else {
                    div id="open-incidents" data-testid="open-incidents" { (open_incidents(lang, &frame.incidents)) }
                }
            }
        }
    };
    page(lang, t.nav_overview, "overview", Some(frame), body)
}

/// The overview's list of open incidents (refreshed live).
pub(crate) fn open_incidents(lang: Lang, incidents: &[Value]) -> Markup {
    html! {
        @if incidents.is_empty() {
            p class="muted" { (lang.text().no_incidents) }
        } @else {
            ul { @for i in incidents {
                li { span class={ "sev " (s(i, "severity")) } { (s(i, "severity").to_uppercase()) } " "
                     (s(i, "id")) " " span class="incident-title" { (s(i, "title")) } " — " (s(i, "status")) }
            } }
        }
    }
}

pub(crate) fn failure(lang: Lang, e: &Failure) -> Markup {
    let t = lang.text();
    let text = match e {
        Failure::NotPermitted => t.not_permitted.to_owned(),
        Failure::SignedOut => t.session_expired.to_owned(),
        Failure::Refused(m) => m.clone(),
    };
    html! { p class="error" role="alert" data-testid="form-error" { (t.refused) ": " (text) } }
}

const SEVERITIES: [(&str, &str); 4] =
    [("sev1", "SEV1 critical"), ("sev2", "SEV2 high"), ("sev3", "SEV3 medium"), ("sev4", "SEV4 low")];
const STATUSES: [&str; 4] = ["investigating", "identified", "monitoring", "resolved"];

/// The list of incidents with their timelines and update forms.
pub(crate) fn incident_list(
    lang: Lang,
    tools: &BTreeSet<String>,
    csrf: &str,
    list: &Result<Vec<Value>, Failure>,
) -> Markup {
    let t = lang.text();
    let may_update = tools.contains("update_incident");
    html! {
        @match list {
            Err(e) => (failure(lang, e)),
            Ok(list) if list.is_empty() => p class="muted" { (t.no_incidents) },
            Ok(list) => @for i in list.iter().rev() {
                article class="incident" data-testid="incident" data-id=(s(i, "id")) {
                    h3 {
                        span class={ "sev " (s(i, "severity")) } { (s(i, "severity").to_uppercase()) } " "
                        (s(i, "id")) " " span class="incident-title" { (s(i, "title")) }
                    }
                    p class="meta" {
                        (t.status) ": " strong data-testid="incident-status" { (s(i, "status")) }
                        " · " (t.opened) " " (s(i, "createdAt")) " · " (t.updated_at) " " (s(i, "updatedAt"))
                        " · " (i["teams"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default())
                    }
                    details {
                        summary { (t.timeline) }
                        ol class="timeline" {
                            @for e in i["timeline"].as_array().map(Vec::as_slice).unwrap_or_default() {
                                li { span class="mono" { (s(e, "at")) } " " strong { (s(e, "status")) } " " (s(e, "author")) ": " (s(e, "note")) }
                            }
                        }
                    }
                    @if may_update && s(i, "status") != "resolved" {
                        form method="post" action={ "/console/incidents/" (s(i, "id")) } class="row" {
                            input type="hidden" name="csrf" value=(csrf);
                            select name="status" aria-label=(t.status) {
                                option value="" { "—" }
                                @for st in STATUSES { option value=(st) { (st) } }
                            }
                            input name="note" placeholder=(t.note) aria-label=(t.note);
                            button type="submit" { (t.update) }
                        }
                    }
                }
            },
        }
    }
}

pub(crate) fn incidents(
    lang: Lang,
    frame: &Frame,
    list: &Result<Vec<Value>, Failure>,
    error: Option<&Failure>,
    form: &NewIncident,
) -> Markup {
    let t = lang.text();
    let body = html! {
        h1 { (t.incidents_title) }
        @if let Some(e) = error { (failure(lang, e)) }
        @if frame.tools.contains("create_incident") {
            section class="card" {
                h2 { (t.new_incident) }
                form method="post" action="/console/incidents" class="grid" data-testid="new-incident" {
                    input type="hidden" name="csrf" value=(frame.csrf);
                    label for="severity" { (t.severity) }
                    select id="severity" name="severity" {
                        @for (v, label) in SEVERITIES { option value=(v) selected[form.severity == v] { (label) } }
                    }
                    label for="title" { (t.title) }
                    input id="title" name="title" value=(form.title) required maxlength="200";
                    label for="teams" { (t.teams) }
                    input id="teams" name="teams" value=(form.teams) required;
                    label for="note" { (t.note) }
                    textarea id="note" name="note" { (form.note) }
                    span {}
                    button type="submit" { (t.create) }
                }
            }
        }
        section class="card" {
            @if frame.tools.contains("list_incidents") {
                div id="incident-list" data-live="incidents" { (incident_list(lang, &frame.tools, &frame.csrf, list)) }
            } @else {
                p class="muted" { (t.not_permitted) }
            }
        }
    };
    page(lang, t.incidents_title, "incidents", Some(frame), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&";

    #[test]
    fn hostile_titles_and_names_are_escaped_everywhere() {
        let incident = json!({"id": "INC-0001", "severity": "sev1", "status": "investigating", "title": HOSTILE,
            "teams": [HOSTILE], "createdAt": "t", "updatedAt": "t",
            "timeline": [{"at": "t", "author": HOSTILE, "status": "investigating", "note": HOSTILE}]});
        let frame = Frame {
            subject: HOSTILE.into(),
            tenant: HOSTILE.into(),
            roles: vec![HOSTILE.into()],
            csrf: "c".into(),
            tools: ["list_incidents", "create_incident", "update_incident"].map(String::from).into(),
            incidents: vec![incident.clone()],
        };
        let form = NewIncident {
            title: HOSTILE.into(),
            teams: HOSTILE.into(),
            note: HOSTILE.into(),
            ..NewIncident::default()
        };
        let refused = Failure::Refused(HOSTILE.into());
        for markup in [
            incidents(Lang::En, &frame, &Ok(vec![incident.clone()]), Some(&refused), &form),
            overview(
                Lang::Ja,
                &frame,
                None,
                Some(&json!({"active_alerts": [{"rule": HOSTILE, "severity": HOSTILE, "condition": HOSTILE}]})),
            ),
            banner(Lang::En, std::slice::from_ref(&incident)),
            login(Lang::En, Some(HOSTILE), HOSTILE, Some(HOSTILE)),
        ] {
            let out = markup.into_string();
            assert!(!out.contains("<script>alert") && !out.contains("<img src=x"), "{out}");
            assert!(out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{out}");
        }
    }

    #[test]
    fn the_banner_shows_open_sev1_and_sev2_only() {
        let i = |sev: &str, status: &str| json!({"id": "INC-1", "severity": sev, "status": status, "title": "t"});
        let shown = |v: Value| banner(Lang::En, &[v]).into_string().contains("incident-banner");
        assert!(shown(i("sev1", "investigating")) && shown(i("sev2", "monitoring")));
        assert!(!shown(i("sev3", "investigating")) && !shown(i("sev1", "resolved")));
    }

    #[test]
    fn forms_carry_the_csrf_token_and_pages_load_only_their_own_files() {
        let frame = Frame {
            subject: "a".into(),
            tenant: "t".into(),
            roles: vec!["admin".into()],
            csrf: "TOKEN123".into(),
            tools: ["list_incidents", "create_incident", "update_incident"].map(String::from).into(),
            incidents: vec![],
        };
        let incident =
            json!({"id": "INC-0002", "severity": "sev3", "status": "investigating", "title": "x", "timeline": []});
        let out = incidents(Lang::En, &frame, &Ok(vec![incident]), None, &NewIncident::default()).into_string();
        assert_eq!(out.matches("name=\"csrf\" value=\"TOKEN123\"").count(), 3, "sign-out, create, update: {out}");
        assert!(!out.contains("http://") && !out.contains("https://"), "no outside resources: {out}");
        assert!(!out.contains("<script>"), "no inline script");
        let viewer = Frame { tools: ["list_incidents"].map(String::from).into(), ..frame };
        let out = incidents(Lang::En, &viewer, &Ok(vec![]), None, &NewIncident::default()).into_string();
        assert!(!out.contains("data-testid=\"new-incident\""), "a viewer gets no form");
    }
}
