//! Tests of `inventorySetQuantities` against a seeded store, without HTTP.

use serde_json::json;

use super::*;
use crate::seed::{ProductSeed, VariantSeed};

fn store() -> State {
    let mut state = State::new("t.myshopify.com", 0, 1000, 7);
    let seeds = vec![ProductSeed::new(
        "Shirt",
        vec![
            VariantSeed::new("A").stock(&[5, 3]),
            VariantSeed::new("B").stock(&[2]),
        ],
    )];
    state.seed(&["One".into(), "Two".into()], &seeds);
    state
}

fn gids(state: &State, sku: &str, location_index: usize) -> (String, String) {
    let variant = state
        .variants
        .values()
        .find(|v| v.sku.as_deref() == Some(sku))
        .unwrap();
    let location = state.locations.keys().nth(location_index).unwrap();
    (
        format!("gid://shopify/InventoryItem/{}", variant.item_id),
        format!("gid://shopify/Location/{location}"),
    )
}

fn available(state: &State, sku: &str, location_index: usize) -> Option<i64> {
    let variant = state
        .variants
        .values()
        .find(|v| v.sku.as_deref() == Some(sku))
        .unwrap();
    let location = state.locations.keys().nth(location_index).unwrap();
    variant.levels.get(location).map(|l| l.available)
}

fn input(quantities: serde_json::Value) -> serde_json::Value {
    json!({"name": "available", "reason": "correction", "referenceDocumentUri": "gid://stockhub/Push/1", "quantities": quantities})
}

fn codes(outcome: &SetOutcome) -> Vec<&str> {
    outcome.user_errors.iter().map(|e| e.code).collect()
}

#[test]
fn sets_absolute_values_and_reports_changes() {
    let mut state = store();
    let (item, location) = gids(&state, "A", 0);
    let set = coerce(&input(json!([{"inventoryItemId": item, "locationId": location, "quantity": 12, "changeFromQuantity": 5}])), "2026-01", None).unwrap();
    let outcome = apply(&mut state, &set);
    assert!(outcome.user_errors.is_empty());
    let group = outcome.group.unwrap();
    assert_eq!(group.changes[0].name, "available");
    assert_eq!(
        (group.changes[0].delta, group.changes[0].quantity_after),
        (7, 12)
    );
    assert_eq!(
        (group.changes[1].name, group.changes[1].quantity_after),
        ("on_hand", 12)
    );
    assert_eq!(available(&state, "A", 0), Some(12));
    let log = state.display.since(0);
    let last = log.last().unwrap();
    assert_eq!(
        (last.before, last.after, last.cause),
        (Some(5), 12, crate::display::Cause::Push)
    );
}

#[test]
fn stale_change_from_changes_nothing_in_the_whole_call() {
    let mut state = store();
    let (a, one) = gids(&state, "A", 0);
    let (b, _) = gids(&state, "B", 0);
    let set = coerce(
        &input(json!([
            {"inventoryItemId": b, "locationId": one, "quantity": 9, "changeFromQuantity": 2},
            {"inventoryItemId": a, "locationId": one, "quantity": 1, "changeFromQuantity": 4}
        ])),
        "2026-01",
        None,
    )
    .unwrap();
    let outcome = apply(&mut state, &set);
    assert!(outcome.group.is_none());
    assert_eq!(codes(&outcome), ["CHANGE_FROM_QUANTITY_STALE"]);
    assert_eq!(
        outcome.user_errors[0].field.as_ref().unwrap(),
        &["input", "quantities", "1", "changeFromQuantity"]
    );
    assert_eq!(available(&state, "B", 0), Some(2), "all or nothing");
}

#[test]
fn null_change_from_skips_the_check_and_absent_falls_back_to_compare_rules() {
    let mut state = store();
    let (a, one) = gids(&state, "A", 0);
    let skip = coerce(&input(json!([{"inventoryItemId": a, "locationId": one, "quantity": 1, "changeFromQuantity": null}])), "2026-01", None).unwrap();
    assert!(apply(&mut state, &skip).group.is_some());
    let absent = coerce(
        &input(json!([{"inventoryItemId": a, "locationId": one, "quantity": 2}])),
        "2026-01",
        None,
    )
    .unwrap();
    assert_eq!(
        codes(&apply(&mut state, &absent)),
        ["COMPARE_QUANTITY_REQUIRED"]
    );
    let stale = coerce(
        &input(
            json!([{"inventoryItemId": a, "locationId": one, "quantity": 2, "compareQuantity": 7}]),
        ),
        "2025-10",
        None,
    )
    .unwrap();
    assert_eq!(
        codes(&apply(&mut state, &stale)),
        ["COMPARE_QUANTITY_STALE"]
    );
    let mut ignore = input(json!([{"inventoryItemId": a, "locationId": one, "quantity": 3}]));
    ignore["ignoreCompareQuantity"] = json!(true);
    assert!(
        apply(&mut state, &coerce(&ignore, "2025-10", None).unwrap())
            .group
            .is_some()
    );
    assert!(coerce(
        &input(json!([{"inventoryItemId": a, "locationId": one, "quantity": 2}])),
        "2026-04",
        None
    )
    .is_err());
    assert!(coerce(&ignore, "2026-04", Some("input".into())).is_err());
    assert!(coerce(&input(json!([{"inventoryItemId": a, "locationId": one, "quantity": 2, "changeFromQuantity": 3}])), "2025-10", None).is_err());
}

#[test]
fn reports_every_invalid_quantity() {
    let mut state = store();
    let (a, one) = gids(&state, "A", 0);
    let (b, two) = gids(&state, "B", 1);
    let set = coerce(&input(json!([
        {"inventoryItemId": "gid://shopify/InventoryItem/1", "locationId": one, "quantity": 1, "changeFromQuantity": null},
        {"inventoryItemId": a, "locationId": "gid://shopify/Location/1", "quantity": 1, "changeFromQuantity": null},
        {"inventoryItemId": b, "locationId": two, "quantity": 1, "changeFromQuantity": null},
        {"inventoryItemId": a, "locationId": one, "quantity": -1, "changeFromQuantity": null},
        {"inventoryItemId": a, "locationId": one, "quantity": 1_000_000_001, "changeFromQuantity": null}
    ])), "2026-01", None).unwrap();
    let outcome = apply(&mut state, &set);
    assert_eq!(
        codes(&outcome),
        [
            "INVALID_INVENTORY_ITEM",
            "INVALID_LOCATION",
            "ITEM_NOT_STOCKED_AT_LOCATION",
            "INVALID_QUANTITY_NEGATIVE",
            "INVALID_QUANTITY_TOO_HIGH",
            "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR"
        ]
    );
    let mut bad = input(json!([]));
    bad["name"] = json!("incoming");
    bad["reason"] = json!("because");
    bad["referenceDocumentUri"] = json!("no scheme");
    let outcome = apply(&mut state, &coerce(&bad, "2026-01", None).unwrap());
    assert_eq!(
        codes(&outcome),
        [
            "INVALID_NAME",
            "INVALID_REASON",
            "INVALID_REFERENCE_DOCUMENT"
        ]
    );
}

#[test]
fn caps_input_arrays_at_250_and_coerces_types() {
    let item = json!({"inventoryItemId": "x", "locationId": "y", "quantity": 1, "changeFromQuantity": null});
    let many = input(json!(vec![item.clone(); 251]));
    let error = coerce(&many, "2026-01", None).unwrap_err();
    assert_eq!(
        error.message,
        "The input array size of 251 is greater than the maximum allowed of 250."
    );
    assert_eq!(
        error.to_json()["extensions"]["code"],
        "MAX_INPUT_SIZE_EXCEEDED"
    );
    assert!(coerce(&input(json!(vec![item; 250])), "2026-01", None).is_ok());
    let error = coerce(
        &input(json!([{"inventoryItemId": "x", "locationId": "y", "quantity": "3"}])),
        "2026-01",
        Some("input".into()),
    )
    .unwrap_err();
    assert!(error.message.starts_with("Variable $input of type InventorySetQuantitiesInput! was provided invalid value for quantities.0.quantity"), "{}", error.message);
    assert!(coerce(
        &input(json!([{"inventoryItemId": "x", "locationId": "y", "quantity": 3_000_000_000_i64}])),
        "2026-01",
        None
    )
    .is_err());
    assert!(coerce(&json!({"name": "available"}), "2026-01", None).is_err());
}

#[test]
fn on_hand_sets_move_available_by_the_same_delta() {
    let mut state = store();
    let (a, one) = gids(&state, "A", 0);
    let mut set = input(
        json!([{"inventoryItemId": a, "locationId": one, "quantity": 8, "changeFromQuantity": 5}]),
    );
    set["name"] = json!("on_hand");
    let outcome = apply(&mut state, &coerce(&set, "2026-01", None).unwrap());
    assert_eq!(outcome.group.unwrap().changes[1].quantity_after, 8);
    assert_eq!(available(&state, "A", 0), Some(8));
}

#[test]
fn parses_gids_and_versions() {
    assert_eq!(parse_gid("gid://shopify/Location/42", "Location"), Some(42));
    assert_eq!(
        parse_gid(
            "gid://shopify/InventoryLevel/42?inventory_item_id=7",
            "InventoryLevel"
        ),
        Some(42)
    );
    assert_eq!(
        parse_gid("gid://shopify/Location/42", "InventoryItem"),
        None
    );
    assert_eq!(parse_gid("42", "Location"), None);
    assert!(ApiVersion::parse("unstable") > ApiVersion::parse("2026-04"));
    assert!(ApiVersion::parse("2026-01") < ApiVersion::parse("2026-04"));
}
