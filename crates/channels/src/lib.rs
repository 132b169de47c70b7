//! stockhub's channel connectors. A `Connector` speaks one channel kind's real wire format:
//! its webhook signatures and delivery identities, its catalog listing, its inventory set and
//! read calls with their batch limits, its order listing for backfill, and its throttling
//! signals. Everything a connector learns is handed back as plain data (`Intake`,
//! `ChannelListing`, `PushOutcome`); the app layer decides what to store.
#![forbid(unsafe_code)]

pub mod connection;
pub mod connector;
pub mod error;
pub mod pace;
pub mod retry;
pub mod shopify;
pub mod signature;
pub mod time;
pub mod woocommerce;

pub use connection::{CallCounter, ChannelConnection, Kind, Secret};
pub use connector::{
    ChannelLine, ChannelListing, ChannelOrder, ChannelRefund, Connector, Delivery, Intake,
    ListingRef, PushItem, PushMode, PushOutcome, RefundLine, Verdict, VERSION_SCALE,
};
pub use error::{ChannelError, ParseError};

/// Builds the connector for a channel's connection settings.
pub fn connector(connection: ChannelConnection) -> Result<Box<dyn Connector>, ChannelError> {
    let http = reqwest::Client::builder()
        .timeout(connection.request_timeout)
        .pool_max_idle_per_host(16)
        .build()
        .map_err(|e| ChannelError::Permanent(format!("building the HTTP client: {e}")))?;
    match connection.kind {
        Kind::Shopify => Ok(Box::new(shopify::Shopify::new(connection, http))),
        Kind::WooCommerce => Ok(Box::new(woocommerce::WooCommerce::new(connection, http))),
    }
}
