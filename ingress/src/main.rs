//! `tidegate-ingress`: load the configuration, bind, and serve until SIGTERM
//! or SIGINT, then drain. SIGHUP never stops it (`systemctl reload`).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use ingress::config::Config;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Verifies webhooks and publishes them to NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "tidegate-ingress", version)]
struct Args {
    /// TOML configuration file; `TIDEGATE_*` variables override it
    /// (`TIDEGATE_NATS_URL`, `TIDEGATE_LISTEN`, `TIDEGATE_HTTP__BODY_LIMIT`, ...).
    #[arg(long, env = "TIDEGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = Config::load(&Config::figment(args.config.as_deref()), &env)?;
    ingress::init_logging(&config.log);
    if args.check {
        tracing::info!(routes = config.routes.len(), "configuration is valid");
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    tokio::spawn(log_hangups());
    ingress::run(config, listener, shutdown).await
}

/// SIGHUP's default action would end the process; workflow routes reload
/// their folders on it (their own listener), nothing else does.
async fn log_hangups() {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .expect("installing the SIGHUP handler");
    while hangup.recv().await.is_some() {
        tracing::info!(
            "SIGHUP: workflow folders are read again; routes and other settings need a restart"
        );
    }
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
