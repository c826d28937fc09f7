//! FHIR R4 resources as JSON: validation and references.
//!
//! Resources are kept as `serde_json::Value`: what Plexus reads it reads by
//! path, and everything else (extensions, elements of later profiles)
//! travels untouched. Validation checks what an import must refuse: an
//! unknown or missing `resourceType`, an id that is not a FHIR id
//! (`[A-Za-z0-9\-\.]{1,64}`), the elements R4 requires (cardinality 1..)
//! of the resource types the module indexes, and references that are not
//! relative `Type/id`, conditional `Type?search`, `urn:uuid:`, contained
//! `#id` or absolute URLs.

use serde_json::Value;

/// Resource types the module stores and indexes.
pub const INDEXED: &[&str] = &[
    "Patient",
    "Observation",
    "Condition",
    "MedicationRequest",
    "AllergyIntolerance",
    "Encounter",
    "DiagnosticReport",
    "Immunization",
    "Procedure",
    "CareTeam",
];

/// Every R4 resource type (the import keeps resources of these types even
/// when it does not index them: Claim, Organization, Practitioner, ...).
pub const R4_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

/// Why a resource was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("no resourceType")]
    NoType,
    #[error("unknown resourceType `{0}`")]
    UnknownType(String),
    #[error("id `{0}` is not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)")]
    BadId(String),
    #[error("{kind} has no {element} (required)")]
    Missing { kind: String, element: &'static str },
    #[error("reference `{0}` is neither Type/id, Type?search, urn:uuid:, #contained nor an absolute URL")]
    BadReference(String),
}

/// Whether `id` is a FHIR id: `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The elements R4 requires (minimum cardinality 1) of the indexed types;
/// a choice element (`medication[x]`) is given by its prefix.
fn required(kind: &str) -> &'static [&'static str] {
    match kind {
        "Observation" => &["status", "code"],
        "Condition" => &["subject"],
        "MedicationRequest" => &["status", "intent", "medication[x]", "subject"],
        "AllergyIntolerance" => &["patient"],
        "Encounter" => &["status", "class"],
        "DiagnosticReport" => &["status", "code"],
        "Immunization" => &["status", "vaccineCode", "patient", "occurrence[x]"],
        "Procedure" => &["status", "subject"],
        _ => &[],
    }
}

fn has(resource: &serde_json::Map<String, Value>, element: &str) -> bool {
    match element.strip_suffix("[x]") {
        Some(prefix) => resource.iter().any(|(k, v)| {
            k.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
                && !v.is_null()
        }),
        None => resource.get(element).is_some_and(|v| !v.is_null()),
    }
}

/// Every `reference` string in `v`, with its JSON pointer.
pub fn references(v: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, path: &mut String, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let len = path.len();
                    path.push('/');
                    path.push_str(k);
                    if k == "reference"
                        && let Value::String(r) = x
                    {
                        out.push((path.clone(), r.clone()));
                    } else {
                        walk(x, path, out);
                    }
                    path.truncate(len);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&i.to_string());
                    walk(x, path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut String::new(), &mut out);
    out
}

/// `Type/id` of a relative reference (`Patient/123`, also with `/_history/n`).
pub fn relative(reference: &str) -> Option<(&str, &str)> {
    let mut parts = reference.split('/');
    let (kind, id) = (parts.next()?, parts.next()?);
    let rest: Vec<&str> = parts.collect();
    let history_ok = rest.is_empty() || (rest.len() == 2 && rest[0] == "_history" && is_id(rest[1]));
    (R4_TYPES.contains(&kind) && is_id(id) && history_ok).then_some((kind, id))
}

/// A conditional reference (`Location?identifier=system|value`), which
/// bulk exports use for resources outside the export: resolved by search
/// when stored.
pub fn conditional(reference: &str) -> Option<(&str, &str)> {
    let (kind, query) = reference.split_once('?')?;
    (R4_TYPES.contains(&kind) && query.contains('=') && !query.contains(char::is_whitespace)).then_some((kind, query))
}

fn reference_ok(r: &str) -> bool {
    relative(r).is_some()
        || conditional(r).is_some()
        || r.strip_prefix("urn:uuid:").is_some_and(|u| u.len() == 36)
        || r.starts_with("urn:oid:")
        || r.starts_with('#')
        || r.starts_with("http://")
        || r.starts_with("https://")
}

/// Check one resource; `Ok` with its type and id (`None`: no id yet, as in
/// a bundle entry to be created).
pub fn validate(v: &Value) -> Result<(String, Option<String>), Invalid> {
    let m = v.as_object().ok_or(Invalid::NotAnObject)?;
    let kind = m.get("resourceType").and_then(Value::as_str).ok_or(Invalid::NoType)?;
    if !R4_TYPES.contains(&kind) {
        return Err(Invalid::UnknownType(kind.chars().take(64).collect()));
    }
    let id = match m.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if is_id(id) => Some(id.clone()),
        Some(other) => {
            let shown = other.as_str().map_or_else(|| other.to_string(), str::to_owned);
            return Err(Invalid::BadId(shown.chars().take(80).collect()));
        }
    };
    for element in required(kind) {
        if !has(m, element) {
            return Err(Invalid::Missing { kind: kind.to_owned(), element });
        }
    }
    for (_, r) in references(v) {
        if !reference_ok(&r) {
            return Err(Invalid::BadReference(r.chars().take(120).collect()));
        }
    }
    Ok((kind.to_owned(), id))
}

/// The patient a resource belongs to (`Patient/<id>` → `<id>`): the
/// resource itself for a Patient, else its `subject` or `patient`.
pub fn patient_of(v: &Value) -> Option<String> {
    if v.get("resourceType").and_then(Value::as_str) == Some("Patient") {
        return v.get("id").and_then(Value::as_str).map(str::to_owned);
    }
    ["/subject/reference", "/patient/reference"]
        .iter()
        .filter_map(|p| v.pointer(p).and_then(Value::as_str))
        .find_map(|r| relative(r).filter(|(k, _)| *k == "Patient").map(|(_, id)| id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_types_required_elements_and_references() {
        assert!(is_id("a-1.B") && is_id(&"x".repeat(64)));
        assert!(!is_id("") && !is_id(&"x".repeat(65)) && !is_id("a/b") && !is_id("a b") && !is_id("日本"));
        let obs = json!({"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "HbA1c"},
                         "subject": {"reference": "Patient/p1"}});
        assert_eq!(validate(&obs).unwrap(), ("Observation".into(), Some("o1".into())));
        assert_eq!(patient_of(&obs).as_deref(), Some("p1"));
        let cases = [
            (json!([1]), Invalid::NotAnObject),
            (json!({"id": "x"}), Invalid::NoType),
            (json!({"resourceType": "Patients"}), Invalid::UnknownType("Patients".into())),
            (json!({"resourceType": "Patient", "id": "a/b"}), Invalid::BadId("a/b".into())),
            (json!({"resourceType": "Patient", "id": 7}), Invalid::BadId("7".into())),
            (
                json!({"resourceType": "Observation", "status": "final"}),
                Invalid::Missing { kind: "Observation".into(), element: "code" },
            ),
            (
                json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                    "subject": {"reference": "Patient/p"}}),
                Invalid::Missing { kind: "MedicationRequest".into(), element: "medication[x]" },
            ),
            (
                json!({"resourceType": "Condition", "subject": {"reference": "Patient/../x"}}),
                Invalid::BadReference("Patient/../x".into()),
            ),
        ];
        for (v, e) in cases {
            assert_eq!(validate(&v).unwrap_err(), e, "{v}");
        }
        let mr = json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                        "medicationCodeableConcept": {"text": "aspirin"}, "subject": {"reference": "urn:uuid:0d5f8a7e-6a57-4c6c-9b38-2f1a7b2f0c11"}});
        assert!(validate(&mr).is_ok());
        assert_eq!(relative("Patient/p1/_history/2"), Some(("Patient", "p1")));
        assert_eq!(relative("Patient"), None);
        assert_eq!(conditional("Location?identifier=s|v"), Some(("Location", "identifier=s|v")));
        assert_eq!(conditional("Nope?x=1"), None);
    }
}
