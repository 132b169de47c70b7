//! Bad input over HTTP (issue 2, point 9): every refusal is `application/problem+json` with a
//! stable `type`, and the database is exactly as it was before the request — a refused batch
//! applies nothing and names each bad item by its index.

use std::sync::Arc;

use serde_json::{json, Value};
use stockhub_http::HttpSettings;
use stockhub_store::SystemClock;
use stockhub_testkit::{spawn_app, spawn_app_with, Reply, TestApp};

const PROBLEM_PREFIX: &str = "urn:stockhub:problem:";

/// Asserts a problem answer: its status, its `type`, and its media type.
#[track_caller]
fn assert_problem(reply: &Reply, status: u16, kind: &str) {
    assert_eq!(reply.status, status, "status of {reply:#?}");
    assert_eq!(
        reply.content_type, "application/problem+json",
        "content-type of {reply:#?}"
    );
    assert_eq!(
        reply.problem_type(),
        format!("{PROBLEM_PREFIX}{kind}"),
        "problem type of {reply:#?}"
    );
    assert_eq!(
        reply.body["status"].as_u64(),
        Some(u64::from(status)),
        "the problem's own status field: {reply:#?}"
    );
    assert!(
        reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "a problem says what to fix: {reply:#?}"
    );
}

/// The `(index, kind)` of every refused item of a batch, in order.
fn item_errors(reply: &Reply) -> Vec<(u64, String)> {
    reply.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("a refused batch lists its errors: {reply:#?}"))
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().expect("errors[].index"),
                e["kind"].as_str().expect("errors[].kind").to_owned(),
            )
        })
        .collect()
}

/// Percent-encodes every byte but the unreserved ones, for a SKU in a URL path.
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[track_caller]
fn assert_ok(reply: &Reply) {
    assert!(
        (200..300).contains(&reply.status),
        "expected success, got {reply:#?}"
    );
}

/// Two locations, two plain SKUs, a kit, two channels, and stock at `wh-1`.
async fn seeded() -> TestApp {
    let app = spawn_app().await;
    seed(&app).await;
    app
}

async fn seed(app: &TestApp) {
    for code in ["wh-1", "wh-2"] {
        assert_ok(&app.put(&format!("/v1/locations/{code}"), &json!({})).await);
    }
    for sku in ["TEE-M", "CAP"] {
        assert_ok(&app.put(&format!("/v1/variants/{sku}"), &json!({})).await);
    }
    assert_ok(
        &app.put(
            "/v1/variants/BUNDLE",
            &json!({ "kit": [{ "sku": "TEE-M", "units": 1 }, { "sku": "CAP", "units": 1 }] }),
        )
        .await,
    );
    assert_ok(
        &app.put("/v1/channels/web", &json!({ "kind": "manual" }))
            .await,
    );
    assert_ok(
        &app.put(
            "/v1/channels/pos",
            &json!({ "kind": "manual", "rules": { "buffer": 1 } }),
        )
        .await,
    );
    let receive = json!({ "movements": [
        { "kind": "receive", "sku": "TEE-M", "location": "wh-1", "quantity": 10 },
        { "kind": "receive", "sku": "CAP", "location": "wh-1", "quantity": 4 },
    ]});
    assert_ok(&app.post("/v1/stock/movements", &receive).await);
}

/// Sends the request, asserts the problem, and asserts the database did not change.
async fn refused(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<&Value>,
    status: u16,
    kind: &str,
) -> Reply {
    let before = app.dump().await;
    let reply = app.request(method, path, body, &[]).await;
    assert_problem(&reply, status, kind);
    assert_eq!(
        app.dump().await,
        before,
        "{method} {path} was refused but changed the database"
    );
    reply
}

fn receive(sku: &str, location: &str, quantity: i64) -> Value {
    json!({ "kind": "receive", "sku": sku, "location": location, "quantity": quantity })
}

fn movements(items: Vec<Value>) -> Value {
    json!({ "movements": items })
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn malformed_json_is_refused_everywhere() {
    let app = seeded().await;
    let bodies: [&[u8]; 4] = [
        b"{\"movements\": [",
        b"{\"kind\": \"manual\",}",
        b"not json at all",
        b"{\"a\": 1} trailing",
    ];
    for (method, path) in [
        ("POST", "/v1/stock/movements"),
        ("PUT", "/v1/variants/TEE-L"),
        ("PUT", "/v1/locations/wh-9"),
        ("PUT", "/v1/channels/amazon"),
        ("POST", "/v1/orders"),
        ("POST", "/v1/reservations"),
        ("POST", "/v1/variants/batch"),
    ] {
        for body in bodies {
            let before = app.dump().await;
            let reply = app.request_raw(method, path, body.to_vec()).await;
            assert_problem(&reply, 400, "malformed-json");
            assert_eq!(
                app.dump().await,
                before,
                "{method} {path} changed the database"
            );
        }
    }
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn a_body_of_the_wrong_shape_is_refused() {
    let app = seeded().await;
    // Missing field, wrong type, unknown field.
    refused(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(&json!({})),
        422,
        "invalid-request",
    )
    .await;
    refused(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(&json!({ "movements": "all" })),
        422,
        "invalid-request",
    )
    .await;
    refused(
        &app,
        "PUT",
        "/v1/variants/TEE-L",
        Some(&json!({ "buffer": "three" })),
        422,
        "invalid-request",
    )
    .await;
    refused(
        &app,
        "PUT",
        "/v1/locations/wh-9",
        Some(&json!({ "nmae": "typo" })),
        422,
        "invalid-request",
    )
    .await;
    refused(
        &app,
        "POST",
        "/v1/reservations",
        Some(&json!({ "channel": "web", "sku": "TEE-M" })),
        422,
        "invalid-request",
    )
    .await;
}
}

stockhub_testkit::on_both_backends! {
/// A bad buffer is the buffer's fault: the problem `type` must not blame the SKU.
#[tokio::test]
async fn a_bad_buffer_is_not_reported_as_a_bad_sku() {
    let app = seeded().await;
    let reply = refused(
        &app,
        "PUT",
        "/v1/variants/TEE-L",
        Some(&json!({ "buffer": -1 })),
        422,
        "invalid-request",
    )
    .await;
    assert!(reply.body["detail"].as_str().unwrap().contains("buffer"));
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn unknown_sku_in_a_movement_names_the_item() {
    let app = seeded().await;
    let body = movements(vec![
        receive("TEE-M", "wh-1", 5),
        receive("GHOST", "wh-1", 3),
    ]);
    let reply = refused(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(&body),
        422,
        "invalid-batch",
    )
    .await;
    assert_eq!(item_errors(&reply), vec![(1, "unknown-sku".to_owned())]);
    // The good item before it was not applied either.
    let stock = app.get("/v1/stock/TEE-M").await;
    assert_eq!(stock.body["levels"][0]["on_hand"], 10);
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn unknown_sku_elsewhere_is_404() {
    let app = seeded().await;
    let reserve = json!({ "channel": "web", "sku": "GHOST", "quantity": 1 });
    refused(
        &app,
        "POST",
        "/v1/reservations",
        Some(&reserve),
        404,
        "unknown-sku",
    )
    .await;
    refused(&app, "GET", "/v1/stock/GHOST", None, 404, "unknown-sku").await;
    refused(&app, "GET", "/v1/variants/GHOST", None, 404, "unknown-sku").await;
    let kit = json!({ "kit": [{ "sku": "TEE-M", "units": 1 }, { "sku": "GHOST", "units": 2 }] });
    refused(
        &app,
        "PUT",
        "/v1/variants/NEW-KIT",
        Some(&kit),
        404,
        "unknown-sku",
    )
    .await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn unknown_location_is_refused() {
    let app = seeded().await;
    let body = movements(vec![
        receive("TEE-M", "wh-1", 5),
        receive("TEE-M", "nowhere", 5),
        json!({ "kind": "transfer", "sku": "TEE-M", "from": "wh-1", "to": "nowhere", "quantity": 1 }),
        json!({ "kind": "adjust", "sku": "TEE-M", "location": "nowhere", "delta": 1 }),
        json!({ "kind": "count", "sku": "TEE-M", "location": "nowhere", "on_hand": 1 }),
    ]);
    let reply = refused(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(&body),
        422,
        "invalid-batch",
    )
    .await;
    let expected: Vec<(u64, String)> = (1..=4)
        .map(|i| (i, "unknown-location".to_owned()))
        .collect();
    assert_eq!(item_errors(&reply), expected);

    let reserve = json!({ "channel": "web", "sku": "TEE-M", "quantity": 1, "location": "nowhere" });
    refused(
        &app,
        "POST",
        "/v1/reservations",
        Some(&reserve),
        404,
        "unknown-location",
    )
    .await;
    let channel = json!({ "kind": "manual", "feeding_locations": ["wh-1", "nowhere"] });
    refused(
        &app,
        "PUT",
        "/v1/channels/ebay",
        Some(&channel),
        404,
        "unknown-location",
    )
    .await;
    // A location code that cannot exist at all is a different refusal.
    let body = movements(vec![receive("TEE-M", "no where", 1)]);
    let reply = refused(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(&body),
        422,
        "invalid-batch",
    )
    .await;
    assert_eq!(
        item_errors(&reply),
        vec![(0, "invalid-location".to_owned())]
    );
    refused(
        &app,
        "PUT",
        "/v1/locations/no%20where",
        Some(&json!({})),
        422,
        "invalid-location",
    )
    .await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn unknown_channel_is_404_for_orders_and_reservations() {
    let app = seeded().await;
    let order = json!({
        "channel": "tiktok", "external_id": "T-1",
        "lines": [{ "line_id": "1", "sku": "TEE-M", "quantity": 1 }],
    });
    refused(
        &app,
        "POST",
        "/v1/orders",
        Some(&order),
        404,
        "unknown-channel",
    )
    .await;
    let reserve = json!({ "channel": "tiktok", "sku": "TEE-M", "quantity": 1 });
    refused(
        &app,
        "POST",
        "/v1/reservations",
        Some(&reserve),
        404,
        "unknown-channel",
    )
    .await;
    refused(
        &app,
        "GET",
        "/v1/channels/tiktok",
        None,
        404,
        "unknown-channel",
    )
    .await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn order_lines_with_unknown_skus_go_to_the_unmapped_queue() {
    let app = seeded().await;
    let order = json!({
        "channel": "web", "external_id": "W-100",
        "lines": [
            { "line_id": "1", "sku": "TEE-M", "quantity": 2 },
            { "line_id": "2", "sku": "MYSTERY-HAT", "quantity": 3 },
            { "line_id": "3", "sku": "BUNDLE", "quantity": 1 },
            { "line_id": "4", "sku": "", "quantity": 1 },
        ],
    });
    let reply = app.post("/v1/orders", &order).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    assert_eq!(reply.body["outcome"], "created");
    let lines = reply.body["order"]["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["committed"], 2);
    assert_eq!(lines[1]["sku"], Value::Null);
    assert_eq!(lines[1]["committed"], 0);
    assert_eq!(lines[1]["short"], 0);
    assert_eq!(lines[2]["committed"], 1);

    let unmapped = app.get("/v1/unmapped").await;
    assert_eq!(unmapped.status, 200);
    let items = unmapped.body["items"].as_array().expect("items");
    let listed: Vec<(&str, &str, i64)> = items
        .iter()
        .map(|i| {
            (
                i["line_id"].as_str().unwrap(),
                i["channel_sku"].as_str().unwrap(),
                i["wanted"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, vec![("2", "MYSTERY-HAT", 3), ("4", "", 1)]);
    assert!(items
        .iter()
        .all(|i| i["channel"] == "web" && i["external_id"] == "W-100"));

    // The mapped lines were committed: 2 tees + 1 bundle (a tee and a cap).
    let tee = app.get("/v1/stock/TEE-M").await;
    assert_eq!(tee.body["levels"][0]["committed"], 3);
    let cap = app.get("/v1/stock/CAP").await;
    assert_eq!(cap.body["levels"][0]["committed"], 1);
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn quantities_out_of_range_are_refused() {
    let app = seeded().await;
    for bad in [0, -1, -1_000, 1_000_000_001, i64::MAX] {
        let body = movements(vec![receive("TEE-M", "wh-1", bad)]);
        let reply = refused(
            &app,
            "POST",
            "/v1/stock/movements",
            Some(&body),
            422,
            "invalid-batch",
        )
        .await;
        assert_eq!(
            item_errors(&reply),
            vec![(0, "invalid-quantity".to_owned())],
            "receive {bad}"
        );

        let body = movements(vec![json!({
            "kind": "transfer", "sku": "TEE-M", "from": "wh-1", "to": "wh-2", "quantity": bad,
        })]);
        let reply = refused(
            &app,
            "POST",
            "/v1/stock/movements",
            Some(&body),
            422,
            "invalid-batch",
        )
        .await;
        assert_eq!(
            item_errors(&reply),
            vec![(0, "invalid-quantity".to_owned())],
            "transfer {bad}"
        );

        let reserve = json!({ "channel": "web", "sku": "TEE-M", "quantity": bad });
        refused(
            &app,
            "POST",
            "/v1/reservations",
            Some(&reserve),
            422,
            "invalid-quantity",
        )
        .await;
    }
    for bad in [0, 1_000_000_001, -1_000_000_001] {
        let body = movements(vec![
            json!({ "kind": "adjust", "sku": "TEE-M", "location": "wh-1", "delta": bad }),
        ]);
        let reply = refused(
            &app,
            "POST",
            "/v1/stock/movements",
            Some(&body),
            422,
            "invalid-batch",
        )
        .await;
        assert_eq!(
            item_errors(&reply),
            vec![(0, "invalid-quantity".to_owned())],
            "adjust {bad}"
        );
    }
    for bad in [-1, 1_000_000_001] {
        let body = movements(vec![
            json!({ "kind": "count", "sku": "TEE-M", "location": "wh-1", "on_hand": bad }),
        ]);
        let reply = refused(
            &app,
            "POST",
            "/v1/stock/movements",
            Some(&body),
            422,
            "invalid-batch",
        )
        .await;
        assert_eq!(
            item_errors(&reply),
            vec![(0, "invalid-quantity".to_owned())],
            "count {bad}"
        );
    }
    for bad in [-1, -5, 1_000_000_001] {
        let order = json!({
            "channel": "web", "external_id": "W-1",
            "lines": [
                { "line_id": "1", "sku": "TEE-M", "quantity": 1 },
                { "line_id": "2", "sku": "CAP", "quantity": bad },
            ],
        });
        let reply = refused(
            &app,
            "POST",
            "/v1/orders",
            Some(&order),
            422,
            "invalid-batch",
        )
        .await;
        assert_eq!(
            item_errors(&reply),
            vec![(1, "invalid-quantity".to_owned())],
            "order line {bad}"
        );
    }
    // Not a whole number at all.
    let body = json!({ "movements": [{ "kind": "receive", "sku": "TEE-M", "location": "wh-1", "quantity": 1.5 }] });
    let reply = refused(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(&body),
        422,
        "invalid-batch",
    )
    .await;
    assert_eq!(item_errors(&reply)[0].0, 0);
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn quantities_at_the_limits_are_accepted() {
    let app = seeded().await;
    let body = movements(vec![
        receive("TEE-M", "wh-2", 1_000_000_000),
        receive("CAP", "wh-2", 1),
    ]);
    let reply = app.post("/v1/stock/movements", &body).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    assert_eq!(
        reply.body["results"][0]["levels"][0]["on_hand"],
        1_000_000_000
    );
    // A line of 0 is allowed: it means the line is no longer wanted.
    let order = json!({
        "channel": "web", "external_id": "W-0",
        "lines": [{ "line_id": "1", "sku": "TEE-M", "quantity": 0 }],
    });
    assert_eq!(app.post("/v1/orders", &order).await.status, 200);
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn bad_skus_are_refused_in_the_path() {
    let app = seeded().await;
    let too_long = "x".repeat(129);
    for raw in [
        " ",
        "   ",
        too_long.as_str(),
        "a\u{7}b",
        "tab\there",
        "nul\u{0}",
        "line\nbreak",
        "del\u{7f}",
    ] {
        let path = format!("/v1/variants/{}", encode(raw));
        refused(&app, "PUT", &path, Some(&json!({})), 422, "invalid-sku").await;
    }
    // No SKU at all: the route does not exist.
    refused(
        &app,
        "PUT",
        "/v1/variants/",
        Some(&json!({})),
        404,
        "not-found",
    )
    .await;
    // The boundary is accepted: 128 characters, and surrounding spaces are trimmed.
    let longest = "y".repeat(128);
    let reply = app
        .put(&format!("/v1/variants/{longest}"), &json!({}))
        .await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    let reply = app
        .put(&format!("/v1/variants/{}", encode("  PADDED ")), &json!({}))
        .await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    assert_eq!(reply.body["sku"], "PADDED");
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn bad_skus_are_refused_in_batches() {
    let app = seeded().await;
    let too_long = "x".repeat(129);
    let body = movements(vec![
        receive("TEE-M", "wh-1", 1),
        receive("", "wh-1", 1),
        receive(&too_long, "wh-1", 1),
        receive("a\u{7}b", "wh-1", 1),
        receive("   ", "wh-1", 1),
    ]);
    let reply = refused(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(&body),
        422,
        "invalid-batch",
    )
    .await;
    let expected: Vec<(u64, String)> = (1..=4).map(|i| (i, "invalid-sku".to_owned())).collect();
    assert_eq!(item_errors(&reply), expected);

    let batch = json!({ "variants": [
        { "sku": "NEW-1" },
        { "sku": "" },
        { "sku": too_long },
        { "sku": "bell\u{7}" },
    ]});
    let reply = refused(
        &app,
        "POST",
        "/v1/variants/batch",
        Some(&batch),
        422,
        "invalid-batch",
    )
    .await;
    let expected: Vec<(u64, String)> = (1..=3).map(|i| (i, "invalid-sku".to_owned())).collect();
    assert_eq!(item_errors(&reply), expected);

    let reserve = json!({ "channel": "web", "sku": "a\u{1b}[0m", "quantity": 1 });
    refused(
        &app,
        "POST",
        "/v1/reservations",
        Some(&reserve),
        422,
        "invalid-sku",
    )
    .await;
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app_with(
        HttpSettings {
            body_limit_bytes: 4096,
        },
        Arc::new(SystemClock),
    )
    .await;
    seed(&app).await;
    let items: Vec<Value> = (0..200).map(|_| receive("TEE-M", "wh-1", 1)).collect();
    let big = movements(items);
    assert!(big.to_string().len() > 4096);
    refused(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(&big),
        413,
        "body-too-large",
    )
    .await;
    let padded = json!({ "title": "x".repeat(5000) });
    refused(
        &app,
        "PUT",
        "/v1/variants/TEE-M",
        Some(&padded),
        413,
        "body-too-large",
    )
    .await;
    // Under the limit, the same kind of request goes through.
    let small = movements((0..10).map(|_| receive("TEE-M", "wh-1", 1)).collect());
    assert!(small.to_string().len() < 4096);
    assert_eq!(app.post("/v1/stock/movements", &small).await.status, 200);
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_409() {
    let app = seeded().await;
    let first = movements(vec![receive("TEE-M", "wh-1", 5)]);
    let reply = app
        .request(
            "POST",
            "/v1/stock/movements",
            Some(&first),
            &[("idempotency-key", "rcv-1")],
        )
        .await;
    assert_eq!(reply.status, 200);
    let before = app.dump().await;
    let second = movements(vec![receive("TEE-M", "wh-1", 6)]);
    let reply = app
        .request(
            "POST",
            "/v1/stock/movements",
            Some(&second),
            &[("idempotency-key", "rcv-1")],
        )
        .await;
    assert_problem(&reply, 409, "idempotency-conflict");
    assert_eq!(app.dump().await, before);
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn a_malformed_idempotency_key_is_refused() {
    let app = seeded().await;
    let body = movements(vec![receive("TEE-M", "wh-1", 5)]);
    let long = "k".repeat(256);
    for key in [long.as_str(), "with space"] {
        let before = app.dump().await;
        let reply = app
            .request(
                "POST",
                "/v1/stock/movements",
                Some(&body),
                &[("idempotency-key", key)],
            )
            .await;
        assert_problem(&reply, 422, "invalid-idempotency-key");
        assert_eq!(app.dump().await, before);
    }
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn insufficient_stock_for_a_reservation_says_how_many_are_available() {
    let app = seeded().await;
    // web sees all 10 tees; pos holds back a buffer of 1.
    let reply = refused(
        &app,
        "POST",
        "/v1/reservations",
        Some(&json!({ "channel": "web", "sku": "TEE-M", "quantity": 11 })),
        409,
        "insufficient-stock",
    )
    .await;
    assert_eq!(reply.body["available"], 10);
    assert!(reply.problem_type().ends_with("insufficient-stock"));
    let reply = refused(
        &app,
        "POST",
        "/v1/reservations",
        Some(&json!({ "channel": "pos", "sku": "TEE-M", "quantity": 10 })),
        409,
        "insufficient-stock",
    )
    .await;
    assert_eq!(reply.body["available"], 9);
    // A kit: 4 caps make 4 bundles.
    let reply = refused(
        &app,
        "POST",
        "/v1/reservations",
        Some(&json!({ "channel": "web", "sku": "BUNDLE", "quantity": 5 })),
        409,
        "insufficient-stock",
    )
    .await;
    assert_eq!(reply.body["available"], 4);
    // Nothing at all at wh-2.
    let reply = refused(
        &app,
        "POST",
        "/v1/reservations",
        Some(&json!({ "channel": "web", "sku": "TEE-M", "quantity": 1, "location": "wh-2" })),
        409,
        "insufficient-stock",
    )
    .await;
    assert_eq!(reply.body["available"], 0);
    // Exactly what is available succeeds.
    let reply = app
        .post(
            "/v1/reservations",
            &json!({ "channel": "pos", "sku": "TEE-M", "quantity": 9 }),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:#?}");
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn a_batch_with_several_bad_items_names_each_and_applies_nothing() {
    let app = seeded().await;
    let body = movements(vec![
        receive("TEE-M", "wh-1", 1),
        receive("TEE-M", "wh-1", 0),
        receive("CAP", "wh-1", 2),
        receive("", "wh-1", 1),
        receive("CAP", "wh-2", 3),
        json!({ "kind": "teleport", "sku": "CAP", "location": "wh-1", "quantity": 1 }),
        json!({ "kind": "adjust", "sku": "CAP", "location": "wh-1" }),
    ]);
    let reply = refused(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(&body),
        422,
        "invalid-batch",
    )
    .await;
    assert_eq!(
        item_errors(&reply),
        vec![
            (1, "invalid-quantity".to_owned()),
            (3, "invalid-sku".to_owned()),
            (5, "invalid-request".to_owned()),
            (6, "invalid-request".to_owned()),
        ]
    );

    // Refusals that only the store can see (unknown records, too little stock) are named too.
    let body = movements(vec![
        receive("TEE-M", "wh-1", 1),
        receive("GHOST", "wh-1", 1),
        receive("CAP", "wh-1", 1),
        receive("TEE-M", "attic", 1),
        json!({ "kind": "transfer", "sku": "CAP", "from": "wh-1", "to": "wh-2", "quantity": 50 }),
        json!({ "kind": "receive", "sku": "BUNDLE", "location": "wh-1", "quantity": 1 }),
    ]);
    let reply = refused(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(&body),
        422,
        "invalid-batch",
    )
    .await;
    assert_eq!(
        item_errors(&reply),
        vec![
            (1, "unknown-sku".to_owned()),
            (3, "unknown-location".to_owned()),
            (4, "stock-conflict".to_owned()),
            (5, "invalid-request".to_owned()),
        ]
    );

    // Order lines: each bad line by its index.
    let order = json!({
        "channel": "web", "external_id": "W-2",
        "lines": [
            { "line_id": "1", "sku": "TEE-M", "quantity": -1 },
            { "line_id": "2", "sku": "CAP", "quantity": 1 },
            { "line_id": "3", "sku": "CAP", "quantity": 1_000_000_001 },
            { "line_id": "", "sku": "CAP", "quantity": 1 },
        ],
    });
    let reply = refused(
        &app,
        "POST",
        "/v1/orders",
        Some(&order),
        422,
        "invalid-batch",
    )
    .await;
    assert_eq!(
        item_errors(&reply),
        vec![
            (0, "invalid-quantity".to_owned()),
            (2, "invalid-quantity".to_owned()),
            (3, "invalid-request".to_owned()),
        ]
    );

    // Variant batches: items refused at the store (an unknown kit component, a kit of itself)
    // stop them all.
    let batch = json!({ "variants": [
        { "sku": "NEW-1" },
        { "sku": "NEW-KIT", "kit": [{ "sku": "NOPE", "units": 1 }] },
        { "sku": "NEW-2" },
        { "sku": "SELFISH", "kit": [{ "sku": "SELFISH", "units": 1 }] },
    ]});
    let reply = refused(
        &app,
        "POST",
        "/v1/variants/batch",
        Some(&batch),
        422,
        "invalid-batch",
    )
    .await;
    assert_eq!(
        item_errors(&reply),
        vec![
            (1, "unknown-sku".to_owned()),
            (3, "invalid-request".to_owned())
        ]
    );
    assert_eq!(app.get("/v1/variants/NEW-1").await.status, 404);
}
}

stockhub_testkit::on_both_backends! {
/// Items refused at the edge (bad shape) and items only the store can refuse (unknown SKU) in
/// one batch: the answer must still name every bad item, so that one round trip is enough to
/// fix the batch.
#[tokio::test]
async fn a_batch_mixing_edge_and_store_refusals_names_every_bad_item() {
    let app = seeded().await;
    let body = movements(vec![
        receive("TEE-M", "wh-1", 1),
        receive("TEE-M", "wh-1", 0),
        receive("GHOST", "wh-1", 1),
        receive("TEE-M", "attic", 1),
    ]);
    let reply = refused(
        &app,
        "POST",
        "/v1/stock/movements",
        Some(&body),
        422,
        "invalid-batch",
    )
    .await;
    assert_eq!(
        item_errors(&reply),
        vec![
            (1, "invalid-quantity".to_owned()),
            (2, "unknown-sku".to_owned()),
            (3, "unknown-location".to_owned()),
        ]
    );
    let batch = json!({ "variants": [
        { "sku": "NEW-1" },
        { "sku": "NEW-KIT", "kit": [{ "sku": "NOPE", "units": 1 }] },
        { "sku": "" },
    ]});
    let reply = refused(
        &app,
        "POST",
        "/v1/variants/batch",
        Some(&batch),
        422,
        "invalid-batch",
    )
    .await;
    assert_eq!(
        item_errors(&reply),
        vec![(1, "unknown-sku".to_owned()), (2, "invalid-sku".to_owned())]
    );
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = seeded().await;
    for path in [
        "/v1/nothing-here",
        "/v2/stock/TEE-M",
        "/",
        "/v1/orders/web/W-1/teleport",
    ] {
        refused(&app, "GET", path, None, 404, "not-found").await;
    }
    refused(
        &app,
        "POST",
        "/v1/no/such/route",
        Some(&json!({})),
        404,
        "not-found",
    )
    .await;
    for (method, path) in [
        ("DELETE", "/v1/variants/TEE-M"),
        ("PATCH", "/v1/locations/wh-1"),
        ("POST", "/v1/ledger"),
        ("PUT", "/v1/orders"),
        ("GET", "/v1/reservations"),
        ("DELETE", "/healthz"),
    ] {
        refused(&app, method, path, None, 405, "method-not-allowed").await;
    }
    // Unknown order, reservation and unmapped line are 404 problems of their own kind.
    refused(
        &app,
        "GET",
        "/v1/orders/web/NOPE",
        None,
        404,
        "unknown-order",
    )
    .await;
    refused(
        &app,
        "POST",
        "/v1/orders/web/NOPE/cancel",
        None,
        404,
        "unknown-order",
    )
    .await;
    refused(
        &app,
        "GET",
        "/v1/reservations/999",
        None,
        404,
        "unknown-reservation",
    )
    .await;
    refused(
        &app,
        "POST",
        "/v1/reservations/999/release",
        None,
        404,
        "unknown-reservation",
    )
    .await;
    refused(
        &app,
        "POST",
        "/v1/unmapped/999/resolve",
        Some(&json!({ "sku": "TEE-M" })),
        404,
        "unknown-unmapped-line",
    )
    .await;
}
}

stockhub_testkit::on_both_backends! {
/// Query strings and path parameters that do not parse are bad input like any other: a
/// problem+json answer with a stable `type`, not the framework's plain-text rejection.
#[tokio::test]
async fn unparsable_query_strings_and_path_parameters_are_problems() {
    let app = seeded().await;
    for (method, path) in [
        ("GET", "/v1/ledger?limit=abc"),
        ("GET", "/v1/ledger?cursor=-x"),
        ("GET", "/v1/ledger?bogus=1"),
        ("GET", "/v1/variants?limit=many"),
        ("GET", "/v1/unmapped?cursor=x"),
        ("GET", "/v1/reservations/abc"),
        ("POST", "/v1/reservations/abc/release"),
        ("POST", "/v1/unmapped/first/resolve"),
    ] {
        let before = app.dump().await;
        let reply = app.request(method, path, None, &[]).await;
        assert!(
            reply.status == 400 || reply.status == 422,
            "{method} {path}: {reply:#?}"
        );
        assert_eq!(
            reply.content_type, "application/problem+json",
            "{method} {path}: {reply:#?}"
        );
        assert!(
            reply.problem_type().starts_with(PROBLEM_PREFIX),
            "{method} {path}: {reply:#?}"
        );
        assert_eq!(app.dump().await, before);
    }
}
}

stockhub_testkit::on_both_backends! {
/// The body limit holds for a chunked body too (no Content-Length to check up front).
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let app = spawn_app_with(
        HttpSettings {
            body_limit_bytes: 4096,
        },
        Arc::new(SystemClock),
    )
    .await;
    seed(&app).await;
    let before = app.dump().await;
    let items: Vec<Value> = (0..200).map(|_| receive("TEE-M", "wh-1", 1)).collect();
    let body = movements(items).to_string();
    assert!(body.len() > 4096);
    let address = app.base_url.trim_start_matches("http://").to_owned();
    // Plain blocking I/O on a thread of its own: the request is framed by hand.
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        let head = format!(
            "POST /v1/stock/movements HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).expect("write head");
        for chunk in body.as_bytes().chunks(1000) {
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
            if stream.write_all(&framed).is_err() {
                break; // the server may answer and close before the whole body is sent
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).to_lowercase()
    })
    .await
    .expect("raw request");
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(
        answer.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(
        answer.contains("urn:stockhub:problem:body-too-large"),
        "{answer}"
    );
    assert_eq!(app.dump().await, before);
}
}
