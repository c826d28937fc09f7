//! Tests of bearer JWT verification, with keys made for these tests only
//! (they sign nothing anywhere else).

use std::collections::BTreeSet;

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};

use super::*;

// Test-only private keys, generated for this file.
const RSA_A: &str = "\
-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEApunAtN8EH1KLxOYeJSbUxIVC0jAHyjaImUm6z2VxDHKfNMAk
pQKD3mOzJLdipfWhuLxRlRLt/r1X8c/ijmHlYI0DQrcXJrX5/ZFKDWFCF6O7C0P1
bLx9QETK0fpmAilD8z7EkiDLZQm4lGU+LZlii+Lo04TryyK33scF5ZWuH21pQ9kQ
MH2zU6us0IqPwR7qETnThuowzi09IZTad83fah725/usHrhLD/3/6B63FAqR6KxJ
AiQr7NRz1MAwH4MG6szDPL9WrAC6Ko72qV9/THG29pPazsmYteywlGdp6kTeS/M6
XuV35nWLQgBJCEAmmIGWYKwq8mH5qFR17v0QqQIDAQABAoIBAFNzkog76oU4ka4P
uamsiPt6fya0oehtrI0rak2wM73b/xJyMMAZilHhuhsU3ysHrOQ+r3FfpgNTqok5
fVXfxz2nMyajgN03ZbZr8kDPTCqij215/FZxxROhcWBbl63j8NfInaJL6DVrj1AO
cHB+/GDhQbQjhHqrMJAfJKkdVZHbJOdmUBaLRXunGCyZLads4hEm3uPxtfXw4C6e
v4Fmj6JZe1TBSP1kRzD1hnLeHWnhZkE3ExojqjDJaTwEp6ttRzOViL1pKWxBANWF
PQ8AXillbMpQxb03zuxj9sTuipNyreVC0Y1DW5B+D9zpnR1akUAarbaG6refmD8m
txmVvIMCgYEA0jcqGBZPLmbLA8sX/j2YmSPP78o+tBPLyF1bBvYp/1Q1/nxQiJUI
I0KqJVn2tsWWlQVPB6zWQU8JCPi8+pDFxPZpcjP9ywAruo9VluTG/W5Coh3sETiw
WhVzuiL+AByuWJLDfmKNTZXx2eD1+Itz1xh8iQ23VjL7LTCRODIA5TcCgYEAy0Q1
L7Mel68/yHtuPvVZk2sffMfVamjc0/dZkKCPGsXGzKiunxbIRes0xWAfVaR2XqVH
3nK3ujJS9GfEEXEnA+/vywhLvJ+TAKgwYYEi3Sm5yxlPa3EDtxd8lSp69f5AlQd8
OUGmKJLLN4Gpvk0mY1jovFuYrC3YeA9IF8rwqR8CgYBE5U2HfXBQDeKFiL+BVOC5
eBJDTa6FSGOmdGpL+svC4e+cS1P9n5J+M/Ads8F3H4T9rDK9mjjSSLv2U8dj+6TF
q9jdVAreyFyMlUOA49QP5V4zUck3z7OEork+DQ/gK4Y8g0VNG7Gh9v2/4cnbvqCl
o2HVbUhkGOtXYS6HE2RVuwKBgAcFnDDBp1TmIPX0DaLvJuEI2lWdMaozZS2NZfKx
GUB7hJqdWSr1xoVj0rbe0zZKMCyk2Q6+N8qe4m6/Bu7zUb25FDeXWcZyXMmxBbrY
kzPAtUJm5W94wAAbN5qPlR/aYLDFSW1Q70SHja2lNQ/16lWURLX9FBEepFPBc2Qf
BqFRAoGARbfZuz1HSnKTKAailgktg0o4JleiNovbrWno/GJkfyuMMDvRDBlKPpGo
h5vOIrqQ3j1fZbyk1brB0FWvxAzDtisvLHMVUsotOnSP+BSJVvv7lNls9bEbMSJu
MZ/rc3Jf7UjD7e/yY3B5OoG/BbfnNqqHEM7QtMTfd8gs5cCt99E=
-----END RSA PRIVATE KEY-----
";

const RSA_B: &str = "\
-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAqTMJg6dhCp3pjEq+tb0vM8feAW8RHT4z9cj9t7SJ4jyRKv6V
9OxXRlnWZYyvlUvb085kCZkd5AgO6WiIQI60/KGQ2tsI1anC070EAWiTfjq0aAhT
w2wpVTKGUUIqxSy43qun+/zYGYdE0hNI6/pYd5o196K6BnTzruGC0Ck2lFPeMf4j
qQaLd3XQiIZrUlMb7p34WOEvb0neXcsajWpxU9bL1Bvq2BWSYAqYOpollm3Zrp0a
vrllogiJlsQTizJTkx/MsG6V+GY5aJ5Iv8jIGJtYJ0p+zCtwNUCwaOwAoaePySeg
Ldzhbcu+L0LrWVVXA4vdWMFg7cH0wZYcZeGh5QIDAQABAoIBAAfZbp3lRvLiI902
nnr56CsDy6sksZY6C4O3K6YObGh1ci/yGEIrhgT6fUrAExPfArdkbMRROSTEsZm8
bWMT+8DN51Vv3Iy6T70uQ0r5b1Y8zPUX5c2RbVLJgZewH8x+kvj+3PqAtARt1RCA
hTKFWP37cSN9hhnElTAjasPTavfIikdhpVwaTlNXD9kOQXxVa45xFx6a8M6r2vWn
psEhVJ06jcsAmBHWx5Six0QHwdrJtdhSSpwxJvEd917bsSWsqi2v+B4l/2cbT1iB
wx72LXECINS9EyVBncbB25c1yT7QiT7sc2u5rcIK6HZTeoW/IZc2RcxqF9ojmQF3
/e/o0WECgYEA0wx9+Db+KXovEHemro2jXCsnK4SVZpSC7ici5Txk57gLq+3GIJHq
i/+YmF1cGkI4VDLYaALqcuDLMKjGN4d7qk5ymcaK6F7l1KgbvSW0G+Fiq9CPF/4G
yLZhZtApXiNobP9RlfF8zVPkY6O8ab8x8OdPsyCxtt/yapDORk5XPhkCgYEAzTyw
v2FVOPT99NmoQl/LEU9hVnCYvOcSIhLnfkDR3AXJ6ngjoM+DWEUFh0apEuOj9+Hd
bll7Nnx0dUrN5G6Nf8iUWQwCXXzBx6XWTQHnZQWbXuKDnSvhGBHABP65ck64J/he
asWWQ3IeYPsRrPmRR/5Ttls111WuRKJ7CeJRY60CgYAZrb1uBBLsrQco88X+GxGz
VzTO4LTk5FEB9RUT20NTxlr1MlsW/2oQWqsQbtuT/laoN/+IuEIadCuE4iQsAXoU
gLME7tlb6KACPeoSG5JMiiHdUeT3QFtG9JnpTo6Z+6jrCi29FsLeoMR7MyLrou3K
p/pUizfUTm9KdBAFEecfkQKBgEllU9wNJdoJmyxODmM2OLvHBItSFv0vMYfn9Mts
yOADXfMw5aTjsRgHDvQSq/IqYIAMURDehTa2CTvM9ZakhovVImA58DqYnAAW6W1+
qc6x0596KBE0GPpvlpjys0USq773jmRmptcV35FVGDwgv/jcFfnX4ohQhtLavF+L
hQm9AoGBALvoOtzPEdpIY04Dc0GgK4Gfv+FK9bhrX2SkuDkIl+fwTcJsSwR8lJ1E
4PDg24/ylPfXUqYzojBEYM01qHMi0VhAS/gEDdfJA14cJwtt6itbfRL9Px58viNs
XxUt/bOI03RiQI/BYY1Mjj3B6RSV6WloceAYNvIwVrwpU+9XDueS
-----END RSA PRIVATE KEY-----
";

const EC_P256: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkNtV/bhFQT/6xI1/
qWzibef8tQECLXWpQVkBSLLRbmShRANCAATefoyrCcJuWz8UubOw2e4agk8loD2c
aEC9bmyq8qYq8dCwcRfvbhm880N2olciu/rgb6sI35rWXkpTAgifIztA
-----END PRIVATE KEY-----
";

const ED25519: &str = "\
-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIF/kfrfhgFIMJy7229ua0SY/boGSs98eA2zTpb9Qmm7o
-----END PRIVATE KEY-----
";

const ISS: &str = "https://idp.test";
const AUD: &str = "plexus-test";

fn rsa_a() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_A.as_bytes()).unwrap()
}

fn rsa_b() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_B.as_bytes()).unwrap()
}

fn ec() -> EncodingKey {
    EncodingKey::from_ec_pem(EC_P256.as_bytes()).unwrap()
}

fn ed() -> EncodingKey {
    EncodingKey::from_ed_pem(ED25519.as_bytes()).unwrap()
}

/// The public JWK of a private key, under `kid`, with `alg` stated or not.
fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str, state_alg: bool) -> Jwk {
    let mut j = Jwk::from_encoding_key(key, alg).unwrap();
    j.common.key_id = Some(kid.into());
    j.common.public_key_use = Some(PublicKeyUse::Signature);
    if !state_alg {
        j.common.key_algorithm = None;
    }
    j
}

fn set(keys: Vec<Jwk>) -> JwkSet {
    JwkSet { keys }
}

/// The usual server keys: RSA `a` (RS256 stated), EC, Ed25519.
fn server_keys() -> JwkSet {
    set(vec![
        jwk(&rsa_a(), Algorithm::RS256, "a", false),
        jwk(&ec(), Algorithm::ES256, "ec", true),
        jwk(&ed(), Algorithm::EdDSA, "ed", true),
    ])
}

fn now() -> u64 {
    get_current_timestamp()
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "alice",
        "iat": now(),
        "exp": now() + 300,
        "scope": "mcp tools.read",
        "roles": ["reader"],
        "tenant": "acme",
    })
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

fn sign(key: &EncodingKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    encode(&h, claims, key).unwrap()
}

fn rs(claims: &Value) -> String {
    sign(&rsa_a(), Algorithm::RS256, Some("a"), claims)
}

/// Answers API keys, refuses the rest: stands for the configured authenticator.
struct Fallback;

#[async_trait::async_trait]
impl Authenticator for Fallback {
    async fn authenticate(&self, credential: &Credential) -> Result<Principal, AuthError> {
        match credential {
            Credential::ApiKey(_) => Ok(Principal {
                subject: "ci".into(),
                tenant: TenantId::default_tenant(),
                roles: vec!["admin".into()],
                scopes: Vec::new(),
                groups: Vec::new(),
                method: "api_key",
            }),
            Credential::Bearer(_) => Err(AuthError::Invalid("fallback saw a bearer token".into())),
            _ => Err(AuthError::Missing),
        }
    }
}

fn settings() -> JwtSettings {
    let mut s = JwtSettings::new(ISS, AUD);
    s.leeway = Duration::from_secs(5);
    s.required_scopes = vec!["mcp".into()];
    s
}

fn authenticator_with(settings: JwtSettings, keys: JwkSet) -> JwtAuthenticator {
    JwtAuthenticator::new(settings, Arc::new(JwtKeys::new(keys)), Arc::new(Fallback)).with_refresh_wait(Duration::ZERO)
}

fn authenticator() -> JwtAuthenticator {
    authenticator_with(settings(), server_keys())
}

async fn check(a: &JwtAuthenticator, token: &str) -> Result<Principal, AuthError> {
    let r = a.authenticate(&Credential::Bearer(token.to_owned())).await;
    if let Err(e) = &r {
        let text = format!("{e} {e:?}");
        assert!(!text.contains(token), "the error must not carry the token: {text}");
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(!text.contains(part), "the error must not carry part of the token: {text}");
        }
    }
    r
}

fn reason(r: Result<Principal, AuthError>) -> String {
    match r {
        Err(AuthError::Invalid(reason)) => reason,
        other => panic!("expected an invalid-credential refusal, got {other:?}"),
    }
}

/// Replace one character of the token's part `part` (0 header, 1 payload,
/// 2 signature), in its middle, by another base64url character.
fn tamper(token: &str, part: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let p = &mut parts[part];
    let i = p.len() / 2;
    let c = p.as_bytes()[i];
    let r = if c == b'A' { 'B' } else { 'A' };
    p.replace_range(i..=i, &r.to_string());
    parts.join(".")
}

#[tokio::test]
async fn a_valid_token_gives_its_principal() {
    let p = check(&authenticator(), &rs(&claims())).await.unwrap();
    assert_eq!(p.subject, "alice");
    assert_eq!(p.tenant.as_str(), "acme");
    assert_eq!(p.roles, vec!["reader"]);
    assert_eq!(p.scopes, vec!["mcp", "tools.read"]);
    assert_eq!(p.method, "jwt");
}

#[tokio::test]
async fn every_asymmetric_algorithm_the_key_allows() {
    let a = authenticator();
    for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384] {
        let t = sign(&rsa_a(), alg, Some("a"), &claims());
        assert_eq!(check(&a, &t).await.unwrap().subject, "alice", "{alg:?}");
    }
    let t = sign(&ec(), Algorithm::ES256, Some("ec"), &claims());
    assert_eq!(check(&a, &t).await.unwrap().subject, "alice");
    let t = sign(&ed(), Algorithm::EdDSA, Some("ed"), &claims());
    assert_eq!(check(&a, &t).await.unwrap().subject, "alice");
}

#[tokio::test]
async fn a_key_with_a_stated_alg_allows_only_that_one() {
    let a = authenticator_with(settings(), set(vec![jwk(&rsa_a(), Algorithm::PS256, "a", true)]));
    assert!(check(&a, &sign(&rsa_a(), Algorithm::PS256, Some("a"), &claims())).await.is_ok());
    let t = sign(&rsa_a(), Algorithm::RS256, Some("a"), &claims());
    assert_eq!(reason(check(&a, &t).await), "algorithm not allowed for this key");
}

#[tokio::test]
async fn hmac_is_never_accepted() {
    // Algorithm confusion: an HS256 token naming the RSA key.
    let a = authenticator();
    let t = sign(&EncodingKey::from_secret(b"guessable"), Algorithm::HS256, Some("a"), &claims());
    assert_eq!(reason(check(&a, &t).await), "algorithm not allowed for this key");
    // A symmetric key published in the set is not used at all.
    let oct = Jwk::from_encoding_key(&EncodingKey::from_secret(b"shared"), Algorithm::HS256).unwrap();
    let s = set(vec![oct]);
    assert_eq!(JwtKeys::usable(&s), 0);
    let a = authenticator_with(settings(), s);
    let t = sign(&EncodingKey::from_secret(b"shared"), Algorithm::HS256, None, &claims());
    assert_eq!(reason(check(&a, &t).await), "unknown key id");
}

#[tokio::test]
async fn keys_not_meant_for_signatures_are_skipped() {
    let mut enc = jwk(&rsa_a(), Algorithm::RS256, "enc", false);
    enc.common.public_key_use = Some(PublicKeyUse::Encryption);
    let mut oaep = jwk(&rsa_b(), Algorithm::RS256, "oaep", false);
    oaep.common.key_algorithm = Some(KeyAlgorithm::RSA_OAEP);
    let keys = JwtKeys::new(set(vec![enc, oaep, jwk(&ec(), Algorithm::ES256, "ec", true)]));
    assert_eq!(keys.key_ids(), vec![Some("ec".to_owned())]);
    assert_eq!(keys.current().keys.len(), 3, "the set is kept as fetched");
}

#[tokio::test]
async fn expiry_with_leeway() {
    let a = authenticator();
    let t = rs(&with(claims(), "exp", json!(now() - 60)));
    assert_eq!(check(&a, &t).await.unwrap_err(), AuthError::Expired);
    // within the 5 s leeway
    let t = rs(&with(claims(), "exp", json!(now() - 2)));
    assert!(check(&a, &t).await.is_ok());
    let t = rs(&without(claims(), "exp"));
    assert_eq!(reason(check(&a, &t).await), "missing exp claim");
    let t = rs(&with(claims(), "exp", json!("tomorrow")));
    assert_eq!(reason(check(&a, &t).await), "malformed exp claim");
}

#[tokio::test]
async fn not_yet_valid() {
    let a = authenticator();
    let t = rs(&with(claims(), "nbf", json!(now() + 60)));
    assert_eq!(reason(check(&a, &t).await), "token not yet valid");
    let t = rs(&with(claims(), "nbf", json!(now() + 2)));
    assert!(check(&a, &t).await.is_ok(), "within the leeway");
    let t = rs(&with(claims(), "nbf", json!(now() - 10)));
    assert!(check(&a, &t).await.is_ok());
}

#[tokio::test]
async fn audience() {
    let a = authenticator();
    let t = rs(&with(claims(), "aud", json!("someone-else")));
    assert_eq!(reason(check(&a, &t).await), "wrong audience");
    let t = rs(&with(claims(), "aud", json!(["someone-else", AUD])));
    assert!(check(&a, &t).await.is_ok(), "an array containing the audience");
    let t = rs(&with(claims(), "aud", json!(["someone-else"])));
    assert_eq!(reason(check(&a, &t).await), "wrong audience");
    let t = rs(&without(claims(), "aud"));
    assert_eq!(reason(check(&a, &t).await), "missing aud claim");
}

#[tokio::test]
async fn issuer() {
    let a = authenticator();
    let t = rs(&with(claims(), "iss", json!("https://evil.test")));
    assert_eq!(reason(check(&a, &t).await), "wrong issuer");
    let t = rs(&without(claims(), "iss"));
    assert_eq!(reason(check(&a, &t).await), "missing iss claim");
}

#[tokio::test]
async fn tampering_breaks_the_signature() {
    let a = authenticator();
    let t = rs(&claims());
    assert_eq!(reason(check(&a, &tamper(&t, 1)).await), "bad signature");
    assert_eq!(reason(check(&a, &tamper(&t, 2)).await), "bad signature");
    // a payload rewritten as valid JSON (another subject) is no better
    let forged = rs(&with(claims(), "sub", json!("mallory")));
    let mut parts: Vec<&str> = t.split('.').collect();
    parts[1] = forged.split('.').nth(1).unwrap();
    assert_eq!(reason(check(&a, &parts.join(".")).await), "bad signature");
    // signed by another key under the same key id
    let other = sign(&rsa_b(), Algorithm::RS256, Some("a"), &claims());
    assert_eq!(reason(check(&a, &other).await), "bad signature");
    let ec_token = sign(&ec(), Algorithm::ES256, Some("ec"), &claims());
    assert_eq!(reason(check(&a, &tamper(&ec_token, 1)).await), "bad signature");
    let ed_token = sign(&ed(), Algorithm::EdDSA, Some("ed"), &claims());
    assert_eq!(reason(check(&a, &tamper(&ed_token, 1)).await), "bad signature");
}

#[tokio::test]
async fn malformed_tokens() {
    let a = authenticator();
    assert_eq!(reason(check(&a, "not-a-jwt").await), "malformed token");
    assert_eq!(reason(check(&a, "a.b.c.d.e").await), "malformed token");
    assert_eq!(reason(check(&a, "e30.e30.").await), "malformed token header");
    assert_eq!(reason(check(&a, "!!!.e30.sig").await), "malformed token header");
    // alg none is not an algorithm at all
    assert_eq!(reason(check(&a, "eyJhbGciOiJub25lIn0.e30.").await), "malformed token header");
    // critical header extensions are not understood, so refused
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("a".into());
    h.crit = Some(vec!["exp".into()]);
    let t = encode(&h, &claims(), &rsa_a()).unwrap();
    assert_eq!(reason(check(&a, &t).await), "unsupported critical header parameters");
}

#[tokio::test]
async fn subject_is_required() {
    let a = authenticator();
    let t = rs(&without(claims(), "sub"));
    assert_eq!(reason(check(&a, &t).await), "missing sub claim");
    let t = rs(&with(claims(), "sub", json!(42)));
    assert_eq!(reason(check(&a, &t).await), "malformed sub claim");
    let t = rs(&with(claims(), "sub", json!("")));
    assert_eq!(reason(check(&a, &t).await), "malformed sub claim");
}

#[tokio::test]
async fn scopes_from_scope_or_scp() {
    let mut s = settings();
    s.required_scopes = vec!["mcp".into(), "tools.read".into()];
    let a = authenticator_with(s, server_keys());
    let t = rs(&with(claims(), "scope", json!("  tools.read   mcp ")));
    assert_eq!(check(&a, &t).await.unwrap().scopes, vec!["tools.read", "mcp"]);
    let t = rs(&with(without(claims(), "scope"), "scp", json!(["mcp", "tools.read"])));
    assert_eq!(check(&a, &t).await.unwrap().scopes, vec!["mcp", "tools.read"]);
    let t = rs(&with(without(claims(), "scope"), "scp", json!("mcp tools.read")));
    assert_eq!(check(&a, &t).await.unwrap().scopes, vec!["mcp", "tools.read"]);
    let t = rs(&with(claims(), "scope", json!(7)));
    assert_eq!(reason(check(&a, &t).await), "malformed scope claim");
    let t = rs(&with(without(claims(), "scope"), "scp", json!(["mcp", 1])));
    assert_eq!(reason(check(&a, &t).await), "malformed scp claim");
}

#[tokio::test]
async fn insufficient_scope_names_what_is_missing() {
    let a = authenticator();
    let t = rs(&with(claims(), "scope", json!("tools.read")));
    assert_eq!(check(&a, &t).await.unwrap_err(), AuthError::InsufficientScope("mcp".into()));
    let t = rs(&without(claims(), "scope"));
    assert_eq!(check(&a, &t).await.unwrap_err(), AuthError::InsufficientScope("mcp".into()));
    let mut s = settings();
    s.required_scopes = vec!["mcp".into(), "admin".into()];
    let a = authenticator_with(s, server_keys());
    let t = rs(&with(claims(), "scope", json!("tools.read")));
    assert_eq!(check(&a, &t).await.unwrap_err(), AuthError::InsufficientScope("mcp admin".into()));
    // but a bad token is refused as invalid before its scopes are looked at
    let t = rs(&with(with(claims(), "scope", json!("")), "aud", json!("x")));
    assert_eq!(reason(check(&a, &t).await), "wrong audience");
}

#[tokio::test]
async fn roles_and_tenant_claims() {
    let a = authenticator();
    let t = rs(&without(without(claims(), "roles"), "tenant"));
    let p = check(&a, &t).await.unwrap();
    assert_eq!((p.tenant.as_str(), p.roles.len()), ("default", 0));
    let t = rs(&with(claims(), "roles", json!("reader")));
    assert_eq!(reason(check(&a, &t).await), "malformed roles claim");
    let t = rs(&with(claims(), "roles", json!(["reader", 3])));
    assert_eq!(reason(check(&a, &t).await), "malformed roles claim");
    let t = rs(&with(claims(), "tenant", json!(["acme"])));
    assert_eq!(reason(check(&a, &t).await), "malformed tenant claim");
    let t = rs(&with(claims(), "groups", json!(["経理部", "eng"])));
    assert_eq!(check(&a, &t).await.unwrap().groups, vec!["経理部", "eng"]);
    let t = rs(&with(claims(), "groups", json!("eng")));
    assert_eq!(reason(check(&a, &t).await), "malformed groups claim");

    // other claim names, nested ones as JSON pointers, another default tenant
    let mut s = settings();
    s.tenant_claim = "org".into();
    s.roles_claim = "/realm_access/roles".into();
    s.default_tenant = "solo".into();
    let a = authenticator_with(s, server_keys());
    let c = with(claims(), "realm_access", json!({"roles": ["trader", "reader"]}));
    let p = check(&a, &rs(&with(c.clone(), "org", json!("日本支社")))).await.unwrap();
    assert_eq!(p.tenant.as_str(), "日本支社");
    assert_eq!(p.roles, vec!["trader", "reader"]);
    let p = check(&a, &rs(&c)).await.unwrap();
    assert_eq!(p.tenant.as_str(), "solo", "the `tenant` claim is not the configured one");
}

#[tokio::test]
async fn key_ids() {
    // unknown key id
    let a = authenticator();
    let t = sign(&rsa_b(), Algorithm::RS256, Some("b"), &claims());
    assert_eq!(reason(check(&a, &t).await), "unknown key id");
    // no key id: fine with exactly one key, refused with several
    let t = sign(&rsa_a(), Algorithm::RS256, None, &claims());
    assert_eq!(reason(check(&a, &t).await), "token has no key id");
    let one = authenticator_with(settings(), set(vec![jwk(&rsa_a(), Algorithm::RS256, "a", true)]));
    assert_eq!(check(&one, &t).await.unwrap().subject, "alice");
    // an empty set knows no key
    let none = authenticator_with(settings(), JwkSet::default());
    assert_eq!(reason(check(&none, &t).await), "unknown key id");
}

#[tokio::test]
async fn an_unknown_key_id_asks_for_a_refresh_at_most_every_interval() {
    let a = authenticator();
    let t = sign(&rsa_b(), Algorithm::RS256, Some("b"), &claims());
    assert_eq!(reason(check(&a, &t).await), "unknown key id");
    // the fetcher finds the request waiting for it
    tokio::time::timeout(Duration::from_secs(1), a.keys().refresh_requested()).await.unwrap();
    // and a second unknown key id within the interval asks for nothing more
    assert_eq!(reason(check(&a, &t).await), "unknown key id");
    assert!(tokio::time::timeout(Duration::from_millis(50), a.keys().refresh_requested()).await.is_err());
    assert!(!a.keys().request_refresh());

    let keys = JwtKeys::empty().with_min_refresh_interval(Duration::ZERO);
    assert!(keys.request_refresh());
    assert!(keys.request_refresh());
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_the_call_goes_through() {
    let keys = Arc::new(JwtKeys::new(set(vec![jwk(&rsa_a(), Algorithm::RS256, "a", true)])));
    let a = JwtAuthenticator::new(settings(), Arc::clone(&keys), Arc::new(Fallback))
        .with_refresh_wait(Duration::from_secs(5));
    // a stand-in for the JWKS fetcher: serves the rotated set when asked
    let fetcher = {
        let keys = Arc::clone(&keys);
        tokio::spawn(async move {
            keys.refresh_requested().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            keys.replace(set(vec![
                jwk(&rsa_a(), Algorithm::RS256, "a", true),
                jwk(&rsa_b(), Algorithm::RS256, "b", true),
            ]))
        })
    };
    let t = sign(&rsa_b(), Algorithm::RS256, Some("b"), &claims());
    assert_eq!(check(&a, &t).await.unwrap().subject, "alice");
    assert_eq!(fetcher.await.unwrap(), 2);
    let kids: BTreeSet<_> = keys.key_ids().into_iter().flatten().collect();
    assert_eq!(kids, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
}

#[tokio::test]
async fn a_failed_refresh_releases_the_waiting_call() {
    let keys = Arc::new(JwtKeys::new(set(vec![jwk(&rsa_a(), Algorithm::RS256, "a", true)])));
    let a = JwtAuthenticator::new(settings(), Arc::clone(&keys), Arc::new(Fallback))
        .with_refresh_wait(Duration::from_secs(30));
    let fetcher = {
        let keys = Arc::clone(&keys);
        tokio::spawn(async move {
            keys.refresh_requested().await;
            keys.refresh_failed();
        })
    };
    let t = sign(&rsa_b(), Algorithm::RS256, Some("b"), &claims());
    let started = Instant::now();
    assert_eq!(reason(check(&a, &t).await), "unknown key id");
    assert!(started.elapsed() < Duration::from_secs(5), "released by the failed attempt, not the timeout");
    fetcher.await.unwrap();
    assert_eq!(keys.len(), 1, "the last good set stays");
}

#[tokio::test]
async fn other_credentials_go_to_the_wrapped_authenticator() {
    let a = authenticator();
    let p = a.authenticate(&Credential::ApiKey("pk_x".into())).await.unwrap();
    assert_eq!((p.subject.as_str(), p.method), ("ci", "api_key"));
    assert_eq!(a.authenticate(&Credential::None).await.unwrap_err(), AuthError::Missing);
}
