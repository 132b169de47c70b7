//! Webhook intake: verify the signature over the raw bytes, then in ONE transaction archive the
//! delivery, deduplicate it on its permanent identity, apply it and record the outcome; the
//! channel is acknowledged only after that commit. A delivery that fails to apply is still
//! archived, with its failure, and can be re-applied later (`replay`).

use serde_json::value::RawValue;
use serde_json::{json, Value};
use stockhub_channels::{ChannelOrder, ChannelRefund, Connector, Intake, Verdict};
use stockhub_core::Code;
use stockhub_store::engine::inbound::{self, Archived, NewEvent};
use stockhub_store::engine::intake::{
    self, ChannelLineInput, ChannelOrderInput, RefundInput, RefundLineInput,
};
use stockhub_store::engine::pushes;
use stockhub_store::model::Ctx;
use stockhub_store::{Sql, Store, StoreError};

use crate::registry::{Connected, Connectors};
use crate::{AppError, Metrics};

/// The answer to give the channel.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookAnswer {
    pub status: u16,
    pub body: Value,
}

/// Headers as stored in the archive (names lower-cased, values as text).
fn headers_json(headers: &http::HeaderMap) -> Value {
    let mut map = serde_json::Map::new();
    for (name, value) in headers {
        map.insert(
            name.as_str().to_owned(),
            Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        );
    }
    Value::Object(map)
}

fn refund_input(r: &ChannelRefund) -> RefundInput {
    RefundInput {
        refund_id: r.refund_id.clone(),
        external_id: r.order_external_id.clone(),
        lines: r
            .lines
            .iter()
            .map(|l| RefundLineInput {
                line_id: l.line_id.clone(),
                quantity: l.quantity,
                shipped: l.shipped,
                restock: l.restock,
            })
            .collect(),
    }
}

/// A channel order in the store's terms, with any refunds fetched for it.
pub fn order_input(o: &ChannelOrder, fetched: &[ChannelRefund]) -> ChannelOrderInput {
    ChannelOrderInput {
        external_id: o.external_id.clone(),
        version: o.version,
        open: o.open,
        lines: o
            .lines
            .iter()
            .map(|l| ChannelLineInput {
                line_id: l.line_id.clone(),
                sku: l.sku.clone(),
                variant_ref: l.variant_ref.clone(),
                quantity: l.quantity,
                ordered: l.ordered,
                shipped: l.shipped,
            })
            .collect(),
        refunds: o.refunds.iter().chain(fetched).map(refund_input).collect(),
        raw: serde_json::value::to_raw_value(&o.raw)
            .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON")),
    }
}

/// Receives one delivery for a channel.
pub async fn receive(
    store: &Store,
    connectors: &Connectors,
    metrics: &Metrics,
    channel: &str,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<WebhookAnswer, AppError> {
    let connected = connectors.get(channel).await?;
    // Open until the delivery has committed: its order is most often a sale the channel shows
    // already and stockhub not yet, so a push to the channel leaves its SKUs out meanwhile.
    // Opened once the channel is known to be connected, so that deliveries to made-up channel
    // codes leave nothing behind.
    let arrival = connectors.arrivals().open(channel);
    let connector = connected.connector.clone();
    let verdict = connector.verify(headers, body);
    let stored_headers = headers_json(headers);
    let identity = match &verdict {
        Verdict::Valid => Some(connector.identify(headers, body)),
        _ => None,
    };
    // Work that needs the network (WooCommerce refund quantities) happens before the
    // transaction; if it fails, the delivery is archived as pending and re-applied later.
    let prepared = match &identity {
        Some(Ok(delivery)) => Some(prepare(&*connector, delivery, body).await),
        _ => None,
    };
    if let Some(Prepared::Order(order)) = &prepared {
        arrival.touches(order.lines.iter().filter_map(|l| l.sku.clone()));
    }
    let code = channel.to_owned();
    let body_owned = body.to_vec();
    let answer = store
        .write(move |sql| {
            let (topic, key, delivery_id) = match &identity {
                Some(Ok(d)) => (
                    Some(d.topic.clone()),
                    Some(d.dedupe_key.clone()),
                    d.delivery_id.clone(),
                ),
                _ => (None, None, None),
            };
            let verdict_text = match &verdict {
                Verdict::Valid => "valid",
                Verdict::Invalid(_) => "invalid",
                Verdict::Ping => "ping",
            };
            let archived = inbound::archive(
                sql,
                &NewEvent {
                    channel: &code,
                    topic: topic.as_deref(),
                    dedupe_key: key.as_deref(),
                    delivery_id: delivery_id.as_deref(),
                    headers: stored_headers.clone(),
                    body: &body_owned,
                    verdict: verdict_text,
                },
            )?;
            match (&verdict, archived, &identity) {
                (Verdict::Invalid(why), Archived::New(id), _) => Ok((
                    401,
                    json!({ "event_id": id, "outcome": "rejected", "detail": why }),
                    "rejected",
                )),
                (Verdict::Ping, Archived::New(id), _) => {
                    Ok((200, json!({ "event_id": id, "outcome": "ping" }), "ping"))
                }
                (_, Archived::Duplicate { id, original }, _) => Ok((
                    200,
                    json!({ "event_id": id, "outcome": "duplicate", "original": original }),
                    "duplicate",
                )),
                (_, Archived::New(id), Some(Err(e))) => {
                    inbound::set_outcome(
                        sql,
                        id,
                        "failed",
                        Some(&format!("the payload does not read as documented: {e}")),
                    )?;
                    Ok((
                        200,
                        json!({ "event_id": id, "outcome": "failed", "detail": e.to_string() }),
                        "failed",
                    ))
                }
                (_, Archived::New(id), _) => {
                    let outcome = apply_prepared(sql, &code, id, prepared.as_ref())?;
                    Ok((200, json!({ "event_id": id, "outcome": outcome }), outcome))
                }
            }
        })
        .await?;
    drop(arrival);
    metrics.record_webhook(channel, answer.2);
    Ok(WebhookAnswer {
        status: answer.0,
        body: answer.1,
    })
}

/// What a delivery will do, with anything fetched from the channel for it, made ready before
/// the write transaction so that the single writer does no more than store it.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// An order in the store's terms, with the refunds fetched for it.
    Order(ChannelOrderInput),
    /// Any other delivery (a refund, a listing's quantity, one to ignore).
    Apply(Intake),
    /// The payload could not be read.
    Unreadable(String),
    /// Something it needs could not be fetched now; the inbox worker retries.
    Waiting(String),
}

pub async fn prepare(
    connector: &dyn Connector,
    delivery: &stockhub_channels::Delivery,
    body: &[u8],
) -> Prepared {
    match connector.interpret(delivery, body) {
        Err(e) => Prepared::Unreadable(e.to_string()),
        Ok(Intake::Order(order)) if !order.refunds_to_fetch.is_empty() => {
            match connector.fetch_refunds(&order).await {
                Ok(refunds) => Prepared::Order(order_input(&order, &refunds)),
                Err(e) => Prepared::Waiting(format!("fetching the order's refunds failed: {e}")),
            }
        }
        Ok(Intake::Order(order)) => Prepared::Order(order_input(&order, &[])),
        Ok(intake) => Prepared::Apply(intake),
    }
}

/// Applies a prepared delivery inside the caller's transaction, in a savepoint of its own so
/// that a failure leaves the archived delivery (marked failed) in place. Returns the outcome.
pub fn apply_prepared(
    sql: &mut dyn Sql,
    channel: &str,
    event_id: i64,
    prepared: Option<&Prepared>,
) -> Result<&'static str, StoreError> {
    let Some(prepared) = prepared else {
        inbound::set_outcome(sql, event_id, "failed", Some("nothing to apply"))?;
        return Ok("failed");
    };
    let ctx = Ctx {
        source: format!("channel:{channel}"),
        correlation_id: format!("event:{event_id}"),
        idempotency_key: None,
    };
    let ctx = &ctx;
    let applied = match prepared {
        Prepared::Unreadable(why) => {
            inbound::set_outcome(sql, event_id, "failed", Some(why))?;
            return Ok("failed");
        }
        Prepared::Waiting(why) => {
            inbound::set_outcome(sql, event_id, "pending", Some(why))?;
            return Ok("pending");
        }
        Prepared::Order(order) => in_savepoint(sql, |sql| apply_order(sql, ctx, channel, order)),
        Prepared::Apply(intake) => in_savepoint(sql, |sql| apply_intake(sql, ctx, channel, intake)),
    };
    match applied {
        Ok((outcome, detail)) => {
            inbound::set_outcome(sql, event_id, outcome, detail.as_deref())?;
            Ok(outcome)
        }
        Err(e @ StoreError::Database { .. }) => Err(e),
        Err(e) => {
            inbound::set_outcome(sql, event_id, "failed", Some(&e.to_string()))?;
            Ok("failed")
        }
    }
}

type Applied = Result<(&'static str, Option<String>), StoreError>;

/// Runs `apply` in a savepoint of its own: a failure other than the database's leaves nothing of
/// it (the delivery stays archived, marked failed).
fn in_savepoint(sql: &mut dyn Sql, apply: impl FnOnce(&mut dyn Sql) -> Applied) -> Applied {
    sql.execute("SAVEPOINT intake", &[])?;
    let applied = apply(sql);
    match &applied {
        Ok(_) => {
            sql.execute("RELEASE intake", &[])?;
        }
        Err(StoreError::Database { .. }) => {}
        Err(_) => {
            sql.execute("ROLLBACK TO intake", &[])?;
            sql.execute("RELEASE intake", &[])?;
        }
    }
    applied
}

fn apply_order(sql: &mut dyn Sql, ctx: &Ctx, channel: &str, order: &ChannelOrderInput) -> Applied {
    let code = Code::parse("channel", channel).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let outcome = intake::apply_channel_order(sql, ctx, &code, order)?;
    Ok((
        "applied",
        Some(format!("order {}: {}", order.external_id, outcome.outcome)),
    ))
}

fn apply_intake(sql: &mut dyn Sql, ctx: &Ctx, channel: &str, intake: &Intake) -> Applied {
    let code = Code::parse("channel", channel).map_err(|e| StoreError::Invalid(e.to_string()))?;
    match intake {
        Intake::Order(order) => apply_order(sql, ctx, channel, &order_input(order, &[])),
        Intake::Refund(refund) => {
            match intake::apply_channel_refund(sql, ctx, &code, &refund_input(refund))? {
                Some(outcome) => Ok((
                    "applied",
                    Some(format!(
                        "refund applied to order {}: {}",
                        refund.order_external_id, outcome.outcome
                    )),
                )),
                None => Ok((
                    "applied",
                    Some(format!(
                        "refund kept until order {} arrives",
                        refund.order_external_id
                    )),
                )),
            }
        }
        Intake::ListingQuantity {
            listing_key,
            available,
            shown_at_ms,
        } => {
            let listing = sql.query_opt(
                "SELECT id, sku FROM listings WHERE channel = ?1 AND listing_key = ?2",
                stockhub_store::args![channel, listing_key.as_str()],
            )?;
            let Some(listing) = listing else {
                return Ok((
                    "ignored",
                    Some(format!("listing {listing_key} is not one of ours")),
                ));
            };
            // What the channel showed, as of no later than it showed it (`observe` counts the
            // orders booked after that as sales after it): its own time, less the margin for
            // clocks that differ a little. A delivery that is late, or replayed, is then older
            // than what the listing confirmed since, and changes nothing.
            let now = sql.now_ms();
            let shown_at = shown_at_ms.map_or(now, |at| {
                (at - crate::backfill::RECENT_MARGIN.as_millis() as i64).min(now)
            });
            if !pushes::observe(sql, listing.int(0), *available, shown_at)? {
                return Ok((
                    "ignored",
                    Some(format!(
                        "listing {listing_key} showed {available} before its last confirmation"
                    )),
                ));
            }
            if let Some(sku) = listing.opt_text(1) {
                pushes::mark_channel_sku(sql, channel, &sku)?;
            }
            Ok((
                "applied",
                Some(format!("listing {listing_key} shows {available}")),
            ))
        }
        Intake::Ignore(why) => Ok(("ignored", Some(why.clone()))),
    }
}

/// Re-applies an archived delivery (operator's replay, or the inbox worker for pending ones).
/// Its permanent identity makes this safe: orders apply as snapshots, refunds merge by id.
pub async fn replay(
    store: &Store,
    connectors: &Connectors,
    event_id: i64,
) -> Result<Value, AppError> {
    let (mut event, mut body) = store.read(move |sql| inbound::get(sql, event_id)).await?;
    if event.outcome == "duplicate" {
        // A repeat holds no identity of its own: re-apply the delivery it repeats.
        let original = store
            .read({
                let (channel, key) = (event.channel.clone(), event.dedupe_key.clone());
                move |sql| inbound::original(sql, &channel, key.as_deref())
            })
            .await?;
        if let Some(original) = original {
            (event, body) = store.read(move |sql| inbound::get(sql, original)).await?;
        }
    }
    let event_id = event.id;
    if event.verdict != "valid" {
        return Err(AppError::Invalid(format!(
            "event {event_id} was not a valid delivery ({}); it cannot be applied",
            event.verdict
        )));
    }
    let connected: Connected = connectors.get(&event.channel).await?;
    let mut headers = http::HeaderMap::new();
    if let Some(map) = event.headers.as_object() {
        for (k, v) in map {
            if let (Ok(name), Some(Ok(value))) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(http::HeaderValue::from_str),
            ) {
                headers.insert(name, value);
            }
        }
    }
    let prepared = match connected.connector.identify(&headers, &body) {
        Ok(delivery) => prepare(&*connected.connector, &delivery, &body).await,
        Err(e) => Prepared::Unreadable(e.to_string()),
    };
    let channel = event.channel.clone();
    let outcome = store
        .write(move |sql| apply_prepared(sql, &channel, event_id, Some(&prepared)))
        .await?;
    Ok(json!({ "event_id": event_id, "outcome": outcome }))
}

/// Re-applies deliveries left pending (e.g. refunds that could not be fetched); returns how many
/// were tried.
pub async fn retry_pending(
    store: &Store,
    connectors: &Connectors,
    limit: i64,
) -> Result<usize, AppError> {
    let ids = store.read(move |sql| inbound::pending(sql, limit)).await?;
    for id in &ids {
        if let Err(e) = replay(store, connectors, *id).await {
            tracing::warn!(event = id, error = %e, "re-applying a pending delivery failed");
        }
    }
    Ok(ids.len())
}
