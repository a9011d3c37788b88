//! `tidegate-inbox` as a real process: the seed's put.io request becomes a
//! file in the agent's inbox and wakes the agent; a worker killed between
//! the write and the ack leaves one file; bodies are written byte for
//! byte; what cannot be delivered is dead-lettered.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use schemas::streams::{DEAD_LETTER_STREAM, RESULTS_STREAM};
use schemas::{DeadLetter, InboxItem, ItemEncoding, JobResult, JobStatus};
use tempfile::TempDir;

use super::{INVALID_JSON, PLAIN_TEXT, SEED_BODY, SEED_ROUTE, send_open, send_seed_request};
use crate::process::WorkerProcess;
use crate::{NatsServer, TestIngress, eventually};

const WORKER: &str = "inbox";

/// A broker, the ingress with the seed's route, and an agent workspace.
struct Setup {
    nats: NatsServer,
    ingress: TestIngress,
    workspace: TempDir,
    /// Where the notify script leaves its traces.
    traces: TempDir,
}

async fn setup() -> Setup {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(
        &nats,
        SEED_ROUTE,
        &[("WEBHOOK_SECRET_flickclaw_putio", "abc123")],
    )
    .await;
    Setup {
        nats,
        ingress,
        workspace: tempfile::tempdir().expect("temp dir"),
        traces: tempfile::tempdir().expect("temp dir"),
    }
}

impl Setup {
    fn inbox(&self) -> PathBuf {
        self.workspace.path().join("inbox/webhooks")
    }

    fn trace(&self, name: &str) -> PathBuf {
        self.traces.path().join(name)
    }

    /// Writes the notify script and returns the worker's configuration:
    /// flickclaw mapped to the workspace, notified by `script` (sh).
    fn config(&self, script: &str) -> String {
        let path = self.traces.path().join("notify.sh");
        std::fs::write(&path, script).expect("writing the notify script");
        format!(
            r#"
name = "{WORKER}"
[nats]
url = "{url}"
{auth}
[consumer]
filter_subjects = "tidegate.in.agent.>"
ack_wait = "2s"
max_deliver = 4
backoff_base = "200ms"
backoff_max = "1s"
[inbox.agents.flickclaw]
workspace = "{workspace}"
notify = ["/bin/sh", "{script}", "{{agent}}", "{{file}}", "{{id}}"]
timeout = "60s"
env = {{ TRACES = "{traces}" }}
[inbox.agents.elsewhere]
workspace = "/nonexistent/elsewhere"
"#,
            url = self.nats.url(),
            auth = self.nats.nats_toml(),
            workspace = self.workspace.path().display(),
            script = path.display(),
            traces = self.traces.path().display(),
        )
    }

    /// The inbox's entries, dot files included.
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.inbox())
            .map(|entries| {
                entries
                    .map(|entry| {
                        entry
                            .expect("entry")
                            .file_name()
                            .to_string_lossy()
                            .into_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    async fn result(&self, delivery_id: &str) -> Option<JobResult> {
        let jetstream = self.nats.jetstream().await;
        jetstream.get_stream(RESULTS_STREAM).await.ok()?;
        broker::results::latest(&jetstream, WORKER, delivery_id)
            .await
            .expect("results query")
    }

    async fn completed(&self, delivery_id: &str) -> JobResult {
        eventually(Duration::from_secs(30), "a completed result", || async {
            self.result(delivery_id)
                .await
                .filter(|result| result.status == JobStatus::Completed)
        })
        .await
    }
}

/// Appends "<agent> <file> <id>" to `notified`, as a `sessions_spawn`
/// stand-in would wake the agent.
const RECORDING_SCRIPT: &str = "echo \"$1 $2 $3\" >> \"$TRACES/notified\"\n";

fn read_item(path: &Path) -> (Vec<u8>, InboxItem) {
    let bytes = std::fs::read(path).expect("the inbox file");
    let item = serde_json::from_slice(&bytes).expect("an inbox item");
    (bytes, item)
}

fn body_of(item: &InboxItem) -> Vec<u8> {
    let payload = item.payload.as_ref().expect("a payload").get();
    match item.encoding {
        ItemEncoding::Json => payload.as_bytes().to_vec(),
        ItemEncoding::Base64 => {
            let text: String = serde_json::from_str(payload).expect("a string");
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("base64")
        }
        ItemEncoding::Empty => Vec::new(),
    }
}

#[tokio::test]
async fn the_seed_request_lands_in_the_inbox_and_wakes_the_agent() {
    let setup = setup().await;
    let _worker = WorkerProcess::start("tidegate-inbox", &setup.config(RECORDING_SCRIPT), &[]);
    let delivery_id = send_seed_request(&setup.ingress).await;

    let result = setup.completed(&delivery_id).await;
    assert_eq!(result.counts["written"], 1);
    assert_eq!(result.counts["notified"], 1);
    let files = setup.files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].ends_with(&format!("_{delivery_id}.json")),
        "{files:?}"
    );
    let path = setup.inbox().join(&files[0]);
    let (bytes, item) = read_item(&path);
    assert_eq!(item.id, delivery_id);
    assert_eq!(
        (item.agent_id.as_str(), item.source.as_str()),
        ("flickclaw", "putio")
    );
    assert_eq!(item.encoding, ItemEncoding::Json);
    assert_eq!(body_of(&item), SEED_BODY.as_bytes());
    // The body's exact bytes are inside the file, indentation and all.
    let text = String::from_utf8(bytes).expect("UTF-8");
    assert!(text.contains(SEED_BODY), "{text}");
    assert!(!item.headers.contains_key("x-webhook-secret"));
    assert_eq!(result.detail["file"], path.display().to_string());

    let notified = std::fs::read_to_string(setup.trace("notified")).expect("notify ran");
    assert_eq!(
        notified,
        format!("flickclaw {} {delivery_id}\n", path.display())
    );
}

#[tokio::test]
async fn a_worker_killed_between_write_and_ack_leaves_one_file() {
    let setup = setup().await;
    // The first run hangs (the worker is killed meanwhile); later runs
    // record the notification.
    let script = "echo $$ > \"$TRACES/first.pid\"\n\
        if [ ! -e \"$TRACES/first\" ]; then touch \"$TRACES/first\"; sleep 60; exit 1; fi\n\
        echo \"$1 $2 $3\" >> \"$TRACES/notified\"\n";
    let config = setup.config(script);
    let mut worker = WorkerProcess::start("tidegate-inbox", &config, &[]);
    let delivery_id = send_seed_request(&setup.ingress).await;
    eventually(Duration::from_secs(30), "the first notify run", || async {
        setup.trace("first").exists().then_some(())
    })
    .await;
    assert_eq!(
        setup.files().len(),
        1,
        "the file is written before notify runs"
    );
    worker.kill();
    // The orphaned first run would outlive the test.
    let pid: i32 = std::fs::read_to_string(setup.trace("first.pid"))
        .expect("the first run's pid")
        .trim()
        .parse()
        .expect("a pid");
    // SAFETY: killpg only sends a signal.
    unsafe {
        libc::killpg(pid, libc::SIGKILL);
    }
    assert!(
        setup.result(&delivery_id).await.is_none(),
        "nothing was reported"
    );

    let _restarted = WorkerProcess::start("tidegate-inbox", &config, &[]);
    let result = setup.completed(&delivery_id).await;
    assert_eq!(result.counts["written"], 0, "the redelivery wrote nothing");
    assert_eq!(result.counts["notified"], 1, "but the agent was notified");
    let files = setup.files();
    assert_eq!(files.len(), 1, "one file and no leftovers: {files:?}");
    let path = setup.inbox().join(&files[0]);
    assert_eq!(body_of(&read_item(&path).1), SEED_BODY.as_bytes());
    let notified = std::fs::read_to_string(setup.trace("notified")).expect("notify ran");
    assert_eq!(notified.lines().count(), 1, "{notified}");
}

#[tokio::test]
async fn a_file_the_agent_archived_is_not_written_again() {
    let setup = setup().await;
    // The agent takes the file at once, but the first notification fails:
    // the retry must notify without putting the file back.
    let script = "if [ ! -e \"$TRACES/failed\" ]; then\n\
          mv \"$2\" \"$TRACES/\"; touch \"$TRACES/failed\"; exit 7\n\
        fi\n\
        echo \"$1 $2 $3\" >> \"$TRACES/notified\"\n";
    let _worker = WorkerProcess::start("tidegate-inbox", &setup.config(script), &[]);
    let delivery_id = send_seed_request(&setup.ingress).await;
    let result = setup.completed(&delivery_id).await;
    assert_eq!(result.attempts, 2, "the failed notification was retried");
    assert!(setup.files().is_empty(), "the archived file came back");
    let archived = std::fs::read_dir(setup.traces.path())
        .expect("traces")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|entry| entry.file_name().to_string_lossy().ends_with(".json"))
        })
        .count();
    assert_eq!(archived, 1, "the agent archived the file once");
    let notified = std::fs::read_to_string(setup.trace("notified")).expect("notify ran");
    assert_eq!(notified.lines().count(), 1);
}

#[tokio::test]
async fn invalid_json_and_other_bodies_are_written_byte_for_byte() {
    let setup = setup().await;
    let _worker = WorkerProcess::start("tidegate-inbox", &setup.config(RECORDING_SCRIPT), &[]);
    let sent = [
        ("application/json", INVALID_JSON),
        ("text/plain", PLAIN_TEXT),
    ];
    for (content_type, body) in sent {
        let delivery_id =
            send_open(&setup.ingress, "flickclaw", "github", content_type, body).await;
        setup.completed(&delivery_id).await;
        let file = setup
            .files()
            .into_iter()
            .find(|name| name.ends_with(&format!("_{delivery_id}.json")))
            .expect("the delivery's file");
        let (_, item) = read_item(&setup.inbox().join(file));
        assert_eq!(item.encoding, ItemEncoding::Base64, "{content_type}");
        assert_eq!(body_of(&item), body, "{content_type}");
        assert_eq!(item.content_type.as_deref(), Some(content_type));
    }
}

#[tokio::test]
async fn unmapped_agents_and_missing_workspaces_are_dead_lettered() {
    let setup = setup().await;
    let _worker = WorkerProcess::start("tidegate-inbox", &setup.config(RECORDING_SCRIPT), &[]);
    let unmapped = send_open(
        &setup.ingress,
        "stewardclaw",
        "putio",
        "application/json",
        b"{}",
    )
    .await;
    let missing = send_open(
        &setup.ingress,
        "elsewhere",
        "putio",
        "application/json",
        b"{}",
    )
    .await;
    let letters = eventually(Duration::from_secs(30), "two dead letters", || async {
        let letters = dead_letters(&setup.nats).await;
        (letters.len() == 2).then_some(letters)
    })
    .await;
    let error_of = |id: &str| {
        letters
            .iter()
            .find(|letter| letter.delivery_id == id)
            .map(|letter| letter.error.clone())
            .expect("a dead letter for the delivery")
    };
    assert!(
        error_of(&unmapped).contains("no workspace is configured for agent stewardclaw"),
        "{}",
        error_of(&unmapped)
    );
    assert!(
        error_of(&missing).contains("/nonexistent/elsewhere")
            && error_of(&missing).contains("does not exist"),
        "{}",
        error_of(&missing)
    );
    assert!(!setup.trace("notified").exists());
}

async fn dead_letters(nats: &NatsServer) -> Vec<DeadLetter> {
    let jetstream = nats.jetstream().await;
    let Ok(mut stream) = jetstream.get_stream(DEAD_LETTER_STREAM).await else {
        return Vec::new();
    };
    let state = stream.info().await.expect("info").state.clone();
    let mut letters = Vec::new();
    if state.messages == 0 {
        return letters;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            letters.push(serde_json::from_slice(&message.payload).expect("dead letter v1"));
        }
    }
    letters
}
