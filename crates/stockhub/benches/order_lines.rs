//! Order-line throughput (issue 2, "A benchmark"): how many order lines per second stockhub
//! commits durably, and what group commit buys.
//!
//! Three runs over the same catalogue (10,000 SKUs in 2 locations with plenty of stock, 4 manual
//! channels) and the same mix (orders of 1–3 lines from the 4 channels), each driven by 64
//! concurrent clients for `STOCKHUB_BENCH_SECONDS` (default 10) after a 1 s warm-up:
//!
//! 1. over HTTP: `POST /v1/orders` against a `stockhub serve` child (the release binary when run
//!    by `cargo bench`) on SQLite in WAL mode with `synchronous=FULL`;
//! 2. in-process, one transaction per operation: the same unit of work
//!    (`engine::orders::apply_snapshot`) through a store opened with `group_max = 1`;
//! 3. in-process with the default group commit.
//!
//! Each run reports orders and lines per second, p50/p99 latency, and stockhub's own count of
//! commits against operations. Run with `cargo bench -p stockhub --bench order_lines`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use stockhub_core::{ChannelRules, Code, OrderStatus, Quantity, Sku};
use stockhub_store::engine::{catalog, movements, orders};
use stockhub_store::model::{
    ChannelInput, Ctx, LocationInput, Movement, MovementItem, OrderSnapshot, SnapshotLine,
    VariantInput,
};
use stockhub_store::StoreOptions;
use stockhub_store::{CommitStats, Store, SystemClock};

const BINARY: &str = env!("CARGO_BIN_EXE_stockhub");
const SKUS: usize = 10_000;
const LOCATIONS: [&str; 2] = ["east", "west"];
const CHANNELS: [&str; 4] = ["web", "amazon", "ebay", "pos"];
/// Units received per SKU and location: far more than any run sells.
const STOCK_PER_LEVEL: i64 = 1_000_000;
const WARM_UP: Duration = Duration::from_secs(1);
const CLIENTS_DEFAULT: usize = 64;
const SECONDS_DEFAULT: u64 = 10;

fn setting(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(raw) => raw
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {raw:?}")),
        Err(_) => default,
    }
}

fn sku(i: usize) -> String {
    format!("SKU-{i:05}")
}

/// One generated order: its channel, external id and lines (line id, SKU, quantity).
struct GeneratedOrder {
    channel: &'static str,
    external_id: String,
    lines: Vec<(String, String, i64)>,
}

impl GeneratedOrder {
    /// 1–3 lines of distinct SKUs, 1–2 units each, from one of the channels.
    fn random(rng: &mut StdRng, external_id: String) -> Self {
        let count = rng.random_range(1..=3);
        let mut skus: Vec<usize> = Vec::with_capacity(count);
        while skus.len() < count {
            let s = rng.random_range(0..SKUS);
            if !skus.contains(&s) {
                skus.push(s);
            }
        }
        Self {
            channel: CHANNELS[rng.random_range(0..CHANNELS.len())],
            external_id,
            lines: skus
                .into_iter()
                .enumerate()
                .map(|(i, s)| (format!("line-{i}"), sku(s), rng.random_range(1..=2)))
                .collect(),
        }
    }

    /// The `POST /v1/orders` body.
    fn body(&self) -> Value {
        let lines: Vec<Value> = self
            .lines
            .iter()
            .map(|(id, sku, q)| json!({ "line_id": id, "sku": sku, "quantity": q }))
            .collect();
        json!({ "channel": self.channel, "external_id": self.external_id, "lines": lines })
    }

    /// The snapshot the HTTP layer would build from `body()`.
    fn snapshot(&self) -> OrderSnapshot {
        OrderSnapshot {
            channel: Code::parse("channel", self.channel).expect("channel code"),
            external_id: self.external_id.clone(),
            version: None,
            status: OrderStatus::Open,
            lines: self
                .lines
                .iter()
                .map(|(id, sku, q)| SnapshotLine {
                    fulfilment: None,
                    line_id: id.clone(),
                    channel_sku: sku.clone(),
                    quantity: *q,
                })
                .collect(),
            raw: self.body().to_string(),
        }
    }
}

/// What one client measured inside the window.
#[derive(Default)]
struct ClientTally {
    orders: u64,
    lines: u64,
    latencies_us: Vec<u32>,
    failures: u64,
}

/// The measuring window shared by every client of a run.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn after_warm_up(seconds: u64) -> Self {
        let start = Instant::now() + WARM_UP;
        Self {
            start,
            end: start + Duration::from_secs(seconds),
        }
    }

    /// Counts a finished operation if it finished inside the window.
    fn tally(&self, t: &mut ClientTally, began: Instant, lines: usize, ok: bool) {
        let done = Instant::now();
        if done < self.start || done > self.end {
            return;
        }
        if !ok {
            t.failures += 1;
            return;
        }
        t.orders += 1;
        t.lines += lines as u64;
        t.latencies_us
            .push(u32::try_from(done.duration_since(began).as_micros()).unwrap_or(u32::MAX));
    }

    async fn sleep_until_start(&self) {
        tokio::time::sleep_until(self.start.into()).await;
    }

    async fn sleep_until_end(&self) {
        tokio::time::sleep_until(self.end.into()).await;
    }
}

/// One row of the results table.
struct RunResult {
    name: &'static str,
    seconds: f64,
    orders: u64,
    lines: u64,
    failures: u64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    commits: CommitStats,
    cpu: Option<CpuUse>,
}

impl RunResult {
    fn from_tallies(
        name: &'static str,
        window: Window,
        tallies: Vec<ClientTally>,
        commits: CommitStats,
    ) -> Self {
        let mut latencies: Vec<u32> = Vec::new();
        let (mut orders, mut lines, mut failures) = (0, 0, 0);
        for t in tallies {
            orders += t.orders;
            lines += t.lines;
            failures += t.failures;
            latencies.extend(t.latencies_us);
        }
        latencies.sort_unstable();
        let percentile = |p: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
            f64::from(latencies[i]) / 1000.0
        };
        Self {
            name,
            seconds: window.end.duration_since(window.start).as_secs_f64(),
            orders,
            lines,
            failures,
            latency_ms_p50: percentile(0.50),
            latency_ms_p99: percentile(0.99),
            commits,
            cpu: None,
        }
    }

    fn lines_per_second(&self) -> f64 {
        self.lines as f64 / self.seconds
    }
}

fn difference(after: CommitStats, before: CommitStats) -> CommitStats {
    CommitStats {
        commits: after.commits - before.commits,
        operations: after.operations - before.operations,
    }
}

// ---------------------------------------------------------------------------------------------
// Where the two cores went, from /proc (Linux): the server process, this process (the load
// generator, plus the store for the in-process runs) and the store's writer thread, whose
// time per order bounds the throughput since it commits every write.

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) from a /proc `stat` file.
fn cpu_seconds(stat_path: &Path) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the parenthesised command name: state is the 3rd field, utime the 14th.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / TICKS_PER_SECOND)
}

/// CPU seconds of every `sqlite-writer` thread of a process.
fn writer_cpu_seconds(process: &str) -> Option<f64> {
    let mut total = None;
    for task in std::fs::read_dir(format!("/proc/{process}/task"))
        .ok()?
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "sqlite-writer" {
            *total.get_or_insert(0.0) += cpu_seconds(&task.path().join("stat")).unwrap_or(0.0);
        }
    }
    total
}

#[derive(Clone, Copy)]
struct CpuSample {
    server: Option<f64>,
    this_process: f64,
    writer: f64,
}

impl CpuSample {
    /// `server`: the server's process id, or `None` when the store runs in this process.
    fn take(server: Option<u32>) -> Option<Self> {
        let writer_process = server.map_or_else(|| "self".to_owned(), |pid| pid.to_string());
        Some(Self {
            server: match server {
                Some(pid) => Some(cpu_seconds(Path::new(&format!("/proc/{pid}/stat")))?),
                None => None,
            },
            this_process: cpu_seconds(Path::new("/proc/self/stat"))?,
            writer: writer_cpu_seconds(&writer_process)?,
        })
    }
}

/// CPU used during a run's window.
#[derive(Clone, Copy)]
struct CpuUse {
    server_ms_per_s: Option<f64>,
    this_process_ms_per_s: f64,
    writer_busy: f64,
    writer_us_per_order: f64,
}

impl CpuUse {
    fn between(
        before: Option<CpuSample>,
        after: Option<CpuSample>,
        result: &RunResult,
    ) -> Option<Self> {
        let (before, after) = (before?, after?);
        let per_second = |a: f64, b: f64| (a - b) * 1000.0 / result.seconds;
        Some(Self {
            server_ms_per_s: after
                .server
                .zip(before.server)
                .map(|(a, b)| per_second(a, b)),
            this_process_ms_per_s: per_second(after.this_process, before.this_process),
            writer_busy: (after.writer - before.writer) / result.seconds,
            writer_us_per_order: (after.writer - before.writer) * 1e6 / result.orders.max(1) as f64,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Over HTTP, against a `stockhub serve` child.

/// A `stockhub serve` child, killed when dropped.
struct Server {
    child: Child,
    base_url: String,
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
        };
        for _ in 0..3000 {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(url) = text
                .lines()
                .find_map(|l| l.strip_prefix("stockhub listening on "))
                .and_then(|rest| rest.split_whitespace().next())
            {
                server.base_url = url.to_owned();
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "stockhub serve exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("stockhub serve did not announce its address within 30 s");
    }
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

async fn set_up_over_http(client: &reqwest::Client, base: &str) {
    use reqwest::Method;
    for location in LOCATIONS {
        call(
            client,
            Method::PUT,
            format!("{base}/v1/locations/{location}"),
            Some(&json!({})),
        )
        .await;
    }
    let variants: Vec<Value> = (0..SKUS).map(|i| json!({ "sku": sku(i) })).collect();
    call(
        client,
        Method::POST,
        format!("{base}/v1/variants/batch"),
        Some(&json!({ "variants": variants })),
    )
    .await;
    let receives: Vec<Value> = (0..SKUS)
        .flat_map(|i| {
            LOCATIONS.map(|l| json!({ "kind": "receive", "sku": sku(i), "location": l, "quantity": STOCK_PER_LEVEL }))
        })
        .collect();
    call(
        client,
        Method::POST,
        format!("{base}/v1/stock/movements"),
        Some(&json!({ "movements": receives })),
    )
    .await;
    for (i, channel) in CHANNELS.iter().enumerate() {
        // Half the channels prefer the other location, so both locations sell.
        let mut feeding = LOCATIONS.to_vec();
        if i % 2 == 1 {
            feeding.reverse();
        }
        let body = json!({ "kind": "manual", "feeding_locations": feeding });
        call(
            client,
            Method::PUT,
            format!("{base}/v1/channels/{channel}"),
            Some(&body),
        )
        .await;
    }
}

async fn http_client_loop(
    client: reqwest::Client,
    url: String,
    id: usize,
    window: Window,
) -> ClientTally {
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + id as u64);
    let mut tally = ClientTally::default();
    let mut n = 0u64;
    while Instant::now() < window.end {
        n += 1;
        let order = GeneratedOrder::random(&mut rng, format!("http-{id}-{n}"));
        let body = serde_json::to_vec(&order.body()).expect("serialize order");
        let began = Instant::now();
        let answer = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let ok = match answer {
            Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
            Err(_) => false,
        };
        window.tally(&mut tally, began, order.lines.len(), ok);
    }
    tally
}

struct HttpRun {
    result: RunResult,
    durability: Value,
}

async fn run_http(dir: &Path, clients: usize, seconds: u64) -> HttpRun {
    let server = Server::start(dir);
    let base = server.base_url.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    call(
        &client,
        reqwest::Method::GET,
        format!("{base}/healthz"),
        None,
    )
    .await;
    set_up_over_http(&client, &base).await;
    let storage_url = format!("{base}/v1/system/storage");
    let durability =
        call(&client, reqwest::Method::GET, storage_url.clone(), None).await["durability"].clone();
    let commits = |v: Value| -> CommitStats {
        CommitStats {
            commits: v["commits"]["commits"].as_u64().expect("commits"),
            operations: v["commits"]["operations"].as_u64().expect("operations"),
        }
    };
    let window = Window::after_warm_up(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..clients {
        tasks.spawn(http_client_loop(
            client.clone(),
            format!("{base}/v1/orders"),
            id,
            window,
        ));
    }
    let server_pid = Some(server.child.id());
    window.sleep_until_start().await;
    let cpu_before = CpuSample::take(server_pid);
    let before = commits(call(&client, reqwest::Method::GET, storage_url.clone(), None).await);
    window.sleep_until_end().await;
    let cpu_after = CpuSample::take(server_pid);
    let after = commits(call(&client, reqwest::Method::GET, storage_url, None).await);
    let tallies = tasks.join_all().await;
    drop(server);
    let mut result = RunResult::from_tallies(
        "HTTP POST /v1/orders, group commit",
        window,
        tallies,
        difference(after, before),
    );
    result.cpu = CpuUse::between(cpu_before, cpu_after, &result);
    HttpRun { result, durability }
}

// ---------------------------------------------------------------------------------------------
// In-process, the same unit of work through the store, without HTTP.

fn set_up_in_process(store: &Store) {
    store
        .write_blocking(|sql| {
            for l in LOCATIONS {
                let code = Code::parse("location", l).expect("location code");
                catalog::upsert_location(
                    sql,
                    &LocationInput {
                        name: l.to_owned(),
                        code,
                    },
                )?;
            }
            for i in 0..SKUS {
                let input = VariantInput {
                    sku: Sku::parse(&sku(i)).expect("sku"),
                    product_id: None,
                    title: None,
                    option_values: json!({}),
                    barcode: None,
                    buffer: 0,
                    kit: None,
                };
                catalog::upsert_variant(sql, &ctx("set-up"), &input)?;
            }
            let items: Vec<MovementItem> = (0..SKUS)
                .flat_map(|i| {
                    LOCATIONS.map(|l| MovementItem {
                        movement: Movement::Receive {
                            sku: Sku::parse(&sku(i)).expect("sku"),
                            location: Code::parse("location", l).expect("location code"),
                            quantity: Quantity::parse(STOCK_PER_LEVEL).expect("quantity"),
                        },
                        note: None,
                        idempotency: None,
                    })
                })
                .collect();
            movements::apply_batch(sql, &ctx("setup"), &items)?;
            for (i, channel) in CHANNELS.iter().enumerate() {
                let mut feeding: Vec<Code> = LOCATIONS
                    .iter()
                    .map(|l| Code::parse("location", l).expect("location code"))
                    .collect();
                if i % 2 == 1 {
                    feeding.reverse();
                }
                let input = ChannelInput {
                    code: Code::parse("channel", channel).expect("channel code"),
                    kind: "manual".into(),
                    rules: ChannelRules::default(),
                    feeding_locations: Some(feeding),
                };
                catalog::upsert_channel(sql, &input)?;
            }
            Ok(())
        })
        .expect("set up the catalogue");
}

/// What the HTTP layer stamps on an anonymous API write.
fn ctx(correlation_id: &str) -> Ctx {
    Ctx {
        source: "api:anonymous".into(),
        correlation_id: correlation_id.to_owned(),
        idempotency_key: None,
    }
}

async fn store_client_loop(store: Store, id: usize, window: Window) -> ClientTally {
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + id as u64);
    let mut tally = ClientTally::default();
    let mut n = 0u64;
    while Instant::now() < window.end {
        n += 1;
        let order = GeneratedOrder::random(&mut rng, format!("store-{id}-{n}"));
        let lines = order.lines.len();
        let began = Instant::now();
        let context = ctx(&format!("req-{id}-{n}"));
        let snapshot = order.snapshot();
        let done = store
            .write(move |sql| {
                orders::apply_snapshot(sql, &context, &snapshot).map(|o| serde_json::to_value(&o))
            })
            .await;
        window.tally(&mut tally, began, lines, matches!(done, Ok(Ok(_))));
    }
    tally
}

async fn run_in_process(
    name: &'static str,
    path: &Path,
    group_max: usize,
    clients: usize,
    seconds: u64,
) -> RunResult {
    let options = StoreOptions {
        group_max,
        ..StoreOptions::default()
    };
    let store = stockhub_store::open(
        path.to_str().expect("utf-8 path"),
        Arc::new(SystemClock),
        &options,
    )
    .expect("open the store");
    let setup = store.clone();
    tokio::task::spawn_blocking(move || set_up_in_process(&setup))
        .await
        .expect("set-up task");
    let window = Window::after_warm_up(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..clients {
        tasks.spawn(store_client_loop(store.clone(), id, window));
    }
    window.sleep_until_start().await;
    let cpu_before = CpuSample::take(None);
    let before = store.stats();
    window.sleep_until_end().await;
    let cpu_after = CpuSample::take(None);
    let after = store.stats();
    let tallies = tasks.join_all().await;
    let mut result = RunResult::from_tallies(name, window, tallies, difference(after, before));
    result.cpu = CpuUse::between(cpu_before, cpu_after, &result);
    result
}

// ---------------------------------------------------------------------------------------------

fn print_table(rows: &[&RunResult]) {
    println!(
        "{:<38} {:>9} {:>10} {:>8} {:>8} {:>9} {:>10} {:>9} {:>6}",
        "run",
        "orders/s",
        "lines/s",
        "p50 ms",
        "p99 ms",
        "commits",
        "operations",
        "ops/commit",
        "errors"
    );
    for r in rows {
        let per_commit = if r.commits.commits == 0 {
            0.0
        } else {
            r.commits.operations as f64 / r.commits.commits as f64
        };
        println!(
            "{:<38} {:>9.0} {:>10.0} {:>8.2} {:>8.2} {:>9} {:>10} {:>9.1} {:>6}",
            r.name,
            r.orders as f64 / r.seconds,
            r.lines_per_second(),
            r.latency_ms_p50,
            r.latency_ms_p99,
            r.commits.commits,
            r.commits.operations,
            per_commit,
            r.failures
        );
    }
}

fn print_cpu_table(rows: &[&RunResult]) {
    println!(
        "{:<38} {:>16} {:>16} {:>12} {:>16}",
        "CPU during the run", "server ms/s", "this process ms/s", "writer busy", "writer us/order"
    );
    for r in rows {
        let Some(cpu) = r.cpu else { continue };
        let server = cpu
            .server_ms_per_s
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
        println!(
            "{:<38} {:>16} {:>16.0} {:>11.0}% {:>16.0}",
            r.name,
            server,
            cpu.this_process_ms_per_s,
            cpu.writer_busy * 100.0,
            cpu.writer_us_per_order
        );
    }
    println!("  (2 cores = 2000 ms/s; the writer thread commits every write, so its time per order bounds throughput)");
}

fn main() {
    let seconds = setting("STOCKHUB_BENCH_SECONDS", SECONDS_DEFAULT).max(1);
    let clients = setting("STOCKHUB_BENCH_CLIENTS", CLIENTS_DEFAULT as u64).max(1) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The target directory is on the same disk as a real deployment's data, unlike a tmpfs /tmp.
    let scratch: PathBuf = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(&scratch).expect("scratch directory");
    println!("stockhub order-lines benchmark");
    println!(
        "  {clients} concurrent clients, {seconds} s per run after {} s warm-up; {SKUS} SKUs in {} locations, \
         {} channels, orders of 1–3 lines",
        WARM_UP.as_secs(),
        LOCATIONS.len(),
        CHANNELS.len()
    );
    println!("  server binary {BINARY}");
    println!("  databases under {}", dir.path().display());
    // Other work on this machine shares the two cores with the server and the load generator.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("  load average before the runs: {}", load.join(" "));
    }
    let http_dir = dir.path().join("http");
    std::fs::create_dir_all(&http_dir).expect("create the server's directory");
    let http = runtime.block_on(run_http(&http_dir, clients, seconds));
    println!(
        "  durability read back from the live server: journal_mode={} synchronous={}",
        http.durability["journal_mode"].as_str().unwrap_or("?"),
        http.durability["synchronous"].as_str().unwrap_or("?")
    );
    let single = runtime.block_on(run_in_process(
        "in-process, one transaction per order",
        &dir.path().join("single.db"),
        1,
        clients,
        seconds,
    ));
    let grouped = runtime.block_on(run_in_process(
        "in-process, group commit",
        &dir.path().join("grouped.db"),
        StoreOptions::default().group_max,
        clients,
        seconds,
    ));
    println!();
    print_table(&[&http.result, &single, &grouped]);
    println!();
    print_cpu_table(&[&http.result, &single, &grouped]);
    println!();
    let ratio = http.result.lines_per_second() / single.lines_per_second().max(f64::MIN_POSITIVE);
    println!(
        "HTTP order lines/s: {:.0} (target at least 10,000): {}",
        http.result.lines_per_second(),
        if http.result.lines_per_second() >= 10_000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "HTTP group commit against one transaction per order: {ratio:.2}x (target at least 2x): {}",
        if ratio >= 2.0 { "met" } else { "NOT met" }
    );
    let in_process = grouped.lines_per_second() / single.lines_per_second().max(f64::MIN_POSITIVE);
    println!("in-process group commit against one transaction per order: {in_process:.2}x");
}
