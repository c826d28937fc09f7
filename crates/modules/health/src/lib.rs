//! The `health` module (issue 5, in progress): clinical data over HL7 FHIR
//! R4.
//!
//! Built so far, as plain Rust with no MCP types (the engine the tools will
//! sit on):
//! - [`fhir`]: resource validation (type, id syntax, the required elements
//!   of the resources Plexus indexes) and reference extraction; resources
//!   stay `serde_json::Value`, so unknown elements are preserved, never
//!   dropped.
//! - [`import`]: FHIR Bundles (`batch` and `transaction`) with `urn:uuid`
//!   references resolved, and Bulk Data NDJSON; every entry validated, a
//!   report of what was rejected and why, a bundle accepted whole or not at
//!   all.
//! - [`deid`]: HIPAA Safe Harbor de-identification for researchers.

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
