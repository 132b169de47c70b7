//! Stored answers of idempotent requests. A scope is (token, method, route, key); the request is
//! identified by the hash of its canonical JSON. Only successes are stored: a refused request
//! changed nothing, so repeating it simply asks again.
//!
//! Where several processes share the database, a request marks its scope as in progress in a
//! transaction of its own before it runs (`begin`, status 0), so that a copy arriving at another
//! process meanwhile is told `idempotency-in-progress`; the answer replaces the mark (`finish`),
//! a refusal removes it (`abandon`), and a mark left by a process that died is taken over after
//! `IN_PROGRESS_LEASE_MS`.

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
    /// Another process is running a request of this scope right now.
    InProgress,
}

/// How long an in-progress mark holds its scope before it is taken over (its process died).
pub const IN_PROGRESS_LEASE_MS: i64 = 5 * 60 * 1000;

pub fn lookup(sql: &mut dyn Sql, scope: &str, request_hash: &str) -> Result<Prior> {
    let row = sql.query_opt(
        "SELECT request_hash, status_code, response, created_at FROM idempotency_keys
         WHERE scope = ?1",
        args![scope],
    )?;
    let now = sql.now_ms();
    match row {
        None => Ok(Prior::None),
        Some(r) if r.int(1) == 0 => Ok(if r.int(3) > now - IN_PROGRESS_LEASE_MS {
            Prior::InProgress
        } else {
            Prior::None
        }),
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

/// Marks the scope as in progress unless it already holds an answer or a live mark (then says
/// which); in a transaction of its own, before the request runs.
pub fn begin(sql: &mut dyn Sql, scope: &str, request_hash: &str) -> Result<Prior> {
    let prior = lookup(sql, scope, request_hash)?;
    if !matches!(prior, Prior::None) {
        return Ok(prior);
    }
    let now = sql.now_ms();
    let marked = sql.query_opt(
        "INSERT INTO idempotency_keys (scope, request_hash, status_code, response, created_at)
         VALUES (?1, ?2, 0, '', ?3)
         ON CONFLICT (scope) DO UPDATE SET request_hash = excluded.request_hash,
             created_at = excluded.created_at
         WHERE idempotency_keys.status_code = 0 AND idempotency_keys.created_at <= ?4
         RETURNING scope",
        args![scope, request_hash, now, now - IN_PROGRESS_LEASE_MS],
    )?;
    if marked.is_some() {
        return Ok(Prior::None);
    }
    // Another process marked or answered the scope since the lookup (and committed first).
    match lookup(sql, scope, request_hash)? {
        Prior::None => Ok(Prior::InProgress),
        prior => Ok(prior),
    }
}

/// Replaces the scope's in-progress mark with the answer, in the request's own transaction.
pub fn finish(
    sql: &mut dyn Sql,
    scope: &str,
    request_hash: &str,
    status: u16,
    body: &Json,
) -> Result<()> {
    let now = sql.now_ms();
    let replaced = sql.execute(
        "UPDATE idempotency_keys SET status_code = ?3, response = ?4, created_at = ?5
         WHERE scope = ?1 AND request_hash = ?2 AND status_code = 0",
        args![
            scope,
            request_hash,
            i64::from(status),
            body.to_string(),
            now
        ],
    )?;
    if replaced == 0 {
        return Err(StoreError::Invalid(
            "the request's in-progress mark was taken over; retry the request".into(),
        ));
    }
    Ok(())
}

/// Removes the scope's in-progress mark after the request was refused.
pub fn abandon(sql: &mut dyn Sql, scope: &str) -> Result<()> {
    sql.execute(
        "DELETE FROM idempotency_keys WHERE scope = ?1 AND status_code = 0",
        args![scope],
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
