//! REST resources as Shopify writes them: Order (API_FACTS §9, the key set of the real
//! `orders/create` example in `shared/fixtures/shopify/webhooks/`), Refund (§1.6), Fulfillment,
//! Transaction and InventoryLevel (§1.4). Webhook payloads are these same resources (§1.6).
//! Every id is a JSON integer written exactly (64-bit).

use serde_json::{json, Value};

use super::model::{format_cents, Fulfillment, Level, LineItem, Order, Refund, Variant};
use crate::clock;

fn money_set(cents: i64) -> Value {
    let amount = format_cents(cents);
    json!({
        "shop_money": {"amount": amount, "currency_code": "USD"},
        "presentment_money": {"amount": amount, "currency_code": "USD"}
    })
}

fn time(ms: i64, offset: i32) -> Value {
    Value::String(clock::format_with_offset(ms, offset))
}

fn opt_time(ms: Option<i64>, offset: i32) -> Value {
    ms.map_or(Value::Null, |ms| time(ms, offset))
}

/// An InventoryLevel (API_FACTS §1.4, §1.5).
pub(crate) fn level_json(variant: &Variant, location_id: u64, level: &Level, offset: i32) -> Value {
    json!({
        "inventory_item_id": variant.item_id,
        "location_id": location_id,
        "available": level.available,
        "updated_at": time(level.updated_ms, offset),
        "admin_graphql_api_id": format!("gid://shopify/InventoryLevel/{location_id}?inventory_item_id={}", variant.item_id),
    })
}

fn line_fulfillment_status(line: &LineItem) -> Value {
    match (line.fulfilled_kept(), line.unfulfilled()) {
        (0, _) => Value::Null,
        (_, 0) => json!("fulfilled"),
        _ => json!("partial"),
    }
}

/// A line item of an order, refund or fulfilment.
pub(crate) fn line_json(line: &LineItem, cancelled: bool) -> Value {
    let name = match &line.variant_title {
        Some(v) if v != crate::seed::DEFAULT_VARIANT_TITLE => format!("{} - {v}", line.title),
        _ => line.title.clone(),
    };
    let fulfillable = if cancelled { 0 } else { line.unfulfilled() };
    json!({
        "id": line.id,
        "admin_graphql_api_id": format!("gid://shopify/LineItem/{}", line.id),
        "attributed_staffs": [],
        "current_quantity": line.current_quantity(),
        "fulfillable_quantity": fulfillable,
        "fulfillment_service": "manual",
        "fulfillment_status": line_fulfillment_status(line),
        "gift_card": false,
        "grams": 0,
        "name": name,
        "price": format_cents(line.price_cents),
        "price_set": money_set(line.price_cents),
        "product_exists": line.product_id.is_some(),
        "product_id": line.product_id,
        "properties": [],
        "quantity": line.quantity,
        "requires_shipping": true,
        "sales_line_item_group_id": null,
        "sku": line.sku,
        "taxable": true,
        "title": line.title,
        "total_discount": "0.00",
        "total_discount_set": money_set(0),
        "variant_id": line.variant_id,
        "variant_inventory_management": if line.tracked { json!("shopify") } else { Value::Null },
        "variant_title": line.variant_title,
        "vendor": null,
        "tax_lines": [],
        "duties": [],
        "discount_allocations": [],
    })
}

fn order_fulfillment_status(order: &Order) -> Value {
    let kept: i64 = order.line_items.iter().map(LineItem::fulfilled_kept).sum();
    let open: i64 = order.line_items.iter().map(LineItem::unfulfilled).sum();
    let current: i64 = order
        .line_items
        .iter()
        .map(LineItem::current_quantity)
        .sum();
    let restocked = order
        .refunds
        .iter()
        .flat_map(|r| &r.lines)
        .any(|l| l.restock_type != super::model::RestockType::NoRestock);
    match (kept, open) {
        _ if current == 0 && restocked => json!("restocked"),
        (0, _) => Value::Null,
        (_, 0) => json!("fulfilled"),
        _ => json!("partial"),
    }
}

/// A REST Order.
pub(crate) fn order_json(order: &Order, shop_domain: &str, offset: i32) -> Value {
    let cancelled = order.cancelled_ms.is_some();
    let subtotal: i64 = order
        .line_items
        .iter()
        .map(|l| l.price_cents * l.quantity)
        .sum();
    let current: i64 = order
        .line_items
        .iter()
        .map(|l| l.price_cents * l.current_quantity())
        .sum();
    let offset_time = |ms| time(ms, offset);
    let head = json!({
        "id": order.id,
        "admin_graphql_api_id": format!("gid://shopify/Order/{}", order.id),
        "app_id": null,
        "browser_ip": null,
        "buyer_accepts_marketing": false,
        "cancel_reason": order.cancel_reason,
        "cancelled_at": opt_time(order.cancelled_ms, offset),
        "cart_token": null,
        "checkout_id": null,
        "checkout_token": null,
        "client_details": null,
        "closed_at": opt_time(order.closed_ms, offset),
        "confirmation_number": null,
        "confirmed": true,
        "contact_email": order.email,
        "created_at": offset_time(order.created_ms),
        "currency": "USD",
        "current_subtotal_price": format_cents(current),
        "current_subtotal_price_set": money_set(current),
        "current_total_discounts": "0.00",
        "current_total_price": format_cents(current),
        "current_total_price_set": money_set(current),
        "current_total_tax": "0.00",
        "customer_locale": "en",
        "discount_codes": [],
    });
    let tail = json!({
        "email": order.email,
        "estimated_taxes": false,
        "financial_status": order.financial_status,
        "fulfillment_status": order_fulfillment_status(order),
        "landing_site": null,
        "location_id": null,
        "name": format!("#{}", order.number),
        "note": null,
        "note_attributes": [],
        "number": order.number - 1000,
        "order_number": order.number,
        "order_status_url": format!("https://{shop_domain}/orders/{}/authenticate?key={}", order.token, order.token),
        "payment_gateway_names": ["bogus"],
        "phone": null,
        "presentment_currency": "USD",
        "processed_at": offset_time(order.created_ms),
        "source_name": "web",
    });
    let end = json!({
        "subtotal_price": format_cents(subtotal),
        "subtotal_price_set": money_set(subtotal),
        "tags": "",
        "tax_lines": [],
        "taxes_included": false,
        "test": order.test,
        "token": order.token,
        "total_discounts": "0.00",
        "total_line_items_price": format_cents(subtotal),
        "total_price": format_cents(subtotal),
        "total_price_set": money_set(subtotal),
        "total_tax": "0.00",
        "total_weight": 0,
        "updated_at": offset_time(order.updated_ms),
        "user_id": null,
        "billing_address": null,
        "customer": null,
        "discount_applications": [],
        "fulfillments": order.fulfillments.iter().map(|f| fulfillment_json(order, f, offset)).collect::<Vec<_>>(),
        "line_items": order.line_items.iter().map(|l| line_json(l, cancelled)).collect::<Vec<_>>(),
        "payment_terms": null,
        "refunds": order.refunds.iter().map(|r| refund_json(order, r, offset)).collect::<Vec<_>>(),
        "shipping_address": null,
        "shipping_lines": [],
        "returns": [],
    });
    merge(merge(head, tail), end)
}

fn merge(mut head: Value, tail: Value) -> Value {
    if let (Value::Object(head), Value::Object(tail)) = (&mut head, tail) {
        head.extend(tail);
    }
    head
}

/// A REST Refund (the `refunds/create` payload, API_FACTS §1.6).
pub(crate) fn refund_json(order: &Order, refund: &Refund, offset: i32) -> Value {
    let cancelled = order.cancelled_ms.is_some();
    let lines: Vec<Value> = refund
        .lines
        .iter()
        .map(|rl| {
            let line = order.line_items.iter().find(|l| l.id == rl.line_item_id);
            json!({
                "id": rl.id,
                "quantity": rl.quantity,
                "line_item_id": rl.line_item_id,
                "location_id": rl.location_id,
                "restock_type": rl.restock_type.as_str(),
                "subtotal": rl.subtotal_cents as f64 / 100.0,
                "total_tax": 0,
                "subtotal_set": money_set(rl.subtotal_cents),
                "total_tax_set": money_set(0),
                "line_item": line.map_or(Value::Null, |l| line_json(l, cancelled)),
            })
        })
        .collect();
    let transactions: Vec<Value> = refund
        .transaction
        .iter()
        .map(|(id, cents)| {
            json!({
                "id": id,
                "order_id": order.id,
                "kind": "refund",
                "gateway": "bogus",
                "status": "success",
                "message": null,
                "created_at": time(refund.created_ms, offset),
                "test": order.test,
                "authorization": null,
                "location_id": null,
                "user_id": null,
                "parent_id": null,
                "processed_at": time(refund.created_ms, offset),
                "source_name": "web",
                "amount": format_cents(*cents),
                "currency": "USD",
                "admin_graphql_api_id": format!("gid://shopify/OrderTransaction/{id}"),
            })
        })
        .collect();
    json!({
        "id": refund.id,
        "order_id": order.id,
        "created_at": time(refund.created_ms, offset),
        "note": refund.note,
        "user_id": null,
        "processed_at": time(refund.created_ms, offset),
        "duties": [],
        "total_duties_set": money_set(0),
        "return": null,
        "restock": refund.lines.iter().any(|l| l.restock_type != super::model::RestockType::NoRestock),
        "refund_shipping_lines": [],
        "admin_graphql_api_id": format!("gid://shopify/Refund/{}", refund.id),
        "order_adjustments": [],
        "refund_line_items": lines,
        "transactions": transactions,
    })
}

fn fulfillment_json(order: &Order, fulfillment: &Fulfillment, offset: i32) -> Value {
    let lines: Vec<Value> = fulfillment
        .lines
        .iter()
        .filter_map(|(line_id, quantity)| {
            let line = order.line_items.iter().find(|l| l.id == *line_id)?;
            let mut value = line_json(line, order.cancelled_ms.is_some());
            value["quantity"] = json!(quantity);
            Some(value)
        })
        .collect();
    json!({
        "id": fulfillment.id,
        "admin_graphql_api_id": format!("gid://shopify/Fulfillment/{}", fulfillment.id),
        "created_at": time(fulfillment.created_ms, offset),
        "location_id": fulfillment.location_id,
        "name": format!("#{}.{}", order.number, order.fulfillments.iter().position(|f| f.id == fulfillment.id).unwrap_or(0) + 1),
        "order_id": order.id,
        "service": "manual",
        "shipment_status": null,
        "status": "success",
        "tracking_company": null,
        "tracking_number": null,
        "tracking_numbers": [],
        "tracking_url": null,
        "tracking_urls": [],
        "updated_at": time(fulfillment.created_ms, offset),
        "line_items": lines,
    })
}
