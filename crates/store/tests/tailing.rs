//! Tailing the ledger on PostgreSQL (DESIGN §6): sequence numbers are taken at insert, not at
//! commit, so a reader following the audit cursor must never advance past an entry whose
//! transaction is still open. A deliberately delayed transaction holds a lower sequence number
//! while a later one commits a higher one; the reader must not skip the lower one.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stockhub_core::{Code, Quantity, Sku};
use stockhub_store::engine::{catalog, ledger, movements};
use stockhub_store::model::*;
use stockhub_store::testing::ctx;
use stockhub_store::testing::{test_database, TestBackend};
use stockhub_store::{Store, StoreOptions, SystemClock};

fn receive(sku: &str) -> Vec<MovementItem> {
    vec![MovementItem {
        movement: Movement::Receive {
            sku: Sku::parse(sku).unwrap(),
            location: Code::parse("location", "wh").unwrap(),
            quantity: Quantity::parse(1).unwrap(),
        },
        note: None,
        idempotency: None,
    }]
}

async fn page(store: &Store, cursor: Option<i64>) -> Vec<i64> {
    store
        .read_latest(move |sql| {
            ledger::query(
                sql,
                &LedgerQuery {
                    cursor,
                    limit: 100,
                    ..LedgerQuery::default()
                },
            )
        })
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_never_skips_an_entry_whose_transaction_commits_late() {
    let Some(db) = test_database(TestBackend::Postgres, "tailing") else {
        return;
    };
    let store =
        stockhub_store::open(&db.url, Arc::new(SystemClock), &StoreOptions::default()).unwrap();
    store
        .write(|sql| {
            catalog::upsert_location(
                sql,
                &LocationInput {
                    code: Code::parse("location", "wh").unwrap(),
                    name: "wh".into(),
                },
            )?;
            for s in ["SLOW", "FAST"] {
                catalog::upsert_variant(
                    sql,
                    &ctx(),
                    &VariantInput {
                        sku: Sku::parse(s).unwrap(),
                        product_id: None,
                        title: None,
                        option_values: serde_json::json!({}),
                        barcode: None,
                        buffer: 0,
                        kit: None,
                    },
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();

    // The slow transaction records its entry, says so, and stays open until released.
    let (inserted_tx, inserted) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let (inserted_tx, released) = (Mutex::new(inserted_tx), Arc::new(Mutex::new(released)));
    let slow = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(move |sql| {
                    movements::apply_batch(sql, &ctx(), &receive("SLOW"))?;
                    let _ = inserted_tx.lock().unwrap().send(());
                    let _ = released
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(30));
                    Ok(())
                })
                .await
                .unwrap()
        })
    };
    tokio::task::spawn_blocking(move || inserted.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the slow transaction inserted its entry");
    // A later transaction takes a higher number and commits first (another write connection).
    store
        .write(|sql| movements::apply_batch(sql, &ctx(), &receive("FAST")))
        .await
        .unwrap();

    let before = page(&store, None).await;
    assert!(
        before.is_empty(),
        "while a lower number is in flight the reader may not pass it, got {before:?}"
    );
    let cursor = before.last().copied();

    release.send(()).unwrap();
    slow.await.unwrap();
    let after = page(&store, cursor).await;
    assert_eq!(
        after.len(),
        2,
        "both entries, the late one included: {after:?}"
    );
    assert!(after[0] < after[1]);
    let skus: Vec<String> = store
        .read_latest(|sql| {
            ledger::query(
                sql,
                &LedgerQuery {
                    limit: 100,
                    ..LedgerQuery::default()
                },
            )
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.sku)
        .collect();
    assert_eq!(
        skus,
        ["SLOW", "FAST"],
        "the slow entry holds the lower number"
    );
}
