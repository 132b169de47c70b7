//! The `Idempotency-Key` contract over HTTP (DESIGN §7, issue 2 point 4): the same key with the
//! same canonical body replays the original answer without a second ledger entry; a different
//! body is refused; a repeat while the first is in flight gets `idempotency-in-progress`; keys
//! are scoped per route; batch items with their own key come back `replayed`.

use std::sync::Arc;

use serde_json::{json, Value};
use stockhub_testkit::{spawn_app, Reply, TestApp};

const PROBLEM_PREFIX: &str = "urn:stockhub:problem:";

#[track_caller]
fn assert_problem(reply: &Reply, status: u16, kind: &str) {
    assert_eq!(reply.status, status, "{reply:#?}");
    assert_eq!(reply.content_type, "application/problem+json", "{reply:#?}");
    assert_eq!(
        reply.problem_type(),
        format!("{PROBLEM_PREFIX}{kind}"),
        "{reply:#?}"
    );
}

fn replayed(reply: &Reply) -> bool {
    reply
        .headers
        .get("idempotent-replayed")
        .is_some_and(|v| v.to_str().ok() == Some("true"))
}

/// Sends a body exactly as written (to vary key order and whitespace), with an optional key.
async fn send_text(
    app: &TestApp,
    method: &str,
    path: &str,
    body: &str,
    key: Option<&str>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base_url))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let res = req.send().await.expect("request sent");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = res.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

async fn with_key(app: &TestApp, method: &str, path: &str, body: &Value, key: &str) -> Reply {
    app.request(method, path, Some(body), &[("idempotency-key", key)])
        .await
}

#[track_caller]
fn assert_ok(reply: &Reply) {
    assert!(
        (200..300).contains(&reply.status),
        "expected success, got {reply:#?}"
    );
}

async fn seeded() -> TestApp {
    let app = spawn_app().await;
    for code in ["wh-1", "wh-2"] {
        assert_ok(&app.put(&format!("/v1/locations/{code}"), &json!({})).await);
    }
    for sku in ["TEE-M", "CAP"] {
        assert_ok(&app.put(&format!("/v1/variants/{sku}"), &json!({})).await);
    }
    assert_ok(
        &app.put("/v1/channels/web", &json!({ "kind": "manual" }))
            .await,
    );
    app
}

/// Every ledger entry matching `query` (a query string without `cursor`/`limit`), all pages.
async fn ledger(app: &TestApp, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let mut path = format!("/v1/ledger?limit=1000&{query}");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "{page:#?}");
        out.extend(
            page.body["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .cloned(),
        );
        match page.body["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

async fn on_hand(app: &TestApp, sku: &str, location: &str) -> i64 {
    let stock = app.get(&format!("/v1/stock/{sku}")).await;
    assert_eq!(stock.status, 200, "{stock:#?}");
    stock.body["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .find(|l| l["location"] == location)
        .map_or(0, |l| l["on_hand"].as_i64().expect("on_hand"))
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn the_same_key_and_body_replays_the_original_answer() {
    let app = seeded().await;
    let body = r#"{"movements":[{"kind":"receive","sku":"TEE-M","location":"wh-1","quantity":5}]}"#;
    let first = send_text(&app, "POST", "/v1/stock/movements", body, Some("rcv-1")).await;
    assert_eq!(first.status, 200, "{first:#?}");
    assert!(!replayed(&first), "a first answer is not a replay");
    let entries = ledger(&app, "kind=received").await;
    assert_eq!(entries.len(), 1);
    assert!(entries[0]["idempotency_key"]
        .as_str()
        .is_some_and(|k| k.contains("rcv-1")));

    let again = send_text(&app, "POST", "/v1/stock/movements", body, Some("rcv-1")).await;
    assert_eq!(again.status, 200);
    assert!(replayed(&again), "{again:#?}");
    assert_eq!(again.body, first.body);

    // The same document with its keys reordered and different whitespace is the same request.
    let reordered = "{\n  \"movements\" : [ {\"quantity\": 5,\n \"location\":\"wh-1\", \"sku\" : \"TEE-M\",\t\"kind\":\"receive\"} ]\n}\n";
    let third = send_text(
        &app,
        "POST",
        "/v1/stock/movements",
        reordered,
        Some("rcv-1"),
    )
    .await;
    assert_eq!(third.status, 200, "{third:#?}");
    assert!(replayed(&third));
    assert_eq!(third.body, first.body);

    assert_eq!(
        ledger(&app, "kind=received").await.len(),
        1,
        "no second ledger entry"
    );
    assert_eq!(on_hand(&app, "TEE-M", "wh-1").await, 5);
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn replays_keep_the_original_status_for_every_kind_of_write() {
    let app = seeded().await;
    let receive = json!({ "movements": [{ "kind": "receive", "sku": "TEE-M", "location": "wh-1", "quantity": 10 }] });
    assert_ok(&app.post("/v1/stock/movements", &receive).await);

    // A reservation: 201 both times, the same reservation, units held once.
    let reserve = json!({ "channel": "web", "sku": "TEE-M", "quantity": 3 });
    let first = with_key(&app, "POST", "/v1/reservations", &reserve, "hold-1").await;
    assert_eq!(first.status, 201, "{first:#?}");
    let again = with_key(&app, "POST", "/v1/reservations", &reserve, "hold-1").await;
    assert_eq!(again.status, 201);
    assert!(replayed(&again));
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(ledger(&app, "kind=reserved").await.len(), 1);
    let reservation = first.body["id"].as_i64().expect("reservation id");

    // An order.
    let order = json!({
        "channel": "web", "external_id": "W-1",
        "lines": [{ "line_id": "1", "sku": "TEE-M", "quantity": 2 }],
    });
    let first = with_key(&app, "POST", "/v1/orders", &order, "order-1").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["outcome"], "created");
    let again = with_key(&app, "POST", "/v1/orders", &order, "order-1").await;
    assert!(replayed(&again));
    assert_eq!(
        again.body, first.body,
        "the original answer, not a fresh `unchanged`"
    );

    // A shipment (a write without a creation).
    let ship = json!({ "lines": [{ "line_id": "1", "quantity": 1 }] });
    let first = with_key(&app, "POST", "/v1/orders/web/W-1/ship", &ship, "ship-1").await;
    assert_eq!(first.status, 200, "{first:#?}");
    let again = with_key(&app, "POST", "/v1/orders/web/W-1/ship", &ship, "ship-1").await;
    assert!(replayed(&again));
    assert_eq!(again.body, first.body);
    assert_eq!(ledger(&app, "kind=shipped").await.len(), 1);

    // A release without a body.
    let path = format!("/v1/reservations/{reservation}/release");
    let first = app
        .request("POST", &path, None, &[("idempotency-key", "rel-1")])
        .await;
    assert_eq!(first.status, 200, "{first:#?}");
    let again = app
        .request("POST", &path, None, &[("idempotency-key", "rel-1")])
        .await;
    assert_eq!(
        again.status, 200,
        "a replay, not reservation-not-active: {again:#?}"
    );
    assert!(replayed(&again));

    // Stock after all of it: 10 received, 1 shipped, 1 still committed to the order.
    let stock = app.get("/v1/stock/TEE-M").await;
    assert_eq!(stock.body["levels"][0]["on_hand"], 9);
    assert_eq!(stock.body["levels"][0]["committed"], 1);
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn the_same_key_with_another_body_is_409_and_changes_nothing() {
    let app = seeded().await;
    let body = json!({ "movements": [{ "kind": "receive", "sku": "TEE-M", "location": "wh-1", "quantity": 5 }] });
    assert_ok(&with_key(&app, "POST", "/v1/stock/movements", &body, "rcv-1").await);
    let before = app.dump().await;
    for other in [
        json!({ "movements": [{ "kind": "receive", "sku": "TEE-M", "location": "wh-1", "quantity": 6 }] }),
        json!({ "movements": [{ "kind": "receive", "sku": "CAP", "location": "wh-1", "quantity": 5 }] }),
        json!({ "movements": [
            { "kind": "receive", "sku": "TEE-M", "location": "wh-1", "quantity": 5 },
            { "kind": "receive", "sku": "TEE-M", "location": "wh-1", "quantity": 5 },
        ] }),
    ] {
        let reply = with_key(&app, "POST", "/v1/stock/movements", &other, "rcv-1").await;
        assert_problem(&reply, 409, "idempotency-conflict");
        assert!(!replayed(&reply));
        assert_eq!(app.dump().await, before);
    }
    // The original still replays.
    assert!(replayed(
        &with_key(&app, "POST", "/v1/stock/movements", &body, "rcv-1").await
    ));
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn a_refused_request_does_not_use_up_its_key() {
    let app = seeded().await;
    let bad = json!({ "movements": [{ "kind": "receive", "sku": "GHOST", "location": "wh-1", "quantity": 5 }] });
    let reply = with_key(&app, "POST", "/v1/stock/movements", &bad, "rcv-9").await;
    assert_problem(&reply, 422, "invalid-batch");
    // The fixed request under the same key is applied, not refused as a conflict.
    let good = json!({ "movements": [{ "kind": "receive", "sku": "TEE-M", "location": "wh-1", "quantity": 5 }] });
    let reply = with_key(&app, "POST", "/v1/stock/movements", &good, "rcv-9").await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    assert!(!replayed(&reply));
    assert_eq!(on_hand(&app, "TEE-M", "wh-1").await, 5);
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn keys_are_scoped_per_route() {
    let app = seeded().await;
    let a = with_key(
        &app,
        "PUT",
        "/v1/variants/SOCK-A",
        &json!({ "title": "Sock A" }),
        "k-1",
    )
    .await;
    let b = with_key(
        &app,
        "PUT",
        "/v1/variants/SOCK-B",
        &json!({ "title": "Sock B" }),
        "k-1",
    )
    .await;
    assert_eq!(a.status, 200, "{a:#?}");
    assert_eq!(b.status, 200, "{b:#?}");
    assert!(!replayed(&a) && !replayed(&b));
    assert_eq!(app.get("/v1/variants/SOCK-A").await.body["title"], "Sock A");
    assert_eq!(app.get("/v1/variants/SOCK-B").await.body["title"], "Sock B");
    // The same body on the second path is still a request of its own.
    let c = with_key(
        &app,
        "PUT",
        "/v1/variants/SOCK-C",
        &json!({ "title": "Sock A" }),
        "k-1",
    )
    .await;
    assert_eq!(c.status, 200);
    assert!(!replayed(&c));
    assert_eq!(app.get("/v1/variants/SOCK-C").await.body["title"], "Sock A");

    // The same key on a different route and method.
    let receive = json!({ "movements": [{ "kind": "receive", "sku": "TEE-M", "location": "wh-1", "quantity": 4 }] });
    let r = with_key(&app, "POST", "/v1/stock/movements", &receive, "k-1").await;
    assert_eq!(r.status, 200, "{r:#?}");
    assert!(!replayed(&r));
    let reserve = json!({ "channel": "web", "sku": "TEE-M", "quantity": 1 });
    let r = with_key(&app, "POST", "/v1/reservations", &reserve, "k-1").await;
    assert_eq!(r.status, 201, "{r:#?}");
    assert!(!replayed(&r));
    // And on the first path it still replays.
    let a2 = with_key(
        &app,
        "PUT",
        "/v1/variants/SOCK-A",
        &json!({ "title": "Sock A" }),
        "k-1",
    )
    .await;
    assert!(replayed(&a2));
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn batch_items_already_applied_come_back_replayed() {
    let app = seeded().await;
    let item = |key: &str, quantity: i64| json!({ "kind": "receive", "sku": "TEE-M", "location": "wh-1", "quantity": quantity, "idempotency_key": key });
    let first = app
        .post(
            "/v1/stock/movements",
            &json!({ "movements": [item("line-1", 5)] }),
        )
        .await;
    assert_eq!(first.status, 200, "{first:#?}");
    assert_eq!(first.body["results"][0]["status"], "applied");

    let second = app
        .post(
            "/v1/stock/movements",
            &json!({ "movements": [item("line-1", 5), item("line-2", 3)] }),
        )
        .await;
    assert_eq!(
        second.status, 200,
        "a replayed item does not fail the batch: {second:#?}"
    );
    let results = second.body["results"].as_array().expect("results");
    assert_eq!(results[0]["status"], "replayed");
    assert_eq!(results[0]["index"], 0);
    assert_eq!(
        results[0]["levels"], first.body["results"][0]["levels"],
        "the item's original answer"
    );
    assert_eq!(results[1]["status"], "applied");
    assert_eq!(results[1]["levels"][0]["on_hand"], 8);
    assert_eq!(
        ledger(&app, "kind=received").await.len(),
        2,
        "one entry per item key"
    );
    assert_eq!(on_hand(&app, "TEE-M", "wh-1").await, 8);

    // The same item key inside one batch: applied once.
    let third = app
        .post(
            "/v1/stock/movements",
            &json!({ "movements": [item("line-3", 1), item("line-3", 1)] }),
        )
        .await;
    assert_eq!(third.status, 200, "{third:#?}");
    assert_eq!(third.body["results"][0]["status"], "applied");
    assert_eq!(third.body["results"][1]["status"], "replayed");
    assert_eq!(on_hand(&app, "TEE-M", "wh-1").await, 9);

    // An item key reused with another item is refused by index; nothing of the batch applies.
    let before = app.dump().await;
    let reply = app
        .post(
            "/v1/stock/movements",
            &json!({ "movements": [item("line-4", 2), item("line-1", 6)] }),
        )
        .await;
    assert_problem(&reply, 422, "invalid-batch");
    let errors = reply.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["index"], 1);
    assert_eq!(errors[0]["kind"], "idempotency-conflict");
    assert_eq!(app.dump().await, before);

    // Item keys are keys of items: the same string as a request key is another scope.
    let whole = json!({ "movements": [{ "kind": "receive", "sku": "CAP", "location": "wh-1", "quantity": 1 }] });
    let reply = with_key(&app, "POST", "/v1/stock/movements", &whole, "line-1").await;
    assert_eq!(reply.status, 200);
    assert!(!replayed(&reply));
    assert_eq!(reply.body["results"][0]["status"], "applied");
}
}

stockhub_testkit::on_both_backends! {
/// A repeat that arrives while the first request with its key is still being applied gets
/// `409 idempotency-in-progress`; one that arrives after gets the replay; the work is done once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_while_the_first_is_in_flight_is_409_in_progress() {
    // Big enough to stay in flight while the copies arrive; each item costs PostgreSQL several
    // network round trips, so fewer suffice there.
    let items_per_batch: usize = match stockhub_testkit::current_backend() {
        stockhub_testkit::TestBackend::Sqlite => 20_000,
        stockhub_testkit::TestBackend::Postgres => 2_000,
    };
    const DUPLICATES: usize = 3;
    const ATTEMPTS: usize = 5;
    let app = Arc::new(seeded().await);
    let items: Vec<Value> = (0..items_per_batch)
        .map(|_| json!({ "kind": "receive", "sku": "CAP", "location": "wh-2", "quantity": 1 }))
        .collect();
    let body = Arc::new(json!({ "movements": items }));

    let mut in_progress_seen = 0;
    let mut attempts = 0;
    while attempts < ATTEMPTS && in_progress_seen == 0 {
        attempts += 1;
        let key = format!("big-{attempts}");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..=DUPLICATES {
            let (app, body, key) = (app.clone(), body.clone(), key.clone());
            tasks.spawn(
                async move { with_key(&app, "POST", "/v1/stock/movements", &body, &key).await },
            );
        }
        let mut applied = 0;
        let mut replays = 0;
        let mut in_progress = 0;
        let mut original: Option<Value> = None;
        while let Some(reply) = tasks.join_next().await {
            let reply = reply.expect("task");
            match reply.status {
                200 if replayed(&reply) => replays += 1,
                200 => {
                    applied += 1;
                    original = Some(reply.body.clone());
                }
                409 => {
                    assert_problem(&reply, 409, "idempotency-in-progress");
                    in_progress += 1;
                }
                _ => panic!("unexpected answer to a duplicate: {reply:#?}"),
            }
        }
        assert_eq!(
            applied, 1,
            "exactly one of the copies is applied (attempt {attempts})"
        );
        assert_eq!(replays + in_progress, DUPLICATES);
        in_progress_seen += in_progress;
        // Once the first has finished, a retry gets its answer.
        let retry = with_key(&app, "POST", "/v1/stock/movements", &body, &key).await;
        assert_eq!(retry.status, 200);
        assert!(replayed(&retry));
        assert_eq!(Some(retry.body), original);
    }
    assert!(
        in_progress_seen > 0,
        "no duplicate observed the first request in flight in {attempts} attempts"
    );
    // Each attempt's batch was applied exactly once.
    assert_eq!(
        on_hand(&app, "CAP", "wh-2").await,
        (attempts * items_per_batch) as i64
    );
}
}

stockhub_testkit::on_both_backends! {
/// Keys are kept at least 7 days by the maintenance job's default retention.
#[tokio::test]
async fn keys_are_kept_at_least_seven_days() {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    let clock = stockhub_store::ManualClock::new(1_767_225_600_000);
    let app = stockhub_testkit::spawn_app_with(
        stockhub_http::HttpSettings::default(),
        Arc::new(clock.clone()),
    )
    .await;
    assert_ok(&app.put("/v1/locations/wh-1", &json!({})).await);
    assert_ok(&app.put("/v1/variants/TEE-M", &json!({})).await);
    let retention =
        stockhub_http::maintenance::MaintenanceSettings::default().idempotency_retention;
    assert!(
        retention.as_secs() >= 7 * 24 * 3600,
        "default retention {retention:?}"
    );
    let retention_ms = i64::try_from(retention.as_millis()).expect("retention in ms");
    let forget = || async {
        app.store
            .write(move |sql| {
                stockhub_store::engine::idempotency::expire(sql, retention_ms, 10_000)
            })
            .await
            .expect("expire keys")
    };

    let body = json!({ "movements": [{ "kind": "receive", "sku": "TEE-M", "location": "wh-1", "quantity": 5 }] });
    assert_ok(&with_key(&app, "POST", "/v1/stock/movements", &body, "weekly").await);
    clock.advance_ms(7 * DAY_MS - 1);
    forget().await;
    let again = with_key(&app, "POST", "/v1/stock/movements", &body, "weekly").await;
    assert_eq!(again.status, 200);
    assert!(replayed(&again), "still remembered after 7 days less 1 ms");
    assert_eq!(on_hand(&app, "TEE-M", "wh-1").await, 5);
}
}
