//! Test harness: a real `nats-server` per test (free loopback port, temp
//! JetStream store, killed on drop, restartable), the ingress on
//! `127.0.0.1:0`, request signing as providers do it, and bounded polling.
//! The suite lives in `suite/`, one module per feature.

pub mod cli;
pub mod cluster;
pub mod github_app;
pub mod ingress;
pub mod load;
pub mod logs;
pub mod nats;
pub mod netns;
pub mod process;
pub mod receiver;
pub mod security;
pub mod sign;
pub mod token_endpoint;

use std::future::Future;
use std::time::{Duration, Instant};

pub use crate::cluster::NatsCluster;
pub use crate::ingress::TestIngress;
pub use crate::nats::NatsServer;

/// Polls `check` until it returns `Some`, at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod suite;
