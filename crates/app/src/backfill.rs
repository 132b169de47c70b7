//! Order backfill: read a channel's orders updated since its cursor (with overlap) and apply
//! each as a snapshot, idempotently — what webhooks missed is found here.

use stockhub_channels::pace::Paced;
use stockhub_core::Code;
use stockhub_store::engine::intake::ChannelOrderInput;
use stockhub_store::engine::{catalog, intake};
use stockhub_store::model::Ctx;
use stockhub_store::Store;

use crate::registry::Connectors;
use crate::webhooks::order_input;
use crate::AppError;

/// How far before its cursor a backfill starts reading: for orders a channel made visible a
/// little after their update time (its own commit), and for clocks that differ. The cursor itself
/// is never later than when the last backfill began (see `next_cursor`), so orders updated while
/// that one ran are read again anyway.
pub const OVERLAP_MS: i64 = 60 * 1000;

/// The least time between two backfills of one channel asked for by the push worker.
pub const ON_DEMAND_MIN_GAP: std::time::Duration = std::time::Duration::from_secs(10);

/// How much earlier than the time it is meant to start a read of recent orders starts: for
/// clocks that differ a little (a connector reads whole seconds itself where its channel keeps
/// times to the second).
pub const RECENT_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Applies every order the channel updated since the cursor (less an overlap); returns how many
/// were read.
pub async fn backfill(
    store: &Store,
    connectors: &Connectors,
    channel: &str,
    default_since_ms: i64,
) -> Result<usize, AppError> {
    let code = channel.to_owned();
    let cursor = store
        .read(move |sql| catalog::orders_cursor(sql, &code))
        .await?;
    let since = cursor.map_or(default_since_ms, |c| c - OVERLAP_MS);
    apply_updated_since(store, connectors, channel, since, Cursor::Advance).await
}

/// A backfill the push worker asked for (a decrease no order explains). It leaves the cursor
/// where it is and reads only the orders that can explain the decrease, less `RECENT_MARGIN`:
/// those updated since the unexplained sales can have been made (`sales_after_ms`: an order is
/// updated no earlier than its sale), and since what this process has read without a gap
/// (`Connected::orders_read`), whichever is later. Where neither is known, it is a backfill from
/// the cursor. On a busy store this reads seconds of orders instead of the cursor's minutes or
/// a day; what came before was read already or explains nothing, and the scheduled backfill
/// still reads everything from its cursor.
pub async fn on_demand(
    store: &Store,
    connectors: &Connectors,
    channel: &str,
    sales_after_ms: Option<i64>,
    default_since_ms: i64,
) -> Result<usize, AppError> {
    let connected = connectors.get(channel).await?;
    match connected.orders_read.through().max(sales_after_ms) {
        Some(from) => {
            let since = from - RECENT_MARGIN.as_millis() as i64;
            apply_updated_since(store, connectors, channel, since, Cursor::Keep).await
        }
        None => backfill(store, connectors, channel, default_since_ms).await,
    }
}

/// The earlier of two times the unexplained sales can have been made after; unknown if either
/// is (an on-demand backfill then reads from the cursor).
pub(crate) fn earliest_if_known(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.zip(b).map(|(a, b)| a.min(b))
}

/// Whether reading a channel's orders moves its backfill cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// A backfill: the cursor moves to the newest order read, or to when the read began if
    /// that is earlier (see `next_cursor`).
    Advance,
    /// A look at a short recent window (after a push that may have raced a sale): the cursor
    /// stays, so that the next backfill still covers everything before.
    Keep,
}

/// Applies every order the channel updated since `since_ms` that is not stored at that very
/// state; returns how many were read.
pub async fn apply_updated_since(
    store: &Store,
    connectors: &Connectors,
    channel: &str,
    since: i64,
    cursor: Cursor,
) -> Result<usize, AppError> {
    let connected = connectors.get(channel).await?;
    let began = store.read(|sql| Ok(sql.now_ms())).await?;
    let orders = connected.connector.orders_updated_since(since).await?;
    let mut inputs = Vec::with_capacity(orders.len());
    for order in &orders {
        let refunds = if order.refunds_to_fetch.is_empty() {
            Vec::new()
        } else {
            connected.connector.fetch_refunds(order).await?
        };
        inputs.push(order_input(order, &refunds));
    }
    let cursor_to = next_cursor(
        inputs
            .iter()
            .map(|o| stockhub_channels::connector::version_time_ms(o.version))
            .max(),
        began,
    );
    let code = Code::parse("channel", channel).map_err(|e| AppError::Invalid(e.to_string()))?;
    let count = inputs.len();
    // Most orders read back were applied already, by their webhooks: those are left out on
    // read snapshots, so that the single writer only applies what is new — a few hundred
    // orders per read, past the first reads at a backfill's pace (`Paced`), so that a day of
    // orders does not hold up the webhooks and pushes sharing the machine.
    let mut fresh: Vec<ChannelOrderInput> = Vec::new();
    let mut paced = Paced::start();
    for (n, chunk) in inputs.chunks(ORDERS_PER_CHECK).enumerate() {
        if n > 0 {
            paced.after_page().await;
        }
        let (known, chunk) = (code.clone(), chunk.to_vec());
        fresh.extend(
            store
                .read(move |sql| {
                    let mut fresh = Vec::new();
                    for input in &chunk {
                        if !already_applied(sql, known.as_str(), input)? {
                            fresh.push(input.clone());
                        }
                    }
                    Ok(fresh)
                })
                .await?,
        );
    }
    // What is new is applied one order per unit of work, a few units at a time: the writer
    // commits them together, and webhooks arriving meanwhile are not held up behind a long
    // transaction. An order per unit also keeps the order every unit takes its locks in (its
    // order row, then its levels and marks in SKU order, `stock::lock_levels`): a unit applying
    // several orders would lock each one's SKUs after the last one's, and could deadlock with a
    // unit taking the same rows in SKU order. The cursor moves once all of them are applied.
    for unit in fresh.chunks(ORDERS_PER_UNIT) {
        let applied = futures_util::future::join_all(unit.iter().map(|input| {
            let (code, input) = (code.clone(), input.clone());
            store.write(move |sql| {
                let ctx = Ctx::system("order-backfill", format!("backfill:{code}"));
                intake::apply_channel_order(sql, &ctx, &code, &input)?;
                Ok(())
            })
        }))
        .await;
        applied.into_iter().collect::<Result<Vec<()>, _>>()?;
    }
    if let (Some(to), Cursor::Advance) = (cursor_to, cursor) {
        let code = code.clone();
        store
            .write(move |sql| catalog::set_orders_cursor(sql, code.as_str(), to))
            .await?;
    }
    connected
        .orders_read
        .note(since, began, cursor == Cursor::Advance);
    Ok(count)
}

/// Where a backfill that began at `began` (store clock) and read orders updated up to `newest`
/// (the channel's `updated_at`) leaves the cursor: at the newest order read, but no later than
/// when the read began — an order updated while the read went through the pages can be missing
/// from pages already read, and the next backfill must read it. Taking the earlier of the two
/// clocks is safe whichever runs ahead: a channel clock behind ours gives its own time, one
/// ahead gives ours, which is earlier on the channel's clock. No order read: the cursor stays.
fn next_cursor(newest: Option<i64>, began: i64) -> Option<i64> {
    newest.map(|newest| newest.min(began))
}

/// Orders a backfill hands the writer at a time, each in a unit of work of its own.
const ORDERS_PER_UNIT: usize = 25;

/// Orders a backfill checks per read for being stored already.
const ORDERS_PER_CHECK: usize = 250;

/// Whether the order is stored at this very state (version, status, lines and refunds): applying
/// it again would change nothing.
fn already_applied(
    sql: &mut dyn stockhub_store::Sql,
    channel: &str,
    input: &ChannelOrderInput,
) -> stockhub_store::Result<bool> {
    Ok(
        intake::stored_order(sql, channel, &input.external_id)?.is_some_and(|stored| {
            stored.version == input.version
                && stored.open == input.open
                && stored.lines == input.lines
                && stored.refunds == input.refunds
        }),
    )
}

/// Runs until `shutdown`: re-applies deliveries left pending, and backfills each connected
/// channel's orders every `interval`, or at once when the push worker saw a decrease no order
/// explains.
pub async fn run(
    store: Store,
    connectors: Connectors,
    worker: crate::push::PushWorker,
    interval: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut last_full = std::time::Instant::now();
    let mut last_on_demand: std::collections::HashMap<String, std::time::Instant> =
        std::collections::HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = crate::webhooks::retry_pending(&store, &connectors, 100).await {
            tracing::warn!(error = %e, "re-applying pending deliveries failed");
        }
        // On-demand backfills run at most once per channel every ON_DEMAND_MIN_GAP, each from
        // the earliest of the times its requests give (unknown if one does not know).
        let mut on_demand: std::collections::BTreeMap<String, Option<i64>> =
            std::collections::BTreeMap::new();
        for request in worker.take_backfill_requests() {
            let due = last_on_demand
                .get(&request.channel)
                .is_none_or(|t: &std::time::Instant| t.elapsed() >= ON_DEMAND_MIN_GAP);
            if due {
                on_demand
                    .entry(request.channel)
                    .and_modify(|after| *after = earliest_if_known(*after, request.sales_after_ms))
                    .or_insert(request.sales_after_ms);
            }
        }
        for c in on_demand.keys() {
            last_on_demand.insert(c.clone(), std::time::Instant::now());
        }
        let mut channels = Vec::new();
        if last_full.elapsed() >= interval {
            last_full = std::time::Instant::now();
            match store
                .read(stockhub_store::engine::catalog::list_channels)
                .await
            {
                Ok(all) => channels.extend(
                    all.into_iter()
                        .filter(|c| c.kind != "manual")
                        .map(|c| c.code),
                ),
                Err(e) => tracing::warn!(error = %e, "listing channels for backfill failed"),
            }
        }
        channels.sort();
        channels.dedup();
        // A channel due for its scheduled backfill needs no on-demand one besides.
        on_demand.retain(|c, _| channels.binary_search(c).is_err());
        let since = now_ms() - 24 * 3600 * 1000;
        let runs = on_demand
            .into_iter()
            .map(|(c, after)| (c, Some(after)))
            .chain(channels.into_iter().map(|c| (c, None)));
        for (channel, asked) in runs {
            let read = match asked {
                Some(sales_after_ms) => {
                    self::on_demand(&store, &connectors, &channel, sales_after_ms, since).await
                }
                None => backfill(&store, &connectors, &channel, since).await,
            };
            let asked = asked.is_some();
            match read {
                Ok(n) => tracing::debug!(channel, orders = n, asked, "order backfill"),
                Err(crate::AppError::NotConnected(_)) => {}
                Err(e) => tracing::warn!(channel, error = %e, "order backfill failed"),
            }
        }
    }
}

fn now_ms() -> i64 {
    use stockhub_store::Clock;
    stockhub_store::SystemClock.now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_stays_at_or_before_the_start_of_the_read() {
        let began = 1_000_000;
        // Orders updated before the read began: the newest of them.
        assert_eq!(next_cursor(Some(990_000), began), Some(990_000));
        // An order updated during the read (or a channel clock ahead of ours): when the read
        // began, so that orders updated while it ran are read by the next backfill.
        assert_eq!(next_cursor(Some(1_004_000), began), Some(began));
        // Nothing read: the cursor stays where it is.
        assert_eq!(next_cursor(None, began), None);
    }
}
