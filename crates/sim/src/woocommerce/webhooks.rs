//! Webhooks as WooCommerce sends them (API_FACTS §2.3, §10):
//!
//! - A change to an order queues one delivery per active webhook of the topic, unless one is
//!   already pending for that webhook and order: bursts of changes coalesce into one delivery.
//! - Deliveries run in the background, one at a time (Action Scheduler; more at once if
//!   configured), after a short delay,
//!   and the body is built when the delivery runs, so it shows the order as it is then.
//! - The body is the REST order, PHP-encoded (`\/`); headers `X-WC-Webhook-Source`, `-Topic`,
//!   `-Resource`, `-Event`, `-Signature` (base64 HMAC-SHA256 of the body), `-ID` and
//!   `-Delivery-ID` (a hash of the webhook id and the current second: two deliveries in one
//!   second share it). Timeout 60 s; redirects are not followed.
//! - Success is a status from 200 to 302. A failure is never retried: it raises
//!   `failure_count`, and a failure when `failure_count` is already above 5 disables the
//!   webhook. A success resets the count.
//! - A new active webhook is pinged: a form-encoded `webhook_id=<id>` without signature.
//!
//! Decisions where the documentation is silent: an order placed here triggers `order.created`
//! only (its own status change in the same request does not also queue `order.updated`); the
//! ping's outcome does not change `failure_count` and does not stop the webhook's creation.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::json::{order_json, Site};
use super::model::{Pending, WebhookInfo, WebhookStatus};
use super::Inner;
use crate::{clock, http_util, php_json, signature, SimError};

/// Topics a webhook of the fake can have.
pub const TOPICS: &[&str] = &["order.created", "order.updated"];

/// A webhook to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookSpec {
    #[serde(default)]
    pub name: Option<String>,
    pub topic: String,
    pub delivery_url: String,
    /// Derived from the creating user when not given, as WooCommerce does.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub status: Option<WebhookStatus>,
}

/// One delivery (or ping) as the store recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub webhook_id: u64,
    pub topic: String,
    pub resource_id: Option<u64>,
    pub delivery_id: String,
    pub at_unix_ms: i64,
    pub at_us: u64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub delivered: bool,
    pub dropped: bool,
    pub duplicate: bool,
    pub ping: bool,
}

/// Creates a webhook; pings it when active.
pub(crate) fn create(inner: &Arc<Inner>, spec: WebhookSpec) -> Result<WebhookInfo, SimError> {
    if !TOPICS.contains(&spec.topic.as_str()) {
        return Err(SimError::invalid(format!(
            "unsupported topic {} (supported: {})",
            spec.topic,
            TOPICS.join(", ")
        )));
    }
    let info = {
        let mut state = inner.lock();
        let id = state.webhook_id();
        let secret = spec.secret.unwrap_or_else(|| {
            signature::sha256_hex(&format!("user-1-{}", clock::now_unix_ms()))[..32].to_owned()
        });
        let name = spec.name.unwrap_or_else(|| format!("Webhook {id}"));
        let status = spec.status.unwrap_or(WebhookStatus::Active);
        let info = WebhookInfo {
            id,
            name,
            topic: spec.topic,
            delivery_url: spec.delivery_url,
            secret,
            status,
            failure_count: 0,
        };
        state.webhooks.insert(id, info.clone());
        info
    };
    if info.status == WebhookStatus::Active {
        inner.busy.fetch_add(1, Ordering::SeqCst);
        inner.runtime.spawn(ping(inner.clone(), info.clone()));
    }
    Ok(info)
}

/// `X-WC-Webhook-Delivery-ID`: a hash of the webhook id and the current second.
fn delivery_id(webhook_id: u64) -> String {
    let second = clock::now_unix_ms().div_euclid(1000);
    signature::sha256_hex(&format!("{webhook_id}{second}"))[..32].to_owned()
}

fn user_agent(inner: &Inner) -> String {
    format!(
        "WooCommerce/{} Hookshot (WordPress/{})",
        inner.config.wc_version, inner.config.wp_version
    )
}

async fn ping(inner: Arc<Inner>, hook: WebhookInfo) {
    let result = inner
        .client
        .post(&hook.delivery_url)
        .timeout(Duration::from_millis(inner.config.webhook_timeout_ms))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", user_agent(&inner))
        .body(format!("webhook_id={}", hook.id))
        .send()
        .await;
    let (status, error) = match result {
        Ok(response) => (Some(response.status().as_u16()), None),
        Err(error) => (None, Some(error.to_string())),
    };
    let delivery = Delivery {
        webhook_id: hook.id,
        topic: hook.topic.clone(),
        resource_id: None,
        delivery_id: String::new(),
        at_unix_ms: clock::now_unix_ms(),
        at_us: clock::monotonic_us(),
        status,
        error,
        delivered: status == Some(200),
        dropped: false,
        duplicate: false,
        ping: true,
    };
    inner
        .deliveries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(delivery);
    finished(&inner);
}

fn finished(inner: &Inner) {
    inner.busy.fetch_sub(1, Ordering::SeqCst);
    inner.settled.notify_waiters();
}

/// Runs queued deliveries one at a time until the store stops (one task per concurrent runner).
pub(crate) async fn worker(inner: Arc<Inner>) {
    let mut stopping = inner.lifecycle.stopping();
    loop {
        let changed = inner.queue_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let next = inner.lock().pending.front().map(|p| p.due);
        match next {
            None => {
                tokio::select! {
                    () = changed => {}
                    _ = stopping.wait_for(|stop| *stop) => return,
                }
            }
            Some(due) => {
                let wait = due.saturating_duration_since(tokio::time::Instant::now().into_std());
                if !wait.is_zero() && !http_util::sleep_unless_stopped(wait, &mut stopping).await {
                    return;
                }
                let pending = {
                    let mut state = inner.lock();
                    let pending = state.pending.pop_front();
                    if pending.is_some() {
                        inner.busy.fetch_add(1, Ordering::SeqCst);
                    }
                    pending
                };
                if let Some(pending) = pending {
                    deliver(&inner, pending).await;
                    finished(&inner);
                }
            }
        }
    }
}

/// The webhook and the body of a pending delivery, built now; none if the webhook is no longer
/// active or the order is gone.
fn prepare(inner: &Inner, pending: &Pending) -> Option<(WebhookInfo, String)> {
    let state = inner.lock();
    let hook = state
        .webhooks
        .get(&pending.webhook_id)
        .filter(|h| h.status == WebhookStatus::Active)?
        .clone();
    let order = state.orders.get(&pending.resource_id)?;
    let site = Site {
        base_url: &inner.base_url,
        offset: state.timezone_offset_minutes,
    };
    Some((hook, php_json::encode(&order_json(&site, order))))
}

async fn deliver(inner: &Arc<Inner>, pending: Pending) {
    let Some((hook, body)) = prepare(inner, &pending) else {
        return;
    };
    let faults = inner.faults.get();
    if inner.faults.chance(faults.drop_webhook_rate) {
        record(
            inner,
            &hook,
            pending.resource_id,
            Sent {
                delivery_id: delivery_id(hook.id),
                status: None,
                error: None,
            },
            (true, false),
        );
        return;
    }
    let sent = send(inner, &hook, &body).await;
    let delivered = sent.delivered();
    count_outcome(inner, hook.id, delivered);
    record(inner, &hook, pending.resource_id, sent, (false, false));
    if delivered && inner.faults.chance(faults.duplicate_webhook_rate) {
        let again = send(inner, &hook, &body).await;
        record(inner, &hook, pending.resource_id, again, (false, true));
    }
}

/// Success resets the failure count; a failure with the count already above the maximum
/// disables the webhook, otherwise raises the count.
fn count_outcome(inner: &Inner, webhook_id: u64, delivered: bool) {
    let mut state = inner.lock();
    let Some(hook) = state.webhooks.get_mut(&webhook_id) else {
        return;
    };
    if delivered {
        hook.failure_count = 0;
    } else if hook.failure_count > inner.config.max_delivery_failures {
        hook.status = WebhookStatus::Disabled;
    } else {
        hook.failure_count += 1;
    }
}

struct Sent {
    delivery_id: String,
    status: Option<u16>,
    error: Option<String>,
}

impl Sent {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..=302).contains(&s))
    }
}

async fn send(inner: &Inner, hook: &WebhookInfo, body: &str) -> Sent {
    let (resource, event) = hook.topic.split_once('.').unwrap_or(("order", "updated"));
    let delivery_id = delivery_id(hook.id);
    let result = inner
        .client
        .post(&hook.delivery_url)
        .timeout(Duration::from_millis(inner.config.webhook_timeout_ms))
        .header("content-type", "application/json")
        .header("user-agent", user_agent(inner))
        .header("x-wc-webhook-source", &inner.site_url)
        .header("x-wc-webhook-topic", &hook.topic)
        .header("x-wc-webhook-resource", resource)
        .header("x-wc-webhook-event", event)
        .header(
            "x-wc-webhook-signature",
            signature::sign(body.as_bytes(), &hook.secret),
        )
        .header("x-wc-webhook-id", hook.id.to_string())
        .header("x-wc-webhook-delivery-id", &delivery_id)
        .body(body.to_owned())
        .send()
        .await;
    match result {
        Ok(response) => Sent {
            delivery_id,
            status: Some(response.status().as_u16()),
            error: None,
        },
        Err(error) => Sent {
            delivery_id,
            status: None,
            error: Some(error.to_string()),
        },
    }
}

fn record(
    inner: &Inner,
    hook: &WebhookInfo,
    resource_id: u64,
    sent: Sent,
    (dropped, duplicate): (bool, bool),
) {
    let delivered = !dropped && sent.delivered();
    let delivery = Delivery {
        webhook_id: hook.id,
        topic: hook.topic.clone(),
        resource_id: Some(resource_id),
        delivery_id: sent.delivery_id,
        at_unix_ms: clock::now_unix_ms(),
        at_us: clock::monotonic_us(),
        status: sent.status,
        error: sent.error,
        delivered,
        dropped,
        duplicate,
        ping: false,
    };
    inner
        .deliveries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(delivery);
}

/// Waits until the queue is empty and nothing is being sent.
pub(crate) async fn settle(inner: &Inner, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = inner.settled.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let idle = || inner.lock().pending.is_empty() && inner.busy.load(Ordering::SeqCst) == 0;
        if idle() {
            return true;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return idle();
        }
    }
}
