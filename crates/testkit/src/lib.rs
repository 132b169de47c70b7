//! Test helpers: a stockhub server on port 0 with a fresh SQLite file, a JSON client for it,
//! and a dump of the whole database to prove that a refused request changed nothing.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use stockhub_app::push::{PushSettings, PushWorker};
use stockhub_http::{AppState, HttpSettings, Services};
use stockhub_store::StoreOptions;
use stockhub_store::{Clock, Store, SystemClock};

pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub db_path: PathBuf,
    /// The connectors and metrics the server and its push worker share.
    pub services: Services,
    /// The push worker the server runs (call `run_once` to drive it by hand as well).
    pub push: PushWorker,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    stop_loops: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
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
    let dir = tempfile::tempdir().expect("temporary directory");
    let db_path = dir.path().join("stockhub.db");
    let store = stockhub_store::open(
        db_path.to_str().expect("utf-8 path"),
        clock,
        &StoreOptions::default(),
    )
    .expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let base_url = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let services = Services::new(&store);
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
        db_path,
        services,
        push,
        stop: Some(stop),
        stop_loops,
        _dir: dir,
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
    store
        .read(|sql| {
            let tables: Vec<String> = sql
                .query(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                    &[],
                )?
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
