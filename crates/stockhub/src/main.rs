//! The `stockhub` binary: the CLI, settings, telemetry, and the wiring of concrete adapters.
#![forbid(unsafe_code)]

mod client;
mod demo;
mod remote;
mod server;
mod settings;
mod sim_cmd;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc rather than the system allocator: stockhub allocates on every request, row and JSON
/// value, from many threads at once, where glibc's malloc spent a tenth of the writer's time and
/// more of the workers'.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stockhub_store::engine::verify;

use crate::server::Server;
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
    /// The database: a SQLite file path, sqlite://PATH, or postgres://USER@HOST:PORT/DATABASE
    /// [default: stockhub.db; env: STOCKHUB_DB]
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
    /// Run stockhub, two simulated Shopify stores and a simulated WooCommerce store in this
    /// process, stream orders on all three, and show what happens; verify at the end.
    Demo(demo::DemoArgs),
    /// Start simulated Shopify and WooCommerce stores on local ports and print how to connect
    /// stockhub to each; run until interrupted.
    Sim(sim_cmd::SimArgs),
    /// Run catalog discovery on a channel of a running server and print its report: listings
    /// matched, and what did not match. Exit status 1 when the server refuses, 2 when it cannot
    /// be reached.
    Discover(remote::DiscoverArgs),
    /// Re-apply an archived webhook delivery on a running server (safe: its permanent identity
    /// keeps it from applying twice). Exit status 1 when the server refuses or the delivery
    /// fails to apply, 2 when the server cannot be reached.
    Replay(remote::ReplayArgs),
    /// Copy a whole SQLite store into an empty PostgreSQL database — ledger, projections,
    /// orders, listings, the webhook archive and pending pushes, with their ids — and check the
    /// copy: every table's row count, every stock level, and `verify` on the target. Stop every
    /// stockhub process using the source first. Exit status 1 when the check finds a
    /// difference.
    MigrateStore {
        /// The store to copy: a SQLite file path or sqlite://PATH.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The empty store to fill, usually postgres://USER@HOST:PORT/DATABASE (its tables are
        /// created if needed).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The interactive commands keep the terminal for their own output unless RUST_LOG says
    // otherwise.
    telemetry::init(match cli.command {
        Command::Serve { .. } | Command::Verify { .. } => "info",
        _ => "warn",
    });
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
    let runtime = || tokio::runtime::Runtime::new().context("starting the async runtime");
    match cli.command {
        Command::Serve { db, listen } => {
            if let Some(db) = db.db {
                settings.db = db;
            }
            if let Some(listen) = listen {
                settings.listen = listen;
            }
            settings.validate()?;
            runtime()?.block_on(serve(settings))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { db } => {
            if let Some(db) = db.db {
                settings.db = db;
            }
            verify_command(&settings)
        }
        Command::Demo(args) => runtime()?.block_on(demo::run(settings, args)),
        Command::Sim(args) => {
            runtime()?.block_on(sim_cmd::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Discover(args) => runtime()?.block_on(remote::discover(args)),
        Command::Replay(args) => runtime()?.block_on(remote::replay(args)),
        Command::MigrateStore { from, to } => {
            runtime()?.block_on(migrate_store(&settings, &from, &to))
        }
    }
}

async fn migrate_store(settings: &Settings, from: &str, to: &str) -> anyhow::Result<ExitCode> {
    if stockhub_store::is_postgres_url(from) {
        anyhow::bail!(
            "--from must name a SQLite store; migrate-store copies SQLite to another store"
        );
    }
    let open = |url: &str| {
        stockhub_store::open(
            url,
            std::sync::Arc::new(stockhub_store::SystemClock),
            &settings.storage_options(),
        )
        .with_context(|| format!("opening {}", stockhub_store::postgres::redact(url)))
    };
    let (source, target) = (open(from)?, open(to)?);
    let report = stockhub_store::copy::copy_store(&source, &target, |t| {
        println!("{:<20} {:>10} rows copied", t.table, t.target_rows);
    })
    .await
    .context("copying the store")?;
    let mut exact = true;
    for t in report
        .tables
        .iter()
        .filter(|t| t.source_rows != t.target_rows)
    {
        exact = false;
        println!(
            "DIFFERENCE table {}: {} rows in the source, {} in the target",
            t.table, t.source_rows, t.target_rows
        );
    }
    if !report.levels_equal {
        exact = false;
        println!("DIFFERENCE stock levels: the target's differ from the source's");
    }
    for d in &report.verify.differences {
        exact = false;
        println!(
            "DIFFERENCE {} {}: stored {}, rebuilt from the ledger {}",
            d.projection, d.key, d.stored, d.rebuilt
        );
    }
    println!(
        "verified the target: {} ledger entries, {} stock levels, {} order lines",
        report.verify.ledger_entries, report.verify.levels_checked, report.verify.lines_checked
    );
    if exact && report.is_exact() {
        println!("the copy is exact: every table's count matches and every projection matches the ledger");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("the copy is NOT exact");
        Ok(ExitCode::from(1))
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let store = server::open_store(&settings)?;
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let server = Server::start(&settings, store, listener)?;
    println!(
        "stockhub listening on {} (database: {})",
        server.base_url(),
        stockhub_store::postgres::redact(&settings.db)
    );
    server::shutdown_signal().await;
    server.stop().await
}

fn verify_command(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = server::open_store(settings)?;
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
