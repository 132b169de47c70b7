//! Setting quantities through WooCommerce's batch endpoints: simple products through
//! `POST products/batch`, variations through `POST products/{product_id}/variations/batch`, each
//! call at most 100 items (`{"update": [{"id", "manage_stock": true, "stock_quantity"}]}`).
//!
//! - Items are grouped by endpoint in the order they come, then cut into calls of ≤ 100, so a
//!   push of any size works; a store that lowered its limit (filter
//!   `woocommerce_rest_batch_items_limit`) answers 413, and the call is halved and sent again.
//! - A 200 holds one result per item, in order: the resource as saved (its `stock_quantity` is the
//!   confirmed quantity) or `{"id", "error": {"code", "message", "data": {"status"}}}`, classified
//!   by that status (4xx permanent, 5xx transient, 429 rate limited).
//! - Variations can only be set through their own product's endpoint, so a push touching many
//!   products makes many calls: up to `CONCURRENT_CALLS` are in flight at once (simple products
//!   share `products/batch` calls whatever their number).
//! - A call that fails as a whole (401, 429, 5xx, timeout) stops the calls not yet sent: they
//!   would meet the same store. Its items, and those not sent, fail with its error; a push where
//!   every item failed with one error is that error (`Err`). A permanent failure of one call (its
//!   parent product is gone) fails only that call's items.
//! - WooCommerce has no compare-and-set, so it is done here, by reading right before writing.
//!   Calls go out in rounds: the calls at the front of the queue whose items carrying a
//!   `change_from` number at most 100. A round first reads those items by their SKUs in one call
//!   (`GET products?sku=a,b,…`; with `sku` WooCommerce lists variations of any product too), then
//!   sends its calls; an item that read did not find (no SKU on the listing, a SKU with a comma,
//!   a SKU changed in the store) is read by its call right before it is sent (`GET
//!   products?include=…` or `products/{id}/variations?include=…`). An item showing less than
//!   `change_from` (a sale stockhub has not heard of) is written holding that decrease back,
//!   `quantity − (change_from − actual)` (DESIGN §1 `u`), and comes back `HeldBack`; one showing
//!   more (units the store put back itself, which may offset such a sale) is not written and
//!   comes back `Stale { actual }`; one showing `change_from` when that is the quantity to set
//!   is not written either (`Applied`: the store shows it already — stockhub pushes a listing
//!   after its own store's sale, and the read is what tells whether that store made another
//!   sale meanwhile); the others are written. So a round of variations of 60 products costs 1
//!   read and 60 writes, not 60 of each; the window in which a sale can be overwritten is the
//!   round's read and its writes (a few round trips) instead of one round trip, and
//!   `sales_can_race_writes` books such a sale at once after the pass. A failed read fails the round (a store that refuses
//!   the read by SKU for good only loses the shortcut). Read by SKU, a variation whose parent
//!   manages its stock shows its parent's quantity, as WooCommerce lists it there.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use super::listing::Target;
use super::rest::{Api, Failure, PAGE_SIZE};
use super::wire::{ApiError, BatchItem, Product, QUANTITY_FIELDS};
use crate::connector::{PushItem, PushOutcome};
use crate::error::ChannelError;

/// One batch call: the parent product for variations (`None` for products), and the items it
/// sets as (index in the push, id at that endpoint).
struct Call {
    parent: Option<u64>,
    items: Vec<(usize, u64)>,
}

impl Call {
    fn path(&self) -> String {
        match self.parent {
            None => "products/batch".to_owned(),
            Some(product_id) => format!("products/{product_id}/variations/batch"),
        }
    }
}

/// Batch calls one push keeps in flight at once.
pub const CONCURRENT_CALLS: usize = 16;

/// Items whose quantities one read by SKU covers: one page of WooCommerce's largest size.
const READ_LIMIT: usize = PAGE_SIZE;

pub async fn push(api: &Api, items: &[PushItem]) -> Result<Vec<PushOutcome>, ChannelError> {
    let mut outcomes: Vec<Option<PushOutcome>> = vec![None; items.len()];
    let mut calls = plan(items, &mut outcomes);
    let mut stopped: Option<ChannelError> = None;
    let mut answered = false;
    while stopped.is_none() {
        let mut round = next_round(&mut calls, items);
        if round.is_empty() {
            break;
        }
        let shown = match read_by_sku(api, &round, items).await {
            Ok(shown) => Arc::new(shown),
            Err(error) => {
                for call in &round {
                    fail(call, &error, &mut outcomes);
                }
                stopped = Some(error);
                break;
            }
        };
        let mut in_flight = tokio::task::JoinSet::new();
        loop {
            // Keep up to CONCURRENT_CALLS calls in flight while the store answers.
            while stopped.is_none() && in_flight.len() < CONCURRENT_CALLS {
                let Some(call) = round.pop_front() else { break };
                let sets: Vec<Set> = call
                    .items
                    .iter()
                    .map(|&(i, id)| Set {
                        index: i,
                        id,
                        quantity: items[i].quantity,
                        change_from: items[i].change_from,
                    })
                    .collect();
                let (api, shown) = (api.clone(), shown.clone());
                in_flight.spawn(async move { compare_and_set(&api, call, sets, &shown).await });
            }
            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            let Ok((call, compared, answer)) = joined else {
                // The task could not finish (the runtime is shutting down): its items stay unsent.
                continue;
            };
            for (index, actual) in compared.stale {
                outcomes[index] = Some(PushOutcome::Stale {
                    actual: Some(actual),
                });
            }
            for (index, confirmed) in compared.unchanged {
                outcomes[index] = Some(PushOutcome::Applied { confirmed });
            }
            for &(index, actual, written) in &compared.held_back {
                if written == actual {
                    outcomes[index] = Some(PushOutcome::HeldBack {
                        actual,
                        confirmed: actual,
                    });
                }
            }
            let Some(answer) = answer else {
                // Every item of the call was stale or showed its quantity: nothing was written.
                answered = true;
                continue;
            };
            match answer {
                Ok(answer) => {
                    answered = true;
                    settle(&call, &answer, items, &compared.held_back, &mut outcomes);
                }
                Err(Failure {
                    status: Some(413), ..
                }) if call.items.len() > 1 => {
                    // Halved, and read again with the next round.
                    let (first, second) = call.items.split_at(call.items.len() / 2);
                    calls.push_front(Call {
                        parent: call.parent,
                        items: second.to_vec(),
                    });
                    calls.push_front(Call {
                        parent: call.parent,
                        items: first.to_vec(),
                    });
                }
                Err(Failure {
                    error: error @ ChannelError::Permanent(_),
                    ..
                }) => fail(&call, &error, &mut outcomes),
                Err(Failure { error, .. }) => {
                    fail(&call, &error, &mut outcomes);
                    stopped.get_or_insert(error);
                }
            }
        }
        calls.extend(round);
    }
    if let Some(error) = &stopped {
        for call in calls.drain(..) {
            fail(&call, error, &mut outcomes);
        }
    }
    let outcomes: Vec<PushOutcome> = outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| PushOutcome::Failed(ChannelError::Transient("not sent".into())))
        })
        .collect();
    match (answered, shared_error(&outcomes)) {
        (false, Some(error)) => Err(error),
        _ => Ok(outcomes),
    }
}

/// The next calls to send, taken from the front of `calls` while the items they compare (those
/// with a `change_from`) fit in one read by SKU; at least one call.
fn next_round(calls: &mut VecDeque<Call>, items: &[PushItem]) -> VecDeque<Call> {
    let compared = |call: &Call| {
        call.items
            .iter()
            .filter(|&&(i, _)| items[i].change_from.is_some())
            .count()
    };
    let mut round = VecDeque::new();
    let mut reads = 0;
    while let Some(call) = calls.front() {
        let more = compared(call);
        if !round.is_empty() && reads + more > READ_LIMIT {
            break;
        }
        reads += more;
        round.extend(calls.pop_front());
    }
    round
}

/// What the items of a round that carry a `change_from` show now, read by their SKUs in one
/// call (`GET products?sku=a,b,…`: with `sku`, WooCommerce lists variations too, whatever their
/// product), keyed by product or variation id; `None` for one that does not manage its own
/// stock. Items without a usable SKU (none, or one holding a comma, the list's separator) are
/// not read here. A store that refuses the read for good leaves every item to its call's own
/// read; any other failure is the round's.
async fn read_by_sku(
    api: &Api,
    round: &VecDeque<Call>,
    items: &[PushItem],
) -> Result<Shown, ChannelError> {
    let skus: Vec<&str> = round
        .iter()
        .flat_map(|call| &call.items)
        .map(|&(i, _)| &items[i])
        .filter(|item| item.change_from.is_some())
        .filter_map(|item| item.listing.channel_sku.as_deref())
        .filter(|sku| !sku.is_empty() && !sku.contains(','))
        .collect();
    if skus.is_empty() {
        return Ok(Shown::new());
    }
    match read_shown(api, "products", ("sku", skus.join(","))).await {
        Err(ChannelError::Permanent(error)) => {
            tracing::warn!(%error, "WooCommerce refused a read of quantities by SKU; reading each product's instead");
            Ok(Shown::new())
        }
        read => read,
    }
}

/// Quantities read, by product or variation id: `None` for one that does not manage its own
/// stock.
type Shown = BTreeMap<u64, Option<i64>>;

/// One item of a call.
struct Set {
    index: usize,
    id: u64,
    quantity: i64,
    change_from: Option<i64>,
}

/// What a call's comparison found, as (index in the push, quantity shown).
#[derive(Default)]
struct Compared {
    /// Items showing more than their `change_from`: not written.
    stale: Vec<(usize, i64)>,
    /// Items showing less than their `change_from`, with the quantity that holds the decrease
    /// back: written unless they show that already.
    held_back: Vec<(usize, i64, i64)>,
    /// Items showing their `change_from`, which is the quantity to set: not written either —
    /// the store shows it already, and a write could only overwrite a sale made meanwhile.
    unchanged: Vec<(usize, i64)>,
}

/// Compares what the call's items with a `change_from` show (as read by SKU for the round, or
/// read now at the call's own endpoint for those that read missed), leaves out those showing
/// more than it and those showing the quantity to set, sets those showing less holding the
/// decrease back, and sets the rest. Returns the call as
/// sent (its items the ones written), what the comparison found, and the answer (`None` when
/// nothing was left to write).
async fn compare_and_set(
    api: &Api,
    call: Call,
    sets: Vec<Set>,
    read: &Shown,
) -> (Call, Compared, Option<Result<Value, Failure>>) {
    let mut compared = Compared::default();
    let unread: Vec<u64> = sets
        .iter()
        .filter(|s| s.change_from.is_some() && !read.contains_key(&s.id))
        .map(|s| s.id)
        .collect();
    let own_read = if unread.is_empty() {
        Shown::new()
    } else {
        let path = match call.parent {
            None => "products".to_owned(),
            Some(product_id) => format!("products/{product_id}/variations"),
        };
        let include = unread
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        match read_shown(api, &path, ("include", include)).await {
            Ok(shown) => shown,
            Err(error) => return (call, compared, Some(Err(Failure::from(error)))),
        }
    };
    let mut written = Vec::with_capacity(sets.len());
    let mut update = Vec::with_capacity(sets.len());
    for set in sets {
        let shown = read.get(&set.id).or_else(|| own_read.get(&set.id));
        let mut quantity = set.quantity;
        match (set.change_from, shown) {
            (Some(expected), Some(&Some(actual))) if actual > expected => {
                compared.stale.push((set.index, actual));
                continue;
            }
            (Some(expected), Some(&Some(actual))) if actual < expected => {
                quantity = (set.quantity - (expected - actual)).max(0);
                compared.held_back.push((set.index, actual, quantity));
                if quantity == actual {
                    continue;
                }
            }
            (Some(_), Some(&Some(actual))) if actual == set.quantity => {
                compared.unchanged.push((set.index, actual));
                continue;
            }
            _ => {}
        }
        written.push((set.index, set.id));
        update.push(json!({
            "id": set.id,
            "manage_stock": true,
            "stock_quantity": quantity,
        }));
    }
    let call = Call {
        parent: call.parent,
        items: written,
    };
    if call.items.is_empty() {
        return (call, compared, None);
    }
    let answer = api.post(&call.path(), &json!({ "update": update })).await;
    (call, compared, Some(answer))
}

/// What the products or variations at `path` that `filter` selects show now (asking with
/// `_fields` for only what `Product::own_quantity` needs).
async fn read_shown(
    api: &Api,
    path: &str,
    filter: (&'static str, String),
) -> Result<Shown, ChannelError> {
    let query = [filter, ("_fields", QUANTITY_FIELDS.to_owned())];
    let mut shown = Shown::new();
    for raw in api.get_all(path, &query).await? {
        if let Ok(item) = Product::deserialize(&raw) {
            shown.insert(item.id, item.own_quantity());
        }
    }
    Ok(shown)
}

/// Groups items by endpoint, in the order they come, in calls of ≤ 100; an item whose listing
/// names no product fails at once.
fn plan(items: &[PushItem], outcomes: &mut [Option<PushOutcome>]) -> VecDeque<Call> {
    let mut groups: Vec<Call> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(target) = Target::of_listing(&item.listing) else {
            let message = format!(
                "listing {} names no WooCommerce product or variation",
                item.listing.listing_key
            );
            outcomes[i] = Some(PushOutcome::Failed(ChannelError::Permanent(message)));
            continue;
        };
        let (parent, id) = target.batch_slot();
        match groups.iter_mut().find(|g| g.parent == parent) {
            Some(group) => group.items.push((i, id)),
            None => groups.push(Call {
                parent,
                items: vec![(i, id)],
            }),
        }
    }
    groups
        .into_iter()
        .flat_map(|group| {
            let parent = group.parent;
            group
                .items
                .chunks(PAGE_SIZE)
                .map(|chunk| Call {
                    parent,
                    items: chunk.to_vec(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn fail(call: &Call, error: &ChannelError, outcomes: &mut [Option<PushOutcome>]) {
    for &(i, _) in &call.items {
        outcomes[i] = Some(PushOutcome::Failed(error.clone()));
    }
}

/// Reads a batch answer's `update` list into one outcome per item of the call; `held_back`
/// (index, quantity shown, quantity written) are the items written holding a decrease back.
fn settle(
    call: &Call,
    answer: &Value,
    items: &[PushItem],
    held_back: &[(usize, i64, i64)],
    outcomes: &mut [Option<PushOutcome>],
) {
    let results: Vec<Option<BatchItem>> = answer
        .get("update")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|v| serde_json::from_value(v.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    let mut used = vec![false; results.len()];
    for (position, &(i, id)) in call.items.iter().enumerate() {
        // Results come in request order; look further only if this one is for another id.
        let at_position = results
            .get(position)
            .and_then(Option::as_ref)
            .is_some_and(|r| r.id == Some(id));
        let slot = if at_position && !used[position] {
            Some(position)
        } else {
            (0..results.len())
                .find(|&k| !used[k] && results[k].as_ref().is_some_and(|r| r.id == Some(id)))
        };
        let outcome = match slot {
            None => PushOutcome::Failed(ChannelError::Transient(format!(
                "WooCommerce's batch answer has no result for id {id}"
            ))),
            Some(k) => {
                used[k] = true;
                let result = results[k].as_ref().expect("a slot has a result");
                let held = held_back.iter().find(|h| h.0 == i);
                match (&result.error, held) {
                    (Some(error), _) => PushOutcome::Failed(classify(error)),
                    (None, None) => PushOutcome::Applied {
                        confirmed: result.stock_quantity.unwrap_or(items[i].quantity),
                    },
                    (None, Some(&(_, actual, written))) => PushOutcome::HeldBack {
                        actual,
                        confirmed: result.stock_quantity.unwrap_or(written),
                    },
                }
            }
        };
        outcomes[i] = Some(outcome);
    }
}

/// An item's error, classified by its `data.status`; without one it is the item's own fault.
fn classify(error: &ApiError) -> ChannelError {
    let detail = format!("{}: {}", error.code, error.message);
    match error.status() {
        Some(status) => ChannelError::from_status(status, None, &detail),
        None => ChannelError::Permanent(detail),
    }
}

/// The error every item failed with, if they all failed with the same one.
fn shared_error(outcomes: &[PushOutcome]) -> Option<ChannelError> {
    let mut errors = outcomes.iter().map(|o| match o {
        PushOutcome::Failed(e) => Some(e),
        _ => None,
    });
    let first = errors.next()??;
    errors.all(|e| e == Some(first)).then(|| first.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::ListingRef;

    fn item(key: &str, quantity: i64) -> PushItem {
        PushItem {
            listing: ListingRef {
                listing_key: key.into(),
                channel_location: None,
                ids: Value::Null,
                channel_sku: None,
            },
            quantity,
            change_from: Some(1),
        }
    }

    #[test]
    fn plans_group_by_endpoint_and_cap_calls_at_100() {
        let mut items: Vec<PushItem> = (1..=150)
            .map(|i| item(&format!("product/{i}"), 1))
            .collect();
        items.extend((1..=120).map(|v| item(&format!("variation/7/{v}"), 2)));
        items.push(item("variation/8/1", 3));
        items.push(item("nonsense", 3));
        let mut outcomes = vec![None; items.len()];
        let calls = plan(&items, &mut outcomes);
        let shape: Vec<(Option<u64>, usize)> =
            calls.iter().map(|c| (c.parent, c.items.len())).collect();
        assert_eq!(
            shape,
            vec![
                (None, 100),
                (None, 50),
                (Some(7), 100),
                (Some(7), 20),
                (Some(8), 1)
            ]
        );
        assert_eq!(calls[2].path(), "products/7/variations/batch");
        assert_eq!(calls[0].path(), "products/batch");
        assert!(matches!(
            outcomes[271],
            Some(PushOutcome::Failed(ChannelError::Permanent(_)))
        ));
        assert!(outcomes[..271].iter().all(Option::is_none));
    }

    #[test]
    fn answers_settle_per_item() {
        let items = vec![
            item("product/1", 5),
            item("product/2", 6),
            item("product/3", 7),
            item("product/4", 8),
        ];
        let call = Call {
            parent: None,
            items: vec![(0, 1), (1, 2), (2, 3), (3, 4)],
        };
        let answer = json!({"update": [
            {"id": 1, "stock_quantity": 5, "manage_stock": true},
            {"id": 3, "stock_quantity": 7},
            {"id": 2, "error": {"code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.", "data": {"status": 400}}},
        ]});
        let mut outcomes = vec![None; 4];
        settle(&call, &answer, &items, &[], &mut outcomes);
        assert_eq!(outcomes[0], Some(PushOutcome::Applied { confirmed: 5 }));
        assert!(
            matches!(&outcomes[1], Some(PushOutcome::Failed(ChannelError::Permanent(m))) if m.contains("invalid_id"))
        );
        assert_eq!(outcomes[2], Some(PushOutcome::Applied { confirmed: 7 }));
        assert!(matches!(
            outcomes[3],
            Some(PushOutcome::Failed(ChannelError::Transient(_)))
        ));
    }

    #[test]
    fn item_errors_classify_by_status() {
        let e = |status: Value| ApiError {
            code: "c".into(),
            message: "m".into(),
            data: json!({"status": status}),
        };
        assert!(matches!(
            classify(&e(json!(404))),
            ChannelError::Permanent(_)
        ));
        assert!(matches!(
            classify(&e(json!(500))),
            ChannelError::Transient(_)
        ));
        assert!(matches!(
            classify(&e(json!(429))),
            ChannelError::RateLimited { .. }
        ));
        assert!(matches!(classify(&e(json!(401))), ChannelError::Auth(_)));
        assert!(matches!(
            classify(&e(Value::Null)),
            ChannelError::Permanent(_)
        ));
    }

    #[test]
    fn one_error_for_all_is_the_push_error() {
        let down = ChannelError::Transient("HTTP 503".into());
        assert_eq!(
            shared_error(&[
                PushOutcome::Failed(down.clone()),
                PushOutcome::Failed(down.clone())
            ]),
            Some(down.clone())
        );
        assert_eq!(
            shared_error(&[
                PushOutcome::Failed(down.clone()),
                PushOutcome::Applied { confirmed: 1 }
            ]),
            None
        );
        assert_eq!(shared_error(&[]), None);
    }
}
