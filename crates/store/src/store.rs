//! The handle to a backend. A unit of work is a closure over `&mut dyn Sql`; the backend runs it
//! inside a transaction, possibly together with many others (group commit), and hands back its
//! result only once that transaction has committed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Result, StoreError};
use crate::sql::Sql;

/// How a unit of work ended inside its transaction, and how to deliver its result once the
/// transaction's fate is known (`Some(error)` if the commit itself failed).
pub struct Finish {
    pub ok: bool,
    pub deliver: Box<dyn FnOnce(Option<StoreError>) + Send>,
}

/// A type-erased unit of work. A backend may run it more than once — after a conflict with a
/// concurrent transaction it is rolled back and run again — and delivers only the last run's
/// result.
pub type Job = Box<dyn FnMut(&mut dyn Sql) -> Finish + Send>;

/// How many transactions committed and how many units of work they carried: the ratio is what
/// group commit buys.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitStats {
    pub commits: u64,
    pub operations: u64,
}

/// Counts of committed write transactions and the units of work they carried.
#[derive(Default)]
pub struct CommitCounters {
    commits: AtomicU64,
    operations: AtomicU64,
}

impl CommitCounters {
    /// Records one committed transaction that carried `operations` units of work.
    pub fn committed(&self, operations: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.operations.fetch_add(operations, Ordering::Relaxed);
    }
}

/// The queues in front of a backend's connections — the same for every backend: units of work
/// to write (bounded; group commit takes them in batches), units of work to read, the commit
/// counters and the signal that changes after every commit.
pub struct Queues {
    pub(crate) writes: mpsc::Sender<Job>,
    pub(crate) reads: Mutex<std_mpsc::SyncSender<Job>>,
    pub(crate) committed: watch::Receiver<u64>,
    pub(crate) counters: Arc<CommitCounters>,
}

pub trait Backend: Send + Sync + 'static {
    fn queues(&self) -> &Queues;
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;

    /// Queues a unit of work that changes data; waits only for room in the bounded queue.
    fn enqueue_write(&self, job: Job) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> {
        Box::pin(async move {
            self.queues()
                .writes
                .send(job)
                .await
                .map_err(|_| StoreError::Unavailable)
        })
    }

    /// The same, from a thread that is not running async code.
    fn enqueue_write_blocking(&self, job: Job) -> Result<()> {
        self.queues()
            .writes
            .blocking_send(job)
            .map_err(|_| StoreError::Unavailable)
    }

    /// Runs a read-only unit of work on a consistent snapshot.
    fn enqueue_read(&self, job: Job) -> Result<()> {
        let sender = self
            .queues()
            .reads
            .lock()
            .map_err(|_| StoreError::Unavailable)?
            .clone();
        sender.send(job).map_err(|_| StoreError::Unavailable)
    }

    fn stats(&self) -> CommitStats {
        let counters = &self.queues().counters;
        CommitStats {
            commits: counters.commits.load(Ordering::Relaxed),
            operations: counters.operations.load(Ordering::Relaxed),
        }
    }

    /// Counts committed write transactions; wakes whoever waits for new work (push workers).
    fn commits(&self) -> watch::Receiver<u64> {
        self.queues().committed.clone()
    }
}

/// Runs a unit of work of a write transaction: a panic refuses it, and a unit that succeeded
/// marks the pushes its stock changes call for (`Sql::defer_push_mark`) before it ends. The
/// backend then ends the unit's savepoint by `finish.ok`.
pub(crate) fn run_write_unit(job: &mut Job, sql: &mut dyn Sql) -> Finish {
    let mut finish = run_job(job, sql);
    if finish.ok {
        if let Err(e) = crate::engine::pushes::mark_deferred(sql) {
            let deliver = finish.deliver;
            finish = Finish {
                ok: false,
                deliver: Box::new(move |_| deliver(Some(e))),
            };
        }
    }
    finish
}

/// Runs a unit of work; a panic refuses it (its caller hears that the store is unavailable).
pub(crate) fn run_job(job: &mut Job, sql: &mut dyn Sql) -> Finish {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(sql))).unwrap_or_else(|_| {
        tracing::error!("a unit of work panicked; it was rolled back");
        Finish {
            ok: false,
            deliver: Box::new(|_| {}),
        }
    })
}

/// The next unit of read work of a reader thread; `None` once the store is gone.
pub(crate) fn next_read(jobs: &Mutex<std_mpsc::Receiver<Job>>) -> Option<Job> {
    jobs.lock().ok()?.recv().ok()
}

#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

fn job<T, F>(mut f: F) -> (Job, oneshot::Receiver<Result<T>>)
where
    T: Send + 'static,
    F: FnMut(&mut dyn Sql) -> Result<T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
    let job: Job = Box::new(move |sql: &mut dyn Sql| {
        let result = f(sql);
        let tx = tx.clone();
        Finish {
            ok: result.is_ok(),
            deliver: Box::new(move |commit_error| {
                let sender = tx.lock().ok().and_then(|mut t| t.take());
                if let Some(sender) = sender {
                    let _ = sender.send(match commit_error {
                        Some(e) => Err(e),
                        None => result,
                    });
                }
            }),
        }
    });
    (job, rx)
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }

    /// Runs `f` in a write transaction; returns once its transaction has committed durably.
    /// If `f` fails, nothing it did is kept.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Sql) -> Result<T> + Send + 'static,
    {
        let (job, rx) = job(f);
        self.backend.enqueue_write(job).await?;
        rx.await.map_err(|_| StoreError::Unavailable)?
    }

    /// `write` for code that is not async (the CLI, property tests).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Sql) -> Result<T> + Send + 'static,
    {
        let (job, rx) = job(f);
        self.backend.enqueue_write_blocking(job)?;
        rx.blocking_recv().map_err(|_| StoreError::Unavailable)?
    }

    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Sql) -> Result<T> + Send + 'static,
    {
        let (job, rx) = job(f);
        self.backend.enqueue_read(job)?;
        rx.await.map_err(|_| StoreError::Unavailable)?
    }

    /// Runs a read-only unit of work each of whose statements sees everything committed before
    /// it starts (tailing the ledger needs that). SQLite's reads always do; on PostgreSQL it runs
    /// on a write connection (READ COMMITTED) instead of a read snapshot.
    pub async fn read_latest<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Sql) -> Result<T> + Send + 'static,
    {
        match self.kind() {
            "sqlite" => self.read(f).await,
            _ => self.write(f).await,
        }
    }

    pub fn read_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Sql) -> Result<T> + Send + 'static,
    {
        let (job, rx) = job(f);
        self.backend.enqueue_read(job)?;
        rx.blocking_recv().map_err(|_| StoreError::Unavailable)?
    }

    pub fn stats(&self) -> CommitStats {
        self.backend.stats()
    }

    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// Changes after every committed write transaction.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.backend.commits()
    }

    /// The durability settings in force, read back from the live write connection.
    pub async fn durability_settings(&self) -> Result<serde_json::Value> {
        match self.kind() {
            "sqlite" => {
                self.write(|sql| {
                    let journal_mode = sql.query("PRAGMA journal_mode", &[])?[0].text(0);
                    let synchronous = match sql.query("PRAGMA synchronous", &[])?[0].int(0) {
                        0 => "off",
                        1 => "normal",
                        2 => "full",
                        3 => "extra",
                        _ => "unknown",
                    };
                    Ok(serde_json::json!({
                        "backend": "sqlite",
                        "journal_mode": journal_mode.to_lowercase(),
                        "synchronous": synchronous,
                    }))
                })
                .await
            }
            _ => {
                self.write(|sql| {
                    let synchronous_commit = sql.query("SHOW synchronous_commit", &[])?[0].text(0);
                    let fsync = sql.query("SHOW fsync", &[])?[0].text(0);
                    let isolation = sql.query("SHOW transaction_isolation", &[])?[0].text(0);
                    Ok(serde_json::json!({
                        "backend": "postgres",
                        "synchronous_commit": synchronous_commit,
                        "fsync": fsync,
                        "transaction_isolation": isolation,
                    }))
                })
                .await
            }
        }
    }
}
