//! `stockhub migrate-store` (issue 4): a SQLite store with more than 100,000 ledger entries —
//! orders with shortfalls, kits, reservations, listings, an archived webhook, pending pushes —
//! copied into an empty PostgreSQL database by the real command; the command's own check and a
//! separate `stockhub verify` on the target must pass, and every table's count must match.
//! Runs only where the PostgreSQL half of the suite runs.

use std::sync::Arc;

use serde_json::json;
use stockhub_core::{ChannelRules, OrderStatus, Quantity, Sku};
use stockhub_store::engine::inbound::{self, NewEvent};
use stockhub_store::engine::listings::{self, FoundListing};
use stockhub_store::engine::{catalog, movements, orders, reservations};
use stockhub_store::model::*;
use stockhub_store::testing::{add_locations, code, ctx};
use stockhub_store::testing::{test_database, TestBackend};
use stockhub_store::{Store, StoreOptions, SystemClock};

const BINARY: &str = env!("CARGO_BIN_EXE_stockhub");
const SKUS: usize = 50;
const RECEIPT_BATCHES: usize = 101;
const RECEIPTS_PER_BATCH: usize = 1_000;

fn sku(i: usize) -> String {
    format!("M-{i:03}")
}

fn variant(s: &str, kit: Option<Vec<(Sku, i64)>>) -> VariantInput {
    VariantInput {
        sku: Sku::parse(s).unwrap(),
        product_id: None,
        title: None,
        option_values: json!({}),
        barcode: None,
        buffer: 0,
        kit,
    }
}

fn seed(store: &Store) {
    store
        .write_blocking(|sql| {
            add_locations(sql, &["east", "west"])?;
            for i in 0..SKUS {
                catalog::upsert_variant(sql, &ctx(), &variant(&sku(i), None))?;
            }
            catalog::upsert_variant(
                sql,
                &ctx(),
                &variant(
                    "M-KIT",
                    Some(vec![
                        (Sku::parse(&sku(0)).unwrap(), 1),
                        (Sku::parse(&sku(1)).unwrap(), 2),
                    ]),
                ),
            )?;
            catalog::upsert_channel(
                sql,
                &ChannelInput {
                    code: code("web"),
                    kind: "manual".into(),
                    rules: ChannelRules::default(),
                    feeding_locations: None,
                },
            )?;
            let found: Vec<FoundListing> = (0..10)
                .map(|i| FoundListing {
                    listing_key: format!("listing-{i}"),
                    channel_sku: Some(sku(i)),
                    channel_location: None,
                    feeding_locations: None,
                    variant_ref: Some(format!("variant-{i}")),
                    ids: json!({ "variant": i }),
                    quantity: Some(0),
                })
                .collect();
            listings::store_discovery(sql, "web", &found)?;
            inbound::archive(
                sql,
                &NewEvent {
                    channel: "web",
                    topic: Some("orders/create"),
                    dedupe_key: Some("orders/create:1"),
                    delivery_id: Some("d-1"),
                    headers: json!({ "x-test": "1" }),
                    body: br#"{"id": 1}"#,
                    verdict: "valid",
                },
            )?;
            Ok(())
        })
        .unwrap();
    for batch in 0..RECEIPT_BATCHES {
        let items: Vec<MovementItem> = (0..RECEIPTS_PER_BATCH)
            .map(|i| MovementItem {
                movement: Movement::Receive {
                    sku: Sku::parse(&sku((batch + i) % SKUS)).unwrap(),
                    location: code(if i % 3 == 0 { "west" } else { "east" }),
                    quantity: Quantity::parse(1).unwrap(),
                },
                note: None,
                idempotency: None,
            })
            .collect();
        store
            .write_blocking(move |sql| movements::apply_batch(sql, &ctx(), &items))
            .unwrap();
    }
    for o in 0..200usize {
        let lines = vec![
            SnapshotLine {
                line_id: "1".into(),
                channel_sku: sku(o % SKUS),
                quantity: 30,
                fulfilment: None,
            },
            SnapshotLine {
                line_id: "2".into(),
                channel_sku: if o % 10 == 0 {
                    "UNKNOWN".into()
                } else {
                    "M-KIT".into()
                },
                quantity: 1,
                fulfilment: None,
            },
        ];
        let snapshot = OrderSnapshot {
            channel: code("web"),
            external_id: format!("O-{o}"),
            version: Some(1),
            status: if o % 7 == 0 {
                OrderStatus::Cancelled
            } else {
                OrderStatus::Open
            },
            lines,
            raw: json!({ "id": o }).to_string(),
        };
        store
            .write_blocking(move |sql| orders::apply_snapshot(sql, &ctx(), &snapshot))
            .unwrap();
    }
    for r in 0..20usize {
        let input = ReserveInput {
            channel: code("web"),
            sku: Sku::parse(&sku(40 + r % 10)).unwrap(),
            quantity: Quantity::parse(1).unwrap(),
            location: None,
            expires_in_ms: 3_600_000,
        };
        let _ = store.write_blocking(move |sql| reservations::reserve(sql, &ctx(), &input));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_with_100000_entries_moves_to_postgres_exactly() {
    let Some(target) = test_database(TestBackend::Postgres, "migrate") else {
        return;
    };
    let source = test_database(TestBackend::Sqlite, "migrate").unwrap();
    {
        let store =
            stockhub_store::open(&source.url, Arc::new(SystemClock), &StoreOptions::default())
                .unwrap();
        let seeding = store.clone();
        tokio::task::spawn_blocking(move || seed(&seeding))
            .await
            .unwrap();
        let entries = store
            .read(|sql| Ok(sql.query("SELECT COUNT(*) FROM ledger", &[])?[0].int(0)))
            .await
            .unwrap();
        assert!(entries >= 100_000, "{entries} ledger entries");
        let marks = store
            .read(|sql| Ok(sql.query("SELECT COUNT(*) FROM push_marks", &[])?[0].int(0)))
            .await
            .unwrap();
        assert!(marks > 0, "pending pushes to carry over");
    }

    let output = tokio::process::Command::new(BINARY)
        .args(["migrate-store", "--from", &source.url, "--to", &target.url])
        .output()
        .await
        .expect("run stockhub migrate-store");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "migrate-store failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("the copy is exact"), "{stdout}");

    // Independently: every table's count matches, and verify passes on the target.
    let source_store =
        stockhub_store::open(&source.url, Arc::new(SystemClock), &StoreOptions::default()).unwrap();
    let target_store =
        stockhub_store::open(&target.url, Arc::new(SystemClock), &StoreOptions::default()).unwrap();
    for &table in stockhub_store::copy::TABLES {
        let count = move |sql: &mut dyn stockhub_store::Sql| {
            Ok(sql.query(&format!("SELECT COUNT(*) FROM {table}"), &[])?[0].int(0))
        };
        let (a, b) = (
            source_store.read(count).await.unwrap(),
            target_store.read(count).await.unwrap(),
        );
        assert_eq!(a, b, "table {table}");
    }
    stockhub_testkit::assert_verify_passes(BINARY, &target.url, "on the target").await;
    // The copy keeps working: new entries continue after the copied ids.
    let next = target_store
        .write(|sql| {
            movements::apply_batch(
                sql,
                &ctx(),
                &[MovementItem {
                    movement: Movement::Receive {
                        sku: Sku::parse(&sku(0)).unwrap(),
                        location: code("east"),
                        quantity: Quantity::parse(1).unwrap(),
                    },
                    note: None,
                    idempotency: None,
                }],
            )?;
            Ok(sql.query("SELECT MAX(seq), COUNT(*) FROM ledger", &[])?[0].clone())
        })
        .await
        .unwrap();
    assert_eq!(
        next.int(0),
        next.int(1),
        "sequence numbers continue without a gap or clash"
    );
}

#[test]
fn the_copied_tables_are_every_table_of_the_schema() {
    let db = test_database(TestBackend::Sqlite, "tables").unwrap();
    let store =
        stockhub_store::open(&db.url, Arc::new(SystemClock), &StoreOptions::default()).unwrap();
    let mut tables: Vec<String> = store
        .read_blocking(|sql| {
            Ok(sql
                .query(
                    "SELECT name FROM sqlite_master WHERE type = 'table'
                     AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'",
                    &[],
                )?
                .iter()
                .map(|r| r.text(0))
                .collect())
        })
        .unwrap();
    tables.sort();
    let mut listed: Vec<String> = stockhub_store::copy::TABLES
        .iter()
        .map(|t| t.to_string())
        .collect();
    listed.sort();
    assert_eq!(tables, listed, "copy::TABLES must name every table");
}
