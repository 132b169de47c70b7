//! Listings: what each channel shows for our SKUs, keyed by the channel's own ids, with the
//! quantity last pushed and last confirmed. Discovery links a channel's catalog to our variants by
//! SKU and reports what did not match.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value as Json;

use crate::args;
use crate::error::Result;
use crate::sql::{Row, Sql};

/// A listing as discovery found it.
#[derive(Debug, Clone)]
pub struct FoundListing {
    pub listing_key: String,
    pub channel_sku: Option<String>,
    pub channel_location: Option<String>,
    /// Our locations that stock this channel location; `None` means the channel's feeding ones.
    pub feeding_locations: Option<Vec<String>>,
    /// The channel's variant reference, used to map order lines that carry no SKU.
    pub variant_ref: Option<String>,
    pub ids: Json,
    pub quantity: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoveryReport {
    pub channel: String,
    pub run_at_ms: i64,
    /// Listings linked to one of our SKUs.
    pub matched: usize,
    /// Channel SKUs that are none of ours (with the listing keys that carry them).
    pub unknown_channel_skus: Vec<(String, Vec<String>)>,
    /// Channel listings with no SKU at all.
    pub listings_without_sku: Vec<String>,
    /// Our SKUs that no listing of this channel sells.
    pub missing_on_channel: Vec<String>,
    /// SKUs that several listings of this channel carry.
    pub duplicate_skus: Vec<(String, Vec<String>)>,
}

/// Stores what discovery found (new listings added, known ones refreshed), keeps the report,
/// and marks every matched SKU for a push so the channel is brought to our quantities.
pub fn store_discovery(
    sql: &mut dyn Sql,
    channel: &str,
    found: &[FoundListing],
) -> Result<DiscoveryReport> {
    let now = sql.now_ms();
    let mut report = DiscoveryReport {
        channel: channel.to_owned(),
        run_at_ms: now,
        ..DiscoveryReport::default()
    };
    let mut by_sku: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unknown: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for listing in found {
        let sku = match listing
            .channel_sku
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => {
                report
                    .listings_without_sku
                    .push(listing.listing_key.clone());
                None
            }
            Some(raw) => {
                match sql.query_opt("SELECT sku FROM variants WHERE sku = ?1", args![raw])? {
                    Some(r) => Some(r.text(0)),
                    None => {
                        unknown
                            .entry(raw.to_owned())
                            .or_default()
                            .push(listing.listing_key.clone());
                        None
                    }
                }
            }
        };
        if let Some(sku) = &sku {
            by_sku
                .entry(sku.clone())
                .or_default()
                .push(listing.listing_key.clone());
        }
        upsert(sql, channel, listing, sku.as_deref(), now)?;
    }
    report.matched = by_sku.values().map(Vec::len).sum();
    report.unknown_channel_skus = unknown.into_iter().collect();
    report.duplicate_skus = by_sku
        .iter()
        .filter(|(_, keys)| keys.len() > 1)
        .map(|(s, k)| (s.clone(), k.clone()))
        .collect();
    let listed: BTreeSet<&String> = by_sku.keys().collect();
    report.missing_on_channel = sql
        .query("SELECT sku FROM variants ORDER BY sku", &[])?
        .iter()
        .map(|r| r.text(0))
        .filter(|s| !listed.contains(s))
        .collect();
    for sku in by_sku.keys() {
        super::pushes::mark_channel_sku(sql, channel, sku)?;
    }
    sql.execute(
        "INSERT INTO discovery_reports (channel, run_at, report) VALUES (?1, ?2, ?3)",
        args![
            channel,
            now,
            serde_json::to_string(&report).unwrap_or_default()
        ],
    )?;
    Ok(report)
}

fn upsert(
    sql: &mut dyn Sql,
    channel: &str,
    l: &FoundListing,
    sku: Option<&str>,
    now: i64,
) -> Result<()> {
    let feeding = l
        .feeding_locations
        .as_ref()
        .map(|f| serde_json::to_string(f).unwrap_or_default());
    sql.execute(
        "INSERT INTO listings (channel, listing_key, sku, channel_sku, channel_location,
                               feeding_locations, variant_ref, ids, last_confirmed, confirmed_at,
                               discovered_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
         ON CONFLICT (channel, listing_key) DO UPDATE SET sku = excluded.sku,
             channel_sku = excluded.channel_sku, channel_location = excluded.channel_location,
             feeding_locations = excluded.feeding_locations, variant_ref = excluded.variant_ref,
             ids = excluded.ids, last_confirmed = excluded.last_confirmed,
             confirmed_at = excluded.confirmed_at, confirmed_exactly = 0,
             discovered_at = excluded.discovered_at",
        args![
            channel,
            l.listing_key.as_str(),
            sku,
            l.channel_sku.as_deref(),
            l.channel_location.as_deref(),
            feeding,
            l.variant_ref.as_deref(),
            l.ids.to_string(),
            l.quantity,
            now
        ],
    )?;
    Ok(())
}

/// The latest discovery report of a channel.
pub fn last_report(sql: &mut dyn Sql, channel: &str) -> Result<Option<Json>> {
    Ok(sql
        .query_opt(
            "SELECT report FROM discovery_reports WHERE channel = ?1 ORDER BY id DESC LIMIT 1",
            args![channel],
        )?
        .and_then(|r| serde_json::from_str(&r.text(0)).ok()))
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListingView {
    pub id: i64,
    pub channel: String,
    pub listing_key: String,
    pub sku: Option<String>,
    pub channel_sku: Option<String>,
    pub channel_location: Option<String>,
    pub feeding_locations: Option<Vec<String>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub ids: Json,
    pub last_pushed: Option<i64>,
    pub last_pushed_at_ms: Option<i64>,
    pub last_confirmed: Option<i64>,
    pub confirmed_at_ms: Option<i64>,
    /// Whether the last confirmation leaves the listing showing no more than stockhub expects:
    /// it came from a push whose compare-and-set quantity was exact (`Target::expected_exact`).
    /// Internal bookkeeping of the push engine, not part of the API.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub confirmed_exactly: bool,
    /// What the channel showed when it was last read (after a failed compare-and-set, or a
    /// quantity it announced), and when.
    pub observed: Option<i64>,
    pub observed_at_ms: Option<i64>,
    /// Sales the channel made before `confirmed_at_ms` that no ingested order explained then
    /// (DESIGN §1 `u`): the channel's orders booked since explain them first; the rest is held
    /// back from what is pushed.
    pub held_units: i64,
    /// When the oldest of the held sales was first seen; the hold is given up (a drift) after
    /// the hold time.
    pub held_since_ms: Option<i64>,
    pub last_latency_ms: Option<i64>,
    pub pushes: i64,
}

pub const LISTING_COLUMNS: &str = "id, channel, listing_key, sku, channel_sku, channel_location,
    feeding_locations, ids, last_pushed, last_pushed_at, last_confirmed, confirmed_at, observed,
    observed_at, last_latency_ms, pushes, held_units, held_since, confirmed_exactly";

pub fn listing_from_row(r: &Row) -> ListingView {
    ListingView {
        id: r.int(0),
        channel: r.text(1),
        listing_key: r.text(2),
        sku: r.opt_text(3),
        channel_sku: r.opt_text(4),
        channel_location: r.opt_text(5),
        feeding_locations: r.opt_text(6).and_then(|f| serde_json::from_str(&f).ok()),
        ids: serde_json::from_str(&r.text(7)).unwrap_or(Json::Null),
        last_pushed: r.opt_int(8),
        last_pushed_at_ms: r.opt_int(9),
        last_confirmed: r.opt_int(10),
        confirmed_at_ms: r.opt_int(11),
        observed: r.opt_int(12),
        observed_at_ms: r.opt_int(13),
        last_latency_ms: r.opt_int(14),
        pushes: r.int(15),
        held_units: r.int(16),
        held_since_ms: r.opt_int(17),
        confirmed_exactly: r.int(18) != 0,
    }
}

/// A channel's listings, optionally of one SKU, in key order after `cursor`.
pub fn list(
    sql: &mut dyn Sql,
    channel: &str,
    sku: Option<&str>,
    after_key: Option<&str>,
    limit: i64,
) -> Result<Vec<ListingView>> {
    Ok(sql
        .query(
            &format!(
                "SELECT {LISTING_COLUMNS} FROM listings WHERE channel = ?1 AND (sku = ?2 OR ?2 IS NULL)
                 AND (listing_key > ?3 OR ?3 IS NULL) ORDER BY listing_key LIMIT ?4"
            ),
            args![channel, sku, after_key, limit],
        )?
        .iter()
        .map(listing_from_row)
        .collect())
}

/// Our SKU for an order line that carries only the channel's variant reference.
pub fn sku_for_variant(
    sql: &mut dyn Sql,
    channel: &str,
    variant_ref: &str,
) -> Result<Option<String>> {
    Ok(sql
        .query_opt(
            "SELECT sku FROM listings WHERE channel = ?1 AND variant_ref = ?2 AND sku IS NOT NULL LIMIT 1",
            args![channel, variant_ref],
        )?
        .map(|r| r.text(0)))
}
