//! plexus-testkit: fakes of core's ports and fixture builders for tests.
//! A dev-dependency only (the tidy test checks it).

pub mod postgres;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use plexus_core::audit::AuditEvent;
use plexus_core::context::{CallContext, Credential, Principal, TenantId};
use plexus_core::pipeline::{Call, Operation};
use plexus_core::ports::{AuditError, AuditSink, RateLimiter};

/// An audit sink that keeps every event in memory.
#[derive(Debug, Default, Clone)]
pub struct RecordingAudit {
    events: Arc<Mutex<Vec<AuditEvent>>>,
}

impl RecordingAudit {
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().clone()
    }

    /// The outcome of the last record for `target`.
    pub fn last_outcome(&self, target: &str) -> Option<String> {
        self.events.lock().iter().rev().find(|e| e.target == target).map(|e| e.outcome.clone())
    }
}

#[async_trait::async_trait]
impl AuditSink for RecordingAudit {
    async fn append(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.events.lock().push(event);
        Ok(())
    }
}

/// An audit sink whose storage is gone: every append fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct BrokenAudit;

#[async_trait::async_trait]
impl AuditSink for BrokenAudit {
    async fn append(&self, _: AuditEvent) -> Result<(), AuditError> {
        Err(AuditError("disk full".into()))
    }
}

/// A limiter that admits the first `n` calls, then refuses.
#[derive(Debug)]
pub struct CountingLimiter {
    left: Mutex<u32>,
}

impl CountingLimiter {
    pub fn new(n: u32) -> Self {
        Self { left: Mutex::new(n) }
    }
}

impl RateLimiter for CountingLimiter {
    fn check(&self, _: &Principal) -> Result<(), Duration> {
        let mut left = self.left.lock();
        if *left == 0 {
            return Err(Duration::from_millis(250));
        }
        *left -= 1;
        Ok(())
    }
}

/// A principal with the given roles in the default tenant.
pub fn principal(subject: &str, roles: &[&str]) -> Principal {
    Principal {
        subject: subject.into(),
        tenant: TenantId::default_tenant(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        scopes: Vec::new(),
        groups: Vec::new(),
        method: "test",
    }
}

/// A call with no client behind it, presenting `credential`.
pub fn call(credential: Credential, op: Operation) -> Call {
    let mut cx = CallContext::detached("test-request");
    cx.credential = credential;
    Call { cx, op }
}

/// A `tools/call` operation.
pub fn tool(name: &str, args: serde_json::Value) -> Operation {
    Operation::CallTool { name: name.into(), args }
}

/// A suffix that differs between calls in one process (a counter beside the
/// clock), for names of temporary directories, roles and requests.
pub fn unique_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (u64::from(nanos) << 20) | (NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0xF_FFFF)
}
