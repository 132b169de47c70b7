//! Shopify's real example webhook payloads (`shared/fixtures/shopify/webhooks/`, beside the
//! repository in CI) read through the public connector: every 64-bit id kept exactly as the file
//! writes it, and the stock effect the issue asks for.

use std::path::PathBuf;
use std::time::Duration;

use stockhub_channels::{
    connector, signature, ChannelConnection, Connector, Intake, Kind, RefundLine, Secret, Verdict,
};

const SECRET: &str = "shpss_fixture_secret";

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/shopify/webhooks/"
    ))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the Shopify fixture {}: {e}. The fixtures live in `shared/` beside the repository \
             (CI copies it to `../shared`).",
            path.display()
        )
    })
}

fn shopify() -> Box<dyn Connector> {
    connector(ChannelConnection {
        code: "shop".into(),
        kind: Kind::Shopify,
        base_url: "http://127.0.0.1:9".into(),
        access_token: Secret::new("shpat_x"),
        consumer_secret: Secret::default(),
        webhook_secret: Secret::new(SECRET),
        api_version: "2026-01".into(),
        locations: vec!["gid://shopify/Location/724318913574017303".into()],
        request_timeout: Duration::from_secs(5),
        calls: Default::default(),
    })
    .unwrap()
}

/// Verifies, identifies and interprets a fixture delivered under `topic`.
fn deliver(topic: &str, name: &str) -> (Vec<u8>, Intake) {
    let body = fixture(name);
    let mut headers = http::HeaderMap::new();
    headers.insert("X-Shopify-Topic", topic.parse().unwrap());
    headers.insert(
        "X-Shopify-Hmac-Sha256",
        signature::sign(SECRET.as_bytes(), &body).parse().unwrap(),
    );
    headers.insert(
        "X-Shopify-Event-Id",
        "98880550-7158-44d4-b7cd-2c97c8a091b5".parse().unwrap(),
    );
    headers.insert(
        "X-Shopify-Webhook-Id",
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043".parse().unwrap(),
    );
    let shopify = shopify();
    assert_eq!(shopify.verify(&headers, &body), Verdict::Valid);
    let delivery = shopify.identify(&headers, &body).unwrap();
    assert_eq!(delivery.topic, topic);
    let intake = shopify.interpret(&delivery, &body).unwrap();
    (body, intake)
}

/// The file's text contains the id exactly, so the id read is not a rounded one.
fn in_file(body: &[u8], id: &str) -> String {
    let text = String::from_utf8_lossy(body);
    assert!(text.contains(id), "{id} does not appear in the fixture");
    id.to_owned()
}

#[test]
fn orders_create_is_a_cancelled_test_order_that_commits_nothing() {
    let (body, intake) = deliver("orders/create", "orders_create.json");
    let Intake::Order(order) = intake else {
        panic!("not an order: {intake:?}")
    };
    assert_eq!(order.external_id, in_file(&body, "820982911946154500"));
    let line_ids: Vec<&str> = order.lines.iter().map(|l| l.line_id.as_str()).collect();
    assert_eq!(
        line_ids,
        [
            "487817672276298560",
            "976318377106520300",
            "315789986012684400"
        ]
    );
    for id in &line_ids {
        in_file(&body, id);
    }
    assert!(
        !order.open,
        "a cancelled, voided test order commits nothing"
    );
    assert_eq!(
        stockhub_channels::connector::version_time_ms(order.version),
        stockhub_channels::time::parse_ms("2022-01-01T00:00:00Z").unwrap()
    );
    let skus: Vec<Option<&str>> = order.lines.iter().map(|l| l.sku.as_deref()).collect();
    assert_eq!(
        skus,
        [
            Some("SKU2006-001"),
            Some("SKU2006-020"),
            Some("SKU2006-035")
        ]
    );
    assert!(order
        .lines
        .iter()
        .all(|l| l.quantity == 1 && l.shipped == 0 && l.variant_ref.is_none()));
    assert!(order.refunds.is_empty());
    // The raw payload keeps the ids as integers, exactly.
    assert_eq!(order.raw["id"].as_u64(), Some(820_982_911_946_154_500));
    assert_eq!(
        order.raw["customer"]["id"].to_string(),
        in_file(&body, "115310627314723950")
    );
}

#[test]
fn orders_cancelled_releases() {
    let (body, intake) = deliver("orders/cancelled", "orders_cancelled.json");
    let Intake::Order(order) = intake else {
        panic!("not an order: {intake:?}")
    };
    assert_eq!(order.external_id, in_file(&body, "820982911946154500"));
    assert!(!order.open);
    assert_eq!(order.lines.len(), 3);
}

#[test]
fn refunds_create_releases_unfulfilled_lines_without_restock() {
    let (body, intake) = deliver("refunds/create", "refunds_create.json");
    let Intake::Refund(refund) = intake else {
        panic!("not a refund: {intake:?}")
    };
    assert_eq!(refund.refund_id, in_file(&body, "890088186047892400"));
    assert_eq!(
        refund.order_external_id,
        in_file(&body, "820982911946154500")
    );
    assert_eq!(
        refund.lines,
        [
            RefundLine {
                line_id: in_file(&body, "487817672276298560"),
                quantity: 1,
                restock: false,
                shipped: None
            },
            RefundLine {
                line_id: in_file(&body, "976318377106520300"),
                quantity: 1,
                restock: false,
                shipped: None
            },
            RefundLine {
                line_id: in_file(&body, "315789986012684400"),
                quantity: 1,
                restock: false,
                shipped: None
            },
        ]
    );
}

#[test]
fn inventory_levels_update_sample_is_empty_and_ignored() {
    let (_, intake) = deliver("inventory_levels/update", "inventory_levels_update.json");
    assert!(matches!(intake, Intake::Ignore(_)), "{intake:?}");
}

#[test]
fn a_tampered_fixture_is_rejected() {
    let body = fixture("orders_create.json");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-shopify-hmac-sha256",
        signature::sign(SECRET.as_bytes(), &body).parse().unwrap(),
    );
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'5').unwrap();
    tampered[at] = b'6';
    assert!(matches!(
        shopify().verify(&headers, &tampered),
        Verdict::Invalid(_)
    ));
    assert!(matches!(
        shopify().verify(&http::HeaderMap::new(), &body),
        Verdict::Invalid(_)
    ));
}
