//! Outbound HTTP as a port: modules that call outside services (knowledge
//! connectors to GitHub, Confluence, Jira, Microsoft Graph; health to FHIR
//! servers) speak to an [`HttpClient`], which the app implements with a real
//! client. The retry discipline every such caller needs lives here, once:
//! [`send`] retries 429 (honouring `Retry-After`), 5xx and transport errors
//! with capped exponential backoff and jitter, and gives up at once on what
//! a retry cannot fix (401, 403, 404, other 4xx).

use std::time::Duration;

/// An HTTP method (the ones connectors use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One outbound request.
#[derive(Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The whole exchange, connect to last byte.
    pub timeout: Duration,
}

impl std::fmt::Debug for HttpRequest {
    // Headers carry credentials: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest").field("method", &self.method).field("url", &self.url).finish_non_exhaustive()
    }
}

impl HttpRequest {
    /// A GET of `url` with a 30 s timeout.
    pub fn get(url: impl Into<String>) -> Self {
        Self { method: Method::Get, url: url.into(), headers: Vec::new(), body: None, timeout: Duration::from_secs(30) }
    }

    /// A POST of a JSON body.
    pub fn post_json(url: impl Into<String>, body: &serde_json::Value) -> Self {
        Self {
            method: Method::Post,
            url: url.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(body.to_string().into_bytes()),
            timeout: Duration::from_secs(30),
        }
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Set the timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
}

/// A response, body read in full.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Garbage(format!("response is not JSON: {e}")))
    }
}

/// Sends requests. Implemented by the app with a real HTTP client.
#[async_trait::async_trait]
pub trait HttpClient: Send + Sync + 'static {
    /// Send `req`; `Err` only when no response arrived (connect, TLS,
    /// timeout); any status is `Ok`.
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// No response: the connection failed or timed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// Why a call to an outside service failed, after any retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// 401: the credential is missing, wrong or expired.
    #[error("unauthorized (401): check the source's credential")]
    Unauthorized,
    /// 403: the credential may not read this.
    #[error("forbidden (403): the credential may not read {0}")]
    Forbidden(String),
    #[error("not found (404): {0}")]
    NotFound(String),
    /// 429 after every retry.
    #[error("rate limited (429) after {attempts} attempts")]
    RateLimited { attempts: u32 },
    /// 5xx after every retry.
    #[error("server error ({status}) after {attempts} attempts")]
    Server { status: u16, attempts: u32 },
    /// Another 4xx.
    #[error("request refused ({status}): {message}")]
    Refused { status: u16, message: String },
    /// No response after every retry.
    #[error("unreachable after {attempts} attempts: {message}")]
    Transport { message: String, attempts: u32 },
    /// A response that does not have the documented shape.
    #[error("unexpected response: {0}")]
    Garbage(String),
    /// The caller's deadline passed while waiting to retry.
    #[error("gave up: the next retry would pass the deadline")]
    Deadline,
}

/// How [`send`] retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (first one included).
    pub attempts: u32,
    /// The first backoff; doubled each retry.
    pub base: Duration,
    /// The longest wait between tries (also caps `Retry-After`).
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 5, base: Duration::from_millis(500), max_wait: Duration::from_secs(60) }
    }
}

impl RetryPolicy {
    /// The wait before retry number `n` (1-based), with up to 25% jitter.
    pub fn backoff(&self, n: u32, jitter_seed: u64) -> Duration {
        let exp = self.base.saturating_mul(1u32 << n.saturating_sub(1).min(16));
        let capped = exp.min(self.max_wait);
        // A cheap, good-enough spread so clients that failed together do not
        // retry together.
        let spread = (jitter_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 256;
        capped + capped.mul_f64(spread as f64 / 1024.0)
    }
}

/// `Retry-After`: delta seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(v, &format).ok()?.assume_utc();
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// Send `req` through `client`, retrying per `policy`, never sleeping past
/// `deadline`. Returns a 2xx or 3xx response, or why there was none.
/// `on_retry(attempt, wait, reason)` is told about every retry.
pub async fn send(
    client: &dyn HttpClient,
    req: HttpRequest,
    policy: RetryPolicy,
    deadline: Option<tokio::time::Instant>,
    on_retry: &(dyn Fn(u32, Duration, &str) + Send + Sync),
) -> Result<HttpResponse, HttpError> {
    // Per call, so that callers that failed together spread their retries.
    let seed =
        u64::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let jitter = seed ^ u64::from(attempt);
        let (wait, reason, last) = match client.send(req.clone()).await {
            Ok(r) if r.status < 400 => return Ok(r),
            Ok(r) => match r.status {
                401 => return Err(HttpError::Unauthorized),
                403 => return Err(HttpError::Forbidden(req.url.clone())),
                404 => return Err(HttpError::NotFound(req.url.clone())),
                429 => {
                    let told = r.header("retry-after").and_then(|v| retry_after(v, time::OffsetDateTime::now_utc()));
                    let wait = told.unwrap_or_else(|| policy.backoff(attempt, jitter));
                    (wait.min(policy.max_wait), "429".to_owned(), HttpError::RateLimited { attempts: attempt })
                }
                s if s >= 500 => {
                    (policy.backoff(attempt, jitter), s.to_string(), HttpError::Server { status: s, attempts: attempt })
                }
                s => {
                    let message = String::from_utf8_lossy(&r.body).chars().take(200).collect();
                    return Err(HttpError::Refused { status: s, message });
                }
            },
            Err(e) => {
                (policy.backoff(attempt, jitter), e.0.clone(), HttpError::Transport { message: e.0, attempts: attempt })
            }
        };
        if attempt >= policy.attempts {
            return Err(last);
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() + wait > d) {
            return Err(HttpError::Deadline);
        }
        on_retry(attempt, wait, &reason);
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers from a script, recording what it was sent.
    struct Script(Mutex<Vec<Result<HttpResponse, TransportError>>>, Mutex<u32>);

    #[async_trait::async_trait]
    impl HttpClient for Script {
        async fn send(&self, _req: HttpRequest) -> Result<HttpResponse, TransportError> {
            *self.1.lock().unwrap() += 1;
            self.0.lock().unwrap().remove(0)
        }
    }

    fn status(s: u16, headers: &[(&str, &str)]) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse {
            status: s,
            headers: headers.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect(),
            body: b"{}".to_vec(),
        })
    }

    fn fast() -> RetryPolicy {
        RetryPolicy { attempts: 4, base: Duration::from_millis(1), max_wait: Duration::from_millis(50) }
    }

    #[tokio::test]
    async fn retries_429_and_5xx_then_succeeds() {
        let s = Script(
            Mutex::new(vec![
                status(429, &[("Retry-After", "0")]),
                status(503, &[]),
                Err(TransportError("reset".into())),
                status(200, &[]),
            ]),
            Mutex::new(0),
        );
        let seen = Mutex::new(Vec::new());
        let r = send(&s, HttpRequest::get("http://x/"), fast(), None, &|n, _, why| {
            seen.lock().unwrap().push((n, why.to_owned()));
        })
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(*s.1.lock().unwrap(), 4);
        assert_eq!(*seen.lock().unwrap(), vec![(1, "429".into()), (2, "503".into()), (3, "reset".into())]);
    }

    #[tokio::test]
    async fn gives_up_at_once_on_401_and_after_the_attempts_on_5xx() {
        let s = Script(Mutex::new(vec![status(401, &[])]), Mutex::new(0));
        let e = send(&s, HttpRequest::get("http://x/"), fast(), None, &|_, _, _| {}).await.unwrap_err();
        assert_eq!(e, HttpError::Unauthorized);
        let s = Script(Mutex::new((0..4).map(|_| status(502, &[])).collect()), Mutex::new(0));
        let e = send(&s, HttpRequest::get("http://x/"), fast(), None, &|_, _, _| {}).await.unwrap_err();
        assert_eq!(e, HttpError::Server { status: 502, attempts: 4 });
    }

    #[tokio::test]
    async fn a_retry_after_past_the_deadline_gives_up() {
        let s = Script(Mutex::new(vec![status(429, &[("retry-after", "30")])]), Mutex::new(0));
        let policy = RetryPolicy { max_wait: Duration::from_secs(60), ..fast() };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let e = send(&s, HttpRequest::get("http://x/"), policy, Some(deadline), &|_, _, _| {}).await.unwrap_err();
        assert_eq!(e, HttpError::Deadline);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = time::macros::datetime!(2026-11-21 12:00:00 UTC);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("Sat, 21 Nov 2026 12:00:07 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("Sat, 21 Nov 2026 11:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy { attempts: 10, base: Duration::from_millis(100), max_wait: Duration::from_secs(1) };
        let b1 = p.backoff(1, 0);
        let b2 = p.backoff(2, 0);
        assert_eq!(b1, Duration::from_millis(100));
        assert_eq!(b2, Duration::from_millis(200));
        for n in 1..10 {
            let b = p.backoff(n, u64::from(n) * 7919);
            assert!(b <= Duration::from_millis(1250), "{b:?}");
        }
    }
}
