//! Webhook deliveries (issue 3, Acceptance: signatures, order of delivery, the real Shopify
//! payloads), posted to `POST /webhooks/{channel}` the way the channels send them. Every signed
//! delivery here is signed by this test — base64(HMAC-SHA256(body, the channel's webhook secret)),
//! API_FACTS §1.6 and §2.3 — with its own SHA-256, so that nothing of stockhub's or of the
//! simulator's is trusted to produce what stockhub then checks.
//!
//! (a) A bad or missing signature gets 401, is archived as rejected and changes nothing else;
//!     WooCommerce's unsigned creation ping gets 200 and is archived as a ping; re-applying an
//!     archived event applies it at most once.
//! (b) For Shopify and WooCommerce, a cancel before its create, the same delivery five times
//!     (one after another and all at once), and an update that changes line quantities end in the
//!     same state as the clean sequence.
//! (c) Shopify's real example payloads (`shared/fixtures/shopify/webhooks/`) keep every 64-bit id
//!     exactly and have the right stock effect.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use stockhub_testkit::{spawn_app, Reply, TestApp};

const SHOP_SECRET: &str = "shpss_delivery_secret";
const WOO_SECRET: &str = "woo-delivery-secret";

// ---------------------------------------------------------------------------------------------
// HMAC-SHA256 and base64, written here from FIPS 180-4, RFC 2104 and RFC 4648

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 64];
        for (word, bytes) in w.iter_mut().zip(block.chunks(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for (k, word) in K.iter().zip(w) {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(*k)
                .wrapping_add(word);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x36)
        .chain(message.iter().copied())
        .collect();
    let outer: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(sha256(&inner))
        .collect();
    sha256(&outer)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// base64(HMAC-SHA256(body, secret)): Shopify's `X-Shopify-Hmac-Sha256` and WooCommerce's
/// `X-WC-Webhook-Signature`.
fn sign(secret: &str, body: &[u8]) -> String {
    base64(&hmac_sha256(secret.as_bytes(), body))
}

#[test]
fn the_signature_of_this_test_is_hmac_sha256_in_base64() {
    // RFC 4231, test cases 1 and 2; a key longer than a block (test case 6).
    assert_eq!(
        sign("Jefe", b"what do ya want for nothing?"),
        "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
    );
    let key = String::from_utf8(vec![0x0b; 20]).expect("ascii");
    assert_eq!(
        base64(&hmac_sha256(key.as_bytes(), b"Hi There")),
        base64(&[
            0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53, 0x5c, 0xa8, 0xaf, 0xce, 0xaf, 0x0b,
            0xf1, 0x2b, 0x88, 0x1d, 0xc2, 0x00, 0xc9, 0x83, 0x3d, 0xa7, 0x26, 0xe9, 0x37, 0x6c,
            0x2e, 0x32, 0xcf, 0xf7
        ])
    );
    let long_key = vec![0xaa; 131];
    assert_eq!(
        hmac_sha256(
            &long_key,
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )[..4],
        [0x60, 0xe4, 0x31, 0x59]
    );
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
}

// ---------------------------------------------------------------------------------------------
// Deliveries

/// One webhook request as a channel sends it.
#[derive(Debug, Clone)]
struct Delivery {
    channel: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Delivery {
    /// A Shopify delivery (API_FACTS §1.6): `X-Shopify-Topic`, `X-Shopify-Hmac-Sha256`,
    /// `X-Shopify-Shop-Domain`, `X-Shopify-API-Version`, `X-Shopify-Webhook-Id` (one per
    /// delivery, kept across retries), `X-Shopify-Event-Id` (shared by one merchant action's
    /// deliveries), `X-Shopify-Triggered-At`.
    fn shopify(topic: &str, body: &Value, event: &str, triggered_at: &str) -> Self {
        Self::shopify_raw(
            "shop",
            topic,
            body.to_string().into_bytes(),
            event,
            triggered_at,
        )
    }

    fn shopify_raw(
        channel: &'static str,
        topic: &str,
        body: Vec<u8>,
        event: &str,
        triggered_at: &str,
    ) -> Self {
        let headers = vec![
            ("content-type".into(), "application/json".into()),
            ("x-shopify-topic".into(), topic.into()),
            ("x-shopify-hmac-sha256".into(), sign(SHOP_SECRET, &body)),
            (
                "x-shopify-shop-domain".into(),
                "delivery.myshopify.com".into(),
            ),
            ("x-shopify-api-version".into(), "2026-01".into()),
            (
                "x-shopify-webhook-id".into(),
                format!("{event}-{}", topic.replace('/', "-")),
            ),
            ("x-shopify-event-id".into(), event.into()),
            ("x-shopify-triggered-at".into(), triggered_at.into()),
        ];
        Self {
            channel,
            headers,
            body,
        }
    }

    /// A WooCommerce delivery (API_FACTS §2.3, §10). `X-WC-Webhook-Delivery-ID` is a hash of the
    /// webhook id and the current second: deliveries in one second share it, so it is the same
    /// here for every delivery of one webhook.
    fn woo(topic: &str, body: &Value) -> Self {
        let body = body.to_string().into_bytes();
        let (resource, event) = topic.split_once('.').expect("resource.event");
        let webhook_id = if event == "created" { "11" } else { "12" };
        let headers = vec![
            ("content-type".into(), "application/json".into()),
            (
                "user-agent".into(),
                "WooCommerce/9.4.0 Hookshot (WordPress/6.7.1)".into(),
            ),
            ("x-wc-webhook-source".into(), "https://shop.example/".into()),
            ("x-wc-webhook-topic".into(), topic.into()),
            ("x-wc-webhook-resource".into(), resource.into()),
            ("x-wc-webhook-event".into(), event.into()),
            ("x-wc-webhook-signature".into(), sign(WOO_SECRET, &body)),
            ("x-wc-webhook-id".into(), webhook_id.into()),
            (
                "x-wc-webhook-delivery-id".into(),
                // As WooCommerce makes it: a hash of the webhook id and the second (fixed here).
                sha256(format!("{webhook_id}1772377200").as_bytes())[..16]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            ),
        ];
        Self {
            channel: "woo",
            headers,
            body,
        }
    }

    fn without(mut self, header: &str) -> Self {
        self.headers.retain(|(k, _)| k != header);
        self
    }

    fn with(mut self, header: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| k != header);
        self.headers.push((header.into(), value.into()));
        self
    }
}

async fn post(app: &TestApp, d: &Delivery) -> Reply {
    post_to(&app.client, &app.base_url, d).await
}

async fn post_to(client: &reqwest::Client, base_url: &str, d: &Delivery) -> Reply {
    let mut request = client.post(format!("{base_url}/webhooks/{}", d.channel));
    for (k, v) in &d.headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let res = request
        .body(d.body.clone())
        .send()
        .await
        .expect("webhook sent");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = res.bytes().await.unwrap_or_default();
    Reply {
        status,
        content_type,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// Posts a delivery and expects the channel to be acknowledged (200).
async fn deliver(app: &TestApp, d: &Delivery) -> Value {
    let reply = post(app, d).await;
    assert_eq!(
        reply.status,
        200,
        "{} delivery {:?} → {reply:#?}",
        d.channel,
        String::from_utf8_lossy(&d.body)
    );
    reply.body
}

/// `RUST_LOG=…` shows stockhub's logs.
fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
        .with_test_writer()
        .try_init();
}

async fn ok(reply: Reply) -> Value {
    assert!((200..300).contains(&reply.status), "{reply:#?}");
    reply.body
}

// ---------------------------------------------------------------------------------------------
// The stockhub these deliveries go to

const SKUS: &[&str] = &["D-1", "D-2", "D-3", "W-1", "W-2", "W-3"];

/// stockhub with 10 units of each SKU at `wh1`, a Shopify channel `shop` and a WooCommerce
/// channel `woo` (stores that are never called: nothing here needs their APIs), no listings.
async fn stockhub() -> TestApp {
    let app = spawn_app().await;
    ok(app.put("/v1/locations/wh1", &json!({})).await).await;
    for sku in SKUS {
        ok(app.put(&format!("/v1/variants/{sku}"), &json!({})).await).await;
    }
    let movements: Vec<Value> = SKUS
        .iter()
        .map(|s| json!({ "kind": "receive", "sku": s, "location": "wh1", "quantity": 10 }))
        .collect();
    ok(app
        .post("/v1/stock/movements", &json!({ "movements": movements }))
        .await)
    .await;
    ok(app
        .put(
            "/v1/channels/shop",
            &json!({ "kind": "shopify", "base_url": "http://127.0.0.1:9", "access_token": "shpat_x",
                     "location_id": "gid://shopify/Location/1", "webhook_secret": SHOP_SECRET }),
        )
        .await)
    .await;
    ok(app
        .put(
            "/v1/channels/woo",
            &json!({ "kind": "woocommerce", "base_url": "http://127.0.0.1:9", "consumer_key": "ck_x",
                     "consumer_secret": "cs_x", "webhook_secret": WOO_SECRET }),
        )
        .await)
    .await;
    app
}

/// The dump of every table but the inbound event archive.
async fn dump_without_archive(app: &TestApp) -> String {
    let dump = app.dump().await;
    let mut out = String::new();
    let mut keep = true;
    for line in dump.lines() {
        if let Some(table) = line.strip_prefix("== ") {
            keep = table != "inbound_events";
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    ok(app.get(&format!("/v1/events?{query}&limit=1000")).await)
        .await
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// What the deliveries left: every SKU's levels, and every order's status, version and lines.
async fn state(app: &TestApp, orders: &[(&str, &str)]) -> Value {
    let mut stock = BTreeMap::new();
    for sku in SKUS {
        let view = ok(app.get(&format!("/v1/stock/{sku}")).await).await;
        stock.insert(sku.to_string(), view["levels"].clone());
    }
    let mut books = BTreeMap::new();
    for (channel, id) in orders {
        let reply = app.get(&format!("/v1/orders/{channel}/{id}")).await;
        let order = if reply.status == 200 {
            // An allocation that holds nothing (all zero) is bookkeeping, not state.
            let mut lines = reply.body["lines"].clone();
            for line in lines.as_array_mut().into_iter().flatten() {
                if let Some(allocations) = line["allocations"].as_array_mut() {
                    allocations.retain(|a| {
                        ["committed", "shipped", "restocked"]
                            .iter()
                            .any(|k| a[*k].as_i64().unwrap_or(0) != 0)
                    });
                }
            }
            json!({ "status": reply.body["status"], "version": reply.body["version"],
                    "lines": lines })
        } else {
            json!({ "missing": reply.status })
        };
        books.insert(format!("{channel}/{id}"), order);
    }
    let report = app
        .store
        .read(stockhub_store::engine::verify::verify)
        .await
        .expect("verify");
    assert!(
        report.differences.is_empty(),
        "the ledger does not explain the projections: {:#?}",
        report.differences
    );
    json!({ "stock": stock, "orders": books })
}

/// Where two states differ, path by path.
fn differences(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                differences(
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                    &format!("{path}/{key}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} ≠ {b}")),
        _ => {}
    }
}

/// Where two runs' states differ (stock levels first, then order records); empty if nowhere.
fn compare(got: &Value, clean: &Value, what: &str) -> Vec<String> {
    let mut stock = Vec::new();
    differences(&got["stock"], &clean["stock"], "stock", &mut stock);
    let mut orders = Vec::new();
    differences(&got["orders"], &clean["orders"], "orders", &mut orders);
    if stock.is_empty() && orders.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "{what}: the state differs from the clean sequence's (left: this run, right: clean)\n  \
         stock levels: {}\n  order records: {}",
        if stock.is_empty() {
            "the same".to_owned()
        } else {
            stock.join("\n    ")
        },
        if orders.is_empty() {
            "the same".to_owned()
        } else {
            orders.join("\n    ")
        }
    )]
}

#[track_caller]
fn assert_none(found: &[String]) {
    assert!(found.is_empty(), "{}", found.join("\n\n"));
}

fn level(state: &Value, sku: &str) -> (i64, i64) {
    let levels = state["stock"][sku].as_array().expect("levels");
    let l = levels.first().cloned().unwrap_or(json!({}));
    (
        l["on_hand"].as_i64().unwrap_or(0),
        l["committed"].as_i64().unwrap_or(0),
    )
}

fn line<'a>(state: &'a Value, order: &str, line_id: &str) -> &'a Value {
    state["orders"][order]["lines"]
        .as_array()
        .and_then(|lines| lines.iter().find(|l| l["line_id"] == line_id))
        .unwrap_or_else(|| panic!("line {line_id} of {order} in {state:#}"))
}

/// Runs deliveries on a fresh stockhub, one after another; returns the state they left.
async fn run(deliveries: &[Delivery], orders: &[(&str, &str)]) -> Value {
    let app = stockhub().await;
    for d in deliveries {
        deliver(&app, d).await;
    }
    state(&app, orders).await
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// A Shopify REST Order as webhooks carry it (API_FACTS §9): 64-bit ids, times in whole seconds.
struct ShopifyLine {
    id: u64,
    sku: &'static str,
    quantity: i64,
    current: i64,
    fulfillable: i64,
}

fn shopify_order(
    id: u64,
    updated_at: &str,
    financial_status: &str,
    cancelled_at: Option<&str>,
    lines: &[ShopifyLine],
    fulfillments: Value,
    refunds: Value,
) -> Value {
    let line_items: Vec<Value> = lines
        .iter()
        .map(|l| {
            let fulfilled = l.current - l.fulfillable;
            json!({ "id": l.id, "admin_graphql_api_id": format!("gid://shopify/LineItem/{}", l.id),
                    "variant_id": l.id + 1_000, "product_id": 632_910_392u64, "sku": l.sku,
                    "title": "Delivery test", "quantity": l.quantity, "current_quantity": l.current,
                    "fulfillable_quantity": l.fulfillable,
                    "fulfillment_status": if l.fulfillable == 0 && l.current > 0 { json!("fulfilled") }
                                          else if fulfilled > 0 { json!("partial") } else { Value::Null },
                    "fulfillment_service": "manual", "requires_shipping": true, "gift_card": false,
                    "variant_inventory_management": "shopify", "product_exists": true, "price": "19.00" })
        })
        .collect();
    json!({
        "id": id, "admin_graphql_api_id": format!("gid://shopify/Order/{id}"), "name": "#1042",
        "order_number": 1042, "created_at": "2026-03-01T10:00:00-05:00", "updated_at": updated_at,
        "processed_at": "2026-03-01T10:00:00-05:00", "cancelled_at": cancelled_at,
        "cancel_reason": cancelled_at.map(|_| "customer"), "financial_status": financial_status,
        "fulfillment_status": Value::Null, "currency": "USD", "test": false, "source_name": "web",
        "location_id": Value::Null, "line_items": line_items, "fulfillments": fulfillments,
        "refunds": refunds
    })
}

fn shopify_refund(
    id: u64,
    order_id: u64,
    created_at: &str,
    lines: &[(u64, u64, i64, &str)],
) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|(refund_line_id, line_id, quantity, restock_type)| {
            json!({ "id": refund_line_id, "line_item_id": line_id, "location_id": Value::Null,
                    "quantity": quantity, "restock_type": restock_type, "subtotal": 19.0,
                    "total_tax": 0.0, "line_item": { "id": line_id } })
        })
        .collect();
    json!({ "id": id, "order_id": order_id, "created_at": created_at, "processed_at": created_at,
            "note": Value::Null, "restock": false, "refund_line_items": items, "transactions": [],
            "order_adjustments": [] })
}

const ORDER: u64 = 5_700_000_000_000_000_001;
const L1: u64 = 5_700_000_000_000_000_011;
const L2: u64 = 5_700_000_000_000_000_012;

/// One Shopify order's life, one merchant action after another (each action's deliveries share
/// an event id; `updated_at` moves on by two seconds per action):
/// 1. created: D-1 × 3, D-2 × 2, paid;
/// 2. edited: D-1 down to 1, D-2 up to 4;
/// 3. 2 units of D-2 fulfilled (a partial fulfilment);
/// 4. refund R1: 1 unfulfilled D-1 (restock `cancel`) and 1 shipped D-2 returned (`return`);
/// 5. cancelled with the remaining 2 unfulfilled D-2 refunded (`cancel`).
fn shopify_life() -> Vec<Vec<Delivery>> {
    let t = |s: u32| format!("2026-03-01T10:00:{s:02}-05:00");
    let at = |s: u32| format!("2026-03-01T15:00:{s:02}.123Z");
    let fulfilled = json!([{ "id": 9_100_000_000_000_000_001u64, "status": "success",
                             "line_items": [{ "id": L2, "quantity": 2 }] }]);
    let r1 = shopify_refund(
        9_200_000_000_000_000_001,
        ORDER,
        &t(6),
        &[
            (9_300_000_000_000_000_001, L1, 1, "cancel"),
            (9_300_000_000_000_000_002, L2, 1, "return"),
        ],
    );
    let r2 = shopify_refund(
        9_200_000_000_000_000_002,
        ORDER,
        &t(8),
        &[(9_300_000_000_000_000_003, L2, 2, "cancel")],
    );
    let line = |id, sku, quantity, current, fulfillable| ShopifyLine {
        id,
        sku,
        quantity,
        current,
        fulfillable,
    };
    let created = shopify_order(
        ORDER,
        &t(0),
        "paid",
        None,
        &[line(L1, "D-1", 3, 3, 3), line(L2, "D-2", 2, 2, 2)],
        json!([]),
        json!([]),
    );
    let edited = shopify_order(
        ORDER,
        &t(2),
        "paid",
        None,
        &[line(L1, "D-1", 3, 1, 1), line(L2, "D-2", 4, 4, 4)],
        json!([]),
        json!([]),
    );
    let partly = shopify_order(
        ORDER,
        &t(4),
        "paid",
        None,
        &[line(L1, "D-1", 3, 1, 1), line(L2, "D-2", 4, 4, 2)],
        fulfilled.clone(),
        json!([]),
    );
    let refunded = shopify_order(
        ORDER,
        &t(6),
        "partially_refunded",
        None,
        &[line(L1, "D-1", 3, 0, 0), line(L2, "D-2", 4, 3, 2)],
        fulfilled.clone(),
        json!([r1.clone()]),
    );
    let cancelled = shopify_order(
        ORDER,
        &t(8),
        "refunded",
        Some(&t(8)),
        &[line(L1, "D-1", 3, 0, 0), line(L2, "D-2", 4, 1, 0)],
        fulfilled,
        json!([r1.clone(), r2.clone()]),
    );
    vec![
        vec![Delivery::shopify("orders/create", &created, "ev-1", &at(0))],
        vec![Delivery::shopify("orders/updated", &edited, "ev-2", &at(2))],
        vec![
            Delivery::shopify("orders/partially_fulfilled", &partly, "ev-3", &at(4)),
            Delivery::shopify("orders/updated", &partly, "ev-3", &at(4)),
        ],
        vec![
            Delivery::shopify("refunds/create", &r1, "ev-4", &at(6)),
            Delivery::shopify("orders/updated", &refunded, "ev-4", &at(6)),
        ],
        vec![
            Delivery::shopify("orders/cancelled", &cancelled, "ev-5", &at(8)),
            Delivery::shopify("refunds/create", &r2, "ev-5", &at(8)),
            Delivery::shopify("orders/updated", &cancelled, "ev-5", &at(8)),
        ],
    ]
}

const SHOPIFY_ORDERS: &[(&str, &str)] = &[("shop", "5700000000000000001")];

/// A WooCommerce REST v3 order as its webhooks carry it (API_FACTS §10).
fn woo_order(id: u64, status: &str, modified_gmt: &str, lines: &[(u64, &str, u64, i64)]) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|(line_id, sku, variation, quantity)| {
            json!({ "id": line_id, "name": format!("Woo {sku}"), "product_id": 700, "variation_id": variation,
                    "quantity": quantity, "tax_class": "", "subtotal": "12.00", "subtotal_tax": "0.00",
                    "total": "12.00", "total_tax": "0.00", "taxes": [], "meta_data": [], "sku": sku,
                    "price": 12 })
        })
        .collect();
    json!({ "id": id, "parent_id": 0, "number": id.to_string(), "order_key": format!("wc_order_{id}"),
            "created_via": "checkout", "status": status, "currency": "USD",
            "date_created": "2026-03-01T07:00:00", "date_created_gmt": "2026-03-01T10:00:00",
            "date_modified": modified_gmt.replace("T10", "T07"), "date_modified_gmt": modified_gmt,
            "total": "36.00", "line_items": items, "refunds": [] })
}

/// Two WooCommerce orders' lives:
/// - 9001: created processing (W-1 × 2, W-3 × 1); W-1 edited up to 3; completed (shipped);
/// - 9002: created processing (W-2 × 2); cancelled.
fn woo_life() -> Vec<Vec<Delivery>> {
    let t = |s: u32| format!("2026-03-01T10:00:{s:02}");
    vec![
        vec![Delivery::woo(
            "order.created",
            &woo_order(
                9001,
                "processing",
                &t(0),
                &[(501, "W-1", 701, 2), (502, "W-3", 703, 1)],
            ),
        )],
        vec![Delivery::woo(
            "order.created",
            &woo_order(9002, "processing", &t(1), &[(511, "W-2", 702, 2)]),
        )],
        vec![Delivery::woo(
            "order.updated",
            &woo_order(
                9001,
                "processing",
                &t(2),
                &[(501, "W-1", 701, 3), (502, "W-3", 703, 1)],
            ),
        )],
        vec![Delivery::woo(
            "order.updated",
            &woo_order(9002, "cancelled", &t(3), &[(511, "W-2", 702, 2)]),
        )],
        vec![Delivery::woo(
            "order.updated",
            &woo_order(
                9001,
                "completed",
                &t(4),
                &[(501, "W-1", 701, 3), (502, "W-3", 703, 1)],
            ),
        )],
    ]
}

const WOO_ORDERS: &[(&str, &str)] = &[("woo", "9001"), ("woo", "9002")];

fn flat(actions: &[Vec<Delivery>]) -> Vec<Delivery> {
    actions.iter().flatten().cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// (a) Signatures, pings, replay

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_missing_signature_is_refused_archived_and_changes_nothing() {
    let app = stockhub().await;
    let created = &shopify_life()[0][0];
    let woo_created = &woo_life()[0][0];
    let before = dump_without_archive(&app).await;
    let other_body = b"{\"id\":1}".to_vec();
    let refused = [
        created.clone().with(
            "x-shopify-hmac-sha256",
            &sign("not-the-secret", &created.body),
        ),
        created.clone().without("x-shopify-hmac-sha256"),
        created
            .clone()
            .with("x-shopify-hmac-sha256", &sign(SHOP_SECRET, &other_body)),
        created.clone().with("x-shopify-hmac-sha256", "garbage"),
        woo_created.clone().with(
            "x-wc-webhook-signature",
            &sign("not-the-secret", &woo_created.body),
        ),
        woo_created.clone().without("x-wc-webhook-signature"),
    ];
    for d in &refused {
        let reply = post(&app, d).await;
        assert_eq!(reply.status, 401, "{reply:#?}");
    }
    assert_eq!(
        dump_without_archive(&app).await,
        before,
        "a refused delivery changed something besides the inbound event archive"
    );
    let rejected = events(&app, "outcome=rejected").await;
    assert_eq!(rejected.len(), refused.len(), "{rejected:#?}");
    for e in &rejected {
        assert_eq!(e["verdict"], "invalid", "{e}");
        let sent = refused.iter().find(|d| {
            e["channel"] == d.channel
                && e["body"].as_str() == Some(&*String::from_utf8_lossy(&d.body))
        });
        assert!(
            sent.is_some(),
            "the archive keeps the body as received: {e}"
        );
        assert!(e["headers"].is_object(), "headers are archived: {e}");
    }
    // A rejected delivery cannot be applied later either.
    let id = rejected[0]["id"].as_i64().expect("event id");
    let replay = app
        .post(&format!("/v1/events/{id}/replay"), &json!({}))
        .await;
    assert!((400..500).contains(&replay.status), "{replay:#?}");
    assert_eq!(dump_without_archive(&app).await, before);
    // The properly signed delivery is applied.
    assert_eq!(deliver(&app, created).await["outcome"], "applied");
    assert_eq!(deliver(&app, woo_created).await["outcome"], "applied");
}
}

/// A webhook secret changed through the API applies to the very next delivery: the connection
/// stockhub keeps between store reads is dropped when the channel changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_secret_changed_through_the_api_applies_at_once() {
    let app = stockhub().await;
    let created = &shopify_life()[0][0];
    let updated = &shopify_life()[1][0];
    // The channel's connection is in use (and kept) before the change.
    assert_eq!(deliver(&app, created).await["outcome"], "applied");
    let new_secret = "shpss_rotated";
    ok(app
        .put(
            "/v1/channels/shop",
            &json!({ "kind": "shopify", "base_url": "http://127.0.0.1:9", "access_token": "shpat_x",
                     "location_id": "gid://shopify/Location/1", "webhook_secret": new_secret }),
        )
        .await)
    .await;
    let old_signature = post(&app, updated).await;
    assert_eq!(old_signature.status, 401, "{old_signature:#?}");
    let resigned = updated
        .clone()
        .with("x-shopify-hmac-sha256", &sign(new_secret, &updated.body));
    assert_eq!(deliver(&app, &resigned).await["outcome"], "applied");
}

stockhub_testkit::on_both_backends! {
/// WooCommerce pings a webhook when it is created: a form-encoded `webhook_id=<id>` with no
/// signature, which must get 200 (or WooCommerce does not save the webhook as delivering).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woocommerces_unsigned_creation_ping_is_acknowledged_and_archived_as_a_ping() {
    let app = stockhub().await;
    let before = dump_without_archive(&app).await;
    // Hand-made, as API_FACTS §2.3 describes it.
    let ping = Delivery {
        channel: "woo",
        headers: vec![
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            (
                "user-agent".into(),
                "WooCommerce/9.4.0 Hookshot (WordPress/6.7.1)".into(),
            ),
        ],
        body: b"webhook_id=12".to_vec(),
    };
    assert_eq!(deliver(&app, &ping).await["outcome"], "ping");
    // And from the simulated store, which pings the webhooks it creates.
    let woo = stockhub_sim::woocommerce::WooSim::start(Default::default())
        .await
        .expect("WooCommerce store");
    woo.add_webhook(stockhub_sim::woocommerce::WebhookSpec {
        name: None,
        topic: "order.updated".into(),
        delivery_url: format!("{}/webhooks/woo", app.base_url),
        secret: Some(WOO_SECRET.into()),
        status: None,
    })
    .expect("webhook");
    assert!(woo.wait_for_deliveries(Duration::from_secs(10)).await);
    let pinged = woo.deliveries();
    assert!(
        pinged.iter().any(|d| d.ping && d.status == Some(200)),
        "{pinged:#?}"
    );
    let pings = events(&app, "channel=woo&outcome=ping").await;
    assert_eq!(pings.len(), 2, "{pings:#?}");
    assert!(pings.iter().all(|e| e["verdict"] == "ping"), "{pings:#?}");
    // A form body that is not a ping, unsigned, is still refused.
    let not_a_ping = Delivery {
        body: b"webhook_id=12&status=completed".to_vec(),
        ..ping.clone()
    };
    assert_eq!(post(&app, &not_a_ping).await.status, 401);
    assert_eq!(dump_without_archive(&app).await, before);
}
}

/// The ledger, the levels and the order of a state, as one comparable text.
async fn books(app: &TestApp) -> String {
    let dump = app.dump().await;
    let mut out = String::new();
    let mut keep = false;
    for line in dump.lines() {
        if let Some(table) = line.strip_prefix("== ") {
            keep = matches!(
                table,
                "ledger" | "stock_levels" | "order_lines" | "allocations" | "channel_refunds"
            );
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(out.contains("== ledger"), "the dump has a ledger: {dump}");
    out
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_an_archived_event_applies_it_at_most_once() {
    trace();
    let app = stockhub().await;
    let life = shopify_life();
    let created = deliver(&app, &life[0][0]).await;
    assert_eq!(created["outcome"], "applied");
    let created_id = created["event_id"].as_i64().expect("event id");
    let after_create = books(&app).await;
    let view = state(&app, SHOPIFY_ORDERS).await;
    assert_eq!(level(&view, "D-1"), (10, 3));
    assert_eq!(level(&view, "D-2"), (10, 2));

    // Re-applying it, once or five times at once, applies nothing more.
    let replay = ok(app
        .post(&format!("/v1/events/{created_id}/replay"), &json!({}))
        .await)
    .await;
    assert_eq!(replay["event_id"], created_id, "{replay}");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let client = app.client.clone();
        let url = format!("{}/v1/events/{created_id}/replay", app.base_url);
        set.spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("replay")
                .status()
                .as_u16()
        });
    }
    while let Some(status) = set.join_next().await {
        assert_eq!(status.expect("task"), 200);
    }
    assert_eq!(
        books(&app).await,
        after_create,
        "a replay applied the order again"
    );

    // A duplicate delivery is archived as one, and replaying it applies nothing either.
    let again = deliver(&app, &life[0][0]).await;
    assert_eq!(again["outcome"], "duplicate", "{again}");
    let duplicate_id = again["event_id"].as_i64().expect("event id");
    let replayed_duplicate = app
        .post(&format!("/v1/events/{duplicate_id}/replay"), &json!({}))
        .await;
    assert_eq!(books(&app).await, after_create);

    // After the order moved on, replaying its creation does not take it back.
    for d in flat(&life[1..4]) {
        deliver(&app, &d).await;
    }
    let moved = books(&app).await;
    let moved_state = state(&app, SHOPIFY_ORDERS).await;
    ok(app
        .post(&format!("/v1/events/{created_id}/replay"), &json!({}))
        .await)
    .await;
    app.post(&format!("/v1/events/{duplicate_id}/replay"), &json!({}))
        .await;
    // And a refund replayed is merged by its id, not applied twice.
    let refunds = events(&app, "channel=shop&outcome=applied").await;
    let refund_event = refunds
        .iter()
        .find(|e| e["topic"] == "refunds/create")
        .expect("the refund's event");
    for _ in 0..2 {
        ok(app
            .post(
                &format!("/v1/events/{}/replay", refund_event["id"]),
                &json!({}),
            )
            .await)
        .await;
    }
    assert_eq!(
        books(&app).await,
        moved,
        "replaying old events changed the books"
    );
    assert_eq!(state(&app, SHOPIFY_ORDERS).await, moved_state);
    // Replaying an event archived as a duplicate is an operator's ordinary request (`any
    // archived event can be re-applied`): it must be answered, not fail with 500.
    assert!(
        (200..300).contains(&replayed_duplicate.status),
        "replaying the duplicate event {duplicate_id} (a repeat of event {created_id}) answered \
         {replayed_duplicate:#?}"
    );
}
}

// ---------------------------------------------------------------------------------------------
// (b) Order of delivery does not matter

stockhub_testkit::on_both_backends! {
/// The clean sequence first: what it leaves is what DESIGN §3 says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_sequences_leave_what_design_says() {
    let shop = run(&flat(&shopify_life()), SHOPIFY_ORDERS).await;
    // D-1: 3 ordered, edited down to 1, that one refunded unfulfilled: nothing left promised.
    assert_eq!(level(&shop, "D-1"), (10, 0), "{shop:#}");
    let l1 = line(&shop, "shop/5700000000000000001", &L1.to_string());
    assert_eq!(
        (l1["committed"].as_i64(), l1["shipped"].as_i64()),
        (Some(0), Some(0)),
        "{l1}"
    );
    // D-2: 2 ordered, edited up to 4, 2 shipped, 1 of them returned and restocked, the other 2
    // cancelled: 10 − 2 + 1 on hand, nothing committed.
    assert_eq!(level(&shop, "D-2"), (9, 0), "{shop:#}");
    let l2 = line(&shop, "shop/5700000000000000001", &L2.to_string());
    assert_eq!(
        (
            l2["shipped"].as_i64(),
            l2["returned"].as_i64(),
            l2["restocked"].as_i64(),
            l2["cancelled"].as_i64(),
            l2["committed"].as_i64()
        ),
        (Some(2), Some(1), Some(1), Some(2), Some(0)),
        "{l2}"
    );
    assert_eq!(
        shop["orders"]["shop/5700000000000000001"]["status"],
        "cancelled"
    );

    let woo = run(&flat(&woo_life()), WOO_ORDERS).await;
    assert_eq!(level(&woo, "W-1"), (7, 0), "3 shipped: {woo:#}");
    assert_eq!(level(&woo, "W-3"), (9, 0), "1 shipped: {woo:#}");
    assert_eq!(level(&woo, "W-2"), (10, 0), "cancelled: {woo:#}");
}
}

stockhub_testkit::on_both_backends! {
/// Action 4 of the life, delivered in order: a refund whose line for D-2 is `restock_type:
/// return` — by definition a shipped unit coming back (API_FACTS §1.6: RETURN = fulfilled items
/// restocked) — on a line with 2 units shipped and 2 still to ship. stockhub must book a return
/// (and restock it), and keep the 2 unshipped units committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_a_return_on_a_partly_fulfilled_line_is_booked_as_a_return() {
    let life = shopify_life();
    let shipped = clean_until(&life, 3, SHOPIFY_ORDERS).await;
    assert_eq!(
        level(&shipped, "D-2"),
        (8, 2),
        "2 of 4 shipped: {shipped:#}"
    );
    let returned = clean_until(&life, 4, SHOPIFY_ORDERS).await;
    let l2 = line(&returned, "shop/5700000000000000001", &L2.to_string());
    assert_eq!(
        (
            level(&returned, "D-2"),
            l2["committed"].as_i64(),
            l2["returned"].as_i64(),
            l2["restocked"].as_i64(),
            l2["cancelled"].as_i64()
        ),
        ((9, 2), Some(2), Some(1), Some(1), Some(0)),
        "one shipped unit returned and restocked, two still to ship; the line reads {l2}"
    );
}
}

/// The state after only some of the actions, delivered cleanly.
async fn clean_until(actions: &[Vec<Delivery>], n: usize, orders: &[(&str, &str)]) -> Value {
    run(&flat(&actions[..n]), orders).await
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_a_cancel_before_its_create_ends_as_the_clean_sequence() {
    let mut found = Vec::new();
    let life = shopify_life();
    // Created, then cancelled (actions 1 and 5 only: nothing between).
    let create = life[0].clone();
    let cancel: Vec<Delivery> = life[4]
        .iter()
        .filter(|d| {
            d.headers
                .iter()
                .any(|(k, v)| k == "x-shopify-topic" && v == "orders/cancelled")
        })
        .cloned()
        .collect();
    let clean = run(&[create.clone(), cancel.clone()].concat(), SHOPIFY_ORDERS).await;
    let reversed = run(&[cancel, create].concat(), SHOPIFY_ORDERS).await;
    found.extend(compare(&reversed, &clean, "cancel, then create"));
    assert_eq!(level(&clean, "D-1"), (10, 0), "{clean:#}");
    // The cancelled payload says 2 of D-2 had shipped (its fulfilment), and the return of one.
    assert_eq!(
        clean["orders"]["shop/5700000000000000001"]["status"],
        "cancelled"
    );
    // The whole life, cancel first and the rest after.
    let mut scrambled = life[4].clone();
    scrambled.extend(flat(&life[..4]));
    found.extend(compare(
        &run(&scrambled, SHOPIFY_ORDERS).await,
        &run(&flat(&life), SHOPIFY_ORDERS).await,
        "the cancel's deliveries, then the rest of the life",
    ));
    assert_none(&found);
}
}

stockhub_testkit::on_both_backends! {
/// The smallest case of the above: a cancelled order stockhub sees first (its earlier deliveries
/// late, lost, or found later by backfill — which reads the order as it is now) already shipped 2
/// units of D-2 and took 1 back. Those units left the shelf and one came back: stockhub must book
/// them ("shipped units stay shipped in every state"), as the clean sequence does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_a_cancelled_order_seen_first_still_books_what_it_shipped_and_took_back() {
    let life = shopify_life();
    let clean = run(&flat(&life), SHOPIFY_ORDERS).await;
    assert_eq!(level(&clean, "D-2"), (9, 0), "{clean:#}");
    let only_the_cancel = run(&life[4], SHOPIFY_ORDERS).await;
    let l2 = line(
        &only_the_cancel,
        "shop/5700000000000000001",
        &L2.to_string(),
    );
    assert_eq!(
        level(&only_the_cancel, "D-2"),
        (9, 0),
        "2 shipped and 1 returned and restocked: 10 − 2 + 1 on hand; the line reads {l2}"
    );
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_the_same_delivery_five_times_ends_as_once() {
    let mut found = Vec::new();
    let life = shopify_life();
    let clean = run(&flat(&life), SHOPIFY_ORDERS).await;
    // Each delivery five times in a row.
    let fivefold: Vec<Delivery> = flat(&life)
        .into_iter()
        .flat_map(|d| std::iter::repeat_n(d, 5))
        .collect();
    found.extend(compare(
        &run(&fivefold, SHOPIFY_ORDERS).await,
        &clean,
        "each delivery five times",
    ));
    // Each action's deliveries five times, all at once.
    let app = stockhub().await;
    for action in &life {
        let mut set = tokio::task::JoinSet::new();
        for d in action {
            for _ in 0..5 {
                let (client, base, d) = (app.client.clone(), app.base_url.clone(), d.clone());
                set.spawn(async move { post_to(&client, &base, &d).await });
            }
        }
        let mut applied = BTreeMap::<String, usize>::new();
        while let Some(reply) = set.join_next().await {
            let reply = reply.expect("task");
            assert_eq!(reply.status, 200, "{reply:#?}");
            *applied
                .entry(reply.body["outcome"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
        assert_eq!(
            applied.get("duplicate"),
            Some(&(action.len() * 4)),
            "{applied:?}"
        );
    }
    found.extend(compare(
        &state(&app, SHOPIFY_ORDERS).await,
        &clean,
        "each delivery five times at once",
    ));
    assert_none(&found);
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_an_update_that_changes_line_quantities_ends_as_the_clean_sequence() {
    let mut found = Vec::new();
    let life = shopify_life();
    let clean = clean_until(&life, 2, SHOPIFY_ORDERS).await;
    assert_eq!(level(&clean, "D-1"), (10, 1), "edited down to 1: {clean:#}");
    assert_eq!(level(&clean, "D-2"), (10, 4), "edited up to 4: {clean:#}");
    let reversed = run(&[life[1].clone(), life[0].clone()].concat(), SHOPIFY_ORDERS).await;
    found.extend(compare(&reversed, &clean, "the edit, then the create"));
    // Every action of the life in reverse order, each twice.
    let mut backwards: Vec<Delivery> = flat(&life).into_iter().rev().collect();
    backwards.extend(backwards.clone());
    found.extend(compare(
        &run(&backwards, SHOPIFY_ORDERS).await,
        &run(&flat(&life), SHOPIFY_ORDERS).await,
        "the whole life backwards, twice",
    ));
    assert_none(&found);
}
}

stockhub_testkit::on_both_backends! {
/// Shopify stamps `updated_at` in whole seconds: an edit made in the same second as the order
/// carries the same `updated_at`. Delivered before the create (Shopify sends each topic on its
/// own and retries independently), it must still win: `X-Shopify-Triggered-At` (milliseconds)
/// orders the two (API_FACTS §1.6: use it to detect staleness).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_an_edit_in_the_same_second_as_the_create_delivered_first_still_wins() {
    let same = "2026-03-01T10:00:00-05:00";
    let line = |quantity, current| ShopifyLine {
        id: L1,
        sku: "D-1",
        quantity,
        current,
        fulfillable: current,
    };
    let created = shopify_order(
        ORDER,
        same,
        "paid",
        None,
        &[line(3, 3)],
        json!([]),
        json!([]),
    );
    let edited = shopify_order(
        ORDER,
        same,
        "paid",
        None,
        &[line(3, 1)],
        json!([]),
        json!([]),
    );
    let create = Delivery::shopify(
        "orders/create",
        &created,
        "ev-s1",
        "2026-03-01T15:00:00.100Z",
    );
    let edit = Delivery::shopify(
        "orders/updated",
        &edited,
        "ev-s2",
        "2026-03-01T15:00:00.900Z",
    );
    let clean = run(&[create.clone(), edit.clone()], SHOPIFY_ORDERS).await;
    assert_eq!(level(&clean, "D-1"), (10, 1), "{clean:#}");
    let reversed = run(&[edit, create], SHOPIFY_ORDERS).await;
    assert_eq!(
        level(&reversed, "D-1"),
        (10, 1),
        "the create of the same second, delivered last, undid the edit; the line reads {}",
        crate::line(&reversed, "shop/5700000000000000001", &L1.to_string())
    );
}
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woocommerce_deliveries_in_any_order_and_repeated_end_as_the_clean_sequence() {
    let mut found = Vec::new();
    let life = woo_life();
    let clean = run(&flat(&life), WOO_ORDERS).await;
    // Cancel before create.
    let cancel_first = run(
        &[life[3].clone(), life[1].clone()].concat(),
        &WOO_ORDERS[1..],
    )
    .await;
    let cancel_last = run(
        &[life[1].clone(), life[3].clone()].concat(),
        &WOO_ORDERS[1..],
    )
    .await;
    found.extend(compare(
        &cancel_first,
        &cancel_last,
        "cancelled, then created",
    ));
    assert_eq!(level(&cancel_first, "W-2"), (10, 0));
    // An update that changes a line quantity, before its create.
    let edit_first = run(
        &[life[2].clone(), life[0].clone()].concat(),
        &WOO_ORDERS[..1],
    )
    .await;
    let edit_last = run(
        &[life[0].clone(), life[2].clone()].concat(),
        &WOO_ORDERS[..1],
    )
    .await;
    found.extend(compare(&edit_first, &edit_last, "edited, then created"));
    assert_eq!(
        level(&edit_last, "W-1"),
        (10, 3),
        "edited up to 3: {edit_last:#}"
    );
    // Everything backwards, each delivery five times.
    let backwards: Vec<Delivery> = flat(&life)
        .into_iter()
        .rev()
        .flat_map(|d| std::iter::repeat_n(d, 5))
        .collect();
    found.extend(compare(
        &run(&backwards, WOO_ORDERS).await,
        &clean,
        "everything backwards, five times each",
    ));
    // The same delivery five times at once: one applied, four duplicates.
    let app = stockhub().await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (client, base, d) = (app.client.clone(), app.base_url.clone(), life[0][0].clone());
        set.spawn(async move { post_to(&client, &base, &d).await });
    }
    let mut outcomes = Vec::new();
    while let Some(reply) = set.join_next().await {
        let reply = reply.expect("task");
        assert_eq!(reply.status, 200, "{reply:#?}");
        outcomes.push(reply.body["outcome"].as_str().unwrap_or("?").to_owned());
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "applied",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    // Two different states of one order in the same second share the delivery id: both apply.
    let one = woo_order(
        9003,
        "processing",
        "2026-03-01T10:00:09",
        &[(521, "W-3", 703, 1)],
    );
    let two = woo_order(
        9003,
        "processing",
        "2026-03-01T10:00:09",
        &[(521, "W-3", 703, 2)],
    );
    let (one, two) = (
        Delivery::woo("order.updated", &one),
        Delivery::woo("order.updated", &two),
    );
    assert_eq!(
        one.headers
            .iter()
            .find(|h| h.0 == "x-wc-webhook-delivery-id"),
        two.headers
            .iter()
            .find(|h| h.0 == "x-wc-webhook-delivery-id")
    );
    assert_eq!(deliver(&app, &one).await["outcome"], "applied");
    assert_eq!(deliver(&app, &two).await["outcome"], "applied");
    let s = state(&app, &[("woo", "9003")]).await;
    assert_eq!(level(&s, "W-3"), (10, 3), "1 from 9001, 2 from 9003: {s:#}");
    assert_none(&found);
}
}

// ---------------------------------------------------------------------------------------------
// (c) Shopify's real example payloads

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/shopify/webhooks")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the Shopify fixture {}: {e}. The real example payloads live in \
             `shared/fixtures/shopify/webhooks/` beside the repository (../shared from the \
             workspace root); this test needs them.",
            path.display()
        )
    })
}

/// The exact digits of an integer the file writes, read without any floating point.
fn digits(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_u64() => n.as_u64().expect("u64").to_string(),
        other => panic!("not an unsigned integer: {other}"),
    }
}

stockhub_testkit::on_both_backends! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_shopify_payloads_keep_every_id_and_have_the_right_stock_effect() {
    let create_bytes = fixture("orders_create.json");
    let cancelled_bytes = fixture("orders_cancelled.json");
    let refund_bytes = fixture("refunds_create.json");
    let create_text = String::from_utf8(create_bytes.clone()).expect("UTF-8 fixture");
    let create: Value = serde_json::from_slice(&create_bytes).expect("orders_create.json");
    let refund: Value = serde_json::from_slice(&refund_bytes).expect("refunds_create.json");
    let order_id = digits(&create["id"]);
    assert!(
        create_text.contains(&format!("\"id\": {order_id}")),
        "{order_id} is written in the file"
    );
    assert!(
        order_id.parse::<u64>().expect("id") > 1 << 53,
        "a 64-bit id"
    );
    let line_ids: Vec<String> = create["line_items"]
        .as_array()
        .expect("line items")
        .iter()
        .map(|l| digits(&l["id"]))
        .collect();
    let skus: Vec<String> = create["line_items"]
        .as_array()
        .expect("line items")
        .iter()
        .map(|l| l["sku"].as_str().expect("sku").to_owned())
        .collect();
    assert_eq!(digits(&refund["order_id"]), order_id);

    let app = spawn_app().await;
    ok(app.put("/v1/locations/wh1", &json!({})).await).await;
    for sku in &skus {
        ok(app.put(&format!("/v1/variants/{sku}"), &json!({})).await).await;
        ok(app
            .post(
                "/v1/stock/movements",
                &json!({ "movements": [{ "kind": "receive", "sku": sku, "location": "wh1", "quantity": 5 }] }),
            )
            .await)
        .await;
    }
    for code in ["shop", "shop2"] {
        ok(app
            .put(
                &format!("/v1/channels/{code}"),
                &json!({ "kind": "shopify", "base_url": "http://127.0.0.1:9", "access_token": "shpat_x",
                         "location_id": "gid://shopify/Location/1", "webhook_secret": SHOP_SECRET }),
            )
            .await)
        .await;
    }
    let available = |app: &TestApp, sku: String| {
        let path = format!("/v1/stock/{sku}");
        let client = app.client.clone();
        let base = app.base_url.clone();
        async move {
            let view: Value = client
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("stock")
                .json()
                .await
                .expect("json");
            let level = &view["levels"][0];
            level["on_hand"].as_i64().unwrap_or(0) - level["committed"].as_i64().unwrap_or(0)
        }
    };

    // The sample orders/create, exactly as the file has it: a cancelled test order.
    let books_before = books(&app).await;
    let applied = deliver(
        &app,
        &Delivery::shopify_raw(
            "shop",
            "orders/create",
            create_bytes.clone(),
            "fixture-create",
            "2022-01-01T00:00:00.000Z",
        ),
    )
    .await;
    assert_eq!(applied["outcome"], "applied", "{applied}");
    let event = ok(app
        .get(&format!("/v1/events/{}", applied["event_id"]))
        .await)
    .await;
    assert_eq!(
        event["body"].as_str(),
        Some(create_text.as_str()),
        "archived exactly as received"
    );
    assert!(
        event["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&order_id)),
        "the archived outcome names the order by its exact id: {event}"
    );
    let order = ok(app.get(&format!("/v1/orders/shop/{order_id}")).await).await;
    assert_eq!(
        order["external_id"].as_str(),
        Some(order_id.as_str()),
        "{order}"
    );
    assert_eq!(order["status"], "cancelled", "{order}");
    let kept: Vec<String> = order["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["line_id"].as_str().expect("line id").to_owned())
        .collect();
    let mut expected = line_ids.clone();
    expected.sort();
    let mut got = kept.clone();
    got.sort();
    assert_eq!(got, expected, "line ids kept digit for digit");
    for sku in &skus {
        assert_eq!(
            available(&app, sku.clone()).await,
            5,
            "{sku}: nothing committed"
        );
    }
    let story = ok(app.get(&format!("/v1/audit/orders/shop/{order_id}")).await).await;
    let committed: i64 = story["ledger"]
        .as_array()
        .expect("ledger")
        .iter()
        .map(|e| e["delta_committed"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(
        committed, 0,
        "the cancelled test order commits nothing: {story}"
    );
    // Its orders/cancelled changes nothing either.
    deliver(
        &app,
        &Delivery::shopify_raw(
            "shop",
            "orders/cancelled",
            cancelled_bytes,
            "fixture-cancelled",
            "2022-01-01T00:00:01.000Z",
        ),
    )
    .await;
    for sku in &skus {
        assert_eq!(available(&app, sku.clone()).await, 5, "{sku}");
    }
    let _ = books_before;

    // The same order open and paid (on another channel, so it is a new order there).
    let mut open = create.clone();
    open["cancelled_at"] = Value::Null;
    open["financial_status"] = json!("paid");
    let open_bytes = serde_json::to_vec(&open).expect("open order");
    assert!(
        String::from_utf8_lossy(&open_bytes).contains(&order_id),
        "re-serializing keeps the id"
    );
    assert_eq!(
        deliver(
            &app,
            &Delivery::shopify_raw(
                "shop2",
                "orders/create",
                open_bytes,
                "fixture-open",
                "2022-01-01T00:00:02.000Z"
            )
        )
        .await["outcome"],
        "applied"
    );
    for sku in &skus {
        assert_eq!(
            available(&app, sku.clone()).await,
            4,
            "{sku}: one unit committed"
        );
    }
    // The sample refunds/create: every line refunded unfulfilled with no_restock → released.
    let refunded = deliver(
        &app,
        &Delivery::shopify_raw(
            "shop2",
            "refunds/create",
            refund_bytes,
            "fixture-refund",
            "2022-01-01T00:00:03.000Z",
        ),
    )
    .await;
    assert_eq!(refunded["outcome"], "applied", "{refunded}");
    for sku in &skus {
        assert_eq!(
            available(&app, sku.clone()).await,
            5,
            "{sku}: released by the refund"
        );
    }
    let order = ok(app.get(&format!("/v1/orders/shop2/{order_id}")).await).await;
    for l in order["lines"].as_array().expect("lines") {
        assert_eq!(
            (
                l["committed"].as_i64(),
                l["cancelled"].as_i64(),
                l["restocked"].as_i64()
            ),
            (Some(0), Some(1), Some(0)),
            "{l}"
        );
        assert!(line_ids.contains(&l["line_id"].as_str().unwrap_or("").to_owned()));
    }
    let story = ok(app.get(&format!("/v1/audit/orders/shop2/{order_id}")).await).await;
    for e in story["ledger"].as_array().expect("ledger") {
        let line_id = e["line_id"].as_str().unwrap_or("");
        assert!(line_ids.iter().any(|l| l == line_id), "{e}");
        assert_eq!(e["order"]["external_id"].as_str(), Some(order_id.as_str()));
    }
    let report = app
        .store
        .read(stockhub_store::engine::verify::verify)
        .await
        .expect("verify");
    assert!(report.differences.is_empty(), "{:#?}", report.differences);
}
}
