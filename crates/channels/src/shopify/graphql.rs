//! Admin GraphQL (`POST {base}/admin/api/{version}/graphql.json`): the call itself with its
//! throttling signals, catalog discovery, and the quantity push.
//!
//! **Calls.** Every answer's `extensions.cost.throttleStatus` is recorded (see [`super::throttle`]).
//! A top-level `THROTTLED` error is `RateLimited` with `retry_after = (requestedQueryCost −
//! currentlyAvailable) / restoreRate`; HTTP 429 is `RateLimited` with its `Retry-After`;
//! `ACCESS_DENIED`, 401 and 403 are `Auth`; 5xx and `INTERNAL_SERVER_ERROR` are `Transient`;
//! other errors (schema, `MAX_COST_EXCEEDED`, input size) are `Permanent`.
//!
//! **Discovery** pages `productVariants(first:, after:)` with `pageInfo { hasNextPage endCursor }`
//! and reads, for each variant, its product, its inventory item, and the item's level at each
//! location stockhub stocks: `inventoryLevel(locationId:)` aliased `l0`, `l1`, … A connection
//! costs 2 + `first` × the cost of one node and no query may cost more than 1,000 points, so
//! `first: 250` with `inventoryLevels(first: 50)` nested (26,000 points) would be refused: the
//! page is sized to fit (≈ 199 variants with one location), halved if Shopify still finds it too
//! costly, and each page waits until the bucket holds its cost. An item not stocked at a location
//! has no listing there; an untracked item's listing has no quantity.
//!
//! **Push** is one `inventorySetQuantities` call of at most 250 quantities, `name: "available"`,
//! `reason: "correction"` (stockhub is the system of record and sets the absolute count),
//! `referenceDocumentUri: "gid://stockhub/Push/<key>"`, each quantity with `changeFromQuantity`
//! (the last quantity the channel confirmed, or an explicit `null`), and
//! `@idempotent(key: "<key>")` with a fresh random key. A call that times out is sent once more
//! with the same key and variables, so that Shopify answers with the first attempt's result
//! instead of applying twice. Results:
//! - no user errors: every item `Applied`, confirmed by the `available` change Shopify reports
//!   for it (else the quantity sent);
//! - `CHANGE_FROM_QUANTITY_STALE` (or the older `COMPARE_QUANTITY_STALE`) names its item through
//!   `userErrors.field` (`["input", "quantities", "<i>", …]`): `Stale` (not read back: a read
//!   costs 3 points an item, and the push engine decides when it wants one, through
//!   `read_quantities`); other errors naming an item: `Failed(Permanent)`;
//!   errors naming no item (`input.reason`, …): every item `Failed(Permanent)`; the idempotency
//!   errors: the whole call is `Transient`.
//! - Shopify applies such a call all-or-nothing (no adjustment group), so the items without an
//!   error are sent again at once in a call of their own, up to `SEND_ROUNDS` calls in all: one
//!   stale item does not hold back the rest. Items still refused after that are `Refused` (the
//!   push engine sends them again at once, without counting a failure). If Shopify ever applies
//!   part of a call (an adjustment group alongside user errors), the items without error are
//!   `Applied`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::connector::{ChannelListing, PushItem, PushOutcome};
use crate::error::ChannelError;

use super::throttle::throttled_wait;
use super::wire::{self, Change, UserError};
use super::{listing_key, Shopify};

/// The most a single query may cost.
const MAX_QUERY_COST: u64 = 1000;
/// Largest page and input array Shopify serves or accepts.
pub(crate) const MAX_ITEMS: usize = 250;
/// Pages of variants one discovery reads at most (25,000 objects is also Shopify's pagination
/// depth limit).
const MAX_DISCOVERY_PAGES: usize = 2_000;
/// Consecutive `THROTTLED` answers one discovery page waits out before giving up.
const MAX_THROTTLED_WAITS: u32 = 20;
/// Consecutive transient failures one discovery page retries.
const MAX_TRANSIENT_RETRIES: u32 = 2;
/// Calls one push makes at most: the first, and resends of the items an all-or-nothing call
/// refused only because of others (each resend leaves out the items that had errors).
const SEND_ROUNDS: usize = 3;
/// Items read back per query after a stale compare-and-set (3 points each).
const READ_BACK_CHUNK: usize = 100;

/// How a GraphQL call failed.
#[derive(Debug)]
pub(crate) enum GqlFailure {
    Channel(ChannelError),
    /// `MAX_COST_EXCEEDED`: the same query with a smaller page may pass.
    TooCostly(String),
}

impl From<ChannelError> for GqlFailure {
    fn from(e: ChannelError) -> Self {
        Self::Channel(e)
    }
}

impl GqlFailure {
    fn into_channel(self) -> ChannelError {
        match self {
            Self::Channel(e) => e,
            Self::TooCostly(message) => ChannelError::Permanent(message),
        }
    }
}

fn truncated(text: &str) -> String {
    text.chars().take(300).collect()
}

/// Classifies the top-level `errors` of an answer.
fn classify_errors(errors: &Value, cost: Option<&wire::Cost>) -> GqlFailure {
    let list: Vec<&Value> = match errors {
        Value::Array(list) => list.iter().collect(),
        other => vec![other],
    };
    let code = |e: &Value| {
        e.pointer("/extensions/code")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let message = |e: &Value| {
        e.get("message")
            .and_then(Value::as_str)
            .map_or_else(|| e.to_string(), str::to_owned)
    };
    let codes: Vec<Option<String>> = list.iter().map(|e| code(e)).collect();
    let has = |wanted: &str| codes.iter().any(|c| c.as_deref() == Some(wanted));
    let text = truncated(
        &list
            .iter()
            .map(|e| message(e))
            .collect::<Vec<_>>()
            .join("; "),
    );
    let throttled = has("THROTTLED") || list.iter().any(|e| message(e) == "Throttled");
    if throttled {
        let retry_after = throttled_wait(
            cost.and_then(|c| c.requested_query_cost),
            cost.and_then(|c| c.throttle_status),
        );
        return GqlFailure::Channel(ChannelError::RateLimited { retry_after });
    }
    if has("MAX_COST_EXCEEDED") {
        return GqlFailure::TooCostly(text);
    }
    if has("ACCESS_DENIED") {
        return GqlFailure::Channel(ChannelError::Auth(text));
    }
    if has("INTERNAL_SERVER_ERROR") {
        return GqlFailure::Channel(ChannelError::Transient(text));
    }
    GqlFailure::Channel(ChannelError::Permanent(text))
}

/// A fresh random key in the UUID v4 layout.
pub(crate) fn random_key() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl Shopify {
    fn graphql_url(&self) -> String {
        format!(
            "{}/admin/api/{}/graphql.json",
            self.base_url, self.api_version
        )
    }

    /// One GraphQL call: its `data`, or how it failed.
    pub(crate) async fn graphql(&self, body: &Value) -> Result<Value, GqlFailure> {
        let answer = self
            .send(self.http.post(self.graphql_url()).json(body))
            .await?;
        let envelope: Option<wire::Envelope> = serde_json::from_slice(&answer.body).ok();
        let cost = envelope
            .as_ref()
            .and_then(|e| e.extensions.as_ref())
            .and_then(|x| x.cost.clone());
        if let Some(status) = cost.as_ref().and_then(|c| c.throttle_status) {
            self.throttle().record_graphql(status, Instant::now());
        }
        if !(200..300).contains(&answer.status) {
            let retry_after = match answer.status {
                429 => crate::error::retry_after(&answer.headers).or_else(|| {
                    throttled_wait(
                        cost.as_ref().and_then(|c| c.requested_query_cost),
                        cost.as_ref().and_then(|c| c.throttle_status),
                    )
                }),
                _ => None,
            };
            let error = ChannelError::from_status(
                answer.status,
                retry_after,
                &String::from_utf8_lossy(&answer.body),
            );
            return Err(self.note(error).into());
        }
        let envelope = envelope
            .ok_or_else(|| ChannelError::Transient("the GraphQL answer is not JSON".into()))?;
        if let Some(errors) = envelope
            .errors
            .as_ref()
            .filter(|e| !e.is_null() && e.as_array().is_none_or(|a| !a.is_empty()))
        {
            return Err(match classify_errors(errors, cost.as_ref()) {
                GqlFailure::Channel(e) => GqlFailure::Channel(self.note(e)),
                other => other,
            });
        }
        envelope
            .data
            .filter(|d| !d.is_null())
            .ok_or_else(|| ChannelError::Transient("the GraphQL answer has no data".into()).into())
    }

    /// Remembers the pause a rate limit asks for, so that `backpressure` reports it.
    fn note(&self, error: ChannelError) -> ChannelError {
        if let ChannelError::RateLimited {
            retry_after: Some(pause),
        } = &error
        {
            self.throttle().pause_graphql(*pause, Instant::now());
        }
        error
    }

    /// A GraphQL call that waits for room in the bucket first and waits out throttling and
    /// passing failures, within bounds: for long jobs (discovery), not for pushes.
    async fn graphql_patiently(&self, body: &Value, cost: f64) -> Result<Value, GqlFailure> {
        let (mut throttled, mut failed) = (0, 0);
        loop {
            let wait = self.throttle().graphql_wait(cost, Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            match self.graphql(body).await {
                Err(GqlFailure::Channel(ChannelError::RateLimited { retry_after }))
                    if throttled < MAX_THROTTLED_WAITS =>
                {
                    throttled += 1;
                    tracing::debug!(channel = %self.connection.code, ?retry_after, "shopify: throttled, waiting");
                    tokio::time::sleep(retry_after.unwrap_or(Duration::from_secs(1))).await;
                }
                Err(GqlFailure::Channel(ChannelError::Transient(_) | ChannelError::Timeout))
                    if failed < MAX_TRANSIENT_RETRIES =>
                {
                    failed += 1;
                    tokio::time::sleep(Duration::from_millis(500) * failed).await;
                }
                other => return other,
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Discovery

    pub(crate) async fn discover_listings(&self) -> Result<Vec<ChannelListing>, ChannelError> {
        if self.locations.is_empty() {
            return Err(ChannelError::Permanent(
                "no Shopify location is configured: set location_id or locations".into(),
            ));
        }
        let query = discover_query(self.locations.len());
        let mut first = discovery_page_size(self.locations.len());
        let mut after: Option<String> = None;
        let mut listings = Vec::new();
        let mut pages = 0;
        while pages < MAX_DISCOVERY_PAGES {
            let mut variables = json!({ "first": first, "after": after });
            for (i, location) in self.locations.iter().enumerate() {
                variables[format!("l{i}")] = json!(location);
            }
            let body = json!({ "query": query, "variables": variables });
            let cost = (2 + first as u64 * node_cost(self.locations.len())) as f64;
            let data = match self.graphql_patiently(&body, cost).await {
                Ok(data) => data,
                Err(GqlFailure::TooCostly(_)) if first > 1 => {
                    first /= 2;
                    continue;
                }
                Err(failure) => return Err(failure.into_channel()),
            };
            pages += 1;
            let page: wire::VariantsData = serde_json::from_value(data).map_err(|e| {
                ChannelError::Permanent(format!("productVariants page does not read: {e}"))
            })?;
            let connection = page.product_variants;
            for node in connection.nodes {
                listings.extend(listings_of(node, &self.locations));
            }
            if !connection.page_info.has_next_page {
                return Ok(listings);
            }
            after = Some(connection.page_info.end_cursor.ok_or_else(|| {
                ChannelError::Permanent(
                    "productVariants says there is a next page but gives no endCursor".into(),
                )
            })?);
        }
        Err(ChannelError::Permanent(format!(
            "the catalog has more than {MAX_DISCOVERY_PAGES} pages of variants"
        )))
    }

    // -----------------------------------------------------------------------------------------
    // Push

    pub(crate) async fn push_quantities(
        &self,
        items: &[PushItem],
    ) -> Result<Vec<PushOutcome>, ChannelError> {
        if items.len() > MAX_ITEMS {
            return Err(ChannelError::Permanent(format!(
                "a Shopify push takes at most {MAX_ITEMS} items, got {}",
                items.len()
            )));
        }
        let mut outcomes: Vec<Option<PushOutcome>> = vec![None; items.len()];
        let mut pending = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match Target::of(item) {
                Ok(target) => pending.push((index, target)),
                Err(reason) => {
                    outcomes[index] = Some(PushOutcome::Failed(ChannelError::Permanent(reason)))
                }
            }
        }
        for round in 0..SEND_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let settled = match self.set_quantities(&pending).await {
                Ok(answer) => self.settle(answer, &pending, &mut outcomes).await,
                Err(error) => Err(error),
            };
            match settled {
                Ok(again) => pending = again,
                // The first call speaks for the whole push; after it, a failure is the failure
                // of the items re-sent, and the outcomes already known are kept.
                Err(error) if round == 0 => return Err(error),
                Err(error) => {
                    for (index, _) in pending.drain(..) {
                        outcomes[index] = Some(PushOutcome::Failed(error.clone()));
                    }
                }
            }
        }
        for (index, _) in pending {
            outcomes[index] = Some(PushOutcome::Refused);
        }
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or(PushOutcome::Failed(ChannelError::Transient(
                    "no outcome".into(),
                )))
            })
            .collect())
    }

    /// One `inventorySetQuantities` call; a timeout is retried once with the same key.
    async fn set_quantities(&self, pending: &[(usize, Target)]) -> Result<SetAnswer, ChannelError> {
        let key = random_key();
        let quantities: Vec<Value> = pending
            .iter()
            .map(|(_, t)| {
                json!({
                    "inventoryItemId": t.item,
                    "locationId": t.location,
                    "quantity": t.quantity,
                    "changeFromQuantity": t.change_from,
                })
            })
            .collect();
        let body = json!({
            "query": set_mutation(&key),
            "variables": { "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": format!("gid://stockhub/Push/{key}"),
                "quantities": quantities,
            }},
        });
        let data = match self.graphql(&body).await {
            Err(GqlFailure::Channel(ChannelError::Timeout)) => {
                tracing::debug!(channel = %self.connection.code, "shopify: push timed out, resending with the same idempotency key");
                self.graphql(&body).await
            }
            other => other,
        }
        .map_err(GqlFailure::into_channel)?;
        let data: wire::SetData = serde_json::from_value(data).map_err(|e| {
            ChannelError::Transient(format!("inventorySetQuantities answer does not read: {e}"))
        })?;
        let payload = data.inventory_set_quantities.ok_or_else(|| {
            ChannelError::Transient("inventorySetQuantities answered null".into())
        })?;
        let changes = payload.inventory_adjustment_group.map(|g| g.changes);
        Ok(SetAnswer {
            changes,
            user_errors: payload.user_errors,
        })
    }

    /// Records the outcomes of one call; returns the items to send again.
    async fn settle(
        &self,
        answer: SetAnswer,
        pending: &[(usize, Target)],
        outcomes: &mut [Option<PushOutcome>],
    ) -> Result<Vec<(usize, Target)>, ChannelError> {
        let verdicts = if answer.user_errors.is_empty() {
            vec![None; pending.len()]
        } else {
            self.judge(&answer.user_errors, pending).await?
        };
        let mut again = Vec::new();
        for ((index, target), verdict) in pending.iter().zip(verdicts) {
            match (verdict, &answer.changes) {
                (Some(outcome), _) => outcomes[*index] = Some(outcome),
                (None, Some(changes)) => {
                    outcomes[*index] = Some(PushOutcome::Applied {
                        confirmed: target.confirmed(changes),
                    })
                }
                (None, None) if answer.user_errors.is_empty() => {
                    outcomes[*index] = Some(PushOutcome::Applied {
                        confirmed: target.quantity,
                    })
                }
                (None, None) => again.push((*index, target.clone())),
            }
        }
        Ok(again)
    }

    /// What each item's user errors say: `None` for an item no error names.
    async fn judge(
        &self,
        errors: &[UserError],
        pending: &[(usize, Target)],
    ) -> Result<Vec<Option<PushOutcome>>, ChannelError> {
        let mut verdicts: Vec<Option<PushOutcome>> = vec![None; pending.len()];
        let mut unplaced_stale = false;
        for error in errors {
            let code = error.code.as_deref().unwrap_or("");
            let stale = matches!(
                code,
                "CHANGE_FROM_QUANTITY_STALE" | "COMPARE_QUANTITY_STALE"
            );
            if code.starts_with("IDEMPOTENCY_") {
                return Err(ChannelError::Transient(error.describe()));
            }
            match error.quantity_index().filter(|i| *i < pending.len()) {
                Some(i) if stale => verdicts[i] = Some(PushOutcome::Stale { actual: None }),
                Some(i) => {
                    if !matches!(verdicts[i], Some(PushOutcome::Failed(_))) {
                        verdicts[i] = Some(PushOutcome::Failed(ChannelError::Permanent(
                            error.describe(),
                        )));
                    }
                }
                None if stale => unplaced_stale = true,
                None => {
                    return Ok(vec![
                        Some(PushOutcome::Failed(ChannelError::Permanent(
                            error.describe()
                        )));
                        pending.len()
                    ])
                }
            }
        }
        if unplaced_stale {
            self.place_stale(pending, &mut verdicts).await;
        }
        Ok(verdicts)
    }

    /// A stale error that names no item: reads every compared item back and calls stale those
    /// whose quantity is not the one compared against (all of them if the read fails).
    async fn place_stale(&self, pending: &[(usize, Target)], verdicts: &mut [Option<PushOutcome>]) {
        let compared: Vec<usize> = (0..pending.len())
            .filter(|i| verdicts[*i].is_none() && pending[*i].1.change_from.is_some())
            .collect();
        let pairs: Vec<(String, String)> = compared
            .iter()
            .map(|i| (pending[*i].1.item.clone(), pending[*i].1.location.clone()))
            .collect();
        let actuals = self.read_available(&pairs).await.ok();
        for (n, i) in compared.into_iter().enumerate() {
            let actual = actuals.as_ref().and_then(|a| a[n]);
            if actuals.is_none() || actual != pending[i].1.change_from {
                verdicts[i] = Some(PushOutcome::Stale { actual });
            }
        }
    }

    /// `available` of each (inventory item gid, location gid), one call per 100 pairs.
    pub(crate) async fn read_available(
        &self,
        pairs: &[(String, String)],
    ) -> Result<Vec<Option<i64>>, ChannelError> {
        let mut found = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(READ_BACK_CHUNK) {
            let (query, variables) = read_query(chunk);
            let data = self
                .graphql(&json!({ "query": query, "variables": variables }))
                .await
                .map_err(GqlFailure::into_channel)?;
            for i in 0..chunk.len() {
                let level = data
                    .pointer(&format!("/q{i}/inventoryLevel"))
                    .filter(|v| !v.is_null());
                let level: Option<wire::LevelNode> =
                    level.and_then(|l| serde_json::from_value(l.clone()).ok());
                found.push(level.and_then(|l| l.available()));
            }
        }
        Ok(found)
    }
}

/// What one `inventorySetQuantities` call answered.
struct SetAnswer {
    /// The adjustment group's changes, if the call was applied.
    changes: Option<Vec<Change>>,
    user_errors: Vec<UserError>,
}

/// One quantity to send, addressed by gids.
#[derive(Debug, Clone)]
struct Target {
    item: String,
    location: String,
    quantity: i64,
    change_from: Option<i64>,
}

impl Target {
    fn of(item: &PushItem) -> Result<Self, String> {
        let (item_gid, location) = super::listing_parts(&item.listing).ok_or_else(|| {
            format!(
                "listing {} has no inventory item or location id",
                item.listing.listing_key
            )
        })?;
        Ok(Self {
            item: item_gid,
            location,
            quantity: item.quantity,
            change_from: item.change_from,
        })
    }

    /// The `available` quantity Shopify reports after the change, else the quantity sent.
    fn confirmed(&self, changes: &[Change]) -> i64 {
        fn id(node: &Option<wire::Node>) -> Option<&str> {
            node.as_ref().map(|n| n.id.as_str())
        }
        changes
            .iter()
            .find(|c| {
                c.name == "available"
                    && id(&c.item) == Some(self.item.as_str())
                    && id(&c.location) == Some(self.location.as_str())
            })
            .and_then(|c| c.quantity_after_change)
            .unwrap_or(self.quantity)
    }
}

fn set_mutation(key: &str) -> String {
    format!(
        "mutation StockhubPush($input: InventorySetQuantitiesInput!) {{ \
         inventorySetQuantities(input: $input) @idempotent(key: \"{key}\") {{ \
         inventoryAdjustmentGroup {{ id changes {{ name delta quantityAfterChange item {{ id }} location {{ id }} }} }} \
         userErrors {{ field message code }} }} }}"
    )
}

/// Cost of one variant node of the discovery query with `locations` aliased levels: the
/// variant, its product and its inventory item (1 each), and per location the level and its
/// quantities (1 each).
fn node_cost(locations: usize) -> u64 {
    3 + 2 * locations as u64
}

fn discovery_page_size(locations: usize) -> usize {
    let fit = (MAX_QUERY_COST - 3) / node_cost(locations);
    (fit as usize).clamp(1, MAX_ITEMS)
}

fn discover_query(locations: usize) -> String {
    let (mut declared, mut levels) = (String::new(), String::new());
    for i in 0..locations {
        let _ = write!(declared, ", $l{i}: ID!");
        let _ = write!(levels, " l{i}: inventoryLevel(locationId: $l{i}) {{ quantities(names: [\"available\"]) {{ name quantity }} }}");
    }
    format!(
        "query StockhubDiscover($first: Int!, $after: String{declared}) {{ \
         productVariants(first: $first, after: $after) {{ \
         pageInfo {{ hasNextPage endCursor }} \
         nodes {{ id sku product {{ id }} inventoryItem {{ id tracked{levels} }} }} }} }}"
    )
}

fn read_query(pairs: &[(String, String)]) -> (String, Value) {
    let (mut declared, mut fields) = (Vec::new(), String::new());
    let mut variables = json!({});
    for (i, (item, location)) in pairs.iter().enumerate() {
        declared.push(format!("$i{i}: ID!, $l{i}: ID!"));
        let _ = write!(
            fields,
            " q{i}: inventoryItem(id: $i{i}) {{ inventoryLevel(locationId: $l{i}) {{ quantities(names: [\"available\"]) {{ name quantity }} }} }}"
        );
        variables[format!("i{i}")] = json!(item);
        variables[format!("l{i}")] = json!(location);
    }
    (
        format!("query StockhubRead({}) {{{fields} }}", declared.join(", ")),
        variables,
    )
}

/// The listings of one variant: one per location stockhub stocks where its item is stocked.
fn listings_of(node: wire::VariantNode, locations: &[String]) -> Vec<ChannelListing> {
    let Some(item) = node.inventory_item else {
        return Vec::new();
    };
    let sku = node
        .sku
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let product = node.product.map(|p| p.id);
    let tracked = item.tracked != Some(false);
    let mut listings = Vec::new();
    for (i, location) in locations.iter().enumerate() {
        let Some(level) = item.aliased.get(&format!("l{i}")).filter(|l| !l.is_null()) else {
            continue;
        };
        let level: Option<wire::LevelNode> = serde_json::from_value(level.clone()).ok();
        listings.push(ChannelListing {
            listing_key: listing_key(&item.id, location),
            sku: sku.clone(),
            channel_location: Some(location.clone()),
            ids: json!({
                "product_id": product,
                "variant_id": node.id,
                "inventory_item_id": item.id,
                "location_id": location,
            }),
            quantity: if tracked {
                level.and_then(|l| l.available())
            } else {
                None
            },
        });
    }
    listings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_fit_the_single_query_cost_limit() {
        assert_eq!(discovery_page_size(1), 199);
        assert!(2 + discovery_page_size(1) as u64 * node_cost(1) <= MAX_QUERY_COST);
        assert!(2 + discovery_page_size(3) as u64 * node_cost(3) <= MAX_QUERY_COST);
        assert_eq!(discovery_page_size(1000), 1);
        let query = discover_query(2);
        assert!(
            query.contains("$l1: ID!") && query.contains("l1: inventoryLevel(locationId: $l1)")
        );
    }

    #[test]
    fn keys_look_like_uuids() {
        let key = random_key();
        assert_eq!(key.len(), 36);
        assert_eq!(&key[14..15], "4");
        assert_ne!(key, random_key());
        assert!(set_mutation(&key).contains(&format!("@idempotent(key: \"{key}\")")));
    }

    #[test]
    fn errors_are_classified() {
        let cost: wire::Cost = serde_json::from_value(json!({
            "requestedQueryCost": 302, "actualQueryCost": null,
            "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 102, "restoreRate": 100.0}
        }))
        .unwrap();
        let throttled = json!([{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]);
        assert!(matches!(
            classify_errors(&throttled, Some(&cost)),
            GqlFailure::Channel(ChannelError::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(2)
        ));
        let old_style = json!([{"message": "Throttled"}]);
        assert!(matches!(
            classify_errors(&old_style, None),
            GqlFailure::Channel(ChannelError::RateLimited { retry_after: None })
        ));
        let costly =
            json!([{"message": "too costly", "extensions": {"code": "MAX_COST_EXCEEDED"}}]);
        assert!(matches!(
            classify_errors(&costly, None),
            GqlFailure::TooCostly(_)
        ));
        let denied = json!([{"message": "no", "extensions": {"code": "ACCESS_DENIED"}}]);
        assert!(matches!(
            classify_errors(&denied, None),
            GqlFailure::Channel(ChannelError::Auth(_))
        ));
        let internal =
            json!([{"message": "oops", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]);
        assert!(matches!(
            classify_errors(&internal, None),
            GqlFailure::Channel(ChannelError::Transient(_))
        ));
        let schema = json!([{"message": "Field 'x' doesn't exist on type 'QueryRoot'"}]);
        assert!(matches!(
            classify_errors(&schema, None),
            GqlFailure::Channel(ChannelError::Permanent(_))
        ));
    }

    #[test]
    fn confirmed_quantities_come_from_the_available_change() {
        let target = Target {
            item: "gid://shopify/InventoryItem/1".into(),
            location: "gid://shopify/Location/2".into(),
            quantity: 7,
            change_from: Some(5),
        };
        let changes: Vec<Change> = serde_json::from_value(json!([
            {"name": "on_hand", "quantityAfterChange": 9, "item": {"id": "gid://shopify/InventoryItem/1"}, "location": {"id": "gid://shopify/Location/2"}},
            {"name": "available", "quantityAfterChange": 7, "item": {"id": "gid://shopify/InventoryItem/1"}, "location": {"id": "gid://shopify/Location/2"}}
        ]))
        .unwrap();
        assert_eq!(target.confirmed(&changes), 7);
        assert_eq!(target.confirmed(&changes[..1]), 7);
        assert_eq!(target.confirmed(&[]), 7);
    }

    #[test]
    fn listings_per_stocked_location() {
        let node: wire::VariantNode = serde_json::from_value(json!({
            "id": "gid://shopify/ProductVariant/839212141605670573",
            "sku": " SKU-1 ",
            "product": {"id": "gid://shopify/Product/788032119674292901"},
            "inventoryItem": {
                "id": "gid://shopify/InventoryItem/497213829118231007",
                "tracked": true,
                "l0": {"quantities": [{"name": "available", "quantity": 4}]},
                "l1": null
            }
        }))
        .unwrap();
        let locations = vec![
            "gid://shopify/Location/1".to_owned(),
            "gid://shopify/Location/2".to_owned(),
        ];
        let listings = listings_of(node, &locations);
        assert_eq!(listings.len(), 1);
        let listing = &listings[0];
        assert_eq!(
            listing.listing_key,
            "gid://shopify/InventoryItem/497213829118231007@gid://shopify/Location/1"
        );
        assert_eq!(listing.sku.as_deref(), Some("SKU-1"));
        assert_eq!(listing.quantity, Some(4));
        assert_eq!(
            listing.ids["variant_id"],
            "gid://shopify/ProductVariant/839212141605670573"
        );
        assert_eq!(
            listing.ids["product_id"],
            "gid://shopify/Product/788032119674292901"
        );
        assert_eq!(listing.ids["location_id"], "gid://shopify/Location/1");
    }
}
