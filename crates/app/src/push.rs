//! The push engine. A worker claims a channel's due marks, computes each listing's quantity from
//! the canonical state at send time (DESIGN §1, with the `u` hold), sends decreases and zeros
//! before increases in the channel's batch calls — none once its lease may end before the answer
//! — and reports back under its lease (a result that comes after it is discarded). Failures are
//! classified: retried with exponential backoff and jitter (honouring `Retry-After`), dead after
//! the configured limit or at once when permanent; a channel that keeps failing is paused (circuit
//! breaker) without slowing the others.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stockhub_channels::retry::{Next, RetryPolicy};
use stockhub_channels::{ChannelError, ListingRef, PushItem, PushMode, PushOutcome};
use stockhub_store::engine::pushes::{self, Claim, ListingResult, MarkNext, Target};
use stockhub_store::Store;
use tokio::sync::watch;

use crate::arrivals::Mark;
use crate::registry::Connectors;
use crate::{AppError, Metrics, Outcome};

/// The least time between two reads of a channel's orders after pushes (see
/// `PushWorker::book_raced_sales`): the windows of the passes in between join the next read, so
/// that a busy channel's orders are read about once per gap, not once per pass.
const RACE_CHECK_GAP: Duration = Duration::from_millis(500);
/// The longest a pass waits for writes begun before a read to end before it records what the
/// read showed (see `PushWorker::let_writes_settle`).
const READ_SETTLE_LIMIT: Duration = Duration::from_secs(1);
/// How often a channel task looks again whether its running read of orders is done.
const RACE_READ_POLL: Duration = Duration::from_millis(50);

/// A channel's orders to read after pushes that sales may have raced.
#[derive(Default)]
struct RaceCheck {
    /// The start of the earliest window not read yet (store clock, ms).
    unread_since_ms: Option<i64>,
    last_read: Option<Instant>,
    /// A read is running (on a task of its own).
    reading: bool,
}

#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Marks claimed per pass (SKUs); their listings are batched to the channel's limit.
    pub claim_max: i64,
    /// How long a claim is held: at least twice `request_timeout`.
    pub lease: Duration,
    /// How long one channel call may take (the connectors' timeout): a pass sends no call once
    /// less than this is left of its lease.
    pub request_timeout: Duration,
    /// How long a channel's unexplained decrease is held back before it is recorded as drift.
    pub hold: Duration,
    pub retry: RetryPolicy,
    /// Consecutive failed calls that pause a channel.
    pub breaker_failures: u32,
    /// How long a paused channel rests before one trial call.
    pub breaker_pause: Duration,
    /// The least time between the starts of two passes over one channel: marks that arrive
    /// while a channel is busy gather into the next pass's batch calls instead of costing a call
    /// each. A channel idle for longer is pushed at once.
    pub gather: Duration,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            claim_max: 500,
            lease: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            hold: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            breaker_failures: 5,
            breaker_pause: Duration::from_secs(5),
            gather: Duration::from_millis(50),
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
    /// Channels whose decrease we could not explain: their orders should be backfilled, with
    /// the earliest time the unexplained sales can have been made, where known.
    backfill_wanted: Arc<Mutex<Vec<BackfillRequest>>>,
    /// For each listing whose quantity was read back: when it last showed a quantity before that
    /// read. Sales the read shows and no order explains were made after then, and so were their
    /// orders. Forgotten once the listing holds nothing back.
    sales_after: Arc<Mutex<HashMap<i64, i64>>>,
    /// Listings whose last compare-and-set failed (see `push_chunk`).
    stale_before: Arc<Mutex<HashSet<i64>>>,
    /// Listings left out of their last push for a sale in flight (see
    /// `leave_sales_in_flight`).
    left_out_before: Arc<Mutex<HashSet<i64>>>,
    race_checks: Arc<Mutex<HashMap<String, RaceCheck>>>,
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
            sales_after: Arc::default(),
            stale_before: Arc::default(),
            left_out_before: Arc::default(),
            race_checks: Arc::default(),
        }
    }

    /// The order backfills asked for since the last call.
    pub fn take_backfill_requests(&self) -> Vec<BackfillRequest> {
        self.backfill_wanted
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    fn paused(&self, channel: &str) -> bool {
        !self.paused_for(channel).is_zero()
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
        self.pass(channel).await
    }

    /// A pass: claims the channel's due marks right before it computes their quantities — not
    /// earlier, in the write that reports the pass before: a mark committed between that write
    /// and the start of this pass would wait a whole pass more.
    async fn pass(&self, channel: &str) -> Result<Outcome, AppError> {
        if self.paused(channel) {
            return Ok(Outcome::Idle);
        }
        let connected = self.connectors.get(channel).await?;
        if let Some(pause) = connected.connector.backpressure() {
            // The channel asked for room (its throttle bucket is low): wait here, on this
            // channel's own task, rather than spend a call that will be refused — and before
            // anything is computed, so that what is sent is the quantity of send time, with the
            // compare-and-set quantity still current (a wait after would make many stale).
            tokio::time::sleep(pause.min(Duration::from_secs(2))).await;
        }
        let held = self.claim(channel).await?;
        if held.claims.is_empty() {
            return Ok(Outcome::Idle);
        }
        let skus: Vec<String> = held.claims.iter().map(|c| c.sku.clone()).collect();
        let since = self.connectors.arrivals().mark(channel);
        let mut targets = self.targets(channel, &skus).await?;
        if !connected.connector.compare_and_set()
            && self
                .observe_before_push(channel, &connected, &targets)
                .await
        {
            // The channel showed other than expected: recompute, holding back what it sold.
            targets = self.targets(channel, &skus).await?;
        }
        if connected.connector.compare_and_set() && !connected.connector.sales_can_race_writes() {
            targets = without_changes(targets, &held.claims);
        }
        let mut report = self
            .push_targets(channel, &connected, targets, since, held.asked_at)
            .await?;
        self.push_again_what_reads_showed(channel, &connected, &mut report, held.asked_at)
            .await;
        let wrote_since_ms = report.wrote_since_ms;
        let finished = self.finish(channel, &held.claims, report).await?;
        if let Some(since) = wrote_since_ms.filter(|_| connected.connector.sales_can_race_writes())
        {
            if let Ok(mut checks) = self.race_checks.lock() {
                let check = checks.entry(channel.to_owned()).or_default();
                check.unread_since_ms = Some(check.unread_since_ms.map_or(since, |s| s.min(since)));
            }
        }
        self.book_raced_sales(channel);
        Ok(finished)
    }

    /// Pushes a pass's targets: decreases and zeros before increases.
    async fn push_targets(
        &self,
        channel: &str,
        connected: &crate::registry::Connected,
        targets: Vec<Target>,
        since: Mark,
        asked_at: Instant,
    ) -> Result<Report, AppError> {
        if let Some(sales_after) = self.unexplained_sales_after(&targets) {
            // A decrease no booked order explains: look for the orders.
            self.want_backfill(channel, sales_after);
        }
        let (mut targets, left_out) = self.leave_sales_in_flight(channel, targets, since);
        // Decreases and zeros first; then by listing key, so that listings a channel sets
        // through one endpoint (WooCommerce: one product's variations, keyed
        // `variation/{product_id}/…`) fall into the same push and share its calls.
        targets.sort_by(|a, b| {
            goes_first(b)
                .cmp(&goes_first(a))
                .then_with(|| a.listing.listing_key.cmp(&b.listing.listing_key))
        });
        let mut report = self.send(channel, connected, &targets, asked_at).await?;
        report.again.extend(left_out);
        Ok(report)
    }

    /// Leaves out of a push the listings whose SKU a webhook delivery of the channel sells that
    /// is being handled now or committed after `since`, taken before the quantities were
    /// computed (see `Arrivals`): that sale is most often on the channel already and maybe not
    /// in the quantity, so the compare-and-set would be refused — on Shopify with the whole
    /// call, at 10 points, and again for the items sent again — or its read find a sale to hold
    /// back. They are pushed again at once, as a rule with the sale in. A listing left out on
    /// its previous push goes this time, so that a SKU the channel sells without pause is not
    /// left out for good. Returns what to send, and the SKUs left out.
    fn leave_sales_in_flight(
        &self,
        channel: &str,
        targets: Vec<Target>,
        since: Mark,
    ) -> (Vec<Target>, Vec<String>) {
        let in_flight = self.connectors.arrivals().skus_since(channel, since);
        let Ok(mut left_before) = self.left_out_before.lock() else {
            return (targets, Vec::new());
        };
        let mut left_out = Vec::new();
        let mut send = Vec::with_capacity(targets.len());
        for t in targets {
            let sale_in_flight = t
                .listing
                .sku
                .as_ref()
                .is_some_and(|s| in_flight.contains(s));
            if !sale_in_flight {
                left_before.remove(&t.listing.id);
                send.push(t);
            } else if noted_again(&mut left_before, t.listing.id) {
                send.push(t);
            } else {
                left_out.push(sku_of(&t));
            }
        }
        (send, left_out)
    }

    /// Listings whose compare-and-set read, made by the push call itself (WooCommerce's), showed
    /// other than expected — most often a sale whose webhook has not come yet: records what they
    /// showed and pushes them again within the pass, now holding the unexplained decrease back,
    /// instead of a whole pass later — unless the call wrote them holding it back already; then
    /// what it wrote is recorded after the read. Once per pass, and not when the channel asked
    /// for room (the next pass then takes them into its calls). Should recording or computing
    /// fail, the listings are left to the next pass as before.
    async fn push_again_what_reads_showed(
        &self,
        channel: &str,
        connected: &crate::registry::Connected,
        report: &mut Report,
        asked_at: Instant,
    ) {
        let shown = std::mem::take(&mut report.shown);
        let written = std::mem::take(&mut report.written_holding_back);
        if shown.is_empty() {
            return;
        }
        let keep_for_next_pass = |report: &mut Report, shown: Vec<(String, ListingResult)>| {
            // The reads first: a written quantity recorded after its read becomes the baseline.
            for (sku, result) in shown.into_iter().chain(written.iter().cloned()) {
                report.results.entry(sku).or_default().push(result);
            }
        };
        if connected.connector.backpressure().is_some() {
            return keep_for_next_pass(report, shown);
        }
        let latest_read = shown.iter().filter_map(|(_, r)| r.read_at_ms()).max();
        self.let_writes_settle(channel, latest_read).await;
        let observed: Vec<ListingResult> = shown.iter().map(|(_, r)| r.clone()).collect();
        let recorded = self
            .store
            .write(move |sql| {
                for result in &observed {
                    if let ListingResult::Observed {
                        listing_id,
                        actual,
                        read_at_ms,
                    } = result
                    {
                        let read_at_ms = (*read_at_ms).min(sql.now_ms());
                        pushes::observe(sql, *listing_id, *actual, read_at_ms)?;
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(channel, error = %e, "recording what a push read showed failed");
            return keep_for_next_pass(report, shown);
        }
        let written_listings: HashSet<i64> = written.iter().map(|(_, r)| r.listing_id()).collect();
        for (sku, result) in written {
            report.results.entry(sku).or_default().push(result);
        }
        let shown: Vec<(String, ListingResult)> = shown
            .into_iter()
            .filter(|(_, r)| !written_listings.contains(&r.listing_id()))
            .collect();
        if shown.is_empty() {
            return;
        }
        let listings: HashSet<i64> = shown.iter().map(|(_, r)| r.listing_id()).collect();
        let skus: Vec<String> = shown
            .into_iter()
            .map(|(sku, _)| sku)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let since = self.connectors.arrivals().mark(channel);
        let again = match self.targets(channel, &skus).await {
            Ok(targets) => {
                let targets: Vec<Target> = targets
                    .into_iter()
                    .filter(|t| listings.contains(&t.listing.id))
                    .collect();
                self.push_targets(channel, connected, targets, since, asked_at)
                    .await
            }
            Err(e) => Err(e),
        };
        match again {
            Ok(again) => report.merge(again),
            Err(e) => {
                tracing::warn!(channel, error = %e, "pushing again what a push read showed failed");
                report.again.extend(skus);
            }
        }
    }

    /// Pushes the targets in the channel's batch calls, as long as the lease of marks claimed at
    /// `asked_at` outlasts a call: past that another worker may take the marks over before the
    /// answer, so what is left is not sent but pushed again at once — if the lease is still
    /// ours (`complete` fences this like every result of the pass).
    async fn send(
        &self,
        channel: &str,
        connected: &crate::registry::Connected,
        targets: &[Target],
        asked_at: Instant,
    ) -> Result<Report, AppError> {
        let mut report = Report::default();
        let per_call = max_items(connected);
        for (i, chunk) in targets.chunks(per_call).enumerate() {
            if !self.lease_outlasts_a_call(asked_at) {
                let unsent = &targets[i * per_call..];
                report.again.extend(unsent.iter().map(sku_of));
                break;
            }
            self.push_chunk(channel, connected, chunk, &mut report)
                .await?;
        }
        if !report.stale.is_empty() {
            self.read_stale(connected, &mut report).await;
        }
        Ok(report)
    }

    /// Claims the channel's due marks.
    async fn claim(&self, channel: &str) -> Result<Claimed, AppError> {
        let asked_at = Instant::now();
        let channel = channel.to_owned();
        let limit = self.settings.claim_max;
        let lease_ms = self.settings.lease.as_millis() as i64;
        let token = format!("{}-{}", std::process::id(), rand::random::<u64>());
        let claims = self
            .store
            .write(move |sql| pushes::claim(sql, &channel, limit, lease_ms, &token))
            .await?;
        Ok(Claimed { claims, asked_at })
    }

    /// Whether a call sent now ends (answered or timed out) before the lease of marks claimed
    /// at `asked_at` may.
    fn lease_outlasts_a_call(&self, asked_at: Instant) -> bool {
        asked_at.elapsed() + self.settings.request_timeout <= self.settings.lease
    }

    /// One push call and what it says of each listing.
    async fn push_chunk(
        &self,
        channel: &str,
        connected: &crate::registry::Connected,
        chunk: &[Target],
        report: &mut Report,
    ) -> Result<(), AppError> {
        let items: Vec<PushItem> = chunk
            .iter()
            .map(|t| PushItem {
                listing: listing_ref(t),
                quantity: t.quantity,
                // What the channel shows as far as we know: what it last confirmed or showed,
                // less its own orders booked since (those not explaining held sales).
                change_from: t.expected,
            })
            .collect();
        let sent_at_ms = self.store_now().await?;
        let outcomes = match connected.connector.push(&items).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                // Being told to slow down is not the channel failing.
                self.call_result(channel, matches!(e, ChannelError::RateLimited { .. }));
                self.metrics.record_failure(channel);
                for t in chunk {
                    report.errors.insert(sku_of(t), e.clone());
                }
                return Ok(());
            }
        };
        self.call_result(channel, true);
        // Where the comparison is a read before the write (WooCommerce), a sale between the two
        // is written over however exact the quantity compared.
        let atomic_compare =
            connected.connector.compare_and_set() && !connected.connector.sales_can_race_writes();
        for (t, outcome) in chunk.iter().zip(outcomes) {
            let listing_id = t.listing.id;
            let compared_exactly = atomic_compare && t.expected_exact;
            if !matches!(outcome, PushOutcome::Stale { .. }) {
                self.stale_forget(listing_id);
            }
            if matches!(
                outcome,
                PushOutcome::Applied { .. }
                    | PushOutcome::Accepted { .. }
                    | PushOutcome::HeldBack { .. }
            ) {
                report.wrote_since_ms = Some(report.wrote_since_ms.unwrap_or(sent_at_ms));
            }
            let result = match outcome {
                PushOutcome::Applied { confirmed } => ListingResult::Pushed {
                    listing_id,
                    quantity: confirmed,
                    sent_at_ms,
                    compared_exactly,
                },
                PushOutcome::Accepted { .. } => ListingResult::Pushed {
                    listing_id,
                    quantity: t.quantity,
                    sent_at_ms,
                    compared_exactly,
                },
                PushOutcome::Stale {
                    actual: Some(actual),
                }
                | PushOutcome::HeldBack { actual, .. } => {
                    self.note_read(t);
                    let observed = ListingResult::Observed {
                        listing_id,
                        actual,
                        // The compare-and-set read (WooCommerce's) was made after the call left.
                        read_at_ms: sent_at_ms,
                    };
                    report.shown.push((sku_of(t), observed));
                    if let PushOutcome::HeldBack { confirmed, .. } = outcome {
                        // Written holding the decrease back: recorded after what the read showed.
                        let pushed = ListingResult::Pushed {
                            listing_id,
                            quantity: confirmed,
                            sent_at_ms,
                            compared_exactly: false,
                        };
                        report.written_holding_back.push((sku_of(t), pushed));
                    }
                    continue;
                }
                PushOutcome::Stale { actual: None } => {
                    // A first failure is most often a sale whose webhook is on its way: push
                    // again without spending a read. Failing again, the listing is read, its
                    // unexplained decrease held back, and the channel's orders backfilled.
                    if self.stale_again(listing_id) {
                        report.stale.push(t.clone());
                    } else {
                        report.again.insert(sku_of(t));
                    }
                    continue;
                }
                PushOutcome::Refused => {
                    report.again.insert(sku_of(t));
                    continue;
                }
                PushOutcome::Failed(e) => {
                    self.metrics.record_failure(channel);
                    report.errors.insert(sku_of(t), e);
                    continue;
                }
            };
            report.results.entry(sku_of(t)).or_default().push(result);
        }
        Ok(())
    }

    /// The targets of a pass, computed on a read snapshot; holds that outlived the hold time
    /// are given up on the writer first (rare), and the targets computed again after.
    async fn targets(&self, channel: &str, skus: &[String]) -> Result<Vec<Target>, AppError> {
        let hold_ms = self.settings.hold.as_millis() as i64;
        for _ in 0..2 {
            let (code, wanted) = (channel.to_owned(), skus.to_vec());
            let computed = self
                .store
                .read(move |sql| pushes::targets(sql, &code, &wanted, hold_ms))
                .await?;
            if computed.expired.is_empty() {
                return Ok(computed.targets);
            }
            let expired = computed.expired;
            self.store
                .write(move |sql| pushes::give_up_holds(sql, &expired))
                .await?;
        }
        let (code, wanted) = (channel.to_owned(), skus.to_vec());
        Ok(self
            .store
            .read(move |sql| pushes::targets(sql, &code, &wanted, hold_ms))
            .await?
            .targets)
    }

    /// Notes a failed compare-and-set of a listing; true if its previous one failed too.
    fn stale_again(&self, listing_id: i64) -> bool {
        let Ok(mut stale) = self.stale_before.lock() else {
            return true;
        };
        noted_again(&mut stale, listing_id)
    }

    fn stale_forget(&self, listing_id: i64) {
        if let Ok(mut stale) = self.stale_before.lock() {
            stale.remove(&listing_id);
        }
    }

    /// After a pass that set quantities on a channel where a sale can land between the read
    /// that checked a quantity and the write (and be overwritten), books the channel's orders
    /// updated since just before the first call, so that such a sale is pushed back at once
    /// instead of waiting for its webhook or the next backfill. The window starts
    /// `backfill::RECENT_MARGIN` earlier, for clocks that differ a little; the backfill cursor
    /// stays where it is. A failure leaves it to the next backfill. Reads come at least
    /// `RACE_CHECK_GAP` apart, one at a time, each covering every window noted since the last.
    /// A read runs on a task of its own: the channel's pushes go on meanwhile (a read waits for
    /// the store's pages and for the writer, ~100 ms on a busy store, which the pushes of the
    /// sales meanwhile should not). Returns how long until a window still unread is due
    /// (`None`: nothing left to read).
    fn book_raced_sales(&self, channel: &str) -> Option<Duration> {
        let wrote_since_ms = {
            let mut checks = self.race_checks.lock().ok()?;
            let check = checks.get_mut(channel)?;
            check.unread_since_ms?;
            let gap_left = check
                .last_read
                .and_then(|at| RACE_CHECK_GAP.checked_sub(at.elapsed()))
                .filter(|wait| !wait.is_zero());
            if check.reading {
                // The next read starts once this one is done.
                return Some(gap_left.unwrap_or(RACE_READ_POLL));
            }
            if let Some(wait) = gap_left {
                return Some(wait);
            }
            check.last_read = Some(Instant::now());
            check.reading = true;
            check.unread_since_ms.take()?
        };
        let since = wrote_since_ms - crate::backfill::RECENT_MARGIN.as_millis() as i64;
        let reading = Reading {
            worker: self.clone(),
            channel: channel.to_owned(),
        };
        tokio::spawn(async move {
            let Reading { worker, channel } = &reading;
            let read = crate::backfill::apply_updated_since(
                &worker.store,
                &worker.connectors,
                channel,
                since,
                crate::backfill::Cursor::Keep,
            )
            .await;
            if let Err(e) = read {
                tracing::warn!(channel, error = %e, "reading orders made while pushing failed")
            }
        });
        None
    }

    /// Before what reads showed is recorded (`pushes::observe`): waits until every write that
    /// began by the latest of those reads (`None`: there were none) has committed or rolled
    /// back, so that every order booked up to a read counts as a sale before it — one stamped
    /// before the read and seen only after it is recorded would never count, and leave a unit
    /// held that no order explains. Gives up after `READ_SETTLE_LIMIT`.
    async fn let_writes_settle(&self, channel: &str, latest_read_ms: Option<i64>) {
        let Some(latest) = latest_read_ms else {
            return;
        };
        match self
            .store
            .wait_for_writes_begun_by(latest, READ_SETTLE_LIMIT)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                channel,
                "writes begun before a read of the channel's quantities were still open after {READ_SETTLE_LIMIT:?}; recording the read without them"
            ),
            Err(e) => tracing::warn!(channel, error = %e, "could not tell whether writes begun before a read were done"),
        }
    }

    /// The store's clock (the database's, where several processes share one).
    async fn store_now(&self) -> Result<i64, AppError> {
        Ok(self.store.read(|sql| Ok(sql.now_ms())).await?)
    }

    fn want_backfill(&self, channel: &str, sales_after_ms: Option<i64>) {
        if let Ok(mut wanted) = self.backfill_wanted.lock() {
            wanted.push(BackfillRequest {
                channel: channel.to_owned(),
                sales_after_ms,
            });
        }
    }

    /// Notes that a read of the target's listing is about to be recorded: any sale it shows that
    /// no order explains was made after the listing last showed a quantity.
    fn note_read(&self, t: &Target) {
        let (Some(at), Ok(mut after)) = (t.listing.confirmed_at_ms, self.sales_after.lock()) else {
            return;
        };
        after
            .entry(t.listing.id)
            .and_modify(|known| *known = (*known).min(at))
            .or_insert(at);
    }

    /// If some of the targets hold back sales no order explains: the earliest time those sales
    /// can have been made, where this process saw each of their decreases (`Some(None)` where
    /// it did not: another process did, or this one before a restart). Listings holding
    /// nothing are forgotten.
    fn unexplained_sales_after(&self, targets: &[Target]) -> Option<Option<i64>> {
        let mut after = self.sales_after.lock().ok()?;
        let mut earliest: Option<Option<i64>> = None;
        for t in targets {
            if t.held == 0 {
                after.remove(&t.listing.id);
                continue;
            }
            let this = after.get(&t.listing.id).copied();
            earliest = Some(match earliest {
                None => this,
                Some(known) => crate::backfill::earliest_if_known(known, this),
            });
        }
        earliest
    }

    /// For channels without compare-and-set: reads what the listings show before writing, and
    /// records any quantity other than what stockhub expects the channel to show (less: a sale
    /// stockhub has not heard of yet; more: units the channel put back itself). Returns whether
    /// one was found; then the targets are computed again. A failed read leaves the push to go
    /// ahead on what stockhub knows.
    async fn observe_before_push(
        &self,
        channel: &str,
        connected: &crate::registry::Connected,
        targets: &[Target],
    ) -> bool {
        let mut differing = Vec::new();
        for chunk in targets.chunks(max_items(connected)) {
            let refs: Vec<ListingRef> = chunk.iter().map(listing_ref).collect();
            let Ok(read_at_ms) = self.store_now().await else {
                return false;
            };
            let Ok(read) = connected.connector.read_quantities(&refs).await else {
                return false;
            };
            for t in chunk {
                let actual = read.iter().find(|(key, _)| *key == t.listing.listing_key);
                if let (Some(expected), Some((_, actual))) = (t.expected, actual) {
                    if *actual != expected {
                        self.note_read(t);
                        differing.push((t.listing.id, *actual, read_at_ms));
                    }
                }
            }
        }
        if differing.is_empty() {
            return false;
        }
        let latest_read = differing.iter().map(|&(_, _, read_at_ms)| read_at_ms).max();
        self.let_writes_settle(channel, latest_read).await;
        let observed = self
            .store
            .write(move |sql| {
                for (listing_id, actual, read_at_ms) in &differing {
                    pushes::observe(sql, *listing_id, *actual, *read_at_ms)?;
                }
                Ok(())
            })
            .await;
        observed.is_ok()
    }

    /// After a failed compare-and-set, reads what the channel shows so that the next push holds
    /// back the unexplained decrease; a listing the read does not show is retried after a
    /// backoff.
    async fn read_stale(&self, connected: &crate::registry::Connected, report: &mut Report) {
        let stale = std::mem::take(&mut report.stale);
        let refs: Vec<ListingRef> = stale.iter().map(listing_ref).collect();
        // If the time cannot be read, the listings are retried like unread ones.
        let read_at_ms = self.store_now().await.ok();
        let read = connected
            .connector
            .read_quantities(&refs)
            .await
            .unwrap_or_default();
        for t in &stale {
            let shown = read.iter().find(|(key, _)| *key == t.listing.listing_key);
            match (shown, read_at_ms) {
                (Some((_, actual)), Some(read_at_ms)) => {
                    self.note_read(t);
                    report
                        .results
                        .entry(sku_of(t))
                        .or_default()
                        .push(ListingResult::Observed {
                            listing_id: t.listing.id,
                            actual: *actual,
                            read_at_ms,
                        });
                }
                _ => {
                    // Not shown (untracked, or the read failed): retried after a backoff.
                    report.errors.insert(
                        sku_of(t),
                        ChannelError::Transient(
                            "compare-and-set failed and the listing's quantity could not be read"
                                .into(),
                        ),
                    );
                }
            }
        }
    }

    async fn finish(
        &self,
        channel: &str,
        claims: &[Claim],
        mut report: Report,
    ) -> Result<Outcome, AppError> {
        let latest_read = report
            .results
            .values()
            .flatten()
            .filter_map(ListingResult::read_at_ms)
            .max();
        self.let_writes_settle(channel, latest_read).await;
        let now = now_ms();
        let mut plans = Vec::with_capacity(claims.len());
        for claim in claims {
            let listing_results = report.results.remove(&claim.sku).unwrap_or_default();
            let observed = listing_results
                .iter()
                .any(|r| matches!(r, ListingResult::Observed { .. }));
            let next = match report.errors.get(&claim.sku) {
                // Push again at once: now holding back the unexplained decrease, or without the
                // item that made the channel refuse the call.
                None if observed || report.again.contains(&claim.sku) => MarkNext::Again,
                None => MarkNext::Done,
                Some(e) => self.after_failure(claim, e, now),
            };
            plans.push((claim.clone(), listing_results, next));
        }
        // Completed in the order every unit that marks pushes locks the marks in (channel, then
        // SKU: `stock::lock_levels`), not in the order claimed (by due time): on PostgreSQL two
        // units taking the same marks in different orders deadlock, and one waits out the
        // server's `deadlock_timeout` before it is rolled back and run again.
        plans.sort_by(|(a, _, _), (b, _, _)| a.sku.cmp(&b.sku));
        let for_latency: Vec<(i64, usize)> = plans
            .iter()
            .map(|(c, r, _)| {
                (
                    c.marked_at_ms,
                    r.iter()
                        .filter(|x| matches!(x, ListingResult::Pushed { .. }))
                        .count(),
                )
            })
            .collect();
        let applied = self
            .store
            .write(move |sql| {
                plans
                    .iter()
                    .map(|(claim, listing_results, next)| {
                        pushes::complete(sql, claim, listing_results, next)
                    })
                    .collect::<Result<Vec<bool>, _>>()
            })
            .await?;
        self.record_completed(channel, &for_latency, &applied);
        Ok(Outcome::Worked(claims.len()))
    }

    /// Counts what `complete` made of a pass's claims: the propagation latency of each listing
    /// pushed under a lease still held, and the claims whose lease had ended (their results
    /// discarded: another worker took the marks over).
    fn record_completed(&self, channel: &str, pushed: &[(i64, usize)], kept: &[bool]) {
        let done = now_ms();
        for ((marked_at, pushed), kept) in pushed.iter().zip(kept) {
            if *kept {
                for _ in 0..*pushed {
                    self.metrics
                        .record_latency(channel, (done - marked_at).max(0) as u64);
                }
            }
        }
        let discarded = kept.iter().filter(|kept| !**kept).count();
        if discarded > 0 {
            self.metrics.record_discarded(channel, discarded as u64);
            tracing::warn!(
                channel,
                discarded,
                "a push pass reported after its lease ended; its results were discarded"
            );
        }
    }

    /// What becomes of a mark whose push failed: a retry after a backoff, or dead.
    fn after_failure(&self, claim: &Claim, e: &ChannelError, now: i64) -> MarkNext {
        let failing_for =
            Duration::from_millis((now - claim.first_failed_at_ms.unwrap_or(now)).max(0) as u64);
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

    /// Runs until `shutdown`: one task per channel with marks, each pushing its channel pass
    /// after pass (see [`PushWorker::work_channel`]). This loop only finds channels that have
    /// work and no task yet, at most every `SUPERVISE_GAP`.
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
                if running.contains_key(&channel) {
                    continue;
                }
                let worker = self.clone();
                let (code, stop) = (channel.clone(), shutdown.clone());
                running.insert(
                    channel,
                    tokio::spawn(async move { worker.work_channel(&code, stop).await }),
                );
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = commits.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                () = tokio::time::sleep(SUPERVISE_GAP) => {}
            }
        }
        for (_, handle) in running {
            let _ = handle.await;
        }
    }

    /// One channel's pushes, until `shutdown` or the channel has had nothing to do for
    /// `CHANNEL_IDLE_EXIT`: a pass whenever marks are due, passes starting at least `gather`
    /// apart; between passes it sleeps until the channel's next due mark or the next commit.
    pub async fn work_channel(&self, channel: &str, mut shutdown: watch::Receiver<bool>) {
        let mut commits = self.store.commits();
        let mut last_pass: Option<Instant> = None;
        let mut last_work = Instant::now();
        loop {
            if *shutdown.borrow() || last_work.elapsed() > CHANNEL_IDLE_EXIT {
                return;
            }
            // Mark the commits seen so far as read: any later one wakes the wait below.
            commits.borrow_and_update();
            let race_check = self.book_raced_sales(channel);
            let wait = match self.due_in(channel).await {
                Some(due) if due.is_zero() => self.paused_for(channel),
                Some(due) => due.min(IDLE_WAKE),
                None => IDLE_WAKE,
            };
            let wait = race_check.map_or(wait, |check| wait.min(check));
            if !wait.is_zero() {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = commits.changed() => {}
                    () = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            if let Some(gap) =
                last_pass.and_then(|at| self.settings.gather.checked_sub(at.elapsed()))
            {
                // The channel is busy: let the marks of this burst gather into one pass.
                tokio::time::sleep(gap).await;
            }
            let paused = self.paused_for(channel);
            if !paused.is_zero() {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    () = tokio::time::sleep(paused) => {}
                }
            }
            last_pass = Some(Instant::now());
            match self.pass(channel).await {
                Ok(Outcome::Worked(_)) => last_work = Instant::now(),
                Ok(Outcome::Idle) => {}
                Err(AppError::NotConnected(_)) => return,
                Err(e) => {
                    tracing::warn!(channel, error = %e, "push pass failed");
                    tokio::time::sleep(IDLE_WAKE).await;
                }
            }
        }
    }

    /// How long until one of the channel's marks falls due (zero: now), if it has any.
    async fn due_in(&self, channel: &str) -> Option<Duration> {
        let code = channel.to_owned();
        let due = self
            .store
            .read(move |sql| Ok((pushes::next_due(sql, &code)?, sql.now_ms())))
            .await;
        match due {
            Ok((Some(at), now)) => Some(Duration::from_millis((at - now).max(0) as u64)),
            Ok((None, _)) => None,
            Err(e) => {
                tracing::warn!(channel, error = %e, "reading the push queue failed");
                Some(IDLE_WAKE)
            }
        }
    }

    /// How long the channel's breaker keeps it paused (zero when it is not).
    fn paused_for(&self, channel: &str) -> Duration {
        self.breakers
            .lock()
            .ok()
            .and_then(|b| b.get(channel).and_then(|b| b.open_until))
            .map_or(Duration::ZERO, |until| {
                until.saturating_duration_since(Instant::now())
            })
    }
}

/// What one pass learned, per SKU.
#[derive(Default)]
struct Report {
    results: BTreeMap<String, Vec<ListingResult>>,
    errors: BTreeMap<String, ChannelError>,
    /// Listings whose compare-and-set failed, to read back.
    stale: Vec<Target>,
    /// SKUs to push again at once: a listing the channel refused only because of another item
    /// of its call, or one the pass did not send because its lease ran short.
    again: BTreeSet<String>,
    /// When the first call that set a quantity left (the store's clock).
    wrote_since_ms: Option<i64>,
    /// What the push calls' own compare-and-set reads showed where it was not what was expected
    /// (`ListingResult::Observed`, by SKU): pushed again within the pass, unless written already
    /// holding the decrease back (`written_holding_back`).
    shown: Vec<(String, ListingResult)>,
    /// Listings of `shown` that the call wrote holding back the decrease its read found
    /// (`PushOutcome::HeldBack`): their `ListingResult::Pushed`, to record after the read.
    written_holding_back: Vec<(String, ListingResult)>,
}

impl Report {
    /// Adds what a later round of the same pass learned.
    fn merge(&mut self, later: Report) {
        for (sku, results) in later.results {
            self.results.entry(sku).or_default().extend(results);
        }
        for (sku, result) in later.shown.into_iter().chain(later.written_holding_back) {
            self.results.entry(sku).or_default().push(result);
        }
        self.errors.extend(later.errors);
        self.stale.extend(later.stale);
        self.again.extend(later.again);
        self.wrote_since_ms = match (self.wrote_since_ms, later.wrote_since_ms) {
            (Some(first), Some(later)) => Some(first.min(later)),
            (first, later) => first.or(later),
        };
    }
}

/// A channel's read of orders after pushes, running: when it ends, however it ends, the next
/// one may start.
struct Reading {
    worker: PushWorker,
    channel: String,
}

impl Drop for Reading {
    fn drop(&mut self) {
        if let Ok(mut checks) = self.worker.race_checks.lock() {
            if let Some(check) = checks.get_mut(&self.channel) {
                check.reading = false;
            }
        }
    }
}

/// An order backfill the push worker asks for: a channel showed a decrease no order explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRequest {
    pub channel: String,
    /// The earliest time (store clock, ms) the unexplained sales can have been made, where
    /// known: only orders updated since then can explain them.
    pub sales_after_ms: Option<i64>,
}

/// Marks a worker holds, and when it asked for them: their lease began no earlier.
struct Claimed {
    claims: Vec<Claim>,
    asked_at: Instant,
}

/// Notes a listing in `noted` (stale, or left out of a push): true if it was noted already, and
/// then forgotten, so that the note after starts over. Holds at most `LISTINGS_REMEMBERED`.
fn noted_again(noted: &mut HashSet<i64>, listing_id: i64) -> bool {
    if noted.remove(&listing_id) {
        return true;
    }
    if noted.len() >= LISTINGS_REMEMBERED {
        noted.clear();
    }
    noted.insert(listing_id);
    false
}

/// Listings remembered as stale, or as left out of their last push, at most (then forgotten all
/// at once: one extra read, or one more time left out, each).
const LISTINGS_REMEMBERED: usize = 100_000;
/// The least time between two looks for channels that have work and no task.
const SUPERVISE_GAP: Duration = Duration::from_millis(50);
/// The longest a channel task sleeps without looking at its marks.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// A channel task with nothing to do for this long ends; the next mark starts another.
const CHANNEL_IDLE_EXIT: Duration = Duration::from_secs(30);

/// Leaves out the listings that show, as far as stockhub knows exactly, what they should — on a
/// channel that compares and sets in one step (Shopify), where what a listing shows is what it
/// confirmed, less its own orders booked since (`Target::expected_exact`: not when those orders
/// put units back, which the channel may have restocked itself, nor while units are held back,
/// nor after a push that compared less exactly and may have written over a sale).
/// Sending one could change nothing (it is written as it is or refused as stale), while it could
/// make the call fail: Shopify refuses a call whole when one item is stale, as one is whose
/// channel sold a unit stockhub has not heard of yet. Their marks are done with nothing to
/// record; such a sale comes with its order, or the next push that changes the listing finds
/// it. (Where the comparison is a read before the write, as on WooCommerce, a sale between the
/// two is overwritten, the listing shows more than expected, and only pushing finds it.)
/// A mark whose push failed before is sent in any case: that push may have reached the channel
/// all the same.
fn without_changes(mut targets: Vec<Target>, claims: &[Claim]) -> Vec<Target> {
    let failed_before: HashSet<&str> = claims
        .iter()
        .filter(|c| c.attempts > 0 || c.first_failed_at_ms.is_some())
        .map(|c| c.sku.as_str())
        .collect();
    targets.retain(|t| {
        let unchanged = t.expected_exact && t.expected == Some(t.quantity);
        !unchanged
            || t.listing
                .sku
                .as_deref()
                .is_some_and(|s| failed_before.contains(s))
    });
    targets
}

/// Whether a target goes out before the others of its pass: a zero, or a decrease (DESIGN §1).
fn goes_first(t: &Target) -> bool {
    t.quantity == 0 || t.listing.last_pushed.is_none_or(|p| t.quantity < p)
}

fn sku_of(t: &Target) -> String {
    t.listing.sku.clone().unwrap_or_default()
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
        channel_sku: t.listing.channel_sku.clone(),
    }
}

fn now_ms() -> i64 {
    use stockhub_store::Clock;
    stockhub_store::SystemClock.now_ms()
}
