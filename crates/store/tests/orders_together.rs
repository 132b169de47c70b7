//! New orders applied together (`orders::apply_new_orders`, what the writers do with the new
//! orders of a group commit) end exactly as if each had gone through `orders::apply_snapshot`,
//! one after another: same answers, same ledger, same levels, same stored orders. Checked on
//! each backend over random batches that mix what may be applied together (new open orders of
//! plain SKUs, oversold or not) with what may not (orders stored already or twice in the batch,
//! cancelled, shipped, with kits, aliases, unknown SKUs or channels, repeated line ids).

use std::sync::Arc;

use serde_json::{json, Value as Json};
use stockhub_core::{ChannelRules, OrderStatus, Quantity, Sku};
use stockhub_store::engine::orders::{self, NewOrder};
use stockhub_store::engine::{catalog, ledger, movements, stock, verify};
use stockhub_store::model::*;
use stockhub_store::testing::{add_locations, code, ctx, test_database};
use stockhub_store::{args, ManualClock, Store, StoreOptions};

const PLAIN: [&str; 5] = ["S0", "S1", "S2", "S3", "S4"];
const LOCATIONS: [&str; 3] = ["a", "b", "c"];

/// A small deterministic generator (xorshift64*), so that a failure can be replayed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn open(
    backend: stockhub_store::testing::TestBackend,
    label: &str,
) -> Option<(Store, stockhub_store::testing::TestDatabase)> {
    let db = test_database(backend, label)?;
    let store = stockhub_store::open(
        &db.url,
        Arc::new(ManualClock::new(5_000_000)),
        &StoreOptions::default(),
    )
    .unwrap();
    Some((store, db))
}

/// The same catalog and stock in every store: plain SKUs with a little stock (some levels
/// missing), a kit, an alias, and channels fed from locations in different orders.
fn seed(store: &Store) {
    store
        .write_blocking(|sql| {
            add_locations(sql, &LOCATIONS)?;
            let variant = |s: &str, kit: Option<Vec<(Sku, i64)>>| VariantInput {
                sku: sku(s),
                product_id: None,
                title: None,
                option_values: json!({}),
                barcode: None,
                buffer: 0,
                kit,
            };
            for s in PLAIN {
                catalog::upsert_variant(sql, &ctx(), &variant(s, None))?;
            }
            catalog::upsert_variant(
                sql,
                &ctx(),
                &variant("KIT", Some(vec![(sku("S0"), 1), (sku("S1"), 2)])),
            )?;
            for (channel, feeding) in [
                ("web", Some(vec![code("a"), code("b")])),
                ("app", Some(vec![code("c"), code("b"), code("a")])),
                ("all", None),
            ] {
                catalog::upsert_channel(
                    sql,
                    &ChannelInput {
                        code: code(channel),
                        kind: "manual".into(),
                        rules: ChannelRules::default(),
                        feeding_locations: feeding,
                    },
                )?;
            }
            sql.execute(
                "INSERT INTO sku_aliases (channel, channel_sku, sku) VALUES (?1, ?2, ?3)",
                args!["web", "OLD-S2", "S2"],
            )?;
            let mut dice = Dice(7);
            let mut items = Vec::new();
            for s in PLAIN {
                for l in LOCATIONS {
                    let q = dice.below(6);
                    if q > 0 {
                        items.push(MovementItem {
                            movement: Movement::Receive {
                                sku: sku(s),
                                location: code(l),
                                quantity: Quantity::parse(q as i64).unwrap(),
                            },
                            note: None,
                            idempotency: None,
                        });
                    }
                }
            }
            movements::apply_batch(sql, &ctx(), &items)?;
            Ok(())
        })
        .unwrap();
}

fn random_order(dice: &mut Dice, n: usize) -> OrderSnapshot {
    let channel = dice.pick(&["web", "web", "app", "all", "nowhere"]);
    let external_id = format!("o{}", dice.below(40));
    let status = if dice.below(10) == 0 {
        OrderStatus::Cancelled
    } else {
        OrderStatus::Open
    };
    let count = dice.below(3) + 1;
    let lines = (0..count)
        .map(|i| {
            let channel_sku = if dice.below(8) == 0 {
                dice.pick(&["KIT", "OLD-S2", "NOPE", "bad sku"])
            } else {
                dice.pick(&PLAIN)
            };
            let line_id = if dice.below(20) == 0 { 0 } else { i };
            SnapshotLine {
                line_id: format!("line-{line_id}"),
                channel_sku: channel_sku.to_owned(),
                quantity: dice.below(4) as i64,
                fulfilment: (dice.below(15) == 0).then_some(LineFulfilment {
                    ordered: 1,
                    shipped: 1,
                    ..LineFulfilment::default()
                }),
            }
        })
        .collect();
    OrderSnapshot {
        channel: code(channel),
        external_id,
        version: None,
        status,
        lines,
        raw: json!({ "n": n }).to_string(),
    }
}

/// An order's result as JSON (the ids of rows aside, which depend on insertion order).
fn answer(result: &stockhub_store::Result<OrderOutcome>) -> Json {
    match result {
        Ok(outcome) => serde_json::to_value(outcome).unwrap(),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// Everything the orders changed: the ledger (sequence numbers aside), every level, every order.
fn state(store: &Store, keys: &[(String, String)]) -> Json {
    let keys = keys.to_vec();
    // Ledger reads see every committed entry on a write connection (`Store::read_latest`).
    store
        .write_blocking(move |sql| {
            let report = verify::verify(sql)?;
            assert!(report.differences.is_empty(), "{:#?}", report.differences);
            let entries: Vec<Json> = ledger::query(
                sql,
                &LedgerQuery {
                    limit: 100_000,
                    ..LedgerQuery::default()
                },
            )?
            .into_iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap();
                v.as_object_mut().unwrap().remove("seq");
                v
            })
            .collect();
            let mut levels = Vec::new();
            for s in PLAIN {
                levels.push(serde_json::to_value(stock::stock_view(sql, s)?).unwrap());
            }
            let mut stored = Vec::new();
            for (channel, external_id) in &keys {
                stored.push(answer(&orders::get_order(sql, channel, external_id).map(
                    |order| OrderOutcome {
                        outcome: "stored",
                        order,
                    },
                )));
            }
            Ok(json!({ "ledger": entries, "levels": levels, "orders": stored }))
        })
        .unwrap()
}

fn apply_one(store: &Store, snapshot: &OrderSnapshot) -> Json {
    let snapshot = snapshot.clone();
    answer(&store.write_blocking(move |sql| orders::apply_snapshot(sql, &ctx(), &snapshot)))
}

stockhub_store::test_on_both_backends! {
fn together_is_the_same_as_one_after_another(backend) {
    let Some((together, _a)) = open(backend, "together") else { return };
    let Some((alone, _b)) = open(backend, "alone") else { return };
    seed(&together);
    seed(&alone);
    let mut dice = Dice(0x5eed_0bad_cafe);
    let mut keys = Vec::new();
    let mut applied_together = 0;
    let mut left_alone = 0;
    let mut n = 0;
    for _ in 0..40 {
        let batch: Vec<OrderSnapshot> = (0..dice.below(8) + 1)
            .map(|_| {
                n += 1;
                random_order(&mut dice, n)
            })
            .collect();
        keys.extend(
            batch
                .iter()
                .map(|o| (o.channel.as_str().to_owned(), o.external_id.clone())),
        );
        let inputs = batch.clone();
        let results = together
            .write_blocking(move |sql| {
                let context = ctx();
                let orders: Vec<NewOrder<'_>> = inputs
                    .iter()
                    .map(|snapshot| NewOrder { ctx: &context, snapshot })
                    .collect();
                orders::apply_new_orders(sql, &orders)
            })
            .unwrap();
        // What the writers do: the orders applied together first, then the others one by one,
        // in order; the reference store applies them all one by one in that same order.
        let mut answers = Vec::new();
        let mut order_applied = Vec::new();
        for (snapshot, result) in batch.iter().zip(&results) {
            if let Some(outcome) = result {
                applied_together += 1;
                answers.push(serde_json::to_value(outcome).unwrap());
                order_applied.push(snapshot);
            }
        }
        for (snapshot, result) in batch.iter().zip(&results) {
            if result.is_none() {
                left_alone += 1;
                answers.push(apply_one(&together, snapshot));
                order_applied.push(snapshot);
            }
        }
        let expected: Vec<Json> = order_applied.iter().map(|s| apply_one(&alone, s)).collect();
        assert_eq!(answers, expected, "answers differ for batch {batch:#?}");
    }
    keys.sort();
    keys.dedup();
    assert_eq!(state(&together, &keys), state(&alone, &keys));
    // Both kinds of order occurred, and some orders were oversold together.
    assert!(applied_together > 40, "only {applied_together} orders were applied together");
    assert!(left_alone > 40, "only {left_alone} orders were left to run alone");
    let oversold = together
        .write_blocking(|sql| {
            Ok(ledger::query(
                sql,
                &LedgerQuery {
                    kind: Some(stockhub_core::EntryKind::Oversold),
                    limit: 100_000,
                    ..LedgerQuery::default()
                },
            )?
            .len())
        })
        .unwrap();
    assert!(oversold > 5, "only {oversold} oversells");
}
}
