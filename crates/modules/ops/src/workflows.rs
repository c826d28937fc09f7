//! Tools over the hub's other engines: experiments, incidents, compliance
//! checklists and security notices. Their documents (results, incidents,
//! postmortems) go through the shared registry, so they are versioned,
//! served as `shared://` resources and announced to subscribers.

use std::sync::Arc;

use plexus_core::{ToolDef, ToolError, Toolbox};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::compliance::{ComplianceStatus, parse_checklist, status};
use crate::experiments::{Event, ExperimentError, ExperimentResults, Recorded, render_markdown};
use crate::hub::{Hub, URI_PREFIX};
use crate::incidents::{self, Incident, IncidentError, NewIncident, Severity, Status, Update};
use crate::tools::author as who;

/// Where `get_experiment_results` writes every experiment's results.
pub(crate) const RESULTS_DOC: &str = "experiments/results.md";

fn experiment_error(e: ExperimentError) -> ToolError {
    match e {
        ExperimentError::Io { .. } | ExperimentError::Corrupt { .. } => {
            ToolError::Unavailable { message: "the experiment log could not be used".into(), source: Some(Box::new(e)) }
        }
        e => ToolError::Failed(e.to_string()),
    }
}

fn incident_error(e: IncidentError) -> ToolError {
    ToolError::Failed(e.to_string())
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Exposure,
    Conversion,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RecordArgs {
    /// The experiment's id (`[A-Za-z0-9_-]`, up to 64 characters).
    experiment: String,
    /// `exposure` when a unit saw a variant, `conversion` when it converted.
    kind: Kind,
    variant: String,
    /// The unit of randomization (a user or session id).
    unit: String,
    /// A value of the conversion (revenue, minutes), if any.
    #[serde(default)]
    value: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct RecordOut {
    /// `counted`, `duplicate` (this unit was already counted), or
    /// `contaminated` (the unit has seen another variant too).
    outcome: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ResultsArgs {
    /// The experiment's id.
    id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ResultsOut {
    #[serde(flatten)]
    results: ExperimentResults,
    /// Where every experiment's results were written.
    report: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateIncidentArgs {
    /// `sev1`..`sev4`, or `critical`, `high`, `medium`, `low`.
    severity: String,
    title: String,
    /// The systems affected.
    #[serde(default)]
    affected: Vec<String>,
    /// The teams to involve (at least one).
    teams: Vec<String>,
    /// A first note for the timeline.
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateIncidentArgs {
    /// The incident's id (`INC-0001`).
    id: String,
    /// The new status: `investigating`, `identified`, `monitoring` or
    /// `resolved`; omit to add a note only.
    #[serde(default)]
    status: Option<String>,
    note: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct IncidentOut {
    incident: Incident,
    /// The incident's document.
    uri: String,
    /// The postmortem draft written on resolution.
    postmortem: Option<String>,
    /// Webhook targets the change is being delivered to.
    notified: usize,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListIncidentsArgs {
    /// Only incidents not yet resolved.
    #[serde(default)]
    open: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
struct IncidentsOut {
    incidents: Vec<Incident>,
    /// Webhook deliveries since the server started.
    deliveries: Option<incidents::DeliveryStats>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ComplianceArgs {
    /// Only this team (and the tasks for all teams).
    #[serde(default)]
    team: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoArgs {}

/// A security advisory from `security/*.md`.
#[derive(Debug, Serialize, JsonSchema)]
struct Notice {
    uri: String,
    title: String,
    /// The `Status:` line (`open`, `mitigated`, `resolved`, ...), if any.
    status: Option<String>,
    /// The `Severity:` line, if any.
    severity: Option<String>,
    updated_at: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct NoticesOut {
    notices: Vec<Notice>,
}

/// `Key: value` from the first lines of a Markdown notice.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines().take(30).find_map(|l| {
        let (k, v) = l.trim().trim_start_matches(['-', '*', ' ']).split_once(':')?;
        (k.trim().trim_matches('*').eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('*').trim().to_owned())
    })
}

async fn store_incident(hub: &Hub, incident: &Incident) -> Result<(), ToolError> {
    hub.registry.put_generated(&incident.document_path(), &incident.to_json()).await.map_err(|e| {
        ToolError::Unavailable { message: "the incident could not be stored".into(), source: Some(Box::new(e)) }
    })?;
    Ok(())
}

/// Declare an incident: recorded, stored as its document, and sent to the
/// webhooks (in the background). Returns it and how many targets were told.
pub(crate) async fn open_incident(
    hub: &Hub,
    new: NewIncident,
    now: time::OffsetDateTime,
) -> Result<(Incident, usize), ToolError> {
    let mut book = hub.incidents.lock().await;
    let incident = book.create(new, now).map_err(incident_error)?.clone();
    store_incident(hub, &incident).await?;
    drop(book);
    let notified = hub.notifier.as_ref().map_or(0, |n| n.notify(&incidents::Event::created(&incident, now)).len());
    Ok((incident, notified))
}

pub(crate) fn workflow_tools(tb: Toolbox, hub: &Arc<Hub>) -> Toolbox {
    let h = |hub: &Arc<Hub>| Arc::clone(hub);
    let (h1, h2, h3, h4, h5, h6, h7) = (h(hub), h(hub), h(hub), h(hub), h(hub), h(hub), h(hub));
    tb.typed(
        ToolDef::new("record_experiment_event", "Record that a unit saw a variant of an experiment (exposure) or converted (conversion); each unit counts once per variant and kind")
            .title("Record an experiment event"),
        move |_cx, a: RecordArgs| {
            let hub = h1.clone();
            async move {
                let mut event = match a.kind {
                    Kind::Exposure => Event::exposure(a.variant, a.unit),
                    Kind::Conversion => Event::conversion(a.variant, a.unit),
                };
                if let Some(v) = a.value {
                    event = event.with_value(v);
                }
                let outcome = match hub.experiments.record(&a.experiment, event).await.map_err(experiment_error)? {
                    Recorded::Counted => "counted",
                    Recorded::Duplicate => "duplicate",
                    _ => "contaminated",
                };
                Ok(RecordOut { outcome: outcome.into() })
            }
        },
    )
    .typed(
        ToolDef::new(
            "get_experiment_results",
            "An experiment's results: conversion rates per variant, a two-proportion z-test (p-value, 95% interval of the difference), the Bayesian probability to beat control, a sample-ratio-mismatch check and a recommendation (\"no winner yet\" unless the data supports one); every experiment's results are written to experiments/results.md",
        )
        .title("Experiment results"),
        move |_cx, a: ResultsArgs| {
            let hub = h2.clone();
            async move {
                let results = hub.experiments.results(&a.id).map_err(experiment_error)?;
                let report = render_markdown(&hub.experiments.all_results());
                hub.registry.put_generated(RESULTS_DOC, &report).await.map_err(|e| ToolError::Unavailable {
                    message: "the results report could not be written".into(),
                    source: Some(Box::new(e)),
                })?;
                Ok(ResultsOut { results, report: format!("{URI_PREFIX}{RESULTS_DOC}") })
            }
        },
    )
    .typed(
        ToolDef::new("create_incident", "Declare an incident (status investigating); the configured Slack and webhook receivers are notified")
            .title("Declare an incident"),
        move |cx, a: CreateIncidentArgs| {
            let hub = h3.clone();
            async move {
                let severity: Severity = a.severity.parse().map_err(incident_error)?;
                let new = NewIncident {
                    severity,
                    title: a.title,
                    affected: a.affected,
                    teams: a.teams,
                    author: who(&cx),
                    note: a.note.unwrap_or_default(),
                };
                let (incident, notified) = open_incident(&hub, new, time::OffsetDateTime::now_utc()).await?;
                Ok(IncidentOut {
                    uri: format!("{URI_PREFIX}{}", incident.document_path()),
                    incident,
                    postmortem: None,
                    notified,
                })
            }
        },
    )
    .typed(
        ToolDef::new(
            "update_incident",
            "Move an incident through investigating, identified, monitoring and resolved, or add a note to its timeline; resolving writes a postmortem draft to incidents/",
        )
        .title("Update an incident"),
        move |cx, a: UpdateIncidentArgs| {
            let hub = h4.clone();
            async move {
                let status = a.status.as_deref().map(str::parse::<Status>).transpose().map_err(incident_error)?;
                let update = Update { status, note: a.note, author: who(&cx) };
                let mut book = hub.incidents.lock().await;
                let incident = book.update(&a.id, update, time::OffsetDateTime::now_utc()).map_err(incident_error)?.clone();
                store_incident(&hub, &incident).await?;
                drop(book);
                let event = incidents::Event::updated(&incident, time::OffsetDateTime::now_utc());
                let postmortem = if event.kind == incidents::EventKind::Resolved {
                    let name = format!("incidents/{}-postmortem.md", incident.id);
                    let text = incidents::postmortem_markdown(&incident);
                    hub.registry.put_generated(&name, &text).await.map_err(|e| ToolError::Unavailable {
                        message: "the postmortem draft could not be written".into(),
                        source: Some(Box::new(e)),
                    })?;
                    Some(format!("{URI_PREFIX}{name}"))
                } else {
                    None
                };
                let notified = hub.notifier.as_ref().map_or(0, |n| n.notify(&event).len());
                Ok(IncidentOut { uri: format!("{URI_PREFIX}{}", incident.document_path()), incident, postmortem, notified })
            }
        },
    )
    .typed(
        ToolDef::new("list_incidents", "Incidents with their timelines, newest first, and how webhook deliveries went")
            .title("List incidents")
            .read_only(),
        move |_cx, a: ListIncidentsArgs| {
            let hub = h5.clone();
            async move {
                let book = hub.incidents.lock().await;
                let mut incidents: Vec<Incident> =
                    book.iter().filter(|i| !a.open || i.status != Status::Resolved).cloned().collect();
                incidents.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
                Ok(IncidentsOut { incidents, deliveries: hub.notifier.as_ref().map(|n| n.stats()) })
            }
        },
    )
    .typed(
        ToolDef::new("get_compliance_status", "Compliance checklists (compliance/*.md task lists) per team: done, open and overdue tasks")
            .title("Compliance status")
            .read_only(),
        move |_cx, a: ComplianceArgs| {
            let hub = h6.clone();
            async move {
                let checklists: Vec<_> = hub
                    .registry
                    .list()
                    .into_iter()
                    .filter(|d| d.name.starts_with("compliance/") && d.name.ends_with(".md"))
                    .filter_map(|d| hub.registry.get(&d.name).ok())
                    .map(|doc| parse_checklist(&doc.name, &doc.text))
                    .collect();
                let today = time::OffsetDateTime::now_utc().date();
                let out: ComplianceStatus = status(&checklists, today, a.team.as_deref());
                Ok(out)
            }
        },
    )
    .typed(
        ToolDef::new("list_security_notices", "Security advisories (security/*.md) with their status and severity")
            .title("Security notices")
            .read_only(),
        move |_cx, _a: NoArgs| {
            let hub = h7.clone();
            async move {
                let notices = hub
                    .registry
                    .list()
                    .into_iter()
                    .filter(|d| d.name.starts_with("security/") && d.name.ends_with(".md"))
                    .filter_map(|d| hub.registry.get(&d.name).ok())
                    .map(|doc| Notice {
                        uri: format!("{URI_PREFIX}{}", doc.name),
                        title: doc
                            .text
                            .lines()
                            .find_map(|l| l.strip_prefix("# "))
                            .map_or_else(|| doc.name.clone(), |t| t.trim().to_owned()),
                        status: field(&doc.text, "status"),
                        severity: field(&doc.text, "severity"),
                        updated_at: doc.updated_at.clone(),
                    })
                    .collect();
                Ok(NoticesOut { notices })
            }
        },
    )
}
