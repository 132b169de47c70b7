//! Prices as both channels write them: decimal strings with two places (`"19.99"`), kept as
//! integer cents inside the fakes.

/// Cents of a decimal price such as `"19.99"`; 0 when unreadable.
pub(crate) fn parse_cents(price: &str) -> i64 {
    let price = price.trim();
    let (whole, fraction) = price.split_once('.').unwrap_or((price, "0"));
    let negative = whole.starts_with('-');
    let whole: i64 = whole.trim_start_matches('-').parse().unwrap_or(0);
    let fraction = format!("{fraction:0<2}");
    let cents: i64 = fraction.get(..2).and_then(|f| f.parse().ok()).unwrap_or(0);
    let value = whole * 100 + cents;
    if negative {
        -value
    } else {
        value
    }
}

/// `"19.99"` of 1999 cents.
pub(crate) fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_prices() {
        assert_eq!(parse_cents("19.99"), 1999);
        assert_eq!(parse_cents("5"), 500);
        assert_eq!(parse_cents("5.5"), 550);
        assert_eq!(parse_cents("-2.25"), -225);
        assert_eq!(parse_cents("abc"), 0);
        assert_eq!(format_cents(1999), "19.99");
        assert_eq!(format_cents(-500), "-5.00");
    }
}
