//! The WooCommerce connector against the channel simulator (`stockhub-sim`), written
//! independently from WooCommerce's documentation: discovery paging over products and
//! variations, batch pushes beyond 100 items, per-item errors, failure classification, order
//! backfill paging, refunds, quantity read-back, and the store's real signed webhooks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use stockhub_channels::{
    connector, ChannelConnection, ChannelError, ChannelListing, Connector, Intake, Kind,
    ListingRef, PushItem, PushOutcome, Secret, Verdict,
};
use stockhub_sim::woocommerce::{
    NewOrder, NewRefund, OrderLine, RefundLineRequest, WebhookSpec, WooConfig, WooSim,
};
use stockhub_sim::{CatalogSpec, Faults, Hold, ProductSeed, VariantSeed};

const WEBHOOK_SECRET: &str = "whsec-woo-test";

fn catalog(products: usize, variants: usize, prefix: &str) -> Vec<ProductSeed> {
    CatalogSpec {
        products,
        variants_per_product: variants,
        locations: 1,
        quantity: 10,
        sku_prefix: prefix.into(),
    }
    .build()
}

async fn store(configure: impl FnOnce(&mut WooConfig)) -> WooSim {
    let mut config = WooConfig {
        products: catalog(5, 1, "S")
            .into_iter()
            .chain(catalog(5, 3, "V"))
            .collect(),
        ..WooConfig::default()
    };
    configure(&mut config);
    WooSim::start(config)
        .await
        .expect("the simulated store starts")
}

fn connection(sim: &WooSim, timeout: Duration) -> ChannelConnection {
    let config = sim.config();
    ChannelConnection {
        code: "woo".into(),
        kind: Kind::WooCommerce,
        base_url: sim.base_url().to_owned(),
        access_token: Secret::new(config.consumer_key.clone()),
        consumer_secret: Secret::new(config.consumer_secret.clone()),
        webhook_secret: Secret::new(WEBHOOK_SECRET),
        api_version: String::new(),
        locations: Vec::new(),
        request_timeout: timeout,
        calls: Default::default(),
    }
}

fn woo(sim: &WooSim) -> Box<dyn Connector> {
    connector(connection(sim, Duration::from_secs(10))).unwrap()
}

fn reference(listing: &ChannelListing) -> ListingRef {
    ListingRef {
        listing_key: listing.listing_key.clone(),
        channel_location: None,
        ids: listing.ids.clone(),
        channel_sku: listing.sku.clone(),
    }
}

/// An item set without a comparison (the compare-and-set has tests of its own).
fn item(listing: &ChannelListing, quantity: i64) -> PushItem {
    PushItem {
        listing: reference(listing),
        quantity,
        change_from: None,
    }
}

/// What the store holds for each listing, in order.
fn stock_of(sim: &WooSim, listings: &[ChannelListing]) -> Vec<i64> {
    listings
        .iter()
        .map(|l| sim.stock(stock_id(l)).unwrap())
        .collect()
}

/// Push items comparing each listing against what it shows (`shown`, in the same order) and
/// setting `quantity(listing, shown)`.
fn compared_items(
    listings: &[ChannelListing],
    shown: &[i64],
    quantity: impl Fn(&ChannelListing, i64) -> i64,
) -> Vec<PushItem> {
    listings
        .iter()
        .zip(shown)
        .map(|(l, was)| PushItem {
            listing: reference(l),
            quantity: quantity(l, *was),
            change_from: Some(*was),
        })
        .collect()
}

/// The store sells one unit of the listing's SKU (see `sell_one` for a product by id).
fn sell_one_by_sku(sim: &WooSim, listing: &ChannelListing) {
    sim.place_order(&NewOrder::lines(vec![OrderLine::sku(
        listing.sku.as_deref().expect("a SKU"),
        1,
    )]))
    .expect("a sale in the store");
}

/// The id a listing's quantity lives on: the variation's, else the product's.
fn stock_id(listing: &ChannelListing) -> u64 {
    listing
        .ids
        .get("variation_id")
        .or_else(|| listing.ids.get("product_id"))
        .and_then(Value::as_u64)
        .unwrap()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn discovery_pages_over_more_than_100_products_and_their_variations() {
    let sim = store(|c| {
        let mut products = catalog(130, 1, "S");
        products.extend(catalog(20, 3, "V"));
        let mut big: Vec<VariantSeed> = (1..=105)
            .map(|v| {
                VariantSeed::new(&format!("BIG-{v:03}"))
                    .titled(&format!("Size {v}"))
                    .stock(&[v])
            })
            .collect();
        big.push(
            VariantSeed::new("BIG-UNTRACKED")
                .titled("Untracked")
                .untracked(),
        );
        products.push(ProductSeed::new("Big", big));
        products.push(ProductSeed::new(
            "No SKU",
            vec![VariantSeed {
                sku: None,
                ..VariantSeed::default()
            }
            .stock(&[4])],
        ));
        c.products = products;
    })
    .await;
    let listings = woo(&sim).discover().await.unwrap();

    let expected: HashMap<String, _> = sim
        .items()
        .into_iter()
        .filter(|i| i.kind != "variable")
        .map(|i| {
            let key = match i.parent_id {
                Some(p) => format!("variation/{p}/{}", i.id),
                None => format!("product/{}", i.id),
            };
            (key, i)
        })
        .collect();
    assert_eq!(listings.len(), 130 + 60 + 106 + 1);
    assert_eq!(listings.len(), expected.len());
    let keys: HashSet<&str> = listings.iter().map(|l| l.listing_key.as_str()).collect();
    assert_eq!(keys.len(), listings.len(), "each listing once");
    for listing in &listings {
        let info = &expected[&listing.listing_key];
        assert_eq!(
            listing.sku.as_deref(),
            Some(info.sku.as_str()).filter(|s| !s.is_empty())
        );
        assert_eq!(listing.channel_location, None);
        assert_eq!(
            listing.quantity,
            info.stock_quantity.filter(|_| info.manage_stock),
            "{}",
            listing.listing_key
        );
        match info.parent_id {
            Some(p) => assert_eq!(
                listing.ids,
                json!({"product_id": p, "variation_id": info.id})
            ),
            None => assert_eq!(listing.ids, json!({"product_id": info.id})),
        }
    }
    let untracked = listings
        .iter()
        .find(|l| l.sku.as_deref() == Some("BIG-UNTRACKED"))
        .unwrap();
    assert_eq!(untracked.quantity, None);
    let size_105 = listings
        .iter()
        .find(|l| l.sku.as_deref() == Some("BIG-105"))
        .unwrap();
    assert_eq!(size_105.quantity, Some(105));
    assert!(listings
        .iter()
        .any(|l| l.sku.is_none() && l.quantity == Some(4)));
}

#[tokio::test]
async fn pushes_over_100_items_across_products_and_variations_apply_and_read_back() {
    let sim = store(|c| {
        let mut products = catalog(130, 1, "S");
        products.extend(catalog(3, 50, "V"));
        c.products = products;
    })
    .await;
    let woo = woo(&sim);
    let listings = woo.discover().await.unwrap();
    assert_eq!(listings.len(), 280);
    let items: Vec<PushItem> = listings
        .iter()
        .enumerate()
        .map(|(i, l)| item(l, (i % 17) as i64))
        .collect();

    // The caller splits by push mode; the connector copes with more anyway.
    let outcomes = woo.push(&items).await.unwrap();
    assert_eq!(outcomes.len(), items.len());
    for ((listing, pushed), outcome) in listings.iter().zip(&items).zip(&outcomes) {
        assert_eq!(
            outcome,
            &PushOutcome::Applied {
                confirmed: pushed.quantity
            },
            "{}",
            listing.listing_key
        );
        assert_eq!(sim.stock(stock_id(listing)), Some(pushed.quantity));
    }
    let refs: Vec<ListingRef> = listings.iter().map(reference).collect();
    let read: HashMap<String, i64> = woo
        .read_quantities(&refs)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(read.len(), listings.len());
    for pushed in &items {
        assert_eq!(read[&pushed.listing.listing_key], pushed.quantity);
    }

    // A sale in the store and an edit by hand show in the next read.
    let first = &listings[0];
    sim.admin_set_stock(stock_id(first), 42).unwrap();
    let read = woo.read_quantities(&refs[..1]).await.unwrap();
    assert_eq!(read, vec![(first.listing_key.clone(), 42)]);
}

/// The emulated compare-and-set is exact, like Shopify's: a store showing more than expected (it
/// put units back itself, which may offset a sale stockhub has not heard of) is not written
/// either, and says what it shows.
#[tokio::test]
async fn a_store_showing_more_than_expected_is_not_overwritten() {
    let sim = store(|c| c.products = catalog(1, 2, "M")).await;
    let woo = woo(&sim);
    let listings = woo.discover().await.unwrap();
    let shown = stock_of(&sim, &listings);
    let items: Vec<PushItem> = listings
        .iter()
        .zip(&shown)
        .enumerate()
        .map(|(i, (l, before))| PushItem {
            listing: reference(l),
            quantity: 1,
            change_from: Some(if i == 0 { before - 1 } else { *before }),
        })
        .collect();
    let outcomes = woo.push(&items).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            PushOutcome::Stale {
                actual: Some(shown[0])
            },
            PushOutcome::Applied { confirmed: 1 }
        ]
    );
    assert_eq!(sim.stock(stock_id(&listings[0])), Some(shown[0]));
    assert_eq!(sim.stock(stock_id(&listings[1])), Some(1));
}

/// DESIGN §1 `u`: a store showing less than expected made a sale stockhub has not heard of;
/// the quantity written holds it back, so the store never shows the unit it sold.
#[tokio::test]
async fn a_sale_stockhub_has_not_heard_of_is_held_back_not_overwritten() {
    let sim = store(|c| c.products = catalog(2, 3, "C")).await;
    let woo = woo(&sim);
    let listings = woo.discover().await.unwrap();
    let shown = stock_of(&sim, &listings);
    // The store sells one unit of the second listing after stockhub last saw its quantity.
    let sold = &listings[1];
    sell_one_by_sku(&sim, sold);
    let items = compared_items(&listings, &shown, |_, was| was - 2);
    let outcomes = woo.push(&items).await.unwrap();
    for (i, (listing, outcome)) in listings.iter().zip(&outcomes).enumerate() {
        if i == 1 {
            assert_eq!(
                outcome,
                &PushOutcome::HeldBack {
                    actual: shown[1] - 1,
                    confirmed: shown[1] - 3
                }
            );
            assert_eq!(
                sim.stock(stock_id(listing)),
                Some(shown[1] - 3),
                "the quantity less the sale stockhub has not heard of"
            );
        } else {
            assert_eq!(
                outcome,
                &PushOutcome::Applied {
                    confirmed: shown[i] - 2
                },
                "{}",
                listing.listing_key
            );
        }
    }
}

/// The compare-and-set reads the quantities of items of many products in one call, by SKU
/// (WooCommerce lists variations there too), and writes each product's variations in its own
/// call; an item that read does not find (its SKU was changed in the store) is read by its own
/// call.
#[tokio::test]
async fn a_push_across_products_reads_their_quantities_in_one_call_by_sku() {
    let sim = store(|_| {}).await;
    let connection = connection(&sim, Duration::from_secs(10));
    let calls = connection.calls.clone();
    let woo = connector(connection).unwrap();
    let listings = woo.discover().await.unwrap();
    assert_eq!(listings.len(), 20);
    let shown = stock_of(&sim, &listings);
    let variations: Vec<&ChannelListing> = listings
        .iter()
        .filter(|l| l.listing_key.starts_with("variation/"))
        .collect();
    // The store renames one variation's SKU and sells one unit of another.
    let renamed = variations[0];
    let renamed_parent = renamed.ids["product_id"].as_u64().unwrap();
    let response = reqwest::Client::new()
        .put(format!(
            "{}/products/{renamed_parent}/variations/{}",
            sim.rest_url(),
            stock_id(renamed)
        ))
        .basic_auth(
            &sim.config().consumer_key,
            Some(&sim.config().consumer_secret),
        )
        .json(&json!({"sku": "RENAMED-IN-THE-STORE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sold = variations[4];
    sell_one_by_sku(&sim, sold);
    let before = sim.api_requests().len();
    let calls_before = calls.get();

    let items = compared_items(&listings, &shown, |_, was| was - 2);
    let outcomes = woo.push(&items).await.unwrap();
    for ((listing, was), outcome) in listings.iter().zip(&shown).zip(&outcomes) {
        let expected = if listing.listing_key == sold.listing_key {
            PushOutcome::HeldBack {
                actual: was - 1,
                confirmed: was - 3,
            }
        } else {
            PushOutcome::Applied { confirmed: was - 2 }
        };
        assert_eq!(outcome, &expected, "{}", listing.listing_key);
    }

    let requests = sim.api_requests().split_off(before);
    assert_eq!(
        calls.get() - calls_before,
        requests.len() as u64,
        "the connector counts every request it sends"
    );
    let reads: Vec<&String> = requests.iter().filter(|r| r.starts_with("GET ")).collect();
    assert_eq!(reads.len(), 2, "{reads:#?}");
    assert!(
        reads
            .iter()
            .any(|r| r.starts_with("GET /wp-json/wc/v3/products?sku=")),
        "{reads:#?}"
    );
    assert!(
        reads.iter().any(|r| r.starts_with(&format!(
            "GET /wp-json/wc/v3/products/{renamed_parent}/variations?include={}&",
            stock_id(renamed)
        ))),
        "{reads:#?}"
    );
    let mut writes: Vec<&str> = requests
        .iter()
        .filter(|r| r.starts_with("POST "))
        .map(String::as_str)
        .collect();
    writes.sort_unstable();
    let mut expected_writes = vec!["POST /wp-json/wc/v3/products/batch".to_owned()];
    let mut parents: Vec<u64> = variations
        .iter()
        .map(|l| l.ids["product_id"].as_u64().unwrap())
        .collect();
    parents.dedup();
    expected_writes.extend(
        parents
            .iter()
            .map(|p| format!("POST /wp-json/wc/v3/products/{p}/variations/batch")),
    );
    expected_writes.sort_unstable();
    assert_eq!(writes, expected_writes);
}

#[tokio::test]
async fn a_store_with_a_lower_batch_limit_gets_smaller_calls() {
    // 40 simple products and one product of 70 variations; the store takes 30 items a call, so
    // both groups meet a 413 and are halved until they fit.
    let sim = store(|c| {
        c.batch_limit = 30;
        c.products = catalog(40, 1, "S")
            .into_iter()
            .chain(catalog(1, 70, "V"))
            .collect();
    })
    .await;
    let woo = woo(&sim);
    let listings = woo.discover().await.unwrap();
    assert_eq!(listings.len(), 110);
    let items: Vec<PushItem> = listings
        .iter()
        .enumerate()
        .map(|(i, l)| item(l, 100 + i as i64))
        .collect();
    let outcomes = woo.push(&items).await.unwrap();
    for ((listing, pushed), outcome) in listings.iter().zip(&items).zip(&outcomes) {
        assert_eq!(
            outcome,
            &PushOutcome::Applied {
                confirmed: pushed.quantity
            }
        );
        assert_eq!(sim.stock(stock_id(listing)), Some(pushed.quantity));
    }
}

#[tokio::test]
async fn per_item_errors_fail_only_their_items() {
    let sim = store(|_| {}).await;
    let woo = woo(&sim);
    let listings = woo.discover().await.unwrap();
    let simple = listings
        .iter()
        .find(|l| l.listing_key.starts_with("product/"))
        .unwrap();
    let variation = listings
        .iter()
        .find(|l| l.listing_key.starts_with("variation/"))
        .unwrap();
    let ghost = ListingRef {
        listing_key: "product/999999".into(),
        channel_location: None,
        ids: json!({"product_id": 999_999}),
        channel_sku: None,
    };
    let orphan = ListingRef {
        listing_key: "variation/999998/1".into(),
        channel_location: None,
        ids: json!({"product_id": 999_998, "variation_id": 1}),
        channel_sku: None,
    };
    let nonsense = ListingRef {
        listing_key: "sku/ABC".into(),
        channel_location: None,
        ids: Value::Null,
        channel_sku: None,
    };
    let items = vec![
        item(simple, 3),
        PushItem {
            listing: ghost,
            quantity: 1,
            change_from: None,
        },
        item(variation, 4),
        PushItem {
            listing: orphan,
            quantity: 1,
            change_from: None,
        },
        PushItem {
            listing: nonsense,
            quantity: 1,
            change_from: None,
        },
    ];
    let outcomes = woo.push(&items).await.unwrap();
    assert_eq!(outcomes[0], PushOutcome::Applied { confirmed: 3 });
    assert!(
        matches!(&outcomes[1], PushOutcome::Failed(ChannelError::Permanent(m)) if m.contains("invalid_id")),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(outcomes[2], PushOutcome::Applied { confirmed: 4 });
    assert!(
        matches!(
            &outcomes[3],
            PushOutcome::Failed(ChannelError::Permanent(_))
        ),
        "{:?}",
        outcomes[3]
    );
    assert!(
        matches!(
            &outcomes[4],
            PushOutcome::Failed(ChannelError::Permanent(_))
        ),
        "{:?}",
        outcomes[4]
    );
    assert_eq!(sim.stock(stock_id(simple)), Some(3));
    assert_eq!(sim.stock(stock_id(variation)), Some(4));
}

#[tokio::test]
async fn failures_are_classified() {
    let sim = store(|_| {}).await;
    let listings = woo(&sim).discover().await.unwrap();
    let items: Vec<PushItem> = listings.iter().map(|l| item(l, 1)).collect();

    let mut wrong = connection(&sim, Duration::from_secs(10));
    wrong.consumer_secret = Secret::new("cs_wrong");
    let wrong = connector(wrong).unwrap();
    assert!(matches!(
        wrong.push(&items).await,
        Err(ChannelError::Auth(_))
    ));
    assert!(matches!(wrong.discover().await, Err(ChannelError::Auth(_))));

    let woo = woo(&sim);
    sim.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    assert!(matches!(
        woo.push(&items).await,
        Err(ChannelError::Transient(_))
    ));
    assert!(matches!(
        woo.orders_updated_since(0).await,
        Err(ChannelError::Transient(_))
    ));

    sim.set_faults(Faults {
        rate_limit_storm: true,
        retry_after_seconds: 3,
        ..Faults::default()
    });
    assert_eq!(
        woo.push(&items).await,
        Err(ChannelError::RateLimited {
            retry_after: Some(Duration::from_secs(3))
        })
    );
    let pause = woo.backpressure().expect("the store asked for a pause");
    assert!(pause > Duration::from_secs(2) && pause <= Duration::from_secs(3));

    sim.set_faults(Faults {
        hold: Some(Hold::Before),
        ..Faults::default()
    });
    let impatient = connector(connection(&sim, Duration::from_millis(300))).unwrap();
    assert_eq!(impatient.push(&items).await, Err(ChannelError::Timeout));

    sim.set_faults(Faults::default());
    let outcomes = woo.push(&items).await.unwrap();
    assert!(outcomes
        .iter()
        .all(|o| o == &PushOutcome::Applied { confirmed: 1 }));
}

#[tokio::test]
async fn orders_backfill_pages_through_every_status() {
    let sim = store(|c| c.products = catalog(250, 1, "S")).await;
    let items = sim.items();
    let before = now_ms() - 2_000;
    let mut placed = Vec::new();
    for (n, info) in items.iter().enumerate() {
        let mut order = NewOrder::lines(vec![OrderLine::product(info.id, 1)]);
        order.status = ["processing", "on-hold", "pending", "completed"][n % 4].into();
        let order = sim.place_order(&order).unwrap();
        placed.push(order["id"].as_u64().unwrap());
    }
    for id in placed.iter().step_by(10) {
        sim.set_order_status(*id, "cancelled").unwrap();
    }
    let woo = woo(&sim);
    let orders = woo.orders_updated_since(before).await.unwrap();
    assert_eq!(orders.len(), placed.len());
    let by_id: HashMap<&str, _> = orders.iter().map(|o| (o.external_id.as_str(), o)).collect();
    for (n, id) in placed.iter().enumerate() {
        let order = by_id[id.to_string().as_str()];
        let status = sim.order(*id).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned();
        let open = matches!(status.as_str(), "processing" | "on-hold" | "completed");
        assert_eq!(order.open, open, "order {id} is {status}");
        assert_eq!(order.lines.len(), 1);
        assert_eq!(order.lines[0].sku.as_deref(), Some(items[n].sku.as_str()));
        assert_eq!(
            order.lines[0].variant_ref.as_deref(),
            Some(format!("product/{}", items[n].id).as_str())
        );
        assert_eq!(
            order.lines[0].shipped,
            if status == "completed" { 1 } else { 0 }
        );
        assert!(stockhub_channels::connector::version_time_ms(order.version) >= before);
    }
    assert!(woo
        .orders_updated_since(now_ms() + 60_000)
        .await
        .unwrap()
        .is_empty());
}

/// The store's first simple (not variable) product.
fn simple_product(sim: &WooSim) -> stockhub_sim::woocommerce::ItemInfo {
    sim.items()
        .into_iter()
        .find(|i| i.kind != "variable")
        .expect("a simple product")
}

/// An order of one unit of the product, placed in the store.
fn sell_one(sim: &WooSim, product_id: u64) -> Value {
    sim.place_order(&NewOrder::lines(vec![OrderLine::product(product_id, 1)]))
        .expect("a sale")
}

/// WooCommerce keeps `date_modified` to the second and `modified_after` excludes the second it
/// names: a read of the orders updated since a moment still finds one updated later in the same
/// second.
#[tokio::test]
async fn orders_updated_later_in_the_same_second_are_read() {
    let sim = store(|_| {}).await;
    let woo = woo(&sim);
    let item = simple_product(&sim);
    for _ in 0..3 {
        let since = now_ms();
        let order = sell_one(&sim, item.id);
        let id = order["id"].as_u64().unwrap().to_string();
        let read = woo.orders_updated_since(since).await.unwrap();
        assert!(
            read.iter().any(|o| o.external_id == id),
            "order {id} (modified {}) was not read since {since}",
            order["date_modified_gmt"]
        );
    }
}

/// A read of many orders reads every page once the first says how many there are, several at
/// once, and keeps reading while orders placed meanwhile add pages: every order is read, once.
#[tokio::test]
async fn orders_over_many_pages_are_all_read_also_while_more_are_placed() {
    let sim = store(|_| {}).await;
    let woo = woo(&sim);
    let item = simple_product(&sim);
    sim.admin_set_stock(item.id, 10_000).unwrap();
    let since = now_ms();
    let place = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                let order = sell_one(&sim, item.id);
                order["id"].as_u64().unwrap().to_string()
            })
            .collect()
    };
    let mut placed = place(650);
    let read = woo.orders_updated_since(since);
    let more = async {
        tokio::task::yield_now().await;
        place(150)
    };
    let (read, more) = tokio::join!(read, more);
    let read: Vec<String> = read.unwrap().into_iter().map(|o| o.external_id).collect();
    let distinct: std::collections::BTreeSet<&String> = read.iter().collect();
    assert_eq!(distinct.len(), read.len(), "an order was read twice");
    for id in &placed {
        assert!(
            distinct.contains(id),
            "order {id} placed before the read was not read"
        );
    }
    // Those placed while it ran may or may not be in it; a read after has all of them.
    placed.extend(more);
    let all = woo.orders_updated_since(since).await.unwrap();
    assert_eq!(all.len(), placed.len());
}

#[tokio::test]
async fn refunds_reference_the_order_lines() {
    let sim = store(|_| {}).await;
    let woo = woo(&sim);
    let skus: Vec<String> = sim
        .items()
        .into_iter()
        .filter(|i| i.kind != "variable")
        .map(|i| i.sku)
        .take(2)
        .collect();
    let mut order = NewOrder::lines(vec![
        OrderLine::sku(&skus[0], 3),
        OrderLine::sku(&skus[1], 2),
    ]);
    order.status = "completed".into();
    let order = sim.place_order(&order).unwrap();
    let id = order["id"].as_u64().unwrap();
    let line = |n: usize| order["line_items"][n]["id"].as_u64().unwrap();
    let refund = |line_item_id, quantity, api_restock| NewRefund {
        line_items: vec![RefundLineRequest {
            line_item_id,
            quantity,
        }],
        api_restock,
        reason: String::new(),
    };
    sim.refund(id, &refund(line(0), 2, true)).unwrap();
    sim.refund(id, &refund(line(1), 1, false)).unwrap();

    let snapshot = woo
        .orders_updated_since(0)
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.external_id == id.to_string())
        .unwrap();
    assert_eq!(snapshot.refunds_to_fetch.len(), 2);
    let refunds = woo.fetch_refunds(&snapshot).await.unwrap();
    assert_eq!(refunds.len(), 2);
    let mut ids: Vec<&String> = refunds.iter().map(|r| &r.refund_id).collect();
    ids.sort();
    let mut listed: Vec<&String> = snapshot.refunds_to_fetch.iter().collect();
    listed.sort();
    assert_eq!(ids, listed);
    // Oldest first; lines name the order's own line items, with positive quantities.
    assert_eq!(refunds[0].lines.len(), 1);
    assert_eq!(refunds[0].lines[0].line_id, line(0).to_string());
    assert_eq!(refunds[0].lines[0].quantity, 2);
    assert_eq!(refunds[1].lines[0].line_id, line(1).to_string());
    assert_eq!(refunds[1].lines[0].quantity, 1);
    assert!(refunds
        .iter()
        .all(|r| r.order_external_id == id.to_string()));
    // WooCommerce records a restock on the order line (`_restock_refunded_items`); the refund
    // reads restocked exactly when the store's order shows that record.
    let restock_recorded = |n: usize| {
        snapshot.raw["line_items"][n]["meta_data"]
            .as_array()
            .is_some_and(|meta| meta.iter().any(|m| m["key"] == "_restock_refunded_items"))
    };
    assert_eq!(refunds[0].lines[0].restock, restock_recorded(0));
    assert!(!refunds[1].lines[0].restock);

    // An order without refunds needs no call.
    let mut plain = snapshot.clone();
    plain.refunds_to_fetch.clear();
    sim.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    assert!(woo.fetch_refunds(&plain).await.unwrap().is_empty());
}

/// Requests as received: headers and raw body.
type Log = Arc<Mutex<Vec<(http::HeaderMap, Vec<u8>)>>>;

/// A bare HTTP/1.1 receiver on port 0: records each request, answers 200.
#[derive(Clone, Default)]
struct Receiver {
    received: Log,
}

impl Receiver {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/woo", listener.local_addr().unwrap());
        let received = self.received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection_loop(stream, received.clone()));
            }
        });
        url
    }

    fn received(&self) -> Vec<(http::HeaderMap, Vec<u8>)> {
        self.received.lock().unwrap().clone()
    }
}

async fn connection_loop(stream: tokio::net::TcpStream, received: Log) {
    let mut buffer = Vec::new();
    loop {
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            if !read_more(&stream, &mut buffer).await {
                return;
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        let mut headers = http::HeaderMap::new();
        for line in head.lines().skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                headers.append(
                    http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                    value.trim().parse().unwrap(),
                );
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        while buffer.len() < end + 4 + length {
            if !read_more(&stream, &mut buffer).await {
                return;
            }
        }
        let body = buffer[end + 4..end + 4 + length].to_vec();
        buffer.drain(..end + 4 + length);
        received.lock().unwrap().push((headers, body));
        let mut answer: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        while !answer.is_empty() {
            if stream.writable().await.is_err() {
                return;
            }
            match stream.try_write(answer) {
                Ok(n) => answer = &answer[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
    }
}

async fn read_more(stream: &tokio::net::TcpStream, buffer: &mut Vec<u8>) -> bool {
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

#[tokio::test]
async fn the_stores_pings_and_signed_webhooks_verify_identify_and_read() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let sim = store(|c| {
        c.webhook_delivery_delay_ms = 0;
        c.webhooks = ["order.created", "order.updated"]
            .into_iter()
            .map(|topic| WebhookSpec {
                name: None,
                topic: topic.into(),
                delivery_url: url.clone(),
                secret: Some(WEBHOOK_SECRET.into()),
                status: None,
            })
            .collect();
    })
    .await;
    let woo = woo(&sim);
    assert!(
        sim.wait_for_deliveries(Duration::from_secs(10)).await,
        "the creation pings"
    );
    let variation = sim
        .items()
        .into_iter()
        .find(|i| i.kind == "variation")
        .unwrap();
    // Start just after a second begins, so that the two updates below most likely go out in
    // the same second and share their X-WC-Webhook-Delivery-ID.
    tokio::time::sleep(Duration::from_millis(1_010 - (now_ms() % 1_000) as u64)).await;
    let order = sim
        .place_order(&NewOrder::lines(vec![OrderLine::sku(&variation.sku, 2)]))
        .unwrap();
    let id = order["id"].as_u64().unwrap();
    assert!(sim.wait_for_deliveries(Duration::from_secs(10)).await);
    sim.set_order_status(id, "completed").unwrap();
    assert!(sim.wait_for_deliveries(Duration::from_secs(10)).await);
    sim.set_faults(Faults {
        duplicate_webhook_rate: 1.0,
        ..Faults::default()
    });
    sim.set_order_status(id, "cancelled").unwrap();
    assert!(sim.wait_for_deliveries(Duration::from_secs(10)).await);

    let received = receiver.received();
    let (pings, deliveries): (Vec<_>, Vec<_>) = received
        .iter()
        .partition(|(_, body)| body.starts_with(b"webhook_id="));
    assert_eq!(pings.len(), 2);
    for (headers, body) in &pings {
        assert_eq!(woo.verify(headers, body), Verdict::Ping);
        let delivery = woo.identify(headers, body).unwrap();
        assert_eq!(delivery.topic, "ping");
        assert_eq!(
            woo.interpret(&delivery, body).unwrap(),
            Intake::Ignore("ping".into())
        );
    }
    assert_eq!(
        deliveries.len(),
        4,
        "created, completed, cancelled and its duplicate"
    );
    let mut states: HashMap<String, Vec<u8>> = HashMap::new();
    let mut seen = Vec::new();
    for (headers, body) in &deliveries {
        assert_eq!(woo.verify(headers, body), Verdict::Valid);
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert!(matches!(
            woo.verify(headers, &tampered),
            Verdict::Invalid(_)
        ));
        let mut unsigned = headers.clone();
        unsigned.remove("x-wc-webhook-signature");
        assert!(matches!(woo.verify(&unsigned, body), Verdict::Invalid(_)));

        let delivery = woo.identify(headers, body).unwrap();
        assert!(delivery.delivery_id.is_some());
        // One identity per state: a duplicate has the same, another state another.
        if let Some(earlier) = states.insert(delivery.dedupe_key.clone(), body.clone()) {
            assert_eq!(&earlier, body);
        }
        let Intake::Order(order) = woo.interpret(&delivery, body).unwrap() else {
            panic!("an order")
        };
        assert_eq!(order.external_id, id.to_string());
        assert_eq!(order.lines.len(), 1);
        assert_eq!(order.lines[0].sku.as_deref(), Some(variation.sku.as_str()));
        assert_eq!(
            order.lines[0].variant_ref.as_deref(),
            Some(
                format!(
                    "variation/{}/{}",
                    variation.parent_id.unwrap(),
                    variation.id
                )
                .as_str()
            )
        );
        seen.push((delivery.topic.clone(), order.open, order.lines[0].shipped));
    }
    assert_eq!(states.len(), 3);
    // When the completed and cancelled states went out in the same second they share a
    // delivery id, and their identities still differ.
    let updates: Vec<_> = sim
        .deliveries()
        .into_iter()
        .filter(|d| !d.ping && !d.duplicate && d.topic == "order.updated")
        .collect();
    assert_eq!(updates.len(), 2);
    if updates[0].at_unix_ms / 1000 == updates[1].at_unix_ms / 1000 {
        assert_eq!(updates[0].delivery_id, updates[1].delivery_id);
    }
    assert_eq!(
        seen,
        vec![
            ("order.created".to_owned(), true, 0),
            ("order.updated".to_owned(), true, 2),
            ("order.updated".to_owned(), false, 0),
            ("order.updated".to_owned(), false, 0),
        ]
    );
}

/// An item whose store shows the quantity to set already (the push after that store's own sale)
/// is compared but not written: a product whose items all show theirs costs no call, and one of
/// them whose store sold meanwhile comes back held back, with nothing to write either.
#[tokio::test]
async fn a_compared_item_showing_its_quantity_already_is_not_written() {
    let sim = store(|_| {}).await;
    let woo = woo(&sim);
    let listings = woo.discover().await.unwrap();
    let shown = stock_of(&sim, &listings);
    let parent_of = |l: &ChannelListing| l.ids["product_id"].as_u64();
    let first_parent = listings
        .iter()
        .find(|l| l.listing_key.starts_with("variation/"))
        .and_then(parent_of)
        .expect("a variable product");
    let unchanged = |l: &ChannelListing| parent_of(l) == Some(first_parent);
    let sold = listings
        .iter()
        .filter(|l| unchanged(l))
        .nth(1)
        .expect("two variations");
    sell_one_by_sku(&sim, sold);
    let before = sim.api_requests().len();

    let items = compared_items(
        &listings,
        &shown,
        |l, was| {
            if unchanged(l) {
                was
            } else {
                was - 1
            }
        },
    );
    let outcomes = woo.push(&items).await.unwrap();
    for ((listing, was), outcome) in listings.iter().zip(&shown).zip(&outcomes) {
        let expected = if listing.listing_key == sold.listing_key {
            // Its quantity less the sale is what it shows: nothing to write.
            PushOutcome::HeldBack {
                actual: was - 1,
                confirmed: was - 1,
            }
        } else if unchanged(listing) {
            PushOutcome::Applied { confirmed: *was }
        } else {
            PushOutcome::Applied { confirmed: was - 1 }
        };
        assert_eq!(outcome, &expected, "{}", listing.listing_key);
    }
    let sold_was = listings
        .iter()
        .zip(&shown)
        .find(|(l, _)| l.listing_key == sold.listing_key)
        .map(|(_, was)| *was)
        .unwrap();
    assert_eq!(
        sim.stock(stock_id(sold)),
        Some(sold_was - 1),
        "not overwritten"
    );
    let requests = sim.api_requests().split_off(before);
    let unwritten = format!("POST /wp-json/wc/v3/products/{first_parent}/variations/batch");
    assert!(
        requests.iter().all(|r| !r.starts_with(&unwritten)),
        "{requests:#?}"
    );
    assert!(
        requests.iter().any(|r| r.starts_with("POST ")),
        "the other products are written: {requests:#?}"
    );
}
