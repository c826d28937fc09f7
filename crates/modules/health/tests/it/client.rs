//! The FHIR client against fixture FHIR servers: small axum servers with an
//! in-memory set of resources, `Patient?identifier=`, `?patient=` searches
//! with real paging (an opaque page token in `Bundle.link[next]`),
//! `_include=MedicationRequest:medication`, OperationOutcome errors, and a
//! SMART Backend Services token endpoint that verifies the client assertion
//! with the registered public key (signature, `alg`, `kid`, `typ`, `iss` =
//! `sub` = client id, `aud` = token URL, `exp` at most five minutes ahead,
//! `jti` never seen before, grant type, scope) and issues short-lived
//! tokens the FHIR routes require. Every request is logged, and a test
//! injects faults (429 with `Retry-After`, 5xx, 401, a body that is not
//! JSON, a route that hangs, a next link to another origin). The client is
//! the server crate's real one. Keys: `tests/keys/*.TEST-ONLY.pem`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use plexus_core::http::{HttpClient, HttpError, RetryPolicy};
use plexus_health::client::{
    Auth, FhirClient, FhirError, Router, ServerConfig, ServerSettings, SigningAlg, SmartConfig,
};
use serde_json::{Value, json};
use tokio::time::Instant;

const FHIR_JSON: &str = "application/fhir+json";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub(crate) const MRN_NORTH: &str = "urn:oid:1.2.36.146.595.217.0.1";
pub(crate) const MRN_SOUTH: &str = "https://south.example/mrn";
/// An identifier value with every character a URL or a FHIR token gives
/// meaning to.
const AWKWARD: &str = "MRN 7+&_id=p1|x,y$z\\#";
const CLIENT_ID: &str = "plexus-test";

// ---------------------------------------------------------------------------
// The fixture server.

#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// Answer with this status (an OperationOutcome body), and maybe a
    /// `Retry-After`.
    Status(u16, Option<&'static str>),
    /// 200 with an HTML body.
    Garbage,
    /// Answer after 30 s.
    Hang,
    /// Serve the search, but with a next link on the other fixture's origin.
    OffOriginNext,
    /// 200 with this body.
    Body(&'static str),
}

/// A registered SMART client.
pub(crate) struct Registration {
    alg: Algorithm,
    kid: String,
    key: DecodingKey,
}

pub(crate) enum Access {
    Open,
    Static(String),
    Smart(Registration),
}

struct Page {
    matches: Arc<Vec<Value>>,
    include: bool,
    offset: usize,
    count: usize,
    off_origin: bool,
}

struct State {
    fhir: String,
    token_url: String,
    resources: Vec<Value>,
    access: Access,
    token_lifetime: u64,
    /// Issued tokens and when they expire.
    tokens: HashMap<String, Instant>,
    jtis: HashSet<String>,
    /// The `jti` of every assertion sent, faulted requests included.
    sent_jtis: Vec<String>,
    pages: HashMap<String, Page>,
    issued: u64,
    /// `METHOD path?decoded-query` of every request.
    log: Vec<String>,
    /// Per token request: `ok` or the OAuth error given.
    token_log: Vec<String>,
    /// 401s for a missing, unknown or expired token.
    refused_tokens: usize,
    faults: Vec<(String, Fault)>,
    other_origin: String,
}

pub(crate) struct Fixture {
    base: String,
    pub(crate) fhir: String,
    token_url: String,
    st: Arc<Mutex<State>>,
}

/// Percent-decoding, `+` as space (form and query rules).
fn pct(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct(k), pct(v))
        })
        .collect()
}

fn outcome(status: u16, code: &str, diagnostics: &str) -> Response {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]
    });
    (StatusCode::from_u16(status).unwrap(), [("content-type", FHIR_JSON)], body.to_string()).into_response()
}

fn fhir_json(v: &Value) -> Response {
    ([("content-type", FHIR_JSON)], v.to_string()).into_response()
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// A FHIR token search value `system|value`, `\` escapes undone.
fn split_token(v: &str) -> (String, String) {
    let (mut system, mut value, mut in_value, mut escaped) = (String::new(), String::new(), false, false);
    for c in v.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
            continue;
        } else if c == '|' && !in_value {
            in_value = true;
            continue;
        }
        if in_value { value.push(c) } else { system.push(c) }
    }
    (system, value)
}

impl State {
    fn token(&mut self, headers: &HeaderMap, body: &[u8]) -> Response {
        let r = self.verify(headers, body);
        self.token_log.push(match &r {
            Ok(_) => "ok".to_owned(),
            Err((_, e, d)) => format!("{e}: {d}"),
        });
        match r {
            Ok(v) => axum::Json(v).into_response(),
            Err((status, e, d)) => oauth_error(status, e, &d),
        }
    }

    fn verify(&mut self, headers: &HeaderMap, body: &[u8]) -> Result<Value, (u16, &'static str, String)> {
        let Access::Smart(reg) = &self.access else {
            return Err((404, "invalid_request", "no token endpoint here".into()));
        };
        let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if ct != "application/x-www-form-urlencoded" {
            return Err((400, "invalid_request", format!("content-type {ct}")));
        }
        let form: HashMap<String, String> = pairs(std::str::from_utf8(body).unwrap()).into_iter().collect();
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        if field("grant_type") != "client_credentials" {
            return Err((400, "unsupported_grant_type", field("grant_type").to_owned()));
        }
        if field("client_assertion_type") != JWT_BEARER {
            return Err((400, "invalid_request", "client_assertion_type".into()));
        }
        if field("scope") != "system/*.rs" {
            return Err((400, "invalid_scope", format!("scope `{}` is not granted", field("scope"))));
        }
        let assertion = field("client_assertion");
        let header = jsonwebtoken::decode_header(assertion).map_err(|e| (401, "invalid_client", e.to_string()))?;
        if header.alg != reg.alg
            || header.kid.as_deref() != Some(reg.kid.as_str())
            || header.typ.as_deref() != Some("JWT")
        {
            return Err((401, "invalid_client", format!("header {:?} kid {:?}", header.alg, header.kid)));
        }
        let mut v = Validation::new(reg.alg);
        v.leeway = 0;
        v.set_audience(&[&self.token_url]);
        v.set_issuer(&[CLIENT_ID]);
        v.sub = Some(CLIENT_ID.into());
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let claims = jsonwebtoken::decode::<Value>(assertion, &reg.key, &v)
            .map_err(|e| (401, "invalid_client", format!("client assertion rejected: {e}")))?
            .claims;
        let now = jsonwebtoken::get_current_timestamp();
        if claims["exp"].as_u64().unwrap() > now + 300 {
            return Err((401, "invalid_client", "exp is more than five minutes ahead".into()));
        }
        let jti = claims["jti"].as_str().unwrap_or_default();
        if jti.len() < 16 || !self.jtis.insert(jti.to_owned()) {
            return Err((401, "invalid_client", format!("jti `{jti}` missing or replayed")));
        }
        self.issued += 1;
        let token = format!("tok-{}-{:x}", self.issued, self.issued.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.tokens.insert(token.clone(), Instant::now() + Duration::from_secs(self.token_lifetime));
        Ok(json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.token_lifetime,
            "scope": "system/*.rs"
        }))
    }

    /// Whether the request carries the credential the server requires
    /// (a refusal is counted).
    fn authorized(&mut self, headers: &HeaderMap) -> bool {
        let given = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let ok = match &self.access {
            Access::Open => true,
            Access::Static(t) => given == format!("Bearer {t}"),
            Access::Smart(_) => given
                .strip_prefix("Bearer ")
                .and_then(|t| self.tokens.get(t))
                .is_some_and(|expiry| Instant::now() < *expiry),
        };
        if !ok {
            self.refused_tokens += 1;
        }
        ok
    }

    fn fhir(&mut self, rest: &str, query: &[(String, String)], off_origin: bool) -> Response {
        let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            [""] => {
                let token = query.iter().find(|(k, _)| k == "_getpages").map(|(_, v)| v.clone());
                match token.and_then(|t| self.pages.remove(&t)) {
                    Some(page) => self.page(page),
                    None => outcome(410, "not-found", "the page token is unknown or expired"),
                }
            }
            [kind] => self.search(kind, query, off_origin),
            [kind, id] => {
                let found = self.resources.iter().find(|r| r["resourceType"] == *kind && r["id"] == *id);
                match found {
                    Some(r) => fhir_json(r),
                    None => outcome(404, "not-found", &format!("Resource {kind}/{id} is not known")),
                }
            }
            _ => outcome(404, "not-found", "no such route"),
        }
    }

    fn search(&mut self, kind: &str, query: &[(String, String)], off_origin: bool) -> Response {
        const KNOWN: &[&str] = &[
            "Patient",
            "Observation",
            "Condition",
            "MedicationRequest",
            "Medication",
            "AllergyIntolerance",
            "Immunization",
            "Encounter",
        ];
        if !KNOWN.contains(&kind) {
            return outcome(404, "not-supported", &format!("Unknown resource type '{kind}'"));
        }
        let (mut count, mut include, mut filters) = (10, false, Vec::new());
        for (n, v) in query {
            match n.as_str() {
                "_count" => count = v.parse().unwrap(),
                "_include" if kind == "MedicationRequest" && v == "MedicationRequest:medication" => include = true,
                "identifier" | "_id" => filters.push((n.clone(), v.clone())),
                "patient" if kind != "Patient" => filters.push((n.clone(), v.clone())),
                _ => {
                    let msg = format!("Unknown search parameter '{n}' for resource type '{kind}'");
                    return outcome(400, "invalid", &msg);
                }
            }
        }
        let mut matches: Vec<Value> = self
            .resources
            .iter()
            .filter(|r| r["resourceType"] == kind)
            .filter(|r| {
                filters.iter().all(|(n, v)| match n.as_str() {
                    "_id" => r["id"] == v.as_str(),
                    "identifier" => {
                        let (system, value) = split_token(v);
                        r["identifier"].as_array().is_some_and(|ids| {
                            ids.iter().any(|i| i["system"] == system.as_str() && i["value"] == value.as_str())
                        })
                    }
                    _ => {
                        let target = format!("Patient/{}", v.trim_start_matches("Patient/"));
                        r["subject"]["reference"] == target.as_str() || r["patient"]["reference"] == target.as_str()
                    }
                })
            })
            .cloned()
            .collect();
        matches.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        self.page(Page { matches: Arc::new(matches), include, offset: 0, count, off_origin })
    }

    fn page(&mut self, p: Page) -> Response {
        let end = (p.offset + p.count).min(p.matches.len());
        let mut entry = Vec::new();
        let mut included = HashSet::new();
        for r in &p.matches[p.offset..end] {
            let url = format!("{}/{}/{}", self.fhir, r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
            entry.push(json!({"fullUrl": url, "resource": r, "search": {"mode": "match"}}));
        }
        if p.include {
            for r in &p.matches[p.offset..end] {
                let reference = r["medicationReference"]["reference"].as_str().unwrap_or_default();
                let Some(id) = reference.strip_prefix("Medication/") else { continue };
                let med = self.resources.iter().find(|m| m["resourceType"] == "Medication" && m["id"] == id);
                if let Some(med) = med
                    && included.insert(id.to_owned())
                {
                    let url = format!("{}/Medication/{id}", self.fhir);
                    entry.push(json!({"fullUrl": url, "resource": med, "search": {"mode": "include"}}));
                }
            }
        }
        let mut link = vec![json!({"relation": "self", "url": format!("{}/?page", self.fhir)})];
        if end < p.matches.len() {
            self.issued += 1;
            let token = format!("{:016x}", self.issued.wrapping_mul(0x2545_F491_4F6C_DD1D));
            let origin = if p.off_origin { format!("{}/fhir", self.other_origin) } else { self.fhir.clone() };
            link.push(json!({"relation": "next", "url": format!("{origin}?_getpages={token}")}));
            let next = Page { offset: end, matches: Arc::clone(&p.matches), ..p };
            self.pages.insert(token, next);
        }
        fhir_json(&json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "total": p.matches.len(),
            "link": link,
            "entry": entry
        }))
    }
}

async fn handle(st: Arc<Mutex<State>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = pct(uri.path());
    let raw = uri.query().unwrap_or("");
    let line = if raw.is_empty() { path.clone() } else { format!("{path}?{}", pct(raw)) };
    let fault = {
        let mut s = st.lock().unwrap();
        s.log.push(format!("{method} {line}"));
        if path == "/auth/token" {
            let form = pairs(std::str::from_utf8(&body).unwrap());
            let assertion = form.iter().find(|(k, _)| k == "client_assertion").map(|(_, v)| v.as_str());
            let claims = assertion.and_then(|a| jsonwebtoken::dangerous::insecure_decode_claims::<Value>(a).ok());
            s.sent_jtis.push(claims.and_then(|c| c["jti"].as_str().map(str::to_owned)).unwrap_or_default());
        }
        let at = s.faults.iter().position(|(p, _)| line.starts_with(p.as_str()));
        at.map(|i| s.faults.remove(i).1)
    };
    let mut off_origin = false;
    match fault {
        Some(Fault::Status(status, retry_after)) => {
            let mut r = outcome(status, "transient", "injected fault");
            if let Some(ra) = retry_after {
                r.headers_mut().insert("retry-after", ra.parse().unwrap());
            }
            return r;
        }
        Some(Fault::Garbage) => return "<html><body>502 Bad Gateway</body></html>".into_response(),
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return fhir_json(&json!({}));
        }
        Some(Fault::OffOriginNext) => off_origin = true,
        Some(Fault::Body(body)) => return ([("content-type", FHIR_JSON)], body).into_response(),
        None => {}
    }
    let mut s = st.lock().unwrap();
    if method == Method::POST && path == "/auth/token" {
        return s.token(&headers, &body);
    }
    let Some(rest) = path.strip_prefix("/fhir").filter(|_| method == Method::GET) else {
        return outcome(404, "not-found", "no such route");
    };
    if headers.get("accept").and_then(|v| v.to_str().ok()) != Some(FHIR_JSON) {
        return outcome(406, "not-supported", "only application/fhir+json is served");
    }
    if !s.authorized(&headers) {
        let mut r = outcome(401, "login", "the access token is missing, unknown or expired");
        r.headers_mut().insert("www-authenticate", "Bearer error=\"invalid_token\"".parse().unwrap());
        return r;
    }
    s.fhir(rest, &pairs(raw), off_origin)
}

impl Fixture {
    pub(crate) async fn start(resources: Vec<Value>, access: Access) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (fhir, token_url) = (format!("{base}/fhir"), format!("{base}/auth/token"));
        let st = Arc::new(Mutex::new(State {
            fhir: fhir.clone(),
            token_url: token_url.clone(),
            resources,
            access,
            token_lifetime: 300,
            tokens: HashMap::new(),
            jtis: HashSet::new(),
            sent_jtis: Vec::new(),
            pages: HashMap::new(),
            issued: 0,
            log: Vec::new(),
            token_log: Vec::new(),
            refused_tokens: 0,
            faults: Vec::new(),
            other_origin: String::new(),
        }));
        let s = Arc::clone(&st);
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            handle(Arc::clone(&s), method, uri, headers, body)
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, fhir, token_url, st }
    }

    /// A fixture requiring SMART tokens for a client registered with the
    /// public key `public` (`rs384` or `es384`).
    async fn smart(public: &str) -> Self {
        let pem = key(&format!("{public}-public.TEST-ONLY.pem"));
        let (alg, key) = match public {
            "es384" => (Algorithm::ES384, DecodingKey::from_ec_pem(&pem).unwrap()),
            _ => (Algorithm::RS384, DecodingKey::from_rsa_pem(&pem).unwrap()),
        };
        Self::start(dataset(), Access::Smart(Registration { alg, kid: format!("{public}-kid"), key })).await
    }

    /// Answer the next `times` requests whose path and decoded query start
    /// with `prefix` with `fault`.
    pub(crate) fn fault(&self, prefix: &str, fault: Fault, times: usize) {
        let mut s = self.st.lock().unwrap();
        for _ in 0..times {
            s.faults.push((prefix.to_owned(), fault));
        }
    }

    pub(crate) fn log(&self) -> Vec<String> {
        self.st.lock().unwrap().log.clone()
    }

    /// Requests whose line starts with `prefix` (`GET /fhir/...`).
    pub(crate) fn hits(&self, prefix: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(prefix)).count()
    }

    fn token_log(&self) -> Vec<String> {
        self.st.lock().unwrap().token_log.clone()
    }

    fn refused_tokens(&self) -> usize {
        self.st.lock().unwrap().refused_tokens
    }

    /// Forget every issued token (as a server does on restart or revocation).
    fn revoke_tokens(&self) {
        self.st.lock().unwrap().tokens.clear();
    }
}

// ---------------------------------------------------------------------------
// Data and helpers.

pub(crate) fn resource(kind: &str, id: &str, patient: &str, extra: Value) -> Value {
    let mut r = json!({"resourceType": kind, "id": id, "subject": {"reference": format!("Patient/{patient}")}});
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

pub(crate) fn patient(id: &str, system: &str, value: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "identifier": [{"system": system, "value": value}],
           "name": [{"family": format!("Family-{id}")}]})
}

/// p1: 23 Observations, 3 Conditions, 4 MedicationRequests (3 of med-a, 1
/// of med-b); p2 (an awkward identifier): 5 Observations; p3 and p4 share
/// an identifier.
pub(crate) fn dataset() -> Vec<Value> {
    let mut v = vec![
        patient("p1", MRN_NORTH, "123"),
        patient("p2", MRN_NORTH, AWKWARD),
        patient("p3", MRN_NORTH, "dup"),
        patient("p4", MRN_NORTH, "dup"),
        json!({"resourceType": "Medication", "id": "med-a", "code": {"text": "metformin 500 mg"}}),
        json!({"resourceType": "Medication", "id": "med-b", "code": {"text": "lisinopril 10 mg"}}),
    ];
    let obs = |p: &str, i: usize| {
        let code = json!({"coding": [{"system": "http://loinc.org", "code": "8867-4"}]});
        resource("Observation", &format!("obs-{p}-{i:02}"), p, json!({"status": "final", "code": code}))
    };
    v.extend((0..23).map(|i| obs("p1", i)));
    v.extend((0..5).map(|i| obs("p2", i)));
    v.extend((0..3).map(|i| resource("Condition", &format!("cond-p1-{i}"), "p1", json!({}))));
    for (i, med) in ["med-a", "med-a", "med-b", "med-a"].iter().enumerate() {
        let extra = json!({"status": "active", "intent": "order",
                           "medicationReference": {"reference": format!("Medication/{med}")}});
        v.push(resource("MedicationRequest", &format!("mr-p1-{i}"), "p1", extra));
    }
    v
}

fn key(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub(crate) fn http() -> Arc<dyn HttpClient> {
    Arc::new(plexus_server::outbound::ReqwestClient::new().unwrap())
}

fn fast() -> RetryPolicy {
    RetryPolicy { attempts: 4, base: Duration::from_millis(10), max_wait: Duration::from_secs(2) }
}

pub(crate) fn config(name: &str, fx: &Fixture, auth: Auth) -> ServerConfig {
    ServerConfig {
        auth,
        timeout: Duration::from_secs(5),
        retry: fast(),
        page_size: 10,
        max_pages: 10,
        systems: vec![MRN_NORTH.into()],
        ..ServerConfig::new(name, &fx.fhir)
    }
}

/// SMART signing with the test private key `private` (`rs384`, `es384`,
/// `rogue-rs384`) under `kid`.
fn smart(fx: &Fixture, alg: SigningAlg, private: &str, kid: &str) -> Auth {
    let pem = key(&format!("{private}-private.TEST-ONLY.pem"));
    Auth::Smart(SmartConfig::new(&fx.token_url, CLIENT_ID, alg, &pem, kid, "system/*.rs").unwrap())
}

fn client(cfg: ServerConfig) -> FhirClient {
    FhirClient::new(cfg, http()).unwrap()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn ids(resources: &[Value]) -> Vec<String> {
    resources.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

// ---------------------------------------------------------------------------
// SMART Backend Services.

#[tokio::test]
async fn rs384_client_reads_and_pages_with_one_token() {
    let fx = Fixture::smart("rs384").await;
    let c = client(config("north", &fx, smart(&fx, SigningAlg::Rs384, "rs384", "rs384-kid")));

    let p = c.read("Patient", "p1", soon()).await.unwrap();
    assert_eq!(p["identifier"][0]["value"], "123");

    let set = c.search("Observation", &params(&[("patient", "p1")]), soon()).await.unwrap();
    let expected: Vec<String> = (0..23).map(|i| format!("obs-p1-{i:02}")).collect();
    assert_eq!(ids(&set.matches), expected, "every page, in order, none twice");
    assert_eq!((set.pages, set.total, set.truncated), (3, Some(23), false));
    assert!(set.included.is_empty());

    let searches: Vec<String> =
        fx.log().into_iter().filter(|l| l.starts_with("GET /fhir?") || l.contains("Observation")).collect();
    assert_eq!(searches.len(), 3);
    assert_eq!(searches[0], "GET /fhir/Observation?patient=p1&_count=10");
    assert!(searches[1].starts_with("GET /fhir?_getpages=") && searches[2].starts_with("GET /fhir?_getpages="));

    let conditions = c.search("Condition", &params(&[("patient", "Patient/p1")]), soon()).await.unwrap();
    assert_eq!(ids(&conditions.matches), ["cond-p1-0", "cond-p1-1", "cond-p1-2"]);
    assert_eq!(fx.token_log(), ["ok"], "one token for every call");
    assert_eq!((c.tokens_fetched(), c.retries(), fx.refused_tokens()), (1, 0, 0));
}

#[tokio::test]
async fn es384_client_is_accepted() {
    let fx = Fixture::smart("es384").await;
    let c = client(config("north", &fx, smart(&fx, SigningAlg::Es384, "es384", "es384-kid")));
    let found = c.search("Patient", &params(&[("identifier", &format!("{MRN_NORTH}|123"))]), soon()).await.unwrap();
    assert_eq!(ids(&found.matches), ["p1"]);
    let obs = c.search("Observation", &params(&[("patient", "p2")]), soon()).await.unwrap();
    assert_eq!(obs.matches.len(), 5);
    assert_eq!(fx.token_log(), ["ok"]);
    assert_eq!(fx.hits("POST /auth/token"), 1);
}

#[tokio::test]
async fn concurrent_calls_share_one_token_until_it_nears_expiry() {
    let fx = Fixture::smart("rs384").await;
    fx.st.lock().unwrap().token_lifetime = 2;
    let c = client(config("north", &fx, smart(&fx, SigningAlg::Rs384, "rs384", "rs384-kid")));
    let reads = (0..12).map(|i| {
        let c = &c;
        async move { c.read("Observation", &format!("obs-p1-{i:02}"), soon()).await }
    });
    let got = futures::future::join_all(reads).await;
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    assert_eq!(fx.token_log(), ["ok"], "one refresh at a time: twelve calls, one token");

    // Past the token's refresh point: a new one before the server would
    // refuse the old one.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    c.read("Patient", "p1", soon()).await.unwrap();
    assert_eq!(fx.token_log(), ["ok", "ok"]);
    assert_eq!(fx.refused_tokens(), 0, "never sent an expired token");
}

#[tokio::test]
async fn a_401_drops_the_token_and_retries_once_with_a_fresh_one() {
    let fx = Fixture::smart("rs384").await;
    let c = client(config("north", &fx, smart(&fx, SigningAlg::Rs384, "rs384", "rs384-kid")));
    c.read("Patient", "p1", soon()).await.unwrap();

    // The server forgets its tokens (restart, revocation): one 401, then a
    // fresh token and success.
    fx.revoke_tokens();
    let p = c.read("Patient", "p1", soon()).await.unwrap();
    assert_eq!(p["id"], "p1");
    assert_eq!(fx.token_log(), ["ok", "ok"]);
    assert_eq!((fx.refused_tokens(), fx.hits("GET /fhir/Patient/p1")), (1, 3));

    // A server that refuses a fresh token too: one retry only, then a clear
    // error.
    fx.fault("/fhir/Patient/p1", Fault::Status(401, None), 2);
    let e = c.read("Patient", "p1", soon()).await.unwrap_err();
    assert!(
        matches!(&e, FhirError::Unauthorized { server, detail: Some(d) } if server == "north" && d.contains("injected fault")),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("FHIR server `north`: unauthorized (401)"), "{e}");
    assert_eq!(fx.token_log().len(), 3);
    assert_eq!(fx.hits("GET /fhir/Patient/p1"), 5);
}

#[tokio::test]
async fn token_endpoint_refusals_name_the_server_and_the_oauth_error() {
    let fx = Fixture::smart("rs384").await;

    // A key the server does not know, under the registered kid.
    let rogue = client(config("north", &fx, smart(&fx, SigningAlg::Rs384, "rogue-rs384", "rs384-kid")));
    let e = rogue.read("Patient", "p1", soon()).await.unwrap_err();
    let FhirError::Token { server, message } = &e else { panic!("{e:?}") };
    assert_eq!(server, "north");
    assert!(message.contains("invalid_client: client assertion rejected: InvalidSignature"), "{message}");
    assert!(message.contains(&fx.token_url) && message.contains(CLIENT_ID), "{message}");
    assert!(e.to_string().starts_with("FHIR server `north`: SMART token request failed:"), "{e}");

    // An unregistered kid, and an ES384 key where RS384 is registered.
    let wrong_kid = client(config("north", &fx, smart(&fx, SigningAlg::Rs384, "rs384", "other-kid")));
    let e = wrong_kid.read("Patient", "p1", soon()).await.unwrap_err();
    assert!(e.to_string().contains("invalid_client"), "{e}");
    let wrong_alg = client(config("north", &fx, smart(&fx, SigningAlg::Es384, "es384", "rs384-kid")));
    let e = wrong_alg.read("Patient", "p1", soon()).await.unwrap_err();
    assert!(e.to_string().contains("invalid_client"), "{e}");

    // A scope the server does not grant.
    let pem = key("rs384-private.TEST-ONLY.pem");
    let greedy =
        SmartConfig::new(&fx.token_url, CLIENT_ID, SigningAlg::Rs384, &pem, "rs384-kid", "system/*.*").unwrap();
    let e = client(config("north", &fx, Auth::Smart(greedy))).read("Patient", "p1", soon()).await.unwrap_err();
    assert!(e.to_string().contains("invalid_scope: scope `system/*.*` is not granted"), "{e}");

    assert_eq!(fx.token_log().len(), 4);
    assert!(fx.token_log().iter().all(|l| l != "ok"));
    assert_eq!(fx.hits("GET /fhir"), 0, "no FHIR request without a token");

    // Keys that cannot sign are refused when configured.
    let public = key("rs384-public.TEST-ONLY.pem");
    let e = SmartConfig::new(&fx.token_url, CLIENT_ID, SigningAlg::Rs384, &public, "k", "system/*.rs").unwrap_err();
    assert!(e.contains("RS384"), "{e}");
    let ec = key("es384-private.TEST-ONLY.pem");
    assert!(SmartConfig::new(&fx.token_url, CLIENT_ID, SigningAlg::Rs384, &ec, "k", "system/*.rs").is_err());
    assert!(SmartConfig::new(&fx.token_url, CLIENT_ID, SigningAlg::Es384, b"junk", "k", "system/*.rs").is_err());
}

#[tokio::test]
async fn retried_token_requests_never_replay_a_jti() {
    let fx = Fixture::smart("es384").await;
    let c = client(config("north", &fx, smart(&fx, SigningAlg::Es384, "es384", "es384-kid")));
    fx.fault("/auth/token", Fault::Status(503, None), 1);
    c.read("Patient", "p1", soon()).await.unwrap();
    assert_eq!(fx.hits("POST /auth/token"), 2);
    assert_eq!(fx.token_log(), ["ok"]);
    let sent = fx.st.lock().unwrap().sent_jtis.clone();
    assert_eq!(sent.len(), 2);
    assert!(
        sent[0].len() == 32 && sent[1].len() == 32 && sent[0] != sent[1],
        "a fresh assertion per attempt: {sent:?}"
    );
    assert_eq!(c.retries(), 1);
}

// ---------------------------------------------------------------------------
// Faults.

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let fx = Fixture::smart("rs384").await;
    let c = client(config("north", &fx, smart(&fx, SigningAlg::Rs384, "rs384", "rs384-kid")));

    fx.fault("/fhir/Patient/p1", Fault::Status(429, Some("1")), 1);
    let t = std::time::Instant::now();
    c.read("Patient", "p1", soon()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(950), "Retry-After honoured: {:?}", t.elapsed());
    assert_eq!(fx.hits("GET /fhir/Patient/p1"), 2);

    fx.fault("/fhir/Observation?patient=p2", Fault::Status(503, None), 2);
    let set = c.search("Observation", &params(&[("patient", "p2")]), soon()).await.unwrap();
    assert_eq!(set.matches.len(), 5);
    assert_eq!(fx.hits("GET /fhir/Observation?patient=p2"), 3);
    assert_eq!(c.retries(), 3);
    assert_eq!(fx.token_log(), ["ok"]);

    // A server error on a later page: retried there, the search completes.
    fx.fault("/fhir?_getpages=", Fault::Status(502, None), 1);
    let set = c.search("Observation", &params(&[("patient", "p1")]), soon()).await.unwrap();
    assert_eq!((set.matches.len(), set.pages), (23, 3));
    assert_eq!(c.retries(), 4);

    // Persisting: the last status after every attempt, with the outcome.
    fx.fault("/fhir/Condition", Fault::Status(500, None), 4);
    let e = c.search("Condition", &params(&[("patient", "p1")]), soon()).await.unwrap_err();
    assert!(
        matches!(&e, FhirError::Http { source: HttpError::Server { status: 500, attempts: 4 }, detail: Some(d), .. } if d.contains("injected fault")),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "FHIR server `north`: Condition search: server error (500) after 4 attempts: error (transient): injected fault"
    );
}

#[tokio::test]
async fn a_hanging_server_yields_deadline_in_time() {
    let fx = Fixture::smart("rs384").await;
    let c = client(config("north", &fx, smart(&fx, SigningAlg::Rs384, "rs384", "rs384-kid")));
    c.read("Patient", "p1", soon()).await.unwrap();

    fx.fault("/fhir/Patient/p1", Fault::Hang, 1);
    let t = std::time::Instant::now();
    let e = c.read("Patient", "p1", Instant::now() + Duration::from_millis(800)).await.unwrap_err();
    assert_eq!(e, FhirError::Deadline { server: "north".into() });
    assert!(t.elapsed() < Duration::from_millis(1500), "{:?}", t.elapsed());
    assert_eq!(e.to_string(), "FHIR server `north`: no answer before the deadline");

    // A hanging token endpoint, and a deadline already past.
    let fresh = client(config("north", &fx, smart(&fx, SigningAlg::Rs384, "rs384", "rs384-kid")));
    fx.fault("/auth/token", Fault::Hang, 1);
    let t = std::time::Instant::now();
    let e =
        fresh.search("Observation", &params(&[("patient", "p1")]), Instant::now() + Duration::from_millis(600)).await;
    assert_eq!(e.unwrap_err(), FhirError::Deadline { server: "north".into() });
    assert!(t.elapsed() < Duration::from_millis(1300), "{:?}", t.elapsed());
    let e = c.read("Patient", "p1", Instant::now()).await.unwrap_err();
    assert_eq!(e, FhirError::Deadline { server: "north".into() });

    // A Retry-After past the deadline: no waiting for it.
    fx.fault("/fhir/Patient/p1", Fault::Status(429, Some("5")), 1);
    let t = std::time::Instant::now();
    let e = c.read("Patient", "p1", Instant::now() + Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(e, FhirError::Deadline { server: "north".into() });
    assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
}

#[tokio::test]
async fn garbage_and_operation_outcomes_become_specific_errors() {
    let fx = Fixture::smart("rs384").await;
    let c = client(config("north", &fx, smart(&fx, SigningAlg::Rs384, "rs384", "rs384-kid")));

    fx.fault("/fhir/Observation", Fault::Garbage, 1);
    let e = c.search("Observation", &params(&[("patient", "p1")]), soon()).await.unwrap_err();
    assert!(
        matches!(&e, FhirError::Garbage { server, what } if server == "north" && what.contains("Observation search: the body is not JSON")),
        "{e:?}"
    );

    let e = c.search("Observation", &params(&[("code:bogus", "1")]), soon()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "FHIR server `north`: Observation search: request refused (400): error (invalid): Unknown search parameter 'code:bogus' for resource type 'Observation'"
    );

    let e = c.read("Patient", "nobody", soon()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "FHIR server `north`: Patient/nobody not found: error (not-found): Resource Patient/nobody is not known"
    );

    // A server that does not know the type.
    let e = c.search("Basic", &[], soon()).await.unwrap_err();
    assert!(
        matches!(&e, FhirError::NotFound { detail: Some(d), .. } if d.contains("Unknown resource type 'Basic'")),
        "{e:?}"
    );

    // 410 Gone (a deleted resource) reads as not found.
    fx.fault("/fhir/Patient/p1", Fault::Status(410, None), 1);
    let e = c.read("Patient", "p1", soon()).await.unwrap_err();
    assert!(matches!(&e, FhirError::NotFound { what, .. } if what == "Patient/p1"), "{e:?}");

    // JSON, but not what was asked for.
    fx.fault("/fhir/Patient/p1", Fault::Body(r#"{"resourceType": "Patient", "id": "p9"}"#), 1);
    let e = c.read("Patient", "p1", soon()).await.unwrap_err();
    assert_eq!(e.to_string(), "FHIR server `north`: unexpected response: asked for Patient/p1, got Patient/p9");
    fx.fault("/fhir/Condition", Fault::Body(r#"{"resourceType": "Bundle", "type": "batch-response"}"#), 1);
    let e = c.search("Condition", &params(&[("patient", "p1")]), soon()).await.unwrap_err();
    assert!(e.to_string().ends_with("a batch-response Bundle instead of a searchset"), "{e}");
    fx.fault(
        "/fhir/Condition",
        Fault::Body(r#"{"resourceType": "Bundle", "type": "searchset", "entry": [{"search": {"mode": "match"}}]}"#),
        1,
    );
    let e = c.search("Condition", &params(&[("patient", "p1")]), soon()).await.unwrap_err();
    assert!(e.to_string().ends_with("a searchset entry without a resource"), "{e}");
    assert_eq!(fx.token_log(), ["ok"]);
}

#[tokio::test]
async fn next_links_off_the_origin_are_refused_and_pages_are_capped() {
    let fx = Fixture::smart("rs384").await;
    let elsewhere = Fixture::start(dataset(), Access::Open).await;
    fx.st.lock().unwrap().other_origin = elsewhere.base.clone();
    let c = client(config("north", &fx, smart(&fx, SigningAlg::Rs384, "rs384", "rs384-kid")));

    fx.fault("/fhir/Observation?patient=p1", Fault::OffOriginNext, 1);
    let e = c.search("Observation", &params(&[("patient", "p1")]), soon()).await.unwrap_err();
    let FhirError::OffOrigin { server, origin } = &e else { panic!("{e:?}") };
    assert_eq!((server.as_str(), origin.as_str()), ("north", elsewhere.base.as_str()));
    assert!(elsewhere.log().is_empty(), "nothing, and no token, went to the other origin");
    assert_eq!(fx.hits("GET /fhir"), 1);

    let capped = client(ServerConfig {
        page_size: 5,
        max_pages: 2,
        ..config("north", &fx, smart(&fx, SigningAlg::Rs384, "rs384", "rs384-kid"))
    });
    let set = capped.search("Observation", &params(&[("patient", "p1")]), soon()).await.unwrap();
    assert_eq!((set.matches.len(), set.pages, set.total, set.truncated), (10, 2, Some(23), true));

    // An explicit _count wins over the configured page size.
    let set = c.search("Observation", &params(&[("patient", "p1"), ("_count", "50")]), soon()).await.unwrap();
    assert_eq!((set.matches.len(), set.pages), (23, 1));
    assert!(fx.log().contains(&"GET /fhir/Observation?patient=p1&_count=50".to_owned()));
}

#[tokio::test]
async fn includes_are_kept_apart_from_matches() {
    let fx = Fixture::smart("rs384").await;
    let c = client(ServerConfig {
        page_size: 2,
        ..config("north", &fx, smart(&fx, SigningAlg::Rs384, "rs384", "rs384-kid"))
    });
    let p = params(&[("patient", "p1"), ("_include", "MedicationRequest:medication")]);
    let set = c.search("MedicationRequest", &p, soon()).await.unwrap();
    assert_eq!(ids(&set.matches), ["mr-p1-0", "mr-p1-1", "mr-p1-2", "mr-p1-3"]);
    assert_eq!(ids(&set.included), ["med-a", "med-b"], "med-a on both pages, kept once");
    assert_eq!(set.included[0]["code"]["text"], "metformin 500 mg");
    assert_eq!(set.pages, 2);
    assert_eq!(fx.log()[1], "GET /fhir/MedicationRequest?patient=p1&_include=MedicationRequest:medication&_count=2");
}

#[tokio::test]
async fn arguments_are_checked_and_values_encoded() {
    let fx = Fixture::smart("rs384").await;
    let c = client(config("north", &fx, smart(&fx, SigningAlg::Rs384, "rs384", "rs384-kid")));

    for (kind, id) in [
        ("Patients", "p1"),
        ("Patient/../Observation", "p1"),
        ("", "p1"),
        ("Patient", "../p1"),
        ("Patient", "p1?_format=xml"),
        ("Patient", ""),
    ] {
        let e = c.read(kind, id, soon()).await.unwrap_err();
        assert!(matches!(e, FhirError::Invalid(_)), "{kind} {id}: {e:?}");
    }
    for name in ["a b", "x&_id", "", "code=1", "subject#x"] {
        let e = c.search("Observation", &params(&[(name, "1")]), soon()).await.unwrap_err();
        assert!(matches!(e, FhirError::Invalid(_)), "{name}: {e:?}");
    }
    let e = c.search("NotAType", &[], soon()).await.unwrap_err();
    assert_eq!(e.to_string(), "invalid resource type `NotAType`: not an R4 resource type");
    assert!(fx.log().is_empty(), "nothing sent: {:?}", fx.log());

    // Every character of the value arrives as sent (the fixture decodes the
    // query and undoes FHIR token escapes).
    let value = plexus_health::client::token(MRN_NORTH, AWKWARD);
    let found = c.search("Patient", &params(&[("identifier", &value)]), soon()).await.unwrap();
    assert_eq!(ids(&found.matches), ["p2"]);
}

// ---------------------------------------------------------------------------
// Routing, configuration.

#[tokio::test]
async fn the_router_routes_by_system_and_fetches_type_by_type() {
    let north = Fixture::smart("rs384").await;
    let south =
        Fixture::start(vec![patient("s9", MRN_SOUTH, "123")], Access::Static("south-static-token".into())).await;
    let router = Router::new(vec![
        client(config("north", &north, smart(&north, SigningAlg::Rs384, "rs384", "rs384-kid"))),
        client(ServerConfig {
            systems: vec![MRN_SOUTH.into(), MRN_NORTH.into()],
            ..config("south", &south, Auth::Bearer("south-static-token".into()))
        }),
    ])
    .unwrap();
    let names = |cs: Vec<&FhirClient>| cs.iter().map(|c| c.name().to_owned()).collect::<Vec<_>>();
    assert_eq!(names(router.for_system(MRN_NORTH)), ["north", "south"]);
    assert_eq!(names(router.for_system(MRN_SOUTH)), ["south"]);
    assert!(router.for_system("urn:other").is_empty());

    north.fault("/fhir/Condition?patient=p1", Fault::Status(500, None), 4);
    let n = router.get("north").unwrap();
    let types = ["Observation", "Condition", "MedicationRequest", "Bogus", "Patient"];
    let got = router.patient_everything(n, (MRN_NORTH, "123"), &types, soon()).await.unwrap();
    assert_eq!((got.server.as_str(), got.patient_id.as_str()), ("north", "p1"));
    assert_eq!(got.patient["name"][0]["family"], "Family-p1");
    let by: HashMap<&str, &Result<_, _>> = got.results.iter().map(|(k, r)| (k.as_str(), r)).collect();
    assert_eq!(got.results.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), types);
    assert_eq!(by["Observation"].as_ref().unwrap().matches.len(), 23);
    assert_eq!(by["MedicationRequest"].as_ref().unwrap().matches.len(), 4);
    assert_eq!(ids(&by["Patient"].as_ref().unwrap().matches), ["p1"]);
    assert!(
        matches!(by["Condition"], Err(FhirError::Http { source: HttpError::Server { status: 500, .. }, .. })),
        "{:?}",
        by["Condition"]
    );
    assert!(matches!(by["Bogus"], Err(FhirError::Invalid(_))));
    assert!(
        north.log().contains(&"GET /fhir/Patient?identifier=urn:oid:1.2.36.146.595.217.0.1|123&_count=10".to_owned())
    );
    assert_eq!(north.token_log(), ["ok"]);

    let s = router.get("south").unwrap();
    let got = router.patient_everything(s, (MRN_SOUTH, "123"), &["Observation"], soon()).await.unwrap();
    assert_eq!(got.patient_id, "s9");
    assert!(got.results[0].1.as_ref().unwrap().matches.is_empty());

    let e = router.patient_everything(n, (MRN_NORTH, "nobody"), &["Observation"], soon()).await.unwrap_err();
    assert!(matches!(&e, FhirError::NotFound { server, .. } if server == "north"), "{e:?}");
    let e = router.patient_everything(n, (MRN_NORTH, "dup"), &["Observation"], soon()).await.unwrap_err();
    assert_eq!(e, FhirError::Ambiguous { server: "north".into(), count: 2 });

    let dup = Router::new(vec![client(config("x", &north, Auth::None)), client(config("x", &south, Auth::None))]);
    assert!(dup.is_err());
}

#[tokio::test]
async fn settings_resolve_keys_and_env_tokens_and_never_print_secrets() {
    let fx = Fixture::smart("es384").await;
    let keys = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
    // The shape of `[[health.servers]]` with `[health.servers.smart]`.
    let smart: ServerSettings = serde_json::from_value(json!({
        "name": "north",
        "base_url": fx.fhir,
        "systems": [MRN_NORTH],
        "timeout_ms": 5000,
        "count": 7,
        "smart": {"token_url": fx.token_url, "client_id": CLIENT_ID, "key_file": "es384-private.TEST-ONLY.pem",
                  "alg": "ES384", "kid": "es384-kid"}
    }))
    .unwrap();
    assert_eq!(smart.smart.as_ref().unwrap().scope, "system/*.rs");
    assert_eq!((smart.max_pages, smart.retry_attempts), (50, 4));
    let cfg = smart.resolve(&keys, &|_| None).unwrap();
    let printed = format!("{cfg:?}");
    assert!(printed.contains("alg: \"ES384\"") && printed.contains("key: \"<redacted>\""), "{printed}");
    let pem = String::from_utf8(key("es384-private.TEST-ONLY.pem")).unwrap();
    assert!(pem.lines().filter(|l| !l.starts_with("-----")).all(|l| !printed.contains(l)), "{printed}");
    let c = FhirClient::new(cfg, http()).unwrap();
    let set = c.search("Observation", &params(&[("patient", "p2")]), soon()).await.unwrap();
    assert_eq!(set.matches.len(), 5);
    assert!(fx.log().contains(&"GET /fhir/Observation?patient=p2&_count=7".to_owned()));
    assert!(format!("{c:?}").contains("north"));

    let open = Fixture::start(dataset(), Access::Static("s3cret-static".into())).await;
    let bearer: ServerSettings = serde_json::from_value(json!({
        "name": "south", "base_url": open.fhir, "bearer_env": "SOUTH_FHIR_TOKEN"
    }))
    .unwrap();
    let env = |v: &str| (v == "SOUTH_FHIR_TOKEN").then(|| "s3cret-static".to_owned());
    let cfg = bearer.resolve(&keys, &env).unwrap();
    assert!(!format!("{cfg:?}").contains("s3cret"), "{cfg:?}");
    let c = FhirClient::new(cfg, http()).unwrap();
    assert_eq!(c.read("Patient", "p1", soon()).await.unwrap()["id"], "p1");

    // Refused configurations name the server and say why.
    let e = bearer.resolve(&keys, &|_| None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "FHIR server `south`: configuration: environment variable `SOUTH_FHIR_TOKEN` (bearer_env) is not set"
    );
    let mut bad_key = smart.clone();
    bad_key.smart.as_mut().unwrap().key_file = "es384-public.TEST-ONLY.pem".into();
    let e = bad_key.resolve(&keys, &|_| None).unwrap_err();
    assert!(e.to_string().starts_with("FHIR server `north`: configuration: SMART key file"), "{e}");
    let mut missing = smart.clone();
    missing.smart.as_mut().unwrap().key_file = "nope.pem".into();
    assert!(missing.resolve(&keys, &|_| None).unwrap_err().to_string().contains("cannot read the SMART key file"));
    let plain = ServerSettings { base_url: "http://ehr.example/fhir".into(), ..smart.clone() };
    assert!(plain.resolve(&keys, &|_| None).unwrap_err().to_string().contains("must use https"));
    let query = ServerSettings { base_url: format!("{}?x=1", fx.fhir), ..smart.clone() };
    assert!(query.resolve(&keys, &|_| None).is_err());
    let both = ServerSettings { bearer_env: Some("X".into()), ..smart.clone() };
    assert!(both.resolve(&keys, &|_| Some("t".into())).is_err());
    let typo = serde_json::from_value::<ServerSettings>(json!({"name": "n", "base_url": fx.fhir, "cuont": 5}));
    assert!(typo.is_err(), "unknown keys are refused");
}
