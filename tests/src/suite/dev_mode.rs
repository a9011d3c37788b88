//! The README's first command, minus the build: `tidegate up` starts
//! nats-server, the ingress and the workers from the shipped example and
//! dev configs; the sample push it prints is accepted, delivered to the dev
//! sink with a valid signature and reported skipped by github-sync (its
//! repository is not tracked); a delivery to each of exec, inbox and
//! workflow reaches it; Ctrl-C stops everything cleanly.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemas::JobStatus;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::eventually;
use crate::nats::free_port;
use crate::process::binary;

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every line `tidegate up` printed so far.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn snapshot(&self) -> Vec<String> {
        self.0.lock().expect("not poisoned").clone()
    }
}

#[tokio::test]
async fn up_runs_the_pipeline_and_its_sample_push_goes_through() {
    let data = tempfile::tempdir().expect("temp dir");
    let (nats_port, monitor_port, listen, sink_port) =
        (free_port(), free_port(), free_port(), free_port());
    let root = repository_root();
    let mut up = tokio::process::Command::new(binary("tidegate"))
        .arg("up")
        .args(["--nats-port", &nats_port.to_string()])
        .args(["--monitor-port", &monitor_port.to_string()])
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .args(["--sink-port", &sink_port.to_string()])
        .arg("--data")
        .arg(data.path())
        .current_dir(&root)
        .env_remove("TIDEGATE_CONFIG")
        .env_remove("TIDEGATE_NATS_URL")
        .env_remove("GITHUB_WEBHOOK_SECRET")
        .env_remove("TIDEGATE_API_TOKEN")
        .env_remove("FORWARD_SIGNING_SECRET")
        .env_remove("ASSISTANT_WEBHOOK_SECRET")
        .env_remove("ASSISTANT_WEBHOOK_ENABLED")
        .env_remove("WEBHOOK_SECRET_flickclaw")
        .env_remove("WEBHOOK_SECRET_flickclaw_putio")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting tidegate up");
    let lines = Lines::default();
    for stream in [
        Box::new(up.stdout.take().expect("stdout")) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(up.stderr.take().expect("stderr")),
    ] {
        let lines = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("up: {line}");
                }
                lines.0.lock().expect("not poisoned").push(line);
            }
        });
    }

    let curl = eventually(Duration::from_secs(90), "the sample curl", || {
        let lines = lines.snapshot();
        async move { sample_curl(&lines) }
    })
    .await;
    assert!(curl.contains("X-Hub-Signature-256: sha256="), "{curl}");
    let delivery = curl
        .split("X-GitHub-Delivery: ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a delivery id in the curl")
        .to_owned();

    let answer = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&curl)
        .output()
        .await
        .expect("running the printed curl");
    let answer = String::from_utf8_lossy(&answer.stdout);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    eventually(
        Duration::from_secs(30),
        "the sink to check the signature",
        || {
            let lines = lines.snapshot();
            async move {
                lines
                    .iter()
                    .any(|line| line.starts_with("sink") && line.contains("signature ok"))
                    .then_some(())
            }
        },
    )
    .await;

    let settings = broker::NatsSettings::for_url(&format!("nats://127.0.0.1:{nats_port}"), "test")
        .expect("settings");
    let connection = broker::Connection::open(&settings)
        .await
        .expect("connected");
    let delivery_id = format!("1_{delivery}");
    let result = eventually(Duration::from_secs(30), "github-sync's result", || {
        let jetstream = connection.jetstream.clone();
        let delivery_id = delivery_id.clone();
        async move {
            broker::results::latest(&jetstream, "github-sync", &delivery_id)
                .await
                .ok()
                .flatten()
        }
    })
    .await;
    assert_eq!(result.status, JobStatus::Skipped, "{result:?}");
    assert!(
        result.detail["reason"].contains("is not tracked by any target"),
        "{result:?}"
    );

    let ingress = format!("http://127.0.0.1:{listen}");
    reaches_inbox(&ingress, &connection, data.path()).await;
    reaches_workflow(&ingress, data.path()).await;
    reaches_exec(&ingress, &connection, data.path()).await;
    // exec's refresh (no stored tokens) is dead-lettered by design; nothing
    // else may be.
    assert!(
        !lines
            .snapshot()
            .iter()
            .any(|line| line.contains("dead-lettered") && !line.starts_with("exec")),
        "{:#?}",
        lines.snapshot()
    );

    let pid = up.id().expect("running") as i32;
    // SAFETY: kill(2) with a pid this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(60), up.wait())
        .await
        .expect("tidegate up stops within a minute of Ctrl-C")
        .expect("waiting");
    assert!(status.success(), "{status:?}: {:#?}", lines.snapshot());
}

/// The agent route's delivery is written into the dev workspace by
/// tidegate-inbox, which reports it completed.
async fn reaches_inbox(ingress: &str, connection: &broker::Connection, data: &std::path::Path) {
    let answer = reqwest::Client::new()
        .post(format!("{ingress}/api/webhook/flickclaw?source=putio"))
        .header("content-type", "application/json")
        .body(r#"{"transfer": "dev-mode"}"#)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("posting to the agent route");
    assert_eq!(answer.status(), 202);
    let body: serde_json::Value = answer.json().await.expect("a JSON answer");
    let delivery_id = body["id"].as_str().expect("a delivery id").to_owned();
    let result = latest_result(connection, "inbox", &delivery_id).await;
    assert_eq!(result.status, JobStatus::Completed, "{result:?}");
    let inbox = data.join("agents/flickclaw/inbox/webhooks");
    let files: Vec<_> = std::fs::read_dir(&inbox)
        .expect("the inbox folder exists")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(
        files.iter().any(|name| name.contains(&delivery_id)),
        "{delivery_id} not in {files:?}"
    );
}

/// deploy-notify runs in sync mode: the ingress answers only once
/// tidegate-workflow has run its steps, the last of which writes the dev
/// memory file under the data folder.
async fn reaches_workflow(ingress: &str, data: &std::path::Path) {
    let answer = reqwest::Client::new()
        .post(format!("{ingress}/webhooks/deploy-notify"))
        .header("content-type", "application/json")
        .header("x-github-event", "deployment")
        .body(r#"{"ref": "main"}"#)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("posting to the workflow route");
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.expect("a JSON answer");
    assert_eq!(body["status"], "ok", "{body}");
    let steps = body["results"].as_array().expect("step results");
    assert_eq!(steps.len(), 2, "{body}");
    assert!(
        steps.iter().all(|step| step["status"] == "success"),
        "{body}"
    );
    let memory = std::fs::read_to_string(data.join("workflow/memory.md")).expect("memory.md");
    assert!(memory.contains("Deployment event received"), "{memory}");
}

/// A queued plugin command goes to tidegate-exec, which runs the Withings
/// plugin: with no stored tokens, `refresh` fails and says why.
async fn reaches_exec(ingress: &str, connection: &broker::Connection, data: &std::path::Path) {
    let secrets = std::fs::read_to_string(data.join("dev-secrets.env")).expect("dev secrets");
    let token = secrets
        .lines()
        .find_map(|line| line.strip_prefix("TIDEGATE_API_TOKEN="))
        .expect("the API token in dev-secrets.env")
        .trim_matches('\'');
    let answer = reqwest::Client::new()
        .post(format!("{ingress}/webhook/withings/refresh"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("{}")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("posting a queued plugin command");
    assert_eq!(answer.status(), 202);
    let body: serde_json::Value = answer.json().await.expect("a JSON answer");
    let delivery_id = body["id"].as_str().expect("a delivery id").to_owned();
    let result = latest_result(connection, "exec", &delivery_id).await;
    assert_eq!(result.status, JobStatus::Failed, "{result:?}");
    assert!(
        format!("{result:?}").contains("no stored Withings tokens"),
        "{result:?}"
    );
}

async fn latest_result(
    connection: &broker::Connection,
    worker: &str,
    delivery_id: &str,
) -> schemas::JobResult {
    eventually(
        Duration::from_secs(20),
        &format!("{worker}'s result"),
        || {
            let jetstream = connection.jetstream.clone();
            async move {
                broker::results::latest(&jetstream, worker, delivery_id)
                    .await
                    .ok()
                    .flatten()
            }
        },
    )
    .await
}

/// The printed multi-line curl, once it is complete.
fn sample_curl(lines: &[String]) -> Option<String> {
    let start = lines
        .iter()
        .position(|line| line.trim_start().starts_with("curl -sS -i"))?;
    let mut curl = String::new();
    for line in &lines[start..] {
        curl.push_str(line.trim());
        curl.push('\n');
        if !line.ends_with('\\') {
            return Some(curl);
        }
    }
    None
}
