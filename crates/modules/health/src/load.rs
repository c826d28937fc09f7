//! Loading files into the store: FHIR Bundles (`.json`) and Bulk Data
//! NDJSON (`.ndjson`), from files or directories; and the seeded generator's
//! population. Used by `plexus health import` and `plexus health generate`.
//!
//! A bundle is stored whole or not at all. A bundle that refers (by
//! `urn:uuid`) to resources of another bundle given in the same run is
//! retried after the others, so the order of the paths does not matter.
//! NDJSON is stored in batches of [`NDJSON_BATCH`] lines; a bad line is
//! reported and the rest of the file goes in.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use plexus_core::TenantId;
use plexus_store::StoreError;
use serde_json::Value;

use crate::import::{self, Entry, Rejected};
use crate::store::{FhirStore, PutReport};

/// NDJSON lines per transaction.
pub const NDJSON_BATCH: usize = 1_000;

/// What an import did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub files: usize,
    pub bundles: usize,
    pub bundles_rejected: usize,
    pub stored: PutReport,
    /// Resources read per type (stored or already there).
    pub per_type: BTreeMap<String, usize>,
    /// Resources given more than once (with the same or other content): the
    /// last one read is stored.
    pub repeated: usize,
    pub rejected: Vec<Rejected>,
}

/// Progress: (units done, units in all, what is being read).
pub type Progress<'a> = &'a (dyn Fn(usize, usize, &str) + Sync);

/// The `.json` and `.ndjson` files of `paths` (directories walked, sorted).
pub fn files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} does not exist", p.display())));
        }
        if p.is_dir() {
            let mut inner: Vec<PathBuf> =
                std::fs::read_dir(p)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
            inner.sort();
            out.extend(files(&inner)?);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "ndjson")) {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn name_of(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn count(report: &mut Report, entries: &[Entry]) {
    for e in entries {
        *report.per_type.entry(e.kind.clone()).or_default() += 1;
    }
}

/// One unit of input: a bundle (stored whole) or a file of NDJSON lines.
enum Unit {
    Bundle(String, Value),
    Lines(String, String),
}

/// Read `paths` into units, reporting what cannot be read.
fn read_units(list: &[PathBuf], report: &mut Report, progress: Progress<'_>) -> Vec<Unit> {
    let mut units = Vec::new();
    for (i, path) in list.iter().enumerate() {
        let name = name_of(path);
        progress(i, list.len() * 2, &name);
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                report.rejected.push(Rejected { at: name, reason: format!("cannot read: {e}") });
                continue;
            }
        };
        if path.extension().and_then(|e| e.to_str()) == Some("ndjson") {
            units.push(Unit::Lines(name, text));
            continue;
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => units.push(Unit::Bundle(name, v)),
            Err(e) => report.rejected.push(Rejected { at: name, reason: format!("not JSON: {e}") }),
        }
    }
    units
}

/// Import `paths` into `tenant`'s store.
///
/// Two passes. The first resolves every bundle (in as many rounds as make
/// progress, since a bundle may refer to another's resources) and notes
/// resources that appear more than once (Synthea's patient bundles repeat
/// their organizations and practitioners, with other content than the
/// hospital and practitioner bundles): the last one read is the version
/// kept. The second stores each unit with that version in place of every
/// copy, so a resource is written once per run and importing the same files
/// again changes nothing.
pub async fn import_paths(
    store: &FhirStore,
    tenant: &TenantId,
    paths: &[PathBuf],
    progress: Progress<'_>,
) -> Result<Report, StoreError> {
    let list = files(paths)?;
    let mut report = Report { files: list.len(), ..Report::default() };
    let units = read_units(&list, &mut report, progress);
    let mut known: HashMap<String, String> = store.ids(tenant).await?;
    // Pass 1: resolve.
    let mut resolved: Vec<Option<Vec<Entry>>> = units.iter().map(|_| None).collect();
    let mut errors: Vec<Option<Vec<Rejected>>> = units.iter().map(|_| None).collect();
    for (i, u) in units.iter().enumerate() {
        if let Unit::Lines(name, text) = u {
            let (entries, rejected) = import::ndjson(text, name);
            report.rejected.extend(rejected);
            for e in &entries {
                known.insert(e.id.clone(), e.kind.clone());
            }
            resolved[i] = Some(entries);
        }
    }
    loop {
        let mut progressed = false;
        for (i, u) in units.iter().enumerate() {
            let Unit::Bundle(name, v) = u else { continue };
            if resolved[i].is_some() {
                continue;
            }
            match import::bundle(v, name, &|id| known.get(id).cloned()) {
                Ok(entries) => {
                    for e in &entries {
                        known.insert(e.id.clone(), e.kind.clone());
                    }
                    resolved[i] = Some(entries);
                    errors[i] = None;
                    progressed = true;
                }
                Err(e) => errors[i] = Some(e.0),
            }
        }
        if !progressed {
            break;
        }
    }
    // The version of each repeated resource to keep: the last read (later
    // copies overwrite earlier ones).
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let mut last: HashMap<(String, String), Value> = HashMap::new();
    for e in resolved.iter().flatten().flatten() {
        let key = (e.kind.clone(), e.id.clone());
        let n = seen.entry(key.clone()).or_default();
        *n += 1;
        if *n > 1 {
            last.insert(key, e.resource.clone());
        }
    }
    report.repeated = last.len();
    // Pass 2: store.
    let total = units.len();
    for (i, (u, entries)) in units.iter().zip(resolved).enumerate() {
        let name = match u {
            Unit::Bundle(n, _) | Unit::Lines(n, _) => n,
        };
        progress(total + i, total * 2, name);
        let Some(mut entries) = entries else {
            report.bundles_rejected += 1;
            report.rejected.extend(errors[i].take().unwrap_or_default());
            continue;
        };
        for e in &mut entries {
            if let Some(v) = last.get(&(e.kind.clone(), e.id.clone())) {
                e.resource = v.clone();
            }
        }
        count(&mut report, &entries);
        match u {
            Unit::Bundle(..) => {
                report.stored.add(store.put(tenant, &entries).await?);
                report.bundles += 1;
            }
            Unit::Lines(..) => {
                for chunk in entries.chunks(NDJSON_BATCH) {
                    report.stored.add(store.put(tenant, chunk).await?);
                }
            }
        }
    }
    progress(total * 2, total * 2, "done");
    Ok(report)
}

/// Store the generator's population `seed` (its directory, then patients
/// `0..patients`) in `tenant`, a bundle per transaction.
pub async fn generate(
    store: &FhirStore,
    tenant: &TenantId,
    seed: u64,
    patients: u64,
    progress: Progress<'_>,
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let mut known: HashMap<String, String> = HashMap::new();
    let directory = crate::generate::directory(seed);
    let bundles = std::iter::once(directory).chain((0..patients).map(|n| crate::generate::patient(seed, n)));
    let mut n = 0usize;
    let total = patients as usize + 1;
    for b in bundles {
        let name = if n == 0 { "directory".to_owned() } else { format!("patient {}", n - 1) };
        match import::bundle(&b, &name, &|id| known.get(id).cloned()) {
            Ok(entries) => {
                report.stored.add(store.put(tenant, &entries).await?);
                report.bundles += 1;
                count(&mut report, &entries);
                if n == 0 {
                    for e in &entries {
                        known.insert(e.id.clone(), e.kind.clone());
                    }
                }
            }
            Err(e) => {
                report.bundles_rejected += 1;
                report.rejected.extend(e.0);
            }
        }
        n += 1;
        if n.is_multiple_of(100) || n == total {
            progress(n, total, &name);
        }
    }
    Ok(report)
}
