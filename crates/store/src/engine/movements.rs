//! Receipts, adjustments, cycle counts and transfers: the operator's stock movements, applied as
//! one all-or-nothing batch in which every item may carry its own idempotency key.

use std::collections::BTreeSet;

use serde_json::json;
use stockhub_core::EntryKind;

use super::catalog;
use super::idempotency::{self, Prior};
use super::ledger::{level, record, NewEntry};
use super::stock::{self, fill_shortfalls};
use crate::args;
use crate::error::{ItemError, Result, StoreError};
use crate::model::{Ctx, Level, Movement, MovementItem, MovementResult};
use crate::sql::Sql;

/// Applies every item or none. A refused batch names each refused item by its index.
pub fn apply_batch(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    items: &[MovementItem],
) -> Result<Vec<MovementResult>> {
    let mut results = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    stock::lock_levels(sql, items.iter().map(|i| i.movement.sku().as_str()))?;
    for (index, item) in items.iter().enumerate() {
        sql.execute("SAVEPOINT movement_item", &[])?;
        match apply_item(sql, ctx, index, item) {
            Ok(result) => {
                sql.execute("RELEASE movement_item", &[])?;
                results.push(result);
            }
            Err(e @ StoreError::Database { .. }) => return Err(e),
            Err(e) => {
                sql.execute("ROLLBACK TO movement_item", &[])?;
                sql.execute("RELEASE movement_item", &[])?;
                errors.push(ItemError {
                    index,
                    kind: e.kind(),
                    detail: e.to_string(),
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(StoreError::Batch(errors));
    }
    if items.len() >= BULK_LOAD_ITEMS && sql.has_concurrent_writers() {
        // PostgreSQL has no statistics for rows loaded in bulk until autovacuum analyzes them,
        // a minute or more later; meanwhile it plans whole-table scans for the look-ups and
        // locks of many SKUs at once that orders take (10-45 ms each instead of about 1).
        sql.execute("ANALYZE variants, stock_levels", &[])?;
    }
    Ok(results)
}

/// A batch of at least this many movements is a bulk load (see `apply_batch`).
const BULK_LOAD_ITEMS: usize = 1_000;

fn apply_item(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    index: usize,
    item: &MovementItem,
) -> Result<MovementResult> {
    if let Some((scope, hash)) = &item.idempotency {
        if let Prior::Replay { body, .. } = idempotency::lookup(sql, scope, hash)? {
            let levels = serde_json::from_value::<Vec<StoredLevel>>(body).unwrap_or_default();
            return Ok(MovementResult {
                index,
                status: "replayed",
                levels: levels.into_iter().map(StoredLevel::into_level).collect(),
            });
        }
    }
    let item_ctx = Ctx {
        idempotency_key: item
            .idempotency
            .as_ref()
            .map(|(scope, _)| scope.clone())
            .or_else(|| ctx.idempotency_key.clone()),
        ..ctx.clone()
    };
    let levels = apply(sql, &item_ctx, &item.movement, item.note.as_deref())?;
    if let Some((scope, hash)) = &item.idempotency {
        idempotency::store(
            sql,
            scope,
            hash,
            200,
            &serde_json::to_value(&levels).unwrap_or_default(),
        )?;
    }
    Ok(MovementResult {
        index,
        status: "applied",
        levels,
    })
}

#[derive(serde::Deserialize)]
struct StoredLevel {
    sku: String,
    location: String,
    on_hand: i64,
    committed: i64,
}

impl StoredLevel {
    fn into_level(self) -> Level {
        Level {
            sku: self.sku,
            location: self.location,
            on_hand: self.on_hand,
            committed: self.committed,
        }
    }
}

/// Applies one movement, fills whatever shortfalls it made fillable, and returns the levels it
/// touched as they stand afterwards.
pub fn apply(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    movement: &Movement,
    note: Option<&str>,
) -> Result<Vec<Level>> {
    let (sku, locations) = match movement {
        Movement::Receive { sku, location, .. }
        | Movement::Adjust { sku, location, .. }
        | Movement::Count { sku, location, .. } => (sku, vec![location.as_str()]),
        Movement::Transfer { sku, from, to, .. } => (sku, vec![from.as_str(), to.as_str()]),
    };
    if catalog::require_variant(sql, sku.as_str())? {
        return Err(StoreError::Invalid(format!(
            "{sku} is a kit; a kit's stock is its components': move those instead"
        )));
    }
    for location in &locations {
        catalog::require_location(sql, location)?;
    }
    let sku = sku.as_str();
    let detail = note.map(|n| json!({ "note": n }));
    match movement {
        Movement::Receive {
            location, quantity, ..
        } => {
            change(
                sql,
                ctx,
                EntryKind::Received,
                sku,
                location.as_str(),
                quantity.get(),
                detail,
            )?;
        }
        Movement::Adjust {
            location, delta, ..
        } => {
            change(
                sql,
                ctx,
                EntryKind::Adjusted,
                sku,
                location.as_str(),
                *delta,
                detail,
            )?;
        }
        Movement::Count {
            location,
            on_hand,
            counted_at_ms,
            ..
        } => {
            count(
                sql,
                ctx,
                sku,
                location.as_str(),
                *on_hand,
                *counted_at_ms,
                note,
            )?;
        }
        Movement::Transfer {
            from, to, quantity, ..
        } => {
            transfer(
                sql,
                ctx,
                sku,
                from.as_str(),
                to.as_str(),
                quantity.get(),
                detail,
            )?;
        }
    }
    fill_shortfalls(sql, ctx, &BTreeSet::from([sku.to_owned()]))?;
    let mut levels = Vec::new();
    for location in locations {
        let (on_hand, committed) = level(sql, sku, location)?;
        levels.push(Level {
            sku: sku.to_owned(),
            location: location.to_owned(),
            on_hand,
            committed,
        });
    }
    Ok(levels)
}

fn change(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    kind: EntryKind,
    sku: &str,
    location: &str,
    delta: i64,
    detail: Option<serde_json::Value>,
) -> Result<()> {
    let mut e = NewEntry::new(kind, sku, Some(location));
    e.delta_on_hand = delta;
    e.detail = detail;
    record(sql, ctx, &e).map(|_| ())
}

/// A cycle count: on_hand becomes what was counted plus every on_hand change recorded after the
/// count was taken, except the corrections of other counts (this count saw what they corrected).
/// A count taken before another count already recorded is superseded by it: it is recorded for
/// the audit trail and changes nothing. The entry holds the difference from the current on_hand.
fn count(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    sku: &str,
    location: &str,
    counted: i64,
    counted_at_ms: Option<i64>,
    note: Option<&str>,
) -> Result<()> {
    let now = sql.now_ms();
    let counted_at = counted_at_ms.unwrap_or(now);
    if counted_at > now {
        return Err(StoreError::Invalid(format!(
            "counted_at is in the future ({counted_at} > {now} ms by the database clock)"
        )));
    }
    let since = sql
        .query_opt(
            "SELECT COALESCE(SUM(delta_on_hand), 0) FROM ledger
             WHERE sku = ?1 AND location = ?2 AND at > ?3 AND kind <> 'counted'",
            args![sku, location, counted_at],
        )?
        .map_or(0, |r| r.int(0));
    let superseded_by = newer_count(sql, sku, location, counted_at)?;
    let (on_hand, committed) = level(sql, sku, location)?;
    let target = match superseded_by {
        Some(_) => on_hand,
        None => (counted + since).max(0),
    };
    if target < committed {
        return Err(StoreError::StockConflict(format!(
            "the count puts on_hand of {sku} at {location} to {target}, below the {committed} \
             units committed to orders and reservations; release or cancel those first"
        )));
    }
    let mut e = NewEntry::new(EntryKind::Counted, sku, Some(location));
    e.delta_on_hand = target - on_hand;
    e.detail = Some(json!({
        "counted": counted,
        "counted_at_ms": counted_at,
        "recorded_since_count": since,
        "superseded_by_count_at_ms": superseded_by,
        "note": note,
    }));
    record(sql, ctx, &e).map(|_| ())
}

/// The time of a count of this level taken after `counted_at` and already recorded, if any.
fn newer_count(
    sql: &mut dyn Sql,
    sku: &str,
    location: &str,
    counted_at: i64,
) -> Result<Option<i64>> {
    let rows = sql.query(
        "SELECT detail FROM ledger WHERE sku = ?1 AND location = ?2 AND kind = 'counted' AND at > ?3",
        args![sku, location, counted_at],
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.text(0)).ok())
        .filter_map(|d| d.get("counted_at_ms").and_then(serde_json::Value::as_i64))
        .filter(|&at| at > counted_at)
        .max())
}

/// Moves free units between locations: two entries, out of the source and into the target.
fn transfer(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    sku: &str,
    from: &str,
    to: &str,
    quantity: i64,
    detail: Option<serde_json::Value>,
) -> Result<()> {
    if from == to {
        return Err(StoreError::Invalid(format!(
            "transfer of {sku} names {from} as both source and target"
        )));
    }
    let (on_hand, committed) = level(sql, sku, from)?;
    if on_hand - committed < quantity {
        return Err(StoreError::StockConflict(format!(
            "only {} free units of {sku} at {from} (on_hand {on_hand}, committed {committed}); \
             cannot transfer {quantity}",
            (on_hand - committed).max(0)
        )));
    }
    let mut out = NewEntry::new(EntryKind::Transferred, sku, Some(from));
    out.delta_on_hand = -quantity;
    out.detail = Some(json!({ "to": to, "extra": detail }));
    record(sql, ctx, &out)?;
    let mut inn = NewEntry::new(EntryKind::Transferred, sku, Some(to));
    inn.delta_on_hand = quantity;
    inn.detail = Some(json!({ "from": from, "extra": detail }));
    record(sql, ctx, &inn).map(|_| ())
}
