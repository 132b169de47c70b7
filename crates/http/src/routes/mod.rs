//! The `/v1` API, one module per resource.

pub mod audit;
pub mod catalog;
pub mod channels;
pub mod orders;
pub mod reservations;
pub mod stock;
pub mod system;
