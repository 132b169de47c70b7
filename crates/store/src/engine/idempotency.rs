//! Stored answers of idempotent requests. A scope is (token, method, route, key); the request is
//! identified by the hash of its canonical JSON. Only successes are stored: a refused request
//! changed nothing, so repeating it simply asks again.

use serde_json::Value as Json;

use crate::args;
use crate::error::{Result, StoreError};
use crate::sql::Sql;

/// What a scope already holds.
pub enum Prior {
    None,
    /// The same request was applied before: here is its answer.
    Replay {
        status: u16,
        body: Json,
    },
}

pub fn lookup(sql: &mut dyn Sql, scope: &str, request_hash: &str) -> Result<Prior> {
    let row = sql.query_opt(
        "SELECT request_hash, status_code, response FROM idempotency_keys WHERE scope = ?1",
        args![scope],
    )?;
    match row {
        None => Ok(Prior::None),
        Some(r) if r.text(0) == request_hash => Ok(Prior::Replay {
            status: u16::try_from(r.int(1)).unwrap_or(200),
            body: serde_json::from_str(&r.text(2)).unwrap_or(Json::Null),
        }),
        Some(_) => Err(StoreError::IdempotencyConflict),
    }
}

pub fn store(
    sql: &mut dyn Sql,
    scope: &str,
    request_hash: &str,
    status: u16,
    body: &Json,
) -> Result<()> {
    let now = sql.now_ms();
    sql.execute(
        "INSERT INTO idempotency_keys (scope, request_hash, status_code, response, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        args![
            scope,
            request_hash,
            i64::from(status),
            body.to_string(),
            now
        ],
    )?;
    Ok(())
}

/// Forgets answers older than the retention; returns how many were removed.
pub fn expire(sql: &mut dyn Sql, retention_ms: i64, limit: i64) -> Result<u64> {
    let cutoff = sql.now_ms() - retention_ms;
    sql.execute(
        "DELETE FROM idempotency_keys WHERE scope IN
             (SELECT scope FROM idempotency_keys WHERE created_at < ?1 LIMIT ?2)",
        args![cutoff, limit],
    )
}
