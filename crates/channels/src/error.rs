//! Channel failures, classified: the class decides whether and when a push is retried.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The channel asked us to slow down; retry after the given time (or our backoff).
    #[error("rate limited by the channel{}", .retry_after.map(|d| format!(" (retry after {} ms)", d.as_millis())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// No answer in time: the call may or may not have taken effect.
    #[error("the channel did not answer in time")]
    Timeout,
    /// Credentials were refused: retrying will not help until they are fixed.
    #[error("the channel refused our credentials: {0}")]
    Auth(String),
    /// The request itself is wrong for the channel (unknown item, invalid value): never retried.
    #[error("the channel refused the request: {0}")]
    Permanent(String),
    /// A server error or a broken connection: retried with backoff.
    #[error("the channel failed: {0}")]
    Transient(String),
}

impl ChannelError {
    /// Whether retrying later can succeed.
    pub fn should_retry(&self) -> bool {
        !matches!(self, Self::Permanent(_) | Self::Auth(_))
    }

    /// Classifies a transport failure of a request.
    pub fn from_transport(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout
        } else {
            Self::Transient(e.to_string())
        }
    }

    /// Classifies an HTTP status that is not a success.
    pub fn from_status(status: u16, retry_after: Option<Duration>, body: &str) -> Self {
        let body: String = body.chars().take(300).collect();
        match status {
            429 => Self::RateLimited { retry_after },
            401 | 403 => Self::Auth(format!("HTTP {status}: {body}")),
            408 => Self::Timeout,
            500..=599 => Self::Transient(format!("HTTP {status}: {body}")),
            _ => Self::Permanent(format!("HTTP {status}: {body}")),
        }
    }
}

/// A delivery or payload that does not read as the channel documents it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// Reads a `Retry-After` header given in seconds (possibly fractional).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = raw.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}
