//! The WooCommerce connector (REST API v3, `{base_url}/wp-json/wc/v3/`, HTTP Basic with the
//! consumer key and secret), built to WooCommerce's documentation and source (API_FACTS §2, §10).
//!
//! - `webhook`: signatures, delivery identity (never the `X-WC-Webhook-Delivery-ID` alone), and
//!   what `order.*` topics mean.
//! - `status`: which order statuses commit, ship or release — `processing` and `on-hold` commit;
//!   `completed` commits and ships; `pending`, `failed`, `cancelled`, `refunded`, `trash` and
//!   `checkout-draft` release; an unknown (custom) status commits.
//! - `orders`: orders as versioned snapshots (`date_modified_gmt`), and refunds, which reference
//!   the order's line items through `_refunded_item_id` and whose restock WooCommerce records on
//!   the order line (`_restock_refunded_items`).
//! - `listing`: listing keys — `product/<id>` for a simple product, `variation/<product_id>/
//!   <variation_id>` for a variation.
//! - `catalog`: discovery and quantity reads; `push`: the batch endpoints, ≤ 100 items a call.
//! - `rest`: the HTTP calls, paging and failure classification; `wire`: the JSON read.

mod catalog;
pub mod listing;
pub mod orders;
mod push;
mod rest;
pub mod status;
pub mod webhook;
mod wire;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::connector::{
    ChannelListing, ChannelOrder, ChannelRefund, Connector, Delivery, Intake, ListingRef, PushItem,
    PushMode, PushOutcome, Verdict,
};
use crate::error::{ChannelError, ParseError};
use crate::{time, ChannelConnection};

pub use listing::Target;
pub use status::{Effect, StatusRow, STATUS_TABLE};

/// The most items one batch call takes (WooCommerce's `woocommerce_rest_batch_items_limit`).
pub const BATCH_ITEMS_MAX: usize = 100;

pub struct WooCommerce {
    connection: ChannelConnection,
    api: rest::Api,
}

impl WooCommerce {
    pub fn new(connection: ChannelConnection, http: reqwest::Client) -> Self {
        let api = rest::Api::new(&connection, http);
        Self { connection, api }
    }
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Connector for WooCommerce {
    fn kind(&self) -> &'static str {
        "woocommerce"
    }

    fn push_mode(&self) -> PushMode {
        PushMode::Batch {
            max_items: BATCH_ITEMS_MAX,
        }
    }

    /// Emulated per batch call: each call's items are read right before they are set, and those
    /// showing other than expected are left out, answered `Stale` with what they show.
    fn compare_and_set(&self) -> bool {
        true
    }

    fn verify(&self, headers: &http::HeaderMap, body: &[u8]) -> Verdict {
        webhook::verify(&self.connection.webhook_secret, headers, body)
    }

    fn identify(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<Delivery, ParseError> {
        webhook::identify(headers, body)
    }

    fn interpret(&self, delivery: &Delivery, body: &[u8]) -> Result<Intake, ParseError> {
        webhook::interpret(delivery, body, now_ms())
    }

    /// `GET orders/{id}/refunds`, for the refunds the snapshot lists (none listed, no call).
    async fn fetch_refunds(
        &self,
        order: &ChannelOrder,
    ) -> Result<Vec<ChannelRefund>, ChannelError> {
        if order.refunds_to_fetch.is_empty() {
            return Ok(Vec::new());
        }
        let id: u64 = order.external_id.parse().map_err(|_| {
            ChannelError::Permanent(format!(
                "{:?} is not a WooCommerce order id",
                order.external_id
            ))
        })?;
        let raw = self
            .api
            .get_all(&format!("orders/{id}/refunds"), &[])
            .await?;
        orders::parse_refunds(order, raw)
            .map_err(|e| ChannelError::Transient(format!("WooCommerce refunds of order {id}: {e}")))
    }

    async fn discover(&self) -> Result<Vec<ChannelListing>, ChannelError> {
        catalog::discover(&self.api).await
    }

    async fn push(&self, items: &[PushItem]) -> Result<Vec<PushOutcome>, ChannelError> {
        push::push(&self.api, items).await
    }

    async fn read_quantities(
        &self,
        listings: &[ListingRef],
    ) -> Result<Vec<(String, i64)>, ChannelError> {
        catalog::read_quantities(&self.api, listings).await
    }

    /// `GET orders?modified_after=…&dates_are_gmt=true&status=any&orderby=id&order=asc`, every
    /// page, one after another at a backfill's pace (`Api::get_all_in_background`); an order met
    /// twice is kept once, at its latest version. WooCommerce keeps
    /// `date_modified` to the second and `modified_after` excludes the second it names, so the
    /// time asked is the second before the one `since_ms` falls in: an order modified later in
    /// that same second is read too.
    async fn orders_updated_since(&self, since_ms: i64) -> Result<Vec<ChannelOrder>, ChannelError> {
        let query = [
            (
                "modified_after",
                time::format_utc((since_ms.div_euclid(1000) - 1) * 1000),
            ),
            ("dates_are_gmt", "true".to_owned()),
            ("status", "any".to_owned()),
            // Oldest first: orders placed while the pages are read come after the last page
            // instead of pushing older ones onto pages already read.
            ("orderby", "id".to_owned()),
            ("order", "asc".to_owned()),
        ];
        let mut latest: BTreeMap<String, ChannelOrder> = BTreeMap::new();
        for raw in self.api.get_all_in_background("orders", &query).await? {
            match orders::parse_order(raw) {
                Ok(order) => {
                    if latest
                        .get(&order.external_id)
                        .is_none_or(|seen| seen.version <= order.version)
                    {
                        latest.insert(order.external_id.clone(), order);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable WooCommerce order skipped in backfill")
                }
            }
        }
        Ok(latest.into_values().collect())
    }

    fn backpressure(&self) -> Option<Duration> {
        self.api.backpressure()
    }
}
