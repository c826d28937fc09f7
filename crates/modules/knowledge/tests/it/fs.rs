//! The filesystem connector: full sync, incremental sync, deletions, skips.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use plexus_knowledge::fs::{FsSource, sync};
use plexus_knowledge::{Filters, Index, Reader};

fn write(root: &Path, rel: &str, bytes: &[u8], secs: u64) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
}

fn titles(index: &Index, q: &str) -> Vec<String> {
    let r = Reader { tenant: "acme".into(), principals: vec!["role:staff".into()] };
    let mut t: Vec<String> =
        index.search(&r, q, &Filters::default(), 50, 0).unwrap().hits.into_iter().map(|h| h.title).collect();
    t.sort();
    t
}

#[test]
fn full_then_incremental_sync_with_deletions_and_skips() {
    let dir = std::env::temp_dir().join(format!("plexus-kb-fs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("handbook");
    write(&root, "guide/deploy.md", "# デプロイ手順\n\n本番環境へのデプロイは金曜日に行わない。".as_bytes(), 1_000);
    write(&root, "guide/oncall.html", b"<html><title>On-call rota</title><body><main><h1>Rota</h1><p>Pager duty for payments.</p></main></body></html>", 1_500);
    write(&root, "notes.txt", b"Payments glossary\nA settlement is final.", 1_000);
    write(&root, "blob.txt", b"binary\0data", 1_000);
    write(&root, "latin1.txt", &[0x63, 0x61, 0x66, 0xe9], 1_000);
    write(&root, "moved.html", br#"<meta http-equiv="refresh" content="0;URL=guide/oncall.html">"#, 1_000);
    write(&root, ".git/config.md", b"# hidden", 1_000);
    write(&root, "image.png", b"\x89PNG", 1_000);
    let source = FsSource {
        name: "handbook".into(),
        root: root.clone(),
        readers: vec!["role:staff".into()],
        url_prefix: Some("https://wiki.example.com/handbook/".into()),
    };
    let index = Index::in_memory().unwrap();
    let progress = |_: usize, _: usize| {};

    let (report, cursor) = sync(&index, "acme", &source, None, &progress).unwrap();
    assert_eq!((report.files, report.indexed, report.skipped, report.deleted), (6, 3, 3, 0), "{report:?}");
    assert_eq!(titles(&index, "デプロイ"), ["デプロイ手順"]);
    assert_eq!(titles(&index, "payments"), ["On-call rota", "Payments glossary"]);
    let r = Reader { tenant: "acme".into(), principals: vec!["role:staff".into()] };
    let doc = index.get(&r, "handbook:guide/oncall.html").unwrap().unwrap();
    assert_eq!(doc.url, "https://wiki.example.com/handbook/guide/oncall.html");
    assert_eq!((doc.space.as_str(), doc.kind.as_str(), doc.updated), ("guide", "page", Some(1_500)));
    let outsider = Reader { tenant: "acme".into(), principals: vec!["role:guest".into()] };
    assert!(index.get(&outsider, "handbook:guide/oncall.html").unwrap().is_none());

    // Edit one file, add one, delete one: only those are touched.
    write(
        &root,
        "guide/oncall.html",
        b"<html><title>On-call rota v2</title><main><p>Escalate to the SRE lead.</p></main></html>",
        2_000,
    );
    write(&root, "guide/new.md", b"# Incident review\nBlameless.", 2_000);
    std::fs::remove_file(root.join("notes.txt")).unwrap();
    let (report, cursor2) = sync(&index, "acme", &source, Some(&cursor), &progress).unwrap();
    assert_eq!((report.indexed, report.deleted), (2, 1), "{report:?}");
    assert_eq!((report.files, report.unchanged), (6, 4), "{report:?}");
    assert!(cursor2.modified_ns > cursor.modified_ns);
    assert_eq!(titles(&index, "escalate"), ["On-call rota v2"]);
    assert!(titles(&index, "settlement").is_empty());
    assert_eq!(titles(&index, "blameless"), ["Incident review"]);

    // A sync cut short is run again from the old cursor: nothing duplicates.
    let before = index.count("acme").unwrap();
    sync(&index, "acme", &source, None, &progress).unwrap();
    assert_eq!(index.count("acme").unwrap(), before);
    assert_eq!(before, 3, "deploy, oncall and new");

    // A missing root is an error naming it.
    let gone = FsSource { root: dir.join("nope"), ..source };
    let e = sync(&index, "acme", &gone, None, &progress).unwrap_err().to_string();
    assert!(e.contains("handbook") && e.contains("nope"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A one-page PDF whose text is `line` in Helvetica, with a correct xref.
pub(crate) fn pdf(line: &str) -> Vec<u8> {
    let content = format!("BT /F1 18 Tf 72 700 Td ({line}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

#[test]
fn pdf_text_is_indexed_and_broken_pdfs_are_skipped() {
    let dir = std::env::temp_dir().join(format!("plexus-kb-pdf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write(&dir, "audit.pdf", &pdf("Quarterly audit checklist for vendor payments"), 1_000);
    write(&dir, "broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", 1_000);
    write(&dir, "fake.pdf", b"not a pdf at all", 1_000);
    let source =
        FsSource { name: "docs".into(), root: dir.clone(), readers: vec!["role:staff".into()], url_prefix: None };
    let index = Index::in_memory().unwrap();
    let (report, _) = sync(&index, "acme", &source, None, &|_, _| {}).unwrap();
    assert_eq!((report.files, report.indexed, report.skipped), (3, 1, 2), "{report:?}");
    assert_eq!(titles(&index, "vendor payments"), ["Quarterly audit checklist for vendor payments"]);
    let r = Reader { tenant: "acme".into(), principals: vec!["role:staff".into()] };
    assert_eq!(index.get(&r, "docs:audit.pdf").unwrap().unwrap().kind, "pdf");
    let _ = std::fs::remove_dir_all(&dir);
}
