//! Products, variants (with kit recipes), locations and channels: the records stock hangs on.

use std::collections::BTreeSet;

use serde_json::Value as Json;
use stockhub_core::{ChannelRules, EntryKind, Sku};

use super::ledger::{record, NewEntry};
use super::stock::fill_shortfalls;
use crate::args;
use crate::error::{Result, StoreError};
use crate::model::{
    Channel, ChannelInput, Ctx, KitComponent, Location, LocationInput, Product, ProductInput,
    Variant, VariantFilter, VariantInput,
};
use crate::sql::{Row, Sql};

pub fn upsert_product(sql: &mut dyn Sql, input: &ProductInput) -> Result<Product> {
    let names = serde_json::to_string(&input.option_names).unwrap_or_else(|_| "[]".into());
    let now = sql.now_ms();
    sql.execute(
        "INSERT INTO products (id, title, vendor, option_names, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET title = excluded.title, vendor = excluded.vendor,
             option_names = excluded.option_names, updated_at = excluded.updated_at",
        args![
            input.id.as_str(),
            input.title.as_str(),
            input.vendor.as_deref(),
            names,
            now
        ],
    )?;
    Ok(Product {
        id: input.id.clone(),
        title: input.title.clone(),
        vendor: input.vendor.clone(),
        option_names: input.option_names.clone(),
    })
}

pub fn get_product(sql: &mut dyn Sql, id: &str) -> Result<Option<Product>> {
    Ok(sql
        .query_opt(
            "SELECT id, title, vendor, option_names FROM products WHERE id = ?1",
            args![id],
        )?
        .map(|r| Product {
            id: r.text(0),
            title: r.text(1),
            vendor: r.opt_text(2),
            option_names: serde_json::from_str(&r.text(3)).unwrap_or_default(),
        }))
}

/// Creates or replaces a variant. A kit's recipe must name existing, non-kit variants other than
/// itself; a variant that is a component of a kit cannot itself become a kit. Returns the SKUs
/// whose shortfalls may now be fillable (a kit whose recipe changed).
pub fn upsert_variant(sql: &mut dyn Sql, ctx: &Ctx, input: &VariantInput) -> Result<Option<Sku>> {
    let sku = input.sku.as_str();
    if input.buffer < 0 {
        return Err(StoreError::Invalid(format!(
            "buffer of {sku} must not be negative, got {}",
            input.buffer
        )));
    }
    let existing = sql.query_opt(
        "SELECT is_kit, buffer FROM variants WHERE sku = ?1",
        args![sku],
    )?;
    if let Some(kit) = &input.kit {
        check_recipe(sql, &input.sku, kit)?;
        let has_stock = sql
            .query_opt(
                "SELECT 1 FROM stock_levels WHERE sku = ?1 AND on_hand > 0",
                args![sku],
            )?
            .is_some();
        if has_stock {
            return Err(StoreError::Invalid(format!(
                "{sku} holds stock of its own and cannot become a kit; a kit's stock is its \
                 components'"
            )));
        }
    } else if existing.as_ref().is_some_and(|r| r.int(0) == 1) && has_open_lines(sql, sku)? {
        return Err(StoreError::Invalid(format!(
            "{sku} is a kit with open order lines or reservations; it cannot stop being a kit"
        )));
    }
    let now = sql.now_ms();
    sql.execute(
        "INSERT INTO variants (sku, product_id, title, option_values, barcode, buffer, is_kit,
                               created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT (sku) DO UPDATE SET product_id = excluded.product_id,
             title = excluded.title, option_values = excluded.option_values,
             barcode = excluded.barcode, buffer = excluded.buffer, is_kit = excluded.is_kit,
             updated_at = excluded.updated_at",
        args![
            sku,
            input.product_id.as_deref(),
            input.title.as_deref(),
            input.option_values.to_string(),
            input.barcode.as_deref(),
            input.buffer,
            input.kit.is_some(),
            now
        ],
    )?;
    if existing.is_some() {
        sql.execute("DELETE FROM kit_components WHERE kit_sku = ?1", args![sku])?;
    }
    if let Some(before) = existing
        .as_ref()
        .map(|r| r.int(1))
        .filter(|b| *b != input.buffer)
    {
        // What channels see changes although no unit moved: recorded, and pushed.
        let mut e = NewEntry::new(EntryKind::BufferChanged, sku, None);
        e.detail = Some(serde_json::json!({ "from": before, "to": input.buffer }));
        record(sql, ctx, &e)?;
        super::pushes::mark(sql, sku)?;
    }
    for (component, units) in input.kit.iter().flatten() {
        sql.execute(
            "INSERT INTO kit_components (kit_sku, component_sku, units) VALUES (?1, ?2, ?3)",
            args![sku, component.as_str(), *units],
        )?;
    }
    Ok(input.kit.as_ref().map(|_| input.sku.clone()))
}

/// Creates or replaces a variant and, for a kit whose recipe changed, fills the kit's open
/// shortfalls that the new recipe can cover.
pub fn put_variant(sql: &mut dyn Sql, ctx: &Ctx, input: &VariantInput) -> Result<Variant> {
    let kit = upsert_variant(sql, ctx, input)?;
    fill_shortfalls(sql, ctx, &kit.into_iter().map(|k| k.to_string()).collect())?;
    get_variant(sql, input.sku.as_str())?
        .ok_or_else(|| StoreError::not_found("sku", input.sku.as_str()))
}

fn check_recipe(sql: &mut dyn Sql, kit: &Sku, recipe: &[(Sku, i64)]) -> Result<()> {
    if recipe.is_empty() {
        return Err(StoreError::Invalid(format!(
            "kit {kit} needs at least one component"
        )));
    }
    let mut seen = BTreeSet::new();
    for (component, units) in recipe {
        if component == kit {
            return Err(StoreError::Invalid(format!(
                "kit {kit} cannot contain itself"
            )));
        }
        if !seen.insert(component) {
            return Err(StoreError::Invalid(format!(
                "kit {kit} names component {component} twice; give its units once"
            )));
        }
        if *units <= 0 || *units > 1_000_000 {
            return Err(StoreError::Invalid(format!(
                "kit {kit}: units of {component} per kit must be 1 to 1000000, got {units}"
            )));
        }
        match sql.query_opt(
            "SELECT is_kit FROM variants WHERE sku = ?1",
            args![component.as_str()],
        )? {
            None => return Err(StoreError::not_found("sku", component.as_str())),
            Some(r) if r.int(0) == 1 => {
                return Err(StoreError::Invalid(format!(
                    "kit {kit}: component {component} is itself a kit; kits do not nest"
                )))
            }
            Some(_) => {}
        }
    }
    let is_component = sql
        .query_opt(
            "SELECT 1 FROM kit_components WHERE component_sku = ?1",
            args![kit.as_str()],
        )?
        .is_some();
    if is_component {
        return Err(StoreError::Invalid(format!(
            "{kit} is a component of another kit and cannot itself be a kit"
        )));
    }
    Ok(())
}

fn has_open_lines(sql: &mut dyn Sql, sku: &str) -> Result<bool> {
    Ok(sql
        .query_opt(
            "SELECT 1 FROM order_lines WHERE sku = ?1 AND (committed > 0 OR short > 0)
             UNION ALL SELECT 1 FROM reservations WHERE sku = ?1 AND status = 'active'",
            args![sku],
        )?
        .is_some())
}

const VARIANT_COLUMNS: &str =
    "sku, product_id, title, option_values, barcode, buffer, is_kit, created_at, updated_at";

fn variant_from_row(sql: &mut dyn Sql, r: &Row) -> Result<Variant> {
    let sku = r.text(0);
    let kit = if r.int(6) == 1 {
        Some(recipe(sql, &sku)?)
    } else {
        None
    };
    Ok(Variant {
        product_id: r.opt_text(1),
        title: r.opt_text(2),
        option_values: serde_json::from_str(&r.text(3)).unwrap_or(Json::Null),
        barcode: r.opt_text(4),
        buffer: r.int(5),
        kit: kit.map(|components| {
            components
                .into_iter()
                .map(|(sku, units)| KitComponent { sku, units })
                .collect()
        }),
        created_at_ms: r.int(7),
        updated_at_ms: r.int(8),
        sku,
    })
}

pub fn get_variant(sql: &mut dyn Sql, sku: &str) -> Result<Option<Variant>> {
    let row = sql.query_opt(
        &format!("SELECT {VARIANT_COLUMNS} FROM variants WHERE sku = ?1"),
        args![sku],
    )?;
    row.map(|r| variant_from_row(sql, &r)).transpose()
}

pub fn list_variants(sql: &mut dyn Sql, filter: &VariantFilter) -> Result<Vec<Variant>> {
    // A prefix match as a range so that it uses the primary key and stays case-sensitive.
    let prefix_end = filter.sku_prefix.as_ref().map(|p| format!("{p}\u{10FFFF}"));
    let rows = sql.query(
        &format!(
            "SELECT {VARIANT_COLUMNS} FROM variants
             WHERE (product_id = ?1 OR ?1 IS NULL)
               AND ((sku >= ?2 AND sku < ?3) OR ?2 IS NULL)
               AND (sku > ?4 OR ?4 IS NULL)
             ORDER BY sku LIMIT ?5"
        ),
        args![
            filter.product_id.as_deref(),
            filter.sku_prefix.as_deref(),
            prefix_end,
            filter.after_sku.as_deref(),
            filter.limit
        ],
    )?;
    rows.iter().map(|r| variant_from_row(sql, r)).collect()
}

/// A kit's current recipe: `(component, units per kit)` in SKU order; empty for a plain SKU.
pub fn recipe(sql: &mut dyn Sql, kit_sku: &str) -> Result<Vec<(String, i64)>> {
    Ok(sql
        .query(
            "SELECT component_sku, units FROM kit_components WHERE kit_sku = ?1
             ORDER BY component_sku",
            args![kit_sku],
        )?
        .iter()
        .map(|r| (r.text(0), r.int(1)))
        .collect())
}

/// `Some(is_kit)` when the SKU exists.
pub fn variant_kind(sql: &mut dyn Sql, sku: &str) -> Result<Option<bool>> {
    Ok(sql
        .query_opt("SELECT is_kit FROM variants WHERE sku = ?1", args![sku])?
        .map(|r| r.int(0) == 1))
}

pub fn require_variant(sql: &mut dyn Sql, sku: &str) -> Result<bool> {
    variant_kind(sql, sku)?.ok_or_else(|| StoreError::not_found("sku", sku))
}

pub fn upsert_location(sql: &mut dyn Sql, input: &LocationInput) -> Result<Location> {
    let now = sql.now_ms();
    sql.execute(
        "INSERT INTO locations (code, name, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (code) DO UPDATE SET name = excluded.name",
        args![input.code.as_str(), input.name.as_str(), now],
    )?;
    Ok(Location {
        code: input.code.to_string(),
        name: input.name.clone(),
    })
}

pub fn list_locations(sql: &mut dyn Sql) -> Result<Vec<Location>> {
    Ok(sql
        .query("SELECT code, name FROM locations ORDER BY code", &[])?
        .iter()
        .map(|r| Location {
            code: r.text(0),
            name: r.text(1),
        })
        .collect())
}

pub fn require_location(sql: &mut dyn Sql, code: &str) -> Result<()> {
    sql.query_opt("SELECT 1 FROM locations WHERE code = ?1", args![code])?
        .map(|_| ())
        .ok_or_else(|| StoreError::not_found("location", code))
}

/// The channel kinds this build can serve.
pub const CHANNEL_KINDS: [&str; 3] = ["manual", "shopify", "woocommerce"];

pub fn upsert_channel(sql: &mut dyn Sql, input: &ChannelInput) -> Result<Channel> {
    if !CHANNEL_KINDS.contains(&input.kind.as_str()) {
        return Err(StoreError::Invalid(format!(
            "channel kind {:?} is not supported; use one of {CHANNEL_KINDS:?}",
            input.kind
        )));
    }
    check_rules(&input.rules)?;
    if let Some(locations) = &input.feeding_locations {
        let mut seen = BTreeSet::new();
        for code in locations {
            require_location(sql, code.as_str())?;
            if !seen.insert(code) {
                return Err(StoreError::Invalid(format!(
                    "feeding location {code} is listed twice; list each once, in priority order"
                )));
            }
        }
    }
    let feeding = input
        .feeding_locations
        .as_ref()
        .map(|l| serde_json::to_string(l).unwrap_or_default());
    let rules = serde_json::to_string(&input.rules).unwrap_or_default();
    let now = sql.now_ms();
    sql.execute(
        "INSERT INTO channels (code, kind, rules, feeding_locations, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (code) DO UPDATE SET kind = excluded.kind, rules = excluded.rules,
             feeding_locations = excluded.feeding_locations, updated_at = excluded.updated_at",
        args![
            input.code.as_str(),
            input.kind.as_str(),
            rules,
            feeding,
            now
        ],
    )?;
    get_channel(sql, input.code.as_str())?
        .ok_or_else(|| StoreError::not_found("channel", input.code.as_str()))
}

/// Creates or replaces a channel, then fills its short lines from its (new) feeding locations.
pub fn put_channel(sql: &mut dyn Sql, ctx: &Ctx, input: &ChannelInput) -> Result<Channel> {
    let channel = upsert_channel(sql, input)?;
    super::pushes::mark_channel(sql, &channel.code)?;
    let short: BTreeSet<String> = sql
        .query(
            "SELECT DISTINCT ol.sku FROM order_lines ol JOIN orders o ON o.id = ol.order_id
             WHERE o.channel = ?1 AND ol.short > 0",
            args![channel.code.as_str()],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect();
    fill_shortfalls(sql, ctx, &short)?;
    Ok(channel)
}

fn check_rules(rules: &ChannelRules) -> Result<()> {
    let bad = |m: String| Err(StoreError::Invalid(m));
    if rules.buffer < 0 {
        return bad(format!(
            "rules.buffer must not be negative, got {}",
            rules.buffer
        ));
    }
    if !(0..=stockhub_core::SHARE_WHOLE_PPM).contains(&rules.share_ppm) {
        return bad("rules.share must be between 0 and 1".into());
    }
    if rules.max_quantity.is_some_and(|m| m < 0) {
        return bad("rules.max_quantity must not be negative".into());
    }
    if rules.out_of_stock_threshold < 0 {
        return bad("rules.out_of_stock_threshold must not be negative".into());
    }
    Ok(())
}

pub fn get_channel(sql: &mut dyn Sql, code: &str) -> Result<Option<Channel>> {
    Ok(sql
        .query_opt(
            "SELECT code, kind, rules, feeding_locations FROM channels WHERE code = ?1",
            args![code],
        )?
        .map(|r| channel_from_row(&r)))
}

/// The channel a row of [`LIST_CHANNELS`] (or of a statement with its columns) describes.
pub(crate) fn channel_from_row(r: &Row) -> Channel {
    Channel {
        code: r.text(0),
        kind: r.text(1),
        rules: serde_json::from_str(&r.text(2)).unwrap_or_default(),
        feeding_locations: r.opt_text(3).and_then(|f| serde_json::from_str(&f).ok()),
    }
}

/// Every channel, in code order ([`channel_from_row`] reads each row).
pub(crate) const LIST_CHANNELS: &str =
    "SELECT code, kind, rules, feeding_locations FROM channels ORDER BY code";

pub fn list_channels(sql: &mut dyn Sql) -> Result<Vec<Channel>> {
    Ok(sql
        .query(LIST_CHANNELS, &[])?
        .iter()
        .map(channel_from_row)
        .collect())
}

pub fn require_channel(sql: &mut dyn Sql, code: &str) -> Result<Channel> {
    get_channel(sql, code)?.ok_or_else(|| StoreError::not_found("channel", code))
}

/// The locations that feed a channel, in priority order.
pub fn feeding_locations(sql: &mut dyn Sql, channel: &Channel) -> Result<Vec<String>> {
    match &channel.feeding_locations {
        Some(list) => Ok(list.clone()),
        None => Ok(list_locations(sql)?.into_iter().map(|l| l.code).collect()),
    }
}

/// Stores a connected channel's connection settings (shown by the API) and secrets (never shown).
pub fn set_connection(
    sql: &mut dyn Sql,
    code: &str,
    connection: &serde_json::Value,
    secrets: &serde_json::Value,
) -> Result<()> {
    let n = sql.execute(
        "UPDATE channels SET connection = ?2, secrets = ?3 WHERE code = ?1",
        args![code, connection.to_string(), secrets.to_string()],
    )?;
    if n == 0 {
        return Err(StoreError::not_found("channel", code));
    }
    Ok(())
}

/// A channel's connection settings and secrets, when it has them.
pub fn connection(
    sql: &mut dyn Sql,
    code: &str,
) -> Result<Option<(serde_json::Value, serde_json::Value)>> {
    Ok(sql
        .query_opt(
            "SELECT connection, secrets FROM channels WHERE code = ?1 AND connection IS NOT NULL",
            args![code],
        )?
        .map(|r| {
            let parse = |t: String| serde_json::from_str(&t).unwrap_or(serde_json::Value::Null);
            (parse(r.text(0)), parse(r.text(1)))
        }))
}

/// Where a channel's order backfill continues from (ms), if it ran before.
pub fn orders_cursor(sql: &mut dyn Sql, channel: &str) -> Result<Option<i64>> {
    Ok(sql
        .query_opt(
            "SELECT orders_since FROM channel_cursors WHERE channel = ?1",
            args![channel],
        )?
        .map(|r| r.int(0)))
}

pub fn set_orders_cursor(sql: &mut dyn Sql, channel: &str, since_ms: i64) -> Result<()> {
    let now = sql.now_ms();
    sql.execute(
        "INSERT INTO channel_cursors (channel, orders_since, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (channel) DO UPDATE SET orders_since = CASE WHEN excluded.orders_since > channel_cursors.orders_since
                 THEN excluded.orders_since ELSE channel_cursors.orders_since END,
             updated_at = excluded.updated_at",
        args![channel, since_ms, now],
    )?;
    Ok(())
}
