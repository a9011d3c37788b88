//! The GitHub connector sync end to end: signed GitHub deliveries through
//! the ingress, `tidegate-github-sync` as a real process, a local bare
//! repository as the pushed-to remote, files and job results checked.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use schemas::JobStatus;
use schemas::streams::CONNECTORS_BUCKET;
use serde_json::json;
use workers::jobs::github_sync::{InstallationState, InstallationStatus};

use super::{GITHUB_ROUTE, GITHUB_SECRET, json};
use crate::process::WorkerProcess;
use crate::{NatsServer, TestIngress, eventually, sign};

const PATH: &str = "/v1/webhooks/connectors/github";
const WORKER: &str = "github-sync";
const REPOSITORY: &str = "octocat/plugins";
const REPOSITORY_ID: u64 = 1296269;

/// A bare repository (the "GitHub" remote) and a work tree pushing to it.
struct Remote {
    dir: tempfile::TempDir,
}

impl Remote {
    fn new() -> Remote {
        let remote = Remote {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        git(
            remote.dir.path(),
            &["init", "--quiet", "--bare", "origin.git"],
        );
        git(
            remote.dir.path(),
            &["init", "--quiet", "--initial-branch=main", "work"],
        );
        git(
            &remote.work(),
            &["remote", "add", "origin", &remote.clone_url()],
        );
        remote
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn clone_url(&self) -> String {
        format!("file://{}", self.dir.path().join("origin.git").display())
    }

    fn write(&self, path: &str, content: &str, executable: bool) {
        let file = self.work().join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&file, content).expect("write");
        let mode = if executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn remove(&self, path: &str) {
        std::fs::remove_file(self.work().join(path)).expect("remove");
    }

    /// Commits everything and pushes `branch`; returns the commit SHA.
    fn push(&self, branch: &str) -> String {
        let work = self.work();
        git(&work, &["add", "--all"]);
        git(
            &work,
            &["commit", "--quiet", "--allow-empty", "-m", "change"],
        );
        git(
            &work,
            &[
                "push",
                "--quiet",
                "origin",
                &format!("HEAD:refs/heads/{branch}"),
            ],
        );
        git(&work, &["rev-parse", "HEAD"])
    }
}

pub(super) fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=Sync Test",
            "-c",
            "user.email=sync@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .output()
        .expect("running git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Every file under `root` except `.git`: path → (content, executable).
pub(super) fn snapshot(root: &Path) -> BTreeMap<String, (String, bool)> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, (String, bool)>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let entry = entry.expect("entry");
            if entry.file_name() == ".git" {
                continue;
            }
            let path = entry.path();
            let metadata = std::fs::symlink_metadata(&path).expect("metadata");
            if metadata.is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path.strip_prefix(root).expect("under root");
                files.insert(
                    relative.to_string_lossy().into_owned(),
                    (
                        std::fs::read_to_string(&path).expect("text file"),
                        metadata.permissions().mode() & 0o111 != 0,
                    ),
                );
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

struct Setup {
    nats: NatsServer,
    ingress: TestIngress,
    remote: Remote,
    /// The worker's state_dir and target folders.
    base: tempfile::TempDir,
    /// The worker's configuration, for more replicas.
    config: String,
    _worker: WorkerProcess,
}

impl Setup {
    async fn start() -> Setup {
        let nats = NatsServer::start().await;
        let ingress = TestIngress::start(
            &nats,
            GITHUB_ROUTE,
            &[("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)],
        )
        .await;
        let base = tempfile::tempdir().expect("temp dir");
        let config = format!(
            r#"
name = "{WORKER}"
[nats]
url = "{nats}"
[consumer]
filter_subjects = "tidegate.in.github.>"
backoff_base = "100ms"
[github_sync]
state_dir = "{base}/state"
git_timeout = "30s"
protocols = ["file"]
[[github_sync.targets]]
id = "plugins"
instance = "inst-1"
repositories = ["octocat/*"]
branches = ["main"]
path = "{base}/out/{{name}}"
"#,
            nats = nats.url(),
            base = base.path().display(),
        );
        let worker = WorkerProcess::start("tidegate-github-sync", &config, &[]);
        Setup {
            nats,
            ingress,
            remote: Remote::new(),
            base,
            config,
            _worker: worker,
        }
    }

    fn folder(&self) -> PathBuf {
        self.base.path().join("out/plugins")
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

    async fn push(&self, guid: &str, git_ref: &str, after: &str) -> String {
        let body = json!({
            "ref": git_ref,
            "before": "0000000000000000000000000000000000000000",
            "after": after,
            "installation": { "id": 42 },
            "repository": {
                "id": REPOSITORY_ID,
                "name": "plugins",
                "full_name": REPOSITORY,
                "clone_url": self.remote.clone_url(),
            },
            "commits": [],
        });
        self.send("push", guid, &body).await
    }

    /// The delivery's final result (not `retrying`).
    async fn result(&self, delivery_id: &str) -> schemas::JobResult {
        let jetstream = self.nats.jetstream().await;
        eventually(
            Duration::from_secs(30),
            &format!("a final result for {delivery_id}"),
            || async {
                broker::results::latest(&jetstream, WORKER, delivery_id)
                    .await
                    .ok()
                    .flatten()
                    .filter(|result| result.status != JobStatus::Retrying)
            },
        )
        .await
    }
}

fn counts(result: &schemas::JobResult) -> [u64; 4] {
    ["created", "updated", "deleted", "skipped"]
        .map(|name| result.counts.get(name).copied().unwrap_or_default())
}

#[tokio::test]
async fn pushes_sync_the_commit_tree_and_a_repeated_head_is_skipped() {
    let setup = Setup::start().await;
    let remote = &setup.remote;
    remote.write("README.md", "# plugins\n", false);
    remote.write("bin/install.sh", "#!/bin/sh\necho install\n", true);
    remote.write("docs/guide.md", "guide\n", false);
    remote.write(".claude-plugin/plugin.json", "{\"name\":\"demo\"}\n", false);
    let first = remote.push("main");

    let id = setup.push("guid-1", "refs/heads/main", &first).await;
    let result = setup.result(&id).await;
    assert_eq!(result.status, JobStatus::Completed, "{result:?}");
    assert_eq!(counts(&result), [4, 0, 0, 0], "{result:?}");
    assert_eq!(result.detail["target"], "plugins");
    assert_eq!(result.detail["repository"], REPOSITORY);
    assert_eq!(result.detail["ref"], "refs/heads/main");
    assert_eq!(result.detail["head_sha"], first);
    assert_eq!(
        result.key.as_deref(),
        Some(format!("github-sync:plugins:{REPOSITORY_ID}:{first}").as_str())
    );
    assert_eq!(snapshot(&setup.folder()), snapshot(&remote.work()));
    assert!(snapshot(&setup.folder())["bin/install.sh"].1, "executable");

    // Modify one file, delete one, add one.
    remote.write("README.md", "# plugins, v2\n", false);
    remote.remove("docs/guide.md");
    remote.write("skills/review/SKILL.md", "review\n", false);
    let second = remote.push("main");
    let id = setup.push("guid-2", "refs/heads/main", &second).await;
    let result = setup.result(&id).await;
    assert_eq!(result.status, JobStatus::Completed, "{result:?}");
    assert_eq!(counts(&result), [1, 1, 1, 2], "{result:?}");
    assert_eq!(snapshot(&setup.folder()), snapshot(&remote.work()));
    assert!(!setup.folder().join("docs").exists(), "emptied directory");

    // A second delivery of the same head (new GUID): no second sync. A sync
    // would delete this file, which is not in the tree.
    let marker = setup.folder().join("not-in-the-tree.txt");
    std::fs::write(&marker, "untouched").expect("marker");
    let id = setup.push("guid-3", "refs/heads/main", &second).await;
    let result = setup.result(&id).await;
    assert_eq!(result.status, JobStatus::Skipped, "{result:?}");
    assert!(
        result.detail["reason"].contains("already completed"),
        "{result:?}"
    );
    assert!(marker.exists(), "the folder was synced again");
    // A head-SHA key is not the delivery id: its records stay in KV, one
    // per synced head.
    let recorded: Vec<String> = super::dedupe_record::kv_records(&setup.nats)
        .await
        .iter()
        .map(|record| record["key"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        recorded,
        [first.as_str(), second.as_str()]
            .map(|sha| format!("github-sync:plugins:{REPOSITORY_ID}:{sha}")),
        "the head-SHA keys in KV"
    );
    assert_eq!(
        std::fs::read_to_string(setup.folder().join("README.md")).expect("synced"),
        "# plugins, v2\n"
    );
}

#[tokio::test]
async fn tags_deletions_and_untracked_branches_are_skipped() {
    let setup = Setup::start().await;
    setup.remote.write("README.md", "dev\n", false);
    let sha = setup.remote.push("dev");
    let zeros = "0000000000000000000000000000000000000000";
    for (guid, git_ref, after, reason) in [
        ("guid-dev", "refs/heads/dev", sha.as_str(), "not tracked"),
        ("guid-tag", "refs/tags/v1.0.0", sha.as_str(), "tag push"),
        ("guid-del", "refs/heads/main", zeros, "branch deletion"),
    ] {
        let id = setup.push(guid, git_ref, after).await;
        let result = setup.result(&id).await;
        assert_eq!(result.status, JobStatus::Skipped, "{guid}: {result:?}");
        assert!(
            result.detail["reason"].contains(reason),
            "{guid}: {result:?}"
        );
    }
    assert!(!setup.folder().exists(), "nothing was synced");
}

#[tokio::test]
async fn installation_events_update_connector_state_without_a_sync() {
    let setup = Setup::start().await;
    let installation = json!({
        "id": 42,
        "account": { "login": "octocat", "type": "Organization" },
        "repository_selection": "selected",
    });
    let created = json!({
        "action": "created",
        "installation": installation,
        "repositories": [
            { "id": REPOSITORY_ID, "name": "plugins", "full_name": REPOSITORY, "private": true },
        ],
        "sender": { "login": "octocat" },
    });
    let id = setup.send("installation", "guid-i1", &created).await;
    let result = setup.result(&id).await;
    assert_eq!(result.status, JobStatus::Completed, "{result:?}");
    assert_eq!(result.detail["event"], "installation.created");
    assert_eq!(result.detail["status"], "active");
    assert_eq!(result.detail["key"], "github.installation.42");

    let jetstream = setup.nats.jetstream().await;
    let bucket = jetstream
        .get_key_value(CONNECTORS_BUCKET)
        .await
        .expect("the connectors bucket");
    let state = || async {
        let value = bucket
            .get("github.installation.42")
            .await
            .expect("KV get")
            .expect("an installation record");
        serde_json::from_slice::<InstallationState>(&value).expect("installation state")
    };
    let recorded = state().await;
    assert_eq!(recorded.status, InstallationStatus::Active);
    assert_eq!(recorded.account.as_deref(), Some("octocat"));
    assert_eq!(recorded.repositories.len(), 1);
    assert_eq!(recorded.repositories[0].full_name, REPOSITORY);

    let added = json!({
        "action": "added",
        "installation": installation,
        "repository_selection": "selected",
        "repositories_added": [{ "id": 7, "name": "tools", "full_name": "octocat/tools" }],
        "repositories_removed": [],
    });
    let id = setup
        .send("installation_repositories", "guid-i2", &added)
        .await;
    assert_eq!(setup.result(&id).await.status, JobStatus::Completed);
    let suspend = json!({ "action": "suspend", "installation": installation });
    let id = setup.send("installation", "guid-i3", &suspend).await;
    assert_eq!(setup.result(&id).await.status, JobStatus::Completed);

    let recorded = state().await;
    assert_eq!(recorded.status, InstallationStatus::Suspended);
    let names: Vec<&str> = recorded
        .repositories
        .iter()
        .map(|repository| repository.full_name.as_str())
        .collect();
    assert_eq!(names, [REPOSITORY, "octocat/tools"]);
    assert_eq!(recorded.last_event, "installation.suspend");
    assert!(
        !setup.base.path().join("state/targets").exists(),
        "no sync ran"
    );
    assert!(!setup.folder().exists(), "no folder was written");
}

#[tokio::test]
async fn concurrent_replicas_lose_no_connector_state_update() {
    let setup = Setup::start().await;
    let _second = WorkerProcess::start("tidegate-github-sync", &setup.config, &[]);
    let count = 24;
    let deliveries = (0..count).map(|index| {
        let body = json!({
            "action": "added",
            "installation": { "id": 77, "account": { "login": "octocat" } },
            "repository_selection": "selected",
            "repositories_added": [
                { "id": 1000 + index, "full_name": format!("octocat/repo-{index:02}") },
            ],
            "repositories_removed": [],
        });
        let guid = format!("guid-added-{index}");
        let setup = &setup;
        async move { setup.send("installation_repositories", &guid, &body).await }
    });
    let ids = futures::future::join_all(deliveries).await;
    for id in &ids {
        assert_eq!(setup.result(id).await.status, JobStatus::Completed, "{id}");
    }
    let jetstream = setup.nats.jetstream().await;
    let bucket = jetstream
        .get_key_value(CONNECTORS_BUCKET)
        .await
        .expect("the connectors bucket");
    let value = bucket
        .get("github.installation.77")
        .await
        .expect("KV get")
        .expect("an installation record");
    let state: InstallationState = serde_json::from_slice(&value).expect("installation state");
    assert_eq!(
        state.repositories.len(),
        count as usize,
        "every added repository is recorded: {state:?}"
    );
}
