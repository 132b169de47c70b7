//! What a store starts with: products and their variants, each with a SKU (possibly missing,
//! empty or shared with another variant, on purpose, to exercise discovery reports), a price,
//! whether its stock is tracked, and a quantity per location. One seed shape serves both
//! channels: a Shopify store reads every location's quantity; a WooCommerce store, which has no
//! location concept (API_FACTS §2.1), reads the first, and makes a product with a single
//! variant titled "Default Title" a simple product and any other a variable one.

use serde::{Deserialize, Serialize};

/// Title Shopify gives the only variant of a product without options; a WooCommerce store makes
/// such a product a simple product.
pub const DEFAULT_VARIANT_TITLE: &str = "Default Title";

/// One product and its variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductSeed {
    pub title: String,
    pub variants: Vec<VariantSeed>,
}

/// One variant (Shopify) or variation / simple product (WooCommerce).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VariantSeed {
    pub title: String,
    /// `None` is a null SKU (Shopify) or an empty one (WooCommerce).
    pub sku: Option<String>,
    pub price: String,
    /// Shopify "track quantity" / WooCommerce `manage_stock`.
    pub tracked: bool,
    /// Shopify `inventory_policy: continue` / WooCommerce `backorders: yes`: the store keeps
    /// selling below zero.
    pub oversell: bool,
    /// Quantity per location, by the index of the store's location; `None` (or a missing entry)
    /// = not stocked there.
    pub stock: Vec<Option<i64>>,
}

impl Default for VariantSeed {
    fn default() -> Self {
        Self {
            title: DEFAULT_VARIANT_TITLE.to_owned(),
            sku: None,
            price: "19.99".to_owned(),
            tracked: true,
            oversell: false,
            stock: Vec::new(),
        }
    }
}

impl VariantSeed {
    /// A tracked variant with this SKU, stocked nowhere yet.
    pub fn new(sku: &str) -> Self {
        Self {
            sku: Some(sku.to_owned()),
            ..Self::default()
        }
    }

    /// The same, with a title.
    pub fn titled(mut self, title: &str) -> Self {
        self.title = title.to_owned();
        self
    }

    /// The same, with these quantities per location index.
    pub fn stock(mut self, quantities: &[i64]) -> Self {
        self.stock = quantities.iter().copied().map(Some).collect();
        self
    }

    /// The same, with stock not tracked.
    pub fn untracked(mut self) -> Self {
        self.tracked = false;
        self
    }

    /// The same, sold below zero.
    pub fn oversell(mut self) -> Self {
        self.oversell = true;
        self
    }

    /// Quantity at a location index, if stocked there.
    pub fn at(&self, location_index: usize) -> Option<i64> {
        self.stock.get(location_index).copied().flatten()
    }
}

impl ProductSeed {
    pub fn new(title: &str, variants: Vec<VariantSeed>) -> Self {
        Self {
            title: title.to_owned(),
            variants,
        }
    }
}

/// A generated catalog: `products` products of `variants_per_product` variants each, SKUs
/// `{sku_prefix}-{product:04}-{variant:02}`, every variant stocked with `quantity` at each of
/// `locations` locations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CatalogSpec {
    pub products: usize,
    pub variants_per_product: usize,
    pub locations: usize,
    pub quantity: i64,
    pub sku_prefix: String,
}

impl Default for CatalogSpec {
    fn default() -> Self {
        Self {
            products: 10,
            variants_per_product: 3,
            locations: 1,
            quantity: 10,
            sku_prefix: "SKU".to_owned(),
        }
    }
}

impl CatalogSpec {
    /// The seeds of the generated catalog.
    pub fn build(&self) -> Vec<ProductSeed> {
        let stock = vec![self.quantity; self.locations.max(1)];
        (1..=self.products)
            .map(|p| {
                let variants = (1..=self.variants_per_product.max(1))
                    .map(|v| {
                        let seed = VariantSeed::new(&format!("{}-{p:04}-{v:02}", self.sku_prefix))
                            .stock(&stock);
                        if self.variants_per_product <= 1 {
                            seed
                        } else {
                            seed.titled(&format!("Option {v}"))
                        }
                    })
                    .collect();
                ProductSeed::new(&format!("Product {p}"), variants)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_the_requested_catalog() {
        let spec = CatalogSpec {
            products: 100,
            variants_per_product: 10,
            locations: 2,
            quantity: 5,
            sku_prefix: "DEMO".into(),
        };
        let seeds = spec.build();
        assert_eq!(seeds.len(), 100);
        assert_eq!(seeds.iter().map(|p| p.variants.len()).sum::<usize>(), 1000);
        assert_eq!(seeds[0].variants[0].sku.as_deref(), Some("DEMO-0001-01"));
        assert_eq!(seeds[0].variants[0].at(1), Some(5));
    }
}
