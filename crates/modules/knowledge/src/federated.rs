//! Federated search: sources marked `live` are asked at search time,
//! concurrently with the index, each under its own deadline. A source that
//! is slow or failing never fails or stalls the search: the results say per
//! source whether it answered, timed out or failed. Live hits are trimmed to
//! what the caller may read (the connector computes each document's ACL as
//! it does when syncing), then merged with the index's hits by reciprocal
//! rank fusion and deduplicated (same id, same URL, or near-duplicate text
//! by SimHash).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use plexus_core::http::HttpError;
use serde::Serialize;

use crate::dedup;
use crate::index::{Document, Filters, Hit, Reader, Results};

/// A source that can be searched directly.
#[async_trait::async_trait]
pub trait LiveSource: Send + Sync {
    fn name(&self) -> &str;

    /// Up to `limit` documents matching `query`, best first, by `deadline`.
    async fn search(
        &self,
        query: &str,
        limit: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Document>, HttpError>;
}

/// A live source of a tenant, with its deadline.
#[derive(Clone)]
pub struct Live {
    pub tenant: String,
    pub source: Arc<dyn LiveSource>,
    pub deadline: Duration,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("tenant", &self.tenant).field("source", &self.source.name()).finish()
    }
}

/// How one source took part in a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Answered,
    TimedOut,
    Failed,
}

/// One source's part in a search.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SourceStatus {
    pub source: String,
    pub status: Status,
    /// Hits it contributed (after permission trimming).
    pub hits: usize,
    pub elapsed_ms: u64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether the reader may read `doc`.
pub fn readable(reader: &Reader, doc: &Document) -> bool {
    doc.acl.iter().any(|a| reader.principals.iter().any(|p| p == a))
}

/// Whether `filters` admit `doc` (the index applies them itself).
fn admitted(filters: &Filters, doc: &Document) -> bool {
    let ok = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
    ok(&filters.sources, &doc.source)
        && ok(&filters.spaces, &doc.space)
        && ok(&filters.kinds, &doc.kind)
        && ok(&filters.authors, &doc.author)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A snippet of a live document: the first sentence or so with the query's
/// words marked.
fn snippet(body: &str, query: &str) -> String {
    let cut: String = body.chars().take(240).collect();
    let mut out = escape(&cut);
    let mut words: Vec<&str> = query.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 2).collect();
    words.sort_by_key(|w| std::cmp::Reverse(w.len()));
    words.dedup();
    for w in words {
        let w = escape(w);
        if let Some(i) = out.to_lowercase().find(&w.to_lowercase()).filter(|i| out.is_char_boundary(*i)) {
            let end = i + w.len();
            if out.is_char_boundary(end) {
                out = format!("{}<mark>{}</mark>{}", &out[..i], &out[i..end], &out[end..]);
            }
        }
    }
    out
}

fn hit(doc: &Document, query: &str) -> Hit {
    Hit {
        id: doc.id.clone(),
        title: doc.title.clone(),
        source: doc.source.clone(),
        url: doc.url.clone(),
        space: doc.space.clone(),
        kind: doc.kind.clone(),
        author: doc.author.clone(),
        updated: doc.updated,
        score: 0.0,
        snippet: snippet(&doc.body, query),
        duplicates: Vec::new(),
    }
}

/// Whether a search by `reader` with `filters` asks live source `l`: one
/// of the reader's tenant, admitted by the filters' sources.
pub fn asked(l: &Live, reader: &Reader, filters: &Filters) -> bool {
    l.tenant == reader.tenant && (filters.sources.is_empty() || filters.sources.iter().any(|s| s == l.source.name()))
}

/// Ask every live source the search [`asked`] for `want` hits,
/// concurrently, each by its own deadline.
pub async fn ask(
    live: &[Live],
    reader: &Reader,
    query: &str,
    filters: &Filters,
    want: usize,
) -> Vec<(SourceStatus, Vec<Hit>)> {
    let runs = live.iter().filter(|l| asked(l, reader, filters)).map(|l| async move {
        let started = tokio::time::Instant::now();
        let deadline = started + l.deadline;
        let answer = tokio::time::timeout_at(deadline, l.source.search(query, want, deadline)).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let name = l.source.name().to_owned();
        match answer {
            Ok(Ok(docs)) => {
                let hits: Vec<Hit> = docs
                    .iter()
                    .filter(|d| readable(reader, d) && admitted(filters, d))
                    .take(want)
                    .map(|d| hit(d, query))
                    .collect();
                let status =
                    SourceStatus { source: name, status: Status::Answered, hits: hits.len(), elapsed_ms, error: None };
                (status, hits)
            }
            Ok(Err(HttpError::Deadline)) | Err(_) => {
                let status = SourceStatus { source: name, status: Status::TimedOut, hits: 0, elapsed_ms, error: None };
                (status, Vec::new())
            }
            Ok(Err(e)) => {
                tracing::warn!(source = %name, error = %e, "live source failed");
                let status = SourceStatus {
                    source: name,
                    status: Status::Failed,
                    hits: 0,
                    elapsed_ms,
                    error: Some(e.to_string()),
                };
                (status, Vec::new())
            }
        }
    });
    futures::future::join_all(runs).await
}

/// Merge the index's results with live sources' hits: reciprocal rank
/// fusion over the lists, one hit per id, URL or near-duplicate text, the
/// page `offset..offset + limit`. Facets count live hits under their source.
pub fn merge(index: Results, live: Vec<Vec<Hit>>, offset: usize, limit: usize) -> Results {
    let mut all: HashMap<String, Hit> = HashMap::new();
    let mut lists = vec![index.hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>()];
    let mut facets = index.facets;
    let mut total = index.total;
    for h in index.hits {
        all.insert(h.id.clone(), h);
    }
    for hits in live {
        let mut list = Vec::with_capacity(hits.len());
        for h in hits {
            list.push(h.id.clone());
            if !all.contains_key(&h.id) {
                *facets.entry(h.source.clone()).or_default() += 1;
                total += 1;
                all.insert(h.id.clone(), h);
            }
        }
        lists.push(list);
    }
    let mut out: Vec<Hit> = Vec::new();
    let mut prints: Vec<u64> = Vec::new();
    for (id, score) in dedup::rrf(&lists) {
        let Some(mut h) = all.remove(&id) else { continue };
        let print = dedup::simhash(&format!("{} {}", h.title, h.snippet.replace("<mark>", "").replace("</mark>", "")));
        let twin = out
            .iter()
            .position(|o| !h.url.is_empty() && o.url == h.url)
            .or_else(|| prints.iter().position(|p| dedup::near_duplicate(*p, print)));
        if let Some(i) = twin {
            out[i].duplicates.push(h.id);
            total = total.saturating_sub(1);
            continue;
        }
        h.score = score as f32;
        prints.push(print);
        out.push(h);
    }
    let hits = out.into_iter().skip(offset).take(limit).collect();
    Results { hits, total, facets }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(id: &str, url: &str, title: &str) -> Hit {
        Hit {
            id: id.into(),
            title: title.into(),
            source: id.split(':').next().unwrap().into(),
            url: url.into(),
            space: String::new(),
            kind: "page".into(),
            author: String::new(),
            updated: None,
            score: 1.0,
            snippet: format!("all about {title} and more words that make it long enough"),
            duplicates: Vec::new(),
        }
    }

    #[test]
    fn merge_fuses_ranks_and_folds_duplicates() {
        let index = Results {
            hits: vec![h("kb:a", "u/a", "alpha"), h("kb:b", "u/b", "bravo")],
            total: 2,
            facets: [("kb".to_owned(), 2)].into(),
        };
        let live =
            vec![vec![h("jira:b", "u/b", "bravo copy"), h("jira:c", "u/c", "charlie"), h("kb:a", "u/a", "alpha")]];
        let r = merge(index, live, 0, 10);
        let ids: Vec<&str> = r.hits.iter().map(|h| h.id.as_str()).collect();
        // jira:b ranks first in its list, kb:b second in its: the better
        // ranked copy stays and the other folds into it (same URL).
        assert_eq!(ids, ["kb:a", "jira:b", "jira:c"]);
        assert_eq!(r.hits[1].duplicates, ["kb:b"], "same URL folds");
        assert_eq!(r.total, 3);
        assert_eq!(r.facets["jira"], 2);
        assert_eq!(merge(r.clone(), vec![], 1, 1).hits[0].id, "jira:b");
    }

    #[test]
    fn snippets_mark_words_and_escape() {
        assert_eq!(
            snippet("Deploy <b>the</b> 東京 cluster", "東京 cluster"),
            "Deploy &lt;b&gt;the&lt;/b&gt; <mark>東京</mark> <mark>cluster</mark>"
        );
    }
}
