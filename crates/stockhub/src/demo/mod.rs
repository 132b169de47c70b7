//! `stockhub demo`: stockhub working end to end in one command. It starts a stockhub on a
//! temporary SQLite database (wired exactly as `serve` wires it), two simulated Shopify stores
//! and one simulated WooCommerce store with the same generated catalog, sets stockhub up through
//! its own API (locations, variants, connected channels, a stock receipt, discovery), and then
//! streams orders, cancels, refunds and receipts while it prints one line of figures a second.
//! On exit it waits for every webhook and push to land and checks that each store shows exactly
//! what stockhub says it may sell.
//!
//! - [`setup`]: the catalog, the stores and stockhub's configuration.
//! - [`traffic`]: the stream of shoppers' and merchants' actions.
//! - [`report`]: the figures, the live line, quiescence and the final verification.

mod report;
mod setup;
mod traffic;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::SeedableRng;

use crate::client::Api;
use crate::server::{self, Server};
use crate::settings::Settings;
use crate::sim_cmd::ShopifyPlan;

/// Runs stockhub, three simulated stores and a stream of orders, and shows what happens.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Everything runs in this one process and is thrown away on exit. \
While it runs, the printed API URL is a real stockhub: try /v1/stock/DEMO-0001-01, \
/v1/pushes, /v1/events, /metrics. Exit status: 0 when every store ends showing exactly \
stockhub's available quantity, 1 when one does not, 2 on an error."
)]
pub struct DemoArgs {
    /// Address stockhub listens on; if the port is taken a free one is used instead
    /// [default: 127.0.0.1:8080; env: STOCKHUB_LISTEN]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Orders placed per second, spread over the three stores at random (0: none).
    #[arg(long, value_name = "N", default_value_t = 20.0)]
    pub orders_per_second: f64,
    /// Stop by itself after this many seconds of orders [default: run until Ctrl-C]
    #[arg(long, value_name = "N")]
    pub seconds: Option<u64>,
    /// Products in the catalog.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub products: usize,
    /// Variants of each product (SKUs DEMO-<product>-<variant>).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub variants_per_product: usize,
    /// The Shopify plan whose API limits the simulated Shopify stores enforce. Plus lets
    /// discovery read 1,000 variants at once; on Standard (100 cost points a second) each
    /// Shopify store's discovery takes about 40 seconds.
    #[arg(long, value_enum, value_name = "PLAN", default_value_t = ShopifyPlan::Plus)]
    pub shopify_plan: ShopifyPlan,
    /// Seed of the random orders and quantities [default: a new one each run, printed]
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// How long the end waits for webhooks and pushes to land before it verifies.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=10_000.0).contains(&args.orders_per_second) {
        anyhow::bail!("--orders-per-second must be between 0 and 10000");
    }
    if args.products == 0 || args.variants_per_product == 0 {
        anyhow::bail!("--products and --variants-per-product must be at least 1");
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    settings.db = dir.path().join("stockhub.db").display().to_string();
    if let Some(listen) = &args.listen {
        settings.listen = listen.clone();
    }
    settings.validate()?;
    let store = server::open_store(&settings)?;
    let listener = bind_or_any_port(&settings.listen).await?;
    let server = Server::start(&settings, store, listener)?;
    let api = Api::new(&server.base_url())?;
    println!(
        "stockhub demo (seed {seed}): stockhub on {}, database {}",
        server.base_url(),
        settings.db
    );
    // Ctrl-C from here on ends the demo in order, whatever it is doing.
    let interrupted = server::shutdown_signal();
    tokio::pin!(interrupted);
    let prepared = tokio::select! {
        demo = setup::prepare(&api, &server, &args, &mut rng) => Some(demo),
        () = &mut interrupted => None,
    };
    let outcome = match prepared {
        Some(Ok(demo)) => {
            println!("{}", demo.where_to_look(&server.base_url()));
            let outcome = stream(&server, &api, &demo, &args, rng, interrupted).await;
            // stockhub first: its loops may still be talking to the stores.
            server.stop().await?;
            demo.fleet.shutdown().await;
            outcome
        }
        Some(Err(e)) => {
            server.stop().await?;
            Err(e)
        }
        None => {
            println!("interrupted while setting up");
            server.stop().await?;
            Ok(ExitCode::from(130))
        }
    };
    if matches!(&outcome, Ok(code) if *code == ExitCode::from(1)) {
        // A failed check is worth a look: the ledger and the listings explain what happened.
        let kept = dir.keep();
        println!(
            "the database is kept for inspection: {} (stockhub serve --db <it>)",
            kept.join("stockhub.db").display()
        );
    }
    outcome
}

/// Streams orders until Ctrl-C or `--seconds`, then drains, summarises and verifies.
async fn stream(
    server: &Server,
    api: &Api,
    demo: &setup::Demo,
    args: &DemoArgs,
    rng: rand::rngs::StdRng,
    mut interrupted: Pin<&mut impl Future<Output = ()>>,
) -> anyhow::Result<ExitCode> {
    let metrics = &server.services.metrics;
    // Latency figures from here on are those of the stream, not of the first full push.
    metrics.clear_samples();
    let start = report::figures(&server.store).await?;
    let calls_before = report::api_calls(metrics, &demo.stores);
    let traffic = traffic::start(demo, api.clone(), args.orders_per_second, rng);
    let rate = args.orders_per_second;
    match args.seconds {
        Some(n) => println!("streaming {rate} orders/s for {n} s (Ctrl-C stops earlier)\n"),
        None => println!("streaming {rate} orders/s; Ctrl-C stops\n"),
    }
    let started = Instant::now();
    let mut live = report::Live::new(start.clone(), traffic.counters.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let until = args.seconds.map(|s| started + Duration::from_secs(s));
    loop {
        tokio::select! {
            () = &mut interrupted => break,
            _ = tick.tick() => {}
        }
        let figures = report::figures(&server.store).await?;
        let latency = metrics.quantiles(None);
        println!("{}", live.line(started.elapsed(), &figures, latency));
        if until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
    }
    let streamed = started.elapsed();
    let counters = traffic.stop().await;
    println!("no more orders; waiting for the last webhooks and pushes to land");
    let drained = tokio::select! {
        drained = report::quiesce(&server.store, &demo.fleet, DRAIN_TIMEOUT) => drained?,
        () = server::shutdown_signal() => {
            println!("interrupted again: stopping without the final check");
            return Ok(ExitCode::from(130));
        }
    };
    let end = report::figures(&server.store).await?;
    let calls = report::api_calls(metrics, &demo.stores).saturating_sub(calls_before);
    let latency = metrics.quantiles(None);
    let figures = report::Totals {
        streamed,
        counters: &counters,
        start: &start,
        end: &end,
        api_calls: calls,
        latency,
    };
    print!("{}", report::final_summary(&demo.stores, &figures));
    let verified = report::verify(&server.store, demo, drained).await?;
    print!("{}", verified.text);
    Ok(ExitCode::from(if verified.ok { 0 } else { 1 }))
}

/// Binds `address`; when its port is taken, any free port on the same host.
async fn bind_or_any_port(address: &str) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let host = address
                .parse::<std::net::SocketAddr>()
                .with_context(|| format!("listen address {address}"))?
                .ip();
            let listener = tokio::net::TcpListener::bind((host, 0))
                .await
                .with_context(|| format!("listening on {host} (any port)"))?;
            println!(
                "{address} is taken; stockhub listens on {} instead",
                listener.local_addr()?
            );
            Ok(listener)
        }
        Err(e) => Err(e).with_context(|| format!("listening on {address}")),
    }
}
