//! The query-result cache: LRU with a time to live (moka), keyed by
//! everything that decides a result (index generation, tenant, the
//! caller's principals, query, filters, page), so a commit or a different
//! reader never hits a stale or foreign entry; a commit also drops the old
//! entries. Hits and misses are counted for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use crate::index::{Filters, Reader, Results};

/// Entries kept at most.
const CAPACITY: u64 = 10_000;
/// Longest an entry lives (sources change between commits only, but a
/// bounded life caps memory of rare queries).
const TTL: Duration = Duration::from_secs(300);

/// Cached search results.
pub struct QueryCache {
    cache: Cache<String, Arc<Results>>,
    generation: AtomicU64,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl std::fmt::Debug for QueryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCache").field("entries", &self.cache.entry_count()).finish_non_exhaustive()
    }
}

impl QueryCache {
    /// A cache counting into `hits` and `misses`.
    pub fn new(hits: Arc<AtomicU64>, misses: Arc<AtomicU64>) -> Self {
        let cache = Cache::builder()
            .max_capacity(CAPACITY)
            .time_to_live(TTL)
            .eviction_policy(EvictionPolicy::lru())
            .name("knowledge-queries")
            .build();
        Self { cache, generation: AtomicU64::new(0), hits, misses }
    }

    /// The key of a search: every input that decides its result.
    pub fn key(
        generation: u64,
        reader: &Reader,
        query: &str,
        filters: &Filters,
        limit: usize,
        offset: usize,
    ) -> String {
        let mut principals = reader.principals.clone();
        principals.sort();
        principals.dedup();
        let filters = serde_json::to_string(filters).unwrap_or_default();
        serde_json::json!([generation, reader.tenant, principals, query, filters, limit, offset]).to_string()
    }

    /// The cached result for `key` at index `generation`, if any.
    pub fn get(&self, generation: u64, key: &str) -> Option<Arc<Results>> {
        if self.generation.swap(generation, Ordering::AcqRel) != generation {
            // The index committed: nothing cached before can be reused.
            self.cache.invalidate_all();
        }
        let found = self.cache.get(key);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn insert(&self, key: String, results: Arc<Results>) {
        self.cache.insert(key, results);
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }
}
