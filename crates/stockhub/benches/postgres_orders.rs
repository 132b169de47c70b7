//! Order-line throughput on PostgreSQL (issue 4, "A benchmark"): order lines committed per
//! second through the HTTP API with one `stockhub serve` process and with three on the same
//! database, and, in the same run, the physical limit of this machine: the same SQL transaction
//! as an order line's core (a conditional `UPDATE` of a stock level and a ledger `INSERT`) driven
//! directly by a raw client, one operation per transaction and 100 per transaction, with
//! synchronous commit.
//!
//! The catalogue is 10,000 SKUs in 2 locations with plenty of stock and 4 manual channels; orders
//! have 1–3 lines from the 4 channels; `STOCKHUB_BENCH_CLIENTS` (default 64) concurrent clients
//! run for `STOCKHUB_BENCH_SECONDS` (default 10) after a 1 s warm-up, spread round-robin over the
//! processes. The raw client runs at 1 connection and at the same concurrency.
//!
//! The server is `STOCKHUB_BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each run creates and drops a database of its
//! own on it. Run with `cargo bench -p stockhub --bench postgres_orders`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use stockhub_testkit::ServerProcess;

const BINARY: &str = env!("CARGO_BIN_EXE_stockhub");
const SKUS: usize = 10_000;
const LOCATIONS: [&str; 2] = ["east", "west"];
const CHANNELS: [&str; 4] = ["web", "amazon", "ebay", "pos"];
const STOCK_PER_LEVEL: i64 = 1_000_000;
const WARM_UP: Duration = Duration::from_secs(1);
const DATABASE: &str = "stockhub_bench_orders";

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |raw| {
        raw.parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {raw:?}"))
    })
}

fn server_url() -> String {
    std::env::var("STOCKHUB_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The URL of the benchmark's own database on the same server.
fn database_url() -> String {
    let url = server_url();
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
    format!("{base}/{DATABASE}")
}

fn fresh_database() {
    let mut admin = Client::connect(&server_url(), NoTls).expect("connect to PostgreSQL");
    // Separate statements: CREATE DATABASE may not share an implicit transaction.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        .expect("drop the last run's database");
    admin
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .expect("create the benchmark database");
}

fn sku(i: usize) -> String {
    format!("SKU-{i:05}")
}

fn order_body(rng: &mut StdRng, external_id: String) -> (Value, usize) {
    let count = rng.random_range(1..=3);
    let mut skus: Vec<usize> = Vec::with_capacity(count);
    while skus.len() < count {
        let s = rng.random_range(0..SKUS);
        if !skus.contains(&s) {
            skus.push(s);
        }
    }
    let lines: Vec<Value> = skus
        .iter()
        .enumerate()
        .map(|(i, s)| json!({ "line_id": format!("line-{i}"), "sku": sku(*s), "quantity": rng.random_range(1..=2) }))
        .collect();
    let channel = CHANNELS[rng.random_range(0..CHANNELS.len())];
    (
        json!({ "channel": channel, "external_id": external_id, "lines": lines }),
        count,
    )
}

async fn call(client: &reqwest::Client, method: reqwest::Method, url: String, body: Value) {
    let response = client
        .request(method, &url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status();
    assert!(
        status.is_success(),
        "{url}: {status} {}",
        response.text().await.unwrap_or_default()
    );
}

async fn set_up(client: &reqwest::Client, base: &str) {
    use reqwest::Method;
    for location in LOCATIONS {
        call(
            client,
            Method::PUT,
            format!("{base}/v1/locations/{location}"),
            json!({}),
        )
        .await;
    }
    let variants: Vec<Value> = (0..SKUS).map(|i| json!({ "sku": sku(i) })).collect();
    call(
        client,
        Method::POST,
        format!("{base}/v1/variants/batch"),
        json!({ "variants": variants }),
    )
    .await;
    let receives: Vec<Value> = (0..SKUS)
        .flat_map(|i| LOCATIONS.map(|l| json!({ "kind": "receive", "sku": sku(i), "location": l, "quantity": STOCK_PER_LEVEL })))
        .collect();
    for chunk in receives.chunks(5_000) {
        call(
            client,
            Method::POST,
            format!("{base}/v1/stock/movements"),
            json!({ "movements": chunk }),
        )
        .await;
    }
    for (i, channel) in CHANNELS.iter().enumerate() {
        let mut feeding = LOCATIONS.to_vec();
        if i % 2 == 1 {
            feeding.reverse();
        }
        call(
            client,
            Method::PUT,
            format!("{base}/v1/channels/{channel}"),
            json!({ "kind": "manual", "feeding_locations": feeding }),
        )
        .await;
    }
}

#[derive(Default)]
struct Tally {
    orders: u64,
    lines: u64,
    failures: u64,
    latencies_us: Vec<u64>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Orders over HTTP from `clients` clients spread over the processes; lines per second.
async fn run_http(bases: &[String], clients: usize, seconds: u64, label: &str) -> f64 {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client");
    let start = Instant::now() + WARM_UP;
    let end = start + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..clients {
        let url = format!("{}/v1/orders", bases[id % bases.len()]);
        let client = client.clone();
        let label = label.to_owned();
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(0xbe9c_0000 + id as u64);
            let mut tally = Tally::default();
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let (body, lines) = order_body(&mut rng, format!("{label}-{id}-{n}"));
                let began = Instant::now();
                let ok = match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if began >= start && Instant::now() <= end {
                    if ok {
                        tally.orders += 1;
                        tally.lines += lines as u64;
                        tally.latencies_us.push(began.elapsed().as_micros() as u64);
                    } else {
                        tally.failures += 1;
                    }
                }
            }
            tally
        });
    }
    let mut all = Tally::default();
    while let Some(t) = tasks.join_next().await {
        let t = t.expect("client task");
        all.orders += t.orders;
        all.lines += t.lines;
        all.failures += t.failures;
        all.latencies_us.extend(t.latencies_us);
    }
    all.latencies_us.sort_unstable();
    let lines_per_s = all.lines as f64 / seconds as f64;
    println!(
        "{label:<28} {:>9.0} lines/s {:>8.0} orders/s   p50 {:>6.1} ms  p99 {:>6.1} ms  failures {}",
        lines_per_s,
        all.orders as f64 / seconds as f64,
        percentile(&all.latencies_us, 0.50),
        percentile(&all.latencies_us, 0.99),
        all.failures
    );
    lines_per_s
}

/// The core of an order line as raw SQL — a conditional level update and a ledger insert — in
/// transactions of `per_transaction` operations from `connections` connections; operations/s.
fn run_raw(connections: usize, per_transaction: usize, seconds: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + WARM_UP;
    let end = start + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&database_url(), NoTls).expect("connect");
                let update = client
                    .prepare(
                        "UPDATE stock_levels SET committed = committed + 1
                         WHERE sku = $1 AND location = $2 AND committed + 1 <= on_hand
                         RETURNING on_hand, committed",
                    )
                    .expect("prepare");
                let insert = client
                    .prepare(
                        "INSERT INTO ledger (at, kind, sku, location, delta_on_hand, delta_committed,
                             on_hand_after, committed_after, source, correlation_id)
                         VALUES ($1, 'order_committed', $2, $3, 0, 1, $4, $5, 'bench', 'raw')",
                    )
                    .expect("prepare");
                let mut rng = StdRng::seed_from_u64(0x0aa0 + c as u64);
                while Instant::now() < end {
                    // Rows in (SKU, location) order, as stockhub takes them, so that concurrent
                    // transactions never deadlock.
                    let mut rows: Vec<(String, &str)> = (0..per_transaction)
                        .map(|_| (sku(rng.random_range(0..SKUS)), LOCATIONS[rng.random_range(0..2)]))
                        .collect();
                    rows.sort();
                    let mut tx = client.transaction().expect("begin");
                    for (s, l) in &rows {
                        let row = tx.query_one(&update, &[s, l]).expect("update");
                        let (on_hand, committed): (i64, i64) = (row.get(0), row.get(1));
                        let at = i64::try_from(std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis()))
                            .unwrap_or(0);
                        tx.execute(&insert, &[&at, s, l, &on_hand, &committed]).expect("insert");
                    }
                    tx.commit().expect("commit");
                    let now = Instant::now();
                    if now >= start && now <= end {
                        done.fetch_add(per_transaction as u64, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("raw client thread");
    }
    let per_s = done.load(Ordering::Relaxed) as f64 / seconds as f64;
    println!(
        "raw SQL, {connections:>2} connection(s), {per_transaction:>3} op(s)/tx {:>9.0} ops/s {:>8.0} commits/s",
        per_s,
        per_s / per_transaction as f64
    );
    per_s
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds = setting("STOCKHUB_BENCH_SECONDS", 10);
    let clients = setting("STOCKHUB_BENCH_CLIENTS", 64) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "PostgreSQL order-line throughput: {SKUS} SKUs x {} locations, {clients} clients, {seconds} s per run (+{} s warm-up), synchronous commit",
        LOCATIONS.len(),
        WARM_UP.as_secs()
    );
    fresh_database();
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = database_url();
    let (one, three) = runtime.block_on(async {
        let first = ServerProcess::start(BINARY, &url, dir.path(), "serve-0").await;
        let client = reqwest::Client::new();
        set_up(&client, &first.base_url).await;
        let one = run_http(
            std::slice::from_ref(&first.base_url),
            clients,
            seconds,
            "HTTP, 1 process",
        )
        .await;
        let mut bases = vec![first.base_url.clone()];
        let mut others = Vec::new();
        for i in 1..3 {
            let server =
                ServerProcess::start(BINARY, &url, dir.path(), &format!("serve-{i}")).await;
            bases.push(server.base_url.clone());
            others.push(server);
        }
        let three = run_http(&bases, clients, seconds, "HTTP, 3 processes").await;
        drop(others);
        drop(first);
        (one, three)
    });
    for i in 0..3 {
        let log =
            std::fs::read_to_string(dir.path().join(format!("serve-{i}.log"))).unwrap_or_default();
        let problems: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .collect();
        if !problems.is_empty() {
            println!(
                "serve-{i} logged {} warnings or errors, the first: {}",
                problems.len(),
                problems[0]
            );
        }
    }
    let raw_one = run_raw(1, 1, seconds);
    let raw_same = run_raw(clients, 1, seconds);
    let raw_batched = run_raw(8, 100, seconds);
    println!();
    println!(
        "stockhub, 1 process: {:.2}x the raw single-operation rate at {clients} connections ({:.2}x at 1); 3 processes: {:.2}x 1 process; raw at 100 ops/tx: {:.0} ops/s",
        one / raw_same,
        one / raw_one,
        three / one,
        raw_batched
    );
    let mut admin = Client::connect(&server_url(), NoTls).expect("connect to PostgreSQL");
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"));
}
