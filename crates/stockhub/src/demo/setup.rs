//! The demo's world: a generated catalog, two simulated Shopify stores and one simulated
//! WooCommerce store that sell it, and stockhub set up through its own API — two locations, the
//! variants, one connected channel per store, a stock receipt, discovery — until every store
//! shows stockhub's quantities. Only then do the stores send their webhooks to stockhub.

use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;
use serde_json::{json, Value};
use stockhub_sim::{CatalogSpec, Fleet, ProductSeed};

use super::{report, DemoArgs};
use crate::client::{segment, Api};
use crate::server::Server;
use crate::sim_cmd::{self, StoreAccess};

/// stockhub's locations in the demo, with their names; both feed every channel.
pub const LOCATIONS: [(&str, &str); 2] = [("east", "East warehouse"), ("west", "West warehouse")];

/// The most units of a SKU first received at one location.
const FIRST_RECEIPT_MAX: u32 = 8;

/// How long the first push of every store may take.
const FIRST_PUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// The running stores and what stockhub knows of them.
pub struct Demo {
    pub fleet: Fleet,
    /// One per store, in the order of `fleet.shopify` then `fleet.woocommerce`.
    pub stores: Vec<StoreAccess>,
    pub skus: Vec<String>,
}

pub async fn prepare(
    api: &Api,
    server: &Server,
    args: &DemoArgs,
    rng: &mut impl Rng,
) -> anyhow::Result<Demo> {
    let catalog = CatalogSpec {
        products: args.products,
        variants_per_product: args.variants_per_product,
        locations: 1,
        // The stores start empty: stockhub's first push gives them their quantities.
        quantity: 0,
        sku_prefix: "DEMO".to_owned(),
    };
    let products = catalog.build();
    let mut spec = sim_cmd::fleet_spec(catalog, (2, args.shopify_plan), 1, "127.0.0.1", None);
    for store in &mut spec.shopify {
        // Shopify spreads a failed webhook's 8 retries over 4 hours; the demo compresses that
        // to about 15 seconds so that a retried order still lands before the final check.
        store.webhook_time_scale = 0.001;
    }
    let fleet = Fleet::start(spec)
        .await
        .context("starting the simulated stores")?;
    let stores = sim_cmd::access(&fleet);
    let skus = create_catalog(api, &products).await?;
    println!(
        "catalog: {} products, {} variants, {} locations ({})",
        products.len(),
        skus.len(),
        LOCATIONS.len(),
        LOCATIONS.map(|l| l.0).join(", ")
    );
    for store in &stores {
        api.put(
            &format!("/v1/channels/{}", segment(&store.code)),
            &store.channel_body(),
        )
        .await
        .with_context(|| format!("configuring channel {}", store.code))?;
    }
    let units = receive_stock(api, &skus, rng).await?;
    println!("stock received: {units} units");
    discover(api, &stores).await?;
    let started = Instant::now();
    if !report::quiesce(&server.store, &fleet, FIRST_PUSH_TIMEOUT).await? {
        anyhow::bail!(
            "the first push to the stores did not finish within {} s; see {}/v1/pushes",
            FIRST_PUSH_TIMEOUT.as_secs(),
            api.base_url()
        );
    }
    println!(
        "first push: every store shows stockhub's quantities ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    sim_cmd::send_webhooks(&fleet, &format!("{}/webhooks/{{channel}}", api.base_url()))?;
    Ok(Demo {
        fleet,
        stores,
        skus,
    })
}

/// Creates the locations, the products and their variants; returns the SKUs.
async fn create_catalog(api: &Api, products: &[ProductSeed]) -> anyhow::Result<Vec<String>> {
    for (code, name) in LOCATIONS {
        api.put(&format!("/v1/locations/{code}"), &json!({ "name": name }))
            .await
            .with_context(|| format!("creating location {code}"))?;
    }
    let mut variants = Vec::new();
    for (index, product) in products.iter().enumerate() {
        let product_id = format!("demo-{:04}", index + 1);
        api.put(
            &format!("/v1/products/{product_id}"),
            &json!({ "title": product.title }),
        )
        .await
        .with_context(|| format!("creating product {product_id}"))?;
        for v in &product.variants {
            let Some(sku) = &v.sku else { continue };
            variants.push(json!({
                "sku": sku,
                "product_id": product_id,
                "title": format!("{} / {}", product.title, v.title),
            }));
        }
    }
    let skus = variants
        .iter()
        .filter_map(|v| v["sku"].as_str().map(str::to_owned))
        .collect();
    api.post("/v1/variants/batch", &json!({ "variants": variants }))
        .await
        .context("creating the variants")?;
    Ok(skus)
}

/// Receives 0 to 8 units of every SKU at each location, in one request; returns the units.
async fn receive_stock(api: &Api, skus: &[String], rng: &mut impl Rng) -> anyhow::Result<u64> {
    let mut movements = Vec::new();
    let mut units = 0u64;
    for sku in skus {
        for (location, _) in LOCATIONS {
            let quantity = rng.random_range(0..=FIRST_RECEIPT_MAX);
            if quantity > 0 {
                units += u64::from(quantity);
                movements.push(json!({
                    "kind": "receive", "sku": sku, "location": location, "quantity": quantity,
                    "note": "demo: opening stock",
                }));
            }
        }
    }
    api.post("/v1/stock/movements", &json!({ "movements": movements }))
        .await
        .context("receiving the opening stock")?;
    Ok(units)
}

/// Runs discovery on every channel and prints what each matched.
async fn discover(api: &Api, stores: &[StoreAccess]) -> anyhow::Result<()> {
    for store in stores {
        let report: Value = api
            .post(
                &format!("/v1/channels/{}/discover", segment(&store.code)),
                &json!({}),
            )
            .await
            .with_context(|| format!("discovering channel {}", store.code))?;
        let count = |name: &str| report[name].as_array().map_or(0, Vec::len);
        println!(
            "discovery: {:<7} {:<12} {} listings matched, {} unknown SKUs, {} SKUs missing, {} duplicates",
            store.code,
            store.kind,
            report["matched"].as_u64().unwrap_or(0),
            count("unknown_channel_skus"),
            count("missing_on_channel"),
            count("duplicate_skus"),
        );
    }
    Ok(())
}

impl Demo {
    /// The addresses worth opening while the demo runs.
    pub fn where_to_look(&self, base_url: &str) -> String {
        let sku = self.skus.first().map_or("DEMO-0001-01", String::as_str);
        let mut out = String::from("\nwhere to look while it runs:\n");
        out += &format!("  API        {base_url}/v1/stock/{sku}  (also /v1/channels, /v1/pushes, /v1/events, /v1/ledger)\n");
        out += &format!("  OpenAPI    {base_url}/openapi.json\n");
        out += &format!("  metrics    {base_url}/metrics\n");
        for store in &self.stores {
            out += &format!(
                "  {:<10} {:<12} {}  (simulator control: {}/catalog, {}/orders)\n",
                store.code, store.kind, store.base_url, store.control_url, store.control_url
            );
        }
        out
    }
}
