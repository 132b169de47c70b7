//! Rebuilds every projection from the ledger and compares it with what is stored: the stock
//! levels, each order line's state, the running `*_after` figures of the ledger itself, and the
//! allocations that explain every committed unit. Any difference is corruption.

use std::collections::BTreeMap;

use serde::Serialize;
use stockhub_core::LineState;

use super::ledger::parse_line_delta;
use crate::error::Result;
use crate::sql::Sql;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Difference {
    /// `stock_level`, `order_line`, `ledger_running_total` or `allocations`.
    pub projection: &'static str,
    pub key: String,
    pub stored: String,
    pub rebuilt: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyReport {
    pub ledger_entries: i64,
    pub levels_checked: usize,
    pub lines_checked: usize,
    pub differences: Vec<Difference>,
}

pub fn verify(sql: &mut dyn Sql) -> Result<VerifyReport> {
    let mut differences = Vec::new();
    let ledger_entries = sql
        .query_opt("SELECT COUNT(*) FROM ledger", &[])?
        .map_or(0, |r| r.int(0));
    let levels_checked = check_levels(sql, &mut differences)?;
    check_running_totals(sql, &mut differences)?;
    let lines_checked = check_lines(sql, &mut differences)?;
    check_allocations(sql, &mut differences)?;
    Ok(VerifyReport {
        ledger_entries,
        levels_checked,
        lines_checked,
        differences,
    })
}

fn pair((a, b): (i64, i64)) -> String {
    format!("on_hand {a}, committed {b}")
}

fn check_levels(sql: &mut dyn Sql, out: &mut Vec<Difference>) -> Result<usize> {
    let mut rebuilt: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for r in sql.query(
        "SELECT sku, location, SUM(delta_on_hand), SUM(delta_committed) FROM ledger
         WHERE location IS NOT NULL GROUP BY sku, location",
        &[],
    )? {
        rebuilt.insert((r.text(0), r.text(1)), (r.int(2), r.int(3)));
    }
    let mut stored: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for r in sql.query(
        "SELECT sku, location, on_hand, committed FROM stock_levels",
        &[],
    )? {
        stored.insert((r.text(0), r.text(1)), (r.int(2), r.int(3)));
    }
    let mut keys: Vec<_> = rebuilt.keys().chain(stored.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    for key in &keys {
        let s = stored.get(key).copied().unwrap_or((0, 0));
        let b = rebuilt.get(key).copied().unwrap_or((0, 0));
        if s != b {
            out.push(Difference {
                projection: "stock_level",
                key: format!("{} @ {}", key.0, key.1),
                stored: pair(s),
                rebuilt: pair(b),
            });
        }
    }
    Ok(keys.len())
}

/// Each entry's `on_hand_after`/`committed_after` must equal the running sum of its level.
fn check_running_totals(sql: &mut dyn Sql, out: &mut Vec<Difference>) -> Result<()> {
    let mut running: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for r in sql.query(
        "SELECT seq, sku, location, delta_on_hand, delta_committed, on_hand_after, committed_after
         FROM ledger WHERE location IS NOT NULL AND on_hand_after IS NOT NULL ORDER BY seq",
        &[],
    )? {
        let total = running.entry((r.text(1), r.text(2))).or_default();
        total.0 += r.int(3);
        total.1 += r.int(4);
        let after = (r.int(5), r.int(6));
        if *total != after {
            out.push(Difference {
                projection: "ledger_running_total",
                key: format!("seq {} ({} @ {})", r.int(0), r.text(1), r.text(2)),
                stored: pair(after),
                rebuilt: pair(*total),
            });
            *total = after;
        }
    }
    Ok(())
}

fn check_lines(sql: &mut dyn Sql, out: &mut Vec<Difference>) -> Result<usize> {
    let mut rebuilt: BTreeMap<(i64, String), LineState> = BTreeMap::new();
    for r in sql.query(
        "SELECT order_id, line_id, line_delta FROM ledger WHERE line_delta IS NOT NULL ORDER BY seq",
        &[],
    )? {
        let d = parse_line_delta(&r.text(2));
        let s = rebuilt.entry((r.int(0), r.text(1))).or_default();
        s.committed += d.committed;
        s.short += d.short;
        s.shipped += d.shipped;
        s.cancelled += d.cancelled;
        s.returned += d.returned;
        s.restocked += d.restocked;
    }
    let rows = sql.query(
        "SELECT order_id, line_id, committed, short, shipped, cancelled, returned, restocked
         FROM order_lines",
        &[],
    )?;
    let count = rows.len();
    for r in rows {
        let key = (r.int(0), r.text(1));
        let stored = LineState {
            committed: r.int(2),
            short: r.int(3),
            shipped: r.int(4),
            cancelled: r.int(5),
            returned: r.int(6),
            restocked: r.int(7),
        };
        let b = rebuilt.remove(&key).unwrap_or_default();
        if stored != b || !stored.is_consistent() {
            out.push(Difference {
                projection: "order_line",
                key: format!("order {} line {}", key.0, key.1),
                stored: format!("{stored:?}"),
                rebuilt: format!("{b:?}"),
            });
        }
    }
    for (key, b) in rebuilt {
        out.push(Difference {
            projection: "order_line",
            key: format!("order {} line {}", key.0, key.1),
            stored: "missing".into(),
            rebuilt: format!("{b:?}"),
        });
    }
    Ok(count)
}

/// Every committed unit is explained by an allocation of an order line or a reservation.
fn check_allocations(sql: &mut dyn Sql, out: &mut Vec<Difference>) -> Result<()> {
    let mut from_allocations: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in sql.query(
        "SELECT location, recipe, committed FROM allocations WHERE committed > 0",
        &[],
    )? {
        let recipe: Vec<(String, i64)> = serde_json::from_str(&r.text(1)).unwrap_or_default();
        for (sku, per_unit) in recipe {
            *from_allocations.entry((sku, r.text(0))).or_default() += per_unit * r.int(2);
        }
    }
    for r in sql.query(
        "SELECT sku, location, committed FROM stock_levels WHERE committed > 0",
        &[],
    )? {
        let key = (r.text(0), r.text(1));
        let explained = from_allocations.remove(&key).unwrap_or(0);
        if explained != r.int(2) {
            out.push(Difference {
                projection: "allocations",
                key: format!("{} @ {}", key.0, key.1),
                stored: format!("committed {}", r.int(2)),
                rebuilt: format!("allocated {explained}"),
            });
        }
    }
    for ((sku, location), explained) in from_allocations {
        out.push(Difference {
            projection: "allocations",
            key: format!("{sku} @ {location}"),
            stored: "committed 0".into(),
            rebuilt: format!("allocated {explained}"),
        });
    }
    Ok(())
}
