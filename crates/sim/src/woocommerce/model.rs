//! The state of one fake WooCommerce store: products (simple and variable) and variations,
//! orders with their line items and refunds, webhooks with their pending deliveries, and the
//! display log.
//!
//! As in WordPress, products, variations, orders and refunds are posts and share one id
//! sequence (so a product id and a variation id never coincide and interleave, API_FACTS §2);
//! line items have their own. Stock lives on the product or variation that manages it
//! (`manage_stock`); a variation that does not manage its own stock uses its parent's when the
//! parent does (`manage_stock: "parent"`). There are no locations (§2.1).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::display::{Cause, DisplayLog, Shown};
use crate::seed::{ProductSeed, DEFAULT_VARIANT_TITLE};
use crate::{clock, SimError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Simple,
    Variable,
    Variation,
}

impl Kind {
    /// The item's `type`, as WooCommerce names it.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Self::Simple => "simple",
            Self::Variable => "variable",
            Self::Variation => "variation",
        }
    }
}

/// A product or a variation.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub id: u64,
    pub kind: Kind,
    pub parent_id: Option<u64>,
    pub name: String,
    pub option: Option<String>,
    pub sku: String,
    pub price_cents: i64,
    pub manage_stock: bool,
    pub stock_quantity: Option<i64>,
    /// `no`, `notify` or `yes`.
    pub backorders: String,
    /// The status set by hand when stock is not managed.
    pub manual_stock_status: String,
    pub variation_ids: Vec<u64>,
    pub created_ms: i64,
    pub modified_ms: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub id: u64,
    pub name: String,
    pub product_id: u64,
    pub variation_id: u64,
    pub quantity: i64,
    pub sku: String,
    pub price_cents: i64,
    /// The `_reduced_stock` item meta: units this line took from stock.
    pub reduced_stock: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct RefundLine {
    pub id: u64,
    pub order_line_id: u64,
    pub quantity: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Refund {
    pub id: u64,
    pub created_ms: i64,
    pub reason: String,
    pub amount_cents: i64,
    pub lines: Vec<RefundLine>,
}

#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub id: u64,
    pub order_key: String,
    pub status: String,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub paid_ms: Option<i64>,
    pub completed_ms: Option<i64>,
    pub lines: Vec<Line>,
    pub refunds: Vec<Refund>,
    /// The order's "stock reduced" flag.
    pub stock_reduced: bool,
}

impl Order {
    pub(crate) fn refunded_quantity(&self, line_id: u64) -> i64 {
        self.refunds
            .iter()
            .flat_map(|r| &r.lines)
            .filter(|l| l.order_line_id == line_id)
            .map(|l| l.quantity)
            .sum()
    }

    pub(crate) fn total_cents(&self) -> i64 {
        self.lines.iter().map(|l| l.price_cents * l.quantity).sum()
    }

    pub(crate) fn refunded_cents(&self) -> i64 {
        self.refunds.iter().map(|r| r.amount_cents).sum()
    }
}

/// A webhook's status (API_FACTS §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    Active,
    Paused,
    Disabled,
}

/// A webhook as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookInfo {
    pub id: u64,
    pub name: String,
    /// `order.created` or `order.updated`.
    pub topic: String,
    pub delivery_url: String,
    pub secret: String,
    pub status: WebhookStatus,
    /// Consecutive failed deliveries.
    pub failure_count: u32,
}

/// A delivery waiting in the queue: one per webhook and resource (coalesced).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub webhook_id: u64,
    pub resource_id: u64,
    pub due: Instant,
}

pub(crate) struct State {
    pub timezone_offset_minutes: i32,
    pub items: BTreeMap<u64, Item>,
    pub orders: BTreeMap<u64, Order>,
    pub webhooks: BTreeMap<u64, WebhookInfo>,
    pub pending: VecDeque<Pending>,
    pub display: DisplayLog,
    next_post_id: u64,
    next_line_id: u64,
    next_webhook_id: u64,
}

impl State {
    pub(crate) fn new(timezone_offset_minutes: i32, display_capacity: usize) -> Self {
        Self {
            timezone_offset_minutes,
            items: BTreeMap::new(),
            orders: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            pending: VecDeque::new(),
            display: DisplayLog::new(display_capacity),
            next_post_id: 10,
            next_line_id: 1,
            next_webhook_id: 1,
        }
    }

    pub(crate) fn post_id(&mut self) -> u64 {
        let id = self.next_post_id;
        self.next_post_id += 1;
        id
    }

    pub(crate) fn line_id(&mut self) -> u64 {
        let id = self.next_line_id;
        self.next_line_id += 1;
        id
    }

    pub(crate) fn webhook_id(&mut self) -> u64 {
        let id = self.next_webhook_id;
        self.next_webhook_id += 1;
        id
    }

    /// Adds the catalog of a fresh store: a single "Default Title" variant makes a simple
    /// product, anything else a variable product with variations.
    pub(crate) fn seed(&mut self, products: &[ProductSeed]) {
        for seed in products {
            let simple =
                seed.variants.len() == 1 && seed.variants[0].title == DEFAULT_VARIANT_TITLE;
            let Some(first) = seed.variants.first() else {
                continue;
            };
            let id = self.post_id();
            let kind = if simple { Kind::Simple } else { Kind::Variable };
            let mut product = new_item(id, kind, None, &seed.title, None);
            if simple {
                apply_seed(&mut product, first);
            }
            self.items.insert(id, product);
            if simple {
                self.show_seed(id);
                continue;
            }
            for variant in &seed.variants {
                let variation_id = self.post_id();
                let mut variation = new_item(
                    variation_id,
                    Kind::Variation,
                    Some(id),
                    &seed.title,
                    Some(&variant.title),
                );
                apply_seed(&mut variation, variant);
                self.items.insert(variation_id, variation);
                if let Some(parent) = self.items.get_mut(&id) {
                    parent.variation_ids.push(variation_id);
                }
                self.show_seed(variation_id);
            }
        }
    }

    fn show_seed(&mut self, id: u64) {
        let Some(item) = self.items.get(&id) else {
            return;
        };
        if let (true, Some(quantity)) = (item.manage_stock, item.stock_quantity) {
            self.display
                .record(shown(item), None, quantity, Cause::Seed);
        }
    }

    /// The id of the product or variation whose stock `id` sells from, if stock is managed.
    pub(crate) fn stock_holder(&self, id: u64) -> Option<u64> {
        let item = self.items.get(&id)?;
        if item.manage_stock {
            return Some(id);
        }
        let parent = self.items.get(&item.parent_id?)?;
        parent.manage_stock.then_some(parent.id)
    }

    /// Sets the stock of a holder, logging what shoppers see.
    pub(crate) fn set_stock(&mut self, holder: u64, quantity: i64, cause: Cause) {
        let Some(item) = self.items.get_mut(&holder) else {
            return;
        };
        let before = item.stock_quantity;
        item.stock_quantity = Some(quantity);
        item.modified_ms = clock::now_unix_ms();
        let item = item.clone();
        self.display.record(shown(&item), before, quantity, cause);
    }

    /// Changes the stock of a holder by `delta`.
    pub(crate) fn change_stock(&mut self, holder: u64, delta: i64, cause: Cause) {
        let current = self
            .items
            .get(&holder)
            .and_then(|i| i.stock_quantity)
            .unwrap_or(0);
        self.set_stock(holder, current + delta, cause);
    }

    pub(crate) fn order(&self, id: u64) -> Result<&Order, SimError> {
        self.orders
            .get(&id)
            .ok_or_else(|| SimError::not_found("order", id))
    }

    /// Queues a delivery of `resource_id` to every active webhook of `topic`, unless one is
    /// already pending for that webhook and resource (coalescing, API_FACTS §2.3).
    pub(crate) fn enqueue(
        &mut self,
        topic: &str,
        resource_id: u64,
        delay: std::time::Duration,
    ) -> bool {
        let mut queued = false;
        let hooks: Vec<u64> = self
            .webhooks
            .values()
            .filter(|w| w.topic == topic && w.status == WebhookStatus::Active)
            .map(|w| w.id)
            .collect();
        for webhook_id in hooks {
            let pending = self
                .pending
                .iter()
                .any(|p| p.webhook_id == webhook_id && p.resource_id == resource_id);
            if !pending {
                self.pending.push_back(Pending {
                    webhook_id,
                    resource_id,
                    due: Instant::now() + delay,
                });
                queued = true;
            }
        }
        queued
    }
}

fn new_item(id: u64, kind: Kind, parent_id: Option<u64>, name: &str, option: Option<&str>) -> Item {
    let now = clock::now_unix_ms();
    Item {
        id,
        kind,
        parent_id,
        name: name.to_owned(),
        option: option.map(str::to_owned),
        sku: String::new(),
        price_cents: 0,
        manage_stock: false,
        stock_quantity: None,
        backorders: "no".to_owned(),
        manual_stock_status: "instock".to_owned(),
        variation_ids: Vec::new(),
        created_ms: now,
        modified_ms: now,
    }
}

fn apply_seed(item: &mut Item, seed: &crate::seed::VariantSeed) {
    item.sku = seed.sku.clone().unwrap_or_default();
    item.price_cents = crate::money::parse_cents(&seed.price);
    item.manage_stock = seed.tracked;
    item.stock_quantity = seed.tracked.then(|| seed.at(0).unwrap_or(0));
    item.backorders = if seed.oversell { "yes" } else { "no" }.to_owned();
}

/// Where an item's stock is shown, for the display log.
pub(crate) fn shown(item: &Item) -> Shown<'_> {
    Shown {
        item_id: item.id,
        location_id: None,
        variant_id: item.id,
        sku: (!item.sku.is_empty()).then_some(item.sku.as_str()),
    }
}
