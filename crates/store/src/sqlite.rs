//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so that a
//! committed transaction survives a power cut. One writer thread owns the write connection and
//! commits queued units of work in groups — one transaction and one fsync for many — each unit
//! inside its own savepoint, so that a refused unit leaves no trace while its neighbours commit.
//! Reads run on a small pool of read-only connections that see the last commit.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::error::{Result, StoreError};
use crate::sql::{Row, Sql, Value};
use crate::store::{
    next_read, orders_together, run_job, run_write_unit, Backend, CommitCounters, Finish, Job,
    Queues,
};

/// Migrations in order; each runs once, recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_foundation.sql")),
    (2, include_str!("../migrations/sqlite/0002_channels.sql")),
    (
        3,
        include_str!("../migrations/sqlite/0003_scheduled_runs.sql"),
    ),
    (
        4,
        include_str!("../migrations/sqlite/0004_carried_holds.sql"),
    ),
    (
        5,
        include_str!("../migrations/sqlite/0005_one_sku_index.sql"),
    ),
    (
        6,
        include_str!("../migrations/sqlite/0006_confirmed_exactly.sql"),
    ),
];

/// Tuning of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Units of work queued for the writer before callers wait.
    pub queue_capacity: usize,
    /// Most units of work committed in one transaction.
    pub group_max: usize,
    /// Read-only connections.
    pub readers: usize,
    /// The least time between two WAL checkpoints.
    pub checkpoint_interval: std::time::Duration,
    /// WAL length, in frames (one page each), from which the writer starts the WAL over from its
    /// beginning, when steady writes never let a checkpoint catch up on its own.
    pub wal_restart_frames: i64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 8192,
            group_max: 1024,
            readers: 4,
            checkpoint_interval: std::time::Duration::from_millis(200),
            // 4,096 frames of 4 KiB pages: 16 MiB.
            wal_restart_frames: 4_096,
        }
    }
}

pub struct SqliteBackend {
    queues: Queues,
}

struct Conn<'a> {
    conn: &'a Connection,
    clock: &'a dyn Clock,
    /// SKUs whose pushes are marked when the unit of work ends.
    marks: std::collections::BTreeSet<String>,
}

fn db_error(sql: &str, e: rusqlite::Error) -> StoreError {
    let head: String = sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
    StoreError::database(format!("sqlite: {head}"), e)
}

impl Conn<'_> {
    fn bind(&self, sql: &str, params: &[Value]) -> Result<rusqlite::CachedStatement<'_>> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| db_error(sql, e))?;
        for (i, p) in params.iter().enumerate() {
            let r = match p {
                Value::Null => stmt.raw_bind_parameter(i + 1, rusqlite::types::Null),
                Value::Int(v) => stmt.raw_bind_parameter(i + 1, v),
                Value::Text(t) => stmt.raw_bind_parameter(i + 1, t.as_str()),
                Value::Blob(b) => stmt.raw_bind_parameter(i + 1, b.as_slice()),
            };
            r.map_err(|e| db_error(sql, e))?;
        }
        Ok(stmt)
    }
}

impl Sql for Conn<'_> {
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let mut stmt = self.bind(sql, params)?;
        let columns = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| db_error(sql, e))? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i).map_err(|e| db_error(sql, e))? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Int(v as i64),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut stmt = self.bind(sql, params)?;
        let n = stmt.raw_execute().map_err(|e| db_error(sql, e))?;
        Ok(n as u64)
    }

    fn now_ms(&mut self) -> i64 {
        self.clock.now_ms()
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
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Savepoint and statement journals stay in memory: every unit of work runs in a savepoint.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 8 MiB of page cache (the default is 2 MiB), for the pages an order changes across the stock
    // levels and the ledger's indexes. Not more: while the database is under 1 GiB, SQLite walks
    // every cached page at the end of most write transactions (a b-tree balance that reorders
    // pages moves one through the page number of the locking page, past the end of the file,
    // and the commit then drops cached pages past the end by scanning them all). With 64 MiB that
    // scan cost the writer a tenth of its time at 1,000 orders/s; the order-lines and propagation
    // benchmarks commit as fast or faster with 8 MiB.
    conn.pragma_update(None, "cache_size", -8192)?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(())
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    for (version, script) in MIGRATIONS {
        let applied: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if !applied {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(script)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, strftime('%s','now') * 1000)",
                [version],
            )?;
            tx.commit()?;
        }
    }
    Ok(())
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file, applies migrations and starts the writer
    /// and reader threads.
    pub fn open(path: &Path, clock: Arc<dyn Clock>, options: SqliteOptions) -> Result<Self> {
        let open_error = |e| StoreError::database(format!("opening {}", path.display()), e);
        let writer = Connection::open(path).map_err(open_error)?;
        configure(&writer).map_err(open_error)?;
        migrate(&writer).map_err(|e| StoreError::database("applying migrations", e))?;
        let stats = Arc::new(CommitCounters::default());
        let (writes, write_rx) = mpsc::channel::<Job>(options.queue_capacity);
        let checkpoints = start_checkpointer(path, &writer, &options)?;
        let (commit_signal, committed) = tokio::sync::watch::channel(0u64);
        {
            let (stats, clock, group_max) = (stats.clone(), clock.clone(), options.group_max);
            let signals = Signals {
                checkpoints,
                commits: commit_signal,
            };
            thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || write_loop(&writer, &*clock, write_rx, group_max, &stats, &signals))
                .map_err(|e| StoreError::database("starting the writer thread", e))?;
        }
        let (reads, read_rx) = std_mpsc::sync_channel::<Job>(options.queue_capacity);
        let read_rx = Arc::new(Mutex::new(read_rx));
        for i in 0..options.readers.max(1) {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_error)?;
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(open_error)?;
            conn.set_prepared_statement_cache_capacity(128);
            let (rx, clock) = (read_rx.clone(), clock.clone());
            thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || read_loop(&conn, &*clock, &rx))
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

/// Moves WAL checkpoints off the writer thread: the writer only signals that it committed, and a
/// thread of its own copies the WAL back into the database file (PASSIVE: it never blocks the
/// writer or readers). Signals coalesce in a channel of one slot.
///
/// A PASSIVE checkpoint alone never lets the WAL start over under steady writes: the writer
/// commits while it copies, so the WAL is never wholly copied when the writer begins its next
/// transaction, and the file grows without bound (gigabytes within a minute of heavy load), each
/// commit writing to new disk blocks. So when the WAL has grown past `wal_restart_frames`, the
/// checkpointer asks the writer (through the returned flag) to copy the little committed since,
/// between two transactions; the writer's next transaction then writes from the WAL's start,
/// unless a reader still reads from the WAL, in which case the next round tries again.
fn start_checkpointer(
    path: &Path,
    writer: &Connection,
    options: &SqliteOptions,
) -> Result<Checkpoints> {
    let error = |e| StoreError::database("setting up WAL checkpoints", e);
    writer
        .pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(error)?;
    let conn = Connection::open(path).map_err(error)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(error)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(error)?;
    let (signal, committed) = std_mpsc::sync_channel::<()>(1);
    let restart_wanted = Arc::new(AtomicBool::new(false));
    let wanted = restart_wanted.clone();
    let (interval, restart_frames) = (options.checkpoint_interval, options.wal_restart_frames);
    thread::Builder::new()
        .name("sqlite-checkpointer".into())
        .spawn(move || {
            while committed.recv().is_ok() {
                match checkpoint(&conn) {
                    Ok(wal_frames) if wal_frames >= restart_frames => {
                        wanted.store(true, Ordering::Release)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "WAL checkpoint failed; the next commit retries it")
                    }
                }
                thread::sleep(interval);
            }
            // The writer is gone: fold the whole WAL back before the file is closed.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        })
        .map_err(|e| StoreError::database("starting the checkpointer thread", e))?;
    Ok(Checkpoints {
        signal,
        restart_wanted,
    })
}

/// Copies what it can of the WAL into the database file without waiting for anyone (PASSIVE);
/// answers the WAL's length in frames.
fn checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

/// The writer's side of the checkpointer.
struct Checkpoints {
    /// Told after every commit.
    signal: std_mpsc::SyncSender<()>,
    /// Set by the checkpointer when the WAL should start over (see [`start_checkpointer`]).
    restart_wanted: Arc<AtomicBool>,
}

impl Checkpoints {
    /// Runs between two group transactions on the writer's connection.
    fn after_commit(&self, writer: &Connection) {
        let _ = self.signal.try_send(());
        if self.restart_wanted.swap(false, Ordering::AcqRel) {
            if let Err(e) = checkpoint(writer) {
                tracing::warn!(error = %e, "WAL checkpoint before a WAL restart failed");
            }
        }
    }
}

/// Whom the writer tells that it committed.
struct Signals {
    checkpoints: Checkpoints,
    commits: tokio::sync::watch::Sender<u64>,
}

/// Runs statements the writer runs for every unit of work (savepoints, commits), prepared once.
fn run_cached(conn: &Connection, statements: &[&str]) -> rusqlite::Result<()> {
    for sql in statements {
        conn.prepare_cached(sql)?.execute([])?;
    }
    Ok(())
}

/// Runs one job inside a savepoint; a failed or panicking job is rolled back to it.
fn run_in_savepoint(conn: &Connection, clock: &dyn Clock, mut job: Job) -> Finish {
    if let Err(e) = run_cached(conn, &["SAVEPOINT unit"]) {
        // The unit never ran; its caller hears that the store is unavailable when the job is
        // dropped.
        tracing::error!(error = %e, "starting a savepoint failed");
        return Finish::refused();
    }
    let mut sql = Conn {
        conn,
        clock,
        marks: Default::default(),
    };
    let finish = run_write_unit(&mut job, &mut sql);
    let end: &[&str] = if finish.ok {
        &["RELEASE unit"]
    } else {
        &["ROLLBACK TO unit", "RELEASE unit"]
    };
    if let Err(e) = run_cached(conn, end) {
        tracing::error!(error = %e, "ending a savepoint failed");
    }
    finish
}

fn write_loop(
    conn: &Connection,
    clock: &dyn Clock,
    mut rx: mpsc::Receiver<Job>,
    group_max: usize,
    stats: &CommitCounters,
    signals: &Signals,
) {
    let mut group = Vec::with_capacity(group_max);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < group_max {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let operations = group.len() as u64;
        if let Err(e) = run_cached(conn, &["BEGIN IMMEDIATE"]) {
            tracing::error!(error = %e, "could not begin a write transaction");
            for job in group.drain(..) {
                drop(job);
            }
            continue;
        }
        // The group's new orders first, together; then every other unit on its own.
        let together = match orders_together(group.iter()) {
            Some((unit, orders)) => {
                if run_in_savepoint(conn, clock, unit).ok {
                    orders.finishes(group.iter_mut())
                } else {
                    Vec::new()
                }
            }
            None => Vec::new(),
        };
        let mut together = together.into_iter();
        let finished: Vec<Finish> = group
            .drain(..)
            .map(|job| {
                together
                    .next()
                    .flatten()
                    .unwrap_or_else(|| run_in_savepoint(conn, clock, job))
            })
            .collect();
        let commit = run_cached(conn, &["COMMIT"]);
        match commit {
            Ok(()) => {
                stats.committed(operations);
                signals.commits.send_modify(|n| *n += 1);
                for f in finished {
                    (f.deliver)(None);
                }
                signals.checkpoints.after_commit(conn);
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; every unit in it is refused");
                let _ = conn.execute_batch("ROLLBACK");
                let message = e.to_string();
                for f in finished {
                    (f.deliver)(Some(StoreError::database(
                        "commit",
                        std::io::Error::other(message.clone()),
                    )));
                }
            }
        }
    }
}

fn read_loop(conn: &Connection, clock: &dyn Clock, rx: &Mutex<std_mpsc::Receiver<Job>>) {
    loop {
        let Some(mut job) = next_read(rx) else { return };
        if let Err(e) = conn.execute_batch("BEGIN") {
            tracing::error!(error = %e, "could not begin a read transaction");
            continue;
        }
        let mut sql = Conn {
            conn,
            clock,
            marks: Default::default(),
        };
        let finish = run_job(&mut job, &mut sql);
        let _ = conn.execute_batch("COMMIT");
        (finish.deliver)(None);
    }
}

impl Backend for SqliteBackend {
    fn queues(&self) -> &Queues {
        &self.queues
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}
