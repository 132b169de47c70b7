//! The kinds of ledger entry (DESIGN §2). Every stock movement is exactly one entry of one kind;
//! the strings are stable: they are stored, filtered on and shown to operators.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Units arrived at a location.
    Received,
    /// An operator's ± correction of on_hand.
    Adjusted,
    /// A cycle count set on_hand absolutely; the entry holds the difference.
    Counted,
    /// Units left one location for another (two entries: out of the source, into the target).
    Transferred,
    /// Units committed to an order line.
    OrderCommitted,
    /// A new snapshot reduced a line: short or committed units were cancelled.
    OrderLineChanged,
    /// The order was cancelled: its unshipped units were released.
    OrderCancelled,
    /// Units left the building: committed and on_hand both fell.
    Shipped,
    /// Shipped units came back (not yet on the shelf).
    Returned,
    /// Returned units went back on the shelf.
    Restocked,
    /// An order line asked for units that were not free: they are owed (short).
    Oversold,
    /// Units that became free were committed to a line that was short, oldest first.
    ShortfallFilled,
    /// A SKU's buffer changed (what channels see changes, on_hand does not).
    BufferChanged,
    /// A correction found by reconciliation.
    ReconciliationCorrection,
    /// A reservation committed units for a storefront that asked first.
    Reserved,
    /// A reservation was released by its holder.
    ReservationReleased,
    /// A reservation expired and the sweeper (or a late confirm) released it.
    ReservationExpired,
    /// A reservation became an order line; its committed units moved to the line.
    ReservationConfirmed,
}

impl EntryKind {
    pub const ALL: [EntryKind; 18] = [
        Self::Received,
        Self::Adjusted,
        Self::Counted,
        Self::Transferred,
        Self::OrderCommitted,
        Self::OrderLineChanged,
        Self::OrderCancelled,
        Self::Shipped,
        Self::Returned,
        Self::Restocked,
        Self::Oversold,
        Self::ShortfallFilled,
        Self::BufferChanged,
        Self::ReconciliationCorrection,
        Self::Reserved,
        Self::ReservationReleased,
        Self::ReservationExpired,
        Self::ReservationConfirmed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Adjusted => "adjusted",
            Self::Counted => "counted",
            Self::Transferred => "transferred",
            Self::OrderCommitted => "order_committed",
            Self::OrderLineChanged => "order_line_changed",
            Self::OrderCancelled => "order_cancelled",
            Self::Shipped => "shipped",
            Self::Returned => "returned",
            Self::Restocked => "restocked",
            Self::Oversold => "oversold",
            Self::ShortfallFilled => "shortfall_filled",
            Self::BufferChanged => "buffer_changed",
            Self::ReconciliationCorrection => "reconciliation_correction",
            Self::Reserved => "reserved",
            Self::ReservationReleased => "reservation_released",
            Self::ReservationExpired => "reservation_expired",
            Self::ReservationConfirmed => "reservation_confirmed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in EntryKind::ALL {
            assert_eq!(EntryKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EntryKind::parse("teleported"), None);
    }
}
