//! The configured FHIR servers as the module's [`Remote`]s: each asked for
//! a patient through [`Router::patient_everything`] (the patient found by
//! identifier, then one search per type, concurrently, all by the call's
//! deadline).

use std::sync::Arc;

use serde_json::Value;
use tokio::time::Instant;

use crate::client::{FhirClient, Router};
use crate::module::Remote;

/// One configured server.
struct ServerRemote {
    router: Arc<Router>,
    index: usize,
}

impl ServerRemote {
    fn client(&self) -> &FhirClient {
        &self.router.clients()[self.index]
    }
}

/// The servers of `router`, one [`Remote`] each, in configuration order.
pub fn remotes(router: Router) -> Vec<Arc<dyn Remote>> {
    let router = Arc::new(router);
    (0..router.clients().len())
        .map(|index| Arc::new(ServerRemote { router: Arc::clone(&router), index }) as Arc<dyn Remote>)
        .collect()
}

/// Marks where a resource came from (`meta.source`, the FHIR element for
/// exactly that), unless the server already said.
fn mark_source(mut r: Value, source: &str) -> Value {
    if let Some(obj) = r.as_object_mut() {
        let meta = obj.entry("meta").or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            meta.entry("source").or_insert_with(|| Value::String(source.to_owned()));
        }
    }
    r
}

#[async_trait::async_trait]
impl Remote for ServerRemote {
    fn name(&self) -> &str {
        self.client().name()
    }

    fn serves(&self, system: &str) -> bool {
        self.client().serves(system)
    }

    async fn fetch(
        &self,
        identifier: (&str, &str),
        kinds: &[&'static str],
        deadline: Instant,
    ) -> Vec<(&'static str, Result<Vec<Value>, String>)> {
        let client = self.client();
        let source = client.config().base_url.clone();
        // The Patient comes with the identifier lookup; only the others are
        // searched.
        let searched: Vec<&str> = kinds.iter().copied().filter(|k| *k != "Patient").collect();
        let found = self.router.patient_everything(client, identifier, &searched, deadline).await;
        let mut records = match found {
            Ok(r) => r,
            Err(e) => return kinds.iter().map(|k| (*k, Err(e.to_string()))).collect(),
        };
        let mut results = std::mem::take(&mut records.results).into_iter();
        kinds
            .iter()
            .map(|kind| {
                if *kind == "Patient" {
                    return (*kind, Ok(vec![mark_source(records.patient.clone(), &source)]));
                }
                let got = match results.next() {
                    Some((_, Ok(set))) => Ok(set
                        .matches
                        .into_iter()
                        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some(kind))
                        .map(|r| mark_source(r, &source))
                        .collect()),
                    Some((_, Err(e))) => Err(e.to_string()),
                    None => Err(format!("FHIR server `{}`: no answer for {kind}", client.name())),
                };
                (*kind, got)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_source_is_marked_once() {
        let r = mark_source(json!({"resourceType": "Condition", "id": "c"}), "https://north.example/fhir");
        assert_eq!(r["meta"]["source"], "https://north.example/fhir");
        let kept = mark_source(json!({"resourceType": "Condition", "meta": {"source": "urn:ehr"}}), "https://x");
        assert_eq!(kept["meta"]["source"], "urn:ehr");
    }
}
