//! Concurrency over HTTP against a running server (issue 2, acceptance): concurrent reservations
//! never over-commit, concurrent channel orders commit exactly what exists and record the rest
//! as oversold, and multi-line and kit orders in opposite SKU orders finish without deadlock or
//! drift between the ledger and its projections.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use stockhub_store::engine::verify::verify;
use stockhub_testkit::{spawn_app, Reply, TestApp};
use tokio::task::JoinSet;

/// A deadlock guard only: every test here finishes in a few seconds.
const DEADLOCK_GUARD: Duration = Duration::from_secs(120);

#[track_caller]
fn assert_ok(reply: &Reply) {
    assert!(
        (200..300).contains(&reply.status),
        "expected success, got {reply:#?}"
    );
}

async fn put(app: &TestApp, path: &str, body: Value) {
    assert_ok(&app.put(path, &body).await);
}

async fn receive(app: &TestApp, sku: &str, location: &str, quantity: i64) {
    let body = json!({ "movements": [{ "kind": "receive", "sku": sku, "location": location, "quantity": quantity }] });
    assert_ok(&app.post("/v1/stock/movements", &body).await);
}

/// Every ledger entry matching `query`, read in pages of `page` entries.
async fn ledger(app: &TestApp, query: &str, page: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let mut path = format!("/v1/ledger?limit={page}&{query}");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let reply = app.get(&path).await;
        assert_eq!(reply.status, 200, "{reply:#?}");
        let entries = reply.body["entries"].as_array().expect("entries");
        assert!(entries.len() <= page);
        out.extend(entries.iter().cloned());
        match reply.body["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Runs every request at once (each on its own task) and returns the answers in request order.
async fn all_at_once(
    app: &Arc<TestApp>,
    requests: Vec<(&'static str, String, Option<Value>)>,
) -> Vec<Reply> {
    let mut tasks = JoinSet::new();
    for (i, (method, path, body)) in requests.into_iter().enumerate() {
        let app = app.clone();
        tasks.spawn(async move { (i, app.request(method, &path, body.as_ref(), &[]).await) });
    }
    let mut replies: Vec<Option<Reply>> = Vec::new();
    replies.resize_with(tasks.len(), || None);
    while let Some(done) = tasks.join_next().await {
        let (i, reply) = done.expect("request task");
        replies[i] = Some(reply);
    }
    replies
        .into_iter()
        .map(|r| r.expect("every answer"))
        .collect()
}

/// The store's own check: every projection rebuilt from the ledger equals the stored one.
async fn assert_verified(app: &TestApp) {
    let report = app.store.read(verify).await.expect("verify runs");
    assert!(report.ledger_entries > 0);
    assert!(
        report.differences.is_empty(),
        "projections drifted from the ledger: {:#?}",
        report.differences
    );
}

/// Every level of every SKU: `0 ≤ committed ≤ on_hand`. Returns them by (SKU, location).
async fn assert_levels_sane(
    app: &TestApp,
    skus: &[&str],
) -> BTreeMap<(String, String), (i64, i64)> {
    let mut levels = BTreeMap::new();
    for sku in skus {
        let stock = app.get(&format!("/v1/stock/{sku}")).await;
        assert_eq!(stock.status, 200, "{stock:#?}");
        for level in stock.body["levels"].as_array().expect("levels") {
            let on_hand = level["on_hand"].as_i64().expect("on_hand");
            let committed = level["committed"].as_i64().expect("committed");
            assert!(
                0 <= committed && committed <= on_hand,
                "{sku} at {}: on_hand {on_hand}, committed {committed}",
                level["location"]
            );
            levels.insert(
                (
                    (*sku).to_owned(),
                    level["location"].as_str().expect("location").to_owned(),
                ),
                (on_hand, committed),
            );
        }
        for channel in stock.body["channels"].as_array().expect("channels") {
            assert!(channel["available"].as_i64().expect("available") >= 0);
            assert!(channel["pool"].as_i64().expect("pool") >= 0);
        }
    }
    levels
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_reservations_against_fifty_units() {
    let app = Arc::new(spawn_app().await);
    put(&app, "/v1/locations/wh-1", json!({})).await;
    put(&app, "/v1/variants/HOT", json!({})).await;
    put(&app, "/v1/channels/web", json!({ "kind": "manual" })).await;
    receive(&app, "HOT", "wh-1", 50).await;

    let requests = (0..200)
        .map(|_| {
            (
                "POST",
                "/v1/reservations".to_owned(),
                Some(json!({ "channel": "web", "sku": "HOT", "quantity": 1 })),
            )
        })
        .collect();
    let replies = tokio::time::timeout(DEADLOCK_GUARD, all_at_once(&app, requests))
        .await
        .expect("no deadlock");

    let mut ids = BTreeSet::new();
    let mut refused = 0;
    for reply in &replies {
        match reply.status {
            201 => {
                assert_eq!(reply.body["status"], "active");
                assert!(
                    ids.insert(reply.body["id"].as_i64().expect("id")),
                    "each reservation is its own"
                );
            }
            409 => {
                assert_eq!(reply.content_type, "application/problem+json");
                assert!(
                    reply.problem_type().ends_with("insufficient-stock"),
                    "{reply:#?}"
                );
                assert_eq!(
                    reply.body["available"], 0,
                    "a 1-unit refusal means none was left"
                );
                refused += 1;
            }
            _ => panic!("unexpected answer: {reply:#?}"),
        }
    }
    assert_eq!(ids.len(), 50, "exactly 50 reservations succeed");
    assert_eq!(refused, 150);

    let reserved = ledger(&app, "kind=reserved", 7).await;
    assert_eq!(reserved.len(), 50, "exactly 50 reservation entries");
    let holders: BTreeSet<i64> = reserved
        .iter()
        .map(|e| e["reservation_id"].as_i64().expect("reservation_id"))
        .collect();
    assert_eq!(holders, ids, "one entry per successful reservation");
    assert!(reserved
        .iter()
        .all(|e| e["delta_committed"] == 1 && e["sku"] == "HOT"));
    // Paged in order, without repeats.
    let seqs: Vec<i64> = reserved
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    let stock = app.get("/v1/stock/HOT").await;
    assert_eq!(stock.body["levels"][0]["on_hand"], 50);
    assert_eq!(stock.body["levels"][0]["committed"], 50);
    assert_eq!(stock.body["channels"][0]["available"], 0);
    assert_verified(&app).await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_orders_from_four_channels_against_thirty_units() {
    let app = Arc::new(spawn_app().await);
    put(&app, "/v1/locations/wh-1", json!({})).await;
    put(&app, "/v1/variants/HOT", json!({})).await;
    let channels = ["shopify", "amazon", "ebay", "etsy"];
    for c in channels {
        put(
            &app,
            &format!("/v1/channels/{c}"),
            json!({ "kind": "manual" }),
        )
        .await;
    }
    receive(&app, "HOT", "wh-1", 30).await;

    let requests = (0..100)
        .map(|i| {
            let body = json!({
                "channel": channels[i % 4], "external_id": format!("O-{i}"),
                "lines": [{ "line_id": "1", "sku": "HOT", "quantity": 1 }],
            });
            ("POST", "/v1/orders".to_owned(), Some(body))
        })
        .collect();
    let replies = tokio::time::timeout(DEADLOCK_GUARD, all_at_once(&app, requests))
        .await
        .expect("no deadlock");

    let (mut committed, mut short) = (0, 0);
    for reply in &replies {
        assert_eq!(
            reply.status, 200,
            "a channel order is never refused: {reply:#?}"
        );
        assert_eq!(reply.body["outcome"], "created");
        let line = &reply.body["order"]["lines"][0];
        assert_eq!(line["ordered"], 1);
        committed += line["committed"].as_i64().expect("committed");
        short += line["short"].as_i64().expect("short");
    }
    assert_eq!(committed, 30);
    assert_eq!(short, 70);

    let oversold = ledger(&app, "kind=oversold", 1000).await;
    let oversold_units: i64 = oversold
        .iter()
        .map(|e| e["line_delta"]["short"].as_i64().expect("short"))
        .sum();
    assert_eq!(
        oversold_units, 70,
        "the ledger records every unit sold beyond stock"
    );
    assert!(oversold
        .iter()
        .all(|e| e["location"].is_null() && e["delta_on_hand"] == 0 && e["delta_committed"] == 0));
    let commits = ledger(&app, "kind=order_committed", 1000).await;
    assert_eq!(
        commits
            .iter()
            .map(|e| e["delta_committed"].as_i64().expect("delta"))
            .sum::<i64>(),
        30
    );
    // Every channel took part, and its short units sum up across channels.
    let mut short_by_channel: BTreeMap<String, i64> = BTreeMap::new();
    for e in &oversold {
        *short_by_channel
            .entry(e["channel"].as_str().expect("channel").to_owned())
            .or_default() += e["line_delta"]["short"].as_i64().expect("short");
    }
    assert_eq!(short_by_channel.values().sum::<i64>(), 70);

    let levels = assert_levels_sane(&app, &["HOT"]).await;
    assert_eq!(levels[&("HOT".to_owned(), "wh-1".to_owned())], (30, 30));
    let stock = app.get("/v1/stock/HOT").await;
    for c in stock.body["channels"].as_array().expect("channels") {
        assert_eq!(c["available"], 0, "{c}");
    }
    assert_verified(&app).await;
}
}

fn order(channel: &str, id: &str, version: i64, lines: &[(&str, &str, i64)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(line_id, sku, quantity)| json!({ "line_id": line_id, "sku": sku, "quantity": quantity }))
        .collect();
    json!({ "channel": channel, "external_id": id, "version": version, "lines": lines })
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_multi_line_orders_and_kits_finish_without_deadlock_or_drift() {
    let app = Arc::new(spawn_app().await);
    for l in ["wh-1", "wh-2"] {
        put(&app, &format!("/v1/locations/{l}"), json!({})).await;
    }
    for s in ["A", "B"] {
        put(&app, &format!("/v1/variants/{s}"), json!({})).await;
    }
    put(
        &app,
        "/v1/variants/KIT",
        json!({ "kit": [{ "sku": "A", "units": 1 }, { "sku": "B", "units": 2 }] }),
    )
    .await;
    put(
        &app,
        "/v1/channels/web",
        json!({ "kind": "manual", "feeding_locations": ["wh-1", "wh-2"] }),
    )
    .await;
    put(
        &app,
        "/v1/channels/shop",
        json!({ "kind": "manual", "feeding_locations": ["wh-2", "wh-1"] }),
    )
    .await;
    receive(&app, "A", "wh-1", 25).await;
    receive(&app, "A", "wh-2", 15).await;
    receive(&app, "B", "wh-1", 30).await;
    receive(&app, "B", "wh-2", 21).await;

    // Wave 1: A-then-B orders, B-then-A orders, and kit orders, all at once; demand exceeds stock.
    let channel_of = |i: usize| ["web", "shop"][i % 2];
    let wave1: Vec<(&'static str, String, Option<Value>)> = (0..90)
        .map(|i| {
            let id = format!("M-{i}");
            let body = match i % 3 {
                0 => order(channel_of(i), &id, 1, &[("1", "A", 1), ("2", "B", 2)]),
                1 => order(channel_of(i), &id, 1, &[("1", "B", 1), ("2", "A", 1)]),
                _ => order(channel_of(i), &id, 1, &[("1", "KIT", 1), ("2", "A", 1)]),
            };
            ("POST", "/v1/orders".to_owned(), Some(body))
        })
        .collect();
    // Wave 2: cancellations, new snapshots in the opposite line order, receipts and
    // reservations, all at once.
    let wave2: Vec<(&'static str, String, Option<Value>)> = (0..90)
        .map(|i| {
            let id = format!("M-{i}");
            match i % 6 {
                0 => ("POST", format!("/v1/orders/{}/{id}/cancel", channel_of(i)), None),
                1 => ("POST", "/v1/orders".to_owned(), Some(order(channel_of(i), &id, 2, &[("2", "A", 2), ("1", "B", 0)]))),
                2 => ("POST", "/v1/orders".to_owned(), Some(order(channel_of(i), &id, 2, &[("2", "A", 0), ("1", "KIT", 2)]))),
                3 => {
                    let sku = if i % 4 == 3 { "A" } else { "B" };
                    let location = if i % 5 < 2 { "wh-1" } else { "wh-2" };
                    let body = json!({ "movements": [{ "kind": "receive", "sku": sku, "location": location, "quantity": 2 }] });
                    ("POST", "/v1/stock/movements".to_owned(), Some(body))
                }
                4 => {
                    let sku = if i % 4 == 0 { "KIT" } else { "B" };
                    ("POST", "/v1/reservations".to_owned(), Some(json!({ "channel": channel_of(i), "sku": sku, "quantity": 1 })))
                }
                _ => ("POST", "/v1/orders".to_owned(), Some(order(channel_of(i), &format!("N-{i}"), 1, &[("1", "B", 1), ("2", "KIT", 1), ("3", "A", 1)]))),
            }
        })
        .collect();

    let app2 = app.clone();
    let (replies1, replies2) = tokio::time::timeout(DEADLOCK_GUARD, async move {
        let r1 = all_at_once(&app2, wave1).await;
        let r2 = all_at_once(&app2, wave2).await;
        (r1, r2)
    })
    .await
    .expect("no deadlock");
    for reply in &replies1 {
        assert_eq!(reply.status, 200, "{reply:#?}");
    }
    for reply in &replies2 {
        let refused_reservation =
            reply.status == 409 && reply.problem_type().ends_with("insufficient-stock");
        assert!(
            (200..300).contains(&reply.status) || refused_reservation,
            "{reply:#?}"
        );
    }

    assert_verified(&app).await;
    let levels = assert_levels_sane(&app, &["A", "B"]).await;

    // Every committed unit of a component belongs to a line or a reservation that holds it.
    let mut held: BTreeMap<String, i64> = BTreeMap::new();
    let mut short_lines: Vec<(String, String)> = Vec::new();
    let ids: Vec<(String, &str)> = (0..90)
        .map(|i| (format!("M-{i}"), channel_of(i)))
        .chain(
            (0..90)
                .filter(|i| i % 6 == 5)
                .map(|i| (format!("N-{i}"), channel_of(i))),
        )
        .collect();
    for (id, channel) in &ids {
        let view = app.get(&format!("/v1/orders/{channel}/{id}")).await;
        assert_eq!(view.status, 200, "{view:#?}");
        for line in view.body["lines"].as_array().expect("lines") {
            let n = |k: &str| line[k].as_i64().expect(k);
            assert_eq!(
                n("ordered"),
                n("committed") + n("short") + n("shipped") + n("cancelled")
            );
            assert!(n("committed") >= 0 && n("short") >= 0);
            let sku = line["sku"].as_str().expect("mapped");
            if sku == "KIT" {
                *held.entry("A".into()).or_default() += n("committed");
                *held.entry("B".into()).or_default() += 2 * n("committed");
            } else {
                *held.entry(sku.into()).or_default() += n("committed");
            }
            if n("short") > 0 {
                short_lines.push((sku.to_owned(), (*channel).to_owned()));
            }
        }
    }
    for reply in &replies2 {
        if reply.status == 201 {
            let units = reply.body["quantity"].as_i64().expect("quantity");
            match reply.body["sku"].as_str().expect("sku") {
                "KIT" => {
                    *held.entry("A".into()).or_default() += units;
                    *held.entry("B".into()).or_default() += 2 * units;
                }
                sku => *held.entry(sku.into()).or_default() += units,
            }
        }
    }
    for sku in ["A", "B"] {
        let committed: i64 = levels
            .iter()
            .filter(|((s, _), _)| s == sku)
            .map(|(_, (_, c))| c)
            .sum();
        assert_eq!(
            committed, held[sku],
            "committed units of {sku} equal what lines and reservations hold"
        );
    }
    // Open shortfalls are demand: a line that is still short sees nothing in its channel's pool.
    assert!(
        !short_lines.is_empty(),
        "demand exceeded stock, so some lines stay short"
    );
    for (sku, channel) in short_lines {
        let stock = app.get(&format!("/v1/stock/{sku}")).await;
        let pool = stock.body["channels"]
            .as_array()
            .expect("channels")
            .iter()
            .find(|c| c["channel"] == channel.as_str())
            .map(|c| c["pool"].as_i64().expect("pool"))
            .expect("channel listed");
        assert_eq!(
            pool, 0,
            "{sku} is short on {channel} while {pool} units are free"
        );
    }
}
}
