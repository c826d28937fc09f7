//! OAuth 2.1 resource server: bearer JWT access tokens, verified against the
//! authorization server's published keys (JWKS).
//!
//! [`JwtKeys`] holds the key set and is replaced whole when the app fetches a
//! new one; a token signed by a key it does not know asks the fetcher for a
//! refresh (at most one per [`REFRESH_MIN_INTERVAL`]), and the call that asked
//! waits briefly for it, so a key rotation at the authorization server costs
//! no failed call. [`JwtAuthenticator`] verifies `Credential::Bearer` tokens and
//! hands every other kind of credential to the authenticator it wraps, so API
//! keys keep working next to JWTs.
//!
//! What is checked: the signature, with an algorithm the key allows (never
//! HMAC, never `none`); `iss`, `aud`, `exp` and `sub` present, `iss` equal to
//! the issuer, `aud` containing the audience, `exp` and `nbf` against the
//! clock with the configured leeway; then the required scopes. Errors say
//! precisely what failed and never contain the token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::context::{Credential, Principal, TenantId};
use crate::ports::{AuthError, Authenticator};

/// The key set types, for the app's fetcher.
pub use jsonwebtoken::jwk::{Jwk, JwkSet};

/// At most one refresh of the key set is requested per this interval, however
/// many tokens with unknown key ids arrive.
pub const REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// How long a call whose key id is unknown waits for the refresh it caused.
pub const DEFAULT_REFRESH_WAIT: Duration = Duration::from_secs(5);

/// The largest leeway honoured (larger values are clamped): clock skew is
/// seconds, not days.
pub const MAX_LEEWAY: Duration = Duration::from_secs(3600);

/// What a token must say to be accepted, and where the principal comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// `iss` must equal this.
    pub issuer: String,
    /// `aud` (a string or an array) must contain this.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Claim naming the tenant (a string). A name starting with `/` is a JSON
    /// pointer into the claims (`/org/id`).
    pub tenant_claim: String,
    /// Claim listing the roles (an array of strings); `/realm_access/roles`
    /// style pointers work as for the tenant.
    pub roles_claim: String,
    /// Claim listing the groups (an array of strings, as Entra ID, Okta and
    /// Keycloak issue them); pointers work as for the tenant.
    pub groups_claim: String,
    /// Every one of these must be among the token's scopes.
    pub required_scopes: Vec<String>,
    /// Tenant of tokens without a tenant claim.
    pub default_tenant: String,
}

impl JwtSettings {
    /// Settings with the defaults: leeway 60 s, `tenant` and `roles` claims,
    /// no required scope, tenant `default`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(60),
            tenant_claim: "tenant".into(),
            roles_claim: "roles".into(),
            groups_claim: "groups".into(),
            required_scopes: Vec::new(),
            default_tenant: TenantId::default_tenant().as_str().to_owned(),
        }
    }
}

/// One usable verification key.
struct VerifyKey {
    kid: Option<String>,
    key: DecodingKey,
    /// The algorithms this key verifies (from its `alg`, or its type and curve).
    algorithms: Vec<Algorithm>,
}

/// A key set as parsed, with its usable keys prepared.
struct Keyring {
    set: Arc<JwkSet>,
    keys: Vec<VerifyKey>,
}

enum Lookup<'a> {
    Found(&'a VerifyKey),
    /// No key has this id (or the set is empty): a refresh may help.
    Unknown,
    /// The token names no key and the set has several.
    NoKeyId,
}

impl Keyring {
    fn new(set: JwkSet) -> Self {
        let keys = set.keys.iter().filter_map(prepare).collect();
        Self { set: Arc::new(set), keys }
    }

    fn find(&self, kid: Option<&str>) -> Lookup<'_> {
        match kid {
            Some(kid) => match self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
                Some(k) => Lookup::Found(k),
                None => Lookup::Unknown,
            },
            None => match self.keys.as_slice() {
                [only] => Lookup::Found(only),
                [] => Lookup::Unknown,
                _ => Lookup::NoKeyId,
            },
        }
    }
}

/// The algorithms a JWK may verify, or `None` when it is not a signature
/// verification key this server accepts (symmetric keys never are).
fn algorithms_of(jwk: &Jwk) -> Option<Vec<Algorithm>> {
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return None;
    }
    if jwk.common.key_operations.as_ref().is_some_and(|ops| !ops.contains(&KeyOperations::Verify)) {
        return None;
    }
    let family: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return None,
        },
        // Symmetric keys in a JWKS would let anyone who can read it sign.
        AlgorithmParameters::OctetKey(_) => return None,
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(family),
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => None,
        Some(alg) => {
            let alg = Algorithm::try_from(alg).ok()?;
            family.contains(&alg).then(|| vec![alg])
        }
    }
}

fn prepare(jwk: &Jwk) -> Option<VerifyKey> {
    let algorithms = algorithms_of(jwk)?;
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey { kid: jwk.common.key_id.clone(), key, algorithms })
}

#[derive(Debug, Default)]
struct RefreshState {
    last_request: Option<Instant>,
    /// A refresh was asked for and has not completed yet.
    pending: bool,
}

/// The verification keys in force, replaced whole by the JWKS fetcher.
///
/// A token whose key is unknown asks for a refresh through
/// [`request_refresh`](Self::request_refresh), which wakes the fetcher waiting
/// in [`refresh_requested`](Self::refresh_requested) at most once per
/// [`REFRESH_MIN_INTERVAL`]. The fetcher reports every attempt, with
/// [`replace`](Self::replace) or [`refresh_failed`](Self::refresh_failed), so
/// calls waiting for it go on at once.
pub struct JwtKeys {
    ring: RwLock<Arc<Keyring>>,
    refresh: Notify,
    state: Mutex<RefreshState>,
    /// Counts completed refresh attempts (successful or not).
    completed: watch::Sender<u64>,
    min_interval: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.ring.read();
        let kids: Vec<&str> = ring.keys.iter().map(|k| k.kid.as_deref().unwrap_or("-")).collect();
        f.debug_struct("JwtKeys").field("kids", &kids).finish_non_exhaustive()
    }
}

impl Default for JwtKeys {
    fn default() -> Self {
        Self::new(JwkSet::default())
    }
}

impl JwtKeys {
    pub fn new(set: JwkSet) -> Self {
        Self {
            ring: RwLock::new(Arc::new(Keyring::new(set))),
            refresh: Notify::new(),
            state: Mutex::new(RefreshState::default()),
            completed: watch::Sender::new(0),
            min_interval: REFRESH_MIN_INTERVAL,
        }
    }

    /// An empty set (every token is refused until the first fetch).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Change the minimum interval between refresh requests (tests).
    pub fn with_min_refresh_interval(mut self, every: Duration) -> Self {
        self.min_interval = every;
        self
    }

    /// How many keys of `set` this server would use (signature keys of a
    /// supported type, curve and algorithm; symmetric keys never).
    pub fn usable(set: &JwkSet) -> usize {
        set.keys.iter().filter(|k| prepare(k).is_some()).count()
    }

    /// Put `set` in force; returns how many of its keys are usable. Also
    /// completes a pending refresh.
    pub fn replace(&self, set: JwkSet) -> usize {
        let ring = Arc::new(Keyring::new(set));
        let usable = ring.keys.len();
        *self.ring.write() = ring;
        self.complete();
        usable
    }

    /// The fetcher tried and failed: the set in force stays, and calls
    /// waiting for the refresh go on without it.
    pub fn refresh_failed(&self) {
        self.complete();
    }

    fn complete(&self) {
        self.state.lock().pending = false;
        self.completed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The key set in force, as fetched.
    pub fn current(&self) -> Arc<JwkSet> {
        Arc::clone(&self.ring.read().set)
    }

    /// Key ids of the usable keys (`None` for keys without one).
    pub fn key_ids(&self) -> Vec<Option<String>> {
        self.ring.read().keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.ring.read().keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn ring(&self) -> Arc<Keyring> {
        Arc::clone(&self.ring.read())
    }

    /// Ask the fetcher for a fresh set. Returns whether the request went out
    /// (`false` when one was made less than the minimum interval ago).
    pub fn request_refresh(&self) -> bool {
        self.begin_refresh().1
    }

    /// Request a refresh if allowed; the receiver is there to wait for the
    /// refresh when one is under way (requested now or recently and not yet
    /// completed).
    fn begin_refresh(&self) -> (Option<watch::Receiver<u64>>, bool) {
        let rx = self.completed.subscribe();
        let mut st = self.state.lock();
        let now = Instant::now();
        let recent = st.last_request.is_some_and(|t| now.duration_since(t) < self.min_interval);
        if recent {
            return (st.pending.then_some(rx), false);
        }
        st.last_request = Some(now);
        st.pending = true;
        self.refresh.notify_one();
        (Some(rx), true)
    }

    /// Resolves when a refresh has been requested (the fetcher loops on this).
    /// A request made while nobody waits is kept for the next call.
    pub async fn refresh_requested(&self) {
        self.refresh.notified().await;
    }
}

/// Verifies bearer JWTs; every other credential goes to the wrapped
/// authenticator.
pub struct JwtAuthenticator {
    settings: JwtSettings,
    keys: Arc<JwtKeys>,
    fallback: Arc<dyn Authenticator>,
    refresh_wait: Duration,
}

impl JwtAuthenticator {
    pub fn new(settings: JwtSettings, keys: Arc<JwtKeys>, fallback: Arc<dyn Authenticator>) -> Self {
        Self { settings, keys, fallback, refresh_wait: DEFAULT_REFRESH_WAIT }
    }

    /// How long a call with an unknown key id waits for the refresh it caused
    /// (default [`DEFAULT_REFRESH_WAIT`]; zero never waits).
    pub fn with_refresh_wait(mut self, wait: Duration) -> Self {
        self.refresh_wait = wait;
        self
    }

    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    pub fn keys(&self) -> &Arc<JwtKeys> {
        &self.keys
    }

    /// Verify a token and build its principal.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        // A JWS in compact form has three parts; a JWE (five) is not accepted.
        if token.split('.').count() != 3 {
            return Err(invalid("malformed token"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token header"))?;
        if header.crit.is_some() {
            return Err(invalid("unsupported critical header parameters"));
        }
        let kid = header.kid.as_deref();
        let mut ring = self.keys.ring();
        if matches!(ring.find(kid), Lookup::Unknown) {
            // Perhaps the authorization server rotated its keys: ask for the
            // set again, and wait a little for it if a refresh is under way.
            if let (Some(mut rx), _) = self.keys.begin_refresh()
                && !self.refresh_wait.is_zero()
            {
                let _ = tokio::time::timeout(self.refresh_wait, rx.changed()).await;
            }
            ring = self.keys.ring();
        }
        let key = match ring.find(kid) {
            Lookup::Found(k) => k,
            Lookup::Unknown => return Err(invalid("unknown key id")),
            Lookup::NoKeyId => return Err(invalid("token has no key id")),
        };
        if !key.algorithms.contains(&header.alg) {
            return Err(invalid("algorithm not allowed for this key"));
        }
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &self.validation(header.alg))
            .map_err(|e| refusal(e.kind(), token))?;
        self.principal(&data.claims)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        let leeway = self.settings.leeway.min(MAX_LEEWAY);
        v.leeway = leeway.as_secs() + u64::from(leeway.subsec_nanos() > 0);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = true;
        v.set_issuer(&[&self.settings.issuer]);
        v.set_audience(&[&self.settings.audience]);
        v
    }

    fn principal(&self, claims: &Value) -> Result<Principal, AuthError> {
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(invalid("malformed sub claim")),
            None => return Err(invalid("missing sub claim")),
        };
        let s = &self.settings;
        let tenant = match claim(claims, &s.tenant_claim) {
            None | Some(Value::Null) => TenantId::new(&s.default_tenant),
            Some(Value::String(t)) if !t.is_empty() => TenantId::new(t),
            Some(_) => return Err(invalid(format!("malformed {} claim", s.tenant_claim))),
        };
        let roles = match claim(claims, &s.roles_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => strings(v).ok_or_else(|| invalid(format!("malformed {} claim", s.roles_claim)))?,
        };
        let groups = match claim(claims, &s.groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => strings(v).ok_or_else(|| invalid(format!("malformed {} claim", s.groups_claim)))?,
        };
        let scopes = scopes(claims)?;
        let missing: Vec<&str> = s.required_scopes.iter().filter(|r| !scopes.contains(r)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(AuthError::InsufficientScope(missing.join(" ")));
        }
        Ok(Principal { subject, tenant, roles, scopes, groups, method: "jwt" })
    }
}

fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::Invalid(reason.into())
}

/// A top-level claim, or a nested one when `name` is a JSON pointer.
fn claim<'a>(claims: &'a Value, name: &str) -> Option<&'a Value> {
    if name.starts_with('/') { claims.pointer(name) } else { claims.get(name) }
}

/// An array of strings.
fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(|x| x.as_str().map(str::to_owned)).collect()
}

/// Scopes from `scope` (RFC 9068: space-separated) or `scp` (an array, or a
/// space-separated string as some servers send it).
fn scopes(claims: &Value) -> Result<Vec<String>, AuthError> {
    let (name, v) = match (claims.get("scope"), claims.get("scp")) {
        (Some(v), _) => ("scope", v),
        (None, Some(v)) => ("scp", v),
        (None, None) => return Ok(Vec::new()),
    };
    let list = match v {
        Value::String(s) => Some(s.split_ascii_whitespace().map(str::to_owned).collect()),
        Value::Null => Some(Vec::new()),
        v => strings(v),
    };
    list.ok_or_else(|| invalid(format!("malformed {name} claim")))
}

/// The refusal for a failed decode. The signature has been checked before
/// any claim is, so a claim error may look at the (authentic) claims to say
/// whether a required claim is missing or of the wrong type.
fn refusal(kind: &ErrorKind, token: &str) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => invalid("token not yet valid"),
        ErrorKind::InvalidIssuer => invalid("wrong issuer"),
        ErrorKind::InvalidAudience => invalid("wrong audience"),
        ErrorKind::InvalidSubject => invalid("wrong subject"),
        ErrorKind::InvalidSignature => invalid("bad signature"),
        ErrorKind::InvalidAlgorithm => invalid("algorithm not allowed for this key"),
        ErrorKind::MissingRequiredClaim(c) => {
            let present = jsonwebtoken::dangerous::insecure_decode_claims::<Value>(token)
                .ok()
                .is_some_and(|claims| claims.get(c).is_some_and(|v| !v.is_null()));
            if present { invalid(format!("malformed {c} claim")) } else { invalid(format!("missing {c} claim")) }
        }
        ErrorKind::InvalidClaimFormat(c) => invalid(format!("malformed {c} claim")),
        ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::UnsupportedAlgorithm => invalid("unusable key"),
        _ => invalid("malformed token"),
    }
}

#[async_trait::async_trait]
impl Authenticator for JwtAuthenticator {
    async fn authenticate(&self, credential: &Credential) -> Result<Principal, AuthError> {
        match credential {
            Credential::Bearer(token) => self.verify(token).await,
            other => self.fallback.authenticate(other).await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
