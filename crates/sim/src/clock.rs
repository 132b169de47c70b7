//! Time for the fakes: wall-clock timestamps written the way each channel writes them
//! (Shopify: ISO 8601 with the shop's UTC offset, `2026-01-10T12:00:00-05:00`, and GraphQL
//! `DateTime` in UTC with `Z`; WooCommerce: naive `2017-03-22T16:28:02` in site time and in GMT),
//! the parsing of the timestamps clients send as filters, and one process-wide monotonic clock
//! shared by every simulator so that display logs of several stores can be merged in order.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds on a monotonic clock shared by every simulator in this process.
pub fn monotonic_us() -> u64 {
    let elapsed = EPOCH.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time in milliseconds shifted by an offset in minutes.
pub fn format_naive(unix_ms: i64, offset_minutes: i32) -> String {
    let seconds = unix_ms.div_euclid(1000) + i64::from(offset_minutes) * 60;
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let rem = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// ISO 8601 with an explicit offset, as Shopify's REST resources write times.
pub fn format_with_offset(unix_ms: i64, offset_minutes: i32) -> String {
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let abs = offset_minutes.unsigned_abs();
    format!(
        "{}{sign}{:02}:{:02}",
        format_naive(unix_ms, offset_minutes),
        abs / 60,
        abs % 60
    )
}

/// ISO 8601 in UTC with `Z`, as GraphQL `DateTime` values are written.
pub fn format_utc(unix_ms: i64) -> String {
    format!("{}Z", format_naive(unix_ms, 0))
}

/// ISO 8601 in UTC with milliseconds, as `X-Shopify-Triggered-At` is written.
pub fn format_utc_millis(unix_ms: i64) -> String {
    format!(
        "{}.{:03}Z",
        format_naive(unix_ms, 0),
        unix_ms.rem_euclid(1000)
    )
}

/// Parses `YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|±HH:MM|±HHMM]` into Unix milliseconds; a time with no
/// offset is read in `default_offset_minutes`.
pub fn parse_timestamp(text: &str, default_offset_minutes: i32) -> Option<i64> {
    let text = text.trim();
    if !text.is_ascii() {
        return None;
    }
    let (date, rest) = text.split_at(text.len().min(10));
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || date.len() != 10 {
        return None;
    }
    let (clock, offset) = split_offset(rest.strip_prefix(['T', ' ']).unwrap_or(rest))?;
    let offset = offset.unwrap_or(default_offset_minutes);
    let seconds_of_day = parse_clock(clock)?;
    let (whole, millis) = seconds_of_day;
    let seconds = days_from_civil(year, month, day) * 86_400 + whole - i64::from(offset) * 60;
    Some(seconds * 1000 + millis)
}

fn split_offset(rest: &str) -> Option<(&str, Option<i32>)> {
    if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        return Some((clock, Some(0)));
    }
    let Some(at) = rest.rfind(['+', '-']) else {
        return Some((rest, None));
    };
    let (clock, zone) = rest.split_at(at);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    Some((clock, Some(sign * (hours * 60 + minutes))))
}

/// Seconds and milliseconds of `HH:MM[:SS[.fff]]` (empty = midnight).
fn parse_clock(clock: &str) -> Option<(i64, i64)> {
    if clock.is_empty() {
        return Some((0, 0));
    }
    let (main, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut fields = main.split(':');
    let hours: i64 = fields.next()?.parse().ok()?;
    let minutes: i64 = fields.next()?.parse().ok()?;
    let seconds: i64 = fields.next().map_or(Some(0), |s| s.parse().ok())?;
    if hours > 23 || minutes > 59 || seconds > 60 {
        return None;
    }
    let millis = if fraction.is_empty() {
        0
    } else {
        let padded = format!("{fraction:0<3}");
        padded[..3].parse().ok()?
    };
    Some((hours * 3600 + minutes * 60 + seconds, millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let ms = parse_timestamp("2021-12-31T19:00:00-05:00", 0).unwrap();
        assert_eq!(format_utc(ms), "2022-01-01T00:00:00Z");
        assert_eq!(format_with_offset(ms, -300), "2021-12-31T19:00:00-05:00");
        assert_eq!(format_with_offset(ms, 0), "2022-01-01T00:00:00+00:00");
        assert_eq!(format_naive(ms, -180), "2021-12-31T21:00:00");
        assert_eq!(parse_timestamp("2022-01-01T00:00:00Z", 0), Some(ms));
        assert_eq!(parse_timestamp("2022-01-01T00:00:00", 0), Some(ms));
        assert_eq!(parse_timestamp("2021-12-31T21:00:00", -180), Some(ms));
        assert_eq!(
            parse_timestamp("2022-01-01T00:00:00.250Z", 0),
            Some(ms + 250)
        );
        assert_eq!(parse_timestamp("2022-01-01", 0), Some(ms));
        assert_eq!(format_utc_millis(ms + 7), "2022-01-01T00:00:00.007Z");
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_timestamp("yesterday", 0), None);
        assert_eq!(parse_timestamp("2022-13-01T00:00:00Z", 0), None);
        assert_eq!(parse_timestamp("2022-01-01T25:00:00Z", 0), None);
    }
}
