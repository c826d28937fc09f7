//! Connectors to software-as-a-service APIs: GitHub, Confluence, Jira and
//! Microsoft Graph (SharePoint/OneDrive). They speak through core's
//! [`HttpClient`] port (the app supplies the real client) via [`Api`], which
//! adds the credential, retries 429/5xx/connection errors with backoff (a
//! `Retry-After` is honoured) and counts the retries for the sync report.
//!
//! Credentials come from the environment or a secrets file, resolved by the
//! app at start; never from tool arguments.

pub mod confluence;
pub mod github;
pub mod graph;
pub mod jira;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use plexus_core::http::{self, HttpClient, HttpError, HttpRequest, HttpResponse, RetryPolicy};
use serde_json::Value;

/// How requests authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// None (public data, fixtures).
    Anonymous,
    /// `Authorization: Bearer <token>` (GitHub, Graph, Atlassian PATs).
    Bearer(String),
    /// `Authorization: Basic base64(user:token)` (Atlassian Cloud API tokens).
    Basic { user: String, token: String },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Anonymous => "Anonymous",
            Self::Bearer(_) => "Bearer(<redacted>)",
            Self::Basic { .. } => "Basic(<redacted>)",
        })
    }
}

impl Credential {
    /// A secret as configured: with `basic`, `user:token`; else a bearer token.
    pub fn from_secret(secret: Option<&str>, basic: bool) -> Result<Self, String> {
        let Some(s) = secret.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Self::Anonymous);
        };
        if basic {
            let (user, token) =
                s.split_once(':').ok_or("a basic credential must be written `user:token` (e-mail and API token)")?;
            Ok(Self::Basic { user: user.to_owned(), token: token.to_owned() })
        } else {
            Ok(Self::Bearer(s.to_owned()))
        }
    }

    fn header(&self) -> Option<String> {
        use base64::Engine as _;
        match self {
            Self::Anonymous => None,
            Self::Bearer(t) => Some(format!("Bearer {t}")),
            Self::Basic { user, token } => {
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))))
            }
        }
    }
}

/// One service's API: base URL, credential, retries.
pub struct Api {
    http: Arc<dyn HttpClient>,
    base: String,
    credential: Credential,
    headers: Vec<(String, String)>,
    policy: RetryPolicy,
    timeout: Duration,
    retries: AtomicUsize,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.base).field("credential", &self.credential).finish_non_exhaustive()
    }
}

impl Api {
    /// An API at `base` (no trailing slash needed).
    pub fn new(http: Arc<dyn HttpClient>, base: &str, credential: Credential) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            credential,
            headers: vec![("accept".into(), "application/json".into())],
            policy: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            retries: AtomicUsize::new(0),
        }
    }

    /// Retry with `policy` instead of the default (5 tries, 0.5 s doubling).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` under the base, or `path` itself when it is a full URL (a
    /// next-page link).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// Retries so far (and reset the count).
    pub fn take_retries(&self) -> usize {
        self.retries.swap(0, Ordering::Relaxed)
    }

    fn request(&self, mut req: HttpRequest) -> HttpRequest {
        req.timeout = self.timeout;
        req.headers.extend(self.headers.iter().cloned());
        if let Some(h) = self.credential.header() {
            req.headers.push(("authorization".into(), h));
        }
        req
    }

    /// Send `req` (authenticated, retried), not past `deadline`.
    pub async fn send(
        &self,
        req: HttpRequest,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<HttpResponse, HttpError> {
        let url = req.url.clone();
        http::send(self.http.as_ref(), self.request(req), self.policy, deadline, &|n, wait, why| {
            self.retries.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%url, attempt = n, wait_ms = wait.as_millis() as u64, reason = why, "retrying");
        })
        .await
    }

    /// GET `path` (or a full URL) as JSON.
    pub async fn get_json(&self, path: &str) -> Result<(Value, HttpResponse), HttpError> {
        let r = self.send(HttpRequest::get(self.url(path)), None).await?;
        let v = r.json()?;
        Ok((v, r))
    }

    /// GET `path` as JSON by `deadline` (live search: no retry waits past it).
    pub async fn get_json_by(&self, path: &str, deadline: tokio::time::Instant) -> Result<Value, HttpError> {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let req = HttpRequest::get(self.url(path));
        let mut req = self.request(req);
        req.timeout = left.min(self.timeout);
        let r = http::send(self.http.as_ref(), req, self.policy, Some(deadline), &|_, _, _| {}).await?;
        r.json()
    }
}

/// The `rel="next"` target of an RFC 8288 `Link` header (GitHub paging).
pub fn next_link(link: Option<&str>) -> Option<String> {
    link?.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

/// Percent-encode a query-string value (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An RFC 3339 time as Unix seconds.
pub fn rfc3339(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok().map(|t| t.unix_timestamp())
}

/// Unix seconds as RFC 3339 (`2026-11-21T12:00:00Z`).
pub fn to_rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// A string field, or empty.
pub fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// A problem worth reporting: what could not be read and why.
pub fn problem(what: impl std::fmt::Display, e: &HttpError) -> String {
    format!("{what}: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_found_among_others() {
        let h = r#"<https://api.github.com/repositories/1/issues?page=2>; rel="next", <https://api.github.com/repositories/1/issues?page=5>; rel="last""#;
        assert_eq!(next_link(Some(h)).as_deref(), Some("https://api.github.com/repositories/1/issues?page=2"));
        let last = r#"<https://x/?page=1>; rel="prev", <https://x/?page=1>; rel="first""#;
        assert_eq!(next_link(Some(last)), None);
        assert_eq!(next_link(None), None);
        assert_eq!(next_link(Some("garbage")), None);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("text ~ \"東京\""), "text%20~%20%22%E6%9D%B1%E4%BA%AC%22");
    }

    #[test]
    fn credentials_never_print_and_basic_needs_a_user() {
        let c = Credential::from_secret(Some("me@example.com:tok"), true).unwrap();
        assert_eq!(format!("{c:?}"), "Basic(<redacted>)");
        assert_eq!(c.header().unwrap(), "Basic bWVAZXhhbXBsZS5jb206dG9r");
        assert!(Credential::from_secret(Some("tok"), true).is_err());
        assert_eq!(Credential::from_secret(None, false).unwrap(), Credential::Anonymous);
    }
}
