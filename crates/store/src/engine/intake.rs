//! Channel orders and refunds into order snapshots. A connector reports an order as the channel
//! shows it (lines with their ordered and fulfilled units, embedded refunds) and refunds on their
//! own; refunds are kept per order and merged by id, so a refund applies exactly once whether it
//! arrives before its order, inside it, or after it. Refunded units come off the unshipped units
//! first (released); the rest were shipped and come back as returns, restocked when the refund
//! says so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
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
    /// Units ordered before refunds.
    pub quantity: i64,
    /// Units the channel fulfilled.
    pub shipped: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundLineInput {
    pub line_id: String,
    pub quantity: i64,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelOrderInput {
    pub external_id: String,
    pub version: i64,
    /// Whether the channel's state table says the order still wants its unshipped units.
    pub open: bool,
    pub lines: Vec<ChannelLineInput>,
    pub refunds: Vec<RefundInput>,
    /// The payload as the channel sent it.
    pub raw: Json,
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

/// Refunded units per line: (all, those to restock if they had shipped).
fn refunded(
    sql: &mut dyn Sql,
    channel: &str,
    external_id: &str,
) -> Result<BTreeMap<String, (i64, i64)>> {
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in sql.query(
        "SELECT lines FROM channel_refunds WHERE channel = ?1 AND external_id = ?2 ORDER BY refund_id",
        args![channel, external_id],
    )? {
        let lines: Vec<RefundLineInput> = serde_json::from_str(&r.text(0)).unwrap_or_default();
        for l in lines {
            let e = out.entry(l.line_id).or_default();
            e.0 += l.quantity.max(0);
            if l.restock {
                e.1 += l.quantity.max(0);
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
    store_refunds(sql, channel.as_str(), &order.refunds)?;
    let refunds = refunded(sql, channel.as_str(), &order.external_id)?;
    let mut lines = Vec::with_capacity(order.lines.len());
    for line in &order.lines {
        let (refunded, restockable) = refunds.get(&line.line_id).copied().unwrap_or((0, 0));
        let shipped = line.shipped.clamp(0, line.quantity.max(0));
        let unshipped = line.quantity.max(0) - shipped;
        let released = refunded.min(unshipped);
        let returned = (refunded - released).min(shipped);
        lines.push(SnapshotLine {
            line_id: line.line_id.clone(),
            channel_sku: line_sku(sql, channel.as_str(), line)?,
            quantity: line.quantity.max(0) - released,
            fulfilment: Some(LineFulfilment {
                shipped,
                returned,
                restocked: restockable.min(returned),
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
        raw: serde_json::to_value(order).unwrap_or(Json::Null),
    };
    orders::apply_snapshot(sql, ctx, &snapshot)
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
    let stored = sql
        .query_opt(
            "SELECT snapshot FROM orders WHERE channel = ?1 AND external_id = ?2",
            args![channel.as_str(), refund.external_id.as_str()],
        )?
        .and_then(|r| serde_json::from_str::<ChannelOrderInput>(&r.text(0)).ok());
    match stored {
        Some(order) => apply_channel_order(sql, ctx, channel, &order).map(Some),
        None => Ok(None),
    }
}
