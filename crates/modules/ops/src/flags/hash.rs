//! Unleash's bucketing: MurmurHash3 (x86, 32 bit) of `"{group}:{id}"`.

use std::hash::BuildHasher;

/// The seed Unleash uses for variant buckets (rollouts use 0).
pub(crate) const VARIANT_SEED: u32 = 86_028_157;

/// MurmurHash3, x86 32-bit variant, over the bytes of `data`.
pub(crate) fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let scramble = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);

    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h ^= scramble(k);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail.iter().rev().fold(0u32, |k, &b| (k << 8) | u32::from(b));
        h ^= scramble(k);
    }
    // The length is mixed in modulo 2^32, as the reference does.
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Unleash's normalized value: a bucket in `1..=modulus` for `id` in `group`.
/// `modulus` must not be 0.
pub(crate) fn normalized(id: &str, group: &str, modulus: u32, seed: u32) -> u32 {
    // `group:id` on the stack when it fits: no allocation per evaluation.
    let (g, i) = (group.as_bytes(), id.as_bytes());
    let len = g.len() + 1 + i.len();
    let hash = if len <= STACK_KEY {
        let mut buf = [0u8; STACK_KEY];
        buf[..g.len()].copy_from_slice(g);
        buf[g.len()] = b':';
        buf[g.len() + 1..len].copy_from_slice(i);
        murmur3_x86_32(&buf[..len], seed)
    } else {
        murmur3_x86_32(format!("{group}:{id}").as_bytes(), seed)
    };
    hash % modulus + 1
}

/// The longest `group:id` hashed from a stack buffer.
const STACK_KEY: usize = 256;

/// The rollout bucket (1 to 100) of `id` in `group`.
pub(crate) fn rollout_bucket(id: &str, group: &str) -> u32 {
    normalized(id, group, 100, 0)
}

/// A uniformly random number in `1..=n` (`n` > 0), for `gradualRolloutRandom`
/// and `random` stickiness.
///
/// The standard library's `RandomState` is seeded from the OS once per thread
/// and steps its key on every `new()`, so hashing with a fresh one gives an
/// unpredictable value without another dependency. Not for cryptography.
pub(crate) fn random_in(n: u32) -> u32 {
    let r = std::collections::hash_map::RandomState::new().hash_one(0u8);
    (r % u64::from(n)) as u32 + 1
}

/// A random stickiness value, for when the context has none (as the SDKs
/// do: the result is then random on every call).
pub(crate) fn random_id() -> String {
    random_in(100_000).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_on_the_stack_and_on_the_heap_hash_alike() {
        for id in ["", "user-1", "ユーザー", &"x".repeat(254), &"x".repeat(255), &"y".repeat(1000)] {
            let expect = murmur3_x86_32(format!("group:{id}").as_bytes(), 0) % 100 + 1;
            assert_eq!(normalized(id, "group", 100, 0), expect, "{} bytes", id.len());
        }
    }

    #[test]
    fn murmur3_matches_reference_vectors() {
        // Vectors of the reference implementation (SMHasher's MurmurHash3_x86_32).
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"", 0xffff_ffff), 0x81f1_6f39);
        assert_eq!(murmur3_x86_32(b"\0\0\0\0", 0), 0x2362_f9de);
        assert_eq!(murmur3_x86_32(b"aaaa", 0x9747_b28c), 0x5a97_808a);
        assert_eq!(murmur3_x86_32(b"aaa", 0x9747_b28c), 0x283e_0130);
        assert_eq!(murmur3_x86_32(b"aa", 0x9747_b28c), 0x5d21_1726);
        assert_eq!(murmur3_x86_32(b"a", 0x9747_b28c), 0x7fa0_9ea6);
        assert_eq!(murmur3_x86_32(b"Hello, world!", 0x9747_b28c), 0x2488_4cba);
        assert_eq!(murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0x9747_b28c), 0x2fa8_26cd);
        assert_eq!(murmur3_x86_32(b"hello", 0), 0x248b_fa47);
    }

    #[test]
    fn buckets_stay_in_range() {
        for i in 0..2000 {
            let id = format!("user-{i}");
            let b = rollout_bucket(&id, "group");
            assert!((1..=100).contains(&b), "{b}");
            let v = normalized(&id, "group", 7, VARIANT_SEED);
            assert!((1..=7).contains(&v), "{v}");
            let r = random_in(100);
            assert!((1..=100).contains(&r), "{r}");
        }
        assert_eq!(normalized("x", "g", 1, VARIANT_SEED), 1);
    }

    #[test]
    fn random_is_not_constant() {
        let first = random_in(1_000_000);
        assert!((0..50).any(|_| random_in(1_000_000) != first));
    }
}
