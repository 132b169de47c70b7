//! Faults injected on command into a running store (DESIGN §4, issue 3 point 5): added latency,
//! an error rate (5xx), 429 storms with `Retry-After`, requests held without an answer (a
//! timeout, before or after the request took effect), a store down for good, a processing delay
//! inside writes (which keeps Shopify idempotency keys in flight), and dropped or duplicated
//! webhooks. Edits "by hand" in the store's admin (drift) are handle methods of each store.
//!
//! The middleware here applies to a store's API routes only; its `/_sim` control routes are
//! never faulted, so a test can always lift a fault it set.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// When a held request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// Held before the store looks at it: the request has no effect while held.
    Before,
    /// Held after the store applied it: the write happened, the answer never comes (until the
    /// fault is lifted).
    After,
}

/// The faults in force on one store. The default is a healthy store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every API request before it is handled.
    pub latency_ms: u64,
    /// Share of API requests (0.0–1.0) answered with `error_status` instead of being handled.
    pub error_rate: f64,
    /// The status of injected errors (503 unless set).
    pub error_status: u16,
    /// While true every API request gets 429 with `Retry-After: retry_after_seconds`.
    pub rate_limit_storm: bool,
    /// The `Retry-After` of a 429 storm, in seconds.
    pub retry_after_seconds: u64,
    /// While set, API requests are held without an answer until the fault is lifted.
    pub hold: Option<Hold>,
    /// Down for good: every API request gets 503 until this is lifted.
    pub down: bool,
    /// Time a write spends inside the store after it was accepted.
    pub processing_delay_ms: u64,
    /// Share of webhook deliveries (0.0–1.0) never sent.
    pub drop_webhook_rate: f64,
    /// Share of successful webhook deliveries (0.0–1.0) sent a second time.
    pub duplicate_webhook_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            error_status: 503,
            rate_limit_storm: false,
            retry_after_seconds: 2,
            hold: None,
            down: false,
            processing_delay_ms: 0,
            drop_webhook_rate: 0.0,
            duplicate_webhook_rate: 0.0,
        }
    }
}

/// How a store words its injected errors.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FaultStyle {
    Shopify,
    WooCommerce,
}

impl FaultStyle {
    fn error(self, status: StatusCode) -> Response {
        let reason = status.canonical_reason().unwrap_or("Error");
        let body = match self {
            Self::Shopify => serde_json::json!({ "errors": reason }),
            Self::WooCommerce => serde_json::json!({
                "code": "http_error", "message": reason, "data": { "status": status.as_u16() }
            }),
        };
        (status, axum::Json(body)).into_response()
    }

    fn too_many(self, retry_after_seconds: u64) -> Response {
        let body = match self {
            Self::Shopify => serde_json::json!({
                "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
            }),
            Self::WooCommerce => serde_json::json!({
                "code": "rate_limit_exceeded",
                "message": "Too many requests. Please wait and try again.",
                "data": { "status": 429 }
            }),
        };
        let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// The faults of one store, changeable while requests are held.
pub(crate) struct FaultSwitch {
    faults: watch::Sender<Faults>,
    rng: Mutex<StdRng>,
    /// API requests held right now (`Faults::hold`).
    held: AtomicUsize,
}

impl FaultSwitch {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            faults: watch::Sender::new(Faults::default()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            held: AtomicUsize::new(0),
        }
    }

    pub(crate) fn get(&self) -> Faults {
        self.faults.borrow().clone()
    }

    pub(crate) fn set(&self, faults: Faults) {
        self.faults.send_replace(faults);
    }

    /// True with probability `rate`.
    pub(crate) fn chance(&self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.random_bool(rate.min(1.0))
    }

    /// How many API requests are held right now: a test knows a call has reached the store.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Waits while the faults in force hold requests at `stage`.
    async fn wait_while_held(&self, stage: Hold) {
        let mut receiver = self.faults.subscribe();
        if receiver.borrow_and_update().hold != Some(stage) {
            return;
        }
        /// Counts a held request for as long as it is held (even if its caller gives up).
        struct Holding<'a>(&'a AtomicUsize);
        impl Drop for Holding<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.held.fetch_add(1, Ordering::SeqCst);
        let _holding = Holding(&self.held);
        while receiver.changed().await.is_ok() {
            if receiver.borrow_and_update().hold != Some(stage) {
                return;
            }
        }
    }

    /// Waits out the processing delay of a write.
    pub(crate) async fn processing_delay(&self) {
        let delay = self.get().processing_delay_ms;
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }

    /// Applies the faults in force to one API request.
    pub(crate) async fn apply(&self, style: FaultStyle, request: Request, next: Next) -> Response {
        let faults = self.get();
        if faults.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
        }
        if faults.down {
            return style.error(StatusCode::SERVICE_UNAVAILABLE);
        }
        if faults.rate_limit_storm {
            return style.too_many(faults.retry_after_seconds);
        }
        if self.chance(faults.error_rate) {
            let status = StatusCode::from_u16(faults.error_status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return style.error(status);
        }
        self.wait_while_held(Hold::Before).await;
        let response = next.run(request).await;
        self.wait_while_held(Hold::After).await;
        response
    }
}
