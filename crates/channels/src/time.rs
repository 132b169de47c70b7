//! Channel timestamps to milliseconds since the epoch: RFC 3339 with an offset
//! (`2026-01-10T12:00:00-05:00`, Shopify) or without a zone, taken as UTC (WooCommerce's
//! `*_gmt` fields, `2017-03-22T19:28:08`), and back to RFC 3339 for query parameters.

/// Milliseconds since the epoch of a channel timestamp, or `None` if it does not read as one.
pub fn parse_ms(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let (date, rest) = raw.split_at_checked(10)?;
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, zone) = split_zone(rest)?;
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, f)) => (hms, f),
        None => (clock, ""),
    };
    let mut t = hms.split(':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: i64 = t.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - zone;
    Some(seconds * 1000 + millis)
}

/// Splits `HH:MM:SS[.fff]` from its zone (`Z`, `±HH:MM`, or none = UTC); returns the zone's
/// offset in seconds.
fn split_zone(rest: &str) -> Option<(&str, i64)> {
    if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    if rest.len() > 6 {
        let (clock, zone) = rest.split_at(rest.len() - 6);
        let sign = match zone.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return Some((rest, 0)),
        };
        let hours: i64 = zone.get(1..3)?.parse().ok()?;
        let minutes: i64 = zone.get(4..6)?.parse().ok()?;
        return Some((clock, sign * (hours * 3600 + minutes * 60)));
    }
    Some((rest, 0))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = (month + 9) % 12;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 in UTC with a `Z`, e.g. for `updated_at_min` and `modified_after`.
pub fn format_utc(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_zones_and_fractions() {
        assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_ms("2021-12-31T19:00:00-05:00"),
            parse_ms("2022-01-01T00:00:00Z")
        );
        assert_eq!(parse_ms("2022-01-01T00:00:00Z"), Some(1_640_995_200_000));
        assert_eq!(parse_ms("2017-03-22T19:28:08"), Some(1_490_210_888_000));
        assert_eq!(
            parse_ms("2026-01-10T12:00:00.25+01:00"),
            Some(parse_ms("2026-01-10T11:00:00Z").unwrap() + 250)
        );
        assert_eq!(parse_ms("not a time"), None);
        assert_eq!(parse_ms("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn round_trip() {
        for ms in [0, 1_640_995_200_000, 1_795_908_013_000, 951_782_400_000] {
            assert_eq!(parse_ms(&format_utc(ms)), Some(ms));
        }
        assert_eq!(format_utc(1_640_995_200_000), "2022-01-01T00:00:00Z");
    }
}
