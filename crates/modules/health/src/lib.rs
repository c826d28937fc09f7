//! The `health` module: clinical data over HL7 FHIR R4.
//!
//! The engine is plain Rust with no MCP types; [`module`] is the MCP face.
//! - [`fhir`]: resource validation (type, id syntax, the required elements
//!   of the resources Plexus indexes) and reference extraction; resources
//!   stay `serde_json::Value`, so unknown elements are preserved, never
//!   dropped.
//! - [`import`] and [`load`]: FHIR Bundles (`batch` and `transaction`) with
//!   `urn:uuid` references resolved, and Bulk Data NDJSON; every entry
//!   validated, a report of what was rejected and why, a bundle accepted
//!   whole or not at all, re-imports idempotent.
//! - [`store`] and [`params`]: the FHIR store, sealed at rest, with search
//!   tables, blind indexes for identifiers and names, care relationships,
//!   grants and the group-committed disclosure log.
//! - [`access`]: who may see which patient; [`deid`]: HIPAA Safe Harbor
//!   de-identification for researchers.
//! - [`client`] and [`remote`]: other FHIR servers (paging, retries, SMART
//!   Backend Services), routed by patient identifier system.
//! - [`clinical`]: lab results, the care summary, the integrity digest;
//!   [`generate`]: the seeded synthetic population; [`balp`]: disclosures
//!   as IHE BALP AuditEvents.

pub mod access;
pub mod balp;
pub mod client;
pub mod clinical;
pub mod deid;
pub mod fhir;
pub mod generate;
pub mod import;
pub mod load;
pub mod module;
pub mod params;
pub mod remote;
pub mod store;

pub use module::{Health, NAME, Remote};
pub use store::FhirStore;
