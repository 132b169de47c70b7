//! The scale-out backend: any number of stockhub processes on one PostgreSQL database.
//!
//! Correctness comes from the database, never from a lock in this process. Each process runs a
//! few writer connections; each writer commits the units of work queued to it in groups (one
//! transaction, one WAL flush for many), every unit inside its own savepoint, as the SQLite
//! backend does. Because other writers — in this process and in others — change the same rows
//! at the same time, the engine locks the stock levels it is about to read for a change in a
//! fixed (SKU, location) order (`Sql::has_concurrent_writers`), and a unit that meets a conflict
//! anyway (a deadlock, a lock it may not wait for, a row another transaction inserted first) is
//! rolled back to its savepoint and run again in the writer's next transaction.
//!
//! Waiting for a lock is safe only for the first unit of a transaction: it holds no lock taken
//! by an earlier unit, so nothing can wait for it in a cycle. Later units of the same group may
//! wait only briefly (`lock_timeout`); a unit that would wait longer goes first in the next group.
//!
//! Reads run on their own connections in `REPEATABLE READ READ ONLY` transactions: one
//! consistent snapshot per unit of read work.

use std::collections::{HashMap, VecDeque};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, IsNull, ToSql, Type};
use postgres::{Client, NoTls};
use tokio::sync::mpsc;
use tokio_postgres::Statement;

use crate::clock::Clock;
use crate::error::{Result, StoreError};
use crate::sql::{Row, Sql, Value};
use crate::store::{
    next_read, orders_together, run_job, run_write_unit, Backend, CommitCounters, Finish, Job,
    Queues,
};

/// Migrations in order; each runs once, recorded in `schema_migrations`, under an advisory lock
/// so that processes starting together apply each exactly once.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../migrations/postgres/0001_foundation.sql"),
    ),
    (2, include_str!("../migrations/postgres/0002_channels.sql")),
    (
        3,
        include_str!("../migrations/postgres/0003_scheduled_runs.sql"),
    ),
    (
        4,
        include_str!("../migrations/postgres/0004_carried_holds.sql"),
    ),
    (
        5,
        include_str!("../migrations/postgres/0005_one_sku_index.sql"),
    ),
    (
        6,
        include_str!("../migrations/postgres/0006_confirmed_exactly.sql"),
    ),
];

/// The advisory lock key under which migrations run ("stockhub" in ASCII, as an integer).
const MIGRATION_LOCK: i64 = 0x73746f636b687562;

/// How often a unit of work is run again after conflicts, or after it could not reach the
/// database, before its error is returned.
const MAX_ATTEMPTS: u32 = 50;

/// How long a unit that is not the first of its transaction may wait for a lock.
const LATER_UNIT_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '20ms'";

/// How long a write transaction goes on taking units of its group: the rest go first in the next
/// one. A transaction shows what it wrote only when it commits, so this bounds how long the first
/// units of a big group (a burst of orders) wait to be seen, and how long a read of a channel's
/// quantities waits for the writes begun before it (`Store::wait_for_writes_begun_by`).
const GROUP_TIME_LIMIT: Duration = Duration::from_millis(200);

/// Tuning of the PostgreSQL backend.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Units of work queued for the writers before callers wait.
    pub queue_capacity: usize,
    /// Most units of work committed in one transaction.
    pub group_max: usize,
    /// Write connections of this process; each commits its own groups.
    pub writers: usize,
    /// Read-only connections of this process.
    pub readers: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 8192,
            group_max: 256,
            writers: 4,
            readers: 4,
        }
    }
}

pub struct PostgresBackend {
    queues: Queues,
}

/// Turns the engine's `?1, ?2` placeholders into PostgreSQL's `$1, $2`, leaving quoted text alone.
pub fn translate_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_quote = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_quote = !in_quote;
                out.push(c);
            }
            '?' if !in_quote && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// Binds a `Value` to whatever type PostgreSQL inferred for the parameter.
impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::BYTEA => v.to_string().into_bytes().to_sql(ty, out),
                _ => v.to_string().to_sql(&Type::TEXT, out),
            },
            Value::Text(t) => match *ty {
                Type::INT8 => t.parse::<i64>()?.to_sql(ty, out),
                Type::INT4 => t.parse::<i32>()?.to_sql(ty, out),
                Type::BYTEA => t.as_bytes().to_sql(ty, out),
                _ => t.as_str().to_sql(&Type::TEXT, out),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                _ => String::from_utf8_lossy(b).as_ref().to_sql(&Type::TEXT, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::OID => Value::Int(i64::from(u32::from_sql(ty, raw)?)),
            Type::BOOL => Value::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::FLOAT8 => Value::Int(f64::from_sql(ty, raw)? as i64),
            Type::FLOAT4 => Value::Int(f32::from_sql(ty, raw)? as i64),
            Type::NUMERIC => Value::Int(numeric_to_i64(raw)?),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            _ => Value::Text(String::from_utf8(raw.to_vec())?),
        })
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The integer part of a binary `numeric` (what `SUM` of a `bigint` column returns).
fn numeric_to_i64(raw: &[u8]) -> std::result::Result<i64, BoxError> {
    let word = |i: usize| -> std::result::Result<i16, BoxError> {
        let b = raw
            .get(i * 2..i * 2 + 2)
            .ok_or("numeric value is truncated")?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    };
    let (ndigits, weight, sign) = (word(0)?, word(1)?, word(2)? as u16);
    if sign == 0xC000 {
        return Err("NaN cannot be read as an integer".into());
    }
    let mut value: i128 = 0;
    for i in 0..=i32::from(weight) {
        let digit = if i < i32::from(ndigits) {
            i128::from(word(4 + i as usize)?)
        } else {
            0
        };
        value = value * 10_000 + digit;
    }
    if sign == 0x4000 {
        value = -value;
    }
    Ok(i64::try_from(value)?)
}

/// Whether a failed statement means "run the unit again", not "the unit is wrong".
fn is_conflict(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::LOCK_NOT_AVAILABLE
            || *c == SqlState::UNIQUE_VIOLATION
    })
}

fn db_error(sql: &str, e: postgres::Error) -> StoreError {
    let head: String = sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
    let detail = match e.as_db_error() {
        Some(db) => format!("postgres: {head}: {} ({})", db.message(), db.code().code()),
        None => format!("postgres: {head}"),
    };
    StoreError::database(detail, e)
}

/// One connection with its prepared statements. It runs on a runtime of its own, driven only
/// while a call waits, so that several statements can be sent in one round trip (`Conn::run`).
struct Connection {
    client: tokio_postgres::Client,
    runtime: tokio::runtime::Runtime,
    statements: HashMap<String, Statement>,
    /// The open write transaction has published its lower bound on the ledger sequence numbers
    /// it takes (`Sql::before_ledger_insert`).
    ledger_claimed: bool,
    /// The last unit of work of the open transaction succeeded and its savepoint is still to be
    /// released: the next unit releases it together with starting its own (one round trip
    /// instead of two), and the commit releases the last one.
    savepoint_to_release: bool,
}

impl Connection {
    fn open(url: &str) -> Result<Self> {
        let failed =
            |e: postgres::Error| StoreError::database(format!("connecting to {}", redact(url)), e);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::database("starting a PostgreSQL client runtime", e))?;
        let (client, connection) = runtime
            .block_on(tokio_postgres::connect(url, NoTls))
            .map_err(failed)?;
        runtime.spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "a PostgreSQL connection ended");
            }
        });
        // Every statement here reads or writes a few rows by key. A plan with parallel workers
        // (which the planner picks for a look-up of many keys at once, `sql::lookups`) spends
        // 10 ms or more starting them, for work that takes a fraction of a millisecond.
        runtime
            .block_on(client.batch_execute("SET max_parallel_workers_per_gather = 0"))
            .map_err(failed)?;
        Ok(Self {
            client,
            runtime,
            statements: HashMap::new(),
            ledger_claimed: false,
            savepoint_to_release: false,
        })
    }

    /// Waits for a call of this connection's client.
    fn wait<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(call)
    }

    fn prepare(&mut self, sql: &str) -> std::result::Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.wait(self.client.prepare(&translate_placeholders(sql)))?;
        if self.statements.len() >= 512 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn batch(&mut self, sql: &str) -> std::result::Result<(), postgres::Error> {
        self.wait(self.client.batch_execute(sql))
    }
}

/// Runs blocking client code on a thread of its own, so that it may be called from async code.
pub(crate) fn off_async<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// A database URL with any password removed, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            let user = user_info.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Where a unit of work's time comes from: the database's clock, read once per transaction and
/// advanced by this process's monotonic clock, or a clock the caller supplied (tests).
enum TimeSource<'a> {
    Database { at_start_ms: i64, started: Instant },
    Given(&'a dyn Clock),
}

struct Conn<'a> {
    conn: &'a mut Connection,
    time: &'a TimeSource<'a>,
    marks: std::collections::BTreeSet<String>,
    /// A statement of this unit failed in a way that asks for the unit to run again.
    conflict: bool,
    /// A statement of this unit failed. PostgreSQL then refuses every later statement of the
    /// savepoint, so the unit is rolled back even if its code went on as if nothing happened.
    failed: Option<String>,
    /// A write transaction (reads run in read-only snapshots, which take no row locks).
    writing: bool,
    /// Statements whose answers nobody needs, sent with the next statement (`execute_later`).
    deferred: Vec<Deferred>,
    /// A statement that starts the unit failed.
    start_failed: bool,
}

/// A statement waiting to be sent with the next one.
struct Deferred {
    sql: String,
    statement: Statement,
    params: Vec<Value>,
    /// Part of starting the unit (its savepoint): a failure means the transaction is broken.
    starts_unit: bool,
}

/// At most this many statements wait to be sent together: the unit's own statements stay few
/// enough to be sent, and answered, in order.
const MAX_DEFERRED: usize = 16;

/// What a statement's caller wants back.
#[derive(Clone, Copy)]
enum Want {
    Rows,
    Count,
}

enum Answer {
    Rows(Vec<tokio_postgres::Row>),
    Count(u64),
}

async fn send(
    client: &tokio_postgres::Client,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
    want: Want,
) -> std::result::Result<Answer, postgres::Error> {
    match want {
        Want::Rows => client.query(statement, params).await.map(Answer::Rows),
        Want::Count => client.execute(statement, params).await.map(Answer::Count),
    }
}

impl Sql for Conn<'_> {
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let Some(Answer::Rows(rows)) = self.run(Some((sql, params, Want::Rows)))? else {
            return Ok(Vec::new());
        };
        self.rows(sql, rows)
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        match self.run(Some((sql, params, Want::Count)))? {
            Some(Answer::Count(n)) => Ok(n),
            _ => Ok(0),
        }
    }

    fn query_all(&mut self, statements: &[(String, Vec<Value>)]) -> Result<Vec<Vec<Row>>> {
        // Fewer than 30 calls at once are polled, and so sent, in order (`run`): at most
        // MAX_DEFERRED - 1 deferred ones and these.
        const AT_ONCE: usize = 29 - (MAX_DEFERRED - 1);
        if statements.len() > AT_ONCE {
            let mut out = Vec::with_capacity(statements.len());
            for part in statements.chunks(AT_ONCE) {
                out.extend(self.query_all(part)?);
            }
            return Ok(out);
        }
        let mut prepared = Vec::with_capacity(statements.len());
        for (sql, _) in statements {
            prepared.push(self.conn.prepare(sql).map_err(|e| self.fail(sql, e))?);
        }
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = statements
            .iter()
            .map(|(_, params)| params.iter().map(|p| p as _).collect())
            .collect();
        // What is deferred goes first, then the statements, in one round trip.
        let deferred = std::mem::take(&mut self.deferred);
        let deferred_params: Vec<Vec<&(dyn ToSql + Sync)>> = deferred
            .iter()
            .map(|d| d.params.iter().map(|p| p as _).collect())
            .collect();
        let mut answers = {
            let client = &self.conn.client;
            let mut calls = Vec::with_capacity(deferred.len() + statements.len());
            for (d, params) in deferred.iter().zip(&deferred_params) {
                calls.push(send(client, &d.statement, params, Want::Count));
            }
            for (statement, params) in prepared.iter().zip(&params) {
                calls.push(send(client, statement, params, Want::Rows));
            }
            // Polled in order, so sent in order.
            self.conn.wait(futures_util::future::join_all(calls))
        };
        let answered = answers.split_off(deferred.len());
        for (d, result) in deferred.iter().zip(answers) {
            if let Err(e) = result {
                self.start_failed |= d.starts_unit;
                return Err(self.fail(&d.sql, e));
            }
        }
        let mut out = Vec::with_capacity(statements.len());
        for ((sql, _), result) in statements.iter().zip(answered) {
            match result {
                Ok(Answer::Rows(rows)) => out.push(self.rows(sql, rows)?),
                Ok(Answer::Count(_)) => out.push(Vec::new()),
                Err(e) => return Err(self.fail(sql, e)),
            }
        }
        Ok(out)
    }

    fn execute_later(&mut self, sql: &str, params: &[Value]) -> Result<()> {
        let statement = self.conn.prepare(sql).map_err(|e| self.fail(sql, e))?;
        self.deferred.push(Deferred {
            sql: sql.to_owned(),
            statement,
            params: params.to_vec(),
            starts_unit: false,
        });
        if self.deferred.len() >= MAX_DEFERRED {
            self.run(None)?;
        }
        Ok(())
    }

    fn now_ms(&mut self) -> i64 {
        match self.time {
            TimeSource::Database {
                at_start_ms,
                started,
            } => at_start_ms + i64::try_from(started.elapsed().as_millis()).unwrap_or(0),
            TimeSource::Given(clock) => clock.now_ms(),
        }
    }

    fn defer_push_mark(&mut self, sku: &str) {
        if !self.marks.contains(sku) {
            self.marks.insert(sku.to_owned());
        }
    }

    fn take_push_marks(&mut self) -> Vec<String> {
        std::mem::take(&mut self.marks).into_iter().collect()
    }

    fn push_mark_deferred(&self, sku: &str) -> bool {
        self.marks.contains(sku)
    }

    fn has_concurrent_writers(&self) -> bool {
        self.writing
    }

    fn before_ledger_insert(&mut self) -> Result<()> {
        if self.conn.ledger_claimed {
            return Ok(());
        }
        self.execute_later(CLAIM_LEDGER_RANGE, &[])?;
        self.conn.ledger_claimed = true;
        Ok(())
    }

    fn writes_open_begun_by(&mut self, at_ms: i64) -> Result<bool> {
        let reference = self.now_ms();
        Ok(self
            .query(OTHER_WRITE_FLOORS, &[])?
            .iter()
            .any(|r| time_from_residue(r.int(0), reference) <= at_ms))
    }

    fn ledger_tail_bound(&mut self) -> Result<Option<i64>> {
        if !self.writing {
            // A snapshot taken before the bound is read could miss a transaction that commits
            // in between: the bound needs a statement-level snapshot (READ COMMITTED).
            return Err(StoreError::Invalid(
                "a ledger tail is read with Store::read_latest".into(),
            ));
        }
        let allocated = self.query(LEDGER_ALLOCATED, &[])?[0].int(0);
        let in_flight = self.query(LEDGER_IN_FLIGHT_FLOOR, &[])?[0].opt_int(0);
        Ok(Some(
            in_flight.map_or(allocated, |floor| floor.min(allocated)),
        ))
    }
}

// Tailing the ledger (DESIGN §6). Sequence numbers are taken when a row is inserted, not when its
// transaction commits, so a reader that advanced past a committed entry could skip one with a
// lower number whose transaction commits later. Every write transaction therefore publishes,
// before its first ledger insert, a number below every sequence number it will take: the
// sequence's position, as the key of a shared transaction-level advisory lock (visible to every
// session at once, released at commit or rollback). A tailing reader reads, each statement on a
// fresh snapshot, first the highest number taken, then the lowest published by a transaction
// still open, and returns only entries at or below both: every entry there has committed, or
// never will.

/// The ledger's in-flight floors are shared advisory locks keyed (the schema's oid, floor / 1024):
/// per schema, so that stores in other schemas of the database do not hold this one back, and
/// in units of 1,024 entries, which keeps the key within 32 bits for 2^41 entries (a reader then
/// waits for at most 1,023 committed entries more than it must, while the transaction is open).
const CLAIM_LEDGER_RANGE: &str = "SELECT pg_advisory_xact_lock_shared(
    (SELECT oid FROM pg_namespace WHERE nspname = current_schema())::int,
    ((SELECT last_value - 1 FROM ledger_seq_seq) / 1024)::int)";

/// The highest ledger sequence number taken so far.
const LEDGER_ALLOCATED: &str =
    "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ledger_seq_seq";

/// The lowest floor published by another open transaction on this schema.
const LEDGER_IN_FLIGHT_FLOOR: &str = "SELECT min(objid::bigint) * 1024 FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 2
      AND classid = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND pid <> pg_backend_pid()";

impl Conn<'_> {
    /// Sends the deferred statements and then `current`, if any, in one round trip; PostgreSQL
    /// runs them in that order. The first failure is the answer (every later statement of the
    /// savepoint fails with it).
    fn run(&mut self, current: Option<(&str, &[Value], Want)>) -> Result<Option<Answer>> {
        let current = match current {
            Some((sql, params, want)) => {
                let statement = self.conn.prepare(sql).map_err(|e| self.fail(sql, e))?;
                Some((sql, statement, params, want))
            }
            None => None,
        };
        let deferred = std::mem::take(&mut self.deferred);
        let deferred_params: Vec<Vec<&(dyn ToSql + Sync)>> = deferred
            .iter()
            .map(|d| d.params.iter().map(|p| p as _).collect())
            .collect();
        let current_params: Vec<&(dyn ToSql + Sync)> = current
            .as_ref()
            .map(|(_, _, params, _)| params.iter().map(|p| p as _).collect())
            .unwrap_or_default();
        let client = &self.conn.client;
        let mut calls = Vec::with_capacity(deferred.len() + 1);
        for (d, params) in deferred.iter().zip(&deferred_params) {
            calls.push(send(client, &d.statement, params, Want::Count));
        }
        if let Some((_, statement, _, want)) = &current {
            calls.push(send(client, statement, &current_params, *want));
        }
        // Polled in order (fewer than 30 calls), so sent in order.
        let mut answers = self.conn.wait(futures_util::future::join_all(calls));
        let answer = current.as_ref().and_then(|_| answers.pop());
        for (d, result) in deferred.iter().zip(answers) {
            if let Err(e) = result {
                self.start_failed |= d.starts_unit;
                return Err(self.fail(&d.sql, e));
            }
        }
        match (current, answer) {
            (Some((sql, ..)), Some(result)) => result.map(Some).map_err(|e| self.fail(sql, e)),
            _ => Ok(None),
        }
    }

    /// The rows of an answer to `sql`, as the engine reads them.
    fn rows(&mut self, sql: &str, rows: Vec<tokio_postgres::Row>) -> Result<Vec<Row>> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                values.push(row.try_get::<_, Value>(i).map_err(|e| self.fail(sql, e))?);
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    /// Queues the statements that start a unit of work, to go with its first statement.
    fn start_unit(&mut self, statements: &[&str]) -> Result<()> {
        for sql in statements {
            let statement = self.conn.prepare(sql).map_err(|e| {
                self.start_failed = true;
                self.fail(sql, e)
            })?;
            self.deferred.push(Deferred {
                sql: (*sql).to_owned(),
                statement,
                params: Vec::new(),
                starts_unit: true,
            });
        }
        Ok(())
    }

    /// Sends what is still deferred; a failure marks the unit failed.
    fn flush(&mut self) {
        if !self.deferred.is_empty() {
            let _ = self.run(None);
        }
    }

    fn fail(&mut self, sql: &str, e: postgres::Error) -> StoreError {
        if is_conflict(&e) {
            self.conflict = true;
        }
        let error = db_error(sql, e);
        tracing::debug!(error = %error, "a statement failed");
        if self.failed.is_none() {
            self.failed = Some(error.to_string());
        }
        error
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let error = |e| StoreError::database("applying PostgreSQL migrations", e);
    conn.batch(&format!(
        "SELECT pg_advisory_lock({MIGRATION_LOCK});
         CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);"
    ))
    .map_err(error)?;
    let result = (|| {
        for (version, script) in MIGRATIONS {
            let applied = conn
                .wait(conn.client.query_opt(
                    "SELECT 1 FROM schema_migrations WHERE version = $1",
                    &[version],
                ))
                .map_err(error)?
                .is_some();
            if !applied {
                let Connection {
                    client, runtime, ..
                } = &mut *conn;
                let applying = runtime.block_on(async {
                    let tx = client.transaction().await?;
                    tx.batch_execute(script).await?;
                    tx.execute(
                        "INSERT INTO schema_migrations (version, applied_at)
                         VALUES ($1, (extract(epoch FROM now()) * 1000)::bigint)",
                        &[version],
                    )
                    .await?;
                    tx.commit().await
                });
                applying.map_err(error)?;
            }
        }
        Ok(())
    })();
    conn.batch(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .map_err(error)?;
    result
}

// Times of writes not seen yet. A write transaction stamps what it writes with times from its
// start on, but others see it only once it commits: a reader that counts the orders booked up to
// a moment (`pushes::observe`) could miss one stamped before that moment and committed after,
// and never count it since. So every write transaction publishes, as it begins, the time it
// starts from (the lowest it stamps), as the key of a shared transaction-level advisory lock —
// one-bigint form: the schema's oid, then the time in milliseconds modulo 2^32 — which every
// session sees at once and which goes at commit or rollback. `Sql::writes_open_begun_by` reads
// the others' (see `Store::wait_for_writes_begun_by`).

/// The database clock, in milliseconds, for a write transaction: read and published as the
/// transaction's time floor.
const READ_CLOCK_PUBLISHING_WRITE_FLOOR: &str = "SELECT now.ms, pg_advisory_xact_lock_shared(
    ((SELECT oid FROM pg_namespace WHERE nspname = current_schema())::bigint << 32)
      | (now.ms & 4294967295))
    FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms) AS now";

/// The time floors (modulo 2^32) published by the other open write transactions on this schema.
const OTHER_WRITE_FLOORS: &str = "SELECT objid::bigint FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 1 AND mode = 'ShareLock'
      AND classid = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND pid <> pg_backend_pid()";

/// The time (ms) whose residue modulo 2^32 is `residue`, nearest to `reference` (published floors
/// are at most a transaction's length away from it, far less than 2^31 ms).
fn time_from_residue(residue: i64, reference: i64) -> i64 {
    const MODULUS: i64 = 1 << 32;
    let ahead = (residue - reference).rem_euclid(MODULUS);
    if ahead < MODULUS / 2 {
        reference + ahead
    } else {
        reference + ahead - MODULUS
    }
}

/// Which side of the true time a transaction's clock errs on (see `begin`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stamps {
    /// Writes: never earlier than the moment a time stands for.
    NoEarlier,
    /// Reads: never later.
    NoLater,
}

/// Begins a transaction with `statement` and gives its time source: `clock`, or else the
/// database clock, read in the same round trip and carried forward on this process's monotonic
/// clock. The round trip puts the database's reading somewhere between sending and answer: a
/// write counts from the sending, so its times are never earlier than the moments they stand
/// for; a read counts from the answer, so its times are never later. Then whatever a write
/// records after a read began carries a later time than that read, however long either answer
/// took to come back — an order booked after a read of a channel's quantity is a sale after the
/// read (`pushes::observe` depends on it).
fn begin<'a>(
    conn: &mut Connection,
    statement: &str,
    clock: Option<&'a dyn Clock>,
    stamps: Stamps,
) -> std::result::Result<TimeSource<'a>, postgres::Error> {
    if let Some(clock) = clock {
        return conn.batch(statement).map(|()| TimeSource::Given(clock));
    }
    // Prepared once per connection (a statement given as text would be parsed, described and
    // closed again on every transaction).
    let clock_statement = conn.prepare(match stamps {
        Stamps::NoEarlier => READ_CLOCK_PUBLISHING_WRITE_FLOOR,
        Stamps::NoLater => "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
    })?;
    let client = &conn.client;
    let sent = Instant::now();
    let (began, now) = conn.wait(futures_util::future::join(
        client.batch_execute(statement),
        client.query_one(&clock_statement, &[]),
    ));
    began?;
    Ok(TimeSource::Database {
        at_start_ms: now?.try_get(0)?,
        started: match stamps {
            Stamps::NoEarlier => sent,
            Stamps::NoLater => Instant::now(),
        },
    })
}

impl PostgresBackend {
    /// Connects, applies migrations and starts the writer and reader connections. `clock` is
    /// used only if it is not the system clock; otherwise times come from the database clock, so
    /// that every process agrees on them.
    pub fn open(url: &str, clock: Arc<dyn Clock>, options: PostgresOptions) -> Result<Self> {
        // The client blocks on a runtime of its own, which may not start inside an async task.
        off_async(|| Self::open_here(url, clock, options))
    }

    fn open_here(url: &str, clock: Arc<dyn Clock>, options: PostgresOptions) -> Result<Self> {
        let mut first = Connection::open(url)?;
        migrate(&mut first)?;
        let use_database_clock = clock.is_wall_clock();
        let stats = Arc::new(CommitCounters::default());
        let (writes, write_rx) = mpsc::channel::<Job>(options.queue_capacity);
        let write_rx = Arc::new(Mutex::new(write_rx));
        let (commit_signal, committed) = tokio::sync::watch::channel(0u64);
        let commit_signal = Arc::new(commit_signal);
        // Commits are announced to the other processes by NOTIFY from a connection of its own,
        // outside the writers' transactions: a transaction that notifies holds PostgreSQL's
        // notification queue lock through its commit, which would serialize every commit.
        let (notify, announce) = std_mpsc::sync_channel::<()>(1);
        {
            let url = url.to_owned();
            thread::Builder::new()
                .name("postgres-notifier".into())
                .spawn(move || announce_commits(&url, &announce))
                .map_err(|e| StoreError::database("starting the notifier thread", e))?;
        }
        let mut connections = vec![first];
        for _ in 1..options.writers.max(1) {
            connections.push(Connection::open(url)?);
        }
        for (i, mut conn) in connections.into_iter().enumerate() {
            let (rx, stats, clock, url) = (
                write_rx.clone(),
                stats.clone(),
                clock.clone(),
                url.to_owned(),
            );
            let wake = Wakeups {
                local: commit_signal.clone(),
                others: notify.clone(),
            };
            let group_max = options.group_max;
            thread::Builder::new()
                .name(format!("postgres-writer-{i}"))
                .spawn(move || {
                    let clock = (!use_database_clock).then_some(&*clock);
                    write_loop(&url, &mut conn, clock, &rx, group_max, &stats, &wake);
                })
                .map_err(|e| StoreError::database("starting a writer thread", e))?;
        }
        {
            let (url, signal) = (url.to_owned(), commit_signal.clone());
            thread::Builder::new()
                .name("postgres-listener".into())
                .spawn(move || listen_for_commits(&url, &signal))
                .map_err(|e| StoreError::database("starting the listener thread", e))?;
        }
        let (reads, read_rx) = std_mpsc::sync_channel::<Job>(options.queue_capacity);
        let read_rx = Arc::new(Mutex::new(read_rx));
        for i in 0..options.readers.max(1) {
            let mut conn = Connection::open(url)?;
            let (rx, clock) = (read_rx.clone(), clock.clone());
            thread::Builder::new()
                .name(format!("postgres-reader-{i}"))
                .spawn(move || {
                    let clock = (!use_database_clock).then_some(&*clock);
                    read_loop(&mut conn, clock, &rx);
                })
                .map_err(|e| StoreError::database("starting a reader thread", e))?;
        }
        Ok(Self {
            queues: Queues {
                writes,
                reads: Mutex::new(reads),
                committed,
                counters: stats,
            },
        })
    }
}

/// Announces this process's commits to the others (coalesced: one NOTIFY for every commit made
/// while the previous one was sent). Ends when the writers are gone.
fn announce_commits(url: &str, commits: &std_mpsc::Receiver<()>) {
    let mut client: Option<Client> = None;
    while commits.recv().is_ok() {
        if client.as_ref().is_none_or(Client::is_closed) {
            client = Client::connect(url, NoTls)
                .map_err(|e| tracing::warn!(error = %e, "connecting to announce commits failed"))
                .ok();
        }
        if let Some(c) = client.as_mut() {
            if let Err(e) =
                c.batch_execute("SELECT pg_notify('stockhub_commits', current_schema())")
            {
                tracing::warn!(error = %e, "announcing a commit to other processes failed");
                client = None;
            }
        }
    }
}

/// Turns commits of other processes on the same database (and schema) into wake-ups of this
/// one, by `LISTEN`; reconnects after a lost connection. Ends when nobody listens any more.
fn listen_for_commits(url: &str, signal: &tokio::sync::watch::Sender<u64>) {
    while !signal.is_closed() {
        let listened = (|| -> std::result::Result<(), postgres::Error> {
            let mut client = Client::connect(url, NoTls)?;
            let schema: String = client
                .query_one("SELECT current_schema()::text", &[])?
                .get(0);
            client.batch_execute("LISTEN stockhub_commits")?;
            while !signal.is_closed() {
                // A fresh wait each second: once its time has run out, an iterator answers
                // "nothing" at once on every later call, and waiting on it would spin.
                let mut notifications = client.notifications();
                let mut waiting = notifications.timeout_iter(Duration::from_secs(1));
                while let Some(n) = waiting.next()? {
                    if n.payload() == schema {
                        signal.send_modify(|c| *c += 1);
                    }
                    if signal.is_closed() {
                        break;
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = listened {
            tracing::warn!(error = %e, "listening for commits of other processes failed; reconnecting");
            thread::sleep(Duration::from_secs(1));
        }
    }
}

/// A queued unit of work and how often it has met a conflict.
struct Pending {
    job: Job,
    attempts: u32,
}

/// The units that may go again after a failure that was not theirs (the database could not be
/// reached, the transaction broke), each with one attempt more. A unit that has had
/// `MAX_ATTEMPTS` is dropped: its caller is told the store is unavailable instead of waiting as
/// long as the database is away.
fn still_to_try(units: impl IntoIterator<Item = Pending>) -> impl Iterator<Item = Pending> {
    units.into_iter().filter_map(|mut pending| {
        pending.attempts += 1;
        if pending.attempts < MAX_ATTEMPTS {
            Some(pending)
        } else {
            tracing::error!(
                attempts = pending.attempts,
                "a unit of work could not reach the database; it is refused"
            );
            None
        }
    })
}

/// What became of one unit inside a group transaction.
enum Outcome {
    /// Finished; the job is kept until the commit, to run again if the commit meets a conflict.
    Done(Finish, Option<Pending>),
    Again(Pending),
}

/// `shorten_lock_waits`: the unit is not the transaction's first, and the ones before it did not
/// yet set the shorter lock timeout of later units.
fn run_unit(
    conn: &mut Connection,
    time: &TimeSource<'_>,
    mut pending: Pending,
    shorten_lock_waits: bool,
) -> Outcome {
    let release_previous = std::mem::take(&mut conn.savepoint_to_release);
    let claimed_before = conn.ledger_claimed;
    let mut sql = Conn {
        conn,
        time,
        marks: Default::default(),
        conflict: false,
        failed: None,
        writing: true,
        deferred: Vec::new(),
        start_failed: false,
    };
    // The unit's start goes with its first statement. The lock timeout is set between the
    // savepoints, so that a rolled-back unit does not take it back.
    let mut start = Vec::with_capacity(3);
    if release_previous {
        start.push("RELEASE unit");
    }
    if shorten_lock_waits {
        start.push(LATER_UNIT_LOCK_TIMEOUT);
    }
    start.push("SAVEPOINT unit");
    let mut finish = match sql.start_unit(&start) {
        Ok(()) => run_write_unit(&mut pending.job, &mut sql),
        Err(_) => Finish::refused(),
    };
    // Sent even when the unit failed: its savepoint must exist before it is rolled back to.
    sql.flush();
    if sql.start_failed {
        // The transaction is broken; the unit goes again in the next one, unless it has tried
        // often enough (its caller is then told the store is unavailable).
        tracing::error!(error = ?sql.failed, "starting a unit of work failed");
        return match still_to_try([pending]).next() {
            Some(pending) => Outcome::Again(pending),
            None => Outcome::Done(Finish::refused(), None),
        };
    }
    let conflict = sql.conflict;
    if let (true, Some(failed)) = (finish.ok, sql.failed.take()) {
        tracing::error!(error = %failed, "a unit of work went on after a failed statement; it was rolled back");
        let deliver = finish.deliver;
        finish = Finish {
            ok: false,
            deliver: Box::new(move |_| {
                deliver(Some(StoreError::database(
                    "a statement of the unit failed",
                    std::io::Error::other(failed),
                )))
            }),
        };
    }
    if finish.ok {
        conn.savepoint_to_release = true;
    } else if let Err(e) = conn.batch("ROLLBACK TO unit; RELEASE unit") {
        tracing::error!(error = %e, "ending a savepoint failed");
    }
    if !finish.ok {
        // A lock taken inside a rolled-back savepoint is released with it.
        conn.ledger_claimed = claimed_before;
    }
    if conflict && !finish.ok && pending.attempts + 1 < MAX_ATTEMPTS {
        pending.attempts += 1;
        return Outcome::Again(pending);
    }
    Outcome::Done(finish, Some(pending))
}

/// Whom a writer tells that it committed: this process's waiters, and the notifier that tells
/// the other processes.
struct Wakeups {
    local: Arc<tokio::sync::watch::Sender<u64>>,
    others: std_mpsc::SyncSender<()>,
}

fn write_loop(
    url: &str,
    conn: &mut Connection,
    clock: Option<&dyn Clock>,
    rx: &Mutex<mpsc::Receiver<Job>>,
    group_max: usize,
    stats: &CommitCounters,
    wake: &Wakeups,
) {
    // Units that met a conflict go first in the next transaction.
    let mut again: VecDeque<Pending> = VecDeque::new();
    let mut group: Vec<Pending> = Vec::with_capacity(group_max);
    loop {
        group.extend(again.drain(..));
        // A writer with nothing to do waits for work holding the queue; one that has units to
        // run again must never wait behind it (the queue may stay empty for long), so it only
        // takes what is there if the queue is free.
        let queue = if group.is_empty() {
            let Ok(mut rx) = rx.lock() else { return };
            match rx.blocking_recv() {
                Some(job) => group.push(Pending { job, attempts: 0 }),
                None => return,
            }
            Some(rx)
        } else {
            rx.try_lock().ok()
        };
        if let Some(mut rx) = queue {
            while group.len() < group_max {
                match rx.try_recv() {
                    Ok(job) => group.push(Pending { job, attempts: 0 }),
                    Err(_) => break,
                }
            }
        }
        conn.ledger_claimed = false;
        conn.savepoint_to_release = false;
        let time = match begin(conn, "BEGIN", clock, Stamps::NoEarlier) {
            Ok(time) => time,
            Err(e) => {
                tracing::error!(error = %e, "could not begin a write transaction (or read the database clock); retrying");
                let _ = conn.batch("ROLLBACK");
                thread::sleep(Duration::from_millis(200));
                if conn.client.is_closed() {
                    match Connection::open(url) {
                        Ok(fresh) => *conn = fresh,
                        Err(e) => tracing::error!(error = %e, "reconnecting to PostgreSQL failed"),
                    }
                }
                again.extend(still_to_try(group.drain(..)));
                continue;
            }
        };
        let began = Instant::now();
        let mut finished = Vec::with_capacity(group.len());
        let mut retried: Vec<Pending> = Vec::new();
        let mut units_run = 0;
        // A unit that met a conflict goes first: only the transaction's first unit may wait for a
        // lock as long as it takes, and one that waited too briefly must get to, or a busy row
        // could refuse it every time.
        if group.first().is_some_and(|p| p.attempts > 0) {
            units_run += 1;
            match run_unit(conn, &time, group.remove(0), false) {
                Outcome::Done(f, p) => finished.push((f, p)),
                Outcome::Again(p) => retried.push(p),
            }
        }
        // Then the group's new orders, together, in a unit of their own (which is not run again
        // after a conflict: its orders then run on their own); then every other unit.
        let together = match orders_together(group.iter().map(|p| &p.job)) {
            Some((unit, orders)) => {
                units_run += 1;
                let once = Pending {
                    job: unit,
                    attempts: MAX_ATTEMPTS,
                };
                match run_unit(conn, &time, once, units_run == 2) {
                    Outcome::Done(f, _) if f.ok => {
                        orders.finishes(group.iter_mut().map(|p| &mut p.job))
                    }
                    _ => Vec::new(),
                }
            }
            None => Vec::new(),
        };
        let mut together = together.into_iter();
        let mut deferred: Vec<Pending> = Vec::new();
        for pending in group.drain(..) {
            if let Some(f) = together.next().flatten() {
                finished.push((f, Some(pending)));
                continue;
            }
            if !deferred.is_empty() || began.elapsed() >= GROUP_TIME_LIMIT {
                // The transaction has run long enough: the rest go first in the next one.
                deferred.push(pending);
                continue;
            }
            units_run += 1;
            match run_unit(conn, &time, pending, units_run == 2) {
                Outcome::Done(f, p) => finished.push((f, p)),
                Outcome::Again(p) => retried.push(p),
            }
        }
        let operations = finished.len() as u64;
        match conn.batch("COMMIT") {
            Ok(()) => {
                stats.committed(operations);
                if operations > 0 {
                    wake.local.send_modify(|n| *n += 1);
                    // Whoever waits for new work in the other processes hears of it too.
                    let _ = wake.others.try_send(());
                }
                for (f, _) in finished {
                    (f.deliver)(None);
                }
            }
            Err(e) if is_conflict(&e) => {
                // Nothing of the group was kept: every unit runs again in the next transaction.
                tracing::warn!(error = %db_error("COMMIT", e), "group commit met a conflict; its units run again");
                let _ = conn.batch("ROLLBACK");
                for (_, pending) in finished {
                    if let Some(mut pending) = pending {
                        pending.attempts += 1;
                        retried.push(pending);
                    }
                }
            }
            Err(e) => {
                let e = db_error("COMMIT", e);
                tracing::error!(error = %e, "group commit failed; every unit in it is refused");
                let _ = conn.batch("ROLLBACK");
                let message = e.to_string();
                for (f, _) in finished {
                    (f.deliver)(Some(StoreError::database(
                        "commit",
                        std::io::Error::other(message.clone()),
                    )));
                }
            }
        }
        again.extend(retried);
        again.extend(deferred);
    }
}

fn read_loop(
    conn: &mut Connection,
    clock: Option<&dyn Clock>,
    rx: &Mutex<std_mpsc::Receiver<Job>>,
) {
    loop {
        let Some(mut job) = next_read(rx) else { return };
        let time = match begin(
            conn,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            clock,
            Stamps::NoLater,
        ) {
            Ok(time) => time,
            Err(e) => {
                tracing::error!(error = %e, "could not begin a read transaction");
                let _ = conn.batch("ROLLBACK");
                continue;
            }
        };
        let mut sql = Conn {
            conn,
            time: &time,
            marks: Default::default(),
            conflict: false,
            failed: None,
            writing: false,
            deferred: Vec::new(),
            start_failed: false,
        };
        let finish = run_job(&mut job, &mut sql);
        sql.flush();
        let _ = conn.batch("COMMIT");
        (finish.deliver)(None);
    }
}

impl Backend for PostgresBackend {
    fn queues(&self) -> &Queues {
        &self.queues
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollar_numbers_outside_quotes() {
        assert_eq!(
            translate_placeholders("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn a_time_floor_is_read_back_from_its_residue_near_the_reference() {
        let reference = 1_796_029_294_544;
        for offset in [0, -5, 7, -60_000, 3_600_000, -86_400_000] {
            let time = reference + offset;
            assert_eq!(time_from_residue(time % (1 << 32), reference), time);
        }
    }

    #[test]
    fn passwords_are_removed_from_urls() {
        assert_eq!(
            redact("postgres://stock:secret@db.internal:5432/stock"),
            "postgres://stock@db.internal:5432/stock"
        );
        assert_eq!(redact("postgres://db/stock"), "postgres://db/stock");
    }

    #[test]
    fn numeric_integers_are_decoded() {
        // 123456789 = digits [1, 2345, 6789], weight 2, positive.
        let raw: Vec<u8> = [3i16, 2, 0, 0, 1, 2345, 6789]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric_to_i64(&raw).unwrap(), 123_456_789);
        // -20000 = digits [2], weight 1, negative.
        let raw: Vec<u8> = [1i16, 1, 0x4000, 0, 2]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric_to_i64(&raw).unwrap(), -20_000);
        // 0 = no digits.
        let raw: Vec<u8> = [0i16, 0, 0, 0]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric_to_i64(&raw).unwrap(), 0);
    }
}
