//! The state of one fake Shopify store: locations, products, variants with their inventory
//! items (1:1) and levels per location, orders, refunds and fulfilments, kept idempotency keys,
//! the display log, and the webhooks waiting to be sent.
//!
//! Quantities follow API_FACTS §1.3: `available` is what shoppers can buy, `committed` what
//! open orders hold, `on_hand` = `available` + `committed` (+ unavailable states, kept at 0 here).
//! Ids are 64-bit and deliberately above 2^53 and odd, like the ids of the real example payloads
//! (`shared/fixtures/shopify/webhooks/`), so that a client reading them through a double loses
//! them visibly.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde_json::Value;

use super::inventory::SetOutcome;
use crate::clock;
use crate::display::{Cause, DisplayLog, Shown};
use crate::seed::ProductSeed;

/// Where each kind of id starts, and the (even) step between two ids of a kind.
const ID_STEP: u64 = 7_654;
pub(crate) const LOCATION_BASE: u64 = 724_318_913_574_017_303;
const PRODUCT_BASE: u64 = 788_032_119_674_292_901;
const VARIANT_BASE: u64 = 839_212_141_605_670_573;
const ITEM_BASE: u64 = 497_213_829_118_231_007;
const ORDER_BASE: u64 = 820_982_911_946_154_509;
const LINE_BASE: u64 = 487_817_672_276_298_555;
const REFUND_BASE: u64 = 890_088_186_047_892_321;
const REFUND_LINE_BASE: u64 = 976_318_377_106_520_351;
const FULFILLMENT_BASE: u64 = 255_858_046_003_510_113;
const TRANSACTION_BASE: u64 = 245_135_271_310_201_195;
const GROUP_BASE: u64 = 132_960_093_001;

/// A sequence of ids of one kind.
#[derive(Debug)]
pub(crate) struct IdSeq(u64);

impl IdSeq {
    pub(crate) fn take(&mut self) -> u64 {
        let id = self.0;
        self.0 += ID_STEP;
        id
    }
}

#[derive(Debug)]
pub(crate) struct Ids {
    pub product: IdSeq,
    pub variant: IdSeq,
    pub item: IdSeq,
    pub order: IdSeq,
    pub line: IdSeq,
    pub refund: IdSeq,
    pub refund_line: IdSeq,
    pub fulfillment: IdSeq,
    pub transaction: IdSeq,
    pub group: IdSeq,
}

impl Ids {
    fn new() -> Self {
        Self {
            product: IdSeq(PRODUCT_BASE),
            variant: IdSeq(VARIANT_BASE),
            item: IdSeq(ITEM_BASE),
            order: IdSeq(ORDER_BASE),
            line: IdSeq(LINE_BASE),
            refund: IdSeq(REFUND_BASE),
            refund_line: IdSeq(REFUND_LINE_BASE),
            fulfillment: IdSeq(FULFILLMENT_BASE),
            transaction: IdSeq(TRANSACTION_BASE),
            group: IdSeq(GROUP_BASE),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Location {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Product {
    pub id: u64,
    pub title: String,
    pub handle: String,
    pub variant_ids: Vec<u64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Quantities of one inventory item at one location.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Level {
    pub available: i64,
    pub committed: i64,
    pub updated_ms: i64,
}

impl Level {
    pub(crate) fn on_hand(&self) -> i64 {
        self.available + self.committed
    }

    /// The quantity of a named state (API_FACTS §1.3); states not modelled are 0.
    pub(crate) fn quantity(&self, name: &str) -> i64 {
        match name {
            "available" => self.available,
            "committed" => self.committed,
            "on_hand" => self.on_hand(),
            _ => 0,
        }
    }
}

/// A variant and its inventory item (1:1 on Shopify).
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    pub id: u64,
    pub product_id: u64,
    pub title: String,
    pub sku: Option<String>,
    pub price_cents: i64,
    pub tracked: bool,
    pub oversell: bool,
    pub item_id: u64,
    pub levels: BTreeMap<u64, Level>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What a refunded unit did to stock (REST `restock_type`, API_FACTS §1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestockType {
    NoRestock,
    Cancel,
    Return,
}

impl RestockType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NoRestock => "no_restock",
            Self::Cancel => "cancel",
            Self::Return => "return",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct LineItem {
    pub id: u64,
    pub variant_id: Option<u64>,
    pub product_id: Option<u64>,
    pub sku: Option<String>,
    pub title: String,
    pub variant_title: Option<String>,
    pub price_cents: i64,
    /// Units bought (raised by order edits that add units).
    pub quantity: i64,
    /// Units fulfilled.
    pub fulfilled: i64,
    /// Unfulfilled units removed by refunds, cancellation or order edits.
    pub removed_unfulfilled: i64,
    /// Fulfilled units refunded.
    pub removed_fulfilled: i64,
    /// Whether the variant's stock was tracked when bought (REST `variant_inventory_management`).
    pub tracked: bool,
    /// Where the units were committed.
    pub location_id: Option<u64>,
}

impl LineItem {
    pub(crate) fn current_quantity(&self) -> i64 {
        self.quantity - self.removed_unfulfilled - self.removed_fulfilled
    }

    pub(crate) fn unfulfilled(&self) -> i64 {
        (self.quantity - self.fulfilled - self.removed_unfulfilled).max(0)
    }

    pub(crate) fn fulfilled_kept(&self) -> i64 {
        (self.fulfilled - self.removed_fulfilled).max(0)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RefundLine {
    pub id: u64,
    pub line_item_id: u64,
    pub quantity: i64,
    pub restock_type: RestockType,
    pub location_id: Option<u64>,
    pub subtotal_cents: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Refund {
    pub id: u64,
    pub created_ms: i64,
    pub note: Option<String>,
    pub lines: Vec<RefundLine>,
    pub transaction: Option<(u64, i64)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Fulfillment {
    pub id: u64,
    pub created_ms: i64,
    pub location_id: Option<u64>,
    pub lines: Vec<(u64, i64)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub id: u64,
    pub number: u64,
    pub token: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub cancelled_ms: Option<i64>,
    pub cancel_reason: Option<String>,
    pub closed_ms: Option<i64>,
    pub financial_status: String,
    pub test: bool,
    pub email: String,
    pub line_items: Vec<LineItem>,
    pub refunds: Vec<Refund>,
    pub fulfillments: Vec<Fulfillment>,
}

/// A webhook to send: the topic, the payload as it was when the action happened, and the event
/// id shared by every delivery of one merchant action (API_FACTS §1.6).
#[derive(Debug, Clone)]
pub(crate) struct Trigger {
    pub topic: &'static str,
    /// `X-Shopify-Webhook-Id`: one per delivery, kept across its retries.
    pub webhook_id: String,
    pub payload: Value,
    pub event_id: String,
    pub triggered_ms: i64,
}

/// A kept idempotency key (API_FACTS §1.2).
#[derive(Debug, Clone)]
pub(crate) enum Idempotency {
    InFlight {
        fingerprint: String,
    },
    Done {
        fingerprint: String,
        outcome: SetOutcome,
    },
}

pub(crate) struct State {
    pub shop_domain: String,
    pub timezone_offset_minutes: i32,
    pub locations: BTreeMap<u64, Location>,
    pub products: BTreeMap<u64, Product>,
    pub variants: BTreeMap<u64, Variant>,
    pub item_variant: HashMap<u64, u64>,
    pub orders: BTreeMap<u64, Order>,
    pub idempotency: HashMap<String, Idempotency>,
    pub display: DisplayLog,
    pub outbox: Vec<Trigger>,
    pub ids: Ids,
    pub next_order_number: u64,
    event_id: String,
    rng: StdRng,
}

impl State {
    pub(crate) fn new(
        shop_domain: &str,
        timezone_offset_minutes: i32,
        display_capacity: usize,
        seed: u64,
    ) -> Self {
        Self {
            shop_domain: shop_domain.to_owned(),
            timezone_offset_minutes,
            locations: BTreeMap::new(),
            products: BTreeMap::new(),
            variants: BTreeMap::new(),
            item_variant: HashMap::new(),
            orders: BTreeMap::new(),
            idempotency: HashMap::new(),
            display: DisplayLog::new(display_capacity),
            outbox: Vec::new(),
            ids: Ids::new(),
            next_order_number: 1001,
            event_id: String::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Adds the locations and the catalog of a fresh store.
    pub(crate) fn seed(&mut self, locations: &[String], products: &[ProductSeed]) {
        let now = clock::now_unix_ms();
        let location_ids: Vec<u64> = (0..locations.len().max(1))
            .map(|i| LOCATION_BASE + ID_STEP * i as u64)
            .collect();
        for (i, id) in location_ids.iter().enumerate() {
            let name = locations
                .get(i)
                .cloned()
                .unwrap_or_else(|| "Shop location".to_owned());
            self.locations.insert(*id, Location { id: *id, name });
        }
        for seed in products {
            self.seed_product(seed, &location_ids, now);
        }
    }

    fn seed_product(&mut self, seed: &ProductSeed, location_ids: &[u64], now: i64) {
        let product_id = self.ids.product.take();
        let mut variant_ids = Vec::new();
        for variant_seed in &seed.variants {
            let id = self.ids.variant.take();
            let item_id = self.ids.item.take();
            let mut levels = BTreeMap::new();
            for (index, location_id) in location_ids.iter().enumerate() {
                if let Some(available) = variant_seed.at(index) {
                    let level = Level {
                        available,
                        committed: 0,
                        updated_ms: now,
                    };
                    levels.insert(*location_id, level);
                }
            }
            let variant = Variant {
                id,
                product_id,
                title: variant_seed.title.clone(),
                sku: variant_seed.sku.clone(),
                price_cents: parse_cents(&variant_seed.price),
                tracked: variant_seed.tracked,
                oversell: variant_seed.oversell,
                item_id,
                levels,
                created_ms: now,
                updated_ms: now,
            };
            for (location_id, level) in &variant.levels {
                let shown = shown(&variant, *location_id);
                self.display
                    .record(shown, None, level.available, Cause::Seed);
            }
            self.item_variant.insert(item_id, id);
            self.variants.insert(id, variant);
            variant_ids.push(id);
        }
        let handle = seed.title.to_lowercase().replace(' ', "-");
        let product = Product {
            id: product_id,
            title: seed.title.clone(),
            handle,
            variant_ids,
            created_ms: now,
            updated_ms: now,
        };
        self.products.insert(product_id, product);
    }

    /// Starts a merchant action: every webhook it triggers shares one event id.
    pub(crate) fn begin_action(&mut self) {
        self.event_id = self.uuid();
    }

    /// A random UUID (v4 form), as Shopify's webhook and event ids are written.
    pub(crate) fn uuid(&mut self) -> String {
        uuid_from(&mut self.rng)
    }

    pub(crate) fn trigger(&mut self, topic: &'static str, payload: Value) {
        if self.event_id.is_empty() {
            self.begin_action();
        }
        let webhook_id = self.uuid();
        self.outbox.push(Trigger {
            topic,
            webhook_id,
            payload,
            event_id: self.event_id.clone(),
            triggered_ms: clock::now_unix_ms(),
        });
    }

    pub(crate) fn variant_by_item(&self, item_id: u64) -> Option<&Variant> {
        self.item_variant
            .get(&item_id)
            .and_then(|v| self.variants.get(v))
    }

    /// Changes `available` of a level (and `committed` by `committed_delta`), logging what a
    /// shopper sees and announcing it (`inventory_levels/update`).
    pub(crate) fn change_level(
        &mut self,
        variant_id: u64,
        location_id: u64,
        available: i64,
        committed_delta: i64,
        cause: Cause,
    ) {
        let now = clock::now_unix_ms();
        let Some(variant) = self.variants.get_mut(&variant_id) else {
            return;
        };
        let level = variant.levels.entry(location_id).or_insert(Level {
            available: 0,
            committed: 0,
            updated_ms: now,
        });
        let before = level.available;
        level.available = available;
        level.committed += committed_delta;
        level.updated_ms = now;
        let level = *level;
        variant.updated_ms = now;
        let variant = variant.clone();
        self.display
            .record(shown(&variant, location_id), Some(before), available, cause);
        if before != available {
            let payload = super::rest_json::level_json(
                &variant,
                location_id,
                &level,
                self.timezone_offset_minutes,
            );
            self.trigger("inventory_levels/update", payload);
        }
    }

    /// Takes the webhooks triggered since the last call.
    pub(crate) fn take_outbox(&mut self) -> Vec<Trigger> {
        self.event_id.clear();
        std::mem::take(&mut self.outbox)
    }
}

/// Where a level is shown, for the display log.
pub(crate) fn shown(variant: &Variant, location_id: u64) -> Shown<'_> {
    Shown {
        item_id: variant.item_id,
        location_id: Some(location_id),
        variant_id: variant.id,
        sku: variant.sku.as_deref(),
    }
}

pub(crate) use crate::money::{format_cents, parse_cents};

pub(crate) fn uuid_from(rng: &mut StdRng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_bit_and_odd() {
        let mut seq = IdSeq(ORDER_BASE);
        let id = seq.take();
        assert!(id > 1 << 53 && id % 2 == 1);
        assert_ne!(
            id as f64 as u64, id,
            "ids must not survive a trip through f64"
        );
        assert_eq!(seq.take() - id, ID_STEP);
        let uuid = uuid_from(&mut StdRng::seed_from_u64(1));
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
    }
}
