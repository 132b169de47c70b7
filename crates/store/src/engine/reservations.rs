//! Reservations: the no-oversell path for a storefront or POS that asks first. A reservation
//! succeeds only if the quantity is available to sell on its channel in the same transaction;
//! expiry is judged by the database clock, so an expired reservation cannot be confirmed even
//! before the sweeper has released it.

use std::collections::BTreeSet;

use stockhub_core::{EntryKind, LineState, OrderStatus};

use super::catalog;
use super::ledger::record;
use super::orders;
use super::stock::{self, fill_shortfalls, Holder};
use crate::args;
use crate::error::{Result, StoreError};
use crate::model::{Ctx, OrderKey, OrderView, Reservation, ReserveInput};
use crate::sql::{Row, Sql};

/// The longest a reservation may be held: one week.
pub const EXPIRY_MAX_MS: i64 = 7 * 24 * 3600 * 1000;

pub fn reserve(sql: &mut dyn Sql, ctx: &Ctx, input: &ReserveInput) -> Result<Reservation> {
    let channel = catalog::require_channel(sql, input.channel.as_str())?;
    let sku = input.sku.as_str();
    let variant = sql
        .query_opt(
            "SELECT is_kit, buffer FROM variants WHERE sku = ?1",
            args![sku],
        )?
        .ok_or_else(|| StoreError::not_found("sku", sku))?;
    let (is_kit, buffer) = (variant.int(0) == 1, variant.int(1));
    stock::lock_levels(sql, [sku])?;
    if !(1..=EXPIRY_MAX_MS).contains(&input.expires_in_ms) {
        return Err(StoreError::Invalid(format!(
            "expires_in_seconds must be between 1 and {}",
            EXPIRY_MAX_MS / 1000
        )));
    }
    let feeding = catalog::feeding_locations(sql, &channel)?;
    let quantity = input.quantity.get();
    let mut available = stock::availability_on(sql, sku, is_kit, buffer, &channel)?.available;
    let locations = match &input.location {
        Some(location) => {
            catalog::require_location(sql, location.as_str())?;
            if !feeding.iter().any(|l| l == location.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "location {location} does not feed channel {}; reserve from one of {feeding:?}",
                    channel.code
                )));
            }
            let recipe = stock::current_recipe(sql, sku, is_kit)?;
            available = available.min(stock::free_units_at(sql, &recipe, location.as_str())?);
            vec![location.to_string()]
        }
        None => feeding,
    };
    if quantity > available {
        return Err(StoreError::InsufficientStock {
            sku: sku.to_owned(),
            channel: channel.code,
            requested: quantity,
            available,
        });
    }
    let now = sql.now_ms();
    let id = sql
        .query_opt(
            "INSERT INTO reservations (channel, sku, quantity, status, expires_at, created_at)
             VALUES (?1, ?2, ?3, 'active', ?4, ?5) RETURNING id",
            args![
                channel.code.as_str(),
                sku,
                quantity,
                now + input.expires_in_ms,
                now
            ],
        )?
        .map_or(0, |r| r.int(0));
    let holder = Holder::Reservation {
        id,
        channel: channel.code.clone(),
    };
    let got = stock::allocate(
        sql,
        ctx,
        &holder,
        sku,
        is_kit,
        quantity,
        &locations,
        EntryKind::Reserved,
        &|_| None,
    )?;
    if got != quantity {
        // Available-to-sell never exceeds what is free at the feeding locations, so this is a
        // broken invariant, not a refusal.
        return Err(StoreError::StockConflict(format!(
            "committed {got} of {quantity} units of {sku} although {available} were available"
        )));
    }
    get(sql, id)
}

struct ReservationRow {
    id: i64,
    channel: String,
    sku: String,
    quantity: i64,
    status: String,
    expires_at: i64,
}

/// The reservation, locked with its SKU's stock levels where other transactions write at the
/// same time.
fn require(sql: &mut dyn Sql, id: i64) -> Result<ReservationRow> {
    let lock = sql.for_update();
    let row = sql
        .query_opt(
            &format!(
                "SELECT id, channel, sku, quantity, status, expires_at FROM reservations
                 WHERE id = ?1{lock}"
            ),
            args![id],
        )?
        .map(|r: Row| ReservationRow {
            id: r.int(0),
            channel: r.text(1),
            sku: r.text(2),
            quantity: r.int(3),
            status: r.text(4),
            expires_at: r.int(5),
        })
        .ok_or_else(|| StoreError::not_found("reservation", id.to_string()))?;
    stock::lock_levels(sql, [row.sku.as_str()])?;
    Ok(row)
}

fn require_active(sql: &mut dyn Sql, id: i64, action: &'static str) -> Result<ReservationRow> {
    let r = require(sql, id)?;
    if r.status != "active" {
        return Err(StoreError::ReservationNotActive {
            id: id.to_string(),
            status: r.status,
            action,
        });
    }
    Ok(r)
}

/// Releases an active reservation's units (by its holder, or by the sweeper once expired).
fn end(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    r: &ReservationRow,
    status: &str,
    kind: EntryKind,
) -> Result<()> {
    let holder = Holder::Reservation {
        id: r.id,
        channel: r.channel.clone(),
    };
    let touched: BTreeSet<String> =
        stock::release(sql, ctx, &holder, &r.sku, r.quantity, kind, &|_| None)?;
    sql.execute(
        "UPDATE reservations SET status = ?2 WHERE id = ?1",
        args![r.id, status],
    )?;
    fill_shortfalls(sql, ctx, &touched)
}

pub fn release(sql: &mut dyn Sql, ctx: &Ctx, id: i64) -> Result<Reservation> {
    let r = require_active(sql, id, "released")?;
    end(sql, ctx, &r, "released", EntryKind::ReservationReleased)?;
    get(sql, id)
}

/// Turns an active, unexpired reservation into an order line: the committed units move to the
/// line without being released in between. The order is `external_id` on the reservation's
/// channel (new), or `reservation-<id>` when none is given.
pub fn confirm(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    id: i64,
    external_id: Option<&str>,
) -> Result<OrderView> {
    let r = require_active(sql, id, "confirmed")?;
    if sql.now_ms() >= r.expires_at {
        return Err(StoreError::ReservationExpired {
            id: id.to_string(),
            expires_at_ms: r.expires_at,
        });
    }
    let external_id = external_id.map_or_else(|| format!("reservation-{id}"), str::to_owned);
    let exists = sql
        .query_opt(
            "SELECT 1 FROM orders WHERE channel = ?1 AND external_id = ?2",
            args![r.channel.as_str(), external_id.as_str()],
        )?
        .is_some();
    if exists {
        return Err(StoreError::StockConflict(format!(
            "order {}/{external_id} exists already; confirm into a new order id",
            r.channel
        )));
    }
    let now = sql.now_ms();
    let snapshot =
        serde_json::json!({ "confirmed_reservation": id, "sku": r.sku, "quantity": r.quantity });
    let order_id = sql
        .query_opt(
            "INSERT INTO orders (channel, external_id, version, status, snapshot, created_at, updated_at)
             VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?5) RETURNING id",
            args![r.channel.as_str(), external_id.as_str(), OrderStatus::Open.as_str(), snapshot.to_string(), now],
        )?
        .map_or(0, |row| row.int(0));
    let line_row = sql
        .query_opt(
            "INSERT INTO order_lines (order_id, line_id, channel_sku, sku, wanted, committed)
             VALUES (?1, '1', ?2, ?2, ?3, ?3) RETURNING id",
            args![order_id, r.sku.as_str(), r.quantity],
        )?
        .map_or(0, |row| row.int(0));
    sql.execute(
        "UPDATE allocations SET holder_kind = 'line', holder_id = ?2
         WHERE holder_kind = 'reservation' AND holder_id = ?1",
        args![id.to_string(), line_row.to_string()],
    )?;
    let mut e = super::ledger::NewEntry::new(EntryKind::ReservationConfirmed, &r.sku, None);
    e.channel = Some(&r.channel);
    e.order_id = Some(order_id);
    e.line_id = Some("1");
    e.reservation_id = Some(id);
    e.line_delta = Some(LineState {
        committed: r.quantity,
        ..LineState::default()
    });
    record(sql, ctx, &e)?;
    sql.execute(
        "UPDATE reservations SET status = 'confirmed', order_id = ?2 WHERE id = ?1",
        args![id, order_id],
    )?;
    orders::order_view(sql, order_id)
}

/// Releases up to `limit` reservations whose time has passed by the database clock; returns how
/// many. Run by the sweeper on a schedule.
pub fn expire_due(sql: &mut dyn Sql, ctx: &Ctx, limit: i64) -> Result<usize> {
    let now = sql.now_ms();
    // Sweepers of several processes take different reservations.
    let skip_locked = sql.skip_locked();
    let due: Vec<i64> = sql
        .query(
            &format!(
                "SELECT id FROM reservations WHERE status = 'active' AND expires_at <= ?1
                 ORDER BY expires_at, id LIMIT ?2{skip_locked}"
            ),
            args![now, limit],
        )?
        .iter()
        .map(|r| r.int(0))
        .collect();
    for id in &due {
        let r = require(sql, *id)?;
        end(sql, ctx, &r, "expired", EntryKind::ReservationExpired)?;
    }
    Ok(due.len())
}

pub fn get(sql: &mut dyn Sql, id: i64) -> Result<Reservation> {
    let row = sql
        .query_opt(
            "SELECT r.id, r.channel, r.sku, r.quantity, r.status, r.expires_at, r.created_at,
                    o.channel, o.external_id
             FROM reservations r LEFT JOIN orders o ON o.id = r.order_id WHERE r.id = ?1",
            args![id],
        )?
        .ok_or_else(|| StoreError::not_found("reservation", id.to_string()))?;
    let holder = Holder::Reservation {
        id,
        channel: row.text(1),
    };
    Ok(Reservation {
        id,
        channel: row.text(1),
        sku: row.text(2),
        quantity: row.int(3),
        status: row.text(4),
        expires_at_ms: row.int(5),
        created_at_ms: row.int(6),
        order: row.opt_text(7).map(|channel| OrderKey {
            channel,
            external_id: row.text(8),
        }),
        allocations: stock::allocation_views(sql, &holder)?,
    })
}
