//! Shopify webhooks: the signature, the delivery's permanent identity, and what each topic means
//! for stock — including the table of which order states commit, release or ship.
//!
//! - Signature: `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(raw body, webhook secret)), compared
//!   in constant time before anything is parsed.
//! - Identity: the topic plus `X-Shopify-Event-Id` (shared by every delivery of one merchant
//!   action, across topics and subscriptions — hence the topic in the key), else the topic plus
//!   `X-Shopify-Webhook-Id` (one per delivery, kept across Shopify's retries).
//! - Orders (`orders/create`, `…/updated`, `…/cancelled`, `…/paid`, `…/fulfilled`,
//!   `…/partially_fulfilled`) are versioned snapshots (version = `updated_at` in ms). Each line
//!   reads as:
//!   - `quantity`: the units the line still asks for plus the units its refunds took, i.e.
//!     `min(quantity, current_quantity + Σ refunded)`. A removal by order edit lowers
//!     `current_quantity` without always leaving a refund, so this is the only reading under
//!     which an edit that removes units reaches stockhub; refunded units stay counted here and
//!     are released by the refunds themselves. Without `current_quantity` (REST before 2024-01)
//!     it is the line's `quantity`.
//!   - `shipped`: the units of the line in the order's fulfilments whose status ships (table
//!     [`FULFILLMENT_STATES`]: `success` only). Only if the payload has no `fulfillments` at all
//!     (trimmed by `include_fields`) is it read from the line's `fulfillment_status`:
//!     `fulfilled` → the current quantity, `partial` → current − fulfillable, else 0. Fulfilments
//!     are preferred because `fulfillable_quantity` also falls on refunds, edits and
//!     cancellation, so it cannot tell shipped units from removed ones.
//!   - refunds: the order's embedded `refunds[]`, read as `refunds/create` is.
//! - `orders/edited` carries an `order_edit` (additions and removals), not the order; Shopify
//!   sends `orders/updated` with the whole order for the same edit, so it is recorded and
//!   ignored (a payload that is a whole order is read as one).
//! - `refunds/create`: each refund line releases its units if they had not shipped; `restock`
//!   (whether shipped units come back) is `restock_type` ∈ {`return`, `cancel`,
//!   `legacy_restock`}, or the refund's legacy `restock: true` for lines without a
//!   `restock_type`.
//! - `inventory_levels/update`: the listing `<InventoryItem gid>@<Location gid>` (as discovery
//!   keys it) now shows `available`; ignored for locations stockhub does not stock and for items
//!   whose quantity is not tracked (`available: null`).
//!
//! Whether an order still wants its unshipped units is [`ORDER_STATES`], first matching row:
//!
//! | cancelled (`cancelled_at`) | `financial_status` | unshipped units |
//! |---|---|---|
//! | yes | any | released |
//! | no | `voided` | released |
//! | no | `pending`, `authorized`, `partially_paid`, `paid` | committed |
//! | no | `partially_refunded`, `refunded` | committed (refunded units are released by the refunds) |
//! | no | anything else or missing | committed (a channel order is a fact) |
//!
//! Shipped units stay shipped in every state; test orders (`test: true`) follow the same table.

use serde_json::Value;

use crate::connector::{ChannelLine, ChannelOrder, ChannelRefund, Delivery, Intake, RefundLine};
use crate::error::ParseError;
use crate::{signature, time};

use super::wire;
use super::{gid, listing_key};

/// What an order's state asks of its units that have not shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The units stay promised to the order.
    Commit,
    /// The units go back to stock.
    Release,
}

/// One row of [`ORDER_STATES`]; `None` matches anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderStateRow {
    pub cancelled: Option<bool>,
    pub financial_status: Option<&'static str>,
    pub effect: Effect,
    pub why: &'static str,
}

const fn row(
    cancelled: Option<bool>,
    financial_status: Option<&'static str>,
    effect: Effect,
    why: &'static str,
) -> OrderStateRow {
    OrderStateRow {
        cancelled,
        financial_status,
        effect,
        why,
    }
}

/// Which Shopify order states commit or release unshipped units; the first matching row wins.
pub static ORDER_STATES: &[OrderStateRow] = &[
    row(
        Some(true),
        None,
        Effect::Release,
        "cancelled (cancelled_at set): the merchant cancelled the order",
    ),
    row(
        Some(false),
        Some("voided"),
        Effect::Release,
        "the payment authorization was voided: nothing will be captured",
    ),
    row(
        Some(false),
        Some("pending"),
        Effect::Commit,
        "awaiting payment (e.g. manual or deferred payment)",
    ),
    row(
        Some(false),
        Some("authorized"),
        Effect::Commit,
        "payment authorized, to be captured",
    ),
    row(
        Some(false),
        Some("partially_paid"),
        Effect::Commit,
        "part of the payment received",
    ),
    row(Some(false), Some("paid"), Effect::Commit, "paid"),
    row(
        Some(false),
        Some("partially_refunded"),
        Effect::Commit,
        "open; the refunded units are released by their refunds",
    ),
    row(
        Some(false),
        Some("refunded"),
        Effect::Commit,
        "open; the refunded units are released by their refunds",
    ),
    row(
        Some(false),
        None,
        Effect::Commit,
        "any other or missing status: a channel order is a fact, keep its units",
    ),
];

/// The row of [`ORDER_STATES`] an order falls in.
pub fn order_state(cancelled: bool, financial_status: Option<&str>) -> &'static OrderStateRow {
    ORDER_STATES
        .iter()
        .find(|r| {
            r.cancelled.is_none_or(|c| c == cancelled)
                && r.financial_status
                    .is_none_or(|f| Some(f) == financial_status)
        })
        .unwrap_or(&ORDER_STATES[ORDER_STATES.len() - 1])
}

/// Which fulfilment statuses ship a line's units (REST Fulfillment `status`); others do not.
pub static FULFILLMENT_STATES: &[(&str, bool)] = &[
    ("success", true),
    ("pending", false),
    ("open", false),
    ("cancelled", false),
    ("error", false),
    ("failure", false),
];

/// Whether a fulfilment with this status ships its units (unknown statuses do not).
pub fn fulfillment_ships(status: Option<&str>) -> bool {
    FULFILLMENT_STATES
        .iter()
        .any(|(s, ships)| *ships && Some(*s) == status)
}

/// The topics that carry a whole order.
pub const ORDER_TOPICS: &[&str] = &[
    "orders/create",
    "orders/updated",
    "orders/cancelled",
    "orders/paid",
    "orders/fulfilled",
    "orders/partially_fulfilled",
    "orders/edited",
];

/// Reads one header as text, case-insensitively (`HeaderMap` names are lower-case).
fn header<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

pub(crate) fn verify(secret: &str, headers: &http::HeaderMap, body: &[u8]) -> crate::Verdict {
    use crate::Verdict;
    if secret.is_empty() {
        return Verdict::Invalid("no webhook secret is configured for this channel");
    }
    let Some(signature) = header(headers, "x-shopify-hmac-sha256") else {
        return Verdict::Invalid("missing X-Shopify-Hmac-Sha256");
    };
    if signature::verify(secret.as_bytes(), body, signature) {
        Verdict::Valid
    } else {
        Verdict::Invalid("X-Shopify-Hmac-Sha256 does not match the body")
    }
}

pub(crate) fn identify(headers: &http::HeaderMap) -> Result<Delivery, ParseError> {
    let topic = header(headers, "x-shopify-topic")
        .ok_or_else(|| ParseError("missing X-Shopify-Topic".into()))?;
    let webhook_id = header(headers, "x-shopify-webhook-id");
    let dedupe_key = match (header(headers, "x-shopify-event-id"), webhook_id) {
        (Some(event), _) => format!("{topic}#event:{event}"),
        (None, Some(webhook)) => format!("{topic}#webhook:{webhook}"),
        (None, None) => {
            return Err(ParseError("neither X-Shopify-Event-Id nor X-Shopify-Webhook-Id: the delivery has no permanent identity".into()))
        }
    };
    Ok(Delivery {
        topic: topic.to_owned(),
        dedupe_key,
        delivery_id: webhook_id.map(str::to_owned),
    })
}

/// What a verified delivery means; `locations` are the Shopify location gids stockhub stocks.
pub(crate) fn interpret(
    topic: &str,
    body: &[u8],
    locations: &[String],
) -> Result<Intake, ParseError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("{topic}: the body is not JSON: {e}")))?;
    match topic {
        "orders/edited" if value.get("order_edit").is_some() => Ok(Intake::Ignore(
            "orders/edited carries only the edit; the orders/updated Shopify sends for it carries the order".into(),
        )),
        t if ORDER_TOPICS.contains(&t) => order(value).map(Intake::Order),
        "refunds/create" => refund(value, None).map(Intake::Refund),
        "inventory_levels/update" => inventory_level(&value, locations),
        other => Ok(Intake::Ignore(format!("topic {other} does not change stock"))),
    }
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, value: &Value) -> Result<T, ParseError> {
    T::deserialize(value).map_err(|e| ParseError(format!("{what}: {e}")))
}

/// A REST Order as a versioned snapshot.
pub(crate) fn order(raw: Value) -> Result<ChannelOrder, ParseError> {
    let order: wire::Order = parse("order", &raw)?;
    let external_id = order.id.0.clone();
    let updated_at = order
        .updated_at
        .as_deref()
        .ok_or_else(|| ParseError(format!("order {external_id} has no updated_at")))?;
    let version = time::parse_ms(updated_at).ok_or_else(|| {
        ParseError(format!(
            "order {external_id}: updated_at {updated_at:?} is not a timestamp"
        ))
    })?;
    let cancelled = order
        .cancelled_at
        .as_deref()
        .is_some_and(|c| !c.trim().is_empty());
    let open = order_state(cancelled, order.financial_status.as_deref()).effect == Effect::Commit;
    let refunds = order
        .refunds
        .iter()
        .zip(
            raw.get("refunds")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .map(|(refund, raw)| refund_lines(refund, &external_id, raw.clone()))
        .collect::<Vec<_>>();
    let lines = order
        .line_items
        .iter()
        .map(|line| order_line(line, &order, &refunds))
        .collect();
    // Within one second of `updated_at`, a cancelled order, more refunds or more fulfilments is
    // the later state (none of these can be undone on Shopify).
    let fulfilments = raw
        .get("fulfillments")
        .and_then(Value::as_array)
        .map_or(0, Vec::len) as i64;
    // Units taken off lines (edits and refunds) only grow too.
    let taken_off: i64 = order
        .line_items
        .iter()
        .map(|l| (l.quantity - l.current_quantity.unwrap_or(l.quantity)).max(0))
        .sum();
    let progress =
        i64::from(cancelled) * 500 + (refunds.len() as i64 * 10 + fulfilments + taken_off).min(499);
    let version = version * crate::VERSION_SCALE + progress;
    Ok(ChannelOrder {
        external_id,
        version,
        open,
        lines,
        refunds,
        refunds_to_fetch: Vec::new(),
        raw,
    })
}

fn order_line(
    line: &wire::LineItem,
    order: &wire::Order,
    refunds: &[ChannelRefund],
) -> ChannelLine {
    let line_id = &line.id.0;
    let refunded: i64 = refunds
        .iter()
        .flat_map(|r| &r.lines)
        .filter(|l| &l.line_id == line_id)
        .map(|l| l.quantity)
        .sum();
    let quantity = match line.current_quantity {
        Some(current) => line.quantity.min(current + refunded).max(0),
        None => line.quantity.max(0),
    };
    let shipped = match &order.fulfillments {
        Some(fulfillments) => fulfillments
            .iter()
            .filter(|f| fulfillment_ships(f.status.as_deref()))
            .flat_map(|f| &f.line_items)
            .filter(|l| &l.id.0 == line_id)
            .map(|l| l.quantity.max(0))
            .sum(),
        None => shipped_from_status(line),
    };
    ChannelLine {
        line_id: line_id.clone(),
        ordered: line.quantity.max(0),
        sku: line
            .sku
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        variant_ref: line
            .variant_id
            .as_ref()
            .map(|v| gid("ProductVariant", &v.0)),
        quantity,
        shipped: shipped.min(quantity),
    }
}

/// Shipped units of a line when the payload has no `fulfillments` (see the module doc).
fn shipped_from_status(line: &wire::LineItem) -> i64 {
    let current = line.current_quantity.unwrap_or(line.quantity);
    match line.fulfillment_status.as_deref() {
        Some("fulfilled") => current.max(0),
        Some("partial") => (current - line.fulfillable_quantity.unwrap_or(0)).max(0),
        _ => 0,
    }
}

/// A REST Refund; `order_id` is the embedding order's, for refunds inside an order.
pub(crate) fn refund(raw: Value, order_id: Option<&str>) -> Result<ChannelRefund, ParseError> {
    let refund: wire::Refund = parse("refund", &raw)?;
    let order_id = match (order_id, &refund.order_id) {
        (Some(id), _) => id.to_owned(),
        (None, Some(id)) => id.0.clone(),
        (None, None) => {
            return Err(ParseError(format!(
                "refund {} has no order_id",
                refund.id.0
            )))
        }
    };
    Ok(refund_lines(&refund, &order_id, raw))
}

fn refund_lines(refund: &wire::Refund, order_id: &str, raw: Value) -> ChannelRefund {
    let lines = refund
        .refund_line_items
        .iter()
        .map(|l| RefundLine {
            line_id: l.line_item_id.0.clone(),
            quantity: l.quantity.max(0),
            shipped: match l.restock_type.as_deref() {
                Some("return") => Some(true),
                Some("cancel") => Some(false),
                _ => None,
            },
            restock: match l.restock_type.as_deref() {
                Some(kind) => matches!(kind, "return" | "cancel" | "legacy_restock"),
                None => refund.restock.unwrap_or(false),
            },
        })
        .collect();
    ChannelRefund {
        refund_id: refund.id.0.clone(),
        order_external_id: order_id.to_owned(),
        lines,
        raw,
    }
}

fn inventory_level(value: &Value, locations: &[String]) -> Result<Intake, ParseError> {
    let level: wire::InventoryLevel = parse("inventory level", value)?;
    let (item, location) = match (&level.inventory_item_id, &level.location_id) {
        (Some(item), Some(location)) => {
            (gid("InventoryItem", &item.0), gid("Location", &location.0))
        }
        (None, None) => {
            return Ok(Intake::Ignore(
                "inventory_levels/update without an inventory level (a test notification)".into(),
            ))
        }
        _ => {
            return Err(ParseError(
                "inventory_levels/update needs both inventory_item_id and location_id".into(),
            ))
        }
    };
    if !locations.is_empty() && !locations.contains(&location) {
        return Ok(Intake::Ignore(format!(
            "location {location} is not stocked by stockhub"
        )));
    }
    match level.available {
        Some(available) => Ok(Intake::ListingQuantity {
            listing_key: listing_key(&item, &location),
            available,
            shown_at_ms: level.updated_at.as_deref().and_then(crate::time::parse_ms),
        }),
        None => Ok(Intake::Ignore(format!(
            "{item} is not tracked at {location}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn first_row(cancelled: bool, status: Option<&str>) -> usize {
        let found = order_state(cancelled, status);
        ORDER_STATES
            .iter()
            .position(|r| std::ptr::eq(r, found))
            .unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn signatures_over_the_raw_body() {
        let body = br#"{"id": 820982911946154500}"#;
        let good = signature::sign(b"shpss_secret", body);
        // Header names are case-insensitive: `HeaderMap` lower-cases them.
        let valid = headers(&[("X-Shopify-Hmac-Sha256", &good)]);
        assert_eq!(verify("shpss_secret", &valid, body), crate::Verdict::Valid);
        let tampered = br#"{"id": 820982911946154501}"#;
        assert!(matches!(
            verify("shpss_secret", &valid, tampered),
            crate::Verdict::Invalid(_)
        ));
        assert!(matches!(
            verify("other", &valid, body),
            crate::Verdict::Invalid(_)
        ));
        assert_eq!(
            verify("shpss_secret", &headers(&[]), body),
            crate::Verdict::Invalid("missing X-Shopify-Hmac-Sha256")
        );
        assert!(matches!(
            verify("", &valid, body),
            crate::Verdict::Invalid(_)
        ));
    }

    #[test]
    fn identity_is_the_topic_and_event_id_else_the_webhook_id() {
        let both = headers(&[
            ("x-shopify-topic", "orders/create"),
            ("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
            (
                "X-Shopify-Webhook-Id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            ),
        ]);
        let delivery = identify(&both).unwrap();
        assert_eq!(delivery.topic, "orders/create");
        assert_eq!(
            delivery.dedupe_key,
            "orders/create#event:98880550-7158-44d4-b7cd-2c97c8a091b5"
        );
        assert_eq!(
            delivery.delivery_id.as_deref(),
            Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
        );
        // One merchant action, two topics: two identities.
        let updated = headers(&[
            ("x-shopify-topic", "orders/updated"),
            ("x-shopify-event-id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
        ]);
        assert_ne!(identify(&updated).unwrap().dedupe_key, delivery.dedupe_key);
        let webhook_only = headers(&[
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-webhook-id", "b54557e4"),
        ]);
        assert_eq!(
            identify(&webhook_only).unwrap().dedupe_key,
            "orders/create#webhook:b54557e4"
        );
        assert!(identify(&headers(&[("x-shopify-topic", "orders/create")])).is_err());
        assert!(identify(&headers(&[("x-shopify-event-id", "1")])).is_err());
    }

    // One test per row of ORDER_STATES, in order.

    #[test]
    fn row_0_cancelled_releases_whatever_the_payment() {
        for status in [
            Some("paid"),
            Some("voided"),
            Some("refunded"),
            Some("pending"),
            None,
        ] {
            assert_eq!(first_row(true, status), 0);
            assert_eq!(order_state(true, status).effect, Effect::Release);
        }
    }

    #[test]
    fn row_1_voided_releases() {
        assert_eq!(first_row(false, Some("voided")), 1);
        assert_eq!(order_state(false, Some("voided")).effect, Effect::Release);
    }

    #[test]
    fn row_2_pending_commits() {
        assert_eq!(first_row(false, Some("pending")), 2);
        assert_eq!(order_state(false, Some("pending")).effect, Effect::Commit);
    }

    #[test]
    fn row_3_authorized_commits() {
        assert_eq!(first_row(false, Some("authorized")), 3);
        assert_eq!(
            order_state(false, Some("authorized")).effect,
            Effect::Commit
        );
    }

    #[test]
    fn row_4_partially_paid_commits() {
        assert_eq!(first_row(false, Some("partially_paid")), 4);
        assert_eq!(
            order_state(false, Some("partially_paid")).effect,
            Effect::Commit
        );
    }

    #[test]
    fn row_5_paid_commits() {
        assert_eq!(first_row(false, Some("paid")), 5);
        assert_eq!(order_state(false, Some("paid")).effect, Effect::Commit);
    }

    #[test]
    fn row_6_partially_refunded_commits() {
        assert_eq!(first_row(false, Some("partially_refunded")), 6);
        assert_eq!(
            order_state(false, Some("partially_refunded")).effect,
            Effect::Commit
        );
    }

    #[test]
    fn row_7_refunded_commits() {
        assert_eq!(first_row(false, Some("refunded")), 7);
        assert_eq!(order_state(false, Some("refunded")).effect, Effect::Commit);
    }

    #[test]
    fn row_8_unknown_or_missing_status_commits() {
        for status in [Some("expired"), Some(""), None] {
            assert_eq!(first_row(false, status), 8);
            assert_eq!(order_state(false, status).effect, Effect::Commit);
        }
    }

    #[test]
    fn every_order_state_row_has_its_test() {
        // Adding a row means adding a `row_<n>_…` test above and raising this count.
        assert_eq!(ORDER_STATES.len(), 9);
    }

    #[test]
    fn only_successful_fulfillments_ship() {
        for (status, ships) in FULFILLMENT_STATES {
            assert_eq!(fulfillment_ships(Some(status)), *ships, "{status}");
        }
        assert!(fulfillment_ships(Some("success")));
        assert!(!fulfillment_ships(Some("something_new")));
        assert!(!fulfillment_ships(None));
    }

    fn order_json(extra: Value) -> Value {
        let mut order = json!({
            "id": 820982911946154509u64,
            "updated_at": "2026-01-10T12:00:01-05:00",
            "cancelled_at": null,
            "financial_status": "paid",
            "test": false,
            "line_items": [
                {"id": 487817672276298555u64, "variant_id": 839212141605670573u64, "sku": "A-1",
                 "quantity": 3, "current_quantity": 3, "fulfillable_quantity": 3, "fulfillment_status": null},
                {"id": 487817672276306209u64, "variant_id": null, "sku": "", "quantity": 1,
                 "current_quantity": 1, "fulfillable_quantity": 1, "fulfillment_status": null}
            ],
            "fulfillments": [],
            "refunds": []
        });
        if let (Value::Object(order), Value::Object(extra)) = (&mut order, extra) {
            order.extend(extra);
        }
        order
    }

    fn read(order: Value) -> ChannelOrder {
        super::order(order).unwrap()
    }

    #[test]
    fn test_orders_behave_like_others() {
        let paid = read(order_json(json!({"test": true})));
        assert!(paid.open);
        let cancelled = read(order_json(
            json!({"test": true, "cancelled_at": "2026-01-10T12:00:01-05:00"}),
        ));
        assert!(!cancelled.open);
    }

    #[test]
    fn lines_keep_ids_skus_and_variants() {
        let order = read(order_json(json!({})));
        assert_eq!(order.external_id, "820982911946154509");
        assert_eq!(
            crate::connector::version_time_ms(order.version),
            time::parse_ms("2026-01-10T17:00:01Z").unwrap()
        );
        assert_eq!(order.lines[0].line_id, "487817672276298555");
        assert_eq!(order.lines[0].sku.as_deref(), Some("A-1"));
        assert_eq!(
            order.lines[0].variant_ref.as_deref(),
            Some("gid://shopify/ProductVariant/839212141605670573")
        );
        assert_eq!((order.lines[0].quantity, order.lines[0].shipped), (3, 0));
        assert_eq!(order.lines[1].sku, None);
        assert_eq!(order.lines[1].variant_ref, None);
    }

    #[test]
    fn shipped_comes_from_successful_fulfillments() {
        let order = read(order_json(json!({
            "fulfillments": [
                {"status": "success", "line_items": [{"id": 487817672276298555u64, "quantity": 2}]},
                {"status": "cancelled", "line_items": [{"id": 487817672276298555u64, "quantity": 1}]},
            ]
        })));
        assert_eq!(order.lines[0].shipped, 2);
        assert_eq!(order.lines[1].shipped, 0);
    }

    #[test]
    fn shipped_falls_back_to_line_status_without_fulfillments() {
        let mut value = order_json(json!({}));
        value.as_object_mut().unwrap().remove("fulfillments");
        value["line_items"][0]["fulfillment_status"] = json!("partial");
        value["line_items"][0]["fulfillable_quantity"] = json!(1);
        value["line_items"][1]["fulfillment_status"] = json!("fulfilled");
        value["line_items"][1]["fulfillable_quantity"] = json!(0);
        let order = read(value);
        assert_eq!(order.lines[0].shipped, 2);
        assert_eq!(order.lines[1].shipped, 1);
    }

    #[test]
    fn an_edit_that_removes_units_lowers_the_quantity_and_refunds_do_not() {
        // An order edit took 1 unit (current_quantity 2), a refund took another (current 1).
        let mut value = order_json(json!({
            "refunds": [{"id": 890088186047892321u64, "order_id": 820982911946154509u64, "restock": false,
                "refund_line_items": [{"line_item_id": 487817672276298555u64, "quantity": 1, "restock_type": "cancel"}]}]
        }));
        value["line_items"][0]["current_quantity"] = json!(1);
        let order = read(value);
        assert_eq!(order.lines[0].quantity, 2);
        assert_eq!(order.refunds.len(), 1);
        assert_eq!(order.refunds[0].order_external_id, "820982911946154509");
        assert_eq!(order.refunds[0].refund_id, "890088186047892321");
        assert_eq!(
            order.refunds[0].lines,
            vec![RefundLine {
                line_id: "487817672276298555".into(),
                quantity: 1,
                restock: true,
                shipped: Some(false)
            }]
        );
        // Without current_quantity the line's quantity is taken as is.
        let mut old = order_json(json!({}));
        old["line_items"][0]
            .as_object_mut()
            .unwrap()
            .remove("current_quantity");
        assert_eq!(read(old).lines[0].quantity, 3);
    }

    #[test]
    fn restock_types() {
        let value = json!({"id": 1, "order_id": 2, "restock": true, "refund_line_items": [
            {"line_item_id": 10, "quantity": 1, "restock_type": "no_restock"},
            {"line_item_id": 11, "quantity": 1, "restock_type": "cancel"},
            {"line_item_id": 12, "quantity": 1, "restock_type": "return"},
            {"line_item_id": 13, "quantity": 1, "restock_type": "legacy_restock"},
            {"line_item_id": 14, "quantity": 1}
        ]});
        let refund = refund(value, None).unwrap();
        let restocks: Vec<bool> = refund.lines.iter().map(|l| l.restock).collect();
        assert_eq!(restocks, [false, true, true, true, true]);
        let legacy = super::refund(json!({"id": 1, "order_id": 2, "refund_line_items": [{"line_item_id": 3, "quantity": 2}]}), None).unwrap();
        assert!(!legacy.lines[0].restock);
        assert!(super::refund(json!({"id": 1, "refund_line_items": []}), None).is_err());
    }

    #[test]
    fn orders_edited_is_read_only_as_a_whole_order() {
        let edit = json!({"order_edit": {"id": 1, "order_id": 2, "line_items": {"additions": [], "removals": []}}});
        let body = serde_json::to_vec(&edit).unwrap();
        assert!(matches!(
            interpret("orders/edited", &body, &[]).unwrap(),
            Intake::Ignore(_)
        ));
        let body = serde_json::to_vec(&order_json(json!({}))).unwrap();
        assert!(matches!(
            interpret("orders/edited", &body, &[]).unwrap(),
            Intake::Order(_)
        ));
        for topic in ORDER_TOPICS {
            assert!(
                matches!(interpret(topic, &body, &[]).unwrap(), Intake::Order(_)),
                "{topic}"
            );
        }
    }

    #[test]
    fn other_topics_are_ignored_and_garbage_is_an_error() {
        assert!(matches!(
            interpret("products/update", b"{}", &[]).unwrap(),
            Intake::Ignore(_)
        ));
        assert!(interpret("orders/create", b"not json", &[]).is_err());
        assert!(interpret("orders/create", b"{\"id\": 1}", &[]).is_err());
    }

    #[test]
    fn inventory_levels_use_the_discovery_key() {
        let locations = vec!["gid://shopify/Location/724318913574017303".to_owned()];
        let body = br#"{"inventory_item_id": 497213829118231007, "location_id": 724318913574017303, "available": 7, "updated_at": "2026-01-10T12:00:00-05:00"}"#;
        assert_eq!(
            interpret("inventory_levels/update", body, &locations).unwrap(),
            Intake::ListingQuantity {
                listing_key: "gid://shopify/InventoryItem/497213829118231007@gid://shopify/Location/724318913574017303".into(),
                available: 7,
                shown_at_ms: Some(1_768_064_400_000),
            }
        );
        let elsewhere = br#"{"inventory_item_id": 1, "location_id": 2, "available": 7}"#;
        assert!(matches!(
            interpret("inventory_levels/update", elsewhere, &locations).unwrap(),
            Intake::Ignore(_)
        ));
        let untracked = br#"{"inventory_item_id": 497213829118231007, "location_id": 724318913574017303, "available": null}"#;
        assert!(matches!(
            interpret("inventory_levels/update", untracked, &locations).unwrap(),
            Intake::Ignore(_)
        ));
        assert!(interpret(
            "inventory_levels/update",
            br#"{"inventory_item_id": 1}"#,
            &locations
        )
        .is_err());
    }
}
