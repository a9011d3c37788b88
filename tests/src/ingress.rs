//! The real ingress, in-process on `127.0.0.1:0`, pointed at a test
//! nats-server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use ingress::config::Config;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{NatsServer, eventually};

pub struct TestIngress {
    pub address: SocketAddr,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestIngress {
    /// Starts the ingress with `routes` (TOML: settings and `[[routes]]`)
    /// against `nats`, with `env` as its environment, and waits until
    /// `/readyz` answers 200.
    pub async fn start(nats: &NatsServer, routes: &str, env: &[(&str, &str)]) -> TestIngress {
        let ingress = TestIngress::start_unready(&nats.url(), routes, env).await;
        ingress.wait_ready().await;
        ingress
    }

    /// Starts without waiting for readiness (the broker may be down).
    pub async fn start_unready(nats_url: &str, routes: &str, env: &[(&str, &str)]) -> TestIngress {
        crate::logs::init_test_log();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let figment = Figment::from(Toml::string(routes)).merge(("nats.url", nats_url));
        let config = Config::load(&figment, &env).expect("test config is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the ingress");
        let address = listener.local_addr().expect("local address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(ingress::run(config, listener, shutdown.clone()));
        TestIngress {
            address,
            http: reqwest::Client::new(),
            shutdown,
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("text")
    }

    pub async fn wait_ready(&self) {
        let url = self.url("/readyz");
        eventually(Duration::from_secs(15), "ingress /readyz = 200", || {
            let request = self.http.get(&url);
            async move {
                let response = request.send().await.ok()?;
                (response.status() == 200).then_some(())
            }
        })
        .await;
    }

    /// Waits for the ingress to end on its own (at most `timeout`) and
    /// returns how it ended: `run` fails when the broker cannot be used at
    /// all (a server too old, a stream change that would drop data).
    pub async fn exited(mut self, timeout: Duration) -> anyhow::Result<()> {
        let task = self.task.take().expect("waited once");
        tokio::time::timeout(timeout, task)
            .await
            .map_err(|_| anyhow::anyhow!("the ingress still runs after {timeout:?}"))??
    }

    /// Cancels and waits for the drain to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let task = self.task.take().expect("stopped once");
        task.await?
    }
}

impl Drop for TestIngress {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The value of the first sample of metric `name` whose labels include
/// every one of `labels` (each as `key="value"`), in Prometheus text.
pub fn metric_sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(name))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}
