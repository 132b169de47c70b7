//! Propagation latency (issue 3, "A benchmark"): how long after an order webhook reaches stockhub
//! every OTHER channel's API has acknowledged the new quantity, at 10, 100 and 1,000 orders per
//! second across three simulated channels (two Shopify stores and one WooCommerce store), and how
//! many channel API calls each order costs.
//!
//! Each rate is a fresh run: a `stockhub serve` child (the release binary when run by
//! `cargo bench`) on a new SQLite file, three simulators in this process with one catalog of
//! 100 products × 10 variants (1,000 SKUs), one stockhub location feeding every channel, the
//! channels discovered and brought to stockhub's quantities. Then an open-loop generator places
//! orders of 1–3 lines (one unit each, distinct SKUs, channel and SKUs uniform at random) on the
//! simulated stores at the rate: a warm-up, the measured window (`STOCKHUB_BENCH_SECONDS`,
//! default 10) and a short cool-down under the same load; then the queues drain (each stage
//! bounded; WooCommerce webhooks still queued after that are dropped and counted).
//!
//! Latency is measured from the simulators' side, on the simulators' shared monotonic clock:
//!
//! - **start**: the order's webhook reaching stockhub's door. The stores send their webhooks to
//!   a byte-level tap in front of stockhub's port (this file's [`Tap`]), which stamps the first
//!   bytes of each request and relays them unchanged. (A store's delivery log stamps a delivery
//!   when it is answered, after stockhub committed it: that would leave the handling out.)
//! - **end**: the last other channel acknowledging the new quantity: WooCommerce answering 2xx
//!   to a batch call that sets it (seen on the wire: a set that changes nothing leaves no trace
//!   in the display log) or showing it already (when the order arrives, or after a change it
//!   made itself: stockhub does not write what the store shows), Shopify answering the push
//!   during which its display log shows it.
//!   "The new quantity" is stockhub's stock after every order it committed up to this one (its
//!   commit order: the inbound event ids of `GET /v1/events`, read after the run), less that
//!   channel's own sales of the SKU which stockhub had not committed yet (held back by the
//!   `u` rule): a channel showing no more than that has taken the order.
//!
//! The stores' APIs sit behind taps too, so every HTTP call stockhub made to a store is counted
//! on the wire, next to stockhub's own `stockhub_channel_api_calls_total`; stockhub's
//! `stockhub_propagation_latency_ms` histogram is printed as a cross-check (per listing, from the
//! commit that marked the push, over pushes completed in the window).
//!
//! The simulated Shopify stores run at the Standard plan's limits (GraphQL: 2,000 points,
//! 100 restored per second; REST: 40 calls, 2 per second). If the 1,000/s run misses the target
//! and the plan's budget bound stockhub (a `THROTTLED` answer, or a bucket that fell below a
//! tenth: stockhub waits for points rather than be throttled), a second 1,000/s run at Shopify
//! Plus limits follows,
//! labelled as such (`STOCKHUB_BENCH_RAISED=auto|always|never`; `only` runs 1,000/s at Plus
//! limits alone, in place of the Standard run). From 300 orders/s the
//! WooCommerce store sends its webhooks with 16 Action Scheduler runners instead of 1, said in
//! the output, so that stockhub is offered the nominal rate.
//!
//! Settings: `STOCKHUB_BENCH_SECONDS` (measured seconds per rate, default 10),
//! `STOCKHUB_BENCH_RATES` (default `10,100,1000`), `STOCKHUB_BENCH_WOO_PRODUCTS=variable|simple`
//! (how the WooCommerce store lists the SKUs: as variations of the 100 products, the default, or
//! as 1,000 simple products), `STOCKHUB_BENCH_DUMP=<dir>` (every order's,
//! display change's and API call's times as CSV files, for a closer look). Run with
//! `cargo bench -p stockhub --bench propagation`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use stockhub_sim::clock::monotonic_us;
use stockhub_sim::seed::{CatalogSpec, DEFAULT_VARIANT_TITLE};
use stockhub_sim::shopify::{self, ShopifyConfig, ShopifySim};
use stockhub_sim::woocommerce::{self, WebhookSpec, WooConfig, WooSim};
use stockhub_sim::{BucketConfig, Cause, DisplayEntry, ProductSeed, VariantSeed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The simulators, taps and load generator share the machine with stockhub: mimalloc, as
/// stockhub uses, keeps their allocations (a third of this process's time under glibc's malloc)
/// from taking CPU the measured server would otherwise have.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BINARY: &str = env!("CARGO_BIN_EXE_stockhub");
const SECRET: &str = "whsec-bench";
const PRODUCTS: usize = 100;
const VARIANTS_PER_PRODUCT: usize = 10;
/// Units of every SKU, in stockhub and on every store: more than any run sells.
const STOCK: i64 = 100_000;
const LOCATION: &str = "wh";
const WARM_UP: Duration = Duration::from_secs(2);
const COOL_DOWN: Duration = Duration::from_secs(1);
/// The longest wait for each stage of the drain after a run.
const DRAIN_LIMIT: Duration = Duration::from_secs(8);
const SECONDS_DEFAULT: u64 = 10;
const RATES_DEFAULT: &str = "10,100,1000";
/// The acceptance target: p99 under this at 1,000 orders per second.
const TARGET_RATE: u64 = 1000;
const TARGET_P99_MS: f64 = 250.0;
/// A Shopify bucket that fell below this share of its capacity paced stockhub's pushes (see
/// `RunResult::lowest_bucket_share`).
const PLAN_BOUND_SHARE: f64 = 0.10;

/// From this rate the WooCommerce store sends webhooks with several runners.
const HIGH_RATE: u64 = 300;
const HIGH_RATE_WOO_RUNNERS: usize = 16;

fn woo_runners(rate: u64) -> usize {
    if rate >= HIGH_RATE {
        HIGH_RATE_WOO_RUNNERS
    } else {
        WooConfig::default().webhook_concurrency
    }
}

/// The three channels, in this order everywhere.
const CHANNELS: [&str; 3] = ["shop-a", "shop-b", "woo"];
const SHOPIFY_STORES: usize = 2;

fn setting(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(raw) => raw
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {raw:?}")),
        Err(_) => default,
    }
}

/// The commit the binary was built from, and whether tracked files differ from it.
fn source_tree() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let changed = git(&["status", "--porcelain", "--untracked-files=no"])?
        .lines()
        .count();
    Some(if changed == 0 {
        format!("commit {}", head.trim())
    } else {
        format!(
            "commit {} with {changed} tracked files changed",
            head.trim()
        )
    })
}

/// How the WooCommerce store lists the catalog's SKUs (`STOCKHUB_BENCH_WOO_PRODUCTS`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum WooProducts {
    /// As variations of variable products (the default): WooCommerce sets variations only
    /// through each product's own batch endpoint, so a push costs a call per product touched.
    Variable,
    /// As simple products, which share `products/batch` calls of up to 100 items.
    Simple,
}

fn woo_products() -> WooProducts {
    match std::env::var("STOCKHUB_BENCH_WOO_PRODUCTS").as_deref() {
        Err(_) | Ok("variable") => WooProducts::Variable,
        Ok("simple") => WooProducts::Simple,
        Ok(other) => {
            panic!("STOCKHUB_BENCH_WOO_PRODUCTS: {other:?} is neither variable nor simple")
        }
    }
}

/// The catalog with each variant made a simple product of its own (same SKU and stock).
fn as_simple_products(products: &[ProductSeed]) -> Vec<ProductSeed> {
    products
        .iter()
        .flat_map(|p| {
            p.variants.iter().map(|v| {
                let variant = VariantSeed {
                    title: DEFAULT_VARIANT_TITLE.to_owned(),
                    ..v.clone()
                };
                ProductSeed::new(&format!("{} {}", p.title, v.title), vec![variant])
            })
        })
        .collect()
}

fn rates() -> Vec<u64> {
    let raw = std::env::var("STOCKHUB_BENCH_RATES").unwrap_or_else(|_| RATES_DEFAULT.to_owned());
    raw.split(',')
        .map(|r| {
            r.trim()
                .parse()
                .unwrap_or_else(|_| panic!("STOCKHUB_BENCH_RATES: {r:?} is not a whole number"))
        })
        .filter(|r| *r > 0)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Shopify plans, as the simulated stores enforce them (API_FACTS §1.7).

#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    Standard,
    Plus,
}

impl Plan {
    fn name(self) -> &'static str {
        match self {
            Plan::Standard => "Standard",
            Plan::Plus => "Plus (raised)",
        }
    }

    fn graphql(self) -> BucketConfig {
        match self {
            Plan::Standard => ShopifyConfig::default().graphql_bucket,
            Plan::Plus => BucketConfig {
                capacity: 20_000.0,
                per_second: 1_000.0,
            },
        }
    }

    fn rest(self) -> BucketConfig {
        match self {
            Plan::Standard => ShopifyConfig::default().rest_bucket,
            Plan::Plus => BucketConfig {
                capacity: 400.0,
                per_second: 20.0,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A byte-level HTTP/1.1 tap: relays every byte unchanged between a client and one upstream
// address, and notes, per request, when its first bytes arrived, its path, topic header and
// body, and when the first bytes of its answer came back, with the status and whether the answer
// says THROTTLED. Requests are framed by `Content-Length` (every client here sends one); a
// connection that sends anything else is relayed without notes and counted.

#[derive(Debug, Clone, Default)]
struct Exchange {
    at_us: u64,
    path: String,
    topic: Option<String>,
    body: Vec<u8>,
    answered_us: Option<u64>,
    status: Option<u16>,
    throttled: bool,
    /// Shopify GraphQL: `throttleStatus.currentlyAvailable` in the answer.
    bucket_left: Option<f64>,
    /// Shopify GraphQL: the stale compare-and-set errors in the answer.
    stale: usize,
}

#[derive(Default)]
struct TapLog {
    exchanges: Vec<Exchange>,
    unframed_connections: u64,
}

type SharedLog = Arc<Mutex<TapLog>>;

fn lock(log: &Mutex<TapLog>) -> std::sync::MutexGuard<'_, TapLog> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

struct Tap {
    url: String,
    log: SharedLog,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        // The accept task owns the connection tasks (a JoinSet): aborting it ends them all.
        self.task.abort();
    }
}

impl Tap {
    async fn start(upstream: SocketAddr) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a tap");
        let address = listener.local_addr().expect("tap address");
        let log: SharedLog = Arc::default();
        let accept_log = log.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                connections.spawn(relay(client, upstream, accept_log.clone()));
            }
        });
        Tap {
            url: format!("http://{address}"),
            log,
            task,
        }
    }

    fn take(&self) -> (Vec<Exchange>, u64) {
        let mut log = lock(&self.log);
        let unframed = log.unframed_connections;
        (std::mem::take(&mut log.exchanges), unframed)
    }
}

const NO_EXCHANGE: usize = usize::MAX;

async fn relay(client: TcpStream, upstream: SocketAddr, log: SharedLog) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // The exchange whose answer is awaited: HTTP/1.1 without pipelining answers each request
    // before the next one is sent.
    let current = AtomicUsize::new(NO_EXCHANGE);
    let requests = async {
        let mut framer = Framer::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            framer.feed(&buf[..n], monotonic_us(), &log, &current);
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let answers = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            note_answer(&buf[..n], monotonic_us(), &log, &current);
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(requests, answers);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

fn note_answer(bytes: &[u8], now: u64, log: &Mutex<TapLog>, current: &AtomicUsize) {
    let index = current.load(Ordering::Acquire);
    if index == NO_EXCHANGE {
        return;
    }
    let mut log = lock(log);
    let Some(exchange) = log.exchanges.get_mut(index) else {
        return;
    };
    if exchange.answered_us.is_none() {
        exchange.answered_us = Some(now);
        exchange.status = bytes
            .strip_prefix(b"HTTP/1.1 ")
            .or_else(|| bytes.strip_prefix(b"HTTP/1.0 "))
            .and_then(|rest| std::str::from_utf8(rest.get(..3)?).ok())
            .and_then(|code| code.parse().ok());
    }
    if find(bytes, b"THROTTLED").is_some() {
        exchange.throttled = true;
    }
    exchange.stale += count(bytes, b"QUANTITY_STALE");
    const AVAILABLE: &[u8] = b"\"currentlyAvailable\":";
    if let Some(at) = find(bytes, AVAILABLE) {
        let digits: String = bytes[at + AVAILABLE.len()..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .map(|b| char::from(*b))
            .collect();
        exchange.bucket_left = digits.parse().ok();
    }
}

/// Cuts the request stream of one connection into requests.
#[derive(Default)]
struct Framer {
    pending: Vec<u8>,
    head_at: u64,
    body_left: usize,
    body: Vec<u8>,
    index: usize,
    lost: bool,
}

impl Framer {
    fn feed(&mut self, bytes: &[u8], now: u64, log: &Mutex<TapLog>, current: &AtomicUsize) {
        if self.lost {
            return;
        }
        if self.pending.is_empty() && self.body_left == 0 {
            self.head_at = now;
        }
        self.pending.extend_from_slice(bytes);
        while !self.pending.is_empty() {
            if self.body_left > 0 {
                let take = self.body_left.min(self.pending.len());
                self.body.extend(self.pending.drain(..take));
                self.body_left -= take;
                if self.body_left == 0 {
                    self.finish(log);
                    self.head_at = now;
                }
                continue;
            }
            let Some(end) = find(&self.pending, b"\r\n\r\n") else {
                return;
            };
            let head: Vec<u8> = self.pending.drain(..end + 4).collect();
            let head = String::from_utf8_lossy(&head);
            let mut lines = head.split("\r\n");
            let path = lines
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("")
                .to_owned();
            let (mut length, mut topic, mut framed) = (0usize, None, true);
            for line in lines {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                match name.as_str() {
                    "content-length" => length = value.parse().unwrap_or(0),
                    "transfer-encoding" => framed = false,
                    "x-shopify-topic" | "x-wc-webhook-topic" => topic = Some(value.to_owned()),
                    _ => {}
                }
            }
            if !framed {
                self.lost = true;
                lock(log).unframed_connections += 1;
                current.store(NO_EXCHANGE, Ordering::Release);
                return;
            }
            {
                let mut log = lock(log);
                self.index = log.exchanges.len();
                log.exchanges.push(Exchange {
                    at_us: self.head_at,
                    path,
                    topic,
                    ..Exchange::default()
                });
            }
            current.store(self.index, Ordering::Release);
            self.body_left = length;
            if length == 0 {
                self.finish(log);
                self.head_at = now;
            }
        }
    }

    fn finish(&mut self, log: &Mutex<TapLog>) {
        let body = std::mem::take(&mut self.body);
        if let Some(exchange) = lock(log).exchanges.get_mut(self.index) {
            exchange.body = body;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The stockhub child process.

/// A `stockhub serve` child, killed when dropped.
struct Server {
    child: Child,
    base_url: String,
    address: SocketAddr,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the server on a port the OS picks and reads the address it announces.
    fn start(dir: &Path) -> Server {
        let out = dir.join("serve.out");
        let log = dir.join("serve.log");
        let child = Command::new(BINARY)
            .args([
                "serve",
                "--db",
                dir.join("stockhub.db").to_str().expect("utf-8 path"),
            ])
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(&out).expect("output file"),
            ))
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .spawn()
            .expect("spawn stockhub serve");
        let mut server = Server {
            child,
            base_url: String::new(),
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        for _ in 0..3000 {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(url) = text
                .lines()
                .find_map(|l| l.strip_prefix("stockhub listening on "))
                .and_then(|rest| rest.split_whitespace().next())
            {
                server.base_url = url.to_owned();
                server.address = url
                    .trim_start_matches("http://")
                    .parse()
                    .expect("the announced address");
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "stockhub serve exited with {status}: {}",
                    std::fs::read_to_string(&server.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("stockhub serve did not announce its address within 30 s");
    }

    /// Lines of the server's log at WARN or above, without colours or timestamps, counted.
    fn warnings(&self) -> Vec<(String, usize)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut counted: Vec<(String, usize)> = Vec::new();
        for line in text
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        {
            let plain = strip_ansi(line);
            let message = plain
                .split_once(' ')
                .map_or(plain.as_str(), |(_, rest)| rest.trim())
                .to_owned();
            match counted.iter_mut().find(|(m, _)| *m == message) {
                Some((_, n)) => *n += 1,
                None => counted.push((message, 1)),
            }
        }
        counted
    }
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<&Value>,
) -> Value {
    let mut request = client.request(method, &url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {answer}");
    answer
}

async fn metrics(client: &reqwest::Client, base: &str) -> Metrics {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("/metrics text");
    Metrics::parse(&text)
}

/// Waits until nothing is pending or in flight in stockhub's push queue; false after `limit`.
async fn push_queue_drained(client: &reqwest::Client, base: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let mut empty = true;
        for state in ["pending", "in_flight"] {
            let list = call(
                client,
                reqwest::Method::GET,
                format!("{base}/v1/pushes?state={state}&limit=1"),
                None,
            )
            .await;
            empty &= list.as_array().is_some_and(Vec::is_empty);
        }
        if empty {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// stockhub's own figures, from GET /metrics.

#[derive(Clone, Default)]
struct Metrics {
    series: BTreeMap<String, f64>,
}

impl Metrics {
    fn parse(text: &str) -> Self {
        let series = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                Some((key.to_owned(), value.parse().ok()?))
            })
            .collect();
        Self { series }
    }

    /// Sum of the series of `name` whose labels contain every `(label, value)` of `filter`.
    fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.series
            .iter()
            .filter(|(key, _)| {
                key.split_once('{').map_or(key.as_str(), |(n, _)| n) == name
                    && filter
                        .iter()
                        .all(|(l, v)| key.contains(&format!("{l}=\"{v}\"")))
            })
            .map(|(_, v)| v)
            .sum()
    }

    fn minus(&self, before: &Metrics) -> Metrics {
        let series = self
            .series
            .iter()
            .map(|(k, v)| (k.clone(), v - before.series.get(k).copied().unwrap_or(0.0)))
            .collect();
        Metrics { series }
    }

    /// The bucket bound the quantile `q` of the latency histogram (every channel) falls in.
    fn latency_bound_ms(&self, q: f64) -> Option<String> {
        let total = self.sum("stockhub_propagation_latency_ms_count", &[]);
        if total <= 0.0 {
            return None;
        }
        let rank = (total * q).ceil().max(1.0);
        for bound in stockhub_app::metrics::LATENCY_BUCKETS_MS {
            let le = bound.to_string();
            if self.sum("stockhub_propagation_latency_ms_bucket", &[("le", &le)]) >= rank {
                return Some(format!("≤{bound}"));
            }
        }
        Some(">60000".to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// Where the two cores went, from /proc (Linux).

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) from a /proc `stat` file.
fn cpu_seconds(stat_path: &Path) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / TICKS_PER_SECOND)
}

/// CPU seconds per thread name of a process.
fn thread_cpu(pid: u32) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let seconds = cpu_seconds(&task.path().join("stat")).unwrap_or(0.0);
        *out.entry(name.trim().to_owned()).or_insert(0.0) += seconds;
    }
    out
}

/// Busy CPU seconds of the whole machine (every core), from /proc/stat.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: busy = all but idle and iowait.
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (total - idle) / TICKS_PER_SECOND
}

#[derive(Clone, Default)]
struct CpuSample {
    server: f64,
    server_threads: BTreeMap<String, f64>,
    bench: f64,
    machine: f64,
}

impl CpuSample {
    fn take(server_pid: u32) -> Self {
        Self {
            server: cpu_seconds(Path::new(&format!("/proc/{server_pid}/stat"))).unwrap_or(0.0),
            server_threads: thread_cpu(server_pid),
            bench: cpu_seconds(Path::new("/proc/self/stat")).unwrap_or(0.0),
            machine: machine_busy_seconds(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The simulated stores and stockhub, wired.

/// How to place a line of a SKU on each store.
struct CatalogIds {
    skus: Vec<String>,
    index: HashMap<String, usize>,
    /// Per Shopify store, per SKU: the variant id.
    shopify_variants: Vec<Vec<u64>>,
    /// Per SKU: the WooCommerce (parent product, variation), or (0, product) for a simple
    /// product.
    woo_items: Vec<(u64, u64)>,
}

struct Rig {
    /// When the stores' GraphQL buckets are full again after the set-up.
    full_buckets_at: Instant,
    server: Server,
    client: reqwest::Client,
    shopify: Vec<ShopifySim>,
    woo: WooSim,
    /// In front of each store's API, in `CHANNELS` order.
    api_taps: Vec<Tap>,
    /// In front of stockhub's port: where the stores send their webhooks.
    door: Tap,
    ids: CatalogIds,
}

impl Rig {
    async fn start(dir: &Path, spec: &RunSpec) -> Rig {
        let plan = spec.plan;
        let server = Server::start(dir);
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        let base = server.base_url.clone();
        call(
            &client,
            reqwest::Method::GET,
            format!("{base}/healthz"),
            None,
        )
        .await;
        let products = CatalogSpec {
            products: PRODUCTS,
            variants_per_product: VARIANTS_PER_PRODUCT,
            locations: 1,
            quantity: STOCK,
            sku_prefix: "BENCH".into(),
        }
        .build();
        let mut shopify = Vec::new();
        for (i, code) in CHANNELS.iter().take(SHOPIFY_STORES).enumerate() {
            shopify.push(
                ShopifySim::start(ShopifyConfig {
                    shop_domain: format!("{code}.myshopify.com"),
                    api_secret: SECRET.into(),
                    products: products.clone(),
                    graphql_bucket: plan.graphql(),
                    rest_bucket: plan.rest(),
                    seed: 11 + i as u64,
                    ..ShopifyConfig::default()
                })
                .await
                .expect("start a Shopify store"),
            );
        }
        let woo = WooSim::start(WooConfig {
            products: match woo_products() {
                WooProducts::Variable => products,
                WooProducts::Simple => as_simple_products(&products),
            },
            webhook_concurrency: spec.woo_runners,
            ..WooConfig::default()
        })
        .await
        .expect("start the WooCommerce store");
        let mut api_taps = Vec::new();
        for store in &shopify {
            api_taps.push(Tap::start(store.address()).await);
        }
        api_taps.push(Tap::start(woo.address()).await);
        let door = Tap::start(server.address).await;

        // The catalog in stockhub: one location feeding every channel, every SKU stocked.
        let skus: Vec<String> = (1..=PRODUCTS)
            .flat_map(|p| (1..=VARIANTS_PER_PRODUCT).map(move |v| format!("BENCH-{p:04}-{v:02}")))
            .collect();
        call(
            &client,
            reqwest::Method::PUT,
            format!("{base}/v1/locations/{LOCATION}"),
            Some(&json!({})),
        )
        .await;
        let variants: Vec<Value> = skus.iter().map(|s| json!({ "sku": s })).collect();
        call(
            &client,
            reqwest::Method::POST,
            format!("{base}/v1/variants/batch"),
            Some(&json!({ "variants": variants })),
        )
        .await;
        let receives: Vec<Value> = skus
            .iter()
            .map(
                |s| json!({ "kind": "receive", "sku": s, "location": LOCATION, "quantity": STOCK }),
            )
            .collect();
        call(
            &client,
            reqwest::Method::POST,
            format!("{base}/v1/stock/movements"),
            Some(&json!({ "movements": receives })),
        )
        .await;
        for (i, store) in shopify.iter().enumerate() {
            let body = json!({
                "kind": "shopify", "base_url": api_taps[i].url,
                "access_token": ShopifyConfig::default().access_token,
                "location_id": store.locations()[0].gid, "webhook_secret": SECRET,
                "feeding_locations": [LOCATION],
            });
            call(
                &client,
                reqwest::Method::PUT,
                format!("{base}/v1/channels/{}", CHANNELS[i]),
                Some(&body),
            )
            .await;
        }
        let woo_config = WooConfig::default();
        let body = json!({
            "kind": "woocommerce", "base_url": api_taps[2].url,
            "consumer_key": woo_config.consumer_key, "consumer_secret": woo_config.consumer_secret,
            "webhook_secret": SECRET, "feeding_locations": [LOCATION],
        });
        call(
            &client,
            reqwest::Method::PUT,
            format!("{base}/v1/channels/{}", CHANNELS[2]),
            Some(&body),
        )
        .await;
        // Discovery pages through each store's catalog within its rate limits (on the Standard
        // plan about 40 s per Shopify store for 1,000 variants): the stores at once.
        let empty = json!({});
        let discover = |channel: &str| {
            call(
                &client,
                reqwest::Method::POST,
                format!("{base}/v1/channels/{channel}/discover"),
                Some(&empty),
            )
        };
        let reports = tokio::join!(
            discover(CHANNELS[0]),
            discover(CHANNELS[1]),
            discover(CHANNELS[2])
        );
        for (channel, report) in CHANNELS.iter().zip([reports.0, reports.1, reports.2]) {
            assert_eq!(
                report["matched"].as_u64(),
                Some(skus.len() as u64),
                "discovery of {channel}: {report}"
            );
        }
        assert!(
            push_queue_drained(&client, &base, Duration::from_secs(60)).await,
            "the first pushes after discovery did not drain"
        );

        // The stores' webhooks go to the door.
        for (i, store) in shopify.iter().enumerate() {
            store.set_webhook_address(Some(format!("{}/webhooks/{}", door.url, CHANNELS[i])));
        }
        woo.add_webhook(WebhookSpec {
            name: Some("stockhub".into()),
            topic: "order.created".into(),
            delivery_url: format!("{}/webhooks/{}", door.url, CHANNELS[2]),
            secret: Some(SECRET.into()),
            status: None,
        })
        .expect("add the WooCommerce webhook");
        woo.wait_for_deliveries(Duration::from_secs(10)).await;

        let index: HashMap<String, usize> = skus
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i))
            .collect();
        let shopify_variants = shopify
            .iter()
            .map(|store| {
                let mut ids = vec![0; skus.len()];
                for v in store.variants() {
                    if let Some(i) = v.sku.as_ref().and_then(|s| index.get(s)) {
                        ids[*i] = v.variant_id;
                    }
                }
                ids
            })
            .collect();
        let mut woo_items = vec![(0, 0); skus.len()];
        for item in woo.items() {
            if let Some(i) = index.get(&item.sku) {
                woo_items[*i] = (item.parent_id.unwrap_or(0), item.id);
            }
        }
        assert!(woo_items.iter().all(|(_, id)| *id > 0));
        // Nothing of the set-up counts; the runs start with full GraphQL buckets.
        let mut refill = Duration::ZERO;
        for tap in api_taps.iter().chain([&door]) {
            let (exchanges, _) = tap.take();
            if let Some(left) = exchanges.iter().rev().find_map(|e| e.bucket_left) {
                let bucket = plan.graphql();
                let missing = (bucket.capacity - left).max(0.0);
                refill = refill.max(Duration::from_secs_f64(
                    missing / bucket.per_second.max(1.0) + 0.5,
                ));
            }
        }
        Rig {
            full_buckets_at: Instant::now() + refill,
            server,
            client,
            shopify,
            woo,
            api_taps,
            door,
            ids: CatalogIds {
                skus,
                index,
                shopify_variants,
                woo_items,
            },
        }
    }

    fn display_logs(&self) -> Vec<Vec<DisplayEntry>> {
        let mut logs: Vec<Vec<DisplayEntry>> =
            self.shopify.iter().map(ShopifySim::display_log).collect();
        logs.push(self.woo.display_log());
        logs
    }

    async fn shutdown(self) {
        for store in &self.shopify {
            store.shutdown().await;
        }
        self.woo.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The load: an open-loop generator placing orders on the stores at a fixed rate.

struct Placed {
    channel: usize,
    store_order_id: u64,
    /// (SKU index, units).
    lines: Vec<(usize, i64)>,
    placed_us: u64,
}

fn place(rig_stores: &Stores, ids: &CatalogIds, rng: &mut StdRng) -> Placed {
    let channel = rng.random_range(0..CHANNELS.len());
    let count = rng.random_range(1..=3);
    let mut lines: Vec<(usize, i64)> = Vec::with_capacity(count);
    while lines.len() < count {
        let s = rng.random_range(0..ids.skus.len());
        if !lines.iter().any(|(x, _)| *x == s) {
            lines.push((s, 1));
        }
    }
    let placed_us = monotonic_us();
    let order = if channel < SHOPIFY_STORES {
        let order = shopify::NewOrder::lines(
            lines
                .iter()
                .map(|(s, q)| shopify::OrderLine::variant(ids.shopify_variants[channel][*s], *q))
                .collect(),
        );
        rig_stores.shopify[channel].place_order(&order)
    } else {
        let order = woocommerce::NewOrder::lines(
            lines
                .iter()
                .map(|(s, q)| match ids.woo_items[*s] {
                    (0, id) => woocommerce::OrderLine::product(id, *q),
                    (parent, id) => woocommerce::OrderLine::variation(parent, id, *q),
                })
                .collect(),
        );
        rig_stores.woo.place_order(&order)
    }
    .expect("place an order");
    Placed {
        channel,
        store_order_id: order["id"].as_u64().expect("the order's id"),
        lines,
        placed_us,
    }
}

#[derive(Clone)]
struct Stores {
    shopify: Vec<ShopifySim>,
    woo: WooSim,
}

// ---------------------------------------------------------------------------------------------
// One run.

#[derive(Clone)]
struct RunSpec {
    rate: u64,
    plan: Plan,
    /// WooCommerce's Action Scheduler runners sending webhooks at once.
    woo_runners: usize,
    seconds: u64,
}

/// What one order's propagation took, in microseconds.
struct OrderTiming {
    channel: usize,
    lines: usize,
    placed_us: u64,
    arrived_us: u64,
    answered_us: Option<u64>,
    /// Arrival to the last other channel showing the new quantity; if some channel never did
    /// by the end of the observation, arrival to that end (a lower bound, `censored`).
    latency_us: Option<u64>,
    censored: bool,
    /// Per other channel: that channel had not acknowledged it when the observation ended.
    per_channel_censored: [bool; 3],
    /// Per other channel, arrival to that channel showing it.
    per_channel_us: [Option<u64>; 3],
    /// Another channel sold one of the order's SKUs itself and stockhub had not heard of that
    /// sale yet when this order's quantity was due there: that channel shows the new quantity
    /// only once the other sale is known too.
    contended: bool,
}

#[derive(Default, Clone)]
struct CallStats {
    calls: u64,
    pushes: u64,
    push_items: u64,
    reads: u64,
    /// Shopify: pushes answered with a stale compare-and-set (refused whole, sent again less
    /// the stale items).
    stale_pushes: u64,
    throttled: u64,
    too_many: u64,
    failed: u64,
    durations_us: Vec<u64>,
    push_durations_us: Vec<u64>,
    /// Shopify: the lowest and the last `currentlyAvailable` answered.
    bucket_low: Option<f64>,
    bucket_last: Option<f64>,
    /// (when, points left) of the first and the last answer that told.
    bucket_first_seen: Option<(u64, f64)>,
    bucket_last_seen: Option<(u64, f64)>,
}

struct RunResult {
    spec: RunSpec,
    /// Set-up, load, drain and collection.
    phases: [Duration; 4],
    /// Per origin channel: door → archived, archived → answered (µs, sorted; stockhub's archive
    /// stamp has millisecond resolution).
    handling: Vec<(Vec<u64>, Vec<u64>)>,
    /// Per channel, every call of the run (warm-up, window, cool-down and drain).
    whole_run_calls: Vec<CallStats>,
    placed_in_window: usize,
    /// Creation webhooks that reached stockhub's door during the window.
    arrived_in_window: usize,
    measured: Vec<OrderTiming>,
    undelivered: usize,
    unpropagated: usize,
    window_seconds: f64,
    calls: Vec<CallStats>,
    stockhub: Metrics,
    cpu_before: CpuSample,
    cpu_after: CpuSample,
    drained: bool,
    dead_pushes: usize,
    final_mismatches: usize,
    final_unchecked: usize,
    unframed: u64,
    warnings: Vec<(String, usize)>,
    /// By second of the window: (webhooks at the door, p99 ms of those orders).
    by_second: Vec<(usize, Option<f64>)>,
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

fn ms(us: Option<u64>) -> String {
    us.map_or_else(|| "-".to_owned(), |v| format!("{:.1}", v as f64 / 1000.0))
}

async fn run(rig: Rig, spec: RunSpec, set_up_took: Duration) -> RunResult {
    tokio::time::sleep_until(rig.full_buckets_at.into()).await;
    for tap in rig.api_taps.iter().chain([&rig.door]) {
        tap.take();
    }
    let began = Instant::now();
    // The simulators' monotonic clock against Unix time, to place stockhub's own stamps.
    let (clock_us, clock_unix_ms) = (monotonic_us(), stockhub_sim::clock::now_unix_ms());
    let stores = Stores {
        shopify: rig.shopify.clone(),
        woo: rig.woo.clone(),
    };
    let ids = Arc::new(CatalogIds {
        skus: rig.ids.skus.clone(),
        index: rig.ids.index.clone(),
        shopify_variants: rig.ids.shopify_variants.clone(),
        woo_items: rig.ids.woo_items.clone(),
    });
    let rate = spec.rate;
    let window = Duration::from_secs(spec.seconds);
    let warm_up_orders = (rate as f64 * WARM_UP.as_secs_f64()) as usize;
    let window_orders = (rate as f64 * window.as_secs_f64()) as usize;
    let total = warm_up_orders + window_orders + (rate as f64 * COOL_DOWN.as_secs_f64()) as usize;
    let start = Instant::now() + Duration::from_millis(100);
    let start_us = monotonic_us() + 100_000;
    let generator = {
        let ids = ids.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(0xbe4c_0000 + rate);
            let mut placed = Vec::with_capacity(total);
            for i in 0..total {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                placed.push(place(&stores, &ids, &mut rng));
            }
            placed
        })
    };
    let base = rig.server.base_url.clone();
    let window_start = start + WARM_UP;
    let window_start_us = start_us + WARM_UP.as_micros() as u64;
    let window_end_us = window_start_us + window.as_micros() as u64;
    tokio::time::sleep_until(window_start.into()).await;
    let pid = rig.server.child.id();
    let cpu_before = CpuSample::take(pid);
    let metrics_before = metrics(&rig.client, &base).await;
    tokio::time::sleep_until((window_start + window).into()).await;
    let cpu_after = CpuSample::take(pid);
    let metrics_after = metrics(&rig.client, &base).await;
    let placed = generator.await.expect("the order generator");
    let load_ended = Instant::now();

    // Drain: the webhooks delivered (WooCommerce's queue within a bound, then its webhook is
    // paused and what is left is reported), then every push done.
    for store in &rig.shopify {
        store.wait_for_deliveries(DRAIN_LIMIT).await;
    }
    if !rig.woo.wait_for_deliveries(DRAIN_LIMIT).await {
        for hook in rig.woo.webhooks() {
            let pause = woocommerce::WebhookUpdate {
                status: Some(woocommerce::WebhookStatus::Paused),
                ..woocommerce::WebhookUpdate::default()
            };
            let _ = rig.woo.update_webhook(hook.id, &pause);
        }
        rig.woo.wait_for_deliveries(DRAIN_LIMIT).await;
    }
    let drained = push_queue_drained(&rig.client, &base, DRAIN_LIMIT).await;
    let dead_pushes = call(
        &rig.client,
        reqwest::Method::GET,
        format!("{base}/v1/pushes?state=dead&limit=1000"),
        None,
    )
    .await
    .as_array()
    .map_or(0, Vec::len);
    let (ranks, archived_ms) = commit_order(&rig.client, &base).await;
    let drain_took = load_ended.elapsed();

    // Collect.
    let (door, door_unframed) = rig.door.take();
    let arrivals = arrivals(&door);
    let mut unframed = door_unframed;
    let (mut calls, mut whole_run_calls, mut shopify_pushes) = (Vec::new(), Vec::new(), Vec::new());
    let mut woo_accepted_quantities = Vec::new();
    for (i, tap) in rig.api_taps.iter().enumerate() {
        let (exchanges, lost) = tap.take();
        unframed += lost;
        let shopify = i < SHOPIFY_STORES;
        if let Ok(dump) = std::env::var("STOCKHUB_BENCH_DUMP") {
            dump_calls(
                Path::new(&dump),
                &format!(
                    "{}-{}-{}",
                    spec.rate,
                    spec.plan.name().split(' ').next().unwrap_or(""),
                    CHANNELS[i]
                ),
                &exchanges,
            );
        }
        calls.push(call_stats(
            shopify,
            &exchanges,
            window_start_us,
            window_end_us,
        ));
        whole_run_calls.push(call_stats(shopify, &exchanges, 0, u64::MAX));
        if shopify {
            shopify_pushes.push(push_windows(true, &exchanges));
        } else {
            woo_accepted_quantities = woo_accepted(&exchanges, &rig.ids);
        }
    }
    let logs = rig.display_logs();
    if let Ok(dump) = std::env::var("STOCKHUB_BENCH_DUMP") {
        dump_run(
            Path::new(&dump),
            &format!(
                "{}-{}",
                spec.rate,
                spec.plan.name().split(' ').next().unwrap_or("")
            ),
            &placed,
            &arrivals,
            &ranks,
            &rig,
            &logs,
        );
    }
    let analysis = analyse(&Observed {
        placed: &placed,
        arrivals: &arrivals,
        ranks: &ranks,
        logs: &logs,
        shopify_pushes: &shopify_pushes,
        woo_accepted: &woo_accepted_quantities,
        ids: &rig.ids,
        until_us: monotonic_us(),
    });
    if let Ok(dump) = std::env::var("STOCKHUB_BENCH_DUMP") {
        let mut out = String::from("order,latency_us,shop_a_us,shop_b_us,woo_us,contended\n");
        let show = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        for (k, t) in analysis.timings.iter().enumerate() {
            if let Some(t) = t {
                let _ = writeln!(
                    out,
                    "{k},{},{},{},{},{}",
                    show(t.latency_us),
                    show(t.per_channel_us[0]),
                    show(t.per_channel_us[1]),
                    show(t.per_channel_us[2]),
                    t.contended
                );
            }
        }
        let name = format!(
            "{}-{}-latency.csv",
            spec.rate,
            spec.plan.name().split(' ').next().unwrap_or("")
        );
        let _ = std::fs::write(Path::new(&dump).join(name), out);
    }
    let warnings = rig.server.warnings();
    // Door → archived (stockhub's write transaction) → answered, per origin channel.
    let mut handling: Vec<(Vec<u64>, Vec<u64>)> = vec![(Vec::new(), Vec::new()); CHANNELS.len()];
    for (k, p) in placed.iter().enumerate() {
        if !(warm_up_orders..warm_up_orders + window_orders).contains(&k) {
            continue;
        }
        let key = (p.channel, p.store_order_id);
        let (Some(&(arrived, Some(answered))), Some(&archived)) =
            (arrivals.get(&key), archived_ms.get(&key))
        else {
            continue;
        };
        let archived_us = clock_us as i64 + (archived - clock_unix_ms) * 1000;
        let archived_us = u64::try_from(archived_us).unwrap_or(0);
        handling[p.channel]
            .0
            .push(archived_us.saturating_sub(arrived));
        handling[p.channel]
            .1
            .push(answered.saturating_sub(archived_us));
    }
    for (before, after) in &mut handling {
        before.sort_unstable();
        after.sort_unstable();
    }
    let analysed_at = Instant::now();
    let window_orders_range = warm_up_orders..warm_up_orders + window_orders;
    let measured: Vec<OrderTiming> = analysis
        .timings
        .into_iter()
        .enumerate()
        .filter(|(i, _)| window_orders_range.contains(i))
        .filter_map(|(_, t)| t)
        .collect();
    let undelivered = window_orders - measured.len();
    let unpropagated = measured.iter().filter(|t| t.censored).count();
    let arrived_in_window = arrivals
        .values()
        .filter(|(at, _)| (window_start_us..window_end_us).contains(at))
        .count();
    let mut by_second = Vec::new();
    for s in 0..spec.seconds {
        let from = window_start_us + s * 1_000_000;
        let to = from + 1_000_000;
        let mut latencies: Vec<u64> = measured
            .iter()
            .filter(|t| (from..to).contains(&t.arrived_us))
            .filter_map(|t| t.latency_us)
            .collect();
        latencies.sort_unstable();
        by_second.push((
            arrivals
                .values()
                .filter(|(at, _)| (from..to).contains(at))
                .count(),
            percentile(&latencies, 0.99).map(|v| v as f64 / 1000.0),
        ));
    }
    let placed_in_window = placed
        .iter()
        .filter(|p| (window_start_us..window_end_us).contains(&p.placed_us))
        .count();
    rig.shutdown().await;
    let phases = [
        set_up_took,
        load_ended.duration_since(began),
        drain_took,
        analysed_at.duration_since(load_ended + drain_took),
    ];
    RunResult {
        spec,
        phases,
        handling,
        whole_run_calls,
        placed_in_window,
        arrived_in_window,
        measured,
        undelivered,
        unpropagated,
        window_seconds: window.as_secs_f64(),
        calls,
        stockhub: metrics_after.minus(&metrics_before),
        cpu_before,
        cpu_after,
        drained,
        dead_pushes,
        final_mismatches: analysis.final_mismatches,
        final_unchecked: analysis.final_unchecked,
        unframed,
        warnings,
        by_second,
    }
}

/// `STOCKHUB_BENCH_DUMP=<dir>`: every order's and display entry's times as CSV, for a closer look.
fn dump_run(
    dir: &Path,
    name: &str,
    placed: &[Placed],
    arrivals: &HashMap<(usize, u64), (u64, Option<u64>)>,
    ranks: &HashMap<(usize, u64), i64>,
    rig: &Rig,
    logs: &[Vec<DisplayEntry>],
) {
    let _ = std::fs::create_dir_all(dir);
    let mut out = String::from("order,channel,placed_us,arrived_us,answered_us,rank,skus\n");
    for (k, p) in placed.iter().enumerate() {
        let key = (p.channel, p.store_order_id);
        let arrival = arrivals.get(&key);
        let skus: Vec<String> = p.lines.iter().map(|(s, _)| s.to_string()).collect();
        let _ = writeln!(
            out,
            "{k},{},{},{},{},{},{}",
            p.channel,
            p.placed_us,
            arrival.map_or(String::new(), |a| a.0.to_string()),
            arrival
                .and_then(|a| a.1)
                .map_or(String::new(), |a| a.to_string()),
            ranks.get(&key).map_or(String::new(), i64::to_string),
            skus.join(" ")
        );
    }
    let _ = std::fs::write(dir.join(format!("{name}-orders.csv")), out);
    let mut out = String::from("channel,at_us,sku,after,cause\n");
    for (c, log) in logs.iter().enumerate() {
        for e in log {
            let sku = e
                .sku
                .as_ref()
                .and_then(|s| rig.ids.index.get(s))
                .map_or(String::new(), usize::to_string);
            let _ = writeln!(out, "{c},{},{sku},{},{:?}", e.at_us, e.after, e.cause);
        }
    }
    let _ = std::fs::write(dir.join(format!("{name}-display.csv")), out);
}

fn dump_calls(dir: &Path, name: &str, exchanges: &[Exchange]) {
    let _ = std::fs::create_dir_all(dir);
    let mut out =
        String::from("at_us,answered_us,status,throttled,bucket_left,stale,bytes,path,items\n");
    for e in exchanges {
        let items = count(&e.body, b"inventoryItemId") + count(&e.body, b"stock_quantity");
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{items}",
            e.at_us,
            e.answered_us.map_or(String::new(), |a| a.to_string()),
            e.status.map_or(String::new(), |s| s.to_string()),
            e.throttled,
            e.bucket_left.map_or(String::new(), |b| b.to_string()),
            e.stale,
            e.body.len(),
            e.path
        );
    }
    let _ = std::fs::write(dir.join(format!("{name}-calls.csv")), out);
}

fn call_stats(shopify: bool, exchanges: &[Exchange], from_us: u64, to_us: u64) -> CallStats {
    let mut stats = CallStats::default();
    for e in exchanges
        .iter()
        .filter(|e| (from_us..to_us).contains(&e.at_us))
    {
        stats.calls += 1;
        let duration = e.answered_us.map(|a| a.saturating_sub(e.at_us));
        let (push, items) = if shopify {
            let push = find(&e.body, b"inventorySetQuantities").is_some();
            (push, count(&e.body, b"inventoryItemId"))
        } else {
            let push = e.path.ends_with("/batch");
            (push, count(&e.body, b"stock_quantity"))
        };
        if push {
            stats.pushes += 1;
            if e.stale > 0 {
                stats.stale_pushes += 1;
            }
            stats.push_items += items as u64;
            stats.push_durations_us.extend(duration);
        } else {
            stats.reads += 1;
        }
        stats.durations_us.extend(duration);
        if e.throttled {
            stats.throttled += 1;
        }
        if let Some(left) = e.bucket_left {
            stats.bucket_low = Some(stats.bucket_low.map_or(left, |low: f64| low.min(left)));
            stats.bucket_last = Some(left);
            let at = e.answered_us.unwrap_or(e.at_us);
            stats.bucket_first_seen.get_or_insert((at, left));
            stats.bucket_last_seen = Some((at, left));
        }
        match e.status {
            Some(429) => stats.too_many += 1,
            Some(s) if !(200..300).contains(&s) => stats.failed += 1,
            _ => {}
        }
    }
    stats.durations_us.sort_unstable();
    stats.push_durations_us.sort_unstable();
    stats
}

// ---------------------------------------------------------------------------------------------
// From the logs to latencies.
//
// For an order k and one of its SKUs X, "the new quantity" a channel must take is stockhub's
// stock of X after k's commit: STOCK minus every unit of X in orders committed up to and
// including k. The commit order is the order of stockhub's inbound event ids (one writer, the
// archive insert is in the order's transaction), read back from `GET /v1/events` after the run;
// every time comes from the simulators' side.
//
// - WooCommerce sets quantities absolutely (no compare-and-set): k has reached it when a push
//   call containing X with a quantity no higher than that was answered 2xx (seen on the wire:
//   the display log only records changes, and such a push may change nothing when the store's
//   own sale already lowered it).
// - Shopify applies a push only if the quantity it shows is still the one stockhub last
//   confirmed, so k has reached it when its display log shows no more than that quantity minus
//   the store's own sales of X that stockhub had not committed before k (stockhub holds those
//   back, the `u` rule); the time is the answer to the push call that changed it.

struct Analysis {
    /// Per placed order, in placing order: its timing if its webhook reached stockhub and was
    /// committed.
    timings: Vec<Option<OrderTiming>>,
    /// (channel, SKU) whose last displayed quantity is not stockhub's.
    final_mismatches: usize,
    /// SKUs not checked: one of their orders never reached stockhub.
    final_unchecked: usize,
}

#[derive(serde::Deserialize)]
struct OrderId {
    id: u64,
}

fn is_creation(topic: Option<&str>) -> bool {
    matches!(topic, Some("orders/create" | "order.created"))
}

/// First arrival at the door (and its answer) of each order's creation webhook, by (channel,
/// store order id).
fn arrivals(door: &[Exchange]) -> HashMap<(usize, u64), (u64, Option<u64>)> {
    let mut arrivals = HashMap::new();
    for e in door {
        let Some(channel) = CHANNELS
            .iter()
            .position(|c| e.path == format!("/webhooks/{c}"))
        else {
            continue;
        };
        if !is_creation(e.topic.as_deref()) {
            continue;
        }
        let Ok(order) = serde_json::from_slice::<OrderId>(&e.body) else {
            continue;
        };
        arrivals
            .entry((channel, order.id))
            .or_insert((e.at_us, e.answered_us));
    }
    arrivals
}

/// stockhub's commit order of the orders' creation webhooks: (channel, store order id) → the
/// inbound event id of the delivery that applied it; and when stockhub archived it (Unix ms,
/// stamped in the write transaction).
async fn commit_order(
    client: &reqwest::Client,
    base: &str,
) -> (HashMap<(usize, u64), i64>, HashMap<(usize, u64), i64>) {
    let (mut ranks, mut archived) = (HashMap::new(), HashMap::new());
    let mut cursor: Option<i64> = None;
    loop {
        let url = match cursor {
            Some(c) => format!("{base}/v1/events?limit=1000&outcome=applied&cursor={c}"),
            None => format!("{base}/v1/events?limit=1000&outcome=applied"),
        };
        let page = call(client, reqwest::Method::GET, url, None).await;
        for item in page["items"].as_array().into_iter().flatten() {
            let Some(channel) = CHANNELS.iter().position(|c| item["channel"] == *c) else {
                continue;
            };
            if !is_creation(item["topic"].as_str()) {
                continue;
            }
            let (Some(id), Some(body)) = (item["id"].as_i64(), item["body"].as_str()) else {
                continue;
            };
            if let Ok(order) = serde_json::from_str::<OrderId>(body) {
                ranks.insert((channel, order.id), id);
                if let Some(at) = item["received_at_ms"].as_i64() {
                    archived.insert((channel, order.id), at);
                }
            }
        }
        match page["next_cursor"].as_i64() {
            Some(next) => cursor = Some(next),
            None => return (ranks, archived),
        }
    }
}

/// Push calls to one store seen on the wire: (sent, answered) of each, by when it was sent.
fn push_windows(shopify: bool, exchanges: &[Exchange]) -> Vec<(u64, u64)> {
    let mut windows: Vec<(u64, u64)> = exchanges
        .iter()
        .filter(|e| {
            if shopify {
                find(&e.body, b"inventorySetQuantities").is_some()
            } else {
                e.path.ends_with("/batch")
            }
        })
        .filter_map(|e| Some((e.at_us, e.answered_us?)))
        .collect();
    windows.sort_unstable();
    windows
}

/// Per SKU, the quantities WooCommerce accepted in 2xx-answered batch calls: (answered, quantity).
fn woo_accepted(exchanges: &[Exchange], ids: &CatalogIds) -> Vec<Vec<(u64, i64)>> {
    let by_item: HashMap<u64, usize> = ids
        .woo_items
        .iter()
        .enumerate()
        .map(|(s, (_, v))| (*v, s))
        .collect();
    let mut accepted = vec![Vec::new(); ids.skus.len()];
    for e in exchanges.iter().filter(|e| e.path.ends_with("/batch")) {
        let (Some(answered), Some(status)) = (e.answered_us, e.status) else {
            continue;
        };
        if !(200..300).contains(&status) {
            continue;
        }
        let Ok(body) = serde_json::from_slice::<Value>(&e.body) else {
            continue;
        };
        for item in body["update"].as_array().into_iter().flatten() {
            let (Some(id), Some(quantity)) = (item["id"].as_u64(), item["stock_quantity"].as_i64())
            else {
                continue;
            };
            if let Some(s) = by_item.get(&id) {
                accepted[*s].push((answered, quantity));
            }
        }
    }
    for list in &mut accepted {
        list.sort_unstable();
    }
    accepted
}

struct Observed<'a> {
    placed: &'a [Placed],
    arrivals: &'a HashMap<(usize, u64), (u64, Option<u64>)>,
    ranks: &'a HashMap<(usize, u64), i64>,
    logs: &'a [Vec<DisplayEntry>],
    /// Per Shopify store: its push calls.
    shopify_pushes: &'a [Vec<(u64, u64)>],
    /// Per SKU: what WooCommerce accepted.
    woo_accepted: &'a [Vec<(u64, i64)>],
    ids: &'a CatalogIds,
    /// When the logs were collected: the end of the observation.
    until_us: u64,
}

fn analyse(o: &Observed<'_>) -> Analysis {
    let placed = o.placed;
    let skus = o.ids.skus.len();
    // Per (channel, SKU): the displayed quantities over time.
    let mut shown: Vec<Vec<Vec<(u64, i64)>>> = vec![vec![Vec::new(); skus]; CHANNELS.len()];
    for (channel, log) in o.logs.iter().enumerate() {
        for entry in log {
            if entry.cause == Cause::Seed {
                continue;
            }
            if let Some(s) = entry.sku.as_ref().and_then(|s| o.ids.index.get(s)) {
                shown[channel][*s].push((entry.at_us, entry.after));
            }
        }
    }
    // WooCommerce: when it changed a quantity itself (its own sales), not set by a push.
    let mut woo_own_changes: Vec<Vec<u64>> = vec![Vec::new(); skus];
    for entry in &o.logs[SHOPIFY_STORES] {
        if matches!(entry.cause, Cause::Seed | Cause::Push) {
            continue;
        }
        if let Some(s) = entry.sku.as_ref().and_then(|s| o.ids.index.get(s)) {
            woo_own_changes[*s].push(entry.at_us);
        }
    }
    let key = |k: usize| (placed[k].channel, placed[k].store_order_id);
    let rank = |k: usize| o.ranks.get(&key(k)).copied();
    // Per SKU: (order index, units) of every line.
    let mut lines_of: Vec<Vec<(usize, i64)>> = vec![Vec::new(); skus];
    for (k, order) in placed.iter().enumerate() {
        for (s, q) in &order.lines {
            lines_of[*s].push((k, *q));
        }
    }
    let display_at = |channel: usize, s: usize, t: u64| -> i64 {
        let entries = &shown[channel][s];
        let n = entries.partition_point(|(at, _)| *at <= t);
        if n == 0 {
            STOCK
        } else {
            entries[n - 1].1
        }
    };
    // The answer to the Shopify push call during which the store changed a quantity at `t`.
    let acknowledged = |channel: usize, t: u64| -> u64 {
        let calls = &o.shopify_pushes[channel];
        let n = calls.partition_point(|(sent, _)| *sent <= t);
        calls[..n]
            .iter()
            .rev()
            .take(4)
            .find(|(_, answered)| *answered >= t)
            .map_or(t, |(_, answered)| *answered)
    };
    let mut timings = Vec::with_capacity(placed.len());
    for (k, order) in placed.iter().enumerate() {
        let (Some(&(arrived, answered)), Some(rank_k)) = (o.arrivals.get(&key(k)), rank(k)) else {
            timings.push(None);
            continue;
        };
        let mut per_channel: [Option<u64>; 3] = [Some(0); 3];
        per_channel[order.channel] = None;
        let (mut missing, mut contended) = (false, false);
        let mut per_channel_censored = [false; 3];
        for (s, _) in &order.lines {
            let committed: i64 = lines_of[*s]
                .iter()
                .filter(|(j, _)| rank(*j).is_some_and(|r| r <= rank_k))
                .map(|(_, q)| q)
                .sum();
            let expected = STOCK - committed;
            for (channel, slot) in per_channel.iter_mut().enumerate() {
                if channel == order.channel {
                    continue;
                }
                // The store's own sales stockhub had not committed before this order: it must
                // hold them back (the `u` rule) or the store would show units it already sold.
                let own: Vec<(u64, i64)> = lines_of[*s]
                    .iter()
                    .filter(|(j, _)| {
                        placed[*j].channel == channel && rank(*j).is_none_or(|r| r > rank_k)
                    })
                    .map(|(j, q)| (placed[*j].placed_us, *q))
                    .collect();
                let unheard = |t: u64| {
                    own.iter()
                        .filter(|(p, _)| *p <= t)
                        .map(|(_, q)| q)
                        .sum::<i64>()
                };
                let reached = if channel < SHOPIFY_STORES {
                    let candidates = std::iter::once(arrived).chain(
                        shown[channel][*s]
                            .iter()
                            .map(|(at, _)| *at)
                            .filter(|at| *at > arrived),
                    );
                    candidates
                        .into_iter()
                        .find(|t| display_at(channel, *s, *t) <= expected - unheard(*t))
                        .map(|t| {
                            contended |= unheard(t) > 0;
                            acknowledged(channel, t)
                        })
                } else {
                    // A batch call setting it, or the store showing it already: when the order
                    // arrives, or after a change the store made itself (a sale of its own that
                    // stockhub held back took the same unit) — a push setting what the store
                    // shows already is not written.
                    let written = o.woo_accepted[*s]
                        .iter()
                        .find(|(at, quantity)| {
                            *at >= arrived && *quantity <= expected - unheard(*at)
                        })
                        .map(|(at, _)| *at);
                    let shown_already = std::iter::once(arrived)
                        .chain(
                            woo_own_changes[*s]
                                .iter()
                                .copied()
                                .filter(|at| *at > arrived),
                        )
                        .find(|t| display_at(channel, *s, *t) <= expected - unheard(*t));
                    let first = match (written, shown_already) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    first.inspect(|t| contended |= unheard(*t) > 0)
                };
                match reached {
                    Some(t) => {
                        if let Some(v) = slot.as_mut() {
                            *v = (*v).max(t.saturating_sub(arrived));
                        }
                    }
                    None => {
                        missing = true;
                        per_channel_censored[channel] = true;
                        if let Some(v) = slot.as_mut() {
                            *v = (*v).max(o.until_us.saturating_sub(arrived));
                        }
                    }
                }
            }
        }
        let latency = Some(per_channel.iter().flatten().copied().max().unwrap_or(0));
        timings.push(Some(OrderTiming {
            channel: order.channel,
            lines: order.lines.len(),
            placed_us: order.placed_us,
            arrived_us: arrived,
            answered_us: answered,
            latency_us: latency,
            censored: missing,
            per_channel_censored,
            per_channel_us: per_channel,
            contended,
        }));
    }
    // After the drain, every channel should show stockhub's quantity of what it committed (a SKU
    // with an order stockhub never received is left out: its store shows that sale, rightly).
    let (mut final_mismatches, mut final_unchecked) = (0, 0);
    for (s, lines) in lines_of.iter().enumerate() {
        if lines.iter().any(|(j, _)| rank(*j).is_none()) {
            final_unchecked += 1;
            continue;
        }
        let committed: i64 = lines
            .iter()
            .filter(|(j, _)| rank(*j).is_some())
            .map(|(_, q)| q)
            .sum();
        for channel_shown in &shown {
            let last = channel_shown[s].last().map_or(STOCK, |(_, v)| *v);
            if last != STOCK - committed {
                final_mismatches += 1;
            }
        }
    }
    Analysis {
        timings,
        final_mismatches,
        final_unchecked,
    }
}

// ---------------------------------------------------------------------------------------------
// Output.

/// Quantiles of latencies, some of them lower bounds (`true`): printed with "≥".
struct Summary {
    p50: Option<(u64, bool)>,
    p99: Option<(u64, bool)>,
    max: Option<(u64, bool)>,
}

fn summary_marked(values: impl Iterator<Item = (u64, bool)>) -> Summary {
    let mut v: Vec<(u64, bool)> = values.collect();
    v.sort_unstable();
    let at = |p: f64| {
        if v.is_empty() {
            return None;
        }
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        Some(v[i])
    };
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        max: v.last().copied(),
    }
}

fn summary(values: impl Iterator<Item = u64>) -> Summary {
    summary_marked(values.map(|v| (v, false)))
}

fn ms_marked(value: Option<(u64, bool)>) -> String {
    match value {
        Some((v, true)) => format!("≥{}", ms(Some(v))),
        Some((v, false)) => ms(Some(v)),
        None => "-".to_owned(),
    }
}

impl RunResult {
    fn latency(&self) -> Summary {
        summary_marked(
            self.measured
                .iter()
                .filter_map(|t| t.latency_us.map(|l| (l, t.censored))),
        )
    }

    fn sim_calls(&self) -> u64 {
        self.calls.iter().map(|c| c.calls).sum()
    }

    fn calls_per_order(&self) -> f64 {
        self.sim_calls() as f64 / self.placed_in_window.max(1) as f64
    }

    fn stockhub_calls(&self) -> f64 {
        self.stockhub.sum("stockhub_channel_api_calls_total", &[])
    }

    fn label(&self) -> String {
        format!("{}/s {}", self.spec.rate, self.spec.plan.name())
    }

    fn throttled(&self) -> u64 {
        self.whole_run_calls
            .iter()
            .map(|c| c.throttled + c.too_many)
            .sum()
    }

    /// The lowest share of a Shopify store's GraphQL bucket left in the run: stockhub waits for
    /// points below 5 % (its reserve), so a low share means the plan's budget paced the pushes
    /// even without a single `THROTTLED` answer.
    fn lowest_bucket_share(&self) -> Option<f64> {
        let capacity = self.spec.plan.graphql().capacity;
        self.whole_run_calls
            .iter()
            .filter_map(|c| c.bucket_low)
            .map(|low| low / capacity)
            .min_by(f64::total_cmp)
    }
}

fn print_summary_table(results: &[RunResult]) {
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>11} {:>11} {:>12}",
        "rate, Shopify plan",
        "orders/s",
        "at door",
        "measured",
        "p50 ms",
        "p99 ms",
        "max ms",
        "calls/order",
        "(stockhub)",
        "hub p50/p99"
    );
    for r in results {
        let l = r.latency();
        println!(
            "{:<20} {:>8.0} {:>8.0} {:>8} {:>9} {:>9} {:>9} {:>11.3} {:>11.3} {:>12}",
            r.label(),
            r.placed_in_window as f64 / r.window_seconds,
            r.arrived_in_window as f64 / r.window_seconds,
            r.measured.len(),
            ms_marked(l.p50),
            ms_marked(l.p99),
            ms_marked(l.max),
            r.calls_per_order(),
            r.stockhub_calls() / r.placed_in_window.max(1) as f64,
            format!(
                "{}/{}",
                r.stockhub
                    .latency_bound_ms(0.5)
                    .unwrap_or_else(|| "-".into()),
                r.stockhub
                    .latency_bound_ms(0.99)
                    .unwrap_or_else(|| "-".into())
            ),
        );
    }
    for r in results {
        let by_store: Vec<String> = r
            .calls
            .iter()
            .zip(CHANNELS)
            .map(|(c, code)| {
                format!(
                    "{code} {:.3}",
                    c.calls as f64 / r.placed_in_window.max(1) as f64
                )
            })
            .collect();
        println!(
            "  {}: calls/order by store: {}",
            r.label(),
            by_store.join(", ")
        );
    }
    println!("  orders/s: placed on the stores; at door: order webhooks reaching stockhub per second; measured: window orders whose webhook reached stockhub (≥: some order's quantity had not reached every channel when the observation ended, so the figure is a lower bound)");
    println!("  p50/p99/max: order webhook at stockhub's door → every other channel's API has acknowledged the new quantity (simulators' side)");
    println!("  calls/order: HTTP requests stockhub made to the three stores' APIs during the window (seen on the wire), per order placed (by store: the same for each store's API); a WooCommerce store of variable products takes a call per product touched, as it sets variations only through each product's own endpoint;");
    println!("  (stockhub): its own stockhub_channel_api_calls_total; hub p50/p99: its stockhub_propagation_latency_ms histogram (bucket bounds, ms; per listing, from commit, origin channel included)");
}

fn print_details(r: &RunResult) {
    let mut out = String::new();
    let _ = writeln!(out, "--- {} ---", r.label());
    let _ = writeln!(
        out,
        "  orders placed in the {:.0} s window: {}, order webhooks at stockhub's door in it: {} ({} window orders never committed by the end, {} not acknowledged everywhere when the observation ended, counted as lower bounds); lines/order {:.2}",
        r.window_seconds,
        r.placed_in_window,
        r.arrived_in_window,
        r.undelivered,
        r.unpropagated,
        r.measured.iter().map(|t| t.lines).sum::<usize>() as f64
            / r.measured.len().max(1) as f64
    );
    let contended = r.measured.iter().filter(|t| t.contended).count();
    let clean = summary_marked(
        r.measured
            .iter()
            .filter(|t| !t.contended)
            .filter_map(|t| t.latency_us.map(|l| (l, t.censored))),
    );
    let _ = writeln!(
        out,
        "  {contended} orders reached some channel only together with that channel's own sale of the same SKU, not yet committed by stockhub and held back (the u rule); the others: p50 {} p99 {} max {} ms",
        ms_marked(clean.p50),
        ms_marked(clean.p99),
        ms_marked(clean.max)
    );
    for (c, name) in CHANNELS.iter().enumerate() {
        let to = summary_marked(
            r.measured
                .iter()
                .filter_map(|t| t.per_channel_us[c].map(|v| (v, t.per_channel_censored[c]))),
        );
        let from = r.measured.iter().filter(|t| t.channel == c);
        let lag = summary(
            from.clone()
                .map(|t| t.arrived_us.saturating_sub(t.placed_us)),
        );
        let ack = summary(
            from.clone()
                .filter_map(|t| t.answered_us.map(|a| a.saturating_sub(t.arrived_us))),
        );
        let _ = writeln!(
            out,
            "  {name:<7} as the other channel: p50 {} p99 {} max {} ms | its orders ({}): sale→webhook at door p50 {} p99 {} ms, door→stockhub's answer p50 {} p99 {} ms",
            ms_marked(to.p50),
            ms_marked(to.p99),
            ms_marked(to.max),
            from.count(),
            ms_marked(lag.p50),
            ms_marked(lag.p99),
            ms_marked(ack.p50),
            ms_marked(ack.p99),
        );
    }
    for (c, name) in CHANNELS.iter().enumerate() {
        let (before, after) = &r.handling[c];
        let _ = writeln!(
            out,
            "  {name:<7} webhook handling: door → archived in stockhub's write transaction p50 {} p99 {} ms, archived → answer p50 {} p99 {} ms",
            ms(percentile(before, 0.5)),
            ms(percentile(before, 0.99)),
            ms(percentile(after, 0.5)),
            ms(percentile(after, 0.99)),
        );
    }
    for (c, name) in CHANNELS.iter().enumerate() {
        let s = &r.calls[c];
        let p50 = percentile(&s.push_durations_us, 0.5);
        let p99 = percentile(&s.push_durations_us, 0.99);
        let _ = writeln!(
            out,
            "  {name:<7} API: {} calls ({:.1}/s): {} pushes of {:.1} items avg (push call p50 {} p99 {} ms){}, {} reads; THROTTLED {}, 429 {}, other errors {}; stockhub counted {} | whole run: {} calls, THROTTLED {}, 429 {}{}",
            s.calls,
            s.calls as f64 / r.window_seconds,
            s.pushes,
            s.push_items as f64 / s.pushes.max(1) as f64,
            ms(p50),
            ms(p99),
            if s.stale_pushes > 0 {
                format!(", {} of them refused for a stale compare-and-set", s.stale_pushes)
            } else {
                String::new()
            },
            s.reads,
            s.throttled,
            s.too_many,
            s.failed,
            r.stockhub
                .sum("stockhub_channel_api_calls_total", &[("channel", name)]),
            r.whole_run_calls[c].calls,
            r.whole_run_calls[c].throttled,
            r.whole_run_calls[c].too_many,
            match (s.bucket_low, s.bucket_last) {
                (Some(low), Some(last)) => {
                    let bucket = r.spec.plan.graphql();
                    let spent = match (s.bucket_first_seen, s.bucket_last_seen) {
                        (Some((t0, first)), Some((t1, last))) if t1 > t0 + 1_000_000 => format!(
                            ", spent {:.0} points/s against {:.0}/s restored",
                            bucket.per_second + (first - last) / ((t1 - t0) as f64 / 1e6),
                            bucket.per_second
                        ),
                        _ => String::new(),
                    };
                    format!(
                        " | GraphQL points left in the window: lowest {low:.0}, last {last:.0} of {:.0}{spent}",
                        bucket.capacity
                    )
                }
                _ => String::new(),
            }
        );
    }
    let pushed = r.stockhub.sum("stockhub_pushed_listings_total", &[]);
    let failures = r.stockhub.sum("stockhub_push_failures_total", &[]);
    let hooks = r.stockhub.sum("stockhub_webhooks_total", &[]);
    let applied = r
        .stockhub
        .sum("stockhub_webhooks_total", &[("outcome", "applied")]);
    let _ = writeln!(
        out,
        "  stockhub: {pushed:.0} listings pushed, {failures:.0} push failures, {hooks:.0} webhooks ({applied:.0} applied); push queue drained: {}; dead pushes: {}; channels matching stockhub at the end: {}",
        if r.drained { "yes" } else { "NO" },
        r.dead_pushes,
        match (r.final_mismatches, r.final_unchecked) {
            (0, 0) => "all".to_owned(),
            (0, unchecked) => format!("all ({unchecked} SKUs with a dropped webhook left out)"),
            (n, 0) => format!("{n} (channel, SKU) differ"),
            (n, unchecked) => format!(
                "{n} (channel, SKU) differ ({unchecked} SKUs with a dropped webhook left out)"
            ),
        }
    );
    let seconds = r.window_seconds;
    let server = (r.cpu_after.server - r.cpu_before.server) * 1000.0 / seconds;
    let bench = (r.cpu_after.bench - r.cpu_before.bench) * 1000.0 / seconds;
    let mut threads: Vec<(String, f64)> = r
        .cpu_after
        .server_threads
        .iter()
        .map(|(name, after)| {
            let before = r
                .cpu_before
                .server_threads
                .get(name)
                .copied()
                .unwrap_or(0.0);
            (name.clone(), (after - before) * 1000.0 / seconds)
        })
        .filter(|(_, v)| *v >= 5.0)
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    let threads: Vec<String> = threads.iter().map(|(n, v)| format!("{n} {v:.0}")).collect();
    let machine = (r.cpu_after.machine - r.cpu_before.machine) * 1000.0 / seconds;
    let _ = writeln!(
        out,
        "  CPU ms/s (2 cores = 2000): stockhub {server:.0} [{}], simulators+taps+load (this process) {bench:.0}, other processes on the machine {:.0}",
        threads.join(", "),
        (machine - server - bench).max(0.0)
    );
    let series: Vec<String> = r
        .by_second
        .iter()
        .map(|(n, p99)| match p99 {
            Some(p) => format!("{n}:{p:.0}"),
            None => format!("{n}:-"),
        })
        .collect();
    let _ = writeln!(
        out,
        "  by second of the window (order webhooks at the door: p99 ms of those orders): {}",
        series.join(" ")
    );
    if r.unframed > 0 {
        let _ = writeln!(
            out,
            "  note: {} tapped connections were not HTTP/1.1 with Content-Length and went unmeasured",
            r.unframed
        );
    }
    let _ = writeln!(
        out,
        "  run took: set-up {:.1} s, load {:.1} s, drain {:.1} s, collection {:.1} s",
        r.phases[0].as_secs_f64(),
        r.phases[1].as_secs_f64(),
        r.phases[2].as_secs_f64(),
        r.phases[3].as_secs_f64()
    );
    for (message, n) in r.warnings.iter().take(6) {
        let _ = writeln!(out, "  stockhub log ({n}×): {message}");
    }
    print!("{out}");
}

/// Sets up a rig per spec, all at once; numbered from `first + 1`.
async fn set_up(dir: &Path, specs: &[RunSpec], first: usize) -> Vec<(Rig, Duration)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, spec) in specs.iter().enumerate() {
        let run_dir = dir.join(format!("run-{}", first + i + 1));
        std::fs::create_dir_all(&run_dir).expect("run directory");
        let spec = spec.clone();
        tasks.spawn(async move {
            let began = Instant::now();
            let rig = Rig::start(&run_dir, &spec).await;
            (i, rig, began.elapsed())
        });
    }
    let mut rigs: Vec<(usize, Rig, Duration)> = tasks.join_all().await;
    rigs.sort_by_key(|(i, _, _)| *i);
    rigs.into_iter().map(|(_, rig, took)| (rig, took)).collect()
}

fn main() {
    let seconds = setting("STOCKHUB_BENCH_SECONDS", SECONDS_DEFAULT).max(1);
    let rates = rates();
    let raised = std::env::var("STOCKHUB_BENCH_RAISED").unwrap_or_else(|_| "auto".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let scratch: PathBuf = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(&scratch).expect("scratch directory");
    println!("stockhub propagation benchmark");
    println!(
        "  catalog: {PRODUCTS} products × {VARIANTS_PER_PRODUCT} variants = {} SKUs, {STOCK} units each in one location feeding every channel",
        PRODUCTS * VARIANTS_PER_PRODUCT
    );
    println!(
        "  channels: {} and {} (simulated Shopify, Standard plan throttles unless said), {} (simulated WooCommerce: webhooks through its Action Scheduler, {} ms after the sale, {} runner by default; the SKUs {})",
        CHANNELS[0],
        CHANNELS[1],
        CHANNELS[2],
        WooConfig::default().webhook_delivery_delay_ms,
        WooConfig::default().webhook_concurrency,
        match woo_products() {
            WooProducts::Variable => format!("as variations of {PRODUCTS} variable products, set through each product's own variations/batch endpoint (STOCKHUB_BENCH_WOO_PRODUCTS=simple: as simple products)"),
            WooProducts::Simple => format!("as {} simple products, set through products/batch (STOCKHUB_BENCH_WOO_PRODUCTS=simple)", PRODUCTS * VARIANTS_PER_PRODUCT),
        }
    );
    println!(
        "  from {HIGH_RATE} orders/s the WooCommerce store runs {HIGH_RATE_WOO_RUNNERS} Action Scheduler runners (WordPress filter action_scheduler_queue_runner_concurrent_batches): one runner sends one webhook at a time and falls behind the ~{} webhooks/s that store's third of the orders needs, so stockhub would not see the nominal rate; latency counts from arrival at stockhub either way",
        HIGH_RATE / 3
    );
    println!(
        "  load: open loop, orders of 1–3 lines of one unit (distinct SKUs), channel and SKUs uniform; per rate {} s warm-up, {seconds} s measured, {} s cool-down, then drain",
        WARM_UP.as_secs(),
        COOL_DOWN.as_secs()
    );
    println!("  latency measured end to end from the simulators' side (not from stockhub's /metrics): a tap in front of stockhub's port stamps each order webhook's arrival; the end is the last other channel's API acknowledging the new quantity (Shopify: the answer to the push its display log shows; WooCommerce: the 2xx answer to the batch call, seen by a tap in front of its API)");
    if let Some(tree) = source_tree() {
        println!("  source tree: {tree}");
    }
    println!(
        "  server binary {BINARY}; databases under {}",
        dir.path().display()
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("  load average before the runs: {}", load.join(" "));
    }
    println!();
    let mut results: Vec<RunResult> = Vec::new();
    let mut specs: Vec<RunSpec> = rates
        .iter()
        .map(|&rate| RunSpec {
            rate,
            plan: match raised.as_str() {
                "only" if rate == TARGET_RATE => Plan::Plus,
                _ => Plan::Standard,
            },
            woo_runners: woo_runners(rate),
            seconds,
        })
        .collect();
    if raised == "always" && rates.contains(&TARGET_RATE) {
        specs.push(RunSpec {
            rate: TARGET_RATE,
            plan: Plan::Plus,
            woo_runners: woo_runners(TARGET_RATE),
            seconds,
        });
    }
    // Every planned run's stockhub and stores are set up at once: discovery mostly waits for
    // the stores' rate limits, and each run then starts once its stores' buckets are full again.
    println!(
        "setting up {} runs at once (a stockhub and three stores each, every catalog discovered)…",
        specs.len()
    );
    let mut ready = runtime.block_on(set_up(dir.path(), &specs, 0));
    let mut n = specs.len();
    while let Some(spec) = (!specs.is_empty()).then(|| specs.remove(0)) {
        let (rig, set_up_took) = match ready.is_empty() {
            false => ready.remove(0),
            true => {
                n += 1;
                let mut rigs = runtime.block_on(set_up(dir.path(), std::slice::from_ref(&spec), n));
                rigs.remove(0)
            }
        };
        println!(
            "running {}/s at Shopify {} limits, {} WooCommerce webhook runner(s)…",
            spec.rate,
            spec.plan.name(),
            spec.woo_runners
        );
        let result = runtime.block_on(run(rig, spec, set_up_took));
        print_details(&result);
        let missed = result
            .latency()
            .p99
            .is_none_or(|(p, _)| p as f64 / 1000.0 >= TARGET_P99_MS);
        if raised == "auto"
            && result.spec.rate == TARGET_RATE
            && result.spec.plan == Plan::Standard
            && missed
            && (result.throttled() > 0
                || result
                    .lowest_bucket_share()
                    .is_some_and(|share| share < PLAN_BOUND_SHARE))
        {
            println!(
                "  → the Standard plan's budget bound stockhub ({} throttled answers, lowest GraphQL bucket {:.0} %): running {TARGET_RATE}/s again with the simulated Shopify stores at Plus limits (GraphQL 20,000 points, 1,000/s; REST 400 calls, 20/s), to separate stockhub's own latency from the plan's budget",
                result.throttled(),
                result.lowest_bucket_share().unwrap_or(1.0) * 100.0
            );
            specs.push(RunSpec {
                rate: TARGET_RATE,
                plan: Plan::Plus,
                woo_runners: woo_runners(TARGET_RATE),
                seconds,
            });
        }
        results.push(result);
        println!();
    }
    print_summary_table(&results);
    println!();
    for r in results.iter().filter(|r| r.spec.rate == TARGET_RATE) {
        let p99 = r.latency().p99;
        let met = p99.is_some_and(|(p, censored)| !censored && (p as f64 / 1000.0) < TARGET_P99_MS);
        println!(
            "target p99 < {TARGET_P99_MS:.0} ms at {TARGET_RATE} orders/s ({} plan{}): p99 {} ms: {}",
            r.spec.plan.name(),
            if r.spec.plan == Plan::Plus {
                ", limits raised for this run only"
            } else {
                ""
            },
            ms_marked(p99),
            if met { "met" } else { "NOT met" }
        );
    }
}
