//! A channel's connection settings, parsed once: where the channel is, how to authenticate, how
//! its locations map to ours. Secrets are wrapped so that `Debug` never shows them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The channel kinds stockhub can connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Shopify,
    #[serde(rename = "woocommerce")]
    WooCommerce,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shopify => "shopify",
            Self::WooCommerce => "woocommerce",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "shopify" => Some(Self::Shopify),
            "woocommerce" => Some(Self::WooCommerce),
            _ => None,
        }
    }
}

/// A secret value: readable by code that needs it, never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How to reach and authenticate to one channel.
#[derive(Debug, Clone)]
pub struct ChannelConnection {
    pub code: String,
    pub kind: Kind,
    /// The store's base URL, e.g. `https://shop.myshopify.com` or a simulator's address.
    pub base_url: String,
    /// Shopify: the Admin API access token. WooCommerce: the consumer key.
    pub access_token: Secret,
    /// WooCommerce: the consumer secret.
    pub consumer_secret: Secret,
    /// The secret webhooks are signed with.
    pub webhook_secret: Secret,
    /// Shopify: the Admin API version, e.g. `2026-01`.
    pub api_version: String,
    /// Shopify: the channel's locations that stockhub stocks (e.g. `gid://shopify/Location/1`).
    /// Empty for channels without locations (WooCommerce).
    pub locations: Vec<String>,
    /// How long one call to the channel may take.
    pub request_timeout: Duration,
    /// Counts every request the connector sends to the channel.
    pub calls: CallCounter,
}

/// A count of the requests sent to one channel, shared by whoever holds a clone: the connector
/// adds one per request it sends, whatever it is for (pushes, reads, discovery).
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<AtomicU64>);

impl CallCounter {
    pub fn add_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
