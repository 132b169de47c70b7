//! WooCommerce orders and refunds as stockhub's versioned snapshots.
//!
//! An order (webhook body or `GET orders`) becomes a `ChannelOrder`: its `id`, its
//! `date_modified_gmt` as the version, `open` from the status table, one line per line item
//! (`quantity` is what was ordered; refunds never change it), and the ids of its refunds, which
//! WooCommerce lists without quantities.
//!
//! A refund (`GET orders/{id}/refunds`) holds new line items with a negative `quantity` and a
//! `_refunded_item_id` meta naming the order's line item. Whether a refund restocked is not on the
//! refund: `api_restock` is write-only. WooCommerce records it on the ORDER's line item instead,
//! as `_restock_refunded_items`, a running total of units restocked by all refunds of that item
//! (`wc_restock_refunded_items`). So the restocked units of a line are given to its refunds oldest
//! first, up to that total; a refund line that is partly restocked comes back as two lines, one
//! restocked and one not. When WooCommerce's total cannot say which refund restocked, this errs
//! towards fewer restocked units for the most recent refund, never more (an under-count is a
//! visible drift; an over-count would be stock that is not there). Unshipped refunded units are
//! released whatever the flag says.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use super::listing::{self, Target};
use super::status;
use super::wire::{self, LineItem, Order, Refund};
use crate::connector::{ChannelLine, ChannelOrder, ChannelRefund, RefundLine};
use crate::error::ParseError;
use crate::time;

/// The order meta WooCommerce puts on a refund's line item, naming the order's line item.
const REFUNDED_ITEM_ID: &str = "_refunded_item_id";
/// The order line meta counting units restocked by refunds, over all of them.
const RESTOCK_REFUNDED_ITEMS: &str = "_restock_refunded_items";

/// An order's JSON as a snapshot.
pub fn parse_order(raw: Value) -> Result<ChannelOrder, ParseError> {
    let order =
        Order::deserialize(&raw).map_err(|e| ParseError(format!("a WooCommerce order: {e}")))?;
    let effect = status::effect(&order.status);
    // Within one second of `date_modified_gmt`, rank by how far the status has gone, then by
    // refunds: deliveries are built at send time, so the more advanced state is the later one.
    let progress = status_rank(&order.status) * 10 + (order.refunds.len() as i64).min(9);
    let version = version(&order)? * crate::VERSION_SCALE + progress;
    let lines = order
        .line_items
        .iter()
        .map(|item| {
            let quantity = item.quantity.max(0);
            ChannelLine {
                line_id: item.id.to_string(),
                sku: listing::line_sku(item.sku.as_ref()),
                variant_ref: Target::of_line(item.product_id, item.variation_id)
                    .map(Target::listing_key),
                quantity,
                ordered: quantity,
                shipped: if effect.ships() { quantity } else { 0 },
            }
        })
        .collect();
    Ok(ChannelOrder {
        external_id: order.id.to_string(),
        version,
        open: effect.open(),
        lines,
        refunds: Vec::new(),
        refunds_to_fetch: order.refunds.iter().map(|r| r.id.to_string()).collect(),
        raw,
    })
}

/// How far along WooCommerce's order flow a status is.
fn status_rank(status: &str) -> i64 {
    match status {
        "checkout-draft" | "pending" => 0,
        "failed" => 1,
        "on-hold" => 2,
        "processing" => 3,
        "completed" => 4,
        "refunded" | "cancelled" => 5,
        "trash" => 6,
        _ => 3,
    }
}

/// `date_modified_gmt` in ms (GMT, written without a zone), or `date_created_gmt` for an order
/// never modified.
fn version(order: &Order) -> Result<i64, ParseError> {
    [&order.date_modified_gmt, &order.date_created_gmt]
        .into_iter()
        .flatten()
        .find_map(|raw| time::parse_ms(raw))
        .ok_or_else(|| {
            ParseError(format!(
                "WooCommerce order {} has no readable date_modified_gmt",
                order.id
            ))
        })
}

/// The snapshot an `order.deleted` delivery stands for. WooCommerce sends only `{"id": …}` for a
/// deleted resource, so there are no lines and no date: the order releases everything, at the
/// version `now_ms` (the time it is read), so that a later `order.restored` — whose
/// `date_modified_gmt` is the restore time — applies over it.
pub fn deleted_order(raw: Value, now_ms: i64) -> Result<ChannelOrder, ParseError> {
    let id = raw
        .get("id")
        .and_then(wire::uint)
        .ok_or_else(|| ParseError("an order.deleted delivery without an order id".into()))?;
    Ok(ChannelOrder {
        external_id: id.to_string(),
        version: now_ms * crate::VERSION_SCALE + crate::VERSION_SCALE - 1,
        open: false,
        lines: Vec::new(),
        refunds: Vec::new(),
        refunds_to_fetch: Vec::new(),
        raw,
    })
}

/// An order line as the refunds need it.
struct OrderLine {
    target: Option<Target>,
    restocked: i64,
}

/// The refunds of `order`, read from `GET orders/{id}/refunds`. Only refunds the snapshot lists are
/// kept: the snapshot's `_restock_refunded_items` counts exactly those, and a newer refund comes
/// with the next snapshot (WooCommerce sends `order.updated` for every refund).
pub fn parse_refunds(
    order: &ChannelOrder,
    raw_refunds: Vec<Value>,
) -> Result<Vec<ChannelRefund>, ParseError> {
    let listed: HashSet<&str> = order.refunds_to_fetch.iter().map(String::as_str).collect();
    let mut refunds = Vec::new();
    for raw in raw_refunds {
        let refund = Refund::deserialize(&raw)
            .map_err(|e| ParseError(format!("a WooCommerce refund: {e}")))?;
        if listed.contains(refund.id.to_string().as_str()) {
            let created = refund
                .date_created_gmt
                .as_deref()
                .and_then(time::parse_ms)
                .unwrap_or(i64::MAX);
            refunds.push((created, refund, raw));
        }
    }
    refunds.sort_by_key(|(created, refund, _)| (*created, refund.id));
    let lines = order_lines(&order.raw);
    let mut restock_left: BTreeMap<String, i64> = lines
        .iter()
        .map(|(id, l)| (id.clone(), l.restocked))
        .collect();
    Ok(refunds
        .into_iter()
        .map(|(_, refund, raw)| ChannelRefund {
            refund_id: refund.id.to_string(),
            order_external_id: order.external_id.clone(),
            lines: refund_lines(&refund, &lines, &mut restock_left),
            raw,
        })
        .collect())
}

fn order_lines(raw: &Value) -> BTreeMap<String, OrderLine> {
    let items: Vec<LineItem> = match Order::deserialize(raw) {
        Ok(order) => order.line_items,
        Err(e) => {
            tracing::warn!(error = %e, "WooCommerce order line items unreadable; refunds map by meta only");
            Vec::new()
        }
    };
    items
        .iter()
        .map(|item| {
            let line = OrderLine {
                target: Target::of_line(item.product_id, item.variation_id),
                restocked: item.meta_int(RESTOCK_REFUNDED_ITEMS).unwrap_or(0).max(0),
            };
            (item.id.to_string(), line)
        })
        .collect()
}

/// The order line a refund item refunds: its `_refunded_item_id`, or failing that the only order
/// line selling the same product or variation.
fn refunded_line(item: &LineItem, lines: &BTreeMap<String, OrderLine>) -> Option<String> {
    if let Some(id) = item
        .meta_data
        .iter()
        .find(|m| m.key == REFUNDED_ITEM_ID)
        .and_then(|m| wire::uint(&m.value))
    {
        return Some(id.to_string());
    }
    let target = Target::of_line(item.product_id, item.variation_id)?;
    let mut same = lines.iter().filter(|(_, l)| l.target == Some(target));
    match (same.next(), same.next()) {
        (Some((id, _)), None) => Some(id.clone()),
        _ => None,
    }
}

fn refund_lines(
    refund: &Refund,
    lines: &BTreeMap<String, OrderLine>,
    restock_left: &mut BTreeMap<String, i64>,
) -> Vec<RefundLine> {
    let mut out = Vec::new();
    for item in &refund.line_items {
        let quantity = item.quantity.abs();
        if quantity == 0 {
            continue;
        }
        let Some(line_id) = refunded_line(item, lines) else {
            tracing::warn!(
                refund = refund.id,
                item = item.id,
                "WooCommerce refund item names no order line; skipped"
            );
            continue;
        };
        let left = restock_left.entry(line_id.clone()).or_insert(0);
        let restocked = quantity.min(*left);
        *left -= restocked;
        if restocked > 0 {
            out.push(RefundLine {
                line_id: line_id.clone(),
                quantity: restocked,
                restock: true,
                shipped: None,
            });
        }
        if quantity > restocked {
            out.push(RefundLine {
                line_id,
                quantity: quantity - restocked,
                restock: false,
                shipped: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The example order 727 of WooCommerce's REST docs (`_orders.md`), as API_FACTS §10 gives it.
    fn order_727(status: &str) -> Value {
        json!({"id":727,"parent_id":0,"number":"727","status":status,"currency":"USD",
         "date_created":"2017-03-22T16:28:02","date_created_gmt":"2017-03-22T19:28:02",
         "date_modified":"2017-03-22T16:28:08","date_modified_gmt":"2017-03-22T19:28:08",
         "total":"29.35","line_items":[
           {"id":315,"name":"Woo Single #1","product_id":93,"variation_id":0,"quantity":2,"sku":"","price":3,"subtotal":"6.00","total":"6.00","meta_data":[]},
           {"id":316,"name":"Ship Your Idea – Color: Black, Size: M Test","product_id":22,"variation_id":23,"quantity":1,"sku":"Bar3","price":12,"subtotal":"12.00","total":"12.00",
            "meta_data":[{"id":2095,"key":"pa_color","value":"black"},{"id":2096,"key":"size","value":"M Test"}]}],
         "refunds":[]})
    }

    #[test]
    fn example_order_727_parses_with_exact_ids() {
        let order = parse_order(order_727("processing")).unwrap();
        assert_eq!(order.external_id, "727");
        assert_eq!(
            crate::connector::version_time_ms(order.version),
            1_490_210_888_000
        );
        assert_eq!(
            order.version % crate::VERSION_SCALE,
            30,
            "processing ranks 3, no refunds"
        );
        assert!(order.open);
        assert!(order.refunds_to_fetch.is_empty() && order.refunds.is_empty());
        assert_eq!(
            order.lines,
            vec![
                ChannelLine {
                    line_id: "315".into(),
                    sku: None,
                    variant_ref: Some("product/93".into()),
                    quantity: 2,
                    shipped: 0,
                    ordered: 2
                },
                ChannelLine {
                    line_id: "316".into(),
                    sku: Some("Bar3".into()),
                    variant_ref: Some("variation/22/23".into()),
                    quantity: 1,
                    shipped: 0,
                    ordered: 1
                },
            ]
        );
        assert_eq!(order.raw, order_727("processing"));
    }

    #[test]
    fn completed_ships_cancelled_releases() {
        let done = parse_order(order_727("completed")).unwrap();
        assert!(done.open);
        assert_eq!(
            done.lines.iter().map(|l| l.shipped).collect::<Vec<_>>(),
            vec![2, 1]
        );
        let cancelled = parse_order(order_727("cancelled")).unwrap();
        assert!(!cancelled.open);
        assert!(cancelled.lines.iter().all(|l| l.shipped == 0));
    }

    #[test]
    fn big_ids_and_refund_ids_are_kept() {
        let mut raw = order_727("processing");
        raw["id"] = json!(9_007_199_254_740_993u64);
        raw["line_items"][0]["id"] = json!(18_446_744_073_709_551_615u64);
        raw["refunds"] = json!([{"id": 730, "reason": "", "total": "-6.00"}, {"id": 731, "reason": "", "total": "-1.00"}]);
        let order = parse_order(raw).unwrap();
        assert_eq!(order.external_id, "9007199254740993");
        assert_eq!(order.lines[0].line_id, "18446744073709551615");
        assert_eq!(order.refunds_to_fetch, vec!["730", "731"]);
    }

    #[test]
    fn missing_dates_are_a_parse_error() {
        let mut raw = order_727("processing");
        raw["date_modified_gmt"] = Value::Null;
        assert_eq!(
            crate::connector::version_time_ms(parse_order(raw.clone()).unwrap().version),
            1_490_210_882_000
        );
        raw["date_created_gmt"] = Value::Null;
        assert!(parse_order(raw).is_err());
    }

    #[test]
    fn deleted_orders_release_everything() {
        let order = deleted_order(json!({"id": 727}), 5).unwrap();
        assert_eq!(
            (
                order.external_id.as_str(),
                crate::connector::version_time_ms(order.version),
                order.open
            ),
            ("727", 5, false)
        );
        assert!(order.lines.is_empty());
        assert!(deleted_order(json!({}), 5).is_err());
    }

    /// Refund 724 of WooCommerce's docs (`_order-refunds.md`), refunding order item 311.
    fn refund_724() -> Value {
        json!({"id":724,"date_created":"2017-03-21T16:55:37","date_created_gmt":"2017-03-21T19:55:37",
         "amount":"9.00","reason":"","refunded_by":1,"refunded_payment":false,"meta_data":[],
         "line_items":[{"id":314,"name":"Woo Album #2","product_id":87,"variation_id":0,"quantity":-1,
           "tax_class":"","subtotal":"-9.00","subtotal_tax":"0.00","total":"-9.00","total_tax":"0.00","taxes":[],
           "meta_data":[{"id":2076,"key":"_refunded_item_id","value":"311"}],"sku":"","price":-9}]})
    }

    /// Refund 726 of the same docs: an amount only, no line items.
    fn refund_726() -> Value {
        json!({"id":726,"date_created":"2017-03-21T17:07:11","date_created_gmt":"2017-03-21T20:07:11",
         "amount":"10.00","reason":"","refunded_by":1,"refunded_payment":false,"meta_data":[],"line_items":[]})
    }

    fn order_723(restocked: Option<i64>) -> ChannelOrder {
        let meta = restocked.map_or(json!([]), |n| json!([{"id": 1, "key": "_reduced_stock", "value": "0"},
                                                           {"id": 2, "key": "_restock_refunded_items", "value": n.to_string()}]));
        parse_order(json!({"id": 723, "status": "completed", "date_modified_gmt": "2017-03-21T20:07:11",
            "line_items": [{"id": 311, "product_id": 87, "variation_id": 0, "quantity": 3, "sku": "ALB2", "meta_data": meta}],
            "refunds": [{"id": 726, "reason": "", "total": "-10.00"}, {"id": 724, "reason": "", "total": "-9.00"}]}))
        .unwrap()
    }

    #[test]
    fn documented_refunds_reference_the_order_line() {
        let refunds = parse_refunds(&order_723(None), vec![refund_726(), refund_724()]).unwrap();
        assert_eq!(
            refunds
                .iter()
                .map(|r| r.refund_id.as_str())
                .collect::<Vec<_>>(),
            vec!["724", "726"]
        );
        assert_eq!(refunds[0].order_external_id, "723");
        assert_eq!(
            refunds[0].lines,
            vec![RefundLine {
                line_id: "311".into(),
                quantity: 1,
                restock: false,
                shipped: None
            }]
        );
        assert!(refunds[1].lines.is_empty());
        assert_eq!(refunds[0].raw, refund_724());
    }

    #[test]
    fn restock_is_read_from_the_order_line() {
        let refunds = parse_refunds(&order_723(Some(1)), vec![refund_724()]).unwrap();
        assert_eq!(
            refunds[0].lines,
            vec![RefundLine {
                line_id: "311".into(),
                quantity: 1,
                restock: true,
                shipped: None
            }]
        );
    }

    #[test]
    fn restocked_units_go_to_the_oldest_refunds_first() {
        let mut second = refund_724();
        second["id"] = json!(740);
        second["date_created_gmt"] = json!("2017-03-23T10:00:00");
        second["line_items"][0]["quantity"] = json!(-2);
        let mut order = order_723(Some(2));
        order.refunds_to_fetch = vec!["724".into(), "740".into()];
        let refunds = parse_refunds(&order, vec![second, refund_724()]).unwrap();
        assert_eq!(
            refunds[0].lines,
            vec![RefundLine {
                line_id: "311".into(),
                quantity: 1,
                restock: true,
                shipped: None
            }]
        );
        assert_eq!(
            refunds[1].lines,
            vec![
                RefundLine {
                    line_id: "311".into(),
                    quantity: 1,
                    restock: true,
                    shipped: None
                },
                RefundLine {
                    line_id: "311".into(),
                    quantity: 1,
                    restock: false,
                    shipped: None
                },
            ]
        );
    }

    #[test]
    fn refunds_the_snapshot_does_not_list_wait_for_the_next_one() {
        let mut later = refund_724();
        later["id"] = json!(999);
        let refunds = parse_refunds(&order_723(None), vec![later, refund_724()]).unwrap();
        assert_eq!(
            refunds
                .iter()
                .map(|r| r.refund_id.as_str())
                .collect::<Vec<_>>(),
            vec!["724"]
        );
    }

    #[test]
    fn refund_items_without_meta_map_by_product() {
        let mut refund = refund_724();
        refund["line_items"][0]["meta_data"] = json!([]);
        let refunds = parse_refunds(&order_723(None), vec![refund]).unwrap();
        assert_eq!(
            refunds[0].lines,
            vec![RefundLine {
                line_id: "311".into(),
                quantity: 1,
                restock: false,
                shipped: None
            }]
        );
        let mut unknown = refund_724();
        unknown["line_items"][0]["meta_data"] = json!([]);
        unknown["line_items"][0]["product_id"] = json!(5);
        let refunds = parse_refunds(&order_723(None), vec![unknown]).unwrap();
        assert!(refunds[0].lines.is_empty());
    }
}
