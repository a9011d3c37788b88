//! Connecting to NATS the same way in every binary: every auth mode, TLS,
//! a server list, fast reconnects, short pings (a hung server is left
//! within a few seconds), and a refusal of servers older than
//! [`MIN_SERVER_VERSION`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{
    Client, ConnectOptions, Event, ReconnectToServer, Server, ServerAddr, ServerInfo, jetstream,
};
use tracing::{info, warn};

use crate::settings::{NatsAuth, NatsSettings};

/// The oldest nats-server tidegate runs on: per-key TTLs, multi-filter
/// consumers, consumer pause and `sync_interval` are 2.11 or newer.
pub const MIN_SERVER_VERSION: (u64, u64, u64) = (2, 11, 0);

/// A client and its JetStream context, built from one `NatsSettings`.
#[derive(Debug, Clone)]
pub struct Connection {
    pub client: Client,
    pub jetstream: jetstream::Context,
    pub settings: NatsSettings,
    /// The server a forced reconnect is leaving: the next connection
    /// attempt picks another one (see [`Connection::reconnect_elsewhere`]).
    leaving: Arc<Mutex<Option<(String, u16)>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid nats settings: {0}")]
    Options(String),
    #[error("nats is not reachable at {servers} within {waited:?}")]
    Unreachable { servers: String, waited: Duration },
    #[error(
        "nats-server {found} at {server} is older than {minimum}, the oldest tidegate supports; \
         upgrade it (deploy/tools/install.sh installs 2.15.1 into .tools/bin)"
    )]
    TooOld {
        found: String,
        minimum: String,
        server: String,
    },
    #[error(
        "nats-server at {server} has JetStream disabled; start it with -js (or `jetstream {{}}` in its config)"
    )]
    NoJetStream { server: String },
}

impl Connection {
    /// Starts connecting and returns at once: when no server answers yet,
    /// the client keeps trying in the background. Call [`ready`] before
    /// relying on the connection.
    ///
    /// [`ready`]: Connection::ready
    pub async fn start(settings: &NatsSettings) -> Result<Connection, ConnectError> {
        let servers = settings
            .servers
            .iter()
            .map(|url| {
                url.parse::<ServerAddr>()
                    .map_err(|error| ConnectError::Options(format!("nats.url `{url}`: {error}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let leaving: Arc<Mutex<Option<(String, u16)>>> = Arc::default();
        let options = options(settings, leaving.clone()).await?;
        let client = options
            .connect(servers)
            .await
            .map_err(|error| ConnectError::Options(error.to_string()))?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(settings.publish_timeout)
            .ack_timeout(settings.publish_timeout)
            .max_ack_inflight(settings.max_acks_in_flight)
            .build(client.clone());
        Ok(Connection {
            client,
            jetstream,
            settings: settings.clone(),
            leaving,
        })
    }

    /// Drops the connection to a server that takes publishes but answers
    /// none of them (hung, or cut off from its cluster) and connects to
    /// another server of the pool — not the same one again, as a plain
    /// reconnect might.
    pub async fn reconnect_elsewhere(&self) -> Result<(), async_nats::client::ReconnectError> {
        let info = self.client.server_info();
        *self.leaving.lock().unwrap_or_else(PoisonError::into_inner) = Some((info.host, info.port));
        self.client.force_reconnect().await
    }

    /// Starts connecting and waits until connected to a supported server,
    /// at most `connect_timeout`: what a command-line tool wants.
    pub async fn open(settings: &NatsSettings) -> Result<Connection, ConnectError> {
        let connection = Connection::start(settings).await?;
        connection.ready(settings.connect_timeout).await?;
        Ok(connection)
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Waits until connected (at most `wait`), then checks the server.
    pub async fn ready(&self, wait: Duration) -> Result<(), ConnectError> {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                return Err(ConnectError::Unreachable {
                    servers: self.settings.servers.join(","),
                    waited: wait,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        check_server(&self.client.server_info())
    }

    /// The server's `max_payload`, once connected.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }
}

/// Refuses a server older than [`MIN_SERVER_VERSION`] or without JetStream.
pub fn check_server(info: &ServerInfo) -> Result<(), ConnectError> {
    let server = format!("{}:{}", info.host, info.port);
    let found = parse_version(&info.version);
    if found.is_none_or(|found| found < MIN_SERVER_VERSION) {
        let (major, minor, patch) = MIN_SERVER_VERSION;
        return Err(ConnectError::TooOld {
            found: info.version.clone(),
            minimum: format!("{major}.{minor}.{patch}"),
            server,
        });
    }
    if !info.jetstream {
        return Err(ConnectError::NoJetStream { server });
    }
    Ok(())
}

/// `2.15.1` (or `2.12.0-RC.1`) → (2, 15, 1).
pub fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let core = text.trim().trim_start_matches('v');
    let core = core.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|part| part.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

async fn options(
    settings: &NatsSettings,
    leaving: Arc<Mutex<Option<(String, u16)>>>,
) -> Result<ConnectOptions, ConnectError> {
    let name = settings.name.clone();
    let mut options = ConnectOptions::new()
        .name(&settings.name)
        .connection_timeout(settings.connect_timeout)
        .request_timeout(Some(settings.publish_timeout))
        .ping_interval(settings.ping_interval)
        .retry_on_initial_connect()
        .max_reconnects(None)
        // Reconnect fast: a restarted or re-elected server should be used
        // again within a second or two, not after an exponential back-off.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((50u64 << attempts.min(5)).min(1_000))
        })
        .reconnect_to_server_callback(move |servers, _info| {
            let left = leaving
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            async move { another_server(&servers, left.as_ref()) }
        })
        .event_callback(move |event| {
            let name = name.clone();
            async move {
                match event {
                    Event::Connected => info!(client = %name, "connected to nats"),
                    Event::Disconnected => warn!(client = %name, "disconnected from nats"),
                    Event::LameDuckMode => {
                        warn!(client = %name, "nats server entering lame duck mode; moving on")
                    }
                    other => info!(client = %name, event = %other, "nats event"),
                }
            }
        });
    options = match &settings.auth {
        NatsAuth::None => options,
        NatsAuth::Credentials(path) => options.credentials_file(path).await.map_err(|error| {
            ConnectError::Options(format!("nats.creds `{}`: {error}", path.display()))
        })?,
        NatsAuth::NKey(seed) => options.nkey(text(seed)),
        NatsAuth::Token(token) => options.token(text(token)),
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), text(password))
        }
    };
    let tls = &settings.tls;
    if let Some(ca) = &tls.ca {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &tls.client {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    if tls.required || tls.ca.is_some() || tls.client.is_some() {
        options = options.require_tls(true);
    }
    if tls.first {
        options = options.tls_first();
    }
    Ok(options)
}

/// After a forced reconnect, a server of the pool other than the one left
/// (fewest failed attempts first, at random among equals); otherwise the
/// client's own choice.
fn another_server(servers: &[Server], left: Option<&(String, u16)>) -> Option<ReconnectToServer> {
    let (host, port) = left?;
    let others: Vec<&Server> = servers
        .iter()
        .filter(|server| !(server.addr.host() == host && server.addr.port() == *port))
        .collect();
    let fewest = others.iter().map(|server| server.failed_attempts).min()?;
    let candidates: Vec<&&Server> = others
        .iter()
        .filter(|server| server.failed_attempts == fewest)
        .collect();
    let pick = candidates[fastrand::usize(..candidates.len())];
    Some(ReconnectToServer {
        addr: pick.addr.clone(),
        delay: Some(Duration::ZERO),
    })
}

fn text(secret: &verify::Secret) -> String {
    String::from_utf8_lossy(secret.expose()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str, failed_attempts: usize) -> Server {
        Server {
            addr: url.parse().expect("a server address"),
            failed_attempts,
            did_connect: true,
            is_discovered: false,
            last_error: None,
        }
    }

    #[test]
    fn a_forced_reconnect_leaves_for_another_server() {
        let pool = [
            server("nats://10.0.0.1:4222", 0),
            server("nats://10.0.0.2:4222", 1),
            server("nats://10.0.0.3:4222", 0),
        ];
        let left = ("10.0.0.1".to_owned(), 4222);
        for _ in 0..50 {
            let next = another_server(&pool, Some(&left)).expect("another server");
            // Not the one left, and not one that failed when another did not.
            assert_eq!(next.addr.host(), "10.0.0.3");
        }
        assert!(
            another_server(&pool, None).is_none(),
            "a plain reconnect is the client's"
        );
        let alone = [server("nats://10.0.0.1:4222", 0)];
        assert!(another_server(&alone, Some(&left)).is_none());
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_version("v2.9.10"), Some((2, 9, 10)));
        assert_eq!(parse_version("2.12.0-RC.1"), Some((2, 12, 0)));
        assert_eq!(parse_version("2.11"), Some((2, 11, 0)));
        assert_eq!(parse_version(""), None);
        assert!(parse_version("2.10.26").expect("parses") < MIN_SERVER_VERSION);
        assert!(parse_version("2.11.0").expect("parses") >= MIN_SERVER_VERSION);
    }
}
