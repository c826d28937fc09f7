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

    /// Sessions in memory, with a switch that makes every call fail.
    #[derive(Default)]
    struct Records {
        rows: parking_lot::Mutex<std::collections::HashMap<String, plexus_core::ports::SessionRecord>>,
        down: std::sync::atomic::AtomicBool,
        loads: std::sync::atomic::AtomicUsize,
    }

    impl Records {
        fn check(&self) -> Result<(), String> {
            if self.down.load(std::sync::atomic::Ordering::Relaxed) { Err("store down".into()) } else { Ok(()) }
        }
    }

    #[async_trait::async_trait]
    impl SessionRecords for Records {
        async fn load(&self, id: &str) -> Result<Option<plexus_core::ports::SessionRecord>, String> {
            self.check()?;
            self.loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(self.rows.lock().get(id).cloned())
        }
        async fn begin(&self, id: &str, handshake: &str) -> Result<(), String> {
            self.check()?;
            let row = plexus_core::ports::SessionRecord { handshake: handshake.into(), ..Default::default() };
            self.rows.lock().insert(id.into(), row);
            Ok(())
        }
        async fn bind(&self, id: &str, owner: &str) -> Result<Option<String>, String> {
            self.check()?;
            Ok(self.rows.lock().get_mut(id).map(|r| r.owner.get_or_insert_with(|| owner.into()).clone()))
        }
        async fn update(&self, _: &str, _: &[String], _: Option<&str>) -> Result<(), String> {
            self.check()
        }
        async fn end(&self, id: &str) -> Result<(), String> {
            self.check()?;
            self.rows.lock().remove(id);
            Ok(())
        }
    }

    fn verified(tenant: &str, subject: &str) -> Credential {
        Credential::Verified(Box::new(plexus_core::context::Principal {
            subject: subject.into(),
            tenant: plexus_core::TenantId::new(tenant),
            roles: vec![],
            scopes: vec![],
            groups: vec![],
            method: "api_key",
        }))
    }

    #[test]
    fn owners_are_tenant_and_subject_and_nothing_else() {
        let a = Owners::owner_of(&verified("acme", "山田"));
        assert_eq!(a, Owners::owner_of(&verified("acme", "山田")));
        assert_ne!(a, Owners::owner_of(&verified("globex", "山田")), "same subject, other tenant");
        assert_ne!(a, Owners::owner_of(&verified("acme", "佐藤")));
        // the separator keeps ("ab", "c") and ("a", "bc") apart
        assert_ne!(Owners::owner_of(&verified("ab", "c")), Owners::owner_of(&verified("a", "bc")));
        assert_eq!(Owners::owner_of(&Credential::None), Owners::owner_of(&Credential::Local));
        assert_ne!(Owners::owner_of(&Credential::None), a);
        assert_eq!(a.len(), 64, "a SHA-256 in hex: no identifier kept");
    }

    #[tokio::test]
    async fn a_session_is_its_owners_on_every_process_and_unchecked_never() {
        let store = Arc::new(Records::default());
        let (alice, bob) = (Owners::owner_of(&verified("acme", "alice")), Owners::owner_of(&verified("acme", "bob")));
        let here = Owners::new(store.clone());
        store.begin("s1", "{}").await.unwrap();
        assert!(here.permits("s1", &bob).await, "not bound yet: nobody is refused");
        here.bind("s1", &alice).await;
        assert!(here.permits("s1", &alice).await);
        assert!(!here.permits("s1", &bob).await);
        assert!(here.permits("never-issued", &bob).await, "unknown: rmcp answers 404 itself");

        // Another process learns the binding from the store, once.
        let there = Owners::new(store.clone());
        let before = store.loads.load(std::sync::atomic::Ordering::Relaxed);
        assert!(!there.permits("s1", &bob).await);
        assert!(there.permits("s1", &alice).await);
        assert_eq!(store.loads.load(std::sync::atomic::Ordering::Relaxed), before + 1, "cached after the first read");

        // A second binding does not take the session over.
        there.bind("s1", &bob).await;
        assert!(!there.permits("s1", &bob).await);

        // A store that cannot be read refuses what it cannot check...
        store.down.store(true, std::sync::atomic::Ordering::Relaxed);
        let third = Owners::new(store.clone());
        assert!(!third.permits("s1", &alice).await);
        // ...while what a process already knows still holds.
        assert!(here.permits("s1", &alice).await && !here.permits("s1", &bob).await);
        here.forget("s1");
        assert!(!here.permits("s1", &alice).await, "forgotten, and the store is down: refused");
    }

    #[tokio::test]
    async fn the_rmcp_store_keeps_the_handshake_and_reads_a_broken_one_as_unknown() {
        let store = Arc::new(Records::default());
        let kept = KeptSessions(store.clone());
        let params: rmcp::model::InitializeRequestParams = serde_json::from_value(serde_json::json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "監視端末", "version": "1"}
        }))
        .unwrap();
        kept.store("s1", &SessionState::new(params)).await.unwrap();
        let back = kept.load("s1").await.unwrap().expect("kept");
        assert_eq!(back.initialize_params.client_info.name, "監視端末");
        store.rows.lock().get_mut("s1").unwrap().handshake = "{not json".into();
        assert!(kept.load("s1").await.unwrap().is_none(), "a broken handshake: the client starts anew");
        kept.delete("s1").await.unwrap();
        assert!(store.rows.lock().is_empty());
        store.down.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(kept.load("s1").await.is_err(), "an unreadable store is an error, not an unknown session");
    }
}
