//! WooCommerce REST v3 JSON as this connector reads it: only the fields it uses, each read
//! leniently where WooCommerce, its extensions or PHP's JSON encoding are known to vary — ids and
//! quantities sent as strings, `null` where a value is empty, meta values of any JSON type,
//! `manage_stock` as `true`, `false` or (variations) `"parent"`.

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use serde_json::Value;

/// An order (`GET orders/{id}`, and the body of `order.*` webhooks).
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    #[serde(deserialize_with = "id")]
    pub id: u64,
    #[serde(default, deserialize_with = "text")]
    pub status: String,
    #[serde(default, deserialize_with = "opt_text")]
    pub date_created_gmt: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub date_modified_gmt: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub line_items: Vec<LineItem>,
    /// `{id, reason, total}` only: refunded quantities must be fetched.
    #[serde(default, deserialize_with = "list")]
    pub refunds: Vec<RefundRef>,
}

/// A line item of an order or of a refund (a refund's items are new items with a negative
/// quantity and a `_refunded_item_id` meta pointing at the order's item).
#[derive(Debug, Clone, Deserialize)]
pub struct LineItem {
    #[serde(deserialize_with = "id")]
    pub id: u64,
    #[serde(default, deserialize_with = "id_or_zero")]
    pub product_id: u64,
    #[serde(default, deserialize_with = "id_or_zero")]
    pub variation_id: u64,
    #[serde(default, deserialize_with = "int_or_zero")]
    pub quantity: i64,
    #[serde(default, deserialize_with = "opt_text")]
    pub sku: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub meta_data: Vec<Meta>,
}

impl LineItem {
    /// The first meta value under `key`, read as a whole number.
    pub fn meta_int(&self, key: &str) -> Option<i64> {
        self.meta_data
            .iter()
            .find(|m| m.key == key)
            .and_then(|m| int(&m.value))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Meta {
    #[serde(default, deserialize_with = "text")]
    pub key: String,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RefundRef {
    #[serde(deserialize_with = "id")]
    pub id: u64,
}

/// A refund (`GET orders/{id}/refunds`).
#[derive(Debug, Clone, Deserialize)]
pub struct Refund {
    #[serde(deserialize_with = "id")]
    pub id: u64,
    #[serde(default, deserialize_with = "opt_text")]
    pub date_created_gmt: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub line_items: Vec<LineItem>,
}

/// A product (`GET products`) or a variation (`GET products/{id}/variations`).
#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    #[serde(deserialize_with = "id")]
    pub id: u64,
    /// `simple`, `grouped`, `external`, `variable` (extensions add more); absent on variations.
    #[serde(rename = "type", default, deserialize_with = "text")]
    pub kind: String,
    #[serde(default, deserialize_with = "opt_text")]
    pub sku: Option<String>,
    #[serde(default)]
    pub manage_stock: Value,
    #[serde(default, deserialize_with = "opt_int")]
    pub stock_quantity: Option<i64>,
    /// Variation ids of a variable product.
    #[serde(default, deserialize_with = "list")]
    pub variations: Vec<Value>,
}

/// What a read of quantities asks each product or variation for (WordPress's `_fields`): all
/// that `Product::own_quantity` needs. The store then renders and sends only these; one that
/// ignores `_fields` (WordPress before 4.9.8) sends whole resources, which read the same.
pub const QUANTITY_FIELDS: &str = "id,manage_stock,stock_quantity";

impl Product {
    /// Whether this product or variation manages its own stock (a variation's `"parent"` means
    /// its parent's quantity is shown, which is not a quantity of this listing).
    pub fn manages_own_stock(&self) -> bool {
        match &self.manage_stock {
            Value::Bool(b) => *b,
            Value::String(s) => matches!(s.as_str(), "true" | "1" | "yes"),
            Value::Number(n) => n.as_u64() == Some(1),
            _ => false,
        }
    }

    /// The quantity this listing holds, when it manages its own stock.
    pub fn own_quantity(&self) -> Option<i64> {
        self.manages_own_stock()
            .then_some(self.stock_quantity)
            .flatten()
    }
}

/// One element of a batch answer's `update` list: the full resource, or `{id, error}`.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchItem {
    #[serde(default, deserialize_with = "opt_id")]
    pub id: Option<u64>,
    #[serde(default)]
    pub error: Option<ApiError>,
    #[serde(default, deserialize_with = "opt_int")]
    pub stock_quantity: Option<i64>,
}

/// WooCommerce's error shape: `{"code", "message", "data": {"status"}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiError {
    #[serde(default, deserialize_with = "text")]
    pub code: String,
    #[serde(default, deserialize_with = "text")]
    pub message: String,
    #[serde(default)]
    pub data: Value,
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        self.data
            .get("status")
            .and_then(int)
            .and_then(|s| u16::try_from(s).ok())
    }
}

/// A whole number from a JSON number (integral floats included) or a numeric string.
pub fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| whole(n.as_f64()?)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| whole(s.parse::<f64>().ok()?))
        }
        _ => None,
    }
}

/// An id: a non-negative whole number, up to `u64::MAX`.
pub fn uint(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| int(value).and_then(|i| u64::try_from(i).ok())),
        Value::String(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .or_else(|| int(value).and_then(|i| u64::try_from(i).ok())),
        _ => None,
    }
}

/// Fractional quantities (some extensions allow them) round up, so that no unit goes unclaimed.
fn whole(f: f64) -> Option<i64> {
    (f.is_finite() && f.abs() < 9.0e15).then(|| f.ceil() as i64)
}

fn id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Value::deserialize(d)?;
    uint(&v).ok_or_else(|| D::Error::custom(format!("expected an id, found {v}")))
}

fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(uint(&Value::deserialize(d)?))
}

fn id_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(opt_id(d)?.unwrap_or(0))
}

fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(int(&Value::deserialize(d)?))
}

fn int_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(opt_int(d)?.unwrap_or(0))
}

fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_text(d)?.unwrap_or_default())
}

/// A list, where PHP may send `null`, `false` or an empty object for an empty one.
fn list<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .map(|v| serde_json::from_value(v).map_err(D::Error::custom))
            .collect(),
        Value::Object(map) if map.is_empty() => Ok(Vec::new()),
        Value::Null | Value::Bool(false) => Ok(Vec::new()),
        other => Err(D::Error::custom(format!("expected a list, found {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_read_leniently() {
        assert_eq!(int(&json!(3)), Some(3));
        assert_eq!(int(&json!("-1")), Some(-1));
        assert_eq!(int(&json!(2.0)), Some(2));
        assert_eq!(int(&json!("1.5")), Some(2));
        assert_eq!(int(&json!(null)), None);
        assert_eq!(uint(&json!(18_446_744_073_709_551_615u64)), Some(u64::MAX));
        assert_eq!(uint(&json!("311")), Some(311));
        assert_eq!(uint(&json!(-3)), None);
    }

    #[test]
    fn manage_stock_variants() {
        let p = |m: Value| Product {
            id: 1,
            kind: String::new(),
            sku: None,
            manage_stock: m,
            stock_quantity: Some(4),
            variations: vec![],
        };
        assert_eq!(p(json!(true)).own_quantity(), Some(4));
        assert_eq!(p(json!(false)).own_quantity(), None);
        assert_eq!(p(json!("parent")).own_quantity(), None);
    }

    #[test]
    fn php_empty_lists() {
        let o: Order =
            serde_json::from_value(json!({"id": "5", "line_items": {}, "refunds": null})).unwrap();
        assert_eq!(o.id, 5);
        assert!(o.line_items.is_empty() && o.refunds.is_empty());
    }
}
