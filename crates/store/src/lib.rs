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
