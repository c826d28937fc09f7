//! The authorization server's JSON Web Key Set: fetched at start, refreshed
//! periodically and whenever a token names a key id the set does not have
//! (asked for by [`JwtKeys`], at most once per ten seconds). A failed fetch
//! is logged and changes nothing: the last good set stays in force.
//!
//! The client is reqwest with rustls (webpki roots, ring), no redirects, a
//! 5 s timeout for the whole exchange and a 1 MiB cap on the body.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use plexus_core::jwt::{Jwk, JwkSet, JwtAuthenticator, JwtKeys, JwtSettings};
use plexus_core::ports::Authenticator;

/// The largest key set read (a real one is a few kilobytes).
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Time allowed for one fetch, connection to last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the set is fetched when nothing asks sooner.
pub const DEFAULT_REFRESH_EVERY: Duration = Duration::from_secs(300);

/// After a failed fetch, the next attempt comes at most this much later.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// The largest leeway `[auth.jwt] leeway_seconds` accepts.
pub const MAX_LEEWAY_SECONDS: u64 = 300;

/// `[auth.jwt]` as written in `plexus.toml`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    /// `iss` of accepted tokens.
    issuer: String,
    /// Must be among `aud` of accepted tokens (this server's resource id).
    audience: String,
    /// Where the authorization server publishes its keys.
    jwks_url: String,
    /// Scopes every token must carry.
    #[serde(default)]
    required_scopes: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf` (default 60, at most 300).
    leeway_seconds: Option<u64>,
    /// Claim naming the tenant (default `tenant`; `/a/b` is a JSON pointer).
    tenant_claim: Option<String>,
    /// Claim listing the roles (default `roles`; `/realm_access/roles` works).
    roles_claim: Option<String>,
    /// Claim listing the groups (default `groups`).
    groups_claim: Option<String>,
    /// Tenant of tokens without the tenant claim (default `default`).
    default_tenant: Option<String>,
    /// Seconds between scheduled key set fetches (default 300, at least 10).
    refresh_seconds: Option<u64>,
}

/// `[auth.jwt]`, validated.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub settings: JwtSettings,
    pub jwks_url: String,
    pub refresh_every: Duration,
}

impl RawJwt {
    pub(crate) fn validate(self) -> anyhow::Result<JwtConfig> {
        if self.issuer.trim().is_empty() {
            bail!("auth.jwt.issuer must not be empty");
        }
        if self.audience.trim().is_empty() {
            bail!("auth.jwt.audience must not be empty");
        }
        check_url(&self.jwks_url).map_err(|e| anyhow::anyhow!("auth.jwt.jwks_url: {e}"))?;
        if let Some(s) = self.required_scopes.iter().find(|s| s.is_empty() || s.contains(char::is_whitespace)) {
            bail!("auth.jwt.required_scopes: `{s}` is not a scope (one word, no spaces)");
        }
        let leeway = self.leeway_seconds.unwrap_or(60);
        if leeway > MAX_LEEWAY_SECONDS {
            bail!("auth.jwt.leeway_seconds must be at most {MAX_LEEWAY_SECONDS}, not {leeway}");
        }
        let refresh = self.refresh_seconds.unwrap_or(DEFAULT_REFRESH_EVERY.as_secs());
        if refresh < 10 {
            bail!("auth.jwt.refresh_seconds must be at least 10, not {refresh}");
        }
        let mut settings = JwtSettings::new(self.issuer, self.audience);
        settings.leeway = Duration::from_secs(leeway);
        settings.required_scopes = self.required_scopes;
        for (what, value, target) in [
            ("tenant_claim", self.tenant_claim, &mut settings.tenant_claim),
            ("roles_claim", self.roles_claim, &mut settings.roles_claim),
            ("groups_claim", self.groups_claim, &mut settings.groups_claim),
            ("default_tenant", self.default_tenant, &mut settings.default_tenant),
        ] {
            if let Some(v) = value {
                if v.trim().is_empty() {
                    bail!("auth.jwt.{what} must not be empty");
                }
                *target = v;
            }
        }
        Ok(JwtConfig { settings, jwks_url: self.jwks_url, refresh_every: Duration::from_secs(refresh) })
    }
}

/// Put bearer JWT verification in front of `fallback` (API keys, the local
/// principal, anonymous callers): the returned authenticator verifies
/// `Authorization: Bearer` tokens against the returned keys, which start
/// empty and are filled by [`spawn_refresher`].
pub fn authenticator(config: &JwtConfig, fallback: Arc<dyn Authenticator>) -> (Arc<dyn Authenticator>, Arc<JwtKeys>) {
    let keys = Arc::new(JwtKeys::empty());
    let auth = JwtAuthenticator::new(config.settings.clone(), Arc::clone(&keys), fallback);
    (Arc::new(auth), keys)
}

fn client() -> anyhow::Result<&'static reqwest::Client> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    let c = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        // A redirect could lead from https to http; key sets are fetched
        // from the configured URL only.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("plexus/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    Ok(CLIENT.get_or_init(|| c))
}

/// Check a JWKS URL: `https`, or `http` to a loopback host only (keys
/// fetched in the clear from elsewhere could be swapped on the way, and with
/// them anyone could sign tokens).
pub fn check_url(url: &str) -> anyhow::Result<()> {
    let u = reqwest::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    match u.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = u.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback { Ok(()) } else { bail!("`{url}`: use https (plain http is allowed to loopback hosts only)") }
        }
        other => bail!("`{url}`: scheme `{other}` is not http or https"),
    }
}

/// Fetch and parse the key set at `url`.
pub async fn fetch(url: &str) -> anyhow::Result<JwkSet> {
    let mut resp = client()?
        .get(url)
        .header(reqwest::header::ACCEPT, "application/jwk-set+json, application/json")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot fetch the JWKS from {url}: {}", describe(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("the JWKS endpoint {url} answered {status}");
    }
    if resp.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
        bail!("the JWKS at {url} is larger than {MAX_JWKS_BYTES} bytes");
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        resp.chunk().await.map_err(|e| anyhow::anyhow!("cannot read the JWKS from {url}: {}", describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            bail!("the JWKS at {url} is larger than {MAX_JWKS_BYTES} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    parse(&body).with_context(|| format!("the JWKS at {url} is not usable"))
}

/// The error and its causes on one line (reqwest's top-level message alone
/// says little: "error sending request").
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("timed out after {} s", FETCH_TIMEOUT.as_secs());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Parse a key set. Keys this library cannot read are left out (a set may
/// hold keys of kinds it does not know); a document that is not a key set is
/// an error.
pub fn parse(body: &[u8]) -> anyhow::Result<JwkSet> {
    #[derive(serde::Deserialize)]
    struct Raw {
        keys: Vec<serde_json::Value>,
    }
    let raw: Raw = serde_json::from_slice(body).context("not a JSON Web Key Set (an object with `keys`)")?;
    let total = raw.keys.len();
    let keys: Vec<Jwk> = raw.keys.into_iter().filter_map(|k| serde_json::from_value(k).ok()).collect();
    if keys.len() < total {
        tracing::debug!(skipped = total - keys.len(), "JWKS keys not understood were left out");
    }
    Ok(JwkSet { keys })
}

fn kids(keys: &JwtKeys) -> Vec<String> {
    keys.key_ids().into_iter().map(|k| k.unwrap_or_else(|| "-".into())).collect()
}

/// Fetch once and put the set in force if it has a usable key. Either way
/// the attempt is reported to `keys`, so calls waiting for it go on.
pub async fn refresh_once(url: &str, keys: &JwtKeys) -> anyhow::Result<usize> {
    let result = match fetch(url).await {
        Ok(set) if JwtKeys::usable(&set) == 0 => {
            Err(anyhow::anyhow!("the JWKS at {url} has no usable signature key ({} keys)", set.keys.len()))
        }
        Ok(set) => {
            let before = kids(keys);
            let usable = keys.replace(set);
            let after = kids(keys);
            if before != after {
                tracing::info!(url, keys = ?after, "JWKS loaded");
            } else {
                tracing::debug!(url, keys = usable, "JWKS unchanged");
            }
            return Ok(usable);
        }
        Err(e) => Err(e),
    };
    keys.refresh_failed();
    result
}

/// Keep `keys` fresh from `url`: a fetch now, then every `every`, and
/// whenever [`JwtKeys`] asks (a token named an unknown key id). After a
/// failure the next attempt comes within [`RETRY_AFTER_FAILURE`]. The task
/// runs until the runtime stops (or the handle is aborted).
pub fn spawn_refresher(url: String, keys: Arc<JwtKeys>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let wait = match refresh_once(&url, &keys).await {
                Ok(_) => every,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "JWKS refresh failed; the keys in force stay");
                    every.min(RETRY_AFTER_FAILURE)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = keys.refresh_requested() => {
                    tracing::debug!("JWKS refresh asked for: a token named an unknown key id");
                }
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const EC_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec1","use":"sig","alg":"ES256",
        "x":"3n6MqwnCbls_FLmzsNnuGoJPJaA9nGhAvW5sqvKmKvE","y":"0LBxF-9uGbzzQ3aiVyK7-uBvqwjfmtZeSlMCCJ8jO0A"}"#;

    /// A one-shot-per-connection HTTP server answering every request with
    /// what `answer` gives for the request count.
    async fn serve(answer: impl Fn(usize) -> (u16, String) + Send + Sync + 'static) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let (status, body) = answer(n);
                n += 1;
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(body.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}/jwks.json")
    }

    #[tokio::test]
    async fn fetches_and_parses_a_key_set() {
        let url = serve(|_| (200, format!(r#"{{"keys":[{EC_JWK},{{"kty":"weird"}}]}}"#))).await;
        let set = fetch(&url).await.unwrap();
        assert_eq!(set.keys.len(), 2, "unknown kinds of keys are kept, as the set says");
        assert_eq!(JwtKeys::usable(&set), 1);
        assert_eq!(set.find("ec1").unwrap().common.key_id.as_deref(), Some("ec1"));
    }

    #[tokio::test]
    async fn refuses_errors_oversized_and_non_sets() {
        let url = serve(|_| (500, "{}".into())).await;
        let e = format!("{:#}", fetch(&url).await.unwrap_err());
        assert!(e.contains("500"), "{e}");
        let url = serve(|_| (200, format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(MAX_JWKS_BYTES)))).await;
        let e = format!("{:#}", fetch(&url).await.unwrap_err());
        assert!(e.contains("larger than"), "{e}");
        let url = serve(|_| (200, "[1,2]".into())).await;
        let e = format!("{:#}", fetch(&url).await.unwrap_err());
        assert!(e.contains("not a JSON Web Key Set"), "{e}");
        let e = format!("{:#}", fetch("http://127.0.0.1:9/jwks.json").await.unwrap_err());
        assert!(e.contains("cannot fetch the JWKS"), "{e}");
        // https is built in (rustls): a refused connection, not a missing TLS backend
        let e = format!("{:#}", fetch("https://127.0.0.1:9/jwks.json").await.unwrap_err());
        assert!(e.contains("cannot fetch the JWKS") && !e.contains("scheme"), "{e}");
    }

    #[tokio::test]
    async fn a_failed_or_empty_refresh_keeps_the_last_good_set() {
        // first a good set, then an error, then a set without usable keys
        let url = serve(|n| match n {
            0 => (200, format!(r#"{{"keys":[{EC_JWK}]}}"#)),
            1 => (503, String::new()),
            _ => (200, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.into()),
        })
        .await;
        let keys = JwtKeys::empty();
        assert_eq!(refresh_once(&url, &keys).await.unwrap(), 1);
        assert!(refresh_once(&url, &keys).await.is_err());
        assert_eq!(keys.len(), 1);
        let e = refresh_once(&url, &keys).await.unwrap_err().to_string();
        assert!(e.contains("no usable signature key"), "{e}");
        assert_eq!(keys.key_ids(), vec![Some("ec1".to_owned())]);
    }

    #[tokio::test]
    async fn the_refresher_answers_requests() {
        let url = serve(|n| match n {
            0 => (200, r#"{"keys":[]}"#.into()),
            _ => (200, format!(r#"{{"keys":[{EC_JWK}]}}"#)),
        })
        .await;
        let keys = Arc::new(JwtKeys::empty().with_min_refresh_interval(Duration::ZERO));
        let task = spawn_refresher(url, Arc::clone(&keys), Duration::from_secs(3600));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(keys.is_empty(), "the first set had no key");
        assert!(keys.request_refresh());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while keys.is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(keys.len(), 1);
        task.abort();
    }

    fn jwt_config(text: &str) -> anyhow::Result<JwtConfig> {
        toml::from_str::<RawJwt>(text).map_err(|e| anyhow::anyhow!("{e}"))?.validate()
    }

    #[test]
    fn configuration() {
        let base = "issuer = 'https://idp.test'\naudience = 'plexus'\njwks_url = 'https://idp.test/jwks'\n";
        let c = jwt_config(base).unwrap();
        assert_eq!(c.settings.leeway, Duration::from_secs(60));
        assert_eq!((c.settings.tenant_claim.as_str(), c.settings.roles_claim.as_str()), ("tenant", "roles"));
        assert_eq!(c.settings.default_tenant, "default");
        assert_eq!(c.refresh_every, DEFAULT_REFRESH_EVERY);
        let c = jwt_config(&format!(
            "{base}required_scopes = ['mcp']\nleeway_seconds = 5\ntenant_claim = 'org'\n\
             roles_claim = '/realm_access/roles'\ndefault_tenant = 'acme'\nrefresh_seconds = 60\n"
        ))
        .unwrap();
        assert_eq!(c.settings.required_scopes, vec!["mcp"]);
        assert_eq!(c.settings.leeway, Duration::from_secs(5));
        assert_eq!(c.settings.roles_claim, "/realm_access/roles");
        assert_eq!((c.settings.tenant_claim.as_str(), c.settings.default_tenant.as_str()), ("org", "acme"));
        assert_eq!(c.refresh_every, Duration::from_secs(60));
        for (extra, expected) in [
            ("leeway_seconds = 3600\n", "leeway_seconds"),
            ("refresh_seconds = 1\n", "refresh_seconds"),
            ("required_scopes = ['a b']\n", "required_scopes"),
            ("default_tenant = ''\n", "default_tenant"),
            ("jwks_uri = 'x'\n", "unknown field `jwks_uri`"),
        ] {
            let e = format!("{:#}", jwt_config(&format!("{base}{extra}")).unwrap_err());
            assert!(e.contains(expected), "{extra}: {e}");
        }
        let e =
            format!("{:#}", jwt_config(&base.replace("https://idp.test/jwks", "http://idp.test/jwks")).unwrap_err());
        assert!(e.contains("auth.jwt.jwks_url") && e.contains("https"), "{e}");
        let e = format!("{:#}", jwt_config("audience = 'a'\njwks_url = 'https://x/'\n").unwrap_err());
        assert!(e.contains("missing field `issuer`"), "{e}");
    }

    #[test]
    fn urls() {
        assert!(check_url("https://idp.example/jwks").is_ok());
        assert!(check_url("http://127.0.0.1:8080/jwks.json").is_ok());
        assert!(check_url("http://localhost/jwks").is_ok());
        assert!(check_url("http://[::1]:9/jwks").is_ok());
        assert!(check_url("http://idp.example/jwks").is_err());
        assert!(check_url("ftp://idp.example/jwks").is_err());
        assert!(check_url("not a url").is_err());
    }
}
