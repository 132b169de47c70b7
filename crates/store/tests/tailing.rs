//! Tailing the ledger on PostgreSQL (DESIGN §6): sequence numbers are taken at insert, not at
//! commit, so a reader following the audit cursor must never advance past an entry whose
//! transaction is still open. A deliberately delayed transaction holds a lower sequence number
//! while a later one commits a higher one; the reader must not skip the lower one.
//!
//! Times too: a transaction stamps its entries with times from its start on, and shows them at
//! commit. A reader that counts what was written up to a time (the orders booked up to a read of
//! a channel's quantity) first waits for the transactions begun by then.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stockhub_core::{Code, Quantity, Sku};
use stockhub_store::engine::{ledger, movements};
use stockhub_store::model::*;
use stockhub_store::testing::ctx;
use stockhub_store::testing::{add_locations, add_variants, test_database, TestBackend};
use stockhub_store::{Store, StoreOptions, SystemClock};

/// A store on `url` with location `wh` and the variants SLOW and FAST.
async fn open(url: &str) -> Store {
    let store = stockhub_store::open(url, Arc::new(SystemClock), &StoreOptions::default()).unwrap();
    store
        .write(|sql| {
            add_locations(sql, &["wh"])?;
            add_variants(sql, &["SLOW", "FAST"])
        })
        .await
        .unwrap();
    store
}

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
    let store = open(&db.url).await;

    // The slow transaction records its entry and stays open until released.
    let slow = hold_open(&store, "SLOW").await;
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

    slow.release.send(()).unwrap();
    slow.done.await.unwrap();
    let after = page(&store, cursor).await;
    assert_eq!(
        after.len(),
        2,
        "both entries, the late one included: {after:?}"
    );
    assert!(after[0] < after[1]);
    assert_eq!(
        skus_in_ledger(&store).await,
        ["SLOW", "FAST"],
        "the slow entry holds the lower number"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_the_writes_begun_by_a_time_ends_once_they_have_committed() {
    let Some(db) = test_database(TestBackend::Postgres, "write_floors") else {
        return;
    };
    let store = open(&db.url).await;

    // The slow transaction records its entry and stays open until released.
    let slow = hold_open(&store, "SLOW").await;
    let stamped = slow.stamped_ms;
    // A read of the store's clock once it shows the entry's time or later (a write's times may
    // run ahead of a read's by the answers' latency): what was written up to then includes it.
    let mut read_at = store.read(|sql| Ok(sql.now_ms())).await.unwrap();
    for _ in 0..100 {
        if read_at >= stamped {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        read_at = store.read(|sql| Ok(sql.now_ms())).await.unwrap();
    }
    assert!(
        read_at >= stamped,
        "read at {read_at}, entry stamped {stamped}"
    );

    assert!(
        !store
            .wait_for_writes_begun_by(read_at, Duration::from_millis(300))
            .await
            .unwrap(),
        "a transaction begun before {read_at} is still open: the wait may not end"
    );
    assert!(
        store
            .wait_for_writes_begun_by(stamped - 60_000, Duration::from_millis(300))
            .await
            .unwrap(),
        "no transaction begun a minute before the entry is open: nothing to wait for"
    );

    slow.release.send(()).unwrap();
    assert!(
        store
            .wait_for_writes_begun_by(read_at, Duration::from_secs(10))
            .await
            .unwrap(),
        "the slow transaction committed: the wait ends"
    );
    slow.done.await.unwrap();
    assert_eq!(skus_in_ledger(&store).await, ["SLOW"]);
}

/// A write whose transaction stays open: it records a receipt of `sku` and waits until the
/// returned sender says (or 30 s). Returns once the receipt is recorded, with the time it was
/// stamped with.
struct HeldOpen {
    stamped_ms: i64,
    release: mpsc::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

async fn hold_open(store: &Store, sku: &'static str) -> HeldOpen {
    let (stamped, stamp) = mpsc::channel::<i64>();
    let (release, released) = mpsc::channel::<()>();
    let (stamped, released) = (Mutex::new(stamped), Arc::new(Mutex::new(released)));
    let store = store.clone();
    let done = tokio::spawn(async move {
        store
            .write(move |sql| {
                movements::apply_batch(sql, &ctx(), &receive(sku))?;
                let _ = stamped.lock().unwrap().send(sql.now_ms());
                let _ = released
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(30));
                Ok(())
            })
            .await
            .unwrap()
    });
    let stamped_ms =
        tokio::task::spawn_blocking(move || stamp.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .expect("the held transaction recorded its entry");
    HeldOpen {
        stamped_ms,
        release,
        done,
    }
}

async fn skus_in_ledger(store: &Store) -> Vec<String> {
    store
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
        .collect()
}
