//! plexus-store integration tests: one storage suite, written once (in
//! `suite`) and run against SQLite and PostgreSQL, plus what only one
//! backend has (row-level security, SQLite URL forms).
//!
//! PostgreSQL runs when `PLEXUS_TEST_POSTGRES_URL` names a database a
//! superuser can reach (`postgres://postgres@127.0.0.1:5432/test`). Each
//! test then gets its own non-superuser role and schema, so row-level
//! security binds the store exactly as it would in production, and drops
//! both afterwards.
#![allow(clippy::unwrap_used)]

mod harness;
mod postgres;
mod sqlite;
mod suite;

/// For each suite function, one `#[tokio::test]` per backend.
macro_rules! storage_suite {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::harness::run(crate::harness::Kind::Sqlite, crate::suite::$name).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::harness::run(crate::harness::Kind::Postgres, crate::suite::$name).await;
                }
            )*
        }
    };
}

storage_suite!(
    tenants_are_created_listed_and_deactivated,
    keys_are_issued_listed_revoked_and_authenticated,
    tenants_are_isolated_through_the_scoped_api,
    concurrent_appends_form_one_intact_chain,
    reopening_continues_the_chain,
    a_failed_batch_is_refused_and_the_writer_recovers,
    an_edited_record_is_named_by_verify,
    the_audit_log_refuses_update_and_delete,
    audit_records_are_read_by_range,
    migrations_are_idempotent_and_checked,
    sealed_fields_open_only_in_their_tenant_and_field,
    master_rotation_rewraps_every_data_key,
    module_tables_are_bound_to_their_tenant,
    concurrent_writers_commit_together_and_fail_alone,
    sessions_are_kept_updated_and_ended,
);
