//! The `Connector` trait every channel kind implements, and the plain data it exchanges with
//! the app layer. Designed for the marketplaces that come next as well: a push may be accepted
//! for later processing (Amazon answers `ACCEPTED`), a channel may cap revisions per listing per
//! day (eBay: 250), and bulk updates may go through hourly-limited feeds (Walmart, Amazon
//! `JSON_LISTINGS_FEED`) — see `PushMode` and `PushOutcome`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{ChannelError, ParseError};

/// The outcome of checking a webhook's signature over its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// Missing or wrong signature: answered 401, archived as rejected, nothing applied.
    Invalid(&'static str),
    /// An unsigned liveness ping the channel sends when a webhook is created (WooCommerce):
    /// answered 200 and archived as a ping.
    Ping,
}

/// What identifies a delivery permanently, so that re-deliveries are recognized forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The channel's topic, e.g. `orders/create` or `order.updated`.
    pub topic: String,
    /// The permanent identity: a repeat of the same key changes nothing.
    pub dedupe_key: String,
    /// The channel's delivery id as sent (kept for the audit trail).
    pub delivery_id: Option<String>,
}

/// One line of a channel order, in stockhub's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelLine {
    pub line_id: String,
    /// The SKU the channel shows on the line, if any.
    pub sku: Option<String>,
    /// The channel's variant / product reference, to map through listings when the SKU is absent.
    pub variant_ref: Option<String>,
    /// Units still on the line: ordered, less units an order edit removed (refunds are
    /// reported separately and not taken off here).
    pub quantity: i64,
    /// Units ordered when the order was placed, before any edit or refund (for the order's
    /// record: what was cancelled before stockhub saw the line).
    pub ordered: i64,
    /// Units the channel says were fulfilled (shipped).
    pub shipped: i64,
}

/// A refund as the channel reports it; refunds are kept per order and merged by id, so they
/// apply once whatever order they arrive in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRefund {
    pub refund_id: String,
    pub order_external_id: String,
    pub lines: Vec<RefundLine>,
    pub raw: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundLine {
    pub line_id: String,
    pub quantity: i64,
    /// Whether the refunded units had shipped, when the channel says (Shopify `restock_type`
    /// `return`: yes, `cancel`: no); `None` takes unshipped units first.
    pub shipped: Option<bool>,
    /// Whether refunded units that had shipped come back to stock (Shopify `return`/`cancel`/
    /// legacy restock; WooCommerce `api_restock`). Unshipped refunded units are released anyway.
    pub restock: bool,
}

/// `ChannelOrder::version` = `updated_at_ms × VERSION_SCALE + progress` (progress < scale).
pub const VERSION_SCALE: i64 = 1000;

/// The `updated_at` (ms) a version was made from.
pub fn version_time_ms(version: i64) -> i64 {
    version.div_euclid(VERSION_SCALE)
}

/// A channel order as a versioned snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelOrder {
    pub external_id: String,
    /// Orders snapshots: a later one has a higher version. Channels stamp `updated_at` no finer
    /// than a second, so the version is `updated_at_ms × VERSION_SCALE + progress`, where
    /// progress ranks how far the order has moved within that second (cancelled, refunds,
    /// fulfilments): a cancel delivered before a create of the same second still wins.
    pub version: i64,
    /// Whether the order still wants its unshipped units, per the connector's state table.
    pub open: bool,
    pub lines: Vec<ChannelLine>,
    /// Refunds embedded in the order payload.
    pub refunds: Vec<ChannelRefund>,
    /// WooCommerce lists refund ids without quantities: these must be fetched.
    pub refunds_to_fetch: Vec<String>,
    pub raw: Value,
}

/// What a verified delivery asks stockhub to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Intake {
    Order(ChannelOrder),
    Refund(ChannelRefund),
    /// The channel reports a listing's quantity (Shopify `inventory_levels/update`), and when
    /// it showed it (by the channel's clock), if it said.
    ListingQuantity {
        listing_key: String,
        available: i64,
        shown_at_ms: Option<i64>,
    },
    /// A topic stockhub records but does not act on.
    Ignore(String),
}

/// A listing as the channel's catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelListing {
    /// The channel's own id of what holds a quantity (unique per channel).
    pub listing_key: String,
    pub sku: Option<String>,
    /// The channel location the quantity is held at, for channels with locations.
    pub channel_location: Option<String>,
    /// The channel's ids needed to push (product, variant, inventory item …).
    pub ids: Value,
    /// The quantity the channel shows now, if it tracks one.
    pub quantity: Option<i64>,
}

/// What a push call needs to address one listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingRef {
    pub listing_key: String,
    pub channel_location: Option<String>,
    pub ids: Value,
    /// The SKU the channel gave the listing when it was last discovered, if any: a connector may
    /// read many listings' quantities at once by SKU (WooCommerce `GET products?sku=…`, which
    /// also finds variations of different products).
    pub channel_sku: Option<String>,
}

/// One quantity to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushItem {
    pub listing: ListingRef,
    pub quantity: i64,
    /// What the channel is expected to show: sent as compare-and-set where the channel supports
    /// it (Shopify `changeFromQuantity`), so that a sale we have not heard of is not
    /// overwritten.
    pub change_from: Option<i64>,
}

/// What happened to one item of a push call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The channel now shows this quantity.
    Applied {
        confirmed: i64,
    },
    /// Compare-and-set failed: the channel's quantity moved since we last saw it.
    Stale {
        actual: Option<i64>,
    },
    /// Where the comparison is a read before the write (WooCommerce): the channel showed
    /// `actual`, less than `change_from` — a sale stockhub has not heard of — and the item was
    /// set holding that decrease back (DESIGN §1 `u`: `quantity − (change_from − actual)`, at
    /// least 0), or left as it was when it showed that already. The channel now shows
    /// `confirmed`.
    HeldBack {
        actual: i64,
        confirmed: i64,
    },
    /// Accepted for later processing (asynchronous channels); to be checked with `ticket`.
    Accepted {
        ticket: String,
    },
    /// Not applied, through no fault of its own: the channel refused the whole call because of
    /// other items in it (Shopify applies `inventorySetQuantities` all-or-nothing). To be sent
    /// again at once, without counting a failure.
    Refused,
    Failed(ChannelError),
}

/// How a channel takes quantity updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushMode {
    /// Synchronous batch calls of at most `max_items`.
    Batch { max_items: usize },
    /// Bulk feeds, at most `per_hour` of them, each up to `max_items`.
    Feed { max_items: usize, per_hour: u32 },
}

#[async_trait]
pub trait Connector: Send + Sync {
    fn kind(&self) -> &'static str;

    fn push_mode(&self) -> PushMode;

    /// Whether a push can say which quantity it expects to replace (Shopify
    /// `changeFromQuantity`; WooCommerce through a read right before each batch call). Without
    /// it, the push engine reads quantities before it writes, so that a sale the channel made and
    /// stockhub has not heard of yet is never undone.
    fn compare_and_set(&self) -> bool {
        false
    }

    /// Whether a sale can land between the read that checks a listing's quantity and the write
    /// that sets it, and be overwritten: where compare-and-set is emulated by a read
    /// (WooCommerce) or missing. The push engine then reads the channel's orders updated since
    /// just before such a write and books them at once, so that an overwritten sale is pushed
    /// back within a call or two, not at the next backfill.
    fn sales_can_race_writes(&self) -> bool {
        true
    }

    /// Revisions one listing may take per day, if the channel caps them (eBay: 250).
    fn daily_revisions_per_listing(&self) -> Option<u32> {
        None
    }

    /// Checks a delivery's signature over the raw body, before anything is parsed.
    fn verify(&self, headers: &http::HeaderMap, body: &[u8]) -> Verdict;

    /// The delivery's topic and permanent identity.
    fn identify(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<Delivery, ParseError>;

    /// What a verified delivery means for stock.
    fn interpret(&self, delivery: &Delivery, body: &[u8]) -> Result<Intake, ParseError>;

    /// Fetches what a delivery left out (WooCommerce refund quantities).
    async fn fetch_refunds(&self, order: &ChannelOrder)
        -> Result<Vec<ChannelRefund>, ChannelError>;

    /// Every listing in the channel's catalog, paging through it.
    async fn discover(&self) -> Result<Vec<ChannelListing>, ChannelError>;

    /// Sets quantities; `items` is at most the push mode's `max_items`. One outcome per item, in
    /// order; an error for the whole call (throttled, down) is returned as `Err`.
    async fn push(&self, items: &[PushItem]) -> Result<Vec<PushOutcome>, ChannelError>;

    /// The quantities the channel shows now.
    async fn read_quantities(
        &self,
        listings: &[ListingRef],
    ) -> Result<Vec<(String, i64)>, ChannelError>;

    /// Orders updated since `since_ms` (with the caller's overlap), for backfill.
    async fn orders_updated_since(&self, since_ms: i64) -> Result<Vec<ChannelOrder>, ChannelError>;

    /// A pause the channel asked for on its last answer (throttle headroom), if any.
    fn backpressure(&self) -> Option<Duration> {
        None
    }
}
