//! Audit records and their hash chain.
//!
//! Each record carries the SHA-256 of the record before it; the hash covers
//! the record's canonical JSON (with `hash` left out). Editing, deleting or
//! reordering any record breaks the chain at a point [`verify`] names.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash that stands before the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, before it is chained (built by the audit layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// RFC 3339 UTC time the call started.
    pub time: String,
    pub request_id: String,
    pub session: Option<String>,
    pub principal: String,
    pub tenant: String,
    /// `tools/call`, `resources/read`, `prompts/get`, ...
    pub operation: String,
    /// Tool or prompt name, or resource URI.
    pub target: String,
    /// SHA-256 of the canonical arguments: what was asked, never the raw values.
    pub args_digest: String,
    /// `ok`, `denied`, or an error code.
    pub outcome: String,
    pub latency_us: u64,
    pub client_addr: Option<String>,
}

/// A chained record: the storage and export format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub time: String,
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    pub principal: String,
    pub tenant: String,
    pub operation: String,
    pub target: String,
    pub args_digest: String,
    pub outcome: String,
    pub latency_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The columns of an audit record as CSV, in [`AuditRecord::csv_row`]'s order.
pub const CSV_HEADER: [&str; 14] = [
    "seq",
    "time",
    "request_id",
    "session",
    "principal",
    "tenant",
    "operation",
    "target",
    "args_digest",
    "outcome",
    "latency_us",
    "client_addr",
    "prev_hash",
    "hash",
];

/// `s` as one CSV field (RFC 4180): quoted, with its quotes doubled, when it
/// holds a comma, a double quote, CR or LF; else as it is.
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\r', '\n']) {
        std::borrow::Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

impl AuditRecord {
    /// The record's fields as CSV text (not yet escaped; see [`csv_field`]),
    /// in [`CSV_HEADER`]'s order; absent values are empty.
    pub fn csv_row(&self) -> [std::borrow::Cow<'_, str>; 14] {
        use std::borrow::Cow::{Borrowed, Owned};
        [
            Owned(self.seq.to_string()),
            Borrowed(&self.time),
            Borrowed(&self.request_id),
            Borrowed(self.session.as_deref().unwrap_or("")),
            Borrowed(&self.principal),
            Borrowed(&self.tenant),
            Borrowed(&self.operation),
            Borrowed(&self.target),
            Borrowed(&self.args_digest),
            Borrowed(&self.outcome),
            Owned(self.latency_us.to_string()),
            Borrowed(self.client_addr.as_deref().unwrap_or("")),
            Borrowed(&self.prev_hash),
            Borrowed(&self.hash),
        ]
    }

    /// Chain `event` after a record with `prev_hash` at position `seq`.
    pub fn chain(seq: u64, prev_hash: &str, e: AuditEvent) -> Self {
        let mut r = AuditRecord {
            seq,
            time: e.time,
            request_id: e.request_id,
            session: e.session,
            principal: e.principal,
            tenant: e.tenant,
            operation: e.operation,
            target: e.target,
            args_digest: e.args_digest,
            outcome: e.outcome,
            latency_us: e.latency_us,
            client_addr: e.client_addr,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        r.hash = r.compute_hash();
        r
    }

    /// The hash this record should carry: SHA-256 of the previous hash and
    /// the record's JSON with `hash` empty. Field order is fixed by the
    /// struct, so that JSON is canonical.
    pub fn compute_hash(&self) -> String {
        let unhashed = Unhashed {
            seq: self.seq,
            time: &self.time,
            request_id: &self.request_id,
            session: self.session.as_deref(),
            principal: &self.principal,
            tenant: &self.tenant,
            operation: &self.operation,
            target: &self.target,
            args_digest: &self.args_digest,
            outcome: &self.outcome,
            latency_us: self.latency_us,
            client_addr: self.client_addr.as_deref(),
            prev_hash: &self.prev_hash,
            hash: "",
        };
        let mut json = Vec::with_capacity(512);
        unhashed.hash_into(&mut json)
    }

    /// Chain `e` after `prev_hash` at `seq` and append the record's JSON
    /// line (without the newline) to `out`, serializing it once: the JSON
    /// with `hash` empty is hashed, then the hash is put between its quotes,
    /// which gives exactly the bytes `serde_json` writes for the record.
    /// Returns the record's hash.
    pub fn write_chained(seq: u64, prev_hash: &str, e: &AuditEvent, out: &mut Vec<u8>) -> String {
        Unhashed {
            seq,
            time: &e.time,
            request_id: &e.request_id,
            session: e.session.as_deref(),
            principal: &e.principal,
            tenant: &e.tenant,
            operation: &e.operation,
            target: &e.target,
            args_digest: &e.args_digest,
            outcome: &e.outcome,
            latency_us: e.latency_us,
            client_addr: e.client_addr.as_deref(),
            prev_hash,
            hash: "",
        }
        .hash_into(out)
    }
}

impl Unhashed<'_> {
    /// Append this record's JSON with its hash filled in to `out`; return the hash.
    fn hash_into(&self, out: &mut Vec<u8>) -> String {
        let start = out.len();
        // A struct of strings and integers always serializes.
        let _ = serde_json::to_writer(&mut *out, self);
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(&out[start..]);
        let hash = sha256_hex_of(h);
        // The JSON ends with `"hash":""}` (hash is the last field).
        debug_assert!(out.ends_with(b"\"hash\":\"\"}"));
        out.truncate(out.len() - 2);
        out.extend_from_slice(hash.as_bytes());
        out.extend_from_slice(b"\"}");
        hash
    }
}

fn sha256_hex_of(h: Sha256) -> String {
    to_hex(&h.finalize())
}

/// Lowercase hex of `bytes` (a table lookup per nibble: `hex::encode` goes
/// through `char`s and is several times slower on the hot path).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
    // Only ASCII hex digits were pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// [`AuditRecord`] borrowed, serialized exactly as the record would be.
#[derive(Serialize)]
struct Unhashed<'a> {
    seq: u64,
    time: &'a str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    principal: &'a str,
    tenant: &'a str,
    operation: &'a str,
    target: &'a str,
    args_digest: &'a str,
    outcome: &'a str,
    latency_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_addr: Option<&'a str>,
    prev_hash: &'a str,
    hash: &'a str,
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("record {seq} (position {position}) was altered: its hash does not match its content")]
    Altered { position: usize, seq: u64 },
    #[error(
        "record {seq} (position {position}) does not follow the record before it: a record was deleted, inserted or moved"
    )]
    Broken { position: usize, seq: u64 },
    #[error("record at position {position} has sequence {found}, expected {expected}")]
    Sequence { position: usize, found: u64, expected: u64 },
}

/// Summary of a verified chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub records: u64,
    pub head: String,
}

/// Verify a chain from its first record. Returns every break found.
pub fn verify<'a>(records: impl IntoIterator<Item = &'a AuditRecord>) -> Result<ChainSummary, Vec<ChainError>> {
    let mut errors = Vec::new();
    let mut prev = GENESIS.to_owned();
    let mut count = 0u64;
    for (position, r) in records.into_iter().enumerate() {
        if r.seq != position as u64 {
            errors.push(ChainError::Sequence { position, found: r.seq, expected: position as u64 });
        }
        if r.compute_hash() != r.hash {
            errors.push(ChainError::Altered { position, seq: r.seq });
        } else if r.prev_hash != prev {
            errors.push(ChainError::Broken { position, seq: r.seq });
        }
        prev = r.hash.clone();
        count += 1;
    }
    if errors.is_empty() { Ok(ChainSummary { records: count, head: prev }) } else { Err(errors) }
}

/// SHA-256 of a JSON value's text: what the audit log keeps of arguments.
pub fn digest_json(v: &serde_json::Value) -> String {
    let mut json = Vec::with_capacity(128);
    // A `Value` always serializes.
    let _ = serde_json::to_writer(&mut json, v);
    sha256_hex(&json)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn one_pass_lines_are_exactly_the_serialized_records() {
        for i in 0..4 {
            let mut e = event(i);
            e.session = (i % 2 == 0).then(|| "s-セッション".into());
            e.client_addr = (i > 1).then(|| "10.0.0.1:443".into());
            e.principal = "山田 \"quoted\" \\ name\n".into();
            let mut line = Vec::new();
            let hash = AuditRecord::write_chained(i, GENESIS, &e, &mut line);
            let record = AuditRecord::chain(i, GENESIS, e);
            assert_eq!(hash, record.hash);
            assert_eq!(String::from_utf8(line).unwrap(), serde_json::to_string(&record).unwrap());
        }
        assert_eq!(to_hex(&[0x00, 0x9f, 0xff]), "009fff");
        assert_eq!(sha256_hex(b"abc"), hex::encode(Sha256::digest(b"abc")));
    }

    fn event(i: u64) -> AuditEvent {
        AuditEvent {
            time: format!("2026-11-21T00:00:{:02}Z", i % 60),
            request_id: format!("r{i}"),
            session: None,
            principal: "alice".into(),
            tenant: "t1".into(),
            operation: "tools/call".into(),
            target: "echo".into(),
            args_digest: digest_json(&serde_json::json!({ "i": i })),
            outcome: "ok".into(),
            latency_us: i,
            client_addr: None,
        }
    }

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_owned();
        (0..n)
            .map(|i| {
                let r = AuditRecord::chain(i, &prev, event(i));
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn the_hash_covers_the_records_own_json() {
        let r = chain(3).pop().unwrap();
        let mut unhashed = r.clone();
        unhashed.hash.clear();
        let mut h = Sha256::new();
        h.update(r.prev_hash.as_bytes());
        h.update(serde_json::to_vec(&unhashed).unwrap());
        assert_eq!(r.hash, hex::encode(h.finalize()));
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(10);
        let s = verify(&c).unwrap();
        assert_eq!(s.records, 10);
        assert_eq!(s.head, c[9].hash);
    }

    proptest! {
        #[test]
        fn any_edit_delete_or_swap_is_detected(n in 2u64..30, pick in any::<prop::sample::Index>(), how in 0u8..3) {
            let mut c = chain(n);
            let i = pick.index(c.len());
            match how {
                0 => c[i].outcome = "denied".into(),
                1 => { c.remove(i); }
                _ => { let j = (i + 1) % c.len(); c.swap(i, j); }
            }
            // Removing the last record leaves a valid shorter chain: that is
            // truncation, which only the stored head (checked by the store) catches.
            if how == 1 && i == c.len() { return Ok(()); }
            let errs = verify(&c).unwrap_err();
            prop_assert!(!errs.is_empty());
        }
    }

    #[test]
    fn the_edited_record_is_named() {
        let mut c = chain(5);
        c[3].principal = "mallory".into();
        let errs = verify(&c).unwrap_err();
        assert_eq!(errs, vec![ChainError::Altered { position: 3, seq: 3 }]);
        // re-hashing the edited record to hide the edit breaks the next link
        c[3].hash = c[3].compute_hash();
        let errs = verify(&c).unwrap_err();
        assert_eq!(errs, vec![ChainError::Broken { position: 4, seq: 4 }]);
    }
}
