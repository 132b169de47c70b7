//! Webhooks as Shopify sends them (API_FACTS §1.6, §9): `POST` of the REST resource to the
//! address configured when the action happened, with `X-Shopify-Topic`,
//! `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body with the app's secret),
//! `X-Shopify-Shop-Domain`, `X-Shopify-API-Version`, `X-Shopify-Webhook-Id` (one per delivery,
//! kept across its retries and duplicates), `X-Shopify-Event-Id` (shared by every delivery of
//! one merchant action, across topics) and `X-Shopify-Triggered-At`.
//!
//! Success is any 2xx within the timeout (5 s). A failed delivery is retried 8 times over 4
//! hours with exponential backoff (delay `i` = window × 2^i / (2^8 − 1): 56 s, 113 s, … 2 h),
//! with the same payload; the whole schedule can be compressed by a time scale. Faults can drop
//! a delivery (never sent) or duplicate a delivered one (sent once more, same ids).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::Trigger;
use super::Inner;
use crate::{clock, http_util, signature};

/// One attempt to deliver a webhook, as the store recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub webhook_id: String,
    pub event_id: String,
    pub topic: String,
    pub address: String,
    /// 0 for the first attempt, then 1..=8 for retries.
    pub attempt: u32,
    pub at_unix_ms: i64,
    pub at_us: u64,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub delivered: bool,
    /// Dropped by a fault: never sent.
    pub dropped: bool,
    /// A second sending of a delivered webhook, by a fault.
    pub duplicate: bool,
}

/// A webhook on its way.
struct Job {
    trigger: Trigger,
    address: String,
    body: Vec<u8>,
}

/// Sends the webhooks of one action to the configured address, for the subscribed topics.
pub(crate) fn dispatch(inner: &Arc<Inner>, triggers: Vec<Trigger>) {
    if triggers.is_empty() || inner.lifecycle.is_stopping() {
        return;
    }
    let target = inner
        .webhook_target
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some(address) = target.address else {
        return;
    };
    for trigger in triggers {
        if !target.topics.iter().any(|t| t == trigger.topic) {
            continue;
        }
        let body = serde_json::to_vec(&trigger.payload).unwrap_or_default();
        let job = Job {
            trigger,
            address: address.clone(),
            body,
        };
        if inner.faults.chance(inner.faults.get().drop_webhook_rate) {
            record(inner, &job, 0, Outcome::Dropped);
            continue;
        }
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        inner.runtime.spawn(deliver(inner.clone(), job));
    }
}

enum Outcome {
    Answered(u16),
    Failed(String),
    Dropped,
}

fn record(inner: &Inner, job: &Job, attempt: u32, outcome: Outcome) -> bool {
    record_as(inner, job, attempt, outcome, false)
}

fn record_as(inner: &Inner, job: &Job, attempt: u32, outcome: Outcome, duplicate: bool) -> bool {
    let (status, error, delivered, dropped) = match outcome {
        Outcome::Answered(status) => (Some(status), None, (200..300).contains(&status), false),
        Outcome::Failed(error) => (None, Some(error), false, false),
        Outcome::Dropped => (None, None, false, true),
    };
    let delivery = Delivery {
        webhook_id: job.trigger.webhook_id.clone(),
        event_id: job.trigger.event_id.clone(),
        topic: job.trigger.topic.to_owned(),
        address: job.address.clone(),
        attempt,
        at_unix_ms: clock::now_unix_ms(),
        at_us: clock::monotonic_us(),
        status,
        error,
        delivered,
        dropped,
        duplicate,
    };
    inner
        .deliveries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(delivery);
    delivered
}

/// Delay before retry `attempt` (0-based), before time scaling.
pub(crate) fn retry_delay(attempt: u32, retries: u32, window_seconds: f64) -> Duration {
    let spread = 2f64.powi(retries.max(1) as i32) - 1.0;
    let seconds = window_seconds * 2f64.powi(attempt as i32) / spread;
    Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)
}

async fn deliver(inner: Arc<Inner>, job: Job) {
    let config = &inner.config;
    let mut stopping = inner.lifecycle.stopping();
    for attempt in 0..=config.webhook_retries {
        let outcome = send(&inner, &job).await;
        if record(&inner, &job, attempt, outcome) {
            if inner
                .faults
                .chance(inner.faults.get().duplicate_webhook_rate)
            {
                let again = send(&inner, &job).await;
                record_as(&inner, &job, attempt, again, true);
            }
            break;
        }
        if attempt == config.webhook_retries {
            break;
        }
        let scaled = retry_delay(
            attempt,
            config.webhook_retries,
            config.webhook_retry_window_seconds,
        )
        .as_secs_f64()
            * config.webhook_time_scale.max(0.0);
        let delay = Duration::try_from_secs_f64(scaled).unwrap_or(Duration::MAX);
        if !http_util::sleep_unless_stopped(delay, &mut stopping).await {
            break;
        }
    }
    inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    inner.settled.notify_waiters();
}

async fn send(inner: &Inner, job: &Job) -> Outcome {
    let Ok(_permit) = inner.send_permits.acquire().await else {
        return Outcome::Failed("store stopped".to_owned());
    };
    let config = &inner.config;
    let trigger = &job.trigger;
    let request = inner
        .client
        .post(&job.address)
        .timeout(Duration::from_millis(config.webhook_timeout_ms))
        .header("content-type", "application/json")
        .header("user-agent", "Shopify-Captain-Hook")
        .header("x-shopify-topic", trigger.topic)
        .header(
            "x-shopify-hmac-sha256",
            signature::sign(&job.body, &config.api_secret),
        )
        .header("x-shopify-shop-domain", &config.shop_domain)
        .header("x-shopify-api-version", &config.api_version)
        .header("x-shopify-webhook-id", &trigger.webhook_id)
        .header("x-shopify-event-id", &trigger.event_id)
        .header(
            "x-shopify-triggered-at",
            clock::format_utc_millis(trigger.triggered_ms),
        )
        .body(job.body.clone());
    match request.send().await {
        Ok(response) => Outcome::Answered(response.status().as_u16()),
        Err(error) if error.is_timeout() => Outcome::Failed("timed out".to_owned()),
        Err(error) => Outcome::Failed(error.to_string()),
    }
}

/// Waits until no delivery is in flight.
pub(crate) async fn settle(inner: &Inner, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = inner.settled.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if inner.in_flight.load(Ordering::SeqCst) == 0 {
            return true;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return inner.in_flight.load(Ordering::SeqCst) == 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_retries_spread_over_four_hours() {
        let delays: Vec<f64> = (0..8)
            .map(|i| retry_delay(i, 8, 14_400.0).as_secs_f64())
            .collect();
        assert!((delays.iter().sum::<f64>() - 14_400.0).abs() < 1e-6);
        assert!((delays[0] - 56.47).abs() < 0.01, "{delays:?}");
        assert!(delays.windows(2).all(|w| (w[1] / w[0] - 2.0).abs() < 1e-9));
    }
}
