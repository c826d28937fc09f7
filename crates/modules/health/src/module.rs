//! The MCP face of the module: tools, `fhir://` resources, access checks
//! and disclosures around the store, the external FHIR servers and the
//! clinical logic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use plexus_core::{CallContext, Module, ToolDef, ToolError, ToolOutput, ToolSpec, Toolbox};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access::{self, Basis, Role};
use crate::store::{Disclosure, FhirStore, Grant, Query, now_text, rfc3339};
use crate::{clinical, deid, fhir};

mod rest;
pub use rest::BASE_PATH as FHIR_REST_BASE;

/// The module's name.
pub const NAME: &str = "health";

/// The data types `get_patient_data` serves, and the FHIR type of each.
pub const DATA_TYPES: &[(&str, &str)] = &[
    ("demographics", "Patient"),
    ("medications", "MedicationRequest"),
    ("allergies", "AllergyIntolerance"),
    ("conditions", "Condition"),
    ("observations", "Observation"),
    ("immunizations", "Immunization"),
    ("encounters", "Encounter"),
];

/// Resources: `fhir://<Type>/<id>`.
pub const RESOURCE_TEMPLATE: &str = "fhir://{type}/{id}";

/// How long a call waits for other FHIR servers unless its own deadline is
/// sooner.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// Another FHIR server a patient's data can come from (implemented over the
/// FHIR client; a trait so that the module does not depend on how).
#[async_trait::async_trait]
pub trait Remote: Send + Sync + 'static {
    /// Its name, as results report it.
    fn name(&self) -> &str;
    /// Whether it holds patients identified in `system`.
    fn serves(&self, system: &str) -> bool;
    /// The patient's resources of each type in `kinds`, each on its own.
    async fn fetch(
        &self,
        identifier: (&str, &str),
        kinds: &[&'static str],
        deadline: tokio::time::Instant,
    ) -> Vec<(&'static str, Result<Vec<Value>, String>)>;
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatientDataArgs {
    /// The patient: its id here, or `system|value` of one of its identifiers.
    patient_id: String,
    /// Which data to return (only these are read and released): demographics, medications, allergies,
    /// conditions, observations, immunizations, encounters.
    data_types: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LabArgs {
    /// The patient: its id here, or `system|value` of one of its identifiers.
    patient_id: String,
    /// A LOINC code (`2339-0`) or `system|code`.
    code: Option<String>,
    /// From this date or date-time (FHIR format, e.g. 2020-03 or 2020-03-06T10:00:00Z).
    from: Option<String>,
    /// Up to this date or date-time (inclusive).
    to: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SummaryArgs {
    /// The patient: its id here, or `system|value` of one of its identifiers.
    patient_id: String,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SearchFilters {
    /// Resource types (default: all clinical types).
    #[serde(default)]
    types: Vec<String>,
    /// A code (`44054006`) or `system|code`.
    code: Option<String>,
    /// Only this patient's records (id here).
    patient_id: Option<String>,
    /// From this date (FHIR date or date-time).
    from: Option<String>,
    /// Up to this date (inclusive).
    to: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    /// Words to find in the names of codes (conditions, medications, tests, vaccines...), any language.
    query: Option<String>,
    #[serde(default)]
    filters: SearchFilters,
    /// Records per page (1 to 100, default 20).
    limit: Option<u32>,
    /// Records to skip.
    offset: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BreakGlassArgs {
    /// The patient: its id here, or `system|value` of one of its identifiers.
    patient_id: String,
    /// Why (required): the emergency, in a sentence.
    reason: String,
    /// How long the access lasts (5 to 240 minutes, default 60).
    minutes: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AssignArgs {
    /// The patient (id here).
    patient_id: String,
    /// The user (subject) who will treat the patient.
    user: String,
    /// Why.
    reason: String,
    /// For how many days (1 to 365, default 30).
    days: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DisclosureArgs {
    /// The patient (id here); absent: every patient.
    patient_id: Option<String>,
    /// From (RFC 3339 or a date).
    from: Option<String>,
    /// To (inclusive).
    to: Option<String>,
    /// At most this many (1 to 1000, default 100).
    limit: Option<u32>,
    /// `list` (default) or `auditevent`: also a FHIR Bundle of AuditEvents
    /// after IHE Basic Audit Log Patterns.
    format: Option<String>,
}

/// One type's failure from one source.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeError {
    pub data_type: String,
    pub source: String,
    pub error: String,
}

/// How one source took part.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceUse {
    pub name: String,
    /// `answered`, `partial`, `failed`.
    pub status: String,
    pub resources: usize,
    pub elapsed_ms: u64,
}

/// The integrity digest of what was returned.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Integrity {
    /// `sha256:<hex>` over the returned resources (see the module docs).
    pub digest: String,
    pub resources: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PatientData {
    patient_id: String,
    /// Resources per requested data type.
    data: BTreeMap<String, Vec<Value>>,
    /// Types (or sources) that failed; the others are complete.
    errors: Vec<TypeError>,
    sources: Vec<SourceUse>,
    integrity: Integrity,
    /// Why you may see this patient.
    access: String,
    /// Identifiers removed per HIPAA Safe Harbor (researchers).
    deidentified: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SearchHit {
    resource_type: String,
    id: String,
    patient_id: Option<String>,
    /// The code's display text.
    title: String,
    /// The record's date, when it has one.
    date: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct SearchOutput {
    hits: Vec<SearchHit>,
    /// Records left out because you may not see their patient.
    withheld: usize,
    deidentified: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct LabOutput {
    patient_id: String,
    #[serde(flatten)]
    results: clinical::LabResults,
    errors: Vec<TypeError>,
    access: String,
    deidentified: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SummaryOutput {
    patient_id: String,
    summary: clinical::CareSummary,
    /// The summary as Markdown.
    text: String,
    /// A narrative written by your model (sampling), when it could.
    narrative: Option<String>,
    errors: Vec<TypeError>,
    access: String,
    deidentified: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
struct GrantOutput {
    grant: Grant,
    /// What happens now.
    notice: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct DisclosuresOutput {
    disclosures: Vec<Disclosure>,
    /// With `format: auditevent`: the same, as a FHIR R4 Bundle of
    /// AuditEvents (IHE BALP).
    #[serde(skip_serializing_if = "Option::is_none")]
    audit_events: Option<Value>,
}

/// The module.
pub struct Health {
    tools: Toolbox,
    ctx: Arc<Ctx>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").finish_non_exhaustive()
    }
}

/// What the tools share.
struct Ctx {
    store: FhirStore,
    remotes: Vec<Arc<dyn Remote>>,
    /// Who observes accesses in exported AuditEvents (the node's name).
    observer: String,
}

/// A resource on its way to an answer.
enum Doc {
    /// From this server's store: its id and its canonical JSON text as
    /// stored (it goes into an answer as it is, never parsed).
    Stored { id: String, text: String },
    /// From another server, or de-identified.
    Value(Value),
}

impl Doc {
    fn into_value(self) -> Result<Value, ToolError> {
        match self {
            Doc::Value(v) => Ok(v),
            Doc::Stored { text, .. } => serde_json::from_str(&text).map_err(ToolError::internal),
        }
    }

    /// `(resourceType, id)`, and the canonical JSON text.
    fn into_text(self, kind: &str) -> (String, String, String) {
        match self {
            Doc::Stored { id, text } => (kind.to_owned(), id, text),
            Doc::Value(v) => {
                let key = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                (key("resourceType"), key("id"), clinical::canonical_json(&v))
            }
        }
    }
}

/// A patient as a call names it, before anything of it is read.
enum Named {
    /// By a local id, or by an identifier the store finds on one Patient.
    Local(String),
    /// By `system|value` that no stored Patient carries (other servers may).
    Elsewhere { system: String, value: String },
}

impl Named {
    /// The key access and disclosures use: the local id, else `system|value`.
    fn key(&self) -> String {
        match self {
            Named::Local(id) => id.clone(),
            Named::Elsewhere { system, value } => format!("{system}|{value}"),
        }
    }
}

/// A patient as a call names it, with what the store holds of it.
struct Target {
    /// The key access and disclosures use: the local id, else `system|value`.
    key: String,
    /// The local Patient id, if the store knows the patient.
    local: Option<String>,
    /// The stored Patient's text.
    patient: Option<String>,
    /// Identifiers to ask other servers with.
    identifiers: Vec<(String, String)>,
    /// The store's resources of the kinds the call asked for (the Patient
    /// apart), read in the same statement as the Patient, and how long
    /// that read took.
    record: BTreeMap<String, Vec<(String, String)>>,
    read: Duration,
}

fn bad(msg: impl Into<String>) -> ToolError {
    ToolError::InvalidArguments(msg.into())
}

/// Validate a FHIR code or `system|code` (no control characters, bounded).
fn check_code(code: &str) -> Result<(), ToolError> {
    let ok = !code.trim().is_empty() && code.len() <= 256 && !code.chars().any(char::is_control);
    if ok { Ok(()) } else { Err(bad(format!("`{code}` is not a code (or system|code)"))) }
}

/// Validate a FHIR date or dateTime argument.
fn check_date(name: &str, d: &str) -> Result<(), ToolError> {
    clinical::FhirTime::parse(d).map(|_| ()).map_err(|e| bad(format!("`{name}`: {e}")))
}

fn split_code(code: &str) -> (Option<String>, String) {
    match code.split_once('|') {
        Some((s, c)) => (Some(s.to_owned()), c.to_owned()),
        None => (None, code.to_owned()),
    }
}

impl Ctx {
    /// Who `patient` names: a local id, or `system|value` looked up among
    /// the stored Patients' identifiers. Reads no clinical data.
    async fn name(&self, cx: &CallContext, patient: &str) -> Result<Named, ToolError> {
        if let Some((system, value)) = patient.split_once('|') {
            if system.is_empty() || value.is_empty() || patient.len() > 256 || patient.chars().any(char::is_control) {
                return Err(bad(format!("`{patient}` is neither a FHIR id nor system|value")));
            }
            let found = self
                .store
                .find_blind(&cx.principal.tenant, "Patient", "identifier", patient)
                .await
                .map_err(access::unavailable)?;
            return Ok(match found.as_slice() {
                [id] => Named::Local(id.clone()),
                _ => Named::Elsewhere { system: system.to_owned(), value: value.to_owned() },
            });
        }
        if !fhir::is_id(patient) {
            return Err(bad(format!("`{patient}` is not a FHIR id (1 to 64 of A-Z a-z 0-9 - .) nor system|value")));
        }
        Ok(Named::Local(patient.to_owned()))
    }

    /// The patient `named`, with the store's Patient and its resources of
    /// `kinds`, read in one statement (once the call is admitted).
    async fn target(&self, cx: &CallContext, named: Named, kinds: &[&str]) -> Result<Target, ToolError> {
        let key = named.key();
        let id = match named {
            Named::Local(id) => id,
            Named::Elsewhere { system, value } => {
                return Ok(Target {
                    key,
                    local: None,
                    patient: None,
                    identifiers: vec![(system, value)],
                    record: BTreeMap::new(),
                    read: Duration::ZERO,
                });
            }
        };
        let mut asked: Vec<&str> = vec!["Patient"];
        asked.extend(kinds.iter().copied().filter(|k| *k != "Patient"));
        let started = std::time::Instant::now();
        let mut record =
            self.store.record_texts(&cx.principal.tenant, &id, &asked).await.map_err(access::unavailable)?;
        let read = started.elapsed();
        let stored = record.remove("Patient").unwrap_or_default().into_iter().find(|(pid, _)| *pid == id);
        let Some((_, text)) = stored else {
            return Ok(Target {
                key,
                local: None,
                patient: None,
                identifiers: Vec::new(),
                record: BTreeMap::new(),
                read,
            });
        };
        let p: Value = serde_json::from_str(&text).map_err(ToolError::internal)?;
        let mut identifiers = Vec::new();
        for i in p.get("identifier").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(s), Some(v)) =
                (i.get("system").and_then(Value::as_str), i.get("value").and_then(Value::as_str))
            {
                identifiers.push((s.to_owned(), v.to_owned()));
            }
        }
        Ok(Target { key, local: Some(id), patient: Some(text), identifiers, record, read })
    }

    /// The patient's resources of `kinds`, from the store and every server
    /// that serves one of the patient's identifier systems, all at once.
    async fn gather(
        &self,
        cx: &CallContext,
        t: &mut Target,
        kinds: &[&'static str],
    ) -> (BTreeMap<&'static str, Vec<Doc>>, Vec<TypeError>, Vec<SourceUse>) {
        let deadline = tokio::time::Instant::now() + DEFAULT_DEADLINE;
        let deadline = match cx.deadline {
            Some(d) => deadline.min(tokio::time::Instant::from_std(d)),
            None => deadline,
        };
        // The store's part was read with the Patient, when the call was
        // admitted.
        let mut record = std::mem::take(&mut t.record);
        let local = t.local.as_ref().map(|id| {
            let results: Vec<(&'static str, Result<Vec<Doc>, String>)> = kinds
                .iter()
                .map(|k| match *k {
                    "Patient" => {
                        let docs = t.patient.iter().map(|text| Doc::Stored { id: id.clone(), text: text.clone() });
                        (*k, Ok(docs.collect()))
                    }
                    _ => {
                        let docs = record.remove(*k).unwrap_or_default();
                        (*k, Ok(docs.into_iter().map(|(id, text)| Doc::Stored { id, text }).collect()))
                    }
                })
                .collect();
            ("local".to_owned(), results, t.read)
        });
        let remotes =
            self.remotes.iter().filter_map(|r| t.identifiers.iter().find(|(s, _)| r.serves(s)).map(|i| (r, i))).map(
                |(r, (s, v))| async move {
                    let started = std::time::Instant::now();
                    let results: Vec<(&'static str, Result<Vec<Doc>, String>)> = r
                        .fetch((s, v), kinds, deadline)
                        .await
                        .into_iter()
                        .map(|(k, got)| (k, got.map(|l| l.into_iter().map(Doc::Value).collect())))
                        .collect();
                    (r.name().to_owned(), results, started.elapsed())
                },
            );
        let remote = futures::future::join_all(remotes).await;
        let mut data: BTreeMap<&'static str, Vec<Doc>> = kinds.iter().map(|k| (*k, Vec::new())).collect();
        let mut errors = Vec::new();
        let mut sources = Vec::new();
        for (name, results, elapsed) in local.into_iter().chain(remote) {
            let mut n = 0;
            let mut failed = 0;
            for (kind, r) in results {
                match r {
                    Ok(list) => {
                        n += list.len();
                        data.entry(kind).or_default().extend(list);
                    }
                    Err(e) => {
                        failed += 1;
                        errors.push(TypeError {
                            data_type: data_type_of(kind).to_owned(),
                            source: name.clone(),
                            error: e,
                        });
                    }
                }
            }
            let status = match failed {
                0 => "answered",
                f if f == kinds.len() => "failed",
                _ => "partial",
            };
            sources.push(SourceUse {
                name,
                status: status.into(),
                resources: n,
                elapsed_ms: elapsed.as_millis() as u64,
            });
        }
        (data, errors, sources)
    }

    async fn disclose(
        &self,
        cx: &CallContext,
        tool: &str,
        action: &str,
        patients: &[(String, Basis)],
        types: &[&str],
        outcome: &str,
    ) -> Result<(), ToolError> {
        let list: Vec<Disclosure> = patients
            .iter()
            .map(|(patient, basis)| {
                disclosure(cx, tool, action, patient, types, basis.purpose(), basis.break_glass(), outcome)
            })
            .collect();
        self.store.disclose(&cx.principal.tenant, &list).await.map_err(access::unavailable)
    }

    /// One stored resource, if the caller may see its patient (de-identified
    /// for researchers), disclosed as a read by `tool`. Unknown, and not
    /// the caller's to see, look the same: `fhir://<kind>/<id>` not found.
    async fn read_checked(&self, cx: &CallContext, tool: &str, kind: &str, id: &str) -> Result<Value, ToolError> {
        let missing = || ToolError::unknown_resource(format!("fhir://{kind}/{id}"));
        let found = self.store.get(&cx.principal.tenant, kind, id).await.map_err(access::unavailable)?;
        let v = found.ok_or_else(missing)?;
        let patient = fhir::patient_of(&v).ok_or_else(missing)?;
        let basis = match access::decide(&self.store, cx, &patient).await {
            Ok(b) => b,
            Err(e) => {
                let _ = self.refuse(cx, tool, &patient, e).await;
                return Err(missing());
            }
        };
        let v = if basis.deidentified() { deid::Run::new(year_now(), fresh_seed()).resource(&v) } else { v };
        self.disclose(cx, tool, "read", &[(patient, basis)], &[data_type_of(kind)], "success").await?;
        Ok(v)
    }

    /// Record a refusal, then return it.
    async fn refuse(&self, cx: &CallContext, tool: &str, patient: &str, e: ToolError) -> ToolError {
        if Role::of(&cx.principal).is_some() {
            let why = e.to_string().chars().take(300).collect();
            let d = disclosure(cx, tool, "read", patient, &[], why, false, "denied");
            if let Err(store_error) = self.store.disclose(&cx.principal.tenant, &[d]).await {
                return access::unavailable(store_error);
            }
        }
        e
    }

    /// Access to a patient, refusals recorded. A patient neither the store
    /// nor any server knows is "not found" (after the access decision, so
    /// that a refusal does not tell whether the patient exists).
    async fn admit(
        &self,
        cx: &CallContext,
        tool: &str,
        patient: &str,
        kinds: &[&str],
    ) -> Result<(Target, Basis), ToolError> {
        let named = self.name(cx, patient).await?;
        let key = named.key();
        let basis = match access::decide(&self.store, cx, &key).await {
            Ok(b) => b,
            Err(e) => return Err(self.refuse(cx, tool, &key, e).await),
        };
        let t = self.target(cx, named, kinds).await?;
        let remote = t.identifiers.iter().any(|(s, _)| self.remotes.iter().any(|r| r.serves(s)));
        if t.local.is_none() && !remote {
            return Err(ToolError::Failed(format!("patient {} not found", t.key)));
        }
        Ok((t, basis))
    }
}

/// One disclosure row of the call `cx`.
#[allow(clippy::too_many_arguments)]
fn disclosure(
    cx: &CallContext,
    tool: &str,
    action: &str,
    patient: &str,
    types: &[&str],
    purpose: String,
    break_glass: bool,
    outcome: &str,
) -> Disclosure {
    let p = &cx.principal;
    Disclosure {
        at: now_text(),
        request_id: cx.request_id.to_string(),
        subject: p.subject.clone(),
        roles: p.roles.clone(),
        patient: patient.to_owned(),
        tool: tool.to_owned(),
        action: action.to_owned(),
        types: types.iter().map(|t| (*t).to_owned()).collect(),
        purpose,
        break_glass,
        outcome: outcome.to_owned(),
        client: cx.client_addr.map(|a| a.ip().to_string()).unwrap_or_default(),
    }
}

fn data_type_of(kind: &str) -> &'static str {
    DATA_TYPES.iter().find(|(_, k)| *k == kind).map_or("other", |(t, _)| t)
}

fn year_now() -> i32 {
    time::OffsetDateTime::now_utc().year()
}

fn fresh_seed() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// De-identify `values` in one run (pseudonyms consistent within it).
fn deidentify(run: &mut deid::Run, values: &mut [Value]) {
    for v in values.iter_mut() {
        *v = run.resource(v);
    }
}

async fn patient_data(ctx: Arc<Ctx>, cx: CallContext, a: PatientDataArgs) -> Result<String, ToolError> {
    if a.data_types.is_empty() {
        return Err(bad(
            "dataTypes: name at least one of demographics, medications, allergies, conditions, observations, immunizations, encounters",
        ));
    }
    let mut kinds: Vec<&'static str> = Vec::new();
    for t in &a.data_types {
        let Some((_, k)) = DATA_TYPES.iter().find(|(n, _)| n == t) else {
            return Err(bad(format!(
                "dataTypes: `{t}` is not one of demographics, medications, allergies, conditions, observations, immunizations, encounters"
            )));
        };
        if !kinds.contains(k) {
            kinds.push(k);
        }
    }
    let (mut t, basis) = ctx.admit(&cx, "get_patient_data", &a.patient_id, &kinds).await?;
    let (mut data, errors, sources) = ctx.gather(&cx, &mut t, &kinds).await;
    // Each resource's canonical JSON text: as stored, for a resource of
    // this server's store shown as it is; written once from the value
    // otherwise (another server's, or de-identified for a researcher). The
    // integrity digest hashes these texts and the answer is made of them.
    let mut out: BTreeMap<&str, Vec<(String, String, String)>> = BTreeMap::new();
    let mut run = basis.deidentified().then(|| deid::Run::new(year_now(), fresh_seed()));
    for k in &kinds {
        let docs = data.remove(k).unwrap_or_default();
        let mut texts = Vec::with_capacity(docs.len());
        for doc in docs {
            texts.push(match run.as_mut() {
                Some(run) => Doc::Value(run.resource(&doc.into_value()?)).into_text(k),
                None => doc.into_text(k),
            });
        }
        out.insert(data_type_of(k), texts);
    }
    let outcome = if errors.is_empty() { "success" } else { "partial" };
    let types: Vec<&str> = kinds.iter().map(|k| data_type_of(k)).collect();
    ctx.disclose(&cx, "get_patient_data", "read", &[(t.key.clone(), basis.clone())], &types, outcome).await?;
    let all = || out.values().flatten();
    let digest = clinical::digest_canonical(all().map(|(k, i, t)| (k.as_str(), i.as_str(), t.as_str())).collect());
    let record = PatientData {
        patient_id: shown_id(run.as_mut(), &t.key),
        integrity: Integrity { digest, resources: all().count() },
        data: BTreeMap::new(),
        errors,
        sources,
        access: basis.purpose(),
        deidentified: basis.deidentified(),
    };
    render_record(&record, &out)
}

/// The answer's JSON text: the record without its data, with the data
/// written in from the resources' texts.
fn render_record(
    record: &PatientData,
    data: &BTreeMap<&str, Vec<(String, String, String)>>,
) -> Result<String, ToolError> {
    const EMPTY: &str = r#""data":{}"#;
    let shell = serde_json::to_string(record).map_err(ToolError::internal)?;
    // Fields serialize in order and quotes inside strings are escaped, so
    // the first match is the field itself.
    let at = shell.find(EMPTY).ok_or_else(|| ToolError::internal("record without its data field"))?;
    let size = data.values().flatten().map(|(_, _, t)| t.len() + 1).sum::<usize>() + shell.len() + 16 * data.len();
    let mut text = String::with_capacity(size);
    text.push_str(&shell[..at]);
    text.push_str(r#""data":{"#);
    for (i, (name, list)) in data.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(name).map_err(ToolError::internal)?);
        text.push_str(":[");
        for (j, (_, _, t)) in list.iter().enumerate() {
            if j > 0 {
                text.push(',');
            }
            text.push_str(t);
        }
        text.push(']');
    }
    text.push('}');
    text.push_str(&shell[at + EMPTY.len()..]);
    Ok(text)
}

/// The patient's resources of `kinds` for a derived view (labs, summary),
/// de-identified first for researchers; disclosed.
async fn load_for(
    ctx: &Ctx,
    cx: &CallContext,
    tool: &str,
    patient: &str,
    kinds: &[&'static str],
) -> Result<(Target, Basis, Vec<Value>, Vec<TypeError>, Option<deid::Run>), ToolError> {
    let (mut t, basis) = ctx.admit(cx, tool, patient, kinds).await?;
    let (data, errors, _) = ctx.gather(cx, &mut t, kinds).await;
    let mut all: Vec<Value> = data.into_values().flatten().map(Doc::into_value).collect::<Result<_, _>>()?;
    let mut run = basis.deidentified().then(|| deid::Run::new(year_now(), fresh_seed()));
    if let Some(r) = run.as_mut() {
        deidentify(r, &mut all);
    }
    let outcome = if errors.is_empty() { "success" } else { "partial" };
    let types: Vec<&str> = kinds.iter().map(|k| data_type_of(k)).collect();
    ctx.disclose(cx, tool, "read", &[(t.key.clone(), basis.clone())], &types, outcome).await?;
    Ok((t, basis, all, errors, run))
}

fn shown_id(run: Option<&mut deid::Run>, key: &str) -> String {
    match run {
        Some(r) => r
            .resource(&serde_json::json!({"resourceType": "Patient", "id": key}))
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        None => key.to_owned(),
    }
}

async fn lab_tool(ctx: Arc<Ctx>, cx: CallContext, a: LabArgs) -> Result<LabOutput, ToolError> {
    for (name, d) in [("from", &a.from), ("to", &a.to)] {
        if let Some(d) = d {
            check_date(name, d)?;
        }
    }
    if let Some(c) = &a.code {
        check_code(c)?;
    }
    let filter = clinical::LabFilter::parse(a.code.as_deref(), a.from.as_deref(), a.to.as_deref())
        .map_err(|e| bad(e.to_string()))?;
    let (t, basis, all, errors, mut run) =
        load_for(&ctx, &cx, "get_lab_results", &a.patient_id, &["Patient", "Observation"]).await?;
    let patient = all.iter().find(|r| r["resourceType"] == "Patient");
    let filter = match patient {
        Some(p) => filter.for_patient(clinical::PatientContext::from_patient(p)),
        None => filter,
    };
    let observations: Vec<Value> = all.iter().filter(|r| r["resourceType"] == "Observation").cloned().collect();
    Ok(LabOutput {
        patient_id: shown_id(run.as_mut(), &t.key),
        results: clinical::lab_results(&observations, &filter),
        errors,
        access: basis.purpose(),
        deidentified: basis.deidentified(),
    })
}

const SUMMARY_KINDS: &[&str] =
    &["Patient", "Condition", "MedicationRequest", "AllergyIntolerance", "Immunization", "Observation", "Encounter"];

async fn summary_tool(ctx: Arc<Ctx>, cx: CallContext, a: SummaryArgs) -> Result<SummaryOutput, ToolError> {
    let (t, basis, all, errors, mut run) =
        load_for(&ctx, &cx, "create_care_summary", &a.patient_id, SUMMARY_KINDS).await?;
    let today = time::OffsetDateTime::now_utc().date();
    let summary = clinical::care_summary(&all, today);
    let text = clinical::summary_text(&summary);
    let narrative = if cx.client().capabilities().sampling {
        let mut request = plexus_core::context::SamplingRequest::prompt(
            format!("Patient summary (structured, complete):\n\n{text}"),
            600,
        );
        request.system_prompt = Some(
            "Write a short clinical narrative (one paragraph) of this patient summary for a colleague. Use only \
             facts in the summary; do not add diagnoses or advice. Mention abnormal results and allergies."
                .into(),
        );
        request.temperature = Some(0.0);
        match cx.client().sample(request).await {
            Ok(r) => r.content.as_text().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
            Err(e) => {
                tracing::debug!(error = %e, "care summary narrative: sampling failed; the summary stands alone");
                None
            }
        }
    } else {
        None
    };
    Ok(SummaryOutput {
        patient_id: shown_id(run.as_mut(), &t.key),
        summary,
        text,
        narrative,
        errors,
        access: basis.purpose(),
        deidentified: basis.deidentified(),
    })
}

fn title_of(r: &Value) -> String {
    ["code", "medicationCodeableConcept", "vaccineCode", "type"]
        .iter()
        .filter_map(|k| r.get(*k))
        .map(|c| if c.is_array() { c.get(0).unwrap_or(&Value::Null) } else { c })
        .find_map(|c| {
            c.get("text")
                .and_then(Value::as_str)
                .or_else(|| c.pointer("/coding/0/display").and_then(Value::as_str))
                .or_else(|| c.pointer("/coding/0/code").and_then(Value::as_str))
        })
        .unwrap_or_default()
        .to_owned()
}

fn date_of(r: &Value) -> Option<String> {
    [
        "/effectiveDateTime",
        "/onsetDateTime",
        "/authoredOn",
        "/occurrenceDateTime",
        "/performedDateTime",
        "/period/start",
        "/performedPeriod/start",
        "/recordedDate",
        "/effectivePeriod/start",
    ]
    .iter()
    .find_map(|p| r.pointer(p).and_then(Value::as_str))
    .map(str::to_owned)
}

async fn search_tool(ctx: Arc<Ctx>, cx: CallContext, a: SearchArgs) -> Result<SearchOutput, ToolError> {
    let role = Role::of(&cx.principal).ok_or_else(access::no_role)?;
    if role == Role::Auditor {
        return Err(access::auditors_read_disclosures());
    }
    let f = a.filters;
    let mut kinds = Vec::new();
    for k in &f.types {
        if !fhir::INDEXED.contains(&k.as_str()) || k == "Patient" {
            return Err(bad(format!(
                "filters.types: `{k}` is not a clinical type ({})",
                fhir::INDEXED.iter().filter(|t| **t != "Patient").copied().collect::<Vec<_>>().join(", ")
            )));
        }
        kinds.push(k.clone());
    }
    if kinds.is_empty() {
        kinds = fhir::INDEXED.iter().filter(|t| **t != "Patient").map(|t| (*t).to_owned()).collect();
    }
    if let Some(c) = &f.code {
        check_code(c)?;
    }
    for (name, d) in [("filters.from", &f.from), ("filters.to", &f.to)] {
        if let Some(d) = d {
            check_date(name, d)?;
        }
    }
    if let Some(p) = &f.patient_id
        && !fhir::is_id(p)
    {
        return Err(bad(format!("filters.patientId: `{p}` is not a FHIR id")));
    }
    let query = a.query.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if query.is_some_and(|q| q.chars().count() > 200 || q.chars().any(char::is_control)) {
        return Err(bad("query: at most 200 characters, no control characters"));
    }
    if query.is_none() && f.code.is_none() && f.patient_id.is_none() {
        return Err(bad("give a query, filters.code or filters.patientId"));
    }
    let limit = a.limit.unwrap_or(20).clamp(1, 100) as usize;
    let offset = a.offset.unwrap_or(0) as usize;
    let tenant = cx.principal.tenant.clone();
    // Read ahead so that withheld records do not shorten the page much.
    let q = Query {
        kinds,
        patient: f.patient_id.clone(),
        code: f.code.as_deref().map(split_code),
        text: query.map(str::to_owned),
        from: f.from.clone(),
        to: f.to.clone(),
        limit: (offset + limit) * 4 + 50,
        offset: 0,
    };
    let found = ctx.store.find(&tenant, &q).await.map_err(access::unavailable)?;
    let caller = access::Caller::of(&ctx.store, &cx).await?;
    let mut bases: BTreeMap<String, Option<Basis>> = BTreeMap::new();
    let mut kept = Vec::new();
    let mut withheld = 0;
    for r in found {
        let Some(patient) = r.patient.clone() else { continue };
        if !bases.contains_key(&patient) {
            let b = caller.basis(&ctx.store, &cx, &patient).await.ok();
            bases.insert(patient.clone(), b);
        }
        if bases[&patient].is_some() {
            kept.push(r);
        } else {
            withheld += 1;
        }
    }
    let page: Vec<_> = kept.into_iter().skip(offset).take(limit).collect();
    let mut run = (role == Role::Researcher).then(|| deid::Run::new(year_now(), fresh_seed()));
    let mut hits = Vec::with_capacity(page.len());
    let mut touched: BTreeMap<String, Basis> = BTreeMap::new();
    for r in &page {
        let Some(v) = ctx.store.get(&tenant, &r.kind, &r.id).await.map_err(access::unavailable)? else { continue };
        let v = match run.as_mut() {
            Some(run) => run.resource(&v),
            None => v,
        };
        let patient = r.patient.clone().unwrap_or_default();
        if let Some(Some(b)) = bases.get(&patient) {
            touched.insert(patient.clone(), b.clone());
        }
        hits.push(SearchHit {
            resource_type: r.kind.clone(),
            id: v.get("id").and_then(Value::as_str).unwrap_or(&r.id).to_owned(),
            patient_id: Some(shown_id(run.as_mut(), &patient)),
            title: title_of(&v),
            date: date_of(&v),
        });
    }
    let list: Vec<(String, Basis)> = touched.into_iter().collect();
    ctx.disclose(&cx, "search_medical_records", "search", &list, &[], "success").await?;
    Ok(SearchOutput { hits, withheld, deidentified: run.is_some() })
}

async fn break_glass_tool(ctx: Arc<Ctx>, cx: CallContext, a: BreakGlassArgs) -> Result<GrantOutput, ToolError> {
    let p = &cx.principal;
    if !matches!(Role::of(p), Some(Role::Clinician | Role::Nurse)) {
        return Err(ToolError::Failed("break-the-glass is for clinicians and nurses".into()));
    }
    let reason = a.reason.trim();
    if reason.chars().count() < 10 || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(bad("reason: break-the-glass needs a reason of 10 to 500 characters saying what the emergency is"));
    }
    let minutes = a.minutes.unwrap_or(60);
    if !(5..=240).contains(&minutes) {
        return Err(bad("minutes: 5 to 240"));
    }
    let key = ctx.name(&cx, &a.patient_id).await?.key();
    let now = time::OffsetDateTime::now_utc();
    let grant = Grant {
        id: format!("btg-{:016x}", fresh_seed()),
        subject: p.subject.clone(),
        patient: key.clone(),
        kind: crate::store::BREAK_GLASS.into(),
        reason: reason.to_owned(),
        granted_by: p.subject.clone(),
        created_at: rfc3339(now),
        until: rfc3339(now + time::Duration::minutes(i64::from(minutes))),
    };
    ctx.store.grant(&p.tenant, &grant).await.map_err(access::unavailable)?;
    let basis = Basis::BreakGlass { reason: grant.reason.clone(), until: grant.until.clone() };
    ctx.disclose(&cx, "break_the_glass", "read", &[(key.clone(), basis)], &[], "success").await?;
    // The alert: operators' log pipelines and the client both hear it.
    tracing::warn!(
        target: "plexus::alert",
        alert = "break-the-glass",
        tenant = %p.tenant,
        user = %p.subject,
        patient = %key,
        until = %grant.until,
        "emergency access to a patient's record"
    );
    cx.log(
        plexus_core::context::LogLevel::Warning,
        format!(
            "break-the-glass: {} may read patient {} until {}; this is audited and raised as an alert",
            p.subject, key, grant.until
        ),
    )
    .await;
    Ok(GrantOutput {
        notice: format!(
            "Emergency access to patient {} until {}. Every read is flagged in the disclosure log and reviewed.",
            key, grant.until
        ),
        grant,
    })
}

async fn assign_tool(ctx: Arc<Ctx>, cx: CallContext, a: AssignArgs) -> Result<GrantOutput, ToolError> {
    let p = &cx.principal;
    if Role::of(p) != Some(Role::Admin) {
        return Err(ToolError::Failed("assigning patients is for administrators".into()));
    }
    if !fhir::is_id(&a.patient_id) {
        return Err(bad(format!("patientId: `{}` is not a FHIR id", a.patient_id)));
    }
    let user = a.user.trim();
    if user.is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
        return Err(bad("user: the subject of the user to assign (1 to 256 characters)"));
    }
    let reason = a.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(bad("reason: 1 to 500 characters"));
    }
    let days = a.days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(bad("days: 1 to 365"));
    }
    let now = time::OffsetDateTime::now_utc();
    let grant = Grant {
        id: format!("asg-{:016x}", fresh_seed()),
        subject: user.to_owned(),
        patient: a.patient_id.clone(),
        kind: crate::store::ASSIGNMENT.into(),
        reason: reason.to_owned(),
        granted_by: p.subject.clone(),
        created_at: rfc3339(now),
        until: rfc3339(now + time::Duration::days(i64::from(days))),
    };
    ctx.store.grant(&p.tenant, &grant).await.map_err(access::unavailable)?;
    Ok(GrantOutput { notice: format!("{user} may treat patient {} until {}", a.patient_id, grant.until), grant })
}

async fn disclosures_tool(ctx: Arc<Ctx>, cx: CallContext, a: DisclosureArgs) -> Result<DisclosuresOutput, ToolError> {
    if !matches!(Role::of(&cx.principal), Some(Role::Auditor | Role::Admin)) {
        return Err(ToolError::Failed("the disclosure log is for auditors and administrators".into()));
    }
    if let Some(p) = &a.patient_id
        && !(fhir::is_id(p) || p.contains('|'))
    {
        return Err(bad(format!("patientId: `{p}` is not a FHIR id")));
    }
    for (name, d) in [("from", &a.from), ("to", &a.to)] {
        if let Some(d) = d {
            check_date(name, d)?;
        }
    }
    let as_events = match a.format.as_deref() {
        None | Some("list") => false,
        Some("auditevent") => true,
        Some(other) => return Err(bad(format!("format: `{other}` is not `list` or `auditevent`"))),
    };
    let limit = a.limit.unwrap_or(100).clamp(1, 1000) as usize;
    let disclosures = ctx
        .store
        .disclosures(&cx.principal.tenant, a.patient_id.as_deref(), a.from.as_deref(), a.to.as_deref(), limit)
        .await
        .map_err(access::unavailable)?;
    let audit_events = as_events
        .then(|| crate::balp::bundle(disclosures.iter().map(|d| crate::balp::audit_event(d, &ctx.observer)).collect()));
    Ok(DisclosuresOutput { disclosures, audit_events })
}

impl Health {
    /// The module over `store`, asking `remotes` too.
    pub fn new(store: FhirStore, remotes: Vec<Arc<dyn Remote>>) -> Self {
        Self::observed_by(store, remotes, "plexus")
    }

    /// [`Health::new`], naming the node that observes accesses in exported
    /// AuditEvents (`audit.node_id`).
    pub fn observed_by(store: FhirStore, remotes: Vec<Arc<dyn Remote>>, observer: &str) -> Self {
        let ctx = Arc::new(Ctx { store, remotes, observer: observer.to_owned() });
        let c = |ctx: &Arc<Ctx>| Arc::clone(ctx);
        let (c1, c2, c3, c4, c5, c6, c7) = (c(&ctx), c(&ctx), c(&ctx), c(&ctx), c(&ctx), c(&ctx), c(&ctx));
        let (c8, c9, c10) = (c(&ctx), c(&ctx), c(&ctx));
        let tools = Toolbox::new(NAME)
            .typed_rendered::<_, PatientData, _, _>(
                ToolDef::new(
                    "get_patient_data",
                    "A patient's clinical data of the types you ask for, from Plexus's FHIR store and the hospital \
                     FHIR servers that know the patient, fetched in parallel; a failing source gives a per-type \
                     error beside the rest; with an integrity digest and the sources used",
                )
                .title("Get patient data")
                .read_only(),
                move |cx: CallContext, a: PatientDataArgs| patient_data(Arc::clone(&c1), cx, a),
            )
            .typed(
                ToolDef::new(
                    "search_medical_records",
                    "Search clinical records (conditions, medications, observations, immunizations, procedures, \
                     encounters...) by words in their names, code, date range and patient, across the patients \
                     you may see",
                )
                .title("Search medical records")
                .read_only(),
                move |cx: CallContext, a: SearchArgs| search_tool(Arc::clone(&c2), cx, a),
            )
            .typed(
                ToolDef::new(
                    "get_lab_results",
                    "A patient's laboratory results with units, reference ranges, abnormal flags (H, L, HH, LL) and \
                     trends per test",
                )
                .title("Get lab results")
                .read_only(),
                move |cx: CallContext, a: LabArgs| lab_tool(Arc::clone(&c3), cx, a),
            )
            .typed(
                ToolDef::new(
                    "create_care_summary",
                    "An International Patient Summary-style care summary: active problems, medications, allergies, \
                     immunizations, recent vitals and labs with abnormal results highlighted, recent encounters",
                )
                .title("Create care summary")
                .read_only(),
                move |cx: CallContext, a: SummaryArgs| summary_tool(Arc::clone(&c4), cx, a),
            )
            .typed(
                ToolDef::new(
                    "break_the_glass",
                    "Emergency access to a patient you have no care relationship with: a reason is required, the \
                     access is time-limited, flagged in the audit and raised as an alert",
                )
                .title("Break the glass"),
                move |cx: CallContext, a: BreakGlassArgs| break_glass_tool(Arc::clone(&c5), cx, a),
            )
            .typed(
                ToolDef::new("assign_patient", "Give a user a care assignment for a patient (administrators)")
                    .title("Assign a patient"),
                move |cx: CallContext, a: AssignArgs| assign_tool(Arc::clone(&c6), cx, a),
            )
            .typed(
                ToolDef::new(
                    "get_patient_disclosures",
                    "Who accessed a patient's data, when, why and through which tool (auditors)",
                )
                .title("Patient disclosures")
                .read_only()
                .idempotent(),
                move |cx: CallContext, a: DisclosureArgs| disclosures_tool(Arc::clone(&c7), cx, a),
            )
            .typed_args(
                ToolDef::new(
                    "read_fhir_resource",
                    "One FHIR R4 resource by type and id, if you may see its patient (the FHIR REST read of \
                     /fhir/r4/{type}/{id})",
                )
                .title("Read a FHIR resource")
                .read_only(),
                move |cx: CallContext, a: rest::ReadArgs| rest::read_tool(Arc::clone(&c8), cx, a),
            )
            .typed_args(
                ToolDef::new(
                    "search_fhir_resources",
                    "A FHIR R4 search of one resource type (the FHIR REST search of /fhir/r4/{type}?...): a \
                     searchset Bundle of the matching resources of patients you may see, with paging links",
                )
                .title("Search FHIR resources")
                .read_only(),
                move |cx: CallContext, a: rest::FhirSearchArgs| rest::search_tool(Arc::clone(&c9), cx, a),
            )
            .typed_args(
                ToolDef::new("get_fhir_capabilities", "The CapabilityStatement of the read-only FHIR R4 endpoint")
                    .title("FHIR capabilities")
                    .read_only()
                    .idempotent(),
                rest::capabilities_tool,
            )
            .typed_args(
                ToolDef::new(
                    "get_fhir_store_summary",
                    "How many resources of each type your tenant's FHIR store holds, and which FHIR servers are \
                     configured: counts only, no patient data",
                )
                .title("FHIR store summary")
                .read_only()
                .idempotent(),
                move |cx: CallContext, _a: rest::NoArgs| {
                    let ctx = Arc::clone(&c10);
                    async move {
                        let counts =
                            ctx.store.counts(cx.tenant()).await.map_err(|e| ToolError::unavailable(e.to_string()))?;
                        let total: i64 = counts.values().sum();
                        let servers: Vec<String> = ctx.remotes.iter().map(|r| r.name().to_owned()).collect();
                        Ok(ToolOutput::structured(serde_json::json!({
                            "resources": counts, "total": total, "servers": servers,
                        })))
                    }
                },
            );
        Self { tools, ctx }
    }

    /// The store the module serves.
    pub fn store(&self) -> &FhirStore {
        &self.ctx.store
    }
}

/// `fhir://<Type>/<id>` → (type, id).
pub fn parse_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("fhir://")?;
    let (kind, id) = rest.split_once('/')?;
    (fhir::INDEXED.contains(&kind) && fhir::is_id(id)).then_some((kind, id))
}

#[async_trait::async_trait]
impl Module for Health {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tools(&self) -> Vec<ToolSpec> {
        self.tools.specs()
    }

    fn resource_templates(&self) -> Vec<plexus_core::ResourceTemplateSpec> {
        vec![
            plexus_core::ResourceTemplateSpec::new(RESOURCE_TEMPLATE, "FHIR resource")
                .description(
                    "A FHIR R4 resource of a patient you may see (fhir://Patient/{id}, fhir://Observation/{id}, ...)",
                )
                .mime_type("application/fhir+json"),
        ]
    }

    async fn call(&self, cx: &CallContext, tool: &str, args: Value) -> Result<ToolOutput, ToolError> {
        self.tools.call(cx, tool, args).await
    }

    async fn read(&self, cx: &CallContext, uri: &str) -> Result<plexus_core::ResourceContents, ToolError> {
        let (kind, id) = parse_uri(uri).ok_or_else(|| ToolError::unknown_resource(uri))?;
        let v = self.ctx.read_checked(cx, "resources/read", kind, id).await?;
        Ok(plexus_core::ResourceContents::text(uri, Some("application/fhir+json"), v.to_string()))
    }

    fn routes(&self) -> Vec<plexus_core::spec::RouteSpec> {
        rest::routes()
    }
}
