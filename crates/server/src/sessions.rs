//! Legacy-era sessions kept outside the process: rmcp's session store over
//! core's [`SessionRecords`] port, and what a session asked for since its
//! handshake (subscriptions and log level), so that a session begun on one
//! node carries on at any other after that node is gone.

use std::sync::Arc;

use plexus_core::context::LogLevel;
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
