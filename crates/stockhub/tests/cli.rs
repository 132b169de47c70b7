//! The `stockhub` binary as a user runs it: `demo` end to end, the help of the new commands, and
//! `discover` / `replay` against a `stockhub serve` started here.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stockhub_sim::seed::{ProductSeed, VariantSeed};
use stockhub_sim::shopify::{NewOrder, OrderLine, ShopifyConfig, ShopifySim};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_stockhub");
const SECRET: &str = "shpss_cli_test";

/// Runs the binary to completion (bounded), with `STOCKHUB_SERVER` unset unless given.
async fn stockhub(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("STOCKHUB_SERVER")
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the command finished within 120 s")
        .expect("the binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_streams_orders_and_ends_verified() {
    let started = Instant::now();
    let (code, out, err) = stockhub(
        &[
            "demo",
            "--seconds",
            "8",
            "--listen",
            "127.0.0.1:0",
            "--orders-per-second",
            "20",
        ],
        &[],
    )
    .await;
    eprintln!(
        "demo took {:.1} s\n{out}\n{err}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(code, 0, "the demo failed:\n{out}\n{err}");
    for shown in [
        "stockhub on http://127.0.0.1:",
        "1000 listings matched",
        "/openapi.json",
        "/metrics",
        "first push: every store shows stockhub's quantities",
        "final summary after",
        "verification succeeded: every store shows exactly stockhub's available quantity (3 stores × 1000 SKUs)",
    ] {
        assert!(out.contains(shown), "missing {shown:?} in:\n{out}");
    }
    let live: Vec<&str> = out
        .lines()
        .filter(|l| {
            [
                "orders/s",
                "pushes/s",
                "p99 propagation",
                "oversells",
                "dead pushes",
            ]
            .iter()
            .all(|f| l.contains(f))
        })
        .collect();
    assert!(live.len() >= 7, "expected a live line a second:\n{out}");
    let orders: u64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("orders placed"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the summary counts the orders");
    assert!((100..=200).contains(&orders), "about 160 orders: {orders}");
}

#[tokio::test]
async fn the_help_of_each_new_command_names_its_options() {
    let cases: [(&str, &[&str]); 4] = [
        (
            "sim",
            &[
                "--shopify",
                "--woocommerce",
                "--products",
                "--variants-per-product",
                "--locations",
                "--quantity",
                "--listen-host",
                "--webhook-url-template",
                "{channel}",
                "--shopify-plan",
            ],
        ),
        (
            "demo",
            &[
                "--listen",
                "--orders-per-second",
                "--seconds",
                "--products",
                "--seed",
                "Ctrl-C",
            ],
        ),
        (
            "discover",
            &["CHANNEL", "--server", "STOCKHUB_SERVER", "--json", "--all"],
        ),
        (
            "replay",
            &["EVENT_ID", "--server", "STOCKHUB_SERVER", "--json"],
        ),
    ];
    for (command, options) in cases {
        let (code, out, err) = stockhub(&[command, "--help"], &[]).await;
        assert_eq!(code, 0, "{command} --help: {err}");
        for option in options {
            assert!(
                out.contains(option),
                "{command} --help lacks {option}:\n{out}"
            );
        }
    }
}

/// A `stockhub serve` on a free port with its own database, killed when dropped.
struct Served {
    base_url: String,
    _child: Child,
}

async fn serve(dir: &Path) -> Served {
    let db = dir.join("stockhub.db");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("serve printed its address within 30 s")
        .expect("stdout readable")
        .expect("a line");
    let address = first
        .strip_prefix("stockhub listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    Served {
        base_url: address,
        _child: child,
    }
}

async fn call(client: &reqwest::Client, method: &str, url: &str, body: Value) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, url);
    if !body.is_null() {
        request = request.json(&body);
    }
    let reply = request.send().await.unwrap();
    let status = reply.status();
    let body: Value = reply.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

/// A store selling three of our SKUs, one SKU we do not know and one listing without a SKU.
fn store_catalog() -> Vec<ProductSeed> {
    vec![
        ProductSeed::new(
            "Tee",
            vec![
                VariantSeed::new("CLI-1").titled("S").stock(&[5]),
                VariantSeed::new("CLI-2").titled("M").stock(&[5]),
                VariantSeed::new("CLI-3").titled("L").stock(&[5]),
            ],
        ),
        ProductSeed::new("Stray", vec![VariantSeed::new("STRAY-9").stock(&[1])]),
        ProductSeed::new(
            "Nameless",
            vec![VariantSeed {
                sku: None,
                ..VariantSeed::default()
            }
            .stock(&[1])],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_and_replay_talk_to_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path()).await;
    let base = served.base_url.clone();
    let shop = ShopifySim::start(ShopifyConfig {
        products: store_catalog(),
        api_secret: SECRET.into(),
        ..ShopifyConfig::default()
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    call(
        &client,
        "PUT",
        &format!("{base}/v1/locations/wh"),
        json!({}),
    )
    .await;
    for sku in ["CLI-1", "CLI-2", "CLI-3", "OURS-ONLY"] {
        call(
            &client,
            "PUT",
            &format!("{base}/v1/variants/{sku}"),
            json!({}),
        )
        .await;
    }
    call(
        &client,
        "POST",
        &format!("{base}/v1/stock/movements"),
        json!({ "movements": [{ "kind": "receive", "sku": "CLI-1", "location": "wh", "quantity": 4 }] }),
    )
    .await;
    call(
        &client,
        "PUT",
        &format!("{base}/v1/channels/shop"),
        json!({ "kind": "shopify", "base_url": shop.base_url(),
                "access_token": ShopifyConfig::default().access_token,
                "location_id": shop.locations()[0].gid, "webhook_secret": SECRET }),
    )
    .await;

    // Discovery, with the server given by flag and then by environment.
    let (code, out, err) = stockhub(&["discover", "shop", "--server", &base], &[]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("channel shop: discovery at"), "{out}");
    assert!(out.contains("matched listings        3"), "{out}");
    assert!(out.contains("STRAY-9  (listings "), "{out}");
    assert!(out.contains("OURS-ONLY"), "{out}");
    assert!(out.contains("listings without a SKU"), "{out}");
    let (code, out, _) = stockhub(
        &["discover", "shop", "--json"],
        &[("STOCKHUB_SERVER", &base)],
    )
    .await;
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&out).expect("--json prints the report");
    assert_eq!(report["matched"], 3);
    assert_eq!(report["missing_on_channel"], json!(["OURS-ONLY"]));

    // Unknown channel: the server's problem, exit status 1.
    let (code, out, err) = stockhub(&["discover", "nope", "--server", &base], &[]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("discovery of channel nope failed"), "{err}");
    assert!(err.contains("nope") && err.contains("(404)"), "{err}");

    // A sale on the store reaches the server by webhook; replaying it applies nothing twice.
    shop.set_webhook_address(Some(format!("{base}/webhooks/shop")));
    let variant = shop.variant_by_sku("CLI-1").unwrap();
    shop.place_order(&NewOrder::lines(vec![OrderLine::variant(
        variant.variant_id,
        1,
    )]))
    .unwrap();
    let event_id = applied_event(&client, &base).await;
    let stock = call(
        &client,
        "GET",
        &format!("{base}/v1/stock/CLI-1"),
        Value::Null,
    )
    .await;
    let id = event_id.to_string();
    let (code, out, err) = stockhub(&["replay", &id, "--server", &base], &[]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.starts_with(&format!(
            "event {id} (channel shop, topic orders/create, received "
        )),
        "{out}"
    );
    let again = call(
        &client,
        "GET",
        &format!("{base}/v1/stock/CLI-1"),
        Value::Null,
    )
    .await;
    assert_eq!(again["levels"], stock["levels"], "a replay changes nothing");

    // Unknown event: exit status 1 with the detail; no server: exit status 2.
    let (code, _, err) = stockhub(&["replay", "987654", "--server", &base], &[]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("replay of event 987654 failed") && err.contains("(404)"),
        "{err}"
    );
    let (code, _, err) = stockhub(&["replay", "1", "--server", "http://127.0.0.1:9"], &[]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("could not reach stockhub at http://127.0.0.1:9"),
        "{err}"
    );
    shop.shutdown().await;
}

/// The id of the first applied event of channel `shop`, waiting for it (bounded).
async fn applied_event(client: &reqwest::Client, base: &str) -> i64 {
    for _ in 0..200 {
        let events = call(
            client,
            "GET",
            &format!("{base}/v1/events?channel=shop&outcome=applied"),
            Value::Null,
        )
        .await;
        if let Some(id) = events["items"][0]["id"].as_i64() {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no applied event arrived");
}
