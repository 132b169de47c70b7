//! Who is calling and how a write is carried out: attribution, correlation, and the
//! `Idempotency-Key` contract of DESIGN §7. A key is scoped to (token, method, path, key); the
//! same canonical body replays the stored answer, a different one is refused, and a repeat
//! while the first is still running gets `idempotency-in-progress`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value as Json_;
use sha2::{Digest, Sha256};
use stockhub_store::engine::idempotency::{self, Prior};
use stockhub_store::model::Ctx;
use stockhub_store::{ItemError, Sql, StoreError};

use crate::problem::{ApiError, ApiResult};
use crate::AppState;

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const KEY_MAX_CHARS: usize = 255;

/// The caller of a request: attribution for the ledger and the idempotency scope.
/// The scope is (token, method, decoded path, key).
pub struct Caller {
    pub ctx: Ctx,
    /// The token the request was made with; `anonymous` until API tokens exist.
    pub token: String,
    pub method: String,
    pub path: String,
    pub key: Option<String>,
}

impl Caller {
    /// The idempotency scope of the request, or of one item of a batch.
    pub fn scope(&self, key: &str) -> String {
        format!("{}|{}|{}|{}", self.token, self.method, self.path, key)
    }
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A correlation id for requests that bring none.
fn new_request_id() -> String {
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("req-{ms:x}-{n:x}")
}

pub fn check_key(raw: &str, what: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.chars().count() <= KEY_MAX_CHARS
        && raw.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "{what} must be 1 to {KEY_MAX_CHARS} visible ASCII characters"
        ))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let key = match parts.headers.get(IDEMPOTENCY_HEADER) {
            None => None,
            Some(v) => {
                let raw = v.to_str().unwrap_or("");
                Some(
                    check_key(raw, "the Idempotency-Key header")
                        .map_err(|m| ApiError::invalid("invalid-idempotency-key", m))?,
                )
            }
        };
        let request_id = header("x-request-id")
            .filter(|id| check_key(id, "x-request-id").is_ok())
            .unwrap_or_else(new_request_id);
        let token = "anonymous".to_owned();
        Ok(Self {
            ctx: Ctx {
                source: format!("api:{token}"),
                correlation_id: request_id,
                idempotency_key: key.clone(),
            },
            token,
            method: parts.method.to_string(),
            // Decoded, so that `/v1/variants/A%2DB` and `/v1/variants/A-B` share one scope.
            path: percent_encoding::percent_decode_str(parts.uri.path())
                .decode_utf8_lossy()
                .into_owned(),
            key,
        })
    }
}

/// Writes a JSON value with its object keys sorted, so that two documents that mean the same
/// are the same bytes.
pub fn canonical_string(v: &Json_) -> String {
    fn write(v: &Json_, out: &mut String) {
        match v {
            Json_::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Json_::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Json_::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

pub fn request_hash(canonical: &Json_) -> String {
    hex::encode(Sha256::digest(canonical_string(canonical).as_bytes()))
}

/// Scopes being worked on by this process right now.
#[derive(Default, Clone)]
pub struct InFlight(Arc<Mutex<HashSet<String>>>);

struct InFlightGuard {
    set: InFlight,
    scope: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.0.lock() {
            set.remove(&self.scope);
        }
    }
}

impl InFlight {
    fn claim(&self, scope: &str) -> Option<InFlightGuard> {
        let mut set = self.0.lock().ok()?;
        set.insert(scope.to_owned()).then(|| InFlightGuard {
            set: self.clone(),
            scope: scope.to_owned(),
        })
    }
}

/// Runs a write as one unit of work. With an idempotency key, the check, the write and the
/// stored answer share that unit's transaction; without one, the answer is serialized after the
/// commit, off the writer.
pub async fn run<T, F>(
    state: &AppState,
    caller: Caller,
    canonical: &Json_,
    mut f: F,
) -> ApiResult<Response>
where
    T: serde::Serialize + Send + 'static,
    F: FnMut(&mut dyn Sql, &Ctx) -> stockhub_store::Result<(StatusCode, T)> + Send + 'static,
{
    let ctx = caller.ctx.clone();
    let Some(key) = caller.key.clone() else {
        let (status, body) = state.store.write(move |sql| f(sql, &ctx)).await?;
        return Ok((status, Json(body)).into_response());
    };
    let scope = caller.scope(&key);
    let hash = request_hash(canonical);
    let in_progress = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "idempotency-in-progress",
            "a request with this Idempotency-Key is still being processed; retry after it completes",
        )
    };
    let Some(_guard) = state.inflight.claim(&scope) else {
        return Err(in_progress());
    };
    // Other processes on the same database learn that this scope is in progress from a mark
    // committed before the request runs (a single SQLite process needs only the claim above).
    let shared = state.store.kind() != "sqlite";
    if shared {
        let (scope, hash) = (scope.clone(), hash.clone());
        match state
            .store
            .write(move |sql| idempotency::begin(sql, &scope, &hash))
            .await?
        {
            Prior::None => {}
            Prior::InProgress => return Err(in_progress()),
            Prior::Replay { status, body } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                return Ok(replay_response(status, body));
            }
        }
    }
    let (unit_scope, unit_hash) = (scope.clone(), hash.clone());
    let ran = state
        .store
        .write(move |sql| {
            let (scope, hash) = (&unit_scope, &unit_hash);
            if !shared {
                if let Prior::Replay { status, body } = idempotency::lookup(sql, scope, hash)? {
                    return Ok((
                        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                        body,
                        true,
                    ));
                }
            }
            let (status, body) = f(sql, &ctx)?;
            let body = serde_json::to_value(&body).unwrap_or(Json_::Null);
            if shared {
                idempotency::finish(sql, scope, hash, status.as_u16(), &body)?;
            } else {
                idempotency::store(sql, scope, hash, status.as_u16(), &body)?;
            }
            Ok::<_, StoreError>((status, body, false))
        })
        .await;
    if shared && ran.is_err() {
        let scope = scope.clone();
        if let Err(e) = state
            .store
            .write(move |sql| idempotency::abandon(sql, &scope))
            .await
        {
            tracing::warn!(error = %e, "removing an in-progress idempotency mark failed; it lapses by itself");
        }
    }
    let (status, body, replayed) = ran?;
    if replayed {
        return Ok(replay_response(status, body));
    }
    Ok((status, Json(body)).into_response())
}

/// A stored answer, marked as a replay.
fn replay_response(status: StatusCode, body: Json_) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// The answer to a batch refused at the edge: its own item errors plus those the store found in
/// the well-formed items (`positions[i]` is the batch index of the i-th well-formed item).
pub fn merge_item_errors(
    mut errors: Vec<ItemError>,
    checked: Option<StoreError>,
    positions: &[usize],
) -> ApiError {
    match checked {
        Some(StoreError::Batch(found)) => errors.extend(found.into_iter().map(|e| ItemError {
            index: positions[e.index],
            ..e
        })),
        Some(other) => return other.into(),
        None => {}
    }
    errors.sort_by_key(|e| e.index);
    ApiError::batch(errors)
}
