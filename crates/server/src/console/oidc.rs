//! Console sign-in with OpenID Connect: the authorization code flow with
//! PKCE (S256), `state` bound to the browser by a cookie, and RFC 8707's
//! `resource` so the provider issues an access token for this server.
//!
//! Decision: the console signs in with the *access token* and nothing
//! else. The token goes through the pipeline's own authenticator (issuer,
//! audience = this server, signature against the JWKS, expiry, roles and
//! tenant claims), exactly as an MCP client's bearer token would, and the
//! session ends when the token expires. The ID token is not needed for
//! that and is not used: the code is redeemed over a back channel with the
//! PKCE verifier, so a code injected into the callback cannot be redeemed
//! by anyone else, and a callback whose `state` does not match this
//! browser's cookie is refused (login CSRF).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use parking_lot::Mutex;
use plexus_core::http::{HttpClient, HttpRequest, Method};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::session::token;

/// How long a started sign-in may take at the provider.
const PENDING_FOR: Duration = Duration::from_secs(10 * 60);
/// At most this many sign-ins in flight.
const MAX_PENDING: usize = 10_000;
/// The cookie that binds a sign-in's `state` to the browser that started it.
pub(crate) const STATE_COOKIE: &str = "plexus_oidc_state";

/// OpenID Connect sign-in for the console (`[console.oidc]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleOidc {
    /// The provider; its metadata is read from `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// For confidential clients (sent with HTTP Basic); `None` for a public client.
    pub client_secret: Option<String>,
    /// This server's callback as the provider knows it: `https://HOST/console/oidc/callback`.
    pub redirect_url: String,
    pub scopes: Vec<String>,
    /// The resource the access token is for (RFC 8707): this server's MCP URL, the `[auth.jwt]` audience.
    pub resource: Option<String>,
    /// The provider's name on the sign-in button.
    pub label: String,
}

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
}

struct Pending {
    verifier: String,
    next: String,
    started: Instant,
}

/// Sign-ins in flight and the provider's metadata.
pub(crate) struct Oidc {
    pub(crate) config: ConsoleOidc,
    http: Arc<dyn HttpClient>,
    metadata: tokio::sync::Mutex<Option<Metadata>>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// Why a sign-in failed, in words for the sign-in page (never a secret).
#[derive(Debug)]
pub(crate) struct SignInError(pub(crate) String);

fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", super::ops::enc(k), super::ops::enc(v))).collect::<Vec<_>>().join("&")
}

/// The S256 challenge of a PKCE verifier.
pub(crate) fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The provider's answer to the code.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Oidc {
    pub(crate) fn new(config: ConsoleOidc, http: Arc<dyn HttpClient>) -> Self {
        Self { config, http, metadata: tokio::sync::Mutex::new(None), pending: Mutex::new(HashMap::new()) }
    }

    async fn metadata(&self) -> Result<Metadata, SignInError> {
        let mut cached = self.metadata.lock().await;
        if let Some(m) = cached.as_ref() {
            return Ok(m.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let unreachable = |why: String| SignInError(format!("the sign-in provider cannot be reached ({why})"));
        let mut req = HttpRequest::get(url);
        req.timeout = Duration::from_secs(10);
        let resp = self.http.send(req).await.map_err(|e| unreachable(e.0))?;
        if resp.status != 200 {
            return Err(unreachable(format!("its discovery document answered {}", resp.status)));
        }
        let m: Metadata =
            serde_json::from_slice(&resp.body).map_err(|e| unreachable(format!("bad discovery document: {e}")))?;
        if m.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
            return Err(SignInError(format!(
                "the provider's discovery document names the issuer `{}`, not the configured `{}`",
                m.issuer, self.config.issuer
            )));
        }
        *cached = Some(m.clone());
        Ok(m)
    }

    /// Start a sign-in: the provider's URL to send the browser to, and the `state` for its cookie.
    pub(crate) async fn start(&self, next: &str) -> Result<(String, String), SignInError> {
        let m = self.metadata().await?;
        let (state, verifier) = (token(), token());
        let now = Instant::now();
        {
            let mut pending = self.pending.lock();
            pending.retain(|_, p| now.duration_since(p.started) < PENDING_FOR);
            if pending.len() >= MAX_PENDING {
                return Err(SignInError("too many sign-ins in progress; try again in a few minutes".into()));
            }
            pending.insert(state.clone(), Pending { verifier: verifier.clone(), next: next.to_owned(), started: now });
        }
        let scopes = self.config.scopes.join(" ");
        let code_challenge = challenge(&verifier);
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", self.config.client_id.as_str()),
            ("redirect_uri", self.config.redirect_url.as_str()),
            ("scope", scopes.as_str()),
            ("state", state.as_str()),
            ("code_challenge", code_challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if let Some(r) = &self.config.resource {
            query.push(("resource", r.as_str()));
        }
        let sep = if m.authorization_endpoint.contains('?') { '&' } else { '?' };
        Ok((format!("{}{sep}{}", m.authorization_endpoint, form(&query)), state))
    }

    /// Finish a sign-in: the access token, how long it lives, and where to go.
    pub(crate) async fn finish(
        &self,
        code: &str,
        state: &str,
        browser_state: Option<&str>,
    ) -> Result<(String, Option<Duration>, String), SignInError> {
        if browser_state.is_none_or(|b| !super::session::same(b, state)) {
            return Err(SignInError(
                "this sign-in was not started in this browser (or its cookie expired); start again".into(),
            ));
        }
        let pending = self.pending.lock().remove(state);
        let Some(p) = pending.filter(|p| p.started.elapsed() < PENDING_FOR) else {
            return Err(SignInError("this sign-in expired or was already used; start again".into()));
        };
        let m = self.metadata().await?;
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_url.as_str()),
            ("client_id", self.config.client_id.as_str()),
            ("code_verifier", p.verifier.as_str()),
        ];
        if let Some(r) = &self.config.resource {
            fields.push(("resource", r.as_str()));
        }
        let mut headers = vec![
            ("content-type".to_owned(), "application/x-www-form-urlencoded".to_owned()),
            ("accept".to_owned(), "application/json".to_owned()),
        ];
        if let Some(secret) = &self.config.client_secret {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                super::ops::enc(&self.config.client_id),
                super::ops::enc(secret)
            ));
            headers.push(("authorization".to_owned(), format!("Basic {basic}")));
        }
        let req = HttpRequest {
            method: Method::Post,
            url: m.token_endpoint.clone(),
            headers,
            body: Some(form(&fields).into_bytes()),
            timeout: Duration::from_secs(10),
        };
        let resp = self
            .http
            .send(req)
            .await
            .map_err(|e| SignInError(format!("the token endpoint cannot be reached ({})", e.0)))?;
        let answer: TokenAnswer = serde_json::from_slice(&resp.body)
            .map_err(|_| SignInError(format!("the token endpoint answered {} without a token", resp.status)))?;
        if let Some(e) = answer.error {
            let more = answer.error_description.map(|d| format!(": {d}")).unwrap_or_default();
            return Err(SignInError(format!("the provider refused the code ({e}{more})")));
        }
        let token = answer.access_token.filter(|t| resp.status == 200 && !t.is_empty()).ok_or_else(|| {
            SignInError(format!("the token endpoint answered {} without an access token", resp.status))
        })?;
        Ok((token, answer.expires_in.map(Duration::from_secs), p.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn forms_are_encoded() {
        assert_eq!(
            form(&[("a b", "c&d"), ("redirect_uri", "https://x/y?z=1")]),
            "a%20b=c%26d&redirect_uri=https%3A%2F%2Fx%2Fy%3Fz%3D1"
        );
    }
}
