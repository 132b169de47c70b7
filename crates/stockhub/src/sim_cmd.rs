//! `stockhub sim`: simulated Shopify and WooCommerce stores on local ports, each with the same
//! generated catalog, for pointing a stockhub at by hand. Prints what a channel needs to connect
//! to each store (base URL, credentials, webhook secret, and the `PUT /v1/channels/{code}` body)
//! and runs until interrupted. The demo starts its stores with the same description.

use anyhow::Context;
use serde_json::{json, Value};
use stockhub_sim::shopify::{ShopifyConfig, DEFAULT_TOPICS as SHOPIFY_TOPICS};
use stockhub_sim::woocommerce::{WebhookSpec, WooConfig, TOPICS as WOO_TOPICS};
use stockhub_sim::{BucketConfig, CatalogSpec, Fleet, FleetSpec};

use crate::server::shutdown_signal;

/// Starts simulated stores and prints how to connect stockhub to them.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each store keeps its catalog in memory; stop with Ctrl-C (or SIGTERM). \
Every store also serves a JSON control API under /_sim (place orders, cancel, refund, inject \
faults, read the display log) — see crates/sim."
)]
pub struct SimArgs {
    /// Number of Shopify stores (channel codes shop-1, shop-2, …).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub shopify: usize,
    /// Number of WooCommerce stores (channel codes woo-1, woo-2, …).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub woocommerce: usize,
    /// Products in each store's catalog.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub products: usize,
    /// Variants of each product (SKUs SIM-<product>-<variant>).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub variants_per_product: usize,
    /// Locations of each Shopify store (a WooCommerce store has one stock per item).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub locations: usize,
    /// Starting quantity of every variant at every location.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub quantity: i64,
    /// Prefix of the generated SKUs.
    #[arg(long, value_name = "PREFIX", default_value = "SIM")]
    pub sku_prefix: String,
    /// The Shopify plan whose API limits the Shopify stores enforce.
    #[arg(long, value_enum, value_name = "PLAN", default_value_t = ShopifyPlan::Standard)]
    pub shopify_plan: ShopifyPlan,
    /// Host (IP address) the stores listen on.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub listen_host: String,
    /// First port: stores listen on consecutive ports from here, Shopify stores first
    /// [default: any free port each].
    #[arg(long, value_name = "PORT")]
    pub base_port: Option<u16>,
    /// Where each store sends its webhooks; `{channel}` becomes the store's channel code,
    /// e.g. http://127.0.0.1:8080/webhooks/{channel} [default: no webhooks]
    #[arg(long, value_name = "URL")]
    pub webhook_url_template: Option<String>,
    /// Print the stores as JSON (one array) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A Shopify plan, for its API limits (API_FACTS §1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShopifyPlan {
    /// GraphQL: 100 cost points restored per second; REST: 2 calls per second.
    Standard,
    /// GraphQL: 200 points per second; REST: 4 calls per second.
    Advanced,
    /// GraphQL: 1,000 points per second; REST: 20 calls per second.
    Plus,
}

impl ShopifyPlan {
    /// The GraphQL cost bucket and the REST call bucket of the plan. Shopify documents the
    /// restore rates; the bucket sizes are taken as 20 seconds of restore for GraphQL (2,000
    /// points on Standard) and 20 seconds of leak for REST (40 calls on Standard).
    pub fn buckets(self) -> (BucketConfig, BucketConfig) {
        let (points, calls) = match self {
            Self::Standard => (100.0, 2.0),
            Self::Advanced => (200.0, 4.0),
            Self::Plus => (1000.0, 20.0),
        };
        let bucket = |per_second: f64| BucketConfig {
            capacity: per_second * 20.0,
            per_second,
        };
        (bucket(points), bucket(calls))
    }
}

/// What a channel needs to connect to one simulated store.
#[derive(Debug, Clone)]
pub struct StoreAccess {
    pub code: String,
    pub kind: &'static str,
    pub base_url: String,
    pub control_url: String,
    /// Credentials, by the name the channel configuration gives them.
    pub credentials: Vec<(&'static str, String)>,
    pub webhook_secret: String,
    /// Shopify: the location stockhub stocks, `gid://shopify/Location/…`.
    pub location_id: Option<String>,
    pub webhook_address: Option<String>,
}

impl StoreAccess {
    /// The body of `PUT /v1/channels/{code}` that connects stockhub to this store.
    pub fn channel_body(&self) -> Value {
        let mut body = json!({
            "kind": self.kind,
            "base_url": self.base_url,
            "webhook_secret": self.webhook_secret,
        });
        for (name, value) in &self.credentials {
            body[*name] = json!(value);
        }
        if let Some(location) = &self.location_id {
            body["location_id"] = json!(location);
        }
        body
    }
}

/// The description of `shopify` Shopify stores and `woocommerce` WooCommerce stores with
/// deterministic credentials and secrets derived from their channel codes (they are fakes:
/// stable values let a stockhub keep its channel settings across restarts of the stores).
pub fn fleet_spec(
    catalog: CatalogSpec,
    (shopify, plan): (usize, ShopifyPlan),
    woocommerce: usize,
    host: &str,
    base_port: Option<u16>,
) -> FleetSpec {
    let (graphql_bucket, rest_bucket) = plan.buckets();
    let port = |index: usize| {
        base_port.map_or(0, |p| {
            p.saturating_add(u16::try_from(index).unwrap_or(u16::MAX))
        })
    };
    let locations: Vec<String> = (1..=catalog.locations.max(1))
        .map(|i| match i {
            1 => "Main warehouse".to_owned(),
            _ => format!("Location {i}"),
        })
        .collect();
    let shopify = (1..=shopify)
        .map(|i| {
            let code = format!("shop-{i}");
            ShopifyConfig {
                host: host.to_owned(),
                port: port(i - 1),
                shop_domain: format!("sim-{code}.myshopify.com"),
                access_token: format!("shpat_sim_{code}"),
                api_secret: format!("shpss_sim_{code}"),
                locations: locations.clone(),
                graphql_bucket,
                rest_bucket,
                seed: i as u64,
                ..ShopifyConfig::default()
            }
        })
        .collect::<Vec<_>>();
    let first_woo_port = shopify.len();
    let woocommerce = (1..=woocommerce)
        .map(|i| WooConfig {
            host: host.to_owned(),
            port: port(first_woo_port + i - 1),
            consumer_key: format!("ck_sim_woo-{i}"),
            consumer_secret: format!("cs_sim_woo-{i}"),
            seed: 100 + i as u64,
            ..WooConfig::default()
        })
        .collect();
    FleetSpec {
        catalog: Some(catalog),
        shopify,
        woocommerce,
    }
}

/// The secret a WooCommerce store of the fleet signs its webhooks with.
pub fn woo_webhook_secret(code: &str) -> String {
    format!("whsec_sim_{code}")
}

/// How to connect to every store of a running fleet started from [`fleet_spec`].
pub fn access(fleet: &Fleet) -> Vec<StoreAccess> {
    let shopify = fleet.shopify.iter().enumerate().map(|(i, s)| {
        let config = s.config();
        let location = s.locations().into_iter().next();
        StoreAccess {
            code: format!("shop-{}", i + 1),
            kind: "shopify",
            base_url: s.base_url().to_owned(),
            control_url: format!("{}/_sim", s.base_url()),
            credentials: vec![("access_token", config.access_token.clone())],
            webhook_secret: config.api_secret.clone(),
            location_id: location.map(|l| l.gid),
            webhook_address: s.webhook_target().address,
        }
    });
    let woo = fleet.woocommerce.iter().enumerate().map(|(i, w)| {
        let config = w.config();
        let code = format!("woo-{}", i + 1);
        StoreAccess {
            webhook_secret: woo_webhook_secret(&code),
            code,
            kind: "woocommerce",
            base_url: w.base_url().to_owned(),
            control_url: format!("{}/_sim", w.base_url()),
            credentials: vec![
                ("consumer_key", config.consumer_key.clone()),
                ("consumer_secret", config.consumer_secret.clone()),
            ],
            location_id: None,
            webhook_address: w.webhooks().first().map(|h| h.delivery_url.clone()),
        }
    });
    shopify.chain(woo).collect()
}

/// Points every store's webhooks at `template` (`{channel}` replaced by its code): Shopify
/// stores send the topics stockhub subscribes to, WooCommerce stores get one webhook per topic
/// (and ping it, as WooCommerce does on creation).
pub fn send_webhooks(fleet: &Fleet, template: &str) -> anyhow::Result<()> {
    for (i, store) in fleet.shopify.iter().enumerate() {
        let address = template.replace("{channel}", &format!("shop-{}", i + 1));
        store.set_webhook_address(Some(address));
    }
    for (i, store) in fleet.woocommerce.iter().enumerate() {
        let code = format!("woo-{}", i + 1);
        for topic in WOO_TOPICS {
            store
                .add_webhook(WebhookSpec {
                    name: Some(format!("stockhub {topic}")),
                    topic: (*topic).to_owned(),
                    delivery_url: template.replace("{channel}", &code),
                    secret: Some(woo_webhook_secret(&code)),
                    status: None,
                })
                .with_context(|| format!("creating the {topic} webhook of {code}"))?;
        }
    }
    Ok(())
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    if args.shopify + args.woocommerce == 0 {
        anyhow::bail!("nothing to start: give --shopify or --woocommerce at least 1");
    }
    if args.products == 0 || args.variants_per_product == 0 {
        anyhow::bail!("--products and --variants-per-product must be at least 1");
    }
    let catalog = CatalogSpec {
        products: args.products,
        variants_per_product: args.variants_per_product,
        locations: args.locations.max(1),
        quantity: args.quantity,
        sku_prefix: args.sku_prefix.clone(),
    };
    let spec = fleet_spec(
        catalog,
        (args.shopify, args.shopify_plan),
        args.woocommerce,
        &args.listen_host,
        args.base_port,
    );
    let fleet = Fleet::start(spec)
        .await
        .context("starting the simulated stores")?;
    if let Some(template) = &args.webhook_url_template {
        send_webhooks(&fleet, template)?;
    }
    let stores = access(&fleet);
    if args.json {
        let all: Vec<Value> = stores.iter().map(store_json).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print!("{}", stores_text(&stores, &args));
    }
    shutdown_signal().await;
    fleet.shutdown().await;
    Ok(())
}

fn store_json(store: &StoreAccess) -> Value {
    json!({
        "channel": store.code,
        "kind": store.kind,
        "base_url": store.base_url,
        "control_url": store.control_url,
        "webhook_address": store.webhook_address,
        "channel_settings": store.channel_body(),
    })
}

/// The server a webhook template points at, for the printed `curl` lines.
fn server_of(template: Option<&str>) -> String {
    template
        .and_then(|t| t.strip_suffix("/webhooks/{channel}"))
        .unwrap_or(crate::client::DEFAULT_SERVER)
        .to_owned()
}

fn stores_text(stores: &[StoreAccess], args: &SimArgs) -> String {
    let variants = args.products * args.variants_per_product;
    let mut out = format!(
        "{} simulated store(s), each with {} products and {variants} variants (SKUs {}-0001-01 …); \
         Shopify stores on {:?} plan limits\n",
        stores.len(),
        args.products,
        args.sku_prefix,
        args.shopify_plan
    );
    let server = server_of(args.webhook_url_template.as_deref());
    for s in stores {
        out += &format!("\n{}  {}\n", s.code, s.kind);
        out += &format!("  base URL        {}\n", s.base_url);
        out += &format!("  control URL     {}\n", s.control_url);
        for (name, value) in &s.credentials {
            out += &format!("  {name:<15} {value}\n");
        }
        if let Some(location) = &s.location_id {
            out += &format!("  location_id     {location}\n");
        }
        out += &format!("  webhook secret  {}\n", s.webhook_secret);
        let topics = if s.kind == "shopify" {
            SHOPIFY_TOPICS.join(", ")
        } else {
            WOO_TOPICS.join(", ")
        };
        match &s.webhook_address {
            Some(address) => out += &format!("  webhooks to     {address} ({topics})\n"),
            None => out += "  webhooks to     nowhere (see --webhook-url-template)\n",
        }
        out += &format!(
            "  connect with    curl -X PUT {server}/v1/channels/{} -d '{}'\n",
            s.code,
            s.channel_body()
        );
    }
    out += "\nRunning; Ctrl-C stops the stores.\n";
    out
}
