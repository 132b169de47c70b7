//! The store's own orders and WooCommerce's stock rules (API_FACTS §2.1, §2.3, §10):
//!
//! - Stock is reduced once per order, when its status becomes `processing`, `completed` or
//!   `on-hold` (the "stock reduced" flag; each line keeps `_reduced_stock`), and restored when
//!   it becomes `cancelled` or `pending`. Other statuses (`failed`, `refunded`) move nothing.
//! - A refund with `api_restock` (default true) puts the refunded units of lines whose stock
//!   was reduced back; an order refunded in full becomes `refunded`.
//! - An edit of a line's quantity on an order whose stock was reduced moves stock by the
//!   difference.
//! - A sale beyond stock is refused unless backorders are allowed (or the order forces it).
//!
//! Checkout stock holds (`wc_reserve_stock_for_order`) are not simulated: an order placed here
//! has already been paid for or is pending.

use serde::{Deserialize, Serialize};

use super::model::{Line, Order, Refund, RefundLine, State};
use crate::display::Cause;
use crate::{clock, SimError};

/// Statuses an order may have (API_FACTS §2.3).
pub const STATUSES: &[&str] = &[
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
];
const REDUCING: &[&str] = &["processing", "completed", "on-hold"];
const RESTORING: &[&str] = &["cancelled", "pending"];

/// An order placed on the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewOrder {
    pub line_items: Vec<OrderLine>,
    /// `processing` unless set.
    pub status: String,
    /// Sell even what is out of stock.
    pub allow_oversell: bool,
}

impl Default for NewOrder {
    fn default() -> Self {
        Self {
            line_items: Vec::new(),
            status: "processing".to_owned(),
            allow_oversell: false,
        }
    }
}

impl NewOrder {
    pub fn lines(line_items: Vec<OrderLine>) -> Self {
        Self {
            line_items,
            ..Self::default()
        }
    }
}

/// A line by product (and variation) id, or by SKU.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderLine {
    pub product_id: Option<u64>,
    pub variation_id: Option<u64>,
    pub sku: Option<String>,
    pub quantity: i64,
}

impl OrderLine {
    pub fn product(product_id: u64, quantity: i64) -> Self {
        Self {
            product_id: Some(product_id),
            quantity,
            ..Self::default()
        }
    }

    pub fn variation(product_id: u64, variation_id: u64, quantity: i64) -> Self {
        Self {
            product_id: Some(product_id),
            variation_id: Some(variation_id),
            quantity,
            ..Self::default()
        }
    }

    pub fn sku(sku: &str, quantity: i64) -> Self {
        Self {
            sku: Some(sku.to_owned()),
            quantity,
            ..Self::default()
        }
    }
}

/// A refund of units of some lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewRefund {
    pub line_items: Vec<RefundLineRequest>,
    /// Put the refunded units back in stock (WooCommerce's default: true).
    pub api_restock: bool,
    pub reason: String,
}

impl Default for NewRefund {
    fn default() -> Self {
        Self {
            line_items: Vec::new(),
            api_restock: true,
            reason: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundLineRequest {
    pub line_item_id: u64,
    pub quantity: i64,
}

impl State {
    /// The line a new order gets for one requested line; checks stock.
    fn plan_line(
        &self,
        request: &OrderLine,
        force: bool,
        wanted: &mut std::collections::HashMap<u64, i64>,
    ) -> Result<Line, SimError> {
        if request.quantity < 1 {
            return Err(SimError::invalid("a line needs a quantity of at least 1"));
        }
        let item_id = match (&request.sku, request.variation_id, request.product_id) {
            (Some(sku), _, _) => self
                .items
                .values()
                .find(|i| i.sku == *sku && !sku.is_empty())
                .map(|i| i.id)
                .ok_or_else(|| SimError::not_found("product with SKU", sku))?,
            (None, Some(variation), _) => variation,
            (None, None, Some(product)) => product,
            (None, None, None) => {
                return Err(SimError::invalid(
                    "a line needs a product_id, a variation_id or a sku",
                ))
            }
        };
        let item = self
            .items
            .get(&item_id)
            .ok_or_else(|| SimError::not_found("product", item_id))?;
        if item.kind == super::model::Kind::Variable {
            return Err(SimError::invalid(format!(
                "product {item_id} is variable: choose a variation"
            )));
        }
        if let Some(holder) = self.stock_holder(item_id) {
            let stock = &self.items[&holder];
            let taken = wanted.entry(holder).or_default();
            let left = stock.stock_quantity.unwrap_or(0) - *taken;
            if left < request.quantity && stock.backorders == "no" && !force {
                return Err(SimError::OutOfStock {
                    what: if item.sku.is_empty() {
                        format!("product {item_id}")
                    } else {
                        item.sku.clone()
                    },
                    available: left,
                    wanted: request.quantity,
                });
            }
            *taken += request.quantity;
        }
        let (product_id, variation_id) = match item.parent_id {
            Some(parent) => (parent, item.id),
            None => (item.id, 0),
        };
        let name = match &item.option {
            Some(option) => format!("{} - {option}", item.name),
            None => item.name.clone(),
        };
        Ok(Line {
            id: 0,
            name,
            product_id,
            variation_id,
            quantity: request.quantity,
            sku: item.sku.clone(),
            price_cents: item.price_cents,
            reduced_stock: None,
        })
    }

    /// Places an order (created `pending`, then moved to the requested status); returns its id.
    pub(crate) fn place_order(&mut self, request: &NewOrder) -> Result<u64, SimError> {
        if !STATUSES.contains(&request.status.as_str()) {
            return Err(SimError::invalid(format!(
                "unknown status {}",
                request.status
            )));
        }
        if request.line_items.is_empty() {
            return Err(SimError::invalid("an order needs at least one line"));
        }
        let mut wanted = Default::default();
        let mut lines = request
            .line_items
            .iter()
            .map(|l| self.plan_line(l, request.allow_oversell, &mut wanted))
            .collect::<Result<Vec<_>, _>>()?;
        for line in &mut lines {
            line.id = self.line_id();
        }
        let id = self.post_id();
        let now = clock::now_unix_ms();
        let order_key = format!(
            "wc_order_{}",
            crate::signature::sha256_hex(&format!("order-{id}"))
                .get(..13)
                .unwrap_or("")
        );
        let order = Order {
            id,
            order_key,
            status: "pending".to_owned(),
            created_ms: now,
            modified_ms: now,
            paid_ms: None,
            completed_ms: None,
            lines,
            refunds: Vec::new(),
            stock_reduced: false,
        };
        self.orders.insert(id, order);
        self.move_status(id, &request.status);
        Ok(id)
    }

    /// Changes an order's status, with the stock effects of the change.
    pub(crate) fn set_status(&mut self, id: u64, status: &str) -> Result<(), SimError> {
        if !STATUSES.contains(&status) {
            return Err(SimError::invalid(format!("unknown status {status}")));
        }
        self.order(id)?;
        self.move_status(id, status);
        Ok(())
    }

    fn move_status(&mut self, id: u64, status: &str) {
        let Some(mut order) = self.orders.get(&id).cloned() else {
            return;
        };
        let now = clock::now_unix_ms();
        order.status = status.to_owned();
        order.modified_ms = now;
        if matches!(status, "processing" | "completed") && order.paid_ms.is_none() {
            order.paid_ms = Some(now);
        }
        if status == "completed" {
            order.completed_ms = Some(now);
        }
        if REDUCING.contains(&status) && !order.stock_reduced {
            self.reduce_stock(&mut order);
        } else if RESTORING.contains(&status) && order.stock_reduced {
            self.restore_stock(&mut order);
        }
        self.orders.insert(id, order);
    }

    fn reduce_stock(&mut self, order: &mut Order) {
        for index in 0..order.lines.len() {
            let line = &order.lines[index];
            let quantity = line.quantity - order.refunded_quantity(line.id);
            let item = if line.variation_id == 0 {
                line.product_id
            } else {
                line.variation_id
            };
            if let Some(holder) = self.stock_holder(item) {
                self.change_stock(holder, -quantity, Cause::OwnSale);
                order.lines[index].reduced_stock = Some(quantity);
            }
        }
        order.stock_reduced = true;
    }

    fn restore_stock(&mut self, order: &mut Order) {
        for line in &mut order.lines {
            let item = if line.variation_id == 0 {
                line.product_id
            } else {
                line.variation_id
            };
            if let (Some(reduced), Some(holder)) =
                (line.reduced_stock.take(), self.stock_holder(item))
            {
                self.change_stock(holder, reduced, Cause::Cancel);
            }
        }
        order.stock_reduced = false;
    }

    /// Refunds units of an order's lines; returns the refund's id.
    pub(crate) fn refund(&mut self, id: u64, request: &NewRefund) -> Result<u64, SimError> {
        let mut order = self.order(id)?.clone();
        if request.line_items.is_empty() {
            return Err(SimError::invalid("a refund needs at least one line"));
        }
        let mut lines = Vec::new();
        let mut amount = 0;
        for wanted in &request.line_items {
            let line = order
                .lines
                .iter()
                .find(|l| l.id == wanted.line_item_id)
                .ok_or_else(|| SimError::not_found("line item", wanted.line_item_id))?;
            let left = line.quantity
                - order.refunded_quantity(line.id)
                - lines
                    .iter()
                    .filter(|l: &&RefundLine| l.order_line_id == line.id)
                    .map(|l| l.quantity)
                    .sum::<i64>();
            if wanted.quantity < 1 || wanted.quantity > left {
                return Err(SimError::invalid(format!(
                    "cannot refund {} of line {}: {left} left",
                    wanted.quantity, line.id
                )));
            }
            amount += line.price_cents * wanted.quantity;
            lines.push(RefundLine {
                id: 0,
                order_line_id: line.id,
                quantity: wanted.quantity,
            });
        }
        for line in &mut lines {
            line.id = self.line_id();
        }
        if request.api_restock {
            self.restock_refunded(&mut order, &lines);
        }
        let refund_id = self.post_id();
        let now = clock::now_unix_ms();
        order.refunds.push(Refund {
            id: refund_id,
            created_ms: now,
            reason: request.reason.clone(),
            amount_cents: amount,
            lines,
        });
        order.modified_ms = now;
        let fully = order.refunded_cents() >= order.total_cents();
        self.orders.insert(id, order);
        if fully {
            self.move_status(id, "refunded");
        }
        Ok(refund_id)
    }

    fn restock_refunded(&mut self, order: &mut Order, lines: &[RefundLine]) {
        for refunded in lines {
            let Some(line) = order
                .lines
                .iter_mut()
                .find(|l| l.id == refunded.order_line_id)
            else {
                continue;
            };
            let Some(reduced) = line.reduced_stock else {
                continue;
            };
            let item = if line.variation_id == 0 {
                line.product_id
            } else {
                line.variation_id
            };
            if let Some(holder) = self.stock_holder(item) {
                self.change_stock(holder, refunded.quantity, Cause::RefundRestock);
                line.reduced_stock = Some(reduced - refunded.quantity);
            }
        }
    }

    /// Sets a line's quantity, as an edit of the order in the admin does.
    pub(crate) fn edit_line_quantity(
        &mut self,
        id: u64,
        line_id: u64,
        quantity: i64,
    ) -> Result<(), SimError> {
        let mut order = self.order(id)?.clone();
        if quantity < 1 {
            return Err(SimError::invalid("a line keeps at least 1 unit"));
        }
        let line = order
            .lines
            .iter_mut()
            .find(|l| l.id == line_id)
            .ok_or_else(|| SimError::not_found("line item", line_id))?;
        line.quantity = quantity;
        let item = if line.variation_id == 0 {
            line.product_id
        } else {
            line.variation_id
        };
        if let (true, Some(reduced), Some(holder)) = (
            REDUCING.contains(&order.status.as_str()),
            line.reduced_stock,
            self.stock_holder(item),
        ) {
            let difference = quantity - reduced;
            line.reduced_stock = Some(quantity);
            self.change_stock(holder, -difference, Cause::OrderEdit);
        }
        order.modified_ms = clock::now_unix_ms();
        self.orders.insert(id, order);
        Ok(())
    }

    /// Sets a product's or variation's stock by hand in the admin (drift).
    pub(crate) fn admin_set_stock(&mut self, item_id: u64, quantity: i64) -> Result<(), SimError> {
        let item = self
            .items
            .get(&item_id)
            .ok_or_else(|| SimError::not_found("product", item_id))?;
        if !item.manage_stock {
            return Err(SimError::invalid(format!(
                "product {item_id} does not manage its stock"
            )));
        }
        self.set_stock(item_id, quantity, Cause::AdminEdit);
        Ok(())
    }
}
