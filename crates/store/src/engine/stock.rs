//! Where units are committed: allocations of order lines and reservations to locations, their
//! release, shipment and restock, the filling of open shortfalls, and availability per channel.

use std::collections::{BTreeMap, BTreeSet};

use stockhub_core::{ats, availability::free, kit_units_at, EntryKind, LineState};

use super::catalog;
use super::ledger::{level, record, LineDelta, NewEntry};
use crate::args;
use crate::error::Result;
use crate::model::{AllocationView, Channel, ChannelAvailability, Ctx, Level, StockView};
use crate::sql::{in_list, look_up_all, Sql, Value};

/// What holds committed units: an order line or a reservation.
#[derive(Debug, Clone)]
pub enum Holder {
    Line {
        row_id: i64,
        order_id: i64,
        line_id: String,
        channel: String,
    },
    Reservation {
        id: i64,
        channel: String,
    },
}

impl Holder {
    fn kind(&self) -> &'static str {
        match self {
            Self::Line { .. } => "line",
            Self::Reservation { .. } => "reservation",
        }
    }

    pub(crate) fn id(&self) -> String {
        match self {
            Self::Line { row_id, .. } => row_id.to_string(),
            Self::Reservation { id, .. } => id.to_string(),
        }
    }

    fn channel(&self) -> &str {
        match self {
            Self::Line { channel, .. } | Self::Reservation { channel, .. } => channel,
        }
    }

    /// An entry about this holder, with the holder's identifiers filled in.
    pub(crate) fn entry<'a>(
        &'a self,
        kind: EntryKind,
        sku: &'a str,
        location: Option<&'a str>,
    ) -> NewEntry<'a> {
        let mut e = NewEntry::new(kind, sku, location);
        e.channel = Some(self.channel());
        match self {
            Self::Line {
                order_id, line_id, ..
            } => {
                e.order_id = Some(*order_id);
                e.line_id = Some(line_id);
            }
            Self::Reservation { id, .. } => e.reservation_id = Some(*id),
        }
        e
    }
}

/// `[(component, units per unit)]`: what one unit of a SKU takes from a location.
pub type Recipe = Vec<(String, i64)>;

/// The recipe a SKU commits with today: its kit components, or itself once.
pub fn current_recipe(sql: &mut dyn Sql, sku: &str, is_kit: bool) -> Result<Recipe> {
    if is_kit {
        catalog::recipe(sql, sku)
    } else {
        Ok(vec![(sku.to_owned(), 1)])
    }
}

/// Where other transactions write at the same time, locks every stock level a unit of work may
/// read to decide a change of `skus`, in (SKU, location) order, before it reads any: the levels
/// of the SKUs, of their components when they are kits, and of the other components of every kit
/// they are part of (units freed of one component fill kit shortfalls that need the others).
/// Concurrent units that touch the same SKUs then wait for each other in one order instead of
/// deadlocking, and what they read is current. Nothing to do with a single writer.
pub fn lock_levels<'a>(sql: &mut dyn Sql, skus: impl IntoIterator<Item = &'a str>) -> Result<()> {
    if !sql.has_concurrent_writers() {
        return Ok(());
    }
    let all: BTreeSet<&str> = skus.into_iter().collect();
    if all.is_empty() {
        return Ok(());
    }
    let (list, skus) = in_list(all.into_iter().map(Value::from).collect());
    // One statement, sent with the unit's next one (this runs only where other writers run, on
    // PostgreSQL, and its SQL is PostgreSQL's). First the SKUs to lock: the given ones, the
    // components of those that are kits, and the other components of every kit they are part
    // of; each `= ANY` of an array is an index look-up whatever the table statistics say. Then
    // three steps in this order (each waits for the one before through its one-time filter).
    // The variants first: a level that does not exist yet cannot be locked, and two units that
    // would both create it (and both fill the SKU's shortfalls) must still take turns. Then the
    // levels. Then their pending pushes, and those of the kits made of them (a change marks
    // those too, `pushes::mark_skus`): a push that completes meanwhile (and records when the
    // channel confirmed a quantity) is ordered wholly before or after this unit, so that the
    // times this unit writes to the ledger compare truly with that confirmation (the `u` rule of
    // the push engine counts a channel's orders recorded after it). Every order is by byte
    // ("C" collation, whatever the database's): the order `pushes::complete`'s caller sorts
    // its marks in, and the same on every server.
    sql.execute_later(
        &format!(
            "WITH s AS (SELECT ARRAY(
                      SELECT unnest(ARRAY[{list}]::text[])
                      UNION
                      SELECT component_sku FROM kit_components
                      WHERE kit_sku = ANY(ARRAY[{list}]::text[])
                      UNION
                      SELECT k2.component_sku FROM kit_components k1
                        JOIN kit_components k2 ON k2.kit_sku = k1.kit_sku
                      WHERE k1.component_sku = ANY(ARRAY[{list}]::text[])) AS skus),
                  k AS (SELECT ARRAY(
                      SELECT unnest((SELECT skus FROM s))
                      UNION
                      SELECT kit_sku FROM kit_components
                      WHERE component_sku = ANY((SELECT skus FROM s)::text[])) AS skus),
                  v AS (SELECT 1 FROM variants WHERE sku = ANY((SELECT skus FROM s)::text[])
                          ORDER BY sku COLLATE \"C\" FOR UPDATE),
                  l AS (SELECT 1 FROM stock_levels WHERE sku = ANY((SELECT skus FROM s)::text[])
                          AND (SELECT count(*) FROM v) >= 0
                          ORDER BY sku COLLATE \"C\", location COLLATE \"C\" FOR UPDATE),
                  p AS (SELECT 1 FROM push_marks WHERE sku = ANY((SELECT skus FROM k)::text[])
                          AND (SELECT count(*) FROM l) >= 0
                          ORDER BY channel COLLATE \"C\", sku COLLATE \"C\" FOR UPDATE)
             SELECT count(*) FROM p"
        ),
        &skus,
    )?;
    Ok(())
}

/// Whole units of a recipe that are free at a location.
pub fn free_units_at(sql: &mut dyn Sql, recipe: &Recipe, location: &str) -> Result<i64> {
    let mut parts = Vec::with_capacity(recipe.len());
    for (component, per_unit) in recipe {
        let (on_hand, committed) = level(sql, component, location)?;
        parts.push((free(on_hand, committed), *per_unit));
    }
    Ok(kit_units_at(parts))
}

/// Commits up to `quantity` units of `sku` for `holder` from `locations` in order, taking what is
/// free at each; a kit's units are whole kits from one location each. Returns what was committed.
/// `line_delta` says how each committed chunk changes the holder's line, if it is one.
#[allow(clippy::too_many_arguments)]
pub fn allocate(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    holder: &Holder,
    sku: &str,
    is_kit: bool,
    quantity: i64,
    locations: &[String],
    kind: EntryKind,
    line_delta: &dyn Fn(i64) -> Option<LineDelta>,
) -> Result<i64> {
    let recipe = current_recipe(sql, sku, is_kit)?;
    let recipe_json = serde_json::to_string(&recipe).unwrap_or_default();
    let mut remaining = quantity;
    for location in locations {
        if remaining == 0 {
            break;
        }
        let take = free_units_at(sql, &recipe, location)?.min(remaining);
        if take == 0 {
            continue;
        }
        let allocation_id = add_to_allocation(sql, holder, location, &recipe_json, take)?;
        for (component, per_unit) in &recipe {
            let mut e = holder.entry(kind, component, Some(location));
            e.delta_committed = take * per_unit;
            e.allocation_id = Some(allocation_id);
            if !is_kit {
                e.line_delta = line_delta(take);
            }
            record(sql, ctx, &e)?;
        }
        if is_kit {
            record_kit_entry(
                sql,
                ctx,
                holder,
                kind,
                sku,
                location,
                allocation_id,
                line_delta(take),
                take,
            )?;
        }
        remaining -= take;
    }
    Ok(quantity - remaining)
}

/// A kit's own entry: it moves no stock (its components' entries do) but carries the change of
/// the kit line, so that the line can be rebuilt from the ledger.
#[allow(clippy::too_many_arguments)]
fn record_kit_entry(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    holder: &Holder,
    kind: EntryKind,
    kit_sku: &str,
    location: &str,
    allocation_id: i64,
    line_delta: Option<LineDelta>,
    kits: i64,
) -> Result<()> {
    let mut e = holder.entry(kind, kit_sku, Some(location));
    e.allocation_id = Some(allocation_id);
    e.line_delta = line_delta;
    e.detail = Some(serde_json::json!({ "kits": kits }));
    record(sql, ctx, &e)?;
    Ok(())
}

fn add_to_allocation(
    sql: &mut dyn Sql,
    holder: &Holder,
    location: &str,
    recipe_json: &str,
    units: i64,
) -> Result<i64> {
    // Units join the holder's open (nothing shipped yet) allocation at that location and recipe.
    let row = sql.query_opt(
        "INSERT INTO allocations (holder_kind, holder_id, location, recipe, committed)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (holder_kind, holder_id, location, recipe) WHERE shipped = 0
         DO UPDATE SET committed = allocations.committed + excluded.committed
         RETURNING id",
        args![holder.kind(), holder.id(), location, recipe_json, units],
    )?;
    Ok(row.map_or(0, |r| r.int(0)))
}

struct AllocationRow {
    id: i64,
    location: String,
    recipe: Recipe,
    committed: i64,
    shipped: i64,
    restocked: i64,
}

/// The columns `AllocationRow::from_row` reads, first in a select.
const ALLOCATION_COLUMNS: &str = "id, location, recipe, committed, shipped, restocked";

impl AllocationRow {
    fn from_row(r: &crate::sql::Row) -> Self {
        Self {
            id: r.int(0),
            location: r.text(1),
            recipe: serde_json::from_str(&r.text(2)).unwrap_or_default(),
            committed: r.int(3),
            shipped: r.int(4),
            restocked: r.int(5),
        }
    }

    fn view(self) -> AllocationView {
        AllocationView {
            location: self.location,
            committed: self.committed,
            shipped: self.shipped,
            restocked: self.restocked,
            recipe: self.recipe,
        }
    }
}

fn allocations_of(
    sql: &mut dyn Sql,
    holder: &Holder,
    newest_first: bool,
) -> Result<Vec<AllocationRow>> {
    let order = if newest_first { "DESC" } else { "ASC" };
    Ok(sql
        .query(
            &format!(
                "SELECT {ALLOCATION_COLUMNS} FROM allocations
                 WHERE holder_kind = ?1 AND holder_id = ?2 ORDER BY id {order}"
            ),
            args![holder.kind(), holder.id()],
        )?
        .iter()
        .map(AllocationRow::from_row)
        .collect())
}

/// The allocations of order lines, by line row id, oldest first: one statement for up to
/// [`LOOKUPS_PER_STATEMENT`] lines, each line read by its holder key alone.
pub fn allocations_of_lines(
    sql: &mut dyn Sql,
    line_row_ids: &[i64],
) -> Result<BTreeMap<i64, Vec<AllocationView>>> {
    let mut out: BTreeMap<i64, Vec<AllocationView>> = BTreeMap::new();
    let select = format!(
        "SELECT {ALLOCATION_COLUMNS}, holder_id
         FROM allocations WHERE holder_kind = 'line' AND holder_id = ?"
    );
    let ids: Vec<Value> = line_row_ids
        .iter()
        .map(|id| Value::from(id.to_string()))
        .collect();
    for r in look_up_all(sql, &select, " ORDER BY id", &ids)? {
        out.entry(r.int(6))
            .or_default()
            .push(AllocationRow::from_row(&r).view());
    }
    Ok(out)
}

pub fn allocation_views(sql: &mut dyn Sql, holder: &Holder) -> Result<Vec<AllocationView>> {
    Ok(allocations_of(sql, holder, false)?
        .into_iter()
        .map(AllocationRow::view)
        .collect())
}

/// What a walk over a holder's allocations does to each unit it takes.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// Committed units become free again (newest allocations first).
    Release,
    /// Committed units leave: committed and on_hand both fall (oldest first).
    Ship,
    /// Shipped units come back on the shelf, where they shipped from or `at` (oldest first).
    Restock { at: Option<&'a str> },
}

impl Step<'_> {
    /// Units of an allocation this step can take.
    fn capacity(self, a: &AllocationRow) -> i64 {
        match self {
            Self::Release | Self::Ship => a.committed,
            Self::Restock { .. } => a.shipped - a.restocked,
        }
    }

    /// `(on_hand, committed)` change per unit of a component.
    fn deltas(self) -> (i64, i64) {
        match self {
            Self::Release => (0, -1),
            Self::Ship => (-1, -1),
            Self::Restock { .. } => (1, 0),
        }
    }
}

/// Releases up to `quantity` committed units of `holder`, newest allocations first. Returns the
/// components whose free units grew (their shortfalls may now be fillable).
pub fn release(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    holder: &Holder,
    holder_sku: &str,
    quantity: i64,
    kind: EntryKind,
    line_delta: &dyn Fn(i64) -> Option<LineDelta>,
) -> Result<BTreeSet<String>> {
    walk_allocations(
        sql,
        ctx,
        holder,
        holder_sku,
        quantity,
        kind,
        line_delta,
        Step::Release,
    )
}

/// Ships `quantity` committed units of `holder`, oldest allocations first: committed and on_hand
/// both fall.
pub fn ship(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    holder: &Holder,
    holder_sku: &str,
    quantity: i64,
) -> Result<()> {
    let delta = |n: i64| {
        Some(LineState {
            committed: -n,
            shipped: n,
            ..LineState::default()
        })
    };
    walk_allocations(
        sql,
        ctx,
        holder,
        holder_sku,
        quantity,
        EntryKind::Shipped,
        &delta,
        Step::Ship,
    )?;
    Ok(())
}

/// Puts `quantity` shipped-and-returned units of `holder` back on the shelf, oldest shipments
/// first, at the location they shipped from or at `at_location`. Returns the components restocked.
pub fn restock(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    holder: &Holder,
    holder_sku: &str,
    quantity: i64,
    at_location: Option<&str>,
) -> Result<BTreeSet<String>> {
    let delta = |n: i64| {
        Some(LineState {
            restocked: n,
            ..LineState::default()
        })
    };
    let step = Step::Restock { at: at_location };
    walk_allocations(
        sql,
        ctx,
        holder,
        holder_sku,
        quantity,
        EntryKind::Restocked,
        &delta,
        step,
    )
}

/// Whether an allocation holds a kit's components rather than the holder's SKU itself.
fn is_kit_allocation(a: &AllocationRow, holder_sku: &str) -> bool {
    a.recipe.len() != 1 || a.recipe[0].0 != holder_sku
}

/// Takes up to `quantity` units from the holder's allocations and records one entry per
/// component (plus the kit's own line entry). Returns the components whose free units grew.
#[allow(clippy::too_many_arguments)]
fn walk_allocations(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    holder: &Holder,
    holder_sku: &str,
    quantity: i64,
    kind: EntryKind,
    line_delta: &dyn Fn(i64) -> Option<LineDelta>,
    step: Step<'_>,
) -> Result<BTreeSet<String>> {
    let mut touched = BTreeSet::new();
    let mut remaining = quantity;
    for a in allocations_of(sql, holder, matches!(step, Step::Release))? {
        if remaining == 0 {
            break;
        }
        let take = step.capacity(&a).min(remaining);
        if take == 0 {
            continue;
        }
        let (committed, shipped, restocked) = match step {
            Step::Release => (-take, 0, 0),
            Step::Ship => (-take, take, 0),
            Step::Restock { .. } => (0, 0, take),
        };
        sql.execute(
            "UPDATE allocations SET committed = committed + ?2, shipped = shipped + ?3,
                 restocked = restocked + ?4 WHERE id = ?1",
            args![a.id, committed, shipped, restocked],
        )?;
        let location = match step {
            Step::Restock { at: Some(at) } => at.to_owned(),
            _ => a.location.clone(),
        };
        let is_kit = is_kit_allocation(&a, holder_sku);
        let (per_on_hand, per_committed) = step.deltas();
        for (component, per_unit) in &a.recipe {
            let mut e = holder.entry(kind, component, Some(&location));
            e.delta_on_hand = per_on_hand * take * per_unit;
            e.delta_committed = per_committed * take * per_unit;
            e.allocation_id = Some(a.id);
            if !is_kit {
                e.line_delta = line_delta(take);
            }
            record(sql, ctx, &e)?;
            if !matches!(step, Step::Ship) {
                touched.insert(component.clone());
            }
        }
        if is_kit {
            record_kit_entry(
                sql,
                ctx,
                holder,
                kind,
                holder_sku,
                &location,
                a.id,
                line_delta(take),
                take,
            )?;
        }
        remaining -= take;
    }
    Ok(touched)
}

/// Fills open shortfalls that the given SKUs' free units can now cover: every short line of those
/// SKUs, or of kits made of them, oldest line first, from its channel's feeding locations in
/// priority order. Open shortfalls are demand: they take units before anything becomes free.
pub fn fill_shortfalls(sql: &mut dyn Sql, ctx: &Ctx, touched: &BTreeSet<String>) -> Result<()> {
    if touched.is_empty() {
        return Ok(());
    }
    let mut targets: BTreeSet<String> = touched.clone();
    for sku in touched {
        for r in sql.query(
            "SELECT kit_sku FROM kit_components WHERE component_sku = ?1",
            args![sku.as_str()],
        )? {
            targets.insert(r.text(0));
        }
    }
    let mut lines = Vec::new();
    for sku in &targets {
        let rows = sql.query(
            "SELECT ol.id, ol.order_id, ol.line_id, ol.short, o.channel, v.is_kit
             FROM order_lines ol JOIN orders o ON o.id = ol.order_id
             JOIN variants v ON v.sku = ol.sku
             WHERE ol.sku = ?1 AND ol.short > 0 ORDER BY ol.id",
            args![sku.as_str()],
        )?;
        lines.extend(rows.into_iter().map(|r| (r, sku.clone())));
    }
    lines.sort_by_key(|(r, _)| r.int(0));
    let mut feeding: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (r, sku) in lines {
        let holder = Holder::Line {
            row_id: r.int(0),
            order_id: r.int(1),
            line_id: r.text(2),
            channel: r.text(4),
        };
        let channel = holder.channel().to_owned();
        if !feeding.contains_key(&channel) {
            let c = catalog::require_channel(sql, &channel)?;
            feeding.insert(channel.clone(), catalog::feeding_locations(sql, &c)?);
        }
        let locations = &feeding[&channel];
        let delta = |n: i64| {
            Some(LineState {
                committed: n,
                short: -n,
                ..LineState::default()
            })
        };
        let filled = allocate(
            sql,
            ctx,
            &holder,
            &sku,
            r.int(5) == 1,
            r.int(3),
            locations,
            EntryKind::ShortfallFilled,
            &delta,
        )?;
        if filled > 0 {
            sql.execute(
                "UPDATE order_lines SET short = short - ?2, committed = committed + ?2 WHERE id = ?1",
                args![r.int(0), filled],
            )?;
        }
    }
    Ok(())
}

/// Pool and available-to-sell of a SKU (or kit) on one channel.
pub fn availability_on(
    sql: &mut dyn Sql,
    sku: &str,
    is_kit: bool,
    buffer: i64,
    channel: &Channel,
) -> Result<ChannelAvailability> {
    let recipe = current_recipe(sql, sku, is_kit)?;
    let mut pool = 0;
    for location in catalog::feeding_locations(sql, channel)? {
        pool += free_units_at(sql, &recipe, &location)?;
    }
    Ok(ChannelAvailability {
        channel: channel.code.clone(),
        pool,
        available: ats(pool, buffer, &channel.rules),
    })
}

/// A SKU's levels per location and what every channel may sell of it.
pub fn stock_view(sql: &mut dyn Sql, sku: &str) -> Result<StockView> {
    let row = sql
        .query_opt(
            "SELECT is_kit, buffer FROM variants WHERE sku = ?1",
            args![sku],
        )?
        .ok_or_else(|| crate::error::StoreError::not_found("sku", sku))?;
    let (is_kit, buffer) = (row.int(0) == 1, row.int(1));
    let levels = levels_of(sql, sku)?;
    let mut channels = Vec::new();
    for channel in catalog::list_channels(sql)? {
        channels.push(availability_on(sql, sku, is_kit, buffer, &channel)?);
    }
    Ok(StockView {
        sku: sku.to_owned(),
        is_kit,
        buffer,
        levels,
        channels,
    })
}

pub fn levels_of(sql: &mut dyn Sql, sku: &str) -> Result<Vec<Level>> {
    Ok(sql
        .query(
            "SELECT location, on_hand, committed FROM stock_levels WHERE sku = ?1 ORDER BY location",
            args![sku],
        )?
        .iter()
        .map(|r| Level {
            sku: sku.to_owned(),
            location: r.text(0),
            on_hand: r.int(1),
            committed: r.int(2),
        })
        .collect())
}
