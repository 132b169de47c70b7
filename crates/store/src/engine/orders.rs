//! Orders as versioned snapshots (DESIGN §3): each delivery says what the channel wants now;
//! only the difference is applied, an older version changes nothing, and a line whose SKU is
//! unknown waits in the unmapped queue without failing the rest of the order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use stockhub_core::availability::free;
use stockhub_core::order::{plan, LineTarget};
use stockhub_core::{kit_units_at, EntryKind, LineState, OrderStatus};

use super::catalog;
use super::ledger::{self, record, NewEntry};
use super::stock::{self, fill_shortfalls, Holder};
use crate::args;
use crate::error::{Result, StoreError};
use crate::model::{
    AllocationView, Ctx, LineFulfilment, LineQuantity, LineView, OrderOutcome, OrderSnapshot,
    OrderStory, OrderView, SnapshotLine, UnmappedLine,
};
use crate::sql::{look_up_all, look_up_statements, row_chunks, value_rows, Row, Sql, Value};

/// A stored line, as the engine works on it.
#[derive(Clone)]
struct Line {
    row_id: i64,
    line_id: String,
    channel_sku: String,
    sku: Option<String>,
    is_kit: bool,
    wanted: i64,
    state: LineState,
}

/// The columns `line_from_row` reads, from `order_lines ol`; the SKU's kind is looked up per line
/// (a join would let a backend plan a scan of every variant).
macro_rules! line_columns {
    () => {
        "ol.id, ol.line_id, ol.channel_sku, ol.sku, ol.wanted, ol.committed, ol.short, ol.shipped,
         ol.cancelled, ol.returned, ol.restocked,
         (SELECT v.is_kit FROM variants v WHERE v.sku = ol.sku)"
    };
}

fn line_from_row(r: &Row) -> Line {
    Line {
        row_id: r.int(0),
        line_id: r.text(1),
        channel_sku: r.text(2),
        sku: r.opt_text(3),
        is_kit: r.int(11) == 1,
        wanted: r.int(4),
        state: LineState {
            committed: r.int(5),
            short: r.int(6),
            shipped: r.int(7),
            cancelled: r.int(8),
            returned: r.int(9),
            restocked: r.int(10),
        },
    }
}

fn lines_of(sql: &mut dyn Sql, order_id: i64) -> Result<Vec<Line>> {
    Ok(sql
        .query(
            concat!(
                "SELECT ",
                line_columns!(),
                " FROM order_lines ol
                 WHERE ol.order_id = ?1 ORDER BY ol.id"
            ),
            args![order_id],
        )?
        .iter()
        .map(line_from_row)
        .collect())
}

/// Applies an order snapshot from a channel. Never refuses the order for lack of stock.
pub fn apply_snapshot(sql: &mut dyn Sql, ctx: &Ctx, snap: &OrderSnapshot) -> Result<OrderOutcome> {
    let channel = snap.channel.as_str();
    let channel_record = catalog::require_channel(sql, channel)?;
    let mut seen = HashSet::new();
    for line in &snap.lines {
        if !seen.insert(line.line_id.as_str()) {
            return Err(StoreError::Invalid(format!(
                "line_id {:?} appears twice in the order; each line needs its own id",
                line.line_id
            )));
        }
    }
    let now = sql.now_ms();
    let raw = snap.raw.as_str();
    // An order not seen before is stored at once (one statement for the common case); one seen
    // before is read and locked. Either way the order row comes first, then the levels.
    let inserted = sql.query_opt(
        "INSERT INTO orders (channel, external_id, version, status, snapshot, created_at,
                             updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
         ON CONFLICT (channel, external_id) DO NOTHING RETURNING id",
        args![
            channel,
            snap.external_id.as_str(),
            snap.version,
            snap.status.as_str(),
            raw,
            now
        ],
    )?;
    let existing = match inserted {
        Some(_) => None,
        None => {
            let lock = sql.for_update();
            Some(
                sql.query_opt(
                    &format!(
                        "SELECT id, version, status, created_at FROM orders
                         WHERE channel = ?1 AND external_id = ?2{lock}"
                    ),
                    args![channel, snap.external_id.as_str()],
                )?
                .ok_or_else(|| StoreError::Invalid("the order was not stored".into()))?,
            )
        }
    };
    // Each line's SKU, resolved once (where other writers run, before anything is read, to lock
    // the levels it may change).
    let mut resolved: HashMap<&str, Option<(String, bool)>> = HashMap::new();
    if sql.has_concurrent_writers() {
        let mut skus = match &existing {
            Some(r) => skus_of_order(sql, r.int(0))?,
            None => BTreeSet::new(),
        };
        resolved = resolve_skus(
            sql,
            channel,
            snap.lines.iter().map(|l| l.channel_sku.as_str()),
        )?;
        skus.extend(resolved.values().flatten().map(|(sku, _)| sku.clone()));
        stock::lock_levels(sql, skus.iter().map(String::as_str))?;
    }
    let stored_version = existing.as_ref().and_then(|r| r.opt_int(1));
    let (order_id, created, created_at) = match existing {
        Some(r) => {
            if let (Some(stored), Some(new)) = (stored_version, snap.version) {
                // An older snapshot changes nothing; an equal one is applied (only its difference
                // counts), since some channels stamp versions no finer than a second.
                if new < stored {
                    return Ok(OrderOutcome {
                        outcome: "stale",
                        order: order_view(sql, r.int(0))?,
                    });
                }
            }
            sql.execute_later(
                "UPDATE orders SET version = COALESCE(?2, version), status = ?3, snapshot = ?4,
                     updated_at = ?5 WHERE id = ?1",
                args![r.int(0), snap.version, snap.status.as_str(), raw, now],
            )?;
            (r.int(0), false, r.int(3))
        }
        None => (inserted.map_or(0, |r| r.int(0)), true, now),
    };
    let order = OrderCtx {
        id: order_id,
        channel: channel.to_owned(),
        locations: catalog::feeding_locations(sql, &channel_record)?,
    };
    let before = if created {
        Vec::new()
    } else {
        lines_of(sql, order_id)?
    };
    // The SKUs of new lines, resolved together (where other writers run, they are already).
    let unresolved: Vec<&str> = snap
        .lines
        .iter()
        .filter(|w| !before.iter().any(|l| l.line_id == w.line_id))
        .map(|w| w.channel_sku.as_str())
        .filter(|s| !resolved.contains_key(s))
        .collect();
    if !unresolved.is_empty() {
        resolved.extend(resolve_skus(sql, channel, unresolved)?);
    }
    let mut touched = BTreeSet::new();
    let mut changed = false;
    let kind = reduction_kind(snap.status);
    for wanted in &snap.lines {
        // Units the channel shipped stay wanted even when the order was cancelled afterwards
        // (a cancelled order seen first still records what left the building).
        let shipped = wanted.fulfilment.map_or(0, |f| f.shipped);
        let target = LineTarget::new(wanted.quantity, snap.status)
            .active
            .max(shipped);
        let line = match before.iter().find(|l| l.line_id == wanted.line_id) {
            Some(l) => l.clone(),
            None => {
                // A new line is stored wanting its target at once (one statement less).
                changed |= target != 0;
                let sku = resolved.get(wanted.channel_sku.as_str()).cloned().flatten();
                insert_line(sql, order_id, wanted, target, sku)?
            }
        };
        changed |= set_line_target(sql, ctx, &order, &line, target, kind, &mut touched)?;
        if let Some(reported) = &wanted.fulfilment {
            changed |= apply_fulfilment(sql, ctx, &order, line.row_id, reported, &mut touched)?;
        }
    }
    for line in before
        .iter()
        .filter(|l| !snap.lines.iter().any(|w| w.line_id == l.line_id))
    {
        changed |= set_line_target(sql, ctx, &order, line, 0, kind, &mut touched)?;
    }
    fill_shortfalls(sql, ctx, &touched)?;
    let outcome = match (created, changed) {
        (true, _) => "created",
        (false, true) => "updated",
        (false, false) => "unchanged",
    };
    let head = OrderView {
        channel: channel.to_owned(),
        external_id: snap.external_id.clone(),
        version: snap.version.or(stored_version),
        status: snap.status,
        created_at_ms: created_at,
        updated_at_ms: now,
        lines: Vec::new(),
    };
    Ok(OrderOutcome {
        outcome,
        order: with_lines(sql, order_id, head)?,
    })
}

/// A new channel order to apply together with others (`apply_new_orders`).
pub struct NewOrder<'a> {
    pub ctx: &'a Ctx,
    pub snapshot: &'a OrderSnapshot,
}

/// One line of an order `apply_new_orders` stores, as planned in memory.
struct PlannedLine<'a> {
    order: usize,
    line: &'a SnapshotLine,
    sku: String,
    wanted: i64,
    /// Units committed at each feeding location, in the order they were taken.
    takes: Vec<(String, i64)>,
    short: i64,
}

impl PlannedLine<'_> {
    /// The line as it ends: what it took committed, the rest short.
    fn state(&self) -> LineState {
        LineState {
            committed: self.takes.iter().map(|(_, n)| n).sum(),
            short: self.short,
            ..LineState::default()
        }
    }
}

/// Applies new channel orders together, in a few statements for all of them (the writers use it
/// for the orders of a group commit): what each order gets is what `apply_snapshot` would have
/// given it, had the orders been applied one after another in the order given. It takes open
/// orders not stored yet whose lines each sell one of our SKUs that is not a kit, named by its own
/// code, and nothing shipped; for any other order (stored already or twice in the batch,
/// cancelled, with an alias, a kit, an unknown SKU or channel, a repeated line id, a fulfilment)
/// it answers `None` and changes nothing, and that order goes through `apply_snapshot`.
pub fn apply_new_orders(
    sql: &mut dyn Sql,
    orders: &[NewOrder<'_>],
) -> Result<Vec<Option<OrderOutcome>>> {
    let mut out: Vec<Option<OrderOutcome>> = orders.iter().map(|_| None).collect();
    let mut times: HashMap<(&str, &str), usize> = HashMap::new();
    for o in orders {
        *times
            .entry((o.snapshot.channel.as_str(), o.snapshot.external_id.as_str()))
            .or_default() += 1;
    }
    let parsed = |l: &SnapshotLine| {
        stockhub_core::Sku::parse(&l.channel_sku)
            .ok()
            .map(|s| s.as_str().to_owned())
    };
    let mut taken: Vec<usize> = (0..orders.len())
        .filter(|&i| {
            let snap = orders[i].snapshot;
            let mut ids = HashSet::new();
            snap.status == OrderStatus::Open
                && times[&(snap.channel.as_str(), snap.external_id.as_str())] == 1
                && snap.lines.iter().all(|l| {
                    ids.insert(l.line_id.as_str()) && l.fulfilment.is_none() && parsed(l).is_some()
                })
        })
        .collect();
    if taken.is_empty() {
        return Ok(out);
    }
    // The SKUs the taken orders' lines name, each once.
    let skus_of = |taken: &[usize]| -> BTreeSet<String> {
        taken
            .iter()
            .flat_map(|&i| orders[i].snapshot.lines.iter().filter_map(parsed))
            .collect()
    };
    // The channels (few: all are read) and which of the SKUs are ours, in one round trip.
    let keys: Vec<Value> = skus_of(&taken).into_iter().map(Value::from).collect();
    let mut statements = vec![(catalog::LIST_CHANNELS.to_owned(), Vec::new())];
    statements.extend(look_up_statements(
        "SELECT sku, is_kit FROM variants WHERE sku = ?",
        "",
        &keys,
    ));
    let mut answers = sql.query_all(&statements)?.into_iter();
    let channels = answers.next().unwrap_or_default();
    // Our SKUs: only plain variants named by their own code.
    let plain: HashSet<String> = answers
        .flatten()
        .filter(|r| r.int(1) != 1)
        .map(|r| r.text(0))
        .collect();
    // The feeding locations of the channels these orders came from; an unknown channel leaves
    // its orders to `apply_snapshot`.
    let mut feeding: HashMap<String, Vec<String>> = HashMap::new();
    for record in channels.iter().map(catalog::channel_from_row) {
        let used = taken
            .iter()
            .any(|&i| orders[i].snapshot.channel.as_str() == record.code);
        if used {
            feeding.insert(
                record.code.clone(),
                catalog::feeding_locations(sql, &record)?,
            );
        }
    }
    taken.retain(|&i| {
        let snap = orders[i].snapshot;
        feeding.contains_key(snap.channel.as_str())
            && snap
                .lines
                .iter()
                .all(|l| parsed(l).is_some_and(|s| plain.contains(&s)))
    });
    if taken.is_empty() {
        return Ok(out);
    }
    // Lock the levels (where other writers run), then read them once.
    let skus = skus_of(&taken);
    stock::lock_levels(sql, skus.iter().map(String::as_str))?;
    let mut levels: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let keys: Vec<Value> = skus.iter().map(|s| Value::from(s.as_str())).collect();
    let select = "SELECT sku, location, on_hand, committed FROM stock_levels WHERE sku = ?";
    for r in look_up_all(sql, select, "", &keys)? {
        levels.insert((r.text(0), r.text(1)), (r.int(2), r.int(3)));
    }
    // Store the orders; one stored already (by an earlier transaction) is left out.
    let now = sql.now_ms();
    let mut ids: HashMap<(String, String), i64> = HashMap::new();
    let mut inserts = Vec::new();
    for chunk in row_chunks(taken.len()) {
        let part = &taken[chunk];
        let mut params = Vec::with_capacity(part.len() * 7);
        for &i in part {
            let snap = orders[i].snapshot;
            params.extend([
                Value::from(snap.channel.as_str()),
                Value::from(snap.external_id.as_str()),
                Value::from(snap.version),
                Value::from(snap.status.as_str()),
                Value::from(snap.raw.as_str()),
                Value::Int(now),
                Value::Int(now),
            ]);
        }
        let query = format!(
            "INSERT INTO orders (channel, external_id, version, status, snapshot, created_at,
                                 updated_at)
             VALUES {}
             ON CONFLICT (channel, external_id) DO NOTHING RETURNING id, channel, external_id",
            value_rows(7, part.len())
        );
        inserts.push((query, params));
    }
    for r in sql.query_all(&inserts)?.into_iter().flatten() {
        ids.insert((r.text(1), r.text(2)), r.int(0));
    }
    let order_id = |i: usize| {
        let snap = orders[i].snapshot;
        ids.get(&(snap.channel.as_str().to_owned(), snap.external_id.clone()))
            .copied()
    };
    taken.retain(|&i| order_id(i).is_some());
    // Plan every line against the levels as they stand after the orders before it.
    let mut after = levels.clone();
    let mut planned: Vec<PlannedLine<'_>> = Vec::new();
    for &i in &taken {
        let snap = orders[i].snapshot;
        let locations = &feeding[snap.channel.as_str()];
        for line in &snap.lines {
            let wanted = LineTarget::new(line.quantity, snap.status).active;
            let add = plan(&LineState::default(), LineTarget { active: wanted }).add;
            let sku = parsed(line).unwrap_or_default();
            let mut remaining = add;
            let mut takes = Vec::new();
            for location in locations {
                if remaining == 0 {
                    break;
                }
                let Some(level) = after.get_mut(&(sku.clone(), location.clone())) else {
                    continue;
                };
                let take = kit_units_at([(free(level.0, level.1), 1)]).min(remaining);
                if take > 0 {
                    level.1 += take;
                    takes.push((location.clone(), take));
                    remaining -= take;
                }
            }
            planned.push(PlannedLine {
                order: i,
                line,
                sku,
                wanted,
                takes,
                short: remaining,
            });
        }
    }
    // The lines, as they end.
    let mut line_rows: HashMap<(i64, String), i64> = HashMap::new();
    let mut inserts = Vec::new();
    for chunk in row_chunks(planned.len()) {
        let part = &planned[chunk];
        let mut params = Vec::with_capacity(part.len() * 7);
        for p in part {
            let state = p.state();
            params.extend([
                Value::Int(order_id(p.order).unwrap_or_default()),
                Value::from(p.line.line_id.as_str()),
                Value::from(p.line.channel_sku.as_str()),
                Value::from(p.sku.as_str()),
                Value::Int(p.wanted),
                Value::Int(state.committed),
                Value::Int(state.short),
            ]);
        }
        let query = format!(
            "INSERT INTO order_lines (order_id, line_id, channel_sku, sku, wanted, committed,
                                      short)
             VALUES {} RETURNING id, order_id, line_id",
            value_rows(7, part.len())
        );
        inserts.push((query, params));
    }
    for r in sql.query_all(&inserts)?.into_iter().flatten() {
        line_rows.insert((r.int(1), r.text(2)), r.int(0));
    }
    let holders: Vec<Holder> = planned
        .iter()
        .map(|p| {
            let order_id = order_id(p.order).unwrap_or_default();
            Ok(Holder::Line {
                row_id: *line_rows
                    .get(&(order_id, p.line.line_id.clone()))
                    .ok_or_else(|| StoreError::Invalid("an order line was not stored".into()))?,
                order_id,
                line_id: p.line.line_id.clone(),
                channel: orders[p.order].snapshot.channel.as_str().to_owned(),
            })
        })
        .collect::<Result<_>>()?;
    // Their allocations: one per line and location, new.
    let takes: Vec<(&Holder, &PlannedLine<'_>, &str, i64)> = planned
        .iter()
        .zip(&holders)
        .flat_map(|(p, h)| p.takes.iter().map(move |(l, n)| (h, p, l.as_str(), *n)))
        .collect();
    let mut allocation_ids: HashMap<(String, String), i64> = HashMap::new();
    let mut inserts = Vec::new();
    for chunk in row_chunks(takes.len()) {
        let part = &takes[chunk];
        let mut params = Vec::with_capacity(part.len() * 5);
        for (holder, p, location, n) in part {
            let recipe = vec![(p.sku.clone(), 1_i64)];
            params.extend([
                Value::from("line"),
                Value::from(holder.id()),
                Value::from(*location),
                Value::from(serde_json::to_string(&recipe).unwrap_or_default()),
                Value::Int(*n),
            ]);
        }
        let query = format!(
            "INSERT INTO allocations (holder_kind, holder_id, location, recipe, committed)
             VALUES {} RETURNING id, holder_id, location",
            value_rows(5, part.len())
        );
        inserts.push((query, params));
    }
    for r in sql.query_all(&inserts)?.into_iter().flatten() {
        allocation_ids.insert((r.text(1), r.text(2)), r.int(0));
    }
    // The entries, in the order `apply_snapshot` would record them.
    let mut entries = Vec::new();
    for (p, holder) in planned.iter().zip(&holders) {
        let ctx = orders[p.order].ctx;
        for (location, n) in &p.takes {
            let mut e = holder.entry(EntryKind::OrderCommitted, &p.sku, Some(location));
            e.delta_committed = *n;
            e.allocation_id = allocation_ids
                .get(&(holder.id(), location.clone()))
                .copied();
            e.line_delta = Some(LineState {
                committed: *n,
                ..LineState::default()
            });
            entries.push((ctx, e));
        }
        if p.short > 0 {
            let committed = p.wanted - p.short;
            let order = order_id(p.order).unwrap_or_default();
            let mut e = entry_for(holder, EntryKind::Oversold, &p.sku, order);
            e.line_delta = Some(LineState {
                short: p.short,
                ..LineState::default()
            });
            e.detail = Some(
                serde_json::json!({ "requested": p.wanted, "committed": committed, "short": p.short }),
            );
            entries.push((ctx, e));
        }
    }
    ledger::record_together(sql, &entries, &levels)?;
    // Every order's answer, as `apply_snapshot` reads it back: the lines in the order they
    // came (and were stored), each with its allocations in the order they were taken.
    let mut lines: HashMap<usize, Vec<LineView>> = HashMap::new();
    for p in &planned {
        let state = p.state();
        let allocations = p
            .takes
            .iter()
            .map(|(location, n)| AllocationView {
                location: location.clone(),
                committed: *n,
                shipped: 0,
                restocked: 0,
                recipe: vec![(p.sku.clone(), 1)],
            })
            .collect();
        lines.entry(p.order).or_default().push(LineView {
            line_id: p.line.line_id.clone(),
            channel_sku: p.line.channel_sku.clone(),
            sku: Some(p.sku.clone()),
            wanted: p.wanted,
            ordered: state.ordered(),
            state,
            allocations,
        });
    }
    for &i in &taken {
        let snap = orders[i].snapshot;
        out[i] = Some(OrderOutcome {
            outcome: "created",
            order: OrderView {
                channel: snap.channel.as_str().to_owned(),
                external_id: snap.external_id.clone(),
                version: snap.version,
                status: snap.status,
                created_at_ms: now,
                updated_at_ms: now,
                lines: lines.remove(&i).unwrap_or_default(),
            },
        });
    }
    Ok(out)
}

fn reduction_kind(status: OrderStatus) -> EntryKind {
    match status {
        OrderStatus::Open => EntryKind::OrderLineChanged,
        OrderStatus::Cancelled => EntryKind::OrderCancelled,
    }
}

/// Inserts a new line wanting `wanted` units (none committed yet), with our SKU for the
/// channel's (`resolve_sku`); a SKU we do not know leaves the line unmapped.
fn insert_line(
    sql: &mut dyn Sql,
    order_id: i64,
    line: &SnapshotLine,
    wanted: i64,
    resolved: Option<(String, bool)>,
) -> Result<Line> {
    let (sku, is_kit) = match resolved {
        Some((sku, is_kit)) => (Some(sku), is_kit),
        None => (None, false),
    };
    let row_id = sql
        .query_opt(
            "INSERT INTO order_lines (order_id, line_id, channel_sku, sku, wanted)
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            args![
                order_id,
                line.line_id.as_str(),
                line.channel_sku.as_str(),
                sku.as_deref(),
                wanted
            ],
        )?
        .ok_or_else(|| StoreError::Invalid("order line was not stored".into()))?
        .int(0);
    Ok(Line {
        row_id,
        line_id: line.line_id.clone(),
        channel_sku: line.channel_sku.clone(),
        sku,
        is_kit,
        wanted,
        state: LineState::default(),
    })
}

/// Our SKU (and whether it is a kit) for each of a channel's SKUs: itself when we know it, else
/// its alias; `None` for one we do not know. Our own SKUs are looked up together.
fn resolve_skus<'a>(
    sql: &mut dyn Sql,
    channel: &str,
    channel_skus: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<&'a str, Option<(String, bool)>>> {
    let channel_skus: BTreeSet<&str> = channel_skus.into_iter().collect();
    let ours: BTreeMap<&str, String> = channel_skus
        .iter()
        .filter_map(|s| Some((*s, stockhub_core::Sku::parse(s).ok()?.as_str().to_owned())))
        .collect();
    let mut kinds: HashMap<String, bool> = HashMap::new();
    let values: Vec<Value> = ours.values().map(|s| Value::from(s.as_str())).collect();
    let select = "SELECT sku, is_kit FROM variants WHERE sku = ?";
    for r in look_up_all(sql, select, "", &values)? {
        kinds.insert(r.text(0), r.int(1) == 1);
    }
    let mut out = HashMap::with_capacity(channel_skus.len());
    for channel_sku in channel_skus {
        let found = match ours.get(channel_sku).and_then(|s| Some((s, kinds.get(s)?))) {
            Some((sku, is_kit)) => Some((sku.clone(), *is_kit)),
            None => sql
                .query_opt(
                    "SELECT a.sku, v.is_kit FROM sku_aliases a JOIN variants v ON v.sku = a.sku
                     WHERE a.channel = ?1 AND a.channel_sku = ?2",
                    args![channel, channel_sku],
                )?
                .map(|r| (r.text(0), r.int(1) == 1)),
        };
        out.insert(channel_sku, found);
    }
    Ok(out)
}

/// What the lines of one order share while a unit of work changes them.
struct OrderCtx {
    id: i64,
    channel: String,
    /// The channel's feeding locations, in priority order.
    locations: Vec<String>,
}

impl OrderCtx {
    fn load(sql: &mut dyn Sql, id: i64, channel: &str) -> Result<Self> {
        let record = catalog::require_channel(sql, channel)?;
        Ok(Self {
            id,
            channel: channel.to_owned(),
            locations: catalog::feeding_locations(sql, &record)?,
        })
    }
}

/// Moves a line to `target` active units: commits what is free and records the rest as short,
/// or cancels short units first, then committed ones (never shipped). Returns whether anything
/// changed.
#[allow(clippy::too_many_arguments)]
fn set_line_target(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    order: &OrderCtx,
    line: &Line,
    target: i64,
    reduction: EntryKind,
    touched: &mut BTreeSet<String>,
) -> Result<bool> {
    if line.wanted != target {
        sql.execute_later(
            "UPDATE order_lines SET wanted = ?2 WHERE id = ?1",
            args![line.row_id, target],
        )?;
    }
    let Some(sku) = line.sku.as_deref() else {
        return Ok(line.wanted != target);
    };
    let p = plan(&line.state, LineTarget { active: target });
    if p.is_noop() {
        return Ok(line.wanted != target);
    }
    let order_id = order.id;
    let holder = Holder::Line {
        row_id: line.row_id,
        order_id,
        line_id: line.line_id.clone(),
        channel: order.channel.clone(),
    };
    let is_kit = line.is_kit;
    let mut delta = LineState::default();
    if p.add > 0 {
        let commit = |n: i64| {
            Some(LineState {
                committed: n,
                ..LineState::default()
            })
        };
        let got = stock::allocate(
            sql,
            ctx,
            &holder,
            sku,
            is_kit,
            p.add,
            &order.locations,
            EntryKind::OrderCommitted,
            &commit,
        )?;
        let short = p.add - got;
        if short > 0 {
            let mut e = entry_for(&holder, EntryKind::Oversold, sku, order_id);
            e.line_delta = Some(LineState {
                short,
                ..LineState::default()
            });
            e.detail =
                Some(serde_json::json!({ "requested": p.add, "committed": got, "short": short }));
            record(sql, ctx, &e)?;
        }
        delta.committed += got;
        delta.short += short;
    }
    if p.cancel_short > 0 {
        let mut e = entry_for(&holder, reduction, sku, order_id);
        e.line_delta = Some(LineState {
            short: -p.cancel_short,
            cancelled: p.cancel_short,
            ..LineState::default()
        });
        record(sql, ctx, &e)?;
        delta.short -= p.cancel_short;
        delta.cancelled += p.cancel_short;
    }
    if p.cancel_committed > 0 {
        let cancel = |n: i64| {
            Some(LineState {
                committed: -n,
                cancelled: n,
                ..LineState::default()
            })
        };
        touched.extend(stock::release(
            sql,
            ctx,
            &holder,
            sku,
            p.cancel_committed,
            reduction,
            &cancel,
        )?);
        delta.committed -= p.cancel_committed;
        delta.cancelled += p.cancel_committed;
    }
    add_to_line(sql, line.row_id, &delta)?;
    Ok(true)
}

fn entry_for<'a>(holder: &'a Holder, kind: EntryKind, sku: &'a str, order_id: i64) -> NewEntry<'a> {
    let mut e = NewEntry::new(kind, sku, None);
    if let Holder::Line {
        line_id, channel, ..
    } = holder
    {
        e.channel = Some(channel);
        e.line_id = Some(line_id);
    }
    e.order_id = Some(order_id);
    e
}

fn add_to_line(sql: &mut dyn Sql, row_id: i64, d: &LineState) -> Result<()> {
    sql.execute_later(
        "UPDATE order_lines SET committed = committed + ?2, short = short + ?3,
             shipped = shipped + ?4, cancelled = cancelled + ?5, returned = returned + ?6,
             restocked = restocked + ?7
         WHERE id = ?1",
        args![
            row_id,
            d.committed,
            d.short,
            d.shipped,
            d.cancelled,
            d.returned,
            d.restocked
        ],
    )?;
    Ok(())
}

struct OrderRow {
    id: i64,
    channel: String,
}

/// The order, locked with the stock levels of its lines where other transactions write at the
/// same time (the order row first, then the levels in SKU order, as `apply_snapshot` does).
fn require_order(sql: &mut dyn Sql, channel: &str, external_id: &str) -> Result<OrderRow> {
    let lock = sql.for_update();
    let order = sql
        .query_opt(
            &format!(
                "SELECT id, channel FROM orders WHERE channel = ?1 AND external_id = ?2{lock}"
            ),
            args![channel, external_id],
        )?
        .map(|r| OrderRow {
            id: r.int(0),
            channel: r.text(1),
        })
        .ok_or_else(|| StoreError::not_found("order", format!("{channel}/{external_id}")))?;
    if sql.has_concurrent_writers() {
        let skus = skus_of_order(sql, order.id)?;
        stock::lock_levels(sql, skus.iter().map(String::as_str))?;
    }
    Ok(order)
}

/// The SKUs an order's mapped lines sell.
fn skus_of_order(sql: &mut dyn Sql, order_id: i64) -> Result<BTreeSet<String>> {
    Ok(sql
        .query(
            "SELECT DISTINCT sku FROM order_lines WHERE order_id = ?1 AND sku IS NOT NULL",
            args![order_id],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

/// Cancels every unshipped unit of an order (the operator's or the channel's cancellation).
pub fn cancel(sql: &mut dyn Sql, ctx: &Ctx, channel: &str, external_id: &str) -> Result<OrderView> {
    let order = require_order(sql, channel, external_id)?;
    let now = sql.now_ms();
    sql.execute(
        "UPDATE orders SET status = 'cancelled', updated_at = ?2 WHERE id = ?1",
        args![order.id, now],
    )?;
    let mut touched = BTreeSet::new();
    let order_ctx = OrderCtx::load(sql, order.id, &order.channel)?;
    for line in lines_of(sql, order.id)? {
        set_line_target(
            sql,
            ctx,
            &order_ctx,
            &line,
            0,
            EntryKind::OrderCancelled,
            &mut touched,
        )?;
    }
    fill_shortfalls(sql, ctx, &touched)?;
    order_view(sql, order.id)
}

fn line_for_update(
    sql: &mut dyn Sql,
    order: &OrderRow,
    line_id: &str,
) -> Result<(Line, String, Holder)> {
    let line = sql
        .query_opt(
            concat!(
                "SELECT ",
                line_columns!(),
                " FROM order_lines ol
                 WHERE ol.order_id = ?1 AND ol.line_id = ?2"
            ),
            args![order.id, line_id],
        )?
        .map(|r| line_from_row(&r))
        .ok_or_else(|| StoreError::not_found("order line", line_id))?;
    let Some(sku) = line.sku.clone() else {
        return Err(StoreError::StockConflict(format!(
            "line {line_id} is unmapped (channel SKU {:?}); resolve it before shipping or returning",
            line.channel_sku
        )));
    };
    let holder = Holder::Line {
        row_id: line.row_id,
        order_id: order.id,
        line_id: line.line_id.clone(),
        channel: order.channel.clone(),
    };
    Ok((line, sku, holder))
}

/// Ships committed units of the named lines: committed and on_hand both fall.
pub fn ship(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    channel: &str,
    external_id: &str,
    lines: &[LineQuantity],
) -> Result<OrderView> {
    let order = require_order(sql, channel, external_id)?;
    for item in lines {
        let (line, sku, holder) = line_for_update(sql, &order, &item.line_id)?;
        let quantity = item.quantity.get();
        if quantity > line.state.committed {
            return Err(StoreError::StockConflict(format!(
                "line {} has {} committed units (and {} short); ship at most {}",
                line.line_id, line.state.committed, line.state.short, line.state.committed
            )));
        }
        stock::ship(sql, ctx, &holder, &sku, quantity)?;
        add_to_line(
            sql,
            line.row_id,
            &LineState {
                committed: -quantity,
                shipped: quantity,
                ..LineState::default()
            },
        )?;
    }
    order_view(sql, order.id)
}

/// Records returned units of shipped lines; restocks them now when asked, else they wait.
pub fn return_lines(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    channel: &str,
    external_id: &str,
    lines: &[LineQuantity],
) -> Result<OrderView> {
    let order = require_order(sql, channel, external_id)?;
    let mut touched = BTreeSet::new();
    for item in lines {
        let (line, sku, holder) = line_for_update(sql, &order, &item.line_id)?;
        let quantity = item.quantity.get();
        let returnable = line.state.shipped - line.state.returned;
        if quantity > returnable {
            return Err(StoreError::StockConflict(format!(
                "line {} has {returnable} shipped units not yet returned; return at most {returnable}",
                line.line_id
            )));
        }
        check_restock_location(sql, item)?;
        record_return(sql, ctx, &holder, &sku, line.row_id, quantity, item.restock)?;
        if item.restock {
            touched.extend(restock_line(sql, ctx, &line, &sku, &holder, item)?);
        }
    }
    fill_shortfalls(sql, ctx, &touched)?;
    order_view(sql, order.id)
}

/// Records returned units of a line (they are not on the shelf until restocked).
fn record_return(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    holder: &Holder,
    sku: &str,
    row_id: i64,
    quantity: i64,
    restock: bool,
) -> Result<()> {
    let delta = LineState {
        returned: quantity,
        ..LineState::default()
    };
    let order_id = match holder {
        Holder::Line { order_id, .. } => *order_id,
        Holder::Reservation { .. } => 0,
    };
    let mut e = entry_for(holder, EntryKind::Returned, sku, order_id);
    e.line_delta = Some(delta);
    e.detail = Some(serde_json::json!({ "restock": restock }));
    record(sql, ctx, &e)?;
    add_to_line(sql, row_id, &delta)
}

/// Brings a line's shipped, returned and restocked units up to what the channel reports. Only
/// committed units can ship, only shipped ones come back, only returned ones are restocked (at
/// the location they shipped from). Returns whether anything changed.
fn apply_fulfilment(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    order: &OrderCtx,
    row_id: i64,
    reported: &LineFulfilment,
    touched: &mut BTreeSet<String>,
) -> Result<bool> {
    let line = sql
        .query_opt(
            concat!(
                "SELECT ",
                line_columns!(),
                " FROM order_lines ol WHERE ol.id = ?1"
            ),
            args![row_id],
        )?
        .map(|r| line_from_row(&r))
        .ok_or_else(|| StoreError::not_found("order line", row_id.to_string()))?;
    let Some(sku) = line.sku.clone() else {
        return Ok(false);
    };
    let holder = Holder::Line {
        row_id,
        order_id: order.id,
        line_id: line.line_id.clone(),
        channel: order.channel.clone(),
    };
    let state = line.state;
    let ship = (reported.shipped - state.shipped)
        .min(state.committed)
        .max(0);
    if ship > 0 {
        stock::ship(sql, ctx, &holder, &sku, ship)?;
        add_to_line(
            sql,
            row_id,
            &LineState {
                committed: -ship,
                shipped: ship,
                ..LineState::default()
            },
        )?;
    }
    let shipped = state.shipped + ship;
    let returned_new = (reported.returned - state.returned)
        .min(shipped - state.returned)
        .max(0);
    if returned_new > 0 {
        let restock = reported.restocked > state.restocked;
        record_return(sql, ctx, &holder, &sku, row_id, returned_new, restock)?;
    }
    let returned = state.returned + returned_new;
    let restock = (reported.restocked - state.restocked)
        .min(returned - state.restocked)
        .max(0);
    if restock > 0 {
        touched.extend(stock::restock(sql, ctx, &holder, &sku, restock, None)?);
        add_to_line(
            sql,
            row_id,
            &LineState {
                restocked: restock,
                ..LineState::default()
            },
        )?;
    }
    // Shipping, returns and restocks move units between states; none adds to `ordered`.
    let ordered = line.state.ordered();
    let missing = reported.ordered - ordered;
    if missing > 0 {
        let delta = LineState {
            cancelled: missing,
            ..LineState::default()
        };
        let mut e = entry_for(&holder, EntryKind::OrderLineChanged, &sku, order.id);
        e.line_delta = Some(delta);
        e.detail = Some(
            serde_json::json!({ "ordered_on_channel": reported.ordered, "note": "units ordered and cancelled before stockhub saw the line" }),
        );
        record(sql, ctx, &e)?;
        add_to_line(sql, row_id, &delta)?;
    }
    Ok(ship > 0 || returned_new > 0 || restock > 0 || missing > 0)
}

/// Puts returned units that were waiting back on the shelf.
pub fn restock(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    channel: &str,
    external_id: &str,
    lines: &[LineQuantity],
) -> Result<OrderView> {
    let order = require_order(sql, channel, external_id)?;
    let mut touched = BTreeSet::new();
    for item in lines {
        let (line, sku, holder) = line_for_update(sql, &order, &item.line_id)?;
        let waiting = line.state.returned - line.state.restocked;
        if item.quantity.get() > waiting {
            return Err(StoreError::StockConflict(format!(
                "line {} has {waiting} returned units waiting to be restocked; restock at most {waiting}",
                line.line_id
            )));
        }
        check_restock_location(sql, item)?;
        touched.extend(restock_line(sql, ctx, &line, &sku, &holder, item)?);
    }
    fill_shortfalls(sql, ctx, &touched)?;
    order_view(sql, order.id)
}

fn check_restock_location(sql: &mut dyn Sql, item: &LineQuantity) -> Result<()> {
    match &item.location {
        Some(location) => catalog::require_location(sql, location.as_str()),
        None => Ok(()),
    }
}

fn restock_line(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    line: &Line,
    sku: &str,
    holder: &Holder,
    item: &LineQuantity,
) -> Result<BTreeSet<String>> {
    let quantity = item.quantity.get();
    let touched = stock::restock(
        sql,
        ctx,
        holder,
        sku,
        quantity,
        item.location.as_ref().map(|c| c.as_str()),
    )?;
    add_to_line(
        sql,
        line.row_id,
        &LineState {
            restocked: quantity,
            ..LineState::default()
        },
    )?;
    Ok(touched)
}

/// The unmapped queue: lines whose channel SKU is not (yet) one of ours, oldest first.
pub fn unmapped(sql: &mut dyn Sql, after_id: Option<i64>, limit: i64) -> Result<Vec<UnmappedLine>> {
    Ok(sql
        .query(
            "SELECT ol.id, o.channel, o.external_id, ol.line_id, ol.channel_sku, ol.wanted
             FROM order_lines ol JOIN orders o ON o.id = ol.order_id
             WHERE ol.sku IS NULL AND (ol.id > ?1 OR ?1 IS NULL) ORDER BY ol.id LIMIT ?2",
            args![after_id, limit],
        )?
        .iter()
        .map(|r| UnmappedLine {
            id: r.int(0),
            channel: r.text(1),
            external_id: r.text(2),
            line_id: r.text(3),
            channel_sku: r.text(4),
            wanted: r.int(5),
        })
        .collect())
}

/// Maps an unmapped line's channel SKU to one of ours (remembered for that channel), then applies
/// every waiting line with that channel SKU as its latest snapshot asked. Returns the lines applied.
pub fn resolve_unmapped(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    line_row_id: i64,
    sku: &str,
) -> Result<Vec<OrderView>> {
    let row = sql
        .query_opt(
            "SELECT o.channel, ol.channel_sku FROM order_lines ol JOIN orders o ON o.id = ol.order_id
             WHERE ol.id = ?1 AND ol.sku IS NULL",
            args![line_row_id],
        )?
        .ok_or_else(|| StoreError::not_found("unmapped line", line_row_id.to_string()))?;
    let (channel, channel_sku) = (row.text(0), row.text(1));
    catalog::require_variant(sql, sku)?;
    stock::lock_levels(sql, [sku])?;
    sql.execute(
        "INSERT INTO sku_aliases (channel, channel_sku, sku) VALUES (?1, ?2, ?3)
         ON CONFLICT (channel, channel_sku) DO UPDATE SET sku = excluded.sku",
        args![channel.as_str(), channel_sku.as_str(), sku],
    )?;
    let is_kit = catalog::require_variant(sql, sku)?;
    let waiting = sql.query(
        concat!(
            "SELECT ol.order_id, o.status, ",
            line_columns!(),
            " FROM order_lines ol JOIN orders o ON o.id = ol.order_id
             WHERE ol.sku IS NULL AND o.channel = ?1 AND ol.channel_sku = ?2 ORDER BY ol.id"
        ),
        args![channel.as_str(), channel_sku.as_str()],
    )?;
    let mut touched = BTreeSet::new();
    let mut orders = Vec::new();
    for r in waiting {
        let order = OrderCtx::load(sql, r.int(0), &channel)?;
        let mut line = line_from_row(&Row(r.0[2..].to_vec()));
        sql.execute(
            "UPDATE order_lines SET sku = ?2 WHERE id = ?1",
            args![line.row_id, sku],
        )?;
        line.sku = Some(sku.to_owned());
        line.is_kit = is_kit;
        let status = OrderStatus::parse(&r.text(1)).unwrap_or(OrderStatus::Open);
        set_line_target(
            sql,
            ctx,
            &order,
            &line,
            line.wanted,
            reduction_kind(status),
            &mut touched,
        )?;
        orders.push(order.id);
    }
    fill_shortfalls(sql, ctx, &touched)?;
    let mut seen = HashSet::new();
    orders.retain(|id| seen.insert(*id));
    orders.into_iter().map(|id| order_view(sql, id)).collect()
}

pub fn order_view(sql: &mut dyn Sql, order_id: i64) -> Result<OrderView> {
    let r = sql
        .query_opt(
            "SELECT channel, external_id, version, status, created_at, updated_at FROM orders WHERE id = ?1",
            args![order_id],
        )?
        .ok_or_else(|| StoreError::not_found("order", order_id.to_string()))?;
    let head = OrderView {
        channel: r.text(0),
        external_id: r.text(1),
        version: r.opt_int(2),
        status: OrderStatus::parse(&r.text(3)).unwrap_or(OrderStatus::Open),
        created_at_ms: r.int(4),
        updated_at_ms: r.int(5),
        lines: Vec::new(),
    };
    with_lines(sql, order_id, head)
}

/// `head` (an order's own fields) with the order's lines and their allocations.
fn with_lines(sql: &mut dyn Sql, order_id: i64, head: OrderView) -> Result<OrderView> {
    Ok(with_lines_of(sql, vec![(order_id, head)])?
        .pop()
        .unwrap_or_else(|| unreachable!("one order in, one out")))
}

/// `with_lines` for many orders: one statement per 32 orders (`sql::look_up_all`), and as many
/// for their lines' allocations.
fn with_lines_of(sql: &mut dyn Sql, heads: Vec<(i64, OrderView)>) -> Result<Vec<OrderView>> {
    let ids: Vec<Value> = heads.iter().map(|(id, _)| Value::Int(*id)).collect();
    let mut lines: BTreeMap<i64, Vec<Line>> = BTreeMap::new();
    let select = concat!(
        "SELECT ",
        line_columns!(),
        ", ol.order_id FROM order_lines ol WHERE ol.order_id = ?"
    );
    for r in look_up_all(sql, select, " ORDER BY 1", &ids)? {
        lines.entry(r.int(12)).or_default().push(line_from_row(&r));
    }
    // An unmapped line holds nothing.
    let mapped: Vec<i64> = lines
        .values()
        .flatten()
        .filter(|l| l.sku.is_some())
        .map(|l| l.row_id)
        .collect();
    let mut allocations = stock::allocations_of_lines(sql, &mapped)?;
    Ok(heads
        .into_iter()
        .map(|(id, head)| {
            let lines = lines
                .remove(&id)
                .unwrap_or_default()
                .into_iter()
                .map(|line| LineView {
                    ordered: line.state.ordered(),
                    allocations: allocations.remove(&line.row_id).unwrap_or_default(),
                    line_id: line.line_id,
                    channel_sku: line.channel_sku,
                    sku: line.sku,
                    wanted: line.wanted,
                    state: line.state,
                })
                .collect();
            OrderView { lines, ..head }
        })
        .collect())
}

pub fn get_order(sql: &mut dyn Sql, channel: &str, external_id: &str) -> Result<OrderView> {
    let order = require_order(sql, channel, external_id)?;
    order_view(sql, order.id)
}

/// Everything about one order in one answer: its lines, the snapshot last applied, the
/// reservation it came from, and every ledger entry it caused.
pub fn story(sql: &mut dyn Sql, channel: &str, external_id: &str) -> Result<OrderStory> {
    let order = require_order(sql, channel, external_id)?;
    let snapshot = sql
        .query_opt("SELECT snapshot FROM orders WHERE id = ?1", args![order.id])?
        .and_then(|r| serde_json::from_str(&r.text(0)).ok())
        .unwrap_or(serde_json::Value::Null);
    let reservation = sql
        .query_opt(
            "SELECT id FROM reservations WHERE order_id = ?1",
            args![order.id],
        )?
        .map(|r| r.int(0));
    Ok(OrderStory {
        order: order_view(sql, order.id)?,
        snapshot,
        reservation,
        ledger: ledger::for_order(sql, order.id)?,
    })
}
