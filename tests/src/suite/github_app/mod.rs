//! The GitHub connector as openwork runs it: `tidegate-github-sync` as real
//! processes with a GitHub App, a fake GitHub (token endpoint and private
//! repositories over smart HTTP, `tests/src/github_app.rs`), signed
//! deliveries through the ingress, and the seed's sync-job contract on
//! every result.

mod failures;
mod replicas;
mod sync;
mod targets;

use std::path::PathBuf;
use std::time::Duration;

use schemas::{JobResult, JobStatus};
use serde_json::json;

use super::github_sync::git;
use super::{GITHUB_ROUTE, GITHUB_SECRET, json};
use crate::github_app::{AppKey, FakeGithub, Installation};
use crate::process::WorkerProcess;
use crate::{NatsServer, TestIngress, eventually, sign};

const PATH: &str = "/v1/webhooks/connectors/github";
const WORKER: &str = "github-sync";
const APP_ID: u64 = 4242;
const INSTALLATION: u64 = 42;
const REPOSITORY: &str = "octocat/plugins";
const REPOSITORY_ID: u64 = 1296269;
const INSTANCE: &str = "inst-openwork";
const KEY_ENV: &str = "GITHUB_APP_PRIVATE_KEY";

/// Worker settings a test changes.
struct Options {
    max_deliver: u64,
    concurrency: usize,
    ack_wait: &'static str,
    refresh_margin: &'static str,
    lock_ttl: &'static str,
    lock_wait: &'static str,
    /// `[[github_sync.targets]]` tables; `None`: one target `plugins` for
    /// `octocat/*` at `<base>/out/{name}`.
    targets: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_deliver: 5,
            concurrency: 4,
            ack_wait: "30s",
            refresh_margin: "5m",
            lock_ttl: "30s",
            lock_wait: "2m",
            targets: None,
        }
    }
}

/// A private repository's work tree, pushing to the fake's bare copy.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new(bare: &std::path::Path) -> Work {
        let work = Work {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        git(
            work.dir.path(),
            &["init", "--quiet", "--initial-branch=main"],
        );
        git(
            work.dir.path(),
            &["remote", "add", "origin", &bare.display().to_string()],
        );
        work
    }

    fn write(&self, path: &str, content: &str) {
        let file = self.dir.path().join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
        std::fs::write(file, content).expect("write");
    }

    /// Commits everything and pushes `main`; returns the commit SHA.
    fn push(&self) -> String {
        let dir = self.dir.path();
        git(dir, &["add", "--all"]);
        git(dir, &["commit", "--quiet", "--allow-empty", "-m", "change"]);
        git(
            dir,
            &[
                "push",
                "--quiet",
                "--force",
                "origin",
                "HEAD:refs/heads/main",
            ],
        );
        git(dir, &["rev-parse", "HEAD"])
    }
}

struct Setup {
    nats: NatsServer,
    ingress: TestIngress,
    github: FakeGithub,
    key: AppKey,
    /// The worker's state_dir and target folders.
    base: tempfile::TempDir,
    options: Options,
    workers: Vec<WorkerProcess>,
}

impl Setup {
    /// nats, the ingress, a fake GitHub with installation 42 active, and no
    /// worker yet.
    async fn new(options: Options) -> Setup {
        let nats = NatsServer::start().await;
        let ingress = TestIngress::start(
            &nats,
            GITHUB_ROUTE,
            &[("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)],
        )
        .await;
        let key = AppKey::generate();
        let github = FakeGithub::start(APP_ID, &key).await;
        github.set_installation(INSTALLATION, Installation::Active);
        Setup {
            nats,
            ingress,
            github,
            key,
            base: tempfile::tempdir().expect("temp dir"),
            options,
            workers: Vec::new(),
        }
    }

    /// [`Setup::new`] with one worker signing with the App's key.
    async fn start(options: Options) -> Setup {
        let mut setup = Setup::new(options).await;
        let pem = setup.key.private_pem.clone();
        setup.add_worker(&pem);
        setup
    }

    /// The worker's configuration; its private key comes from `KEY_ENV`.
    fn config(&self) -> String {
        let base = self.base.path().display();
        let options = &self.options;
        let targets = options.targets.clone().unwrap_or_else(|| {
            format!(
                r#"
[[github_sync.targets]]
id = "plugins"
instance = "{INSTANCE}"
repositories = ["octocat/*"]
branches = ["main"]
path = "{base}/out/{{name}}"
"#
            )
        });
        format!(
            r#"
name = "{WORKER}"
[nats]
url = "{nats}"
[consumer]
filter_subjects = "tidegate.in.github.>"
concurrency = {concurrency}
max_deliver = {max_deliver}
ack_wait = "{ack_wait}"
backoff_base = "100ms"
backoff_max = "300ms"
[github_sync]
state_dir = "{base}/state"
git_timeout = "30s"
protocols = ["http"]
[github_sync.app]
id = {APP_ID}
private_key = {{ env = "{KEY_ENV}" }}
api_url = "{api}"
git_url = "{git}"
api_timeout = "5s"
token_refresh_margin = "{margin}"
[github_sync.lock]
ttl = "{ttl}"
wait = "{wait}"
{targets}"#,
            nats = self.nats.url(),
            concurrency = options.concurrency,
            ack_wait = options.ack_wait,
            max_deliver = options.max_deliver,
            api = self.github.api_url(),
            git = self.github.git_url(),
            margin = options.refresh_margin,
            ttl = options.lock_ttl,
            wait = options.lock_wait,
        )
    }

    fn add_worker(&mut self, private_pem: &str) {
        let worker = WorkerProcess::start(
            "tidegate-github-sync",
            &self.config(),
            &[(KEY_ENV, private_pem)],
        );
        self.workers.push(worker);
    }

    fn folder(&self, name: &str) -> PathBuf {
        self.base.path().join("out").join(name)
    }

    /// A work tree of `owner/name` on the fake.
    fn work(&self, full_name: &str) -> Work {
        Work::new(&self.github.repository(full_name))
    }

    /// POSTs a signed GitHub delivery; returns the delivery id.
    async fn send(&self, event: &str, guid: &str, body: &serde_json::Value) -> String {
        let body = body.to_string().into_bytes();
        let response = self
            .ingress
            .http
            .post(self.ingress.url(PATH))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", guid)
            .header("x-github-hook-id", "1")
            .header("x-hub-signature-256", sign::github(GITHUB_SECRET, &body))
            .body(body)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 202, "{event} {guid}");
        json(response).await["id"]
            .as_str()
            .expect("a delivery id")
            .to_owned()
    }

    /// A push of `after` to `main` of `full_name` from `installation`.
    async fn push(&self, guid: &str, full_name: &str, installation: u64, after: &str) -> String {
        let repository_id = if full_name == REPOSITORY {
            REPOSITORY_ID
        } else {
            7_000 + installation
        };
        let body = json!({
            "ref": "refs/heads/main",
            "before": "0000000000000000000000000000000000000000",
            "after": after,
            "installation": { "id": installation },
            "repository": {
                "id": repository_id,
                "name": full_name.split('/').nth(1),
                "full_name": full_name,
                "private": true,
                "clone_url": self.github.clone_url(full_name),
            },
            "commits": [],
        });
        self.send("push", guid, &body).await
    }

    /// The delivery's latest result once `done` says it is the one.
    async fn result_where(
        &self,
        delivery_id: &str,
        done: impl Fn(&JobResult) -> bool,
    ) -> JobResult {
        let jetstream = self.nats.jetstream().await;
        eventually(
            Duration::from_secs(45),
            &format!("a result for {delivery_id}"),
            || async {
                broker::results::latest(&jetstream, WORKER, delivery_id)
                    .await
                    .ok()
                    .flatten()
                    .filter(&done)
            },
        )
        .await
    }

    /// The delivery's final result (not `retrying`).
    async fn result(&self, delivery_id: &str) -> JobResult {
        self.result_where(delivery_id, |result| result.status != JobStatus::Retrying)
            .await
    }
}

/// Asserts the seed's whole contract on a result of a push to `main`.
fn assert_contract(
    result: &JobResult,
    guid: &str,
    full_name: &str,
    installation: u64,
    head_sha: &str,
) {
    let connector = result
        .connector
        .as_ref()
        .unwrap_or_else(|| panic!("no connector contract on {result:#?}"));
    assert_eq!(connector.connector_type, "github");
    assert_eq!(connector.connector_instance_id, INSTANCE);
    assert_eq!(connector.connector_target_id, "plugins");
    let repository_id = connector.repository_id.expect("repositoryId");
    assert_eq!(
        connector.connector_sync_event_id,
        format!("plugins:{repository_id}:{head_sha}")
    );
    assert_eq!(connector.delivery_id, guid);
    assert_eq!(connector.installation_id, Some(installation));
    assert_eq!(connector.repository_full_name, full_name);
    assert_eq!(connector.git_ref, "refs/heads/main");
    assert_eq!(connector.head_sha, head_sha);
    assert_eq!(
        result.key.as_deref(),
        Some(format!("github-sync:{}", connector.connector_sync_event_id).as_str()),
        "the idempotency key and the sync event agree"
    );
}
