//! REST Admin calls: the order backfill and the quantity read-back.
//!
//! - `GET /admin/api/{v}/orders.json?status=any&updated_at_min=<RFC 3339>&limit=250` (the
//!   default `status` is `open`, which would hide cancelled and closed orders), then the `Link`
//!   header's `rel="next"` page: later pages carry only `page_info` and `limit`, as Shopify
//!   requires.
//! - `GET /admin/api/{v}/inventory_levels.json?inventory_item_ids=…&location_ids=…&limit=250`
//!   with at most 50 ids of each per call, paged the same way.
//!
//! Past its first few pages, a read of orders goes at a quarter of the pace it could
//! (`crate::pace`): a long backfill is not urgent, and pushes and webhooks share the store and
//! this process with it.
//!
//! Every call keeps headroom in the REST call bucket (`X-Shopify-Shop-Api-Call-Limit`), and a
//! 429 waits its `Retry-After` (2 s if absent) and tries again, at most [`REST_ATTEMPTS`] times
//! in all; the last 429 is returned as `RateLimited`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::connector::{ChannelOrder, ListingRef};
use crate::error::ChannelError;
use crate::pace::Paced;
use crate::time;

use super::throttle::parse_call_limit;
use super::webhook;
use super::wire::InventoryLevels;
use super::{legacy_id, listing_parts, Answer, Shopify};

/// Attempts of one REST call while it is answered 429.
pub(crate) const REST_ATTEMPTS: u32 = 5;
/// Largest REST page.
const PAGE_LIMIT: usize = 250;
/// The order fields a backfill reads (`fields=`: Shopify leaves the others out of each order,
/// about two thirds of its size — addresses, customer, prices, taxes, shipping lines): what
/// `webhook::order` takes an order's stock effect and version from.
const ORDER_FIELDS: &str =
    "id,updated_at,cancelled_at,financial_status,line_items,fulfillments,refunds";
/// Most ids of one kind in one `inventory_levels.json` call.
const MAX_IDS: usize = 50;
/// Pages one backfill reads at most (250 orders each).
const MAX_ORDER_PAGES: usize = 1_000;
/// Pages one read-back reads per id chunk at most.
const MAX_LEVEL_PAGES: usize = 100;
/// The pause after a 429 without `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The `page_info` of the `rel="next"` link of a `Link` header.
pub(crate) fn next_page_info(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(['"', ' '], "") == "rel=next");
        if !is_next {
            return None;
        }
        let url = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let query = url.split_once('?')?.1;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("page_info="))
            .map(str::to_owned)
    })
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Shopify {
    fn rest_url(&self, resource: &str) -> String {
        format!(
            "{}/admin/api/{}/{resource}",
            self.base_url, self.api_version
        )
    }

    /// One REST `GET`, paced by the call bucket, retried while answered 429.
    async fn rest_get(&self, url: &str) -> Result<Answer, ChannelError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let wait = self.throttle().rest_wait(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let answer = self.send(self.http.get(url)).await?;
            let limit = answer
                .headers
                .get("x-shopify-shop-api-call-limit")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_call_limit);
            if let Some((used, capacity)) = limit {
                self.throttle().record_rest(used, capacity, Instant::now());
            }
            if (200..300).contains(&answer.status) {
                return Ok(answer);
            }
            let retry_after = crate::error::retry_after(&answer.headers);
            if answer.status == 429 {
                self.throttle()
                    .pause_rest(retry_after.unwrap_or(DEFAULT_RETRY_AFTER), Instant::now());
                if attempt < REST_ATTEMPTS {
                    tracing::debug!(channel = %self.connection.code, ?retry_after, "shopify: REST call rate limited, waiting");
                    continue;
                }
            }
            return Err(ChannelError::from_status(
                answer.status,
                retry_after,
                &String::from_utf8_lossy(&answer.body),
            ));
        }
    }

    fn json(answer: &Answer, what: &str) -> Result<Value, ChannelError> {
        serde_json::from_slice(&answer.body)
            .map_err(|e| ChannelError::Transient(format!("{what}: the answer is not JSON: {e}")))
    }

    /// The next page's URL from the answer's `Link` header. Shopify's links carry only
    /// `page_info` and `limit`; `fields` (the one other parameter allowed with `page_info`)
    /// must be given again on every page.
    fn next_url(&self, answer: &Answer, resource: &str, fields: Option<&str>) -> Option<String> {
        let link = answer.headers.get(reqwest::header::LINK)?.to_str().ok()?;
        let page_info = next_page_info(link)?;
        let fields = fields.map_or(String::new(), |f| format!("&fields={f}"));
        Some(format!(
            "{}?limit={PAGE_LIMIT}&page_info={page_info}{fields}",
            self.rest_url(resource)
        ))
    }

    pub(crate) async fn backfill_orders(
        &self,
        since_ms: i64,
    ) -> Result<Vec<ChannelOrder>, ChannelError> {
        let since = encode(&time::format_utc(since_ms));
        let mut url = format!(
            "{}?status=any&updated_at_min={since}&limit={PAGE_LIMIT}&fields={ORDER_FIELDS}",
            self.rest_url("orders.json")
        );
        let mut orders = Vec::new();
        let mut paced = Paced::start();
        for _ in 0..MAX_ORDER_PAGES {
            let answer = self.rest_get(&url).await?;
            let mut page = Self::json(&answer, "orders.json")?;
            let Some(Value::Array(items)) = page.get_mut("orders").map(Value::take) else {
                return Err(ChannelError::Transient(
                    "orders.json: no orders array in the answer".into(),
                ));
            };
            for item in items {
                match webhook::order(item) {
                    Ok(order) => orders.push(order),
                    Err(error) => {
                        tracing::warn!(channel = %self.connection.code, %error, "shopify: backfilled order skipped")
                    }
                }
            }
            match self.next_url(&answer, "orders.json", Some(ORDER_FIELDS)) {
                Some(next) => url = next,
                None => return Ok(orders),
            }
            paced.after_page().await;
        }
        Err(ChannelError::Transient(format!(
            "more than {} orders updated since {}: backfill a shorter window",
            MAX_ORDER_PAGES * PAGE_LIMIT,
            time::format_utc(since_ms)
        )))
    }

    pub(crate) async fn read_levels_of(
        &self,
        listings: &[ListingRef],
    ) -> Result<Vec<(String, i64)>, ChannelError> {
        // (legacy item id, legacy location id) → the listing's key, as the caller knows it.
        let mut wanted: HashMap<(String, String), String> = HashMap::new();
        let (mut items, mut locations) = (Vec::new(), Vec::new());
        let (mut seen_items, mut seen_locations) = (HashSet::new(), HashSet::new());
        for listing in listings {
            let Some((item, location)) = listing_parts(listing) else {
                continue;
            };
            let (Some(item), Some(location)) = (legacy_id(&item), legacy_id(&location)) else {
                continue;
            };
            if seen_items.insert(item.to_owned()) {
                items.push(item.to_owned());
            }
            if seen_locations.insert(location.to_owned()) {
                locations.push(location.to_owned());
            }
            wanted.insert(
                (item.to_owned(), location.to_owned()),
                listing.listing_key.clone(),
            );
        }
        let mut found = Vec::new();
        for item_chunk in items.chunks(MAX_IDS) {
            for location_chunk in locations.chunks(MAX_IDS) {
                let first = format!(
                    "{}?inventory_item_ids={}&location_ids={}&limit={PAGE_LIMIT}",
                    self.rest_url("inventory_levels.json"),
                    item_chunk.join(","),
                    location_chunk.join(",")
                );
                self.read_levels(first, &wanted, &mut found).await?;
            }
        }
        Ok(found)
    }

    /// Pages through one `inventory_levels.json` query, keeping the levels asked for.
    async fn read_levels(
        &self,
        mut url: String,
        wanted: &HashMap<(String, String), String>,
        found: &mut Vec<(String, i64)>,
    ) -> Result<(), ChannelError> {
        for _ in 0..MAX_LEVEL_PAGES {
            let answer = self.rest_get(&url).await?;
            let page: InventoryLevels =
                serde_json::from_value(Self::json(&answer, "inventory_levels.json")?).map_err(
                    |e| {
                        ChannelError::Transient(format!("inventory_levels.json does not read: {e}"))
                    },
                )?;
            for level in page.inventory_levels {
                let (Some(item), Some(location), Some(available)) =
                    (level.inventory_item_id, level.location_id, level.available)
                else {
                    continue;
                };
                if let Some(key) = wanted.get(&(item.0, location.0)) {
                    found.push((key.clone(), available));
                }
            }
            match self.next_url(&answer, "inventory_levels.json", None) {
                Some(next) => url = next,
                None => return Ok(()),
            }
        }
        Err(ChannelError::Transient(
            "inventory_levels.json: too many pages".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        let link = "<https://shop.myshopify.com/admin/api/2026-01/orders.json?limit=250&page_info=abc123>; rel=\"previous\", \
                    <https://shop.myshopify.com/admin/api/2026-01/orders.json?limit=250&page_info=def456>; rel=\"next\"";
        assert_eq!(next_page_info(link).as_deref(), Some("def456"));
        let only_previous = "<https://x/orders.json?page_info=abc>; rel=\"previous\"";
        assert_eq!(next_page_info(only_previous), None);
        assert_eq!(
            next_page_info("<https://x/orders.json?page_info=q-_9>; rel=next").as_deref(),
            Some("q-_9")
        );
        assert_eq!(next_page_info("garbage"), None);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("2026-01-10T12:00:00Z"), "2026-01-10T12%3A00%3A00Z");
        assert_eq!(encode("a+b c"), "a%2Bb%20c");
    }
}
