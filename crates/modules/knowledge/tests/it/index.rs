//! Search, permissions and tenancy through `Index`.

use plexus_knowledge::{Document, Filters, Index, Reader};

fn doc(id: &str, source: &str, title: &str, body: &str, acl: &[&str]) -> Document {
    Document {
        id: id.into(),
        source: source.into(),
        title: title.into(),
        headings: vec![],
        body: body.into(),
        path: String::new(),
        space: "eng".into(),
        kind: "page".into(),
        author: "yamada".into(),
        updated: Some(1_700_000_000),
        url: format!("https://example.com/{id}"),
        acl: acl.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn reader(tenant: &str, principals: &[&str]) -> Reader {
    Reader { tenant: tenant.into(), principals: principals.iter().map(|s| (*s).to_owned()).collect() }
}

fn ids(r: &plexus_knowledge::Results) -> Vec<&str> {
    r.hits.iter().map(|h| h.id.as_str()).collect()
}

fn corpus() -> Index {
    let index = Index::in_memory().unwrap();
    index
        .upsert(
            "acme",
            &[
                doc(
                    "wiki:1",
                    "wiki",
                    "Deploying the payment service",
                    "Run the deploy pipeline, then check the payment dashboards.",
                    &["everyone"],
                ),
                doc(
                    "wiki:2",
                    "wiki",
                    "決済サービスのデプロイ手順",
                    "東京リージョンへのデプロイは承認が必要です。payment チームに連絡してください。",
                    &["everyone"],
                ),
                doc(
                    "jira:7",
                    "jira",
                    "Payment outage postmortem",
                    "Root cause: an expired certificate on the payment gateway.",
                    &["group:sre"],
                ),
                doc("hr:1", "hr", "Salary bands 2026", "Confidential salary bands for every level.", &["role:hr"]),
                doc("hr:2", "hr", "Unknown permissions", "A payment memo whose readers are unknown.", &[]),
            ],
        )
        .unwrap();
    index
        .upsert("globex", &[doc("wiki:1", "wiki", "Globex payment handbook", "Globex pays in yen.", &["everyone"])])
        .unwrap();
    index.commit().unwrap();
    index
}

#[test]
fn english_and_japanese_queries_find_their_documents() {
    let index = corpus();
    let r = reader("acme", &["everyone", "user:sato"]);
    let found = index.search(&r, "deploy payment", &Filters::default(), 10, 0).unwrap();
    assert_eq!(ids(&found), ["wiki:1"], "all words must match");
    let found = index.search(&r, "デプロイ", &Filters::default(), 10, 0).unwrap();
    assert_eq!(ids(&found), ["wiki:2"]);
    let found = index.search(&r, "東京リージョン", &Filters::default(), 10, 0).unwrap();
    assert_eq!(ids(&found), ["wiki:2"]);
    assert!(found.hits[0].snippet.starts_with("<mark>東京リージョン</mark>へのデプロイ"), "{}", found.hits[0].snippet);
    // a substring that is not in the text does not match by its bigrams alone
    assert!(index.search(&r, "京リ東", &Filters::default(), 10, 0).unwrap().hits.is_empty());
    // mixed-language: the English word inside the Japanese page
    let found = index.search(&r, "payment チーム", &Filters::default(), 10, 0).unwrap();
    assert_eq!(ids(&found), ["wiki:2"]);
}

#[test]
fn permissions_trim_hits_totals_and_facets() {
    let index = corpus();
    let everyone = reader("acme", &["everyone", "user:sato"]);
    let sre = reader("acme", &["everyone", "user:suzuki", "group:sre"]);
    let plain = index.search(&everyone, "payment", &Filters::default(), 10, 0).unwrap();
    assert_eq!(plain.total, 2);
    assert!(!ids(&plain).contains(&"jira:7") && !ids(&plain).contains(&"hr:2"));
    assert_eq!(plain.facets.get("wiki"), Some(&2));
    assert_eq!(plain.facets.get("jira"), None, "facets count only readable documents");
    let with_group = index.search(&sre, "payment", &Filters::default(), 10, 0).unwrap();
    assert_eq!(with_group.total, 3);
    assert_eq!(with_group.facets.get("jira"), Some(&1));
    // a document without readers is private to everyone
    let nobody = reader("acme", &["everyone", "role:hr", "group:sre", "role:admin"]);
    let all = index.search(&nobody, "", &Filters::default(), 100, 0).unwrap();
    assert!(!ids(&all).contains(&"hr:2"));
    assert_eq!(all.total, 4);
    // get_document: unreadable and missing look the same
    assert!(index.get(&everyone, "wiki:1").unwrap().is_some());
    assert!(index.get(&everyone, "hr:1").unwrap().is_none());
    assert!(index.get(&everyone, "nope").unwrap().is_none());
    assert_eq!(index.get(&nobody, "hr:1").unwrap().unwrap().title, "Salary bands 2026");
}

#[test]
fn tenants_never_see_each_other() {
    let index = corpus();
    let globex = reader("globex", &["everyone"]);
    let found = index.search(&globex, "payment", &Filters::default(), 10, 0).unwrap();
    assert_eq!(ids(&found), ["wiki:1"]);
    assert_eq!(found.hits[0].title, "Globex payment handbook");
    assert_eq!(found.total, 1);
    assert_eq!(index.get(&globex, "wiki:1").unwrap().unwrap().title, "Globex payment handbook");
    assert!(index.get(&globex, "wiki:2").unwrap().is_none(), "acme's id space is not globex's");
    let acme = reader("acme", &["everyone"]);
    assert_eq!(index.get(&acme, "wiki:1").unwrap().unwrap().title, "Deploying the payment service");
}

#[test]
fn filters_and_bad_queries() {
    let index = corpus();
    let r = reader("acme", &["everyone", "group:sre"]);
    let only_jira = Filters { sources: vec!["jira".into()], ..Filters::default() };
    assert_eq!(ids(&index.search(&r, "payment", &only_jira, 10, 0).unwrap()), ["jira:7"]);
    let later = Filters { updated_from: Some("2030-01-01T00:00:00Z".into()), ..Filters::default() };
    assert!(index.search(&r, "payment", &later, 10, 0).unwrap().hits.is_empty());
    let bad = Filters { updated_to: Some("yesterday".into()), ..Filters::default() };
    let e = index.search(&r, "payment", &bad, 10, 0).unwrap_err().to_string();
    assert!(e.contains("updated_to") && e.contains("RFC 3339"), "{e}");
    // malformed syntax is searched literally, never an error
    for q in ["\"unbalanced payment", "payment AND (", "title:", "payment\u{0}\u{7}", "+-payment", "*:*"] {
        index.search(&r, q, &Filters::default(), 10, 0).unwrap();
    }
    let found = index.search(&r, "\"unbalanced payment", &Filters::default(), 10, 0);
    assert!(found.is_ok());
    let huge = "a ".repeat(600);
    let e = index.search(&r, &huge, &Filters::default(), 10, 0).unwrap_err().to_string();
    assert!(e.contains("1200 characters"), "{e}");
}

#[test]
fn upserts_replace_and_deletes_remove() {
    let index = corpus();
    let r = reader("acme", &["everyone"]);
    index
        .upsert("acme", &[doc("wiki:1", "wiki", "Deploying, revised", "New text about rollbacks.", &["everyone"])])
        .unwrap();
    index.delete("acme", &["wiki:2".into()]);
    index.commit().unwrap();
    assert!(index.search(&r, "dashboards", &Filters::default(), 10, 0).unwrap().hits.is_empty());
    assert_eq!(ids(&index.search(&r, "rollbacks", &Filters::default(), 10, 0).unwrap()), ["wiki:1"]);
    assert!(index.get(&r, "wiki:2").unwrap().is_none());
    let mut wiki = index.ids_of_source("acme", "wiki").unwrap();
    wiki.sort();
    assert_eq!(wiki, ["wiki:1"]);
    assert_eq!(index.ids_of_source("globex", "wiki").unwrap(), ["wiki:1"]);
}

#[test]
fn near_duplicates_fold_into_one_hit() {
    let index = Index::in_memory().unwrap();
    let text = "Option is a type that represents an optional value: every Option is either Some and contains a value, or None, and does not.";
    index
        .upsert(
            "t",
            &[
                doc("std:option", "docs", "Option in std::option", text, &["everyone"]),
                doc("core:option", "docs", "Option in core::option", text, &["everyone"]),
                doc(
                    "other",
                    "docs",
                    "Result",
                    "Result is the type used for returning and propagating errors, an optional value of sorts.",
                    &["everyone"],
                ),
            ],
        )
        .unwrap();
    index.commit().unwrap();
    let found = index.search(&reader("t", &["everyone"]), "optional value", &Filters::default(), 10, 0).unwrap();
    assert_eq!(found.hits.len(), 2, "{:?}", found.hits);
    let option = found.hits.iter().find(|h| h.title.starts_with("Option")).unwrap();
    assert_eq!(option.duplicates.len(), 1);
}
