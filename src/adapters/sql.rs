//! What the two SQL stores share: embedded migrations, the message columns, and the
//! mapping of driver errors.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::ports::StoreError;

/// A migrator for one store's embedded schema (no `sqlx` macros, so no database at build
/// time).
pub(super) fn migrator(init_sql: &'static str) -> Migrator {
    Migrator {
        migrations: Cow::Owned(vec![Migration::new(
            1,
            Cow::Borrowed("init"),
            MigrationType::Simple,
            Cow::Borrowed(init_sql),
            false,
        )]),
        ..Migrator::DEFAULT
    }
}

/// A message's columns as both schemas name them, for `SELECT {MESSAGE_COLUMNS} WHERE …`.
pub(super) const MESSAGE_COLUMNS: &str =
    "m.id, m.room_id, r.slug, m.seq, m.user_id, u.username, m.body, m.client_id, m.sent_at \
     FROM messages m JOIN users u ON u.id = m.user_id JOIN rooms r ON r.id = m.room_id";

pub(super) fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// A unique violation is the caller's duplicate; anything else means the store is not
/// answering as it should.
pub(super) fn from_sqlx(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate,
        _ => unavailable(e),
    }
}
