//! The trust ports as this build configures them: the local principal
//! (stdio), API keys from the configuration and from the store, anonymous
//! callers when allowed, and the store's tenant directory.
//! The trust layer replaces these with store-backed keys, JWTs and quotas.

use std::sync::Arc;

use plexus_core::context::{Credential, Principal, TenantId};
use plexus_core::ports::{AuthError, Authenticator, TenantDirectory, TenantInfo};

use crate::config::{ApiKeyEntry, Config};

/// Authenticates by configuration: the local principal (stdio), API keys by
/// their SHA-256, and anonymous callers only when allowed.
pub struct ConfigAuthenticator {
    local: Principal,
    anonymous: Option<Principal>,
    keys: Vec<ApiKeyEntry>,
    /// Keys issued with `plexus keys create` live here.
    store: Option<plexus_store::Store>,
}

pub fn key_digest(key: &str) -> String {
    plexus_core::audit::sha256_hex(key.as_bytes())
}

impl ConfigAuthenticator {
    pub fn new(config: &Config, allow_anonymous: bool) -> Self {
        let local = Principal {
            subject: config.local_subject.clone(),
            tenant: TenantId::new(&config.local_tenant),
            roles: config.local_roles.clone(),
            scopes: Vec::new(),
            groups: Vec::new(),
            method: "local",
        };
        let anonymous = allow_anonymous.then(|| Principal {
            subject: "anonymous".into(),
            tenant: TenantId::default_tenant(),
            roles: config.anonymous_roles.clone(),
            scopes: Vec::new(),
            groups: Vec::new(),
            method: "anonymous",
        });
        Self { local, anonymous, keys: config.api_keys.clone(), store: None }
    }

    /// Also accept the keys in the store.
    pub fn with_store(mut self, store: plexus_store::Store) -> Self {
        self.store = Some(store);
        self
    }

    fn by_key(&self, key: &str) -> Result<Principal, AuthError> {
        let digest = key_digest(key);
        // Compare every entry so timing does not reveal which prefix matched.
        let mut found = None;
        for k in &self.keys {
            if constant_time_eq(k.sha256.as_bytes(), digest.as_bytes()) {
                found = Some(k);
            }
        }
        let k = found.ok_or_else(|| AuthError::Invalid("unknown API key".into()))?;
        Ok(Principal {
            subject: k.name.clone(),
            tenant: TenantId::new(&k.tenant),
            roles: k.roles.clone(),
            scopes: Vec::new(),
            groups: Vec::new(),
            method: "api_key",
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[async_trait::async_trait]
impl Authenticator for ConfigAuthenticator {
    async fn authenticate(&self, credential: &Credential) -> Result<Principal, AuthError> {
        match credential {
            Credential::Local => Ok(self.local.clone()),
            Credential::Verified(p) => Ok((**p).clone()),
            Credential::ApiKey(k) => match self.by_key(k) {
                Ok(p) => Ok(p),
                Err(e) => match &self.store {
                    Some(store) => match store.authenticate(k).await {
                        Ok(Some(kp)) => Ok(kp.into_principal()),
                        Ok(None) => Err(e),
                        Err(err) => {
                            tracing::error!(error = %err, "key store unavailable");
                            Err(AuthError::Invalid("key store unavailable".into()))
                        }
                    },
                    None => Err(e),
                },
            },
            Credential::Bearer(_) => match &self.anonymous {
                Some(p) => Ok(p.clone()),
                None => Err(AuthError::Invalid("bearer tokens are not accepted by this server".into())),
            },
            Credential::None => self.anonymous.clone().ok_or(AuthError::Missing),
        }
    }
}

/// Tenants named in the configuration (every principal's tenant is known).
pub struct ConfiguredTenants {
    known: Vec<String>,
}

impl ConfiguredTenants {
    pub fn new(config: &Config) -> Self {
        let mut known: Vec<String> = config.api_keys.iter().map(|k| k.tenant.clone()).collect();
        known.push(config.local_tenant.clone());
        known.push("default".into());
        known.sort();
        known.dedup();
        Self { known }
    }
}

#[async_trait::async_trait]
impl TenantDirectory for ConfiguredTenants {
    async fn tenant(&self, id: &TenantId) -> Option<TenantInfo> {
        self.known.iter().any(|t| t == id.as_str()).then(|| TenantInfo {
            id: id.clone(),
            tier: "standard".into(),
            active: true,
        })
    }
}

/// The store's tenant directory behind a short cache: the tenant check runs
/// on every call and must not cost a database round trip each time. A
/// suspension made with `plexus tenants suspend` (another process) takes
/// effect within `ttl`.
pub struct CachedTenants {
    inner: Arc<dyn TenantDirectory>,
    ttl: std::time::Duration,
    cache: parking_lot::RwLock<std::collections::HashMap<TenantId, (std::time::Instant, Option<TenantInfo>)>>,
}

/// Most tenants remembered; past it the cache starts over.
const TENANT_CACHE_MAX: usize = 100_000;

impl CachedTenants {
    pub fn new(inner: Arc<dyn TenantDirectory>, ttl: std::time::Duration) -> Self {
        Self { inner, ttl, cache: parking_lot::RwLock::new(std::collections::HashMap::new()) }
    }

    /// The tier of a tenant this cache has looked up (for the rate limiter,
    /// which runs after the tenant gate filled the cache).
    pub fn cached_tier(&self, id: &TenantId) -> Option<String> {
        self.cache.read().get(id).and_then(|(_, info)| info.as_ref().map(|i| i.tier.clone()))
    }
}

#[async_trait::async_trait]
impl TenantDirectory for CachedTenants {
    async fn tenant(&self, id: &TenantId) -> Option<TenantInfo> {
        if let Some((_, info)) = self.cache.read().get(id).filter(|(at, _)| at.elapsed() < self.ttl) {
            return info.clone();
        }
        let info = self.inner.tenant(id).await;
        let mut cache = self.cache.write();
        if cache.len() >= TENANT_CACHE_MAX {
            cache.clear();
        }
        cache.insert(id.clone(), (std::time::Instant::now(), info.clone()));
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with_key(key: &str) -> Config {
        let text =
            format!("[[auth.api_keys]]\nname='ci'\nsha256='{}'\ntenant='acme'\nroles=['reader']\n", key_digest(key));
        Config::parse(&text, &std::collections::HashMap::new()).unwrap()
    }

    #[tokio::test]
    async fn api_keys_local_and_anonymous() {
        let c = config_with_key("pk_secret");
        let a = ConfigAuthenticator::new(&c, false);
        let p = a.authenticate(&Credential::ApiKey("pk_secret".into())).await.unwrap();
        assert_eq!((p.subject.as_str(), p.tenant.as_str()), ("ci", "acme"));
        assert_eq!(p.roles, vec!["reader"]);
        assert!(a.authenticate(&Credential::ApiKey("pk_wrong".into())).await.is_err());
        assert_eq!(a.authenticate(&Credential::None).await.unwrap_err(), AuthError::Missing);
        assert_eq!(a.authenticate(&Credential::Local).await.unwrap().subject, "local");
        let anon = ConfigAuthenticator::new(&c, true);
        assert_eq!(anon.authenticate(&Credential::None).await.unwrap().method, "anonymous");
        let t = ConfiguredTenants::new(&c);
        assert!(t.tenant(&TenantId::new("acme")).await.is_some());
        assert!(t.tenant(&TenantId::new("other")).await.is_none());
    }

    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl TenantDirectory for Counting {
        async fn tenant(&self, id: &TenantId) -> Option<TenantInfo> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Some(TenantInfo { id: id.clone(), tier: "standard".into(), active: true })
        }
    }

    #[tokio::test]
    async fn tenant_lookups_are_cached_for_the_ttl() {
        let inner = Arc::new(Counting(std::sync::atomic::AtomicUsize::new(0)));
        let cached = CachedTenants::new(inner.clone(), std::time::Duration::from_millis(50));
        let a = TenantId::new("a");
        for _ in 0..10 {
            assert!(cached.tenant(&a).await.is_some());
        }
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        cached.tenant(&a).await;
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
