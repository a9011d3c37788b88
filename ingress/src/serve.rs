//! The HTTP/1.1 accept loop: a bounded number of connections, a deadline for
//! request heads, and graceful shutdown that lets in-flight requests finish
//! within the grace period. Owns the `[http]` settings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use serde::Deserialize;

use crate::client_ip::{IpList, parse_net};
use crate::limit::RawRateLimit;

/// `[http]`: limits of the HTTP server and what every route shares.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// A client must send its request head within this time.
    pub header_read_timeout: Duration,
    /// A client must send its whole body within this time (else 408).
    pub body_timeout: Duration,
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// `Retry-After` sent with a 503.
    pub retry_after: Duration,
    /// Peers whose `CF-Connecting-IP` / `X-Forwarded-For` name the client
    /// (`client_ip.rs`); empty: the TCP peer is always the client.
    pub trusted_proxies: IpList,
}

/// `[http]` as written; `body_limit` and `rate_limit` are defaults for
/// routes that set none (read by `config.rs`).
#[derive(Debug, Deserialize)]
#[serde(default)]
pub(crate) struct RawHttp {
    pub header_read_timeout: String,
    pub body_timeout: String,
    pub max_connections: usize,
    pub shutdown_grace: String,
    pub retry_after: String,
    pub body_limit: String,
    /// Peers whose `CF-Connecting-IP` / `X-Forwarded-For` are believed.
    pub trusted_proxies: Vec<String>,
    /// Rate limits for routes that set none.
    pub rate_limit: Option<RawRateLimit>,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            header_read_timeout: "10s".into(),
            body_timeout: "30s".into(),
            max_connections: 10_000,
            shutdown_grace: "30s".into(),
            retry_after: "5s".into(),
            body_limit: "1MiB".into(),
            trusted_proxies: Vec::new(),
            rate_limit: None,
        }
    }
}

impl RawHttp {
    pub(crate) fn compile(&self, problems: &mut Vec<String>) -> HttpConfig {
        let mut duration = |key: &str, text: &str| {
            broker::settings::parse_duration(text).unwrap_or_else(|why| {
                problems.push(format!("http.{key}: {why}"));
                Duration::ZERO
            })
        };
        let header_read_timeout = duration("header_read_timeout", &self.header_read_timeout);
        let body_timeout = duration("body_timeout", &self.body_timeout);
        let shutdown_grace = duration("shutdown_grace", &self.shutdown_grace);
        let retry_after = duration("retry_after", &self.retry_after);
        let trusted_proxies = IpList::new(
            self.trusted_proxies
                .iter()
                .enumerate()
                .filter_map(|(index, entry)| {
                    parse_net(entry)
                        .map_err(|why| {
                            problems.push(format!("http.trusted_proxies[{index}]: {why}"))
                        })
                        .ok()
                })
                .collect(),
        );
        HttpConfig {
            header_read_timeout,
            body_timeout,
            max_connections: self.max_connections.max(1),
            shutdown_grace,
            retry_after,
            trusted_proxies,
        }
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    http: &HttpConfig,
    shutdown: CancellationToken,
) {
    // Each connection holds a permit: past `max_connections` the loop stops
    // accepting and new clients wait in the kernel's backlog.
    let connections = Arc::new(Semaphore::new(http.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // A client that never finishes its request head cannot pin a
        // connection (slowloris).
        .header_read_timeout(http.header_read_timeout)
        .keep_alive(true);

    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually EMFILE: back off instead of spinning.
                    warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            debug!(error = %error, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(peer = %peer, error = %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    info!(grace = ?http.shutdown_grace, "draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => info!("all connections closed"),
        () = tokio::time::sleep(http.shutdown_grace) => warn!("grace period over; closing remaining connections"),
    }
}
