//! Reading a WooCommerce catalog: every listing (`GET products`, and `GET
//! products/{id}/variations` for variable products), and the quantities listings show now
//! (`GET products?include=…`, `GET products/{id}/variations?include=…`, ≤ 100 ids a call).
//!
//! A listing's quantity is its `stock_quantity` when it manages its own stock (`manage_stock:
//! true`); a listing that does not (or a variation whose stock is its parent's) has none, and a
//! read leaves it out. Grouped and external products hold no stock and are not listings.
//! Discovery reads variations one parent at a time, in turn, which keeps a store's load to one
//! call; a read of quantities (before a push) keeps up to `CONCURRENT_CALLS` reads in flight.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use super::listing::{self, Target};
use super::push::CONCURRENT_CALLS;
use super::rest::{Api, PAGE_SIZE};
use super::wire::{Product, QUANTITY_FIELDS};
use crate::connector::{ChannelListing, ListingRef};
use crate::error::ChannelError;

fn products(raw: Vec<Value>, path: &str) -> Vec<Product> {
    raw.into_iter()
        .filter_map(|v| match Product::deserialize(&v) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(path, error = %e, "unreadable WooCommerce product skipped");
                None
            }
        })
        .collect()
}

pub async fn discover(api: &Api) -> Result<Vec<ChannelListing>, ChannelError> {
    let mut listings = Vec::new();
    let mut seen = HashSet::new();
    // Pages can shift while they are read (a product added meanwhile): keep the first of each.
    let mut keep = |l: ChannelListing, listings: &mut Vec<ChannelListing>| {
        if seen.insert(l.listing_key.clone()) {
            listings.push(l);
        }
    };
    for product in products(api.get_all("products", &[]).await?, "products") {
        if listing::is_variable(&product) {
            let path = format!("products/{}/variations", product.id);
            for variation in products(api.get_all(&path, &[]).await?, &path) {
                keep(listing::of_variation(product.id, &variation), &mut listings);
            }
        } else if listing::holds_stock(&product) {
            keep(listing::of_product(&product), &mut listings);
        }
    }
    Ok(listings)
}

pub async fn read_quantities(
    api: &Api,
    refs: &[ListingRef],
) -> Result<Vec<(String, i64)>, ChannelError> {
    // Several stored listings may name one target; each gets the quantity under its own key.
    let mut keys: BTreeMap<Target, Vec<String>> = BTreeMap::new();
    for r in refs {
        match Target::of_listing(r) {
            Some(target) => keys.entry(target).or_default().push(r.listing_key.clone()),
            None => {
                tracing::warn!(listing = %r.listing_key, "listing names no WooCommerce product; not read")
            }
        }
    }
    let mut by_parent: BTreeMap<Option<u64>, Vec<u64>> = BTreeMap::new();
    for target in keys.keys() {
        let (parent, id) = target.batch_slot();
        by_parent.entry(parent).or_default().push(id);
    }
    let mut reads: Vec<(Option<u64>, String)> = Vec::new();
    for (parent, ids) in by_parent {
        for chunk in ids.chunks(PAGE_SIZE) {
            let include = chunk
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            reads.push((parent, include));
        }
    }
    let mut quantities = Vec::new();
    let mut reads = reads.into_iter();
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        while in_flight.len() < CONCURRENT_CALLS {
            let Some((parent, include)) = reads.next() else {
                break;
            };
            let api = api.clone();
            in_flight.spawn(async move {
                let path = match parent {
                    None => "products".to_owned(),
                    Some(product_id) => format!("products/{product_id}/variations"),
                };
                let query = [
                    ("include", include),
                    ("_fields", QUANTITY_FIELDS.to_owned()),
                ];
                let raw = api.get_all(&path, &query).await;
                (parent, path, raw)
            });
        }
        let Some(joined) = in_flight.join_next().await else {
            break;
        };
        let Ok((parent, path, raw)) = joined else {
            return Err(ChannelError::Transient(
                "a quantity read ended without an answer".into(),
            ));
        };
        let raw = match raw {
            Ok(raw) => raw,
            // A parent product that is gone leaves its variations unread, not the others.
            Err(ChannelError::Permanent(e)) if parent.is_some() => {
                tracing::warn!(path, error = %e, "WooCommerce variations unreadable; skipped");
                continue;
            }
            Err(e) => return Err(e),
        };
        for item in products(raw, &path) {
            let target = match parent {
                None => Target::Product(item.id),
                Some(product_id) => Target::Variation {
                    product_id,
                    variation_id: item.id,
                },
            };
            if let (Some(quantity), Some(keys)) = (item.own_quantity(), keys.get(&target)) {
                quantities.extend(keys.iter().map(|k| (k.clone(), quantity)));
            }
        }
    }
    Ok(quantities)
}
