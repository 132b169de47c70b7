//! Unit counts as they arrive from the edge: strictly positive and at most one billion, so that
//! sums of many of them never come near `i64`'s range.

/// The largest quantity one request may name.
pub const QUANTITY_MAX: i64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidQuantity {
    #[error("quantity must be at least 1, got {0}")]
    NotPositive(i64),
    #[error("quantity {0} is above the limit of {QUANTITY_MAX}")]
    TooLarge(i64),
    #[error("delta must not be 0")]
    ZeroDelta,
    #[error("delta {0} is beyond ±{QUANTITY_MAX}")]
    DeltaTooLarge(i64),
    #[error("quantity must not be negative, got {0}")]
    Negative(i64),
}

/// A strictly positive number of units, `1..=QUANTITY_MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Quantity(i64);

impl Quantity {
    pub fn parse(raw: i64) -> Result<Self, InvalidQuantity> {
        if raw <= 0 {
            Err(InvalidQuantity::NotPositive(raw))
        } else if raw > QUANTITY_MAX {
            Err(InvalidQuantity::TooLarge(raw))
        } else {
            Ok(Self(raw))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A signed, non-zero change of units within `±QUANTITY_MAX`.
pub fn parse_delta(raw: i64) -> Result<i64, InvalidQuantity> {
    if raw == 0 {
        Err(InvalidQuantity::ZeroDelta)
    } else if raw.abs() > QUANTITY_MAX {
        Err(InvalidQuantity::DeltaTooLarge(raw))
    } else {
        Ok(raw)
    }
}

/// A count that may be zero (a cycle count, an order line's quantity): `0..=QUANTITY_MAX`.
pub fn parse_count(raw: i64) -> Result<i64, InvalidQuantity> {
    if raw < 0 {
        Err(InvalidQuantity::Negative(raw))
    } else if raw > QUANTITY_MAX {
        Err(InvalidQuantity::TooLarge(raw))
    } else {
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(-3).is_err());
        assert_eq!(Quantity::parse(QUANTITY_MAX).unwrap().get(), QUANTITY_MAX);
        assert!(Quantity::parse(QUANTITY_MAX + 1).is_err());
        assert!(parse_delta(0).is_err());
        assert_eq!(parse_delta(-5), Ok(-5));
        assert!(parse_count(-1).is_err());
        assert_eq!(parse_count(0), Ok(0));
    }
}
