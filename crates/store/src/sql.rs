//! The narrow SQL surface the engine is written against, so that one body of unit-of-work code
//! serves every backend. Statements use numbered placeholders `?1, ?2, …` and only SQL that
//! SQLite and PostgreSQL read alike (`ON CONFLICT`, `RETURNING`, conditional `UPDATE`).

use crate::error::Result;

/// A bound parameter or a returned column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Int(i64::from(v))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Self::Blob(v.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// One result row; columns are read by position, in the order the query selects them.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    pub fn int(&self, i: usize) -> i64 {
        self.opt_int(i).unwrap_or(0)
    }

    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match &self.0[i] {
            Value::Int(v) => Some(*v),
            Value::Text(t) => t.parse().ok(),
            Value::Null | Value::Blob(_) => None,
        }
    }

    pub fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }

    pub fn opt_text(&self, i: usize) -> Option<String> {
        match &self.0[i] {
            Value::Text(t) => Some(t.clone()),
            Value::Int(v) => Some(v.to_string()),
            Value::Blob(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::Null => None,
        }
    }

    pub fn blob(&self, i: usize) -> Vec<u8> {
        match &self.0[i] {
            Value::Blob(b) => b.clone(),
            Value::Text(t) => t.clone().into_bytes(),
            Value::Int(v) => v.to_string().into_bytes(),
            Value::Null => Vec::new(),
        }
    }
}

/// A connection inside an open transaction.
pub trait Sql {
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;

    /// Runs a statement whose answer the caller does not need. A backend that talks to its
    /// database over a network may send it together with the next statement (one round trip for
    /// both, executed in order); its failure then shows at that statement or, at the latest,
    /// when the unit of work ends, and fails the unit either way.
    fn execute_later(&mut self, sql: &str, params: &[Value]) -> Result<()> {
        self.execute(sql, params).map(drop)
    }

    /// Runs statements in order and answers each one's rows. A backend that talks to its
    /// database over a network sends them together (one round trip for all).
    fn query_all(&mut self, statements: &[(String, Vec<Value>)]) -> Result<Vec<Vec<Row>>> {
        statements
            .iter()
            .map(|(sql, params)| self.query(sql, params))
            .collect()
    }
    /// The database clock, in milliseconds since the epoch.
    fn now_ms(&mut self) -> i64;

    /// Notes that what channels may sell of `sku` changed in this unit of work; the backend marks
    /// the pushes once per SKU when the unit ends, inside its transaction.
    fn defer_push_mark(&mut self, sku: &str);

    /// The SKUs noted so far (emptied).
    fn take_push_marks(&mut self) -> Vec<String>;

    /// Whether `sku` is noted already: every channel that lists it will be marked.
    fn push_mark_deferred(&self, sku: &str) -> bool;

    /// Whether other transactions write at the same time (PostgreSQL: other connections and
    /// processes). The engine then locks the rows it reads for a change before reading them, in
    /// a fixed order; with a single writer (SQLite) every read in a write unit is already current.
    fn has_concurrent_writers(&self) -> bool {
        false
    }

    /// Called before every ledger insert. A backend whose sequence numbers are not taken in
    /// commit order publishes here a floor below every number its transaction will take, so that
    /// tailing readers wait for it (see `ledger_tail_bound`).
    fn before_ledger_insert(&mut self) -> Result<()> {
        Ok(())
    }

    /// Whether another write transaction that began at or before `at_ms` (the database clock) is
    /// still open: what it writes may carry times up to `at_ms` and is not seen yet. Never with
    /// one writer (SQLite): a later unit of work comes after it. See
    /// `Store::wait_for_writes_begun_by`.
    fn writes_open_begun_by(&mut self, _at_ms: i64) -> Result<bool> {
        Ok(false)
    }

    /// The highest ledger sequence number a tailing reader may advance to: every entry at or
    /// below it has committed or never will. `None` where sequence numbers follow commit order
    /// (one writer).
    fn ledger_tail_bound(&mut self) -> Result<Option<i64>> {
        Ok(None)
    }

    /// What a `SELECT` that reads rows in order to change them ends with: ` FOR UPDATE` where
    /// other transactions write at the same time, nothing otherwise.
    fn for_update(&self) -> &'static str {
        if self.has_concurrent_writers() {
            " FOR UPDATE"
        } else {
            ""
        }
    }

    /// What a `SELECT` that takes rows of shared work ends with: ` FOR UPDATE SKIP LOCKED` where
    /// other transactions take work at the same time (each takes rows the others do not hold, and
    /// re-reads a row changed since its snapshot), nothing otherwise.
    fn skip_locked(&self) -> &'static str {
        if self.has_concurrent_writers() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        }
    }

    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// The placeholders of an `IN` list of `values` (`?1, ?2, …`), and the values to bind to them:
/// `values` padded with NULLs, which an `IN` list never matches, to a whole power of two. Lists
/// of any length then come in a few statement shapes, which a backend prepares and plans once
/// each instead of once per length.
pub(crate) fn in_list(values: Vec<Value>) -> (String, Vec<Value>) {
    let values = padded(values);
    let list = (1..=values.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    (list, values)
}

/// `values` and NULLs after them, to a whole power of two (one at least).
fn padded(mut values: Vec<Value>) -> Vec<Value> {
    values.resize(values.len().max(1).next_power_of_two(), Value::Null);
    values
}

/// `(?1, ?2, ?3), (?4, ?5, ?6)`: the `VALUES` rows of a multi-row insert of `rows` rows of
/// `columns` values each.
pub(crate) fn value_rows(columns: usize, rows: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| format!("?{}", r * columns + c))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows written by one multi-row statement, at most.
pub(crate) const ROWS_PER_STATEMENT: usize = 64;

/// Splits `n` rows into runs of whole powers of two, largest first, none above
/// [`ROWS_PER_STATEMENT`]: multi-row statements then come in a few shapes only, which a backend
/// prepares once each.
pub(crate) fn row_chunks(n: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let left = n - start;
        let size = ROWS_PER_STATEMENT.min(1 << left.ilog2());
        out.push(start..start + size);
        start += size;
    }
    out
}

/// Keys looked up by one statement of [`lookups`], at most.
pub(crate) const LOOKUPS_PER_STATEMENT: usize = 32;

/// One statement that runs `select` once per key, `?` in it standing for the key:
/// `select(?1) UNION ALL select(?2) …` for `keys` keys (at most [`LOOKUPS_PER_STATEMENT`]; a
/// key that is NULL finds nothing).
/// Each part is a look-up by the full key of an index, a plan no backend can get wrong however
/// few rows a table held when the plan was made, and cheaper than an `IN` list on SQLite.
pub(crate) fn lookups(select: &str, keys: usize) -> String {
    (1..=keys)
        .map(|i| select.replace('?', &format!("?{i}")))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The statements that find the rows `select` finds for each of `keys` ([`lookups`]): one per
/// [`LOOKUPS_PER_STATEMENT`] keys, padded with NULLs to a whole power of two so that their
/// shapes are few (see [`in_list`]); `order_by` (such as ` ORDER BY 1`, or nothing) orders each
/// statement's rows. For `Sql::query_all`, alone ([`look_up_all`]) or with other statements.
pub(crate) fn look_up_statements(
    select: &str,
    order_by: &str,
    keys: &[Value],
) -> Vec<(String, Vec<Value>)> {
    keys.chunks(LOOKUPS_PER_STATEMENT)
        .map(|chunk| {
            let keys = padded(chunk.to_vec());
            (format!("{}{order_by}", lookups(select, keys.len())), keys)
        })
        .collect()
}

/// The rows `select` finds for each of `keys` ([`look_up_statements`]), every statement sent
/// together.
pub(crate) fn look_up_all(
    sql: &mut dyn Sql,
    select: &str,
    order_by: &str,
    keys: &[Value],
) -> Result<Vec<Row>> {
    let queries = look_up_statements(select, order_by, keys);
    Ok(sql.query_all(&queries)?.into_iter().flatten().collect())
}

/// Builds a parameter slice: `args![sku, location, 3]`.
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::sql::Value::from($v)),*][..] };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_split_into_few_shapes() {
        let sizes = |n| row_chunks(n).iter().map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), vec![1]);
        assert_eq!(sizes(7), vec![4, 2, 1]);
        assert_eq!(sizes(64), vec![64]);
        assert_eq!(sizes(200), vec![64, 64, 64, 8]);
        // The runs cover every row once, in order.
        let runs = row_chunks(77);
        assert_eq!(runs.first().unwrap().start, 0);
        assert!(runs.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(runs.last().unwrap().end, 77);
    }

    #[test]
    fn in_lists_are_padded_with_nulls_to_a_power_of_two() {
        let texts = |n: usize| {
            (0..n)
                .map(|i| Value::from(i.to_string()))
                .collect::<Vec<_>>()
        };
        let (list, values) = in_list(texts(3));
        assert_eq!(list, "?1, ?2, ?3, ?4");
        assert_eq!(values[..3], texts(3)[..]);
        assert_eq!(values[3], Value::Null);
        assert_eq!(in_list(texts(4)).1, texts(4));
        assert_eq!(in_list(Vec::new()), ("?1".to_owned(), vec![Value::Null]));
    }

    #[test]
    fn value_rows_number_their_placeholders_in_order() {
        assert_eq!(value_rows(2, 2), "(?1, ?2), (?3, ?4)");
    }
}
