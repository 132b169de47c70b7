//! What every fake store's HTTP side shares: binding a port (0 for any), serving until asked to
//! stop, decoding query strings the way PHP and Rails do (`+` is a space, repeated keys kept in
//! order), and the webhook client (no redirects followed, a connect timeout of 1 s).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use percent_encoding::percent_decode_str;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::SimError;

/// The life of a store: a stop signal every background task of the store watches, and the
/// server task, awaited on stop.
pub(crate) struct Lifecycle {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Self {
            stop: watch::Sender::new(false),
            task: Mutex::new(None),
        }
    }

    /// A receiver that turns true when the store is asked to stop.
    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    pub(crate) fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Serves `router` on `listener` until the store stops.
    pub(crate) fn serve(&self, listener: TcpListener, router: Router) {
        let mut stopped = self.stopping();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(%error, "simulated store stopped serving");
            }
        });
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// Stops accepting requests and background work, and waits for the server task to end.
    pub(crate) async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Binds `host:port` (port 0: any free port).
pub(crate) async fn bind(host: &str, port: u16) -> Result<(TcpListener, SocketAddr), SimError> {
    let address = format!("{host}:{port}");
    let bind_error = |source| SimError::Bind {
        address: address.clone(),
        source,
    };
    let listener = TcpListener::bind(&address).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

/// Sleeps `duration` unless the store stops first; true when the sleep ran to its end.
pub(crate) async fn sleep_unless_stopped(
    duration: Duration,
    stopping: &mut watch::Receiver<bool>,
) -> bool {
    if *stopping.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        _ = stopping.wait_for(|stop| *stop) => false,
    }
}

/// The pairs of a query string, decoded.
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    raw.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            (decode_component(key), decode_component(value))
        })
        .collect()
}

fn decode_component(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// The last value of `key` in decoded pairs.
pub(crate) fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Encodes a query-string component.
pub(crate) fn encode_component(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The client that sends webhooks: redirects are not followed (WooCommerce counts 301/302 as
/// delivered; Shopify counts only 2xx) and connecting gives up after 1 s (API_FACTS §1.6).
pub(crate) fn webhook_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        let pairs = query_pairs(Some("a=1&b=x+y&c=%2Fz&a=2&flag"));
        assert_eq!(query_value(&pairs, "a"), Some("2"));
        assert_eq!(query_value(&pairs, "b"), Some("x y"));
        assert_eq!(query_value(&pairs, "c"), Some("/z"));
        assert_eq!(query_value(&pairs, "flag"), Some(""));
        assert_eq!(query_value(&pairs, "none"), None);
    }
}
