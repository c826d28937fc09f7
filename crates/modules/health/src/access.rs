//! Who may see which patient.
//!
//! Roles (from the trust layer): `admin`, `clinician`, `nurse`,
//! `researcher`, `auditor`; a caller with several acts in the most
//! privileged (in that order).
//! - A clinician or nurse reaches a patient only through a care
//!   relationship — a CareTeam or an Encounter of the patient that names
//!   the user's Practitioner (the user's subject is the Practitioner's id or
//!   one of its identifier values) — or an explicit assignment by an
//!   administrator, or break-the-glass: an emergency grant with a
//!   mandatory reason, for a limited time, flagged in every disclosure and
//!   raised as an alert.
//! - A researcher reaches every patient, de-identified (HIPAA Safe Harbor).
//! - An auditor reaches no clinical data, only the disclosure log.
//! - An administrator reaches every patient (every access is still
//!   disclosed).
//!
//! The decision does not depend on whether the patient exists, so a refusal
//! tells nothing about who is a patient here.

use plexus_core::{CallContext, Principal, ToolError};

use crate::store::{FhirStore, now_text};

/// The role a caller acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Admin,
    Clinician,
    Nurse,
    Researcher,
    Auditor,
}

impl Role {
    /// The most privileged health role of `p`.
    pub fn of(p: &Principal) -> Option<Role> {
        [
            ("admin", Role::Admin),
            ("clinician", Role::Clinician),
            ("nurse", Role::Nurse),
            ("researcher", Role::Researcher),
            ("auditor", Role::Auditor),
        ]
        .into_iter()
        .find(|(name, _)| p.has_role(name))
        .map(|(_, r)| r)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Clinician => "clinician",
            Role::Nurse => "nurse",
            Role::Researcher => "researcher",
            Role::Auditor => "auditor",
        }
    }
}

/// Why a caller may see a patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    Admin,
    /// `CareTeam/<id>` or `Encounter/<id>`.
    Care(String),
    /// An administrator's assignment (its reason).
    Assigned(String),
    /// Break-the-glass (its reason, and when it ends).
    BreakGlass {
        reason: String,
        until: String,
    },
    /// De-identified data only.
    Research,
}

impl Basis {
    /// The purpose a disclosure records.
    pub fn purpose(&self) -> String {
        match self {
            Basis::Admin => "administration".into(),
            Basis::Care(via) => format!("treatment (care relationship: {via})"),
            Basis::Assigned(reason) => format!("treatment (assignment: {reason})"),
            Basis::BreakGlass { reason, until } => format!("emergency access until {until}: {reason}"),
            Basis::Research => "research (de-identified)".into(),
        }
    }

    pub fn deidentified(&self) -> bool {
        matches!(self, Basis::Research)
    }

    pub fn break_glass(&self) -> bool {
        matches!(self, Basis::BreakGlass { .. })
    }
}

/// The error a caller without a role of this module gets.
pub fn no_role() -> ToolError {
    ToolError::Failed(
        "no health role: clinical data needs the role clinician, nurse, researcher or admin \
         (auditors read disclosures only)"
            .into(),
    )
}

/// The refusal an auditor gets for clinical data.
pub fn auditors_read_disclosures() -> ToolError {
    ToolError::Failed("auditors read the disclosure log (get_patient_disclosures), not clinical data".into())
}

/// A caller resolved once per call: its role and, for clinicians and
/// nurses, the keys care relationships name its Practitioner by.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    keys: std::sync::Arc<Vec<String>>,
}

impl Caller {
    /// Resolve the caller of `cx` (refused without a health role).
    pub async fn of(store: &FhirStore, cx: &CallContext) -> Result<Self, ToolError> {
        let p = &cx.principal;
        let role = Role::of(p).ok_or_else(no_role)?;
        let keys = match role {
            Role::Clinician | Role::Nurse => {
                store.practitioner_keys(&p.tenant, &p.subject).await.map_err(unavailable)?
            }
            _ => Default::default(),
        };
        Ok(Self { role, keys })
    }

    /// Decide whether the caller may see `patient` (a local id, or
    /// `system|value` for a patient only other servers know).
    pub async fn basis(&self, store: &FhirStore, cx: &CallContext, patient: &str) -> Result<Basis, ToolError> {
        let p = &cx.principal;
        match self.role {
            Role::Admin => Ok(Basis::Admin),
            Role::Researcher => Ok(Basis::Research),
            Role::Auditor => Err(auditors_read_disclosures()),
            Role::Clinician | Role::Nurse => {
                let tenant = &p.tenant;
                if let Some(via) = store.care_relationship(tenant, &self.keys, patient).await.map_err(unavailable)? {
                    return Ok(Basis::Care(via));
                }
                let now = now_text();
                if let Some(g) = store.active_grant(tenant, &p.subject, patient, &now).await.map_err(unavailable)? {
                    return Ok(if g.kind == crate::store::BREAK_GLASS {
                        Basis::BreakGlass { reason: g.reason, until: g.until }
                    } else {
                        Basis::Assigned(g.reason)
                    });
                }
                Err(ToolError::Failed(format!(
                    "access to patient {patient} denied: you have no care relationship with this patient \
                     (CareTeam, Encounter participant or assignment). In an emergency, call break_the_glass \
                     with the patient and a reason; the access is time-limited, audited and raised as an alert."
                )))
            }
        }
    }
}

/// Decide whether the caller of `cx` may see `patient`.
pub async fn decide(store: &FhirStore, cx: &CallContext, patient: &str) -> Result<Basis, ToolError> {
    Caller::of(store, cx).await?.basis(store, cx, patient).await
}

/// A store fault, as the caller sees it.
pub fn unavailable(e: plexus_store::StoreError) -> ToolError {
    ToolError::unavailable(format!("health store: {e}"))
}
