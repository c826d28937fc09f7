//! The learning module's tables.

use plexus_store::{Migration, Migrations};

/// The module's tables (every one tenant-scoped; row-level security on
/// PostgreSQL): step 1 the xAPI statements, step 2 the platform's state
/// (configuration, course and bank, learners, mastery, activity events,
/// assessment sessions, BKT parameters, usage counters).
pub const MIGRATIONS: Migrations = Migrations {
    owner: "learning",
    steps: &[
        Migration {
            version: 1,
            name: "xapi",
            sqlite: include_str!("../migrations/0001_xapi.sqlite.sql"),
            postgres: include_str!("../migrations/0001_xapi.postgres.sql"),
        },
        Migration {
            version: 2,
            name: "platform",
            sqlite: include_str!("../migrations/0002_platform.sqlite.sql"),
            postgres: include_str!("../migrations/0002_platform.postgres.sql"),
        },
    ],
};
