//! Several `stockhub serve` processes on one PostgreSQL database (issue 4, "cross-process
//! concurrency"): correctness comes from the database, never from a lock inside one process.
//! Runs only where the PostgreSQL half of the suite runs (see `stockhub_store::testing`).

use std::sync::Arc;

use serde_json::{json, Value};
use stockhub_testkit::{ServerProcess, TestBackend};

const BINARY: &str = env!("CARGO_BIN_EXE_stockhub");
const PROCESSES: usize = 3;

async fn send(client: &reqwest::Client, method: &str, url: String, body: Value) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let reply = client
        .request(method, url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request sent");
    let status = reply.status().as_u16();
    let body = reply.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Sends every request at once, request `i` to process `i % PROCESSES`.
async fn spread(
    client: &reqwest::Client,
    servers: &[ServerProcess],
    requests: Vec<(&'static str, String, Value)>,
) -> Vec<(u16, Value)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (method, path, body)) in requests.into_iter().enumerate() {
        let url = format!("{}{path}", servers[i % servers.len()].base_url);
        let client = client.clone();
        tasks.spawn(async move { (i, send(&client, method, url, body).await) });
    }
    let mut replies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        replies.push(done.expect("request task"));
    }
    replies.sort_by_key(|(i, _)| *i);
    replies.into_iter().map(|(_, r)| r).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_reserve_and_sell_exactly_what_exists() {
    if !stockhub_testkit::postgres_runs() {
        return;
    }
    let db = stockhub_store::testing::test_database(TestBackend::Postgres, "cluster")
        .expect("a PostgreSQL schema");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut servers = Vec::new();
    for i in 0..PROCESSES {
        servers
            .push(ServerProcess::start(BINARY, &db.url, dir.path(), &format!("serve-{i}")).await);
    }
    let servers = Arc::new(servers);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let first = &servers[0].base_url;
    for (path, body) in [
        ("/v1/locations/wh-1", json!({})),
        ("/v1/variants/HOLD", json!({})),
        ("/v1/variants/SELL", json!({})),
        ("/v1/channels/web", json!({ "kind": "manual" })),
        ("/v1/channels/shop", json!({ "kind": "manual" })),
    ] {
        let (status, reply) = send(&client, "PUT", format!("{first}{path}"), body).await;
        assert!(status < 300, "{path}: {status} {reply}");
    }
    let (status, reply) = send(
        &client,
        "POST",
        format!("{first}/v1/stock/movements"),
        json!({ "movements": [
            { "kind": "receive", "sku": "HOLD", "location": "wh-1", "quantity": 100 },
            { "kind": "receive", "sku": "SELL", "location": "wh-1", "quantity": 100 },
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");

    // 300 one-unit reservations, spread over the three processes, against 100 units.
    let reservations = (0..300)
        .map(|_| {
            (
                "POST",
                "/v1/reservations".to_owned(),
                json!({ "channel": "web", "sku": "HOLD", "quantity": 1, "expires_in_seconds": 3600 }),
            )
        })
        .collect();
    let replies = spread(&client, &servers, reservations).await;
    let granted = replies.iter().filter(|(s, _)| *s == 201).count();
    let refused = replies
        .iter()
        .filter(|(s, b)| {
            *s == 409
                && b["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("insufficient-stock"))
        })
        .count();
    assert_eq!(granted, 100, "exactly 100 reservations succeed");
    assert_eq!(
        refused, 200,
        "the rest are refused for lack of stock: {replies:?}"
    );

    // 300 one-unit channel orders, spread over the three processes, against 100 units.
    let orders = (0..300)
        .map(|i| {
            (
                "POST",
                "/v1/orders".to_owned(),
                json!({ "channel": "shop", "external_id": format!("C-{i}"), "version": 1,
                        "lines": [{ "line_id": "1", "sku": "SELL", "quantity": 1 }] }),
            )
        })
        .collect();
    let replies = spread(&client, &servers, orders).await;
    let (mut committed, mut short) = (0, 0);
    for (status, body) in &replies {
        assert_eq!(*status, 200, "an order is never refused: {body}");
        let line = &body["order"]["lines"][0];
        committed += line["committed"].as_i64().expect("committed");
        short += line["short"].as_i64().expect("short");
    }
    assert_eq!((committed, short), (100, 200));

    for (sku, committed) in [("HOLD", 100), ("SELL", 100)] {
        for server in servers.iter() {
            let (status, stock) = send(
                &client,
                "GET",
                format!("{}/v1/stock/{sku}", server.base_url),
                Value::Null,
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(stock["levels"][0]["on_hand"], 100, "{stock}");
            assert_eq!(stock["levels"][0]["committed"], committed, "{stock}");
        }
    }
    stockhub_testkit::assert_verify_passes(BINARY, &db.url, "after the orders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotency_key_in_progress_in_one_process_is_in_progress_in_the_others() {
    if !stockhub_testkit::postgres_runs() {
        return;
    }
    let db = stockhub_store::testing::test_database(TestBackend::Postgres, "cluster-idem")
        .expect("a PostgreSQL schema");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut servers = Vec::new();
    for i in 0..2 {
        servers.push(ServerProcess::start(BINARY, &db.url, dir.path(), &format!("idem-{i}")).await);
    }
    let client = reqwest::Client::new();
    let first = servers[0].base_url.clone();
    for (path, body) in [
        ("/v1/locations/wh-1", json!({})),
        ("/v1/variants/CAP", json!({})),
    ] {
        let (status, reply) = send(&client, "PUT", format!("{first}{path}"), body).await;
        assert!(status < 300, "{path}: {status} {reply}");
    }
    const ITEMS: usize = 2_000;
    let body = json!({ "movements": (0..ITEMS)
        .map(|_| json!({ "kind": "receive", "sku": "CAP", "location": "wh-1", "quantity": 1 }))
        .collect::<Vec<_>>() });
    let mut attempts = 0;
    let mut in_progress_seen = 0;
    while attempts < 5 && in_progress_seen == 0 {
        attempts += 1;
        let key = format!("cluster-{attempts}");
        let mut tasks = tokio::task::JoinSet::new();
        // The original to one process; copies to the other, a moment later.
        for (i, delay_ms) in [(0usize, 0u64), (1, 30), (1, 60), (1, 90)] {
            let (client, url, body, key) = (
                client.clone(),
                format!("{}/v1/stock/movements", servers[i].base_url),
                body.to_string(),
                key.clone(),
            );
            tasks.spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                let reply = client
                    .post(url)
                    .header("content-type", "application/json")
                    .header("idempotency-key", key)
                    .body(body)
                    .send()
                    .await
                    .expect("request sent");
                let replayed = reply.headers().contains_key("idempotent-replayed");
                let status = reply.status().as_u16();
                let body: Value = reply.json().await.unwrap_or(Value::Null);
                (status, replayed, body)
            });
        }
        let (mut applied, mut replays, mut in_progress) = (0, 0, 0);
        while let Some(done) = tasks.join_next().await {
            let (status, replayed, body) = done.expect("task");
            match (status, replayed) {
                (200, false) => applied += 1,
                (200, true) => replays += 1,
                (409, _) => {
                    assert!(
                        body["type"]
                            .as_str()
                            .is_some_and(|t| t.ends_with("idempotency-in-progress")),
                        "{body}"
                    );
                    in_progress += 1;
                }
                _ => panic!("unexpected answer to a copy: {status} {body}"),
            }
        }
        assert_eq!(
            applied, 1,
            "exactly one copy is applied (attempt {attempts})"
        );
        assert_eq!(replays + in_progress, 3);
        in_progress_seen += in_progress;
    }
    assert!(
        in_progress_seen > 0,
        "no copy met the original in flight in {attempts} attempts"
    );
    let (_, stock) = send(&client, "GET", format!("{first}/v1/stock/CAP"), Value::Null).await;
    assert_eq!(
        stock["levels"][0]["on_hand"],
        (attempts * ITEMS) as i64,
        "{stock}"
    );
}
