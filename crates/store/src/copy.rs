//! Moving a whole store to another backend (`stockhub migrate-store`): every table — ledger,
//! projections, orders, listings, the inbound archive, pending pushes — copied row for row with
//! its ids, then checked: the same number of rows in every table, the same stock levels, and the
//! target's ledger rebuilding its projections exactly (`verify`).

use crate::engine::verify::{self, VerifyReport};
use crate::error::{Result, StoreError};
use crate::sql::{Row, Value};
use crate::Store;

/// Every table of the schema, parents before children. `tables_cover_the_schema` (tests) keeps
/// this list in step with the migrations.
pub const TABLES: &[&str] = &[
    "products",
    "variants",
    "kit_components",
    "locations",
    "channels",
    "sku_aliases",
    "orders",
    "order_lines",
    "reservations",
    "allocations",
    "stock_levels",
    "ledger",
    "idempotency_keys",
    "listings",
    "push_marks",
    "inbound_events",
    "channel_refunds",
    "discovery_reports",
    "drifts",
    "channel_cursors",
    "scheduled_runs",
];

/// Rows read and written per unit of work.
const BATCH_ROWS: i64 = 500;

/// What one table's copy found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    pub source_rows: i64,
    pub target_rows: i64,
}

/// The outcome of a copy and its checks.
#[derive(Debug)]
pub struct CopyReport {
    pub tables: Vec<TableCopy>,
    pub levels_equal: bool,
    pub verify: VerifyReport,
}

impl CopyReport {
    /// Every count matches, the stock levels are equal and the target verifies clean.
    pub fn is_exact(&self) -> bool {
        self.levels_equal
            && self.verify.differences.is_empty()
            && self.tables.iter().all(|t| t.source_rows == t.target_rows)
    }
}

async fn count(store: &Store, table: &'static str) -> Result<i64> {
    store
        .read(move |sql| Ok(sql.query(&format!("SELECT COUNT(*) FROM {table}"), &[])?[0].int(0)))
        .await
}

/// The column names of a table of a SQLite store, in their stored order.
async fn columns(store: &Store, table: &'static str) -> Result<Vec<String>> {
    let names = store
        .read(move |sql| {
            let rows = sql.query(
                &format!("SELECT name FROM pragma_table_info('{table}')"),
                &[],
            )?;
            Ok(rows.iter().map(|r| r.text(0)).collect::<Vec<String>>())
        })
        .await?;
    if names.is_empty() {
        return Err(StoreError::Invalid(format!(
            "the source has no table {table}"
        )));
    }
    Ok(names)
}

/// Copies every row of `from` (a SQLite store; nothing may write to it meanwhile) into `to`,
/// which must be empty, keeping every id; then checks the copy. `progress` hears of each table.
pub async fn copy_store(
    from: &Store,
    to: &Store,
    mut progress: impl FnMut(&TableCopy),
) -> Result<CopyReport> {
    if from.kind() != "sqlite" {
        return Err(StoreError::Invalid(
            "migrate-store copies from a SQLite store".into(),
        ));
    }
    for table in TABLES {
        if count(to, table).await? > 0 {
            return Err(StoreError::Invalid(format!(
                "the target is not empty (table {table} has rows); migrate into a new database"
            )));
        }
    }
    let mut tables = Vec::new();
    for &table in TABLES {
        let names = columns(from, table).await?;
        let column_list = names.join(", ");
        let mut after = 0i64;
        loop {
            let select = format!(
                "SELECT rowid, {column_list} FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
            );
            let rows: Vec<Row> = from
                .read(move |sql| sql.query(&select, &[Value::Int(after), Value::Int(BATCH_ROWS)]))
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.int(0);
            let width = names.len();
            let mut params = Vec::with_capacity(rows.len() * width);
            let mut tuples = Vec::with_capacity(rows.len());
            for row in &rows {
                let start = params.len();
                params.extend(row.0[1..].iter().cloned());
                let marks: Vec<String> = (start + 1..=start + width)
                    .map(|i| format!("?{i}"))
                    .collect();
                tuples.push(format!("({})", marks.join(", ")));
            }
            let insert = format!(
                "INSERT INTO {table} ({column_list}) VALUES {}",
                tuples.join(", ")
            );
            to.write(move |sql| sql.execute(&insert, &params)).await?;
            if (rows.len() as i64) < BATCH_ROWS {
                break;
            }
        }
        let copied = TableCopy {
            table,
            source_rows: count(from, table).await?,
            target_rows: count(to, table).await?,
        };
        progress(&copied);
        tables.push(copied);
    }
    if to.kind() == "postgres" {
        // Generated ids continue after the copied ones.
        to.write(|sql| {
            let identities = sql.query(
                "SELECT table_name::text, column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND is_identity = 'YES'",
                &[],
            )?;
            for r in identities {
                let (table, column) = (r.text(0), r.text(1));
                sql.query(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                                       COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
                    ),
                    &[],
                )?;
            }
            Ok(())
        })
        .await?;
    }
    let levels =
        "SELECT sku, location, on_hand, committed FROM stock_levels ORDER BY sku, location";
    let source_levels = from.read(move |sql| sql.query(levels, &[])).await?;
    let target_levels = to.read(move |sql| sql.query(levels, &[])).await?;
    let levels_equal = source_levels.len() == target_levels.len()
        && source_levels
            .iter()
            .zip(&target_levels)
            .all(|(a, b)| a.0 == b.0);
    let verify = to.read(verify::verify).await?;
    Ok(CopyReport {
        tables,
        levels_equal,
        verify,
    })
}
