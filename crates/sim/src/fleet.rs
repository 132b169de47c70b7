//! Several stores at once from one description, as the CLI and the demo start them: any number
//! of fake Shopify and WooCommerce stores, each on its own port with its own catalog.

use serde::{Deserialize, Serialize};

use crate::seed::CatalogSpec;
use crate::shopify::{ShopifyConfig, ShopifySim};
use crate::woocommerce::{WooConfig, WooSim};
use crate::SimError;

/// The stores to start. A store whose config lists no products gets `catalog`, if given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FleetSpec {
    pub catalog: Option<CatalogSpec>,
    pub shopify: Vec<ShopifyConfig>,
    pub woocommerce: Vec<WooConfig>,
}

/// Running stores.
#[derive(Clone, Default)]
pub struct Fleet {
    pub shopify: Vec<ShopifySim>,
    pub woocommerce: Vec<WooSim>,
}

/// One line of a fleet's description: what runs where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreAddress {
    pub kind: String,
    pub base_url: String,
    pub control_url: String,
}

impl Fleet {
    /// Starts every store of `spec`; stops those already started if one fails.
    pub async fn start(spec: FleetSpec) -> Result<Self, SimError> {
        let mut fleet = Self::default();
        let products = spec.catalog.as_ref().map(CatalogSpec::build);
        for mut config in spec.shopify {
            if config.products.is_empty() {
                config.products = products.clone().unwrap_or_default();
            }
            match ShopifySim::start(config).await {
                Ok(store) => fleet.shopify.push(store),
                Err(error) => return Err(fleet.abandon(error).await),
            }
        }
        for mut config in spec.woocommerce {
            if config.products.is_empty() {
                config.products = products.clone().unwrap_or_default();
            }
            match WooSim::start(config).await {
                Ok(store) => fleet.woocommerce.push(store),
                Err(error) => return Err(fleet.abandon(error).await),
            }
        }
        Ok(fleet)
    }

    async fn abandon(&self, error: SimError) -> SimError {
        self.shutdown().await;
        error
    }

    /// Where each store runs.
    pub fn addresses(&self) -> Vec<StoreAddress> {
        let address = |kind: &str, base: &str| StoreAddress {
            kind: kind.to_owned(),
            base_url: base.to_owned(),
            control_url: format!("{base}/_sim"),
        };
        let shopify = self
            .shopify
            .iter()
            .map(|s| address("shopify", s.base_url()));
        let woo = self
            .woocommerce
            .iter()
            .map(|s| address("woocommerce", s.base_url()));
        shopify.chain(woo).collect()
    }

    pub async fn shutdown(&self) {
        for store in &self.shopify {
            store.shutdown().await;
        }
        for store in &self.woocommerce {
            store.shutdown().await;
        }
    }
}
