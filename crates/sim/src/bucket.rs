//! A leaky bucket, the shape of every limit the fakes enforce: Shopify's GraphQL cost bucket
//! (API_FACTS §1.7: points restored at the plan's rate), Shopify's REST call bucket (40 calls,
//! 2 per second on the Standard plan) and the optional limiter in front of a WooCommerce store.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Size and leak rate of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BucketConfig {
    /// What the bucket holds when full (GraphQL: `maximumAvailable`; REST: calls).
    pub capacity: f64,
    /// What drains (REST) or is restored (GraphQL) per second.
    pub per_second: f64,
}

/// A bucket that fills with each request and drains continuously.
#[derive(Debug)]
pub(crate) struct LeakyBucket {
    config: BucketConfig,
    level: f64,
    last: Instant,
}

impl LeakyBucket {
    pub(crate) fn new(config: BucketConfig) -> Self {
        Self {
            config,
            level: 0.0,
            last: Instant::now(),
        }
    }

    pub(crate) fn config(&self) -> BucketConfig {
        self.config
    }

    fn drain(&mut self) {
        let now = Instant::now();
        let seconds = now.duration_since(self.last).as_secs_f64();
        self.level = (self.level - seconds * self.config.per_second).max(0.0);
        self.last = now;
    }

    /// Room left, after draining.
    pub(crate) fn available(&mut self) -> f64 {
        self.drain();
        self.config.capacity - self.level
    }

    /// What the bucket holds now, after draining.
    pub(crate) fn level(&mut self) -> f64 {
        self.drain();
        self.level
    }

    /// Adds `amount` if it fits; otherwise changes nothing and returns the seconds until it would.
    pub(crate) fn try_fill(&mut self, amount: f64) -> Result<(), f64> {
        self.drain();
        if self.level + amount <= self.config.capacity + f64::EPSILON {
            self.level += amount;
            return Ok(());
        }
        let excess = self.level + amount - self.config.capacity;
        Err(excess / self.config.per_second.max(f64::MIN_POSITIVE))
    }

    /// Gives back part of what was taken (Shopify refunds requested minus actual cost).
    pub(crate) fn refund(&mut self, amount: f64) {
        self.drain();
        self.level = (self.level - amount).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_refuses_and_drains() {
        let mut bucket = LeakyBucket::new(BucketConfig {
            capacity: 10.0,
            per_second: 1000.0,
        });
        assert!(bucket.try_fill(10.0).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(bucket.available() > 1.0);
        let mut slow = LeakyBucket::new(BucketConfig {
            capacity: 10.0,
            per_second: 0.001,
        });
        assert!(slow.try_fill(8.0).is_ok());
        let wait = slow.try_fill(5.0).unwrap_err();
        assert!(wait > 2000.0, "{wait}");
        slow.refund(8.0);
        assert!(slow.try_fill(5.0).is_ok());
    }
}
