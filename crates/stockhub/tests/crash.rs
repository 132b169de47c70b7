//! Crash test (issue 2, "Crash test"; issue 4 on PostgreSQL): a real `stockhub serve` child
//! receives a stream of writes from several concurrent clients and is killed with SIGKILL at a
//! random moment, again and again, on the same database. After every restart each write that was
//! acknowledged (a 2xx received) must still be there, `stockhub verify` must find the projections
//! equal to the ledger, and the live connection must report power-loss-safe settings (SQLite: WAL
//! with `synchronous=FULL`; PostgreSQL: `synchronous_commit` and `fsync` on), since SIGKILL alone
//! cannot lose what the OS page cache holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use stockhub_testkit::{ServerProcess, TestBackend};

const BINARY: &str = env!("CARGO_BIN_EXE_stockhub");
/// Kills of the server, each at a random moment of a write stream.
const ROUNDS: usize = 24;
/// Concurrent clients writing during a round.
const WRITERS: usize = 6;
/// Most writes one client attempts in one round (the kill normally comes much sooner).
const WRITES_PER_CLIENT_MAX: usize = 400;
/// The kill comes this many milliseconds into the stream.
const KILL_AFTER_MS: std::ops::Range<u64> = 20..300;
const SKUS: usize = 12;
const LOCATIONS: [&str; 2] = ["east", "west"];
const CHANNELS: [&str; 2] = ["web", "pos"];

/// An order as acknowledged: channel, external id, and its lines (line id, SKU, quantity).
#[derive(Debug, Clone)]
struct AckedOrder {
    channel: String,
    external_id: String,
    lines: Vec<(String, String, i64)>,
}

/// What one client did in one round.
#[derive(Debug, Default)]
struct ClientLog {
    /// Units of receives sent per SKU, acknowledged or not.
    received_attempted: HashMap<String, i64>,
    /// Each acknowledged receive, as the exact movement item that was sent.
    receives_acked: Vec<Value>,
    orders_acked: Vec<AckedOrder>,
    /// Answers that were neither 2xx nor a broken connection.
    unexpected: Vec<String>,
    /// Writes sent whose answer never came: in flight when the server was killed.
    cut_off: usize,
}

/// Everything acknowledged since the start, across every round.
#[derive(Debug, Default)]
struct Acked {
    received_attempted: HashMap<String, i64>,
    received_acked: HashMap<String, i64>,
    receives: Vec<Value>,
    orders: Vec<AckedOrder>,
}

impl Acked {
    fn absorb(&mut self, log: ClientLog) {
        for (sku, units) in log.received_attempted {
            *self.received_attempted.entry(sku).or_default() += units;
        }
        for item in &log.receives_acked {
            let sku = item["sku"].as_str().expect("sku").to_owned();
            *self.received_acked.entry(sku).or_default() +=
                item["quantity"].as_i64().expect("quantity");
        }
        self.receives.extend(log.receives_acked);
        self.orders.extend(log.orders_acked);
    }
}

fn sku(i: usize) -> String {
    format!("CR-{i:02}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: &Value,
) -> (u16, Value) {
    let response = client
        .request(method, url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request to the live server");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let response = client
        .get(url)
        .send()
        .await
        .expect("request to the live server");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Locations, variants and channels the stream writes against.
async fn set_up_catalog(client: &reqwest::Client, base: &str) {
    for location in LOCATIONS {
        let (status, body) = send(
            client,
            reqwest::Method::PUT,
            format!("{base}/v1/locations/{location}"),
            &json!({}),
        )
        .await;
        assert_eq!(status, 200, "PUT location: {body}");
    }
    for i in 0..SKUS {
        let (status, body) = send(
            client,
            reqwest::Method::PUT,
            format!("{base}/v1/variants/{}", sku(i)),
            &json!({}),
        )
        .await;
        assert_eq!(status, 200, "PUT variant: {body}");
    }
    for channel in CHANNELS {
        let body = json!({ "kind": "manual", "feeding_locations": LOCATIONS });
        let (status, body) = send(
            client,
            reqwest::Method::PUT,
            format!("{base}/v1/channels/{channel}"),
            &body,
        )
        .await;
        assert_eq!(status, 200, "PUT channel: {body}");
    }
}

/// One client's stream of receives and orders, until told to stop or the server goes away.
async fn write_stream(
    client: reqwest::Client,
    base: String,
    round: usize,
    writer: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> ClientLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = ClientLog::default();
    for n in 0..WRITES_PER_CLIENT_MAX {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let request = if rng.random_bool(0.5) {
            let item = json!({
                "kind": "receive",
                "sku": sku(rng.random_range(0..SKUS)),
                "location": LOCATIONS[rng.random_range(0..LOCATIONS.len())],
                "quantity": rng.random_range(1..=5),
                "idempotency_key": format!("crash-r{round}-w{writer}-n{n}"),
            });
            *log.received_attempted
                .entry(item["sku"].as_str().unwrap_or_default().to_owned())
                .or_default() += item["quantity"].as_i64().unwrap_or(0);
            let body = json!({ "movements": [item.clone()] });
            (format!("{base}/v1/stock/movements"), body, Ok(item))
        } else {
            let order = AckedOrder {
                channel: CHANNELS[rng.random_range(0..CHANNELS.len())].to_owned(),
                external_id: format!("crash-o{round}-w{writer}-n{n}"),
                lines: (0..rng.random_range(1..=3))
                    .map(|l| {
                        (
                            format!("l{l}"),
                            sku(rng.random_range(0..SKUS)),
                            rng.random_range(1..=3),
                        )
                    })
                    .collect(),
            };
            let lines: Vec<Value> = order
                .lines
                .iter()
                .map(|(id, sku, q)| json!({ "line_id": id, "sku": sku, "quantity": q }))
                .collect();
            let body = json!({ "channel": order.channel, "external_id": order.external_id, "lines": lines });
            (format!("{base}/v1/orders"), body, Err(order))
        };
        let (url, body, write) = request;
        let answer = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        // No answer at all: the server died with this write in flight; it may or may not be kept.
        let Ok(response) = answer else {
            log.cut_off += 1;
            break;
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            log.unexpected.push(format!("{status}: {text}"));
            continue;
        }
        // Only a complete answer counts as an acknowledgement.
        let Ok(answer) = response.json::<Value>().await else {
            log.cut_off += 1;
            break;
        };
        match write {
            Ok(item) => {
                assert_eq!(
                    answer["results"][0]["status"], "applied",
                    "a fresh receive: {answer}"
                );
                log.receives_acked.push(item);
            }
            Err(order) => log.orders_acked.push(order),
        }
    }
    log
}

/// The live connection runs WAL with `synchronous=FULL`.
async fn assert_power_loss_safe(client: &reqwest::Client, base: &str) {
    let (status, storage) = get(client, format!("{base}/v1/system/storage")).await;
    assert_eq!(status, 200, "{storage}");
    let durability = &storage["durability"];
    match stockhub_testkit::current_backend() {
        TestBackend::Sqlite => {
            assert_eq!(durability["journal_mode"], "wal", "{storage}");
            assert_eq!(durability["synchronous"], "full", "{storage}");
        }
        TestBackend::Postgres => {
            assert_eq!(durability["synchronous_commit"], "on", "{storage}");
            assert_eq!(durability["fsync"], "on", "{storage}");
        }
    }
}

/// Every acknowledged write is present after the restart.
async fn assert_acknowledged_present(
    client: &reqwest::Client,
    base: &str,
    acked: &Acked,
    round: usize,
) {
    // Receives only ever add on_hand: what was acknowledged is the floor, what was sent the ceiling.
    for i in 0..SKUS {
        let sku = sku(i);
        let (status, view) = get(client, format!("{base}/v1/stock/{sku}")).await;
        assert_eq!(status, 200, "{view}");
        let on_hand: i64 = view["levels"]
            .as_array()
            .expect("levels")
            .iter()
            .map(|l| l["on_hand"].as_i64().expect("on_hand"))
            .sum();
        let floor = acked.received_acked.get(&sku).copied().unwrap_or(0);
        let ceiling = acked.received_attempted.get(&sku).copied().unwrap_or(0);
        assert!(floor <= on_hand && on_hand <= ceiling, "after kill {round}, {sku} has on_hand {on_hand}; acknowledged receives add up to {floor}, all receives sent to {ceiling}");
    }
    // Each acknowledged receive, sent again with its key and body, must come back `replayed`.
    if !acked.receives.is_empty() {
        let body = json!({ "movements": acked.receives });
        let (status, answer) = send(
            client,
            reqwest::Method::POST,
            format!("{base}/v1/stock/movements"),
            &body,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let results = answer["results"].as_array().expect("results");
        assert_eq!(results.len(), acked.receives.len());
        for (item, result) in acked.receives.iter().zip(results) {
            assert_eq!(
                result["status"], "replayed",
                "after kill {round}, the acknowledged receive {item} was lost"
            );
        }
    }
    // Each acknowledged order exists with every line and its quantity.
    let mut checks = tokio::task::JoinSet::new();
    for chunk in acked.orders.chunks(acked.orders.len().div_ceil(8).max(1)) {
        let (client, base, chunk) = (client.clone(), base.to_owned(), chunk.to_vec());
        checks.spawn(async move {
            for order in chunk {
                let (status, view) = get(
                    &client,
                    format!("{base}/v1/orders/{}/{}", order.channel, order.external_id),
                )
                .await;
                assert_eq!(
                    status, 200,
                    "after kill {round}, the acknowledged order {order:?} is missing: {view}"
                );
                let lines = view["lines"].as_array().expect("lines");
                assert_eq!(lines.len(), order.lines.len(), "{order:?}: {view}");
                for (line_id, sku, quantity) in &order.lines {
                    let line = lines
                        .iter()
                        .find(|l| l["line_id"] == line_id.as_str())
                        .unwrap_or_else(|| panic!("{order:?} lost line {line_id}: {view}"));
                    assert_eq!(line["sku"], sku.as_str(), "{view}");
                    assert_eq!(line["ordered"].as_i64(), Some(*quantity), "{view}");
                }
            }
        });
    }
    while let Some(done) = checks.join_next().await {
        done.expect("order check");
    }
}

/// Runs one stream of writes and kills the server at a random moment in it.
async fn stream_then_kill(server: ServerProcess, round: usize, rng: &mut StdRng) -> Vec<ClientLog> {
    let client = client();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let seed = rng.random();
        writers.spawn(write_stream(
            client.clone(),
            server.base_url.clone(),
            round,
            writer,
            seed,
            stop.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(rng.random_range(KILL_AFTER_MS))).await;
    server.kill().await;
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::with_capacity(WRITERS);
    while let Some(log) = writers.join_next().await {
        logs.push(log.expect("writer task"));
    }
    logs
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_verify_passes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let database = stockhub_testkit::fresh_database("crash");
    let db = database.url.as_str();
    let seed: u64 = rand::random();
    println!("crash test seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut acked = Acked::default();
    let mut unexpected = Vec::new();
    let mut cut_off = 0;
    for round in 0..=ROUNDS {
        let server = ServerProcess::start(BINARY, db, dir.path(), &format!("round-{round}")).await;
        let client = client();
        if round == 0 {
            set_up_catalog(&client, &server.base_url).await;
        }
        assert_power_loss_safe(&client, &server.base_url).await;
        assert_acknowledged_present(&client, &server.base_url, &acked, round).await;
        stockhub_testkit::assert_verify_passes(BINARY, db, &format!("after kill {round}")).await;
        if round == ROUNDS {
            server.kill().await;
            break;
        }
        for log in stream_then_kill(server, round, &mut rng).await {
            unexpected.extend(log.unexpected.iter().cloned());
            cut_off += log.cut_off;
            acked.absorb(log);
        }
    }
    assert!(
        unexpected.is_empty(),
        "writes refused while the server was up: {unexpected:?}"
    );
    assert!(
        !acked.receives.is_empty() && !acked.orders.is_empty(),
        "the stream acknowledged no receive or no order in {ROUNDS} rounds"
    );
    println!(
        "{ROUNDS} kills survived: {} receives and {} orders acknowledged, all present; \
         {cut_off} writes were in flight at a kill",
        acked.receives.len(),
        acked.orders.len()
    );
}
}
