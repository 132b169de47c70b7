//! The `stockhub` binary: the CLI, settings, telemetry, and the wiring of concrete adapters.
#![forbid(unsafe_code)]

mod settings;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stockhub_app::push::{PushSettings, PushWorker};
use stockhub_http::maintenance::{self, MaintenanceSettings};
use stockhub_http::{AppState, HttpSettings, Services};
use stockhub_store::engine::verify;
use stockhub_store::{Store, SystemClock};

use crate::settings::Settings;

/// stockhub: the single, canonical source of stock counts for a brand that sells the same
/// units on many channels at once.
#[derive(Debug, Parser)]
#[command(name = "stockhub", version, about, long_about = None)]
struct Cli {
    /// A TOML settings file overriding the built-in defaults (see config/default.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct DbArg {
    /// The database: a SQLite file path or sqlite://PATH [default: stockhub.db; env: STOCKHUB_DB]
    #[arg(long, value_name = "URL")]
    db: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API (and its maintenance loops) until interrupted.
    Serve {
        #[command(flatten)]
        db: DbArg,
        /// Address to listen on [default: 127.0.0.1:8080; env: STOCKHUB_LISTEN]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Rebuild every projection from the ledger and compare with the stored ones; print each
    /// difference and exit with status 1 if there is any.
    Verify {
        #[command(flatten)]
        db: DbArg,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { db, listen } => {
            if let Some(db) = db.db {
                settings.db = db;
            }
            if let Some(listen) = listen {
                settings.listen = listen;
            }
            settings.validate()?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(serve(settings))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { db } => {
            if let Some(db) = db.db {
                settings.db = db;
            }
            verify_command(&settings)
        }
    }
}

fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    stockhub_store::open(
        &settings.db,
        Arc::new(SystemClock),
        settings.storage_options(),
    )
    .with_context(|| format!("opening the database {}", settings.db))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings)?;
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let maintenance_settings = MaintenanceSettings {
        reservation_sweep_interval: Duration::from_millis(
            settings.maintenance.reservation_sweep_interval_ms,
        ),
        idempotency_retention: Duration::from_secs(
            settings.maintenance.idempotency_retention_hours * 3600,
        ),
    };
    let loops = tokio::spawn(maintenance::run(
        store.clone(),
        maintenance_settings,
        stopped.clone(),
    ));
    let services = Services::new(&store);
    let push = PushWorker::new(
        store.clone(),
        services.connectors.clone(),
        services.metrics.clone(),
        PushSettings::default(),
    );
    let pushes = tokio::spawn(push.clone().run(stopped.clone()));
    let backfills = tokio::spawn(stockhub_app::backfill::run(
        store.clone(),
        services.connectors.clone(),
        push,
        Duration::from_secs(settings.channels.reconciliation_interval_seconds),
        stopped.clone(),
    ));
    let state = AppState::with_services(
        store,
        HttpSettings {
            body_limit_bytes: settings.http.body_limit_bytes,
        },
        services,
    );
    tracing::info!(%address, db = %settings.db, "stockhub is serving");
    println!(
        "stockhub listening on http://{address} (database: {})",
        settings.db
    );
    let mut on_stop = stopped;
    let shutdown = async move {
        let _ = on_stop.changed().await;
    };
    let server = tokio::spawn(stockhub_http::serve(listener, state, shutdown));
    shutdown_signal().await;
    tracing::info!("shutting down: no new requests, finishing those in flight");
    let _ = stop.send(true);
    server
        .await
        .context("the server task failed")?
        .context("serving")?;
    let _ = loops.await;
    let _ = pushes.await;
    let _ = backfills.await;
    Ok(())
}

async fn shutdown_signal() {
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

fn verify_command(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = open_store(settings)?;
    let report = store
        .read_blocking(verify::verify)
        .context("reading the database")?;
    println!(
        "checked {} ledger entries, {} stock levels, {} order lines",
        report.ledger_entries, report.levels_checked, report.lines_checked
    );
    if report.differences.is_empty() {
        println!("every projection matches the ledger");
        return Ok(ExitCode::SUCCESS);
    }
    for d in &report.differences {
        println!(
            "DIFFERENCE {} {}: stored {}, rebuilt from the ledger {}",
            d.projection, d.key, d.stored, d.rebuilt
        );
    }
    println!("{} difference(s) found", report.differences.len());
    Ok(ExitCode::from(1))
}
