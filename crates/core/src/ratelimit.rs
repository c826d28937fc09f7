//! Token-bucket rate limits per principal and per tenant.
//!
//! [`TokenBucketLimiter`] implements the [`RateLimiter`] port. Every call is
//! charged one token from two buckets: the caller's own (keyed by tenant and
//! subject) and its tenant's (shared by every principal of the tenant). A call
//! passes only if both buckets have a token, and then takes one from each; a
//! refusal takes nothing, so a principal refused by its tenant's limit keeps
//! its own tokens, and the other way round. The `Err` carries how long to wait
//! until both buckets would admit the call.
//!
//! Each bucket is a rate (tokens per second) and a burst (bucket size), see
//! [`Limits`]. [`Quotas`] pairs the two limits (either may be absent, meaning
//! unlimited); a limiter has default quotas and optional per-tier overrides.
//! The tenant's tier is not part of [`Principal`], so the limiter asks a
//! [`TierOf`] function (backed by the tenant directory's configuration in the
//! app); a tenant without a tier, or with a tier that has no override, gets
//! the defaults.
//!
//! # Implementation
//!
//! The buckets use GCRA (the generic cell rate algorithm): a bucket is one
//! number, the theoretical arrival time of the next token, in nanoseconds of
//! a monotonic [`Clock`]. That is exactly a token bucket, with integer
//! arithmetic and exact retry-after values.
//!
//! The `governor` crate implements the same algorithm, but it was not a clean
//! fit: it cannot ask two buckets and charge both only if both agree (there is
//! no non-consuming check and no refund), and a keyed governor limiter has one
//! quota for every key, so per-tier quotas would need one limiter per tier.
//! The hand-written version is small: the state is sharded by tenant, and the
//! tenant's bucket and its principals' buckets sit under the same lock, which
//! is what makes the two-bucket check atomic. (Every call of a tenant touches
//! the tenant's bucket anyway, so sharding by tenant costs no parallelism.)
//!
//! # Memory
//!
//! A bucket that has refilled completely behaves exactly like a bucket that
//! was never used, so it is dropped without changing any decision. Each shard
//! sweeps its refilled buckets every [`SWEEP_EVERY`] checks; what stays are
//! the buckets used within their last `burst / rate` seconds, plus those made
//! by the at most `SWEEP_EVERY` checks since the shard's last sweep. Only authenticated principals of known
//! tenants reach the rate limit gate, so the key space is bounded as well.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::context::{Principal, TenantId};
use crate::ports::RateLimiter;

/// Number of independently locked shards of bucket state.
const SHARDS: usize = 32;

/// Checks on one shard between two sweeps of its refilled buckets.
pub const SWEEP_EVERY: u32 = 1024;

const NANOS_PER_SEC: f64 = 1e9;
/// The smallest rate: one call a day (slower rates would overflow the
/// nanosecond arithmetic into "unlimited").
const MIN_RATE: f64 = 1.0 / 86_400.0;
const NANOS_PER_MILLI: u64 = 1_000_000;

/// Rate and burst of one token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Nanoseconds per token (the inverse of the rate).
    interval_ns: u64,
    /// Bucket size: how many calls may arrive at once after a quiet period.
    burst: u32,
}

/// Limits that cannot describe a bucket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate limit: {0}")]
pub struct InvalidLimits(&'static str);

impl Limits {
    /// `rate` tokens per second (fractions allowed: 0.5 is one call every two
    /// seconds, the least is one a day), up to `burst` at once.
    pub fn per_second(rate: f64, burst: u32) -> Result<Self, InvalidLimits> {
        if !rate.is_finite() || rate <= 0.0 {
            return Err(InvalidLimits("the rate must be a positive number of calls per second"));
        }
        if rate < MIN_RATE {
            return Err(InvalidLimits("the rate must be at least one call per day"));
        }
        if rate > NANOS_PER_SEC {
            return Err(InvalidLimits("the rate must be at most 10^9 calls per second"));
        }
        if burst == 0 {
            return Err(InvalidLimits("the burst must be at least 1"));
        }
        // At most 86_400e9 ns (MIN_RATE), at least 1 ns.
        let interval_ns = ((NANOS_PER_SEC / rate).round() as u64).max(1);
        Ok(Self { interval_ns, burst })
    }

    /// Tokens per second.
    pub fn rate(&self) -> f64 {
        NANOS_PER_SEC / self.interval_ns as f64
    }

    /// Bucket size.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// GCRA: the bucket's next theoretical arrival time if one more call is
    /// admitted at `now`, or how long (ns) to wait until it would be.
    fn next(&self, tat: u64, now: u64) -> Result<u64, u64> {
        let new_tat = tat.max(now).saturating_add(self.interval_ns);
        let limit = now.saturating_add(self.interval_ns.saturating_mul(u64::from(self.burst)));
        if new_tat > limit { Err(new_tat - limit) } else { Ok(new_tat) }
    }
}

impl Limits {
    /// A bucket never owes more than one full burst under the limits in
    /// force: a debt run up under slower limits (a tenant just moved to a
    /// higher tier) is cut to that, so the new limits apply at once. Under
    /// unchanged limits the cut never bites (no admitted call takes the
    /// bucket past it).
    fn cap(&self, tat: u64, now: u64) -> u64 {
        tat.min(now.saturating_add(self.interval_ns.saturating_mul(u64::from(self.burst))))
    }
}

/// The two limits a call must pass. `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Per principal (tenant + subject).
    pub principal: Option<Limits>,
    /// Per tenant, shared by all its principals.
    pub tenant: Option<Limits>,
}

impl Quotas {
    /// No limit at all.
    pub fn unlimited() -> Self {
        Self::default()
    }

    fn is_unlimited(&self) -> bool {
        self.principal.is_none() && self.tenant.is_none()
    }
}

/// The tier of a tenant, if it has one (for per-tier [`Quotas`]).
pub type TierOf = Arc<dyn Fn(&TenantId) -> Option<String> + Send + Sync>;

/// A monotonic clock for the limiter: time since some fixed origin.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Duration;
}

/// The real clock: [`Instant`] since the clock was made.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self { origin: Instant::now() }
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to (for tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Move the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(duration_ns(by), Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The buckets of one tenant: its own and its principals'. A bucket is its
/// theoretical arrival time in ns; anything at or before "now" is full.
#[derive(Debug, Default)]
struct TenantBuckets {
    tenant: u64,
    principals: HashMap<String, u64>,
}

#[derive(Debug, Default)]
struct Shard {
    tenants: HashMap<TenantId, TenantBuckets>,
    checks: u32,
}

impl Shard {
    /// Drop every bucket that has refilled completely.
    fn sweep(&mut self, now: u64) {
        self.tenants.retain(|_, t| {
            t.principals.retain(|_, tat| *tat > now);
            t.tenant > now || !t.principals.is_empty()
        });
    }

    fn buckets(&self) -> usize {
        self.tenants.values().map(|t| 1 + t.principals.len()).sum()
    }
}

/// Token-bucket limits per principal and per tenant, with per-tier quotas.
///
/// ```
/// use plexus_core::ratelimit::{Limits, Quotas, TokenBucketLimiter};
/// # fn main() -> Result<(), plexus_core::ratelimit::InvalidLimits> {
/// let limiter = TokenBucketLimiter::new(Quotas {
///     principal: Some(Limits::per_second(10.0, 20)?),
///     tenant: Some(Limits::per_second(100.0, 200)?),
/// });
/// # let _ = limiter;
/// # Ok(())
/// # }
/// ```
pub struct TokenBucketLimiter {
    defaults: Quotas,
    tiers: HashMap<String, Quotas>,
    tier_of: Option<TierOf>,
    clock: Arc<dyn Clock>,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

impl std::fmt::Debug for TokenBucketLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBucketLimiter")
            .field("defaults", &self.defaults)
            .field("tiers", &self.tiers)
            .finish_non_exhaustive()
    }
}

impl TokenBucketLimiter {
    /// A limiter applying `defaults` to every tenant, on the real clock.
    pub fn new(defaults: Quotas) -> Self {
        Self {
            defaults,
            tiers: HashMap::new(),
            tier_of: None,
            clock: Arc::new(MonotonicClock::default()),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    /// Per-tier overrides: a tenant whose tier (`tier_of`) is a key of
    /// `tiers` gets those quotas instead of the defaults.
    pub fn with_tiers(mut self, tiers: HashMap<String, Quotas>, tier_of: TierOf) -> Self {
        self.tiers = tiers;
        self.tier_of = Some(tier_of);
        self
    }

    /// Use another clock (tests use [`ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The quotas that apply to `tenant`.
    pub fn quotas(&self, tenant: &TenantId) -> Quotas {
        if let Some(tier_of) = &self.tier_of
            && let Some(tier) = tier_of(tenant)
            && let Some(q) = self.tiers.get(&tier)
        {
            return *q;
        }
        self.defaults
    }

    /// Buckets currently held in memory (tenants and principals).
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().buckets()).sum()
    }

    /// Drop every bucket that has refilled completely now (this also happens
    /// on its own every [`SWEEP_EVERY`] checks of a shard).
    pub fn sweep(&self) {
        let now = duration_ns(self.clock.now());
        for shard in self.shards.iter() {
            shard.lock().sweep(now);
        }
    }

    fn shard(&self, tenant: &TenantId) -> &Mutex<Shard> {
        // The modulo keeps the index below SHARDS, so the cast cannot truncate.
        let i = (self.hasher.hash_one(tenant) % SHARDS as u64) as usize;
        &self.shards[i]
    }
}

/// Round a wait up to whole milliseconds: the wire carries milliseconds, and a
/// client that waits exactly the hint must then be admitted.
fn retry_after(wait_ns: u64) -> Duration {
    Duration::from_millis(wait_ns.div_ceil(NANOS_PER_MILLI))
}

impl RateLimiter for TokenBucketLimiter {
    fn check(&self, principal: &Principal) -> Result<(), Duration> {
        let quotas = self.quotas(&principal.tenant);
        if quotas.is_unlimited() {
            return Ok(());
        }
        let now = duration_ns(self.clock.now());
        let mut shard = self.shard(&principal.tenant).lock();
        shard.checks += 1;
        if shard.checks >= SWEEP_EVERY {
            shard.checks = 0;
            shard.sweep(now);
        }
        let buckets = shard.tenants.entry(principal.tenant.clone()).or_default();

        // Ask both buckets first; charge them only if both admit the call.
        let tenant = quotas.tenant.map(|l| {
            buckets.tenant = l.cap(buckets.tenant, now);
            l.next(buckets.tenant, now)
        });
        let own = quotas.principal.map(|l| {
            let tat = match buckets.principals.get_mut(principal.subject.as_str()) {
                Some(tat) => {
                    *tat = l.cap(*tat, now);
                    *tat
                }
                None => 0,
            };
            l.next(tat, now)
        });
        let wait = [tenant, own].into_iter().flatten().filter_map(Result::err).max();
        if let Some(wait) = wait {
            return Err(retry_after(wait));
        }
        if let Some(Ok(tat)) = tenant {
            buckets.tenant = tat;
        }
        if let Some(Ok(tat)) = own {
            match buckets.principals.get_mut(principal.subject.as_str()) {
                Some(slot) => *slot = tat,
                None => {
                    buckets.principals.insert(principal.subject.clone(), tat);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(tenant: &str, subject: &str) -> Principal {
        Principal {
            subject: subject.into(),
            tenant: TenantId::new(tenant),
            roles: Vec::new(),
            scopes: Vec::new(),
            groups: Vec::new(),
            method: "test",
        }
    }

    fn limits(rate: f64, burst: u32) -> Limits {
        Limits::per_second(rate, burst).expect("valid limits")
    }

    fn limiter(quotas: Quotas) -> (TokenBucketLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let l = TokenBucketLimiter::new(quotas).with_clock(Arc::clone(&clock) as Arc<dyn Clock>);
        (l, clock)
    }

    fn per_principal(rate: f64, burst: u32) -> Quotas {
        Quotas { principal: Some(limits(rate, burst)), tenant: None }
    }

    #[test]
    fn limits_are_validated() {
        assert!(Limits::per_second(0.0, 1).is_err());
        assert!(Limits::per_second(-1.0, 1).is_err());
        assert!(Limits::per_second(f64::NAN, 1).is_err());
        assert!(Limits::per_second(f64::INFINITY, 1).is_err());
        assert!(Limits::per_second(1.0, 0).is_err());
        assert!(Limits::per_second(1e-9, 1).is_err());
        assert!(Limits::per_second(MIN_RATE, 1).is_ok());
        let l = limits(0.5, 3);
        assert_eq!((l.rate(), l.burst()), (0.5, 3));
        let e = Limits::per_second(1.0, 0).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("invalid rate limit: the burst must be at least 1"));
    }

    #[test]
    fn burst_is_allowed_then_refused_with_the_time_to_the_next_token() {
        let (l, _clock) = limiter(per_principal(2.0, 3)); // a token every 500 ms
        let p = who("acme", "alice");
        for _ in 0..3 {
            assert_eq!(l.check(&p), Ok(()));
        }
        assert_eq!(l.check(&p), Err(Duration::from_millis(500)));
        // A refusal takes nothing: the wait does not grow.
        assert_eq!(l.check(&p), Err(Duration::from_millis(500)));
    }

    #[test]
    fn tokens_come_back_with_time() {
        let (l, clock) = limiter(per_principal(2.0, 3));
        let p = who("acme", "alice");
        for _ in 0..3 {
            assert_eq!(l.check(&p), Ok(()));
        }
        clock.advance(Duration::from_millis(200));
        assert_eq!(l.check(&p), Err(Duration::from_millis(300)));
        clock.advance(Duration::from_millis(300));
        assert_eq!(l.check(&p), Ok(()));
        assert_eq!(l.check(&p), Err(Duration::from_millis(500)));
        // After burst / rate seconds of quiet the whole burst is back, no more.
        clock.advance(Duration::from_secs(10));
        for _ in 0..3 {
            assert_eq!(l.check(&p), Ok(()));
        }
        assert!(l.check(&p).is_err());
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_milliseconds() {
        let (l, _clock) = limiter(per_principal(3.0, 1)); // 333.333... ms per token
        let p = who("acme", "alice");
        assert_eq!(l.check(&p), Ok(()));
        assert_eq!(l.check(&p), Err(Duration::from_millis(334)));
    }

    #[test]
    fn two_principals_do_not_share_buckets() {
        let (l, _clock) = limiter(per_principal(1.0, 2));
        let (alice, bob) = (who("acme", "alice"), who("acme", "bob"));
        assert_eq!(l.check(&alice), Ok(()));
        assert_eq!(l.check(&alice), Ok(()));
        assert!(l.check(&alice).is_err());
        assert_eq!(l.check(&bob), Ok(()));
        assert_eq!(l.check(&bob), Ok(()));
        assert!(l.check(&bob).is_err());
        // The same subject in another tenant is another principal.
        assert_eq!(l.check(&who("globex", "alice")), Ok(()));
    }

    #[test]
    fn tenant_limit_is_shared_by_its_principals_and_independent_of_theirs() {
        let (l, clock) = limiter(Quotas { principal: Some(limits(1.0, 2)), tenant: Some(limits(1.0, 3)) });
        let (alice, bob, carol) = (who("acme", "alice"), who("acme", "bob"), who("acme", "carol"));
        assert_eq!(l.check(&alice), Ok(()));
        assert_eq!(l.check(&alice), Ok(()));
        // Alice's own bucket is empty; the tenant still has a token for Bob.
        assert_eq!(l.check(&alice), Err(Duration::from_secs(1)));
        assert_eq!(l.check(&bob), Ok(()));
        // Now the tenant is empty: Carol is refused although her bucket is full...
        assert_eq!(l.check(&carol), Err(Duration::from_secs(1)));
        // ...and the refusal did not take her tokens: once the tenant refills
        // one token she gets it, and then the tenant refuses again.
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.check(&carol), Ok(()));
        assert_eq!(l.check(&carol), Err(Duration::from_secs(1)));
        // Other tenants have their own bucket.
        assert_eq!(l.check(&who("globex", "dave")), Ok(()));
    }

    #[test]
    fn a_refusal_by_the_principal_limit_leaves_the_tenant_bucket_alone() {
        let (l, _clock) = limiter(Quotas { principal: Some(limits(1.0, 1)), tenant: Some(limits(1.0, 2)) });
        let (alice, bob) = (who("acme", "alice"), who("acme", "bob"));
        assert_eq!(l.check(&alice), Ok(()));
        for _ in 0..5 {
            assert!(l.check(&alice).is_err());
        }
        // The tenant's second token is still there.
        assert_eq!(l.check(&bob), Ok(()));
    }

    #[test]
    fn retry_after_is_the_longer_of_the_two_waits() {
        let (l, clock) = limiter(Quotas { principal: Some(limits(1.0, 1)), tenant: Some(limits(0.25, 1)) });
        let alice = who("acme", "alice");
        assert_eq!(l.check(&alice), Ok(()));
        assert_eq!(l.check(&alice), Err(Duration::from_secs(4)));
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.check(&alice), Err(Duration::from_secs(3)));
    }

    #[test]
    fn a_tenant_moved_to_a_faster_tier_gets_its_limits_at_once() {
        let slow = Quotas { principal: Some(limits(0.5, 2)), tenant: None };
        let fast = Quotas { principal: Some(limits(1000.0, 1000)), tenant: None };
        let tier = Arc::new(parking_lot::Mutex::new("free".to_owned()));
        let t = Arc::clone(&tier);
        let (l, clock) = limiter(Quotas::unlimited());
        let l = l.with_tiers(
            HashMap::from([("free".to_owned(), slow), ("pro".to_owned(), fast)]),
            Arc::new(move |_: &TenantId| Some(t.lock().clone())),
        );
        let p = who("shop", "bot");
        assert!(l.check(&p).is_ok() && l.check(&p).is_ok());
        assert_eq!(l.check(&p), Err(Duration::from_secs(2)), "free: 2 then one every 2 s");
        *tier.lock() = "pro".into();
        // the 4 s owed under the free tier is cut to one pro burst (1 s)
        assert_eq!(l.check(&p), Err(Duration::from_millis(1)));
        clock.advance(Duration::from_millis(10));
        assert!((0..10).all(|_| l.check(&p).is_ok()));
        // and back: the free tier's limits apply at once too (the bucket
        // owes 1 s, the free tier allows 4 s: one more call, then it owes
        // 3 s and the next must wait until it owes 2 s)
        *tier.lock() = "free".into();
        assert!(l.check(&p).is_ok());
        assert_eq!(l.check(&p), Err(Duration::from_secs(1)));
    }

    #[test]
    fn tiers_override_the_defaults() {
        let tiers =
            HashMap::from([("gold".to_owned(), per_principal(1.0, 5)), ("free".to_owned(), Quotas::unlimited())]);
        let tier_of: TierOf = Arc::new(|t: &TenantId| match t.as_str() {
            "acme" => Some("gold".to_owned()),
            "hobby" => Some("free".to_owned()),
            "odd" => Some("platinum".to_owned()),
            _ => None,
        });
        let (l, _clock) = limiter(per_principal(1.0, 1));
        let l = l.with_tiers(tiers, tier_of);
        let burst = |tenant: &str| (0..10).take_while(|_| l.check(&who(tenant, "alice")).is_ok()).count();
        assert_eq!(burst("acme"), 5);
        assert_eq!(burst("hobby"), 10);
        assert_eq!(burst("odd"), 1, "an unknown tier gets the defaults");
        assert_eq!(burst("plain"), 1);
    }

    #[test]
    fn unlimited_keeps_no_state() {
        let (l, _clock) = limiter(Quotas::unlimited());
        for _ in 0..100 {
            assert_eq!(l.check(&who("acme", "alice")), Ok(()));
        }
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn refilled_buckets_are_evicted() {
        let (l, clock) = limiter(Quotas { principal: Some(limits(10.0, 10)), tenant: Some(limits(1000.0, 1000)) });
        for i in 0..50 {
            assert_eq!(l.check(&who("acme", &format!("user-{i}"))), Ok(()));
        }
        assert_eq!(l.tracked(), 51);
        // Not yet refilled: the state must stay.
        clock.advance(Duration::from_millis(50));
        l.sweep();
        assert_eq!(l.tracked(), 51);
        clock.advance(Duration::from_millis(100));
        l.sweep();
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn sweeping_happens_on_its_own() {
        let (l, clock) = limiter(per_principal(1000.0, 1));
        let total = SWEEP_EVERY as usize * SHARDS * 2;
        for i in 0..total {
            assert_eq!(l.check(&who(&format!("tenant-{i}"), "alice")), Ok(()));
            clock.advance(Duration::from_millis(1));
        }
        // Every bucket refills within 1 ms, so only those created since their
        // shard's last sweep can remain: at most SWEEP_EVERY tenants per
        // shard, each holding its own entry and one principal's.
        let bound = 2 * SWEEP_EVERY as usize * SHARDS;
        assert!(l.tracked() <= bound, "{} > {bound}", l.tracked());
        assert!(l.tracked() < 2 * total);
    }

    #[test]
    fn concurrent_callers_never_exceed_the_burst() {
        let (l, _clock) = limiter(Quotas { principal: None, tenant: Some(limits(1.0, 100)) });
        let l = Arc::new(l);
        let admitted = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (l, admitted) = (&l, &admitted);
                s.spawn(move || {
                    for i in 0..100 {
                        if l.check(&who("acme", &format!("{t}-{i}"))).is_ok() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 100);
    }
}
