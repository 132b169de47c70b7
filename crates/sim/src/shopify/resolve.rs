//! Resolvers of the Admin GraphQL schema over a store's state, Shopify's Relay pagination
//! (`first`/`after`, `last`/`before`, `reverse`, at most 250 per page, opaque base64 cursors,
//! API_FACTS §1.5) and the subset of Shopify's search syntax the `query:` argument accepts here:
//! `field:value` terms joined by spaces (AND), `*` suffix for a prefix, `>`, `>=`, `<`, `<=` on
//! ids and dates, `-` to negate, and free words matched against SKU and title. Unknown fields
//! are ignored, as Shopify ignores them.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{json, Map, Value};

use super::inventory::{parse_gid, AdjustmentGroup, Change, SetOutcome, UserError};
use super::model::{Level, Location, Product, State, Variant};
use crate::clock;
use crate::graphql::{FieldError, Page, Resolved, Resolver};

/// Largest page Shopify serves.
pub(crate) const MAX_PAGE: u64 = 250;
const QUANTITY_NAMES: &[&str] = &[
    "available",
    "committed",
    "on_hand",
    "incoming",
    "reserved",
    "damaged",
    "safety_stock",
    "quality_control",
];

/// A value the resolvers work on.
#[derive(Debug, Clone)]
pub(crate) enum Obj<'s> {
    Query,
    Mutation,
    Shop,
    Location(&'s Location),
    Product(&'s Product),
    Variant(&'s Variant),
    Item(&'s Variant),
    Level(&'s Variant, u64),
    Quantity(&'static str, i64, i64),
    Payload(&'s SetOutcome),
    Group(&'s AdjustmentGroup),
    Change(&'s Change),
    UserError(&'s UserError),
}

pub(crate) struct AdminResolver<'s> {
    pub state: &'s State,
    /// Outcomes of the mutation fields of this request, by response key.
    pub outcomes: &'s HashMap<String, SetOutcome>,
}

type Field<'s> = Result<Resolved<Obj<'s>>, FieldError>;

fn value<'s>(v: Value) -> Field<'s> {
    Ok(Resolved::Value(v))
}

fn gid(kind: &str, id: u64) -> Value {
    json!(format!("gid://shopify/{kind}/{id}"))
}

fn utc(ms: i64) -> Value {
    json!(clock::format_utc(ms))
}

impl<'s> Resolver for AdminResolver<'s> {
    type Obj = Obj<'s>;

    fn field(&self, obj: &Obj<'s>, name: &str, key: &str, args: &Map<String, Value>) -> Field<'s> {
        match obj {
            Obj::Query => self.query(name, args),
            Obj::Mutation => Ok(Resolved::Object(self.outcomes.get(key).map(Obj::Payload))),
            Obj::Shop => value(match name {
                "id" => gid("Shop", 1),
                "name" => json!(self.state.shop_domain.split('.').next().unwrap_or("shop")),
                "myshopifyDomain" => json!(self.state.shop_domain),
                "currencyCode" => json!("USD"),
                _ => json!("Etc/UTC"),
            }),
            Obj::Location(location) => location_field(location, name),
            Obj::Product(product) => self.product(product, name, args),
            Obj::Variant(variant) => self.variant(variant, name),
            Obj::Item(variant) => self.item(variant, name, args),
            Obj::Level(variant, location_id) => self.level(variant, *location_id, name, args),
            Obj::Quantity(quantity_name, quantity, updated) => value(match name {
                "name" => json!(quantity_name),
                "quantity" => json!(quantity),
                _ => utc(*updated),
            }),
            Obj::Payload(outcome) => Ok(match name {
                "inventoryAdjustmentGroup" => {
                    Resolved::Object(outcome.group.as_ref().map(Obj::Group))
                }
                _ => Resolved::List(outcome.user_errors.iter().map(Obj::UserError).collect()),
            }),
            Obj::Group(group) => group_field(group, name, args),
            Obj::Change(change) => self.change(change, name),
            Obj::UserError(error) => value(match name {
                "field" => json!(error.field),
                "message" => json!(error.message),
                _ => json!(error.code),
            }),
        }
    }
}

impl<'s> AdminResolver<'s> {
    fn query(&self, name: &str, args: &Map<String, Value>) -> Field<'s> {
        let state = self.state;
        let id_arg = |kind: &str| -> Result<Option<u64>, FieldError> {
            match args.get("id").and_then(Value::as_str) {
                None => Ok(None),
                Some(text) => parse_gid(text, kind).map(Some).ok_or_else(|| {
                    FieldError::with_code(
                        format!("Invalid global id '{text}'"),
                        "argumentLiteralsIncompatible",
                    )
                }),
            }
        };
        match name {
            "shop" => Ok(Resolved::Object(Some(Obj::Shop))),
            "location" => Ok(Resolved::Object(match id_arg("Location")? {
                Some(id) => state.locations.get(&id).map(Obj::Location),
                None => state.locations.values().next().map(Obj::Location),
            })),
            "locations" => paginate(
                state
                    .locations
                    .values()
                    .map(|l| (l.id, Obj::Location(l)))
                    .collect(),
                args,
            ),
            "product" => Ok(Resolved::Object(
                id_arg("Product")?
                    .and_then(|id| state.products.get(&id))
                    .map(Obj::Product),
            )),
            "products" => {
                let terms = parse_search(args);
                let items = state
                    .products
                    .values()
                    .filter(|p| terms.iter().all(|t| t.matches_product(state, p)));
                paginate(items.map(|p| (p.id, Obj::Product(p))).collect(), args)
            }
            "productVariant" => Ok(Resolved::Object(
                id_arg("ProductVariant")?
                    .and_then(|id| state.variants.get(&id))
                    .map(Obj::Variant),
            )),
            "productVariants" => {
                let terms = parse_search(args);
                let items = state
                    .variants
                    .values()
                    .filter(|v| terms.iter().all(|t| t.matches_variant(state, v)));
                paginate(items.map(|v| (v.id, Obj::Variant(v))).collect(), args)
            }
            "inventoryItem" => Ok(Resolved::Object(
                id_arg("InventoryItem")?
                    .and_then(|id| state.variant_by_item(id))
                    .map(Obj::Item),
            )),
            _ => {
                let terms = parse_search(args);
                let mut items: Vec<(u64, Obj<'s>)> = state
                    .variants
                    .values()
                    .filter(|v| terms.iter().all(|t| t.matches_item(v)))
                    .map(|v| (v.item_id, Obj::Item(v)))
                    .collect();
                items.sort_by_key(|(id, _)| *id);
                paginate(items, args)
            }
        }
    }

    fn product(&self, product: &'s Product, name: &str, args: &Map<String, Value>) -> Field<'s> {
        let variants = || {
            product
                .variant_ids
                .iter()
                .filter_map(|id| self.state.variants.get(id))
        };
        value(match name {
            "id" => gid("Product", product.id),
            "legacyResourceId" => json!(product.id.to_string()),
            "title" => json!(product.title),
            "handle" => json!(product.handle),
            "status" => json!("ACTIVE"),
            "createdAt" => utc(product.created_ms),
            "updatedAt" => utc(product.updated_ms),
            "totalInventory" => json!(variants().map(total_available).sum::<i64>()),
            "tracksInventory" => json!(variants().any(|v| v.tracked)),
            _ => return paginate(variants().map(|v| (v.id, Obj::Variant(v))).collect(), args),
        })
    }

    fn variant(&self, variant: &'s Variant, name: &str) -> Field<'s> {
        let product = self.state.products.get(&variant.product_id);
        value(match name {
            "id" => gid("ProductVariant", variant.id),
            "legacyResourceId" => json!(variant.id.to_string()),
            "sku" => json!(variant.sku),
            "title" => json!(variant.title),
            "displayName" => json!(format!(
                "{} - {}",
                product.map_or("", |p| p.title.as_str()),
                variant.title
            )),
            "price" => json!(super::model::format_cents(variant.price_cents)),
            "inventoryQuantity" => json!(total_available(variant)),
            "inventoryPolicy" => json!(if variant.oversell { "CONTINUE" } else { "DENY" }),
            "createdAt" => utc(variant.created_ms),
            "updatedAt" => utc(variant.updated_ms),
            "product" => return Ok(Resolved::Object(product.map(Obj::Product))),
            _ => return Ok(Resolved::Object(Some(Obj::Item(variant)))),
        })
    }

    fn item(&self, variant: &'s Variant, name: &str, args: &Map<String, Value>) -> Field<'s> {
        value(match name {
            "id" => gid("InventoryItem", variant.item_id),
            "legacyResourceId" => json!(variant.item_id.to_string()),
            "sku" => json!(variant.sku),
            "tracked" => json!(variant.tracked),
            "createdAt" => utc(variant.created_ms),
            "updatedAt" => utc(variant.updated_ms),
            "variant" => return Ok(Resolved::Object(Some(Obj::Variant(variant)))),
            "inventoryLevel" => {
                let location = args
                    .get("locationId")
                    .and_then(Value::as_str)
                    .and_then(|l| parse_gid(l, "Location"));
                let level = location.filter(|l| variant.levels.contains_key(l));
                return Ok(Resolved::Object(level.map(|l| Obj::Level(variant, l))));
            }
            _ => {
                let levels = variant
                    .levels
                    .keys()
                    .map(|l| (*l, Obj::Level(variant, *l)))
                    .collect();
                return paginate(levels, args);
            }
        })
    }

    fn level(
        &self,
        variant: &'s Variant,
        location_id: u64,
        name: &str,
        args: &Map<String, Value>,
    ) -> Field<'s> {
        let level = variant.levels.get(&location_id).copied().unwrap_or(Level {
            available: 0,
            committed: 0,
            updated_ms: 0,
        });
        value(match name {
            "id" => json!(format!(
                "gid://shopify/InventoryLevel/{location_id}?inventory_item_id={}",
                variant.item_id
            )),
            "updatedAt" | "createdAt" => utc(level.updated_ms),
            "canDeactivate" => json!(level.committed == 0),
            "location" => {
                return Ok(Resolved::Object(
                    self.state.locations.get(&location_id).map(Obj::Location),
                ))
            }
            "item" => return Ok(Resolved::Object(Some(Obj::Item(variant)))),
            _ => return quantities(&level, args),
        })
    }

    fn change(&self, change: &'s Change, name: &str) -> Field<'s> {
        value(match name {
            "name" => json!(change.name),
            "delta" => json!(change.delta),
            "quantityAfterChange" => json!(change.quantity_after),
            "ledgerDocumentUri" => Value::Null,
            "item" => {
                return Ok(Resolved::Object(
                    self.state.variant_by_item(change.item_id).map(Obj::Item),
                ))
            }
            _ => {
                return Ok(Resolved::Object(
                    self.state
                        .locations
                        .get(&change.location_id)
                        .map(Obj::Location),
                ))
            }
        })
    }
}

fn total_available(variant: &Variant) -> i64 {
    variant.levels.values().map(|l| l.available).sum()
}

fn location_field<'s>(location: &Location, name: &str) -> Field<'s> {
    value(match name {
        "id" => gid("Location", location.id),
        "legacyResourceId" => json!(location.id.to_string()),
        "name" => json!(location.name),
        _ => json!(true),
    })
}

fn quantities<'s>(level: &Level, args: &Map<String, Value>) -> Field<'s> {
    let names: Vec<&str> = match args.get("names") {
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for name in names {
        let known = QUANTITY_NAMES.iter().find(|n| **n == name).ok_or_else(|| {
            FieldError::with_code(
                format!("'{name}' is not a valid inventory quantity name"),
                "BAD_REQUEST",
            )
        })?;
        out.push(Obj::Quantity(
            known,
            level.quantity(known),
            level.updated_ms,
        ));
    }
    Ok(Resolved::List(out))
}

fn group_field<'s>(group: &'s AdjustmentGroup, name: &str, args: &Map<String, Value>) -> Field<'s> {
    value(match name {
        "id" => gid("InventoryAdjustmentGroup", group.id),
        "createdAt" => utc(group.created_ms),
        "reason" => json!(group.reason),
        "referenceDocumentUri" => json!(group.reference_document_uri),
        _ => {
            let wanted = |key: &str| -> Option<Vec<String>> {
                args.get(key)?.as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
            };
            let (items, locations, names) = (
                wanted("inventoryItemIds"),
                wanted("locationIds"),
                wanted("quantityNames"),
            );
            let changes = group.changes.iter().filter(|c| {
                items.as_ref().is_none_or(|ids| {
                    ids.contains(&format!("gid://shopify/InventoryItem/{}", c.item_id))
                }) && locations.as_ref().is_none_or(|ids| {
                    ids.contains(&format!("gid://shopify/Location/{}", c.location_id))
                }) && names.as_ref().is_none_or(|n| n.iter().any(|n| n == c.name))
            });
            return Ok(Resolved::List(changes.map(Obj::Change).collect()));
        }
    })
}

fn encode_cursor(id: u64) -> String {
    let text = json!({"last_id": id, "last_value": id.to_string()}).to_string();
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn decode_cursor(cursor: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("last_id")?.as_u64()
}

fn page_size(args: &Map<String, Value>, key: &str) -> Result<Option<u64>, FieldError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_PAGE => Ok(Some(n)),
            _ => Err(FieldError::with_code(
                format!("The '{key}' argument must be between 0 and {MAX_PAGE}, got {v}."),
                "BAD_REQUEST",
            )),
        },
    }
}

/// One page of `items` (sorted by id ascending) as the paging arguments ask.
pub(crate) fn paginate<'s>(mut items: Vec<(u64, Obj<'s>)>, args: &Map<String, Value>) -> Field<'s> {
    let first = page_size(args, "first")?;
    let last = page_size(args, "last")?;
    if first.is_none() && last.is_none() {
        return Err(FieldError::with_code(
            "you must provide one of first or last",
            "BAD_REQUEST",
        ));
    }
    let ascending = !args
        .get("reverse")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !ascending {
        items.reverse();
    }
    let cursor = |key: &str| -> Result<Option<u64>, FieldError> {
        match args.get(key).and_then(Value::as_str) {
            None => Ok(None),
            Some(c) => decode_cursor(c).map(Some).ok_or_else(|| {
                FieldError::with_code("Invalid cursor for current pagination sort.", "BAD_REQUEST")
            }),
        }
    };
    let beyond = |id: u64, mark: u64| if ascending { id > mark } else { id < mark };
    let start = cursor("after")?.map_or(0, |c| {
        items
            .iter()
            .position(|(id, _)| beyond(*id, c))
            .unwrap_or(items.len())
    });
    let end = cursor("before")?.map_or(items.len(), |c| {
        items
            .iter()
            .position(|(id, _)| *id == c || beyond(*id, c))
            .unwrap_or(items.len())
    });
    let window = items.get(start..end.max(start)).unwrap_or(&[]);
    let (from, to) = match (first, last) {
        (Some(n), _) => (0, window.len().min(n as usize)),
        (None, Some(n)) => (window.len().saturating_sub(n as usize), window.len()),
        (None, None) => (0, 0),
    };
    let edges = window[from..to]
        .iter()
        .map(|(id, obj)| (encode_cursor(*id), obj.clone()))
        .collect();
    Ok(Resolved::Connection(Page {
        edges,
        has_next_page: start + to < items.len(),
        has_previous_page: start + from > 0,
    }))
}

/// One term of a search query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Term {
    field: Option<String>,
    op: &'static str,
    value: String,
    negate: bool,
}

fn parse_search(args: &Map<String, Value>) -> Vec<Term> {
    args.get("query")
        .and_then(Value::as_str)
        .map(search_terms)
        .unwrap_or_default()
}

fn split_words(query: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    for c in query.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                words.extend((!current.is_empty()).then(|| std::mem::take(&mut current)))
            }
            (_, c) => current.push(c),
        }
    }
    words.extend((!current.is_empty()).then_some(current));
    words
}

/// The terms of a search query.
pub(crate) fn search_terms(query: &str) -> Vec<Term> {
    split_words(query)
        .into_iter()
        .filter(|w| w != "AND" && w != "OR")
        .map(|word| {
            let (negate, word) = match word.strip_prefix('-') {
                Some(rest) => (true, rest.to_owned()),
                None => (false, word),
            };
            let Some((field, rest)) = word.split_once(':') else {
                return Term {
                    field: None,
                    op: ":",
                    value: word,
                    negate,
                };
            };
            let op = [">=", "<=", ">", "<"]
                .into_iter()
                .find(|op| rest.starts_with(op))
                .unwrap_or(":");
            let value = rest.strip_prefix(op).unwrap_or(rest).to_owned();
            Term {
                field: Some(field.to_owned()),
                op,
                value,
                negate,
            }
        })
        .collect()
}

impl Term {
    fn text(&self, actual: Option<&str>) -> bool {
        let actual = actual.unwrap_or("").to_lowercase();
        let wanted = self.value.to_lowercase();
        match wanted.strip_suffix('*') {
            Some(prefix) => actual.starts_with(prefix),
            None => actual == wanted,
        }
    }

    fn number(&self, actual: i64, parse: impl Fn(&str) -> Option<i64>) -> bool {
        let Some(wanted) = parse(&self.value) else {
            return false;
        };
        match self.op {
            ">" => actual > wanted,
            ">=" => actual >= wanted,
            "<" => actual < wanted,
            "<=" => actual <= wanted,
            _ => actual == wanted,
        }
    }

    fn id(&self, actual: u64) -> bool {
        self.number(actual as i64, |v| v.parse().ok())
    }

    fn time(&self, actual_ms: i64) -> bool {
        self.number(actual_ms, |v| clock::parse_timestamp(v, 0))
    }

    fn outcome(&self, matched: bool) -> bool {
        matched != self.negate
    }

    fn matches_variant(&self, state: &State, variant: &Variant) -> bool {
        let product = state.products.get(&variant.product_id);
        let matched = match self.field.as_deref() {
            Some("sku") => self.text(variant.sku.as_deref()),
            Some("id") => self.id(variant.id),
            Some("product_id") => self.id(variant.product_id),
            Some("inventory_item_id") => self.id(variant.item_id),
            Some("title") => {
                self.text(Some(&variant.title)) || self.text(product.map(|p| p.title.as_str()))
            }
            Some("updated_at") => self.time(variant.updated_ms),
            Some(_) => true,
            None => self.free_text(variant.sku.as_deref(), product.map(|p| p.title.as_str())),
        };
        self.outcome(matched)
    }

    fn matches_item(&self, variant: &Variant) -> bool {
        let matched = match self.field.as_deref() {
            Some("sku") => self.text(variant.sku.as_deref()),
            Some("id") => self.id(variant.item_id),
            Some("updated_at") => self.time(variant.updated_ms),
            Some("created_at") => self.time(variant.created_ms),
            Some(_) => true,
            None => self.free_text(variant.sku.as_deref(), None),
        };
        self.outcome(matched)
    }

    fn matches_product(&self, state: &State, product: &Product) -> bool {
        let variants = || {
            product
                .variant_ids
                .iter()
                .filter_map(|id| state.variants.get(id))
        };
        let matched = match self.field.as_deref() {
            Some("title") => self.text(Some(&product.title)),
            Some("id") => self.id(product.id),
            Some("sku") => variants().any(|v| self.text(v.sku.as_deref())),
            Some("updated_at") => self.time(product.updated_ms),
            Some(_) => true,
            None => self.free_text(None, Some(&product.title)),
        };
        self.outcome(matched)
    }

    fn free_text(&self, sku: Option<&str>, title: Option<&str>) -> bool {
        let wanted = self.value.to_lowercase();
        [sku, title]
            .into_iter()
            .flatten()
            .any(|t| t.to_lowercase().contains(wanted.trim_end_matches('*')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_search_terms() {
        let terms = search_terms("sku:'ABC 1' -title:Shirt* updated_at:>=2026-01-01 AND word");
        assert_eq!(terms.len(), 4);
        assert_eq!(
            terms[0],
            Term {
                field: Some("sku".into()),
                op: ":",
                value: "ABC 1".into(),
                negate: false
            }
        );
        assert!(terms[1].negate);
        assert_eq!((terms[2].op, terms[2].value.as_str()), (">=", "2026-01-01"));
        assert_eq!(terms[3].field, None);
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(
            decode_cursor(&encode_cursor(839_212_141_605_670_573)),
            Some(839_212_141_605_670_573)
        );
        assert_eq!(decode_cursor("garbage"), None);
    }
}
