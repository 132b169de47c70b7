//! The push queue: "(channel, SKU) must be brought to the current sellable quantity". A mark is
//! written in the same transaction as the stock change that causes it; workers claim due marks
//! with a lease, compute every listing's quantity at send time, and report back. A result is
//! applied only while the worker still holds the lease (fencing by lease token), and a mark that
//! changed meanwhile (a newer generation) stays pending: a later change can only make a push more
//! correct.
//!
//! Only marking, claiming and reporting write; what each listing must be set to (`targets`) is
//! computed on a read snapshot, so that pushes keep the single writer free for orders.
//!
//! While a mark is in flight, `next_attempt_at` is when the first change since the claim arrived
//! (the end of the lease until one does): a push that finishes after such a change leaves the mark
//! pending with that time as its `marked_at`, so propagation latency counts from the change.

use std::collections::BTreeMap;

use serde::Serialize;
use stockhub_core::ats;

use super::catalog;
use super::ledger::parse_line_delta;
use super::listings::{listing_from_row, ListingView, LISTING_COLUMNS};
use super::stock::{current_recipe, free_units_at};
use crate::args;
use crate::error::Result;
use crate::sql::{in_list, Sql, Value, LOOKUPS_PER_STATEMENT};

const MARK_SELECTED: &str = "
    ON CONFLICT (channel, sku) DO UPDATE SET generation = push_marks.generation + 1,
        state = CASE WHEN push_marks.state = 'dead' THEN 'pending' ELSE push_marks.state END,
        next_attempt_at = CASE WHEN push_marks.state = 'dead' THEN excluded.next_attempt_at
                               WHEN push_marks.state = 'in_flight'
                                   THEN CASE WHEN excluded.next_attempt_at < push_marks.next_attempt_at
                                             THEN excluded.next_attempt_at
                                             ELSE push_marks.next_attempt_at END
                               ELSE push_marks.next_attempt_at END";

/// Marks every channel that lists `sku`, or a kit made of it, for a push.
pub fn mark(sql: &mut dyn Sql, sku: &str) -> Result<()> {
    mark_skus(sql, &[sku.to_owned()])
}

/// Marks every channel that lists one of `skus`, or a kit made of one, for a push: one
/// statement for up to [`LOOKUPS_PER_STATEMENT`] SKUs.
pub fn mark_skus(sql: &mut dyn Sql, skus: &[String]) -> Result<()> {
    let now = sql.now_ms();
    for chunk in skus.chunks(LOOKUPS_PER_STATEMENT) {
        let (list, mut params) = in_list(chunk.iter().map(|s| Value::from(s.as_str())).collect());
        let at = params.len() + 1;
        params.push(Value::Int(now));
        sql.execute_later(
            &format!(
                "INSERT INTO push_marks (channel, sku, state, generation, marked_at, next_attempt_at)
                 SELECT channel, sku, 'pending', 1, CAST(?{at} AS BIGINT), CAST(?{at} AS BIGINT) FROM (
                     SELECT channel, sku FROM listings WHERE sku IN ({list})
                     UNION
                     SELECT l.channel, l.sku FROM listings l
                     JOIN kit_components k ON k.kit_sku = l.sku WHERE k.component_sku IN ({list})
                 ) AS listed WHERE true ORDER BY channel, sku
                 {MARK_SELECTED}"
            ),
            &params,
        )?;
    }
    Ok(())
}

/// Marks the SKUs a unit of work noted (`Sql::defer_push_mark`), once each.
pub fn mark_deferred(sql: &mut dyn Sql) -> Result<()> {
    let skus = sql.take_push_marks();
    mark_skus(sql, &skus)
}

/// Marks one SKU on one channel (after discovery, or an operator's resync).
pub fn mark_channel_sku(sql: &mut dyn Sql, channel: &str, sku: &str) -> Result<()> {
    let now = sql.now_ms();
    sql.execute(
        &format!(
            "INSERT INTO push_marks (channel, sku, state, generation, marked_at, next_attempt_at)
             SELECT DISTINCT channel, sku, 'pending', 1, CAST(?3 AS BIGINT), CAST(?3 AS BIGINT) FROM listings
             WHERE channel = ?1 AND sku = ?2 {MARK_SELECTED}"
        ),
        args![channel, sku, now],
    )?;
    Ok(())
}

/// Marks every listed SKU of a channel (its rules changed, or a full resync was asked for).
pub fn mark_channel(sql: &mut dyn Sql, channel: &str) -> Result<u64> {
    let now = sql.now_ms();
    sql.execute(
        &format!(
            "INSERT INTO push_marks (channel, sku, state, generation, marked_at, next_attempt_at)
             SELECT DISTINCT channel, sku, 'pending', 1, CAST(?2 AS BIGINT), CAST(?2 AS BIGINT) FROM listings
             WHERE channel = ?1 AND sku IS NOT NULL {MARK_SELECTED}"
        ),
        args![channel, now],
    )
}

/// A mark a worker holds.
#[derive(Debug, Clone)]
pub struct Claim {
    pub channel: String,
    pub sku: String,
    pub generation: i64,
    pub marked_at_ms: i64,
    pub attempts: i64,
    pub first_failed_at_ms: Option<i64>,
    pub lease_token: String,
}

/// Claims up to `limit` due marks of a channel (pending and due, or in flight with an expired
/// lease) for `lease_ms`. `next_attempt_at` becomes the lease's end, until a change arrives.
pub fn claim(
    sql: &mut dyn Sql,
    channel: &str,
    limit: i64,
    lease_ms: i64,
    token: &str,
) -> Result<Vec<Claim>> {
    let now = sql.now_ms();
    // Workers of several processes skip the marks another one is claiming this instant, and
    // re-check a mark that was claimed since their snapshot.
    let skip_locked = sql.skip_locked();
    let rows = sql.query(
        &format!(
            "UPDATE push_marks SET state = 'in_flight', lease_token = ?1, leased_until = ?2,
                 next_attempt_at = ?2
             WHERE (channel, sku) IN (
                 SELECT channel, sku FROM push_marks
                 WHERE channel = ?3 AND ((state = 'pending' AND next_attempt_at <= ?4)
                                         OR (state = 'in_flight' AND leased_until < ?4))
                 ORDER BY next_attempt_at LIMIT ?5{skip_locked})
             RETURNING channel, sku, generation, marked_at, attempts, first_failed_at"
        ),
        args![token, now + lease_ms, channel, now, limit],
    )?;
    Ok(rows
        .iter()
        .map(|r| Claim {
            channel: r.text(0),
            sku: r.text(1),
            generation: r.int(2),
            marked_at_ms: r.int(3),
            attempts: r.int(4),
            first_failed_at_ms: r.opt_int(5),
            lease_token: token.to_owned(),
        })
        .collect())
}

/// The channels that have marks due now.
pub fn channels_due(sql: &mut dyn Sql) -> Result<Vec<String>> {
    let now = sql.now_ms();
    Ok(sql
        .query(
            "SELECT DISTINCT channel FROM push_marks
             WHERE (state = 'pending' AND next_attempt_at <= ?1) OR (state = 'in_flight' AND leased_until < ?1)",
            args![now],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

/// When a channel's marks next fall due (pending and due, or in flight with a lease that ends),
/// if it has any: a push worker sleeps until then or until a new commit.
pub fn next_due(sql: &mut dyn Sql, channel: &str) -> Result<Option<i64>> {
    Ok(sql
        .query_opt(
            "SELECT MIN(CASE WHEN state = 'pending' THEN next_attempt_at ELSE leased_until END)
             FROM push_marks WHERE channel = ?1 AND state IN ('pending', 'in_flight')",
            args![channel],
        )?
        .and_then(|r| r.opt_int(0)))
}

/// What one listing must be set to now.
#[derive(Debug, Clone)]
pub struct Target {
    pub listing: ListingView,
    /// Available to sell on the channel for this listing, by DESIGN §1.
    pub available: i64,
    /// Held back because the channel showed a decrease that no ingested order explains yet.
    pub held: i64,
    /// What to send: `max(0, available − held)`.
    pub quantity: i64,
    /// What the channel shows now if it made no sale stockhub has not heard of: the quantity it
    /// last confirmed (or the lower one it showed since), less the units of its own orders booked
    /// after that. Sent as the compare-and-set quantity (Shopify `changeFromQuantity`), so that the
    /// push back to the channel an order was placed on is not refused as stale; a channel showing
    /// less than this made a sale stockhub has not heard of.
    pub expected: Option<i64>,
    /// Whether `expected` is exactly what the channel shows if it made no sale stockhub has not
    /// heard of: the listing is its SKU's only one on the channel, holds nothing back, was last
    /// confirmed by a push rather than read, none of the channel's orders booked since its
    /// confirmation cancelled, returned or restocked units (whether the channel put those back
    /// itself is not known), and either that push compared exactly too or no order of the
    /// channel was booked since. A push compared less exactly can pass its comparison after the
    /// channel put units back and sold as many (or sold before the first comparison), writing
    /// over that sale: an order booked after it is then not known to be a sale after it.
    pub expected_exact: bool,
}

/// A hold that outlived the hold time: the channel's lower quantity is to become the baseline,
/// and the decrease no order explained a recorded drift (`give_up_holds`, on the writer).
#[derive(Debug, Clone)]
pub struct ExpiredHold {
    pub listing_id: i64,
    pub channel: String,
    pub listing_key: String,
    pub sku: Option<String>,
    /// What the channel should have shown: confirmed less the orders booked since.
    pub expected: i64,
    /// What it shows, and when the decrease was first seen.
    pub found: i64,
    pub found_at_ms: i64,
    /// The listing's state the hold was computed from: a listing that changed since has moved
    /// on, and its hold is decided anew.
    pub held_units: i64,
    pub confirmed_at_ms: i64,
}

/// The targets of a push, and the holds to give up before it goes out.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub targets: Vec<Target>,
    pub expired: Vec<ExpiredHold>,
}

/// The quantity every listing of the given SKUs must show on a channel, computed from the
/// canonical state now. Reads only (run it on a snapshot): a hold older than `hold_ms` counts as
/// given up — the channel's lower quantity is the baseline — and is returned in `expired`, for
/// `give_up_holds` to record before the push goes out.
pub fn targets(sql: &mut dyn Sql, channel: &str, skus: &[String], hold_ms: i64) -> Result<Targets> {
    let record = catalog::require_channel(sql, channel)?;
    let feeding = catalog::feeding_locations(sql, &record)?;
    // In a write unit with concurrent writers the levels read below are locked: take them in
    // the one order every unit uses.
    crate::engine::stock::lock_levels(sql, skus.iter().map(String::as_str))?;
    let now = sql.now_ms();
    let mut out = Targets::default();
    for sku in skus {
        let Some(variant) = sql.query_opt(
            "SELECT is_kit, buffer FROM variants WHERE sku = ?1",
            args![sku.as_str()],
        )?
        else {
            continue;
        };
        let recipe = current_recipe(sql, sku, variant.int(0) == 1)?;
        let mut free_at: BTreeMap<String, i64> = BTreeMap::new();
        let listings = sql.query(
            &format!("SELECT {LISTING_COLUMNS} FROM listings WHERE channel = ?1 AND sku = ?2 ORDER BY id"),
            args![channel, sku.as_str()],
        )?;
        let only_listing = listings.len() == 1;
        for row in listings {
            let listing = listing_from_row(&row);
            let locations = listing
                .feeding_locations
                .clone()
                .unwrap_or_else(|| feeding.clone());
            let mut pool = 0;
            for location in &locations {
                if !free_at.contains_key(location) {
                    let free = free_units_at(sql, &recipe, location)?;
                    free_at.insert(location.clone(), free);
                }
                pool += free_at[location];
            }
            let available = ats(pool, variant.int(1), &record.rules);
            let booked = Booked::since_confirmed(sql, &listing, None)?;
            let hold = held_back(&booked, now, hold_ms);
            let expected = if only_listing {
                booked.expected()
            } else {
                // Which listing a channel's order drew from is not known when it has several.
                listing.last_confirmed
            };
            let held = match hold {
                Hold::Held(units) => units,
                Hold::Expired(e) => {
                    out.expired.push(e);
                    0
                }
                Hold::None => 0,
            };
            let read_since = listing
                .observed_at_ms
                .is_some_and(|o| listing.confirmed_at_ms.is_none_or(|c| o >= c));
            let expected_exact = only_listing
                && listing.held_units == 0
                && !read_since
                && !booked.put_back
                && (listing.confirmed_exactly || booked.ordered == 0)
                && expected.is_some();
            out.targets.push(Target {
                quantity: (available - held).max(0),
                available,
                held,
                listing,
                expected,
                expected_exact,
            });
        }
    }
    Ok(out)
}

/// The units of a listing's SKU that the channel's orders booked since the listing's last
/// confirmation, as of a moment: read once, they give both what the listing should show
/// (`expected`) and what of its hold is still unexplained (`unexplained`).
struct Booked<'a> {
    listing: &'a ListingView,
    ordered: i64,
    /// Whether any of those orders cancelled, returned or restocked units: units the channel
    /// may have put back itself.
    put_back: bool,
}

impl<'a> Booked<'a> {
    /// As of `until_ms` (or now). Reads the ledger only when the listing has a confirmation or a
    /// hold to compare with.
    fn since_confirmed(
        sql: &mut dyn Sql,
        listing: &'a ListingView,
        until_ms: Option<i64>,
    ) -> Result<Self> {
        let (ordered, put_back) = if listing.last_confirmed.is_some() || listing.held_units > 0 {
            ordered_between(sql, listing, listing.confirmed_at_ms.unwrap_or(0), until_ms)?
        } else {
            (0, false)
        };
        Ok(Self {
            listing,
            ordered,
            put_back,
        })
    }

    /// What the listing shows if its channel made no sale stockhub has not heard of: what it
    /// last confirmed, less its orders booked since — except those that explain held units,
    /// sales made before the confirmation (the quantity confirmed already reflects them).
    /// Bookings explain the oldest sales first; when they were new sales instead, the channel
    /// shows less than this, the comparison fails, and a read follows: never an oversell.
    /// `None` before any confirmation.
    fn expected(&self) -> Option<i64> {
        let confirmed = self.listing.last_confirmed?;
        Some(confirmed - (self.ordered - self.listing.held_units).max(0))
    }

    /// `u` of DESIGN §1: the held units that the orders booked do not explain, with when the
    /// oldest of them was first seen. `None` when everything is explained.
    fn unexplained(&self) -> Option<(i64, i64)> {
        let units = self.listing.held_units - self.ordered;
        (self.listing.held_units > 0 && units > 0)
            .then(|| (units, self.listing.held_since_ms.unwrap_or(0)))
    }
}

/// Units of the listing's SKU the channel's orders asked for, as booked after `since_ms` (and
/// up to `until_ms`, if given): the change of every line's
/// `ordered = committed + short + shipped + cancelled`. An order first seen already cancelled
/// counts too (the channel sold those units before cancelling, and may or may not have put them
/// back), while a cancellation or shipment of units booked earlier moves them between the parts
/// and adds nothing. Also whether any of them cancelled, returned or restocked units.
fn ordered_between(
    sql: &mut dyn Sql,
    listing: &ListingView,
    since_ms: i64,
    until_ms: Option<i64>,
) -> Result<(i64, bool)> {
    let (mut ordered, mut put_back) = (0, false);
    for r in sql.query(
        "SELECT line_delta FROM ledger WHERE channel = ?1 AND sku = ?2 AND at > ?3
           AND (at <= ?4 OR ?4 IS NULL) AND line_delta IS NOT NULL",
        args![
            listing.channel.as_str(),
            listing.sku.as_deref(),
            since_ms,
            until_ms
        ],
    )? {
        let d = parse_line_delta(&r.text(0));
        ordered += d.committed + d.short + d.shipped + d.cancelled;
        put_back |= d.cancelled != 0 || d.returned != 0 || d.restocked != 0;
    }
    Ok((ordered, put_back))
}

/// A listing's hold (`u` of DESIGN §1).
enum Hold {
    None,
    Held(i64),
    Expired(ExpiredHold),
}

/// `u` of DESIGN §1 for one listing, given up once it is older than `hold_ms`.
fn held_back(booked: &Booked<'_>, now: i64, hold_ms: i64) -> Hold {
    let Some((units, since)) = booked.unexplained() else {
        return Hold::None;
    };
    let listing = booked.listing;
    if now - since > hold_ms {
        let shown = booked.expected().unwrap_or(0);
        return Hold::Expired(ExpiredHold {
            listing_id: listing.id,
            channel: listing.channel.clone(),
            listing_key: listing.listing_key.clone(),
            sku: listing.sku.clone(),
            expected: shown + units,
            found: shown,
            found_at_ms: since,
            held_units: listing.held_units,
            confirmed_at_ms: listing.confirmed_at_ms.unwrap_or(0),
        });
    }
    Hold::Held(units)
}

/// Gives up expired holds: records each as a drift, and makes what the channel shows the new
/// baseline with nothing held — unless the listing moved on since the snapshot that found it
/// (then the next computation decides again). Returns how many were given up.
pub fn give_up_holds(sql: &mut dyn Sql, expired: &[ExpiredHold]) -> Result<u64> {
    let now = sql.now_ms();
    let mut given_up = 0;
    for e in expired {
        let changed = sql.execute(
            "UPDATE listings SET last_confirmed = ?2, confirmed_at = ?3, held_units = 0,
                 held_since = NULL, confirmed_exactly = 0
             WHERE id = ?1 AND held_units = ?4 AND COALESCE(confirmed_at, 0) = ?5",
            args![e.listing_id, e.found, now, e.held_units, e.confirmed_at_ms],
        )?;
        if changed == 0 {
            continue;
        }
        sql.execute(
            "INSERT INTO drifts (channel, listing_key, sku, expected, found, at, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![
                e.channel.as_str(),
                e.listing_key.as_str(),
                e.sku.as_deref(),
                e.expected,
                e.found,
                now,
                "the channel's decrease was not explained by any order within the hold time"
            ],
        )?;
        given_up += 1;
    }
    Ok(given_up)
}

/// How one listing's push ended.
#[derive(Debug, Clone)]
pub enum ListingResult {
    /// The channel now shows `quantity`.
    /// `sent_at_ms` is when the call left: the channel's count then is what it confirmed, so
    /// orders stockhub books after that explain later decreases (DESIGN §1 `u`).
    /// `compared_exactly`: the call compared and set in one step against the listing's
    /// `Target::expected_exact` quantity — then every sale booked after it came after it.
    Pushed {
        listing_id: i64,
        quantity: i64,
        sent_at_ms: i64,
        compared_exactly: bool,
    },
    /// The channel shows `actual`, which is not what we last confirmed (a failed compare-and-set
    /// followed by a read, or a reconciliation read).
    /// `read_at_ms` is no later than the read itself (when its call left): the orders booked up
    /// to then were in what it showed, since a sale comes before its webhook. One booked after
    /// may or may not be — counting it as a sale after the read, as `observe` does, makes it
    /// explain the decrease it caused; counting a sale made after the read as one before it
    /// would leave a real decrease unexplained (held until the hold time ends).
    Observed {
        listing_id: i64,
        actual: i64,
        read_at_ms: i64,
    },
}

impl ListingResult {
    pub fn listing_id(&self) -> i64 {
        match self {
            ListingResult::Pushed { listing_id, .. }
            | ListingResult::Observed { listing_id, .. } => *listing_id,
        }
    }

    /// When the read was made, for what a read showed.
    pub fn read_at_ms(&self) -> Option<i64> {
        match self {
            ListingResult::Observed { read_at_ms, .. } => Some(*read_at_ms),
            ListingResult::Pushed { .. } => None,
        }
    }
}

/// What becomes of the mark.
#[derive(Debug, Clone)]
pub enum MarkNext {
    Done,
    /// Push again at once, without counting a failure: the channel refused a listing only
    /// because of another item of its call, or showed a quantity that changes what to send.
    Again,
    Retry {
        delay_ms: i64,
        error: String,
    },
    Dead {
        error: String,
    },
}

/// Applies a worker's results, if it still holds the lease; returns false when the result was
/// discarded (another worker took the mark over after the lease expired).
pub fn complete(
    sql: &mut dyn Sql,
    claim: &Claim,
    results: &[ListingResult],
    next: &MarkNext,
) -> Result<bool> {
    // Locked where others write at once: a change marked while this unit runs waits for it, or
    // is seen by it (a newer generation keeps the mark pending).
    let lock = sql.for_update();
    let held = sql
        .query_opt(
            &format!(
                "SELECT generation FROM push_marks WHERE channel = ?1 AND sku = ?2
                 AND state = 'in_flight' AND lease_token = ?3{lock}"
            ),
            args![
                claim.channel.as_str(),
                claim.sku.as_str(),
                claim.lease_token.as_str()
            ],
        )?
        .map(|r| r.int(0));
    let Some(generation) = held else {
        return Ok(false);
    };
    let now = sql.now_ms();
    for result in results {
        match result {
            ListingResult::Pushed {
                listing_id,
                quantity,
                sent_at_ms,
                compared_exactly,
            } => {
                // The channel confirmed the quantity, but a decrease held back in it is still
                // unexplained until its orders are booked: it is carried over the confirmation.
                let confirmed_at = (*sent_at_ms).min(now);
                let Some(listing) = listing_by_id(sql, *listing_id)? else {
                    continue;
                };
                let unexplained = if listing.held_units > 0 {
                    Booked::since_confirmed(sql, &listing, Some(confirmed_at))?.unexplained()
                } else {
                    None
                };
                let (held_units, held_since) = match unexplained {
                    Some((units, since)) => (units, Some(since)),
                    None => (0, None),
                };
                sql.execute(
                    "UPDATE listings SET last_pushed = ?2, last_pushed_at = ?3, last_confirmed = ?2,
                         confirmed_at = ?5, held_units = ?6, held_since = ?7,
                         confirmed_exactly = ?8, last_latency_ms = ?4, pushes = pushes + 1
                     WHERE id = ?1",
                    args![
                        *listing_id,
                        *quantity,
                        now,
                        now - claim.marked_at_ms,
                        confirmed_at,
                        held_units,
                        held_since,
                        i64::from(*compared_exactly)
                    ],
                )?;
            }
            ListingResult::Observed {
                listing_id,
                actual,
                read_at_ms,
            } => {
                observe(sql, *listing_id, *actual, (*read_at_ms).min(now))?;
            }
        }
    }
    let key = args![claim.channel.as_str(), claim.sku.as_str()];
    match next {
        MarkNext::Done if generation == claim.generation => {
            sql.execute(
                "DELETE FROM push_marks WHERE channel = ?1 AND sku = ?2 AND generation = ?3",
                &[key[0].clone(), key[1].clone(), generation.into()],
            )?;
        }
        MarkNext::Done => {
            // Changed while in flight: push again at once, counting latency from the first
            // change since the claim (kept in `next_attempt_at` while in flight).
            sql.execute(
                "UPDATE push_marks SET state = 'pending', attempts = 0, first_failed_at = NULL,
                     last_error = NULL, lease_token = NULL, marked_at = CASE WHEN next_attempt_at < ?3 THEN next_attempt_at ELSE ?3 END,
                     next_attempt_at = ?3
                 WHERE channel = ?1 AND sku = ?2",
                &[key[0].clone(), key[1].clone(), now.into()],
            )?;
        }
        MarkNext::Again => {
            // Not done, through no fault of its own: at once, latency still from the oldest change.
            sql.execute(
                "UPDATE push_marks SET state = 'pending', lease_token = NULL, next_attempt_at = ?3
                 WHERE channel = ?1 AND sku = ?2",
                &[key[0].clone(), key[1].clone(), now.into()],
            )?;
        }
        MarkNext::Retry { delay_ms, error } => {
            sql.execute(
                "UPDATE push_marks SET state = 'pending', attempts = attempts + 1,
                     first_failed_at = COALESCE(first_failed_at, ?3), next_attempt_at = ?4,
                     last_error = ?5, lease_token = NULL WHERE channel = ?1 AND sku = ?2",
                &[
                    key[0].clone(),
                    key[1].clone(),
                    now.into(),
                    (now + delay_ms).into(),
                    error.as_str().into(),
                ],
            )?;
        }
        MarkNext::Dead { error } => {
            sql.execute(
                "UPDATE push_marks SET state = 'dead', attempts = attempts + 1,
                     first_failed_at = COALESCE(first_failed_at, ?3), last_error = ?4,
                     lease_token = NULL WHERE channel = ?1 AND sku = ?2",
                &[
                    key[0].clone(),
                    key[1].clone(),
                    now.into(),
                    error.as_str().into(),
                ],
            )?;
        }
    }
    Ok(true)
}

/// Records what a channel showed for a listing at `read_at_ms` (a read, or a quantity the channel
/// announced), which becomes the new baseline. Against what it was expected to show then
/// (`expected_at`), less is a decrease no order explains yet: it is held (DESIGN §1 `u`) on top
/// of what was held already. More is the channel putting units back on its own (a cancel, an
/// edit or a refund that restocks), which may be the very sales held: it lowers the hold, never
/// below 0. Orders booked after `read_at_ms` count as sales after the baseline, so `read_at_ms`
/// must be no later than the read (see `ListingResult::Observed`), and every order booked up to
/// it must be seen: with several writers, wait first for the writes begun by then
/// (`Store::wait_for_writes_begun_by`). Returns false when the listing is gone or was confirmed
/// again after `read_at_ms` (what it showed is out of date): then nothing changes.
pub fn observe(sql: &mut dyn Sql, listing_id: i64, actual: i64, read_at_ms: i64) -> Result<bool> {
    let Some(listing) = listing_by_id(sql, listing_id)? else {
        return Ok(false);
    };
    if listing.confirmed_at_ms.is_some_and(|at| at > read_at_ms) {
        return Ok(false);
    }
    let booked = Booked::since_confirmed(sql, &listing, Some(read_at_ms))?;
    let (held_units, held_since) = match booked.expected() {
        None => (0, None),
        Some(expected) => {
            let held = booked.unexplained();
            let units = (held.map_or(0, |(units, _)| units) + expected - actual).max(0);
            let since = held.map_or(read_at_ms, |(_, since)| since);
            (units, (units > 0).then_some(since))
        }
    };
    sql.execute(
        "UPDATE listings SET observed = ?2, observed_at = ?3, last_confirmed = ?2,
             confirmed_at = ?3, held_units = ?4, held_since = ?5, confirmed_exactly = 0
         WHERE id = ?1",
        args![listing_id, actual, read_at_ms, held_units, held_since],
    )?;
    Ok(true)
}

fn listing_by_id(sql: &mut dyn Sql, listing_id: i64) -> Result<Option<ListingView>> {
    Ok(sql
        .query_opt(
            &format!("SELECT {LISTING_COLUMNS} FROM listings WHERE id = ?1"),
            args![listing_id],
        )?
        .map(|r| listing_from_row(&r)))
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushView {
    pub channel: String,
    pub sku: String,
    /// `pending`, `in_flight` or `dead`.
    pub state: String,
    pub marked_at_ms: i64,
    pub attempts: i64,
    pub first_failed_at_ms: Option<i64>,
    pub next_attempt_at_ms: i64,
    pub last_error: Option<String>,
}

/// Marks in a state (all when `None`), oldest first, after the `(channel, sku)` cursor.
pub fn list(
    sql: &mut dyn Sql,
    state: Option<&str>,
    channel: Option<&str>,
    limit: i64,
) -> Result<Vec<PushView>> {
    Ok(sql
        .query(
            "SELECT channel, sku, state, marked_at, attempts, first_failed_at, next_attempt_at, last_error
             FROM push_marks WHERE (state = ?1 OR ?1 IS NULL) AND (channel = ?2 OR ?2 IS NULL)
             ORDER BY marked_at, channel, sku LIMIT ?3",
            args![state, channel, limit],
        )?
        .iter()
        .map(|r| PushView {
            channel: r.text(0),
            sku: r.text(1),
            state: r.text(2),
            marked_at_ms: r.int(3),
            attempts: r.int(4),
            first_failed_at_ms: r.opt_int(5),
            next_attempt_at_ms: r.int(6),
            last_error: r.opt_text(7),
        })
        .collect())
}

/// Puts dead marks back in the queue (of one channel, or one SKU, or all); returns how many.
pub fn retry_dead(sql: &mut dyn Sql, channel: Option<&str>, sku: Option<&str>) -> Result<u64> {
    let now = sql.now_ms();
    sql.execute(
        "UPDATE push_marks SET state = 'pending', attempts = 0, first_failed_at = NULL,
             next_attempt_at = ?3 WHERE state = 'dead' AND (channel = ?1 OR ?1 IS NULL)
             AND (sku = ?2 OR ?2 IS NULL)",
        args![channel, sku, now],
    )
}

/// Marks per state, for metrics and the dashboard.
pub fn depth(sql: &mut dyn Sql) -> Result<Vec<(String, String, i64)>> {
    Ok(sql
        .query("SELECT channel, state, COUNT(*) FROM push_marks GROUP BY channel, state ORDER BY channel, state", &[])?
        .iter()
        .map(|r| (r.text(0), r.text(1), r.int(2)))
        .collect())
}
