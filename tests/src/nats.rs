//! A real `nats-server` with JetStream for one test: free loopback port,
//! temporary store, killed (and the store removed) on drop. `kill` and
//! `restart` keep the port and the store, for broker-down tests. The
//! binary is found as dev mode finds it (`broker::server::locate`:
//! `TIDEGATE_NATS_SERVER`, the project's `.tools/bin`, then `PATH`), and
//! must be at least the supported minimum.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use tempfile::TempDir;

use crate::eventually;

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: TempDir,
    config_file: Option<std::path::PathBuf>,
}

impl NatsServer {
    /// Starts a server with JetStream and waits until JetStream answers.
    pub async fn start() -> NatsServer {
        NatsServer::start_with_config("").await
    }

    /// Starts a server on a given port (one a test reserved earlier).
    pub async fn start_on_port(port: u16) -> NatsServer {
        NatsServer::launch(port, "").await
    }

    /// Starts a server with extra configuration text (e.g. `max_payload: 1MB`).
    pub async fn start_with_config(extra: &str) -> NatsServer {
        NatsServer::launch(free_port(), extra).await
    }

    async fn launch(port: u16, extra: &str) -> NatsServer {
        let store = tempfile::tempdir().expect("creating a temp store dir");
        let config_file = (!extra.is_empty()).then(|| {
            let path = store.path().join("extra.conf");
            std::fs::write(&path, extra).expect("writing the server config");
            path
        });
        let mut server = NatsServer {
            child: None,
            port,
            store,
            config_file,
        };
        server.spawn();
        server.wait_ready().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// A client for the test's own assertions.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("connecting to the test nats-server")
    }

    pub async fn jetstream(&self) -> jetstream::Context {
        jetstream::new(self.client().await)
    }

    /// SIGKILLs the server: no clean shutdown, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.kill());
            drop(child.wait());
        }
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready().await;
    }

    fn spawn(&mut self) {
        let mut command = Command::new(server_binary());
        command
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store.path().join("jetstream"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("NATS_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        if let Some(config) = &self.config_file {
            command.arg("-c").arg(config);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start nats-server ({error})"));
        self.child = Some(child);
    }

    async fn wait_ready(&self) {
        let url = self.url();
        eventually(
            Duration::from_secs(15),
            "nats-server with JetStream",
            || {
                let url = url.clone();
                async move {
                    let client = async_nats::connect(&url).await.ok()?;
                    async_nats::jetstream::new(client)
                        .query_account()
                        .await
                        .ok()
                        .map(drop)
                }
            },
        )
        .await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The supported nats-server binary, found once per test process; a
/// missing or too old one fails the test with what to install.
pub fn server_binary() -> std::path::PathBuf {
    static FOUND: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            match broker::server::locate(&[&root]) {
                Ok(found) => found.path,
                Err(error) => panic!("{error}"),
            }
        })
        .clone()
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("binding an ephemeral port")
}

impl NatsServer {
    /// Every message in the deliveries stream, in sequence order (empty if
    /// the stream does not exist).
    pub async fn stored_deliveries(&self) -> Vec<jetstream::message::StreamMessage> {
        let jetstream = self.jetstream().await;
        let Ok(mut stream) = jetstream
            .get_stream(schemas::streams::DELIVERIES_STREAM)
            .await
        else {
            return Vec::new();
        };
        let state = stream.info().await.expect("stream info").state.clone();
        let mut messages = Vec::new();
        if state.messages == 0 {
            return messages;
        }
        for sequence in state.first_sequence..=state.last_sequence {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                messages.push(message);
            }
        }
        messages
    }
}

/// Waits until the server has processed everything `client` sent so far
/// (e.g. a SUBSCRIBE): `flush` only empties the client's buffer, while a
/// request is answered after the server read the earlier commands.
pub async fn round_trip(client: &async_nats::Client) {
    client
        .request("$JS.API.INFO", "".into())
        .await
        .expect("a JetStream API round trip");
}
