//! Channel orders and refunds into order snapshots. A connector reports an order as the channel
//! shows it (lines with their ordered and fulfilled units, embedded refunds) and refunds on their
//! own; refunds are kept per order and merged by id, so a refund applies exactly once whether it
//! arrives before its order, inside it, or after it. Refunded units come off the unshipped units
//! first (released); the rest were shipped and come back as returns, restocked when the refund
//! says so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use stockhub_core::{Code, OrderStatus};

use super::{listings, orders};
use crate::args;
use crate::error::Result;
use crate::model::{Ctx, LineFulfilment, OrderOutcome, OrderSnapshot, SnapshotLine};
use crate::sql::Sql;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelLineInput {
    pub line_id: String,
    pub sku: Option<String>,
    pub variant_ref: Option<String>,
    /// Units on the line (before refunds).
    pub quantity: i64,
    /// Units ordered when the order was placed (for the record; 0 when unknown).
    #[serde(default)]
    pub ordered: i64,
    /// Units the channel fulfilled.
    pub shipped: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundLineInput {
    pub line_id: String,
    pub quantity: i64,
    /// Whether the refunded units had shipped, when the channel says; `None`: unshipped first.
    #[serde(default)]
    pub shipped: Option<bool>,
    pub restock: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundInput {
    pub refund_id: String,
    pub external_id: String,
    pub lines: Vec<RefundLineInput>,
}

/// A channel order, normalized; stored as the order's snapshot so that a refund arriving on its
/// own can re-apply it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelOrderInput {
    pub external_id: String,
    pub version: i64,
    /// Whether the channel's state table says the order still wants its unshipped units.
    pub open: bool,
    pub lines: Vec<ChannelLineInput>,
    pub refunds: Vec<RefundInput>,
    /// The payload as the channel sent it, as JSON text: it is only stored and shown, so it is
    /// never taken apart again (the writer copies it as it is).
    pub raw: Box<RawValue>,
}

impl ChannelOrderInput {
    /// The snapshot stored with the order: this input as JSON text.
    pub fn stored_form(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The channel order last applied, as stored with the order.
pub fn stored_order(
    sql: &mut dyn Sql,
    channel: &str,
    external_id: &str,
) -> Result<Option<ChannelOrderInput>> {
    Ok(stored_text(sql, channel, external_id)?.and_then(|text| serde_json::from_str(&text).ok()))
}

/// The stored form (`ChannelOrderInput::stored_form`) of the channel order last applied.
fn stored_text(sql: &mut dyn Sql, channel: &str, external_id: &str) -> Result<Option<String>> {
    Ok(sql
        .query_opt(
            "SELECT snapshot FROM orders WHERE channel = ?1 AND external_id = ?2",
            args![channel, external_id],
        )?
        .map(|r| r.text(0)))
}

fn store_refunds(sql: &mut dyn Sql, channel: &str, refunds: &[RefundInput]) -> Result<()> {
    let now = sql.now_ms();
    for r in refunds {
        sql.execute(
            "INSERT INTO channel_refunds (channel, refund_id, external_id, lines, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (channel, refund_id) DO NOTHING",
            args![
                channel,
                r.refund_id.as_str(),
                r.external_id.as_str(),
                serde_json::to_string(&r.lines).unwrap_or_default(),
                now
            ],
        )?;
    }
    Ok(())
}

/// Refunded units of one line, by what the channel said of them.
#[derive(Debug, Clone, Copy, Default)]
struct Refunded {
    /// Units the channel said had not shipped (cancelled before fulfilment).
    unshipped: i64,
    /// Units the channel said had shipped (returns).
    shipped: i64,
    /// Units the channel did not say either way.
    unknown: i64,
    /// Units, of those that may have shipped, to put back on the shelf.
    restock: i64,
}

impl Refunded {
    /// `(released, returned, restocked)` for a line with `unshipped` and `shipped` units:
    /// unshipped refunds release, shipped ones return, the rest take unshipped units first.
    fn split(&self, unshipped: i64, shipped: i64) -> (i64, i64, i64) {
        let released = (self.unshipped + self.unknown).min(unshipped);
        let returned = (self.shipped + self.unshipped + self.unknown - released).min(shipped);
        (released, returned, self.restock.min(returned))
    }
}

fn refunded(
    sql: &mut dyn Sql,
    channel: &str,
    external_id: &str,
) -> Result<BTreeMap<String, Refunded>> {
    let mut out: BTreeMap<String, Refunded> = BTreeMap::new();
    for r in sql.query(
        "SELECT lines FROM channel_refunds WHERE channel = ?1 AND external_id = ?2 ORDER BY refund_id",
        args![channel, external_id],
    )? {
        let lines: Vec<RefundLineInput> = serde_json::from_str(&r.text(0)).unwrap_or_default();
        for l in lines {
            let e = out.entry(l.line_id).or_default();
            let quantity = l.quantity.max(0);
            match l.shipped {
                Some(true) => e.shipped += quantity,
                Some(false) => e.unshipped += quantity,
                None => e.unknown += quantity,
            }
            if l.restock && l.shipped != Some(false) {
                e.restock += quantity;
            }
        }
    }
    Ok(out)
}

/// Applies a channel order with every refund known for it.
pub fn apply_channel_order(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    channel: &Code,
    order: &ChannelOrderInput,
) -> Result<OrderOutcome> {
    apply_order(sql, ctx, channel, order, false)
}

/// `news`: the channel reported something new for this order even if its snapshot reads the
/// same (a refund that arrived on its own).
fn apply_order(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    channel: &Code,
    order: &ChannelOrderInput,
    news: bool,
) -> Result<OrderOutcome> {
    store_refunds(sql, channel.as_str(), &order.refunds)?;
    let refunds = refunded(sql, channel.as_str(), &order.external_id)?;
    let mut lines = Vec::with_capacity(order.lines.len());
    for line in &order.lines {
        let quantity = line.quantity.max(0);
        let shipped = line.shipped.clamp(0, quantity);
        let (released, returned, restocked) = refunds
            .get(&line.line_id)
            .copied()
            .unwrap_or_default()
            .split(quantity - shipped, shipped);
        lines.push(SnapshotLine {
            line_id: line.line_id.clone(),
            channel_sku: line_sku(sql, channel.as_str(), line)?,
            quantity: quantity - released,
            fulfilment: Some(LineFulfilment {
                ordered: line.ordered.max(quantity),
                shipped,
                returned,
                restocked,
            }),
        });
    }
    let snapshot = OrderSnapshot {
        channel: channel.clone(),
        external_id: order.external_id.clone(),
        version: Some(order.version),
        status: if order.open {
            OrderStatus::Open
        } else {
            OrderStatus::Cancelled
        },
        lines,
        raw: order.stored_form(),
    };
    let seen_before = !news
        && stored_text(sql, channel.as_str(), &order.external_id)?
            .is_some_and(|stored| stored == snapshot.raw);
    let outcome = orders::apply_snapshot(sql, ctx, &snapshot)?;
    if seen_before || outcome.outcome == "stale" {
        // The very report already applied (a backfill re-reading it, a repeat): nothing moved on
        // the channel either. Any other report may have moved the channel's own count (a status
        // the store restocks on, say), so it is brought back to ours below.
        return Ok(outcome);
    }
    // The channel changed its own count for these SKUs (its sale, its cancel, its refund): bring
    // it back to ours even when our stock did not move (an oversold line, a no-restock refund).
    // Where it moved, every channel listing the SKU is marked when the unit ends anyway.
    for line in &outcome.order.lines {
        if let Some(sku) = line
            .sku
            .as_deref()
            .filter(|sku| !sql.push_mark_deferred(sku))
        {
            super::pushes::mark_channel_sku(sql, channel.as_str(), sku)?;
        }
    }
    Ok(outcome)
}

/// The SKU to book a line under: the channel's SKU when it is ours, else the SKU of the listing
/// the line's variant belongs to, else the channel's SKU (or variant) for the unmapped queue.
fn line_sku(sql: &mut dyn Sql, channel: &str, line: &ChannelLineInput) -> Result<String> {
    let sku = line.sku.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(sku) = sku {
        if sql
            .query_opt("SELECT 1 FROM variants WHERE sku = ?1", args![sku])?
            .is_some()
        {
            return Ok(sku.to_owned());
        }
    }
    if let Some(variant) = &line.variant_ref {
        if let Some(mapped) = listings::sku_for_variant(sql, channel, variant)? {
            return Ok(mapped);
        }
    }
    Ok(match (sku, &line.variant_ref) {
        (Some(sku), _) => sku.to_owned(),
        (None, Some(variant)) => format!("variant:{variant}"),
        (None, None) => String::new(),
    })
}

/// Records a refund and, when its order is known, re-applies the order with it. Returns the
/// order's outcome, or `None` when the order has not arrived yet (the refund waits for it).
pub fn apply_channel_refund(
    sql: &mut dyn Sql,
    ctx: &Ctx,
    channel: &Code,
    refund: &RefundInput,
) -> Result<Option<OrderOutcome>> {
    store_refunds(sql, channel.as_str(), std::slice::from_ref(refund))?;
    match stored_order(sql, channel.as_str(), &refund.external_id)? {
        Some(order) => apply_order(sql, ctx, channel, &order, true).map(Some),
        None => Ok(None),
    }
}
