//! Products, variants, locations and channels.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json_};
use stockhub_core::Sku;
use stockhub_store::engine::catalog;
use stockhub_store::model::{
    Location, LocationInput, Product, ProductInput, Variant, VariantFilter, VariantInput,
};
use stockhub_store::{ItemError, StoreError};

use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::write::{self, Caller};
use crate::{parse_code, parse_sku, AppState};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductBody {
    pub title: String,
    pub vendor: Option<String>,
    #[serde(default)]
    pub option_names: Vec<String>,
}

/// Creates or replaces a product (organizational metadata only).
#[utoipa::path(put, path = "/v1/products/{id}", tag = "catalog",
    params(("id" = String, Path, description = "the product's id")),
    request_body = ProductBody,
    responses((status = 200, body = Product), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn put_product(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    caller: Caller,
    body: JsonBody<ProductBody>,
) -> ApiResult<Response> {
    if id.trim().is_empty() || id.chars().count() > 128 || id.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "invalid-request",
            "product id must be 1 to 128 printable characters",
        ));
    }
    let b = body.value;
    let input = ProductInput {
        id,
        title: b.title,
        vendor: b.vendor,
        option_names: b.option_names,
    };
    write::run(&state, caller, &body.canonical, move |sql, _| {
        Ok((StatusCode::OK, catalog::upsert_product(sql, &input)?))
    })
    .await
}

#[utoipa::path(get, path = "/v1/products/{id}", tag = "catalog",
    params(("id" = String, Path, description = "the product's id")),
    responses((status = 200, body = Product), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_product(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Product>> {
    let key = id.clone();
    let found = state
        .store
        .read(move |sql| catalog::get_product(sql, &id))
        .await?;
    found
        .map(Json)
        .ok_or_else(|| StoreError::not_found("product", key).into())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KitComponentBody {
    pub sku: String,
    /// Units of the component in one kit.
    pub units: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantBody {
    pub product_id: Option<String>,
    pub title: Option<String>,
    /// Option name → value, e.g. `{"Size": "M"}`.
    #[schema(value_type = Option<Object>)]
    pub option_values: Option<Json_>,
    pub barcode: Option<String>,
    /// Units held back from every channel.
    #[serde(default)]
    pub buffer: i64,
    /// Makes the variant a kit of these components.
    pub kit: Option<Vec<KitComponentBody>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantBatchItem {
    pub sku: String,
    pub product_id: Option<String>,
    pub title: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub option_values: Option<Json_>,
    pub barcode: Option<String>,
    #[serde(default)]
    pub buffer: i64,
    pub kit: Option<Vec<KitComponentBody>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantBatchBody {
    /// Every variant is upserted, or none is.
    pub variants: Vec<Json_>,
}

fn variant_input(sku: &str, b: VariantBody) -> Result<VariantInput, (&'static str, String)> {
    let sku = Sku::parse(sku).map_err(|e| ("invalid-sku", e.to_string()))?;
    let kit = match b.kit {
        None => None,
        Some(components) => Some(
            components
                .into_iter()
                .map(|c| {
                    Ok((
                        Sku::parse(&c.sku)
                            .map_err(|e| ("invalid-sku", format!("kit component: {e}")))?,
                        c.units,
                    ))
                })
                .collect::<Result<Vec<_>, (&'static str, String)>>()?,
        ),
    };
    if !(0..=stockhub_core::QUANTITY_MAX).contains(&b.buffer) {
        return Err((
            "invalid-request",
            format!(
                "buffer must be 0 to {}, got {}",
                stockhub_core::QUANTITY_MAX,
                b.buffer
            ),
        ));
    }
    Ok(VariantInput {
        sku,
        product_id: b.product_id,
        title: b.title,
        option_values: b.option_values.unwrap_or_else(|| json!({})),
        barcode: b.barcode,
        buffer: b.buffer,
        kit,
    })
}

/// Creates or replaces a variant; with `kit`, a kit of other variants.
#[utoipa::path(put, path = "/v1/variants/{sku}", tag = "catalog",
    params(("sku" = String, Path, description = "the SKU (URL-encoded)")),
    request_body = VariantBody,
    responses((status = 200, body = Variant), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn put_variant(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
    caller: Caller,
    body: JsonBody<VariantBody>,
) -> ApiResult<Response> {
    let input = variant_input(&sku, body.value).map_err(|(kind, m)| ApiError::invalid(kind, m))?;
    write::run(&state, caller, &body.canonical, move |sql, ctx| {
        Ok((StatusCode::OK, catalog::put_variant(sql, ctx, &input)?))
    })
    .await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchUpserted {
    pub upserted: usize,
}

/// Upserts many variants in one transaction (tested at 10,000 per request): all or nothing.
#[utoipa::path(post, path = "/v1/variants/batch", tag = "catalog",
    request_body = VariantBatchBody,
    responses((status = 200, body = BatchUpserted), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn batch_variants(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<VariantBatchBody>,
) -> ApiResult<Response> {
    let mut inputs = Vec::with_capacity(body.value.variants.len());
    let mut positions = Vec::with_capacity(body.value.variants.len());
    let mut errors = Vec::new();
    for (index, raw) in body.value.variants.into_iter().enumerate() {
        let parsed = serde_json::from_value::<VariantBatchItem>(raw)
            .map_err(|e| ("invalid-request", e.to_string()))
            .and_then(|item| {
                let b = VariantBody {
                    product_id: item.product_id,
                    title: item.title,
                    option_values: item.option_values,
                    barcode: item.barcode,
                    buffer: item.buffer,
                    kit: item.kit,
                };
                variant_input(&item.sku, b)
            });
        match parsed {
            Ok(input) => {
                inputs.push(input);
                positions.push(index);
            }
            Err((kind, detail)) => errors.push(ItemError {
                index,
                kind,
                detail,
            }),
        }
    }
    if !errors.is_empty() {
        // Check the well-formed items against the store too (rolled back), to name every bad one.
        let ctx = caller.ctx.clone();
        let checked = state
            .store
            .write(move |sql| {
                upsert_all(sql, &ctx, &inputs).and(Err::<(), _>(StoreError::Batch(Vec::new())))
            })
            .await;
        return Err(write::merge_item_errors(errors, checked.err(), &positions));
    }
    write::run(&state, caller, &body.canonical, move |sql, ctx| {
        let upserted = upsert_all(sql, ctx, &inputs)?;
        Ok((StatusCode::OK, BatchUpserted { upserted }))
    })
    .await
}

/// Upserts every variant or refuses, naming each refused one; then fills the shortfalls of kits
/// whose recipes changed.
fn upsert_all(
    sql: &mut dyn stockhub_store::Sql,
    ctx: &stockhub_store::model::Ctx,
    inputs: &[VariantInput],
) -> Result<usize, StoreError> {
    let mut errors = Vec::new();
    let mut kits = std::collections::BTreeSet::new();
    for (index, input) in inputs.iter().enumerate() {
        match catalog::upsert_variant(sql, ctx, input) {
            Ok(kit) => kits.extend(kit.map(|k| k.to_string())),
            Err(e @ StoreError::Database { .. }) => return Err(e),
            Err(e) => errors.push(ItemError {
                index,
                kind: e.kind(),
                detail: e.to_string(),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(StoreError::Batch(errors));
    }
    stockhub_store::engine::stock::fill_shortfalls(sql, ctx, &kits)?;
    Ok(inputs.len())
}

#[utoipa::path(get, path = "/v1/variants/{sku}", tag = "catalog",
    params(("sku" = String, Path, description = "the SKU (URL-encoded)")),
    responses((status = 200, body = Variant), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_variant(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
) -> ApiResult<Json<Variant>> {
    let sku = parse_sku(&sku)?;
    let key = sku.to_string();
    let found = state
        .store
        .read(move |sql| catalog::get_variant(sql, sku.as_str()))
        .await?;
    found
        .map(Json)
        .ok_or_else(|| StoreError::not_found("sku", key).into())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VariantListQuery {
    /// Only variants of this product.
    pub product_id: Option<String>,
    /// Only SKUs that start with this (case-sensitive).
    pub sku_prefix: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariantPage {
    pub items: Vec<Variant>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub fn page_limit(limit: Option<i64>) -> ApiResult<i64> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(
            "invalid-request",
            format!("limit must be 1 to 1000, got {n}"),
        )),
    }
}

/// Lists variants in SKU order, a page at a time.
#[utoipa::path(get, path = "/v1/variants", tag = "catalog", params(VariantListQuery),
    responses((status = 200, body = VariantPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn list_variants(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<VariantListQuery>,
) -> ApiResult<Json<VariantPage>> {
    let limit = page_limit(q.limit)?;
    let filter = VariantFilter {
        product_id: q.product_id,
        sku_prefix: q.sku_prefix,
        after_sku: q.cursor,
        limit: limit + 1,
    };
    let mut items = state
        .store
        .read(move |sql| catalog::list_variants(sql, &filter))
        .await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|v| v.sku.clone())
    } else {
        None
    };
    Ok(Json(VariantPage { items, next_cursor }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationBody {
    /// A readable name; the code when absent.
    pub name: Option<String>,
}

#[utoipa::path(put, path = "/v1/locations/{code}", tag = "catalog",
    params(("code" = String, Path, description = "letters, digits, '-', '_', '.'")),
    request_body = LocationBody,
    responses((status = 200, body = Location), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub async fn put_location(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
    caller: Caller,
    body: JsonBody<LocationBody>,
) -> ApiResult<Response> {
    let code = parse_code("location", &code)?;
    let input = LocationInput {
        name: body.value.name.clone().unwrap_or_else(|| code.to_string()),
        code,
    };
    write::run(&state, caller, &body.canonical, move |sql, _| {
        Ok((StatusCode::OK, catalog::upsert_location(sql, &input)?))
    })
    .await
}

#[utoipa::path(get, path = "/v1/locations", tag = "catalog", responses((status = 200, body = Vec<Location>)))]
pub async fn list_locations(State(state): State<AppState>) -> ApiResult<Json<Vec<Location>>> {
    Ok(Json(state.store.read(catalog::list_locations).await?))
}
