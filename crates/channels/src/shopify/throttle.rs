//! What Shopify's throttling signals tell us, kept between calls:
//!
//! - GraphQL: the cost bucket of the app on the store, from `extensions.cost.throttleStatus`
//!   (`maximumAvailable`, `currentlyAvailable`, `restoreRate`) of the last answer, projected
//!   forward at the restore rate. A `THROTTLED` answer waits
//!   `(requestedQueryCost − currentlyAvailable) / restoreRate`.
//! - REST: the call bucket from `X-Shopify-Shop-Api-Call-Limit: used/capacity`, leaking at the
//!   Standard plan's 2 calls per second (the slowest plan, so never too fast elsewhere), and a
//!   `Retry-After` pause after a 429.
//!
//! The two buckets are separate on Shopify, and so are their pauses here; `backpressure()`
//! speaks for GraphQL, which pushes use.
//!
//! Everything here takes the current instant as an argument, so it is tested without sleeping.

use std::time::{Duration, Instant};

use super::wire::ThrottleStatus;

/// Points kept in reserve: below `max(MIN_RESERVE, RESERVE_SHARE × maximum)` the connector
/// reports backpressure, so that pushes (10 points each) do not run into `THROTTLED`.
const MIN_RESERVE: f64 = 20.0;
const RESERVE_SHARE: f64 = 0.05;
/// REST calls restored per second on the slowest (Standard) plan.
const REST_LEAK_PER_SECOND: f64 = 2.0;
/// REST calls left free in the bucket for other work before this connector waits.
const REST_HEADROOM: f64 = 4.0;
/// The longest pause taken from one throttle signal.
const MAX_PAUSE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    status: ThrottleStatus,
    seen: Instant,
}

/// The throttle state of one store.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    graphql: Option<Bucket>,
    /// Until when GraphQL calls wait (`THROTTLED`, a 429's `Retry-After`).
    graphql_paused_until: Option<Instant>,
    /// `used`, `capacity` and when they were seen.
    rest: Option<(f64, f64, Instant)>,
    /// Until when REST calls wait (a 429's `Retry-After`).
    rest_paused_until: Option<Instant>,
}

fn extend(until: &mut Option<Instant>, pause: Duration, now: Instant) {
    let end = now + pause.min(MAX_PAUSE);
    *until = Some(until.map_or(end, |u| u.max(end)));
}

fn remaining(until: Option<Instant>, now: Instant) -> Duration {
    until.map_or(Duration::ZERO, |u| u.saturating_duration_since(now))
}

fn seconds(value: f64) -> Duration {
    if value.is_finite() && value > 0.0 {
        Duration::from_secs_f64(value).min(MAX_PAUSE)
    } else {
        Duration::ZERO
    }
}

impl Throttle {
    pub(crate) fn record_graphql(&mut self, status: ThrottleStatus, now: Instant) {
        self.graphql = Some(Bucket { status, seen: now });
    }

    /// Holds GraphQL calls until `now + pause` (a `THROTTLED` wait, a 429's `Retry-After`).
    pub(crate) fn pause_graphql(&mut self, pause: Duration, now: Instant) {
        extend(&mut self.graphql_paused_until, pause, now);
    }

    /// Holds REST calls until `now + pause` (a 429's `Retry-After`).
    pub(crate) fn pause_rest(&mut self, pause: Duration, now: Instant) {
        extend(&mut self.rest_paused_until, pause, now);
    }

    /// The points available now, projected from the last answer.
    pub(crate) fn graphql_available(&self, now: Instant) -> Option<f64> {
        let bucket = self.graphql?;
        let elapsed = now.saturating_duration_since(bucket.seen).as_secs_f64();
        let s = bucket.status;
        Some((s.currently_available + elapsed * s.restore_rate).min(s.maximum_available))
    }

    /// How long to wait before a GraphQL call costing `cost` points fits the bucket.
    pub(crate) fn graphql_wait(&self, cost: f64, now: Instant) -> Duration {
        let pause = remaining(self.graphql_paused_until, now);
        let Some(bucket) = self.graphql else {
            return pause;
        };
        let available = self.graphql_available(now).unwrap_or(0.0);
        let wanted = cost.min(bucket.status.maximum_available);
        let refill = seconds((wanted - available) / bucket.status.restore_rate);
        pause.max(refill)
    }

    /// The pause the store asks of GraphQL calls (pushes): while paused, or while the cost
    /// bucket is below its reserve, the time until it is not.
    pub(crate) fn backpressure(&self, now: Instant) -> Option<Duration> {
        let reserve = self.graphql.map_or(0.0, |b| {
            MIN_RESERVE.max(RESERVE_SHARE * b.status.maximum_available)
        });
        let wait = self.graphql_wait(reserve, now);
        (!wait.is_zero()).then_some(wait)
    }

    /// Records `X-Shopify-Shop-Api-Call-Limit: used/capacity`.
    pub(crate) fn record_rest(&mut self, used: f64, capacity: f64, now: Instant) {
        self.rest = Some((used, capacity, now));
    }

    /// How long to wait before the next REST call, to keep some headroom in the call bucket.
    pub(crate) fn rest_wait(&self, now: Instant) -> Duration {
        let pause = remaining(self.rest_paused_until, now);
        let Some((used, capacity, seen)) = self.rest else {
            return pause;
        };
        let leaked = now.saturating_duration_since(seen).as_secs_f64() * REST_LEAK_PER_SECOND;
        let used_now = (used - leaked).max(0.0);
        let over = used_now + REST_HEADROOM - capacity;
        pause.max(seconds(over / REST_LEAK_PER_SECOND))
    }
}

/// `(requested − currentlyAvailable) / restoreRate` of a `THROTTLED` answer, at least 100 ms.
pub(crate) fn throttled_wait(
    requested: Option<f64>,
    status: Option<ThrottleStatus>,
) -> Option<Duration> {
    let status = status?;
    let missing = requested? - status.currently_available;
    Some(seconds(missing / status.restore_rate).max(Duration::from_millis(100)))
}

/// Reads `X-Shopify-Shop-Api-Call-Limit: 32/40`.
pub(crate) fn parse_call_limit(raw: &str) -> Option<(f64, f64)> {
    let (used, capacity) = raw.trim().split_once('/')?;
    let used: f64 = used.trim().parse().ok()?;
    let capacity: f64 = capacity.trim().parse().ok()?;
    (capacity > 0.0).then_some((used, capacity))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(available: f64) -> ThrottleStatus {
        ThrottleStatus {
            maximum_available: 2000.0,
            currently_available: available,
            restore_rate: 100.0,
        }
    }

    #[test]
    fn the_bucket_refills_at_the_restore_rate() {
        let now = Instant::now();
        let mut t = Throttle::default();
        assert_eq!(t.backpressure(now), None);
        t.record_graphql(status(50.0), now);
        // Reserve is 5 % of 2000 = 100 points: 50 missing at 100/s.
        assert_eq!(t.backpressure(now), Some(Duration::from_millis(500)));
        assert_eq!(t.backpressure(now + Duration::from_millis(500)), None);
        assert_eq!(t.graphql_wait(250.0, now), Duration::from_secs(2));
        assert_eq!(
            t.graphql_available(now + Duration::from_secs(100)),
            Some(2000.0)
        );
        t.record_graphql(status(1900.0), now);
        assert_eq!(t.backpressure(now), None);
    }

    #[test]
    fn pauses_hold_calls_of_their_own_bucket() {
        let now = Instant::now();
        let mut t = Throttle::default();
        t.pause_graphql(Duration::from_secs(2), now);
        assert_eq!(t.backpressure(now), Some(Duration::from_secs(2)));
        assert_eq!(t.rest_wait(now), Duration::ZERO, "REST has its own bucket");
        assert_eq!(t.backpressure(now + Duration::from_secs(3)), None);
        t.pause_rest(Duration::from_secs(2), now);
        assert_eq!(
            t.rest_wait(now + Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(t.backpressure(now + Duration::from_secs(3)), None);
        t.pause_graphql(Duration::from_secs(99_999), now);
        assert_eq!(t.backpressure(now), Some(MAX_PAUSE));
    }

    #[test]
    fn throttled_wait_is_the_missing_points_over_the_rate() {
        assert_eq!(
            throttled_wait(Some(302.0), Some(status(102.0))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            throttled_wait(Some(10.0), Some(status(50.0))),
            Some(Duration::from_millis(100))
        );
        assert_eq!(throttled_wait(None, Some(status(50.0))), None);
        assert_eq!(throttled_wait(Some(10.0), None), None);
    }

    #[test]
    fn rest_keeps_headroom() {
        let now = Instant::now();
        let mut t = Throttle::default();
        assert_eq!(t.rest_wait(now), Duration::ZERO);
        t.record_rest(10.0, 40.0, now);
        assert_eq!(t.rest_wait(now), Duration::ZERO);
        t.record_rest(39.0, 40.0, now);
        // 39 + 4 headroom − 40 = 3 calls over, at 2 per second.
        assert_eq!(t.rest_wait(now), Duration::from_millis(1500));
        assert_eq!(t.rest_wait(now + Duration::from_secs(2)), Duration::ZERO);
        assert_eq!(parse_call_limit(" 32/40"), Some((32.0, 40.0)));
        assert_eq!(parse_call_limit("x/40"), None);
        assert_eq!(parse_call_limit("1/0"), None);
    }
}
