//! Console sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie,
//! the credential it signed in with (an API key, or an access token from
//! OpenID Connect) kept server-side only (every page calls the pipeline with
//! it, so a revoked key ends the session at its next call), a CSRF token per
//! session, idle and absolute expiry (and the token's own).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use parking_lot::Mutex;
use plexus_core::Credential;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "plexus_console";
/// The language cookie's name.
pub(crate) const LANG_COOKIE: &str = "plexus_lang";
/// A session unused this long ends.
pub(crate) const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, used or not.
pub(crate) const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// At most this many live sessions; the oldest go first.
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) csrf: String,
    /// The API key or access token, sent as the credential of every call the console makes.
    pub(crate) credential: Credential,
    pub(crate) subject: String,
    pub(crate) tenant: String,
    pub(crate) roles: Vec<String>,
    created: Instant,
    last_seen: Mutex<Instant>,
    /// When the credential itself expires (an access token), if before [`ABSOLUTE`].
    expires: Option<Instant>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key, the id or the token.
        f.debug_struct("Session").field("subject", &self.subject).field("tenant", &self.tenant).finish_non_exhaustive()
    }
}

/// Why a request has no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSession {
    /// No cookie, or one this server never issued.
    Missing,
    /// The session timed out (idle or absolute).
    Expired,
}

/// The live sessions of this node.
#[derive(Default)]
pub(crate) struct Sessions {
    live: Mutex<HashMap<String, Arc<Session>>>,
}

/// 32 random bytes, hex.
pub(crate) fn token() -> String {
    let mut b = [0u8; 32];
    // The OS's CSPRNG; failing it is not something to serve through.
    getrandom::fill(&mut b).expect("the operating system's random number generator failed");
    hex::encode(b)
}

/// Compare secrets in time independent of where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie's value from the `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Sessions {
    pub(crate) fn create(
        &self,
        credential: Credential,
        lifetime: Option<Duration>,
        subject: String,
        tenant: String,
        roles: Vec<String>,
    ) -> Arc<Session> {
        let now = Instant::now();
        let s = Arc::new(Session {
            id: token(),
            csrf: token(),
            credential,
            subject,
            tenant,
            roles,
            created: now,
            last_seen: Mutex::new(now),
            expires: lifetime.map(|l| now + l),
        });
        let mut live = self.live.lock();
        live.retain(|_, s| !s.expired(now));
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.values().min_by_key(|s| s.created).map(|s| s.id.clone())
        {
            live.remove(&oldest);
        }
        live.insert(s.id.clone(), Arc::clone(&s));
        s
    }

    /// The session of the request's cookie, touched.
    pub(crate) fn get(&self, headers: &HeaderMap) -> Result<Arc<Session>, NoSession> {
        let id = cookie(headers, COOKIE).ok_or(NoSession::Missing)?;
        let mut live = self.live.lock();
        let s = live.get(id).cloned().ok_or(NoSession::Missing)?;
        let now = Instant::now();
        if s.expired(now) {
            live.remove(id);
            return Err(NoSession::Expired);
        }
        *s.last_seen.lock() = now;
        Ok(s)
    }

    pub(crate) fn remove(&self, id: &str) {
        self.live.lock().remove(id);
    }
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.created) > ABSOLUTE
            || now.duration_since(*self.last_seen.lock()) > IDLE
            || self.expires.is_some_and(|e| now >= e)
    }
}

/// `Set-Cookie` for a session (`Secure` when the browser reached us over TLS).
pub(crate) fn set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}", ABSOLUTE.as_secs())
}

/// `Set-Cookie` that ends the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_in_full() {
        let (a, b) = (token(), token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b) && !same(&a, &a[..63]) && !same("", "x"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; plexus_console=abc; plexus_lang=ja".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, LANG_COOKIE), Some("ja"));
        assert_eq!(cookie(&h, "plexus"), None);
        let sessions = Sessions::default();
        assert_eq!(sessions.get(&h).unwrap_err(), NoSession::Missing);
        let s = sessions.create(
            Credential::ApiKey("pk_x".into()),
            None,
            "alice".into(),
            "default".into(),
            vec!["admin".into()],
        );
        let mut h = HeaderMap::new();
        h.append("cookie", format!("{COOKIE}={}", s.id).parse().unwrap());
        assert_eq!(sessions.get(&h).unwrap().subject, "alice");
        assert!(!format!("{s:?}").contains("pk_x"), "the key never reaches a log");
        sessions.remove(&s.id);
        assert_eq!(sessions.get(&h).unwrap_err(), NoSession::Missing);
        // A session ends with its access token.
        let s = sessions.create(Credential::Bearer("t".into()), Some(Duration::ZERO), "bob".into(), "d".into(), vec![]);
        let mut h = HeaderMap::new();
        h.append("cookie", format!("{COOKIE}={}", s.id).parse().unwrap());
        assert_eq!(sessions.get(&h).unwrap_err(), NoSession::Expired);
        assert!(
            set_cookie("x", true).contains("HttpOnly; SameSite=Strict") && set_cookie("x", true).ends_with("; Secure")
        );
        assert!(!set_cookie("x", false).contains("Secure"));
    }
}
