//! API keys: issued per tenant, stored as their SHA-256 only.
//!
//! A key is `pk_` followed by 32 hex characters (128 bits from the operating
//! system's CSPRNG). [`TenantScope::create_key`] returns it once; the store
//! keeps only its hex SHA-256 and finds a presented key by that digest, so
//! no comparison against a secret ever runs in the database. Revocation
//! takes effect at once: every authentication reads the key's row.

use std::fmt;

use plexus_core::context::{Principal, TenantId};
use time::OffsetDateTime;

use crate::db::{Db, Store};
use crate::error::{StoreError, is_foreign_key_violation, is_unique_violation};
use crate::scope::{TenantScope, scoped};
use crate::tenants::{check_text, now};

/// The prefix every key issued by the store starts with.
pub const KEY_PREFIX: &str = "pk_";
/// Random bytes in a key (hex-encoded after the prefix).
const KEY_BYTES: usize = 16;
/// `last_used_at` is written at most this often per key.
const LAST_USED_GRANULARITY: time::Duration = time::Duration::minutes(1);

/// An API key as listed: never its secret, never its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Stable identifier (`key_` + 16 hex characters), used to revoke it.
    pub id: String,
    /// The tenant the key belongs to.
    pub tenant: TenantId,
    /// Name, unique among the tenant's unrevoked keys; the principal's subject.
    pub name: String,
    /// Roles granted to whoever presents the key.
    pub roles: Vec<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// When it last authenticated a caller (to the minute), if ever.
    pub last_used_at: Option<OffsetDateTime>,
}

/// The plaintext of a new key. Shown once; its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// The key itself, to hand to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeySecret(<redacted>)")
    }
}

/// A key just created, with its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// The stored key.
    pub key: ApiKey,
    /// The plaintext, which the store does not keep.
    pub secret: ApiKeySecret,
}

/// Who presented a valid key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrincipal {
    /// The key's name.
    pub subject: String,
    /// The key's id.
    pub key_id: String,
    /// The key's tenant.
    pub tenant: TenantId,
    /// The key's roles.
    pub roles: Vec<String>,
}

impl KeyPrincipal {
    /// The pipeline's principal (`method` = `api_key`, no scopes).
    pub fn into_principal(self) -> Principal {
        Principal {
            subject: self.subject,
            tenant: self.tenant,
            roles: self.roles,
            scopes: Vec::new(),
            groups: Vec::new(),
            method: "api_key",
        }
    }
}

/// Hex SHA-256 of a key: what the store keeps and looks keys up by.
pub fn key_digest(key: &str) -> String {
    plexus_core::audit::sha256_hex(key.as_bytes())
}

fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
    Ok(hex::encode(buf))
}

/// Whether `key` has the shape of a key this store issues (checked before
/// any database work).
fn looks_like_key(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|h| h.len() == 2 * KEY_BYTES && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn decode_roles(id: &str, roles: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(roles).map_err(|e| StoreError::Corrupt(format!("roles of api key {id}: {e}")))
}

type KeyRow = (String, String, String, String, OffsetDateTime, Option<OffsetDateTime>, Option<OffsetDateTime>);

const KEY_COLUMNS: &str = "id, tenant_id, name, roles, created_at, revoked_at, last_used_at";

fn key_from_row((id, tenant, name, roles, created_at, revoked_at, last_used_at): KeyRow) -> Result<ApiKey, StoreError> {
    let roles = decode_roles(&id, &roles)?;
    Ok(ApiKey { id, tenant: TenantId::new(&tenant), name, roles, created_at, revoked_at, last_used_at })
}

/// What authentication reads of a key.
type AuthRow = (String, String, String, String, String, Option<OffsetDateTime>, Option<OffsetDateTime>);

const AUTH_QUERY: &str =
    "SELECT id, tenant_id, name, roles, key_sha256, revoked_at, last_used_at FROM api_keys WHERE key_sha256 = $1";

impl TenantScope<'_> {
    /// Issue a key named `name` with `roles`. The returned secret is the
    /// only copy. [`StoreError::Conflict`] if an unrevoked key of this
    /// tenant has the name; [`StoreError::UnknownTenant`] if the tenant does
    /// not exist.
    pub async fn create_key(&self, name: &str, roles: &[String]) -> Result<NewApiKey, StoreError> {
        check_text("key name", name)?;
        for r in roles {
            check_text("role", r)?;
        }
        let secret = ApiKeySecret(format!("{KEY_PREFIX}{}", random_hex(KEY_BYTES)?));
        let key = ApiKey {
            id: format!("key_{}", random_hex(8)?),
            tenant: self.tenant.clone(),
            name: name.to_owned(),
            roles: roles.to_vec(),
            created_at: now(),
            revoked_at: None,
            last_used_at: None,
        };
        let roles_json = serde_json::to_string(&key.roles).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let digest = key_digest(secret.expose());
        let result: Result<(), sqlx::Error> = async {
            scoped!(self, write, conn => {
                sqlx::query(
                    "INSERT INTO api_keys (id, tenant_id, name, roles, key_sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&key.id)
                .bind(self.tenant.as_str())
                .bind(&key.name)
                .bind(&roles_json)
                .bind(&digest)
                .bind(key.created_at)
                .execute(&mut *conn)
                .await?;
            });
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok(NewApiKey { key, secret }),
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::UnknownTenant(self.tenant.to_string())),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict(format!("an unrevoked api key named {name:?} in tenant {}", self.tenant)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's keys, revoked ones included, oldest first.
    pub async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<KeyRow> = scoped!(self, read, conn => {
            sqlx::query_as::<_, KeyRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"
            )))
            .bind(self.tenant.as_str())
            .fetch_all(&mut *conn)
            .await?
        });
        rows.into_iter().map(key_from_row).collect()
    }

    /// One of the tenant's keys. Another tenant's key id is `None`.
    pub async fn get_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let row: Option<KeyRow> = scoped!(self, read, conn => {
            sqlx::query_as::<_, KeyRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2"
            )))
            .bind(self.tenant.as_str())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        });
        row.map(key_from_row).transpose()
    }

    /// Revoke one of the tenant's keys; it is refused from now on. Revoking
    /// a revoked key is a no-op. [`StoreError::NotFound`] if the tenant has
    /// no key with this id (another tenant's key is not found either).
    pub async fn revoke_key(&self, id: &str) -> Result<(), StoreError> {
        let found = scoped!(self, write, conn => {
            let revoked = sqlx::query(
                "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
            )
            .bind(now())
            .bind(self.tenant.as_str())
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if revoked > 0 {
                true
            } else {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM api_keys WHERE tenant_id = $1 AND id = $2")
                    .bind(self.tenant.as_str())
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?
                    > 0
            }
        });
        if found { Ok(()) } else { Err(StoreError::NotFound(format!("api key {id}"))) }
    }

    /// Stamp `last_used_at` of a key of this tenant.
    async fn touch_key(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        scoped!(self, write, conn => {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE tenant_id = $2 AND id = $3")
                .bind(at)
                .bind(self.tenant.as_str())
                .bind(id)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }
}

impl Store {
    /// The principal of a presented key, or `None` if the key is unknown,
    /// malformed or revoked (the caller cannot tell which). Keys are found
    /// by their SHA-256; the digests are compared again in constant time.
    pub async fn authenticate(&self, key: &str) -> Result<Option<KeyPrincipal>, StoreError> {
        if !looks_like_key(key) {
            return Ok(None);
        }
        let digest = key_digest(key);
        let row: Option<AuthRow> = match &self.db {
            Db::Sqlite(pool, _) => sqlx::query_as::<_, AuthRow>(AUTH_QUERY).bind(&digest).fetch_optional(pool).await?,
            Db::Postgres(pool) => {
                // The tenant is not known yet: row-level security lets this
                // transaction read the row with the presented digest only.
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT set_config('plexus.key_lookup', $1, true)").bind(&digest).execute(&mut *tx).await?;
                let row = sqlx::query_as::<_, AuthRow>(AUTH_QUERY).bind(&digest).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                row
            }
        };
        let Some((id, tenant, name, roles, stored, revoked_at, last_used_at)) = row else {
            return Ok(None);
        };
        if !constant_time_eq(stored.as_bytes(), digest.as_bytes()) || revoked_at.is_some() {
            return Ok(None);
        }
        let roles = decode_roles(&id, &roles)?;
        let tenant = TenantId::new(&tenant);
        let at = now();
        if last_used_at.is_none_or(|t| at - t >= LAST_USED_GRANULARITY)
            && let Err(e) = self.tenant(&tenant).touch_key(&id, at).await
        {
            tracing::warn!(error = %e, key = %id, "could not record api key use");
        }
        Ok(Some(KeyPrincipal { subject: name, key_id: id, tenant, roles }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shape() {
        assert!(looks_like_key("pk_0123456789abcdef0123456789abcdef"));
        assert!(!looks_like_key("pk_0123456789abcdef0123456789abcde"));
        assert!(!looks_like_key("pk_0123456789abcdef0123456789abcdeg"));
        assert!(!looks_like_key("sk_0123456789abcdef0123456789abcdef"));
        assert!(!looks_like_key(""));
    }

    #[test]
    fn the_secret_is_redacted() {
        let s = ApiKeySecret("pk_0123456789abcdef0123456789abcdef".into());
        assert_eq!(format!("{s:?}"), "ApiKeySecret(<redacted>)");
    }
}
