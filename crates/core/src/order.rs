//! Order-line arithmetic (DESIGN §3 "Order lines"). A line always satisfies
//! `ordered = committed + short + shipped + cancelled`, `returned ≤ shipped`,
//! `restocked ≤ returned`. A channel snapshot names how many units the customer still wants;
//! `plan` turns the difference into the movements to make: reductions use up `short` first, then
//! `committed`, never `shipped`.

use serde::{Deserialize, Serialize};

/// Whether the channel still wants the order's unshipped units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Unshipped units are wanted: commit what is free, record the rest as short.
    Open,
    /// Nothing more is wanted: release every unshipped unit.
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "open" => Some(Self::Open),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// The state of one order line, in units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineState {
    pub committed: i64,
    pub short: i64,
    pub shipped: i64,
    pub cancelled: i64,
    pub returned: i64,
    pub restocked: i64,
}

impl LineState {
    pub fn ordered(&self) -> i64 {
        self.committed + self.short + self.shipped + self.cancelled
    }

    /// Units the customer still gets or has got: everything not cancelled.
    pub fn active(&self) -> i64 {
        self.committed + self.short + self.shipped
    }

    /// True when every invariant of DESIGN §3 holds.
    pub fn is_consistent(&self) -> bool {
        self.committed >= 0
            && self.short >= 0
            && self.shipped >= 0
            && self.cancelled >= 0
            && self.returned >= 0
            && self.restocked >= 0
            && self.returned <= self.shipped
            && self.restocked <= self.returned
    }
}

/// What a snapshot asks of one line, after its status is taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTarget {
    /// Units still wanted, shipped ones included (a cancelled order wants none).
    pub active: i64,
}

impl LineTarget {
    pub fn new(quantity: i64, status: OrderStatus) -> Self {
        match status {
            OrderStatus::Open => Self { active: quantity },
            OrderStatus::Cancelled => Self { active: 0 },
        }
    }
}

/// The movements that take a line from its state to a target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinePlan {
    /// Units to commit now (what is not free becomes short).
    pub add: i64,
    /// Short units to cancel.
    pub cancel_short: i64,
    /// Committed units to release and cancel.
    pub cancel_committed: i64,
    /// Units that the target wants gone but that have shipped already (they stay shipped).
    pub unreducible: i64,
}

impl LinePlan {
    pub fn is_noop(&self) -> bool {
        self.add == 0 && self.cancel_short == 0 && self.cancel_committed == 0
    }
}

/// Plans the difference between a line's state and what a snapshot wants.
pub fn plan(state: &LineState, target: LineTarget) -> LinePlan {
    let active = state.active();
    if target.active >= active {
        return LinePlan {
            add: target.active - active,
            ..LinePlan::default()
        };
    }
    let mut excess = active - target.active;
    let cancel_short = excess.min(state.short);
    excess -= cancel_short;
    let cancel_committed = excess.min(state.committed);
    excess -= cancel_committed;
    LinePlan {
        add: 0,
        cancel_short,
        cancel_committed,
        unreducible: excess,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reductions_use_short_then_committed_never_shipped() {
        let state = LineState {
            committed: 3,
            short: 2,
            shipped: 1,
            ..LineState::default()
        };
        let p = plan(&state, LineTarget::new(3, OrderStatus::Open));
        assert_eq!((p.cancel_short, p.cancel_committed, p.add), (2, 1, 0));
        let p = plan(&state, LineTarget::new(9, OrderStatus::Cancelled));
        assert_eq!(
            (p.cancel_short, p.cancel_committed, p.unreducible),
            (2, 3, 1)
        );
        let p = plan(&state, LineTarget::new(8, OrderStatus::Open));
        assert_eq!(p.add, 2);
    }

    proptest! {
        #[test]
        fn applying_a_plan_reaches_the_target_or_the_shipped_floor(
            committed in 0i64..20, short in 0i64..20, shipped in 0i64..20, target in 0i64..80) {
            let state = LineState { committed, short, shipped, ..LineState::default() };
            let p = plan(&state, LineTarget { active: target });
            let after_active = state.active() + p.add - p.cancel_short - p.cancel_committed;
            prop_assert_eq!(after_active, target.max(shipped));
            prop_assert!(p.cancel_short <= short && p.cancel_committed <= committed);
        }
    }
}
