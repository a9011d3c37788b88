//! What goes wrong, reported with the whole contract: a private key GitHub
//! refuses, a key that cannot sign at all (start-up), a file that cannot
//! be written (`partial`), a repository that keeps failing (dead-lettered),
//! and an openwork-side consumer turning those results into
//! `connector_sync_event` rows.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt as _;
use schemas::streams::DEAD_LETTER_STREAM;
use schemas::{DeadLetter, JobResult, JobStatus};

use super::{INSTALLATION, KEY_ENV, Options, REPOSITORY, Setup, assert_contract};
use crate::github_app::AppKey;
use crate::process::binary;

/// The dead letters stored for the github-sync worker.
async fn dead_letters(setup: &Setup) -> Vec<DeadLetter> {
    let jetstream = setup.nats.jetstream().await;
    let stream = jetstream
        .get_stream(DEAD_LETTER_STREAM)
        .await
        .expect("the dead-letter stream");
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: "tidegate.dlq.github-sync".into(),
            ..Default::default()
        })
        .await
        .expect("an ordered consumer");
    let pending = consumer.cached_info().num_pending as usize;
    let mut messages = consumer.messages().await.expect("messages");
    let mut letters = Vec::new();
    while letters.len() < pending {
        let message = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .expect("a dead letter within 5 s")
            .expect("a message")
            .expect("no error");
        letters.push(serde_json::from_slice(&message.payload).expect("a dead letter v1"));
    }
    letters
}

#[tokio::test]
async fn a_private_key_github_refuses_fails_clearly_with_the_contract() {
    let mut setup = Setup::new(Options::default()).await;
    // A valid RSA key, but not the App's.
    let wrong = AppKey::generate();
    setup.add_worker(&wrong.private_pem);
    let work = setup.work(REPOSITORY);
    work.write("README.md", "x\n");
    let sha = work.push();
    let id = setup
        .push("guid-wrong", REPOSITORY, INSTALLATION, &sha)
        .await;
    let result = setup.result(&id).await;
    assert_eq!(result.status, JobStatus::Failed, "{result:#?}");
    assert_eq!(result.attempts, 1, "a refused JWT is not retried");
    let error = result.error.as_deref().expect("an error");
    assert!(
        error.contains("GitHub refused the App JWT for installation 42")
            && error.contains("github_sync.app.private_key"),
        "{error}"
    );
    assert_contract(&result, "guid-wrong", REPOSITORY, INSTALLATION, &sha);
    let requests = setup.github.token_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].status, 401);
    assert!(
        requests[0]
            .refused
            .as_deref()
            .is_some_and(|why| why.contains("signature does not verify")),
        "{requests:?}"
    );
    assert!(setup.github.git_requests().is_empty());
    let letters = dead_letters(&setup).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].connector, result.connector,
        "the dead letter carries the contract"
    );
}

#[tokio::test]
async fn a_key_that_cannot_sign_stops_the_worker_at_start_up() {
    let setup = Setup::new(Options::default()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("worker.toml");
    std::fs::write(&file, setup.config()).expect("config");
    let garbage = "-----BEGIN RSA PRIVATE KEY-----\nTk9UQUtFWWF0YWxsMTIzNDU2Nzg5\n-----END RSA PRIVATE KEY-----\n";
    let child = tokio::process::Command::new(binary("tidegate-github-sync"))
        .arg("--config")
        .arg(&file)
        .env(KEY_ENV, garbage)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the worker");
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the worker exits by itself")
        .expect("waiting");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("github_sync.app.private_key: not a usable RSA private key"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Tk9UQUtFWWF0YWxs"),
        "the key's content leaked: {stderr}"
    );
}

#[tokio::test]
async fn a_file_that_cannot_be_written_makes_the_sync_partial() {
    let setup = Setup::start(Options::default()).await;
    let work = setup.work(REPOSITORY);
    work.write("README.md", "readme\n");
    work.write("skills/ok/SKILL.md", "ok\n");
    let sha = work.push();
    // A directory where the tree has a file: that one path fails.
    std::fs::create_dir_all(setup.folder("plugins").join("README.md/inside")).expect("mkdir");
    let id = setup
        .push("guid-partial", REPOSITORY, INSTALLATION, &sha)
        .await;
    let result = setup.result(&id).await;
    assert_eq!(result.status, JobStatus::Partial, "{result:#?}");
    assert_eq!(result.failures.len(), 1, "{result:#?}");
    assert_eq!(result.failures[0].item, "README.md");
    assert!(
        result.failures[0].error.contains("directory"),
        "{result:#?}"
    );
    assert_eq!(result.counts["created"], 1, "{result:#?}");
    assert_contract(&result, "guid-partial", REPOSITORY, INSTALLATION, &sha);
    assert_eq!(
        std::fs::read_to_string(setup.folder("plugins").join("skills/ok/SKILL.md"))
            .expect("written"),
        "ok\n"
    );
    let rows = consume(&[&result], &[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["status"], "partial");
    assert_eq!(row["id"], format!("plugins:1296269:{sha}"));
    assert_eq!(row["connector_instance_id"], "inst-openwork");
    assert_eq!(row["head_sha"], sha.as_str());
    assert_eq!(row["created_count"], 1);
    assert_eq!(row["failures"][0]["path"], "README.md");
    assert!(row["completed_at"].is_string());
}

#[tokio::test]
async fn a_repository_that_keeps_failing_is_dead_lettered_with_the_contract() {
    let setup = Setup::start(Options {
        max_deliver: 2,
        ..Options::default()
    })
    .await;
    let work = setup.work(REPOSITORY);
    work.write("README.md", "x\n");
    let sha = work.push();
    setup.github.break_repository(REPOSITORY);
    let id = setup
        .push("guid-broken", REPOSITORY, INSTALLATION, &sha)
        .await;
    let retrying = setup
        .result_where(&id, |result| {
            result.status == JobStatus::Retrying || result.status == JobStatus::Failed
        })
        .await;
    assert_contract(&retrying, "guid-broken", REPOSITORY, INSTALLATION, &sha);
    let result = setup.result(&id).await;
    assert_eq!(result.status, JobStatus::Failed, "{result:#?}");
    assert_eq!(result.attempts, 2);
    let error = result.error.as_deref().expect("an error");
    assert!(
        error.starts_with("gave up after 2 attempts: fetching octocat/plugins refs/heads/main"),
        "{error}"
    );
    assert_contract(&result, "guid-broken", REPOSITORY, INSTALLATION, &sha);
    let letters = dead_letters(&setup).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].delivery_id, id);
    assert_eq!(letters[0].connector, result.connector);

    // The consumer: a retrying attempt is a running sync; the dead letter
    // and the failed result end it as failed.
    let rows = consume(&[&retrying, &result], &[&letters[0]]);
    let last = rows.last().expect("rows");
    assert_eq!(last["status"], "failed", "{rows:?}");
    assert_eq!(last["id"], format!("plugins:1296269:{sha}"));
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|error| error.contains("gave up"))
    );
}

/// Runs the example consumer on results and dead letters (JSON lines, as a
/// NATS subscriber prints them); returns the rows it wrote.
fn consume(results: &[&JobResult], letters: &[&DeadLetter]) -> Vec<serde_json::Value> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/openwork-consumer/consume.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the example consumer");
    let mut input = String::new();
    for result in results {
        input.push_str(&serde_json::to_string(result).expect("serializes"));
        input.push('\n');
    }
    for letter in letters {
        input.push_str(&serde_json::to_string(letter).expect("serializes"));
        input.push('\n');
    }
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .expect("writing to the consumer");
    let output = child.wait_with_output().expect("the consumer ends");
    assert!(output.status.success(), "the consumer failed");
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON row"))
        .collect()
}
