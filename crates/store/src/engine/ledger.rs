//! Appending to the ledger together with the stock level it changes, and reading it back.
//! `record` (one entry) and `record_together` (many, under levels already read) are the only ways
//! stock levels change: the level update and its entry are one step.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};
use stockhub_core::{EntryKind, LineState};

use crate::args;
use crate::error::{Result, StoreError};
use crate::model::{Ctx, LedgerEntry, LedgerQuery, OrderKey};
use crate::sql::{row_chunks, value_rows, Row, Sql, Value};

/// A change of an order line's state, in units.
pub type LineDelta = LineState;

/// One movement to record. Stock deltas apply to `(sku, location)`; an entry without a location
/// changes no level (an oversell, a return awaiting restock, a kit's own line entry).
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub kind: EntryKind,
    pub sku: &'a str,
    pub location: Option<&'a str>,
    pub delta_on_hand: i64,
    pub delta_committed: i64,
    pub channel: Option<&'a str>,
    pub order_id: Option<i64>,
    pub line_id: Option<&'a str>,
    pub reservation_id: Option<i64>,
    pub allocation_id: Option<i64>,
    pub line_delta: Option<LineDelta>,
    pub detail: Option<Json>,
}

impl<'a> NewEntry<'a> {
    pub fn new(kind: EntryKind, sku: &'a str, location: Option<&'a str>) -> Self {
        Self {
            kind,
            sku,
            location,
            delta_on_hand: 0,
            delta_committed: 0,
            channel: None,
            order_id: None,
            line_id: None,
            reservation_id: None,
            allocation_id: None,
            line_delta: None,
            detail: None,
        }
    }
}

/// Applies the entry's deltas to its level (creating the level at zero) and appends the entry;
/// an entry with no stock delta leaves every level alone (its `*_after` fields stay empty).
/// Refuses, changing nothing, a change that would make on_hand or committed negative or put
/// committed above on_hand. Returns the level after the change.
pub fn record(sql: &mut dyn Sql, ctx: &Ctx, entry: &NewEntry<'_>) -> Result<Option<(i64, i64)>> {
    let after = match entry.location {
        Some(location) if entry.delta_on_hand != 0 || entry.delta_committed != 0 => {
            let after = change_level(sql, entry, location)?;
            // What channels may sell changed: every channel that lists it is marked when this
            // unit of work ends (once per SKU), in this same transaction, so that the change is
            // pushed even if the process dies right after.
            sql.defer_push_mark(entry.sku);
            Some(after)
        }
        _ => None,
    };
    let now = sql.now_ms();
    append(sql, &[(ctx, entry, after)], now)?;
    Ok(after)
}

/// Records entries made under levels this unit of work already holds (read, and locked where
/// other writers run): `levels` is each level's `(on_hand, committed)` as read. Each entry's
/// level after it follows from the ones before, so every level changes in one statement for
/// all its entries, and the entries are appended together. Refuses, changing nothing, entries
/// that would break `0 ≤ committed ≤ on_hand` anywhere along the way, or whose level is not in
/// `levels`.
pub fn record_together(
    sql: &mut dyn Sql,
    entries: &[(&Ctx, NewEntry<'_>)],
    levels: &BTreeMap<(String, String), (i64, i64)>,
) -> Result<()> {
    let mut now_levels = levels.clone();
    let mut rows = Vec::with_capacity(entries.len());
    for (ctx, entry) in entries {
        let after = match entry.location {
            Some(location) if entry.delta_on_hand != 0 || entry.delta_committed != 0 => {
                let key = (entry.sku.to_owned(), location.to_owned());
                let Some(level) = now_levels.get_mut(&key) else {
                    return Err(StoreError::Invalid(format!(
                        "{} at {location} was not read before its change",
                        entry.sku
                    )));
                };
                let (on_hand, committed) = *level;
                let next = (
                    on_hand + entry.delta_on_hand,
                    committed + entry.delta_committed,
                );
                if next.0 < 0 || next.1 < 0 || next.1 > next.0 {
                    return Err(level_conflict(entry, location, (on_hand, committed)));
                }
                *level = next;
                sql.defer_push_mark(entry.sku);
                Some(next)
            }
            _ => None,
        };
        rows.push((*ctx, entry, after));
    }
    let changed: Vec<(&(String, String), Counts, Counts)> = now_levels
        .iter()
        .filter_map(|(key, after)| {
            let before = levels[key];
            (*after != before).then_some((key, before, *after))
        })
        .collect();
    // One statement per chunk of levels, all sent together. Each row's level must still be what
    // was read: then the whole change is the one the entries describe, and the rows each
    // statement answers prove it.
    let mut updates = Vec::new();
    for chunk in row_chunks(changed.len()) {
        let part = &changed[chunk];
        let select = (0..part.len())
            .map(|i| {
                let b = i * 6;
                format!(
                    "SELECT ?{} AS sku, ?{} AS location, CAST(?{} AS BIGINT) AS on_hand_before,
                            CAST(?{} AS BIGINT) AS committed_before,
                            CAST(?{} AS BIGINT) AS on_hand_after,
                            CAST(?{} AS BIGINT) AS committed_after",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let mut params = Vec::with_capacity(part.len() * 6);
        for ((sku, location), before, after) in part {
            params.extend([
                Value::from(sku.as_str()),
                Value::from(location.as_str()),
                Value::Int(before.0),
                Value::Int(before.1),
                Value::Int(after.0),
                Value::Int(after.1),
            ]);
        }
        updates.push((
            format!(
                "UPDATE stock_levels SET on_hand = v.on_hand_after, committed = v.committed_after
                 FROM ({select}) AS v
                 WHERE stock_levels.sku = v.sku AND stock_levels.location = v.location
                   AND stock_levels.on_hand = v.on_hand_before
                   AND stock_levels.committed = v.committed_before
                 RETURNING 1"
            ),
            params,
        ));
    }
    let updated: usize = sql.query_all(&updates)?.iter().map(Vec::len).sum();
    if updated != changed.len() {
        return Err(StoreError::StockConflict(format!(
            "{} of {} stock levels changed since they were read",
            changed.len() - updated,
            changed.len()
        )));
    }
    let now = sql.now_ms();
    append(sql, &rows, now)
}

/// `(on_hand, committed)` of a level.
type Counts = (i64, i64);

/// An entry to append, with who made it and the level it left behind (`None`: it changed none).
type Appended<'a, 'b> = (&'a Ctx, &'a NewEntry<'b>, Option<Counts>);

/// Appends entries to the ledger.
fn append(sql: &mut dyn Sql, rows: &[Appended<'_, '_>], at: i64) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sql.before_ledger_insert()?;
    const COLUMNS: usize = 18;
    for chunk in row_chunks(rows.len()) {
        let part = &rows[chunk];
        let mut params = Vec::with_capacity(part.len() * COLUMNS);
        for (ctx, entry, after) in part {
            params.extend([
                Value::Int(at),
                entry.kind.as_str().into(),
                entry.sku.into(),
                entry.location.into(),
                entry.delta_on_hand.into(),
                entry.delta_committed.into(),
                after.map(|a| a.0).into(),
                after.map(|a| a.1).into(),
                ctx.source.as_str().into(),
                ctx.correlation_id.as_str().into(),
                ctx.idempotency_key.as_deref().into(),
                entry.channel.into(),
                entry.order_id.into(),
                entry.line_id.into(),
                entry.reservation_id.into(),
                entry.allocation_id.into(),
                entry.line_delta.map(|d| line_delta_json(&d)).into(),
                entry.detail.as_ref().map(Json::to_string).into(),
            ]);
        }
        sql.execute_later(
            &format!(
                "INSERT INTO ledger (at, kind, sku, location, delta_on_hand, delta_committed,
                     on_hand_after, committed_after, source, correlation_id, idempotency_key,
                     channel, order_id, line_id, reservation_id, allocation_id, line_delta, detail)
                 VALUES {}",
                value_rows(COLUMNS, part.len())
            ),
            &params,
        )?;
    }
    Ok(())
}

/// The stored form of a line delta: only the fields that changed.
fn line_delta_json(d: &LineDelta) -> String {
    let mut map = serde_json::Map::new();
    for (name, v) in [
        ("committed", d.committed),
        ("short", d.short),
        ("shipped", d.shipped),
        ("cancelled", d.cancelled),
        ("returned", d.returned),
        ("restocked", d.restocked),
    ] {
        if v != 0 {
            map.insert(name.into(), json!(v));
        }
    }
    Json::Object(map).to_string()
}

/// Reads a stored line delta back.
pub fn parse_line_delta(raw: &str) -> LineDelta {
    let v: Json = serde_json::from_str(raw).unwrap_or(Json::Null);
    let get = |k: &str| v.get(k).and_then(Json::as_i64).unwrap_or(0);
    LineState {
        committed: get("committed"),
        short: get("short"),
        shipped: get("shipped"),
        cancelled: get("cancelled"),
        returned: get("returned"),
        restocked: get("restocked"),
    }
}

/// `(on_hand, committed)` of one SKU at one location; zero when never stocked.
/// With concurrent writers the level is locked until the transaction ends, so that what is read
/// stays true for the change that follows.
pub fn level(sql: &mut dyn Sql, sku: &str, location: &str) -> Result<(i64, i64)> {
    let lock = sql.for_update();
    Ok(sql
        .query_opt(
            &format!(
                "SELECT on_hand, committed FROM stock_levels WHERE sku = ?1 AND location = ?2{lock}"
            ),
            args![sku, location],
        )?
        .map_or((0, 0), |r| (r.int(0), r.int(1))))
}

/// The single conditional statement that changes a level: it changes nothing when the result
/// would break `0 ≤ committed ≤ on_hand`.
fn change_level(sql: &mut dyn Sql, entry: &NewEntry<'_>, location: &str) -> Result<(i64, i64)> {
    let (d_on_hand, d_committed) = (entry.delta_on_hand, entry.delta_committed);
    let updated = sql.query_opt(
        "UPDATE stock_levels SET on_hand = on_hand + ?3, committed = committed + ?4
         WHERE sku = ?1 AND location = ?2
           AND on_hand + ?3 >= 0 AND committed + ?4 >= 0 AND committed + ?4 <= on_hand + ?3
         RETURNING on_hand, committed",
        args![entry.sku, location, d_on_hand, d_committed],
    )?;
    if let Some(row) = updated {
        return Ok((row.int(0), row.int(1)));
    }
    let (on_hand, committed) = level(sql, entry.sku, location)?;
    let exists = sql
        .query_opt(
            "SELECT 1 FROM stock_levels WHERE sku = ?1 AND location = ?2",
            args![entry.sku, location],
        )?
        .is_some();
    let (new_on_hand, new_committed) = (on_hand + d_on_hand, committed + d_committed);
    if exists || new_on_hand < 0 || new_committed < 0 || new_committed > new_on_hand {
        return Err(level_conflict(entry, location, (on_hand, committed)));
    }
    sql.execute(
        "INSERT INTO stock_levels (sku, location, on_hand, committed) VALUES (?1, ?2, ?3, ?4)",
        args![entry.sku, location, new_on_hand, new_committed],
    )?;
    Ok((new_on_hand, new_committed))
}

/// The refusal of an entry's change of a level that would break `0 ≤ committed ≤ on_hand`.
fn level_conflict(
    entry: &NewEntry<'_>,
    location: &str,
    (on_hand, committed): Counts,
) -> StoreError {
    let (d_on_hand, d_committed) = (entry.delta_on_hand, entry.delta_committed);
    StoreError::StockConflict(format!(
        "{} at {location} has on_hand {on_hand} and committed {committed}; a change of \
         {d_on_hand:+} on_hand and {d_committed:+} committed would leave on_hand {} and \
         committed {}, and on_hand may not fall below committed or 0",
        entry.sku,
        on_hand + d_on_hand,
        committed + d_committed
    ))
}

const ENTRY_COLUMNS: &str = "l.seq, l.at, l.kind, l.sku, l.location, l.delta_on_hand,
    l.delta_committed, l.on_hand_after, l.committed_after, l.source, l.correlation_id,
    l.idempotency_key, l.channel, o.channel, o.external_id, l.line_id, l.reservation_id,
    l.line_delta, l.detail";

fn entry_from_row(r: &Row) -> LedgerEntry {
    let parse = |raw: Option<String>| raw.and_then(|s| serde_json::from_str(&s).ok());
    LedgerEntry {
        seq: r.int(0),
        at_ms: r.int(1),
        kind: r.text(2),
        sku: r.text(3),
        location: r.opt_text(4),
        delta_on_hand: r.int(5),
        delta_committed: r.int(6),
        on_hand_after: r.opt_int(7),
        committed_after: r.opt_int(8),
        source: r.text(9),
        correlation_id: r.text(10),
        idempotency_key: r.opt_text(11),
        channel: r.opt_text(12),
        order: r.opt_text(13).map(|channel| OrderKey {
            channel,
            external_id: r.text(14),
        }),
        line_id: r.opt_text(15),
        reservation_id: r.opt_int(16),
        line_delta: parse(r.opt_text(17)),
        detail: parse(r.opt_text(18)),
    }
}

/// Ledger entries matching every given filter, in sequence order, at most `limit`. Oldest first,
/// a page never reaches past an entry whose transaction is still open (`Sql::ledger_tail_bound`),
/// so that a reader following `next_cursor` never skips an entry that commits late; run it with
/// `Store::read_latest`.
pub fn query(sql: &mut dyn Sql, q: &LedgerQuery) -> Result<Vec<LedgerEntry>> {
    let tail_bound = if q.newest_first {
        None
    } else {
        sql.ledger_tail_bound()?
    };
    let mut clauses = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    let mut bind = |clause: &str, v: Value, params: &mut Vec<Value>| {
        params.push(v);
        clauses.push(clause.replace('#', &format!("?{}", params.len())));
    };
    if let Some(sku) = &q.sku {
        bind("l.sku = #", sku.into(), &mut params);
    }
    if let Some(order) = &q.order {
        bind("o.channel = #", order.channel.as_str().into(), &mut params);
        bind(
            "o.external_id = #",
            order.external_id.as_str().into(),
            &mut params,
        );
    }
    if let Some(channel) = &q.channel {
        bind("l.channel = #", channel.into(), &mut params);
    }
    if let Some(source) = &q.source {
        bind("l.source = #", source.into(), &mut params);
    }
    if let Some(kind) = q.kind {
        bind("l.kind = #", kind.as_str().into(), &mut params);
    }
    if let Some(from) = q.from_ms {
        bind("l.at >= #", from.into(), &mut params);
    }
    if let Some(to) = q.to_ms {
        bind("l.at < #", to.into(), &mut params);
    }
    if let Some(bound) = tail_bound {
        bind("l.seq <= #", bound.into(), &mut params);
    }
    if let Some(cursor) = q.cursor {
        let clause = if q.newest_first {
            "l.seq < #"
        } else {
            "l.seq > #"
        };
        bind(clause, cursor.into(), &mut params);
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let order = if q.newest_first { "DESC" } else { "ASC" };
    params.push(q.limit.into());
    let sql_text = format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger l LEFT JOIN orders o ON o.id = l.order_id
         {filter} ORDER BY l.seq {order} LIMIT ?{}",
        params.len()
    );
    Ok(sql
        .query(&sql_text, &params)?
        .iter()
        .map(entry_from_row)
        .collect())
}

/// Every entry of one order (its lines, kit components and the reservation it came from).
pub fn for_order(sql: &mut dyn Sql, order_id: i64) -> Result<Vec<LedgerEntry>> {
    let rows = sql.query(
        &format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger l LEFT JOIN orders o ON o.id = l.order_id
             WHERE l.order_id = ?1
                OR l.reservation_id IN (SELECT id FROM reservations WHERE order_id = ?1)
             ORDER BY l.seq"
        ),
        args![order_id],
    )?;
    Ok(rows.iter().map(entry_from_row).collect())
}
