//! The Shopify connector: Admin API version 2026-01 or later (`changeFromQuantity`), built to
//! Shopify's documentation (`shared/channels/API_FACTS.md` §1) and real payloads.
//!
//! - [`webhook`]: signature, delivery identity, what each topic means, and the table of which
//!   order states commit, release or ship (read its module doc for the rules).
//! - [`graphql`]: Admin GraphQL calls and their throttling, catalog discovery, and the
//!   `inventorySetQuantities` push with compare-and-set and `@idempotent`.
//! - [`rest`]: REST order backfill and quantity read-back, paced by the REST call bucket.
//! - [`throttle`]: what the throttling signals say, kept between calls; `backpressure()`.
//! - [`wire`]: the wire types; 64-bit ids are kept as their exact digits.
//!
//! A listing is one inventory item at one Shopify location that stockhub stocks: its key is
//! `<InventoryItem gid>@<Location gid>` and its ids are the gids `product_id`, `variant_id`,
//! `inventory_item_id`, `location_id`. An order line's `variant_ref` is the variant's gid, the
//! same string as its listing's `variant_id`. Every HTTP call carries `X-Shopify-Access-Token`
//! and goes to `{base_url}/admin/api/{api_version}/…`.

mod graphql;
mod rest;
mod throttle;
pub mod webhook;
mod wire;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::connector::{
    ChannelListing, ChannelOrder, ChannelRefund, Connector, Delivery, Intake, ListingRef, PushItem,
    PushMode, PushOutcome, Verdict,
};
use crate::error::{ChannelError, ParseError};
use crate::ChannelConnection;

pub use webhook::{Effect, OrderStateRow, FULFILLMENT_STATES, ORDER_STATES};

/// The Admin API version used when the connection names none.
pub const DEFAULT_API_VERSION: &str = "2026-01";
/// The most one answer may weigh.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A connector to one Shopify store.
pub struct Shopify {
    pub(crate) connection: ChannelConnection,
    pub(crate) http: reqwest::Client,
    base_url: String,
    api_version: String,
    /// The Shopify locations stockhub stocks, as gids.
    locations: Vec<String>,
    throttle: Mutex<throttle::Throttle>,
}

impl Shopify {
    pub fn new(connection: ChannelConnection, http: reqwest::Client) -> Self {
        let base_url = connection.base_url.trim().trim_end_matches('/').to_owned();
        let api_version = match connection.api_version.trim() {
            "" => DEFAULT_API_VERSION.to_owned(),
            version => version.to_owned(),
        };
        let locations = connection
            .locations
            .iter()
            .map(|l| gid("Location", l.trim()))
            .collect();
        Self {
            connection,
            http,
            base_url,
            api_version,
            locations,
            throttle: Mutex::default(),
        }
    }

    fn throttle(&self) -> MutexGuard<'_, throttle::Throttle> {
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one authenticated request and reads its answer, whatever its status.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, ChannelError> {
        self.connection.calls.add_one();
        let response = request
            .header(
                "X-Shopify-Access-Token",
                self.connection.access_token.expose(),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| ChannelError::from_transport(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_body(response).await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// An HTTP answer, read whole.
pub(crate) struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, ChannelError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ChannelError::from_transport(&e))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ChannelError::Permanent(format!(
                "the answer is larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `gid://shopify/<kind>/<id>` of a legacy id; a gid is kept as it is.
pub(crate) fn gid(kind: &str, id: &str) -> String {
    if id.starts_with("gid://") {
        id.to_owned()
    } else {
        format!("gid://shopify/{kind}/{id}")
    }
}

/// The legacy (numeric) id of a gid such as `gid://shopify/Location/123` (or of a bare id).
pub(crate) fn legacy_id(gid: &str) -> Option<&str> {
    let tail = gid.rsplit('/').next()?.split('?').next()?;
    (!tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit())).then_some(tail)
}

/// A listing's key: the inventory item at the location.
pub(crate) fn listing_key(item_gid: &str, location_gid: &str) -> String {
    format!("{item_gid}@{location_gid}")
}

/// The inventory item and location gids of a listing, from its ids, else its key.
pub(crate) fn listing_parts(listing: &ListingRef) -> Option<(String, String)> {
    let id = |key: &str| match listing.ids.get(key)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let from_key = listing.listing_key.rsplit_once('@');
    let item = id("inventory_item_id").or_else(|| from_key.map(|(i, _)| i.to_owned()))?;
    let location = id("location_id")
        .or_else(|| listing.channel_location.clone())
        .or_else(|| from_key.map(|(_, l)| l.to_owned()))?;
    Some((gid("InventoryItem", &item), gid("Location", &location)))
}

#[async_trait]
impl Connector for Shopify {
    fn kind(&self) -> &'static str {
        "shopify"
    }

    fn push_mode(&self) -> PushMode {
        PushMode::Batch {
            max_items: graphql::MAX_ITEMS,
        }
    }

    fn compare_and_set(&self) -> bool {
        true
    }

    /// `changeFromQuantity` is checked atomically with the write.
    fn sales_can_race_writes(&self) -> bool {
        false
    }

    fn verify(&self, headers: &http::HeaderMap, body: &[u8]) -> Verdict {
        webhook::verify(self.connection.webhook_secret.expose(), headers, body)
    }

    fn identify(&self, headers: &http::HeaderMap, _body: &[u8]) -> Result<Delivery, ParseError> {
        webhook::identify(headers)
    }

    fn interpret(&self, delivery: &Delivery, body: &[u8]) -> Result<Intake, ParseError> {
        webhook::interpret(&delivery.topic, body, &self.locations)
    }

    /// Shopify embeds an order's refunds, with their quantities, in the order itself.
    async fn fetch_refunds(
        &self,
        _order: &ChannelOrder,
    ) -> Result<Vec<ChannelRefund>, ChannelError> {
        Ok(Vec::new())
    }

    async fn discover(&self) -> Result<Vec<ChannelListing>, ChannelError> {
        self.discover_listings().await
    }

    async fn push(&self, items: &[PushItem]) -> Result<Vec<PushOutcome>, ChannelError> {
        self.push_quantities(items).await
    }

    async fn read_quantities(
        &self,
        listings: &[ListingRef],
    ) -> Result<Vec<(String, i64)>, ChannelError> {
        self.read_levels_of(listings).await
    }

    async fn orders_updated_since(&self, since_ms: i64) -> Result<Vec<ChannelOrder>, ChannelError> {
        self.backfill_orders(since_ms).await
    }

    fn backpressure(&self) -> Option<Duration> {
        self.throttle().backpressure(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listing(key: &str, ids: serde_json::Value, location: Option<&str>) -> ListingRef {
        ListingRef {
            listing_key: key.into(),
            channel_location: location.map(str::to_owned),
            ids,
            channel_sku: None,
        }
    }

    #[test]
    fn gids_and_legacy_ids() {
        assert_eq!(
            gid("Location", "724318913574017303"),
            "gid://shopify/Location/724318913574017303"
        );
        assert_eq!(
            gid("Location", "gid://shopify/Location/1"),
            "gid://shopify/Location/1"
        );
        assert_eq!(
            legacy_id("gid://shopify/InventoryItem/497213829118231007"),
            Some("497213829118231007")
        );
        assert_eq!(
            legacy_id("gid://shopify/InventoryLevel/1?inventory_item_id=2"),
            Some("1")
        );
        assert_eq!(legacy_id("42"), Some("42"));
        assert_eq!(legacy_id("gid://shopify/Location/x"), None);
    }

    #[test]
    fn listing_parts_from_ids_or_key() {
        let from_ids = listing(
            "whatever",
            json!({"inventory_item_id": "gid://shopify/InventoryItem/1", "location_id": "gid://shopify/Location/2"}),
            None,
        );
        assert_eq!(
            listing_parts(&from_ids),
            Some((
                "gid://shopify/InventoryItem/1".into(),
                "gid://shopify/Location/2".into()
            ))
        );
        let from_key = listing(
            "gid://shopify/InventoryItem/3@gid://shopify/Location/4",
            json!({}),
            None,
        );
        assert_eq!(
            listing_parts(&from_key),
            Some((
                "gid://shopify/InventoryItem/3".into(),
                "gid://shopify/Location/4".into()
            ))
        );
        let numeric = listing("x", json!({"inventory_item_id": 5}), Some("6"));
        assert_eq!(
            listing_parts(&numeric),
            Some((
                "gid://shopify/InventoryItem/5".into(),
                "gid://shopify/Location/6".into()
            ))
        );
        assert_eq!(listing_parts(&listing("nothing", json!({}), None)), None);
    }
}
