//! The push engine. A worker claims a channel's due marks, computes each listing's quantity from
//! the canonical state at send time (DESIGN §1, with the `u` hold), sends decreases and zeros
//! before increases in the channel's batch calls, and reports back under its lease. Failures are
//! classified: retried with exponential backoff and jitter (honouring `Retry-After`), dead after
//! the configured limit or at once when permanent; a channel that keeps failing is paused (circuit
//! breaker) without slowing the others.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stockhub_channels::retry::{Next, RetryPolicy};
use stockhub_channels::{ChannelError, ListingRef, PushItem, PushMode, PushOutcome};
use stockhub_store::engine::pushes::{self, Claim, ListingResult, MarkNext, Target};
use stockhub_store::Store;
use tokio::sync::watch;

use crate::registry::Connectors;
use crate::{AppError, Metrics, Outcome};

#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Marks claimed per pass (SKUs); their listings are batched to the channel's limit.
    pub claim_max: i64,
    /// How long a claim is held; longer than a channel call may take.
    pub lease: Duration,
    /// How long a channel's unexplained decrease is held back before it is recorded as drift.
    pub hold: Duration,
    pub retry: RetryPolicy,
    /// Consecutive failed calls that pause a channel.
    pub breaker_failures: u32,
    /// How long a paused channel rests before one trial call.
    pub breaker_pause: Duration,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            claim_max: 500,
            lease: Duration::from_secs(60),
            hold: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            breaker_failures: 5,
            breaker_pause: Duration::from_secs(5),
        }
    }
}

#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

#[derive(Clone)]
pub struct PushWorker {
    store: Store,
    connectors: Connectors,
    metrics: Arc<Metrics>,
    settings: PushSettings,
    breakers: Arc<Mutex<HashMap<String, Breaker>>>,
    /// Channels whose decrease we could not explain: their orders should be backfilled.
    backfill_wanted: Arc<Mutex<Vec<String>>>,
}

impl PushWorker {
    pub fn new(
        store: Store,
        connectors: Connectors,
        metrics: Arc<Metrics>,
        settings: PushSettings,
    ) -> Self {
        Self {
            store,
            connectors,
            metrics,
            settings,
            breakers: Arc::default(),
            backfill_wanted: Arc::default(),
        }
    }

    /// Channels that asked for an order backfill since the last call.
    pub fn take_backfill_requests(&self) -> Vec<String> {
        self.backfill_wanted
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    fn paused(&self, channel: &str) -> bool {
        self.breakers
            .lock()
            .ok()
            .and_then(|b| b.get(channel).and_then(|b| b.open_until))
            .is_some_and(|until| Instant::now() < until)
    }

    fn call_result(&self, channel: &str, ok: bool) {
        if let Ok(mut all) = self.breakers.lock() {
            let b = all.entry(channel.to_owned()).or_default();
            if ok {
                *b = Breaker::default();
            } else {
                b.failures += 1;
                if b.failures >= self.settings.breaker_failures {
                    b.open_until = Some(Instant::now() + self.settings.breaker_pause);
                    tracing::warn!(
                        channel,
                        failures = b.failures,
                        "channel paused after repeated failures"
                    );
                }
            }
        }
    }

    /// One pass over one channel: claim due marks, push, report. Deterministic for tests.
    pub async fn run_once(&self, channel: &str) -> Result<Outcome, AppError> {
        if self.paused(channel) {
            return Ok(Outcome::Idle);
        }
        let connected = self.connectors.get(channel).await?;
        let token = format!("{}-{}", std::process::id(), rand::random::<u64>());
        let (code, limit, lease_ms) = (
            channel.to_owned(),
            self.settings.claim_max,
            self.settings.lease.as_millis() as i64,
        );
        let claims = self
            .store
            .write(move |sql| pushes::claim(sql, &code, limit, lease_ms, &token))
            .await?;
        if claims.is_empty() {
            return Ok(Outcome::Idle);
        }
        let skus: Vec<String> = claims.iter().map(|c| c.sku.clone()).collect();
        let mut targets = self.targets(channel, &skus).await?;
        if !connected.connector.compare_and_set()
            && self
                .observe_before_push(channel, &connected, &targets)
                .await
        {
            // The channel showed a decrease we had not seen: recompute, holding it back.
            targets = self.targets(channel, &skus).await?;
        }
        if targets.iter().any(|t| t.held > 0) {
            // A decrease no booked order explains: look for the orders.
            self.want_backfill(channel);
        }
        if let Some(pause) = connected.connector.backpressure() {
            // The channel asked for room (its throttle bucket is low): wait here, on this
            // channel's own task, rather than spend a call that will be refused.
            tokio::time::sleep(pause.min(Duration::from_secs(2))).await;
        }
        // Decreases and zeros go out before increases.
        targets.sort_by_key(|t| {
            !(t.quantity == 0 || t.listing.last_pushed.is_none_or(|p| t.quantity < p))
        });
        let max_items = max_items(&connected);
        let mut results: BTreeMap<String, Vec<ListingResult>> = BTreeMap::new();
        let mut errors: BTreeMap<String, ChannelError> = BTreeMap::new();
        let mut stale: Vec<Target> = Vec::new();
        for chunk in targets.chunks(max_items) {
            let items: Vec<PushItem> = chunk
                .iter()
                .map(|t| PushItem {
                    listing: listing_ref(t),
                    quantity: t.quantity,
                    // What the channel shows as far as we know: a lower quantity it showed since
                    // it last confirmed ours, else that confirmation.
                    change_from: t.listing.observed.or(t.listing.last_confirmed),
                })
                .collect();
            self.metrics.record_api_call(channel);
            let sent_at_ms = self.store.read(|sql| Ok(sql.now_ms())).await?;
            match connected.connector.push(&items).await {
                Ok(outcomes) => {
                    self.call_result(channel, true);
                    for (t, outcome) in chunk.iter().zip(outcomes) {
                        let sku = t.listing.sku.clone().unwrap_or_default();
                        match outcome {
                            PushOutcome::Applied { confirmed } => {
                                results.entry(sku).or_default().push(ListingResult::Pushed {
                                    listing_id: t.listing.id,
                                    quantity: confirmed,
                                    sent_at_ms,
                                });
                            }
                            PushOutcome::Accepted { .. } => {
                                results.entry(sku).or_default().push(ListingResult::Pushed {
                                    listing_id: t.listing.id,
                                    quantity: t.quantity,
                                    sent_at_ms,
                                });
                            }
                            PushOutcome::Stale { actual } => match actual {
                                Some(actual) => {
                                    results
                                        .entry(sku)
                                        .or_default()
                                        .push(ListingResult::Observed {
                                            listing_id: t.listing.id,
                                            actual,
                                        });
                                }
                                None => stale.push(t.clone()),
                            },
                            PushOutcome::Failed(e) => {
                                self.metrics.record_failure(channel);
                                errors.insert(sku, e);
                            }
                        }
                    }
                }
                Err(e) => {
                    // Being told to slow down is not the channel failing.
                    self.call_result(channel, matches!(e, ChannelError::RateLimited { .. }));
                    self.metrics.record_failure(channel);
                    for t in chunk {
                        errors.insert(t.listing.sku.clone().unwrap_or_default(), e.clone());
                    }
                }
            }
        }
        if !stale.is_empty() {
            self.read_stale(channel, &connected, &stale, &mut results)
                .await;
        }
        self.finish(channel, &claims, results, errors).await
    }

    async fn targets(&self, channel: &str, skus: &[String]) -> Result<Vec<Target>, AppError> {
        let (code, skus) = (channel.to_owned(), skus.to_vec());
        let hold_ms = self.settings.hold.as_millis() as i64;
        Ok(self
            .store
            .write(move |sql| pushes::targets(sql, &code, &skus, hold_ms))
            .await?)
    }

    fn want_backfill(&self, channel: &str) {
        if let Ok(mut wanted) = self.backfill_wanted.lock() {
            wanted.push(channel.to_owned());
        }
    }

    /// For channels without compare-and-set: reads what the listings show before writing, and
    /// records any quantity below what the channel last confirmed (a sale stockhub has not heard
    /// of yet). Returns whether one was found; then an order backfill is asked for too. A failed
    /// read leaves the push to go ahead on what stockhub knows.
    async fn observe_before_push(
        &self,
        channel: &str,
        connected: &crate::registry::Connected,
        targets: &[Target],
    ) -> bool {
        let mut lower = Vec::new();
        for chunk in targets.chunks(max_items(connected)) {
            let refs: Vec<ListingRef> = chunk.iter().map(listing_ref).collect();
            self.metrics.record_api_call(channel);
            let Ok(read) = connected.connector.read_quantities(&refs).await else {
                return false;
            };
            for t in chunk {
                let known = t.listing.observed.or(t.listing.last_confirmed);
                let actual = read.iter().find(|(key, _)| *key == t.listing.listing_key);
                if let (Some(known), Some((_, actual))) = (known, actual) {
                    if *actual < known {
                        lower.push((t.listing.id, *actual));
                    }
                }
            }
        }
        if lower.is_empty() {
            return false;
        }
        let observed = self
            .store
            .write(move |sql| {
                let now = sql.now_ms();
                for (listing_id, actual) in &lower {
                    pushes::observe(sql, *listing_id, *actual, now)?;
                }
                Ok(())
            })
            .await;
        observed.is_ok()
    }

    /// After a failed compare-and-set, reads what the channel shows so that the next push holds
    /// back the unexplained decrease; asks for an order backfill.
    async fn read_stale(
        &self,
        channel: &str,
        connected: &crate::registry::Connected,
        stale: &[Target],
        results: &mut BTreeMap<String, Vec<ListingResult>>,
    ) {
        let refs: Vec<ListingRef> = stale.iter().map(listing_ref).collect();
        self.metrics.record_api_call(channel);
        let read = connected
            .connector
            .read_quantities(&refs)
            .await
            .unwrap_or_default();
        for t in stale {
            if let Some((_, actual)) = read.iter().find(|(key, _)| *key == t.listing.listing_key) {
                results
                    .entry(t.listing.sku.clone().unwrap_or_default())
                    .or_default()
                    .push(ListingResult::Observed {
                        listing_id: t.listing.id,
                        actual: *actual,
                    });
            }
        }
    }

    async fn finish(
        &self,
        channel: &str,
        claims: &[Claim],
        mut results: BTreeMap<String, Vec<ListingResult>>,
        errors: BTreeMap<String, ChannelError>,
    ) -> Result<Outcome, AppError> {
        let now = now_ms();
        let mut plans = Vec::with_capacity(claims.len());
        for claim in claims {
            let listing_results = results.remove(&claim.sku).unwrap_or_default();
            let observed = listing_results
                .iter()
                .any(|r| matches!(r, ListingResult::Observed { .. }));
            let next = match errors.get(&claim.sku) {
                None => MarkNext::Done,
                Some(e) => {
                    let failing_for = Duration::from_millis(
                        (now - claim.first_failed_at_ms.unwrap_or(now)).max(0) as u64,
                    );
                    let attempts = u32::try_from(claim.attempts + 1).unwrap_or(u32::MAX);
                    match self
                        .settings
                        .retry
                        .next(e, attempts, failing_for, rand::random::<f64>())
                    {
                        Next::RetryIn(delay) => MarkNext::Retry {
                            delay_ms: delay.as_millis() as i64,
                            error: e.to_string(),
                        },
                        Next::Dead => MarkNext::Dead {
                            error: e.to_string(),
                        },
                    }
                }
            };
            plans.push((claim.clone(), listing_results, next, observed));
        }
        let for_latency: Vec<(i64, usize)> = plans
            .iter()
            .map(|(c, r, _, _)| {
                (
                    c.marked_at_ms,
                    r.iter()
                        .filter(|x| matches!(x, ListingResult::Pushed { .. }))
                        .count(),
                )
            })
            .collect();
        let code = channel.to_owned();
        let applied = self
            .store
            .write(move |sql| {
                let mut applied = Vec::new();
                for (claim, listing_results, next, observed) in &plans {
                    let kept = pushes::complete(sql, claim, listing_results, next)?;
                    if kept && *observed {
                        // Push again at once, now holding back the unexplained decrease.
                        pushes::mark_channel_sku(sql, &code, &claim.sku)?;
                    }
                    applied.push(kept);
                }
                Ok(applied)
            })
            .await?;
        let done = now_ms();
        for ((marked_at, pushed), kept) in for_latency.iter().zip(applied) {
            if kept {
                for _ in 0..*pushed {
                    self.metrics
                        .record_latency(channel, (done - marked_at).max(0) as u64);
                }
            }
        }
        Ok(Outcome::Worked(claims.len()))
    }

    /// Runs until `shutdown`: wakes on every commit and when the earliest retry falls due, and
    /// works each channel that has due marks, one pass at a time per channel.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut commits = self.store.commits();
        let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            running.retain(|_, h| !h.is_finished());
            let due = match self.store.read(pushes::channels_due).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the push queue failed");
                    Vec::new()
                }
            };
            for channel in due {
                if running.contains_key(&channel) || self.paused(&channel) {
                    continue;
                }
                let worker = self.clone();
                let code = channel.clone();
                running.insert(
                    channel,
                    tokio::spawn(async move {
                        loop {
                            match worker.run_once(&code).await {
                                Ok(Outcome::Worked(_)) => continue,
                                Ok(Outcome::Idle) => break,
                                Err(AppError::NotConnected(_)) => break,
                                Err(e) => {
                                    tracing::warn!(channel = %code, error = %e, "push pass failed");
                                    break;
                                }
                            }
                        }
                    }),
                );
            }
            let wait = self.next_wake().await;
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = commits.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        for (_, handle) in running {
            let _ = handle.await;
        }
    }

    /// Until the earliest future retry, a paused channel's trial, or a lease expiry; bounded.
    async fn next_wake(&self) -> Duration {
        let earliest = self
            .store
            .read(|sql| {
                Ok(sql
                    .query_opt(
                        "SELECT MIN(CASE WHEN state = 'pending' THEN next_attempt_at ELSE leased_until END)
                         FROM push_marks WHERE state IN ('pending', 'in_flight')",
                        &[],
                    )?
                    .and_then(|r| r.opt_int(0)))
            })
            .await
            .ok()
            .flatten();
        let until = earliest.map_or(1000, |at| (at - now_ms()).clamp(1, 1000));
        Duration::from_millis(until as u64).min(self.settings.breaker_pause)
    }
}

/// The most listings one push call may carry on this channel.
fn max_items(connected: &crate::registry::Connected) -> usize {
    match connected.connector.push_mode() {
        PushMode::Batch { max_items } | PushMode::Feed { max_items, .. } => max_items.max(1),
    }
}

fn listing_ref(t: &Target) -> ListingRef {
    ListingRef {
        listing_key: t.listing.listing_key.clone(),
        channel_location: t.listing.channel_location.clone(),
        ids: t.listing.ids.clone(),
    }
}

fn now_ms() -> i64 {
    use stockhub_store::Clock;
    stockhub_store::SystemClock.now_ms()
}
