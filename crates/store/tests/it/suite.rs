//! The storage suite: every function runs against both backends (see the
//! `storage_suite!` list in `main.rs`).

use std::sync::Arc;

use plexus_core::audit::{AuditEvent, ChainError, verify};
use plexus_core::context::TenantId;
use plexus_core::ports::{AuditSink, TenantDirectory};
use plexus_store::{
    AuditStore, CORE_MIGRATIONS, Keyring, MasterKey, Migration, Migrations, NewTenant, SEALED_PREFIX, SensitiveField,
    Store, StoreError,
};

use crate::harness::TestDb;

fn tid(s: &str) -> TenantId {
    TenantId::new(s)
}

async fn tenant(store: &Store, id: &str) {
    store
        .create_tenant(&NewTenant { id: tid(id), name: format!("{id} 株式会社"), tier: "standard".into() })
        .await
        .unwrap();
}

fn roles(r: &[&str]) -> Vec<String> {
    r.iter().map(|s| (*s).to_owned()).collect()
}

fn event(i: usize) -> AuditEvent {
    AuditEvent {
        time: format!("2026-11-21T00:{:02}:{:02}Z", (i / 60) % 60, i % 60),
        request_id: format!("r{i}"),
        session: i.is_multiple_of(2).then(|| format!("s{i}")),
        principal: "山田".into(),
        tenant: if i.is_multiple_of(3) { "acme".into() } else { "globex".into() },
        operation: "tools/call".into(),
        target: "echo".into(),
        args_digest: format!("{i:064x}"),
        outcome: "ok".into(),
        latency_us: i as u64,
        client_addr: (!i.is_multiple_of(2)).then(|| "127.0.0.1:5000".into()),
    }
}

pub(crate) async fn tenants_are_created_listed_and_deactivated(db: Arc<TestDb>) {
    let store = db.open().await;
    let acme = store
        .create_tenant(&NewTenant { id: tid("acme"), name: "アクメ株式会社".into(), tier: "enterprise".into() })
        .await
        .unwrap();
    assert!(acme.active);
    assert_eq!(acme.name, "アクメ株式会社");
    tenant(&store, "globex").await;

    assert_eq!(store.get_tenant(&tid("acme")).await.unwrap(), Some(acme.clone()));
    assert_eq!(store.get_tenant(&tid("nobody")).await.unwrap(), None);
    let ids: Vec<_> = store.list_tenants().await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![tid("acme"), tid("globex")]);

    let dup = NewTenant { id: tid("acme"), name: "again".into(), tier: "free".into() };
    let err = store.create_tenant(&dup).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(err.to_string(), "tenant acme already exists");
    let bad = NewTenant { id: tid(""), name: "x".into(), tier: "free".into() };
    assert!(matches!(store.create_tenant(&bad).await.unwrap_err(), StoreError::Invalid { .. }));

    store.set_tenant_active(&tid("acme"), false).await.unwrap();
    assert!(!store.get_tenant(&tid("acme")).await.unwrap().unwrap().active);
    let info = TenantDirectory::tenant(&store, &tid("acme")).await.unwrap();
    assert_eq!((info.tier.as_str(), info.active), ("enterprise", false));
    assert!(TenantDirectory::tenant(&store, &tid("nobody")).await.is_none());
    store.set_tenant_active(&tid("acme"), true).await.unwrap();
    assert!(store.get_tenant(&tid("acme")).await.unwrap().unwrap().active);
    let err = store.set_tenant_active(&tid("nobody"), false).await.unwrap_err();
    assert_eq!(err.to_string(), "unknown tenant nobody");

    // survives reopening
    store.close().await;
    let store = db.open().await;
    assert_eq!(store.get_tenant(&tid("acme")).await.unwrap().unwrap().created_at, acme.created_at);
}

pub(crate) async fn keys_are_issued_listed_revoked_and_authenticated(db: Arc<TestDb>) {
    let store = db.open().await;
    tenant(&store, "acme").await;
    let scope = store.tenant(&tid("acme"));
    let new = scope.create_key("ci", &roles(&["admin", "reader"])).await.unwrap();
    let secret = new.secret.expose().to_owned();
    assert!(secret.starts_with("pk_"), "{secret}");
    assert_eq!(secret.len(), 35);
    assert!(secret[3..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!format!("{new:?}").contains(&secret), "Debug shows the secret");
    let other = scope.create_key("other", &[]).await.unwrap();
    assert_ne!(other.secret, new.secret);

    // authenticate
    let p = store.authenticate(&secret).await.unwrap().expect("a valid key authenticates");
    assert_eq!((p.subject.as_str(), p.key_id.as_str(), p.tenant.as_str()), ("ci", new.key.id.as_str(), "acme"));
    assert_eq!(p.roles, roles(&["admin", "reader"]));
    let principal = p.into_principal();
    assert_eq!((principal.method, principal.subject.as_str()), ("api_key", "ci"));

    // wrong keys are refused
    let mut wrong = secret.clone().into_bytes();
    wrong[10] = if wrong[10] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    assert_eq!(store.authenticate(&wrong).await.unwrap(), None);
    for bad in ["", "pk_", "not a key", &secret[..34], &format!("{secret}0"), &secret.to_uppercase()] {
        assert_eq!(store.authenticate(bad).await.unwrap(), None, "{bad:?}");
    }

    // the listing never holds the secret or its digest
    let listed = scope.list_keys().await.unwrap();
    assert_eq!(listed.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["ci", "other"]);
    let text = format!("{listed:?}");
    assert!(!text.contains(&secret[3..]));
    assert!(!text.contains(&plexus_store::key_digest(&secret)));
    let ci = &listed[0];
    assert_eq!(ci.roles, roles(&["admin", "reader"]));
    assert!(ci.last_used_at.is_some(), "authentication records the use");
    assert!(ci.revoked_at.is_none());
    assert_eq!(scope.get_key(&ci.id).await.unwrap().as_ref(), Some(ci));

    // names are unique among unrevoked keys; unknown tenants have none
    let err = scope.create_key("ci", &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let err = store.tenant(&tid("nobody")).create_key("ci", &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownTenant(_)), "{err}");
    assert!(matches!(scope.create_key("", &[]).await.unwrap_err(), StoreError::Invalid { .. }));

    // revoked keys are refused at once
    scope.revoke_key(&new.key.id).await.unwrap();
    assert_eq!(store.authenticate(&secret).await.unwrap(), None);
    assert!(store.authenticate(other.secret.expose()).await.unwrap().is_some());
    scope.revoke_key(&new.key.id).await.unwrap();
    let err = scope.revoke_key("key_0000000000000000").await.unwrap_err();
    assert_eq!(err.to_string(), "api key key_0000000000000000 not found");
    let revoked = scope.get_key(&new.key.id).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());
    // ... and stay refused after reopening
    store.close().await;
    let store = db.open().await;
    assert_eq!(store.authenticate(&secret).await.unwrap(), None);
    // the name is free again
    let again = store.tenant(&tid("acme")).create_key("ci", &roles(&["reader"])).await.unwrap();
    assert_eq!(store.authenticate(again.secret.expose()).await.unwrap().unwrap().roles, roles(&["reader"]));
    assert_eq!(store.tenant(&tid("acme")).list_keys().await.unwrap().len(), 3);
}

pub(crate) async fn tenants_are_isolated_through_the_scoped_api(db: Arc<TestDb>) {
    let store = db.open().await;
    tenant(&store, "acme").await;
    tenant(&store, "globex").await;
    let acme = store.tenant(&tid("acme"));
    let globex = store.tenant(&tid("globex"));
    let a = acme.create_key("shared-name", &roles(&["a"])).await.unwrap();
    let g = globex.create_key("shared-name", &roles(&["g"])).await.unwrap();
    globex.create_key("second", &[]).await.unwrap();

    let listed = acme.list_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, a.key.id);
    assert!(listed.iter().all(|k| k.tenant == tid("acme")));
    assert_eq!(globex.list_keys().await.unwrap().len(), 2);

    // another tenant's key is invisible and untouchable
    assert_eq!(acme.get_key(&g.key.id).await.unwrap(), None);
    assert!(matches!(acme.revoke_key(&g.key.id).await.unwrap_err(), StoreError::NotFound(_)));
    let p = store.authenticate(g.secret.expose()).await.unwrap().expect("globex's key still works");
    assert_eq!(p.tenant, tid("globex"));
    assert_eq!(store.authenticate(a.secret.expose()).await.unwrap().unwrap().tenant, tid("acme"));
    assert!(store.tenant(&tid("nobody")).list_keys().await.unwrap().is_empty());
}

pub(crate) async fn concurrent_appends_form_one_intact_chain(db: Arc<TestDb>) {
    let store = db.open().await;
    let log = Arc::new(AuditStore::open(&store, "node-1").await.unwrap());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.append(event(i)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(log.queue_depth(), 0);

    let records = store.audit_records("node-1", 0, u64::MAX).await.unwrap();
    assert_eq!(records.len(), 200);
    let summary = verify(&records).unwrap();
    assert_eq!(summary.records, 200);
    let head = store.audit_head("node-1").await.unwrap().unwrap();
    assert_eq!((head.seq, head.hash.as_str()), (199, summary.head.as_str()));
    let mut ids: Vec<_> = records.iter().map(|r| r.request_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "every event exactly once");
    // what was stored is what was given
    let r7 = records.iter().find(|r| r.request_id == "r7").unwrap();
    let e7 = event(7);
    assert_eq!(
        (&r7.principal, &r7.session, &r7.client_addr, r7.latency_us),
        (&e7.principal, &e7.session, &e7.client_addr, 7)
    );

    // another node's chain is its own
    let other = AuditStore::open(&store, "node-2").await.unwrap();
    for i in 0..3 {
        other.append(event(i)).await.unwrap();
    }
    let records2 = store.audit_records("node-2", 0, u64::MAX).await.unwrap();
    assert_eq!(verify(&records2).unwrap().records, 3);
    assert_eq!(verify(&store.audit_records("node-1", 0, u64::MAX).await.unwrap()).unwrap().records, 200);
    assert_eq!(store.audit_nodes().await.unwrap(), ["node-1", "node-2"]);
}

pub(crate) async fn reopening_continues_the_chain(db: Arc<TestDb>) {
    let store = db.open().await;
    let log = AuditStore::open(&store, "node-1").await.unwrap();
    for i in 0..10 {
        log.append(event(i)).await.unwrap();
    }
    log.close().await;
    store.close().await;

    let store = db.open().await;
    let log = AuditStore::open(&store, "node-1").await.unwrap();
    assert_eq!(log.node_id(), "node-1");
    let tasks: Vec<_> = {
        let log = Arc::new(log);
        (10..15)
            .map(|i| {
                let log = Arc::clone(&log);
                tokio::spawn(async move { log.append(event(i)).await })
            })
            .collect()
    };
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let records = store.audit_records("node-1", 0, u64::MAX).await.unwrap();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), (0..15).collect::<Vec<_>>());
    assert_eq!(verify(&records).unwrap().records, 15);
}

pub(crate) async fn a_failed_batch_is_refused_and_the_writer_recovers(db: Arc<TestDb>) {
    let store = db.open().await;
    // Two writers of one chain (a misconfiguration): the second one's view
    // of the tail goes stale, its batch is refused by the primary key, and
    // it continues from what the database holds.
    let first = AuditStore::open(&store, "node-1").await.unwrap();
    let second = AuditStore::open(&store, "node-1").await.unwrap();
    first.append(event(0)).await.unwrap();
    let err = second.append(event(1)).await.unwrap_err();
    assert!(err.to_string().starts_with("audit log unavailable: database error: "), "{err}");
    second.append(event(2)).await.unwrap();
    first.close().await;
    second.close().await;
    let records = store.audit_records("node-1", 0, u64::MAX).await.unwrap();
    assert_eq!(records.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(), ["r0", "r2"]);
    assert_eq!(verify(&records).unwrap().records, 2);
}

pub(crate) async fn an_edited_record_is_named_by_verify(db: Arc<TestDb>) {
    let store = db.open().await;
    let log = AuditStore::open(&store, "node-1").await.unwrap();
    for i in 0..6 {
        log.append(event(i)).await.unwrap();
    }
    verify(&store.audit_records("node-1", 0, u64::MAX).await.unwrap()).unwrap();
    db.tamper_audit_record("node-1", 3, "mallory").await;
    let records = store.audit_records("node-1", 0, u64::MAX).await.unwrap();
    assert_eq!(records[3].principal, "mallory");
    let errors = verify(&records).unwrap_err();
    assert_eq!(errors, vec![ChainError::Altered { position: 3, seq: 3 }]);
    assert!(errors[0].to_string().starts_with("record 3 "), "{}", errors[0]);
}

pub(crate) async fn the_audit_log_refuses_update_and_delete(db: Arc<TestDb>) {
    let store = db.open().await;
    let log = AuditStore::open(&store, "node-1").await.unwrap();
    for i in 0..3 {
        log.append(event(i)).await.unwrap();
    }
    for sql in [
        "UPDATE audit_log SET principal = 'mallory' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_log",
    ] {
        let err = db.exec_as_app(sql).await.expect_err(sql);
        assert!(err.to_string().contains("audit_log is append-only"), "{sql}: {err}");
    }
    if db.backend() == plexus_store::Backend::Postgres {
        let err = db.exec_as_app("TRUNCATE audit_log").await.expect_err("truncate");
        assert!(err.to_string().contains("audit_log is append-only"), "{err}");
    }
    assert_eq!(verify(&store.audit_records("node-1", 0, u64::MAX).await.unwrap()).unwrap().records, 3);
    // appending continues after the refused statements
    log.append(event(3)).await.unwrap();
    assert_eq!(verify(&store.audit_records("node-1", 0, u64::MAX).await.unwrap()).unwrap().records, 4);
}

pub(crate) async fn audit_records_are_read_by_range(db: Arc<TestDb>) {
    let store = db.open().await;
    let log = AuditStore::open(&store, "node-1").await.unwrap();
    for i in 0..10 {
        log.append(event(i)).await.unwrap();
    }
    let seqs = |rs: Vec<plexus_core::audit::AuditRecord>| rs.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.audit_records("node-1", 2, 5).await.unwrap()), [2, 3, 4]);
    assert_eq!(seqs(store.audit_records("node-1", 8, 100).await.unwrap()), [8, 9]);
    assert!(store.audit_records("node-1", 5, 5).await.unwrap().is_empty());
    assert!(store.audit_records("nobody", 0, u64::MAX).await.unwrap().is_empty());
    // event(i).time is 2026-11-21T00:00:{i}Z
    let between = store.audit_records_between("node-1", "2026-11-21T00:00:03Z", "2026-11-21T00:00:07Z").await.unwrap();
    assert_eq!(seqs(between.clone()), [3, 4, 5, 6]);
    assert_eq!(between[0].request_id, "r3");
    assert_eq!(store.audit_head("nobody").await.unwrap(), None);
}

static ITEST_V1: Migration = Migration {
    version: 1,
    name: "first",
    sqlite: "CREATE TABLE itest_a (id TEXT PRIMARY KEY NOT NULL, tenant_id TEXT NOT NULL)",
    postgres: "CREATE TABLE itest_a (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL)",
};
static ITEST_V2: Migration = Migration {
    version: 2,
    name: "second",
    sqlite: "CREATE INDEX itest_a_tenant ON itest_a (tenant_id); CREATE TABLE itest_b (id TEXT PRIMARY KEY NOT NULL)",
    postgres: "CREATE INDEX itest_a_tenant ON itest_a (tenant_id); CREATE TABLE itest_b (id TEXT PRIMARY KEY)",
};
static ITEST: Migrations = Migrations { owner: "itest", steps: &[ITEST_V1, ITEST_V2] };

pub(crate) async fn migrations_are_idempotent_and_checked(db: Arc<TestDb>) {
    // two processes starting at once on an empty database
    let (a, b) = tokio::join!(Store::open(db.url()), Store::open(db.url()));
    let (a, b) = (a.unwrap(), b.unwrap());
    b.close().await;
    assert_eq!(a.applied_migrations("core").await.unwrap(), [1, 2, 3]);
    tenant(&a, "acme").await;
    assert_eq!(a.migrate(&CORE_MIGRATIONS).await.unwrap(), 0);
    a.close().await;

    let store = db.open().await;
    assert_eq!(store.applied_migrations("core").await.unwrap(), [1, 2, 3]);
    assert!(store.get_tenant(&tid("acme")).await.unwrap().is_some(), "data survives");

    // another owner's set, applied once
    assert_eq!(store.migrate(&ITEST).await.unwrap(), 2);
    assert_eq!(store.migrate(&ITEST).await.unwrap(), 0);
    assert_eq!(store.applied_migrations("itest").await.unwrap(), [1, 2]);
    assert_eq!(store.applied_migrations("core").await.unwrap(), [1, 2, 3]);

    // an edited script is refused
    static EDITED: Migrations = Migrations {
        owner: "itest",
        steps: &[
            Migration {
                sqlite: "CREATE TABLE itest_a (id TEXT)",
                postgres: "CREATE TABLE itest_a (id TEXT)",
                ..ITEST_V1
            },
            ITEST_V2,
        ],
    };
    let err = store.migrate(&EDITED).await.unwrap_err();
    assert_eq!(err.to_string(), "migration itest/1 was changed after it was applied (checksum mismatch)");
    // a build that knows fewer migrations than were applied is refused
    static OLDER: Migrations = Migrations { owner: "itest", steps: &[ITEST_V1] };
    let err = store.migrate(&OLDER).await.unwrap_err();
    assert!(matches!(err, StoreError::Migration { version: 2, .. }), "{err}");
    // versions must count from 1
    static GAP: Migrations = Migrations { owner: "gap", steps: &[Migration { version: 2, ..ITEST_V1 }] };
    assert!(matches!(store.migrate(&GAP).await.unwrap_err(), StoreError::Migration { .. }));
    // a failing script leaves nothing behind
    static BROKEN: Migrations = Migrations {
        owner: "broken",
        steps: &[Migration {
            version: 1,
            name: "broken",
            sqlite: "CREATE TABLE broken_a (id TEXT); THIS IS NOT SQL",
            postgres: "CREATE TABLE broken_a (id TEXT); THIS IS NOT SQL",
        }],
    };
    let err = store.migrate(&BROKEN).await.unwrap_err();
    assert!(err.to_string().starts_with("migration broken/1 failed: "), "{err}");
    assert!(store.applied_migrations("broken").await.unwrap().is_empty());
    assert!(db.exec_as_app("SELECT * FROM broken_a").await.is_err(), "the failed migration was rolled back");
}

const NAME: SensitiveField = SensitiveField::new("people", "name");
const NOTE: SensitiveField = SensitiveField::new("people", "note");

pub(crate) async fn sealed_fields_open_only_in_their_tenant_and_field(db: Arc<TestDb>) {
    let store = db.open().await;
    tenant(&store, "acme").await;
    tenant(&store, "globex").await;
    let acme = store.tenant(&tid("acme"));
    let globex = store.tenant(&tid("globex"));
    assert!(matches!(acme.seal_str(&NAME, "x").await.unwrap_err(), StoreError::NoMasterKey));

    let (master, _) = MasterKey::generate().unwrap();
    store.set_keyring(Some(Keyring::new(master.clone(), [])));
    let plain = "山田 太郎 / 生年月日 1970-01-01";
    let sealed = acme.seal_str(&NAME, plain).await.unwrap();
    assert!(sealed.starts_with(SEALED_PREFIX), "{sealed}");
    assert!(!sealed.contains("山田") && !sealed.contains("1970"));
    let again = acme.seal_str(&NAME, plain).await.unwrap();
    assert_ne!(sealed, again, "a fresh nonce per value");
    assert_eq!(acme.open_str(&NAME, &sealed).await.unwrap(), plain);
    assert_eq!(acme.open_str(&NAME, &again).await.unwrap(), plain);

    // One active data key for acme, wrapped by the master key; none for globex yet.
    let keys = acme.data_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].master_key_id, master.id());
    assert!(keys[0].retired_at.is_none());
    assert!(globex.data_keys().await.unwrap().is_empty());

    // Another tenant, another field, an altered value: refused, never wrong text.
    let e = globex.open_str(&NAME, &sealed).await.unwrap_err();
    assert!(matches!(e, StoreError::Crypto(_)) && e.to_string().contains("not a key of tenant globex"), "{e}");
    let e = acme.open_str(&NOTE, &sealed).await.unwrap_err();
    assert!(matches!(e, StoreError::Crypto(_)) && e.to_string().contains("people.note"), "{e}");
    let mut altered = sealed.clone().into_bytes();
    let last = altered.len() - 3;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let e = acme.open_str(&NAME, std::str::from_utf8(&altered).unwrap()).await.unwrap_err();
    assert!(matches!(e, StoreError::Crypto(_)), "{e}");
    for junk in ["", "plain text", "pxe1.dk_1.AAAA", "pxe1.nodot"] {
        let e = acme.open_str(&NAME, junk).await.unwrap_err();
        assert!(e.to_string().contains("not a sealed value"), "{junk:?}: {e}");
    }

    // A fresh process with the same master key opens it; with another key it cannot.
    let reopened = db.open().await;
    reopened.set_keyring(Some(Keyring::new(master.clone(), [])));
    assert_eq!(reopened.tenant(&tid("acme")).open_str(&NAME, &sealed).await.unwrap(), plain);
    let stranger = db.open().await;
    stranger.set_keyring(Some(Keyring::new(MasterKey::generate().unwrap().0, [])));
    let e = stranger.tenant(&tid("acme")).open_str(&NAME, &sealed).await.unwrap_err();
    assert!(matches!(&e, StoreError::UnknownMasterKey { master_key_id, .. } if master_key_id == master.id()), "{e}");
    assert!(matches!(stranger.check_master_keys().await.unwrap_err(), StoreError::UnknownMasterKey { .. }));
    reopened.check_master_keys().await.unwrap();

    // Rotating acme's data key: new values use the new key, old ones still open.
    let new_id = acme.rotate_data_key().await.unwrap();
    let newer = acme.seal_str(&NAME, "新しい値").await.unwrap();
    assert!(newer.contains(&new_id));
    assert!(!sealed.contains(&new_id));
    assert_eq!(acme.open_str(&NAME, &sealed).await.unwrap(), plain);
    let keys = acme.data_keys().await.unwrap();
    assert_eq!(keys.iter().filter(|k| k.retired_at.is_none()).count(), 1);
    assert_eq!(keys.len(), 2);
}

pub(crate) async fn master_rotation_rewraps_every_data_key(db: Arc<TestDb>) {
    let store = db.open().await;
    tenant(&store, "acme").await;
    tenant(&store, "globex").await;
    tenant(&store, "initech").await;
    let (old, _) = MasterKey::generate().unwrap();
    let (new, _) = MasterKey::generate().unwrap();
    store.set_keyring(Some(Keyring::new(old.clone(), [])));
    let a1 = store.tenant(&tid("acme")).seal_str(&NAME, "acme one").await.unwrap();
    store.tenant(&tid("acme")).rotate_data_key().await.unwrap();
    let a2 = store.tenant(&tid("acme")).seal_str(&NOTE, "acme two").await.unwrap();
    let g = store.tenant(&tid("globex")).seal(&NAME, &[0, 1, 2, 255]).await.unwrap();

    // Rotate to the new key, the old one still configured as previous.
    let rotating = db.open().await;
    rotating.set_keyring(Some(Keyring::new(new.clone(), [old.clone()])));
    let report = rotating.rotate_master().await.unwrap();
    assert_eq!((report.tenants, report.rewrapped, report.current), (3, 3, 0));
    let report = rotating.rotate_master().await.unwrap();
    assert_eq!((report.rewrapped, report.current), (0, 3), "a second run has nothing left to do");
    for t in ["acme", "globex"] {
        assert!(rotating.tenant(&tid(t)).data_keys().await.unwrap().iter().all(|k| k.master_key_id == new.id()));
    }

    // The new key alone now opens everything; the old key alone nothing.
    let after = db.open().await;
    after.set_keyring(Some(Keyring::new(new.clone(), [])));
    after.check_master_keys().await.unwrap();
    assert_eq!(after.tenant(&tid("acme")).open_str(&NAME, &a1).await.unwrap(), "acme one");
    assert_eq!(after.tenant(&tid("acme")).open_str(&NOTE, &a2).await.unwrap(), "acme two");
    assert_eq!(after.tenant(&tid("globex")).open(&NAME, &g).await.unwrap(), [0, 1, 2, 255]);
    let before = db.open().await;
    before.set_keyring(Some(Keyring::new(old.clone(), [])));
    let e = before.check_master_keys().await.unwrap_err();
    assert!(e.to_string().contains(new.id()), "{e}");

    // Rotating without the key that wraps the data keys stops with its id.
    let lost = db.open().await;
    lost.set_keyring(Some(Keyring::new(MasterKey::generate().unwrap().0, [old])));
    let e = lost.rotate_master().await.unwrap_err();
    assert!(matches!(&e, StoreError::UnknownMasterKey { master_key_id, .. } if master_key_id == new.id()), "{e}");
}

/// A module's own table, as a module's migration would create it: a
/// `tenant_id` column, and on PostgreSQL row-level security like core's.
static NOTES: Migrations = Migrations {
    owner: "notes-module",
    steps: &[Migration {
        version: 1,
        name: "notes",
        sqlite: "CREATE TABLE notes (tenant_id TEXT NOT NULL REFERENCES tenants (id), id TEXT NOT NULL, \
                 body TEXT NOT NULL, PRIMARY KEY (tenant_id, id)) STRICT",
        postgres: "CREATE TABLE notes (tenant_id TEXT NOT NULL REFERENCES tenants (id), id TEXT NOT NULL, \
                   body TEXT NOT NULL, PRIMARY KEY (tenant_id, id));
                   ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
                   ALTER TABLE notes FORCE ROW LEVEL SECURITY;
                   CREATE POLICY notes_tenant ON notes
                       USING (tenant_id = current_setting('plexus.tenant', true))
                       WITH CHECK (tenant_id = current_setting('plexus.tenant', true));",
    }],
};

async fn add_note(scope: &plexus_store::TenantScope<'_>, id: &str, body: &str) -> Result<(), StoreError> {
    plexus_store::tenant_tx!(scope, write, conn => {
        sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, $3)")
            .bind(scope.id().as_str())
            .bind(id)
            .bind(body)
            .execute(&mut *conn)
            .await?;
    });
    Ok(())
}

async fn note_bodies(scope: &plexus_store::TenantScope<'_>) -> Result<Vec<String>, StoreError> {
    Ok(plexus_store::tenant_tx!(scope, read, conn => {
        sqlx::query_scalar::<_, String>("SELECT body FROM notes WHERE tenant_id = $1 ORDER BY id")
            .bind(scope.id().as_str())
            .fetch_all(&mut *conn)
            .await?
    }))
}

pub(crate) async fn module_tables_are_bound_to_their_tenant(db: Arc<TestDb>) {
    let store = db.open().await;
    tenant(&store, "acme").await;
    tenant(&store, "globex").await;
    assert_eq!(store.migrate(&NOTES).await.unwrap(), 1);
    let (acme, globex) = (store.tenant(&tid("acme")), store.tenant(&tid("globex")));
    add_note(&acme, "n1", "東京の在庫").await.unwrap();
    add_note(&acme, "n2", "Osaka stock").await.unwrap();
    add_note(&globex, "n1", "Globex plan").await.unwrap();
    assert_eq!(note_bodies(&acme).await.unwrap(), ["東京の在庫", "Osaka stock"]);
    assert_eq!(note_bodies(&globex).await.unwrap(), ["Globex plan"]);
    // A failing statement rolls the whole transaction back.
    let failed: Result<(), StoreError> = async {
        plexus_store::tenant_tx!(&acme, write, conn => {
            sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, 'n3', 'kept?')")
                .bind(acme.id().as_str())
                .execute(&mut *conn)
                .await?;
            sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, 'n1', 'duplicate')")
                .bind(acme.id().as_str())
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }
    .await;
    assert!(failed.is_err());
    assert_eq!(note_bodies(&acme).await.unwrap().len(), 2, "n3 was rolled back");
    if store.backend() == plexus_store::Backend::Postgres {
        // Row-level security: a statement that forgets its tenant filter
        // still sees, and may write, only the scope's tenant.
        let all: Vec<String> = async {
            Ok::<_, StoreError>(plexus_store::tenant_tx!(&globex, read, conn => {
                sqlx::query_scalar::<_, String>("SELECT body FROM notes ORDER BY body").fetch_all(&mut *conn).await?
            }))
        }
        .await
        .unwrap();
        assert_eq!(all, ["Globex plan"]);
        let cross: Result<(), StoreError> = async {
            plexus_store::tenant_tx!(&globex, write, conn => {
                sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ('acme', 'evil', 'planted')")
                    .execute(&mut *conn)
                    .await?;
            });
            Ok(())
        }
        .await;
        assert!(cross.is_err(), "writing another tenant's row is refused by the policy");
        assert_eq!(note_bodies(&acme).await.unwrap(), ["東京の在庫", "Osaka stock"]);
    }
}

/// Writers at once: on SQLite they share commits (group commit), yet each
/// returns only once its work is committed, and a writer that fails or is
/// abandoned in the middle of its body loses its own work only.
pub(crate) async fn concurrent_writers_commit_together_and_fail_alone(db: Arc<TestDb>) {
    let store = db.open().await;
    tenant(&store, "acme").await;
    store.migrate(&NOTES).await.unwrap();
    let batches_before = store.write_batches().await;
    let mut tasks = tokio::task::JoinSet::new();
    const WRITERS: usize = 60;
    for i in 0..WRITERS {
        let store = store.clone();
        tasks.spawn(async move {
            let scope = store.tenant(&tid("acme"));
            let id = format!("w{i:02}");
            let fails = i % 7 == 3;
            let wrote: Result<(), StoreError> = async {
                plexus_store::tenant_tx!(&scope, write, conn => {
                    sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, $3)")
                        .bind(scope.id().as_str())
                        .bind(id.as_str())
                        .bind(format!("書き手 {i}"))
                        .execute(&mut *conn)
                        .await?;
                    if fails {
                        // After its own insert: a duplicate key fails the body.
                        for _ in 0..2 {
                            sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, 'dup')")
                                .bind(scope.id().as_str())
                                .bind(format!("dup-{i}"))
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                });
                Ok(())
            }
            .await;
            assert_eq!(wrote.is_err(), fails, "writer {i}: {wrote:?}");
            if wrote.is_ok() {
                // Committed by the time it returned: another connection sees it.
                let bodies = note_bodies(&scope).await.unwrap();
                assert!(bodies.contains(&format!("書き手 {i}")), "writer {i} returned before its commit");
            }
        });
    }
    // A writer abandoned in the middle of its body (its caller's future is
    // dropped while it holds the gate).
    let scope = store.tenant(&tid("acme"));
    let abandoned = tokio::time::timeout(std::time::Duration::from_millis(50), async {
        plexus_store::tenant_tx!(&scope, write, conn => {
            sqlx::query("INSERT INTO notes (tenant_id, id, body) VALUES ($1, 'abandoned', 'never')")
                .bind(scope.id().as_str())
                .execute(&mut *conn)
                .await?;
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        });
        Ok::<_, StoreError>(())
    })
    .await;
    assert!(abandoned.is_err(), "the abandoned writer timed out");
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    add_note(&scope, "after", "後から").await.unwrap();
    let mut want: Vec<String> = (0..WRITERS).filter(|i| i % 7 != 3).map(|i| format!("書き手 {i}")).collect();
    want.push("後から".into());
    want.sort();
    let mut got = note_bodies(&scope).await.unwrap();
    got.sort();
    assert_eq!(got, want, "exactly the writers that succeeded, nothing of the failed or abandoned ones");
    if let (Some(before), Some(after)) = (batches_before, store.write_batches().await) {
        let batches = after - before;
        assert!(
            batches < WRITERS as u64,
            "{WRITERS} concurrent writers (and two more) took {batches} commits: none were shared"
        );
    }
    // Durable: a store opened afresh on the same database sees them.
    let again = db.open().await;
    let mut fresh = note_bodies(&again.tenant(&tid("acme"))).await.unwrap();
    fresh.sort();
    assert_eq!(fresh, want);
}

pub(crate) async fn sessions_are_kept_updated_and_ended(db: Arc<TestDb>) {
    use plexus_core::ports::{SessionRecord, SessionRecords};
    // two nodes on one database
    let (a, b) = (db.open().await, db.open().await);
    let hs = r#"{"protocolVersion":"2025-11-25","clientInfo":{"name":"クライアント","version":"1"}}"#;
    assert_eq!(b.load("s-1").await.unwrap(), None, "unknown before it begins");
    a.begin("s-1", hs).await.unwrap();
    assert_eq!(
        b.load("s-1").await.unwrap(),
        Some(SessionRecord { handshake: hs.into(), subscriptions: vec![], log_level: None, owner: None }),
        "another node sees the session a node began"
    );
    // bound to its owner once: a second binding does not change it
    assert_eq!(a.bind("s-1", "owner-山田").await.unwrap().as_deref(), Some("owner-山田"));
    assert_eq!(b.bind("s-1", "owner-other").await.unwrap().as_deref(), Some("owner-山田"));
    assert_eq!(b.load("s-1").await.unwrap().unwrap().owner.as_deref(), Some("owner-山田"));
    assert_eq!(a.bind("s-none", "owner-山田").await.unwrap(), None, "an unknown session is not bound");
    let subs = vec!["shared://config/設定.json".to_owned(), "kb://documents/a%20b".to_owned()];
    b.update("s-1", &subs, Some("debug")).await.unwrap();
    let got = a.load("s-1").await.unwrap().unwrap();
    assert_eq!((got.subscriptions, got.log_level.as_deref()), (subs.clone(), Some("debug")));

    // an update of an unknown session leaves it unknown
    assert!(!a.update_session("s-none", &subs, None).await.unwrap());
    assert_eq!(a.load("s-none").await.unwrap(), None);

    // beginning again (an id reused) starts from nothing
    a.begin("s-1", hs).await.unwrap();
    let again = b.load("s-1").await.unwrap().unwrap();
    assert_eq!((again.subscriptions, again.owner), (Vec::<String>::new(), None));

    // bad input is refused and changes nothing
    for bad in ["", "a\nb"] {
        let e = a.begin_session(bad, hs).await.unwrap_err();
        assert!(matches!(e, StoreError::Invalid { field: "session id", .. }), "{e}");
    }
    let many: Vec<String> = (0..=plexus_store::MAX_SESSION_SUBSCRIPTIONS).map(|i| format!("r://{i}")).collect();
    let e = a.update_session("s-1", &many, None).await.unwrap_err();
    assert!(e.to_string().contains("at most 10000"), "{e}");
    assert_eq!(b.load("s-1").await.unwrap().unwrap().subscriptions, Vec::<String>::new());

    // the client ends it: gone for every node
    b.end("s-1").await.unwrap();
    assert_eq!(a.load("s-1").await.unwrap(), None);
    a.close().await;
    b.close().await;
}
