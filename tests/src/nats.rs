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
use crate::security::{Auth, Secured};

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: TempDir,
    config_file: Option<std::path::PathBuf>,
    binary: std::path::PathBuf,
    /// Credentials clients need, for a secured server.
    secured: Option<Secured>,
    /// Where it listens: 127.0.0.1, or a host of a partition test.
    host: std::net::Ipv4Addr,
    /// The network namespace it runs in (partition tests).
    netns: Option<String>,
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

    /// Starts a server that requires `auth`; the harness's own clients use
    /// the same credentials (see [`NatsServer::nats_toml`]).
    pub async fn start_secured(auth: Auth) -> NatsServer {
        let secured = Secured::new(auth);
        let mut server = NatsServer::prepare(free_port(), &secured.server_config, server_binary());
        server.secured = Some(secured);
        server.spawn();
        server.wait_ready().await;
        server
    }

    /// Starts the old server `deploy/tools/install.sh --test` installs
    /// (below the supported minimum), without waiting for JetStream.
    pub async fn start_old() -> NatsServer {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let binary = std::env::var_os("TIDEGATE_OLD_NATS_SERVER")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root.join(".tools/bin/nats-server-old"));
        assert!(
            binary.is_file(),
            "{} is missing: run deploy/tools/install.sh --test (or set TIDEGATE_OLD_NATS_SERVER)",
            binary.display()
        );
        let mut server = NatsServer::prepare(free_port(), "", binary);
        server.spawn();
        let url = server.url();
        eventually(Duration::from_secs(15), "the old nats-server", || {
            let url = url.clone();
            async move { async_nats::connect(&url).await.ok().map(drop) }
        })
        .await;
        server
    }

    /// The `[nats]` keys besides `url` a binary needs for this server
    /// (empty for an open one).
    pub fn nats_toml(&self) -> &str {
        self.secured
            .as_ref()
            .map_or("", |secured| secured.nats_toml.as_str())
    }

    /// Settings for the harness's own clients.
    pub fn settings(&self) -> broker::NatsSettings {
        match &self.secured {
            Some(secured) => secured.settings(&self.url()),
            None => {
                broker::NatsSettings::for_url(&self.url(), "tidegate-test").expect("a loopback URL")
            }
        }
    }

    pub(crate) fn prepare(port: u16, extra: &str, binary: std::path::PathBuf) -> NatsServer {
        let store = tempfile::tempdir().expect("creating a temp store dir");
        let config_file = (!extra.is_empty()).then(|| {
            let path = store.path().join("extra.conf");
            std::fs::write(&path, extra).expect("writing the server config");
            path
        });
        NatsServer {
            child: None,
            port,
            store,
            config_file,
            binary,
            secured: None,
            host: std::net::Ipv4Addr::LOCALHOST,
            netns: None,
        }
    }

    /// Runs in network namespace `netns`, listening on `host`.
    pub(crate) fn in_namespace(mut self, netns: String, host: std::net::Ipv4Addr) -> NatsServer {
        self.netns = Some(netns);
        self.host = host;
        self
    }

    async fn launch(port: u16, extra: &str) -> NatsServer {
        let mut server = NatsServer::prepare(port, extra, server_binary());
        server.spawn();
        server.wait_ready().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://{}:{}", self.host, self.port)
    }

    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// A client for the test's own assertions (with the server's
    /// credentials when it is secured).
    pub async fn client(&self) -> async_nats::Client {
        self.connection().await.client
    }

    pub async fn jetstream(&self) -> jetstream::Context {
        self.connection().await.jetstream
    }

    async fn connection(&self) -> broker::Connection {
        broker::Connection::open(&self.settings())
            .await
            .expect("connecting to the test nats-server")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process runs (it may be paused).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILLs the server: no clean shutdown, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.kill());
            drop(child.wait());
        }
    }

    /// SIGSTOP: the process hangs with its sockets open, as a stuck host
    /// does; [`NatsServer::resume`] continues it.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("running");
        let pid = libc::pid_t::try_from(child.id()).expect("a pid fits");
        // SAFETY: kill(2) on a child this harness started and has not reaped.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "signalling nats-server"
        );
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready().await;
    }

    pub(crate) fn spawn(&mut self) {
        let mut command = match &self.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        command
            .arg("-js")
            .arg("-a")
            .arg(self.host.to_string())
            .arg("-p")
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

    pub(crate) async fn wait_ready(&self) {
        let settings = broker::NatsSettings {
            connect_timeout: Duration::from_secs(1),
            ..self.settings()
        };
        eventually(
            Duration::from_secs(15),
            "nats-server with JetStream",
            || {
                let settings = settings.clone();
                async move {
                    let connection = broker::Connection::open(&settings).await.ok()?;
                    connection.jetstream.query_account().await.ok().map(drop)
                }
            },
        )
        .await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // A paused server would not die of SIGKILL until continued.
        if self.child.is_some() {
            self.resume();
        }
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
