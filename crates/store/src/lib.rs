//! stockhub's storage. `engine` holds every unit of work, written once against the narrow `Sql`
//! trait; a backend (embedded SQLite, or PostgreSQL for several processes) runs each unit inside
//! a transaction and commits many of them together (group commit). `Store` is the handle the
//! rest of stockhub uses.
#![forbid(unsafe_code)]

pub mod clock;
pub mod copy;
pub mod engine;
pub mod error;
pub mod model;
pub mod postgres;
pub mod sql;
pub mod sqlite;
mod store;
pub mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ItemError, Result, StoreError};
pub use sql::Sql;
pub use store::{Backend, CommitStats, Job, Store};

/// Tuning shared by the backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Units of work queued for the writers before callers wait.
    pub queue_capacity: usize,
    /// Most units of work committed in one transaction.
    pub group_max: usize,
    /// Read-only connections.
    pub readers: usize,
    /// Write connections (PostgreSQL; SQLite has exactly one writer).
    pub writers: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        let sqlite = sqlite::SqliteOptions::default();
        Self {
            queue_capacity: sqlite.queue_capacity,
            group_max: sqlite.group_max,
            readers: sqlite.readers,
            writers: postgres::PostgresOptions::default().writers,
        }
    }
}

/// Whether a database URL names a PostgreSQL server.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the store a URL names: `postgres://…` (or `postgresql://…`) for a PostgreSQL server;
/// `sqlite://PATH`, `sqlite:PATH` or a plain file path for an embedded SQLite file.
pub fn open(url: &str, clock: std::sync::Arc<dyn Clock>, options: &StoreOptions) -> Result<Store> {
    if is_postgres_url(url) {
        let backend = postgres::PostgresBackend::open(
            url,
            clock,
            postgres::PostgresOptions {
                queue_capacity: options.queue_capacity,
                group_max: options.group_max,
                writers: options.writers,
                readers: options.readers,
            },
        )?;
        return Ok(Store::new(std::sync::Arc::new(backend)));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() {
        return Err(StoreError::Invalid("the database URL names no file".into()));
    }
    let backend = sqlite::SqliteBackend::open(
        std::path::Path::new(path),
        clock,
        sqlite::SqliteOptions {
            queue_capacity: options.queue_capacity,
            group_max: options.group_max,
            readers: options.readers,
            ..Default::default()
        },
    )?;
    Ok(Store::new(std::sync::Arc::new(backend)))
}
