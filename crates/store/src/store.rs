//! The handle to a backend. A unit of work is a closure over `&mut dyn Sql`; the backend runs it
//! inside a transaction, possibly together with many others (group commit), and hands back its
//! result only once that transaction has committed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::orders::{apply_new_orders, apply_snapshot, NewOrder};
use crate::error::{Result, StoreError};
use crate::model::{Ctx, OrderOutcome, OrderSnapshot};
use crate::sql::Sql;

/// How a unit of work ended inside its transaction, and how to deliver its result once the
/// transaction's fate is known (`Some(error)` if the commit itself failed).
pub struct Finish {
    pub ok: bool,
    pub deliver: Box<dyn FnOnce(Option<StoreError>) + Send>,
}

impl Finish {
    /// A unit that failed with nothing to deliver: its caller hears of it when its job is
    /// dropped (the store is unavailable), or from a run of its own.
    pub(crate) fn refused() -> Self {
        Self {
            ok: false,
            deliver: Box::new(|_| {}),
        }
    }
}

/// A type-erased unit of work. A backend may run it more than once — after a conflict with a
/// concurrent transaction it is rolled back and run again — and delivers only the last run's
/// result.
pub struct Job {
    run: Run,
    /// Set when the unit applies one channel order and nothing else: a writer may then apply the
    /// order together with the other new orders of its group (`apply_new_orders`), and `run` runs
    /// only for an order that cannot be applied so.
    order: Option<OrderUnit>,
}

/// What a unit of work does.
type Run = Box<dyn FnMut(&mut dyn Sql) -> Finish + Send>;

impl Job {
    fn new(run: impl FnMut(&mut dyn Sql) -> Finish + Send + 'static) -> Self {
        Self {
            run: Box::new(run),
            order: None,
        }
    }
}

/// The order a unit of work applies, and how to deliver it applied together with others.
struct OrderUnit {
    ctx: Ctx,
    snapshot: Arc<OrderSnapshot>,
    applied: Box<dyn FnMut(OrderOutcome) -> Finish + Send>,
}

/// The new orders of a group, applied together by one unit of work of their own
/// ([`orders_together`]).
pub(crate) struct OrdersTogether {
    /// Which jobs of the group brought the orders, in order.
    positions: Vec<usize>,
    outcomes: Arc<Mutex<Vec<Option<OrderOutcome>>>>,
}

/// The unit of work that applies together the orders the jobs of a group bring, if any do.
/// The backend runs it first in the group's transaction, in a savepoint of its own; if it was
/// kept, [`OrdersTogether::finishes`] says which jobs it did.
pub(crate) fn orders_together<'a>(
    jobs: impl Iterator<Item = &'a Job>,
) -> Option<(Job, OrdersTogether)> {
    let mut positions = Vec::new();
    let mut inputs = Vec::new();
    for (i, job) in jobs.enumerate() {
        if let Some(order) = &job.order {
            positions.push(i);
            inputs.push((order.ctx.clone(), order.snapshot.clone()));
        }
    }
    if inputs.is_empty() {
        return None;
    }
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let kept = outcomes.clone();
    let unit = Job::new(move |sql: &mut dyn Sql| {
        let orders: Vec<NewOrder<'_>> = inputs
            .iter()
            .map(|(ctx, snapshot)| NewOrder { ctx, snapshot })
            .collect();
        match apply_new_orders(sql, &orders) {
            Ok(outcomes) => {
                if let Ok(mut kept) = kept.lock() {
                    *kept = outcomes;
                }
                Finish {
                    ok: true,
                    deliver: Box::new(|_| {}),
                }
            }
            Err(e) => {
                // Each order then runs on its own, and meets the failure there if it is its own.
                tracing::warn!(error = %e, "applying new orders together failed; each runs on its own");
                Finish::refused()
            }
        }
    });
    Some((
        unit,
        OrdersTogether {
            positions,
            outcomes,
        },
    ))
}

impl OrdersTogether {
    /// Once the unit that applied the orders was kept: for each job of the group, in order, how
    /// to deliver its result if its order was applied there (`None`: it runs on its own).
    pub(crate) fn finishes<'a>(
        self,
        jobs: impl Iterator<Item = &'a mut Job>,
    ) -> Vec<Option<Finish>> {
        let mut outcomes = self
            .outcomes
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default()
            .into_iter();
        let mut positions = self.positions.into_iter().peekable();
        jobs.enumerate()
            .map(|(i, job)| {
                if positions.peek() != Some(&i) {
                    return None;
                }
                positions.next();
                let outcome = outcomes.next().flatten()?;
                let order = job.order.as_mut()?;
                Some((order.applied)(outcome))
            })
            .collect()
    }
}

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
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.run)(sql))).unwrap_or_else(|_| {
        tracing::error!("a unit of work panicked; it was rolled back");
        Finish::refused()
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

/// Where a unit of work's result goes: the caller waiting for it, once.
type Reply<T> = Arc<Mutex<Option<oneshot::Sender<Result<T>>>>>;

/// How a unit of work that gave `result` ends: it is kept if it succeeded, and its caller hears
/// the result once the transaction's fate is known.
fn finish_with<T: Send + 'static>(reply: &Reply<T>, result: Result<T>) -> Finish {
    let reply = reply.clone();
    Finish {
        ok: result.is_ok(),
        deliver: Box::new(move |commit_error| {
            let sender = reply.lock().ok().and_then(|mut t| t.take());
            if let Some(sender) = sender {
                let _ = sender.send(match commit_error {
                    Some(e) => Err(e),
                    None => result,
                });
            }
        }),
    }
}

fn job<T, F>(mut f: F) -> (Job, oneshot::Receiver<Result<T>>)
where
    T: Send + 'static,
    F: FnMut(&mut dyn Sql) -> Result<T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let reply: Reply<T> = Arc::new(Mutex::new(Some(tx)));
    let job = Job::new(move |sql: &mut dyn Sql| finish_with(&reply, f(sql)));
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

    /// Applies a channel order's snapshot (`engine::orders::apply_snapshot`) and returns once
    /// its transaction has committed. A new order may be applied together with the other new
    /// orders of its group commit (`engine::orders::apply_new_orders`), with the same result.
    pub async fn apply_order(&self, ctx: Ctx, snapshot: OrderSnapshot) -> Result<OrderOutcome> {
        let (tx, rx) = oneshot::channel();
        let reply: Reply<OrderOutcome> = Arc::new(Mutex::new(Some(tx)));
        let snapshot = Arc::new(snapshot);
        let (run_ctx, run_snapshot, run_reply) = (ctx.clone(), snapshot.clone(), reply.clone());
        let mut job = Job::new(move |sql: &mut dyn Sql| {
            finish_with(&run_reply, apply_snapshot(sql, &run_ctx, &run_snapshot))
        });
        job.order = Some(OrderUnit {
            ctx,
            snapshot,
            applied: Box::new(move |outcome| finish_with(&reply, Ok(outcome))),
        });
        self.backend.enqueue_write(job).await?;
        rx.await.map_err(|_| StoreError::Unavailable)?
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

    /// Waits, for up to `within`, until no write transaction that began at or before `at_ms` (the
    /// store's clock) is still open: a unit of work after this sees everything written with a
    /// time up to `at_ms` (with several writers, a transaction stamps times from its start on but
    /// shows them only at commit). Returns false if it gave up. With one writer (SQLite) there is
    /// nothing to wait for. Times from a clock other than the database's (tests) are not tracked.
    pub async fn wait_for_writes_begun_by(&self, at_ms: i64, within: Duration) -> Result<bool> {
        if self.kind() == "sqlite" {
            return Ok(true);
        }
        let deadline = Instant::now() + within;
        while self
            .read(move |sql| sql.writes_open_begun_by(at_ms))
            .await?
        {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(true)
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
