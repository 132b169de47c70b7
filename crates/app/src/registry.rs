//! The connector of each connected channel, built from its stored settings and rebuilt when they
//! change. Settings JSON: `{"base_url", "api_version", "locations": {"<channel location>":
//! ["<our location>", …]}}`; secrets JSON: `{"access_token", "consumer_key", "consumer_secret",
//! "webhook_secret"}`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use stockhub_channels::{ChannelConnection, Connector, Kind, Secret};
use stockhub_store::engine::catalog;
use stockhub_store::Store;

use crate::arrivals::Arrivals;
use crate::{AppError, Metrics};

/// A connected channel: its connector and how its locations map to ours.
#[derive(Clone)]
pub struct Connected {
    pub code: String,
    pub kind: Kind,
    pub connector: Arc<dyn Connector>,
    /// Channel location → our locations that stock it (empty: the channel's feeding locations).
    pub location_map: Vec<(String, Vec<String>)>,
    /// Up to when (store clock, ms) this process has read every order the channel updated, as
    /// far as it knows (see `OrdersRead`).
    pub orders_read: OrdersRead,
}

/// How far this process has read a channel's orders without a gap: a read from the backfill
/// cursor covers everything up to when it began; a read of a window that starts within what is
/// covered extends it to when it began. Kept in memory, per connection: a process that starts,
/// or a channel whose settings change, knows nothing yet. It only narrows on-demand backfills
/// (`backfill::run`); the scheduled backfill always reads from its cursor.
#[derive(Clone, Default)]
pub struct OrdersRead(Arc<Mutex<Option<i64>>>);

impl OrdersRead {
    /// Up to when every order has been read, if known.
    pub fn through(&self) -> Option<i64> {
        self.0.lock().ok().and_then(|t| *t)
    }

    /// Notes that every order updated since `since` was read by a read that began at `began`;
    /// `from_cursor`: `since` came from the backfill cursor, so what came before was read too.
    pub fn note(&self, since: i64, began: i64, from_cursor: bool) {
        if let Ok(mut through) = self.0.lock() {
            let joins = from_cursor || through.is_some_and(|t| since <= t);
            if joins {
                *through = Some(through.map_or(began, |t| t.max(began)));
            }
        }
    }
}

#[derive(Clone)]
pub struct Connectors {
    store: Store,
    request_timeout: Duration,
    /// Where each channel's connector counts the requests it sends.
    metrics: Arc<Metrics>,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    /// Counts `forget`s: a read begun before one is not cached, as it may predate the change.
    forgotten: Arc<AtomicU64>,
    arrivals: Arc<Arrivals>,
}

/// A connector built from a channel's stored connection: what it was built from, and when that
/// was last read.
#[derive(Clone)]
struct Cached {
    fingerprint: String,
    connected: Connected,
    read_at: Instant,
}

/// How long a channel's connection read from the store stands before `Connectors::get` reads it
/// again: webhooks and push passes, hundreds a second on a busy store, then share one read. A
/// change made through this process's API applies at once (`forget`); one made by another
/// process sharing the store, within this time.
pub const CONNECTION_RECHECK: Duration = Duration::from_millis(250);

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl Connectors {
    pub fn new(store: Store, request_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            request_timeout,
            metrics,
            cache: Arc::default(),
            forgotten: Arc::default(),
            arrivals: Arc::default(),
        }
    }

    /// The webhook deliveries this process is handling, per channel.
    pub fn arrivals(&self) -> &Arc<Arrivals> {
        &self.arrivals
    }

    /// The connector of a channel, or `NotConnected` for a manual or unknown one. The channel's
    /// connection is read from the store at most every `CONNECTION_RECHECK`.
    pub async fn get(&self, code: &str) -> Result<Connected, AppError> {
        if let Some(cached) = self.cache.lock().ok().and_then(|c| c.get(code).cloned()) {
            if cached.read_at.elapsed() < CONNECTION_RECHECK {
                return Ok(cached.connected);
            }
        }
        let read_at = Instant::now();
        let forgotten = self.forgotten.load(Ordering::Acquire);
        let owned = code.to_owned();
        let found = self
            .store
            .read(move |sql| {
                let channel = catalog::require_channel(sql, &owned)?;
                Ok((channel.kind, catalog::connection(sql, &owned)?))
            })
            .await?;
        let (kind, Some((settings, secrets))) = found else {
            self.drop_cached(code);
            return Err(AppError::NotConnected(code.to_owned()));
        };
        let Some(kind) = Kind::parse(&kind) else {
            self.drop_cached(code);
            return Err(AppError::NotConnected(code.to_owned()));
        };
        let fingerprint = format!("{kind:?}{settings}{secrets}");
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.forgotten.load(Ordering::Acquire) == forgotten;
        if let Some(cached) = cache.get_mut(code) {
            if cached.fingerprint == fingerprint {
                if current {
                    cached.read_at = cached.read_at.max(read_at);
                }
                return Ok(cached.connected.clone());
            }
        }
        let connected = self.build(code, kind, &settings, &secrets)?;
        if !current {
            return Ok(connected);
        }
        cache.insert(
            code.to_owned(),
            Cached {
                fingerprint,
                connected: connected.clone(),
                read_at,
            },
        );
        Ok(connected)
    }

    /// Drops what is known of a channel's connection, so that the next `get` reads it again:
    /// after the channel was changed.
    pub fn forget(&self, code: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        cache.remove(code);
    }

    /// Drops a channel found not connected (any more).
    fn drop_cached(&self, code: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(code);
    }

    fn build(
        &self,
        code: &str,
        kind: Kind,
        settings: &Value,
        secrets: &Value,
    ) -> Result<Connected, AppError> {
        let location_map: Vec<(String, Vec<String>)> = settings
            .get("locations")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let ours = v
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (k.clone(), ours)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let token = match kind {
            Kind::Shopify => text(secrets, "access_token"),
            Kind::WooCommerce => text(secrets, "consumer_key"),
        };
        let connection = ChannelConnection {
            code: code.to_owned(),
            kind,
            base_url: text(settings, "base_url").trim_end_matches('/').to_owned(),
            access_token: Secret::new(token),
            consumer_secret: Secret::new(text(secrets, "consumer_secret")),
            webhook_secret: Secret::new(text(secrets, "webhook_secret")),
            api_version: text(settings, "api_version"),
            locations: location_map.iter().map(|(k, _)| k.clone()).collect(),
            request_timeout: self.request_timeout,
            calls: self.metrics.api_call_counter(code),
        };
        let connector = stockhub_channels::connector(connection)?;
        Ok(Connected {
            code: code.to_owned(),
            kind,
            connector: Arc::from(connector),
            location_map,
            orders_read: OrdersRead::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::OrdersRead;

    #[test]
    fn reads_join_what_is_covered_and_never_leave_a_gap() {
        let read = OrdersRead::default();
        // A window read knows nothing of what came before it.
        read.note(500, 900, false);
        assert_eq!(read.through(), None);
        // A read from the cursor covers everything up to when it began.
        read.note(100, 1_000, true);
        assert_eq!(read.through(), Some(1_000));
        // A window starting within what is covered extends it …
        read.note(990, 1_500, false);
        assert_eq!(read.through(), Some(1_500));
        // … one starting after it would leave a gap and changes nothing …
        read.note(1_600, 2_000, false);
        assert_eq!(read.through(), Some(1_500));
        // … and an older read never moves it back.
        read.note(100, 1_200, true);
        assert_eq!(read.through(), Some(1_500));
    }
}
