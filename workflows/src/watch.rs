//! Keeps a registry current: a rescan every `interval` (only changed files
//! are read) and at once on SIGHUP, until `shutdown`.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::registry::Registry;

/// How often the folder is rescanned when nothing else asks.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Scans once now, then on every tick and SIGHUP until `shutdown`.
pub async fn watch(registry: Arc<Registry>, interval: Duration, shutdown: CancellationToken) {
    rescan(&registry, false).await;
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            warn!(error = %error, "cannot listen for SIGHUP; workflows reload on file changes only");
            None
        }
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let force = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => false,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                info!(folder = %registry.folder().display(), "SIGHUP: reloading workflows");
                true
            }
        };
        rescan(&registry, force).await;
    }
}

/// Scans off the async threads (the folder may sit on a slow disk).
async fn rescan(registry: &Arc<Registry>, force: bool) {
    let registry = registry.clone();
    let scan = move || {
        if force {
            registry.reload()
        } else {
            registry.scan()
        }
    };
    if let Err(error) = tokio::task::spawn_blocking(scan).await {
        warn!(error = %error, "rescanning the workflows folder panicked");
    }
}
