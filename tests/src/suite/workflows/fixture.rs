//! What every workflow test needs: a folder of workflow files, the
//! ingress with a workflow route (and the admin API), the worker process,
//! and a local HTTP server that records requests (HTTP steps' target and
//! every notification service).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::Value;
use tempfile::TempDir;

use crate::process::WorkerProcess;
use crate::{NatsServer, TestIngress, eventually};

pub(super) const SECRET: &str = "assistant-secret-5d1e";
pub(super) const ADMIN_TOKEN: &str = "admin-token-93ab";

/// One request a fake saw.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) headers: HeaderMap,
    pub(super) body: String,
}

/// A local server for HTTP steps and notification services: records every
/// request; `/echo` answers `pong:<body>`, `/fail` answers 500, anything
/// else `{"ok": true}`.
#[derive(Clone)]
pub(super) struct Fake {
    pub(super) base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    pub(super) async fn start() -> Fake {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(record)
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { base, seen }
    }

    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub(super) fn at(&self, path: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|seen| seen.path == path)
            .collect()
    }

    /// Waits until `path` received a request whose body contains `text`.
    pub(super) async fn wait_for(&self, path: &str, text: &str) -> Seen {
        eventually(
            Duration::from_secs(20),
            &format!("{path} receiving {text:?}"),
            || async {
                self.at(path)
                    .into_iter()
                    .find(|seen| seen.body.contains(text))
            },
        )
        .await
    }
}

async fn record(
    State(seen): State<Arc<Mutex<Vec<Seen>>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (axum::http::StatusCode, String) {
    let body = String::from_utf8_lossy(&body).into_owned();
    let path = uri.path().to_owned();
    seen.lock().expect("lock").push(Seen {
        method,
        path: path.clone(),
        headers,
        body: body.clone(),
    });
    match path.as_str() {
        "/echo" => (axum::http::StatusCode::OK, format!("pong:{body}")),
        "/fail" => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "broken".into(),
        ),
        _ => (axum::http::StatusCode::OK, r#"{"ok": true}"#.into()),
    }
}

/// A folder of workflow files plus the worker's memory file and file root.
pub(super) struct Folder {
    pub(super) dir: TempDir,
}

impl Folder {
    pub(super) fn new(files: &[(&str, &str)]) -> Folder {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("workflows")).expect("mkdir");
        let folder = Folder { dir };
        for (name, text) in files {
            folder.write(name, text);
        }
        folder
    }

    pub(super) fn workflows(&self) -> PathBuf {
        self.dir.path().join("workflows")
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(super) fn write(&self, name: &str, text: &str) {
        std::fs::write(self.workflows().join(format!("{name}.yaml")), text)
            .expect("writing a workflow file");
    }
}

/// The workflow route (GitHub HMAC with `ASSISTANT_WEBHOOK_SECRET`, open
/// when unset) over `folder`, and the admin API.
pub(super) fn ingress_toml(folder: &Path) -> String {
    format!(
        r#"
[[routes]]
name = "workflow"
path = "/webhooks/{{workflow}}"
subject = "workflow.{{workflow}}"
event = "header:X-GitHub-Event"
workflows = "{}"
enabled_env = "ASSISTANT_WEBHOOK_ENABLED"
[routes.verifier]
kind = "github"
secrets = [{{ env = "ASSISTANT_WEBHOOK_SECRET" }}]
if_unset = "open"

[admin]
token = {{ value = "{ADMIN_TOKEN}" }}
"#,
        folder.display()
    )
}

/// The worker's configuration; `extra` goes inside `[workflow]`, `channels`
/// after it.
pub(super) fn worker_toml(
    nats: &NatsServer,
    folder: &Folder,
    extra: &str,
    channels: &str,
) -> String {
    format!(
        r#"
name = "workflow"
[nats]
url = "{url}"
[consumer]
filter_subjects = "tidegate.in.workflow.>"
ack_wait = "3s"
max_deliver = 10
backoff_base = "200ms"
backoff_max = "1s"
shutdown_grace = "1s"
[workflow]
folder = "{workflows}"
lease = "2s"
sweep_interval = "200ms"
{extra}
[workflow.memory]
file = "{memory}"
[workflow.files]
roots = ["{files}"]
{channels}
"#,
        url = nats.url(),
        workflows = folder.workflows().display(),
        memory = folder.path("memory.md").display(),
        files = folder.path("files").display(),
    )
}

/// Slack, Telegram, ntfy and a generic webhook, all at `fake`.
pub(super) fn every_channel(fake: &Fake) -> String {
    format!(
        r#"
[[workflow.notify]]
kind = "slack"
url = {{ value = "{base}/slack/T000/B000/XXXX" }}
[[workflow.notify]]
kind = "telegram"
base_url = "{base}/telegram"
token = {{ value = "123456:telegram-token" }}
chat_id = "42"
[[workflow.notify]]
kind = "ntfy"
base_url = "{base}/ntfy"
topic = "deploys"
[[workflow.notify]]
name = "ops"
kind = "webhook"
url = "{base}/ops"
token = {{ value = "ops-token" }}
"#,
        base = fake.base
    )
}

/// The broker, the ingress and (optionally) a worker.
pub(super) struct Stack {
    pub(super) nats: NatsServer,
    pub(super) ingress: TestIngress,
    pub(super) worker: Option<WorkerProcess>,
}

impl Stack {
    pub(super) async fn start(folder: &Folder, env: &[(&str, &str)]) -> Stack {
        let nats = NatsServer::start().await;
        let ingress = TestIngress::start(&nats, &ingress_toml(&folder.workflows()), env).await;
        Stack {
            nats,
            ingress,
            worker: None,
        }
    }

    pub(super) fn start_worker(&mut self, folder: &Folder, extra: &str, channels: &str) {
        let config = worker_toml(&self.nats, folder, extra, channels);
        self.worker = Some(WorkerProcess::start("tidegate-workflow", &config, &[]));
    }

    /// POSTs `body` to `/webhooks/<name>`, signed with `secret` if given.
    pub(super) async fn post(
        &self,
        name: &str,
        body: &str,
        secret: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .ingress
            .http
            .post(self.ingress.url(&format!("/webhooks/{name}")))
            .header("content-type", "application/json")
            .timeout(Duration::from_secs(30))
            .body(body.to_owned());
        if let Some(secret) = secret {
            request = request.header(
                "X-Hub-Signature-256",
                crate::sign::github(secret, body.as_bytes()),
            );
        }
        request.send().await.expect("the ingress answers")
    }

    /// The run's record through the admin API, once `done` accepts it.
    pub(super) async fn run_until(
        &self,
        run_id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(Duration::from_secs(30), what, || async {
            let response = self
                .ingress
                .http
                .get(self.ingress.url(&format!("/api/runs/{run_id}")))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .ok()?;
            if response.status() != 200 {
                return None;
            }
            let run: Value = response.json().await.ok()?;
            done(&run).then_some(run)
        })
        .await
    }
}

/// The statuses of a run's (or an answer's) steps.
pub(super) fn statuses(steps: &Value) -> Vec<String> {
    steps
        .as_array()
        .expect("a list of steps")
        .iter()
        .map(|step| {
            format!(
                "{}:{}",
                step["name"].as_str().unwrap_or("?"),
                step["status"].as_str().unwrap_or("?")
            )
        })
        .collect()
}
