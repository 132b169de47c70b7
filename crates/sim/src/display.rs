//! The display log: every change of a quantity a shopper could see, with when and why
//! (issue 3 point 5), so tests can check what shoppers could have seen over time and not only
//! the final state. On Shopify a displayed quantity is `available` per inventory item and
//! location (API_FACTS §1.3); on WooCommerce it is `stock_quantity` of the product or variation
//! that manages the stock (§2.1).

use serde::{Deserialize, Serialize};

use crate::clock;

/// Why a displayed quantity changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The quantity the store started with.
    Seed,
    /// A write through the store's API (stockhub's push).
    Push,
    /// The store's own sale.
    OwnSale,
    /// A cancellation that restocked.
    Cancel,
    /// A refund (or return) that restocked.
    RefundRestock,
    /// An edit of an order's line quantities.
    OrderEdit,
    /// A change made by hand in the store's admin (drift).
    AdminEdit,
}

/// One change of a displayed quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplayEntry {
    /// Position in this store's log, from 1.
    pub seq: u64,
    /// Microseconds on the monotonic clock shared by every simulator of the process.
    pub at_us: u64,
    /// Wall-clock time, Unix milliseconds.
    pub unix_ms: i64,
    /// The channel's id of what displays the quantity: Shopify inventory item id, WooCommerce
    /// product or variation id.
    pub item_id: u64,
    /// Shopify location id (none on WooCommerce).
    pub location_id: Option<u64>,
    /// Shopify variant id, WooCommerce product or variation id.
    pub variant_id: u64,
    pub sku: Option<String>,
    /// The quantity shown before (none for a seed).
    pub before: Option<i64>,
    pub after: i64,
    pub cause: Cause,
}

/// What a store displayed, in order. Bounded: past `capacity` the oldest entries are dropped
/// and counted.
#[derive(Debug)]
pub(crate) struct DisplayLog {
    entries: std::collections::VecDeque<DisplayEntry>,
    capacity: usize,
    next_seq: u64,
    dropped: u64,
}

/// Where a displayed quantity lives, for a log entry.
pub(crate) struct Shown<'a> {
    pub item_id: u64,
    pub location_id: Option<u64>,
    pub variant_id: u64,
    pub sku: Option<&'a str>,
}

impl DisplayLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: std::collections::VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 1,
            dropped: 0,
        }
    }

    /// Records a change; a write that leaves the quantity as it was is not a change.
    pub(crate) fn record(
        &mut self,
        shown: Shown<'_>,
        before: Option<i64>,
        after: i64,
        cause: Cause,
    ) {
        if before == Some(after) {
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back(DisplayEntry {
            seq: self.next_seq,
            at_us: clock::monotonic_us(),
            unix_ms: clock::now_unix_ms(),
            item_id: shown.item_id,
            location_id: shown.location_id,
            variant_id: shown.variant_id,
            sku: shown.sku.map(str::to_owned),
            before,
            after,
            cause,
        });
        self.next_seq += 1;
    }

    /// Entries with `seq > after_seq`.
    pub(crate) fn since(&self, after_seq: u64) -> Vec<DisplayEntry> {
        self.entries
            .iter()
            .filter(|e| e.seq > after_seq)
            .cloned()
            .collect()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}
