//! PostgreSQL for stockhub's own tests: every test gets a schema of its own on one server, so
//! that tests run in parallel without seeing each other's rows.
//!
//! - `STOCKHUB_TEST_POSTGRES_URL` names the server (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`).
//! - `STOCKHUB_TEST_POSTGRES` says what to do without one: `auto` (the default) runs the
//!   PostgreSQL half of the suite when the server answers and otherwise says on the terminal that
//!   it did not run; `require` (CI) fails every PostgreSQL test when the server does not answer;
//!   `skip` never runs it.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use postgres::{Client, NoTls};

use crate::postgres::off_async;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const SCHEMA_PREFIX: &str = "stockhub_test_";
/// Schemas left by earlier runs are dropped once they are this old.
const STALE_AFTER_SECONDS: u64 = 3 * 3600;

/// The server tests use.
pub fn server_url() -> String {
    std::env::var("STOCKHUB_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Auto,
    Require,
    Skip,
}

fn mode() -> Mode {
    match std::env::var("STOCKHUB_TEST_POSTGRES").as_deref() {
        Ok("require") => Mode::Require,
        Ok("skip") => Mode::Skip,
        Ok("auto") | Err(_) => Mode::Auto,
        Ok(other) => panic!("STOCKHUB_TEST_POSTGRES must be auto, require or skip, not {other:?}"),
    }
}

/// Whether the server answered (checked once per test process), or why not.
fn reachable() -> &'static Result<(), String> {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    CHECK.get_or_init(|| {
        off_async(|| {
            let mut client = Client::connect(&server_url(), NoTls).map_err(|e| e.to_string())?;
            drop_stale_schemas(&mut client);
            Ok(())
        })
    })
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn drop_stale_schemas(client: &mut Client) {
    let Ok(rows) = client.query(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'stockhub\\_test\\_%'",
        &[],
    ) else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let created: Option<u64> = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|t| t.parse().ok());
        if created.is_some_and(|t| t + STALE_AFTER_SECONDS < now_s()) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        }
    }
}

/// Says once per test process, on the terminal (past the test harness's capture), that the
/// PostgreSQL half of the suite did not run.
fn say_not_run(why: &str) {
    static SAID: Mutex<bool> = Mutex::new(false);
    let Ok(mut said) = SAID.lock() else { return };
    if !*said {
        *said = true;
        let _ = writeln!(
            std::io::stderr(),
            "\nNOTE: the PostgreSQL half of this test suite DID NOT RUN: {why}. \
             Start PostgreSQL at {} (or set STOCKHUB_TEST_POSTGRES_URL); CI sets \
             STOCKHUB_TEST_POSTGRES=require so that a missing server fails instead.\n",
            crate::postgres::redact(&server_url())
        );
    }
}

/// Whether the PostgreSQL half of the suite runs here; when it does not, that is said once on
/// the terminal. Panics when PostgreSQL is required and does not answer.
pub fn postgres_runs() -> bool {
    if mode() == Mode::Skip {
        say_not_run("STOCKHUB_TEST_POSTGRES=skip");
        return false;
    }
    match (mode(), reachable()) {
        (Mode::Require, Err(e)) => panic!(
            "PostgreSQL is required (STOCKHUB_TEST_POSTGRES=require) but {} does not answer: {e}",
            crate::postgres::redact(&server_url())
        ),
        (_, Err(e)) => {
            say_not_run(&format!(
                "{} does not answer ({e})",
                crate::postgres::redact(&server_url())
            ));
            false
        }
        (_, Ok(())) => true,
    }
}

/// A fresh, empty schema for one test, as a database URL whose connections use it; `None` when
/// the PostgreSQL half does not run here (see [`postgres_runs`]).
pub fn fresh_database(label: &str) -> Option<String> {
    if !postgres_runs() {
        return None;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    let schema = format!(
        "{SCHEMA_PREFIX}{}_{}_{}_{clean}",
        now_s(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let url = server_url();
    off_async(|| {
        let mut client = Client::connect(&url, NoTls)
            .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL server: {e}"));
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap_or_else(|e| panic!("creating the test schema {schema}: {e}"));
    });
    let separator = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{separator}options=-csearch_path%3D{schema}"))
}

/// The backends every behaviour test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

/// A database of one test's own: a SQLite file in a temporary directory, or a PostgreSQL schema.
#[derive(Debug)]
pub struct TestDatabase {
    pub backend: TestBackend,
    /// What `stockhub --db` and [`crate::open`] take.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh database on `backend`; `None` when the PostgreSQL half does not run here.
pub fn test_database(backend: TestBackend, label: &str) -> Option<TestDatabase> {
    match backend {
        TestBackend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let path = dir.path().join("stockhub.db");
            Some(TestDatabase {
                backend,
                url: path.to_str().expect("utf-8 temporary path").to_owned(),
                _dir: Some(dir),
            })
        }
        TestBackend::Postgres => fresh_database(label).map(|url| TestDatabase {
            backend,
            url,
            _dir: None,
        }),
    }
}

/// Writes a test twice, as `NAME::sqlite` and `NAME::postgres`; the body gets the backend as
/// `$backend` and is expected to return early when [`test_database`] gives `None`.
#[macro_export]
macro_rules! test_on_both_backends {
    ($(#[$meta:meta])* fn $name:ident($backend:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($backend: $crate::testing::TestBackend) $body

            $(#[$meta])*
            #[test]
            fn sqlite() {
                run($crate::testing::TestBackend::Sqlite)
            }

            $(#[$meta])*
            #[test]
            fn postgres() {
                run($crate::testing::TestBackend::Postgres)
            }
        }
    };
}

/// The context of a test's writes: source `test`.
pub fn ctx() -> crate::model::Ctx {
    crate::model::Ctx {
        source: "test".into(),
        correlation_id: "test".into(),
        idempotency_key: None,
    }
}

/// A code (location, channel) a test knows to be valid.
pub fn code(s: &str) -> stockhub_core::Code {
    stockhub_core::Code::parse("code", s).expect("test codes are valid")
}

/// Creates (or keeps) locations, each named by its code.
pub fn add_locations(sql: &mut dyn crate::Sql, codes: &[&str]) -> crate::Result<()> {
    for c in codes {
        crate::engine::catalog::upsert_location(
            sql,
            &crate::model::LocationInput {
                code: code(c),
                name: (*c).to_owned(),
            },
        )?;
    }
    Ok(())
}

/// Creates (or keeps) plain variants, each named by its SKU: no product, no buffer, no kit.
pub fn add_variants(sql: &mut dyn crate::Sql, skus: &[&str]) -> crate::Result<()> {
    for sku in skus {
        crate::engine::catalog::upsert_variant(
            sql,
            &ctx(),
            &crate::model::VariantInput {
                sku: stockhub_core::Sku::parse(sku).expect("test SKUs are valid"),
                product_id: None,
                title: None,
                option_values: serde_json::json!({}),
                barcode: None,
                buffer: 0,
                kit: None,
            },
        )?;
    }
    Ok(())
}
