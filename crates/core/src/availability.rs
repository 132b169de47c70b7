//! The availability formulas of DESIGN §1, exactly:
//!
//! ```text
//! free(s, L) = max(0, on_hand − committed)
//! pool(s, c) = Σ over locations feeding c of free(s, L)
//! raw(s, c)  = pool − buffer(s) − buffer(c)
//! ats(s, c)  = raw ≤ threshold(c) ? 0 : min(⌊raw × share(c)⌋, max(c)), never < 0
//! ```
//!
//! A kit's pool is the number of whole kits its components make, per location (a kit ships from
//! one place), summed over the feeding locations; it then passes through the kit's own buffer
//! and the channel's rules like any SKU.

use serde::{Deserialize, Serialize};

/// A share of 1.0 expressed in parts per million; shares are integers so that `⌊raw × share⌋`
/// is exact.
pub const SHARE_WHOLE_PPM: i64 = 1_000_000;

/// A channel's availability rules (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelRules {
    /// Units held back from this channel for every SKU, invisible to the channel.
    pub buffer: i64,
    /// The share of the pool this channel may show, in parts per million (1,000,000 = all).
    pub share_ppm: i64,
    /// The most this channel is ever shown for one SKU, if any.
    pub max_quantity: Option<i64>,
    /// At or below this many units after buffers, the channel is shown 0.
    pub out_of_stock_threshold: i64,
}

impl Default for ChannelRules {
    fn default() -> Self {
        Self {
            buffer: 0,
            share_ppm: SHARE_WHOLE_PPM,
            max_quantity: None,
            out_of_stock_threshold: 0,
        }
    }
}

/// Units at one location that are neither promised nor missing.
pub fn free(on_hand: i64, committed: i64) -> i64 {
    (on_hand - committed).max(0)
}

/// Available to sell on a channel, from the pool of its feeding locations.
pub fn ats(pool: i64, sku_buffer: i64, rules: &ChannelRules) -> i64 {
    let raw = pool - sku_buffer - rules.buffer;
    if raw <= rules.out_of_stock_threshold {
        return 0;
    }
    let shared =
        (i128::from(raw) * i128::from(rules.share_ppm) / i128::from(SHARE_WHOLE_PPM)) as i64;
    let capped = match rules.max_quantity {
        Some(max) => shared.min(max),
        None => shared,
    };
    capped.max(0)
}

/// Whole kits that components make: `min over components of ⌊free / units_per_kit⌋`.
/// Each item is `(free units of the component, units of it per kit)`. An empty recipe makes none.
pub fn kit_units_at(components: impl IntoIterator<Item = (i64, i64)>) -> i64 {
    components
        .into_iter()
        .map(|(free, per_kit)| {
            if per_kit <= 0 {
                0
            } else {
                free.max(0) / per_kit
            }
        })
        .min()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules(buffer: i64, share_ppm: i64, max: Option<i64>, threshold: i64) -> ChannelRules {
        ChannelRules {
            buffer,
            share_ppm,
            max_quantity: max,
            out_of_stock_threshold: threshold,
        }
    }

    #[test]
    fn formula_examples() {
        assert_eq!(ats(10, 0, &ChannelRules::default()), 10);
        assert_eq!(ats(10, 2, &rules(3, SHARE_WHOLE_PPM, None, 0)), 5);
        assert_eq!(ats(10, 0, &rules(0, 500_000, None, 0)), 5);
        assert_eq!(ats(9, 0, &rules(0, 500_000, None, 0)), 4);
        assert_eq!(ats(10, 0, &rules(0, SHARE_WHOLE_PPM, Some(4), 0)), 4);
        assert_eq!(ats(3, 0, &rules(0, SHARE_WHOLE_PPM, None, 3)), 0);
        assert_eq!(ats(4, 0, &rules(0, SHARE_WHOLE_PPM, None, 3)), 4);
        assert_eq!(ats(2, 5, &ChannelRules::default()), 0);
    }

    #[test]
    fn kits() {
        assert_eq!(kit_units_at([(10, 2), (3, 1)]), 3);
        assert_eq!(kit_units_at([(1, 2)]), 0);
        assert_eq!(kit_units_at(std::iter::empty()), 0);
        assert_eq!(free(3, 5), 0);
    }

    proptest! {
        #[test]
        fn ats_is_bounded(pool in 0i64..1_000_000, sku_buffer in 0i64..100, buffer in 0i64..100,
                          share in 0i64..=SHARE_WHOLE_PPM, max in proptest::option::of(0i64..1000),
                          threshold in 0i64..50) {
            let r = rules(buffer, share, max, threshold);
            let a = ats(pool, sku_buffer, &r);
            prop_assert!(a >= 0);
            prop_assert!(a <= (pool - sku_buffer - buffer).max(0));
            if let Some(m) = max { prop_assert!(a <= m); }
            // More stock never shows less.
            prop_assert!(ats(pool + 1, sku_buffer, &r) >= a);
        }
    }
}
