//! Encryption at rest: AES-256-GCM envelope encryption.
//!
//! - A **master key** (256 bits) comes from a key file or `PLEXUS_MASTER_KEY`
//!   and never reaches the database. Its id (`mk_` + 16 hex characters) is
//!   derived from it, so a key names itself.
//! - Each tenant has **data keys** (256 bits, random), stored only wrapped
//!   (AES-256-GCM encrypted) by a master key, with that master key's id. One
//!   is active and seals new values; retired ones still open old values.
//! - A module marks a column sensitive with a [`SensitiveField`] and passes
//!   values through [`TenantScope::seal`] before writing and
//!   [`TenantScope::open`] after reading. A sealed value is text,
//!   `pxe1.<data key id>.<base64url(nonce || ciphertext || tag)>`, so it fits
//!   any text column on both backends and names the key that opens it.
//! - Every ciphertext is bound (as AES-GCM associated data) to its tenant,
//!   and a field's also to its table, column and data key: a value copied to
//!   another tenant's row or another column does not open, it fails loudly.
//! - [`Store::rotate_master`] rewraps every data key under the keyring's
//!   primary master key, tenant by tenant; data and sealed values are not
//!   touched, and a rotation cut short is simply run again.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use parking_lot::{Mutex, RwLock};
use plexus_core::context::TenantId;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::db::Store;
use crate::error::{StoreError, is_foreign_key_violation, is_unique_violation};
use crate::scope::{TenantScope, scoped};
use crate::tenants::now;

/// Bytes in a master key and in a data key (AES-256).
pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
/// What every sealed value starts with (format version 1).
pub const SEALED_PREFIX: &str = "pxe1.";
/// How long a process trusts its memory of a tenant's active data key
/// before asking the database again (another process may have rotated it;
/// until then this one seals with the previous key, which still opens).
const ACTIVE_KEY_TTL: Duration = Duration::from_secs(60);

fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, StoreError> {
    let mut buf = Zeroizing::new([0u8; N]);
    getrandom::fill(buf.as_mut()).map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
    Ok(buf)
}

fn seal_with(cipher: &Aes256Gcm, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, StoreError> {
    let nonce = random_bytes::<NONCE_BYTES>()?;
    let ct = cipher
        .encrypt(Nonce::from_slice(nonce.as_ref()), Payload { msg: plaintext, aad })
        .map_err(|_| StoreError::Crypto("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE_BYTES + ct.len());
    out.extend_from_slice(nonce.as_ref());
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open_with(cipher: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_BYTES + TAG_BYTES {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_BYTES);
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad }).ok()
}

/// A master key: wraps and unwraps data keys. Its `Debug` shows the id only.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
    /// Derived from the key for sealing MCP request state (see
    /// [`Keyring::request_state_key`]).
    request_state: Zeroizing<[u8; KEY_BYTES]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl MasterKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != KEY_BYTES {
            return Err(StoreError::invalid("master key", format!("must be {KEY_BYTES} bytes, got {}", bytes.len())));
        }
        let mut h = Sha256::new();
        h.update(b"plexus/master-key-id/v1|");
        h.update(bytes);
        let id = format!("mk_{}", hex::encode(&h.finalize()[..8]));
        let cipher = Aes256Gcm::new_from_slice(bytes).map_err(|_| StoreError::invalid("master key", "bad length"))?;
        let mut h = Sha256::new();
        h.update(b"plexus/request-state-key/v1|");
        h.update(bytes);
        let request_state = Zeroizing::new(<[u8; KEY_BYTES]>::from(h.finalize()));
        Ok(Self { id, cipher, request_state })
    }

    /// The key from its text form: 64 hex characters, or the standard
    /// base64 of 32 bytes; surrounding whitespace is ignored. The error
    /// never repeats the text.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let text = text.trim();
        let bytes = if text.len() == 2 * KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map(Zeroizing::new).ok()
        } else {
            STANDARD.decode(text).map(Zeroizing::new).ok()
        };
        match bytes {
            Some(b) if b.len() == KEY_BYTES => Self::from_bytes(&b),
            _ => Err(StoreError::invalid(
                "master key",
                format!("expected {} hex characters or the base64 of {KEY_BYTES} bytes", 2 * KEY_BYTES),
            )),
        }
    }

    /// Read a key file (the text form, as [`MasterKey::generate`] writes).
    /// A file that others than its owner may read is accepted with a
    /// warning.
    pub fn read_file(path: &Path) -> Result<Self, StoreError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            StoreError::Io(std::io::Error::new(e.kind(), format!("master key file {}: {e}", path.display())))
        })?);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(path = %path.display(), "master key file is readable by group or others; chmod 600 it");
            }
        }
        Self::parse(&text).map_err(|e| match e {
            StoreError::Invalid { reason, .. } => {
                StoreError::invalid("master key", format!("in {}: {reason}", path.display()))
            }
            other => other,
        })
    }

    /// A new random key and its text form (64 hex characters), to be kept
    /// somewhere only the server can read.
    pub fn generate() -> Result<(Self, Zeroizing<String>), StoreError> {
        let bytes = random_bytes::<KEY_BYTES>()?;
        let text = Zeroizing::new(hex::encode(bytes.as_ref()));
        Ok((Self::from_bytes(bytes.as_ref())?, text))
    }

    /// Write a new key to `path` (created with mode 0600, never over an
    /// existing file) and return it.
    pub fn generate_file(path: &Path) -> Result<Self, StoreError> {
        use std::io::Write;
        let (key, text) = Self::generate()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = options.open(path).map_err(|e| {
            StoreError::Io(std::io::Error::new(e.kind(), format!("master key file {}: {e}", path.display())))
        })?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        Ok(key)
    }

    /// The key's id (`mk_` + 16 hex characters), stored with what it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The master keys a store knows: the primary wraps new and rotated data
/// keys; the others only unwrap (keys being rotated away from).
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Arc<Vec<MasterKey>>,
}

impl Keyring {
    /// A keyring whose primary is `primary`, also able to unwrap with
    /// `previous` (duplicates of the primary are dropped).
    pub fn new(primary: MasterKey, previous: impl IntoIterator<Item = MasterKey>) -> Self {
        let mut keys = vec![primary];
        for k in previous {
            if keys.iter().all(|have| have.id != k.id) {
                keys.push(k);
            }
        }
        Self { keys: Arc::new(keys) }
    }

    /// The primary key's id.
    pub fn primary_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key's id, primary first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// The key that seals MCP request state (input-required rounds),
    /// derived from the primary master key: every node holding the same
    /// primary opens what another sealed.
    pub fn request_state_key(&self) -> [u8; KEY_BYTES] {
        *self.primary().request_state
    }

    /// Every key, primary first.
    pub fn all(&self) -> Vec<MasterKey> {
        self.keys.to_vec()
    }

    fn primary(&self) -> &MasterKey {
        &self.keys[0]
    }

    fn get(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

/// A column a module declares sensitive: its values are stored sealed.
/// The table and column become part of every ciphertext's associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SensitiveField {
    /// The table (`health_patients`).
    pub table: &'static str,
    /// The column (`name`).
    pub column: &'static str,
}

impl SensitiveField {
    /// Declare `table.column` sensitive.
    pub const fn new(table: &'static str, column: &'static str) -> Self {
        Self { table, column }
    }
}

impl fmt::Display for SensitiveField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// A data key as listed: never its key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyInfo {
    /// `dk_` + 16 hex characters.
    pub id: String,
    /// The master key that wraps it now.
    pub master_key_id: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it stopped sealing new values, if it has.
    pub retired_at: Option<OffsetDateTime>,
}

/// What [`Store::rotate_master`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MasterRotation {
    /// Tenants looked at.
    pub tenants: usize,
    /// Data keys rewrapped under the primary master key.
    pub rewrapped: usize,
    /// Data keys that were wrapped by it already.
    pub current: usize,
}

/// The store's encryption state, shared by its clones.
#[derive(Default)]
pub(crate) struct Crypto {
    keyring: RwLock<Option<Keyring>>,
    /// Unwrapped data keys by (tenant, key id).
    keys: Mutex<HashMap<(TenantId, String), Arc<Aes256Gcm>>>,
    /// Each tenant's active data key id, and when it was read.
    active: Mutex<HashMap<TenantId, (String, Instant)>>,
}

fn data_key_aad(tenant: &TenantId, id: &str) -> Vec<u8> {
    format!("plexus/data-key/v1|{tenant}|{id}").into_bytes()
}

fn field_aad(tenant: &TenantId, field: &SensitiveField, key_id: &str) -> Vec<u8> {
    format!("plexus/field/v1|{tenant}|{}.{}|{key_id}", field.table, field.column).into_bytes()
}

fn wrap(master: &MasterKey, tenant: &TenantId, id: &str, key: &[u8]) -> Result<String, StoreError> {
    Ok(STANDARD.encode(seal_with(&master.cipher, key, &data_key_aad(tenant, id))?))
}

fn unwrap_key(keyring: &Keyring, tenant: &TenantId, row: &DataKeyRow) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let (id, master_id, wrapped) = (&row.0, &row.1, &row.2);
    let master = keyring.get(master_id).ok_or_else(|| StoreError::UnknownMasterKey {
        master_key_id: master_id.clone(),
        data_key_id: id.clone(),
        tenant: tenant.to_string(),
    })?;
    let bytes = STANDARD.decode(wrapped).map_err(|_| StoreError::Corrupt(format!("data key {id}: not base64")))?;
    let key = open_with(&master.cipher, &bytes, &data_key_aad(tenant, id))
        .map(Zeroizing::new)
        .ok_or_else(|| StoreError::Crypto(format!("data key {id} does not unwrap under {master_id}: altered row")))?;
    if key.len() != KEY_BYTES {
        return Err(StoreError::Corrupt(format!("data key {id}: wrong length")));
    }
    Ok(key)
}

/// id, master_key_id, wrapped.
type DataKeyRow = (String, String, String);

impl Crypto {
    fn keyring(&self) -> Result<Keyring, StoreError> {
        self.keyring.read().clone().ok_or(StoreError::NoMasterKey)
    }
}

impl Store {
    /// Give the store its master keys (or take them away with `None`).
    /// Without a keyring, sealing and opening fail with
    /// [`StoreError::NoMasterKey`].
    pub fn set_keyring(&self, keyring: Option<Keyring>) {
        *self.crypto.keyring.write() = keyring;
    }

    /// The keyring's primary master key id, if the store has a keyring.
    pub fn master_key_id(&self) -> Option<String> {
        self.crypto.keyring.read().as_ref().map(|k| k.primary_id().to_owned())
    }

    /// Every tenant's data keys, by tenant (for checks and rotation; key
    /// material is never returned).
    async fn all_data_keys(&self) -> Result<Vec<(TenantId, Vec<DataKeyInfo>)>, StoreError> {
        let mut out = Vec::new();
        for t in self.list_tenants().await? {
            let keys = self.tenant(&t.id).data_keys().await?;
            if !keys.is_empty() {
                out.push((t.id, keys));
            }
        }
        Ok(out)
    }

    /// Check that the keyring can unwrap every data key in the store (run at
    /// start so a missing master key is found before a call needs it). A
    /// store without data keys passes with or without a keyring.
    pub async fn check_master_keys(&self) -> Result<(), StoreError> {
        let all = self.all_data_keys().await?;
        if all.is_empty() {
            return Ok(());
        }
        let keyring = self.crypto.keyring()?;
        for (tenant, keys) in &all {
            for k in keys {
                if keyring.get(&k.master_key_id).is_none() {
                    return Err(StoreError::UnknownMasterKey {
                        master_key_id: k.master_key_id.clone(),
                        data_key_id: k.id.clone(),
                        tenant: tenant.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Rewrap every tenant's data keys under the keyring's primary master
    /// key (each tenant in its own transaction). Keys wrapped by a master
    /// key the keyring lacks stop the rotation with
    /// [`StoreError::UnknownMasterKey`]; what was rewrapped before stays
    /// rewrapped, and running it again finishes the job.
    pub async fn rotate_master(&self) -> Result<MasterRotation, StoreError> {
        let keyring = self.crypto.keyring()?;
        let mut report = MasterRotation::default();
        for t in self.list_tenants().await? {
            report.tenants += 1;
            let scope = self.tenant(&t.id);
            let (rewrapped, current) = scope.rewrap_data_keys(&keyring).await?;
            report.rewrapped += rewrapped;
            report.current += current;
        }
        Ok(report)
    }
}

impl TenantScope<'_> {
    /// The tenant's data keys, oldest first.
    pub async fn data_keys(&self) -> Result<Vec<DataKeyInfo>, StoreError> {
        let rows: Vec<(String, String, OffsetDateTime, Option<OffsetDateTime>)> = scoped!(self, read, conn => {
            sqlx::query_as(
                "SELECT id, master_key_id, created_at, retired_at FROM data_keys WHERE tenant_id = $1 ORDER BY created_at, id",
            )
            .bind(self.tenant.as_str())
            .fetch_all(&mut *conn)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, master_key_id, created_at, retired_at)| DataKeyInfo {
                id,
                master_key_id,
                created_at,
                retired_at,
            })
            .collect())
    }

    async fn rewrap_data_keys(&self, keyring: &Keyring) -> Result<(usize, usize), StoreError> {
        let primary = keyring.primary();
        scoped!(self, write, conn => {
            let rows: Vec<DataKeyRow> =
                sqlx::query_as("SELECT id, master_key_id, wrapped FROM data_keys WHERE tenant_id = $1 ORDER BY id")
                    .bind(self.tenant.as_str())
                    .fetch_all(&mut *conn)
                    .await?;
            let (mut rewrapped, mut current) = (0, 0);
            for row in &rows {
                if row.1 == primary.id {
                    current += 1;
                    continue;
                }
                let key = unwrap_key(keyring, &self.tenant, row)?;
                let wrapped = wrap(primary, &self.tenant, &row.0, &key)?;
                sqlx::query("UPDATE data_keys SET master_key_id = $1, wrapped = $2 WHERE id = $3 AND tenant_id = $4")
                    .bind(&primary.id)
                    .bind(&wrapped)
                    .bind(&row.0)
                    .bind(self.tenant.as_str())
                    .execute(&mut *conn)
                    .await?;
                rewrapped += 1;
            }
            Ok::<_, StoreError>((rewrapped, current))
        })
    }

    /// Retire the tenant's active data key (if any) and make a new one,
    /// which seals from now on; values sealed before still open. Returns the
    /// new key's id.
    pub async fn rotate_data_key(&self) -> Result<String, StoreError> {
        let keyring = self.store.crypto.keyring()?;
        let id = self.insert_data_key(&keyring, true).await?;
        self.store.crypto.active.lock().remove(&self.tenant);
        Ok(id)
    }

    /// Create a data key wrapped by the primary master key; with `retire`,
    /// retire the active one in the same transaction.
    async fn insert_data_key(&self, keyring: &Keyring, retire: bool) -> Result<String, StoreError> {
        let id = format!("dk_{}", hex::encode(random_bytes::<8>()?.as_ref()));
        let key = random_bytes::<KEY_BYTES>()?;
        let wrapped = wrap(keyring.primary(), &self.tenant, &id, key.as_ref())?;
        let at = now();
        let result: Result<(), sqlx::Error> = async {
            scoped!(self, write, conn => {
                if retire {
                    sqlx::query("UPDATE data_keys SET retired_at = $1 WHERE tenant_id = $2 AND retired_at IS NULL")
                        .bind(at)
                        .bind(self.tenant.as_str())
                        .execute(&mut *conn)
                        .await?;
                }
                sqlx::query(
                    "INSERT INTO data_keys (id, tenant_id, master_key_id, wrapped, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&id)
                .bind(self.tenant.as_str())
                .bind(keyring.primary_id())
                .bind(&wrapped)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            });
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                let cipher =
                    Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| StoreError::Crypto("bad key".into()))?;
                self.store.crypto.keys.lock().insert((self.tenant.clone(), id.clone()), Arc::new(cipher));
                Ok(id)
            }
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::UnknownTenant(self.tenant.to_string())),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("an active data key".into())),
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's active data key id, creating the first one if needed.
    async fn active_key_id(&self, keyring: &Keyring) -> Result<String, StoreError> {
        if let Some((id, at)) = self.store.crypto.active.lock().get(&self.tenant)
            && at.elapsed() < ACTIVE_KEY_TTL
        {
            return Ok(id.clone());
        }
        for _ in 0..2 {
            let found: Option<String> = scoped!(self, read, conn => {
                sqlx::query_scalar("SELECT id FROM data_keys WHERE tenant_id = $1 AND retired_at IS NULL")
                    .bind(self.tenant.as_str())
                    .fetch_optional(&mut *conn)
                    .await?
            });
            let id = match found {
                Some(id) => id,
                None => match self.insert_data_key(keyring, false).await {
                    Ok(id) => id,
                    // Another writer created it first: read theirs.
                    Err(StoreError::Conflict(_)) => continue,
                    Err(e) => return Err(e),
                },
            };
            self.store.crypto.active.lock().insert(self.tenant.clone(), (id.clone(), Instant::now()));
            return Ok(id);
        }
        Err(StoreError::Conflict("an active data key (concurrent creation)".into()))
    }

    /// The cipher of data key `id` of this tenant.
    async fn data_key(&self, keyring: &Keyring, id: &str) -> Result<Arc<Aes256Gcm>, StoreError> {
        let cache_key = (self.tenant.clone(), id.to_owned());
        if let Some(c) = self.store.crypto.keys.lock().get(&cache_key) {
            return Ok(c.clone());
        }
        let row: Option<DataKeyRow> = scoped!(self, read, conn => {
            sqlx::query_as("SELECT id, master_key_id, wrapped FROM data_keys WHERE tenant_id = $1 AND id = $2")
                .bind(self.tenant.as_str())
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
        });
        let row = row.ok_or_else(|| {
            StoreError::Crypto(format!(
                "data key {id} is not a key of tenant {}: the value cannot be opened",
                self.tenant
            ))
        })?;
        let key = unwrap_key(keyring, &self.tenant, &row)?;
        let cipher = Arc::new(Aes256Gcm::new_from_slice(&key).map_err(|_| StoreError::Crypto("bad key".into()))?);
        self.store.crypto.keys.lock().insert(cache_key, cipher.clone());
        Ok(cipher)
    }

    /// Encrypt `plaintext` for `field` of this tenant with its active data
    /// key (created on first use). The result is text to store in the
    /// column instead of the value.
    pub async fn seal(&self, field: &SensitiveField, plaintext: &[u8]) -> Result<String, StoreError> {
        let keyring = self.store.crypto.keyring()?;
        let key_id = self.active_key_id(&keyring).await?;
        let cipher = self.data_key(&keyring, &key_id).await?;
        let sealed = seal_with(&cipher, plaintext, &field_aad(&self.tenant, field, &key_id))?;
        Ok(format!("{SEALED_PREFIX}{key_id}.{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// [`seal`](Self::seal) for text.
    pub async fn seal_str(&self, field: &SensitiveField, plaintext: &str) -> Result<String, StoreError> {
        self.seal(field, plaintext.as_bytes()).await
    }

    /// Decrypt a value [`seal`](Self::seal) made for `field` of this
    /// tenant. A value of another tenant or field, or one altered in any
    /// way, is refused with [`StoreError::Crypto`].
    pub async fn open(&self, field: &SensitiveField, sealed: &str) -> Result<Vec<u8>, StoreError> {
        let keyring = self.store.crypto.keyring()?;
        let bad = || StoreError::Crypto(format!("{field}: not a sealed value"));
        let rest = sealed.strip_prefix(SEALED_PREFIX).ok_or_else(bad)?;
        let (key_id, body) = rest.split_once('.').ok_or_else(bad)?;
        if !key_id.starts_with("dk_") || key_id.len() != 19 {
            return Err(bad());
        }
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
        let cipher = self.data_key(&keyring, key_id).await?;
        open_with(&cipher, &body, &field_aad(&self.tenant, field, key_id)).ok_or_else(|| {
            StoreError::Crypto(format!(
                "{field}: the value does not open for tenant {} (altered, or sealed for another tenant or field)",
                self.tenant
            ))
        })
    }

    /// [`open`](Self::open) for text sealed with [`seal_str`](Self::seal_str).
    pub async fn open_str(&self, field: &SensitiveField, sealed: &str) -> Result<String, StoreError> {
        String::from_utf8(self.open(field, sealed).await?)
            .map_err(|_| StoreError::Crypto(format!("{field}: the value is not UTF-8 text")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_keys_parse_from_hex_or_base64_and_name_themselves() {
        let hex_text = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let a = MasterKey::parse(hex_text).unwrap();
        let b = MasterKey::parse(&STANDARD.encode(hex::decode(hex_text).unwrap())).unwrap();
        assert_eq!(a.id(), b.id());
        assert!(a.id().starts_with("mk_") && a.id().len() == 19);
        let (c, text) = MasterKey::generate().unwrap();
        assert_ne!(c.id(), a.id());
        assert_eq!(MasterKey::parse(&text).unwrap().id(), c.id());
        for bad in ["", "abc", &hex_text[..62], "not base64 at all!"] {
            let e = MasterKey::parse(bad).unwrap_err().to_string();
            assert!(e.contains("64 hex characters"), "{e}");
        }
        assert!(!format!("{a:?}").contains("0011"));
    }

    #[test]
    fn a_wrapped_key_opens_only_with_its_master_key_and_binding() {
        let (m, _) = MasterKey::generate().unwrap();
        let (other, _) = MasterKey::generate().unwrap();
        let t = TenantId::new("acme");
        let wrapped = wrap(&m, &t, "dk_0000000000000000", &[7u8; 32]).unwrap();
        let row = ("dk_0000000000000000".to_owned(), m.id().to_owned(), wrapped.clone());
        assert_eq!(&*unwrap_key(&Keyring::new(m.clone(), []), &t, &row).unwrap(), &[7u8; 32]);
        // the wrong tenant
        let e = unwrap_key(&Keyring::new(m.clone(), []), &TenantId::new("other"), &row).unwrap_err();
        assert!(matches!(e, StoreError::Crypto(_)), "{e}");
        // a keyring without the master key
        let e = unwrap_key(&Keyring::new(other, []), &t, &row).unwrap_err();
        assert!(matches!(e, StoreError::UnknownMasterKey { .. }), "{e}");
    }
}
