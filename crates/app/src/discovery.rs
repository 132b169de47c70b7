//! Catalog discovery: page through a channel's catalog with its real API, link each listing to
//! our variant by SKU, store the channel's ids, and keep a report of what did not match.

use stockhub_channels::Kind;
use stockhub_store::engine::listings::{self, DiscoveryReport, FoundListing};
use stockhub_store::Store;

use crate::registry::Connectors;
use crate::AppError;

pub async fn discover(
    store: &Store,
    connectors: &Connectors,
    channel: &str,
) -> Result<DiscoveryReport, AppError> {
    let connected = connectors.get(channel).await?;
    let found = connected.connector.discover().await?;
    let listings: Vec<FoundListing> = found
        .into_iter()
        .map(|l| {
            let feeding_locations = l.channel_location.as_ref().and_then(|cl| {
                connected
                    .location_map
                    .iter()
                    .find(|(key, ours)| key == cl && !ours.is_empty())
                    .map(|(_, ours)| ours.clone())
            });
            let variant_ref = match connected.kind {
                Kind::Shopify => l.ids.get("variant_id").and_then(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .or_else(|| v.as_i64().map(|n| n.to_string()))
                }),
                Kind::WooCommerce => Some(l.listing_key.clone()),
            };
            FoundListing {
                listing_key: l.listing_key,
                channel_sku: l.sku,
                channel_location: l.channel_location,
                feeding_locations,
                variant_ref,
                ids: l.ids,
                quantity: l.quantity,
            }
        })
        .collect();
    let code = channel.to_owned();
    Ok(store
        .write(move |sql| listings::store_discovery(sql, &code, &listings))
        .await?)
}
