//! Test helpers: a stockhub server on port 0 with a fresh database of its own, a JSON client for
//! it, and a dump of the whole database to prove that a refused request changed nothing.
//!
//! Behaviour tests run on both backends: [`on_both_backends!`] writes each test twice, as
//! `NAME::sqlite` and `NAME::postgres`, and `spawn_app*` opens the backend of the test that calls
//! it (a SQLite file, or a PostgreSQL schema of its own; see `stockhub_store::testing` for the
//! server and for what happens when it is not there).
#![forbid(unsafe_code)]

use std::sync::Arc;

use serde_json::Value;
use stockhub_app::push::{PushSettings, PushWorker};
use stockhub_http::{AppState, HttpSettings, Services};
pub use stockhub_store::testing::TestBackend;
use stockhub_store::testing::{test_database, TestDatabase};
use stockhub_store::StoreOptions;
use stockhub_store::{Clock, Store, SystemClock};

tokio::task_local! {
    static BACKEND: TestBackend;
}

/// Runs a test body with `spawn_app*` opening `backend`.
pub async fn with_backend<F: std::future::Future<Output = ()>>(backend: TestBackend, body: F) {
    BACKEND.scope(backend, body).await;
}

/// The backend of the running test (SQLite outside [`on_both_backends!`]).
pub fn current_backend() -> TestBackend {
    BACKEND.try_with(|b| *b).unwrap_or(TestBackend::Sqlite)
}

/// Whether the PostgreSQL half of the suite runs here (it says so once when it does not, and
/// panics when it is required but the server does not answer).
pub fn postgres_runs() -> bool {
    stockhub_store::testing::postgres_runs()
}

/// A fresh database on the running test's backend, for tests that start `stockhub` processes.
pub fn fresh_database(label: &str) -> TestDatabase {
    test_database(current_backend(), label).expect("the PostgreSQL half runs (checked first)")
}

/// Writes each async test twice, as `NAME::sqlite` and `NAME::postgres`, with the attributes
/// given (`#[tokio::test]` and the like). The PostgreSQL one returns at once when the PostgreSQL
/// half of the suite does not run here.
#[macro_export]
macro_rules! on_both_backends {
    ($($(#[$meta:meta])* async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body() $body

            $(#[$meta])*
            async fn sqlite() {
                $crate::with_backend($crate::TestBackend::Sqlite, body()).await
            }

            $(#[$meta])*
            async fn postgres() {
                if $crate::postgres_runs() {
                    $crate::with_backend($crate::TestBackend::Postgres, body()).await
                }
            }
        }
    )*};
}

pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    pub store: Store,
    /// The database, as `stockhub --db` takes it.
    pub db_url: String,
    /// The connectors and metrics the server and its push worker share.
    pub services: Services,
    /// The push worker the server runs (call `run_once` to drive it by hand as well).
    pub push: PushWorker,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    stop_loops: tokio::sync::watch::Sender<bool>,
    _db: TestDatabase,
}

/// The answer to a request: status, headers and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The problem `type` of an error answer.
    pub fn problem_type(&self) -> &str {
        self.body.get("type").and_then(Value::as_str).unwrap_or("")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(HttpSettings::default(), Arc::new(SystemClock)).await
}

pub async fn spawn_app_with(settings: HttpSettings, clock: Arc<dyn Clock>) -> TestApp {
    spawn_app_full(settings, clock, PushSettings::default()).await
}

/// A server with its push worker and order-backfill loop running, as `stockhub serve` runs them.
pub async fn spawn_app_full(
    settings: HttpSettings,
    clock: Arc<dyn Clock>,
    push_settings: PushSettings,
) -> TestApp {
    let db = fresh_database("app");
    let store = stockhub_store::open(&db.url, clock, &StoreOptions::default()).expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let base_url = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let services = Services::new(&store, push_settings.request_timeout);
    let push = PushWorker::new(
        store.clone(),
        services.connectors.clone(),
        services.metrics.clone(),
        push_settings,
    );
    let (stop_loops, loops_stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(push.clone().run(loops_stopped.clone()));
    tokio::spawn(stockhub_app::backfill::run(
        store.clone(),
        services.connectors.clone(),
        push.clone(),
        std::time::Duration::from_secs(3600),
        loops_stopped,
    ));
    let state = AppState::with_services(store.clone(), settings, services.clone());
    tokio::spawn(stockhub_http::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    TestApp {
        base_url,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("client"),
        store,
        db_url: db.url.clone(),
        services,
        push,
        stop: Some(stop),
        stop_loops,
        _db: db,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.stop_loops.send(true);
    }
}

impl TestApp {
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base_url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        reply(req.send().await.expect("request sent")).await
    }

    /// Sends raw bytes as the body (for malformed or oversized documents).
    pub async fn request_raw(&self, method: &str, path: &str, body: Vec<u8>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let req = self
            .client
            .request(method, format!("{}{path}", self.base_url))
            .header("content-type", "application/json")
            .body(body);
        reply(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.request("POST", path, Some(body), &[]).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.request("PUT", path, Some(body), &[]).await
    }

    /// Every row of every table, in a stable order: equal dumps mean an unchanged database.
    pub async fn dump(&self) -> String {
        dump(&self.store).await
    }
}

async fn reply(res: reqwest::Response) -> Reply {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = res.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

/// Every row of every table of the store, in a stable order.
pub async fn dump(store: &Store) -> String {
    let is_postgres = store.kind() == "postgres";
    store
        .read(move |sql| {
            let tables_sql = if is_postgres {
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                 ORDER BY table_name COLLATE \"C\""
            } else {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
                 ORDER BY name"
            };
            let tables: Vec<String> = sql
                .query(tables_sql, &[])?
                .iter()
                .map(|r| r.text(0))
                .collect();
            let mut out = String::new();
            for table in tables {
                out.push_str(&format!("== {table}\n"));
                for row in sql.query(&format!("SELECT * FROM {table} ORDER BY 1, 2"), &[])? {
                    out.push_str(&format!("{:?}\n", row.0));
                }
            }
            Ok(out)
        })
        .await
        .expect("dump")
}

/// A `stockhub serve` child process on a port the OS picks; killed (SIGKILL) when dropped, so a
/// failing test leaves nothing behind (paused or not).
pub struct ServerProcess {
    child: tokio::process::Child,
    pub base_url: String,
}

impl ServerProcess {
    /// Starts `binary serve --db DB_URL`, reads the address it announces on standard output
    /// (kept in `dir`), and waits until it answers `/healthz`. Its log goes to `dir/NAME.log`.
    pub async fn start(binary: &str, db_url: &str, dir: &std::path::Path, name: &str) -> Self {
        Self::start_with_env(binary, db_url, dir, name, &[]).await
    }

    /// [`ServerProcess::start`] with these environment variables set, such as settings
    /// (`STOCKHUB_CHANNELS_PUSH_LEASE_SECONDS`).
    pub async fn start_with_env(
        binary: &str,
        db_url: &str,
        dir: &std::path::Path,
        name: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let out = dir.join(format!("{name}.out"));
        let log = dir.join(format!("{name}.log"));
        let mut child = tokio::process::Command::new(binary)
            .args(["serve", "--db", db_url, "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).expect("server output file"))
            .stderr(std::fs::File::create(&log).expect("server log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn stockhub serve");
        for _ in 0..3000 {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            let announced = text
                .lines()
                .find_map(|l| l.strip_prefix("stockhub listening on "))
                .and_then(|rest| rest.split_whitespace().next());
            if let Some(url) = announced {
                let server = Self {
                    child,
                    base_url: url.to_owned(),
                };
                server.wait_healthy().await;
                return server;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "stockhub serve exited with {status} before listening; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("stockhub serve did not announce its address within 30 s");
    }

    async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        for _ in 0..400 {
            let answer = client
                .get(format!("{}/healthz", self.base_url))
                .timeout(std::time::Duration::from_secs(2))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("stockhub serve at {} never became healthy", self.base_url);
    }

    /// SIGKILL, then reap the process.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill stockhub serve");
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process has not been reaped")
    }

    /// Stops the process where it is (SIGSTOP), as a machine that stalls stops it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process run on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed: {status}");
    }
}

/// Runs `binary verify --db DB_URL` (every projection equal to its rebuild from the ledger) and
/// fails the test, naming `when`, unless it passes.
pub async fn assert_verify_passes(binary: &str, db_url: &str, when: &str) {
    let output = tokio::process::Command::new(binary)
        .args(["verify", "--db", db_url])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run stockhub verify");
    assert!(
        output.status.success(),
        "stockhub verify failed {when} ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
