//! Shopify's wire types, as the REST resources (webhook payloads are the same resources) and the
//! Admin GraphQL answers write them. Only the fields stockhub reads are declared; everything else
//! is ignored here and kept in the raw payload.
//!
//! Ids are 64-bit and exceed 2^53 (the real example payloads' do): they are read as the exact
//! digits of the JSON integer, never through a double, and kept as strings ([`Id`]). An id
//! written as a floating-point number is refused rather than rounded.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A Shopify id, exactly as written: the digits of a JSON integer, or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IdVisitor)
    }
}

struct IdVisitor;

impl Visitor<'_> for IdVisitor {
    type Value = Id;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer id or a non-empty string id")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Id, E> {
        Ok(Id(value.to_string()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Id, E> {
        Ok(Id(value.to_string()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Id, E> {
        Err(E::custom(format!(
            "id {value} is written as a floating-point number and cannot be kept exactly"
        )))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Id, E> {
        let value = value.trim();
        if value.is_empty() {
            return Err(E::custom("empty id"));
        }
        Ok(Id(value.to_owned()))
    }
}

/// Reads `null` as the type's default (Shopify writes `null` for empty lists and flags).
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A REST Order: the payload of the `orders/*` topics and of `GET orders.json`.
#[derive(Debug, Deserialize)]
pub(crate) struct Order {
    pub id: Id,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub cancelled_at: Option<String>,
    #[serde(default)]
    pub financial_status: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub line_items: Vec<LineItem>,
    /// `None` when the payload left the field out (`include_fields`, `fields=`).
    #[serde(default)]
    pub fulfillments: Option<Vec<Fulfillment>>,
    #[serde(default, deserialize_with = "nullable")]
    pub refunds: Vec<Refund>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LineItem {
    pub id: Id,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub variant_id: Option<Id>,
    #[serde(default, deserialize_with = "nullable")]
    pub quantity: i64,
    /// The quantity after removals (refunds and order edits), REST 2024-01+.
    #[serde(default)]
    pub current_quantity: Option<i64>,
    #[serde(default)]
    pub fulfillable_quantity: Option<i64>,
    /// `null`, `fulfilled`, `partial` (or `not_eligible`).
    #[serde(default)]
    pub fulfillment_status: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Fulfillment {
    /// `pending`, `open`, `success`, `cancelled`, `error`, `failure`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub line_items: Vec<FulfillmentLine>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FulfillmentLine {
    /// The order's line item id.
    pub id: Id,
    /// Units of the line in this fulfilment.
    #[serde(default, deserialize_with = "nullable")]
    pub quantity: i64,
}

/// A REST Refund: the `refunds/create` payload and the entries of an order's `refunds`.
#[derive(Debug, Deserialize)]
pub(crate) struct Refund {
    pub id: Id,
    #[serde(default)]
    pub order_id: Option<Id>,
    /// Legacy flag for the whole refund, read only when a line has no `restock_type`.
    #[serde(default)]
    pub restock: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub refund_line_items: Vec<RefundLineItem>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RefundLineItem {
    pub line_item_id: Id,
    #[serde(default, deserialize_with = "nullable")]
    pub quantity: i64,
    /// `no_restock`, `cancel`, `return`, `legacy_restock`.
    #[serde(default)]
    pub restock_type: Option<String>,
}

/// A REST InventoryLevel: the `inventory_levels/update` payload and the entries of
/// `GET inventory_levels.json`.
#[derive(Debug, Deserialize)]
pub(crate) struct InventoryLevel {
    #[serde(default)]
    pub inventory_item_id: Option<Id>,
    #[serde(default)]
    pub location_id: Option<Id>,
    /// `null` for an item whose quantity is not tracked.
    #[serde(default)]
    pub available: Option<i64>,
    /// When the level last changed (RFC 3339 with the shop's offset).
    #[serde(default)]
    pub updated_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct InventoryLevels {
    #[serde(default, deserialize_with = "nullable")]
    pub inventory_levels: Vec<InventoryLevel>,
}

// ---------------------------------------------------------------------------------------------
// Admin GraphQL

/// `extensions.cost` of every GraphQL answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Cost {
    #[serde(default)]
    pub requested_query_cost: Option<f64>,
    #[serde(default)]
    pub throttle_status: Option<ThrottleStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

/// The parts of a GraphQL answer read before its `data`.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    #[serde(default)]
    pub data: Option<Value>,
    /// An array of errors on a 200; Shopify writes an object or a string on other statuses.
    #[serde(default)]
    pub errors: Option<Value>,
    #[serde(default)]
    pub extensions: Option<Extensions>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Extensions {
    #[serde(default)]
    pub cost: Option<Cost>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageInfo {
    #[serde(default)]
    pub has_next_page: bool,
    #[serde(default)]
    pub end_cursor: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Node {
    pub id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VariantsData {
    pub product_variants: VariantsConnection,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VariantsConnection {
    pub page_info: PageInfo,
    #[serde(default, deserialize_with = "nullable")]
    pub nodes: Vec<VariantNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VariantNode {
    pub id: String,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub product: Option<Node>,
    #[serde(default)]
    pub inventory_item: Option<ItemNode>,
}

/// An inventory item with its levels at our locations under the aliases `l0`, `l1`, …
#[derive(Debug, Deserialize)]
pub(crate) struct ItemNode {
    pub id: String,
    #[serde(default)]
    pub tracked: Option<bool>,
    #[serde(flatten)]
    pub aliased: Map<String, Value>,
}

/// An `InventoryLevel { quantities(names: ["available"]) { name quantity } }`.
#[derive(Debug, Deserialize)]
pub(crate) struct LevelNode {
    #[serde(default, deserialize_with = "nullable")]
    pub quantities: Vec<QuantityNode>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct QuantityNode {
    pub name: String,
    #[serde(default)]
    pub quantity: Option<i64>,
}

impl LevelNode {
    pub(crate) fn available(&self) -> Option<i64> {
        self.quantities
            .iter()
            .find(|q| q.name == "available")
            .and_then(|q| q.quantity)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SetData {
    #[serde(default)]
    pub inventory_set_quantities: Option<SetPayload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SetPayload {
    #[serde(default)]
    pub inventory_adjustment_group: Option<AdjustmentGroup>,
    #[serde(default, deserialize_with = "nullable")]
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AdjustmentGroup {
    #[serde(default, deserialize_with = "nullable")]
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Change {
    pub name: String,
    #[serde(default)]
    pub quantity_after_change: Option<i64>,
    #[serde(default)]
    pub item: Option<Node>,
    #[serde(default)]
    pub location: Option<Node>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct UserError {
    /// The path of the input field at fault, e.g. `["input", "quantities", "3",
    /// "changeFromQuantity"]`; Shopify writes list indices as strings.
    #[serde(default, deserialize_with = "nullable")]
    pub field: Vec<Value>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
}

impl UserError {
    /// The index into `quantities` this error names, if it names one.
    pub(crate) fn quantity_index(&self) -> Option<usize> {
        let at = self
            .field
            .iter()
            .position(|f| f.as_str() == Some("quantities"))?;
        match self.field.get(at + 1)? {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            _ => None,
        }
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "{}: {}",
            self.code.as_deref().unwrap_or("USER_ERROR"),
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_every_digit() {
        let line: LineItem = serde_json::from_str(
            r#"{"id": 487817672276298560, "variant_id": null, "quantity": 1}"#,
        )
        .unwrap();
        assert_eq!(line.id, Id("487817672276298560".into()));
        assert_eq!(line.variant_id, None);
        let id: Id = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(id.0, "18446744073709551615");
        let id: Id = serde_json::from_str("\"820982911946154508\"").unwrap();
        assert_eq!(id.0, "820982911946154508");
        assert!(serde_json::from_str::<Id>("8.2098291194615e17").is_err());
    }

    #[test]
    fn nulls_read_as_empty() {
        let order: Order = serde_json::from_str(
            r#"{"id": 1, "line_items": null, "refunds": null, "fulfillments": null}"#,
        )
        .unwrap();
        assert!(order.line_items.is_empty() && order.refunds.is_empty());
        assert!(order.fulfillments.is_none());
    }

    #[test]
    fn user_error_indices() {
        let error: UserError = serde_json::from_str(
            r#"{"field": ["input", "quantities", "3", "changeFromQuantity"], "message": "m", "code": "CHANGE_FROM_QUANTITY_STALE"}"#,
        )
        .unwrap();
        assert_eq!(error.quantity_index(), Some(3));
        let numeric: UserError =
            serde_json::from_str(r#"{"field": ["input", "quantities", 7], "message": "m"}"#)
                .unwrap();
        assert_eq!(numeric.quantity_index(), Some(7));
        let input: UserError =
            serde_json::from_str(r#"{"field": ["input", "reason"], "message": "m"}"#).unwrap();
        assert_eq!(input.quantity_index(), None);
        let none: UserError = serde_json::from_str(r#"{"field": null, "message": "m"}"#).unwrap();
        assert_eq!(none.quantity_index(), None);
    }
}
