//! The git connector against a real repository made with the git CLI:
//! files at a ref, last-commit authors and times, incremental sync by
//! commit, deletions, refs that name nothing.

use std::path::Path;
use std::process::Command;

use plexus_knowledge::connector::Connector;
use plexus_knowledge::git::GitSource;
use plexus_knowledge::{Filters, Index, Reader};

fn git(repo: &Path, args: &[&str], author: &str, when: i64) {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", author)
        .env("GIT_AUTHOR_EMAIL", format!("{author}@example.com"))
        .env("GIT_COMMITTER_NAME", author)
        .env("GIT_COMMITTER_EMAIL", format!("{author}@example.com"))
        .env("GIT_AUTHOR_DATE", format!("@{when} +0000"))
        .env("GIT_COMMITTER_DATE", format!("@{when} +0000"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", repo)
        .output()
        .expect("git runs (the git CLI is needed to build the test repository)");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn commit(repo: &Path, files: &[(&str, Option<&str>)], author: &str, when: i64) {
    for (path, content) in files {
        let p = repo.join(path);
        match content {
            Some(c) => {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, c).unwrap();
            }
            None => std::fs::remove_file(&p).unwrap(),
        }
    }
    git(repo, &["add", "-A"], author, when);
    git(repo, &["commit", "-q", "-m", &format!("change by {author}")], author, when);
}

fn search(index: &Index, q: &str) -> Vec<String> {
    let r = Reader { tenant: "acme".into(), principals: vec!["group:eng".into()] };
    let mut t: Vec<String> =
        index.search(&r, q, &Filters::default(), 50, 0).unwrap().hits.into_iter().map(|h| h.id).collect();
    t.sort();
    t
}

#[test]
fn files_at_a_ref_with_last_commit_authors_incremental_and_deletions() {
    let repo = std::env::temp_dir().join(format!("plexus-kb-git-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"], "setup", 0);
    commit(
        &repo,
        &[
            ("docs/runbook.md", Some("# 障害対応手順\n\nまず影響範囲を確認する。")),
            ("docs/api.html", Some("<html><title>API reference</title><main><p>Rate limits apply.</p></main></html>")),
            ("README.md", Some("# Payments service\nSettlement batch runs nightly.")),
            ("src/main.rs", Some("fn main() {}")),
        ],
        "alice",
        1_700_000_000,
    );
    commit(&repo, &[("README.md", Some("# Payments service\nSettlement batch runs hourly."))], "bob", 1_700_100_000);
    git(&repo, &["tag", "v1"], "setup", 1_700_100_000);

    let source = GitSource {
        name: "payments".into(),
        repo: repo.clone(),
        git_ref: None,
        readers: vec!["group:eng".into()],
        url_prefix: Some("https://git.example.com/payments/blob/main".into()),
    };
    let index = Index::in_memory().unwrap();
    let (report, cursor) = source.sync(&index, "acme", None, &|_, _| {}).unwrap();
    assert_eq!((report.files, report.indexed, report.deleted), (3, 3, 0), "{report:?}");
    assert_eq!(search(&index, "影響範囲"), ["payments:docs/runbook.md"]);
    let r = Reader { tenant: "acme".into(), principals: vec!["group:eng".into()] };
    let readme = index.get(&r, "payments:README.md").unwrap().unwrap();
    assert_eq!((readme.author.as_str(), readme.updated), ("bob", Some(1_700_100_000)), "last commit touching it");
    assert!(readme.body.contains("hourly"));
    let runbook = index.get(&r, "payments:docs/runbook.md").unwrap().unwrap();
    assert_eq!((runbook.author.as_str(), runbook.updated), ("alice", Some(1_700_000_000)));
    assert_eq!(runbook.url, "https://git.example.com/payments/blob/main/docs/runbook.md");
    assert_eq!(runbook.title, "障害対応手順");
    let outsider = Reader { tenant: "acme".into(), principals: vec!["group:sales".into()] };
    assert!(index.get(&outsider, "payments:README.md").unwrap().is_none());

    // Nothing new: nothing read.
    let (report, same) = source.sync(&index, "acme", Some(&cursor), &|_, _| {}).unwrap();
    assert_eq!((report.indexed, report.unchanged, report.deleted), (0, 3, 0), "{report:?}");
    assert_eq!(same.token, cursor.token);

    // Edit one file, delete one, add one: only those change.
    commit(
        &repo,
        &[
            ("docs/api.html", None),
            ("docs/runbook.md", Some("# 障害対応手順\n\nまず影響範囲とエラー率を確認する。")),
            ("docs/faq.txt", Some("FAQ\nWho owns settlement? The payments team.")),
        ],
        "carol",
        1_700_200_000,
    );
    let (report, next) = source.sync(&index, "acme", Some(&cursor), &|_, _| {}).unwrap();
    assert_eq!((report.indexed, report.deleted, report.unchanged), (2, 1, 1), "{report:?}");
    assert_ne!(next.token, cursor.token);
    assert!(search(&index, "rate limits").is_empty());
    assert_eq!(search(&index, "エラー率"), ["payments:docs/runbook.md"]);
    assert_eq!(index.get(&r, "payments:docs/runbook.md").unwrap().unwrap().author, "carol");
    assert_eq!(index.get(&r, "payments:README.md").unwrap().unwrap().author, "bob", "untouched");

    // A tag is a ref: at v1 the deleted page is back, the new file is not.
    let at_v1 = GitSource { name: "payments-v1".into(), git_ref: Some("v1".into()), ..source.clone() };
    at_v1.sync(&index, "acme", None, &|_, _| {}).unwrap();
    assert_eq!(search(&index, "rate limits"), ["payments-v1:docs/api.html"]);
    // A ref that names nothing fails the source, clearly.
    let bad = GitSource { git_ref: Some("no-such-branch".into()), ..source.clone() };
    let e = bad.sync(&index, "acme", None, &|_, _| {}).unwrap_err().to_string();
    assert!(e.contains("no-such-branch"), "{e}");
    let missing = GitSource { repo: repo.join("nope"), ..source };
    assert!(missing.sync(&index, "acme", None, &|_, _| {}).is_err());
    let _ = std::fs::remove_dir_all(&repo);
}
