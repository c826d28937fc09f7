//! Synthetic patients for demos and benchmarks: seeded, deterministic,
//! realistic enough to exercise every part of the module. **Every person,
//! clinician, organization, identifier, address and value here is made up**
//! (every resource carries the HL7 tag `v3-ActReason#HTEST`, "test health
//! data"); nothing is copied from Synthea or any real record.
//!
//! A population is a seed. [`directory`] is its organizations (two
//! hospitals, a family practice, a paediatric practice) with their 20
//! practitioners and their roles, as one FHIR `transaction` Bundle; import
//! it first. [`patient`] `(seed, n)` is patient `n` as a `transaction`
//! Bundle: entries have `fullUrl: urn:uuid:<id>` and `request: PUT
//! <Type>/<id>`, refer to each other by `urn:uuid:`, and to the directory
//! relatively (`Practitioner/<id>`, `Organization/<id>`). Patients are
//! independent: patient `n` is computed from `(seed, n)` alone (SplitMix64
//! seeded from both), without patients `0..n`. The same `(seed, n)` gives the
//! same JSON on every run and platform: no clock ("today" is [`TODAY`]),
//! no hash-map order, normal deviates from sums of uniforms (no
//! libm-dependent `ln`/`cos`).
//!
//! Ids are UUID-shaped (valid FHIR ids), unique within a population: the
//! last 64 bits are a keyed bijection of `(n, counter)` (for `n` below
//! 2^48 − 1; the directory uses 2^48 − 1). The Patient carries two
//! identifiers: `urn:plexus:mrn` ([`MRN_SYSTEM`]) with value
//! `MRN-<seed>-<n>`, and its home hospital's medical record number, whose
//! system is that hospital's OID ([`HOSPITAL_SYSTEMS`], under HL7's
//! example root 2.16.840.1.113883.19, which names no real organization) and
//! whose value is `<seed mod 1000, 3 digits><n, 7+ digits>`; the
//! hospital's Organization carries the same OID as its identifier, so
//! routing can go by either.
//!
//! # What a patient has
//!
//! Between [`RESOURCES_PER_PATIENT`] (30 to 60) resources, about 45 on
//! average (per patient over 1,000: 29 Observations, 3.4 Encounters, 3.2
//! DiagnosticReports, 2.2 Immunizations, 1.9 Conditions, 1.5 Procedures,
//! 1.3 MedicationRequests, 0.4 AllergyIntolerances, the Patient and a
//! CareTeam):
//! - the Patient: English or Japanese name (`山田 太郎`, with a romanised
//!   `usual` name), gender, birth date at ages 0–99 (22% children, 18% over
//!   64, 3% over 89), a Massachusetts or New Hampshire address with a
//!   5-digit ZIP, phone (555-01xx), e-mail at example.com, marital status,
//!   language, PCP and home hospital; deceased rarely (about 1%, all over 40);
//! - a CareTeam: the PCP and up to two specialists for the patient's
//!   conditions (`inactive` once deceased);
//! - about three years of care: well visits (two annual ones for adults,
//!   three for children, the infant schedule under 3) with vital signs,
//!   adult labs, immunizations and screenings; chronic Conditions by
//!   age-dependent prevalence (diabetes, hypertension, hyperlipidaemia,
//!   asthma, CKD 3, obesity, prediabetes, anaemia, osteoarthritis, chronic
//!   sinusitis) with their MedicationRequests and a follow-up visit; 0–2
//!   AllergyIntolerances; acute episodes (sinusitis, pharyngitis, bronchitis,
//!   strep throat, otitis media, sprain, fracture, laceration: an ambulatory
//!   or emergency encounter, the diagnosis — resolved with an abatement
//!   unless recent —, vitals, a procedure, a prescription); rarely a
//!   hospital stay (pneumonia or appendectomy).
//!
//! Medications (RxNorm): metformin 860975, lisinopril 314076 (sometimes
//! stopped for amlodipine 308136, or with hydrochlorothiazide 310798),
//! simvastatin 314231, fluticasone 895994 and albuterol 745679 inhalers,
//! ferrous sulfate 310325, acetaminophen 313782; for acute episodes
//! ibuprofen 310965, amoxicillin 308192, penicillin V 834061,
//! amoxicillin/clavulanate 562251 — never a penicillin to a patient allergic
//! to penicillin, nor ibuprofen to one allergic to aspirin. Statuses:
//! `active`, `completed` (finished courses), `stopped` (switched, or the
//! patient died). Vaccines (CVX): the childhood schedule (08, 20, 10, 133,
//! 03, 21, 115, 62, 114), influenza 140, COVID-19 208, Td 113, zoster 187,
//! pneumococcal 33.
//!
//! # Code systems
//!
//! SNOMED CT ([`SNOMED`]) for encounter types, conditions, procedures,
//! allergy substances and reactions, specialties; LOINC ([`LOINC`]) for
//! observations and report panels; RxNorm ([`RXNORM`]) for medications and
//! drug allergies; CVX ([`CVX`]) for vaccines; UCUM ([`UCUM`]) for every
//! quantity; HL7 terminology (`http://terminology.hl7.org/CodeSystem/...`)
//! for encounter class (v3-ActCode AMB/EMER/IMP), condition and allergy
//! clinical/verification status, observation category and interpretation
//! (v3-ObservationInterpretation N/H/L/HH/LL), marital status; BCP 47 for
//! languages.
//!
//! # Vital signs (LOINC, UCUM)
//!
//! 8302-2 body height `cm`, 29463-7 body weight `kg`, 39156-5 BMI `kg/m2`
//! (weight / height², consistent), 85354-9 blood pressure panel with
//! components 8480-6 systolic and 8462-4 diastolic `mm[Hg]`, 8867-4 heart
//! rate `/min`, 9279-1 respiratory rate `/min`, 8310-5 body temperature
//! `Cel`, 2708-6 oxygen saturation `%`; all by age (growth curves, child
//! heart and breathing rates) and condition (hypertension, obesity, fever,
//! respiratory illness).
//!
//! # Laboratory (LOINC, UCUM, adult reference ranges)
//!
//! | LOINC  | test                     | unit      | range       | critical     |
//! |--------|--------------------------|-----------|-------------|--------------|
//! | 2339-0 | glucose                  | mg/dL     | 70–99       | < 40, > 400  |
//! | 2160-0 | creatinine               | mg/dL     | 0.6–1.3     |              |
//! | 718-7  | hemoglobin               | g/dL      | 12.0–17.5   | < 7          |
//! | 6690-2 | leukocytes               | 10*3/uL   | 4.0–11.0    | < 2, > 30    |
//! | 2823-3 | potassium                | mmol/L    | 3.5–5.1     | < 2.8, > 6.2 |
//! | 2951-2 | sodium                   | mmol/L    | 136–145     | < 120, > 160 |
//! | 4548-4 | hemoglobin A1c           | %         | 4.0–5.6     |              |
//! | 2093-3 | cholesterol              | mg/dL     | 100–199     |              |
//!
//! (also as [`LABS`]). Adults (18 and over at the end of their record) have
//! labs at each well visit: a 24323-8 metabolic panel (glucose, creatinine,
//! potassium, sodium) and a 58410-2 CBC (hemoglobin, leukocytes) as DiagnosticReports whose `result`
//! references the Observations, cholesterol, and HbA1c from 35 or when
//! (pre)diabetic; so every test has a trend. Each has `referenceRange`
//! `{low, high}` and an `interpretation` consistent with it: `N` inside,
//! `H`/`L` outside, `HH`/`LL` beyond the critical limits. Values are mostly
//! normal, per patient (a personal baseline plus noise); conditions shift
//! them (diabetes: glucose and HbA1c; prediabetes; chronic kidney disease:
//! creatinine, potassium; anaemia: hemoglobin; hyperlipidaemia:
//! cholesterol, improving on a statin; infection: leukocytes), and about 1
//! draw in 70 has one critical value.
//!
//! # Speed
//!
//! 10,000 patients (450,000 resources) take about 2.2 s of CPU in release
//! on a busy 2-core machine, less than serde_json takes to parse the same
//! JSON: the cost is building the `Value` trees (about 100 allocations per
//! resource), so values are moved into them (`obj!`), never re-serialised.

use std::fmt::Write as _;

use serde_json::Value;

/// A JSON object from `"key" => value` pairs, the values moved in
/// (`serde_json::json!` re-serialises every interpolated `Value`: a deep
/// copy per nesting level, which made generation several times slower).
macro_rules! obj {
    ($($k:literal => $v:expr),* $(,)?) => {{
        let mut m = serde_json::Map::new();
        $(m.insert(String::from($k), Value::from($v));)*
        Value::Object(m)
    }};
}

/// "Today" of every population, (year, month, day): nothing happens after it.
pub const TODAY: (i32, u32, u32) = (2026, 6, 30);
/// The Patient's Plexus identifier system; values are `MRN-<seed>-<n>`.
pub const MRN_SYSTEM: &str = "urn:plexus:mrn";
/// The two hospitals' record-number systems (their OIDs, under HL7's
/// example root `2.16.840.1.113883.19`): a patient's second identifier.
pub const HOSPITAL_SYSTEMS: [&str; 2] = ["urn:oid:2.16.840.1.113883.19.5.1", "urn:oid:2.16.840.1.113883.19.5.2"];
/// How many resources (Patient included) a patient bundle holds.
pub const RESOURCES_PER_PATIENT: std::ops::RangeInclusive<usize> = 30..=60;

pub const LOINC: &str = "http://loinc.org";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub const CVX: &str = "http://hl7.org/fhir/sid/cvx";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const NPI: &str = "http://hl7.org/fhir/sid/us-npi";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const DISCHARGE: &str = "http://terminology.hl7.org/CodeSystem/discharge-disposition";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const CONDITION_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
const ALLERGY_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
const ALLERGY_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";

/// A laboratory test: LOINC code, UCUM unit, adult reference range and
/// critical limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lab {
    pub loinc: &'static str,
    pub display: &'static str,
    pub unit: &'static str,
    pub low: f64,
    pub high: f64,
    pub critical_low: Option<f64>,
    pub critical_high: Option<f64>,
    /// Decimal places reported.
    pub decimals: u8,
}

impl Lab {
    /// The v3-ObservationInterpretation code and display of `value`.
    pub fn interpret(&self, value: f64) -> (&'static str, &'static str) {
        if self.critical_low.is_some_and(|c| value < c) {
            ("LL", "Critical low")
        } else if value < self.low {
            ("L", "Low")
        } else if self.critical_high.is_some_and(|c| value > c) {
            ("HH", "Critical high")
        } else if value > self.high {
            ("H", "High")
        } else {
            ("N", "Normal")
        }
    }
}

const GLU: usize = 0;
const CREA: usize = 1;
const HGB: usize = 2;
const WBC: usize = 3;
const K: usize = 4;
const NA: usize = 5;
const A1C: usize = 6;
const CHOL: usize = 7;

const fn lab(
    loinc: &'static str,
    display: &'static str,
    unit: &'static str,
    (low, high): (f64, f64),
    (critical_low, critical_high): (Option<f64>, Option<f64>),
    decimals: u8,
) -> Lab {
    Lab { loinc, display, unit, low, high, critical_low, critical_high, decimals }
}

/// The laboratory tests generated, with their adult reference ranges.
pub const LABS: [Lab; 8] = [
    lab("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", (70.0, 99.0), (Some(40.0), Some(400.0)), 0),
    lab("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", (0.6, 1.3), (None, None), 2),
    lab("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", (12.0, 17.5), (Some(7.0), None), 1),
    lab(
        "6690-2",
        "Leukocytes [#/volume] in Blood by Automated count",
        "10*3/uL",
        (4.0, 11.0),
        (Some(2.0), Some(30.0)),
        1,
    ),
    lab("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", (3.5, 5.1), (Some(2.8), Some(6.2)), 1),
    lab("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", (136.0, 145.0), (Some(120.0), Some(160.0)), 0),
    lab("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", (4.0, 5.6), (None, None), 1),
    lab("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", (100.0, 199.0), (None, None), 0),
];

// Vital signs: LOINC code, display, UCUM unit.
type Vital = (&'static str, &'static str, &'static str);
const HEIGHT: Vital = ("8302-2", "Body height", "cm");
const WEIGHT: Vital = ("29463-7", "Body weight", "kg");
const BMI: Vital = ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2");
const HEART_RATE: Vital = ("8867-4", "Heart rate", "/min");
const RESPIRATORY_RATE: Vital = ("9279-1", "Respiratory rate", "/min");
const TEMPERATURE: Vital = ("8310-5", "Body temperature", "Cel");
const SPO2: Vital = ("2708-6", "Oxygen saturation in Arterial blood", "%");
const SYSTOLIC: Vital = ("8480-6", "Systolic blood pressure", "mm[Hg]");
const DIASTOLIC: Vital = ("8462-4", "Diastolic blood pressure", "mm[Hg]");

// ---------------------------------------------------------------- randomness

/// SplitMix64's finaliser: a bijection on `u64`.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64, one stream per (seed, n).
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        Self(mix(seed ^ mix(stream ^ 0x243F_6A88_85A3_08D3)))
    }

    fn word(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.word()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.word() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// About standard normal (Irwin–Hall of 4, bounded at ±3.46): plain
    /// arithmetic, so identical on every platform.
    fn normal(&mut self) -> f64 {
        let s = self.unit() + self.unit() + self.unit() + self.unit();
        (s - 2.0) * 1.732_050_807_568_877_2
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// The stream (and id space) of the directory: no patient has this `n`.
const DIRECTORY: u64 = (1 << 48) - 1;

/// A UUID-shaped id, unique per (seed, n, counter) for n < 2^48 and
/// counter < 2^16: its last 64 bits are a bijection of (n, counter).
fn uuid(seed: u64, n: u64, counter: u64) -> String {
    let lo = mix(((n << 16) | (counter & 0xFFFF)) ^ mix(seed ^ 0x5851_F42D_4C95_7F2D));
    let hi = mix(lo ^ mix(seed.wrapping_add(0x1405_7B7E_F767_814F)));
    let hi = (hi & !0xF000) | 0x4000; // version 4 nibble
    let mut s = String::with_capacity(36);
    let _ = write!(
        s,
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    );
    s
}

// --------------------------------------------------------------------- dates

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i32 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i32::from(m <= 2), m, d)
}

const DAY: i64 = 1440;

fn push_date(s: &mut String, day: i64) {
    let (y, m, d) = civil_from_days(day as i32);
    let _ = write!(s, "{y:04}-{m:02}-{d:02}");
}

fn date(day: i64) -> String {
    let mut s = String::with_capacity(10);
    push_date(&mut s, day);
    s
}

/// A local time, in minutes since the epoch, as a FHIR dateTime/instant
/// (Eastern standard time, as the addresses are).
fn datetime(t: i64) -> String {
    let mut s = String::with_capacity(25);
    push_date(&mut s, t.div_euclid(DAY));
    let minute = t.rem_euclid(DAY);
    let _ = write!(s, "T{:02}:{:02}:00-05:00", minute / 60, minute % 60);
    s
}

// -------------------------------------------------------------- JSON helpers

fn coding(system: &str, code: &str, display: &str) -> Value {
    obj! {"system" => system, "code" => code, "display" => display}
}

fn concept(system: &str, code: &str, display: &str) -> Value {
    obj! {"coding" => vec![coding(system, code, display)], "text" => display}
}

fn reference(r: impl Into<String>) -> Value {
    obj! {"reference" => r.into()}
}

fn round(v: f64, decimals: u8) -> f64 {
    const SCALE: [f64; 3] = [1.0, 10.0, 100.0];
    let s = SCALE[usize::from(decimals.min(2))];
    (v * s).round() / s
}

fn quantity(value: f64, decimals: u8, unit: &str) -> Value {
    let number = if decimals == 0 { Value::from(value as i64) } else { Value::from(value) };
    obj! {"value" => number, "unit" => unit, "system" => UCUM, "code" => unit}
}

fn meta() -> Value {
    obj! {"tag" => vec![coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", "HTEST", "test health data")]}
}

fn entry(kind: &str, id: &str, resource: Value) -> Value {
    obj! {
        "fullUrl" => format!("urn:uuid:{id}"),
        "resource" => resource,
        "request" => obj! {"method" => "PUT", "url" => format!("{kind}/{id}")},
    }
}

fn transaction(entries: Vec<Value>) -> Value {
    obj! {"resourceType" => "Bundle", "type" => "transaction", "entry" => entries}
}

// --------------------------------------------------------------------- names

const EN_MALE: &[&str] = &[
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Daniel", "Matthew",
    "Anthony", "Mark", "Steven", "Andrew", "Joshua", "Kevin", "Brian", "George", "Edward", "Liam", "Noah",
];
const EN_FEMALE: &[&str] = &[
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Emily",
    "Emma",
    "Olivia",
    "Sophia",
    "Grace",
    "Hannah",
    "Laura",
    "Anna",
    "Rebecca",
    "Margaret",
    "Chloe",
    "Ava",
];
const EN_FAMILY: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Walker",
    "Young",
    "O'Brien",
    "Nguyen",
    "Patel",
    "Kim",
    "Murphy",
    "Sullivan",
    "Cohen",
];
const JA_FAMILY: &[(&str, &str)] = &[
    ("佐藤", "Sato"),
    ("鈴木", "Suzuki"),
    ("高橋", "Takahashi"),
    ("田中", "Tanaka"),
    ("伊藤", "Ito"),
    ("渡辺", "Watanabe"),
    ("山本", "Yamamoto"),
    ("中村", "Nakamura"),
    ("小林", "Kobayashi"),
    ("加藤", "Kato"),
    ("吉田", "Yoshida"),
    ("山田", "Yamada"),
    ("佐々木", "Sasaki"),
    ("山口", "Yamaguchi"),
    ("松本", "Matsumoto"),
    ("井上", "Inoue"),
    ("木村", "Kimura"),
    ("林", "Hayashi"),
    ("清水", "Shimizu"),
    ("森", "Mori"),
];
const JA_MALE: &[(&str, &str)] = &[
    ("太郎", "Taro"),
    ("一郎", "Ichiro"),
    ("健太", "Kenta"),
    ("翔太", "Shota"),
    ("大輔", "Daisuke"),
    ("拓也", "Takuya"),
    ("健一", "Kenichi"),
    ("浩", "Hiroshi"),
    ("誠", "Makoto"),
    ("蓮", "Ren"),
    ("陽翔", "Haruto"),
    ("悠真", "Yuma"),
];
const JA_FEMALE: &[(&str, &str)] = &[
    ("花子", "Hanako"),
    ("陽子", "Yoko"),
    ("恵子", "Keiko"),
    ("美咲", "Misaki"),
    ("由美", "Yumi"),
    ("直美", "Naomi"),
    ("愛", "Ai"),
    ("結衣", "Yui"),
    ("さくら", "Sakura"),
    ("陽菜", "Hina"),
    ("明美", "Akemi"),
    ("久美子", "Kumiko"),
];

/// A person's name; Japanese names keep their romanisation.
#[derive(Debug, Clone, Copy)]
struct Name {
    family: &'static str,
    given: &'static str,
    latin: Option<(&'static str, &'static str)>,
}

impl Name {
    fn random(rng: &mut Rng, male: bool) -> Self {
        if rng.chance(0.25) {
            let (family, family_latin) = *rng.pick(JA_FAMILY);
            let (given, given_latin) = *rng.pick(if male { JA_MALE } else { JA_FEMALE });
            Self { family, given, latin: Some((family_latin, given_latin)) }
        } else {
            let family = *rng.pick(EN_FAMILY);
            Self { family, given: *rng.pick(if male { EN_MALE } else { EN_FEMALE }), latin: None }
        }
    }

    /// `山田 太郎` (family first) or `James Smith`.
    fn text(&self) -> String {
        match self.latin {
            Some(_) => format!("{} {}", self.family, self.given),
            None => format!("{} {}", self.given, self.family),
        }
    }

    /// Latin-script (given, family), for e-mail addresses.
    fn latin(&self) -> (&'static str, &'static str) {
        self.latin.map_or((self.given, self.family), |(f, g)| (g, f))
    }

    fn json(&self, prefix: Option<&str>) -> Value {
        let mut official = obj! {
            "use" => "official",
            "text" => self.text(),
            "family" => self.family,
            "given" => vec![self.given],
        };
        if let Some(p) = prefix {
            official["prefix"] = Value::from(vec![p]);
        }
        match self.latin {
            Some((family, given)) => Value::from(vec![
                official,
                obj! {
                    "use" => "usual",
                    "text" => format!("{given} {family}"),
                    "family" => family,
                    "given" => vec![given],
                },
            ]),
            None => Value::from(vec![official]),
        }
    }
}

// ------------------------------------------------------------------ directory

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Specialty {
    GeneralPractice,
    Pediatrics,
    InternalMedicine,
    Emergency,
    Cardiology,
    Endocrinology,
    Pulmonology,
    Surgery,
}

impl Specialty {
    fn code(self) -> (&'static str, &'static str) {
        match self {
            Self::GeneralPractice => ("394814009", "General practice (specialty) (qualifier value)"),
            Self::Pediatrics => ("394537008", "Pediatric specialty (qualifier value)"),
            Self::InternalMedicine => ("419192003", "Internal medicine (qualifier value)"),
            Self::Emergency => ("773568002", "Emergency medicine (qualifier value)"),
            Self::Cardiology => ("394579002", "Cardiology (qualifier value)"),
            Self::Endocrinology => ("394583002", "Endocrinology (qualifier value)"),
            Self::Pulmonology => ("418112009", "Pulmonary medicine (qualifier value)"),
            Self::Surgery => ("394609007", "General surgery (qualifier value)"),
        }
    }
}

struct OrgDef {
    name: &'static str,
    line: &'static str,
    city: &'static str,
    zip: &'static str,
    phone: &'static str,
    staff: &'static [Specialty],
}

use Specialty as S;

/// Hospitals first: index `h` < 2 has identifier [`HOSPITAL_SYSTEMS`]`[h]`.
const ORGS: [OrgDef; 4] = [
    OrgDef {
        name: "Plexus General Hospital",
        line: "100 Harbor Way",
        city: "Boston",
        zip: "02114",
        phone: "617-555-0100",
        staff: &[S::Emergency, S::Emergency, S::InternalMedicine, S::Cardiology, S::Pulmonology, S::Surgery],
    },
    OrgDef {
        name: "Sakura Medical Center",
        line: "250 Blossom Avenue",
        city: "Cambridge",
        zip: "02139",
        phone: "617-555-0150",
        staff: &[S::Emergency, S::Emergency, S::InternalMedicine, S::Endocrinology, S::Cardiology, S::Surgery],
    },
    OrgDef {
        name: "Riverside Family Practice",
        line: "12 River Road",
        city: "Newton",
        zip: "02458",
        phone: "617-555-0170",
        staff: &[S::GeneralPractice, S::GeneralPractice, S::GeneralPractice, S::GeneralPractice],
    },
    OrgDef {
        name: "Harbor Pediatrics",
        line: "8 Beacon Street",
        city: "Quincy",
        zip: "02169",
        phone: "617-555-0190",
        staff: &[S::Pediatrics, S::Pediatrics, S::Pediatrics, S::Pediatrics],
    },
];

struct Clinician {
    id: String,
    /// `Practitioner/<id>`, and the display of references to it.
    reference: String,
    display: String,
    name: Name,
    male: bool,
    org: usize,
    specialty: Specialty,
}

/// One population: the directory, computed once, and its patients.
pub struct Generator {
    seed: u64,
    today: i64,
    orgs: Vec<String>,
    /// `Organization/<id>` of each organization.
    org_references: Vec<String>,
    clinicians: Vec<Clinician>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator").field("seed", &self.seed).field("today", &date(self.today)).finish_non_exhaustive()
    }
}

/// Organizations and practitioners every generated patient refers to, as a
/// FHIR `transaction` Bundle (import it first).
pub fn directory(seed: u64) -> Value {
    Generator::new(seed).directory()
}

/// Patient number `n` (0-based) of the population `seed`, as a FHIR
/// `transaction` Bundle with urn:uuid fullUrls and references between its
/// own entries; references to the directory's practitioners/organizations
/// are relative (`Practitioner/<id>`), resolvable once `directory(seed)`
/// was imported.
pub fn patient(seed: u64, n: u64) -> Value {
    Generator::new(seed).patient(n)
}

/// The ids of the directory's practitioners (so callers can give clinicians
/// a care relationship: practitioner ids double as user subjects in demos).
pub fn practitioner_ids(seed: u64) -> Vec<String> {
    Generator::new(seed).practitioner_ids()
}

impl Generator {
    /// The population `seed`, "today" being [`TODAY`].
    pub fn new(seed: u64) -> Self {
        let (y, m, d) = TODAY;
        Self::with_today(seed, y, m, d)
    }

    /// The population `seed` as of another day (nothing is dated after it).
    pub fn with_today(seed: u64, year: i32, month: u32, day: u32) -> Self {
        let mut rng = Rng::new(seed, DIRECTORY);
        let mut counter = 0;
        let mut next_id = || {
            counter += 1;
            uuid(seed, DIRECTORY, counter - 1)
        };
        let orgs: Vec<String> = ORGS.iter().map(|_| next_id()).collect();
        let mut clinicians = Vec::new();
        for (org, def) in ORGS.iter().enumerate() {
            for &specialty in def.staff {
                let male = rng.chance(0.5);
                let (id, name) = (next_id(), Name::random(&mut rng, male));
                let display = match name.latin {
                    Some(_) => name.text(),
                    None => format!("Dr. {}", name.text()),
                };
                let reference = format!("Practitioner/{id}");
                clinicians.push(Clinician { id, reference, display, name, male, org, specialty });
            }
        }
        let org_references = orgs.iter().map(|id| format!("Organization/{id}")).collect();
        Self { seed, today: i64::from(days_from_civil(year, month, day)), orgs, org_references, clinicians }
    }

    /// The ids of the directory's practitioners.
    pub fn practitioner_ids(&self) -> Vec<String> {
        self.clinicians.iter().map(|c| c.id.clone()).collect()
    }

    /// The directory: Organizations, Practitioners and PractitionerRoles.
    pub fn directory(&self) -> Value {
        let mut entries = Vec::with_capacity(self.orgs.len() + 2 * self.clinicians.len());
        for (h, (id, def)) in self.orgs.iter().zip(&ORGS).enumerate() {
            let mut org = obj! {
                "resourceType" => "Organization",
                "id" => id.as_str(),
                "meta" => meta(),
                "active" => true,
                "type" => vec![
                    concept("http://terminology.hl7.org/CodeSystem/organization-type", "prov", "Healthcare Provider"),
                ],
                "name" => def.name,
                "telecom" => vec![obj! {"system" => "phone", "value" => def.phone, "use" => "work"}],
                "address" => vec![
                    obj! {
                        "line" => vec![def.line],
                        "city" => def.city,
                        "state" => "MA",
                        "postalCode" => def.zip,
                        "country" => "US",
                    },
                ],
            };
            if let Some(system) = HOSPITAL_SYSTEMS.get(h) {
                org["identifier"] = Value::from(vec![obj! {"system" => "urn:ietf:rfc:3986", "value" => *system}]);
            }
            entries.push(entry("Organization", id, org));
        }
        for (i, c) in self.clinicians.iter().enumerate() {
            let prefix = c.name.latin.is_none().then_some("Dr.");
            let (given, family) = c.name.latin();
            let practitioner = obj! {
                "resourceType" => "Practitioner",
                "id" => c.id.as_str(),
                "meta" => meta(),
                "active" => true,
                "identifier" => vec![
                    obj! {"system" => NPI, "value" => format!("99{:08}", (self.seed % 1_000_000) * 100 + i as u64)},
                ],
                "name" => c.name.json(prefix),
                "telecom" => vec![
                    obj! {
                        "system" => "email",
                        "value" => format!("{}.{}@example.org",
                    given.to_lowercase(), family.to_lowercase().replace('\'', "")),
                        "use" => "work",
                    },
                ],
                "gender" => if c.male { "male" } else { "female" },
                "qualification" => vec![
                    obj! {
                        "code" => concept("http://terminology.hl7.org/CodeSystem/v2-0360", "MD", "Doctor of Medicine"),
                    },
                ],
            };
            entries.push(entry("Practitioner", &c.id, practitioner));
        }
        for (i, c) in self.clinicians.iter().enumerate() {
            let id = uuid(self.seed, DIRECTORY, 1000 + i as u64);
            let (code, display) = c.specialty.code();
            let role = obj! {
                "resourceType" => "PractitionerRole",
                "id" => id.as_str(),
                "meta" => meta(),
                "active" => true,
                "practitioner" => obj! {"reference" => format!("urn:uuid:{}", c.id), "display" => c.display.as_str()},
                "organization" => obj! {
                    "reference" => format!("urn:uuid:{}", self.orgs[c.org]),
                    "display" => ORGS[c.org].name,
                },
                "code" => vec![concept("http://terminology.hl7.org/CodeSystem/practitioner-role", "doctor", "Doctor")],
                "specialty" => vec![concept(SNOMED, code, display)],
            };
            entries.push(entry("PractitionerRole", &id, role));
        }
        transaction(entries)
    }

    /// Patient `n` (below 2^48 − 1) as a `transaction` Bundle.
    pub fn patient(&self, n: u64) -> Value {
        debug_assert!(n < DIRECTORY, "patient numbers are below 2^48 - 1");
        let mut r = Record::new(self, n);
        r.generate();
        transaction(r.entries)
    }

    fn practitioner(&self, c: usize) -> Value {
        let c = &self.clinicians[c];
        obj! {"reference" => c.reference.as_str(), "display" => c.display.as_str()}
    }

    fn organization(&self, o: usize) -> Value {
        obj! {"reference" => self.org_references[o].as_str(), "display" => ORGS[o].name}
    }

    /// The first clinician of `specialty`, at `hospital` if it has one.
    fn specialist(&self, specialty: Specialty, hospital: usize) -> Option<usize> {
        let of = |c: &Clinician| c.specialty == specialty;
        self.clinicians.iter().position(|c| of(c) && c.org == hospital).or_else(|| self.clinicians.iter().position(of))
    }
}

// ------------------------------------------------------------ clinical tables

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chronic {
    Diabetes,
    Hypertension,
    Hyperlipidemia,
    Asthma,
    Ckd,
    Obesity,
    Prediabetes,
    Anemia,
    Osteoarthritis,
    Sinusitis,
}

/// In the order they are recorded (a patient has at most 5).
const CHRONIC: [Chronic; 10] = [
    Chronic::Diabetes,
    Chronic::Hypertension,
    Chronic::Hyperlipidemia,
    Chronic::Asthma,
    Chronic::Ckd,
    Chronic::Obesity,
    Chronic::Prediabetes,
    Chronic::Anemia,
    Chronic::Osteoarthritis,
    Chronic::Sinusitis,
];

impl Chronic {
    fn code(self) -> (&'static str, &'static str) {
        match self {
            Self::Diabetes => ("44054006", "Diabetes mellitus type 2 (disorder)"),
            Self::Hypertension => ("38341003", "Hypertensive disorder, systemic arterial (disorder)"),
            Self::Hyperlipidemia => ("55822004", "Hyperlipidemia (disorder)"),
            Self::Asthma => ("195967001", "Asthma (disorder)"),
            Self::Ckd => ("433144002", "Chronic kidney disease stage 3 (disorder)"),
            Self::Obesity => ("162864005", "Body mass index 30+ - obesity (finding)"),
            Self::Prediabetes => ("15777000", "Prediabetes (finding)"),
            Self::Anemia => ("271737000", "Anemia (disorder)"),
            Self::Osteoarthritis => ("396275006", "Osteoarthritis (disorder)"),
            Self::Sinusitis => ("40055000", "Chronic sinusitis (disorder)"),
        }
    }

    /// Prevalence at `age` (years).
    fn prevalence(self, age: i64, male: bool) -> f64 {
        let by_age = |young: f64, middle: f64, old: f64| match age {
            ..18 => 0.0,
            18..40 => young,
            40..60 => middle,
            _ => old,
        };
        match self {
            Self::Diabetes => by_age(0.03, 0.12, 0.22),
            Self::Hypertension => by_age(0.08, 0.28, 0.5),
            Self::Hyperlipidemia => by_age(0.06, 0.25, 0.4),
            Self::Asthma if age >= 2 => 0.08,
            Self::Asthma => 0.0,
            Self::Ckd => by_age(0.0, 0.03, 0.12),
            Self::Obesity => by_age(0.28, 0.33, 0.3),
            Self::Prediabetes => by_age(0.08, 0.14, 0.15),
            Self::Anemia => by_age(1.0, 1.0, 1.2) * if male { 0.03 } else { 0.07 },
            Self::Osteoarthritis => by_age(0.0, 0.1, 0.3),
            Self::Sinusitis => by_age(0.06, 0.06, 0.06),
        }
    }

    /// Earliest age of onset.
    fn onset_age(self) -> i64 {
        match self {
            Self::Asthma => 2,
            Self::Osteoarthritis => 40,
            Self::Ckd => 40,
            _ => 18,
        }
    }

    fn specialty(self) -> Option<Specialty> {
        match self {
            Self::Diabetes => Some(S::Endocrinology),
            Self::Hypertension => Some(S::Cardiology),
            Self::Asthma => Some(S::Pulmonology),
            Self::Ckd => Some(S::InternalMedicine),
            _ => None,
        }
    }
}

struct Drug {
    code: &'static str,
    display: &'static str,
    instruction: &'static str,
    /// Doses per period, period, unit (`d`, `h`).
    timing: (u32, u32, &'static str),
    as_needed: bool,
    /// Days of a course; `None`: until stopped.
    course: Option<i64>,
}

const fn drug(
    code: &'static str,
    display: &'static str,
    instruction: &'static str,
    timing: (u32, u32, &'static str),
    as_needed: bool,
    course: Option<i64>,
) -> Drug {
    Drug { code, display, instruction, timing, as_needed, course }
}

const METFORMIN: Drug = drug(
    "860975",
    "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
    "Take 1 tablet by mouth once daily with the evening meal",
    (1, 1, "d"),
    false,
    None,
);
const LISINOPRIL: Drug =
    drug("314076", "lisinopril 10 MG Oral Tablet", "Take 1 tablet by mouth once daily", (1, 1, "d"), false, None);
const AMLODIPINE: Drug =
    drug("308136", "amlodipine 2.5 MG Oral Tablet", "Take 1 tablet by mouth once daily", (1, 1, "d"), false, None);
const HCTZ: Drug = drug(
    "310798",
    "hydrochlorothiazide 25 MG Oral Tablet",
    "Take 1 tablet by mouth once daily in the morning",
    (1, 1, "d"),
    false,
    None,
);
const SIMVASTATIN: Drug = drug(
    "314231",
    "simvastatin 10 MG Oral Tablet",
    "Take 1 tablet by mouth once daily in the evening",
    (1, 1, "d"),
    false,
    None,
);
const FLUTICASONE: Drug = drug(
    "895994",
    "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
    "Inhale 2 puffs twice daily; rinse mouth after use",
    (2, 1, "d"),
    false,
    None,
);
const ALBUTEROL: Drug = drug(
    "745679",
    "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
    "Inhale 2 puffs every 4 to 6 hours as needed for wheezing or shortness of breath",
    (1, 4, "h"),
    true,
    None,
);
const FERROUS_SULFATE: Drug = drug(
    "310325",
    "ferrous sulfate 325 MG Oral Tablet",
    "Take 1 tablet by mouth once daily with orange juice",
    (1, 1, "d"),
    false,
    None,
);
const ACETAMINOPHEN: Drug = drug(
    "313782",
    "acetaminophen 325 MG Oral Tablet",
    "Take 2 tablets by mouth every 6 hours as needed for pain or fever; no more than 10 tablets a day",
    (1, 6, "h"),
    true,
    Some(10),
);
const IBUPROFEN: Drug = drug(
    "310965",
    "ibuprofen 200 MG Oral Tablet",
    "Take 2 tablets by mouth every 6 to 8 hours as needed for pain, with food",
    (1, 6, "h"),
    true,
    Some(14),
);
const AMOXICILLIN: Drug = drug(
    "308192",
    "amoxicillin 500 MG Oral Tablet",
    "Take 1 tablet by mouth three times daily for 10 days",
    (3, 1, "d"),
    false,
    Some(10),
);
const PENICILLIN_V: Drug = drug(
    "834061",
    "penicillin V potassium 250 MG Oral Tablet",
    "Take 1 tablet by mouth four times daily for 10 days",
    (4, 1, "d"),
    false,
    Some(10),
);
const AMOXICILLIN_CLAVULANATE: Drug = drug(
    "562251",
    "amoxicillin 250 MG / clavulanate 125 MG Oral Tablet",
    "Take 1 tablet by mouth every 8 hours for 10 days",
    (3, 1, "d"),
    false,
    Some(10),
);

type Vaccine = (&'static str, &'static str);
const FLU: Vaccine = ("140", "Influenza, seasonal, injectable, preservative free");
const COVID: Vaccine =
    ("208", "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose");
const TD: Vaccine = ("113", "Td (adult), 5 Lf tetanus toxoid, preservative free, adsorbed");
const TDAP: Vaccine = ("115", "Tdap");
const HEP_B: Vaccine = ("08", "Hep B, adolescent or pediatric");
const DTAP: Vaccine = ("20", "DTaP");
const IPV: Vaccine = ("10", "IPV");
const MMR: Vaccine = ("03", "MMR");
const VARICELLA: Vaccine = ("21", "varicella");
const PCV13: Vaccine = ("133", "Pneumococcal conjugate PCV 13");
const HPV: Vaccine = ("62", "HPV, quadrivalent");
const MCV4: Vaccine = ("114", "meningococcal MCV4P");
const ZOSTER: Vaccine = ("187", "zoster vaccine recombinant");
const PPSV23: Vaccine = ("33", "pneumococcal polysaccharide vaccine, 23 valent");

/// The childhood schedule, by age in days at a well visit.
fn childhood_vaccines(age_days: i64) -> &'static [Vaccine] {
    match age_days {
        0..=45 => &[HEP_B],
        46..=150 => &[DTAP, IPV, PCV13],
        151..=240 => &[DTAP, HEP_B, PCV13],
        330..=420 => &[MMR, VARICELLA],
        421..=600 => &[DTAP],
        1461..=1825 => &[DTAP, IPV, MMR, VARICELLA],
        4018..=4382 => &[TDAP, HPV, MCV4],
        5844..=6209 => &[MCV4],
        _ => &[],
    }
}

type Code = (&'static str, &'static str);
const WELL_ADULT: Code = ("185349003", "Encounter for check up (procedure)");
const WELL_CHILD: Code = ("410620009", "Well child visit (procedure)");
const FOLLOW_UP: Code = ("390906007", "Follow-up encounter (procedure)");
const SYMPTOM: Code = ("185345009", "Encounter for symptom (procedure)");
const EMERGENCY: Code = ("50849002", "Emergency room admission (procedure)");
const ADMISSION: Code = ("32485007", "Hospital admission (procedure)");

const CHEST_XRAY: Code = ("399208008", "Plain chest X-ray (procedure)");
const THROAT_CULTURE: Code = ("117015009", "Throat culture (procedure)");
const IMMOBILIZATION: Code = ("274474001", "Bone immobilization (procedure)");
const SUTURE: Code = ("288086009", "Suture open wound (procedure)");
const SPIROMETRY: Code = ("23426006", "Measurement of respiratory function (procedure)");
const RECONCILIATION: Code = ("430193006", "Medication Reconciliation (procedure)");
const DEPRESSION_SCREENING: Code = ("171207006", "Depression screening (procedure)");
const MAMMOGRAPHY: Code = ("71651007", "Mammography (procedure)");
const BONE_DENSITY: Code = ("312681000", "Bone density scan (procedure)");
const APPENDECTOMY: Code = ("80146002", "Appendectomy (procedure)");

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rx {
    Analgesic,
    Antibiotic,
}

struct Acute {
    code: Code,
    ages: (i64, i64),
    emergency: f64,
    days: (i64, i64),
    fever: f64,
    respiratory: bool,
    procedure: Option<(Code, f64)>,
    rx: (Rx, f64),
}

const ACUTE: [Acute; 8] = [
    Acute {
        code: ("444814009", "Viral sinusitis (disorder)"),
        ages: (2, 99),
        emergency: 0.0,
        days: (7, 14),
        fever: 0.3,
        respiratory: true,
        procedure: None,
        rx: (Rx::Analgesic, 0.5),
    },
    Acute {
        code: ("195662009", "Acute viral pharyngitis (disorder)"),
        ages: (1, 99),
        emergency: 0.05,
        days: (5, 10),
        fever: 0.6,
        respiratory: true,
        procedure: None,
        rx: (Rx::Analgesic, 0.7),
    },
    Acute {
        code: ("10509002", "Acute bronchitis (disorder)"),
        ages: (0, 99),
        emergency: 0.15,
        days: (10, 21),
        fever: 0.5,
        respiratory: true,
        procedure: Some((CHEST_XRAY, 0.3)),
        rx: (Rx::Analgesic, 0.6),
    },
    Acute {
        code: ("43878008", "Streptococcal sore throat (disorder)"),
        ages: (3, 60),
        emergency: 0.05,
        days: (7, 10),
        fever: 0.8,
        respiratory: true,
        procedure: Some((THROAT_CULTURE, 1.0)),
        rx: (Rx::Antibiotic, 1.0),
    },
    Acute {
        code: ("65363002", "Otitis media (disorder)"),
        ages: (0, 8),
        emergency: 0.05,
        days: (7, 14),
        fever: 0.6,
        respiratory: false,
        procedure: None,
        rx: (Rx::Antibiotic, 0.8),
    },
    Acute {
        code: ("44465007", "Sprain of ankle (disorder)"),
        ages: (6, 80),
        emergency: 0.35,
        days: (14, 42),
        fever: 0.0,
        respiratory: false,
        procedure: None,
        rx: (Rx::Analgesic, 0.8),
    },
    Acute {
        code: ("65966004", "Fracture of forearm (disorder)"),
        ages: (3, 99),
        emergency: 0.85,
        days: (42, 70),
        fever: 0.0,
        respiratory: false,
        procedure: Some((IMMOBILIZATION, 1.0)),
        rx: (Rx::Analgesic, 0.9),
    },
    Acute {
        code: ("283371005", "Laceration of forearm (disorder)"),
        ages: (2, 99),
        emergency: 0.5,
        days: (10, 21),
        fever: 0.0,
        respiratory: false,
        procedure: Some((SUTURE, 0.8)),
        rx: (Rx::Analgesic, 0.3),
    },
];

/// (category, system, code, display, chance of anaphylaxis).
type Allergen = (&'static str, &'static str, &'static str, &'static str, f64);
const ALLERGENS: [Allergen; 9] = [
    ("medication", RXNORM, "7980", "Penicillin G", 0.1),
    ("medication", RXNORM, "1191", "Aspirin", 0.05),
    ("food", SNOMED, "91935009", "Allergy to peanuts (finding)", 0.3),
    ("food", SNOMED, "442571000124108", "Tree nut (substance)", 0.2),
    ("food", SNOMED, "102263004", "Eggs (edible) (substance)", 0.05),
    ("environment", SNOMED, "300916003", "Latex allergy (finding)", 0.05),
    ("environment", SNOMED, "264287008", "Animal dander (substance)", 0.0),
    ("environment", SNOMED, "260147004", "House dust mite (organism)", 0.0),
    ("environment", SNOMED, "288328004", "Bee venom (substance)", 0.3),
];
const ANAPHYLAXIS: Code = ("39579001", "Anaphylaxis (disorder)");
const SKIN_REACTIONS: [Code; 3] = [
    ("247472004", "Wheal (finding)"),
    ("271807003", "Eruption of skin (disorder)"),
    ("418290006", "Itching (finding)"),
];
const AIRWAY_REACTIONS: [Code; 2] =
    [("878820003", "Rhinoconjunctivitis (disorder)"), ("267036007", "Dyspnea (finding)")];

/// (city, state, ZIP, phone area code). Charlestown NH's ZIP3 036 is one of
/// Safe Harbor's small areas (de-identified to 000).
const CITIES: [(&str, &str, &str, &str); 21] = [
    ("Boston", "MA", "02108", "617"),
    ("Boston", "MA", "02115", "617"),
    ("Boston", "MA", "02118", "617"),
    ("Boston", "MA", "02130", "617"),
    ("Cambridge", "MA", "02138", "617"),
    ("Cambridge", "MA", "02139", "617"),
    ("Somerville", "MA", "02143", "617"),
    ("Brookline", "MA", "02446", "617"),
    ("Newton", "MA", "02458", "617"),
    ("Newton", "MA", "02460", "617"),
    ("Quincy", "MA", "02169", "617"),
    ("Quincy", "MA", "02170", "617"),
    ("Waltham", "MA", "02453", "781"),
    ("Lexington", "MA", "02421", "781"),
    ("Worcester", "MA", "01602", "508"),
    ("Framingham", "MA", "01701", "508"),
    ("Lowell", "MA", "01852", "978"),
    ("Salem", "MA", "01970", "978"),
    ("Nashua", "NH", "03060", "603"),
    ("Manchester", "NH", "03101", "603"),
    ("Charlestown", "NH", "03603", "603"),
];
const STREETS: [&str; 16] = [
    "Main Street",
    "Elm Street",
    "Maple Avenue",
    "Oak Street",
    "Washington Street",
    "Beacon Street",
    "Commonwealth Avenue",
    "Harvard Street",
    "Pleasant Street",
    "Park Drive",
    "Highland Avenue",
    "Summer Street",
    "Cherry Lane",
    "River Road",
    "Centre Street",
    "Chestnut Hill Road",
];

/// Median height (cm, sexes averaged) at ages 0..=18.
const CHILD_HEIGHT: [f64; 19] = [
    50.0, 75.0, 87.0, 96.0, 103.0, 110.0, 116.0, 122.0, 128.0, 133.0, 138.0, 144.0, 150.0, 157.0, 163.0, 166.0, 168.0,
    169.5, 170.0,
];
/// Median BMI (kg/m2) at ages 0..=18.
const CHILD_BMI: [f64; 19] =
    [13.5, 17.0, 16.5, 16.0, 15.6, 15.4, 15.4, 15.6, 16.0, 16.5, 17.0, 17.6, 18.2, 18.8, 19.4, 20.0, 20.6, 21.1, 21.6];

fn interpolate(table: &[f64; 19], age: f64) -> f64 {
    let a = age.clamp(0.0, 18.0);
    let i = (a as usize).min(17);
    table[i] + (table[i + 1] - table[i]) * (a - i as f64)
}

// ------------------------------------------------------------------- patient

#[derive(Clone)]
struct Enc {
    urn: String,
    start: i64,
    clinician: usize,
}

/// One patient being generated.
struct Record<'g> {
    g: &'g Generator,
    rng: Rng,
    n: u64,
    counter: u64,
    entries: Vec<Value>,
    group: Vec<Value>,
    subject: String,
    male: bool,
    birth: i64,
    /// Today, or the day of death.
    end: i64,
    deceased: bool,
    pcp: usize,
    hospital: usize,
    chronic: Vec<Chronic>,
    /// The Condition of each recorded chronic condition.
    recorded: Vec<(Chronic, String)>,
    penicillin_allergy: bool,
    aspirin_allergy: bool,
    adult_height: f64,
    growth_z: f64,
    adult_bmi: f64,
    lab_z: [f64; 8],
    a1c_trend: f64,
    visits: Vec<Enc>,
    draws: usize,
}

impl<'g> Record<'g> {
    fn new(g: &'g Generator, n: u64) -> Self {
        let mut rng = Rng::new(g.seed, n);
        let male = rng.chance(0.49);
        let u = rng.unit();
        let age = if u < 0.22 {
            rng.range(0, 17)
        } else if u < 0.82 {
            rng.range(18, 64)
        } else if u < 0.97 {
            rng.range(65, 89)
        } else {
            rng.range(90, 99)
        };
        let (y, m, d) = civil_from_days(g.today as i32);
        let anniversary = i64::from(days_from_civil(y - age as i32, m, d));
        let birth = anniversary - if age == 0 { rng.range(100, 364) } else { rng.range(0, 364) };
        let death_chance = match age {
            ..40 => 0.0,
            40..60 => 0.005,
            60..80 => 0.02,
            _ => 0.08,
        };
        let deceased = rng.chance(death_chance);
        let end = if deceased { g.today - rng.range(20, 700) } else { g.today };
        let years = (end - birth) / 365;
        let mut chronic = Vec::new();
        for c in CHRONIC {
            if chronic.len() < 5
                && rng.chance(c.prevalence(years, male))
                && !(c == Chronic::Prediabetes && chronic.contains(&Chronic::Diabetes))
            {
                chronic.push(c);
            }
        }
        let adult_height = if male { 176.0 } else { 162.5 } + rng.normal() * 6.5;
        let adult_bmi = if chronic.contains(&Chronic::Obesity) {
            rng.between(30.2, 40.0)
        } else {
            (25.0 + rng.normal() * 3.0).clamp(18.5, 29.8)
        };
        let growth_z = rng.normal();
        let mut lab_z = [0.0; 8];
        for z in &mut lab_z {
            *z = rng.normal();
        }
        let a1c_trend = rng.between(-0.35, 0.15);
        let pcp_specialty = if years < 18 { S::Pediatrics } else { S::GeneralPractice };
        let pcps: Vec<usize> =
            (0..g.clinicians.len()).filter(|&c| g.clinicians[c].specialty == pcp_specialty).collect();
        let pcp = *rng.pick(&pcps);
        let hospital = rng.below(2) as usize;
        let subject = format!("urn:uuid:{}", uuid(g.seed, n, 0));
        Self {
            g,
            rng,
            n,
            counter: 1,
            entries: Vec::with_capacity(64),
            group: Vec::with_capacity(16),
            subject,
            male,
            birth,
            end,
            deceased,
            pcp,
            hospital,
            chronic,
            recorded: Vec::new(),
            penicillin_allergy: false,
            aspirin_allergy: false,
            adult_height,
            growth_z,
            adult_bmi,
            lab_z,
            a1c_trend,
            visits: Vec::new(),
            draws: 0,
        }
    }

    fn id(&mut self) -> String {
        self.counter += 1;
        uuid(self.g.seed, self.n, self.counter - 1)
    }

    fn has(&self, c: Chronic) -> bool {
        self.chronic.contains(&c)
    }

    fn age(&self, t: i64) -> f64 {
        (t.div_euclid(DAY) - self.birth) as f64 / 365.25
    }

    fn add(&mut self, kind: &str, id: &str, resource: Value) -> String {
        self.group.push(entry(kind, id, resource));
        format!("urn:uuid:{id}")
    }

    /// Keep the group of resources just made if it fits the budget.
    fn commit(&mut self, checked: bool) -> bool {
        let fits = !checked || self.entries.len() + self.group.len() <= *RESOURCES_PER_PATIENT.end();
        if fits {
            self.entries.append(&mut self.group);
        } else {
            self.group.clear();
        }
        fits
    }

    /// A time on `day` within clinic hours.
    fn clinic_time(&mut self, day: i64) -> i64 {
        day * DAY + 8 * 60 + 15 * self.rng.range(0, 35)
    }

    fn generate(&mut self) {
        self.patient();
        self.care_team();
        self.commit(false);
        self.allergies();
        self.well_visits();
        self.chronic_conditions();
        self.follow_up();
        let admission = if self.age(self.end * DAY) >= 65.0 { 0.08 } else { 0.03 };
        if self.age(self.end * DAY) >= 5.0 && self.rng.chance(admission) {
            self.admission();
        }
        let u = self.rng.unit();
        let episodes = if u < 0.4 {
            0
        } else if u < 0.8 {
            1
        } else {
            2
        };
        for _ in 0..episodes {
            self.acute_episode();
        }
        let mut tries = 0;
        while self.entries.len() < *RESOURCES_PER_PATIENT.start() && tries < 50 {
            self.acute_episode();
            tries += 1;
        }
    }

    // ---------------------------------------------------------- demographics

    fn patient(&mut self) {
        let g = self.g;
        let rng = &mut self.rng;
        let name = Name::random(rng, self.male);
        let (city, state, zip, area) = *rng.pick(&CITIES);
        let mut line = vec![format!("{} {}", rng.range(1, 999), rng.pick(&STREETS))];
        if rng.chance(0.3) {
            line.push(format!("Apt {}{}", rng.range(1, 6), ["A", "B", "C", "D"][rng.below(4) as usize]));
        }
        let (given, family) = name.latin();
        let email = format!(
            "{}.{}{}@example.com",
            given.to_lowercase(),
            family.to_lowercase().replace('\'', ""),
            rng.below(100)
        );
        let years = (self.end - self.birth) / 365;
        let u = rng.unit();
        let marital = match years {
            ..18 => ("S", "Never Married"),
            18..30 if u < 0.7 => ("S", "Never Married"),
            18..30 if u < 0.97 => ("M", "Married"),
            18..30 => ("D", "Divorced"),
            30..65 if u < 0.6 => ("M", "Married"),
            30..65 if u < 0.8 => ("S", "Never Married"),
            30..65 if u < 0.95 => ("D", "Divorced"),
            30..65 => ("W", "Widowed"),
            _ if u < 0.5 => ("M", "Married"),
            _ if u < 0.8 => ("W", "Widowed"),
            _ if u < 0.9 => ("D", "Divorced"),
            _ => ("S", "Never Married"),
        };
        let (language, language_display) = if name.latin.is_some() && rng.chance(0.5) {
            ("ja", "Japanese")
        } else {
            ("en-US", "English (United States)")
        };
        let id = uuid(g.seed, self.n, 0);
        let mut p = obj! {
            "resourceType" => "Patient",
            "id" => id.as_str(),
            "meta" => meta(),
            "identifier" => vec![
                obj! {
                    "use" => "usual",
                    "type" => concept("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number"),
                    "system" => MRN_SYSTEM,
                    "value" => format!("MRN-{}-{}", g.seed, self.n),
                },
                obj! {
                    "use" => "official",
                    "type" => concept("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number"),
                    "system" => HOSPITAL_SYSTEMS[self.hospital],
                    "value" => format!("{:03}{:07}", g.seed % 1000, self.n),
                    "assigner" => g.organization(self.hospital),
                },
            ],
            "active" => true,
            "name" => name.json(None),
            "telecom" => vec![
                obj! {"system" => "phone", "value" => format!("{area}-555-01{:02}", rng.below(100)), "use" => "home"},
                obj! {"system" => "email", "value" => email, "use" => "home"},
            ],
            "gender" => if self.male { "male" } else { "female" },
            "birthDate" => date(self.birth),
            "address" => vec![
                obj! {
                    "use" => "home",
                    "line" => line,
                    "city" => city,
                    "state" => state,
                    "postalCode" => zip,
                    "country" => "US",
                },
            ],
            "maritalStatus" => concept("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", marital.0, marital.1),
            "communication" => vec![
                obj! {"language" => concept("urn:ietf:bcp:47", language, language_display), "preferred" => true},
            ],
            "generalPractitioner" => vec![g.practitioner(self.pcp)],
            "managingOrganization" => g.organization(self.hospital),
        };
        if self.deceased {
            let t = self.end * DAY + rng.range(0, DAY - 1);
            p["deceasedDateTime"] = Value::from(datetime(t));
        }
        self.add("Patient", &id, p);
    }

    fn care_team(&mut self) {
        let g = self.g;
        let mut members = vec![(self.pcp, ("446050000", "Primary care physician (occupation)"))];
        for c in &self.chronic {
            if let Some(s) = c.specialty().and_then(|s| g.specialist(s, self.hospital))
                && members.len() < 3
                && !members.iter().any(|(m, _)| *m == s)
            {
                members.push((s, ("309343006", "Physician (occupation)")));
            }
        }
        let participant: Vec<Value> = members
            .iter()
            .map(|&(c, (code, display))| {
                obj! {
                    "role" => vec![concept(SNOMED, code, display)],
                    "member" => g.practitioner(c),
                    "onBehalfOf" => g.organization(g.clinicians[c].org),
                }
            })
            .collect();
        let start = self.birth.max(self.end - 5 * 365 - self.rng.range(0, 2000));
        let mut period = obj! {"start" => date(start)};
        if self.deceased {
            period["end"] = Value::from(date(self.end));
        }
        let id = self.id();
        let team = obj! {
            "resourceType" => "CareTeam",
            "id" => id.as_str(),
            "meta" => meta(),
            "status" => if self.deceased { "inactive" } else { "active" },
            "category" => vec![concept(LOINC, "LA28865-6", "Longitudinal care-coordination focused care team")],
            "name" => "Primary care team",
            "subject" => reference(self.subject.clone()),
            "period" => period,
            "participant" => participant,
            "managingOrganization" => vec![g.organization(g.clinicians[self.pcp].org)],
        };
        self.add("CareTeam", &id, team);
    }

    fn allergies(&mut self) {
        let u = self.rng.unit();
        let span = self.end - self.birth;
        let count = if span < 200 || u < 0.72 {
            0
        } else if u < 0.93 {
            1
        } else {
            2
        };
        let first = self.rng.below(ALLERGENS.len() as u64) as usize;
        for i in 0..count {
            let (category, system, code, display, anaphylaxis) = ALLERGENS[(first + 3 * i) % ALLERGENS.len()];
            let severe = self.rng.chance(anaphylaxis);
            let manifestation = if severe {
                ANAPHYLAXIS
            } else if category == "environment" && code != "300916003" {
                *self.rng.pick(&AIRWAY_REACTIONS)
            } else {
                *self.rng.pick(&SKIN_REACTIONS)
            };
            let severity = if severe {
                "severe"
            } else if self.rng.chance(0.7) {
                "mild"
            } else {
                "moderate"
            };
            let onset = self.birth + self.rng.range(180, span);
            let recorded = (onset.max(self.end - 3 * 365) + self.rng.range(0, 60)).min(self.end);
            let id = self.id();
            let allergy = obj! {
                "resourceType" => "AllergyIntolerance",
                "id" => id.as_str(),
                "meta" => meta(),
                "clinicalStatus" => concept(ALLERGY_CLINICAL, "active", "Active"),
                "verificationStatus" => concept(ALLERGY_VERIFICATION, "confirmed", "Confirmed"),
                "type" => "allergy",
                "category" => vec![category],
                "criticality" => if severe || self.rng.chance(0.15) { "high" } else { "low" },
                "code" => concept(system, code, display),
                "patient" => reference(self.subject.clone()),
                "onsetDateTime" => date(onset),
                "recordedDate" => datetime(self.clinic_time(recorded)),
                "recorder" => self.g.practitioner(self.pcp),
                "reaction" => vec![
                    obj! {
                        "manifestation" => vec![concept(SNOMED, manifestation.0, manifestation.1)],
                        "severity" => severity,
                    },
                ],
            };
            self.add("AllergyIntolerance", &id, allergy);
            if self.commit(true) {
                self.penicillin_allergy |= code == "7980";
                self.aspirin_allergy |= code == "1191";
            }
        }
    }

    // ------------------------------------------------------------ encounters

    fn encounter(
        &mut self,
        class: &str,
        kind: Code,
        start: i64,
        minutes: i64,
        clinician: usize,
        reason: &[&str],
    ) -> Enc {
        let g = self.g;
        let class_display = match class {
            "AMB" => "ambulatory",
            "EMER" => "emergency",
            _ => "inpatient encounter",
        };
        let id = self.id();
        let mut e = obj! {
            "resourceType" => "Encounter",
            "id" => id.as_str(),
            "meta" => meta(),
            "status" => "finished",
            "class" => coding(ACT_CODE, class, class_display),
            "type" => vec![concept(SNOMED, kind.0, kind.1)],
            "subject" => reference(self.subject.clone()),
            "participant" => vec![
                obj! {
                    "type" => vec![
                        concept(PARTICIPATION, "PPRF", "primary performer"),
                    ],
                    "individual" => g.practitioner(clinician),
                },
            ],
            "period" => obj! {"start" => datetime(start), "end" => datetime(start + minutes)},
            "serviceProvider" => g.organization(g.clinicians[clinician].org),
        };
        if !reason.is_empty() {
            e["reasonReference"] = reason.iter().map(|r| reference(*r)).collect();
        }
        if class == "IMP" {
            e["hospitalization"] = obj! {
                "dischargeDisposition" => concept(DISCHARGE, "home", "Home"),
            };
        }
        let urn = self.add("Encounter", &id, e);
        Enc { urn, start, clinician }
    }

    fn well_visits(&mut self) {
        let mut days = Vec::new();
        let years = (self.end - self.birth) / 365;
        let last = self.end - self.rng.range(14, 240);
        if years < 3 {
            const SCHEDULE: [i64; 11] = [3, 30, 60, 120, 180, 270, 365, 450, 540, 730, 913];
            let due: Vec<i64> = SCHEDULE.iter().map(|d| self.birth + d).filter(|&d| d <= self.end - 7).collect();
            days.extend(due.iter().rev().take(3).rev().map(|&d| d + self.rng.range(0, 5).min(self.end - 7 - d)));
        } else {
            let count = if years < 18 { 3 } else { 2 };
            for k in (0..count).rev() {
                days.push(last - 365 * k + if k > 0 { self.rng.range(-25, 25) } else { 0 });
            }
        }
        for (i, &day) in days.iter().enumerate() {
            let start = self.clinic_time(day);
            let age = self.age(start);
            let kind = if age < 18.0 { WELL_CHILD } else { WELL_ADULT };
            let minutes = self.rng.range(20, 45);
            let enc = self.encounter("AMB", kind, start, minutes, self.pcp, &[]);
            self.well_vitals(&enc);
            if years >= 18 {
                self.lab_draw(&enc, false, true);
            }
            self.immunizations(&enc);
            self.screenings(&enc, i + 1 == days.len());
            self.commit(false);
            self.visits.push(enc);
        }
    }

    fn immunizations(&mut self, enc: &Enc) {
        let age_days = enc.start.div_euclid(DAY) - self.birth;
        let age = age_days / 365;
        let mut given: Vec<Vaccine> = childhood_vaccines(age_days).to_vec();
        let flu = match age {
            ..18 => 0.65,
            18..65 => 0.5,
            _ => 0.8,
        };
        if age_days >= 180 && self.rng.chance(flu) {
            given.push(FLU);
        }
        if age >= 18 {
            if self.rng.chance(0.2) {
                given.push(COVID);
            }
            if self.rng.chance(0.06) {
                given.push(TD);
            }
            if age >= 50 && self.rng.chance(0.08) {
                given.push(ZOSTER);
            }
            if age >= 65 && self.rng.chance(0.08) {
                given.push(PPSV23);
            }
        }
        for (k, (code, display)) in given.into_iter().enumerate() {
            let id = self.id();
            let imm = obj! {
                "resourceType" => "Immunization",
                "id" => id.as_str(),
                "meta" => meta(),
                "status" => "completed",
                "vaccineCode" => concept(CVX, code, display),
                "patient" => reference(self.subject.clone()),
                "encounter" => reference(enc.urn.clone()),
                "occurrenceDateTime" => datetime(enc.start + 25 + k as i64),
                "primarySource" => true,
                "lotNumber" => format!("L{:06}", self.rng.below(1_000_000)),
                "performer" => vec![obj! {"actor" => self.g.practitioner(enc.clinician)}],
            };
            self.add("Immunization", &id, imm);
        }
    }

    fn screenings(&mut self, enc: &Enc, last: bool) {
        let age = self.age(enc.start);
        let mut done = Vec::new();
        if age >= 12.0 && self.rng.chance(0.25) {
            done.push(DEPRESSION_SCREENING);
        }
        if !self.male && (40.0..75.0).contains(&age) && self.rng.chance(0.35) {
            done.push(MAMMOGRAPHY);
        }
        if !self.male && age >= 65.0 && self.rng.chance(0.15) {
            done.push(BONE_DENSITY);
        }
        if last && self.chronic.iter().any(|c| !chronic_drugs(*c).is_empty()) {
            done.push(RECONCILIATION);
        }
        for code in done {
            let minutes = if code == MAMMOGRAPHY || code == BONE_DENSITY { 30 } else { 10 };
            self.procedure(code, enc, enc.start + 10, minutes, None);
        }
    }

    // ---------------------------------------------------------- observations

    fn observation(&mut self, enc: &Enc, at: i64, category: (&str, &str), code: Code, fields: Value) -> String {
        let id = self.id();
        let mut o = obj! {
            "resourceType" => "Observation",
            "id" => id.as_str(),
            "meta" => meta(),
            "status" => "final",
            "category" => vec![concept(OBSERVATION_CATEGORY, category.0, category.1)],
            "code" => concept(LOINC, code.0, code.1),
            "subject" => reference(self.subject.clone()),
            "encounter" => reference(enc.urn.clone()),
            "effectiveDateTime" => datetime(at),
            "issued" => datetime(at + if category.0 == "laboratory" { 180 } else { 0 }),
        };
        if let (Value::Object(o), Value::Object(fields)) = (&mut o, fields) {
            o.extend(fields);
        }
        self.add("Observation", &id, o)
    }

    fn vital(&mut self, enc: &Enc, at: i64, (code, display, unit): Vital, value: f64, decimals: u8) {
        let fields = obj! {"valueQuantity" => quantity(round(value, decimals), decimals, unit)};
        self.observation(enc, at, ("vital-signs", "Vital Signs"), (code, display), fields);
    }

    fn blood_pressure(&mut self, enc: &Enc, at: i64) {
        let age = self.age(at);
        let (mut sys, mut dia) =
            if age < 18.0 { (90.0 + 1.6 * age, 55.0 + 1.0 * age) } else { (115.0 + 0.3 * (age - 18.0), 74.0) };
        if self.has(Chronic::Hypertension) {
            sys += 16.0;
            dia += 8.0;
        }
        sys += self.rng.normal() * 8.0;
        dia += self.rng.normal() * 6.0;
        let dia = round(dia.min(sys - 20.0), 0);
        let sys = round(sys, 0);
        let component = |(code, display, unit): Vital, v: f64| {
            obj! {"code" => concept(LOINC, code, display), "valueQuantity" => quantity(v, 0, unit)}
        };
        let fields = obj! {"component" => vec![component(SYSTOLIC, sys), component(DIASTOLIC, dia)]};
        self.observation(
            enc,
            at,
            ("vital-signs", "Vital Signs"),
            ("85354-9", "Blood pressure panel with all children optional"),
            fields,
        );
    }

    fn heart_rate(&mut self, age: f64, fever: bool) -> f64 {
        let mean = match age {
            a if a < 1.0 => 130.0,
            a if a < 3.0 => 115.0,
            a if a < 6.0 => 100.0,
            a if a < 12.0 => 88.0,
            a if a < 18.0 => 78.0,
            _ => 72.0,
        };
        mean + if fever { 12.0 } else { 0.0 } + self.rng.normal() * 9.0
    }

    fn well_vitals(&mut self, enc: &Enc) {
        let at = enc.start + 5;
        let age = self.age(at);
        let adult_factor = self.adult_height / 170.0;
        let height = if age >= 18.0 {
            self.adult_height
        } else {
            interpolate(&CHILD_HEIGHT, age) * adult_factor.min(1.06) * (1.0 + 0.01 * self.growth_z)
        };
        let height = round(height + self.rng.normal() * 0.3, 1);
        let bmi = if age >= 18.0 {
            self.adult_bmi + self.rng.normal() * 0.4
        } else {
            interpolate(&CHILD_BMI, age) * (1.0 + 0.07 * self.growth_z)
        };
        let weight = round(bmi * (height / 100.0) * (height / 100.0), 1);
        let bmi = round(weight / ((height / 100.0) * (height / 100.0)), 1);
        self.vital(enc, at, HEIGHT, height, 1);
        self.vital(enc, at, WEIGHT, weight, 1);
        if age >= 2.0 {
            self.vital(enc, at, BMI, bmi, 1);
        }
        if age >= 3.0 {
            self.blood_pressure(enc, at);
        }
        let hr = self.heart_rate(age, false);
        self.vital(enc, at, HEART_RATE, hr, 0);
        let rr = match age {
            a if a < 1.0 => 34.0,
            a if a < 3.0 => 28.0,
            a if a < 6.0 => 24.0,
            a if a < 12.0 => 20.0,
            a if a < 18.0 => 17.0,
            _ => 15.0,
        } + self.rng.normal() * 2.0;
        self.vital(enc, at, RESPIRATORY_RATE, rr, 0);
    }

    /// Temperature, heart rate and oxygen saturation of an acute visit.
    fn sick_vitals(&mut self, enc: &Enc, fever: bool, respiratory: bool, severe: bool) {
        let at = enc.start + 5;
        let age = self.age(at);
        let temp = if fever { self.rng.between(38.0, 39.6) } else { 36.8 + self.rng.normal() * 0.25 };
        self.vital(enc, at, TEMPERATURE, temp, 1);
        let hr = self.heart_rate(age, fever);
        self.vital(enc, at, HEART_RATE, hr, 0);
        let spo2 = match (respiratory, severe) {
            (_, true) => 91.0 + self.rng.normal() * 2.0,
            (true, false) => 96.0 + self.rng.normal(),
            _ => 98.0 + self.rng.normal() * 0.7,
        };
        self.vital(enc, at, SPO2, spo2.min(100.0), 0);
    }

    /// The value of lab `i` at the patient's `draw`-th draw.
    fn lab_value(&mut self, i: usize, infection: bool) -> f64 {
        let step = self.draws as f64;
        let (mean, sd) = match i {
            GLU if self.has(Chronic::Diabetes) => (150.0 + 15.0 * self.a1c_trend * step, 28.0),
            GLU if self.has(Chronic::Prediabetes) => (106.0, 6.0),
            GLU => (88.0, 7.0),
            CREA if self.has(Chronic::Ckd) => (1.9, 0.3),
            CREA if self.male => (0.95, 0.13),
            CREA => (0.78, 0.11),
            HGB if self.has(Chronic::Anemia) => (10.4, 0.8),
            HGB if self.male => (15.0, 0.9),
            HGB => (13.5, 0.8),
            WBC if infection => (14.0, 2.5),
            WBC => (7.0, 1.5),
            K if self.has(Chronic::Ckd) => (4.8, 0.35),
            K => (4.2, 0.3),
            NA => (140.0, 2.0),
            A1C if self.has(Chronic::Diabetes) => (7.6 + self.a1c_trend * step, 0.6),
            A1C if self.has(Chronic::Prediabetes) => (6.0, 0.15),
            A1C => (5.2, 0.2),
            CHOL if self.has(Chronic::Hyperlipidemia) => (235.0 - 12.0 * step, 20.0),
            _ => (180.0, 22.0),
        };
        let v = mean + sd * (0.75 * self.lab_z[i] + 0.6 * self.rng.normal());
        round(v.max(LABS[i].low * 0.3), LABS[i].decimals)
    }

    /// A critical value of lab `i`.
    fn critical_value(&mut self, i: usize) -> f64 {
        let v = match i {
            GLU if self.has(Chronic::Diabetes) => self.rng.between(410.0, 560.0),
            GLU => self.rng.between(28.0, 38.0),
            K => self.rng.between(6.3, 7.2),
            NA => self.rng.between(112.0, 119.0),
            HGB => self.rng.between(5.6, 6.9),
            _ => self.rng.between(31.0, 45.0),
        };
        round(v, LABS[i].decimals)
    }

    fn lab(&mut self, enc: &Enc, at: i64, i: usize, value: f64) -> String {
        let l = &LABS[i];
        let (code, display) = l.interpret(value);
        let fields = obj! {
            "valueQuantity" => quantity(value, l.decimals, l.unit),
            "referenceRange" => vec![
                obj! {"low" => quantity(l.low, l.decimals, l.unit), "high" => quantity(l.high, l.decimals, l.unit)},
            ],
            "interpretation" => vec![concept(INTERPRETATION, code, display)],
        };
        self.observation(enc, at, ("laboratory", "Laboratory"), (l.loinc, l.display), fields)
    }

    fn report(&mut self, enc: &Enc, at: i64, code: Code, results: Vec<String>) {
        let id = self.id();
        let report = obj! {
            "resourceType" => "DiagnosticReport",
            "id" => id.as_str(),
            "meta" => meta(),
            "status" => "final",
            "category" => vec![concept("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")],
            "code" => concept(LOINC, code.0, code.1),
            "subject" => reference(self.subject.clone()),
            "encounter" => reference(enc.urn.clone()),
            "effectiveDateTime" => datetime(at),
            "issued" => datetime(at + 180),
            "performer" => vec![self.g.organization(self.g.clinicians[enc.clinician].org)],
            "result" => results.into_iter().map(reference).collect::<Vec<_>>(),
        };
        self.add("DiagnosticReport", &id, report);
    }

    /// A blood draw: CBC always; with `full`, the metabolic panel,
    /// cholesterol and (from 35, or when (pre)diabetic) HbA1c.
    fn lab_draw(&mut self, enc: &Enc, infection: bool, full: bool) {
        let at = enc.start + 20;
        let critical =
            if full && self.rng.chance(0.015) { Some(*self.rng.pick(&[GLU, K, NA, HGB, WBC])) } else { None };
        let value = |r: &mut Self, i: usize| {
            if critical == Some(i) { r.critical_value(i) } else { r.lab_value(i, infection) }
        };
        if full {
            let mut results = Vec::new();
            for i in [GLU, CREA, K, NA] {
                let v = value(self, i);
                results.push(self.lab(enc, at, i, v));
            }
            self.report(enc, at, ("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma"), results);
        }
        let mut results = Vec::new();
        for i in [HGB, WBC] {
            let v = value(self, i);
            results.push(self.lab(enc, at, i, v));
        }
        self.report(enc, at, ("58410-2", "CBC panel - Blood by Automated count"), results);
        if full {
            let v = value(self, CHOL);
            self.lab(enc, at, CHOL, v);
            if self.age(at) >= 35.0 || self.has(Chronic::Diabetes) || self.has(Chronic::Prediabetes) {
                let v = value(self, A1C);
                self.lab(enc, at, A1C, v);
            }
            self.draws += 1;
        }
    }

    // ------------------------------------------------ conditions, treatments

    fn condition(
        &mut self,
        code: Code,
        category: (&str, &str),
        enc: &Enc,
        onset: i64,
        abatement: Option<i64>,
    ) -> String {
        let id = self.id();
        let (status, status_display) =
            if abatement.is_some() { ("resolved", "Resolved") } else { ("active", "Active") };
        let mut c = obj! {
            "resourceType" => "Condition",
            "id" => id.as_str(),
            "meta" => meta(),
            "clinicalStatus" => concept(CONDITION_CLINICAL, status, status_display),
            "verificationStatus" => concept(CONDITION_VERIFICATION, "confirmed", "Confirmed"),
            "category" => vec![concept(CONDITION_CATEGORY, category.0, category.1)],
            "code" => concept(SNOMED, code.0, code.1),
            "subject" => reference(self.subject.clone()),
            "encounter" => reference(enc.urn.clone()),
            "onsetDateTime" => datetime(onset),
            "recordedDate" => datetime(enc.start + 15),
            "recorder" => self.g.practitioner(enc.clinician),
        };
        if let Some(a) = abatement {
            c["abatementDateTime"] = Value::from(datetime(a));
        }
        self.add("Condition", &id, c)
    }

    fn medication(&mut self, drug: &Drug, enc: &Enc, authored: i64, status: &str, reason: Option<&str>) {
        let id = self.id();
        let (frequency, period, unit) = drug.timing;
        let mut m = obj! {
            "resourceType" => "MedicationRequest",
            "id" => id.as_str(),
            "meta" => meta(),
            "status" => status,
            "intent" => "order",
            "medicationCodeableConcept" => concept(RXNORM, drug.code, drug.display),
            "subject" => reference(self.subject.clone()),
            "encounter" => reference(enc.urn.clone()),
            "authoredOn" => datetime(authored),
            "requester" => self.g.practitioner(enc.clinician),
            "dosageInstruction" => vec![
                obj! {
                    "sequence" => 1,
                    "text" => drug.instruction,
                    "timing" => obj! {
                        "repeat" => obj! {"frequency" => frequency, "period" => period, "periodUnit" => unit},
                    },
                    "asNeededBoolean" => drug.as_needed,
                },
            ],
        };
        if let Some(r) = reason {
            m["reasonReference"] = Value::from(vec![reference(r)]);
        }
        self.add("MedicationRequest", &id, m);
    }

    /// The status of a prescription written at `authored` for `course` days.
    fn rx_status(&self, authored: i64, course: Option<i64>) -> &'static str {
        match course {
            Some(days) if authored.div_euclid(DAY) + days < self.end => "completed",
            _ if self.deceased => "stopped",
            _ => "active",
        }
    }

    fn procedure(&mut self, code: Code, enc: &Enc, start: i64, minutes: i64, reason: Option<&str>) {
        let id = self.id();
        let mut p = obj! {
            "resourceType" => "Procedure",
            "id" => id.as_str(),
            "meta" => meta(),
            "status" => "completed",
            "code" => concept(SNOMED, code.0, code.1),
            "subject" => reference(self.subject.clone()),
            "encounter" => reference(enc.urn.clone()),
            "performer" => vec![obj! {"actor" => self.g.practitioner(enc.clinician)}],
        };
        if minutes >= 30 {
            p["performedPeriod"] = obj! {"start" => datetime(start), "end" => datetime(start + minutes)};
        } else {
            p["performedDateTime"] = Value::from(datetime(start));
        }
        if let Some(r) = reason {
            p["reasonReference"] = Value::from(vec![reference(r)]);
        }
        self.add("Procedure", &id, p);
    }

    fn chronic_conditions(&mut self) {
        let (Some(first), Some(last)) = (self.visits.first().cloned(), self.visits.last().cloned()) else { return };
        for c in self.chronic.clone() {
            let earliest = self.birth + c.onset_age() * 365;
            let latest = first.start.div_euclid(DAY) - 1;
            if earliest > latest {
                continue;
            }
            let onset_day = self.rng.range(earliest.max(latest - 25 * 365), latest);
            let onset = self.clinic_time(onset_day);
            let urn = self.condition(c.code(), ("problem-list-item", "Problem List Item"), &first, onset, None);
            let drugs = chronic_drugs(c);
            let (switched, extra) = (self.rng.chance(0.15), self.rng.chance(0.2));
            match c {
                Chronic::Hypertension if switched => {
                    self.medication(&LISINOPRIL, &first, first.start + 15, "stopped", Some(&urn));
                    let status = self.rx_status(last.start, None);
                    self.medication(&AMLODIPINE, &last, last.start + 15, status, Some(&urn));
                }
                Chronic::Hyperlipidemia | Chronic::Osteoarthritis if self.rng.chance(0.3) => {}
                _ => {
                    for (k, d) in drugs.iter().enumerate() {
                        if k > 0 && c == Chronic::Hypertension && !extra {
                            break;
                        }
                        let status = self.rx_status(last.start, None);
                        self.medication(d, &last, last.start + 15, status, Some(&urn));
                    }
                }
            }
            if self.commit(true) {
                self.recorded.push((c, urn));
            }
        }
    }

    fn follow_up(&mut self) {
        let reasons: Vec<(Chronic, String)> = self
            .recorded
            .iter()
            .filter(|(c, _)| matches!(c, Chronic::Diabetes | Chronic::Hypertension | Chronic::Asthma | Chronic::Ckd))
            .cloned()
            .collect();
        let Some((main, _)) = reasons.first() else { return };
        let day = match self.visits.as_slice() {
            [.., a, b] => (a.start + b.start) / 2 / DAY + self.rng.range(-30, 30),
            _ => (self.visits[0].start / DAY + self.end) / 2,
        };
        let clinician = main.specialty().and_then(|s| self.g.specialist(s, self.hospital)).unwrap_or(self.pcp);
        let start = self.clinic_time(day);
        let urns: Vec<&str> = reasons.iter().map(|(_, u)| u.as_str()).collect();
        let enc = self.encounter("AMB", FOLLOW_UP, start, 30, clinician, &urns);
        let at = start + 5;
        let age = self.age(at);
        if age >= 3.0 {
            self.blood_pressure(&enc, at);
        }
        let hr = self.heart_rate(age, false);
        self.vital(&enc, at, HEART_RATE, hr, 0);
        if age >= 18.0 {
            let kg =
                self.adult_bmi * (self.adult_height / 100.0) * (self.adult_height / 100.0) + self.rng.normal() * 0.8;
            self.vital(&enc, at, WEIGHT, kg, 1);
            let labs: &[usize] = if self.has(Chronic::Diabetes) {
                &[A1C, GLU]
            } else if self.has(Chronic::Ckd) {
                &[CREA, K]
            } else {
                &[]
            };
            for &i in labs {
                let v = self.lab_value(i, false);
                self.lab(&enc, at + 15, i, v);
            }
        }
        if let Some((_, asthma)) = reasons.iter().find(|(c, _)| *c == Chronic::Asthma) {
            self.procedure(SPIROMETRY, &enc, at + 10, 20, Some(asthma));
        }
        self.commit(true);
    }

    fn antibiotic(&self, age: f64, strep: bool) -> Option<&'static Drug> {
        if self.penicillin_allergy {
            None
        } else if age < 12.0 && !strep {
            Some(&AMOXICILLIN_CLAVULANATE)
        } else if strep {
            Some(&PENICILLIN_V)
        } else {
            Some(&AMOXICILLIN)
        }
    }

    fn analgesic(&mut self) -> &'static Drug {
        if self.aspirin_allergy || self.rng.chance(0.5) { &ACETAMINOPHEN } else { &IBUPROFEN }
    }

    fn acute_episode(&mut self) -> bool {
        let lo = (self.birth + 30).max(self.end - 3 * 365);
        let day = self.rng.range(lo, self.end - 1);
        let age = (day - self.birth) as f64 / 365.25;
        let eligible: Vec<&Acute> =
            ACUTE.iter().filter(|a| (a.ages.0 as f64..=a.ages.1 as f64 + 1.0).contains(&age)).collect();
        let a = *self.rng.pick(&eligible);
        let emergency = self.rng.chance(a.emergency);
        let (class, kind, clinician, start, minutes) = if emergency {
            let ers: Vec<usize> = (0..self.g.clinicians.len())
                .filter(|&c| {
                    self.g.clinicians[c].specialty == S::Emergency && self.g.clinicians[c].org == self.hospital
                })
                .collect();
            let c = *self.rng.pick(&ers);
            ("EMER", EMERGENCY, c, day * DAY + self.rng.range(0, DAY - 1), self.rng.range(90, 360))
        } else {
            ("AMB", SYMPTOM, self.pcp, self.clinic_time(day), self.rng.range(15, 40))
        };
        let enc = self.encounter(class, kind, start, minutes, clinician, &[]);
        let onset = start - self.rng.range(60, 3 * DAY);
        let resolved = day + self.rng.range(a.days.0, a.days.1);
        let abatement = (resolved < self.end).then(|| self.clinic_time(resolved));
        let fever = self.rng.chance(a.fever);
        let urn = self.condition(a.code, ("encounter-diagnosis", "Encounter Diagnosis"), &enc, onset, abatement);
        self.sick_vitals(&enc, fever, a.respiratory, false);
        if let Some((code, p)) = a.procedure
            && self.rng.chance(p)
        {
            let minutes = if code == IMMOBILIZATION || code == SUTURE { 30 } else { 10 };
            self.procedure(code, &enc, start + 20, minutes, Some(&urn));
        }
        let (rx, p) = a.rx;
        if self.rng.chance(p) {
            let drug = match rx {
                Rx::Antibiotic => self.antibiotic(age, a.code.0 == "43878008"),
                Rx::Analgesic => Some(self.analgesic()),
            };
            if let Some(d) = drug {
                let authored = start + minutes - 5;
                let status = self.rx_status(authored, d.course);
                self.medication(d, &enc, authored, status, Some(&urn));
            }
        }
        self.commit(true)
    }

    /// A hospital stay: pneumonia or appendicitis.
    fn admission(&mut self) {
        let age_now = self.age(self.end * DAY);
        let pneumonia = self.rng.chance(if age_now >= 50.0 { 0.7 } else { 0.3 });
        let (specialty, stay, code) = if pneumonia {
            (S::InternalMedicine, self.rng.range(3, 7), ("233604007", "Pneumonia (disorder)"))
        } else {
            (S::Surgery, self.rng.range(1, 3), ("74400008", "Appendicitis (disorder)"))
        };
        let (lo, hi) = ((self.birth + 5 * 365).max(self.end - 3 * 365), self.end - stay - 2);
        if lo > hi {
            return;
        }
        let day = self.rng.range(lo, hi);
        let clinician = self.g.specialist(specialty, self.hospital).unwrap_or(self.pcp);
        let start = day * DAY + self.rng.range(0, DAY - 1);
        let minutes = stay * DAY + self.rng.range(0, 600);
        let enc = self.encounter("IMP", ADMISSION, start, minutes, clinician, &[]);
        let onset = start - self.rng.range(6 * 60, 3 * DAY);
        let abatement = (day + stay + 14 < self.end).then(|| (day + stay + 14) * DAY + 9 * 60);
        let urn = self.condition(code, ("encounter-diagnosis", "Encounter Diagnosis"), &enc, onset, abatement);
        let fever = pneumonia || self.rng.chance(0.5);
        self.sick_vitals(&enc, fever, pneumonia, pneumonia);
        if self.age(start) >= 18.0 {
            self.lab_draw(&enc, true, false);
        }
        if pneumonia {
            self.procedure(CHEST_XRAY, &enc, start + 60, 15, Some(&urn));
            if let Some(d) = self.antibiotic(self.age(start), false) {
                let status = self.rx_status(start + 90, d.course);
                self.medication(d, &enc, start + 90, status, Some(&urn));
            }
        } else {
            let minutes = self.rng.range(45, 120);
            self.procedure(APPENDECTOMY, &enc, start + 240, minutes, Some(&urn));
            let status = self.rx_status(start + 240 + minutes, ACETAMINOPHEN.course);
            self.medication(&ACETAMINOPHEN, &enc, start + 240 + minutes + 60, status, Some(&urn));
        }
        self.commit(true);
    }
}

/// What a chronic condition is treated with (hypertension: the second drug
/// only sometimes).
fn chronic_drugs(c: Chronic) -> &'static [Drug] {
    match c {
        Chronic::Diabetes => &[METFORMIN],
        Chronic::Hypertension => &[LISINOPRIL, HCTZ],
        Chronic::Hyperlipidemia => &[SIMVASTATIN],
        Chronic::Asthma => &[FLUTICASONE, ALBUTEROL],
        Chronic::Anemia => &[FERROUS_SULFATE],
        Chronic::Osteoarthritis => &[ACETAMINOPHEN],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_format() {
        for z in [-1_000_000, -1, 0, 1, 59, 60, 11_016, 20_634, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(date(i64::from(days_from_civil(2024, 2, 29))), "2024-02-29");
        assert_eq!(datetime(i64::from(days_from_civil(2026, 6, 30)) * DAY + 9 * 60 + 15), "2026-06-30T09:15:00-05:00");
    }

    #[test]
    fn ids_are_fhir_ids_and_a_bijection_of_n_and_counter() {
        let mut seen = std::collections::HashSet::new();
        for n in [0, 1, 2, 65_535, 65_536, DIRECTORY - 1, DIRECTORY] {
            for c in 0..300 {
                let id = uuid(7, n, c);
                assert!(crate::fhir::is_id(&id) && id.len() == 36 && &id[14..15] == "4", "{id}");
                assert!(seen.insert(id));
            }
        }
        assert_ne!(uuid(7, 0, 0), uuid(8, 0, 0));
    }

    #[test]
    fn interpretation_follows_the_ranges() {
        let glucose = &LABS[GLU];
        let got: Vec<&str> =
            [39.0, 40.0, 69.0, 70.0, 99.0, 100.0, 400.0, 401.0].map(|v| glucose.interpret(v).0).to_vec();
        assert_eq!(got, ["LL", "L", "L", "N", "N", "H", "H", "HH"]);
        assert_eq!(LABS[A1C].interpret(9.0).0, "H");
    }

    #[test]
    fn normal_deviates_have_unit_variance() {
        let mut rng = Rng::new(1, 2);
        let xs: Vec<f64> = (0..20_000).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "{mean} {var}");
    }
}
