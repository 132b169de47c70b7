//! The units of work: every use-case that changes stock, written once against the `Sql` trait
//! and run by a backend inside one transaction (with the ledger, the projections and the
//! idempotency record it touches).

pub mod catalog;
pub mod idempotency;
pub mod inbound;
pub mod intake;
pub mod ledger;
pub mod listings;
pub mod movements;
pub mod orders;
pub mod pushes;
pub mod reservations;
pub mod schedule;
pub mod stock;
pub mod verify;
