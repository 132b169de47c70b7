//! The push workers of several processes (issue 4, "worker test"): three `stockhub serve`
//! processes on one PostgreSQL database push one simulated Shopify store of 300 listings, whose
//! writes are slowed so that the passes of the three overlap. The workload only ever lowers what a
//! listing may show, so a listing that ever shows more than it showed before received a stale
//! quantity after a newer one.
//!
//! 1. A burst of orders spread over the three processes: every change is pushed (each listing
//!    ends showing what the test expects and stockhub computes), no listing ever shows a rise, and
//!    no two calls naming one item are ever in progress at the store at once (the store logs the
//!    span of every write), while calls on different items are.
//! 2. A worker paused (SIGSTOP) past its lease while it holds every mark (a pass of two calls),
//!    its first call sent or not: the store's own sale of every listing makes a late call
//!    harmless (its compare-and-set quantities no longer match), another process takes the marks
//!    over after the lease and pushes the newer quantities, and the paused worker, resumed, sends
//!    no call at all and has its result discarded (`stockhub_push_results_discarded_total`).
//! 3. A process killed (SIGKILL) in a burst while it holds marks: its marks are taken over after
//!    the lease, the burst goes on on the other two, and nothing is lost.
//!
//! A worker is caught holding marks it claimed after the store began holding every call, so that
//! the test knows its call had not taken effect when it stopped. A call that the channel applies
//! but whose result stockhub never records (its worker died) leaves stockhub expecting the older
//! quantity: the next push is refused by compare-and-set, reads a decrease that no order
//! explains, and holds it back for `unexplained_hold_seconds` — safe (the listing shows less),
//! but not what this test measures.
//!
//! Runs only where the PostgreSQL half of the suite runs (see `stockhub_store::testing`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use stockhub_sim::seed::CatalogSpec;
use stockhub_sim::shopify::{NewOrder, OrderLine, ShopifyConfig, ShopifySim};
use stockhub_sim::{Faults, Hold, WriteSpan};
use stockhub_store::{Store, StoreOptions, SystemClock};
use stockhub_testkit::{ServerProcess, TestBackend};

const BINARY: &str = env!("CARGO_BIN_EXE_stockhub");
const SEED: u64 = 0x5eed_0004;
const SECRET: &str = "whsec-workers";
const CHANNEL: &str = "shop";
/// 300 listings: a pass over all of them takes two calls (Shopify takes 250 quantities a call).
const PRODUCTS: usize = 100;
const VARIANTS_PER_PRODUCT: usize = 3;
const START: i64 = 1_000;
const LEASE_SECONDS: u64 = 4;
const REQUEST_TIMEOUT_SECONDS: u64 = 2;
/// How long the store spends on each write.
const PROCESSING_DELAY_MS: u64 = 150;
/// How long the push queue may take to drain once a lease has to run out first.
const SETTLE_WITHIN: Duration = Duration::from_secs(LEASE_SECONDS + 25);

async fn send(client: &reqwest::Client, method: &str, url: String, body: &Value) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client.request(method, url);
    if !body.is_null() {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let reply = request.send().await.expect("request sent");
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or(Value::Null))
}

/// The three processes, the store they push, and what every listing must show.
struct Cluster {
    servers: Vec<ServerProcess>,
    client: reqwest::Client,
    shop: ShopifySim,
    /// The test's own connections to the database, to see who holds which mark.
    db: Store,
    skus: Vec<String>,
    variant_of: HashMap<String, u64>,
    /// What each listing must show once every change is pushed.
    expected: BTreeMap<String, i64>,
    rng: StdRng,
    orders_sent: usize,
}

impl Cluster {
    async fn start(db_url: &str, dir: &std::path::Path) -> Self {
        let (lease, timeout) = (
            LEASE_SECONDS.to_string(),
            REQUEST_TIMEOUT_SECONDS.to_string(),
        );
        let env = [
            ("STOCKHUB_CHANNELS_PUSH_LEASE_SECONDS", lease.as_str()),
            (
                "STOCKHUB_CHANNELS_REQUEST_TIMEOUT_SECONDS",
                timeout.as_str(),
            ),
        ];
        let mut servers = Vec::new();
        for i in 0..3 {
            let name = format!("serve-{i}");
            servers.push(ServerProcess::start_with_env(BINARY, db_url, dir, &name, &env).await);
        }
        let products = CatalogSpec {
            products: PRODUCTS,
            variants_per_product: VARIANTS_PER_PRODUCT,
            locations: 1,
            quantity: START,
            sku_prefix: "W".into(),
        }
        .build();
        let shop = ShopifySim::start(ShopifyConfig {
            products,
            api_secret: SECRET.into(),
            ..ShopifyConfig::default()
        })
        .await
        .expect("the simulated store starts");
        let variant_of: HashMap<String, u64> = shop
            .variants()
            .into_iter()
            .filter_map(|v| Some((v.sku?, v.variant_id)))
            .collect();
        let mut skus: Vec<String> = variant_of.keys().cloned().collect();
        skus.sort();
        let options = StoreOptions {
            readers: 1,
            writers: 1,
            ..StoreOptions::default()
        };
        let db = stockhub_store::open(db_url, Arc::new(SystemClock), &options).expect("open");
        Self {
            servers,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            shop,
            db,
            expected: skus.iter().map(|s| (s.clone(), START)).collect(),
            skus,
            variant_of,
            rng: StdRng::seed_from_u64(SEED),
            orders_sent: 0,
        }
    }

    fn url(&self, process: usize, path: &str) -> String {
        format!("{}{path}", self.servers[process].base_url)
    }

    async fn ok(&self, process: usize, method: &str, path: &str, body: Value) -> Value {
        let (status, reply) = send(&self.client, method, self.url(process, path), &body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {reply}"
        );
        reply
    }

    /// The catalog, stock, a manual channel for orders and the Shopify store, discovered and
    /// pushed once, all through process 0.
    async fn set_up(&mut self) {
        self.ok(0, "PUT", "/v1/locations/wh", json!({})).await;
        let variants: Vec<Value> = self.skus.iter().map(|s| json!({ "sku": s })).collect();
        self.ok(
            0,
            "POST",
            "/v1/variants/batch",
            json!({ "variants": variants }),
        )
        .await;
        let receipts: Vec<Value> = self
            .skus
            .iter()
            .map(|s| json!({ "kind": "receive", "sku": s, "location": "wh", "quantity": START }))
            .collect();
        self.ok(
            0,
            "POST",
            "/v1/stock/movements",
            json!({ "movements": receipts }),
        )
        .await;
        self.ok(0, "PUT", "/v1/channels/web", json!({ "kind": "manual" }))
            .await;
        let connection = json!({ "kind": "shopify", "base_url": self.shop.base_url(),
            "access_token": ShopifyConfig::default().access_token,
            "location_id": self.shop.locations()[0].gid, "webhook_secret": SECRET });
        self.ok(0, "PUT", &format!("/v1/channels/{CHANNEL}"), connection)
            .await;
        let report = self
            .ok(
                0,
                "POST",
                &format!("/v1/channels/{CHANNEL}/discover"),
                json!({}),
            )
            .await;
        assert_eq!(report["matched"], self.skus.len(), "{report}");
        self.settle(0, SETTLE_WITHIN).await;
    }

    /// Sends `count` one-unit orders of random SKUs on the manual channel, order `i` to
    /// `processes[i % len]`, 24 at a time; every one is accepted.
    async fn burst(&mut self, processes: &[usize], count: usize) {
        let mut orders = Vec::with_capacity(count);
        for i in 0..count {
            let sku = self.skus[self.rng.random_range(0..self.skus.len())].clone();
            *self.expected.get_mut(&sku).expect("known SKU") -= 1;
            self.orders_sent += 1;
            let body = json!({ "channel": "web", "external_id": format!("O-{}", self.orders_sent),
                "version": 1, "lines": [{ "line_id": "1", "sku": sku, "quantity": 1 }] });
            orders.push((self.url(processes[i % processes.len()], "/v1/orders"), body));
        }
        for wave in orders.chunks(24) {
            let mut tasks = tokio::task::JoinSet::new();
            for (url, body) in wave.iter().cloned() {
                let client = self.client.clone();
                tasks.spawn(async move { send(&client, "POST", url, &body).await });
            }
            while let Some(done) = tasks.join_next().await {
                let (status, reply) = done.expect("order task");
                assert_eq!(status, 200, "an order is accepted: {reply}");
            }
        }
    }

    /// The store's own sale of one unit of each SKU, its webhook sent to `process`.
    fn own_sale(&mut self, skus: &[String], process: usize) {
        let url = self.url(process, &format!("/webhooks/{CHANNEL}"));
        self.shop.set_webhook_address(Some(url));
        let lines = skus
            .iter()
            .map(|s| OrderLine::variant(self.variant_of[s], 1))
            .collect();
        self.shop
            .place_order(&NewOrder::lines(lines))
            .expect("the store sells");
        for sku in skus {
            *self.expected.get_mut(sku).expect("known SKU") -= 1;
        }
    }

    /// What every SKU shows at the store now.
    fn shown(&self) -> BTreeMap<String, i64> {
        let location = self.shop.locations()[0].id;
        self.shop
            .variants()
            .into_iter()
            .filter_map(|v| Some((v.sku.clone()?, v.available_at(location)?)))
            .collect()
    }

    /// Waits until the push queue is empty, the store's webhooks are delivered and every
    /// listing shows what it must; then checks that stockhub computes the same (through
    /// `process`).
    async fn settle(&self, process: usize, within: Duration) {
        let deadline = Instant::now() + within;
        let path = format!("/v1/pushes?channel={CHANNEL}");
        loop {
            let queue = self.ok(process, "GET", &path, Value::Null).await;
            let drained = queue.as_array().is_some_and(Vec::is_empty);
            if drained && self.shop.deliveries_in_flight() == 0 && self.shown() == self.expected {
                break;
            }
            if Instant::now() > deadline {
                let wrong: Vec<_> = self
                    .shown()
                    .into_iter()
                    .filter(|(sku, shown)| self.expected.get(sku) != Some(shown))
                    .map(|(sku, shown)| {
                        format!("{sku}: shows {shown}, must {}", self.expected[&sku])
                    })
                    .collect();
                panic!("not settled within {within:?}: queue {queue}; {wrong:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.assert_stockhub_agrees(process).await;
    }

    /// Every SKU's `available` on the channel, as `GET /v1/stock/{sku}` gives it, is what the
    /// test expects.
    async fn assert_stockhub_agrees(&self, process: usize) {
        let mut tasks = tokio::task::JoinSet::new();
        for sku in &self.skus {
            let (client, url) = (
                self.client.clone(),
                self.url(process, &format!("/v1/stock/{sku}")),
            );
            tasks.spawn(async move { send(&client, "GET", url, &Value::Null).await });
        }
        let mut available = BTreeMap::new();
        while let Some(done) = tasks.join_next().await {
            let (status, view) = done.expect("stock task");
            assert_eq!(status, 200, "{view}");
            let channel = view["channels"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["channel"] == CHANNEL))
                .unwrap_or_else(|| panic!("no {CHANNEL} in {view}"));
            let sku = view["sku"].as_str().expect("sku").to_owned();
            available.insert(sku, channel["available"].as_i64().expect("available"));
        }
        assert_eq!(
            available, self.expected,
            "stockhub computes what the test expects"
        );
    }

    /// The SKUs whose marks `process` claimed after `after_ms` (database time) and still holds.
    async fn held_by(&self, process: usize, after_ms: i64) -> Vec<String> {
        let owner = format!("{}-", self.servers[process].pid());
        let until_after = after_ms + (LEASE_SECONDS * 1000) as i64;
        self.db
            .read(move |sql| {
                let rows = sql.query(
                    "SELECT sku, lease_token FROM push_marks
                     WHERE channel = ?1 AND state = 'in_flight' AND leased_until > ?2",
                    &[CHANNEL.into(), until_after.into()],
                )?;
                Ok(rows
                    .iter()
                    .filter(|r| r.text(1).starts_with(&owner))
                    .map(|r| r.text(0))
                    .collect())
            })
            .await
            .expect("read the push marks")
    }

    /// Catches `worker` holding marks: pauses every other process, has the store hold every
    /// call, makes `change` through `worker` and waits until it holds marks claimed after the
    /// hold began — so that its call, if it sent one, waits at the store without effect. Returns
    /// the SKUs it holds; the store still holds calls and the others stay paused.
    async fn catch_holding(&mut self, worker: usize, change: Change) -> Vec<String> {
        let others: Vec<usize> = (0..self.servers.len()).filter(|p| *p != worker).collect();
        for p in &others {
            self.servers[*p].pause();
        }
        self.shop.set_faults(Faults {
            hold: Some(Hold::Before),
            ..slow()
        });
        let began = Instant::now();
        let hold_began_ms = self
            .db
            .read(|sql| Ok(sql.now_ms()))
            .await
            .expect("database time");
        match change {
            Change::Orders(count) => self.burst(&[worker], count).await,
            Change::AdjustEverySku => self.adjust_every_sku(worker).await,
        }
        // Caught well before its call can time out, the worker cannot have retried it beside
        // the one the store holds, nor finished its pass before it is stopped.
        let deadline = began + Duration::from_secs(REQUEST_TIMEOUT_SECONDS) / 2;
        loop {
            let held = self.held_by(worker, hold_began_ms).await;
            assert!(
                Instant::now() < deadline,
                "process {worker} was not caught holding marks in time (held: {held:?})"
            );
            if !held.is_empty() {
                return held;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// One unit of every SKU written off, through `process`: every listing marked at once.
    async fn adjust_every_sku(&mut self, process: usize) {
        let movements: Vec<Value> = self
            .skus
            .iter()
            .map(|s| json!({ "kind": "adjust", "sku": s, "location": "wh", "delta": -1 }))
            .collect();
        self.ok(
            process,
            "POST",
            "/v1/stock/movements",
            json!({ "movements": movements }),
        )
        .await;
        for expected in self.expected.values_mut() {
            *expected -= 1;
        }
    }

    /// After [`Cluster::catch_holding`]: the others run again, the store sells one unit of each
    /// SKU the caught worker holds (so that its held call fails compare-and-set) and stops
    /// holding calls.
    fn release(&mut self, worker: usize, held: &[String], webhooks_to: usize) {
        for p in (0..self.servers.len()).filter(|p| *p != worker) {
            self.servers[p].resume();
        }
        self.own_sale(held, webhooks_to);
        self.shop.set_faults(slow());
    }

    /// `stockhub_push_results_discarded_total` of the channel in `process`'s `/metrics`.
    async fn discarded(&self, process: usize) -> u64 {
        let reply = self
            .client
            .get(self.url(process, "/metrics"))
            .send()
            .await
            .expect("metrics");
        let text = reply.text().await.expect("metrics text");
        let series = format!("stockhub_push_results_discarded_total{{channel=\"{CHANNEL}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0, |n| n.trim().parse().expect("a count"))
    }
}

/// What makes a caught worker claim.
enum Change {
    /// One-unit orders through the worker.
    Orders(usize),
    /// One unit of every SKU written off.
    AdjustEverySku,
}

/// The store's faults for the whole test: slow writes.
fn slow() -> Faults {
    Faults {
        processing_delay_ms: PROCESSING_DELAY_MS,
        ..Faults::default()
    }
}

/// Pairs of calls that named one item while both were in progress.
fn concurrent_on_one_item(spans: &[WriteSpan]) -> Vec<(u64, &WriteSpan, &WriteSpan)> {
    let mut by_item: BTreeMap<u64, Vec<&WriteSpan>> = BTreeMap::new();
    for span in spans {
        for item in &span.item_ids {
            by_item.entry(*item).or_default().push(span);
        }
    }
    let mut found = Vec::new();
    for (item, mut calls) in by_item {
        calls.sort_by_key(|s| s.began_us);
        // Of the calls begun so far, the one that ends last.
        let mut ends_last: Option<&WriteSpan> = None;
        for call in calls {
            if let Some(earlier) = ends_last.filter(|e| call.began_us < e.ended_us) {
                found.push((item, earlier, call));
            }
            if ends_last.is_none_or(|e| call.ended_us > e.ended_us) {
                ends_last = Some(call);
            }
        }
    }
    found
}

/// The most calls in progress at once, whatever they named.
fn most_at_once(spans: &[WriteSpan]) -> usize {
    let mut edges: Vec<(u64, i32)> = spans
        .iter()
        .flat_map(|s| [(s.began_us, 1), (s.ended_us, -1)])
        .collect();
    // An end before a start at the same instant: touching spans are not concurrent.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

/// Phase 1: a burst spread over the three processes, pushed one call at a time per item.
async fn a_burst_over_three_processes(cluster: &mut Cluster) {
    cluster.burst(&[0, 1, 2], 600).await;
    cluster.settle(0, SETTLE_WITHIN).await;
    let spans = cluster.shop.write_spans();
    assert!(
        most_at_once(&spans) >= 2,
        "the processes' calls overlapped in time (else the next check proves little)"
    );
    assert_eq!(concurrent_on_one_item(&spans), Vec::new());
}

/// Phase 2: process 1 holds every mark (a pass of two calls), its first call (if sent) held by
/// the store, and stops past its lease.
async fn a_worker_paused_past_its_lease(cluster: &mut Cluster) {
    let held = cluster.catch_holding(1, Change::AdjustEverySku).await;
    assert_eq!(held.len(), cluster.skus.len(), "one claim took every mark");
    cluster.servers[1].pause();
    cluster.release(1, &held, 0);
    // After the lease the others take the marks over and push the newer quantities (the queue
    // empties: the paused worker holds no mark any more).
    cluster.settle(0, SETTLE_WITHIN).await;
    let resumed_us = stockhub_sim::clock::monotonic_us();
    cluster.servers[1].resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.discarded(1).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the resumed worker reported nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cluster.discarded(1).await, held.len() as u64);
    let late = cluster
        .shop
        .write_spans()
        .iter()
        .filter(|s| s.began_us >= resumed_us)
        .count();
    assert_eq!(late, 0, "calls sent by the resumed worker after its lease");
    cluster.settle(1, SETTLE_WITHIN).await;
}

/// Phase 3: process 2 is killed holding marks in a burst; the burst goes on on the other two.
async fn a_process_killed_in_a_burst(cluster: &mut Cluster) {
    let held = cluster.catch_holding(2, Change::Orders(48)).await;
    let victim = cluster.servers.remove(2);
    victim.kill().await;
    cluster.release(2, &held, 0);
    cluster.burst(&[0, 1], 300).await;
    cluster.settle(1, SETTLE_WITHIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_push_every_change_one_call_at_a_time_and_never_a_stale_one() {
    if !stockhub_testkit::postgres_runs() {
        return;
    }
    let db = stockhub_store::testing::test_database(TestBackend::Postgres, "push-workers")
        .expect("a PostgreSQL schema");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut cluster = Cluster::start(&db.url, dir.path()).await;
    cluster.set_up().await;
    let log_start = cluster.shop.display_log().last().map_or(0, |e| e.seq);
    cluster.shop.set_faults(slow());

    a_burst_over_three_processes(&mut cluster).await;
    a_worker_paused_past_its_lease(&mut cluster).await;
    a_process_killed_in_a_burst(&mut cluster).await;

    let spans = cluster.shop.write_spans();
    assert_eq!(concurrent_on_one_item(&spans), Vec::new());
    let rises: Vec<_> = cluster
        .shop
        .display_log_since(log_start)
        .into_iter()
        .filter(|e| e.before.is_some_and(|before| e.after > before))
        .collect();
    assert_eq!(rises, Vec::new(), "no listing ever showed a rise");
    stockhub_testkit::assert_verify_passes(BINARY, &db.url, "after the bursts").await;
}
