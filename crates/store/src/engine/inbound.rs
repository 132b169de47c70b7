//! The inbound event archive: every webhook delivery exactly as received (headers, raw body),
//! with its signature verdict and what became of it. A valid delivery's permanent identity is
//! held by its first arrival; repeats are archived as duplicates and change nothing.

use serde::Serialize;
use serde_json::Value as Json;

use crate::args;
use crate::error::{Result, StoreError};
use crate::sql::{Row, Sql};

/// A delivery to archive.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub channel: &'a str,
    pub topic: Option<&'a str>,
    pub dedupe_key: Option<&'a str>,
    pub delivery_id: Option<&'a str>,
    pub headers: Json,
    pub body: &'a [u8],
    /// `valid`, `invalid` or `ping`.
    pub verdict: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archived {
    /// The first delivery of its identity (or one without an identity).
    New(i64),
    /// A repeat of `original`.
    Duplicate { id: i64, original: i64 },
}

/// Archives a delivery. Invalid deliveries and pings are archived with their final outcome.
pub fn archive(sql: &mut dyn Sql, ev: &NewEvent<'_>) -> Result<Archived> {
    let original = match (ev.verdict, ev.dedupe_key) {
        ("valid", Some(key)) => sql
            .query_opt(
                "SELECT id FROM inbound_events WHERE channel = ?1 AND dedupe_key = ?2
                   AND verdict = 'valid' AND outcome <> 'duplicate'",
                args![ev.channel, key],
            )?
            .map(|r| r.int(0)),
        _ => None,
    };
    let (outcome, detail) = match (ev.verdict, original) {
        ("invalid", _) => ("rejected", Some("the signature did not verify".to_owned())),
        ("ping", _) => ("ping", None),
        (_, Some(original)) => ("duplicate", Some(format!("a repeat of event {original}"))),
        _ => ("received", None),
    };
    let now = sql.now_ms();
    let id = sql
        .query_opt(
            "INSERT INTO inbound_events (channel, received_at, topic, dedupe_key, delivery_id,
                                         headers, body, verdict, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
            args![
                ev.channel,
                now,
                ev.topic,
                ev.dedupe_key,
                ev.delivery_id,
                ev.headers.to_string(),
                ev.body,
                ev.verdict,
                outcome,
                detail
            ],
        )?
        .map_or(0, |r| r.int(0));
    Ok(match original {
        Some(original) => Archived::Duplicate { id, original },
        None => Archived::New(id),
    })
}

/// Records what became of an archived delivery: `applied`, `ignored`, `pending` (to be
/// re-applied by the inbox worker) or `failed`.
pub fn set_outcome(sql: &mut dyn Sql, id: i64, outcome: &str, detail: Option<&str>) -> Result<()> {
    let now = sql.now_ms();
    sql.execute(
        "UPDATE inbound_events SET outcome = ?2, detail = ?3, attempts = attempts + 1,
             applied_at = CASE WHEN ?2 = 'applied' THEN ?4 ELSE applied_at END
         WHERE id = ?1",
        args![id, outcome, detail, now],
    )?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    pub id: i64,
    pub channel: String,
    pub received_at_ms: i64,
    pub topic: Option<String>,
    pub dedupe_key: Option<String>,
    pub delivery_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub headers: Json,
    /// The body as received (as text; bytes that are not UTF-8 are shown replaced).
    pub body: String,
    pub verdict: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub applied_at_ms: Option<i64>,
    pub attempts: i64,
}

const EVENT_COLUMNS: &str = "id, channel, received_at, topic, dedupe_key, delivery_id, headers,
    body, verdict, outcome, detail, applied_at, attempts";

fn event_from_row(r: &Row) -> EventView {
    EventView {
        id: r.int(0),
        channel: r.text(1),
        received_at_ms: r.int(2),
        topic: r.opt_text(3),
        dedupe_key: r.opt_text(4),
        delivery_id: r.opt_text(5),
        headers: serde_json::from_str(&r.text(6)).unwrap_or(Json::Null),
        body: r.text(7),
        verdict: r.text(8),
        outcome: r.text(9),
        detail: r.opt_text(10),
        applied_at_ms: r.opt_int(11),
        attempts: r.int(12),
    }
}

/// An archived delivery with its raw bytes.
pub fn get(sql: &mut dyn Sql, id: i64) -> Result<(EventView, Vec<u8>)> {
    let r = sql
        .query_opt(
            &format!("SELECT {EVENT_COLUMNS} FROM inbound_events WHERE id = ?1"),
            args![id],
        )?
        .ok_or_else(|| StoreError::not_found("inbound event", id.to_string()))?;
    Ok((event_from_row(&r), r.blob(7)))
}

/// Archived deliveries, newest first, filtered by channel and outcome, before the `cursor` id.
pub fn list(
    sql: &mut dyn Sql,
    channel: Option<&str>,
    outcome: Option<&str>,
    cursor: Option<i64>,
    limit: i64,
) -> Result<Vec<EventView>> {
    Ok(sql
        .query(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM inbound_events
                 WHERE (channel = ?1 OR ?1 IS NULL) AND (outcome = ?2 OR ?2 IS NULL)
                   AND (id < ?3 OR ?3 IS NULL)
                 ORDER BY id DESC LIMIT ?4"
            ),
            args![channel, outcome, cursor, limit],
        )?
        .iter()
        .map(event_from_row)
        .collect())
}

/// The event that holds a delivery identity (the first valid arrival), if any.
pub fn original(sql: &mut dyn Sql, channel: &str, dedupe_key: Option<&str>) -> Result<Option<i64>> {
    let Some(key) = dedupe_key else {
        return Ok(None);
    };
    Ok(sql
        .query_opt(
            "SELECT id FROM inbound_events WHERE channel = ?1 AND dedupe_key = ?2
               AND verdict = 'valid' AND outcome <> 'duplicate'",
            args![channel, key],
        )?
        .map(|r| r.int(0)))
}

/// Deliveries waiting to be (re-)applied, oldest first.
pub fn pending(sql: &mut dyn Sql, limit: i64) -> Result<Vec<i64>> {
    Ok(sql
        .query(
            "SELECT id FROM inbound_events WHERE outcome = 'pending' ORDER BY id LIMIT ?1",
            args![limit],
        )?
        .iter()
        .map(|r| r.int(0))
        .collect())
}
