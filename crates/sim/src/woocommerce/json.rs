//! REST v3 resources as WooCommerce writes them (API_FACTS §2.1–§2.3, §10): products,
//! variations, orders and refunds, with `date_*` in site time and `date_*_gmt` in GMT (both
//! without offset), prices as strings (`"12.00"`) except line-item `price` (a number), refund
//! totals negative in `refunds[]` and refund line quantities negative in `/refunds`.

use serde_json::{json, Value};

use super::model::{Item, Kind, Order, Refund, State};
use crate::clock;
use crate::money::format_cents;

/// What the resources need to know about the site.
pub(crate) struct Site<'a> {
    pub base_url: &'a str,
    pub offset: i32,
}

impl Site<'_> {
    fn local(&self, ms: i64) -> Value {
        json!(clock::format_naive(ms, self.offset))
    }

    fn gmt(&self, ms: i64) -> Value {
        json!(clock::format_naive(ms, 0))
    }

    fn local_opt(&self, ms: Option<i64>) -> Value {
        ms.map_or(Value::Null, |ms| self.local(ms))
    }

    fn gmt_opt(&self, ms: Option<i64>) -> Value {
        ms.map_or(Value::Null, |ms| self.gmt(ms))
    }

    fn links(&self, path: &str, collection: &str) -> Value {
        json!({
            "self": [{"href": format!("{}/wp-json/wc/v3/{path}", self.base_url)}],
            "collection": [{"href": format!("{}/wp-json/wc/v3/{collection}", self.base_url)}]
        })
    }
}

/// `instock`, `outofstock` or `onbackorder` of an item.
pub(crate) fn stock_status(state: &State, item: &Item) -> String {
    if let Some(holder) = state
        .stock_holder(item.id)
        .and_then(|h| state.items.get(&h))
    {
        let quantity = holder.stock_quantity.unwrap_or(0);
        return match (quantity > 0, holder.backorders.as_str()) {
            (true, _) => "instock",
            (false, "no") => "outofstock",
            (false, _) => "onbackorder",
        }
        .to_owned();
    }
    if item.kind == Kind::Variable {
        let any = item
            .variation_ids
            .iter()
            .filter_map(|id| state.items.get(id))
            .any(|v| stock_status(state, v) != "outofstock");
        return if any { "instock" } else { "outofstock" }.to_owned();
    }
    item.manual_stock_status.clone()
}

fn stock_quantity(state: &State, item: &Item) -> Value {
    state
        .stock_holder(item.id)
        .and_then(|h| state.items.get(&h))
        .and_then(|h| h.stock_quantity)
        .map_or(Value::Null, Value::from)
}

/// A product (simple or variable).
pub(crate) fn product_json(state: &State, site: &Site<'_>, item: &Item) -> Value {
    let price = format_cents(item.price_cents);
    let kind = if item.kind == Kind::Variable {
        "variable"
    } else {
        "simple"
    };
    json!({
        "id": item.id,
        "name": item.name,
        "slug": item.name.to_lowercase().replace(' ', "-"),
        "permalink": format!("{}/product/{}/", site.base_url, item.name.to_lowercase().replace(' ', "-")),
        "date_created": site.local(item.created_ms),
        "date_created_gmt": site.gmt(item.created_ms),
        "date_modified": site.local(item.modified_ms),
        "date_modified_gmt": site.gmt(item.modified_ms),
        "type": kind,
        "status": "publish",
        "featured": false,
        "catalog_visibility": "visible",
        "description": "",
        "short_description": "",
        "sku": item.sku,
        "price": price,
        "regular_price": price,
        "sale_price": "",
        "on_sale": false,
        "purchasable": true,
        "virtual": false,
        "downloadable": false,
        "tax_status": "taxable",
        "tax_class": "",
        "manage_stock": item.manage_stock,
        "stock_quantity": stock_quantity(state, item),
        "backorders": item.backorders,
        "backorders_allowed": item.backorders != "no",
        "backordered": false,
        "low_stock_amount": null,
        "sold_individually": false,
        "parent_id": 0,
        "variations": item.variation_ids,
        "has_options": item.kind == Kind::Variable,
        "meta_data": [],
        "stock_status": stock_status(state, item),
        "_links": site.links(&format!("products/{}", item.id), "products"),
    })
}

/// A variation of a variable product.
pub(crate) fn variation_json(state: &State, site: &Site<'_>, item: &Item) -> Value {
    let parent_id = item.parent_id.unwrap_or(0);
    let managed_by_parent = !item.manage_stock && state.stock_holder(item.id).is_some();
    let manage_stock = if managed_by_parent {
        json!("parent")
    } else {
        json!(item.manage_stock)
    };
    let price = format_cents(item.price_cents);
    let mut links = site.links(
        &format!("products/{parent_id}/variations/{}", item.id),
        &format!("products/{parent_id}/variations"),
    );
    links["up"] =
        json!([{"href": format!("{}/wp-json/wc/v3/products/{parent_id}", site.base_url)}]);
    json!({
        "id": item.id,
        "type": "variation",
        "parent_id": parent_id,
        "name": format!("{} - {}", item.name, item.option.clone().unwrap_or_default()),
        "date_created": site.local(item.created_ms),
        "date_created_gmt": site.gmt(item.created_ms),
        "date_modified": site.local(item.modified_ms),
        "date_modified_gmt": site.gmt(item.modified_ms),
        "description": "",
        "permalink": format!("{}/product/{}/?attribute_option={}", site.base_url, item.name.to_lowercase().replace(' ', "-"), item.option.clone().unwrap_or_default()),
        "sku": item.sku,
        "price": price,
        "regular_price": price,
        "sale_price": "",
        "on_sale": false,
        "status": "publish",
        "purchasable": true,
        "virtual": false,
        "downloadable": false,
        "tax_status": "taxable",
        "tax_class": "",
        "manage_stock": manage_stock,
        "stock_quantity": stock_quantity(state, item),
        "stock_status": stock_status(state, item),
        "backorders": item.backorders,
        "backorders_allowed": item.backorders != "no",
        "backordered": false,
        "low_stock_amount": null,
        "image": null,
        "attributes": [{"id": 0, "name": "Option", "option": item.option}],
        "menu_order": 0,
        "meta_data": [],
        "_links": links,
    })
}

/// A product or variation as `GET products` lists it: a variation (listed there when the
/// query names SKUs) as the products controller renders it, whose `manage_stock` is
/// `managing_stock()`, true also where the parent manages the stock it shows.
pub(crate) fn listed_product_json(state: &State, site: &Site<'_>, item: &Item) -> Value {
    let mut json = item_json(state, site, item);
    if json["manage_stock"] == "parent" {
        json["manage_stock"] = Value::Bool(true);
    }
    json
}

/// A product or variation, by kind.
pub(crate) fn item_json(state: &State, site: &Site<'_>, item: &Item) -> Value {
    match item.kind {
        Kind::Variation => variation_json(state, site, item),
        Kind::Simple | Kind::Variable => product_json(state, site, item),
    }
}

/// An order (`GET /orders/{id}`, and the body of `order.*` webhooks).
pub(crate) fn order_json(site: &Site<'_>, order: &Order) -> Value {
    let lines: Vec<Value> = order
        .lines
        .iter()
        .map(|l| {
            let total = format_cents(l.price_cents * l.quantity);
            json!({
                "id": l.id, "name": l.name, "product_id": l.product_id, "variation_id": l.variation_id,
                "quantity": l.quantity, "tax_class": "", "subtotal": total, "subtotal_tax": "0.00",
                "total": total, "total_tax": "0.00", "taxes": [], "meta_data": [], "sku": l.sku,
                "price": l.price_cents as f64 / 100.0, "image": {"id": "", "src": ""}, "parent_name": null,
            })
        })
        .collect();
    // Newest first, as `WC_Order::get_refunds()` returns them.
    let refunds: Vec<Value> = order
        .refunds
        .iter()
        .rev()
        .map(|r| json!({"id": r.id, "reason": r.reason, "total": format_cents(-r.amount_cents)}))
        .collect();
    let head = json!({
        "id": order.id, "parent_id": 0, "status": order.status, "currency": "USD", "version": "9.4.0",
        "prices_include_tax": false,
        "date_created": site.local(order.created_ms), "date_created_gmt": site.gmt(order.created_ms),
        "date_modified": site.local(order.modified_ms), "date_modified_gmt": site.gmt(order.modified_ms),
        "discount_total": "0.00", "discount_tax": "0.00", "shipping_total": "0.00", "shipping_tax": "0.00",
        "cart_tax": "0.00", "total": format_cents(order.total_cents()), "total_tax": "0.00",
        "customer_id": 0, "order_key": order.order_key,
    });
    let tail = json!({
        "billing": {"first_name": "", "last_name": "", "email": format!("buyer{}@example.com", order.id)},
        "shipping": {"first_name": "", "last_name": ""},
        "payment_method": "bacs", "payment_method_title": "Direct bank transfer", "transaction_id": "",
        "customer_ip_address": "", "customer_user_agent": "", "created_via": "checkout", "customer_note": "",
        "date_completed": site.local_opt(order.completed_ms), "date_paid": site.local_opt(order.paid_ms),
        "date_completed_gmt": site.gmt_opt(order.completed_ms), "date_paid_gmt": site.gmt_opt(order.paid_ms),
        "cart_hash": "", "number": order.id.to_string(), "meta_data": [],
        "line_items": lines, "tax_lines": [], "shipping_lines": [], "fee_lines": [], "coupon_lines": [],
        "refunds": refunds, "set_paid": false, "currency_symbol": "$",
        "_links": site.links(&format!("orders/{}", order.id), "orders"),
    });
    merge(head, tail)
}

fn merge(mut head: Value, tail: Value) -> Value {
    if let (Value::Object(head), Value::Object(tail)) = (&mut head, tail) {
        head.extend(tail);
    }
    head
}

/// A refund (`GET /orders/{id}/refunds`): line quantities and totals negative.
pub(crate) fn refund_json(site: &Site<'_>, order: &Order, refund: &Refund) -> Value {
    let lines: Vec<Value> = refund
        .lines
        .iter()
        .filter_map(|rl| {
            let line = order.lines.iter().find(|l| l.id == rl.order_line_id)?;
            let total = format_cents(-line.price_cents * rl.quantity);
            Some(json!({
                "id": rl.id, "name": line.name, "product_id": line.product_id, "variation_id": line.variation_id,
                "quantity": -rl.quantity, "tax_class": "", "subtotal": total, "subtotal_tax": "0.00",
                "total": total, "total_tax": "0.00", "taxes": [], "sku": line.sku,
                "price": -(line.price_cents as f64) / 100.0,
                "meta_data": [{"id": rl.id, "key": "_refunded_item_id", "value": line.id.to_string()}],
            }))
        })
        .collect();
    json!({
        "id": refund.id,
        "date_created": site.local(refund.created_ms),
        "date_created_gmt": site.gmt(refund.created_ms),
        "amount": format_cents(refund.amount_cents),
        "reason": refund.reason,
        "refunded_by": 1,
        "refunded_payment": false,
        "meta_data": [],
        "line_items": lines,
        "shipping_lines": [],
        "tax_lines": [],
        "fee_lines": [],
        "_links": site.links(&format!("orders/{}/refunds/{}", order.id, refund.id), &format!("orders/{}/refunds", order.id)),
    })
}
