//! WooCommerce listings and their keys. What holds a quantity is a simple product
//! (`product/<product_id>`) or a variation (`variation/<product_id>/<variation_id>`); a variable
//! product itself is only the parent of its variations. Order lines name the same key as their
//! `variant_ref`, so a line whose SKU is missing still maps through the listing.

use serde_json::{json, Value};

use super::wire::{self, Product};
use crate::connector::{ChannelListing, ListingRef};

/// What a push or a read addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Product(u64),
    Variation { product_id: u64, variation_id: u64 },
}

impl Target {
    /// The target of an order or refund line: its variation if it has one, else its product.
    pub fn of_line(product_id: u64, variation_id: u64) -> Option<Self> {
        match (product_id, variation_id) {
            (0, 0) => None,
            (p, 0) => Some(Self::Product(p)),
            (p, v) => Some(Self::Variation {
                product_id: p,
                variation_id: v,
            }),
        }
    }

    pub fn listing_key(self) -> String {
        match self {
            Self::Product(id) => format!("product/{id}"),
            Self::Variation {
                product_id,
                variation_id,
            } => format!("variation/{product_id}/{variation_id}"),
        }
    }

    /// The ids stored on the listing: `{"product_id"}` or `{"product_id", "variation_id"}`.
    pub fn ids(self) -> Value {
        match self {
            Self::Product(id) => json!({ "product_id": id }),
            Self::Variation {
                product_id,
                variation_id,
            } => {
                json!({ "product_id": product_id, "variation_id": variation_id })
            }
        }
    }

    /// Reads a listing key back.
    pub fn parse_key(key: &str) -> Option<Self> {
        let mut parts = key.split('/');
        let target = match (parts.next()?, parts.next(), parts.next()) {
            ("product", Some(id), None) => Self::Product(id.parse().ok()?),
            ("variation", Some(p), Some(v)) => Self::Variation {
                product_id: p.parse().ok()?,
                variation_id: v.parse().ok()?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(target)
    }

    /// The target of a stored listing: its ids, or failing those its key.
    pub fn of_listing(listing: &ListingRef) -> Option<Self> {
        let product = listing.ids.get("product_id").and_then(wire::uint);
        let variation = listing
            .ids
            .get("variation_id")
            .and_then(wire::uint)
            .filter(|v| *v != 0);
        match (product, variation) {
            (Some(p), v) if p != 0 => Self::of_line(p, v.unwrap_or(0)),
            _ => Self::parse_key(&listing.listing_key),
        }
    }

    /// The id the batch call names, and the parent whose batch endpoint takes it.
    pub fn batch_slot(self) -> (Option<u64>, u64) {
        match self {
            Self::Product(id) => (None, id),
            Self::Variation {
                product_id,
                variation_id,
            } => (Some(product_id), variation_id),
        }
    }
}

fn sku(raw: Option<&String>) -> Option<String> {
    raw.map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The listing of a product that holds its own quantity (not a variable one).
pub(crate) fn of_product(product: &Product) -> ChannelListing {
    listing(Target::Product(product.id), product)
}

/// The listing of a variation of `product_id`.
pub(crate) fn of_variation(product_id: u64, variation: &Product) -> ChannelListing {
    listing(
        Target::Variation {
            product_id,
            variation_id: variation.id,
        },
        variation,
    )
}

fn listing(target: Target, item: &Product) -> ChannelListing {
    ChannelListing {
        listing_key: target.listing_key(),
        sku: sku(item.sku.as_ref()),
        channel_location: None,
        ids: target.ids(),
        quantity: item.own_quantity(),
    }
}

/// Whether a product has variations to list instead of itself.
pub(crate) fn is_variable(product: &Product) -> bool {
    product.kind.starts_with("variable") || !product.variations.is_empty()
}

/// Whether a product can hold a quantity of its own: grouped and external products cannot.
pub(crate) fn holds_stock(product: &Product) -> bool {
    !matches!(product.kind.as_str(), "grouped" | "external")
}

/// The SKU of an order line: `None` when empty.
pub(crate) fn line_sku(raw: Option<&String>) -> Option<String> {
    sku(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for t in [
            Target::Product(93),
            Target::Variation {
                product_id: 22,
                variation_id: 23,
            },
        ] {
            assert_eq!(Target::parse_key(&t.listing_key()), Some(t));
        }
        assert_eq!(Target::Product(93).listing_key(), "product/93");
        assert_eq!(
            Target::Variation {
                product_id: 22,
                variation_id: 23
            }
            .listing_key(),
            "variation/22/23"
        );
        assert_eq!(Target::parse_key("variation/22"), None);
        assert_eq!(Target::parse_key("product/1/2"), None);
        assert_eq!(Target::of_line(0, 0), None);
    }

    #[test]
    fn listing_refs_read_ids_then_key() {
        let by_ids = ListingRef {
            listing_key: "ignored".into(),
            channel_location: None,
            ids: json!({"product_id": "22", "variation_id": 23}),
            channel_sku: None,
        };
        assert_eq!(
            Target::of_listing(&by_ids),
            Some(Target::Variation {
                product_id: 22,
                variation_id: 23
            })
        );
        let by_key = ListingRef {
            listing_key: "product/7".into(),
            channel_location: None,
            ids: Value::Null,
            channel_sku: None,
        };
        assert_eq!(Target::of_listing(&by_key), Some(Target::Product(7)));
        let simple = ListingRef {
            listing_key: "x".into(),
            channel_location: None,
            ids: json!({"product_id": 7, "variation_id": 0}),
            channel_sku: None,
        };
        assert_eq!(Target::of_listing(&simple), Some(Target::Product(7)));
    }
}
