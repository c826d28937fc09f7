//! Legacy-era sessions kept outside the process: rmcp's session store over
//! core's [`SessionRecords`] port, and what a session asked for since its
//! handshake (subscriptions and log level), so that a session begun on one
//! node carries on at any other after that node is gone.

use std::sync::Arc;

use plexus_core::context::{Credential, LogLevel};
use plexus_core::ports::SessionRecords;
use rmcp::transport::streamable_http_server::session::{SessionState, SessionStore, SessionStoreError};

/// rmcp's session store (the handshake, replayed on restore) over the port.
pub(crate) struct KeptSessions(pub(crate) Arc<dyn SessionRecords>);

#[async_trait::async_trait]
impl SessionStore for KeptSessions {
    async fn load(&self, id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let Some(record) = self.0.load(id).await? else { return Ok(None) };
        match serde_json::from_str::<SessionState>(&record.handshake) {
            Ok(state) => Ok(Some(state)),
            Err(e) => {
                // Treated as unknown: the client starts a new session.
                tracing::warn!(error = %e, "a kept session's handshake cannot be read; the session is not restored");
                Ok(None)
            }
        }
    }

    async fn store(&self, id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        Ok(self.0.begin(id, &serde_json::to_string(state)?).await?)
    }

    async fn delete(&self, id: &str) -> Result<(), SessionStoreError> {
        Ok(self.0.end(id).await?)
    }
}

/// Whose each legacy session is: a session belongs to the principal that
/// began it, and a request of anyone else that names it is answered as if
/// the session did not exist (so a leaked session id gives no one the
/// session's events, nor the answers to the requests the server sends it).
/// Bindings are kept with the session in the store and cached here.
pub(crate) struct Owners {
    store: Arc<dyn SessionRecords>,
    known: parking_lot::Mutex<std::collections::HashMap<String, String>>,
}

/// Cached bindings at most; past it the cache starts again (from the store).
const MAX_CACHED_OWNERS: usize = 100_000;

impl Owners {
    pub(crate) fn new(store: Arc<dyn SessionRecords>) -> Self {
        Self { store, known: parking_lot::Mutex::default() }
    }

    /// The owner of requests made with `credential` (after authentication):
    /// a digest of tenant and subject, so the store keeps no identifier.
    pub(crate) fn owner_of(credential: &Credential) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        match credential {
            Credential::Verified(p) => {
                h.update(b"principal\0");
                h.update(p.tenant.as_str().as_bytes());
                h.update(b"\0");
                h.update(p.subject.as_bytes());
            }
            _ => h.update(b"anonymous"),
        }
        hex::encode(h.finalize())
    }

    /// May `owner` use session `id`? Yes for its owner, and for a session
    /// unknown here and to the store (rmcp then answers that it does not
    /// exist) or not yet bound. A store that cannot be read refuses: a
    /// session is not handed to someone unchecked.
    pub(crate) async fn permits(&self, id: &str, owner: &str) -> bool {
        if let Some(known) = self.known.lock().get(id) {
            return known == owner;
        }
        match self.store.load(id).await {
            Ok(Some(record)) => match record.owner {
                Some(bound) => {
                    let ok = bound == owner;
                    self.remember(id, bound);
                    ok
                }
                None => true,
            },
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(error = %e, "a session's owner could not be read; the request is refused");
                false
            }
        }
    }

    /// Bind a session just begun to its owner.
    pub(crate) async fn bind(&self, id: &str, owner: &str) {
        match self.store.bind(id, owner).await {
            Ok(Some(bound)) => self.remember(id, bound),
            Ok(None) => tracing::warn!("a session just begun is not in the session store; it is not bound"),
            Err(e) => tracing::warn!(error = %e, "a session could not be bound to its owner"),
        }
    }

    pub(crate) fn forget(&self, id: &str) {
        self.known.lock().remove(id);
    }

    fn remember(&self, id: &str, owner: String) {
        let mut known = self.known.lock();
        if known.len() >= MAX_CACHED_OWNERS {
            known.clear();
        }
        known.insert(id.to_owned(), owner);
    }
}

const LEVELS: [(LogLevel, &str); 8] = [
    (LogLevel::Debug, "debug"),
    (LogLevel::Info, "info"),
    (LogLevel::Notice, "notice"),
    (LogLevel::Warning, "warning"),
    (LogLevel::Error, "error"),
    (LogLevel::Critical, "critical"),
    (LogLevel::Alert, "alert"),
    (LogLevel::Emergency, "emergency"),
];

/// The protocol's name of a log level.
pub(crate) fn level_name(level: LogLevel) -> &'static str {
    LEVELS.iter().find(|(l, _)| *l == level).map_or("info", |(_, n)| n)
}

/// A log level from its protocol name.
pub(crate) fn level_named(name: &str) -> Option<LogLevel> {
    LEVELS.iter().find(|(_, n)| *n == name).map(|(l, _)| *l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)] // logging is deprecated by SEP-2577 but legacy clients still use it
    fn level_names_are_the_protocols() {
        use rmcp::model::LoggingLevel as W;
        let wire = [W::Debug, W::Info, W::Notice, W::Warning, W::Error, W::Critical, W::Alert, W::Emergency];
        for w in wire {
            let name = serde_json::to_value(w).unwrap();
            let level = crate::convert::core_log_level(&w);
            assert_eq!(name, level_name(level), "{w:?}");
            assert_eq!(level_named(level_name(level)), Some(level));
        }
        assert_eq!(level_named("verbose"), None);
    }
}
