//! The store's own business, done "by hand" or by shoppers: orders placed on the store (which
//! lower `available` and raise `committed` at once, API_FACTS §1.3 and §9), cancellations with
//! or without restock, refunds with `restock_type` `no_restock` | `cancel` | `return` (§1.6),
//! fulfilments, order edits that change line quantities, payments, and edits of `available` in
//! the admin (drift). Each is one merchant action: its webhooks share one `X-Shopify-Event-Id`.
//!
//! Decisions where the documentation is silent: a cancellation creates a Refund of the
//! unfulfilled units (`restock_type` `cancel` when restocking, else `no_restock`) and so also
//! triggers `refunds/create`; a `no_restock` refund takes unfulfilled units first; an order
//! edit that adds units raises both `quantity` and `current_quantity`.

use serde::{Deserialize, Serialize};

use super::model::{
    parse_cents, Fulfillment, LineItem, Order, Refund, RefundLine, RestockType, State,
};
use super::rest_json::{level_json, order_json, refund_json};
use crate::clock;
use crate::display::Cause;
use crate::SimError;

/// An order placed on the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewOrder {
    pub lines: Vec<OrderLine>,
    /// `paid` (default), `pending`, `authorized`, …
    pub financial_status: String,
    pub test: bool,
    /// The location the units are committed at; by default the first location that has them.
    pub location_id: Option<u64>,
    /// Sell even what is not available (as a shopper racing a push could).
    pub allow_oversell: bool,
    pub email: Option<String>,
}

impl Default for NewOrder {
    fn default() -> Self {
        Self {
            lines: Vec::new(),
            financial_status: "paid".to_owned(),
            test: false,
            location_id: None,
            allow_oversell: false,
            email: None,
        }
    }
}

impl NewOrder {
    pub fn lines(lines: Vec<OrderLine>) -> Self {
        Self {
            lines,
            ..Self::default()
        }
    }
}

/// One line of a new order: a variant (by id or SKU) or a custom item (a title, no variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    #[serde(default)]
    pub variant_id: Option<u64>,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub price: Option<String>,
    pub quantity: i64,
}

impl OrderLine {
    pub fn variant(variant_id: u64, quantity: i64) -> Self {
        Self {
            variant_id: Some(variant_id),
            sku: None,
            title: None,
            price: None,
            quantity,
        }
    }

    pub fn sku(sku: &str, quantity: i64) -> Self {
        Self {
            variant_id: None,
            sku: Some(sku.to_owned()),
            title: None,
            price: None,
            quantity,
        }
    }

    pub fn custom(title: &str, quantity: i64) -> Self {
        Self {
            variant_id: None,
            sku: None,
            title: Some(title.to_owned()),
            price: Some("5.00".into()),
            quantity,
        }
    }
}

/// A cancellation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CancelOrder {
    pub restock: bool,
    /// `customer`, `fraud`, `inventory`, `declined`, `other`.
    pub reason: String,
}

impl Default for CancelOrder {
    fn default() -> Self {
        Self {
            restock: true,
            reason: "customer".to_owned(),
        }
    }
}

/// A refund of some units of some lines.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NewRefund {
    pub refund_line_items: Vec<RefundLineRequest>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundLineRequest {
    pub line_item_id: u64,
    pub quantity: i64,
    pub restock_type: RestockType,
    #[serde(default)]
    pub location_id: Option<u64>,
}

/// A resolved line of a new order, before anything changed.
struct PlannedLine {
    variant_id: Option<u64>,
    product_id: Option<u64>,
    sku: Option<String>,
    title: String,
    variant_title: Option<String>,
    price_cents: i64,
    quantity: i64,
    tracked: bool,
    location_id: Option<u64>,
}

fn paid(status: &str) -> bool {
    matches!(status, "paid" | "partially_paid" | "partially_refunded")
}

impl State {
    fn order(&self, id: u64) -> Result<&Order, SimError> {
        self.orders
            .get(&id)
            .ok_or_else(|| SimError::not_found("order", id))
    }

    fn open_order(&self, id: u64) -> Result<Order, SimError> {
        let order = self.order(id)?;
        if order.cancelled_ms.is_some() {
            return Err(SimError::invalid(format!("order {id} is cancelled")));
        }
        Ok(order.clone())
    }

    pub(crate) fn order_json(&self, id: u64) -> Result<serde_json::Value, SimError> {
        Ok(order_json(
            self.order(id)?,
            &self.shop_domain,
            self.timezone_offset_minutes,
        ))
    }

    /// Places an order: all lines or none.
    pub(crate) fn place_order(&mut self, request: &NewOrder) -> Result<u64, SimError> {
        if request.lines.is_empty() {
            return Err(SimError::invalid("an order needs at least one line"));
        }
        let mut wanted: std::collections::HashMap<(u64, u64), i64> = Default::default();
        let mut planned = Vec::new();
        for line in &request.lines {
            let plan = self.plan_line(line, request, &mut wanted)?;
            planned.push(plan);
        }
        self.begin_action();
        let now = clock::now_unix_ms();
        let id = self.ids.order.take();
        let mut line_items = Vec::new();
        for plan in planned {
            if let (true, Some(variant_id), Some(location_id)) =
                (plan.tracked, plan.variant_id, plan.location_id)
            {
                let available = self.variants[&variant_id].levels[&location_id].available;
                self.change_level(
                    variant_id,
                    location_id,
                    available - plan.quantity,
                    plan.quantity,
                    Cause::OwnSale,
                );
            }
            line_items.push(self.line_from(plan));
        }
        let number = self.next_order_number;
        self.next_order_number += 1;
        let token = self.uuid().replace('-', "");
        let email = request
            .email
            .clone()
            .unwrap_or_else(|| format!("buyer{number}@example.com"));
        let order = Order {
            id,
            number,
            token,
            created_ms: now,
            updated_ms: now,
            cancelled_ms: None,
            cancel_reason: None,
            closed_ms: None,
            financial_status: request.financial_status.clone(),
            test: request.test,
            email,
            line_items,
            refunds: Vec::new(),
            fulfillments: Vec::new(),
        };
        self.orders.insert(id, order);
        let payload = self.order_json(id)?;
        self.trigger("orders/create", payload.clone());
        if request.financial_status == "paid" {
            self.trigger("orders/paid", payload);
        }
        Ok(id)
    }

    fn line_from(&mut self, plan: PlannedLine) -> LineItem {
        LineItem {
            id: self.ids.line.take(),
            variant_id: plan.variant_id,
            product_id: plan.product_id,
            sku: plan.sku,
            title: plan.title,
            variant_title: plan.variant_title,
            price_cents: plan.price_cents,
            quantity: plan.quantity,
            fulfilled: 0,
            removed_unfulfilled: 0,
            removed_fulfilled: 0,
            tracked: plan.tracked,
            location_id: plan.location_id,
        }
    }

    fn plan_line(
        &self,
        line: &OrderLine,
        request: &NewOrder,
        wanted: &mut std::collections::HashMap<(u64, u64), i64>,
    ) -> Result<PlannedLine, SimError> {
        if line.quantity < 1 {
            return Err(SimError::invalid("a line needs a quantity of at least 1"));
        }
        let variant = match (line.variant_id, &line.sku) {
            (Some(id), _) => Some(
                self.variants
                    .get(&id)
                    .ok_or_else(|| SimError::not_found("variant", id))?,
            ),
            (None, Some(sku)) => Some(
                self.variants
                    .values()
                    .find(|v| v.sku.as_deref() == Some(sku.as_str()))
                    .ok_or_else(|| SimError::not_found("variant with SKU", sku))?,
            ),
            (None, None) => None,
        };
        let Some(variant) = variant else {
            let title = line
                .title
                .clone()
                .unwrap_or_else(|| "Custom item".to_owned());
            let price_cents = parse_cents(line.price.as_deref().unwrap_or("0"));
            return Ok(PlannedLine {
                variant_id: None,
                product_id: None,
                sku: None,
                title,
                variant_title: None,
                price_cents,
                quantity: line.quantity,
                tracked: false,
                location_id: None,
            });
        };
        let location_id = if variant.tracked {
            Some(self.pick_location(variant.id, line.quantity, request, wanted)?)
        } else {
            None
        };
        let product = &self.products[&variant.product_id];
        Ok(PlannedLine {
            variant_id: Some(variant.id),
            product_id: Some(variant.product_id),
            sku: variant.sku.clone(),
            title: product.title.clone(),
            variant_title: Some(variant.title.clone()),
            price_cents: line
                .price
                .as_deref()
                .map_or(variant.price_cents, parse_cents),
            quantity: line.quantity,
            tracked: variant.tracked,
            location_id,
        })
    }

    /// The location a tracked line is committed at; checks stock unless overselling is allowed.
    fn pick_location(
        &self,
        variant_id: u64,
        quantity: i64,
        request: &NewOrder,
        wanted: &mut std::collections::HashMap<(u64, u64), i64>,
    ) -> Result<u64, SimError> {
        let variant = &self.variants[&variant_id];
        let room = |location: u64, wanted: &std::collections::HashMap<(u64, u64), i64>| {
            variant
                .levels
                .get(&location)
                .map(|l| l.available - wanted.get(&(variant_id, location)).copied().unwrap_or(0))
        };
        let location = match request.location_id {
            Some(location) => {
                room(location, wanted).ok_or_else(|| {
                    SimError::invalid(format!(
                        "variant {variant_id} is not stocked at location {location}"
                    ))
                })?;
                location
            }
            None => variant
                .levels
                .keys()
                .copied()
                .find(|l| room(*l, wanted).is_some_and(|a| a >= quantity))
                .or_else(|| variant.levels.keys().next().copied())
                .ok_or_else(|| {
                    SimError::invalid(format!("variant {variant_id} is stocked nowhere"))
                })?,
        };
        let available = room(location, wanted).unwrap_or(0);
        if available < quantity && !variant.oversell && !request.allow_oversell {
            return Err(SimError::OutOfStock {
                what: variant
                    .sku
                    .clone()
                    .unwrap_or_else(|| format!("variant {variant_id}")),
                available,
                wanted: quantity,
            });
        }
        *wanted.entry((variant_id, location)).or_default() += quantity;
        Ok(location)
    }

    /// Cancels an order; unfulfilled units are released, and restocked if asked.
    pub(crate) fn cancel_order(&mut self, id: u64, request: &CancelOrder) -> Result<(), SimError> {
        let mut order = self.open_order(id)?;
        self.begin_action();
        let restock_type = if request.restock {
            RestockType::Cancel
        } else {
            RestockType::NoRestock
        };
        let mut refund_lines = Vec::new();
        for line in &mut order.line_items {
            let units = line.unfulfilled();
            if units == 0 {
                continue;
            }
            line.removed_unfulfilled += units;
            self.release(line, units, request.restock, Cause::Cancel);
            refund_lines.push(self.refund_line(line, units, restock_type, None));
        }
        let now = clock::now_unix_ms();
        let was_paid = paid(&order.financial_status);
        order.financial_status = if was_paid { "refunded" } else { "voided" }.to_owned();
        order.cancelled_ms = Some(now);
        order.closed_ms = Some(now);
        order.cancel_reason = Some(request.reason.clone());
        order.updated_ms = now;
        let refund =
            (!refund_lines.is_empty()).then(|| self.new_refund(refund_lines, None, was_paid));
        self.store_and_announce(order, refund, &["orders/cancelled", "orders/updated"])
    }

    /// Releases `units` committed for a line, restocking them when asked.
    fn release(&mut self, line: &LineItem, units: i64, restock: bool, cause: Cause) {
        let (true, Some(variant_id), Some(location_id)) =
            (line.tracked, line.variant_id, line.location_id)
        else {
            return;
        };
        let Some(level) = self
            .variants
            .get(&variant_id)
            .and_then(|v| v.levels.get(&location_id))
        else {
            return;
        };
        let available = level.available + if restock { units } else { 0 };
        self.change_level(variant_id, location_id, available, -units, cause);
    }

    fn refund_line(
        &mut self,
        line: &LineItem,
        quantity: i64,
        restock_type: RestockType,
        location_id: Option<u64>,
    ) -> RefundLine {
        let restocks = restock_type != RestockType::NoRestock;
        RefundLine {
            id: self.ids.refund_line.take(),
            line_item_id: line.id,
            quantity,
            restock_type,
            location_id: if restocks {
                location_id.or(line.location_id)
            } else {
                None
            },
            subtotal_cents: line.price_cents * quantity,
        }
    }

    fn new_refund(
        &mut self,
        lines: Vec<RefundLine>,
        note: Option<String>,
        with_money: bool,
    ) -> Refund {
        let amount: i64 = lines.iter().map(|l| l.subtotal_cents).sum();
        let transaction = with_money.then(|| (self.ids.transaction.take(), amount));
        Refund {
            id: self.ids.refund.take(),
            created_ms: clock::now_unix_ms(),
            note,
            lines,
            transaction,
        }
    }

    /// Stores a changed order (with its new refund) and triggers its webhooks; the refund's
    /// embedded line items reflect the order after the refund.
    fn store_and_announce(
        &mut self,
        mut order: Order,
        refund: Option<Refund>,
        topics: &[&'static str],
    ) -> Result<(), SimError> {
        let id = order.id;
        let refunded = refund.is_some();
        order.refunds.extend(refund);
        self.orders.insert(id, order);
        let order = self.order(id)?;
        let refund = order
            .refunds
            .last()
            .filter(|_| refunded)
            .map(|r| refund_json(order, r, self.timezone_offset_minutes));
        if let Some(payload) = refund {
            self.trigger("refunds/create", payload);
        }
        let payload = self.order_json(id)?;
        for topic in topics {
            self.trigger(topic, payload.clone());
        }
        Ok(())
    }

    /// Refunds units of an order's lines; all lines or none.
    pub(crate) fn refund(&mut self, id: u64, request: &NewRefund) -> Result<u64, SimError> {
        let mut order = self.order(id)?.clone();
        if request.refund_line_items.is_empty() {
            return Err(SimError::invalid("a refund needs at least one line"));
        }
        for wanted in &request.refund_line_items {
            let line = order
                .line_items
                .iter_mut()
                .find(|l| l.id == wanted.line_item_id)
                .ok_or_else(|| SimError::not_found("line item", wanted.line_item_id))?;
            take_refunded_units(line, wanted)?;
        }
        self.begin_action();
        let mut lines = Vec::new();
        let original = self.order(id)?.clone();
        for wanted in &request.refund_line_items {
            let Some(line) = original
                .line_items
                .iter()
                .find(|l| l.id == wanted.line_item_id)
            else {
                continue;
            };
            self.restock_refunded(line, wanted, &original);
            lines.push(self.refund_line(
                line,
                wanted.quantity,
                wanted.restock_type,
                wanted.location_id,
            ));
        }
        let was_paid = paid(&order.financial_status);
        if was_paid {
            let left: i64 = order
                .line_items
                .iter()
                .map(LineItem::current_quantity)
                .sum();
            order.financial_status = if left == 0 {
                "refunded"
            } else {
                "partially_refunded"
            }
            .to_owned();
        }
        order.updated_ms = clock::now_unix_ms();
        let refund = self.new_refund(lines, request.note.clone(), was_paid);
        let refund_id = refund.id;
        self.store_and_announce(order, Some(refund), &["orders/updated"])?;
        Ok(refund_id)
    }

    /// Stock effect of one refunded line (API_FACTS §1.6): `cancel` puts unfulfilled units back,
    /// `return` puts fulfilled units back, `no_restock` releases unfulfilled units only.
    fn restock_refunded(&mut self, line: &LineItem, wanted: &RefundLineRequest, order: &Order) {
        let open = order
            .line_items
            .iter()
            .find(|l| l.id == line.id)
            .map_or(0, LineItem::unfulfilled);
        match wanted.restock_type {
            RestockType::Cancel => self.release(line, wanted.quantity, true, Cause::RefundRestock),
            RestockType::NoRestock => {
                self.release(line, wanted.quantity.min(open), false, Cause::RefundRestock)
            }
            RestockType::Return => self.return_units(line, wanted.quantity, wanted.location_id),
        }
    }

    fn return_units(&mut self, line: &LineItem, units: i64, location_id: Option<u64>) {
        let (true, Some(variant_id), Some(location_id)) = (
            line.tracked,
            line.variant_id,
            location_id.or(line.location_id),
        ) else {
            return;
        };
        let available = self
            .variants
            .get(&variant_id)
            .and_then(|v| v.levels.get(&location_id))
            .map_or(0, |l| l.available);
        self.change_level(
            variant_id,
            location_id,
            available + units,
            0,
            Cause::RefundRestock,
        );
    }

    /// Fulfils every unfulfilled unit of an order.
    pub(crate) fn fulfill(&mut self, id: u64) -> Result<(), SimError> {
        let mut order = self.open_order(id)?;
        self.begin_action();
        let mut lines = Vec::new();
        let mut location_id = None;
        for line in &mut order.line_items {
            let units = line.unfulfilled();
            if units == 0 {
                continue;
            }
            self.release(line, units, false, Cause::OwnSale);
            line.fulfilled += units;
            location_id = location_id.or(line.location_id);
            lines.push((line.id, units));
        }
        if lines.is_empty() {
            return Err(SimError::invalid(format!(
                "order {id} has nothing to fulfil"
            )));
        }
        let now = clock::now_unix_ms();
        order.fulfillments.push(Fulfillment {
            id: self.ids.fulfillment.take(),
            created_ms: now,
            location_id,
            lines,
        });
        order.updated_ms = now;
        self.store_and_announce(order, None, &["orders/fulfilled", "orders/updated"])
    }

    /// Sets the quantity of one line, as an order edit in the admin does.
    pub(crate) fn edit_line_quantity(
        &mut self,
        id: u64,
        line_item_id: u64,
        quantity: i64,
    ) -> Result<(), SimError> {
        let mut order = self.open_order(id)?;
        let line = order
            .line_items
            .iter_mut()
            .find(|l| l.id == line_item_id)
            .ok_or_else(|| SimError::not_found("line item", line_item_id))?;
        let delta = quantity - line.current_quantity();
        if quantity < 0 || -delta > line.unfulfilled() {
            return Err(SimError::invalid(format!("line {line_item_id} cannot go to {quantity}: only unfulfilled units can be removed")));
        }
        self.begin_action();
        if delta < 0 {
            line.removed_unfulfilled += -delta;
            let line = line.clone();
            self.release(&line, -delta, true, Cause::OrderEdit);
        } else if delta > 0 {
            line.quantity += delta;
            let line = line.clone();
            self.commit_more(&line, delta);
        }
        order.updated_ms = clock::now_unix_ms();
        self.store_and_announce(order, None, &["orders/updated"])
    }

    fn commit_more(&mut self, line: &LineItem, units: i64) {
        let (true, Some(variant_id), Some(location_id)) =
            (line.tracked, line.variant_id, line.location_id)
        else {
            return;
        };
        let available = self.variants[&variant_id]
            .levels
            .get(&location_id)
            .map_or(0, |l| l.available);
        self.change_level(
            variant_id,
            location_id,
            available - units,
            units,
            Cause::OrderEdit,
        );
    }

    /// Marks a pending order paid.
    pub(crate) fn mark_paid(&mut self, id: u64) -> Result<(), SimError> {
        let mut order = self.open_order(id)?;
        self.begin_action();
        order.financial_status = "paid".to_owned();
        order.updated_ms = clock::now_unix_ms();
        self.store_and_announce(order, None, &["orders/paid", "orders/updated"])
    }

    /// Sets `available` by hand in the admin (drift); stocks the item there if it was not.
    pub(crate) fn admin_set_available(
        &mut self,
        item_id: u64,
        location_id: u64,
        available: i64,
    ) -> Result<serde_json::Value, SimError> {
        if !self.locations.contains_key(&location_id) {
            return Err(SimError::not_found("location", location_id));
        }
        let variant_id = self
            .variant_by_item(item_id)
            .ok_or_else(|| SimError::not_found("inventory item", item_id))?
            .id;
        self.begin_action();
        self.change_level(variant_id, location_id, available, 0, Cause::AdminEdit);
        let variant = &self.variants[&variant_id];
        let level = variant.levels[&location_id];
        Ok(level_json(
            variant,
            location_id,
            &level,
            self.timezone_offset_minutes,
        ))
    }
}

/// Checks and books the units a refund takes from a line.
fn take_refunded_units(line: &mut LineItem, wanted: &RefundLineRequest) -> Result<(), SimError> {
    let quantity = wanted.quantity;
    let too_many = || {
        SimError::invalid(format!(
            "cannot refund {quantity} of line {} with restock_type {}",
            line.id,
            wanted.restock_type.as_str()
        ))
    };
    if quantity < 1 {
        return Err(SimError::invalid(
            "a refund line needs a quantity of at least 1",
        ));
    }
    match wanted.restock_type {
        RestockType::Cancel => {
            if quantity > line.unfulfilled() {
                return Err(too_many());
            }
            line.removed_unfulfilled += quantity;
        }
        RestockType::Return => {
            if quantity > line.fulfilled_kept() {
                return Err(too_many());
            }
            line.removed_fulfilled += quantity;
        }
        RestockType::NoRestock => {
            if quantity > line.current_quantity() {
                return Err(too_many());
            }
            let open = quantity.min(line.unfulfilled());
            line.removed_unfulfilled += open;
            line.removed_fulfilled += quantity - open;
        }
    }
    Ok(())
}
