//! The SQL connector against SQLite and (when PLEXUS_TEST_POSTGRES_URL is
//! set; CI sets it) PostgreSQL.

use plexus_knowledge::connector::{Connector, Cursor, SyncError, SyncReport};
use plexus_knowledge::sql::SqlSource;
use plexus_knowledge::{Filters, Index, Reader};

fn sync(
    index: &Index,
    tenant: &str,
    source: &SqlSource,
    cursor: Option<Cursor>,
) -> Result<(SyncReport, Cursor), SyncError> {
    source.sync(index, tenant, cursor.as_ref(), &|_, _| {})
}

const QUERY: &str = "SELECT id, title, body, author, updated, url, readers FROM articles ORDER BY id";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn titles(index: &Index, principals: &[&str], q: &str) -> Vec<String> {
    let r = Reader { tenant: "acme".into(), principals: principals.iter().map(|s| (*s).to_owned()).collect() };
    let mut t: Vec<String> =
        index.search(&r, q, &Filters::default(), 50, 0).unwrap().hits.into_iter().map(|h| h.title).collect();
    t.sort();
    t
}

/// Run the same scenario against a database reachable at `url`, whose
/// `articles` table `exec` (re)writes.
fn scenario(url: &str, exec: &dyn Fn(&str)) {
    exec(
        "INSERT INTO articles VALUES ('1', '経費精算', '領収書は30日以内に提出する。', 'sato', 1000, 'https://crm/1', NULL)",
    );
    exec(
        "INSERT INTO articles VALUES ('2', 'Board minutes', 'Confidential payments decision.', 'ceo', 1000, NULL, 'role:board')",
    );
    exec("INSERT INTO articles VALUES ('3', NULL, 'A row without a title is skipped.', NULL, 1000, NULL, NULL)");
    let source =
        SqlSource { name: "crm".into(), url: url.into(), query: QUERY.into(), readers: vec!["everyone".into()] };
    let index = Index::in_memory().unwrap();
    let (report, cursor) = sync(&index, "acme", &source, None).unwrap();
    assert_eq!((report.files, report.indexed, report.skipped), (3, 2, 1), "{report:?}");
    assert_eq!(titles(&index, &["everyone"], "領収書"), ["経費精算"]);
    assert!(titles(&index, &["everyone"], "payments").is_empty(), "row-level readers apply");
    assert_eq!(titles(&index, &["everyone", "role:board"], "payments"), ["Board minutes"]);

    exec("UPDATE articles SET body = 'Receipts within 60 days now.', updated = 2000 WHERE id = '1'");
    exec("DELETE FROM articles WHERE id = '2'");
    let (report, _) = sync(&index, "acme", &source, Some(cursor)).unwrap();
    assert_eq!((report.indexed, report.unchanged, report.deleted), (1, 0, 1), "{report:?}");
    assert_eq!(titles(&index, &["everyone"], "receipts"), ["経費精算"]);
    assert!(titles(&index, &["role:board"], "minutes").is_empty());

    let bad = SqlSource { query: "SELECT nope FROM nowhere".into(), ..source };
    let e = sync(&index, "acme", &bad, None).unwrap_err().to_string();
    assert!(e.contains("crm") && e.contains("query failed"), "{e}");
}

#[test]
fn a_sqlite_table_syncs_with_row_readers_updates_and_deletions() {
    let dir = std::env::temp_dir().join(format!("plexus-kb-sql-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("crm.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let rt = rt();
    let pool = rt.block_on(sqlx::SqlitePool::connect(&url)).unwrap();
    rt.block_on(
        sqlx::query(
            "CREATE TABLE articles (id TEXT, title TEXT, body TEXT, author TEXT, updated INTEGER, url TEXT, readers TEXT)",
        )
        .execute(&pool),
    )
    .unwrap();
    let exec = |sql: &str| {
        rt.block_on(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool)).unwrap();
    };
    scenario(path.to_str().unwrap(), &exec);
    let missing = SqlSource {
        name: "x".into(),
        url: dir.join("none.db").display().to_string(),
        query: QUERY.into(),
        readers: vec![],
    };
    let e = sync(&Index::in_memory().unwrap(), "acme", &missing, None).unwrap_err().to_string();
    assert!(e.contains("cannot open"), "{e}");
    assert!(!dir.join("none.db").exists(), "a source is opened read-only, never created");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_postgres_query_syncs_the_same_way() {
    let Ok(admin) = std::env::var("PLEXUS_TEST_POSTGRES_URL") else {
        assert!(std::env::var("CI").is_err(), "CI must set PLEXUS_TEST_POSTGRES_URL");
        eprintln!("skipping the PostgreSQL knowledge source test: PLEXUS_TEST_POSTGRES_URL is not set");
        return;
    };
    let rt = rt();
    let pool = rt.block_on(sqlx::PgPool::connect(&admin)).unwrap();
    let schema = format!("kb_sql_{}", std::process::id());
    let exec = |sql: &str| {
        rt.block_on(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool)).unwrap();
    };
    exec(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    exec(&format!("CREATE SCHEMA {schema}"));
    exec(&format!(
        "CREATE TABLE {schema}.articles (id TEXT, title TEXT, body TEXT, author TEXT, updated BIGINT, url TEXT, readers TEXT)"
    ));
    let scoped = |sql: &str| exec(&sql.replace("articles", &format!("{schema}.articles")));
    let url = format!("{admin}{}options=-csearch_path%3D{schema}", if admin.contains('?') { "&" } else { "?" });
    scenario(&url, &scoped);
    exec(&format!("DROP SCHEMA {schema} CASCADE"));
}
