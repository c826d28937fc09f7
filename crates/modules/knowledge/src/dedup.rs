//! Near-duplicate detection (SimHash over word shingles) and reciprocal
//! rank fusion. Small enough to own: the crates that offer these pull old
//! random-number crates or lack shingling.

/// FNV-1a: a stable 64-bit hash (never `std`'s randomly keyed one, since
/// fingerprints are stored).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A 64-bit finalizer (from MurmurHash3) that spreads shingle hashes.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Words of `text` for fingerprinting: alphanumeric runs, lowercased, and
/// each CJK character on its own (CJK has no spaces).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if crate::tokenize::is_cjk(c) {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(c.to_string());
        } else if c.is_alphanumeric() {
            cur.extend(c.to_lowercase());
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The SimHash of `text` over 3-word shingles. Texts that differ in a few
/// words have fingerprints a few bits apart.
pub fn simhash(text: &str) -> u64 {
    let w = words(text);
    if w.is_empty() {
        return 0;
    }
    let k = 3.min(w.len());
    let mut votes = [0i32; 64];
    for shingle in w.windows(k) {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for s in shingle {
            h = mix(h ^ fnv1a(s.as_bytes()));
        }
        for (bit, v) in votes.iter_mut().enumerate() {
            *v += if (h >> bit) & 1 == 1 { 1 } else { -1 };
        }
    }
    votes.iter().enumerate().fold(0u64, |acc, (bit, &v)| if v > 0 { acc | (1 << bit) } else { acc })
}

/// Whether two fingerprints are near duplicates (at most 3 of 64 bits
/// differ, the usual threshold for 64-bit SimHash).
pub fn near_duplicate(a: u64, b: u64) -> bool {
    a != 0 && b != 0 && (a ^ b).count_ones() <= 3
}

/// Reciprocal rank fusion (Cormack, Clarke and Büttcher 2009, k = 60):
/// each list votes `1 / (k + rank)` for its items (rank from 1); items are
/// returned by total, highest first, ties in first-seen order.
pub fn rrf<K: Clone + Eq + std::hash::Hash>(lists: &[Vec<K>]) -> Vec<(K, f64)> {
    const K: f64 = 60.0;
    let mut scores: std::collections::HashMap<K, (f64, usize)> = std::collections::HashMap::new();
    let mut order = 0usize;
    for list in lists {
        for (rank, item) in list.iter().enumerate() {
            let e = scores.entry(item.clone()).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            e.0 += 1.0 / (K + rank as f64 + 1.0);
        }
    }
    let mut out: Vec<(K, f64, usize)> = scores.into_iter().map(|(k, (s, o))| (k, s, o)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter().map(|(k, s, _)| (k, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_duplicates_are_close_and_different_texts_are_not() {
        let a = "The quick brown fox jumps over the lazy dog near the river bank on a sunny afternoon in May";
        let b = "The quick brown fox jumps over the lazy dog near the river bank on a sunny afternoon in June";
        let c = "Tokio is an asynchronous runtime for the Rust programming language with timers and sockets";
        let (ha, hb, hc) = (simhash(a), simhash(b), simhash(c));
        assert!((ha ^ hb).count_ones() < (ha ^ hc).count_ones());
        assert!(near_duplicate(ha, simhash(&a.to_uppercase())), "case does not matter");
        assert!(!near_duplicate(ha, hc));
        let ja = "東京都の天気は晴れのち曇り、明日は雨の予報です。傘を持って出かけましょう。";
        assert!(near_duplicate(simhash(ja), simhash(ja)));
        assert!(!near_duplicate(simhash(ja), simhash("大阪の天気は快晴で、週末まで雨は降らない見込みです。")));
        assert_eq!(simhash(""), 0);
        assert!(!near_duplicate(0, 0), "empty texts are not duplicates of each other");
    }

    #[test]
    fn rrf_rewards_agreement() {
        let fused = rrf(&[vec!["a", "b", "c"], vec!["b", "a", "d"], vec!["b"]]);
        let order: Vec<&str> = fused.iter().map(|(k, _)| *k).collect();
        assert_eq!(order, ["b", "a", "c", "d"]);
        let b = 1.0 / 62.0 + 1.0 / 61.0 + 1.0 / 61.0;
        assert!((fused[0].1 - b).abs() < 1e-12);
    }
}
