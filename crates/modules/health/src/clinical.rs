//! Clinical logic behind the patient tools: lab results with reference
//! ranges, flags and trends (`get_lab_results`), an International Patient
//! Summary–style care summary (`create_care_summary`) and the integrity
//! digest of a patient's data (`get_patient_data`).
//!
//! Everything here is pure and deterministic: the tool layer loads the
//! patient's resources (already access-checked) and passes them in; the same
//! resources in any order give the same output. Malformed input never
//! panics: a resource or element that cannot be read is skipped and
//! reported ([`Skipped`], or a note on the value), never guessed.
//!
//! # Decisions
//!
//! **Which Observations are lab results.** Without a code filter: those of
//! category `laboratory` only. With a code filter: those of category
//! `laboratory` or `vital-signs`, or with no category at all, whose code (or
//! one of whose components' codes) matches — the caller named the code, so
//! a blood-pressure or heart-rate series is what was asked for. Other
//! categories (social history, surveys, ...) are never returned. Status
//! `entered-in-error` and `cancelled` are dropped and reported.
//!
//! **Code filter.** `8480-6` matches a coding with that code whose system is
//! LOINC (`http://loinc.org`) or absent; `system|code` matches exactly (an
//! empty system, `|code`, matches codings without a system). A filter that
//! matches a component's code selects only that component of a panel; one
//! that matches the panel's code selects all its components.
//!
//! **Date filter** (`from`, `to`: FHIR `date` or `dateTime`, validated by
//! [`FhirTime::parse`]). FHIR search semantics: a partial date covers its
//! whole year, month or day, and an
//! Observation is kept when its effective time (`effectiveDateTime`,
//! `effectivePeriod`, `effectiveInstant`, else `issued`) overlaps
//! `[from, to]` — so `to=2020-03-06` keeps the whole of that day. An
//! Observation whose time is missing or unreadable is kept only when no date
//! filter is given. A date bound is compared with the Observation's local
//! date and time as recorded (its own zone), a dateTime bound as an
//! instant: `to=2020-03-06` keeps what was recorded on 6 March wherever.
//!
//! **Values.** `valueQuantity` (number, UCUM `code` else `unit`,
//! `comparator`), `valueInteger`, `valueCodeableConcept`, `valueString`,
//! `valueBoolean`; other value types and `dataAbsentReason` are reported as
//! text. An Observation with `component`s (a blood-pressure panel, 85354-9)
//! gives one value per component, coded with the component's code and
//! carrying the panel's code in `panel_code`.
//!
//! **Reference ranges.** The Observation's own `referenceRange` (of type
//! normal or untyped; the component's own for a component) is used first —
//! the laboratory's range beats any table — provided its unit agrees with
//! the value's. Otherwise a built-in table of typical *adult* ranges
//! ([`reference_table_codes`]; from common references: MedlinePlus, Mayo
//! Clinic Laboratories, the ABIM laboratory reference ranges, ACC/AHA 2017
//! for blood pressure, WHO for BMI). Each value says where its range came
//! from (`observation` or `table`). A table range is applied only when the
//! value's unit is one of the table's units for that code (all numerically
//! equivalent, e.g. `10*3/uL` and `10*9/L`; compared ignoring ASCII case and
//! with µ read as u): a glucose in mmol/L is never compared with a range in
//! mg/dL — the value gets `range_unavailable` saying so instead. Sex-specific
//! ranges (hemoglobin, hematocrit, creatinine, erythrocytes, HDL) use the
//! patient's sex when known, else the union of both. When the patient's
//! birth date is known ([`PatientContext`]) and the patient was under 18 on
//! the day of the Observation, table ranges and table critical limits are
//! not applied (they are adult values); the Observation's own range and
//! interpretation still are.
//!
//! **Flags** ([`Flag`]): `LL`/`HH` when a critical limit from the table is
//! crossed — laboratory limits as on typical hospital critical-value lists
//! (e.g. potassium < 2.8 or > 6.2 mmol/L, glucose < 40 or > 500 mg/dL,
//! sodium < 120 or > 160 mmol/L, hemoglobin < 7 g/dL), vital signs at the
//! NEWS2 single-parameter red score (heart rate ≤ 40 or ≥ 131/min,
//! respiratory rate ≤ 8 or ≥ 25/min, SpO2 ≤ 91 %, temperature ≤ 35.0 °C) and
//! systolic < 90 or > 180, diastolic > 120 mm Hg (hypotension; ACC/AHA
//! hypertensive crisis); else `L`/`H` outside the range, `N` inside. A value
//! given as a bound (`<5`) is flagged only when the bound itself lies beyond
//! the limit on the side it points to. Qualitative coded results: SNOMED
//! Detected (260373001) and Positive (10828004) are `A`, Not detected
//! (260415000) and Negative (260385009) are `N`.
//!
//! **Coded interpretation.** An `interpretation` coded on the Observation
//! (HL7 v3 ObservationInterpretation: N, H, L, HH, LL, A, AA, HU, LU, POS,
//! NEG, DET, ND) is reported as `interpretation`, the computed flag as
//! `computed_flag`, and `flag` is the more severe of the two (critical >
//! abnormal > normal; the coded one on a tie): a disagreement never
//! downgrades a result, and `flags_disagree` is set.
//!
//! **Trends.** Per code, values oldest first (ties by Observation id, then
//! component). The trend compares the latest numeric value with the previous
//! numeric value in the same unit (values given as bounds are left out):
//! change, percent change (of the previous value's magnitude; none when it
//! is 0), and a direction: `stable` when the change is under
//! [`STABLE_PERCENT`] (5 %) of the previous value, else `rising` or
//! `falling`. Change is rounded to 4 decimals and percent change to 2.
//!
//! **Care summary.** Sections after the HL7 International Patient Summary:
//! problems (Condition with clinicalStatus active, recurrence or relapse,
//! not refuted or entered-in-error), medications (MedicationRequest active
//! or on-hold), allergies and intolerances (all but clinicalStatus inactive
//! or resolved and verification refuted or entered-in-error; with none, the
//! section says "No known allergies" explicitly, as IPS requires),
//! immunizations (completed, the most recent per vaccine code), the latest
//! value per vital-sign code and per lab code (labs: abnormal first), the
//! last [`RECENT_ENCOUNTERS`] encounters, and counts. Resources of another
//! patient than the summary's Patient are left out and counted.
//!
//! **Digest.** See [`digest`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, Month, OffsetDateTime, UtcOffset};

use crate::fhir;

/// The LOINC code system.
pub const LOINC: &str = "http://loinc.org";
/// A change smaller than this percentage of the previous value is `stable`.
pub const STABLE_PERCENT: f64 = 5.0;
/// How many encounters the care summary lists (the most recent).
pub const RECENT_ENCOUNTERS: usize = 5;
/// The age from which the table's adult ranges apply.
pub const ADULT_AGE: u32 = 18;

const SNOMED: &str = "http://snomed.info/sct";

// ---------------------------------------------------------------- time

/// A validated FHIR `date` or `dateTime` (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`,
/// `YYYY-MM-DDThh:mm:ss[.f+](Z|±hh:mm)`), with the span it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirTime {
    text: String,
    start: OffsetDateTime,
    /// Inclusive.
    end: OffsetDateTime,
    /// A dateTime (an instant), not a date.
    has_time: bool,
}

impl FhirTime {
    /// Parse a FHIR date or dateTime; a time needs seconds and a zone, as
    /// FHIR requires.
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        let (start, end) = span(s).ok_or_else(|| FilterError::BadTime(s.chars().take(64).collect()))?;
        Ok(Self { text: s.to_owned(), start, end, has_time: s.contains('T') })
    }

    /// As given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first instant covered.
    pub fn start(&self) -> OffsetDateTime {
        self.start
    }

    /// The last instant covered (a partial date covers its whole period).
    pub fn end(&self) -> OffsetDateTime {
        self.end
    }
}

fn all_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// The instants a FHIR date/dateTime covers, inclusive.
fn span(s: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    if s.contains('T') {
        let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        return Some((t, t));
    }
    let parts: Vec<&str> = s.split('-').collect();
    let (y, m, d) = match parts.as_slice() {
        [y] if all_digits(y, 4) => (y.parse::<i32>().ok()?, None, None),
        [y, m] if all_digits(y, 4) && all_digits(m, 2) => (y.parse().ok()?, Some(m.parse::<u8>().ok()?), None),
        [y, m, d] if all_digits(y, 4) && all_digits(m, 2) && all_digits(d, 2) => {
            (y.parse().ok()?, Some(m.parse::<u8>().ok()?), Some(d.parse::<u8>().ok()?))
        }
        _ => return None,
    };
    let first = Date::from_calendar_date(y, Month::try_from(m.unwrap_or(1)).ok()?, d.unwrap_or(1)).ok()?;
    let next = match (m, d) {
        (None, _) => Date::from_calendar_date(y.checked_add(1)?, Month::January, 1).ok()?,
        (Some(_), None) if first.month() == Month::December => {
            Date::from_calendar_date(y.checked_add(1)?, Month::January, 1).ok()?
        }
        (Some(_), None) => Date::from_calendar_date(y, first.month().next(), 1).ok()?,
        (Some(_), Some(_)) => first.next_day()?,
    };
    let start = first.midnight().assume_utc();
    let end = next.midnight().assume_utc().checked_sub(Duration::nanoseconds(1))?;
    Some((start, end))
}

/// A full `YYYY-MM-DD` date (the first 10 characters of a dateTime too).
fn full_date(s: &str) -> Option<Date> {
    let d = s.get(..10)?;
    if s.len() > 10 && !s[10..].starts_with('T') {
        return None;
    }
    let (start, _) = span(d)?;
    (d.len() == 10).then_some(start.date())
}

/// Whole years from `born` to `on`.
fn years_between(born: Date, on: Date) -> Option<u32> {
    let mut years = on.year() - born.year();
    if (on.month() as u8, on.day()) < (born.month() as u8, born.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

// ---------------------------------------------------------------- filter

/// Why a lab-results filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    #[error("`{0}` is not a FHIR date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss(Z|+hh:mm))")]
    BadTime(String),
    #[error("from `{from}` is after to `{to}`")]
    Reversed { from: String, to: String },
    #[error("the code filter is empty")]
    EmptyCode,
}

/// The patient's sex, for sex-specific reference ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

/// What the reference tables need to know of the patient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientContext {
    /// A full birth date: adult table ranges are skipped for Observations
    /// made before the 18th birthday. Unknown: adult ranges apply.
    pub birth_date: Option<Date>,
    /// Unknown: the union of the male and female ranges.
    pub sex: Option<Sex>,
}

impl PatientContext {
    /// From a Patient resource (`birthDate`, `gender`); anything else, or
    /// anything unreadable, gives an unknown context.
    pub fn from_patient(patient: &Value) -> Self {
        let birth_date = patient.get("birthDate").and_then(Value::as_str).and_then(full_date);
        let sex = match patient.get("gender").and_then(Value::as_str) {
            Some("male") => Some(Sex::Male),
            Some("female") => Some(Sex::Female),
            _ => None,
        };
        Self { birth_date, sex }
    }
}

/// What `get_lab_results` asks for. Build it with [`LabFilter::parse`] (or
/// set the fields: the times are validated by type).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabFilter {
    /// A LOINC code (`2339-0`) or `system|code`.
    pub code: Option<String>,
    /// Keep Observations whose effective time overlaps `[from, to]`.
    pub from: Option<FhirTime>,
    pub to: Option<FhirTime>,
    /// The patient, for age- and sex-specific table ranges.
    pub patient: PatientContext,
}

impl LabFilter {
    /// Validate the tool's arguments.
    pub fn parse(code: Option<&str>, from: Option<&str>, to: Option<&str>) -> Result<Self, FilterError> {
        let code = match code.map(str::trim) {
            Some("") => return Err(FilterError::EmptyCode),
            c => c.map(str::to_owned),
        };
        let from = from.map(FhirTime::parse).transpose()?;
        let to = to.map(FhirTime::parse).transpose()?;
        if let (Some(f), Some(t)) = (&from, &to)
            && f.start > t.end
        {
            return Err(FilterError::Reversed { from: f.text.clone(), to: t.text.clone() });
        }
        Ok(Self { code, from, to, patient: PatientContext::default() })
    }

    /// The same filter for this patient.
    pub fn for_patient(mut self, patient: PatientContext) -> Self {
        self.patient = patient;
        self
    }
}

// ---------------------------------------------------------------- output types

/// A result flag (HL7 v3 ObservationInterpretation codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub enum Flag {
    /// Normal: within the reference range (or a negative qualitative result).
    N,
    /// Above the reference range.
    H,
    /// Below the reference range.
    L,
    /// Critically high: beyond a critical limit.
    HH,
    /// Critically low: beyond a critical limit.
    LL,
    /// Abnormal (a positive/detected qualitative result, or coded so).
    A,
    /// Critically abnormal (coded on the Observation).
    AA,
}

impl Flag {
    /// 0 normal, 1 abnormal, 2 critical.
    pub fn severity(self) -> u8 {
        match self {
            Flag::N => 0,
            Flag::H | Flag::L | Flag::A => 1,
            Flag::HH | Flag::LL | Flag::AA => 2,
        }
    }

    /// Anything but `N`.
    pub fn is_abnormal(self) -> bool {
        self != Flag::N
    }

    fn as_str(self) -> &'static str {
        match self {
            Flag::N => "N",
            Flag::H => "H",
            Flag::L => "L",
            Flag::HH => "HH",
            Flag::LL => "LL",
            Flag::A => "A",
            Flag::AA => "AA",
        }
    }
}

/// Where a reference range came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RangeSource {
    /// The Observation's own `referenceRange` (the laboratory's).
    Observation,
    /// Plexus's built-in table of typical adult reference ranges.
    Table,
}

/// A reference range; a value is normal when `low <= value <= high`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ReferenceRange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// The unit of `low` and `high` (UCUM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The range as text (the Observation's), or what the table range is
    /// for (`adult`, `adult female`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub source: RangeSource,
}

/// One result: an Observation's value, or one component's.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct LabValue {
    /// The Observation's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observation_id: Option<String>,
    /// Code system (LOINC preferred when the Observation has several codings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// The panel's code when this is one component of a panel (85354-9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panel_code: Option<String>,
    /// `laboratory`, `vital-signs`, ... (the Observation's category).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// When, as recorded (`effective[x]`, the period's start, or `issued`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<String>,
    /// The numeric value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// `<`, `<=`, `>=` or `>`: the value is a bound, not a measurement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparator: Option<String>,
    /// The value's unit: the UCUM code, else the unit as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// A non-numeric value (coded, string, boolean), as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<ReferenceRange>,
    /// Why a numeric value has no reference range (none known, unit
    /// mismatch, adult ranges and a minor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_unavailable: Option<String>,
    /// The flag to act on: the more severe of `computed_flag` and
    /// `interpretation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<Flag>,
    /// The flag computed from the range and the critical limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub computed_flag: Option<Flag>,
    /// The interpretation coded on the Observation, as a flag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpretation: Option<Flag>,
    /// `computed_flag` and `interpretation` are both present and differ.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub flags_disagree: bool,
    /// Anything worth knowing about how this value was read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl LabValue {
    /// Flagged anything but normal.
    pub fn is_abnormal(&self) -> bool {
        self.flag.is_some_and(Flag::is_abnormal)
    }
}

/// Direction of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Rising,
    Falling,
    /// Changed by less than 5 % of the previous value.
    Stable,
}

/// The latest numeric value against the previous one in the same unit.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Trend {
    pub latest: f64,
    pub previous: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_effective: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_effective: Option<String>,
    /// latest − previous, rounded to 4 decimals.
    pub change: f64,
    /// change / |previous| × 100, rounded to 2 decimals; absent when the
    /// previous value is 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent_change: Option<f64>,
    pub direction: Direction,
    /// The stability threshold used, in percent.
    pub stable_below_percent: f64,
}

/// Every value of one code, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct LabSeries {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Oldest first.
    pub values: Vec<LabValue>,
    /// The most recent value.
    pub latest: LabValue,
    /// Absent with fewer than two comparable numeric values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend: Option<Trend>,
    /// Values flagged anything but normal.
    pub abnormal_count: usize,
}

/// A resource (or part of one) that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub struct Skipped {
    /// `Observation/<id>` (or the resource type alone without an id).
    pub resource: String,
    pub reason: String,
}

/// The filter as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AppliedFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Which Observation categories were searched.
    pub categories: Vec<String>,
}

/// The answer of `get_lab_results`: results per code (ordered by code
/// system, then code), with flags and trends.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct LabResults {
    pub filter: AppliedFilter,
    pub series: Vec<LabSeries>,
    /// Values over all series.
    pub total_values: usize,
    /// Values flagged anything but normal.
    pub abnormal_values: usize,
    /// Values flagged critical (HH, LL, AA).
    pub critical_values: usize,
    /// Observations (or components) that could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

// ---------------------------------------------------------------- reference table

#[derive(Debug, Clone, Copy)]
struct Limit {
    value: f64,
    /// Critical at the limit itself too (NEWS2's ≤ and ≥).
    inclusive: bool,
}

const fn lt(value: f64) -> Option<Limit> {
    Some(Limit { value, inclusive: false })
}
const fn le(value: f64) -> Option<Limit> {
    Some(Limit { value, inclusive: true })
}
const fn gt(value: f64) -> Option<Limit> {
    Some(Limit { value, inclusive: false })
}
const fn ge(value: f64) -> Option<Limit> {
    Some(Limit { value, inclusive: true })
}

type Bounds = (Option<f64>, Option<f64>);

#[derive(Debug, Clone, Copy)]
struct Reference {
    codes: &'static [&'static str],
    /// Accepted units, all numerically equivalent; the first is shown.
    units: &'static [&'static str],
    /// Any sex (the union of the sex-specific ranges where there are some).
    any: Bounds,
    male: Option<Bounds>,
    female: Option<Bounds>,
    crit_low: Option<Limit>,
    crit_high: Option<Limit>,
}

const fn r(
    codes: &'static [&'static str],
    units: &'static [&'static str],
    low: Option<f64>,
    high: Option<f64>,
) -> Reference {
    Reference { codes, units, any: (low, high), male: None, female: None, crit_low: None, crit_high: None }
}

impl Reference {
    const fn sexed(self, male: Bounds, female: Bounds) -> Self {
        Self { male: Some(male), female: Some(female), ..self }
    }
    const fn critical(self, crit_low: Option<Limit>, crit_high: Option<Limit>) -> Self {
        Self { crit_low, crit_high, ..self }
    }
}

const MG_DL: &[&str] = &["mg/dL"];
const MMOL_L: &[&str] = &["mmol/L", "meq/L"];
const PER_UL_3: &[&str] = &["10*3/uL", "10*9/L", "10^3/uL", "10^9/L", "K/uL"];
const PER_UL_6: &[&str] = &["10*6/uL", "10*12/L", "10^6/uL", "10^12/L", "M/uL"];
const EGFR: &[&str] = &["mL/min/{1.73_m2}", "mL/min/1.73m2", "mL/min/{1.73m2}", "mL/min/1.73_m2"];

/// Typical adult reference ranges and critical limits, by LOINC code.
const TABLE: &[Reference] = &[
    // Chemistry.
    r(&["2339-0", "2345-7"], MG_DL, Some(70.0), Some(99.0)).critical(lt(40.0), gt(500.0)),
    r(&["2160-0", "38483-4"], MG_DL, Some(0.59), Some(1.35)).sexed((Some(0.74), Some(1.35)), (Some(0.59), Some(1.04))),
    r(&["3094-0", "6299-2"], MG_DL, Some(7.0), Some(20.0)),
    r(&["2951-2", "2947-0"], MMOL_L, Some(135.0), Some(145.0)).critical(lt(120.0), gt(160.0)),
    r(&["2823-3", "6298-4"], MMOL_L, Some(3.5), Some(5.1)).critical(lt(2.8), gt(6.2)),
    r(&["2075-0", "2069-3"], MMOL_L, Some(98.0), Some(107.0)),
    r(&["2028-9", "20565-8"], MMOL_L, Some(22.0), Some(29.0)).critical(lt(10.0), gt(40.0)),
    r(&["17861-6", "49765-1"], MG_DL, Some(8.6), Some(10.3)).critical(lt(6.0), gt(13.0)),
    r(&["4548-4", "17856-6"], &["%"], Some(4.0), Some(5.6)),
    r(&["2093-3"], MG_DL, None, Some(199.0)),
    r(&["18262-6", "2089-1", "13457-7"], MG_DL, None, Some(99.0)),
    r(&["2085-9"], MG_DL, Some(40.0), None).sexed((Some(40.0), None), (Some(50.0), None)),
    r(&["2571-8"], MG_DL, None, Some(149.0)),
    r(&["33914-3", "62238-1", "48642-3", "48643-1", "69405-9", "98979-8"], EGFR, Some(60.0), None),
    // Hematology.
    r(&["718-7"], &["g/dL"], Some(12.0), Some(17.5))
        .sexed((Some(13.5), Some(17.5)), (Some(12.0), Some(15.5)))
        .critical(lt(7.0), gt(20.0)),
    r(&["4544-3"], &["%"], Some(36.0), Some(50.0))
        .sexed((Some(41.0), Some(50.0)), (Some(36.0), Some(44.0)))
        .critical(lt(20.0), gt(60.0)),
    r(&["6690-2"], PER_UL_3, Some(4.5), Some(11.0)).critical(lt(2.0), gt(30.0)),
    r(&["777-3"], PER_UL_3, Some(150.0), Some(450.0)).critical(lt(20.0), gt(1000.0)),
    r(&["789-8"], PER_UL_6, Some(4.2), Some(6.1)).sexed((Some(4.7), Some(6.1)), (Some(4.2), Some(5.4))),
    r(&["787-2"], &["fL"], Some(80.0), Some(100.0)),
    // Vital signs (critical limits: NEWS2 red score; blood pressure:
    // hypotension and ACC/AHA hypertensive crisis).
    r(&["8867-4"], &["/min", "{beats}/min"], Some(60.0), Some(100.0)).critical(le(40.0), ge(131.0)),
    r(&["9279-1"], &["/min", "{breaths}/min"], Some(12.0), Some(20.0)).critical(le(8.0), ge(25.0)),
    r(&["2708-6", "59408-5"], &["%"], Some(95.0), Some(100.0)).critical(le(91.0), None),
    r(&["8310-5"], &["Cel"], Some(36.1), Some(37.2)).critical(le(35.0), None),
    r(&["8480-6"], &["mm[Hg]"], Some(90.0), Some(119.0)).critical(lt(90.0), gt(180.0)),
    r(&["8462-4"], &["mm[Hg]"], Some(60.0), Some(79.0)).critical(None, gt(120.0)),
    r(&["39156-5"], &["kg/m2"], Some(18.5), Some(24.9)),
];

fn table(system: Option<&str>, code: &str) -> Option<&'static Reference> {
    if !matches!(system, None | Some(LOINC)) {
        return None;
    }
    TABLE.iter().find(|r| r.codes.contains(&code))
}

/// The LOINC codes the built-in reference table covers.
pub fn reference_table_codes() -> Vec<&'static str> {
    let mut codes: Vec<&str> = TABLE.iter().flat_map(|r| r.codes.iter().copied()).collect();
    codes.sort_unstable();
    codes
}

fn same_unit(a: &str, b: &str) -> bool {
    let norm = |u: &str| u.replace(['µ', 'μ'], "u").to_ascii_lowercase();
    norm(a) == norm(b)
}

// ---------------------------------------------------------------- reading helpers

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn array_at<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// A CodeableConcept as text: its text, else a coding's display, else code.
fn concept_text(cc: &Value) -> Option<String> {
    str_at(cc, "text")
        .or_else(|| array_at(cc, "coding").find_map(|c| str_at(c, "display")))
        .or_else(|| array_at(cc, "coding").find_map(|c| str_at(c, "code")))
        .map(str::to_owned)
}

/// The first coding's code of a status-like CodeableConcept.
fn first_code(cc: Option<&Value>) -> Option<&str> {
    cc.and_then(|cc| array_at(cc, "coding").find_map(|c| str_at(c, "code")))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CodeRef {
    system: Option<String>,
    code: String,
    display: Option<String>,
}

/// The coding to report: LOINC if there is one, else the first with a code.
fn pick_code(cc: Option<&Value>) -> Option<CodeRef> {
    let cc = cc?;
    let codings: Vec<&Value> = array_at(cc, "coding").filter(|c| str_at(c, "code").is_some()).collect();
    let best = codings.iter().find(|c| str_at(c, "system") == Some(LOINC)).or(codings.first())?;
    Some(CodeRef {
        system: str_at(best, "system").map(str::to_owned),
        code: str_at(best, "code")?.to_owned(),
        display: str_at(best, "display").or_else(|| str_at(cc, "text")).map(str::to_owned),
    })
}

fn code_matches(filter: &str, cc: Option<&Value>) -> bool {
    let Some(cc) = cc else { return false };
    let (system, code) = match filter.split_once('|') {
        Some((s, c)) => (Some(s), c),
        None => (None, filter),
    };
    array_at(cc, "coding").any(|c| {
        str_at(c, "code") == Some(code)
            && match system {
                Some("") => str_at(c, "system").is_none(),
                Some(s) => str_at(c, "system") == Some(s),
                None => matches!(str_at(c, "system"), None | Some(LOINC)),
            }
    })
}

fn label(v: &Value) -> String {
    let kind = str_at(v, "resourceType").unwrap_or("resource");
    match str_at(v, "id") {
        Some(id) => format!("{kind}/{id}"),
        None => kind.to_owned(),
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn fmt_num(x: f64) -> String {
    let s = format!("{x}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_owned)
}

// ---------------------------------------------------------------- interpretation

fn interpretation_flag(code: &str) -> Option<Flag> {
    Some(match code {
        "N" | "NEG" | "ND" => Flag::N,
        "H" | "HU" | ">" => Flag::H,
        "L" | "LU" | "<" => Flag::L,
        "HH" => Flag::HH,
        "LL" => Flag::LL,
        "A" | "POS" | "DET" => Flag::A,
        "AA" => Flag::AA,
        _ => return None,
    })
}

/// The interpretation coded on an Observation (or component): the most
/// severe of its codings that map.
fn coded_interpretation(node: &Value) -> Option<Flag> {
    array_at(node, "interpretation")
        .flat_map(|cc| array_at(cc, "coding"))
        .filter_map(|c| str_at(c, "code").and_then(interpretation_flag))
        .max_by_key(|f| (f.severity(), *f))
}

fn qualitative_flag(cc: &Value) -> Option<Flag> {
    array_at(cc, "coding").find_map(|c| {
        if str_at(c, "system") != Some(SNOMED) {
            return None;
        }
        match str_at(c, "code")? {
            "260373001" | "10828004" => Some(Flag::A),
            "260415000" | "260385009" => Some(Flag::N),
            _ => None,
        }
    })
}

// ---------------------------------------------------------------- observation → values

/// A value with its sort key.
#[derive(Debug, Clone)]
struct Item {
    /// The effective span (inclusive), if readable.
    at: Option<(OffsetDateTime, OffsetDateTime)>,
    component: usize,
    /// The codes the value answers to (its own, and its panel's).
    value: LabValue,
}

impl Item {
    fn sort_key(&self) -> (Option<OffsetDateTime>, Option<&str>, usize) {
        (self.at.map(|a| a.0), self.value.observation_id.as_deref(), self.component)
    }
}

fn category_of(obs: &Value) -> Option<String> {
    let codes: Vec<&str> =
        array_at(obs, "category").flat_map(|cc| array_at(cc, "coding")).filter_map(|c| str_at(c, "code")).collect();
    ["laboratory", "vital-signs"]
        .into_iter()
        .find(|c| codes.contains(c))
        .or_else(|| codes.first().copied())
        .map(str::to_owned)
}

/// The effective time as written, and its span.
fn effective_of(obs: &Value, notes: &mut Vec<String>) -> (Option<String>, Option<(OffsetDateTime, OffsetDateTime)>) {
    let (text, at) = if let Some(t) = str_at(obs, "effectiveDateTime").or_else(|| str_at(obs, "effectiveInstant")) {
        (Some(t), span(t))
    } else if let Some(p) = obs.get("effectivePeriod") {
        let (s, e) = (str_at(p, "start"), str_at(p, "end"));
        let start = s.or(e).and_then(span);
        let end = e.or(s).and_then(span);
        (s.or(e), start.zip(end).map(|(a, b)| (a.0, b.1)))
    } else if let Some(t) = str_at(obs, "issued") {
        (Some(t), span(t))
    } else {
        (None, None)
    };
    match (text, at) {
        (None, _) => notes.push("no effective time".into()),
        (Some(t), None) => {
            notes.push(format!("effective time `{}` is not a FHIR dateTime", t.chars().take(40).collect::<String>()))
        }
        _ => {}
    }
    (text.map(str::to_owned), at)
}

/// What a value node (the Observation or a component) holds.
struct Read {
    value: Option<f64>,
    comparator: Option<String>,
    unit: Option<String>,
    text: Option<String>,
    qualitative: Option<Flag>,
}

fn read_value(node: &Value, notes: &mut Vec<String>) -> Read {
    let mut read = Read { value: None, comparator: None, unit: None, text: None, qualitative: None };
    if let Some(q) = node.get("valueQuantity") {
        read.unit = str_at(q, "code").or_else(|| str_at(q, "unit")).map(str::to_owned);
        read.comparator = str_at(q, "comparator").map(str::to_owned);
        match q.get("value") {
            Some(Value::Number(n)) => read.value = n.as_f64().filter(|x| x.is_finite()),
            Some(other) => {
                notes.push("valueQuantity.value is not a number".into());
                read.text = Some(other.as_str().map_or_else(|| other.to_string(), str::to_owned));
            }
            None => notes.push("valueQuantity has no value".into()),
        }
    } else if let Some(n) = node.get("valueInteger") {
        match n.as_f64() {
            Some(x) => read.value = Some(x),
            None => notes.push("valueInteger is not a number".into()),
        }
    } else if let Some(cc) = node.get("valueCodeableConcept") {
        read.text = concept_text(cc);
        read.qualitative = qualitative_flag(cc);
    } else if let Some(s) = node.get("valueString") {
        read.text = Some(s.as_str().map_or_else(|| s.to_string(), str::to_owned));
    } else if let Some(b) = node.get("valueBoolean") {
        read.text = Some(b.to_string());
    } else if let Some((k, _)) = node.as_object().and_then(|m| {
        m.iter().find(|(k, _)| k.strip_prefix("value").is_some_and(|r| r.starts_with(|c: char| c.is_ascii_uppercase())))
    }) {
        notes.push(format!("{k} is not interpreted"));
    } else if let Some(reason) = node.get("dataAbsentReason") {
        read.text = Some(format!("no value: {}", concept_text(reason).unwrap_or_else(|| "reason not given".into())));
    }
    read
}

/// The node's own normal range, if it has one with bounds or text.
fn observed_range(node: &Value) -> Option<ReferenceRange> {
    array_at(node, "referenceRange")
        .filter(|rr| {
            rr.get("type").is_none_or(|t| matches!(first_code(Some(t)), None | Some("normal")))
                && rr.get("appliesTo").is_none()
        })
        .chain(array_at(node, "referenceRange"))
        .find_map(|rr| {
            let low = rr.get("low").and_then(|q| q.get("value")).and_then(Value::as_f64);
            let high = rr.get("high").and_then(|q| q.get("value")).and_then(Value::as_f64);
            let unit = ["low", "high"]
                .iter()
                .filter_map(|k| rr.get(*k))
                .find_map(|q| str_at(q, "code").or_else(|| str_at(q, "unit")))
                .map(str::to_owned);
            let text = str_at(rr, "text").map(str::to_owned);
            (low.is_some() || high.is_some() || text.is_some()).then_some(ReferenceRange {
                low,
                high,
                unit,
                text,
                source: RangeSource::Observation,
            })
        })
}

fn beyond_low(v: f64, limit: Limit) -> bool {
    if limit.inclusive { v <= limit.value } else { v < limit.value }
}

fn beyond_high(v: f64, limit: Limit) -> bool {
    if limit.inclusive { v >= limit.value } else { v > limit.value }
}

/// The flag of a numeric value against its range and critical limits; a
/// bound (`<5`) only when it settles the question on its side.
fn compute_flag(
    v: f64,
    comparator: Option<&str>,
    range: Option<&ReferenceRange>,
    crit: Option<(Option<Limit>, Option<Limit>)>,
) -> Option<Flag> {
    let (below_ok, above_ok) = match comparator {
        None => (true, true),
        Some("<" | "<=") => (true, false),
        Some(">" | ">=") => (false, true),
        Some(_) => (false, false),
    };
    if let Some((lo, hi)) = crit {
        if below_ok && lo.is_some_and(|l| beyond_low(v, l)) {
            return Some(Flag::LL);
        }
        if above_ok && hi.is_some_and(|h| beyond_high(v, h)) {
            return Some(Flag::HH);
        }
    }
    let range = range?;
    if range.low.is_none() && range.high.is_none() {
        return None;
    }
    if below_ok && range.low.is_some_and(|l| v < l) {
        return Some(Flag::L);
    }
    if above_ok && range.high.is_some_and(|h| v > h) {
        return Some(Flag::H);
    }
    (comparator.is_none()).then_some(Flag::N)
}

fn value_of(
    node: &Value,
    code: CodeRef,
    panel: Option<&CodeRef>,
    base: &LabValue,
    age: Option<u32>,
    ctx: &PatientContext,
) -> LabValue {
    let mut notes = base.notes.clone();
    let read = read_value(node, &mut notes);
    let mut range = None;
    let mut range_unavailable = None;
    let mut crit = None;
    if read.value.is_some() {
        let own = observed_range(node);
        match own {
            Some(r)
                if r.unit.is_some()
                    && read.unit.is_some()
                    && !same_unit(r.unit.as_deref().unwrap_or(""), read.unit.as_deref().unwrap_or("")) =>
            {
                notes.push(format!(
                    "the Observation's range is in {} but the value in {}: not used",
                    r.unit.as_deref().unwrap_or(""),
                    read.unit.as_deref().unwrap_or("")
                ));
            }
            Some(r) => range = Some(r),
            None => {}
        }
        let entry = table(code.system.as_deref(), &code.code);
        let minor = age.filter(|a| *a < ADULT_AGE);
        match (entry, minor) {
            (Some(_), Some(a)) => {
                if range.is_none() {
                    range_unavailable =
                        Some(format!("the table's reference ranges are for adults; the patient was {a} years old"));
                }
            }
            (Some(e), None) => {
                let unit_ok = read.unit.as_deref().is_some_and(|u| e.units.iter().any(|t| same_unit(t, u)));
                if unit_ok {
                    crit = Some((e.crit_low, e.crit_high));
                    if range.is_none() {
                        let (bounds, who) = match (ctx.sex, e.male, e.female) {
                            (Some(Sex::Male), Some(m), _) => (m, "adult male"),
                            (Some(Sex::Female), _, Some(f)) => (f, "adult female"),
                            (_, Some(_), _) => (e.any, "adult, either sex"),
                            _ => (e.any, "adult"),
                        };
                        range = Some(ReferenceRange {
                            low: bounds.0,
                            high: bounds.1,
                            unit: e.units.first().map(|u| (*u).to_owned()),
                            text: Some(who.to_owned()),
                            source: RangeSource::Table,
                        });
                    }
                } else if range.is_none() {
                    range_unavailable = Some(format!(
                        "unit mismatch: the value is in {} but the table's range is in {}",
                        read.unit.as_deref().unwrap_or("no unit"),
                        e.units.first().copied().unwrap_or("?")
                    ));
                } else {
                    notes.push("unit differs from the table's: critical limits not checked".into());
                }
            }
            (None, _) => {
                if range.is_none() {
                    range_unavailable =
                        Some(format!("no reference range on the Observation or in the table for {}", code.code));
                }
            }
        }
    }
    let computed = match read.value {
        Some(v) => compute_flag(v, read.comparator.as_deref(), range.as_ref(), crit),
        None => read.qualitative,
    };
    if read.value.is_some() && read.comparator.is_some() && computed.is_none() && range.is_some() {
        notes.push("the value is a bound: not flagged".into());
    }
    let interpretation = coded_interpretation(node);
    let flag = match (computed, interpretation) {
        (Some(c), Some(i)) => Some(if c.severity() > i.severity() { c } else { i }),
        (c, i) => c.or(i),
    };
    let flags_disagree = matches!((computed, interpretation), (Some(c), Some(i)) if c != i);
    if flags_disagree {
        notes.push(format!(
            "coded interpretation {} and computed flag {} differ: the more severe is kept",
            interpretation.map_or("", Flag::as_str),
            computed.map_or("", Flag::as_str)
        ));
    }
    LabValue {
        system: code.system,
        code: code.code,
        display: code.display,
        panel_code: panel.map(|p| p.code.clone()),
        value: read.value,
        comparator: read.comparator,
        unit: read.unit,
        value_text: read.text,
        range,
        range_unavailable,
        flag,
        computed_flag: computed,
        interpretation,
        flags_disagree,
        notes,
        ..base.clone()
    }
}

/// Every value of one Observation; `matches` decides, per value, from its
/// code node (the component's or the Observation's) and the panel's code
/// node, whether it is wanted.
fn observation_items(
    obs: &Value,
    ctx: &PatientContext,
    wanted: &dyn Fn(Option<&Value>, Option<&Value>) -> bool,
    items: &mut Vec<Item>,
    skipped: &mut Vec<Skipped>,
) {
    let skip = |skipped: &mut Vec<Skipped>, reason: String| skipped.push(Skipped { resource: label(obs), reason });
    if !obs.is_object() {
        skip(skipped, "not a JSON object".into());
        return;
    }
    match str_at(obs, "resourceType") {
        Some("Observation") => {}
        Some(_) => return,
        None => {
            skip(skipped, "no resourceType".into());
            return;
        }
    }
    // What is not asked for is passed over silently, however malformed.
    let components: Vec<&Value> = array_at(obs, "component").collect();
    let has_value =
        obs.as_object().is_some_and(|m| m.keys().any(|k| k.starts_with("value") || k == "dataAbsentReason"));
    let own_wanted = (has_value || components.is_empty()) && wanted(obs.get("code"), None);
    let any_component_wanted = components.iter().any(|c| wanted(c.get("code"), obs.get("code")));
    if !own_wanted && !any_component_wanted {
        return;
    }
    let status = str_at(obs, "status");
    if matches!(status, Some("entered-in-error" | "cancelled")) {
        skip(skipped, format!("status {}", status.unwrap_or_default()));
        return;
    }
    let Some(code) = pick_code(obs.get("code")) else {
        skip(skipped, "no coded code".into());
        return;
    };
    let mut notes = Vec::new();
    let (effective, at) = effective_of(obs, &mut notes);
    let age = match (ctx.birth_date, at) {
        (Some(born), Some((start, _))) => years_between(born, start.date()),
        _ => None,
    };
    let base = LabValue {
        observation_id: str_at(obs, "id").map(str::to_owned),
        system: None,
        code: String::new(),
        display: None,
        panel_code: None,
        category: category_of(obs),
        status: status.map(str::to_owned),
        effective,
        value: None,
        comparator: None,
        unit: None,
        value_text: None,
        range: None,
        range_unavailable: None,
        flag: None,
        computed_flag: None,
        interpretation: None,
        flags_disagree: false,
        notes,
    };
    if own_wanted {
        items.push(Item { at, component: 0, value: value_of(obs, code.clone(), None, &base, age, ctx) });
    }
    for (i, c) in components.iter().enumerate() {
        if !wanted(c.get("code"), obs.get("code")) {
            continue;
        }
        match pick_code(c.get("code")) {
            Some(cc) => items.push(Item { at, component: i + 1, value: value_of(c, cc, Some(&code), &base, age, ctx) }),
            None => skip(skipped, format!("component {i} has no coded code")),
        }
    }
}

fn sort_items(items: &mut [Item]) {
    items.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()).then_with(|| a.value.code.cmp(&b.value.code)));
}

fn trend_of(values: &[Item]) -> Option<Trend> {
    let numeric: Vec<&Item> =
        values.iter().filter(|i| i.value.value.is_some() && i.value.comparator.is_none()).collect();
    let (last, rest) = numeric.split_last()?;
    let prev = rest.iter().rev().find(|p| p.value.unit == last.value.unit)?;
    let (latest, previous) = (last.value.value?, prev.value.value?);
    let change = latest - previous;
    let percent = (previous != 0.0).then(|| change / previous.abs() * 100.0);
    let direction = match percent {
        Some(p) if p.abs() < STABLE_PERCENT => Direction::Stable,
        None if change == 0.0 => Direction::Stable,
        _ if change > 0.0 => Direction::Rising,
        _ => Direction::Falling,
    };
    Some(Trend {
        latest,
        previous,
        unit: last.value.unit.clone(),
        latest_effective: last.value.effective.clone(),
        previous_effective: prev.value.effective.clone(),
        change: round(change, 4),
        percent_change: percent.map(|p| round(p, 2)),
        direction,
        stable_below_percent: STABLE_PERCENT,
    })
}

/// Group values per (system, code), each group oldest first.
fn group(items: Vec<Item>) -> BTreeMap<(String, String), Vec<Item>> {
    let mut groups: BTreeMap<(String, String), Vec<Item>> = BTreeMap::new();
    for item in items {
        let key = (item.value.system.clone().unwrap_or_default(), item.value.code.clone());
        groups.entry(key).or_default().push(item);
    }
    for g in groups.values_mut() {
        sort_items(g);
    }
    groups
}

/// Whether an effective span overlaps `[from, to]`: a dateTime bound
/// compares instants, a date bound the Observation's local (as recorded)
/// wall-clock time, so `to=2020-03-06` keeps an Observation made at
/// 21:09 on 6 March at -08:00 (05:09 UTC on the 7th).
fn in_window(at: Option<(OffsetDateTime, OffsetDateTime)>, from: Option<&FhirTime>, to: Option<&FhirTime>) -> bool {
    if from.is_none() && to.is_none() {
        return true;
    }
    let Some((start, end)) = at else { return false };
    let wall = |t: OffsetDateTime, bound: &FhirTime| if bound.has_time { t } else { t.replace_offset(UtcOffset::UTC) };
    from.is_none_or(|f| wall(end, f) >= f.start) && to.is_none_or(|t| wall(start, t) <= t.end)
}

/// Lab results for `get_lab_results`: the patient's Observations, filtered,
/// read, flagged and grouped per code with a trend. Resources of other types
/// are ignored (a patient's whole record may be passed). See the module
/// documentation for every rule applied.
pub fn lab_results(observations: &[Value], filter: &LabFilter) -> LabResults {
    let code = filter.code.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let categories: Vec<String> = match code {
        Some(_) => vec!["laboratory".into(), "vital-signs".into(), "(none)".into()],
        None => vec!["laboratory".into()],
    };
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    for obs in observations {
        let category = category_of(obs);
        let category_ok = match (code, category.as_deref()) {
            (None, c) => c == Some("laboratory"),
            (Some(_), c) => matches!(c, None | Some("laboratory" | "vital-signs")),
        };
        if str_at(obs, "resourceType") == Some("Observation") && !category_ok {
            continue;
        }
        let wanted = |own: Option<&Value>, panel: Option<&Value>| match code {
            None => true,
            Some(c) => code_matches(c, own) || code_matches(c, panel),
        };
        let mut found = Vec::new();
        observation_items(obs, &filter.patient, &wanted, &mut found, &mut skipped);
        for item in found {
            if in_window(item.at, filter.from.as_ref(), filter.to.as_ref()) {
                items.push(item);
            }
        }
    }
    let mut series = Vec::new();
    for ((_, code), values) in group(items) {
        let Some(latest) = values.last().map(|i| i.value.clone()) else { continue };
        let display = values.iter().rev().find_map(|i| i.value.display.clone());
        series.push(LabSeries {
            system: latest.system.clone(),
            code,
            display,
            trend: trend_of(&values),
            abnormal_count: values.iter().filter(|i| i.value.is_abnormal()).count(),
            values: values.into_iter().map(|i| i.value).collect(),
            latest,
        });
    }
    skipped.sort();
    let all = || series.iter().flat_map(|s| s.values.iter());
    LabResults {
        filter: AppliedFilter {
            code: code.map(str::to_owned),
            from: filter.from.as_ref().map(|f| f.text.clone()),
            to: filter.to.as_ref().map(|t| t.text.clone()),
            categories,
        },
        total_values: all().count(),
        abnormal_values: all().filter(|v| v.is_abnormal()).count(),
        critical_values: all().filter(|v| v.flag.is_some_and(|f| f.severity() == 2)).count(),
        series,
        skipped,
    }
}

// ---------------------------------------------------------------- care summary

/// Who the summary is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PatientHeader {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The official (else first) name: given names and family name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// Whole years on the summary's date, or at death (needs a full birth date).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_years: Option<u32>,
    /// When the patient died, if recorded (`true` when only a boolean is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deceased: Option<String>,
}

/// A coded thing as reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Coded {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The concept's text, else a coding's display, else its code.
    pub display: String,
}

fn coded(cc: Option<&Value>) -> Coded {
    let picked = pick_code(cc);
    let display = cc.and_then(concept_text).unwrap_or_else(|| "(not coded)".into());
    Coded { system: picked.as_ref().and_then(|p| p.system.clone()), code: picked.map(|p| p.code), display }
}

/// An active problem (Condition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Problem {
    pub id: Option<String>,
    #[serde(flatten)]
    pub coded: Coded,
    /// active, recurrence or relapse.
    pub clinical_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
    /// problem-list-item, encounter-diagnosis, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<String>,
}

/// A current medication (MedicationRequest active or on-hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Medication {
    pub id: Option<String>,
    #[serde(flatten)]
    pub coded: Coded,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// The dosage instructions' text, else what their structure says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dosage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authored_on: Option<String>,
}

/// An allergy or intolerance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Allergy {
    pub id: Option<String>,
    #[serde(flatten)]
    pub coded: Coded,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clinical_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_status: Option<String>,
    /// allergy or intolerance.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// food, medication, environment, biologic.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<String>,
    /// low, high, unable-to-assess.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criticality: Option<String>,
    /// Reaction manifestations, with severity when recorded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
}

/// The allergies section; never silent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Allergies {
    /// "No known allergies ..." when none, else how many.
    pub statement: String,
    /// No allergy or intolerance is on record (or only a no-known-allergy
    /// statement).
    pub no_known_allergies: bool,
    /// Highest criticality first.
    pub items: Vec<Allergy>,
}

/// The most recent dose of one vaccine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Vaccination {
    /// The most recent Immunization's id.
    pub id: Option<String>,
    #[serde(flatten)]
    pub coded: Coded,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Completed doses of this vaccine on record.
    pub doses: usize,
}

/// A recent encounter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct EncounterSummary {
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// AMB, EMER, IMP, ... (v3 ActCode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// How much is on record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Counts {
    /// Resources given, per type.
    pub resources: BTreeMap<String, usize>,
    pub active_problems: usize,
    pub medications: usize,
    pub allergies: usize,
    /// Completed Immunizations.
    pub immunizations: usize,
    pub encounters: usize,
    pub vital_sign_values: usize,
    pub lab_values: usize,
    /// Of the latest lab values, those flagged abnormal.
    pub abnormal_latest_labs: usize,
    /// Resources left out because they belong to another patient.
    pub other_patients: usize,
}

/// An International Patient Summary–style care summary.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct CareSummary {
    /// The date the summary was made for (ages are computed on it).
    pub as_of: String,
    pub patient: PatientHeader,
    pub allergies: Allergies,
    /// Most recent onset first.
    pub problems: Vec<Problem>,
    /// Most recently authored first.
    pub medications: Vec<Medication>,
    /// The most recent dose per vaccine, most recent first.
    pub immunizations: Vec<Vaccination>,
    /// The latest value per vital-sign code (blood pressure as its components).
    pub vital_signs: Vec<LabValue>,
    /// The latest value per lab code: abnormal first (critical before
    /// abnormal), then most recent.
    pub labs: Vec<LabValue>,
    /// The most recent encounters, most recent first.
    pub encounters: Vec<EncounterSummary>,
    pub counts: Counts,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

fn human_name(patient: &Value) -> Option<String> {
    let names: Vec<&Value> = array_at(patient, "name").collect();
    let name = names.iter().find(|n| str_at(n, "use") == Some("official")).or(names.first())?;
    if let Some(t) = str_at(name, "text") {
        return Some(t.to_owned());
    }
    let parts: Vec<&str> = array_at(name, "given").filter_map(Value::as_str).chain(str_at(name, "family")).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Sort key for a FHIR date/dateTime string: its first instant (unreadable
/// and missing sort first, i.e. oldest).
fn when(s: Option<&str>) -> Option<OffsetDateTime> {
    s.and_then(span).map(|s| s.0)
}

fn onset_of(condition: &Value) -> Option<String> {
    str_at(condition, "onsetDateTime")
        .or_else(|| condition.get("onsetPeriod").and_then(|p| str_at(p, "start")))
        .or_else(|| str_at(condition, "onsetString"))
        .map(str::to_owned)
        .or_else(|| {
            condition.get("onsetAge").and_then(|a| {
                let v = a.get("value").and_then(Value::as_f64)?;
                Some(format!("at age {} {}", fmt_num(v), str_at(a, "unit").unwrap_or("")).trim().to_owned())
            })
        })
}

fn dosage_of(mr: &Value) -> Option<String> {
    let parts: Vec<String> = array_at(mr, "dosageInstruction")
        .filter_map(|d| {
            if let Some(t) = str_at(d, "text") {
                return Some(t.to_owned());
            }
            let mut bits = Vec::new();
            if let Some(q) = array_at(d, "doseAndRate").find_map(|r| r.get("doseQuantity"))
                && let Some(v) = q.get("value").and_then(Value::as_f64)
            {
                let unit = str_at(q, "unit").or_else(|| str_at(q, "code")).unwrap_or("dose");
                bits.push(format!("{} {unit}", fmt_num(v)));
            }
            if let Some(rep) = d.pointer("/timing/repeat") {
                let f = rep.get("frequency").and_then(Value::as_f64);
                let p = rep.get("period").and_then(Value::as_f64);
                let u = str_at(rep, "periodUnit");
                if let (Some(f), Some(p), Some(u)) = (f, p, u) {
                    bits.push(format!("{} time(s) every {} {u}", fmt_num(f), fmt_num(p)));
                }
            }
            if d.get("asNeededBoolean").and_then(Value::as_bool) == Some(true) {
                bits.push("as needed".into());
            }
            (!bits.is_empty()).then(|| bits.join(", "))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The medication of a MedicationRequest: its CodeableConcept, else the
/// referenced Medication (contained or among `resources`), else the
/// reference's display.
fn medication_of(mr: &Value, resources: &[&Value]) -> Coded {
    if let Some(cc) = mr.get("medicationCodeableConcept") {
        return coded(Some(cc));
    }
    let Some(reference) = mr.get("medicationReference") else { return coded(None) };
    let target = str_at(reference, "reference").and_then(|r| {
        if let Some(local) = r.strip_prefix('#') {
            array_at(mr, "contained").find(|c| str_at(c, "id") == Some(local))
        } else {
            let (kind, id) = fhir::relative(r)?;
            resources.iter().copied().find(|x| str_at(x, "resourceType") == Some(kind) && str_at(x, "id") == Some(id))
        }
    });
    match target.and_then(|t| t.get("code")) {
        Some(cc) => coded(Some(cc)),
        None => Coded {
            system: None,
            code: None,
            display: str_at(reference, "display").unwrap_or("(medication not given)").to_owned(),
        },
    }
}

/// SNOMED codes for "no known allergy" statements.
const NO_KNOWN_ALLERGY: &[&str] = &["716186003", "409137002", "428607008", "429625007"];

fn criticality_rank(c: Option<&str>) -> u8 {
    match c {
        Some("high") => 0,
        Some("unable-to-assess") => 1,
        Some("low") => 2,
        _ => 3,
    }
}

/// The care summary of one patient's resources as of `today`. See the
/// module documentation for what each section holds.
pub fn care_summary(resources: &[Value], today: Date) -> CareSummary {
    let mut patients: Vec<&Value> = resources.iter().filter(|r| str_at(r, "resourceType") == Some("Patient")).collect();
    patients.sort_by(|a, b| str_at(a, "id").cmp(&str_at(b, "id")));
    let patient = patients.first().copied();
    let patient_id = patient.and_then(|p| str_at(p, "id"));
    let mut counts = Counts::default();
    let mut skipped = Vec::new();
    if patients.len() > 1 {
        skipped.extend(patients[1..].iter().map(|p| Skipped {
            resource: label(p),
            reason: "more than one Patient given: the summary is of the first by id".into(),
        }));
    }
    let mine: Vec<&Value> = resources
        .iter()
        .filter(|r| {
            let other = match (patient_id, fhir::patient_of(r)) {
                (Some(p), Some(q)) => p != q,
                _ => false,
            };
            counts.other_patients += usize::from(other);
            !other
        })
        .collect();
    for r in &mine {
        *counts.resources.entry(str_at(r, "resourceType").unwrap_or("(no resourceType)").to_owned()).or_default() += 1;
    }
    let of = |kind: &'static str| mine.iter().copied().filter(move |r| str_at(r, "resourceType") == Some(kind));

    // Patient.
    let header = patient.map_or_else(PatientHeader::default, |p| {
        let born = str_at(p, "birthDate").and_then(full_date);
        let died = str_at(p, "deceasedDateTime");
        let deceased = died
            .map(str::to_owned)
            .or_else(|| (p.get("deceasedBoolean").and_then(Value::as_bool) == Some(true)).then(|| "true".to_owned()));
        let on = died.and_then(full_date).map_or(today, |d| d.min(today));
        PatientHeader {
            id: patient_id.map(str::to_owned),
            name: human_name(p),
            gender: str_at(p, "gender").map(str::to_owned),
            birth_date: str_at(p, "birthDate").map(str::to_owned),
            age_years: born.and_then(|b| years_between(b, on)),
            deceased,
        }
    });
    let ctx = patient.map(PatientContext::from_patient).unwrap_or_default();

    // Problems.
    let mut problems: Vec<(Option<OffsetDateTime>, Problem)> = of("Condition")
        .filter_map(|c| {
            let clinical = first_code(c.get("clinicalStatus"))?;
            if !matches!(clinical, "active" | "recurrence" | "relapse") {
                return None;
            }
            let verification = first_code(c.get("verificationStatus"));
            if matches!(verification, Some("refuted" | "entered-in-error")) {
                return None;
            }
            let onset = onset_of(c);
            Some((
                when(onset.as_deref()),
                Problem {
                    id: str_at(c, "id").map(str::to_owned),
                    coded: coded(c.get("code")),
                    clinical_status: clinical.to_owned(),
                    verification_status: verification.map(str::to_owned),
                    onset,
                    recorded: str_at(c, "recordedDate").map(str::to_owned),
                    category: array_at(c, "category")
                        .filter_map(|cc| first_code(Some(cc)))
                        .map(str::to_owned)
                        .collect(),
                },
            ))
        })
        .collect();
    problems.sort_by(|a, b| {
        b.0.cmp(&a.0).then_with(|| a.1.coded.display.cmp(&b.1.coded.display)).then_with(|| a.1.id.cmp(&b.1.id))
    });
    let problems: Vec<Problem> = problems.into_iter().map(|p| p.1).collect();

    // Medications.
    let mut medications: Vec<Medication> = of("MedicationRequest")
        .filter_map(|m| {
            let status = str_at(m, "status")?;
            matches!(status, "active" | "on-hold").then(|| Medication {
                id: str_at(m, "id").map(str::to_owned),
                coded: medication_of(m, &mine),
                status: status.to_owned(),
                intent: str_at(m, "intent").map(str::to_owned),
                dosage: dosage_of(m),
                authored_on: str_at(m, "authoredOn").map(str::to_owned),
            })
        })
        .collect();
    medications.sort_by(|a, b| {
        when(b.authored_on.as_deref())
            .cmp(&when(a.authored_on.as_deref()))
            .then_with(|| a.coded.display.cmp(&b.coded.display))
            .then_with(|| a.id.cmp(&b.id))
    });

    // Allergies.
    let mut nka_recorded = false;
    let mut allergies: Vec<Allergy> = of("AllergyIntolerance")
        .filter_map(|a| {
            let clinical = first_code(a.get("clinicalStatus"));
            let verification = first_code(a.get("verificationStatus"));
            if matches!(clinical, Some("inactive" | "resolved"))
                || matches!(verification, Some("refuted" | "entered-in-error"))
            {
                return None;
            }
            let code = coded(a.get("code"));
            if code.code.as_deref().is_some_and(|c| NO_KNOWN_ALLERGY.contains(&c)) {
                nka_recorded = true;
                return None;
            }
            let reactions = array_at(a, "reaction")
                .flat_map(|r| {
                    let severity = str_at(r, "severity");
                    array_at(r, "manifestation").filter_map(concept_text).map(move |m| match severity {
                        Some(s) => format!("{m} ({s})"),
                        None => m,
                    })
                })
                .collect();
            Some(Allergy {
                id: str_at(a, "id").map(str::to_owned),
                coded: code,
                clinical_status: clinical.map(str::to_owned),
                verification_status: verification.map(str::to_owned),
                kind: str_at(a, "type").map(str::to_owned),
                category: array_at(a, "category").filter_map(Value::as_str).map(str::to_owned).collect(),
                criticality: str_at(a, "criticality").map(str::to_owned),
                reactions,
                recorded: str_at(a, "recordedDate").map(str::to_owned),
            })
        })
        .collect();
    allergies.sort_by(|a, b| {
        criticality_rank(a.criticality.as_deref())
            .cmp(&criticality_rank(b.criticality.as_deref()))
            .then_with(|| a.coded.display.to_lowercase().cmp(&b.coded.display.to_lowercase()))
            .then_with(|| a.id.cmp(&b.id))
    });
    let statement = match (allergies.len(), nka_recorded) {
        (0, true) => "No known allergies (recorded as such).".to_owned(),
        (0, false) => "No known allergies: no allergy or intolerance is recorded.".to_owned(),
        (1, _) => "1 allergy or intolerance recorded.".to_owned(),
        (n, _) => format!("{n} allergies or intolerances recorded."),
    };

    // Immunizations: the most recent completed dose per vaccine code.
    let mut per_vaccine: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for i in of("Immunization") {
        if str_at(i, "status") != Some("completed") {
            continue;
        }
        counts.immunizations += 1;
        let c = coded(i.get("vaccineCode"));
        let key = (c.system.unwrap_or_default(), c.code.unwrap_or(c.display));
        per_vaccine.entry(key).or_default().push(i);
    }
    let date_of =
        |i: &Value| str_at(i, "occurrenceDateTime").or_else(|| str_at(i, "occurrenceString")).map(str::to_owned);
    let mut immunizations: Vec<Vaccination> = per_vaccine
        .into_values()
        .filter_map(|doses| {
            let latest = doses.iter().copied().max_by(|a, b| {
                when(date_of(a).as_deref())
                    .cmp(&when(date_of(b).as_deref()))
                    .then_with(|| str_at(b, "id").cmp(&str_at(a, "id")))
            })?;
            Some(Vaccination {
                id: str_at(latest, "id").map(str::to_owned),
                coded: coded(latest.get("vaccineCode")),
                date: date_of(latest),
                doses: doses.len(),
            })
        })
        .collect();
    immunizations.sort_by(|a, b| {
        when(b.date.as_deref()).cmp(&when(a.date.as_deref())).then_with(|| a.coded.display.cmp(&b.coded.display))
    });

    // Vital signs and labs: the latest value per code.
    let mut items = Vec::new();
    for o in of("Observation") {
        let category = category_of(o);
        if matches!(category.as_deref(), Some("laboratory" | "vital-signs")) {
            observation_items(o, &ctx, &|_, _| true, &mut items, &mut skipped);
        }
    }
    let (vital_items, lab_items): (Vec<Item>, Vec<Item>) =
        items.into_iter().partition(|i| i.value.category.as_deref() == Some("vital-signs"));
    counts.vital_sign_values = vital_items.len();
    counts.lab_values = lab_items.len();
    let latest = |items: Vec<Item>| -> Vec<Item> { group(items).into_values().filter_map(|mut g| g.pop()).collect() };
    let mut vitals = latest(vital_items);
    vitals.sort_by(|a, b| {
        let name = |i: &Item| i.value.display.clone().unwrap_or_default().to_lowercase();
        name(a).cmp(&name(b)).then_with(|| a.value.code.cmp(&b.value.code))
    });
    let mut labs = latest(lab_items);
    labs.sort_by(|a, b| {
        let sev = |i: &Item| i.value.flag.map_or(0, Flag::severity);
        sev(b).cmp(&sev(a)).then_with(|| b.sort_key().cmp(&a.sort_key())).then_with(|| a.value.code.cmp(&b.value.code))
    });
    let labs: Vec<LabValue> = labs.into_iter().map(|i| i.value).collect();
    counts.abnormal_latest_labs = labs.iter().filter(|l| l.is_abnormal()).count();

    // Encounters.
    let mut encounters: Vec<&Value> = of("Encounter").collect();
    counts.encounters = encounters.len();
    let start_of = |e: &Value| e.get("period").and_then(|p| str_at(p, "start")).map(str::to_owned);
    encounters.sort_by(|a, b| {
        when(start_of(b).as_deref())
            .cmp(&when(start_of(a).as_deref()))
            .then_with(|| str_at(a, "id").cmp(&str_at(b, "id")))
    });
    let encounters: Vec<EncounterSummary> = encounters
        .into_iter()
        .take(RECENT_ENCOUNTERS)
        .map(|e| EncounterSummary {
            id: str_at(e, "id").map(str::to_owned),
            status: str_at(e, "status").map(str::to_owned),
            class: e.get("class").and_then(|c| str_at(c, "code").or_else(|| str_at(c, "display"))).map(str::to_owned),
            kind: array_at(e, "type").find_map(concept_text),
            start: start_of(e),
            end: e.get("period").and_then(|p| str_at(p, "end")).map(str::to_owned),
            reasons: array_at(e, "reasonCode")
                .filter_map(concept_text)
                .chain(array_at(e, "reasonReference").filter_map(|r| str_at(r, "display").map(str::to_owned)))
                .collect(),
        })
        .collect();

    skipped.sort();
    counts.active_problems = problems.len();
    counts.medications = medications.len();
    counts.allergies = allergies.len();
    CareSummary {
        as_of: format!("{:04}-{:02}-{:02}", today.year(), today.month() as u8, today.day()),
        patient: header,
        allergies: Allergies { statement, no_known_allergies: allergies.is_empty(), items: allergies },
        problems,
        medications,
        immunizations,
        vital_signs: vitals.into_iter().map(|i| i.value).collect(),
        labs,
        encounters,
        counts,
        skipped,
    }
}

// ---------------------------------------------------------------- Markdown

/// Text safe to put in Markdown: one line, Markdown's active characters
/// escaped.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars() {
            if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|') {
                out.push('\\');
            }
            if !c.is_control() {
                out.push(c);
            }
        }
    }
    out
}

/// The date part of a FHIR dateTime, for reading.
fn day(s: &str) -> &str {
    s.get(..10).filter(|d| full_date(d).is_some()).unwrap_or(s)
}

fn value_line(v: &LabValue) -> String {
    let mut line = format!("- {}: ", md(v.display.as_deref().unwrap_or(&v.code)));
    match (v.value, &v.value_text) {
        (Some(x), _) => {
            line.push_str(&md(&format!("{}{}", v.comparator.as_deref().unwrap_or(""), fmt_num(x))));
            if let Some(u) = &v.unit {
                let _ = write!(line, " {}", md(u));
            }
        }
        (None, Some(t)) => line.push_str(&md(t)),
        (None, None) => line.push_str("(no value)"),
    }
    if let Some(f) = v.flag.filter(|f| f.is_abnormal()) {
        let _ = write!(line, " **{}**", f.as_str());
    }
    if let Some(r) = &v.range {
        let bounds = match (r.low, r.high) {
            (Some(l), Some(h)) => format!("{}–{}", fmt_num(l), fmt_num(h)),
            (Some(l), None) => format!("≥ {}", fmt_num(l)),
            (None, Some(h)) => format!("≤ {}", fmt_num(h)),
            (None, None) => r.text.clone().unwrap_or_default(),
        };
        let source = match r.source {
            RangeSource::Observation => "laboratory",
            RangeSource::Table => "table",
        };
        let _ = write!(line, " (range {} {}, {source})", md(&bounds), md(r.unit.as_deref().unwrap_or("")).trim_end());
    }
    if let Some(e) = &v.effective {
        let _ = write!(line, ", {}", md(day(e)));
    }
    line
}

/// The care summary as Markdown (the tool's text content, and the input to
/// an optional model-written narrative).
pub fn summary_text(s: &CareSummary) -> String {
    let mut out = String::new();
    let p = &s.patient;
    let _ = writeln!(out, "# Care summary: {}\n", md(p.name.as_deref().unwrap_or("unknown patient")));
    let mut facts = Vec::new();
    if let Some(g) = &p.gender {
        facts.push(md(g));
    }
    if let Some(b) = &p.birth_date {
        facts.push(format!("born {}", md(b)));
    }
    if let Some(a) = p.age_years {
        facts.push(if p.deceased.is_some() { format!("died at {a}") } else { format!("age {a}") });
    } else if p.deceased.is_some() {
        facts.push("deceased".into());
    }
    if let Some(id) = &p.id {
        facts.push(format!("Patient/{}", md(id)));
    }
    facts.push(format!("as of {}", s.as_of));
    let _ = writeln!(out, "{}\n", facts.join(" · "));

    let _ = writeln!(out, "## Allergies and intolerances\n\n{}", md(&s.allergies.statement));
    for a in &s.allergies.items {
        let mut line = format!("- **{}**", md(&a.coded.display));
        let mut what = Vec::new();
        if let Some(k) = &a.kind {
            what.push(format!("{}{}", a.category.first().map(|c| format!("{} ", md(c))).unwrap_or_default(), md(k)));
        }
        if let Some(c) = &a.criticality {
            what.push(format!("criticality {}", md(c)));
        }
        if let Some(c) = &a.clinical_status {
            what.push(md(c));
        }
        if !what.is_empty() {
            let _ = write!(line, " — {}", what.join(", "));
        }
        if !a.reactions.is_empty() {
            let _ = write!(line, "; reactions: {}", a.reactions.iter().map(|r| md(r)).collect::<Vec<_>>().join(", "));
        }
        let _ = writeln!(out, "{line}");
    }

    let _ = writeln!(out, "\n## Active problems ({})\n", s.problems.len());
    if s.problems.is_empty() {
        let _ = writeln!(out, "None recorded.");
    }
    for pr in &s.problems {
        let since = pr.onset.as_deref().map(|o| format!(" — since {}", md(day(o)))).unwrap_or_default();
        let _ = writeln!(out, "- {}{since}", md(&pr.coded.display));
    }

    let _ = writeln!(out, "\n## Medications ({})\n", s.medications.len());
    if s.medications.is_empty() {
        let _ = writeln!(out, "None recorded.");
    }
    for m in &s.medications {
        let mut line = format!("- {} — {}", md(&m.coded.display), md(&m.status));
        if let Some(d) = &m.dosage {
            let _ = write!(line, "; {}", md(d));
        }
        if let Some(a) = &m.authored_on {
            let _ = write!(line, "; prescribed {}", md(day(a)));
        }
        let _ = writeln!(out, "{line}");
    }

    let _ = writeln!(out, "\n## Immunizations (most recent per vaccine)\n");
    if s.immunizations.is_empty() {
        let _ = writeln!(out, "None recorded.");
    }
    for i in &s.immunizations {
        let date = i.date.as_deref().map(|d| md(day(d))).unwrap_or_else(|| "date unknown".into());
        let _ = writeln!(
            out,
            "- {} — {date} ({} dose{})",
            md(&i.coded.display),
            i.doses,
            if i.doses == 1 { "" } else { "s" }
        );
    }

    let _ = writeln!(out, "\n## Vital signs (latest)\n");
    if s.vital_signs.is_empty() {
        let _ = writeln!(out, "None recorded.");
    }
    for v in &s.vital_signs {
        let _ = writeln!(out, "{}", value_line(v));
    }

    let _ = writeln!(
        out,
        "\n## Laboratory results (latest per test, abnormal first: {} abnormal)\n",
        s.counts.abnormal_latest_labs
    );
    if s.labs.is_empty() {
        let _ = writeln!(out, "None recorded.");
    }
    for v in &s.labs {
        let _ = writeln!(out, "{}", value_line(v));
    }

    let _ = writeln!(out, "\n## Recent encounters ({} of {})\n", s.encounters.len(), s.counts.encounters);
    if s.encounters.is_empty() {
        let _ = writeln!(out, "None recorded.");
    }
    for e in &s.encounters {
        let mut line = format!("- {}", e.start.as_deref().map(|d| md(day(d))).unwrap_or_else(|| "date unknown".into()));
        if let Some(c) = &e.class {
            let _ = write!(line, " {}", md(c));
        }
        if let Some(k) = &e.kind {
            let _ = write!(line, " — {}", md(k));
        }
        if !e.reasons.is_empty() {
            let _ = write!(line, "; reason: {}", e.reasons.iter().map(|r| md(r)).collect::<Vec<_>>().join(", "));
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

// ---------------------------------------------------------------- digest

/// Canonical JSON: no whitespace, object keys sorted by code point (byte
/// order of their UTF-8), strings and numbers written as serde_json writes
/// them. Independent of serde_json's `preserve_order` feature.
pub fn canonical_json(v: &Value) -> String {
    // serde_json's maps are B-trees (the `preserve_order` feature is off in
    // this workspace; the test below would catch it being turned on), so
    // its compact output already has keys in code-point order.
    serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
}

/// The integrity digest of a set of resources, `sha256:<64 lowercase hex>`.
///
/// How to recompute it: sort the resources by `resourceType`, then `id`
/// (a missing or non-string one counts as the empty string), then by their
/// canonical JSON; write them as one JSON array in canonical form — no
/// whitespace, object keys sorted by Unicode code point, strings escaped
/// minimally (`\"`, `\\`, `\b \f \n \r \t`, other control characters as
/// `\u00xx` lowercase; non-ASCII as UTF-8), numbers as shortest round-trip
/// decimals with an integral float keeping `.0`; SHA-256 the UTF-8 bytes.
/// In Python:
///
/// ```text
/// c = lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
/// k = lambda r: (r.get("resourceType") if isinstance(r.get("resourceType"), str) else "",
///                r.get("id") if isinstance(r.get("id"), str) else "", c(r))
/// "sha256:" + hashlib.sha256(c(sorted(resources, key=k)).encode()).hexdigest()
/// ```
///
/// (Python agrees except for numbers in exponent notation, which it writes
/// `1e-05` where serde_json writes `1e-5`; FHIR resources rarely hold any.)
pub fn digest<'a>(resources: impl IntoIterator<Item = &'a Value>) -> String {
    let texts: Vec<(&Value, String)> = resources.into_iter().map(|r| (r, canonical_json(r))).collect();
    let key = |r: &'a Value, k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
    digest_canonical(texts.iter().map(|(r, t)| (key(r, "resourceType"), key(r, "id"), t.as_str())).collect())
}

/// [`digest`] of resources already in canonical JSON, as
/// `(resourceType, id, canonical JSON)`: an answer that writes its
/// resources' JSON anyway hashes that text instead of writing it again.
pub fn digest_canonical(mut rows: Vec<(&str, &str, &str)>) -> String {
    rows.sort_unstable();
    let mut hasher = Sha256::new();
    hasher.update(b"[");
    for (i, (_, _, text)) in rows.iter().enumerate() {
        if i > 0 {
            hasher.update(b",");
        }
        hasher.update(text.as_bytes());
    }
    hasher.update(b"]");
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clinical_spans_of_partial_dates() {
        let (s, e) = span("2020").unwrap();
        assert_eq!((s.year(), e.year(), e.month(), e.day()), (2020, 2020, Month::December, 31));
        let (_, e) = span("2020-02").unwrap();
        assert_eq!(e.day(), 29);
        let (_, e) = span("2019-12").unwrap();
        assert_eq!((e.year(), e.month()), (2019, Month::December));
        let (s, e) = span("2020-03-06T20:20:23-08:00").unwrap();
        assert_eq!(s, e);
        for bad in ["", "20", "2020-13", "2020-02-30", "2020-03-06T20:20", "2020-03-06T20:20:23", "2020/03/06", "x"] {
            assert!(span(bad).is_none(), "{bad}");
        }
        assert_eq!(full_date("2009-04-29"), Date::from_calendar_date(2009, Month::April, 29).ok());
        assert_eq!(full_date("2009-04"), None);
        let born = Date::from_calendar_date(2008, Month::February, 29).unwrap();
        assert_eq!(years_between(born, Date::from_calendar_date(2026, Month::February, 28).unwrap()), Some(17));
        assert_eq!(years_between(born, Date::from_calendar_date(2026, Month::March, 1).unwrap()), Some(18));
        assert_eq!(years_between(born, Date::from_calendar_date(2000, Month::March, 1).unwrap()), None);
    }

    #[test]
    fn clinical_units_and_canonical_json() {
        assert!(same_unit("mmol/l", "mmol/L") && same_unit("µmol/L", "umol/L"));
        assert!(!same_unit("mg/dL", "mmol/L"));
        let v = json!({"b": [1, 1.5, "x\n\u{1}é"], "a": {"d": null, "c": true}});
        assert_eq!(canonical_json(&v), r#"{"a":{"c":true,"d":null},"b":[1,1.5,"x\n\u0001é"]}"#);
        assert_eq!(fmt_num(5.0), "5");
        assert_eq!(fmt_num(40.894), "40.894");
        assert!(reference_table_codes().contains(&"2823-3"));
    }

    #[test]
    fn clinical_output_schemas_and_serialization() {
        for schema in [
            serde_json::to_value(schemars::schema_for!(LabResults)).unwrap(),
            serde_json::to_value(schemars::schema_for!(CareSummary)).unwrap(),
        ] {
            assert_eq!(schema["type"], "object", "{schema}");
        }
        let care = serde_json::to_value(schemars::schema_for!(CareSummary)).unwrap().to_string();
        assert!(care.contains("No known allergies"), "doc comments become descriptions");
        let o = json!({"resourceType": "Observation", "id": "k", "status": "final",
                       "category": [{"coding": [{"code": "laboratory"}]}],
                       "code": {"coding": [{"system": LOINC, "code": "2823-3", "display": "Potassium"}]},
                       "effectiveDateTime": "2024-01-01", "valueQuantity": {"value": 6.5, "code": "mmol/L"}});
        let v = serde_json::to_value(lab_results(&[o], &LabFilter::default())).unwrap();
        let latest = &v["series"][0]["latest"];
        assert_eq!((latest["flag"].as_str(), latest["range"]["source"].as_str()), (Some("HH"), Some("table")));
        assert!(latest.get("flags_disagree").is_none() && latest.get("notes").is_none());
    }
}
