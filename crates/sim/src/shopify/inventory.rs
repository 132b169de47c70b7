//! `inventorySetQuantities` (API_FACTS §1.1, §1.2, §9): the input as the API version reads it,
//! and its effect on the store.
//!
//! - `name` is `available` or `on_hand`; `reason` one of the documented reasons; at most 250
//!   quantities (Shopify's input-array cap, a top-level `MAX_INPUT_SIZE_EXCEEDED` error).
//! - Compare-and-set by version: from 2026-01 a `changeFromQuantity` key (even `null`) overrides
//!   the legacy `compareQuantity`/`ignoreCompareQuantity`; an integer is the expected current
//!   quantity (`CHANGE_FROM_QUANTITY_STALE` when it differs), `null` skips the check. Without
//!   the key the legacy rules apply (before 2026-01 always): `ignoreCompareQuantity: true` skips,
//!   `compareQuantity` compares (`COMPARE_QUANTITY_STALE`), neither is
//!   `COMPARE_QUANTITY_REQUIRED`. From 2026-04 `changeFromQuantity` must be given on every
//!   quantity and the legacy fields are gone.
//! - Decision where Shopify is silent (§11): a call is all-or-nothing. Any user error on any
//!   quantity changes nothing, returns `inventoryAdjustmentGroup: null` and every user error
//!   found, each with `field` `["input", "quantities", "<index>", "<input field>"]`.
//! - A successful call reports, for every quantity given, an `available` and an `on_hand`
//!   change (delta may be 0).

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::model::State;
use crate::clock;
use crate::display::Cause;
use crate::graphql::GqlError;

/// Largest input array Shopify accepts.
pub(crate) const MAX_INPUT_ITEMS: usize = 250;
const MAX_QUANTITY: i64 = 1_000_000_000;
const REASONS: &[&str] = &[
    "correction",
    "cycle_count_available",
    "damaged",
    "movement_canceled",
    "movement_created",
    "movement_received",
    "movement_updated",
    "other",
    "promotion",
    "quality_control",
    "received",
    "reservation_created",
    "reservation_deleted",
    "reservation_updated",
    "restock",
    "safety_stock",
    "shrinkage",
];

/// An API version such as `2026-01`; `unstable` is later than any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ApiVersion(u32, u32);

impl ApiVersion {
    pub(crate) fn parse(text: &str) -> Self {
        let mut parts = text.split('-');
        let year = parts.next().and_then(|y| y.parse().ok());
        let month = parts.next().and_then(|m| m.parse().ok());
        match (year, month) {
            (Some(year), Some(month)) => Self(year, month),
            _ => Self(9999, 12),
        }
    }

    fn at_least(self, year: u32, month: u32) -> bool {
        self >= Self(year, month)
    }
}

/// A user error of the mutation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserError {
    pub field: Option<Vec<String>>,
    pub message: String,
    pub code: &'static str,
}

impl UserError {
    pub(crate) fn new(field: Option<Vec<String>>, code: &'static str, message: &str) -> Self {
        Self {
            field,
            message: message.to_owned(),
            code,
        }
    }
}

/// One row of `InventoryAdjustmentGroup.changes`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub name: &'static str,
    pub delta: i64,
    pub quantity_after: i64,
    pub item_id: u64,
    pub location_id: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AdjustmentGroup {
    pub id: u64,
    pub created_ms: i64,
    pub reason: String,
    pub reference_document_uri: Option<String>,
    pub changes: Vec<Change>,
}

/// What one `inventorySetQuantities` call returned (kept for idempotent replays).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SetOutcome {
    pub group: Option<AdjustmentGroup>,
    pub user_errors: Vec<UserError>,
}

impl SetOutcome {
    pub(crate) fn failed(error: UserError) -> Self {
        Self {
            group: None,
            user_errors: vec![error],
        }
    }
}

/// The compare-and-set check asked for one quantity.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Check {
    Skip,
    ChangeFrom(i64),
    Compare(i64),
    CompareRequired,
}

#[derive(Debug, Clone, PartialEq)]
struct QuantityInput {
    item: String,
    location: String,
    quantity: i64,
    check: Check,
}

/// The coerced `input` argument.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SetInput {
    name: String,
    reason: String,
    reference_document_uri: Option<String>,
    quantities: Vec<QuantityInput>,
}

/// Builds coercion errors worded as graphql-ruby words them, for a variable or a literal.
struct Coercer {
    variable: Option<String>,
}

impl Coercer {
    fn error(&self, path: &[Value], input_type: &str, field: &str, explanation: &str) -> GqlError {
        let mut error = match &self.variable {
            Some(variable) => {
                let dotted: Vec<String> = path.iter().map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned)).collect();
                let mut e = GqlError::new(format!(
                    "Variable ${variable} of type InventorySetQuantitiesInput! was provided invalid value for {} ({explanation})",
                    dotted.join(".")
                ));
                e.extensions = Some(json!({"value": null, "problems": [{"path": path, "explanation": explanation}]}));
                e
            }
            None => GqlError::new(format!("Argument '{field}' on InputObject '{input_type}' has an invalid value. {explanation}")),
        };
        error.path = Some(vec![json!("inventorySetQuantities"), json!("input")]);
        error
    }
}

fn int_field(object: &Map<String, Value>, key: &str) -> Result<Option<i64>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .filter(|n| i32::try_from(*n).is_ok())
            .map(Some)
            .ok_or_else(|| format!("Could not coerce value {value} to Int")),
    }
}

fn id_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads the `input` argument as `version` does; `variable` is the name of the variable it came
/// from, if it came from one.
pub(crate) fn coerce(
    input: &Value,
    version: &str,
    variable: Option<String>,
) -> Result<SetInput, GqlError> {
    let version = ApiVersion::parse(version);
    let coercer = Coercer { variable };
    let top = "InventorySetQuantitiesInput";
    let object = input
        .as_object()
        .ok_or_else(|| coercer.error(&[], top, "input", "Expected value to be an object"))?;
    let mut allowed = vec!["name", "reason", "referenceDocumentUri", "quantities"];
    if !version.at_least(2026, 4) {
        allowed.push("ignoreCompareQuantity");
    }
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(coercer.error(
                &[json!(key)],
                top,
                key,
                &format!("Field is not defined on {top}"),
            ));
        }
    }
    let string = |key: &str| match object.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(coercer.error(&[json!(key)], top, key, "Expected value to not be null")),
    };
    let name = string("name")?;
    let reason = string("reason")?;
    let reference_document_uri = object
        .get("referenceDocumentUri")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let ignore_compare = object
        .get("ignoreCompareQuantity")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let items = match object.get("quantities") {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => {
            return Err(coercer.error(
                &[json!("quantities")],
                top,
                "quantities",
                "Expected value to not be null",
            ))
        }
    };
    if items.len() > MAX_INPUT_ITEMS {
        return Err(too_many_items(items.len()));
    }
    let quantities = items
        .iter()
        .enumerate()
        .map(|(index, item)| coerce_quantity(item, index, version, ignore_compare, &coercer))
        .collect::<Result<_, _>>()?;
    Ok(SetInput {
        name,
        reason,
        reference_document_uri,
        quantities,
    })
}

fn too_many_items(count: usize) -> GqlError {
    let mut error = GqlError::new(format!(
        "The input array size of {count} is greater than the maximum allowed of {MAX_INPUT_ITEMS}."
    ));
    error.path = Some(vec![
        json!("inventorySetQuantities"),
        json!("input"),
        json!("quantities"),
    ]);
    error.extensions = Some(json!({"code": "MAX_INPUT_SIZE_EXCEEDED"}));
    error
}

const NOT_NULL: &str = "Expected value to not be null";

/// The fields of `InventoryQuantityInput` in an API version.
fn quantity_fields(version: ApiVersion) -> Vec<&'static str> {
    let mut fields = vec!["inventoryItemId", "locationId", "quantity"];
    if version.at_least(2026, 1) {
        fields.push("changeFromQuantity");
    }
    if !version.at_least(2026, 4) {
        fields.push("compareQuantity");
    }
    fields
}

fn coerce_quantity(
    item: &Value,
    index: usize,
    version: ApiVersion,
    ignore_compare: bool,
    coercer: &Coercer,
) -> Result<QuantityInput, GqlError> {
    let ty = "InventoryQuantityInput";
    let fail = |leaf: &str, explanation: &str| {
        let path = [json!("quantities"), json!(index), json!(leaf)];
        coercer.error(&path, ty, leaf, explanation)
    };
    let object = item
        .as_object()
        .ok_or_else(|| fail("", "Expected value to be an object"))?;
    let allowed = quantity_fields(version);
    if let Some(key) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(fail(key, &format!("Field is not defined on {ty}")));
    }
    let required_id = |key: &str| id_field(object, key).ok_or_else(|| fail(key, NOT_NULL));
    let int = |key: &str| int_field(object, key).map_err(|e| fail(key, &e));
    let item_id = required_id("inventoryItemId")?;
    let location = required_id("locationId")?;
    let quantity = int("quantity")?.ok_or_else(|| fail("quantity", NOT_NULL))?;
    let (change_from, compare) = (int("changeFromQuantity")?, int("compareQuantity")?);
    let check = if object.contains_key("changeFromQuantity") {
        change_from.map_or(Check::Skip, Check::ChangeFrom)
    } else if version.at_least(2026, 4) {
        return Err(fail(
            "changeFromQuantity",
            "Expected value to be given (null to skip the check)",
        ));
    } else if ignore_compare {
        Check::Skip
    } else {
        compare.map_or(Check::CompareRequired, Check::Compare)
    };
    Ok(QuantityInput {
        item: item_id,
        location,
        quantity,
        check,
    })
}

/// The inventory items some inputs name (valid ids only, each once, ascending).
pub(crate) fn item_ids<'a>(inputs: impl IntoIterator<Item = &'a SetInput>) -> Vec<u64> {
    let mut ids: Vec<u64> = inputs
        .into_iter()
        .flat_map(|input| &input.quantities)
        .filter_map(|q| parse_gid(&q.item, "InventoryItem"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The numeric id of `gid://shopify/<kind>/<id>`.
pub(crate) fn parse_gid(gid: &str, kind: &str) -> Option<u64> {
    let rest = gid
        .strip_prefix("gid://shopify/")?
        .strip_prefix(kind)?
        .strip_prefix('/')?;
    rest.split('?').next()?.parse().ok()
}

fn valid_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        && !rest.is_empty()
}

/// A validated quantity: the variant, the location, the new value.
struct Target {
    variant_id: u64,
    item_id: u64,
    location_id: u64,
    quantity: i64,
}

/// Runs the mutation against the store: all quantities or none.
pub(crate) fn apply(state: &mut State, input: &SetInput) -> SetOutcome {
    let mut errors = Vec::new();
    let input_field = |leaf: &str| Some(vec!["input".to_owned(), leaf.to_owned()]);
    if !matches!(input.name.as_str(), "available" | "on_hand") {
        errors.push(UserError::new(
            input_field("name"),
            "INVALID_NAME",
            "The quantity name must be either 'available' or 'on_hand'.",
        ));
    }
    if !REASONS.contains(&input.reason.as_str()) {
        errors.push(UserError::new(
            input_field("reason"),
            "INVALID_REASON",
            "The specified reason is invalid.",
        ));
    }
    if input
        .reference_document_uri
        .as_deref()
        .is_some_and(|u| !valid_uri(u))
    {
        errors.push(UserError::new(
            input_field("referenceDocumentUri"),
            "INVALID_REFERENCE_DOCUMENT",
            "The reference document URI is invalid.",
        ));
    }
    let mut seen = HashSet::new();
    let targets: Vec<Target> = input
        .quantities
        .iter()
        .enumerate()
        .filter_map(|(index, q)| {
            check_quantity(state, &input.name, index, q, &mut seen, &mut errors)
        })
        .collect();
    if !errors.is_empty() {
        return SetOutcome {
            group: None,
            user_errors: errors,
        };
    }
    let changes = targets
        .iter()
        .flat_map(|t| set_one(state, &input.name, t))
        .collect();
    let group = AdjustmentGroup {
        id: state.ids.group.take(),
        created_ms: clock::now_unix_ms(),
        reason: input.reason.clone(),
        reference_document_uri: input.reference_document_uri.clone(),
        changes,
    };
    SetOutcome {
        group: Some(group),
        user_errors: Vec::new(),
    }
}

fn check_quantity(
    state: &State,
    name: &str,
    index: usize,
    q: &QuantityInput,
    seen: &mut HashSet<(u64, u64)>,
    errors: &mut Vec<UserError>,
) -> Option<Target> {
    let field = |leaf: &str| {
        Some(vec![
            "input".to_owned(),
            "quantities".to_owned(),
            index.to_string(),
            leaf.to_owned(),
        ])
    };
    let before = errors.len();
    let variant = parse_gid(&q.item, "InventoryItem").and_then(|id| state.variant_by_item(id));
    let location_id =
        parse_gid(&q.location, "Location").filter(|id| state.locations.contains_key(id));
    if variant.is_none() {
        errors.push(UserError::new(
            field("inventoryItemId"),
            "INVALID_INVENTORY_ITEM",
            "The specified inventory item could not be found.",
        ));
    }
    if location_id.is_none() {
        errors.push(UserError::new(
            field("locationId"),
            "INVALID_LOCATION",
            "The specified location could not be found.",
        ));
    }
    if let Some((code, message)) = quantity_error(q.quantity) {
        errors.push(UserError::new(field("quantity"), code, message));
    }
    let (Some(variant), Some(location_id)) = (variant, location_id) else {
        return None;
    };
    if !seen.insert((variant.item_id, location_id)) {
        errors.push(UserError::new(
            field("inventoryItemId"),
            "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
            "The combination of inventoryItemId and locationId must be unique.",
        ));
    }
    let Some(level) = variant.levels.get(&location_id) else {
        errors.push(UserError::new(
            field("locationId"),
            "ITEM_NOT_STOCKED_AT_LOCATION",
            "The specified inventory item is not stocked at the location.",
        ));
        return None;
    };
    let current = level.quantity(name);
    if let Some((leaf, code, message)) = check_error(q.check, current) {
        errors.push(UserError::new(field(leaf), code, message));
    }
    (errors.len() == before).then_some(Target {
        variant_id: variant.id,
        item_id: variant.item_id,
        location_id,
        quantity: q.quantity,
    })
}

/// The user error of a quantity out of range.
fn quantity_error(quantity: i64) -> Option<(&'static str, &'static str)> {
    if quantity < 0 {
        return Some((
            "INVALID_QUANTITY_NEGATIVE",
            "The quantity can't be negative.",
        ));
    }
    (quantity > MAX_QUANTITY).then_some((
        "INVALID_QUANTITY_TOO_HIGH",
        "The quantity can't be higher than 1,000,000,000.",
    ))
}

/// The user error of a failed compare-and-set: input field, code, message.
fn check_error(check: Check, current: i64) -> Option<(&'static str, &'static str, &'static str)> {
    match check {
        Check::ChangeFrom(expected) if expected != current => Some((
            "changeFromQuantity",
            "CHANGE_FROM_QUANTITY_STALE",
            "The changeFromQuantity does not match the persisted value.",
        )),
        Check::Compare(expected) if expected != current => Some((
            "compareQuantity",
            "COMPARE_QUANTITY_STALE",
            "The compareQuantity value does not match persisted value.",
        )),
        Check::CompareRequired => Some((
            "compareQuantity",
            "COMPARE_QUANTITY_REQUIRED",
            "The compareQuantity argument must be given to each quantity or ignored using ignoreCompareQuantity.",
        )),
        _ => None,
    }
}

fn set_one(state: &mut State, name: &str, target: &Target) -> [Change; 2] {
    let level = state.variants[&target.variant_id].levels[&target.location_id];
    let (available, delta) = match name {
        "on_hand" => (
            target.quantity - level.committed,
            target.quantity - level.on_hand(),
        ),
        _ => (target.quantity, target.quantity - level.available),
    };
    state.change_level(
        target.variant_id,
        target.location_id,
        available,
        0,
        Cause::Push,
    );
    let change = |name, quantity_after| Change {
        name,
        delta,
        quantity_after,
        item_id: target.item_id,
        location_id: target.location_id,
    };
    [
        change("available", available),
        change("on_hand", level.on_hand() + delta),
    ]
}

#[cfg(test)]
mod tests;
