//! stockhub's storage. `engine` holds every unit of work, written once against the narrow `Sql`
//! trait; a backend (SQLite here, PostgreSQL later) runs each unit inside a transaction and
//! commits many of them together (group commit). `Store` is the handle the rest of stockhub uses.
#![forbid(unsafe_code)]

pub mod clock;
pub mod engine;
pub mod error;
pub mod model;
pub mod sql;
pub mod sqlite;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ItemError, Result, StoreError};
pub use sql::Sql;
pub use store::{Backend, CommitStats, Job, Store};

/// Where a store lives: `sqlite://PATH`, `sqlite:PATH` or a plain file path.
pub fn open(
    url: &str,
    clock: std::sync::Arc<dyn Clock>,
    options: sqlite::SqliteOptions,
) -> Result<Store> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(StoreError::Invalid(
            "the PostgreSQL backend is not part of this build yet; use a SQLite path".into(),
        ));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() {
        return Err(StoreError::Invalid("the database URL names no file".into()));
    }
    let backend = sqlite::SqliteBackend::open(std::path::Path::new(path), clock, options)?;
    Ok(Store::new(std::sync::Arc::new(backend)))
}
