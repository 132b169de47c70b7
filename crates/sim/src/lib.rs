//! The channel simulator: fake Shopify and WooCommerce stores that run on local ports and behave
//! like the real stores as `shared/channels/API_FACTS.md` describes them (Shopify §1 and §9,
//! WooCommerce §2 and §10): the calls a connector makes, with their real request and response
//! shapes, errors and limits; the store's own sales, which lower `available` at once; webhooks
//! sent the way each platform sends them; a display log of every quantity a shopper could have
//! seen; the span of every quantity write; and faults injected on command.
//!
//! The simulator depends on nothing of stockhub's (DESIGN §4): it is a second, independent
//! reading of each channel's documentation, so that a connector's misreading cannot hide behind
//! the same misreading in its fake.
//!
//! Start a store from a test with [`shopify::ShopifySim::start`] or
//! [`woocommerce::WooSim::start`] (several at once with [`Fleet::start`]); drive and inspect
//! it through the returned handle, or over HTTP through the JSON control API under `/_sim/…`
//! that every store also serves.
#![forbid(unsafe_code)]

pub mod clock;
pub mod display;
pub mod faults;
pub mod fleet;
pub mod graphql;
pub mod seed;
pub mod shopify;
pub mod woocommerce;

mod bucket;
mod error;
mod http_util;
mod money;
mod php_json;
mod signature;
mod writes;

pub use bucket::BucketConfig;
pub use display::{Cause, DisplayEntry};
pub use error::SimError;
pub use faults::{Faults, Hold};
pub use fleet::{Fleet, FleetSpec, StoreAddress};
pub use seed::{CatalogSpec, ProductSeed, VariantSeed};
pub use writes::WriteSpan;
