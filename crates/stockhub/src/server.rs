//! The wiring of a running stockhub: the store, the HTTP API, the maintenance loops, the push
//! worker and the order-backfill loop, started and stopped together. `stockhub serve` and
//! `stockhub demo` both run exactly this.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use stockhub_app::push::{PushSettings, PushWorker};
use stockhub_http::maintenance::{self, MaintenanceSettings};
use stockhub_http::{AppState, HttpSettings, Services};
use stockhub_store::{Store, SystemClock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::settings::Settings;

/// Opens the database the settings name.
pub fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    stockhub_store::open(
        &settings.db,
        Arc::new(SystemClock),
        &settings.storage_options(),
    )
    .with_context(|| {
        format!(
            "opening the database {}",
            stockhub_store::postgres::redact(&settings.db)
        )
    })
}

/// A stockhub serving on its listener, with its loops, until [`Server::stop`].
pub struct Server {
    pub address: SocketAddr,
    pub store: Store,
    /// The connectors and metrics the API and the push worker share.
    pub services: Services,
    stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    loops: Vec<JoinHandle<()>>,
}

/// The push engine's settings from `[channels]`.
fn push_settings(settings: &Settings) -> PushSettings {
    let mut push = PushSettings::default();
    push.retry.give_up_after = Duration::from_secs(settings.channels.push_dead_after_hours * 3600);
    push.hold = Duration::from_secs(settings.channels.unexplained_hold_seconds);
    push.lease = Duration::from_secs(settings.channels.push_lease_seconds);
    push.request_timeout = Duration::from_secs(settings.channels.request_timeout_seconds);
    push
}

impl Server {
    /// Starts serving on `listener` with the loops a server runs.
    pub fn start(
        settings: &Settings,
        store: Store,
        listener: tokio::net::TcpListener,
    ) -> anyhow::Result<Self> {
        let address = listener
            .local_addr()
            .context("reading the listening address")?;
        let (stop, stopped) = watch::channel(false);
        let push_settings = push_settings(settings);
        let services = Services::new(&store, push_settings.request_timeout);
        let push = PushWorker::new(
            store.clone(),
            services.connectors.clone(),
            services.metrics.clone(),
            push_settings,
        );
        let loops = vec![
            tokio::spawn(maintenance::run(
                store.clone(),
                maintenance_settings(settings),
                stopped.clone(),
            )),
            tokio::spawn(push.clone().run(stopped.clone())),
            tokio::spawn(stockhub_app::backfill::run(
                store.clone(),
                services.connectors.clone(),
                push,
                Duration::from_secs(settings.channels.reconciliation_interval_seconds),
                stopped.clone(),
            )),
        ];
        let state = AppState::with_services(
            store.clone(),
            HttpSettings {
                body_limit_bytes: settings.http.body_limit_bytes,
            },
            services.clone(),
        );
        let mut on_stop = stopped;
        let shutdown = async move {
            let _ = on_stop.changed().await;
        };
        let http = tokio::spawn(stockhub_http::serve(listener, state, shutdown));
        tracing::info!(%address, db = %settings.db, "stockhub is serving");
        Ok(Self {
            address,
            store,
            services,
            stop,
            http,
            loops,
        })
    }

    /// `http://<address>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops taking requests, finishes those in flight, and waits for the loops to end.
    pub async fn stop(self) -> anyhow::Result<()> {
        tracing::info!("shutting down: no new requests, finishing those in flight");
        let _ = self.stop.send(true);
        self.http
            .await
            .context("the server task failed")?
            .context("serving")?;
        for task in self.loops {
            let _ = task.await;
        }
        Ok(())
    }
}

fn maintenance_settings(settings: &Settings) -> MaintenanceSettings {
    MaintenanceSettings {
        reservation_sweep_interval: Duration::from_millis(
            settings.maintenance.reservation_sweep_interval_ms,
        ),
        idempotency_retention: Duration::from_secs(
            settings.maintenance.idempotency_retention_hours * 3600,
        ),
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
