//! The push queue's bookkeeping on a real SQLite file: a change that arrives while its mark is in
//! flight, a push that must go again at once, and the quantity a channel is expected to show.

use std::sync::Arc;

use stockhub_core::ChannelRules;
use stockhub_store::engine::catalog;
use stockhub_store::engine::listings::{self, FoundListing};
use stockhub_store::engine::pushes::{self, Claim, ListingResult, MarkNext};
use stockhub_store::model::*;
use stockhub_store::sqlite::{SqliteBackend, SqliteOptions};
use stockhub_store::testing::{add_locations, add_variants, code, ctx};
use stockhub_store::{Clock, ManualClock, Store};

const SKU: &str = "TEE";
const CHANNEL: &str = "shop";

/// A store with one SKU listed once on one channel (discovery marked it), at `clock`.
fn listed(dir: &tempfile::TempDir, clock: &ManualClock) -> Store {
    let backend = SqliteBackend::open(
        &dir.path().join("t.db"),
        Arc::new(clock.clone()),
        SqliteOptions::default(),
    )
    .unwrap();
    let store = Store::new(Arc::new(backend));
    store
        .write_blocking(|sql| {
            add_locations(sql, &["wh"])?;
            add_variants(sql, &[SKU])?;
            catalog::upsert_channel(
                sql,
                &ChannelInput {
                    code: code(CHANNEL),
                    kind: "manual".into(),
                    rules: ChannelRules::default(),
                    feeding_locations: None,
                },
            )?;
            listings::store_discovery(
                sql,
                CHANNEL,
                &[FoundListing {
                    listing_key: "item-1".into(),
                    channel_sku: Some(SKU.into()),
                    channel_location: None,
                    feeding_locations: None,
                    variant_ref: None,
                    ids: serde_json::json!({}),
                    quantity: Some(0),
                }],
            )?;
            Ok(())
        })
        .unwrap();
    store
}

fn claim(store: &Store) -> Vec<Claim> {
    store
        .write_blocking(|sql| pushes::claim(sql, CHANNEL, 10, 60_000, "token"))
        .unwrap()
}

fn complete(store: &Store, claim: &Claim, results: Vec<ListingResult>, next: MarkNext) -> bool {
    let claim = claim.clone();
    store
        .write_blocking(move |sql| pushes::complete(sql, &claim, &results, &next))
        .unwrap()
}

/// The push targets of the listed SKU, with holds given up after 120 s.
fn targets(store: &Store) -> pushes::Targets {
    store
        .read_blocking(|sql| pushes::targets(sql, CHANNEL, &[SKU.to_owned()], 120_000))
        .unwrap()
}

fn marks(store: &Store) -> Vec<pushes::PushView> {
    store
        .read_blocking(|sql| pushes::list(sql, None, None, 10))
        .unwrap()
}

#[test]
fn a_change_while_in_flight_is_pushed_again_counting_from_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let store = listed(&dir, &clock);
    clock.advance_ms(1_000);
    let claims = claim(&store);
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].marked_at_ms, 1_000);

    // The SKU changes twice while its push is in flight.
    clock.advance_ms(1_000);
    store.write_blocking(|sql| pushes::mark(sql, SKU)).unwrap();
    clock.advance_ms(500);
    store.write_blocking(|sql| pushes::mark(sql, SKU)).unwrap();
    clock.advance_ms(1_500);
    assert!(complete(&store, &claims[0], Vec::new(), MarkNext::Done));
    let left = marks(&store);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].state, "pending");
    assert_eq!(
        left[0].marked_at_ms, 3_000,
        "latency counts from the first change since the claim, not from the push's end"
    );
    assert_eq!(left[0].next_attempt_at_ms, 5_000, "due at once");

    // Pushed again at once, without a failure counted: the oldest change still counts.
    let claims = claim(&store);
    assert_eq!(claims[0].marked_at_ms, 3_000);
    clock.advance_ms(100);
    assert!(complete(&store, &claims[0], Vec::new(), MarkNext::Again));
    let left = marks(&store);
    assert_eq!(
        (
            left[0].state.as_str(),
            left[0].marked_at_ms,
            left[0].attempts
        ),
        ("pending", 3_000, 0)
    );
    assert_eq!(left[0].next_attempt_at_ms, 5_100);

    // Done with nothing newer: the mark is gone.
    let claims = claim(&store);
    assert!(complete(&store, &claims[0], Vec::new(), MarkNext::Done));
    assert!(marks(&store).is_empty());
}

#[test]
fn the_channel_is_expected_to_show_its_confirmed_quantity_less_its_own_orders_since() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let store = listed(&dir, &clock);
    let claims = claim(&store);
    let listing_id = targets(&store).targets[0].listing.id;
    // The channel confirms 10.
    let pushed = vec![ListingResult::Pushed {
        listing_id,
        quantity: 10,
        sent_at_ms: 1_000,
        compared_exactly: false,
    }];
    assert!(complete(&store, &claims[0], pushed, MarkNext::Done));
    let expected = |store: &Store| targets(store).targets[0].expected;
    assert_eq!(expected(&store), Some(10));

    // A read shows 7 later: that becomes what the channel is expected to show, and the
    // unexplained decrease of 3 is held back.
    clock.advance_ms(1_000);
    store
        .write_blocking(move |sql| pushes::observe(sql, listing_id, 7, 2_000))
        .unwrap();
    let found = targets(&store);
    assert_eq!(found.targets[0].expected, Some(7));
    assert_eq!(found.targets[0].held, 3);
    assert!(found.expired.is_empty());

    // Past the hold time the hold is given up (by a write), and recorded as a drift once.
    clock.advance_ms(200_000);
    let found = targets(&store);
    assert_eq!(found.targets[0].held, 0);
    assert_eq!(found.expired.len(), 1);
    let expired = found.expired.clone();
    let again = found.expired;
    assert_eq!(
        store
            .write_blocking(move |sql| pushes::give_up_holds(sql, &expired))
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .write_blocking(move |sql| pushes::give_up_holds(sql, &again))
            .unwrap(),
        0,
        "a hold already given up is not recorded twice"
    );
    let found = targets(&store);
    assert_eq!(
        (found.targets[0].held, found.targets[0].expected),
        (0, Some(7))
    );
}

/// Books an order of `quantity` units of the SKU from the channel (none in stock: all short).
fn book_order(store: &Store, external_id: &str, quantity: i64) {
    let snapshot = OrderSnapshot {
        channel: code(CHANNEL),
        external_id: external_id.to_owned(),
        version: None,
        status: stockhub_core::OrderStatus::Open,
        lines: vec![SnapshotLine {
            fulfilment: None,
            line_id: "1".into(),
            channel_sku: SKU.into(),
            quantity,
        }],
        raw: "{}".into(),
    };
    store
        .write_blocking(move |sql| {
            stockhub_store::engine::orders::apply_snapshot(sql, &ctx(), &snapshot)
        })
        .unwrap();
}

/// DESIGN §1 `u`: a decrease no order explains is held back until orders explain it — also after
/// the channel confirms a push that held it back (the sales behind it are still unbooked). The
/// channel's orders booked later explain held sales first; a channel showing more than expected
/// (it put units back itself) lowers the hold.
#[test]
fn a_hold_outlives_the_push_that_carries_it_until_orders_explain_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let store = listed(&dir, &clock);
    let target = |store: &Store| {
        let t = targets(store).targets[0].clone();
        (t.expected, t.held)
    };
    let claims = claim(&store);
    let listing_id = targets(&store).targets[0].listing.id;
    let push = |store: &Store, claim: &Claim, quantity: i64, sent_at_ms: i64| {
        let pushed = vec![ListingResult::Pushed {
            listing_id,
            quantity,
            sent_at_ms,
            compared_exactly: false,
        }];
        assert!(complete(store, claim, pushed, MarkNext::Done));
    };
    let observe = |store: &Store, actual: i64, read_at_ms: i64| {
        store
            .write_blocking(move |sql| pushes::observe(sql, listing_id, actual, read_at_ms))
            .unwrap();
    };
    push(&store, &claims[0], 10, 1_000);

    // The channel sold 4 that stockhub has not booked: a read shows 6.
    clock.advance_ms(1_000);
    observe(&store, 6, 2_000);
    assert_eq!(target(&store), (Some(6), 4));

    // A push that held the 4 back is confirmed: they are still held.
    clock.advance_ms(1_000);
    store.write_blocking(|sql| pushes::mark(sql, SKU)).unwrap();
    let claims = claim(&store);
    push(&store, &claims[0], 3, 3_000);
    assert_eq!(
        target(&store),
        (Some(3), 4),
        "the confirmation keeps the hold"
    );

    // One order of 3 is booked: it explains 3 of the held sales, not a new sale.
    clock.advance_ms(1_000);
    book_order(&store, "A", 3);
    assert_eq!(target(&store), (Some(3), 1));

    // The channel shows 4 where 3 was expected: it put a unit back itself, offsetting the last
    // held sale.
    clock.advance_ms(1_000);
    observe(&store, 4, 5_000);
    assert_eq!(target(&store), (Some(4), 0));

    // A later order is a new sale: it lowers what the channel is expected to show.
    clock.advance_ms(1_000);
    book_order(&store, "B", 2);
    assert_eq!(target(&store), (Some(2), 0));

    // A read from before the last confirmation is out of date and changes nothing.
    store.write_blocking(|sql| pushes::mark(sql, SKU)).unwrap();
    let claims = claim(&store);
    push(&store, &claims[0], 2, 6_000);
    observe(&store, 0, 5_500);
    assert_eq!(target(&store), (Some(2), 0));
}

/// What a listing shows is known exactly only after a push whose comparison was exact: one that
/// compared less exactly (or not at all) may have passed after the channel sold units, writing
/// over that sale, so the channel's orders booked after it are not known to be sales after it.
#[test]
fn orders_after_a_push_compared_less_than_exactly_leave_what_the_channel_shows_inexact() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let store = listed(&dir, &clock);
    let listing_id = targets(&store).targets[0].listing.id;
    let exact = |store: &Store| {
        let t = targets(store).targets[0].clone();
        (t.expected, t.expected_exact)
    };
    let push = |store: &Store, quantity: i64, compared_exactly: bool| {
        store.write_blocking(|sql| pushes::mark(sql, SKU)).unwrap();
        let claims = claim(store);
        let sent_at_ms = clock.now_ms();
        let pushed = vec![ListingResult::Pushed {
            listing_id,
            quantity,
            sent_at_ms,
            compared_exactly,
        }];
        assert!(complete(store, &claims[0], pushed, MarkNext::Done));
        clock.advance_ms(1_000);
    };

    // A first push compares nothing. With no order of the channel since, it shows what it
    // confirmed (or less, after a sale stockhub has not heard of).
    push(&store, 10, false);
    assert_eq!(exact(&store), (Some(10), true));
    // An order booked now may have been a sale the push wrote over.
    book_order(&store, "A", 2);
    assert_eq!(exact(&store), (Some(8), false));

    // A push compared exactly: had the channel sold before it landed, it would have been refused.
    push(&store, 8, true);
    book_order(&store, "B", 1);
    assert_eq!(exact(&store), (Some(7), true));

    // B is cancelled: the channel may have put its unit back itself.
    clock.advance_ms(1_000);
    book_order(&store, "B", 0);
    assert!(!exact(&store).1, "a cancel since the confirmation");
    // So the next push compares less than exactly: the channel may show 8 where 7 is expected,
    // sell one, show 7 again and pass the comparison, writing over that sale. Its order, booked
    // after the push, leaves the listing inexact.
    push(&store, 8, false);
    book_order(&store, "C", 1);
    assert_eq!(exact(&store), (Some(7), false));
}
