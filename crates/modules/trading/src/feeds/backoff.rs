//! Reconnect delays: exponential backoff with full jitter, from a seeded
//! generator so a test (or an incident replay) sees the same delays.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// SplitMix64: a tiny, fast, seedable generator (Steele, Lea and Flood), good
/// enough to spread reconnects; not for anything secret.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed` (any value, zero included).
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub const fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..=max` (without modulo bias worth speaking of:
    /// the widening multiply maps 64 random bits onto the range).
    pub fn next_up_to(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        let span = u128::from(max) + 1;
        // (r * span) >> 64 is < span, so it fits in u64.
        u64::try_from((u128::from(self.next_u64()) * span) >> 64).unwrap_or(max)
    }
}

/// The shape of the reconnect delays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The ceiling of the first delay; each further attempt doubles it.
    pub base: Duration,
    /// The largest ceiling: delays never exceed it.
    pub cap: Duration,
    /// A connection that stayed up this long was healthy: the next
    /// disconnection starts again from `base`.
    pub healthy_after: Duration,
    /// The generator's seed (set it in tests for repeatable delays).
    pub seed: u64,
}

impl Default for BackoffConfig {
    /// 250 ms doubling up to 30 s, healthy after 60 s, and a seed that
    /// differs per process so many instances do not reconnect in step.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
            seed: random_seed(),
        }
    }
}

/// A seed from the standard library's per-process random hasher keys.
fn random_seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x5EED);
    hasher.finish()
}

/// One reconnect delay and how it was drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffDelay {
    /// The attempt this delay precedes: 1 for the first retry.
    pub attempt: u32,
    /// `min(cap, base * 2^(attempt-1))`: the delay is drawn uniformly from `0..=ceiling`.
    pub ceiling: Duration,
    /// The delay to wait.
    pub delay: Duration,
}

/// Exponential backoff with full jitter: the n-th delay is uniform in
/// `0..=min(cap, base * 2^(n-1))` ("full jitter" in AWS's terms), which spreads
/// reconnecting clients out instead of having them retry in waves.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// A backoff at its first attempt.
    #[must_use]
    pub fn new(config: BackoffConfig) -> Self {
        let rng = SplitMix64::new(config.seed);
        Self { config, attempt: 0, rng }
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// How many delays were drawn since the last reset.
    #[must_use]
    pub const fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The ceiling of the delay before attempt `attempt` (1-based).
    #[must_use]
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let base = self.config.base.min(self.config.cap);
        let shift = attempt.saturating_sub(1).min(63);
        let factor = 1u32.checked_shl(shift).unwrap_or(u32::MAX);
        base.checked_mul(factor).map_or(self.config.cap, |c| c.min(self.config.cap))
    }

    /// Draws the next delay and counts the attempt.
    pub fn next_delay(&mut self) -> BackoffDelay {
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = self.ceiling(self.attempt);
        let ceiling_ns = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let delay = Duration::from_nanos(self.rng.next_up_to(ceiling_ns));
        BackoffDelay { attempt: self.attempt, ceiling, delay }
    }

    /// Back to the first attempt (after a healthy connection). The generator
    /// keeps its state, so delays after a reset are not a replay.
    pub const fn reset(&mut self) {
        self.attempt = 0;
    }
}
