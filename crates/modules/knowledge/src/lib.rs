//! The `knowledge` module: enterprise knowledge search over many sources,
//! with per-document permissions.
//!
//! - [`index`]: the tantivy index (BM25 with field boosts, CJK bigrams,
//!   filters, snippets, facet counts per source, near-duplicate folding),
//!   always read through a [`index::Reader`] (tenant + principals).
//! - [`tokenize`]: the analyzers (English-like, CJK bigrams, identifiers).
//! - [`dedup`]: SimHash near-duplicates and reciprocal rank fusion.
//!
//! Tools: `search_knowledge(query, filters, limit, offset)` and
//! `get_document(id)`. A document the caller may not read is reported
//! exactly like one that does not exist.

pub mod cache;
pub mod cluster;
pub mod connector;
pub mod dedup;
pub mod demo;
pub mod extract;
pub mod federated;
pub mod fs;
pub mod git;
pub mod index;
pub mod qa;
pub mod quality;
pub mod saas;
pub mod sources;
pub mod sql;
pub mod tokenize;

use std::sync::Arc;

use plexus_core::{CallContext, Module, ToolDef, ToolError, ToolOutput, ToolSpec, Toolbox};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use index::{Document, Filters, Hit, Index, Reader, Results, SearchError};

/// The module's name.
pub const NAME: &str = "knowledge";

/// Documents as resources: `kb://documents/<id>`, with `%` and `/` of the
/// id percent-encoded (a template variable is one path segment).
pub const DOCUMENT_TEMPLATE: &str = "kb://documents/{id}";
const DOCUMENT_PREFIX: &str = "kb://documents/";

/// The resource URI of a document id.
pub fn document_uri(id: &str) -> String {
    format!("{DOCUMENT_PREFIX}{}", id.replace('%', "%25").replace('/', "%2F"))
}

/// The document id a resource URI names.
pub fn document_id(uri: &str) -> Option<String> {
    let encoded = uri.strip_prefix(DOCUMENT_PREFIX)?;
    if encoded.is_empty() || encoded.contains('/') {
        return None;
    }
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3) {
            Some("2F" | "2f") => out.push('/'),
            Some("25") => out.push('%'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    /// What to look for, in any language. Words must all match; `"a phrase"`,
    /// `title:word`, `-exclude` work; anything else is searched literally.
    query: String,
    /// Narrow the search (sources, spaces, kinds, authors, updated range).
    #[serde(default)]
    filters: Filters,
    /// Hits per page (1 to 100, default 10).
    limit: Option<u32>,
    /// Hits to skip (for the next page).
    offset: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetArgs {
    /// A document id from a search hit.
    id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AskArgs {
    /// The question, in any language.
    question: String,
    /// Anything the answer should take into account (not searched).
    context: Option<String>,
    /// Passages to ground the answer in (1 to 10, default 5).
    passages: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SummaryArgs {
    /// Documents to summarize (ids from search hits), or
    #[serde(default)]
    ids: Vec<String>,
    /// a query whose best documents to summarize.
    query: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QualityArgs {
    /// Only this source.
    source: Option<String>,
    /// Worst documents and clusters reported (1 to 100, default 10).
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SyncArgs {
    /// Only this source (default: every source of your tenant).
    source: Option<String>,
    /// Re-read everything instead of only what changed since the last sync.
    #[serde(default)]
    full: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
struct SyncOutput {
    outcomes: Vec<sources::SourceOutcome>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct SearchOutput {
    #[serde(flatten)]
    results: Results,
    /// Served from the query cache (the index has not changed since).
    cached: bool,
    /// How each live source took part (sources searched at query time).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sources: Vec<federated::SourceStatus>,
}

/// The module. Cheap to clone the `Arc` it lives in.
pub struct Knowledge {
    index: Arc<Index>,
    tools: Toolbox,
}

impl std::fmt::Debug for Knowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Knowledge").field("index", &self.index).finish_non_exhaustive()
    }
}

fn search_error(e: SearchError) -> ToolError {
    match e {
        SearchError::TooLong(_) | SearchError::Filter { .. } => ToolError::InvalidArguments(e.to_string()),
        SearchError::Index(_) | SearchError::Shared(_) => ToolError::unavailable(format!("knowledge index: {e}")),
    }
}

/// Run blocking index work off the async workers.
/// Index work running at once: one per core. More only adds thread
/// switching on CPU-bound searches (64 clients on 2 cores collapsed to a
/// quarter of the throughput with a p99 over a second); the rest wait here,
/// asynchronously, in arrival order.
fn index_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get())))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SearchError> + Send + 'static,
) -> Result<T, ToolError> {
    let _slot = index_slots().acquire().await.map_err(|e| ToolError::internal(format!("search slots: {e}")))?;
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(search_error),
        Err(e) => Err(ToolError::internal(format!("search task failed: {e}"))),
    }
}

impl Knowledge {
    /// The module over `index`, caching results in `cache`; with a
    /// `syncer`, also the `sync_knowledge` tool.
    pub fn new(index: Arc<Index>, syncer: Option<Arc<sources::Syncer>>, cache: Arc<cache::QueryCache>) -> Self {
        let search_index = Arc::clone(&index);
        let get_index = Arc::clone(&index);
        let live: Arc<[federated::Live]> = syncer.as_ref().map(|s| s.live().to_vec()).unwrap_or_default().into();
        let tools = Toolbox::new(NAME)
            .typed(
                ToolDef::new(
                    "search_knowledge",
                    "Search the organization's knowledge (documents, pages, issues, files) you may read; \
                     hits with highlighted snippets and counts per source",
                )
                .title("Search knowledge")
                .read_only()
                .idempotent(),
                move |cx: CallContext, a: SearchArgs| {
                    let index = Arc::clone(&search_index);
                    let cache = Arc::clone(&cache);
                    let live = Arc::clone(&live);
                    async move { search(index, cache, live, &cx, a).await }
                },
            )
            .typed(
                ToolDef::new("get_document", "Read one document by id (from a search hit)")
                    .title("Get document")
                    .read_only()
                    .idempotent(),
                move |cx: CallContext, a: GetArgs| {
                    let index = Arc::clone(&get_index);
                    async move {
                        let reader = Reader::for_principal(&cx.principal);
                        let id = a.id.clone();
                        match blocking(move || index.get(&reader, &id)).await? {
                            Some(doc) => Ok(doc),
                            // Missing and not readable look the same.
                            None => Err(ToolError::Failed(format!("document {} not found", a.id))),
                        }
                    }
                },
            );
        let ask_index = Arc::clone(&index);
        let summary_index = Arc::clone(&index);
        let tools = tools
            .typed(
                ToolDef::new(
                    "ask_question",
                    "Answer a question from the documents you may read, with numbered citations and a confidence; \
                     written by your own model when you support sampling, else extracted from the best passages",
                )
                .title("Ask a question")
                .read_only(),
                move |cx: CallContext, a: AskArgs| {
                    let index = Arc::clone(&ask_index);
                    async move {
                        let reader = Reader::for_principal(&cx.principal);
                        let k = a.passages.unwrap_or(5).clamp(1, 10) as usize;
                        let question = a.question.clone();
                        let passages = blocking(move || index.passages(&reader, &question, k)).await?;
                        qa::answer(&cx, &a.question, a.context.as_deref(), passages).await
                    }
                },
            )
            .typed(
                ToolDef::new(
                    "create_summary",
                    "Summarize documents (by id) or the best documents for a query, with numbered citations",
                )
                .title("Summarize documents")
                .read_only(),
                move |cx: CallContext, a: SummaryArgs| {
                    let index = Arc::clone(&summary_index);
                    async move {
                        let reader = Reader::for_principal(&cx.principal);
                        let (passages, topic) = match (a.ids.is_empty(), a.query) {
                            (false, None) if a.ids.len() <= 20 => {
                                let ids = a.ids.clone();
                                let docs = blocking(move || {
                                    ids.iter().map(|id| index.get(&reader, id)).collect::<Result<Vec<_>, _>>()
                                })
                                .await?;
                                if let Some(missing) = a.ids.iter().zip(&docs).find(|(_, d)| d.is_none()) {
                                    return Err(ToolError::Failed(format!("document {} not found", missing.0)));
                                }
                                (docs.into_iter().flatten().map(index::Passage::from_document).collect(), String::new())
                            }
                            (true, Some(q)) => {
                                let query = q.clone();
                                (
                                    blocking(move || index.passages(&reader, &query, 5)).await?,
                                    format!(" with regard to: {q}"),
                                )
                            }
                            (false, None) => return Err(ToolError::InvalidArguments("at most 20 ids".into())),
                            _ => return Err(ToolError::InvalidArguments("give either ids or query".into())),
                        };
                        qa::summarize(&cx, &topic, passages).await
                    }
                },
            );
        let quality_index = Arc::clone(&index);
        let tools = tools.typed(
            ToolDef::new(
                "assess_knowledge_quality",
                "Score the documents you may read (length, metadata, recency, duplication): the worst documents, \
                 near-duplicate clusters and repeated titles",
            )
            .title("Assess knowledge quality")
            .read_only()
            .idempotent(),
            move |cx: CallContext, a: QualityArgs| {
                let index = Arc::clone(&quality_index);
                async move {
                    let reader = Reader::for_principal(&cx.principal);
                    let limit = a.limit.unwrap_or(10).clamp(1, 100) as usize;
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    blocking(move || {
                        let docs = index.documents(&reader, a.source.as_deref())?;
                        Ok(quality::assess(&docs, now, limit))
                    })
                    .await
                }
            },
        );
        let tools = match syncer {
            Some(syncer) => tools
                .typed(
                    ToolDef::new(
                        "list_knowledge_sources",
                        "Your tenant's knowledge sources: kind, whether they are searched live, and when and how each \
                         last synced",
                    )
                    .title("Knowledge sources")
                    .read_only()
                    .idempotent(),
                    {
                        let syncer = Arc::clone(&syncer);
                        move |cx: CallContext, _a: NoArgs| {
                            let syncer = Arc::clone(&syncer);
                            async move { Ok(SourceList { sources: syncer.status(cx.tenant().as_str()) }) }
                        }
                    },
                )
                .typed(
                ToolDef::new(
                    "sync_knowledge",
                    "Bring the index up to date with your tenant's sources (only what changed, or everything with full)",
                )
                .title("Sync knowledge sources")
                .idempotent(),
                move |cx: CallContext, a: SyncArgs| {
                    let syncer = Arc::clone(&syncer);
                    async move { sync_tool(cx, syncer, a).await }
                },
            ),
            None => tools,
        };
        Self { index, tools }
    }

    /// The index the module searches.
    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }
}

/// The module over `index`, ready to register; cache hits and misses are
/// counted in `telemetry` (shown on `/metrics`) when given.
pub fn module(
    index: Arc<Index>,
    syncer: Option<Arc<sources::Syncer>>,
    telemetry: Option<&plexus_core::telemetry::Telemetry>,
) -> Arc<dyn Module> {
    let (hits, misses) = match telemetry {
        Some(t) => (
            t.counter("plexus_knowledge_cache_hits_total", "Knowledge searches answered from the query cache."),
            t.counter("plexus_knowledge_cache_misses_total", "Knowledge searches that ran on the index."),
        ),
        None => Default::default(),
    };
    Arc::new(Knowledge::new(index, syncer, Arc::new(cache::QueryCache::new(hits, misses))))
}

/// `search_knowledge`: the index (through the query cache) and, when the
/// caller's tenant has live sources, those too, merged.
async fn search(
    index: Arc<Index>,
    cache: Arc<cache::QueryCache>,
    live: Arc<[federated::Live]>,
    cx: &CallContext,
    a: SearchArgs,
) -> Result<SearchOutput, ToolError> {
    let reader = Reader::for_principal(&cx.principal);
    let limit = a.limit.unwrap_or(10) as usize;
    let offset = a.offset.unwrap_or(0) as usize;
    let asked = live.iter().any(|l| federated::asked(l, &reader, &a.filters));
    if !asked {
        let generation = index.generation();
        let key = cache::QueryCache::key(generation, &reader, &a.query, &a.filters, limit, offset);
        if let Some(hit) = cache.get(generation, &key) {
            return Ok(SearchOutput { results: (*hit).clone(), cached: true, sources: Vec::new() });
        }
        let results = blocking(move || index.search(&reader, &a.query, &a.filters, limit, offset)).await?;
        cache.insert(key, Arc::new(results.clone()));
        return Ok(SearchOutput { results, cached: false, sources: Vec::new() });
    }
    // Live sources answer differently each time: not cached. The index is
    // asked for the whole first `offset + limit` and so is each live source,
    // so that fusion ranks the page from the same candidates.
    let want = (offset + limit).min(index::MAX_LIMIT);
    let (q, f, r) = (a.query.clone(), a.filters.clone(), reader.clone());
    let local = blocking(move || index.search(&r, &q, &f, want, 0));
    let remote = federated::ask(&live, &reader, &a.query, &a.filters, want);
    let (local, remote) = tokio::join!(local, remote);
    let local = local?;
    let (sources, hits): (Vec<_>, Vec<_>) = remote.into_iter().unzip();
    Ok(SearchOutput { results: federated::merge(local, hits, offset, limit), cached: false, sources })
}

/// `sync_knowledge`: the caller's tenant's sources, with MCP progress.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Debug, serde::Serialize, JsonSchema)]
struct SourceList {
    sources: Vec<sources::SourceStatus>,
}

async fn sync_tool(cx: CallContext, syncer: Arc<sources::Syncer>, a: SyncArgs) -> Result<SyncOutput, ToolError> {
    let tenant = cx.tenant().to_string();
    if !syncer.index().may_sync() {
        let leader = syncer.index().replication().and_then(|r| r.leader()).unwrap_or_else(|| "another node".into());
        return Err(ToolError::unavailable(format!(
            "knowledge syncs run on one node of the cluster at a time ({leader} now); this node follows its documents, so ask that node, or wait for its next sync"
        )));
    }
    if let Some(name) = &a.source
        && !syncer.sources_of(&tenant).iter().any(|s| &s.name == name)
    {
        return Err(ToolError::InvalidArguments(format!("no knowledge source named `{name}` in your tenant")));
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, usize, usize)>();
    let job = tokio::task::spawn_blocking(move || {
        syncer.sync(Some(&tenant), a.source.as_deref(), a.full, &|source, done, total| {
            let _ = tx.send((source.to_owned(), done, total));
        })
    });
    tokio::pin!(job);
    let outcomes = loop {
        tokio::select! {
            Some((source, done, total)) = rx.recv() => {
                let message = format!("{source}: {done}/{total} files");
                cx.progress(done as f64, Some(total as f64), Some(&message)).await;
            }
            result = &mut job => break result.map_err(|e| ToolError::internal(format!("sync task failed: {e}")))?,
        }
    };
    Ok(SyncOutput { outcomes })
}

#[async_trait::async_trait]
impl Module for Knowledge {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tools(&self) -> Vec<ToolSpec> {
        self.tools.specs()
    }

    fn resource_templates(&self) -> Vec<plexus_core::ResourceTemplateSpec> {
        vec![
            plexus_core::ResourceTemplateSpec::new(DOCUMENT_TEMPLATE, "document")
                .description("A knowledge document you may read: title, link and text")
                .mime_type("text/markdown"),
        ]
    }

    fn prompts(&self) -> Vec<plexus_core::PromptSpec> {
        vec![
            plexus_core::PromptSpec::new("research_question")
                .description("Research a question in the organization's knowledge and answer it with citations")
                .argument("question", "What to find out", true),
        ]
    }

    async fn call(&self, cx: &CallContext, tool: &str, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        self.tools.call(cx, tool, args).await
    }

    async fn read(&self, cx: &CallContext, uri: &str) -> Result<plexus_core::ResourceContents, ToolError> {
        let id = document_id(uri).ok_or_else(|| ToolError::unknown_resource(uri))?;
        let reader = Reader::for_principal(&cx.principal);
        let index = Arc::clone(&self.index);
        let found = blocking(move || index.get(&reader, &id)).await?;
        // Unreadable and missing look the same.
        let d = found.ok_or_else(|| ToolError::unknown_resource(uri))?;
        let mut text = format!("# {}\n\n", d.title);
        if !d.url.is_empty() {
            text.push_str(&format!("<{}>\n\n", d.url));
        }
        text.push_str(&d.body);
        Ok(plexus_core::ResourceContents::text(uri, Some("text/markdown"), text))
    }

    async fn prompt(
        &self,
        _cx: &CallContext,
        name: &str,
        args: &std::collections::BTreeMap<String, String>,
    ) -> Result<plexus_core::PromptResult, ToolError> {
        if name != "research_question" {
            return Err(ToolError::unknown_prompt(name));
        }
        let question = args
            .get("question")
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| ToolError::InvalidArguments("missing required argument `question`".into()))?;
        let text = format!(
            "Research this question in the organization's knowledge: {question}\n\n\
             1. Call search_knowledge with a few short queries (try the question's key terms in each language \
             the documents may use).\n\
             2. Read the most relevant hits with get_document.\n\
             3. Call ask_question to get a grounded answer, or answer yourself from what you read.\n\
             Cite every statement with the document title and link; say plainly what the documents do not cover."
        );
        Ok(plexus_core::PromptResult {
            description: Some("Research a question with citations".into()),
            messages: vec![plexus_core::PromptMessage::user(plexus_core::Content::text(text))],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_uris_round_trip() {
        for id in ["handbook:guide/deploy.md", "a%b/c", "決済:手順.md", "plain"] {
            let uri = document_uri(id);
            assert!(!uri[DOCUMENT_PREFIX.len()..].contains('/'), "{uri}");
            assert_eq!(document_id(&uri).as_deref(), Some(id));
        }
        assert_eq!(document_id("kb://documents/"), None);
        assert_eq!(document_id("kb://documents/a%zz"), None);
        assert_eq!(document_id("kb://other/x"), None);
    }
}
