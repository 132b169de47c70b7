//! Several stores at once, each with its own catalog and stock.

use std::time::Duration;

use serde_json::json;
use stockhub_sim::shopify::{NewOrder, OrderLine, ShopifyConfig};
use stockhub_sim::woocommerce::{self, WooConfig};
use stockhub_sim::{CatalogSpec, Faults, Fleet, FleetSpec, Hold};

#[tokio::test]
async fn two_shopify_stores_and_a_woocommerce_store_keep_their_own_stock() {
    let spec = FleetSpec {
        catalog: Some(CatalogSpec {
            products: 100,
            variants_per_product: 10,
            locations: 2,
            quantity: 5,
            sku_prefix: "D".into(),
        }),
        shopify: vec![
            ShopifyConfig::default(),
            ShopifyConfig {
                shop_domain: "second.myshopify.com".into(),
                ..ShopifyConfig::default()
            },
        ],
        woocommerce: vec![WooConfig::default()],
    };
    let fleet = Fleet::start(spec).await.unwrap();
    let addresses = fleet.addresses();
    assert_eq!(addresses.len(), 3);
    assert_ne!(addresses[0].base_url, addresses[1].base_url);
    let (first, second, woo) = (&fleet.shopify[0], &fleet.shopify[1], &fleet.woocommerce[0]);
    assert_eq!(first.variants().len(), 1000);
    assert_eq!(
        woo.items().iter().filter(|i| i.kind == "variation").count(),
        1000
    );

    let variant = first.variant_by_sku("D-0001-01").unwrap();
    first
        .place_order(&NewOrder::lines(vec![OrderLine::variant(
            variant.variant_id,
            2,
        )]))
        .unwrap();
    woo.place_order(&woocommerce::NewOrder::lines(vec![
        woocommerce::OrderLine::sku("D-0001-01", 1),
    ]))
    .unwrap();
    let location = first.locations()[0].id;
    assert_eq!(
        first
            .variant_by_sku("D-0001-01")
            .unwrap()
            .available_at(location),
        Some(3)
    );
    let untouched = second.variant_by_sku("D-0001-01").unwrap();
    assert_eq!(untouched.available_at(second.locations()[0].id), Some(5));
    assert_eq!(woo.stock(woo.item_by_sku("D-0001-01").unwrap().id), Some(4));
    fleet.shutdown().await;
    assert!(
        reqwest::get(format!("{}/_sim/catalog", addresses[0].base_url))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_request_held_after_it_applied_is_a_write_without_an_answer() {
    let fleet = Fleet::start(FleetSpec {
        catalog: Some(CatalogSpec::default()),
        shopify: vec![ShopifyConfig::default()],
        ..FleetSpec::default()
    })
    .await
    .unwrap();
    let store = &fleet.shopify[0];
    let variant = store.variant_by_sku("SKU-0001-01").unwrap();
    let location = store.locations()[0].id;
    store.set_faults(Faults {
        hold: Some(Hold::After),
        ..Faults::default()
    });
    let request = reqwest::Client::new()
        .post(format!("{}/admin/api/2026-01/inventory_levels/set.json", store.base_url()))
        .header("X-Shopify-Access-Token", &store.config().access_token)
        .timeout(Duration::from_millis(300))
        .json(&json!({"location_id": location, "inventory_item_id": variant.inventory_item_id, "available": 77}))
        .send()
        .await;
    assert!(
        request.unwrap_err().is_timeout(),
        "the client never hears back"
    );
    assert_eq!(
        store.available(variant.inventory_item_id, location),
        Some(77),
        "yet the write happened"
    );
    store.set_faults(Faults::default());
}
