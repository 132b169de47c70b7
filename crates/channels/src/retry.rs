//! Retry maths: exponential backoff with full jitter, a clamped `Retry-After`, and the point at
//! which a failing push becomes dead.

use std::time::Duration;

use crate::error::ChannelError;

/// How a failing push is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_delay: Duration,
    /// After failing for this long, a push is dead (listed for the operator, not retried).
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            max_delay: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// What to do with a push that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    RetryIn(Duration),
    Dead,
}

impl RetryPolicy {
    /// `attempts` counts failures so far (≥ 1); `failing_for` is the time since the first one.
    /// `jitter` in [0, 1) spreads retries of many pushes apart.
    pub fn next(
        &self,
        error: &ChannelError,
        attempts: u32,
        failing_for: Duration,
        jitter: f64,
    ) -> Next {
        if !error.should_retry() || failing_for >= self.give_up_after {
            return Next::Dead;
        }
        let exponential = self
            .base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let capped = exponential.min(self.max_delay);
        let jittered = capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        let delay = match error {
            ChannelError::RateLimited {
                retry_after: Some(after),
            } => (*after).clamp(jittered, self.max_delay),
            _ => jittered,
        };
        Next::RetryIn(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let p = RetryPolicy::default();
        let t = ChannelError::Transient("503".into());
        let d = |n| match p.next(&t, n, Duration::ZERO, 1.0) {
            Next::RetryIn(d) => d,
            Next::Dead => panic!("dead"),
        };
        assert_eq!(d(1), Duration::from_millis(200));
        assert_eq!(d(2), Duration::from_millis(400));
        assert_eq!(d(30), Duration::from_secs(300));
        let limited = ChannelError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            p.next(&limited, 1, Duration::ZERO, 0.0),
            Next::RetryIn(Duration::from_secs(7))
        );
        let huge = ChannelError::RateLimited {
            retry_after: Some(Duration::from_secs(9999)),
        };
        assert_eq!(
            p.next(&huge, 1, Duration::ZERO, 0.0),
            Next::RetryIn(Duration::from_secs(300))
        );
    }

    #[test]
    fn permanent_and_expired_failures_are_dead() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.next(
                &ChannelError::Permanent("bad".into()),
                1,
                Duration::ZERO,
                0.5
            ),
            Next::Dead
        );
        assert_eq!(
            p.next(&ChannelError::Auth("no".into()), 1, Duration::ZERO, 0.5),
            Next::Dead
        );
        let t = ChannelError::Timeout;
        assert_eq!(
            p.next(&t, 3, Duration::from_secs(24 * 3600), 0.5),
            Next::Dead
        );
    }
}
