//! The search index: tantivy on local disk (or in memory for tests).
//!
//! One index holds every tenant's documents; each document carries its
//! tenant and its readers (ACL), and [`Index::search`] and [`Index::get`]
//! take a [`Reader`] (tenant + the caller's principals), so there is no way
//! to query without both filters. A document with no readers is private:
//! nobody finds it.
//!
//! Text goes into two fields per part (title, headings, body): one with the
//! `en` analyzer, one with CJK bigrams ([`crate::tokenize`]); identifiers and
//! paths go into an `ident` field. Ranking is BM25 with field boosts
//! (title and path 3, headings 2, body 1).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, FacetCollector, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser, RangeQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Facet, FacetOptions, Field, INDEXED, IndexRecordOption, STORED, STRING,
    Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DateTime, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::dedup;
use crate::tokenize;

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// Most hits per page.
pub const MAX_LIMIT: usize = 100;
/// How much of a body a snippet is looked for in, in bytes.
const SNIPPET_SCAN_BYTES: usize = 32 * 1024;
/// Longest body indexed, in bytes (the rest is cut at a character boundary).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A document as connectors produce it and `get_document` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Document {
    /// Unique within the tenant: `<source>:<key in the source>`.
    pub id: String,
    /// The configured source's name.
    pub source: String,
    pub title: String,
    #[serde(default)]
    pub headings: Vec<String>,
    pub body: String,
    /// An item path or file path (`std::collections::HashMap`, `docs/a.md`).
    #[serde(default)]
    pub path: String,
    /// Space, project or repository.
    #[serde(default)]
    pub space: String,
    /// `page`, `issue`, `file`, `struct`, ...
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub author: String,
    /// Last change, seconds since the Unix epoch.
    #[serde(default)]
    pub updated: Option<i64>,
    #[serde(default)]
    pub url: String,
    /// Who may read it: `user:<subject>`, `role:<role>`, `group:<name>`, or
    /// `everyone` (every principal of the tenant). Empty: nobody.
    #[serde(default)]
    pub acl: Vec<String>,
}

/// Who is searching: the tenant and every principal name the caller
/// answers to (see [`Reader::for_principal`]).
#[derive(Debug, Clone)]
pub struct Reader {
    pub tenant: String,
    pub principals: Vec<String>,
}

impl Reader {
    /// `user:<subject>`, `role:<role>` for each role, `group:<g>` for each
    /// of the principal's groups, and `everyone`.
    pub fn for_principal(p: &plexus_core::Principal) -> Self {
        let mut principals = vec![format!("user:{}", p.subject), "everyone".to_owned()];
        principals.extend(p.roles.iter().map(|r| format!("role:{r}")));
        principals.extend(p.groups.iter().map(|g| format!("group:{g}")));
        Self { tenant: p.tenant.to_string(), principals }
    }
}

/// Filters of a search; empty means no filter.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Only these sources.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Only these spaces or projects.
    #[serde(default)]
    pub spaces: Vec<String>,
    /// Only these kinds (`page`, `issue`, `file`, ...).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only these authors.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Updated at or after this time (RFC 3339).
    pub updated_from: Option<String>,
    /// Updated before this time (RFC 3339).
    pub updated_to: Option<String>,
}

/// One hit.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Hit {
    pub id: String,
    pub title: String,
    pub source: String,
    pub url: String,
    pub space: String,
    pub kind: String,
    pub author: String,
    pub updated: Option<i64>,
    pub score: f32,
    /// The best passage, with matches in `<mark>…</mark>` (HTML-escaped).
    pub snippet: String,
    /// Ids of near-duplicates folded into this hit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<String>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Results {
    pub hits: Vec<Hit>,
    /// Documents matching (the caller may read all of them).
    pub total: usize,
    /// Matching documents per source.
    pub facets: BTreeMap<String, u64>,
}

/// Why a search was refused.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("query is {0} characters long; at most {MAX_QUERY_CHARS} are searched")]
    TooLong(usize),
    #[error("invalid filter {field}: {reason}")]
    Filter { field: &'static str, reason: String },
    #[error("index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// Cluster mode: the shared document store failed.
    #[error("shared document store: {0}")]
    Shared(String),
}

struct Fields {
    key: Field,
    tenant: Field,
    id: Field,
    source: Field,
    source_facet: Field,
    title: Field,
    title_cjk: Field,
    headings: Field,
    headings_cjk: Field,
    body: Field,
    body_cjk: Field,
    path: Field,
    space: Field,
    kind: Field,
    author: Field,
    url: Field,
    acl: Field,
    updated: Field,
    simhash: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = |analyzer: &str, stored: bool| {
        let o = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(analyzer)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        if stored { o.set_stored() } else { o }
    };
    let fields = Fields {
        key: b.add_text_field("key", STRING),
        tenant: b.add_text_field("tenant", STRING),
        id: b.add_text_field("id", STORED),
        source: b.add_text_field("source", STRING | STORED),
        source_facet: b.add_facet_field("source_facet", FacetOptions::default()),
        title: b.add_text_field("title", text(tokenize::EN, true)),
        title_cjk: b.add_text_field("title_cjk", text(tokenize::CJK, false)),
        headings: b.add_text_field("headings", text(tokenize::EN, true)),
        headings_cjk: b.add_text_field("headings_cjk", text(tokenize::CJK, false)),
        body: b.add_text_field("body", text(tokenize::EN, true)),
        body_cjk: b.add_text_field("body_cjk", text(tokenize::CJK, false)),
        path: b.add_text_field("path", text(tokenize::IDENT, true)),
        space: b.add_text_field("space", STRING | STORED),
        kind: b.add_text_field("kind", STRING | STORED),
        author: b.add_text_field("author", STRING | STORED),
        url: b.add_text_field("url", STORED),
        acl: b.add_text_field("acl", STRING | STORED),
        updated: b.add_date_field(
            "updated",
            DateOptions::from(INDEXED).set_stored().set_fast().set_precision(DateTimePrecision::Seconds),
        ),
        simhash: b.add_u64_field("simhash", STORED | FAST),
    };
    (b.build(), fields)
}

/// Clauses of a boolean query.
type Clauses = Vec<(Occur, Box<dyn Query>)>;

/// The key a document is stored under: tenant and id, so ids of two
/// tenants never collide.
fn key(tenant: &str, id: &str) -> String {
    format!("{tenant}\u{1f}{id}")
}

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The index, shared by the module's tools and the sync jobs.
pub struct Index {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    parser: QueryParser,
    /// The same fields and boosts, any word may match (questions).
    parser_any: QueryParser,
    /// Bumped on every commit: caches key on it.
    generation: AtomicU64,
    /// Cluster mode: the index's part in the cluster ([`crate::cluster`]).
    replication: std::sync::OnceLock<Arc<crate::cluster::Replication>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("generation", &self.generation()).finish_non_exhaustive()
    }
}

/// Writer memory for both indexing threads together.
const WRITER_BUDGET: usize = 256 * 1024 * 1024;

impl Index {
    /// Open the index in `dir`, creating it (and the directory) if needed.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| tantivy::TantivyError::SystemError(format!("{}: {e}", dir.display())))?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| tantivy::TantivyError::SystemError(e.to_string()))?;
        let index = tantivy::Index::open_or_create(directory, schema)?;
        Self::with(index, fields)
    }

    /// An index in memory (tests).
    pub fn in_memory() -> Result<Self, SearchError> {
        let (schema, fields) = schema();
        Self::with(tantivy::Index::create_in_ram(schema), fields)
    }

    fn with(index: tantivy::Index, fields: Fields) -> Result<Self, SearchError> {
        tokenize::register(index.tokenizers());
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        let writer = index.writer_with_num_threads(threads, WRITER_BUDGET)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let mut parser = QueryParser::for_index(
            &index,
            vec![
                fields.title,
                fields.title_cjk,
                fields.headings,
                fields.headings_cjk,
                fields.body,
                fields.body_cjk,
                fields.path,
            ],
        );
        let mut parser_any = parser.clone();
        parser.set_conjunction_by_default();
        for (f, boost) in [
            (fields.title, 3.0),
            (fields.title_cjk, 3.0),
            (fields.path, 3.0),
            (fields.headings, 2.0),
            (fields.headings_cjk, 2.0),
        ] {
            parser.set_field_boost(f, boost);
            parser_any.set_field_boost(f, boost);
        }
        Ok(Self {
            reader,
            writer: Mutex::new(writer),
            fields,
            parser,
            parser_any,
            generation: AtomicU64::new(0),
            replication: std::sync::OnceLock::new(),
        })
    }

    /// Changes on every commit.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Cluster mode: share this index's syncs through `r` (once).
    pub(crate) fn replicate(&self, r: Arc<crate::cluster::Replication>) -> Result<(), SearchError> {
        self.replication.set(r).map_err(|_| SearchError::Shared("the index already takes part in a cluster".into()))
    }

    /// Cluster mode: the index's part in the cluster.
    pub fn replication(&self) -> Option<&Arc<crate::cluster::Replication>> {
        self.replication.get()
    }

    /// Whether this node may run connector syncs: always on its own, only
    /// the leader of the syncs in a cluster.
    pub fn may_sync(&self) -> bool {
        self.replication.get().is_none_or(|r| r.leads())
    }

    /// Add or replace documents of `tenant` (visible after [`Index::commit`]).
    pub fn upsert(&self, tenant: &str, docs: &[Document]) -> Result<(), SearchError> {
        if let Some(r) = self.replication.get() {
            for d in docs {
                r.record(crate::cluster::Change::Upsert(tenant.to_owned(), Box::new(d.clone())));
            }
        }
        self.upsert_local(tenant, docs)
    }

    /// [`Self::upsert`] in this node's index only.
    pub(crate) fn upsert_local(&self, tenant: &str, docs: &[Document]) -> Result<(), SearchError> {
        let f = &self.fields;
        let writer = self.writer.lock();
        for d in docs {
            let k = key(tenant, &d.id);
            writer.delete_term(Term::from_field_text(f.key, &k));
            let body = cut(&d.body, MAX_BODY_BYTES);
            let mut doc = TantivyDocument::new();
            doc.add_text(f.key, &k);
            doc.add_text(f.tenant, tenant);
            doc.add_text(f.id, &d.id);
            doc.add_text(f.source, &d.source);
            doc.add_facet(f.source_facet, Facet::from_path([tenant, d.source.as_str()]));
            doc.add_text(f.title, &d.title);
            doc.add_text(f.title_cjk, &d.title);
            for h in &d.headings {
                doc.add_text(f.headings, h);
                doc.add_text(f.headings_cjk, h);
            }
            doc.add_text(f.body, body);
            doc.add_text(f.body_cjk, body);
            doc.add_text(f.path, &d.path);
            doc.add_text(f.space, &d.space);
            doc.add_text(f.kind, &d.kind);
            doc.add_text(f.author, &d.author);
            doc.add_text(f.url, &d.url);
            for a in &d.acl {
                doc.add_text(f.acl, a);
            }
            if let Some(t) = d.updated {
                doc.add_date(f.updated, DateTime::from_timestamp_secs(t));
            }
            doc.add_u64(f.simhash, dedup::simhash(body));
            writer.add_document(doc)?;
        }
        Ok(())
    }

    /// Remove documents of `tenant` by id (effective at the next commit).
    pub fn delete(&self, tenant: &str, ids: &[String]) {
        if let Some(r) = self.replication.get() {
            for id in ids {
                r.record(crate::cluster::Change::Delete(tenant.to_owned(), id.clone()));
            }
        }
        self.delete_local(tenant, ids);
    }

    /// [`Self::delete`] in this node's index only.
    pub(crate) fn delete_local(&self, tenant: &str, ids: &[String]) {
        let writer = self.writer.lock();
        for id in ids {
            writer.delete_term(Term::from_field_text(self.fields.key, &key(tenant, id)));
        }
    }

    /// Make every change since the last commit durable and searchable (in
    /// cluster mode, in the shared document store first).
    ///
    /// # Errors
    /// The index or, in cluster mode, the shared store failed.
    pub fn commit(&self) -> Result<(), SearchError> {
        if let Some(r) = self.replication.get() {
            r.flush()?;
        }
        self.commit_local()
    }

    /// [`Self::commit`] of this node's index only.
    pub(crate) fn commit_local(&self) -> Result<(), SearchError> {
        self.writer.lock().commit()?;
        self.reader.reload()?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Documents in the index for `tenant` (every reader).
    pub fn count(&self, tenant: &str) -> Result<usize, SearchError> {
        let q = TermQuery::new(Term::from_field_text(self.fields.tenant, tenant), IndexRecordOption::Basic);
        Ok(self.reader.searcher().search(&q, &Count)?)
    }

    /// Ids of `tenant`'s documents from `source` (for deletion detection).
    pub fn ids_of_source(&self, tenant: &str, source: &str) -> Result<Vec<String>, SearchError> {
        let f = &self.fields;
        let q = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(Term::from_field_text(f.tenant, tenant), IndexRecordOption::Basic))
                    as Box<dyn Query>,
            ),
            (Occur::Must, Box::new(TermQuery::new(Term::from_field_text(f.source, source), IndexRecordOption::Basic))),
        ]);
        let searcher = self.reader.searcher();
        let n = searcher.search(&q, &Count)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let top = searcher.search(&q, &TopDocs::with_limit(n).order_by_score())?;
        let mut ids = Vec::with_capacity(n);
        for (_, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            if let Some(id) = doc.get_first(f.id).and_then(|v| v.as_str()) {
                ids.push(id.to_owned());
            }
        }
        Ok(ids)
    }

    /// The tenant and ACL filters every read goes through.
    fn scope(&self, reader: &Reader) -> Clauses {
        let f = &self.fields;
        let filter = |q: Box<dyn Query>| -> Box<dyn Query> { Box::new(ConstScoreQuery::new(q, 0.0)) };
        vec![
            (
                Occur::Must,
                filter(Box::new(TermQuery::new(
                    Term::from_field_text(f.tenant, &reader.tenant),
                    IndexRecordOption::Basic,
                ))),
            ),
            (
                Occur::Must,
                filter(Box::new(TermSetQuery::new(reader.principals.iter().map(|p| Term::from_field_text(f.acl, p))))),
            ),
        ]
    }

    /// A document the reader may read, or `None` (also when it exists but
    /// the reader may not read it: the two look the same).
    pub fn get(&self, reader: &Reader, id: &str) -> Result<Option<Document>, SearchError> {
        let f = &self.fields;
        let mut clauses = self.scope(reader);
        clauses.push((
            Occur::Must,
            Box::new(TermQuery::new(Term::from_field_text(f.key, &key(&reader.tenant, id)), IndexRecordOption::Basic)),
        ));
        let searcher = self.reader.searcher();
        let top = searcher.search(&BooleanQuery::new(clauses), &TopDocs::with_limit(1).order_by_score())?;
        let Some((_, addr)) = top.first() else { return Ok(None) };
        let doc: TantivyDocument = searcher.doc(*addr)?;
        Ok(Some(self.document(&doc)))
    }

    fn document(&self, doc: &TantivyDocument) -> Document {
        let f = &self.fields;
        let s = |field: Field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let all = |field: Field| doc.get_all(field).filter_map(|v| v.as_str().map(str::to_owned)).collect::<Vec<_>>();
        Document {
            id: s(f.id),
            source: s(f.source),
            title: s(f.title),
            headings: all(f.headings),
            body: s(f.body),
            path: s(f.path),
            space: s(f.space),
            kind: s(f.kind),
            author: s(f.author),
            updated: doc.get_first(f.updated).and_then(|v| v.as_datetime()).map(|d| d.into_timestamp_secs()),
            url: s(f.url),
            acl: all(f.acl),
        }
    }

    fn filter_clauses(&self, filters: &Filters) -> Result<Clauses, SearchError> {
        let f = &self.fields;
        let mut out: Clauses = Vec::new();
        let any_of = |field: Field, values: &[String]| -> Box<dyn Query> {
            Box::new(ConstScoreQuery::new(
                Box::new(TermSetQuery::new(values.iter().map(|v| Term::from_field_text(field, v)))),
                0.0,
            ))
        };
        for (field, values) in [
            (f.source, &filters.sources),
            (f.space, &filters.spaces),
            (f.kind, &filters.kinds),
            (f.author, &filters.authors),
        ] {
            if !values.is_empty() {
                out.push((Occur::Must, any_of(field, values)));
            }
        }
        let time = |field: &'static str, v: &Option<String>| -> Result<Option<DateTime>, SearchError> {
            v.as_deref()
                .map(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .map(DateTime::from_utc)
                        .map_err(|e| SearchError::Filter {
                            field,
                            reason: format!("`{t}` is not an RFC 3339 time ({e})"),
                        })
                })
                .transpose()
        };
        let from = time("updated_from", &filters.updated_from)?;
        let to = time("updated_to", &filters.updated_to)?;
        if from.is_some() || to.is_some() {
            let lower = from.map_or(Bound::Unbounded, |d| Bound::Included(Term::from_field_date(f.updated, d)));
            let upper = to.map_or(Bound::Unbounded, |d| Bound::Excluded(Term::from_field_date(f.updated, d)));
            out.push((Occur::Must, Box::new(ConstScoreQuery::new(Box::new(RangeQuery::new(lower, upper)), 0.0))));
        }
        Ok(out)
    }

    /// Search what `reader` may read. The query uses tantivy's syntax
    /// (`"phrase"`, `title:word`, `+must -not`); anything it cannot parse is
    /// searched literally. Control characters are dropped.
    pub fn search(
        &self,
        reader: &Reader,
        query: &str,
        filters: &Filters,
        limit: usize,
        offset: usize,
    ) -> Result<Results, SearchError> {
        let chars = query.chars().count();
        if chars > MAX_QUERY_CHARS {
            return Err(SearchError::TooLong(chars));
        }
        let text: String = query.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let text = text.trim();
        let f = &self.fields;
        let mut clauses = self.scope(reader);
        clauses.extend(self.filter_clauses(filters)?);
        let parsed: Box<dyn Query> = if text.is_empty() {
            Box::new(AllQuery)
        } else {
            let (q, errors) = self.parser.parse_query_lenient(text);
            if errors.is_empty() { q } else { self.parser.parse_query_lenient(&literal(text)).0 }
        };
        clauses.push((Occur::Must, parsed.box_clone()));
        let q = BooleanQuery::new(clauses);
        let limit = limit.clamp(1, MAX_LIMIT);
        let searcher = self.reader.searcher();
        let mut facets = FacetCollector::for_field("source_facet");
        facets.add_facet(Facet::from_path([reader.tenant.as_str()]));
        // Fetch extra hits so folded near-duplicates do not shorten the page.
        let (top, total, counts) = searcher
            .search(&q, &(TopDocs::with_limit(limit * 2).and_offset(offset).order_by_score(), Count, facets))?;
        let body_snippets = SnippetGenerator::create(&searcher, &*parsed, f.body).ok();
        // The CJK field has terms only for queries with CJK text.
        let cjk_snippets = text
            .chars()
            .any(tokenize::is_cjk)
            .then(|| SnippetGenerator::create(&searcher, &*parsed, f.body_cjk).ok())
            .flatten();
        let mut hits: Vec<(Hit, u64)> = Vec::new();
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let d = self.document(&doc);
            let fingerprint = doc.get_first(f.simhash).and_then(|v| v.as_u64()).unwrap_or(0);
            if let Some((kept, _)) = hits.iter_mut().find(|(_, h)| dedup::near_duplicate(*h, fingerprint)) {
                kept.duplicates.push(d.id);
                continue;
            }
            if hits.len() == limit {
                continue;
            }
            // Snippets come from the start of long bodies: tokenizing whole
            // multi-megabyte pages for every hit dominated cold searches.
            let snippet = snippet(cut(&d.body, SNIPPET_SCAN_BYTES), body_snippets.as_ref(), cjk_snippets.as_ref());
            hits.push((
                Hit {
                    id: d.id,
                    title: d.title,
                    source: d.source,
                    url: d.url,
                    space: d.space,
                    kind: d.kind,
                    author: d.author,
                    updated: d.updated,
                    score,
                    snippet,
                    duplicates: Vec::new(),
                },
                fingerprint,
            ));
        }
        let facets = counts
            .get(&Facet::from_path([reader.tenant.as_str()]).to_path_string())
            .map(|(facet, n)| (facet.to_path().last().map(|s| (*s).to_owned()).unwrap_or_default(), n))
            .collect();
        Ok(Results { hits: hits.into_iter().map(|(h, _)| h).collect(), total, facets })
    }
}

/// A passage for question answering: the best part of a readable document.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Passage {
    pub id: String,
    pub title: String,
    pub url: String,
    /// Plain text, at most about 400 characters.
    pub text: String,
    #[serde(skip)]
    pub score: f32,
}

/// Most documents a quality assessment reads.
pub const MAX_ASSESSED: usize = 100_000;

impl Index {
    /// Every document `reader` may read (of `source`, if given), with its
    /// SimHash fingerprint; at most [`MAX_ASSESSED`].
    pub fn documents(&self, reader: &Reader, source: Option<&str>) -> Result<Vec<(Document, u64)>, SearchError> {
        let mut clauses = self.scope(reader);
        if let Some(s) = source {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(Term::from_field_text(self.fields.source, s), IndexRecordOption::Basic)),
            ));
        }
        clauses.push((Occur::Must, Box::new(AllQuery)));
        let q = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let n = searcher.search(&q, &Count)?.min(MAX_ASSESSED);
        if n == 0 {
            return Ok(Vec::new());
        }
        let top = searcher.search(&q, &TopDocs::with_limit(n).order_by_score())?;
        let mut out = Vec::with_capacity(n);
        for (_, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let fingerprint = doc.get_first(self.fields.simhash).and_then(|v| v.as_u64()).unwrap_or(0);
            out.push((self.document(&doc), fingerprint));
        }
        Ok(out)
    }
}

impl Passage {
    /// A whole document's leading text as a passage (summaries).
    pub fn from_document(d: Document) -> Self {
        let text = cut(&d.body, 1200).split_whitespace().collect::<Vec<_>>().join(" ");
        Self { id: d.id, title: d.title, url: d.url, text, score: 0.0 }
    }
}

impl Index {
    /// The `k` best passages for a natural-language `question` among the
    /// documents `reader` may read: any word may match (BM25 ranks), query
    /// syntax is ignored, near-duplicates are skipped.
    pub fn passages(&self, reader: &Reader, question: &str, k: usize) -> Result<Vec<Passage>, SearchError> {
        let chars = question.chars().count();
        if chars > MAX_QUERY_CHARS {
            return Err(SearchError::TooLong(chars));
        }
        // Content words and CJK bigrams, each its own term: a question is
        // not a phrase (a Japanese sentence would otherwise have to appear
        // verbatim), and any of its words may match.
        let text = crate::qa::terms(question).join(" ");
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let (parsed, _) = self.parser_any.parse_query_lenient(&literal(&text));
        let mut clauses = self.scope(reader);
        clauses.push((Occur::Must, parsed.box_clone()));
        let searcher = self.reader.searcher();
        let top =
            searcher.search(&BooleanQuery::new(clauses), &TopDocs::with_limit(k.clamp(1, 20) * 2).order_by_score())?;
        let mut body = SnippetGenerator::create(&searcher, &*parsed, self.fields.body).ok();
        let mut cjk = SnippetGenerator::create(&searcher, &*parsed, self.fields.body_cjk).ok();
        for g in [body.as_mut(), cjk.as_mut()].into_iter().flatten() {
            g.set_max_num_chars(400);
        }
        let mut out: Vec<(Passage, u64)> = Vec::new();
        for (score, addr) in top {
            if out.len() == k {
                break;
            }
            let doc: TantivyDocument = searcher.doc(addr)?;
            let fingerprint = doc.get_first(self.fields.simhash).and_then(|v| v.as_u64()).unwrap_or(0);
            if out.iter().any(|(_, f)| dedup::near_duplicate(*f, fingerprint)) {
                continue;
            }
            let d = self.document(&doc);
            let mut passage = String::new();
            for g in [body.as_ref(), cjk.as_ref()].into_iter().flatten() {
                let s = g.snippet(cut(&d.body, SNIPPET_SCAN_BYTES));
                if !s.highlighted().is_empty() {
                    passage = s.fragment().to_owned();
                    break;
                }
            }
            if passage.is_empty() {
                passage = cut(&d.body, 400).to_owned();
            }
            let passage = passage.split_whitespace().collect::<Vec<_>>().join(" ");
            out.push((Passage { id: d.id, title: d.title, url: d.url, text: passage, score }, fingerprint));
        }
        Ok(out.into_iter().map(|(p, _)| p).collect())
    }
}

/// The best passage of `body` for the query: from the `en` field's terms,
/// else the CJK field's, else the start of the body; matches in `<mark>`.
fn snippet(body: &str, en: Option<&SnippetGenerator>, cjk: Option<&SnippetGenerator>) -> String {
    for generator in [en, cjk].into_iter().flatten() {
        let mut s = generator.snippet(body);
        if !s.highlighted().is_empty() {
            s.set_snippet_prefix_postfix("<mark>", "</mark>");
            return s.to_html();
        }
    }
    let start = cut(body, 200);
    html_escape(start)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` with every query-syntax character neutralized: searched as words.
fn literal(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_alphanumeric() || c == '_' || c.is_whitespace() || tokenize::is_cjk(c) { c } else { ' ' })
        .collect()
}
