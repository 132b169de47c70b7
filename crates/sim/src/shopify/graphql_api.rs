//! `POST /admin/api/{version}/graphql.json`: the Admin GraphQL endpoint (API_FACTS §1.1, §1.2,
//! §1.7, §9).
//!
//! Every answer carries `extensions.cost {requestedQueryCost, actualQueryCost, throttleStatus
//! {maximumAvailable, currentlyAvailable, restoreRate}}`. The requested cost is taken from the
//! store's bucket before running and the difference to the actual cost given back after. When
//! the bucket cannot hold the requested cost the answer is `THROTTLED` with
//! `actualQueryCost: null` and no `data`, status 200 (or the configured status; §11 leaves it
//! open). A query costing more than 1000 is refused with `MAX_COST_EXCEEDED`.
//!
//! `@idempotent(key:)` on a mutation field: the same key with the same arguments returns the
//! original result without applying again; the same key with other arguments gives
//! `IDEMPOTENCY_KEY_PARAMETER_MISMATCH`; a key whose first request is still being processed
//! gives `IDEMPOTENCY_CONCURRENT_REQUEST`. Keys are kept for the life of the store (Shopify's
//! retention window is unconfirmed, §1.2). A write, once accepted, completes even if the client
//! hangs up.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::inventory::{self, SetInput, SetOutcome, UserError};
use super::model::Idempotency;
use super::resolve::{AdminResolver, Obj};
use super::schema::AdminSchema;
use super::Inner;
use crate::clock;
use crate::graphql::{self, GqlError, OperationKind, Prepared};
use crate::writes::WriteSpan;

/// The body Shopify answers a bad access token with, on GraphQL and REST alike.
pub(crate) const INVALID_TOKEN: &str =
    "[API] Invalid API key or access token (unrecognized login or wrong password)";

/// The 401 of a request without the store's access token.
pub(crate) fn token_refusal(inner: &Inner, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok());
    if token == Some(inner.config.access_token.as_str()) {
        return None;
    }
    let body = axum::Json(json!({ "errors": INVALID_TOKEN }));
    Some((StatusCode::UNAUTHORIZED, body).into_response())
}

fn answer(status: StatusCode, body: &Value, version: &str) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(version) {
        response
            .headers_mut()
            .insert("x-shopify-api-version", value);
    }
    response
}

fn errors_only(errors: &[GqlError], version: &str) -> Response {
    let errors: Vec<Value> = errors.iter().map(GqlError::to_json).collect();
    answer(StatusCode::OK, &json!({ "errors": errors }), version)
}

/// The parts of a GraphQL request body.
struct Request {
    query: String,
    variables: Map<String, Value>,
    operation_name: Option<String>,
}

fn read_request(headers: &HeaderMap, body: &[u8]) -> Option<Request> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/graphql") {
        let query = String::from_utf8(body.to_vec()).ok()?;
        return Some(Request {
            query,
            variables: Map::new(),
            operation_name: None,
        });
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    let query = value.get("query")?.as_str()?.to_owned();
    let variables = match value.get("variables") {
        Some(Value::Object(map)) => map.clone(),
        Some(Value::String(text)) => serde_json::from_str(text).ok()?,
        _ => Map::new(),
    };
    let operation_name = value
        .get("operationName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some(Request {
        query,
        variables,
        operation_name,
    })
}

/// One `inventorySetQuantities` field of a mutation, read and ready to run.
struct MutationCall {
    response_key: String,
    input: SetInput,
    fingerprint: String,
    idempotency_key: Option<String>,
}

fn plan_mutations(
    prepared: &Prepared<'_>,
    version: &str,
) -> Result<Vec<MutationCall>, Vec<GqlError>> {
    if prepared.operation.kind != OperationKind::Mutation {
        return Ok(Vec::new());
    }
    let mut calls = Vec::new();
    for (response_key, fields) in prepared.root_fields() {
        let field = fields[0];
        let arguments = prepared.arguments(field);
        let variable = field
            .arguments
            .iter()
            .find_map(|(name, value)| match value {
                graphql::Value::Variable(v) if name == "input" => Some(v.clone()),
                _ => None,
            });
        let input = arguments.get("input").cloned().unwrap_or(Value::Null);
        let input = inventory::coerce(&input, version, variable).map_err(|e| vec![e])?;
        let idempotency_key = match field.directives.iter().find(|d| d.name == "idempotent") {
            None => None,
            Some(directive) => Some(
                prepared
                    .directive_arguments(directive)
                    .get("key")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        vec![GqlError::new(
                            "Directive 'idempotent' is missing required arguments: key",
                        )]
                    })?,
            ),
        };
        let fingerprint = format!("{}:{}", field.name, Value::Object(arguments));
        calls.push(MutationCall {
            response_key,
            input,
            fingerprint,
            idempotency_key,
        });
    }
    Ok(calls)
}

/// What to do with one mutation call, decided under the lock before any delay.
enum Plan {
    Apply(MutationCall),
    Answer(String, SetOutcome),
}

fn reserve(inner: &Inner, calls: Vec<MutationCall>) -> Vec<Plan> {
    let mut state = inner.lock();
    calls
        .into_iter()
        .map(|call| {
            let Some(key) = call.idempotency_key.clone() else {
                return Plan::Apply(call);
            };
            let failed = |code, message: &str| {
                Plan::Answer(
                    call.response_key.clone(),
                    SetOutcome::failed(UserError::new(None, code, message)),
                )
            };
            match state.idempotency.get(&key) {
                None => {
                    state.idempotency.insert(
                        key,
                        Idempotency::InFlight {
                            fingerprint: call.fingerprint.clone(),
                        },
                    );
                    Plan::Apply(call)
                }
                Some(Idempotency::InFlight { fingerprint }) if *fingerprint == call.fingerprint => {
                    failed(
                        "IDEMPOTENCY_CONCURRENT_REQUEST",
                        "A request with this idempotency key is already in progress.",
                    )
                }
                Some(Idempotency::Done {
                    fingerprint,
                    outcome,
                }) if *fingerprint == call.fingerprint => {
                    Plan::Answer(call.response_key.clone(), outcome.clone())
                }
                Some(_) => failed(
                    "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                    "The idempotency key was already used with different parameters.",
                ),
            }
        })
        .collect()
}

/// Runs the mutation fields: reserve keys, wait the processing delay, apply; the span of a call
/// that names any item is logged. Runs as its own task so that an accepted write completes
/// even if the client goes away.
async fn run_mutations(inner: Arc<Inner>, calls: Vec<MutationCall>) -> HashMap<String, SetOutcome> {
    let plans = reserve(&inner, calls);
    let item_ids = inventory::item_ids(plans.iter().filter_map(|p| match p {
        Plan::Apply(call) => Some(&call.input),
        Plan::Answer(..) => None,
    }));
    let began_us = clock::monotonic_us();
    if plans.iter().any(|p| matches!(p, Plan::Apply(_))) {
        inner.faults.processing_delay().await;
    }
    let outcomes = apply_plans(&inner, plans);
    if !item_ids.is_empty() {
        let span = WriteSpan {
            item_ids,
            began_us,
            ended_us: clock::monotonic_us(),
        };
        inner
            .writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(span);
    }
    outcomes
}

/// Applies the planned calls under the store's lock and answers each.
fn apply_plans(inner: &Arc<Inner>, plans: Vec<Plan>) -> HashMap<String, SetOutcome> {
    inner.act(|state| {
        let mut outcomes = HashMap::new();
        for plan in plans {
            let (key, outcome) = match plan {
                Plan::Answer(key, outcome) => (key, outcome),
                Plan::Apply(call) => {
                    let outcome = inventory::apply(state, &call.input);
                    if let Some(key) = call.idempotency_key {
                        let done = Idempotency::Done {
                            fingerprint: call.fingerprint,
                            outcome: outcome.clone(),
                        };
                        state.idempotency.insert(key, done);
                    }
                    (call.response_key, outcome)
                }
            };
            outcomes.insert(key, outcome);
        }
        outcomes
    })
}

fn cost_json(inner: &Inner, requested: u64, actual: Option<u64>) -> Value {
    let mut bucket = inner
        .graphql_bucket
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let config = bucket.config();
    json!({
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": {
            "maximumAvailable": config.capacity,
            "currentlyAvailable": bucket.available().floor() as i64,
            "restoreRate": config.per_second,
        }
    })
}

fn throttled(inner: &Inner, requested: u64, wait_seconds: f64, version: &str) -> Response {
    let body = json!({
        "errors": [{
            "message": "Throttled",
            "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}
        }],
        "extensions": {"cost": cost_json(inner, requested, None)}
    });
    let status = StatusCode::from_u16(inner.config.throttled_status).unwrap_or(StatusCode::OK);
    let mut response = answer(status, &body, version);
    if status == StatusCode::TOO_MANY_REQUESTS {
        let seconds = wait_seconds.ceil().max(1.0).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

fn max_cost_exceeded(requested: u64, max: u64, version: &str) -> Response {
    let error = GqlError {
        message: format!("Query cost is {requested}, which exceeds the single query max cost limit ({max}).\n\nSee https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\ncost of a query is calculated.\n\nTo query larger amounts of data with fewer limits, bulk operations should be used instead.\nSee https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage details.\n"),
        locations: Vec::new(),
        path: None,
        extensions: Some(json!({"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": max})),
    };
    errors_only(&[error], version)
}

/// The GraphQL endpoint.
pub(crate) async fn handle(
    State(inner): State<Arc<Inner>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = token_refusal(&inner, &headers) {
        return response;
    }
    let Some(request) = read_request(&headers, &body) else {
        let body = json!({"errors": {"query": "Required parameter missing or invalid"}});
        return answer(StatusCode::BAD_REQUEST, &body, &version);
    };
    let document = match graphql::parse(&request.query) {
        Ok(document) => document,
        Err(error) => {
            let error = GqlError {
                message: error.message,
                locations: vec![error.pos],
                path: None,
                extensions: None,
            };
            return errors_only(&[error], &version);
        }
    };
    let prepared = match graphql::prepare(
        &AdminSchema,
        &document,
        request.operation_name.as_deref(),
        request.variables,
    ) {
        Ok(prepared) => prepared,
        Err(errors) => return errors_only(&errors, &version),
    };
    let calls = match plan_mutations(&prepared, &version) {
        Ok(calls) => calls,
        Err(errors) => return errors_only(&errors, &version),
    };
    let requested = graphql::requested_cost(&AdminSchema, &prepared);
    if let Some(refusal) = charge(&inner, requested, &version) {
        return refusal;
    }
    run(&inner, &prepared, calls, requested, &version).await
}

/// Takes the requested cost from the bucket; the refusal when it is over the single-query cap
/// or the bucket cannot hold it.
fn charge(inner: &Inner, requested: u64, version: &str) -> Option<Response> {
    if requested > inner.config.max_query_cost {
        return Some(max_cost_exceeded(
            requested,
            inner.config.max_query_cost,
            version,
        ));
    }
    let mut bucket = inner
        .graphql_bucket
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let wait = bucket.try_fill(requested as f64).err()?;
    drop(bucket);
    Some(throttled(inner, requested, wait, version))
}

/// Runs a charged request, gives back what it did not cost, and answers.
async fn run(
    inner: &Arc<Inner>,
    prepared: &Prepared<'_>,
    calls: Vec<MutationCall>,
    requested: u64,
    version: &str,
) -> Response {
    let outcomes = if calls.is_empty() {
        HashMap::new()
    } else {
        match tokio::spawn(run_mutations(inner.clone(), calls)).await {
            Ok(outcomes) => outcomes,
            Err(_) => {
                return answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"errors": "Internal error"}),
                    version,
                )
            }
        }
    };
    let outcome = {
        let state = inner.lock();
        let resolver = AdminResolver {
            state: &state,
            outcomes: &outcomes,
        };
        let root = match prepared.operation.kind {
            OperationKind::Mutation => Obj::Mutation,
            _ => Obj::Query,
        };
        graphql::execute(&AdminSchema, prepared, &resolver, root)
    };
    let actual = outcome.actual_cost.min(requested);
    inner
        .graphql_bucket
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .refund((requested - actual) as f64);
    let mut body = json!({ "data": outcome.data, "extensions": {"cost": cost_json(inner, requested, Some(actual))} });
    if !outcome.errors.is_empty() {
        body["errors"] = Value::Array(outcome.errors.iter().map(GqlError::to_json).collect());
    }
    answer(StatusCode::OK, &body, version)
}
