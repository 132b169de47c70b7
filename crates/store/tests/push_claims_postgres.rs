//! Push work shared by several processes on one PostgreSQL database (issue 4, "shared work"):
//! two stores on one schema stand for two processes whose workers claim marks at the same time.
//! A mark is held by one worker at a time (`FOR UPDATE SKIP LOCKED` under a lease); a mark whose
//! worker died is taken over once its lease ends, so nothing is lost; and the late result of a
//! worker that stalled past its lease is discarded (fencing by lease token), so it can never
//! overwrite the newer push.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use stockhub_core::{ChannelRules, Code};
use stockhub_store::engine::catalog;
use stockhub_store::engine::listings::{self, FoundListing};
use stockhub_store::engine::pushes::{self, ListingResult, MarkNext};
use stockhub_store::model::*;
use stockhub_store::testing::add_variants;
use stockhub_store::testing::{test_database, TestBackend};
use stockhub_store::{ManualClock, Store, StoreOptions};

const SKUS: usize = 40;
const LEASE_MS: i64 = 5_000;

fn sku(i: usize) -> String {
    format!("P-{i:02}")
}

fn set_up(store: &Store) {
    store
        .write_blocking(|sql| {
            let skus: Vec<String> = (0..SKUS).map(sku).collect();
            let skus: Vec<&str> = skus.iter().map(String::as_str).collect();
            add_variants(sql, &skus)?;
            list_on_shop(sql, &skus)
        })
        .unwrap();
}

/// Creates the channel `shop`, lists each SKU on it once, and marks each for a push.
fn list_on_shop(sql: &mut dyn stockhub_store::Sql, skus: &[&str]) -> stockhub_store::Result<()> {
    catalog::upsert_channel(
        sql,
        &ChannelInput {
            code: Code::parse("channel", "shop").unwrap(),
            kind: "manual".into(),
            rules: ChannelRules::default(),
            feeding_locations: None,
        },
    )?;
    let found: Vec<FoundListing> = skus
        .iter()
        .map(|sku| FoundListing {
            listing_key: format!("item-{sku}"),
            channel_sku: Some((*sku).to_owned()),
            channel_location: None,
            feeding_locations: None,
            variant_ref: None,
            ids: serde_json::json!({}),
            quantity: Some(0),
        })
        .collect();
    listings::store_discovery(sql, "shop", &found)?;
    for sku in skus {
        pushes::mark_channel_sku(sql, "shop", sku)?;
    }
    Ok(())
}

fn listing_id(store: &Store, sku: &str) -> i64 {
    let sku = sku.to_owned();
    store
        .read_blocking(move |sql| {
            Ok(sql.query(
                "SELECT id FROM listings WHERE sku = ?1",
                &[sku.as_str().into()],
            )?[0]
                .int(0))
        })
        .unwrap()
}

fn pending(store: &Store) -> usize {
    store
        .read_blocking(|sql| Ok(pushes::list(sql, None, Some("shop"), 1000)?.len()))
        .unwrap()
}

#[test]
fn workers_of_two_processes_never_hold_one_mark_at_once_and_late_results_are_discarded() {
    let Some(db) = test_database(TestBackend::Postgres, "claims") else {
        return;
    };
    let clock = ManualClock::new(1_000_000);
    let open = || {
        stockhub_store::open(&db.url, Arc::new(clock.clone()), &StoreOptions::default()).unwrap()
    };
    let (a, b) = (open(), open());
    set_up(&a);

    // Eight workers, four per process, claim small batches at the same time until nothing is
    // left; every claim is recorded with its holder.
    let held: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let threads: Vec<_> = (0..8)
        .map(|w| {
            let store = if w % 2 == 0 { a.clone() } else { b.clone() };
            let held = held.clone();
            std::thread::spawn(move || loop {
                let token = format!("worker-{w}");
                let claims = store
                    .write_blocking({
                        let token = token.clone();
                        move |sql| pushes::claim(sql, "shop", 3, LEASE_MS, &token)
                    })
                    .unwrap();
                if claims.is_empty() {
                    return;
                }
                for claim in claims {
                    held.lock()
                        .unwrap()
                        .entry(claim.sku.clone())
                        .or_default()
                        .push(token.clone());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let held = Arc::try_unwrap(held).unwrap().into_inner().unwrap();
    assert_eq!(held.len(), SKUS, "every mark was claimed");
    for (sku, holders) in &held {
        assert_eq!(
            holders.len(),
            1,
            "{sku} was claimed by {holders:?} within one lease"
        );
    }

    // Nobody completes: the workers "died". Within the lease nothing can be claimed again…
    let again = b
        .write_blocking(|sql| pushes::claim(sql, "shop", 100, LEASE_MS, "late-comer"))
        .unwrap();
    assert!(again.is_empty(), "claimed while leased: {again:?}");
    // …after it, another process takes every mark over: nothing is lost.
    clock.advance_ms(LEASE_MS + 1);
    let taken = b
        .write_blocking(|sql| pushes::claim(sql, "shop", 100, LEASE_MS, "successor"))
        .unwrap();
    assert_eq!(taken.len(), SKUS);

    // The stalled worker of the first claim wakes up and reports a push of an old quantity: it
    // no longer holds the lease, so its result is discarded and changes nothing.
    let stale_sku = sku(0);
    let listing = listing_id(&a, &stale_sku);
    let stale_claim = {
        let mut c = taken.iter().find(|c| c.sku == stale_sku).unwrap().clone();
        c.lease_token = held[&stale_sku][0].clone();
        c
    };
    let kept = a
        .write_blocking(move |sql| {
            pushes::complete(
                sql,
                &stale_claim,
                &[ListingResult::Pushed {
                    listing_id: listing,
                    quantity: 99,
                    sent_at_ms: 1_000_000,
                    compared_exactly: false,
                }],
                &MarkNext::Done,
            )
        })
        .unwrap();
    assert!(!kept, "a result under an expired lease is discarded");
    // The successor's result stands and clears the marks.
    for claim in taken {
        let listing = listing_id(&b, &claim.sku);
        let kept = b
            .write_blocking(move |sql| {
                pushes::complete(
                    sql,
                    &claim,
                    &[ListingResult::Pushed {
                        listing_id: listing,
                        quantity: 7,
                        sent_at_ms: 1_000_000 + LEASE_MS,
                        compared_exactly: false,
                    }],
                    &MarkNext::Done,
                )
            })
            .unwrap();
        assert!(kept);
    }
    assert_eq!(pending(&a), 0, "every mark was pushed once taken over");
    let last = a
        .read_blocking(move |sql| {
            Ok(sql.query(
                "SELECT last_pushed FROM listings WHERE id = ?1",
                &[listing.into()],
            )?[0]
                .int(0))
        })
        .unwrap();
    assert_eq!(
        last, 7,
        "the stalled worker's old quantity never replaced the newer push"
    );
}

/// A change to a component marks the kits made of it too (`pushes::mark_skus`), so the unit that
/// makes it locks the kits' marks with its own, in the one order every unit takes marks in, before
/// it changes anything. Locked only when the unit marks them at its end, a kit's mark would be
/// taken out of that order: a push completing the kit and the component (in SKU order) could
/// hold the kit's mark and wait for the component's while the unit held the component's and
/// waited for the kit's — a deadlock PostgreSQL breaks only after a second.
#[test]
fn a_unit_changing_a_component_holds_the_marks_of_its_kits_from_the_start() {
    use std::sync::mpsc;
    let Some(db) = test_database(TestBackend::Postgres, "kit marks") else {
        return;
    };
    let store = stockhub_store::open(
        &db.url,
        Arc::new(ManualClock::new(1_000_000)),
        &StoreOptions::default(),
    )
    .unwrap();
    store
        .write_blocking(|sql| {
            add_variants(sql, &["PART-1"])?;
            catalog::put_variant(
                sql,
                &stockhub_store::testing::ctx(),
                &VariantInput {
                    sku: stockhub_core::Sku::parse("KIT-1").unwrap(),
                    product_id: None,
                    title: None,
                    option_values: serde_json::json!({}),
                    barcode: None,
                    buffer: 0,
                    kit: Some(vec![(stockhub_core::Sku::parse("PART-1").unwrap(), 2)]),
                },
            )?;
            list_on_shop(sql, &["KIT-1", "PART-1"])
        })
        .unwrap();

    // A unit locks what a change to the component needs, and stays open.
    let (locked, is_locked) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let unit = {
        let store = store.clone();
        std::thread::spawn(move || {
            store.write_blocking(move |sql| {
                stockhub_store::engine::stock::lock_levels(sql, ["PART-1"])?;
                sql.query("SELECT 1", &[])?;
                let _ = locked.send(());
                let _ = released.recv();
                Ok(())
            })
        })
    };
    is_locked.recv().unwrap();
    let mut other = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let try_lock = |other: &mut postgres::Client, sku: &str| {
        other.query(
            "SELECT 1 FROM push_marks WHERE sku = $1 FOR UPDATE NOWAIT",
            &[&sku],
        )
    };
    let part = try_lock(&mut other, "PART-1");
    let kit = try_lock(&mut other, "KIT-1");
    release.send(()).unwrap();
    unit.join().unwrap().unwrap();
    for (sku, answer) in [("PART-1", part), ("KIT-1", kit)] {
        let error = answer.expect_err(&format!("{sku}'s mark is held by the unit"));
        assert_eq!(
            error.code(),
            Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE),
            "{sku}: {error}"
        );
    }
    // Once the unit is done, the marks are free again.
    assert_eq!(try_lock(&mut other, "KIT-1").unwrap().len(), 1);
}
