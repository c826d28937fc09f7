//! Data quality: a score per document, near-duplicate clusters and
//! normalized titles, over the documents a reader may read.
//!
//! The score (0 to 1) weighs content length (0.35), metadata completeness
//! (title, author, update time, link: 0.25), recency (0.2: full within a
//! year, none after five, half when unknown) and duplication (0.2: none when
//! the document has a near-duplicate). Each shortfall is named in `issues`.
//! Clusters come from SimHash fingerprints: two documents at most 3 bits
//! apart agree on at least one of four 16-bit bands (pigeonhole), so only
//! documents sharing a band are compared.

use std::collections::HashMap;

use serde::Serialize;

use crate::dedup;
use crate::index::Document;

/// One document's quality.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DocQuality {
    pub id: String,
    pub title: String,
    /// The title lowercased, width-folded, with whitespace collapsed and
    /// surrounding punctuation removed: equal titles compare equal.
    pub normalized_title: String,
    pub source: String,
    pub score: f64,
    pub issues: Vec<String>,
}

/// The report `assess_knowledge_quality` returns.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct QualityReport {
    pub documents: usize,
    pub average_score: f64,
    /// The lowest-scoring documents, worst first.
    pub worst: Vec<DocQuality>,
    /// Groups of near-duplicate documents (ids), largest first.
    pub duplicate_clusters: Vec<Vec<String>>,
    /// Titles shared by more than one document (normalized), with their ids.
    pub duplicate_titles: Vec<(String, Vec<String>)>,
}

/// Lowercased, full-width ASCII folded, whitespace collapsed, surrounding
/// punctuation trimmed.
pub fn normalize_title(title: &str) -> String {
    let folded: String = title
        .chars()
        .map(|c| match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            _ => c,
        })
        .flat_map(char::to_lowercase)
        .collect();
    let words: Vec<&str> = folded.split_whitespace().collect();
    words.join(" ").trim_matches(|c: char| !c.is_alphanumeric()).to_owned()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Near-duplicate clusters among `(id, fingerprint)` pairs.
pub fn clusters(docs: &[(String, u64)]) -> Vec<Vec<String>> {
    let n = docs.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    for band in 0..4 {
        let mut buckets: HashMap<u16, Vec<usize>> = HashMap::new();
        for (i, (_, f)) in docs.iter().enumerate() {
            if *f != 0 {
                buckets.entry((f >> (band * 16)) as u16).or_default().push(i);
            }
        }
        for members in buckets.values().filter(|m| m.len() > 1) {
            for (a_pos, &a) in members.iter().enumerate() {
                for &b in &members[a_pos + 1..] {
                    if dedup::near_duplicate(docs[a].1, docs[b].1) {
                        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
                        if ra != rb {
                            parent[ra] = rb;
                        }
                    }
                }
            }
        }
    }
    let mut groups: HashMap<usize, Vec<String>> = HashMap::new();
    for (i, (id, _)) in docs.iter().enumerate() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(id.clone());
    }
    let mut out: Vec<Vec<String>> = groups.into_values().filter(|g| g.len() > 1).collect();
    for g in &mut out {
        g.sort();
    }
    out.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    out
}

/// Assess `docs` (with their fingerprints) at time `now` (Unix seconds);
/// `limit` worst documents and clusters are reported.
pub fn assess(docs: &[(Document, u64)], now: i64, limit: usize) -> QualityReport {
    let fingerprints: Vec<(String, u64)> = docs.iter().map(|(d, f)| (d.id.clone(), *f)).collect();
    let clusters = clusters(&fingerprints);
    let mut duplicate_of: HashMap<&str, &str> = HashMap::new();
    for c in &clusters {
        for id in c {
            let other = c.iter().find(|o| *o != id).map(String::as_str).unwrap_or_default();
            duplicate_of.insert(id.as_str(), other);
        }
    }
    let mut scored: Vec<DocQuality> = docs
        .iter()
        .map(|(d, _)| {
            let mut issues = Vec::new();
            let chars = d.body.chars().count();
            let length = (chars as f64 / 2000.0).min(1.0);
            if chars < 200 {
                issues.push(format!("short ({chars} characters)"));
            }
            let checks = [
                (!d.title.trim().is_empty() && d.title != d.path, "no real title"),
                (!d.author.is_empty(), "no author"),
                (d.updated.is_some(), "no update time"),
                (!d.url.is_empty(), "no link"),
            ];
            let meta = checks.iter().filter(|(ok, _)| *ok).count() as f64 / checks.len() as f64;
            issues.extend(checks.iter().filter(|(ok, _)| !ok).map(|(_, what)| (*what).to_owned()));
            let recency = match d.updated {
                None => 0.5,
                Some(t) => {
                    let years = (now - t).max(0) as f64 / (365.25 * 86_400.0);
                    if years > 1.0 {
                        issues.push(format!("not updated for {years:.1} years"));
                    }
                    (1.0 - (years - 1.0).max(0.0) / 4.0).clamp(0.0, 1.0)
                }
            };
            let duplication = match duplicate_of.get(d.id.as_str()) {
                Some(other) => {
                    issues.push(format!("near-duplicate of {other}"));
                    0.0
                }
                None => 1.0,
            };
            let score = round2(0.35 * length + 0.25 * meta + 0.2 * recency + 0.2 * duplication);
            DocQuality {
                id: d.id.clone(),
                title: d.title.clone(),
                normalized_title: normalize_title(&d.title),
                source: d.source.clone(),
                score,
                issues,
            }
        })
        .collect();
    let average_score =
        if scored.is_empty() { 0.0 } else { round2(scored.iter().map(|q| q.score).sum::<f64>() / scored.len() as f64) };
    let mut by_title: HashMap<String, Vec<String>> = HashMap::new();
    for q in &scored {
        if !q.normalized_title.is_empty() {
            by_title.entry(q.normalized_title.clone()).or_default().push(q.id.clone());
        }
    }
    let mut duplicate_titles: Vec<(String, Vec<String>)> = by_title
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(t, mut ids)| {
            ids.sort();
            (t, ids)
        })
        .collect();
    duplicate_titles.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    duplicate_titles.truncate(limit);
    scored.sort_by(|a, b| a.score.total_cmp(&b.score).then(a.id.cmp(&b.id)));
    scored.truncate(limit);
    let mut duplicate_clusters = clusters;
    duplicate_clusters.truncate(limit);
    QualityReport { documents: docs.len(), average_score, worst: scored, duplicate_clusters, duplicate_titles }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, title: &str, body: &str, updated: Option<i64>) -> (Document, u64) {
        let d = Document {
            id: id.into(),
            source: "s".into(),
            title: title.into(),
            headings: vec![],
            body: body.into(),
            path: String::new(),
            space: String::new(),
            kind: String::new(),
            author: "a".into(),
            updated,
            url: "https://x".into(),
            acl: vec![],
        };
        let f = dedup::simhash(body);
        (d, f)
    }

    #[test]
    fn scores_issues_clusters_and_titles() {
        let now = 1_800_000_000;
        let long = "Payments are settled nightly through the clearing house, and every settlement is reconciled \
                    against the ledger before the books close; differences are escalated to the finance team. "
            .repeat(12);
        let docs = [
            doc("good", "Settlement process", &long, Some(now - 86_400)),
            doc("copy", "ＳＥＴＴＬＥＭＥＮＴ  process!", &long, Some(now - 86_400)),
            doc("stub", "", "TODO", None),
            doc(
                "old",
                "Old policy",
                &"Travel must be booked through the agency portal; hotel costs above the city cap need approval. "
                    .repeat(6),
                Some(now - 6 * 365 * 86_400),
            ),
        ];
        let r = assess(&docs, now, 10);
        assert_eq!(r.documents, 4);
        assert_eq!(r.duplicate_clusters, [vec!["copy".to_owned(), "good".to_owned()]]);
        assert_eq!(r.duplicate_titles, [("settlement process".to_owned(), vec!["copy".to_owned(), "good".to_owned()])]);
        assert_eq!(r.worst[0].id, "stub");
        assert!(r.worst[0].issues.contains(&"short (4 characters)".to_owned()));
        assert!(r.worst[0].issues.contains(&"no real title".to_owned()));
        let old = r.worst.iter().find(|q| q.id == "old").unwrap();
        assert!(old.issues.iter().any(|i| i.starts_with("not updated for 6.0 years")), "{:?}", old.issues);
        let good = r.worst.iter().find(|q| q.id == "good").unwrap();
        assert_eq!(good.score, 0.8, "everything but uniqueness");
        assert!(good.issues == ["near-duplicate of copy"], "{:?}", good.issues);
        assert_eq!(normalize_title("  Ｈｅｌｌｏ　World!! "), "hello world");
    }
}
