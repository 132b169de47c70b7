//! A walk through the main units of work on a real database, on each backend.

use std::sync::Arc;

use stockhub_core::{ChannelRules, OrderStatus, Quantity, Sku};
use stockhub_store::engine::{catalog, movements, orders, reservations, stock, verify};
use stockhub_store::model::*;
use stockhub_store::testing::test_database;
use stockhub_store::testing::{add_locations, add_variants, code, ctx};
use stockhub_store::{ManualClock, StoreError, StoreOptions};

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

stockhub_store::test_on_both_backends! {
fn order_flow_and_verify(backend) {
    let Some(db) = test_database(backend, "smoke") else { return };
    let clock = ManualClock::new(1_000_000);
    let store = stockhub_store::open(&db.url, Arc::new(clock.clone()), &StoreOptions::default()).unwrap();
    store
        .write_blocking(|sql| {
            add_locations(sql, &["a", "b"])?;
            add_variants(sql, &["TEE", "CAP"])?;
            catalog::upsert_variant(
                sql,
                &ctx(),
                &VariantInput {
                    sku: sku("BUNDLE"),
                    product_id: None,
                    title: None,
                    option_values: serde_json::json!({}),
                    barcode: None,
                    buffer: 0,
                    kit: Some(vec![(sku("TEE"), 2), (sku("CAP"), 1)]),
                },
            )?;
            catalog::upsert_channel(
                sql,
                &ChannelInput {
                    code: code("web"),
                    kind: "manual".into(),
                    rules: ChannelRules::default(),
                    feeding_locations: Some(vec![code("a"), code("b")]),
                },
            )?;
            let items: Vec<MovementItem> = [("TEE", "a", 3), ("TEE", "b", 4), ("CAP", "b", 1)]
                .into_iter()
                .map(|(s, l, q)| MovementItem {
                    movement: Movement::Receive {
                        sku: sku(s),
                        location: code(l),
                        quantity: Quantity::parse(q).unwrap(),
                    },
                    note: None,
                    idempotency: None,
                })
                .collect();
            movements::apply_batch(sql, &ctx(), &items)?;
            Ok(())
        })
        .unwrap();
    let outcome = store
        .write_blocking(|sql| {
            orders::apply_snapshot(
                sql,
                &ctx(),
                &OrderSnapshot {
                    channel: code("web"),
                    external_id: "o1".into(),
                    version: Some(1),
                    status: OrderStatus::Open,
                    lines: vec![
                        SnapshotLine {
                            line_id: "1".into(),
                            channel_sku: "TEE".into(),
                            quantity: 5,
                            fulfilment: None,
                        },
                        SnapshotLine {
                            line_id: "2".into(),
                            channel_sku: "BUNDLE".into(),
                            quantity: 1,
                            fulfilment: None,
                        },
                        SnapshotLine {
                            line_id: "3".into(),
                            channel_sku: "NOPE".into(),
                            quantity: 1,
                            fulfilment: None,
                        },
                    ],
                    raw: "{}".into(),
                },
            )
        })
        .unwrap();
    assert_eq!(outcome.outcome, "created");
    let l = &outcome.order.lines;
    assert_eq!((l[0].state.committed, l[0].state.short), (5, 0));
    // TEE: 7 on hand, 5 committed to line 1 → 2 free at b; the bundle needs 2 TEE + 1 CAP at b.
    assert_eq!((l[1].state.committed, l[1].state.short), (1, 0));
    assert!(l[2].sku.is_none());
    let view = store
        .read_blocking(|sql| stock::stock_view(sql, "TEE"))
        .unwrap();
    assert_eq!(view.channels[0].available, 0);
    // Stale version changes nothing.
    let stale = store
        .write_blocking(|sql| {
            orders::apply_snapshot(
                sql,
                &ctx(),
                &OrderSnapshot {
                    channel: code("web"),
                    external_id: "o1".into(),
                    version: Some(0),
                    status: OrderStatus::Cancelled,
                    lines: vec![],
                    raw: "{}".into(),
                },
            )
        })
        .unwrap();
    assert_eq!(stale.outcome, "stale");
    // Reservation refused: nothing free.
    let err = store
        .write_blocking(|sql| {
            reservations::reserve(
                sql,
                &ctx(),
                &ReserveInput {
                    channel: code("web"),
                    sku: sku("TEE"),
                    quantity: Quantity::parse(1).unwrap(),
                    location: None,
                    expires_in_ms: 1000,
                },
            )
        })
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InsufficientStock { available: 0, .. }),
        "{err:?}"
    );
    // Cancel releases; ship part of it first.
    store
        .write_blocking(|sql| {
            orders::ship(
                sql,
                &ctx(),
                "web",
                "o1",
                &[LineQuantity {
                    line_id: "1".into(),
                    quantity: Quantity::parse(2).unwrap(),
                    restock: false,
                    location: None,
                }],
            )?;
            orders::cancel(sql, &ctx(), "web", "o1")
        })
        .unwrap();
    let view = store
        .read_blocking(|sql| stock::stock_view(sql, "TEE"))
        .unwrap();
    assert_eq!(view.levels.iter().map(|l| l.on_hand).sum::<i64>(), 5);
    assert_eq!(view.channels[0].available, 5);
    let report = store.read_blocking(verify::verify).unwrap();
    assert!(report.differences.is_empty(), "{:#?}", report.differences);
    assert!(report.ledger_entries > 5);
}
}

stockhub_store::test_on_both_backends! {
fn a_scheduled_job_runs_once_per_interval_across_callers(backend) {
    let Some(db) = test_database(backend, "schedule") else { return };
    let clock = ManualClock::new(1_000_000);
    // Two stores on one database stand for two processes.
    let first = stockhub_store::open(&db.url, Arc::new(clock.clone()), &StoreOptions::default()).unwrap();
    let claim = |store: &stockhub_store::Store| {
        store
            .write_blocking(|sql| stockhub_store::engine::schedule::claim_run(sql, "sweep", 1_000))
            .unwrap()
    };
    if backend == stockhub_store::testing::TestBackend::Postgres {
        let second =
            stockhub_store::open(&db.url, Arc::new(clock.clone()), &StoreOptions::default()).unwrap();
        assert!(claim(&first));
        assert!(!claim(&second), "the other process does not run it in the same interval");
        clock.advance_ms(999);
        assert!(!claim(&second) && !claim(&first));
        clock.advance_ms(1);
        assert!(claim(&second), "the next interval's run goes to whoever asks first");
        assert!(!claim(&first));
    } else {
        assert!(claim(&first));
        assert!(!claim(&first));
        clock.advance_ms(1_000);
        assert!(claim(&first));
    }
}
}

#[test]
fn a_commit_in_one_process_wakes_the_others_on_postgres() {
    let Some(db) = test_database(stockhub_store::testing::TestBackend::Postgres, "notify") else {
        return;
    };
    let clock = ManualClock::new(1_000_000);
    // Two stores on one database stand for two processes.
    let writer =
        stockhub_store::open(&db.url, Arc::new(clock.clone()), &StoreOptions::default()).unwrap();
    let other = stockhub_store::open(&db.url, Arc::new(clock), &StoreOptions::default()).unwrap();
    let mut woken = other.commits();
    let seen = *woken.borrow_and_update();
    // Give the other store's listener time to subscribe, then commit on the first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while *woken.borrow() == seen {
        assert!(
            std::time::Instant::now() < deadline,
            "the other process was never woken"
        );
        writer
            .write_blocking(|sql| add_locations(sql, &["wh"]))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        other.stats().commits,
        0,
        "the other store committed nothing itself"
    );
}

stockhub_store::test_on_both_backends! {
fn a_statement_sent_later_fails_its_own_unit_and_no_other(backend) {
    let Some(db) = test_database(backend, "later") else { return };
    let store =
        stockhub_store::open(&db.url, Arc::new(ManualClock::new(1_000_000)), &StoreOptions::default())
            .unwrap();
    // Units sent together share group transactions. Every odd one defers a statement that the
    // database refuses (a level for an unknown SKU, below zero) and then reports success; every
    // fourth from the third on fails before it sends anything.
    let units: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                store.write_blocking(move |sql| {
                    if i % 4 == 2 {
                        return Err(StoreError::Invalid("refused before any statement".into()));
                    }
                    let location = format!("loc-{i:02}");
                    catalog::upsert_location(
                        sql,
                        &LocationInput {
                            code: code(&location),
                            name: location.clone(),
                        },
                    )?;
                    if i % 2 == 1 {
                        sql.execute_later(
                            "INSERT INTO stock_levels (sku, location, on_hand, committed)
                             VALUES (?1, ?2, -1, 0)",
                            stockhub_store::args!["NO-SUCH-SKU", location.as_str()],
                        )?;
                    }
                    Ok(())
                })
            })
        })
        .collect();
    for (i, unit) in units.into_iter().enumerate() {
        let result = unit.join().unwrap();
        assert_eq!(result.is_ok(), i % 4 == 0, "unit {i}: {result:?}");
    }
    let kept: Vec<String> = store
        .read_blocking(|sql| catalog::list_locations(sql))
        .unwrap()
        .into_iter()
        .map(|l| l.code)
        .collect();
    let expected: Vec<String> = (0..40).step_by(4).map(|i| format!("loc-{i:02}")).collect();
    assert_eq!(kept, expected);
}
}

stockhub_store::test_on_both_backends! {
fn statements_sent_together_run_in_order_and_answer_each(backend) {
    let Some(db) = test_database(backend, "together") else { return };
    let store =
        stockhub_store::open(&db.url, Arc::new(ManualClock::new(1_000_000)), &StoreOptions::default())
            .unwrap();
    // A deferred statement, then 20 (more than go out at once) that each see the ones before.
    let answers = store
        .write_blocking(|sql| {
            sql.execute_later(
                "INSERT INTO locations (code, name, created_at) VALUES ('l-00', 'first', 0)",
                &[],
            )?;
            let statements: Vec<(String, Vec<stockhub_store::sql::Value>)> = (1..=20)
                .map(|i| {
                    (
                        format!(
                            "INSERT INTO locations (code, name, created_at)
                             SELECT 'l-{i:02}', CAST(count(*) AS TEXT), 0 FROM locations
                             RETURNING code, name"
                        ),
                        Vec::new(),
                    )
                })
                .collect();
            sql.query_all(&statements)
        })
        .unwrap();
    let got: Vec<(String, String)> = answers
        .iter()
        .map(|rows| (rows[0].text(0), rows[0].text(1)))
        .collect();
    let expected: Vec<(String, String)> =
        (1..=20).map(|i| (format!("l-{i:02}"), i.to_string())).collect();
    assert_eq!(got, expected);
    // A statement the database refuses fails the unit, and nothing of it is kept.
    let refused = store.write_blocking(|sql| {
        let statements = vec![
            ("INSERT INTO locations (code, name, created_at) VALUES ('kept-not', 'x', 0) RETURNING code".to_owned(), Vec::new()),
            ("INSERT INTO locations (code, name, created_at) VALUES ('l-01', 'again', 0) RETURNING code".to_owned(), Vec::new()),
        ];
        sql.query_all(&statements)
    });
    assert!(refused.is_err(), "{refused:?}");
    let codes: Vec<String> = store
        .read_blocking(|sql| catalog::list_locations(sql))
        .unwrap()
        .into_iter()
        .map(|l| l.code)
        .collect();
    assert_eq!(codes.len(), 21, "{codes:?}");
    assert!(!codes.contains(&"kept-not".to_owned()));
}
}
