//! plexus-health integration tests: the engine against real outside data.
#![allow(clippy::unwrap_used)]

mod balp;
mod client;
mod clinical;
mod generate;
mod module;
mod remote;
mod synthea;

/// The shared outside FHIR data (../shared/data/fhir beside the checkout),
/// or `None` with a message saying the tests that need it are skipped.
pub(crate) fn data() -> Option<std::path::PathBuf> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/data/fhir");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: {} is absent (the shared outside data sits beside the checkout)", dir.display());
        None
    }
}
