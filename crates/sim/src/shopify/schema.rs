//! The part of Shopify's Admin GraphQL schema the fake serves (API_FACTS §1.1, §1.5, §9):
//! `shop`, `location(s)`, `product(s)`, `productVariant(s)`, `inventoryItem(s)` with their
//! inventory levels and `quantities(names:)`, and the `inventorySetQuantities` mutation with the
//! `@idempotent(key:)` directive. Anything else is an `undefinedField` error, as on Shopify.

use crate::graphql::{FieldDef, FieldKind, OperationKind, Schema};

/// Arguments of every connection field.
const PAGING: &[&str] = &[
    "first", "after", "last", "before", "reverse", "query", "sortKey",
];
/// Cost of a mutation field (shopify.dev, "GraphQL Admin API rate limits").
pub(crate) const MUTATION_COST: u64 = 10;

pub(crate) struct AdminSchema;

fn scalar() -> Option<FieldDef> {
    Some(FieldDef {
        kind: FieldKind::Scalar,
        args: &[],
        required: &[],
        cost: None,
    })
}

fn object(of: &'static str) -> Option<FieldDef> {
    Some(FieldDef {
        kind: FieldKind::Object(of),
        args: &[],
        required: &[],
        cost: None,
    })
}

fn by_id(of: &'static str) -> Option<FieldDef> {
    Some(FieldDef {
        kind: FieldKind::Object(of),
        args: &["id"],
        required: &["id"],
        cost: None,
    })
}

fn list(of: &'static str) -> Option<FieldDef> {
    Some(FieldDef {
        kind: FieldKind::List(of),
        args: &[],
        required: &[],
        cost: None,
    })
}

fn connection(of: &'static str) -> Option<FieldDef> {
    Some(FieldDef {
        kind: FieldKind::Connection(of),
        args: PAGING,
        required: &[],
        cost: None,
    })
}

impl Schema for AdminSchema {
    fn field(&self, type_name: &str, field: &str) -> Option<FieldDef> {
        match type_name {
            "QueryRoot" => query_root(field),
            "Mutation" => (field == "inventorySetQuantities").then_some(FieldDef {
                kind: FieldKind::Object("InventorySetQuantitiesPayload"),
                args: &["input"],
                required: &["input"],
                cost: Some(MUTATION_COST),
            }),
            "Shop" => matches!(
                field,
                "id" | "name" | "myshopifyDomain" | "currencyCode" | "ianaTimezone"
            )
            .then(scalar)
            .flatten(),
            "Location" => matches!(
                field,
                "id" | "legacyResourceId" | "name" | "isActive" | "fulfillsOnlineOrders"
            )
            .then(scalar)
            .flatten(),
            "Product" => product(field),
            "ProductVariant" => variant(field),
            "InventoryItem" => inventory_item(field),
            "InventoryLevel" => inventory_level(field),
            "InventoryQuantity" => matches!(field, "name" | "quantity" | "updatedAt")
                .then(scalar)
                .flatten(),
            "InventorySetQuantitiesPayload" => match field {
                "inventoryAdjustmentGroup" => object("InventoryAdjustmentGroup"),
                "userErrors" => list("InventorySetQuantitiesUserError"),
                _ => None,
            },
            "InventoryAdjustmentGroup" => match field {
                "id" | "createdAt" | "reason" | "referenceDocumentUri" => scalar(),
                "changes" => Some(FieldDef {
                    kind: FieldKind::List("InventoryChange"),
                    args: &["inventoryItemIds", "locationIds", "quantityNames"],
                    required: &[],
                    cost: None,
                }),
                _ => None,
            },
            "InventoryChange" => match field {
                "name" | "delta" | "quantityAfterChange" | "ledgerDocumentUri" => scalar(),
                "item" => object("InventoryItem"),
                "location" => object("Location"),
                _ => None,
            },
            "InventorySetQuantitiesUserError" => matches!(field, "field" | "message" | "code")
                .then(scalar)
                .flatten(),
            _ => None,
        }
    }

    fn has_directive(&self, name: &str) -> bool {
        name == "idempotent"
    }

    fn root(&self, kind: OperationKind) -> Option<&'static str> {
        match kind {
            OperationKind::Query => Some("QueryRoot"),
            OperationKind::Mutation => Some("Mutation"),
            OperationKind::Subscription => None,
        }
    }
}

fn query_root(field: &str) -> Option<FieldDef> {
    match field {
        "shop" => object("Shop"),
        "location" => Some(FieldDef {
            kind: FieldKind::Object("Location"),
            args: &["id"],
            required: &[],
            cost: None,
        }),
        "locations" => Some(FieldDef {
            kind: FieldKind::Connection("Location"),
            args: &[
                "first",
                "after",
                "last",
                "before",
                "reverse",
                "query",
                "sortKey",
                "includeInactive",
                "includeLegacy",
            ],
            required: &[],
            cost: None,
        }),
        "product" => by_id("Product"),
        "products" => connection("Product"),
        "productVariant" => by_id("ProductVariant"),
        "productVariants" => connection("ProductVariant"),
        "inventoryItem" => by_id("InventoryItem"),
        "inventoryItems" => connection("InventoryItem"),
        _ => None,
    }
}

fn product(field: &str) -> Option<FieldDef> {
    match field {
        "id" | "legacyResourceId" | "title" | "handle" | "status" | "createdAt" | "updatedAt"
        | "totalInventory" | "tracksInventory" => scalar(),
        "variants" => connection("ProductVariant"),
        _ => None,
    }
}

fn variant(field: &str) -> Option<FieldDef> {
    match field {
        "id" | "legacyResourceId" | "sku" | "title" | "displayName" | "price"
        | "inventoryQuantity" | "inventoryPolicy" | "createdAt" | "updatedAt" => scalar(),
        "product" => object("Product"),
        "inventoryItem" => object("InventoryItem"),
        _ => None,
    }
}

fn inventory_item(field: &str) -> Option<FieldDef> {
    match field {
        "id" | "legacyResourceId" | "sku" | "tracked" | "createdAt" | "updatedAt" => scalar(),
        "variant" => object("ProductVariant"),
        "inventoryLevels" => connection("InventoryLevel"),
        "inventoryLevel" => Some(FieldDef {
            kind: FieldKind::Object("InventoryLevel"),
            args: &["locationId"],
            required: &["locationId"],
            cost: None,
        }),
        _ => None,
    }
}

fn inventory_level(field: &str) -> Option<FieldDef> {
    match field {
        "id" | "updatedAt" | "createdAt" | "canDeactivate" => scalar(),
        "location" => object("Location"),
        "item" => object("InventoryItem"),
        "quantities" => Some(FieldDef {
            kind: FieldKind::List("InventoryQuantity"),
            args: &["names"],
            required: &["names"],
            cost: None,
        }),
        _ => None,
    }
}
