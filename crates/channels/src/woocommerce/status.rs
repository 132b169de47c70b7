//! Which WooCommerce order statuses commit, ship or release stock (DESIGN §1 "Order lines"): a
//! table in code, one test per row. It mirrors WooCommerce's own stock rules
//! (`wc-stock-functions.php`): stock is reduced when an order becomes `processing`, `on-hold` or
//! `completed`, and restored when it becomes `cancelled` or `pending`.
//!
//! | status           | effect  | why |
//! |------------------|---------|-----|
//! | `pending`        | release | unpaid; WooCommerce restores stock on a move back to pending |
//! | `processing`     | commit  | paid, to be fulfilled; WooCommerce reduces stock |
//! | `on-hold`        | commit  | awaiting confirmation (e.g. bank transfer); WooCommerce reduces stock |
//! | `completed`      | ship    | fulfilled: the units have left (committed, then shipped) |
//! | `cancelled`      | release | WooCommerce restores stock |
//! | `refunded`       | release | fully refunded: unshipped units are released; shipped ones come back only through a refund's restock |
//! | `failed`         | release | payment failed; stock was never reduced |
//! | `trash`          | release | the order was trashed |
//! | `checkout-draft` | release | a block-checkout draft, not an order yet |
//! | anything else    | commit  | a custom status (extensions add `shipped`, `awaiting-shipment`, …): keeping units committed cannot oversell |
//!
//! A status arrives without its `wc-` prefix in the REST API; a prefixed one is read the same.

/// What an order status means for its lines' units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The order wants its units: unshipped ones stay committed.
    Commit,
    /// The order wants its units and they have shipped.
    Ship,
    /// The order wants nothing more: every unshipped unit is released.
    Release,
}

impl Effect {
    /// Whether the order is open (still wants its unshipped units).
    pub fn open(self) -> bool {
        matches!(self, Self::Commit | Self::Ship)
    }

    /// Whether the lines' units count as shipped.
    pub fn ships(self) -> bool {
        self == Self::Ship
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRow {
    pub status: &'static str,
    pub effect: Effect,
}

/// WooCommerce's core order statuses and what each means for stock.
pub const STATUS_TABLE: &[StatusRow] = &[
    StatusRow {
        status: "pending",
        effect: Effect::Release,
    },
    StatusRow {
        status: "processing",
        effect: Effect::Commit,
    },
    StatusRow {
        status: "on-hold",
        effect: Effect::Commit,
    },
    StatusRow {
        status: "completed",
        effect: Effect::Ship,
    },
    StatusRow {
        status: "cancelled",
        effect: Effect::Release,
    },
    StatusRow {
        status: "refunded",
        effect: Effect::Release,
    },
    StatusRow {
        status: "failed",
        effect: Effect::Release,
    },
    StatusRow {
        status: "trash",
        effect: Effect::Release,
    },
    StatusRow {
        status: "checkout-draft",
        effect: Effect::Release,
    },
];

/// The effect of a status no row names (an extension's custom status).
pub const UNKNOWN_STATUS_EFFECT: Effect = Effect::Commit;

/// The effect of an order status.
pub fn effect(status: &str) -> Effect {
    let status = status.trim();
    let status = status.strip_prefix("wc-").unwrap_or(status);
    STATUS_TABLE
        .iter()
        .find(|row| row.status.eq_ignore_ascii_case(status))
        .map_or(UNKNOWN_STATUS_EFFECT, |row| row.effect)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str) -> Effect {
        let found = STATUS_TABLE
            .iter()
            .find(|r| r.status == status)
            .expect("a row");
        assert_eq!(effect(status), found.effect);
        found.effect
    }

    #[test]
    fn pending_releases() {
        assert_eq!(row("pending"), Effect::Release);
        assert!(!Effect::Release.open());
    }

    #[test]
    fn processing_commits() {
        assert_eq!(row("processing"), Effect::Commit);
        assert!(Effect::Commit.open() && !Effect::Commit.ships());
    }

    #[test]
    fn on_hold_commits() {
        assert_eq!(row("on-hold"), Effect::Commit);
    }

    #[test]
    fn completed_ships() {
        assert_eq!(row("completed"), Effect::Ship);
        assert!(Effect::Ship.open() && Effect::Ship.ships());
    }

    #[test]
    fn cancelled_releases() {
        assert_eq!(row("cancelled"), Effect::Release);
    }

    #[test]
    fn refunded_releases() {
        assert_eq!(row("refunded"), Effect::Release);
    }

    #[test]
    fn failed_releases() {
        assert_eq!(row("failed"), Effect::Release);
    }

    #[test]
    fn trash_releases() {
        assert_eq!(row("trash"), Effect::Release);
    }

    #[test]
    fn checkout_draft_releases() {
        assert_eq!(row("checkout-draft"), Effect::Release);
    }

    #[test]
    fn unknown_statuses_commit_and_prefixes_are_read() {
        assert_eq!(effect("awaiting-shipment"), Effect::Commit);
        assert_eq!(effect("wc-cancelled"), Effect::Release);
        assert_eq!(effect(" Completed "), Effect::Ship);
    }

    #[test]
    fn every_row_is_tested_and_unique() {
        let mut seen = std::collections::HashSet::new();
        assert!(STATUS_TABLE.iter().all(|r| seen.insert(r.status)));
        assert_eq!(STATUS_TABLE.len(), 9, "a new row needs its own test above");
    }
}
