//! A differential property test of the store. Random sequences of operations run twice: through
//! the engine's units of work on a real database (with a manual clock) — a SQLite file, and a
//! PostgreSQL schema whose writes are spread over several connections — and through a small
//! reference model written here from the semantics alone (maps and vectors, no SQL, nothing
//! shared with the engine but its input and output types). After every step both must agree on
//! whether the operation was refused and why, on every stock level, on what every channel may
//! sell of every SKU (kits included), on every order line, on the unmapped queue and on every
//! reservation; nothing may go negative, and every tenth step the ledger must rebuild every
//! projection exactly (`verify`). The rules are those of `docs/semantics.md` (a count is the
//! newest physical count: it ignores other counts' corrections, and an older count changes
//! nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use stockhub_core::{ChannelRules, Code, LineState, OrderStatus, Quantity, Sku};
use stockhub_store::engine::verify::VerifyReport;
use stockhub_store::engine::{catalog, movements, orders, reservations, stock, verify};
use stockhub_store::model::{
    AllocationView, ChannelInput, Ctx, Level, LineQuantity, Movement, MovementItem, MovementResult,
    OrderSnapshot, OrderView, Reservation, ReserveInput, SnapshotLine, StockView, UnmappedLine,
    VariantInput,
};
use stockhub_store::testing::{add_locations, test_database, TestBackend, TestDatabase};
use stockhub_store::{ManualClock, Store, StoreError, StoreOptions};

// ---------------------------------------------------------------------------------------------
// The little world every case starts from.

const LOCATIONS: [&str; 3] = ["a", "b", "c"];
const UNKNOWN_LOCATION: &str = "zz";
const KIT: &str = "K";
/// The plain SKUs, then the kit.
const SKUS: [&str; 4] = ["A", "B", "C", KIT];
const UNKNOWN_SKU: &str = "Q";
const CHANNELS: [&str; 3] = ["amz", "pos", "web"];
const UNKNOWN_CHANNEL: &str = "ebay";
const ORDER_IDS: [&str; 3] = ["o1", "o2", "o3"];
/// What a channel may name on an order line: our SKUs, one with blanks around it, and two we
/// do not know (those lines wait in the unmapped queue).
const CHANNEL_SKUS: [&str; 7] = ["A", "B", "C", KIT, " C ", "X-1", "Y-2"];
/// Kit recipes an operator may set; the last two are refused (the kit contains itself; an
/// unknown component).
const RECIPES: [&[(&str, i64)]; 6] = [
    &[("A", 2), ("B", 1)],
    &[("A", 1)],
    &[("B", 1), ("C", 2)],
    &[("C", 1), ("A", 1), ("B", 1)],
    &[(KIT, 1)],
    &[("A", 1), (UNKNOWN_SKU, 1)],
];
const INITIAL_BUFFERS: [(&str, i64); 4] = [("A", 1), ("B", 0), ("C", 0), (KIT, 0)];
const INITIAL_STOCK: [(&str, &str, i64); 8] = [
    ("A", "a", 4),
    ("A", "b", 3),
    ("A", "c", 2),
    ("B", "a", 2),
    ("B", "b", 3),
    ("B", "c", 2),
    ("C", "a", 2),
    ("C", "c", 3),
];
const CLOCK_START_MS: i64 = 1_000_000;

/// Three channels that differ in every rule and in where their stock comes from.
fn channel_setup() -> Vec<(&'static str, ChannelRules, Option<Vec<&'static str>>)> {
    vec![
        (
            "amz",
            ChannelRules {
                buffer: 1,
                share_ppm: 500_000,
                max_quantity: Some(5),
                out_of_stock_threshold: 1,
            },
            None,
        ),
        (
            "pos",
            ChannelRules {
                out_of_stock_threshold: 1,
                ..ChannelRules::default()
            },
            Some(vec!["c"]),
        ),
        (
            "web",
            ChannelRules {
                buffer: 0,
                share_ppm: 800_000,
                max_quantity: None,
                out_of_stock_threshold: 2,
            },
            Some(vec!["b", "a"]),
        ),
    ]
}

/// Feeding locations an operator may give a channel (`None`: every location, in code order).
const FEEDINGS: [Option<&[&str]>; 5] = [
    None,
    Some(&["c"]),
    Some(&["b", "a"]),
    Some(&["a"]),
    Some(&["c", "b", "a"]),
];

fn sku_name(i: usize) -> &'static str {
    SKUS.get(i).copied().unwrap_or(UNKNOWN_SKU)
}

fn location_name(i: usize) -> &'static str {
    LOCATIONS.get(i).copied().unwrap_or(UNKNOWN_LOCATION)
}

fn channel_name(i: usize) -> &'static str {
    CHANNELS.get(i).copied().unwrap_or(UNKNOWN_CHANNEL)
}

fn sku(s: &str) -> Sku {
    Sku::parse(s).expect("test SKUs are valid")
}

fn code(s: &str) -> Code {
    Code::parse("code", s).expect("test codes are valid")
}

fn quantity(n: i64) -> Quantity {
    Quantity::parse(n).expect("test quantities are positive")
}

fn ctx() -> Ctx {
    Ctx::system("differential-test", "differential")
}

fn variant_input(name: &str, buffer: i64, kit: Option<&[(&str, i64)]>) -> VariantInput {
    VariantInput {
        sku: sku(name),
        product_id: None,
        title: None,
        option_values: serde_json::json!({}),
        barcode: None,
        buffer,
        kit: kit.map(|recipe| recipe.iter().map(|(c, u)| (sku(c), *u)).collect()),
    }
}

// ---------------------------------------------------------------------------------------------
// The operations a case is made of, as generated (indices into the world above; picks of orders,
// lines and reservations are resolved against the state at the time of the step).

#[derive(Debug, Clone, Copy)]
enum CountAt {
    Now,
    MsAgo(i64),
    Future,
}

#[derive(Debug, Clone)]
enum Move {
    Receive {
        sku: usize,
        location: usize,
        quantity: i64,
    },
    Adjust {
        sku: usize,
        location: usize,
        delta: i64,
    },
    Count {
        sku: usize,
        location: usize,
        counted: i64,
        at: CountAt,
    },
    Transfer {
        sku: usize,
        from: usize,
        to: usize,
        quantity: i64,
    },
}

#[derive(Debug, Clone)]
struct MoveSpec {
    movement: Move,
    /// The item's idempotency key, `key-<n>`.
    key: Option<u8>,
}

#[derive(Debug, Clone)]
struct LineSpec {
    slot: usize,
    channel_sku: usize,
    quantity: i64,
}

/// Which version a snapshot carries.
#[derive(Debug, Clone, Copy)]
enum Version {
    /// One above the stored version (1 for a new order): the usual next delivery.
    Next,
    /// Any: older, equal or newer than the stored one.
    Exactly(i64),
    Unversioned,
}

#[derive(Debug, Clone)]
struct SnapshotSpec {
    /// Deliver to an order that exists (by pick) rather than to `(channel, order)`.
    existing: Option<usize>,
    channel: usize,
    order: usize,
    version: Version,
    cancelled: bool,
    lines: Vec<LineSpec>,
    /// Repeat the order's other lines unchanged (else a line left out is removed).
    amend: bool,
    duplicate_line: bool,
}

#[derive(Debug, Clone)]
struct ReturnSpec {
    line: usize,
    /// See `amount`.
    quantity: u8,
    restock: bool,
    location: Option<usize>,
}

/// How many units of a line's state an operation may act on (committed ones for a shipment…).
type Room = fn(&LineState) -> i64;

/// `usize::MAX` as a pick means "one that does not exist".
const MISSING: usize = usize::MAX;

#[derive(Debug, Clone)]
enum Op {
    Movements(Vec<MoveSpec>),
    /// The client retries its previous batch of movements, unchanged.
    RepeatMovements,
    Snapshot(SnapshotSpec),
    Cancel {
        order: usize,
    },
    Ship {
        order: usize,
        lines: Vec<(usize, u8)>,
    },
    Return {
        order: usize,
        lines: Vec<ReturnSpec>,
    },
    Restock {
        order: usize,
        lines: Vec<ReturnSpec>,
    },
    SetRecipe(usize),
    /// A channel gets new feeding locations (an index into `FEEDINGS`); its rules stay.
    SetFeeding {
        channel: usize,
        feeding: usize,
    },
    SetBuffer {
        sku: usize,
        buffer: i64,
    },
    Reserve {
        channel: usize,
        sku: usize,
        quantity: i64,
        location: Option<usize>,
        expires_in_ms: i64,
    },
    Release(usize),
    Confirm {
        reservation: usize,
        order: Option<usize>,
        /// First move the clock to the reservation's expiry (1 ms before it when `true`).
        at_expiry: Option<bool>,
    },
    AdvanceClock(i64),
    ExpireDue {
        limit: i64,
        /// First move the clock to a reservation's expiry (1 ms before it when `true`).
        at_expiry: Option<(usize, bool)>,
    },
    Resolve {
        line: usize,
        sku: usize,
    },
}

fn movement_sku() -> impl Strategy<Value = usize> {
    prop_oneof![28 => 0..3usize, 1 => Just(3usize), 1 => Just(4usize)]
}

fn any_sku() -> impl Strategy<Value = usize> {
    prop_oneof![12 => 0..3usize, 5 => Just(3usize), 1 => Just(4usize)]
}

fn location() -> impl Strategy<Value = usize> {
    prop_oneof![39 => 0..3usize, 1 => Just(3usize)]
}

fn channel() -> impl Strategy<Value = usize> {
    prop_oneof![24 => 0..3usize, 1 => Just(3usize)]
}

fn pick() -> impl Strategy<Value = usize> {
    prop_oneof![19 => 0..64usize, 1 => Just(MISSING)]
}

/// Where a transfer goes, relative to its source: mostly another location, sometimes the same
/// one (refused).
fn transfer_offset() -> impl Strategy<Value = usize> {
    prop_oneof![9 => 1..3usize, 1 => Just(0usize)]
}

fn move_spec() -> impl Strategy<Value = MoveSpec> {
    let count_at = prop_oneof![
        2 => Just(CountAt::Now),
        6 => (0..=12i64).prop_map(CountAt::MsAgo),
        1 => Just(CountAt::Future),
    ];
    let movement = prop_oneof![
        4 => (movement_sku(), location(), 1..=6i64).prop_map(|(sku, location, quantity)| {
            Move::Receive { sku, location, quantity }
        }),
        2 => (movement_sku(), location(), prop_oneof![-3..=-1i64, 1..=3i64]).prop_map(
            |(sku, location, delta)| Move::Adjust { sku, location, delta }
        ),
        3 => (movement_sku(), location(), 0..=8i64, count_at).prop_map(
            |(sku, location, counted, at)| Move::Count { sku, location, counted, at }
        ),
        2 => (movement_sku(), location(), transfer_offset(), 1..=4i64).prop_map(
            |(sku, from, offset, quantity)| {
                let to = if from < LOCATIONS.len() { (from + offset) % LOCATIONS.len() } else { 0 };
                Move::Transfer { sku, from, to, quantity }
            }
        ),
    ];
    (movement, proptest::option::weighted(0.2, 0..8u8))
        .prop_map(|(movement, key)| MoveSpec { movement, key })
}

/// Mostly one line per shipment, sometimes two (possibly the same line twice).
fn shipped_lines() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop_oneof![
        3 => proptest::collection::vec((pick(), amount_spec()), 1..=1),
        1 => proptest::collection::vec((pick(), amount_spec()), 2..=2),
    ]
}

fn amount_spec() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0u8), 3 => Just(1u8), 3 => Just(2u8), 1 => Just(3u8)]
}

fn return_spec() -> impl Strategy<Value = ReturnSpec> {
    (
        pick(),
        amount_spec(),
        any::<bool>(),
        proptest::option::weighted(0.25, location()),
    )
        .prop_map(|(line, quantity, restock, location)| ReturnSpec {
            line,
            quantity,
            restock,
            location,
        })
}

fn snapshot_op() -> impl Strategy<Value = Op> {
    let line = (
        0..4usize,
        // The kit (index 3) a little more often: kit and component lines compete for units.
        prop_oneof![6 => 0..CHANNEL_SKUS.len(), 1 => Just(3usize)],
        prop_oneof![1 => Just(0i64), 6 => 1..=4i64],
    )
        .prop_map(|(slot, channel_sku, quantity)| LineSpec {
            slot,
            channel_sku,
            quantity,
        });
    let version = prop_oneof![
        6 => Just(Version::Next),
        3 => (1..=6i64).prop_map(Version::Exactly),
        1 => Just(Version::Unversioned),
    ];
    (
        (
            proptest::option::weighted(0.5, 0..64usize),
            channel(),
            0..ORDER_IDS.len(),
        ),
        version,
        proptest::bool::weighted(0.2),
        proptest::collection::vec(line, 0..5),
        (any::<bool>(), proptest::bool::weighted(0.05)),
    )
        .prop_map(
            |((existing, channel, order), version, cancelled, lines, (amend, duplicate_line))| {
                Op::Snapshot(SnapshotSpec {
                    existing,
                    channel,
                    order,
                    version,
                    cancelled,
                    lines,
                    amend,
                    duplicate_line,
                })
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let reserve = (
        channel(),
        any_sku(),
        1..=4i64,
        proptest::option::weighted(0.3, location()),
        prop_oneof![6 => 1..=40i64, 6 => 41..=3000i64, 1 => Just(0i64)],
    )
        .prop_map(
            |(channel, sku, quantity, location, expires_in_ms)| Op::Reserve {
                channel,
                sku,
                quantity,
                location,
                expires_in_ms,
            },
        );
    prop_oneof![
        13 => proptest::collection::vec(move_spec(), 1..4).prop_map(Op::Movements),
        2 => Just(Op::RepeatMovements),
        20 => snapshot_op(),
        3 => pick().prop_map(|order| Op::Cancel { order }),
        14 => (pick(), shipped_lines()).prop_map(|(order, lines)| Op::Ship { order, lines }),
        10 => (pick(), proptest::collection::vec(return_spec(), 1..3))
            .prop_map(|(order, lines)| Op::Return { order, lines }),
        6 => (pick(), proptest::collection::vec(return_spec(), 1..3))
            .prop_map(|(order, lines)| Op::Restock { order, lines }),
        3 => prop_oneof![9 => 0..4usize, 1 => 4..6usize].prop_map(Op::SetRecipe),
        2 => (0..SKUS.len(), 0..=3i64).prop_map(|(sku, buffer)| Op::SetBuffer { sku, buffer }),
        2 => (0..CHANNELS.len(), 0..FEEDINGS.len())
            .prop_map(|(channel, feeding)| Op::SetFeeding { channel, feeding }),
        12 => reserve,
        4 => pick().prop_map(Op::Release),
        5 => (
            pick(),
            proptest::option::weighted(0.3, 0..ORDER_IDS.len()),
            proptest::option::weighted(0.3, any::<bool>()),
        )
            .prop_map(|(reservation, order, at_expiry)| Op::Confirm {
                reservation,
                order,
                at_expiry,
            }),
        4 => prop_oneof![3 => 1..=100i64, 1 => 101..=2500i64].prop_map(Op::AdvanceClock),
        4 => (1..=3i64, proptest::option::weighted(0.3, (pick(), any::<bool>())))
            .prop_map(|(limit, at_expiry)| Op::ExpireDue { limit, at_expiry }),
        4 => (pick(), any_sku()).prop_map(|(line, sku)| Op::Resolve { line, sku }),
    ]
}

// ---------------------------------------------------------------------------------------------
// The reference model.

/// What one unit of a holder takes from a location: `(component, units)`, sorted by component.
type Recipe = Vec<(String, i64)>;
/// `(channel, external id)`.
type OrderKey = (String, String);
/// `Ok(summary)` or `Err(refusal)`, in the same words for the engine and the model.
type Outcome = Result<String, String>;

fn refuse<T>(kind: &str) -> Result<T, String> {
    Err(kind.to_owned())
}

/// Where some of a holder's units are committed. The semantics say "release the newest
/// allocations first" without saying what one allocation is; the model takes the engine's reading
/// (one per location and recipe, which later commitments there join as long as it has shipped
/// nothing), so a unit committed late at a location with an older allocation is not the first to
/// be released.
#[derive(Debug, Clone, PartialEq)]
struct Alloc {
    location: String,
    recipe: Recipe,
    committed: i64,
    shipped: i64,
    restocked: i64,
}

#[derive(Debug, Clone)]
struct ModelLine {
    order: OrderKey,
    line_id: String,
    channel_sku: String,
    sku: Option<String>,
    wanted: i64,
    state: LineState,
    allocs: Vec<Alloc>,
}

#[derive(Debug, Clone)]
struct ModelOrder {
    version: Option<i64>,
    status: OrderStatus,
    /// Indices into `Model::lines`, in creation order.
    lines: Vec<usize>,
}

#[derive(Debug, Clone)]
struct ModelReservation {
    /// The id the engine gave it (names the order of a confirmation without an external id).
    engine_id: i64,
    channel: String,
    sku: String,
    quantity: i64,
    status: &'static str,
    expires_at_ms: i64,
    allocs: Vec<Alloc>,
}

#[derive(Debug, Clone)]
struct ModelChannel {
    rules: ChannelRules,
    feeding: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
struct OnHandChange {
    at_ms: i64,
    sku: String,
    location: String,
    delta: i64,
    /// A count's correction.
    by_count: bool,
}

#[derive(Debug, Clone, Copy)]
enum Holder {
    Line(usize),
    Reservation(usize),
}

#[derive(Debug, Clone)]
struct Model {
    now_ms: i64,
    /// Every variant and its buffer.
    buffers: BTreeMap<String, i64>,
    /// Kits only.
    recipes: BTreeMap<String, Recipe>,
    locations: BTreeSet<String>,
    channels: BTreeMap<String, ModelChannel>,
    /// `(sku, location) → (on_hand, committed)`; absent means `(0, 0)`.
    levels: BTreeMap<(String, String), (i64, i64)>,
    /// Every change of on_hand, oldest first.
    on_hand_history: Vec<OnHandChange>,
    /// Every count recorded: `(sku, location, counted at)`.
    counts: Vec<(String, String, i64)>,
    orders: BTreeMap<OrderKey, ModelOrder>,
    /// Every order line ever created, oldest first.
    lines: Vec<ModelLine>,
    /// Every reservation ever made, oldest first.
    reservations: Vec<ModelReservation>,
    aliases: BTreeMap<(String, String), String>,
    /// Item idempotency: scope → (request hash, levels answered).
    idempotency: BTreeMap<String, (String, Vec<Level>)>,
}

impl Model {
    fn new() -> Self {
        let mut recipes = BTreeMap::new();
        recipes.insert(KIT.to_owned(), sorted_recipe(RECIPES[0]));
        Self {
            now_ms: CLOCK_START_MS,
            buffers: INITIAL_BUFFERS
                .iter()
                .map(|(s, b)| ((*s).to_owned(), *b))
                .collect(),
            recipes,
            locations: LOCATIONS.iter().map(|l| (*l).to_owned()).collect(),
            channels: channel_setup()
                .into_iter()
                .map(|(c, rules, feeding)| {
                    let feeding = feeding.map(|f| f.iter().map(|l| (*l).to_owned()).collect());
                    (c.to_owned(), ModelChannel { rules, feeding })
                })
                .collect(),
            levels: BTreeMap::new(),
            on_hand_history: Vec::new(),
            counts: Vec::new(),
            orders: BTreeMap::new(),
            lines: Vec::new(),
            reservations: Vec::new(),
            aliases: BTreeMap::new(),
            idempotency: BTreeMap::new(),
        }
    }

    /// Runs `f` on a copy and keeps the copy only if `f` succeeded: every operation is
    /// all-or-nothing.
    fn transact(&mut self, f: impl FnOnce(&mut Model) -> Outcome) -> Outcome {
        let mut work = self.clone();
        let outcome = f(&mut work);
        if outcome.is_ok() {
            *self = work;
        }
        outcome
    }

    // --- stock -----------------------------------------------------------------------------

    fn level(&self, sku: &str, location: &str) -> (i64, i64) {
        self.levels
            .get(&(sku.to_owned(), location.to_owned()))
            .copied()
            .unwrap_or((0, 0))
    }

    fn free(&self, sku: &str, location: &str) -> i64 {
        let (on_hand, committed) = self.level(sku, location);
        (on_hand - committed).max(0)
    }

    /// Changes a level; the model itself must never break `0 ≤ committed ≤ on_hand`.
    fn change(&mut self, sku: &str, location: &str, d_on_hand: i64, d_committed: i64) {
        self.change_by(sku, location, d_on_hand, d_committed, false);
    }

    fn change_by(
        &mut self,
        sku: &str,
        location: &str,
        d_on_hand: i64,
        d_committed: i64,
        by_count: bool,
    ) {
        let key = (sku.to_owned(), location.to_owned());
        let level = self.levels.entry(key).or_insert((0, 0));
        level.0 += d_on_hand;
        level.1 += d_committed;
        assert!(
            level.0 >= 0 && level.1 >= 0 && level.1 <= level.0,
            "model bug: {sku} at {location} became {level:?}"
        );
        if d_on_hand != 0 {
            self.on_hand_history.push(OnHandChange {
                at_ms: self.now_ms,
                sku: sku.to_owned(),
                location: location.to_owned(),
                delta: d_on_hand,
                by_count,
            });
        }
    }

    fn is_kit(&self, sku: &str) -> bool {
        self.recipes.contains_key(sku)
    }

    fn recipe_of(&self, sku: &str) -> Recipe {
        self.recipes
            .get(sku)
            .cloned()
            .unwrap_or_else(|| vec![(sku.to_owned(), 1)])
    }

    /// Whole units of a recipe free at one location.
    fn units_at(&self, recipe: &Recipe, location: &str) -> i64 {
        recipe
            .iter()
            .map(|(component, units)| self.free(component, location) / units)
            .min()
            .unwrap_or(0)
    }

    fn feeding(&self, channel: &str) -> Vec<String> {
        match &self.channels[channel].feeding {
            Some(list) => list.clone(),
            None => self.locations.iter().cloned().collect(),
        }
    }

    /// `(pool, available to sell)` of a SKU or kit on a channel.
    fn availability(&self, sku: &str, channel: &str) -> (i64, i64) {
        let rules = &self.channels[channel].rules;
        let recipe = self.recipe_of(sku);
        let pool: i64 = self
            .feeding(channel)
            .iter()
            .map(|l| self.units_at(&recipe, l))
            .sum();
        let raw = pool - self.buffers[sku] - rules.buffer;
        if raw <= rules.out_of_stock_threshold {
            return (pool, 0);
        }
        let shared = raw * rules.share_ppm / 1_000_000;
        let capped = rules.max_quantity.map_or(shared, |max| shared.min(max));
        (pool, capped.max(0))
    }

    fn allocs_mut(&mut self, holder: Holder) -> &mut Vec<Alloc> {
        match holder {
            Holder::Line(i) => &mut self.lines[i].allocs,
            Holder::Reservation(i) => &mut self.reservations[i].allocs,
        }
    }

    /// Commits up to `quantity` units of `sku` from `locations` in order, whole units of its
    /// current recipe per location. Units join the holder's newest allocation with the same
    /// location and recipe that has shipped nothing, else start a new one. Returns the units
    /// committed.
    fn allocate(&mut self, holder: Holder, sku: &str, quantity: i64, locations: &[String]) -> i64 {
        let recipe = self.recipe_of(sku);
        let mut remaining = quantity;
        for location in locations {
            let take = self.units_at(&recipe, location).min(remaining);
            if take == 0 {
                continue;
            }
            for (component, units) in &recipe {
                self.change(component, location, 0, take * units);
            }
            let allocs = self.allocs_mut(holder);
            match allocs
                .iter_mut()
                .rev()
                .find(|a| a.location == *location && a.recipe == recipe && a.shipped == 0)
            {
                Some(a) => a.committed += take,
                None => allocs.push(Alloc {
                    location: location.clone(),
                    recipe: recipe.clone(),
                    committed: take,
                    shipped: 0,
                    restocked: 0,
                }),
            }
            remaining -= take;
        }
        quantity - remaining
    }

    /// Releases committed units, newest allocation first. Returns the components freed.
    fn release(&mut self, holder: Holder, quantity: i64) -> BTreeSet<String> {
        let mut touched = BTreeSet::new();
        let mut remaining = quantity;
        for i in (0..self.allocs_mut(holder).len()).rev() {
            let a = &mut self.allocs_mut(holder)[i];
            let take = a.committed.min(remaining);
            if take == 0 {
                continue;
            }
            a.committed -= take;
            let (location, recipe) = (a.location.clone(), a.recipe.clone());
            for (component, units) in recipe {
                self.change(&component, &location, 0, -take * units);
                touched.insert(component);
            }
            remaining -= take;
        }
        touched
    }

    /// Ships committed units, oldest allocation first.
    fn ship_units(&mut self, holder: Holder, quantity: i64) {
        let mut remaining = quantity;
        for i in 0..self.allocs_mut(holder).len() {
            let a = &mut self.allocs_mut(holder)[i];
            let take = a.committed.min(remaining);
            if take == 0 {
                continue;
            }
            a.committed -= take;
            a.shipped += take;
            let (location, recipe) = (a.location.clone(), a.recipe.clone());
            for (component, units) in recipe {
                self.change(&component, &location, -take * units, -take * units);
            }
            remaining -= take;
        }
        assert_eq!(remaining, 0, "model bug: shipped more than was committed");
    }

    /// Puts shipped units back on the shelf, oldest shipment first, where they shipped from or
    /// at `at`. Returns the components restocked.
    fn restock_units(
        &mut self,
        holder: Holder,
        quantity: i64,
        at: Option<&str>,
    ) -> BTreeSet<String> {
        let mut touched = BTreeSet::new();
        let mut remaining = quantity;
        for i in 0..self.allocs_mut(holder).len() {
            let a = &mut self.allocs_mut(holder)[i];
            let take = (a.shipped - a.restocked).min(remaining);
            if take == 0 {
                continue;
            }
            a.restocked += take;
            let location = at.map_or_else(|| a.location.clone(), str::to_owned);
            let recipe = a.recipe.clone();
            for (component, units) in recipe {
                self.change(&component, &location, take * units, 0);
                touched.insert(component);
            }
            remaining -= take;
        }
        assert_eq!(remaining, 0, "model bug: restocked more than was shipped");
        touched
    }

    /// Fills open shortfalls of lines whose SKU was touched (or is a kit made of a touched SKU),
    /// oldest line first, from each line's channel's feeding locations in priority order.
    fn fill(&mut self, touched: &BTreeSet<String>) {
        if touched.is_empty() {
            return;
        }
        let mut targets = touched.clone();
        for (kit, recipe) in &self.recipes {
            if recipe.iter().any(|(c, _)| touched.contains(c)) {
                targets.insert(kit.clone());
            }
        }
        for i in 0..self.lines.len() {
            let line = &self.lines[i];
            let Some(sku) = line.sku.clone() else {
                continue;
            };
            if line.state.short == 0 || !targets.contains(&sku) {
                continue;
            }
            let (short, locations) = (line.state.short, self.feeding(&line.order.0));
            let got = self.allocate(Holder::Line(i), &sku, short, &locations);
            let state = &mut self.lines[i].state;
            state.short -= got;
            state.committed += got;
        }
    }

    // --- movements -------------------------------------------------------------------------

    fn apply_batch(&mut self, items: &[MovementItem]) -> Outcome {
        let mut work = self.clone();
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let mut attempt = work.clone();
            match attempt.apply_item(item) {
                Ok((status, levels)) => {
                    work = attempt;
                    results.push(format!("{index}:{status}:{levels:?}"));
                }
                Err(kind) => errors.push((index, kind)),
            }
        }
        if errors.is_empty() {
            *self = work;
            Ok(results.join(" "))
        } else {
            Err(format!("invalid-batch {errors:?}"))
        }
    }

    fn apply_item(&mut self, item: &MovementItem) -> Result<(&'static str, Vec<Level>), String> {
        if let Some((scope, hash)) = &item.idempotency {
            if let Some((stored_hash, levels)) = self.idempotency.get(scope) {
                if stored_hash == hash {
                    return Ok(("replayed", levels.clone()));
                }
                return refuse("idempotency-conflict");
            }
        }
        let levels = self.apply_movement(&item.movement)?;
        if let Some((scope, hash)) = &item.idempotency {
            self.idempotency
                .insert(scope.clone(), (hash.clone(), levels.clone()));
        }
        Ok(("applied", levels))
    }

    fn apply_movement(&mut self, movement: &Movement) -> Result<Vec<Level>, String> {
        let (sku, locations) = match movement {
            Movement::Receive { sku, location, .. }
            | Movement::Adjust { sku, location, .. }
            | Movement::Count { sku, location, .. } => (sku.as_str(), vec![location.as_str()]),
            Movement::Transfer { sku, from, to, .. } => {
                (sku.as_str(), vec![from.as_str(), to.as_str()])
            }
        };
        if !self.buffers.contains_key(sku) {
            return refuse("unknown-sku");
        }
        if self.is_kit(sku) {
            return refuse("invalid-request");
        }
        if locations.iter().any(|l| !self.locations.contains(*l)) {
            return refuse("unknown-location");
        }
        match movement {
            Movement::Receive {
                location, quantity, ..
            } => self.change(sku, location.as_str(), quantity.get(), 0),
            Movement::Adjust {
                location, delta, ..
            } => {
                let (on_hand, committed) = self.level(sku, location.as_str());
                if on_hand + delta < committed || on_hand + delta < 0 {
                    return refuse("stock-conflict");
                }
                self.change(sku, location.as_str(), *delta, 0);
            }
            Movement::Count {
                location,
                on_hand: counted,
                counted_at_ms,
                ..
            } => self.count(sku, location.as_str(), *counted, *counted_at_ms)?,
            Movement::Transfer {
                from, to, quantity, ..
            } => {
                if from == to {
                    return refuse("invalid-request");
                }
                if self.free(sku, from.as_str()) < quantity.get() {
                    return refuse("stock-conflict");
                }
                self.change(sku, from.as_str(), -quantity.get(), 0);
                self.change(sku, to.as_str(), quantity.get(), 0);
            }
        }
        self.fill(&BTreeSet::from([sku.to_owned()]));
        Ok(locations
            .iter()
            .map(|l| {
                let (on_hand, committed) = self.level(sku, l);
                Level {
                    sku: sku.to_owned(),
                    location: (*l).to_owned(),
                    on_hand,
                    committed,
                }
            })
            .collect())
    }

    /// A cycle count taken at `counted_at_ms` (now when absent): on_hand becomes the number
    /// counted plus every on_hand change recorded since, except other counts' corrections (the
    /// counter saw the shelf they corrected). The newest physical count wins: a count taken
    /// before one already recorded changes nothing.
    fn count(
        &mut self,
        sku: &str,
        location: &str,
        counted: i64,
        counted_at_ms: Option<i64>,
    ) -> Result<(), String> {
        let counted_at = counted_at_ms.unwrap_or(self.now_ms);
        if counted_at > self.now_ms {
            return refuse("invalid-request");
        }
        let superseded = self
            .counts
            .iter()
            .any(|(s, l, at)| s == sku && l == location && *at > counted_at);
        let since: i64 = self
            .on_hand_history
            .iter()
            .filter(|c| c.at_ms > counted_at && !c.by_count)
            .filter(|c| c.sku == sku && c.location == location)
            .map(|c| c.delta)
            .sum();
        let (on_hand, committed) = self.level(sku, location);
        let target = if superseded {
            on_hand
        } else {
            (counted + since).max(0)
        };
        if target < committed {
            return refuse("stock-conflict");
        }
        self.change_by(sku, location, target - on_hand, 0, true);
        self.counts
            .push((sku.to_owned(), location.to_owned(), counted_at));
        Ok(())
    }

    // --- orders ----------------------------------------------------------------------------

    /// Our SKU for a channel's SKU: itself when we know it, else the channel's alias, if any.
    fn resolve_sku(&self, channel: &str, channel_sku: &str) -> Option<String> {
        if let Ok(parsed) = Sku::parse(channel_sku) {
            if self.buffers.contains_key(parsed.as_str()) {
                return Some(parsed.as_str().to_owned());
            }
        }
        self.aliases
            .get(&(channel.to_owned(), channel_sku.to_owned()))
            .cloned()
    }

    /// Moves a line to `target` active units. Returns whether anything about it changed.
    fn set_target(&mut self, index: usize, target: i64, touched: &mut BTreeSet<String>) -> bool {
        let line = &mut self.lines[index];
        let wanted_changed = line.wanted != target;
        line.wanted = target;
        let Some(sku) = line.sku.clone() else {
            return wanted_changed;
        };
        let state = line.state;
        let active = state.committed + state.short + state.shipped;
        if target >= active {
            let add = target - active;
            if add == 0 {
                return wanted_changed;
            }
            let locations = self.feeding(&self.lines[index].order.0);
            let got = self.allocate(Holder::Line(index), &sku, add, &locations);
            let state = &mut self.lines[index].state;
            state.committed += got;
            state.short += add - got;
            return true;
        }
        let excess = active - target;
        let cancel_short = excess.min(state.short);
        let cancel_committed = (excess - cancel_short).min(state.committed);
        if cancel_short == 0 && cancel_committed == 0 {
            return wanted_changed;
        }
        touched.extend(self.release(Holder::Line(index), cancel_committed));
        let state = &mut self.lines[index].state;
        state.short -= cancel_short;
        state.committed -= cancel_committed;
        state.cancelled += cancel_short + cancel_committed;
        true
    }

    fn add_line(&mut self, key: &OrderKey, line_id: &str, channel_sku: &str) -> usize {
        let sku = self.resolve_sku(&key.0, channel_sku);
        self.lines.push(ModelLine {
            order: key.clone(),
            line_id: line_id.to_owned(),
            channel_sku: channel_sku.to_owned(),
            sku,
            wanted: 0,
            state: LineState::default(),
            allocs: Vec::new(),
        });
        let index = self.lines.len() - 1;
        self.orders
            .get_mut(key)
            .expect("the order exists")
            .lines
            .push(index);
        index
    }

    fn apply_snapshot(&mut self, snap: &OrderSnapshot) -> Outcome {
        let channel = snap.channel.as_str();
        if !self.channels.contains_key(channel) {
            return refuse("unknown-channel");
        }
        let ids: BTreeSet<&str> = snap.lines.iter().map(|l| l.line_id.as_str()).collect();
        if ids.len() != snap.lines.len() {
            return refuse("invalid-request");
        }
        let key = (channel.to_owned(), snap.external_id.clone());
        let created = match self.orders.get_mut(&key) {
            Some(order) => {
                if let (Some(stored), Some(new)) = (order.version, snap.version) {
                    if new < stored {
                        return Ok("stale".into());
                    }
                }
                order.version = snap.version.or(order.version);
                order.status = snap.status;
                false
            }
            None => {
                self.orders.insert(
                    key.clone(),
                    ModelOrder {
                        version: snap.version,
                        status: snap.status,
                        lines: Vec::new(),
                    },
                );
                true
            }
        };
        let before = self.orders[&key].lines.clone();
        let mut touched = BTreeSet::new();
        let mut changed = false;
        for wanted in &snap.lines {
            let index = match before
                .iter()
                .find(|&&i| self.lines[i].line_id == wanted.line_id)
            {
                Some(&i) => i,
                None => self.add_line(&key, &wanted.line_id, &wanted.channel_sku),
            };
            let target = match snap.status {
                OrderStatus::Open => wanted.quantity,
                OrderStatus::Cancelled => 0,
            };
            changed |= self.set_target(index, target, &mut touched);
        }
        for &index in &before {
            if !ids.contains(self.lines[index].line_id.as_str()) {
                changed |= self.set_target(index, 0, &mut touched);
            }
        }
        self.fill(&touched);
        Ok(match (created, changed) {
            (true, _) => "created",
            (false, true) => "updated",
            (false, false) => "unchanged",
        }
        .into())
    }

    fn cancel(&mut self, key: &OrderKey) -> Outcome {
        let Some(order) = self.orders.get_mut(key) else {
            return refuse("unknown-order");
        };
        order.status = OrderStatus::Cancelled;
        let mut touched = BTreeSet::new();
        for index in order.lines.clone() {
            self.set_target(index, 0, &mut touched);
        }
        self.fill(&touched);
        Ok("ok".into())
    }

    /// A mapped line of an order, for shipping, returning or restocking.
    fn line_for_update(&self, key: &OrderKey, line_id: &str) -> Result<usize, String> {
        let order = &self.orders[key];
        let Some(&index) = order
            .lines
            .iter()
            .find(|&&i| self.lines[i].line_id == line_id)
        else {
            return refuse("unknown-order-line");
        };
        if self.lines[index].sku.is_none() {
            return refuse("stock-conflict");
        }
        Ok(index)
    }

    fn ship(&mut self, key: &OrderKey, items: &[LineQuantity]) -> Outcome {
        if !self.orders.contains_key(key) {
            return refuse("unknown-order");
        }
        for item in items {
            let index = self.line_for_update(key, &item.line_id)?;
            let quantity = item.quantity.get();
            if quantity > self.lines[index].state.committed {
                return refuse("stock-conflict");
            }
            self.ship_units(Holder::Line(index), quantity);
            let state = &mut self.lines[index].state;
            state.committed -= quantity;
            state.shipped += quantity;
        }
        Ok("ok".into())
    }

    fn check_location(&self, location: Option<&Code>) -> Result<(), String> {
        match location {
            Some(l) if !self.locations.contains(l.as_str()) => refuse("unknown-location"),
            _ => Ok(()),
        }
    }

    fn restock_line(&mut self, index: usize, item: &LineQuantity) -> BTreeSet<String> {
        let quantity = item.quantity.get();
        let at = item.location.as_ref().map(Code::as_str);
        let touched = self.restock_units(Holder::Line(index), quantity, at);
        self.lines[index].state.restocked += quantity;
        touched
    }

    fn return_lines(&mut self, key: &OrderKey, items: &[LineQuantity]) -> Outcome {
        if !self.orders.contains_key(key) {
            return refuse("unknown-order");
        }
        let mut touched = BTreeSet::new();
        for item in items {
            let index = self.line_for_update(key, &item.line_id)?;
            let state = self.lines[index].state;
            if item.quantity.get() > state.shipped - state.returned {
                return refuse("stock-conflict");
            }
            self.check_location(item.location.as_ref())?;
            self.lines[index].state.returned += item.quantity.get();
            if item.restock {
                touched.extend(self.restock_line(index, item));
            }
        }
        self.fill(&touched);
        Ok("ok".into())
    }

    fn restock(&mut self, key: &OrderKey, items: &[LineQuantity]) -> Outcome {
        if !self.orders.contains_key(key) {
            return refuse("unknown-order");
        }
        let mut touched = BTreeSet::new();
        for item in items {
            let index = self.line_for_update(key, &item.line_id)?;
            let state = self.lines[index].state;
            if item.quantity.get() > state.returned - state.restocked {
                return refuse("stock-conflict");
            }
            self.check_location(item.location.as_ref())?;
            touched.extend(self.restock_line(index, item));
        }
        self.fill(&touched);
        Ok("ok".into())
    }

    /// Unmapped lines, oldest first.
    fn unmapped(&self) -> Vec<usize> {
        (0..self.lines.len())
            .filter(|&i| self.lines[i].sku.is_none())
            .collect()
    }

    fn resolve_unmapped(&mut self, line: Option<usize>, sku: &str) -> Outcome {
        let Some(index) = line else {
            return refuse("unknown-unmapped-line");
        };
        if !self.buffers.contains_key(sku) {
            return refuse("unknown-sku");
        }
        let (channel, channel_sku) = (
            self.lines[index].order.0.clone(),
            self.lines[index].channel_sku.clone(),
        );
        self.aliases
            .insert((channel.clone(), channel_sku.clone()), sku.to_owned());
        let mut touched = BTreeSet::new();
        for i in self.unmapped() {
            if self.lines[i].order.0 == channel && self.lines[i].channel_sku == channel_sku {
                self.lines[i].sku = Some(sku.to_owned());
                let wanted = self.lines[i].wanted;
                self.set_target(i, wanted, &mut touched);
            }
        }
        self.fill(&touched);
        Ok("resolved".into())
    }

    // --- catalog ---------------------------------------------------------------------------

    fn set_variant(&mut self, sku: &str, buffer: i64, kit: Option<&[(Sku, i64)]>) -> Outcome {
        if let Some(recipe) = kit {
            if recipe.is_empty() {
                return refuse("invalid-request");
            }
            let mut seen = BTreeSet::new();
            for (component, units) in recipe {
                let component = component.as_str();
                if component == sku || !seen.insert(component) || !(1..=1_000_000).contains(units) {
                    return refuse("invalid-request");
                }
                if !self.buffers.contains_key(component) {
                    return refuse("unknown-sku");
                }
                if self.is_kit(component) {
                    return refuse("invalid-request");
                }
            }
            let is_component = self
                .recipes
                .values()
                .any(|r| r.iter().any(|(c, _)| c == sku));
            let has_stock = self.locations.iter().any(|l| self.level(sku, l).0 > 0);
            if is_component || has_stock {
                return refuse("invalid-request");
            }
        }
        self.buffers.insert(sku.to_owned(), buffer);
        if let Some(recipe) = kit {
            let recipe: Vec<(&str, i64)> = recipe.iter().map(|(c, u)| (c.as_str(), *u)).collect();
            self.recipes.insert(sku.to_owned(), sorted_recipe(&recipe));
            self.fill(&BTreeSet::from([sku.to_owned()]));
        }
        Ok("ok".into())
    }

    /// New feeding locations for a channel: its short lines may now be fillable from them.
    fn set_feeding(&mut self, channel: &str, feeding: Option<&[&str]>) -> Outcome {
        let feeding = feeding.map(|f| f.iter().map(|l| (*l).to_owned()).collect());
        self.channels
            .get_mut(channel)
            .expect("a known channel")
            .feeding = feeding;
        let short: BTreeSet<String> = self
            .lines
            .iter()
            .filter(|l| l.order.0 == channel && l.state.short > 0)
            .filter_map(|l| l.sku.clone())
            .collect();
        self.fill(&short);
        Ok("ok".into())
    }

    // --- reservations ----------------------------------------------------------------------

    fn reserve(&mut self, input: &ReserveInput) -> Outcome {
        let channel = input.channel.as_str();
        let sku = input.sku.as_str();
        if !self.channels.contains_key(channel) {
            return refuse("unknown-channel");
        }
        if !self.buffers.contains_key(sku) {
            return refuse("unknown-sku");
        }
        if !(1..=7 * 24 * 3600 * 1000).contains(&input.expires_in_ms) {
            return refuse("invalid-request");
        }
        let feeding = self.feeding(channel);
        let mut available = self.availability(sku, channel).1;
        let locations = match &input.location {
            Some(location) => {
                let location = location.as_str();
                if !self.locations.contains(location) {
                    return refuse("unknown-location");
                }
                if !feeding.iter().any(|l| l == location) {
                    return refuse("invalid-request");
                }
                available = available.min(self.units_at(&self.recipe_of(sku), location));
                vec![location.to_owned()]
            }
            None => feeding,
        };
        let quantity = input.quantity.get();
        if quantity > available {
            return Err(format!("insufficient-stock (available {available})"));
        }
        self.reservations.push(ModelReservation {
            engine_id: 0,
            channel: channel.to_owned(),
            sku: sku.to_owned(),
            quantity,
            status: "active",
            expires_at_ms: self.now_ms + input.expires_in_ms,
            allocs: Vec::new(),
        });
        let index = self.reservations.len() - 1;
        let got = self.allocate(Holder::Reservation(index), sku, quantity, &locations);
        assert_eq!(got, quantity, "model bug: available units were not free");
        Ok(format!("reserved {quantity}"))
    }

    fn end_reservation(&mut self, index: usize, status: &'static str) {
        let quantity = self.reservations[index].quantity;
        let touched = self.release(Holder::Reservation(index), quantity);
        self.reservations[index].status = status;
        self.fill(&touched);
    }

    fn active_reservation(&self, index: Option<usize>) -> Result<usize, String> {
        let Some(index) = index else {
            return refuse("unknown-reservation");
        };
        if self.reservations[index].status != "active" {
            return refuse("reservation-not-active");
        }
        Ok(index)
    }

    fn release_reservation(&mut self, index: Option<usize>) -> Outcome {
        let index = self.active_reservation(index)?;
        self.end_reservation(index, "released");
        Ok("released".into())
    }

    fn confirm(&mut self, index: Option<usize>, external_id: Option<&str>) -> Outcome {
        let index = self.active_reservation(index)?;
        let r = self.reservations[index].clone();
        if self.now_ms >= r.expires_at_ms {
            return refuse("reservation-expired");
        }
        let external_id =
            external_id.map_or_else(|| format!("reservation-{}", r.engine_id), str::to_owned);
        let key = (r.channel.clone(), external_id);
        if self.orders.contains_key(&key) {
            return refuse("stock-conflict");
        }
        self.lines.push(ModelLine {
            order: key.clone(),
            line_id: "1".into(),
            channel_sku: r.sku.clone(),
            sku: Some(r.sku.clone()),
            wanted: r.quantity,
            state: LineState {
                committed: r.quantity,
                ..LineState::default()
            },
            allocs: std::mem::take(&mut self.reservations[index].allocs),
        });
        self.orders.insert(
            key.clone(),
            ModelOrder {
                version: None,
                status: OrderStatus::Open,
                lines: vec![self.lines.len() - 1],
            },
        );
        self.reservations[index].status = "confirmed";
        Ok(format!("confirmed {}/{}", key.0, key.1))
    }

    fn expire_due(&mut self, limit: i64) -> Outcome {
        let mut due: Vec<usize> = (0..self.reservations.len())
            .filter(|&i| {
                self.reservations[i].status == "active"
                    && self.reservations[i].expires_at_ms <= self.now_ms
            })
            .collect();
        due.sort_by_key(|&i| (self.reservations[i].expires_at_ms, i));
        due.truncate(usize::try_from(limit).unwrap_or(0));
        for &index in &due {
            self.end_reservation(index, "expired");
        }
        Ok(format!("expired {}", due.len()))
    }

    // --- the model's own invariants ---------------------------------------------------------

    /// No line is short while its channel's feeding locations hold whole free units for it,
    /// and every mapped line holds `max(wanted, shipped)` active units.
    fn check_invariants(&self) -> Result<(), String> {
        for line in &self.lines {
            let Some(sku) = &line.sku else {
                if line.state != LineState::default() {
                    return Err(format!("unmapped line holds units: {line:?}"));
                }
                continue;
            };
            if line.state.active() != line.wanted.max(line.state.shipped) {
                return Err(format!("line does not hold what is wanted: {line:?}"));
            }
            if line.state.short > 0 {
                let recipe = self.recipe_of(sku);
                for location in self.feeding(&line.order.0) {
                    if self.units_at(&recipe, &location) > 0 {
                        return Err(format!(
                            "line is short although {location} has free units: {line:?}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn sorted_recipe(recipe: &[(&str, i64)]) -> Recipe {
    let mut recipe: Recipe = recipe.iter().map(|(c, u)| ((*c).to_owned(), *u)).collect();
    recipe.sort();
    recipe
}

// ---------------------------------------------------------------------------------------------
// Comparable forms of what the engine shows and what the model holds.

/// `(location, committed, shipped, restocked, recipe sorted)`.
type AllocRow = (String, i64, i64, i64, Recipe);
/// `(line id, channel SKU, our SKU or unmapped, wanted, state, allocations)`.
type LineRow = (
    String,
    String,
    Option<String>,
    i64,
    LineState,
    Vec<AllocRow>,
);
type OrderRow = (Option<i64>, OrderStatus, Vec<LineRow>);
/// `(channel, sku, quantity, status, allocations)`.
type ReservationRow = (String, String, i64, String, Vec<AllocRow>);

fn engine_alloc(a: &AllocationView) -> AllocRow {
    let mut recipe = a.recipe.clone();
    recipe.sort();
    (
        a.location.clone(),
        a.committed,
        a.shipped,
        a.restocked,
        recipe,
    )
}

fn model_alloc(a: &Alloc) -> AllocRow {
    (
        a.location.clone(),
        a.committed,
        a.shipped,
        a.restocked,
        a.recipe.clone(),
    )
}

fn engine_order(view: &OrderView) -> OrderRow {
    let lines = view
        .lines
        .iter()
        .map(|l| {
            (
                l.line_id.clone(),
                l.channel_sku.clone(),
                l.sku.clone(),
                l.wanted,
                l.state,
                l.allocations.iter().map(engine_alloc).collect(),
            )
        })
        .collect();
    (view.version, view.status, lines)
}

fn model_order(model: &Model, key: &OrderKey) -> Option<OrderRow> {
    let order = model.orders.get(key)?;
    let lines = order
        .lines
        .iter()
        .map(|&i| {
            let l = &model.lines[i];
            (
                l.line_id.clone(),
                l.channel_sku.clone(),
                l.sku.clone(),
                l.wanted,
                l.state,
                l.allocs.iter().map(model_alloc).collect(),
            )
        })
        .collect();
    Some((order.version, order.status, lines))
}

fn refusal(e: &StoreError) -> String {
    match e {
        StoreError::Batch(items) => format!(
            "invalid-batch {:?}",
            items.iter().map(|i| (i.index, i.kind)).collect::<Vec<_>>()
        ),
        StoreError::InsufficientStock { available, .. } => {
            format!("insufficient-stock (available {available})")
        }
        StoreError::Database { .. } | StoreError::Unavailable => format!("internal: {e}"),
        other => other.kind().to_owned(),
    }
}

fn movement_results(results: &[MovementResult]) -> String {
    results
        .iter()
        .map(|r| format!("{}:{}:{:?}", r.index, r.status, r.levels))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything the engine shows after a step, read in one transaction.
struct EngineState {
    views: Vec<StockView>,
    orders: Vec<(OrderKey, Option<OrderView>)>,
    unmapped: Vec<UnmappedLine>,
    reservations: Vec<Reservation>,
    report: Option<VerifyReport>,
}

// ---------------------------------------------------------------------------------------------
// The harness: one store, one model, the same operations on both.

struct Harness {
    store: Store,
    clock: ManualClock,
    model: Model,
    /// The engine's unmapped queue as of the last step (resolving picks an entry of it).
    unmapped: Vec<UnmappedLine>,
    last_batch: Vec<MovementItem>,
    _db: TestDatabase,
}

impl Harness {
    /// `None` when the PostgreSQL half does not run here.
    fn new(backend: TestBackend) -> Result<Option<Self>, TestCaseError> {
        let Some(db) = test_database(backend, "differential") else {
            return Ok(None);
        };
        let clock = ManualClock::new(CLOCK_START_MS);
        let store = stockhub_store::open(
            &db.url,
            Arc::new(clock.clone()),
            &StoreOptions {
                readers: 1,
                writers: 3,
                ..StoreOptions::default()
            },
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        store
            .write_blocking(|sql| {
                add_locations(sql, &LOCATIONS)?;
                for (s, buffer) in INITIAL_BUFFERS {
                    let kit = (s == KIT).then_some(RECIPES[0]);
                    catalog::upsert_variant(sql, &ctx(), &variant_input(s, buffer, kit))?;
                }
                for (c, rules, feeding) in channel_setup() {
                    catalog::upsert_channel(
                        sql,
                        &ChannelInput {
                            code: code(c),
                            kind: "manual".into(),
                            rules,
                            feeding_locations: feeding.map(|f| f.into_iter().map(code).collect()),
                        },
                    )?;
                }
                Ok(())
            })
            .map_err(|e| TestCaseError::fail(format!("setup: {e}")))?;
        let mut harness = Self {
            store,
            clock,
            model: Model::new(),
            unmapped: Vec::new(),
            last_batch: Vec::new(),
            _db: db,
        };
        let receipts = INITIAL_STOCK
            .iter()
            .map(|(s, l, q)| MovementItem {
                movement: Movement::Receive {
                    sku: sku(s),
                    location: code(l),
                    quantity: quantity(*q),
                },
                note: None,
                idempotency: None,
            })
            .collect();
        let (engine, model) = harness.movements(receipts);
        prop_assert_eq!(&engine, &model, "initial receipts");
        prop_assert!(engine.is_ok(), "initial receipts refused: {:?}", engine);
        harness.check("setup", true)?;
        Ok(Some(harness))
    }

    fn write<T, F>(&self, f: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn stockhub_store::Sql) -> stockhub_store::Result<T> + Send + 'static,
    {
        self.store.write_blocking(f).map_err(|e| refusal(&e))
    }

    fn movements(&mut self, items: Vec<MovementItem>) -> (Outcome, Outcome) {
        self.last_batch = items.clone();
        let model = self.model.apply_batch(&items);
        let engine = self
            .write(move |sql| movements::apply_batch(sql, &ctx(), &items))
            .map(|r| movement_results(&r));
        (engine, model)
    }

    fn movement_item(&self, spec: &MoveSpec) -> MovementItem {
        let movement = match &spec.movement {
            Move::Receive {
                sku: s,
                location,
                quantity: q,
            } => Movement::Receive {
                sku: sku(sku_name(*s)),
                location: code(location_name(*location)),
                quantity: quantity(*q),
            },
            Move::Adjust {
                sku: s,
                location,
                delta,
            } => Movement::Adjust {
                sku: sku(sku_name(*s)),
                location: code(location_name(*location)),
                delta: *delta,
            },
            Move::Count {
                sku: s,
                location,
                counted,
                at,
            } => Movement::Count {
                sku: sku(sku_name(*s)),
                location: code(location_name(*location)),
                on_hand: *counted,
                counted_at_ms: match at {
                    CountAt::Now => None,
                    CountAt::MsAgo(ms) => Some(self.model.now_ms - ms),
                    CountAt::Future => Some(self.model.now_ms + 1),
                },
            },
            Move::Transfer {
                sku: s,
                from,
                to,
                quantity: q,
            } => Movement::Transfer {
                sku: sku(sku_name(*s)),
                from: code(location_name(*from)),
                to: code(location_name(*to)),
                quantity: quantity(*q),
            },
        };
        // The same key names the same request: its hash is the movement itself.
        let idempotency = spec
            .key
            .map(|k| (format!("key-{k}"), format!("{movement:?}")));
        MovementItem {
            movement,
            note: None,
            idempotency,
        }
    }

    /// Whether a line has room for what an operation does to it (`room` units).
    fn has_room(&self, index: usize, room: Room) -> bool {
        let line = &self.model.lines[index];
        line.sku.is_some() && room(&line.state) > 0
    }

    /// An order (by pick), preferring those with a line that has room; or one that does not
    /// exist.
    fn order_key(&self, pick: usize, room: Room) -> OrderKey {
        let all: Vec<&OrderKey> = self.model.orders.keys().collect();
        let roomy: Vec<&OrderKey> = self
            .model
            .orders
            .iter()
            .filter(|(_, o)| o.lines.iter().any(|&i| self.has_room(i, room)))
            .map(|(k, _)| k)
            .collect();
        let keys = if roomy.is_empty() { all } else { roomy };
        if pick == MISSING || keys.is_empty() {
            return ("web".into(), "no-such-order".into());
        }
        keys[pick % keys.len()].clone()
    }

    /// A line of the order (by pick, preferring lines with room), with its state; or a line id
    /// the order does not have.
    fn line(&self, key: &OrderKey, pick: usize, room: Room) -> (String, LineState) {
        let Some(order) = self.model.orders.get(key) else {
            return ("no-such-line".into(), LineState::default());
        };
        let roomy: Vec<usize> = order
            .lines
            .iter()
            .copied()
            .filter(|&i| self.has_room(i, room))
            .collect();
        let lines = if roomy.is_empty() {
            order.lines.clone()
        } else {
            roomy
        };
        if pick == MISSING || lines.is_empty() {
            return ("no-such-line".into(), LineState::default());
        }
        let line = &self.model.lines[lines[pick % lines.len()]];
        (line.line_id.clone(), line.state)
    }

    /// A reservation (by pick, among the active ones for three picks in four), or one that does
    /// not exist.
    fn reservation(&self, pick: usize) -> (Option<usize>, i64) {
        let all: Vec<usize> = (0..self.model.reservations.len()).collect();
        let active: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| self.model.reservations[i].status == "active")
            .collect();
        let candidates = if active.is_empty() || pick >= 48 {
            all
        } else {
            active
        };
        if pick == MISSING || candidates.is_empty() {
            return (None, 999_999);
        }
        let index = candidates[pick % candidates.len()];
        (Some(index), self.model.reservations[index].engine_id)
    }

    /// Moves the clock to a reservation's expiry, or 1 ms before it (never back).
    fn advance_to_expiry(&mut self, index: Option<usize>, early: bool) {
        let Some(index) = index else {
            return;
        };
        let at = self.model.reservations[index].expires_at_ms - i64::from(early);
        let ms = (at - self.model.now_ms).max(0);
        self.clock.advance_ms(ms);
        self.model.now_ms += ms;
    }

    fn line_quantities(
        &self,
        key: &OrderKey,
        specs: &[ReturnSpec],
        room: Room,
    ) -> Vec<LineQuantity> {
        specs
            .iter()
            .map(|spec| {
                let (line_id, state) = self.line(key, spec.line, room);
                LineQuantity {
                    line_id,
                    quantity: quantity(amount(spec.quantity, room(&state))),
                    restock: spec.restock,
                    location: spec.location.map(|l| code(location_name(l))),
                }
            })
            .collect()
    }

    /// Runs one operation on both sides; returns what each said.
    fn run(&mut self, op: &Op) -> (Outcome, Outcome) {
        match op {
            Op::Movements(specs) => {
                let items = specs.iter().map(|s| self.movement_item(s)).collect();
                self.movements(items)
            }
            Op::RepeatMovements => {
                let items = self.last_batch.clone();
                self.movements(items)
            }
            Op::Snapshot(spec) => {
                let snap = self.snapshot(spec);
                let model = self.model.transact(|m| m.apply_snapshot(&snap));
                let engine = self
                    .write(move |sql| orders::apply_snapshot(sql, &ctx(), &snap))
                    .map(|o| o.outcome.to_owned());
                (engine, model)
            }
            Op::Cancel { order } => {
                let key = self.order_key(*order, |_| 1);
                let model = self.model.transact(|m| m.cancel(&key));
                let engine = self
                    .write(move |sql| orders::cancel(sql, &ctx(), &key.0, &key.1))
                    .map(|_| "ok".to_owned());
                (engine, model)
            }
            Op::Ship { order, lines } => {
                let key = self.order_key(*order, |s| s.committed);
                let items: Vec<LineQuantity> = lines
                    .iter()
                    .map(|(pick, q)| {
                        let (line_id, state) = self.line(&key, *pick, |s| s.committed);
                        LineQuantity {
                            line_id,
                            quantity: quantity(amount(*q, state.committed)),
                            restock: false,
                            location: None,
                        }
                    })
                    .collect();
                let model = self.model.transact(|m| m.ship(&key, &items));
                let engine = self
                    .write(move |sql| orders::ship(sql, &ctx(), &key.0, &key.1, &items))
                    .map(|_| "ok".to_owned());
                (engine, model)
            }
            Op::Return { order, lines } => {
                let key = self.order_key(*order, |s| s.shipped - s.returned);
                let items = self.line_quantities(&key, lines, |s| s.shipped - s.returned);
                let model = self.model.transact(|m| m.return_lines(&key, &items));
                let engine = self
                    .write(move |sql| orders::return_lines(sql, &ctx(), &key.0, &key.1, &items))
                    .map(|_| "ok".to_owned());
                (engine, model)
            }
            Op::Restock { order, lines } => {
                let key = self.order_key(*order, |s| s.returned - s.restocked);
                let items = self.line_quantities(&key, lines, |s| s.returned - s.restocked);
                let model = self.model.transact(|m| m.restock(&key, &items));
                let engine = self
                    .write(move |sql| orders::restock(sql, &ctx(), &key.0, &key.1, &items))
                    .map(|_| "ok".to_owned());
                (engine, model)
            }
            Op::SetRecipe(i) => {
                let input = variant_input(KIT, self.model.buffers[KIT], Some(RECIPES[*i]));
                self.set_variant(input)
            }
            Op::SetFeeding { channel, feeding } => {
                let (channel, feeding) = (channel_name(*channel), FEEDINGS[*feeding]);
                let model = self.model.transact(|m| m.set_feeding(channel, feeding));
                let rules = self.model.channels[channel].rules.clone();
                let input = ChannelInput {
                    code: code(channel),
                    kind: "manual".into(),
                    rules,
                    feeding_locations: feeding.map(|f| f.iter().copied().map(code).collect()),
                };
                let engine = self
                    .write(move |sql| catalog::put_channel(sql, &ctx(), &input))
                    .map(|_| "ok".to_owned());
                (engine, model)
            }
            Op::SetBuffer { sku: s, buffer } => {
                let name = sku_name(*s);
                let recipe: Option<Vec<(&str, i64)>> = self
                    .model
                    .recipes
                    .get(name)
                    .map(|r| r.iter().map(|(c, u)| (c.as_str(), *u)).collect());
                let input = variant_input(name, *buffer, recipe.as_deref());
                self.set_variant(input)
            }
            Op::Reserve {
                channel,
                sku: s,
                quantity: q,
                location,
                expires_in_ms,
            } => {
                let input = ReserveInput {
                    channel: code(channel_name(*channel)),
                    sku: sku(sku_name(*s)),
                    quantity: quantity(*q),
                    location: location.map(|l| code(location_name(l))),
                    expires_in_ms: *expires_in_ms,
                };
                let model = self.model.transact(|m| m.reserve(&input));
                let engine = self.write(move |sql| reservations::reserve(sql, &ctx(), &input));
                if let (Ok(r), Ok(_)) = (&engine, &model) {
                    if let Some(last) = self.model.reservations.last_mut() {
                        last.engine_id = r.id;
                    }
                }
                (engine.map(|r| format!("reserved {}", r.quantity)), model)
            }
            Op::Release(pick) => {
                let (index, id) = self.reservation(*pick);
                let model = self.model.transact(|m| m.release_reservation(index));
                let engine = self
                    .write(move |sql| reservations::release(sql, &ctx(), id))
                    .map(|r| r.status);
                (engine, model)
            }
            Op::Confirm {
                reservation,
                order,
                at_expiry,
            } => {
                let (index, id) = self.reservation(*reservation);
                if let Some(early) = at_expiry {
                    self.advance_to_expiry(index, *early);
                }
                let external_id = order.map(|o| ORDER_IDS[o]);
                let model = self.model.transact(|m| m.confirm(index, external_id));
                let engine = self
                    .write(move |sql| reservations::confirm(sql, &ctx(), id, external_id))
                    .map(|o| format!("confirmed {}/{}", o.channel, o.external_id));
                (engine, model)
            }
            Op::AdvanceClock(ms) => {
                self.clock.advance_ms(*ms);
                self.model.now_ms += ms;
                (Ok("advanced".into()), Ok("advanced".into()))
            }
            Op::ExpireDue { limit, at_expiry } => {
                if let Some((pick, early)) = at_expiry {
                    let (index, _) = self.reservation(*pick);
                    self.advance_to_expiry(index, *early);
                }
                let limit = *limit;
                let model = self.model.transact(|m| m.expire_due(limit));
                let engine = self
                    .write(move |sql| reservations::expire_due(sql, &ctx(), limit))
                    .map(|n| format!("expired {n}"));
                (engine, model)
            }
            Op::Resolve { line, sku: s } => {
                let model_queue = self.model.unmapped();
                let (model_line, engine_id) = if *line == MISSING || model_queue.is_empty() {
                    (None, -1)
                } else {
                    let k = line % model_queue.len();
                    (Some(model_queue[k]), self.unmapped[k].id)
                };
                let name = sku_name(*s);
                let model = self
                    .model
                    .transact(|m| m.resolve_unmapped(model_line, name));
                let engine = self
                    .write(move |sql| orders::resolve_unmapped(sql, &ctx(), engine_id, name))
                    .map(|_| "resolved".to_owned());
                (engine, model)
            }
        }
    }

    fn snapshot(&self, spec: &SnapshotSpec) -> OrderSnapshot {
        let keys: Vec<&OrderKey> = self.model.orders.keys().collect();
        let (channel, external_id) = match spec.existing {
            Some(pick) if !keys.is_empty() => keys[pick % keys.len()].clone(),
            _ => (
                channel_name(spec.channel).to_owned(),
                ORDER_IDS[spec.order].to_owned(),
            ),
        };
        let existing = self
            .model
            .orders
            .get(&(channel.clone(), external_id.clone()));
        let version = match spec.version {
            Version::Next => Some(existing.and_then(|o| o.version).map_or(1, |v| v + 1)),
            Version::Exactly(v) => Some(v),
            Version::Unversioned => None,
        };
        let mut lines: Vec<SnapshotLine> = Vec::new();
        for spec in &spec.lines {
            let line_id = format!("L{}", spec.slot);
            if lines.iter().any(|l| l.line_id == line_id) {
                continue;
            }
            // A channel never changes the SKU of a line it sent before.
            let known = existing.and_then(|o| {
                o.lines
                    .iter()
                    .map(|&i| &self.model.lines[i])
                    .find(|l| l.line_id == line_id)
                    .map(|l| l.channel_sku.clone())
            });
            lines.push(SnapshotLine {
                line_id,
                channel_sku: known.unwrap_or_else(|| CHANNEL_SKUS[spec.channel_sku].to_owned()),
                quantity: spec.quantity,
                fulfilment: None,
            });
        }
        // An amended order repeats the lines it does not change, as channels do.
        if let (true, Some(order)) = (spec.amend, existing) {
            for line in order.lines.iter().map(|&i| &self.model.lines[i]) {
                if !lines.iter().any(|l| l.line_id == line.line_id) {
                    lines.push(SnapshotLine {
                        line_id: line.line_id.clone(),
                        channel_sku: line.channel_sku.clone(),
                        quantity: line.wanted,
                        fulfilment: None,
                    });
                }
            }
        }
        if spec.duplicate_line {
            if let Some(first) = lines.first().cloned() {
                lines.push(first);
            }
        }
        OrderSnapshot {
            channel: code(&channel),
            external_id,
            version,
            status: if spec.cancelled {
                OrderStatus::Cancelled
            } else {
                OrderStatus::Open
            },
            lines,
            raw: "{}".into(),
        }
    }

    /// An operator's change of a variant (a kit's new recipe may fill its shortfalls).
    fn set_variant(&mut self, input: VariantInput) -> (Outcome, Outcome) {
        let model = self
            .model
            .transact(|m| m.set_variant(input.sku.as_str(), input.buffer, input.kit.as_deref()));
        let engine = self
            .write(move |sql| catalog::put_variant(sql, &ctx(), &input))
            .map(|_| "ok".to_owned());
        (engine, model)
    }

    fn read_engine(&self, with_verify: bool) -> Result<EngineState, TestCaseError> {
        let mut keys: BTreeSet<OrderKey> = self.model.orders.keys().cloned().collect();
        for c in CHANNELS {
            for o in ORDER_IDS {
                keys.insert((c.to_owned(), o.to_owned()));
            }
        }
        let ids: Vec<i64> = self
            .model
            .reservations
            .iter()
            .map(|r| r.engine_id)
            .collect();
        self.store
            .read_blocking(move |sql| {
                let mut views = Vec::new();
                for s in SKUS {
                    views.push(stock::stock_view(sql, s)?);
                }
                let mut found = Vec::new();
                for key in &keys {
                    let view = match orders::get_order(sql, &key.0, &key.1) {
                        Ok(view) => Some(view),
                        Err(e) if e.kind() == "unknown-order" => None,
                        Err(e) => return Err(e),
                    };
                    found.push((key.clone(), view));
                }
                let unmapped = orders::unmapped(sql, None, 1000)?;
                let mut held = Vec::new();
                for &id in &ids {
                    held.push(reservations::get(sql, id)?);
                }
                let report = if with_verify {
                    Some(verify::verify(sql)?)
                } else {
                    None
                };
                Ok(EngineState {
                    views,
                    orders: found,
                    unmapped,
                    reservations: held,
                    report,
                })
            })
            .map_err(|e| TestCaseError::fail(format!("reading the engine's state: {e}")))
    }

    /// Compares everything the engine shows with the model.
    fn check(&mut self, when: &str, with_verify: bool) -> Result<(), TestCaseError> {
        let engine = self.read_engine(with_verify)?;
        let model = &self.model;
        for view in &engine.views {
            prop_assert_eq!(view.is_kit, model.is_kit(&view.sku), "{}: kit flag", when);
            for l in &view.levels {
                prop_assert!(
                    l.on_hand >= 0 && l.committed >= 0 && l.committed <= l.on_hand,
                    "{}: impossible level {:?}",
                    when,
                    l
                );
                prop_assert!(
                    LOCATIONS.contains(&l.location.as_str()),
                    "{}: level at unknown location {:?}",
                    when,
                    l
                );
            }
            for location in LOCATIONS {
                let stored = view
                    .levels
                    .iter()
                    .find(|l| l.location == location)
                    .map_or((0, 0), |l| (l.on_hand, l.committed));
                prop_assert_eq!(
                    stored,
                    model.level(&view.sku, location),
                    "{}: (on_hand, committed) of {} at {}",
                    when,
                    view.sku,
                    location
                );
            }
            let shown: Vec<(String, i64, i64)> = view
                .channels
                .iter()
                .map(|c| (c.channel.clone(), c.pool, c.available))
                .collect();
            let expected: Vec<(String, i64, i64)> = CHANNELS
                .iter()
                .map(|c| {
                    let (pool, available) = model.availability(&view.sku, c);
                    ((*c).to_owned(), pool, available)
                })
                .collect();
            prop_assert_eq!(
                shown,
                expected,
                "{}: (channel, pool, available) of {}",
                when,
                view.sku
            );
        }
        for (key, view) in &engine.orders {
            if let Some(view) = view {
                for line in &view.lines {
                    prop_assert!(
                        line.state.is_consistent() && line.ordered == line.state.ordered(),
                        "{}: inconsistent line {:?}",
                        when,
                        line
                    );
                }
            }
            prop_assert_eq!(
                view.as_ref().map(engine_order),
                model_order(model, key),
                "{}: order {:?} (version, status, lines)",
                when,
                key
            );
        }
        let queue: Vec<(String, String, String, String, i64)> = engine
            .unmapped
            .iter()
            .map(|u| {
                (
                    u.channel.clone(),
                    u.external_id.clone(),
                    u.line_id.clone(),
                    u.channel_sku.clone(),
                    u.wanted,
                )
            })
            .collect();
        let expected: Vec<(String, String, String, String, i64)> = model
            .unmapped()
            .into_iter()
            .map(|i| {
                let l = &model.lines[i];
                (
                    l.order.0.clone(),
                    l.order.1.clone(),
                    l.line_id.clone(),
                    l.channel_sku.clone(),
                    l.wanted,
                )
            })
            .collect();
        prop_assert_eq!(queue, expected, "{}: unmapped queue", when);
        let held: Vec<ReservationRow> = engine
            .reservations
            .iter()
            .map(|r| {
                (
                    r.channel.clone(),
                    r.sku.clone(),
                    r.quantity,
                    r.status.clone(),
                    r.allocations.iter().map(engine_alloc).collect(),
                )
            })
            .collect();
        let expected: Vec<ReservationRow> = model
            .reservations
            .iter()
            .map(|r| {
                (
                    r.channel.clone(),
                    r.sku.clone(),
                    r.quantity,
                    r.status.to_owned(),
                    r.allocs.iter().map(model_alloc).collect(),
                )
            })
            .collect();
        prop_assert_eq!(held, expected, "{}: reservations", when);
        if let Some(report) = &engine.report {
            prop_assert!(
                report.differences.is_empty(),
                "{}: verify found differences: {:#?}",
                when,
                report.differences
            );
        }
        if let Err(e) = model.check_invariants() {
            return Err(TestCaseError::fail(format!("{when}: model invariant: {e}")));
        }
        self.unmapped = engine.unmapped;
        Ok(())
    }
}

/// Units to ask for when the line has `room` for them: all of it (0), one (1), half (2), or one
/// too many (3, refused). Never 0: quantities are positive.
fn amount(spec: u8, room: i64) -> i64 {
    match spec {
        0 => room.max(1),
        1 => 1,
        2 => (room / 2).max(1),
        _ => room + 1,
    }
}

fn run_case(backend: TestBackend, ops: &[Op]) -> Result<(), TestCaseError> {
    let Some(mut harness) = Harness::new(backend)? else {
        return Ok(());
    };
    for (step, op) in ops.iter().enumerate() {
        harness.clock.advance_ms(1);
        harness.model.now_ms += 1;
        let (engine, model) = harness.run(op);
        prop_assert_eq!(
            &engine,
            &model,
            "step {}: {:?}: engine (left) and model (right) disagree",
            step,
            op
        );
        let with_verify = (step + 1) % 10 == 0 || step + 1 == ops.len();
        harness.check(&format!("after step {step} ({op:?})"), with_verify)?;
    }
    Ok(())
}

/// A case: a few order deliveries first (so that later steps find orders to act on), then
/// anything; at most 40 steps.
fn case() -> impl Strategy<Value = Vec<Op>> {
    (
        proptest::collection::vec(snapshot_op(), 2..=5),
        proptest::collection::vec(op(), 1..=35),
    )
        .prop_map(|(mut first, then)| {
            first.extend(then);
            first
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        // A failure prints its minimal sequence; no regression file is written beside the test.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_agrees_with_the_reference_model_on_sqlite(ops in case()) {
        run_case(TestBackend::Sqlite, &ops)?;
    }

    #[test]
    fn engine_agrees_with_the_reference_model_on_postgres(ops in case()) {
        run_case(TestBackend::Postgres, &ops)?;
    }
}
