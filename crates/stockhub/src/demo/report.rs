//! What the demo shows: the figures it reads from stockhub each second (listings pushed,
//! oversells, dead pushes, the queue), the live line and the final summary, the wait for
//! quiescence, and the final check that every store shows exactly stockhub's available quantity.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stockhub_app::metrics::Quantiles;
use stockhub_app::Metrics;
use stockhub_sim::Fleet;
use stockhub_store::engine::{pushes, stock, verify as ledger};
use stockhub_store::Store;

use super::setup::Demo;
use super::traffic::Counters;
use crate::sim_cmd::StoreAccess;

/// Differences listed one by one at the end; more are only counted.
const DIFFERENCES_SHOWN: usize = 20;

/// stockhub's figures at one moment, read from the store.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Listings brought to a new quantity (each listing's push count, summed).
    pub listings_pushed: i64,
    /// `oversold` ledger entries: units a channel sold that stockhub did not have.
    pub oversold: i64,
    pub dead_pushes: i64,
    /// Push marks waiting or in flight.
    pub queued: i64,
    /// Archived webhook deliveries by outcome (`applied`, `duplicate`, `ping`, …).
    pub events: BTreeMap<String, i64>,
}

/// Reads the figures in one read transaction. The store has no query for these totals, so
/// they are counted here, read-only, from the tables `/metrics` reads too.
pub async fn figures(store: &Store) -> anyhow::Result<Figures> {
    Ok(store
        .read(|sql| {
            let count = |sql: &mut dyn stockhub_store::Sql, query: &str| {
                sql.query_opt(query, &[]).map(|r| r.map_or(0, |r| r.int(0)))
            };
            let listings_pushed = count(sql, "SELECT COALESCE(SUM(pushes), 0) FROM listings")?;
            let oversold = count(sql, "SELECT COUNT(*) FROM ledger WHERE kind = 'oversold'")?;
            let mut figures = Figures {
                listings_pushed,
                oversold,
                ..Figures::default()
            };
            for (_, state, n) in pushes::depth(sql)? {
                match state.as_str() {
                    "dead" => figures.dead_pushes += n,
                    _ => figures.queued += n,
                }
            }
            for row in sql.query(
                "SELECT outcome, COUNT(*) FROM inbound_events GROUP BY outcome",
                &[],
            )? {
                figures.events.insert(row.text(0), row.int(1));
            }
            Ok(figures)
        })
        .await?)
}

/// Requests sent to the demo's channels' APIs so far (pushes and reads).
pub fn api_calls(metrics: &Metrics, stores: &[StoreAccess]) -> u64 {
    stores.iter().map(|s| metrics.api_calls(&s.code)).sum()
}

/// The live line: rates over the last interval, totals since the stream began.
pub struct Live {
    last: Figures,
    last_orders: u64,
    last_at: Instant,
    counters: Arc<Counters>,
}

impl Live {
    pub fn new(start: Figures, counters: Arc<Counters>) -> Self {
        Self {
            last: start,
            last_orders: 0,
            last_at: Instant::now(),
            counters,
        }
    }

    pub fn line(&mut self, elapsed: Duration, now: &Figures, latency: Quantiles) -> String {
        let seconds = self.last_at.elapsed().as_secs_f64().max(0.001);
        let orders = self.counters.orders_total();
        let orders_rate = (orders - self.last_orders) as f64 / seconds;
        let pushes_rate = (now.listings_pushed - self.last.listings_pushed) as f64 / seconds;
        self.last = now.clone();
        self.last_orders = orders;
        self.last_at = Instant::now();
        format!(
            "[{:>4} s] orders/s {orders_rate:>4.0} | pushes/s {pushes_rate:>5.0} | p99 propagation {} | oversells {} | dead pushes {} | queued {}",
            elapsed.as_secs(),
            latency_text(latency.count, latency.p99_ms),
            now.oversold,
            now.dead_pushes,
            now.queued,
        )
    }
}

fn latency_text(count: usize, ms: u64) -> String {
    if count == 0 {
        "    – ".to_owned()
    } else {
        format!("{ms:>4} ms")
    }
}

/// Waits until the stores have delivered every webhook, stockhub has applied them, and the push
/// queue is empty, twice in a row; false if `timeout` passed first.
pub async fn quiesce(store: &Store, fleet: &Fleet, timeout: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut calm = 0;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut delivered = true;
        for s in &fleet.shopify {
            delivered &= s.wait_for_deliveries(left).await;
        }
        for w in &fleet.woocommerce {
            delivered &= w.wait_for_deliveries(left).await;
        }
        let now = figures(store).await?;
        let pending_events = now.events.get("pending").copied().unwrap_or(0);
        if delivered && now.queued == 0 && pending_events == 0 {
            calm += 1;
            if calm == 2 {
                return Ok(true);
            }
        } else {
            calm = 0;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(false)
}

/// What the whole stream did.
pub struct Totals<'a> {
    pub streamed: Duration,
    pub counters: &'a Counters,
    pub start: &'a Figures,
    pub end: &'a Figures,
    /// Requests sent to the channels' APIs during the stream (pushes and reads).
    pub api_calls: u64,
    pub latency: Quantiles,
}

/// The figures of the whole stream.
pub fn final_summary(stores: &[StoreAccess], totals: &Totals<'_>) -> String {
    let Totals {
        streamed,
        counters,
        start,
        end,
        api_calls,
        latency,
    } = totals;
    let orders = counters.orders_total();
    let per_store: Vec<String> = stores
        .iter()
        .zip(&counters.orders)
        .map(|(s, n)| format!("{} {}", s.code, n.load(Ordering::Relaxed)))
        .collect();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let pushed = end.listings_pushed - start.listings_pushed;
    let events: Vec<String> = end.events.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let mut out = format!(
        "\nfinal summary after {:.1} s of orders:\n",
        streamed.as_secs_f64()
    );
    out += &format!(
        "  orders placed       {orders} ({}); {} refused by a store that showed the SKU sold out\n",
        per_store.join(", "),
        load(&counters.sold_out)
    );
    out += &format!(
        "  also                {} cancels, {} refunds, {} stock receipts, {} failed actions\n",
        load(&counters.cancels),
        load(&counters.refunds),
        load(&counters.receipts),
        load(&counters.failures)
    );
    out += &format!("  webhooks archived   {}\n", events.join(", "));
    out += &format!(
        "  listings pushed     {pushed}, with {api_calls} channel API calls in all, pushes and reads ({:.2} calls per order)\n",
        *api_calls as f64 / orders.max(1) as f64
    );
    out += &format!(
        "  propagation         p50 {} ms, p99 {} ms, max {} ms (over the last {} pushes)\n",
        latency.p50_ms, latency.p99_ms, latency.max_ms, latency.count
    );
    out += &format!("  oversells           {}\n", end.oversold);
    out += &format!("  dead pushes         {}\n", end.dead_pushes);
    out
}

/// The outcome of the final check, and its text.
pub struct Verified {
    pub ok: bool,
    pub text: String,
}

/// Compares what every store shows for every SKU with stockhub's available quantity on that
/// channel, and rebuilds stockhub's projections from its ledger.
pub async fn verify(store: &Store, demo: &Demo, drained: bool) -> anyhow::Result<Verified> {
    let skus = demo.skus.clone();
    let expected: BTreeMap<(String, String), i64> = store
        .read(move |sql| {
            let mut out = BTreeMap::new();
            for sku in &skus {
                for c in stock::stock_view(sql, sku)?.channels {
                    out.insert((c.channel, sku.clone()), c.available);
                }
            }
            Ok(out)
        })
        .await?;
    let shown = shown_by_stores(demo);
    let mut text = String::new();
    if !drained {
        text += "the stores' webhooks and stockhub's pushes did not all land in time\n";
    }
    let mut differences = 0;
    for s in &demo.stores {
        for sku in &demo.skus {
            let want = expected.get(&(s.code.clone(), sku.clone())).copied();
            let got = shown.get(&(s.code.clone(), sku.clone())).copied();
            if want != got {
                differences += 1;
                if differences <= DIFFERENCES_SHOWN {
                    text += &format!(
                        "DIFFERENCE {} {sku}: the store shows {}, stockhub's available is {}\n",
                        s.code,
                        quantity_text(got),
                        quantity_text(want)
                    );
                }
            }
        }
    }
    let rebuilt = store.read(ledger::verify).await?;
    for d in &rebuilt.differences {
        text += &format!(
            "LEDGER DIFFERENCE {} {}: stored {}, rebuilt from the ledger {}\n",
            d.projection, d.key, d.stored, d.rebuilt
        );
    }
    let ok = drained && differences == 0 && rebuilt.differences.is_empty();
    if ok {
        text += &format!(
            "verification succeeded: every store shows exactly stockhub's available quantity ({} stores × {} SKUs), and every projection matches the ledger ({} entries)\n",
            demo.stores.len(),
            demo.skus.len(),
            rebuilt.ledger_entries
        );
    } else {
        text += &format!(
            "verification FAILED: {differences} store quantities differ from stockhub's, {} projections differ from the ledger\n",
            rebuilt.differences.len()
        );
    }
    Ok(Verified { ok, text })
}

fn quantity_text(q: Option<i64>) -> String {
    q.map_or_else(|| "nothing".to_owned(), |q| q.to_string())
}

/// What each store shows shoppers, by (channel code, SKU): a Shopify store's `available` at the
/// location stockhub stocks, a WooCommerce store's `stock_quantity`.
fn shown_by_stores(demo: &Demo) -> BTreeMap<(String, String), i64> {
    let mut shown = BTreeMap::new();
    let mut codes = demo.stores.iter().map(|s| s.code.clone());
    for shop in &demo.fleet.shopify {
        let code = codes.next().unwrap_or_default();
        let Some(location) = shop.locations().first().map(|l| l.id) else {
            continue;
        };
        for v in shop.variants() {
            if let (Some(sku), Some(q)) = (v.sku.clone(), v.available_at(location)) {
                shown.insert((code.clone(), sku), q);
            }
        }
    }
    for woo in &demo.fleet.woocommerce {
        let code = codes.next().unwrap_or_default();
        for item in woo.items() {
            if let (false, Some(q)) = (item.sku.is_empty(), item.stock_quantity) {
                shown.insert((code.clone(), item.sku), q);
            }
        }
    }
    shown
}
