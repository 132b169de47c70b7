//! The Shopify connector against the channel simulator (`stockhub-sim`), which is written
//! independently from Shopify's documentation: discovery paging, pushes with compare-and-set
//! after the store's own sale, throttling, failure classification, order backfill paging,
//! quantity read-back, and real signed webhooks.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stockhub_channels::{
    connector, ChannelConnection, ChannelError, ChannelListing, Connector, Intake, Kind,
    ListingRef, PushItem, PushOutcome, Secret, Verdict,
};
use stockhub_sim::shopify::{CancelOrder, NewOrder, OrderLine, ShopifyConfig, ShopifySim};
use stockhub_sim::{BucketConfig, CatalogSpec, Faults, Hold, ProductSeed, VariantSeed};

async fn store(configure: impl FnOnce(&mut ShopifyConfig)) -> ShopifySim {
    let mut config = ShopifyConfig {
        products: CatalogSpec {
            products: 10,
            variants_per_product: 3,
            locations: 1,
            quantity: 10,
            sku_prefix: "SKU".into(),
        }
        .build(),
        ..ShopifyConfig::default()
    };
    configure(&mut config);
    ShopifySim::start(config)
        .await
        .expect("the simulated store starts")
}

fn connection(sim: &ShopifySim, timeout: Duration) -> ChannelConnection {
    let config = sim.config();
    ChannelConnection {
        code: "shop".into(),
        kind: Kind::Shopify,
        base_url: sim.base_url().to_owned(),
        access_token: Secret::new(config.access_token.clone()),
        consumer_secret: Secret::default(),
        webhook_secret: Secret::new(config.api_secret.clone()),
        api_version: config.api_version.clone(),
        locations: sim.locations().into_iter().map(|l| l.gid).collect(),
        request_timeout: timeout,
        calls: Default::default(),
    }
}

fn shopify(sim: &ShopifySim) -> Box<dyn Connector> {
    connector(connection(sim, Duration::from_secs(10))).unwrap()
}

fn reference(listing: &ChannelListing) -> ListingRef {
    ListingRef {
        listing_key: listing.listing_key.clone(),
        channel_location: listing.channel_location.clone(),
        ids: listing.ids.clone(),
        channel_sku: listing.sku.clone(),
    }
}

fn item(listing: &ChannelListing, quantity: i64, change_from: Option<i64>) -> PushItem {
    PushItem {
        listing: reference(listing),
        quantity,
        change_from,
    }
}

/// The legacy id at the end of a gid.
fn legacy(gid: &str) -> u64 {
    gid.rsplit('/').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn discovery_pages_over_more_than_250_variants_at_every_location() {
    let mut products = CatalogSpec {
        products: 110,
        variants_per_product: 3,
        locations: 2,
        quantity: 5,
        sku_prefix: "D".into(),
    }
    .build();
    products.push(ProductSeed::new(
        "Odd ones",
        vec![
            VariantSeed::new("ONLY-FIRST").stock(&[4]),
            VariantSeed::new("UNTRACKED").untracked().stock(&[0, 0]),
            VariantSeed {
                sku: None,
                ..VariantSeed::default()
            }
            .stock(&[1, 2]),
        ],
    ));
    let sim = store(|c| {
        c.locations = vec!["Warehouse".into(), "Shop".into()];
        c.products = products;
        // Three pages of ~989 requested points: the third waits for the bucket to refill
        // (at the Standard plan's 100 points/s that would be ~10 s; 500/s keeps it short).
        c.graphql_bucket = BucketConfig {
            capacity: 2000.0,
            per_second: 500.0,
        };
    })
    .await;
    let listings = shopify(&sim).discover().await.unwrap();
    let variants = sim.variants();
    assert_eq!(variants.len(), 333);
    // Every variant at both locations, except the one stocked only at the first.
    assert_eq!(listings.len(), 333 * 2 - 1);
    let keys: HashSet<&str> = listings.iter().map(|l| l.listing_key.as_str()).collect();
    assert_eq!(keys.len(), listings.len(), "listing keys are unique");
    let locations = sim.locations();
    for variant in &variants {
        for level in &variant.levels {
            let location = locations
                .iter()
                .find(|l| l.id == level.location_id)
                .unwrap();
            let key = format!("{}@{}", variant.inventory_item_gid(), location.gid);
            let listing = listings
                .iter()
                .find(|l| l.listing_key == key)
                .unwrap_or_else(|| panic!("{key} not discovered"));
            assert_eq!(listing.sku, variant.sku);
            assert_eq!(
                listing.channel_location.as_deref(),
                Some(location.gid.as_str())
            );
            assert_eq!(listing.ids["variant_id"], variant.variant_gid());
            assert_eq!(
                listing.ids["inventory_item_id"],
                variant.inventory_item_gid()
            );
            assert_eq!(
                listing.ids["product_id"],
                format!("gid://shopify/Product/{}", variant.product_id)
            );
            assert_eq!(listing.ids["location_id"], location.gid);
            let expected = variant.tracked.then_some(level.available);
            assert_eq!(listing.quantity, expected, "{key}");
            // 64-bit ids above 2^53 survive exactly.
            assert_eq!(
                legacy(listing.ids["inventory_item_id"].as_str().unwrap()),
                variant.inventory_item_id
            );
        }
    }
    let only_first = listings
        .iter()
        .filter(|l| l.sku.as_deref() == Some("ONLY-FIRST"))
        .count();
    assert_eq!(only_first, 1);
}

#[tokio::test]
async fn discovery_halves_pages_a_store_finds_too_costly() {
    let sim = store(|c| c.max_query_cost = 300).await;
    let listings = shopify(&sim).discover().await.unwrap();
    assert_eq!(listings.len(), 30);
    let skus: HashSet<Option<String>> = listings.iter().map(|l| l.sku.clone()).collect();
    assert_eq!(skus.len(), 30);
}

#[tokio::test]
async fn pushes_split_by_the_caller_apply_and_a_sale_makes_its_item_stale() {
    let sim = store(|c| {
        c.products = CatalogSpec {
            products: 100,
            variants_per_product: 3,
            locations: 1,
            quantity: 10,
            sku_prefix: "P".into(),
        }
        .build();
    })
    .await;
    let shopify = shopify(&sim);
    let listings = shopify.discover().await.unwrap();
    assert_eq!(listings.len(), 300);
    // The store sells one unit of the 8th listing after stockhub last saw it.
    let sold = listings[7].sku.clone().unwrap();
    sim.place_order(&NewOrder::lines(vec![OrderLine::sku(&sold, 1)]))
        .unwrap();

    let items: Vec<PushItem> = listings.iter().map(|l| item(l, 7, Some(10))).collect();
    let max = match shopify.push_mode() {
        stockhub_channels::PushMode::Batch { max_items } => max_items,
        other => panic!("{other:?}"),
    };
    assert_eq!(max, 250);
    let mut outcomes = Vec::new();
    for chunk in items.chunks(max) {
        outcomes.extend(shopify.push(chunk).await.unwrap());
    }
    assert_eq!(outcomes.len(), 300);
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 7 {
            assert_eq!(
                *outcome,
                PushOutcome::Stale { actual: None },
                "the sold item is stale"
            );
        } else {
            assert_eq!(*outcome, PushOutcome::Applied { confirmed: 7 }, "item {i}");
        }
    }
    // What the store shows is read back on demand, not with the push.
    let read = shopify
        .read_quantities(&[reference(&listings[7])])
        .await
        .unwrap();
    assert_eq!(read, vec![(listings[7].listing_key.clone(), 9)]);
    let stale = sim.variant_by_sku(&sold).unwrap();
    assert_eq!(
        stale.levels[0].available, 9,
        "the store's own sale is not overwritten"
    );
    let other = sim
        .variant_by_sku(listings[8].sku.as_deref().unwrap())
        .unwrap();
    assert_eq!(other.levels[0].available, 7);

    // Without compare-and-set (an explicit null), the push sets the quantity whatever it was.
    let outcome = shopify.push(&[item(&listings[7], 3, None)]).await.unwrap();
    assert_eq!(outcome, [PushOutcome::Applied { confirmed: 3 }]);
    assert_eq!(sim.variant_by_sku(&sold).unwrap().levels[0].available, 3);

    // An item Shopify refuses for itself fails alone; the rest is applied.
    let negative = item(&listings[1], -1, None);
    let outcome = shopify
        .push(&[
            item(&listings[0], 6, Some(7)),
            negative,
            item(&listings[2], 5, Some(7)),
        ])
        .await
        .unwrap();
    assert_eq!(outcome[0], PushOutcome::Applied { confirmed: 6 });
    assert!(
        matches!(&outcome[1], PushOutcome::Failed(ChannelError::Permanent(m)) if m.contains("INVALID_QUANTITY_NEGATIVE"))
    );
    assert_eq!(outcome[2], PushOutcome::Applied { confirmed: 5 });

    // More than 250 items is the caller's mistake.
    assert!(matches!(
        shopify.push(&items).await,
        Err(ChannelError::Permanent(_))
    ));
}

#[tokio::test]
async fn a_timed_out_push_is_resent_with_its_idempotency_key_and_not_applied_twice() {
    let sim = store(|_| {}).await;
    let shopify = connector(connection(&sim, Duration::from_millis(1000))).unwrap();
    let listings = shopify.discover().await.unwrap();
    // The store applies the write but holds its answer; it lets go after the first timeout.
    sim.set_faults(Faults {
        hold: Some(Hold::After),
        ..Faults::default()
    });
    let lift = {
        let sim = sim.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            sim.set_faults(Faults::default());
        })
    };
    let outcome = shopify
        .push(&[item(&listings[0], 4, Some(10))])
        .await
        .unwrap();
    lift.await.unwrap();
    // Resent with a new key, the compare-and-set would have found 4, not 10, and been stale.
    assert_eq!(outcome, [PushOutcome::Applied { confirmed: 4 }]);
    assert_eq!(
        sim.variant_by_sku(listings[0].sku.as_deref().unwrap())
            .unwrap()
            .levels[0]
            .available,
        4
    );
}

#[tokio::test]
async fn throttling_is_rate_limited_with_the_bucket_refill_time_and_backpressure() {
    let sim = store(|c| {
        c.graphql_bucket = BucketConfig {
            capacity: 25.0,
            per_second: 5.0,
        }
    })
    .await;
    let shopify = shopify(&sim);
    let variant = sim.variants().remove(0);
    let location = sim.locations().remove(0);
    let listing = ChannelListing {
        listing_key: format!("{}@{}", variant.inventory_item_gid(), location.gid),
        sku: variant.sku.clone(),
        channel_location: Some(location.gid.clone()),
        ids: serde_json::json!({"inventory_item_id": variant.inventory_item_gid(), "location_id": location.gid}),
        quantity: Some(10),
    };
    let push = [item(&listing, 1, None)];
    let mut throttled = None;
    for _ in 0..5 {
        match shopify.push(&push).await {
            Ok(outcome) => assert_eq!(outcome, [PushOutcome::Applied { confirmed: 1 }]),
            Err(error) => {
                throttled = Some(error);
                break;
            }
        }
    }
    let Some(ChannelError::RateLimited {
        retry_after: Some(wait),
    }) = throttled
    else {
        panic!("expected THROTTLED as RateLimited with a wait, got {throttled:?}")
    };
    // (10 requested − < 10 available) / 5 per second: at most 2 s.
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(2),
        "{wait:?}"
    );
    assert!(
        shopify.backpressure().is_some(),
        "a low bucket is reported as backpressure"
    );
    tokio::time::sleep(wait).await;
    assert_eq!(
        shopify.push(&push).await.unwrap(),
        [PushOutcome::Applied { confirmed: 1 }]
    );

    // A store that answers throttling with HTTP 429 and Retry-After.
    let strict = store(|c| {
        c.graphql_bucket = BucketConfig {
            capacity: 10.0,
            per_second: 1.0,
        };
        c.throttled_status = 429;
    })
    .await;
    let shopify = connector(connection(&strict, Duration::from_secs(5))).unwrap();
    let variant = strict.variants().remove(0);
    let location = strict.locations().remove(0);
    let listing = ChannelListing {
        listing_key: format!("{}@{}", variant.inventory_item_gid(), location.gid),
        ..listing
    };
    let push = [item(&listing, 2, None)];
    shopify.push(&push).await.unwrap();
    let error = shopify.push(&push).await.unwrap_err();
    assert!(
        matches!(
            error,
            ChannelError::RateLimited {
                retry_after: Some(_)
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn failures_are_classified() {
    let sim = store(|_| {}).await;
    let shopify = shopify(&sim);
    let listings = shopify.discover().await.unwrap();
    let push = [item(&listings[0], 1, None)];

    sim.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    assert!(matches!(
        shopify.push(&push).await,
        Err(ChannelError::Transient(_))
    ));
    assert!(matches!(
        shopify.discover().await,
        Err(ChannelError::Transient(_))
    ));
    assert!(matches!(
        shopify.orders_updated_since(0).await,
        Err(ChannelError::Transient(_))
    ));
    sim.set_faults(Faults {
        error_rate: 1.0,
        error_status: 503,
        ..Faults::default()
    });
    assert!(matches!(
        shopify.push(&push).await,
        Err(ChannelError::Transient(_))
    ));
    sim.set_faults(Faults::default());

    let mut wrong = connection(&sim, Duration::from_secs(5));
    wrong.access_token = Secret::new("shpat_wrong");
    let wrong = connector(wrong).unwrap();
    assert!(matches!(
        wrong.push(&push).await,
        Err(ChannelError::Auth(_))
    ));
    assert!(matches!(
        wrong.orders_updated_since(0).await,
        Err(ChannelError::Auth(_))
    ));
    assert!(matches!(
        wrong.read_quantities(&[reference(&listings[0])]).await,
        Err(ChannelError::Auth(_))
    ));

    let impatient = connector(connection(&sim, Duration::from_millis(200))).unwrap();
    sim.set_faults(Faults {
        hold: Some(Hold::Before),
        ..Faults::default()
    });
    assert!(matches!(
        impatient.push(&push).await,
        Err(ChannelError::Timeout)
    ));
    sim.set_faults(Faults::default());

    // Unknown inventory item: Shopify's own user error, permanent for that item.
    let mut unknown = item(&listings[0], 1, None);
    unknown.listing.ids["inventory_item_id"] = serde_json::json!("gid://shopify/InventoryItem/1");
    let outcome = shopify
        .push(&[unknown, item(&listings[1], 2, None)])
        .await
        .unwrap();
    assert!(
        matches!(&outcome[0], PushOutcome::Failed(ChannelError::Permanent(m)) if m.contains("INVALID_INVENTORY_ITEM"))
    );
    assert_eq!(outcome[1], PushOutcome::Applied { confirmed: 2 });
}

#[tokio::test]
async fn orders_backfill_follows_page_info_and_includes_cancelled_orders() {
    let sim = store(|c| {
        c.products = vec![ProductSeed::new(
            "Bulk",
            vec![VariantSeed::new("BULK").stock(&[1000])],
        )];
    })
    .await;
    let first = sim
        .place_order(&NewOrder::lines(vec![OrderLine::sku("BULK", 1)]))
        .unwrap();
    let before = stockhub_channels::time::parse_ms(first["updated_at"].as_str().unwrap()).unwrap();
    let mut ids = Vec::new();
    for _ in 0..259 {
        let order = sim
            .place_order(&NewOrder::lines(vec![OrderLine::sku("BULK", 1)]))
            .unwrap();
        ids.push(order["id"].as_u64().unwrap());
    }
    sim.cancel_order(ids[0], &CancelOrder::default()).unwrap();
    let shopify = shopify(&sim);
    let orders = shopify.orders_updated_since(before - 60_000).await.unwrap();
    assert_eq!(orders.len(), 260, "both pages, cancelled orders included");
    let distinct: HashSet<&str> = orders.iter().map(|o| o.external_id.as_str()).collect();
    assert_eq!(distinct.len(), 260);
    // Only the fields the backfill uses, on both pages: Shopify's `Link` carries `page_info` and
    // `limit` only, so `fields` is asked for again.
    let asked: HashSet<&str> = HashSet::from([
        "id",
        "updated_at",
        "cancelled_at",
        "financial_status",
        "line_items",
        "fulfillments",
        "refunds",
    ]);
    for order in &orders {
        let keys: Vec<&String> = order.raw.as_object().unwrap().keys().collect();
        assert!(
            keys.iter().all(|k| asked.contains(k.as_str())) && keys.len() >= 5,
            "order {}: {keys:?}",
            order.external_id
        );
    }
    let cancelled = orders
        .iter()
        .find(|o| o.external_id == ids[0].to_string())
        .unwrap();
    assert!(!cancelled.open);
    assert_eq!(
        cancelled.refunds.len(),
        1,
        "Shopify records the cancellation's refund"
    );
    let open = orders
        .iter()
        .find(|o| o.external_id == ids[1].to_string())
        .unwrap();
    assert!(open.open);
    assert_eq!(open.lines[0].sku.as_deref(), Some("BULK"));
    assert_eq!(open.lines[0].quantity, 1);
    assert_eq!(
        open.lines[0].variant_ref,
        Some(sim.variant_by_sku("BULK").unwrap().variant_gid())
    );
    let later = shopify
        .orders_updated_since(stockhub_channels::time::parse_ms("2100-01-01T00:00:00Z").unwrap())
        .await
        .unwrap();
    assert!(later.is_empty());
}

#[tokio::test]
async fn rest_429_is_waited_out_then_reported() {
    let sim = store(|_| {}).await;
    let shopify = shopify(&sim);
    sim.set_faults(Faults {
        rate_limit_storm: true,
        retry_after_seconds: 1,
        ..Faults::default()
    });
    let lift = {
        let sim = sim.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            sim.set_faults(Faults::default());
        })
    };
    sim.place_order(&NewOrder::lines(vec![OrderLine::sku("SKU-0001-01", 1)]))
        .unwrap();
    let orders = shopify.orders_updated_since(0).await.unwrap();
    lift.await.unwrap();
    assert_eq!(orders.len(), 1);

    sim.set_faults(Faults {
        rate_limit_storm: true,
        retry_after_seconds: 0,
        ..Faults::default()
    });
    let error = shopify.orders_updated_since(0).await.unwrap_err();
    assert_eq!(
        error,
        ChannelError::RateLimited {
            retry_after: Some(Duration::ZERO)
        }
    );
}

#[tokio::test]
async fn quantities_read_back_in_chunks_of_50() {
    let sim = store(|c| {
        c.locations = vec!["Warehouse".into(), "Shop".into()];
        c.products = CatalogSpec {
            products: 40,
            variants_per_product: 2,
            locations: 2,
            quantity: 6,
            sku_prefix: "R".into(),
        }
        .build();
    })
    .await;
    let connection = connection(&sim, Duration::from_secs(10));
    let calls = connection.calls.clone();
    let shopify = connector(connection).unwrap();
    let listings = shopify.discover().await.unwrap();
    assert_eq!(listings.len(), 160);
    let sold = listings[3].sku.clone().unwrap();
    let location = legacy(listings[3].channel_location.as_deref().unwrap());
    let order = NewOrder {
        location_id: Some(location),
        ..NewOrder::lines(vec![OrderLine::sku(&sold, 2)])
    };
    sim.place_order(&order).unwrap();
    let refs: Vec<ListingRef> = listings.iter().map(reference).collect();
    let calls_before = calls.get();
    let mut read = shopify.read_quantities(&refs).await.unwrap();
    // 80 inventory items, each stocked at both locations: read 50 items per request.
    assert_eq!(calls.get() - calls_before, 2, "each request counted");
    read.sort();
    assert_eq!(read.len(), 160);
    for (key, available) in &read {
        let expected = if *key == listings[3].listing_key {
            4
        } else {
            6
        };
        assert_eq!(*available, expected, "{key}");
    }
}

/// Every request a [`Receiver`] got: headers and body.
type Deliveries = Arc<Mutex<Vec<(http::HeaderMap, Vec<u8>)>>>;

/// A bare HTTP/1.1 receiver on port 0 that records each request's headers and body and
/// answers 200 (the channels crate has no web framework, and needs none).
#[derive(Clone, Default)]
struct Receiver {
    received: Deliveries,
}

impl Receiver {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/shop", listener.local_addr().unwrap());
        let received = self.received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, received.clone()));
            }
        });
        url
    }
}

async fn serve(stream: tokio::net::TcpStream, received: Deliveries) {
    let mut buffer = Vec::new();
    loop {
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            if !read_some(&stream, &mut buffer).await {
                return;
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        let mut headers = http::HeaderMap::new();
        for line in head.lines().skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                let name = http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap();
                headers.append(name, value.trim().parse().unwrap());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buffer.len() < end + 4 + length {
            if !read_some(&stream, &mut buffer).await {
                return;
            }
        }
        let body = buffer[end + 4..end + 4 + length].to_vec();
        buffer.drain(..end + 4 + length);
        received.lock().unwrap().push((headers, body));
        if !write_all(&stream, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await {
            return;
        }
    }
}

/// Reads what the peer sent next; false once the connection is over.
async fn read_some(stream: &tokio::net::TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    loop {
        if stream.readable().await.is_err() {
            return false;
        }
        match stream.try_read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                buffer.extend_from_slice(&chunk[..n]);
                return true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return false,
        }
    }
}

async fn write_all(stream: &tokio::net::TcpStream, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        if stream.writable().await.is_err() {
            return false;
        }
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return false,
        }
    }
    true
}

#[tokio::test]
async fn the_stores_signed_webhooks_verify_identify_and_read() {
    let receiver = Receiver::default();
    let address = receiver.start().await;
    let sim = store(|c| {
        c.webhook_address = Some(address);
        c.webhook_topics = stockhub_sim::shopify::TOPICS
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
    })
    .await;
    let shopify = shopify(&sim);
    let order = sim
        .place_order(&NewOrder::lines(vec![
            OrderLine::sku("SKU-0001-01", 2),
            OrderLine::custom("Gift wrap", 1),
        ]))
        .unwrap();
    let order_id = order["id"].as_u64().unwrap();
    sim.fulfill(order_id).unwrap();
    assert!(sim.wait_for_deliveries(Duration::from_secs(10)).await);

    let received = receiver.received.lock().unwrap().clone();
    assert!(
        received.len() >= 5,
        "orders/create, orders/paid, orders/fulfilled, orders/updated, inventory_levels/update…"
    );
    let mut keys = HashSet::new();
    let mut fulfilled = None;
    for (headers, body) in &received {
        assert_eq!(shopify.verify(headers, body), Verdict::Valid);
        let delivery = shopify.identify(headers, body).unwrap();
        assert!(
            keys.insert(delivery.dedupe_key.clone()),
            "one identity per topic and action"
        );
        let intake = shopify.interpret(&delivery, body).unwrap();
        match (delivery.topic.as_str(), intake) {
            ("orders/fulfilled", Intake::Order(order)) => fulfilled = Some(order),
            (topic, Intake::Order(order)) => assert!(topic.starts_with("orders/") && order.open),
            (
                "inventory_levels/update",
                Intake::ListingQuantity {
                    listing_key,
                    available,
                    shown_at_ms,
                },
            ) => {
                assert!(listing_key.starts_with("gid://shopify/InventoryItem/"));
                assert!(available >= 0);
                assert!(shown_at_ms.is_some(), "the level's updated_at is read");
            }
            (topic, other) => panic!("{topic}: {other:?}"),
        }
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert!(matches!(
            shopify.verify(headers, &tampered),
            Verdict::Invalid(_)
        ));
    }
    let fulfilled = fulfilled.expect("an orders/fulfilled delivery");
    assert_eq!(fulfilled.external_id, order_id.to_string());
    assert_eq!(fulfilled.lines.len(), 2);
    assert_eq!(
        (fulfilled.lines[0].quantity, fulfilled.lines[0].shipped),
        (2, 2)
    );
    assert_eq!(fulfilled.lines[1].sku, None);
    assert_eq!(fulfilled.lines[1].variant_ref, None);
}

#[tokio::test]
async fn order_edits_and_refunds_read_from_the_stores_payloads() {
    let sim = store(|_| {}).await;
    let shopify = shopify(&sim);
    let order = sim
        .place_order(&NewOrder::lines(vec![
            OrderLine::sku("SKU-0001-01", 3),
            OrderLine::sku("SKU-0001-02", 2),
        ]))
        .unwrap();
    let id = order["id"].as_u64().unwrap();
    let first_line = order["line_items"][0]["id"].as_u64().unwrap();
    let second_line = order["line_items"][1]["id"].as_u64().unwrap();
    // An edit removes one unit of the first line; a refund takes one unit of the second.
    sim.edit_line_quantity(id, first_line, 2).unwrap();
    let refund = stockhub_sim::shopify::NewRefund {
        refund_line_items: vec![stockhub_sim::shopify::RefundLineRequest {
            line_item_id: second_line,
            quantity: 1,
            restock_type: stockhub_sim::shopify::RestockType::NoRestock,
            location_id: None,
        }],
        note: None,
    };
    let after = sim.refund(id, &refund).unwrap();
    let read = |value: &serde_json::Value| {
        let delivery = stockhub_channels::Delivery {
            topic: "orders/updated".into(),
            dedupe_key: "k".into(),
            delivery_id: None,
        };
        match shopify
            .interpret(&delivery, &serde_json::to_vec(value).unwrap())
            .unwrap()
        {
            Intake::Order(order) => order,
            other => panic!("{other:?}"),
        }
    };
    let order = read(&after);
    assert!(order.open);
    assert_eq!(
        order.lines[0].quantity, 2,
        "the edit's removal lowers the line"
    );
    assert_eq!(
        order.lines[1].quantity, 2,
        "refunded units stay counted: the refund releases them"
    );
    assert_eq!(order.refunds.len(), 1);
    assert_eq!(order.refunds[0].lines[0].line_id, second_line.to_string());
    assert_eq!(order.refunds[0].lines[0].quantity, 1);
    assert!(!order.refunds[0].lines[0].restock);
    let backfilled = shopify.orders_updated_since(0).await.unwrap();
    assert_eq!(backfilled.len(), 1);
    assert_eq!(backfilled[0].lines, order.lines);
}
