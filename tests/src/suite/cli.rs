//! The operator CLI as a process against a real broker and ingress:
//! `routes`, `send`, `deliveries list|show` and `status`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, consumer};
use schemas::headers::{EVENT, ROUTE};
use schemas::streams::DEAD_LETTER_PREFIX;
use schemas::{JobResult, JobStatus};
use serde_json::Value;
use tempfile::TempDir;
use workers::runtime::report;

use super::replay::CliRun;
use super::{GITHUB_ROUTE, GITHUB_SECRET};
use crate::process::binary;
use crate::{NatsServer, TestIngress};

const HOOK_SECRET: &str = "hook-secret-7d1e";

/// Single-server placement, as a worker on the test server resolves it.
const PLACEMENT: broker::Placement = broker::Placement {
    replicas: 1,
    allow_shrink: false,
};
const TIMEOUT: Duration = Duration::from_secs(5);

/// Shared-secret, disabled and sync routes next to the GitHub one.
const MORE_ROUTES: &str = r#"
[[routes]]
name = "hooks"
path = "/hooks/{name}"
subject = "hooks.{name}"
event = "header:x-event"
[routes.verifier]
kind = "shared_secret"
secrets = [{ env = "HOOK_SECRET" }]

[[routes]]
name = "old"
path = "/old"
subject = "old"
enabled = false
[routes.verifier]
kind = "none"

[[routes]]
name = "plugin"
path = "/webhook/{plugin}/{command}"
methods = ["GET"]
mode = "sync"
subject = "plugin.{plugin}.{command}"
[routes.verifier]
kind = "bearer"
secrets = [{ env = "PLUGIN_TOKEN" }]
"#;

/// Open routes with ids and events from headers, so tests name them.
const OPEN_ROUTES: &str = r#"
[[routes]]
name = "hooks"
path = "/hooks/{name}"
subject = "hooks.{name}"
event = "header:x-event"
delivery_id = "header:x-delivery"
[routes.verifier]
kind = "none"

[[routes]]
name = "other"
path = "/other"
subject = "other"
delivery_id = "header:x-delivery"
[routes.verifier]
kind = "none"
"#;

/// A configuration file for the CLI, as an operator would have it.
struct ConfigFile {
    path: PathBuf,
    _dir: TempDir,
}

impl ConfigFile {
    fn write(nats_url: &str, public_url: &str, routes: &str) -> ConfigFile {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tidegate.toml");
        let text =
            format!("public_url = \"{public_url}\"\n{routes}\n[nats]\nurl = \"{nats_url}\"\n");
        std::fs::write(&path, text).expect("writing the config");
        ConfigFile { path, _dir: dir }
    }

    fn arg(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temp path")
    }
}

/// Runs `tidegate <args>` with only `env` as its environment (no secret
/// leaks in from the test's own), in a folder without a config file.
async fn run(args: &[&str], env: &[(&str, &str)]) -> CliRun {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(binary("tidegate"))
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("tidegate {args:?} did not finish within a minute"))
    .expect("running tidegate");
    CliRun {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn failure(run: CliRun) -> CliRun {
    assert!(
        !run.status.success(),
        "tidegate should have failed: {run:#?}"
    );
    run
}

#[tokio::test]
async fn routes_lists_every_url_and_never_a_secret() {
    let routes = format!("{GITHUB_ROUTE}{MORE_ROUTES}");
    let config = ConfigFile::write("nats://127.0.0.1:1", "https://hooks.example.com", &routes);

    // Without any secret: listed, with the missing variables named.
    let table = run(&["routes", "--config", config.arg()], &[])
        .await
        .success();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", table.stdout);
    assert!(lines[0].starts_with("ROUTE"), "{}", table.stdout);
    for (line, expected) in lines[1..].iter().zip([
        [
            "github",
            "POST",
            "https://hooks.example.com/v1/webhooks/connectors/github",
            "github",
            "unset",
            "async",
            "enabled",
        ],
        [
            "hooks",
            "POST",
            "https://hooks.example.com/hooks/{name}",
            "shared_secret",
            "unset",
            "async",
            "enabled",
        ],
        [
            "old",
            "POST",
            "https://hooks.example.com/old",
            "none",
            "-",
            "async",
            "disabled",
        ],
        [
            "plugin",
            "GET",
            "https://hooks.example.com/webhook/{plugin}/{command}",
            "bearer",
            "unset",
            "sync",
            "enabled",
        ],
    ]) {
        let cells: Vec<&str> = line
            .split("  ")
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
            .collect();
        assert_eq!(cells, expected, "{}", table.stdout);
    }
    assert!(
        table.stderr.contains("GITHUB_WEBHOOK_SECRET"),
        "{}",
        table.stderr
    );

    // With secrets: JSON lines, and no secret anywhere in the output.
    let env = [
        ("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET),
        ("HOOK_SECRET", HOOK_SECRET),
        ("PLUGIN_TOKEN", "plugin-token-93ab"),
    ];
    let json = run(&["routes", "--config", config.arg(), "--json"], &env)
        .await
        .success();
    let listed = json.json_lines();
    let summary: Vec<(&str, &str, &str, bool)> = listed
        .iter()
        .map(|route| {
            (
                route["name"].as_str().expect("name"),
                route["url"].as_str().expect("url"),
                route["secret"].as_str().expect("secret"),
                route["enabled"].as_bool().expect("enabled"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "github",
                "https://hooks.example.com/v1/webhooks/connectors/github",
                "set",
                true
            ),
            (
                "hooks",
                "https://hooks.example.com/hooks/{name}",
                "set",
                true
            ),
            ("old", "https://hooks.example.com/old", "none", false),
            (
                "plugin",
                "https://hooks.example.com/webhook/{plugin}/{command}",
                "set",
                true
            ),
        ]
    );
    assert_eq!(listed[3]["mode"], "sync");
    assert_eq!(listed[3]["methods"], serde_json::json!(["GET"]));
    for run in [&table, &json] {
        for (_, secret) in env {
            assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
        }
    }
}

#[tokio::test]
async fn send_signs_as_the_provider_and_the_delivery_is_stored() {
    let nats = NatsServer::start().await;
    let routes = format!("{GITHUB_ROUTE}{MORE_ROUTES}");
    let ingress_env = [
        ("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET),
        ("HOOK_SECRET", HOOK_SECRET),
        ("PLUGIN_TOKEN", "plugin-token-93ab"),
    ];
    let ingress = TestIngress::start(&nats, &routes, &ingress_env).await;
    let config = ConfigFile::write(&nats.url(), &ingress.url(""), &routes);

    let github = run(
        &["send", "github", "--config", config.arg()],
        &[("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)],
    )
    .await
    .success();
    assert!(
        github.stdout.contains("response: 202 Accepted"),
        "{github:#?}"
    );
    assert!(
        github.stdout.contains("github signature, event push"),
        "{github:#?}"
    );

    let hooks = run(
        &[
            "send",
            "hooks",
            "--config",
            config.arg(),
            "--param",
            "name=deploy",
            "--event",
            "release",
            "--json",
        ],
        &[("HOOK_SECRET", HOOK_SECRET)],
    )
    .await
    .success();
    let answer: Value = serde_json::from_str(hooks.stdout.trim()).expect("one JSON document");
    assert_eq!(answer["status"], 202, "{answer}");
    assert_eq!(answer["url"], ingress.url("/hooks/deploy"));
    assert_eq!(answer["body"]["duplicate"], false);

    // No secret: nothing is sent, and the error names the variable.
    let unset = failure(run(&["send", "github", "--config", config.arg()], &[]).await);
    assert!(
        unset
            .stderr
            .contains("route github has no secret: set env GITHUB_WEBHOOK_SECRET"),
        "{unset:#?}"
    );
    // A wrong secret: the ingress refuses it, and so does the exit code.
    let wrong = failure(
        run(
            &["send", "github", "--config", config.arg()],
            &[("GITHUB_WEBHOOK_SECRET", "not-the-secret")],
        )
        .await,
    );
    assert!(
        wrong.stdout.contains("response: 401 Unauthorized"),
        "{wrong:#?}"
    );

    let stored = nats.stored_deliveries().await;
    let headers: Vec<(String, String, &str)> = stored
        .iter()
        .map(|message| {
            let header = |name| {
                message
                    .headers
                    .get(name)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            };
            (header(ROUTE), header(EVENT), message.subject.as_str())
        })
        .collect();
    assert_eq!(
        headers,
        [
            (
                "github".to_owned(),
                "push".to_owned(),
                "tidegate.in.github.push"
            ),
            (
                "hooks".to_owned(),
                "release".to_owned(),
                "tidegate.in.hooks.deploy"
            ),
        ]
    );
    let envelope = super::envelope(&stored[0]);
    let github_fields = envelope.github.expect("normalized GitHub fields");
    assert_eq!(
        github_fields.repository_full_name.as_deref(),
        Some("tidegate-dev/sample")
    );
}

/// Posts to an open route and waits for the 202.
async fn deliver(ingress: &TestIngress, path: &str, id: &str, event: &str) {
    let response = ingress
        .http
        .post(ingress.url(path))
        .header("content-type", "application/json")
        .header("x-delivery", id)
        .header("x-event", event)
        .body(format!(r#"{{"id":"{id}"}}"#))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202, "delivery {id}");
}

/// The ids of a JSON listing, in order.
fn listed_ids(run: &CliRun) -> Vec<String> {
    run.json_lines()
        .iter()
        .map(|row| row["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn deliveries_list_filters_on_headers_and_time() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTES, &[]).await;
    deliver(&ingress, "/hooks/app", "a-1", "build").await;
    deliver(&ingress, "/other", "o-1", "build").await;
    // After the first two are acknowledged, before the others arrive.
    let middle = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    deliver(&ingress, "/hooks/app", "a-2", "deploy").await;
    deliver(&ingress, "/hooks/web", "a-3", "build").await;

    let url = nats.url();
    let list = async |extra: &[&str]| {
        let mut args = vec!["deliveries", "list", "--nats-url", &url, "--json"];
        args.extend_from_slice(extra);
        listed_ids(&run(&args, &[]).await.success())
    };
    let middle = middle.as_str();
    assert_eq!(list(&[]).await, ["a-1", "o-1", "a-2", "a-3"]);
    assert_eq!(list(&["--route", "hooks"]).await, ["a-1", "a-2", "a-3"]);
    // The `other` route reads no event, so its deliveries have none.
    assert_eq!(list(&["--event", "build"]).await, ["a-1", "a-3"]);
    assert_eq!(
        list(&["--route", "hooks", "--event", "build"]).await,
        ["a-1", "a-3"]
    );
    assert_eq!(list(&["--since", middle]).await, ["a-2", "a-3"]);
    assert_eq!(list(&["--until", middle]).await, ["a-1", "o-1"]);
    assert_eq!(
        list(&["--route", "hooks", "--since", middle, "--event", "build"]).await,
        ["a-3"]
    );
    assert_eq!(list(&["--id", "a-2"]).await, ["a-2"]);
    assert_eq!(
        list(&["--subject", "tidegate.in.hooks.app"]).await,
        ["a-1", "a-2"]
    );
    assert_eq!(list(&["--limit", "1"]).await, ["a-1"]);
    assert_eq!(list(&["--since", "1h"]).await.len(), 4);
    assert!(list(&["--route", "nope"]).await.is_empty());

    let row = run(
        &[
            "deliveries",
            "list",
            "--nats-url",
            &url,
            "--json",
            "--id",
            "o-1",
        ],
        &[],
    )
    .await
    .success()
    .json_lines()
    .remove(0);
    assert_eq!(row["sequence"], 2);
    assert_eq!(row["route"], "other");
    assert_eq!(row["subject"], "tidegate.in.other");

    let table = run(&["deliveries", "list", "--nats-url", &url], &[])
        .await
        .success();
    let lines: Vec<&str> = table.stdout.lines().collect();
    // Header, four rows, a blank line and the count, each on its own line.
    assert_eq!(lines.len(), 7, "{}", table.stdout);
    assert_eq!(lines[5], "");
    assert_eq!(lines[6], "4 deliveries");
    assert!(lines[0].starts_with("SEQ"), "{}", table.stdout);
    assert!(
        lines[3].starts_with("3 ") && lines[3].contains(" hooks ") && lines[3].contains(" deploy ")
    );
    assert!(
        lines[3].ends_with("tidegate.in.hooks.app"),
        "{}",
        table.stdout
    );
    assert!(table.stderr.is_empty(), "{}", table.stderr);

    // A row's own printed time, as --until, keeps that row ("at or
    // before"), though the stream holds it to the nanosecond.
    let rows = run(&["deliveries", "list", "--nats-url", &url, "--json"], &[])
        .await
        .success()
        .json_lines();
    let third = rows[2]["stored_at"].as_str().expect("stored_at").to_owned();
    assert_eq!(list(&["--until", &third]).await, ["a-1", "o-1", "a-2"]);
    assert_eq!(list(&["--since", &third]).await, ["a-2", "a-3"]);
}

fn result(delivery_id: &str, status: JobStatus, attempts: u64) -> JobResult {
    JobResult {
        version: 1,
        delivery_id: delivery_id.to_owned(),
        worker: "forward".to_owned(),
        status,
        key: Some(delivery_id.to_owned()),
        attempts,
        counts: Default::default(),
        failures: Vec::new(),
        error: (status == JobStatus::Retrying).then(|| "target answered 503".to_owned()),
        detail: [("target".to_owned(), "http://127.0.0.1:9/".to_owned())].into(),
        connector: None,
        started_at: "2024-05-01T12:00:00.000Z".to_owned(),
        completed_at: "2024-05-01T12:00:01.000Z".to_owned(),
    }
}

/// A worker's durable consumer, as the runtime creates it.
async fn worker_consumer(jetstream: &jetstream::Context, name: &str) {
    jetstream
        .get_stream(schemas::streams::DELIVERIES_STREAM)
        .await
        .expect("deliveries stream")
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.to_owned()),
            ..Default::default()
        })
        .await
        .expect("creating the consumer");
}

#[tokio::test]
async fn deliveries_show_prints_the_envelope_and_each_workers_latest_result() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTES, &[]).await;
    deliver(&ingress, "/hooks/app", "d-1", "build").await;
    deliver(&ingress, "/hooks/app", "d-2", "build").await;
    let jetstream = nats.jetstream().await;
    worker_consumer(&jetstream, "forward").await;
    worker_consumer(&jetstream, "inbox").await;
    broker::ensure::ensure_stream(
        &jetstream,
        broker::catalog::results(Duration::from_secs(3600)),
        PLACEMENT,
    )
    .await
    .expect("results stream");
    report::publish(&jetstream, &result("d-1", JobStatus::Retrying, 1), TIMEOUT).await;
    report::publish(&jetstream, &result("d-1", JobStatus::Completed, 2), TIMEOUT).await;

    let url = nats.url();
    let shown = run(&["deliveries", "show", "d-1", "--nats-url", &url], &[])
        .await
        .success();
    let text = &shown.stdout;
    assert!(text.starts_with("delivery  d-1\nsequence  1\n"), "{text}");
    assert!(text.contains("header    Tidegate-Route: hooks\n"), "{text}");
    // Envelope v2: the fields are headers, the body is shown indented.
    assert!(text.contains("header    Tidegate-Envelope: 2\n"), "{text}");
    assert!(text.contains("header    Tidegate-Body: json\n"), "{text}");
    assert!(text.contains("\n{\n  \"id\": \"d-1\"\n}\n"), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|line| !line.starts_with("WORKER"))
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows,
        [
            vec!["WORKER", "STATUS", "ATTEMPTS", "COMPLETED", "DETAIL"],
            vec![
                "forward",
                "completed",
                "2",
                "2024-05-01T12:00:01.000Z",
                "target=http://127.0.0.1:9/"
            ],
            vec!["inbox", "no result", "-", "-"],
        ],
        "{text}"
    );

    let by_sequence = run(
        &[
            "deliveries",
            "show",
            "--seq",
            "2",
            "--nats-url",
            &url,
            "--json",
        ],
        &[],
    )
    .await
    .success();
    let document: Value = serde_json::from_str(&by_sequence.stdout).expect("one JSON document");
    assert_eq!(document["sequence"], 2);
    assert_eq!(document["envelope"]["id"], "d-2");
    assert_eq!(document["envelope"]["route"], "hooks");
    assert_eq!(document["results"]["forward"], Value::Null);
    assert_eq!(document["results"]["inbox"], Value::Null);

    let with_result = run(
        &["deliveries", "show", "d-1", "--nats-url", &url, "--json"],
        &[],
    )
    .await
    .success();
    let document: Value = serde_json::from_str(&with_result.stdout).expect("one JSON document");
    assert_eq!(document["results"]["forward"]["status"], "completed");
    assert_eq!(document["results"]["forward"]["attempts"], 2);

    let missing = failure(run(&["deliveries", "show", "nope", "--nats-url", &url], &[]).await);
    assert!(
        missing.stderr.contains("no delivery with id nope"),
        "{missing:#?}"
    );
}

#[tokio::test]
async fn status_reports_streams_consumers_dead_letters_and_workers() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTES, &[]).await;
    deliver(&ingress, "/hooks/app", "s-1", "build").await;
    deliver(&ingress, "/hooks/app", "s-2", "build").await;
    let jetstream = nats.jetstream().await;
    worker_consumer(&jetstream, "forward").await;
    broker::ensure::ensure_stream(&jetstream, broker::catalog::dead_letters(), PLACEMENT)
        .await
        .expect("dead-letter stream");
    jetstream
        .publish(format!("{DEAD_LETTER_PREFIX}.forward"), "{}".into())
        .await
        .expect("published")
        .await
        .expect("stored");

    // A live worker's heartbeats while `status` listens.
    let client = nats.client().await;
    let beating = tokio::spawn(async move {
        loop {
            drop(
                client
                    .publish("tidegate.workers.inbox.i-1", "{}".into())
                    .await,
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let url = nats.url();
    let status = run(
        &["status", "--nats-url", &url, "--json", "--wait", "1s"],
        &[],
    )
    .await
    .success();
    beating.abort();
    let document: Value = serde_json::from_str(&status.stdout).expect("one JSON document");
    let streams: Vec<(&str, bool, u64)> = document["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|stream| {
            (
                stream["name"].as_str().expect("name"),
                stream["exists"].as_bool().expect("exists"),
                stream["messages"].as_u64().expect("messages"),
            )
        })
        .collect();
    assert_eq!(
        streams,
        [
            ("TIDEGATE_DELIVERIES", true, 2),
            ("TIDEGATE_DLQ", true, 1),
            ("TIDEGATE_RESULTS", false, 0)
        ]
    );
    let consumer = &document["consumers"][0];
    assert_eq!(consumer["name"], "forward");
    assert_eq!(consumer["lag"], 2);
    assert_eq!(consumer["ack_pending"], 0);
    assert_eq!(document["consumers"].as_array().map(Vec::len), Some(1));
    assert_eq!(document["dead_letters"]["total"], 1);
    assert_eq!(document["dead_letters"]["by_worker"]["forward"], 1);
    let workers: Vec<(&str, bool, bool)> = document["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|worker| {
            (
                worker["name"].as_str().expect("name"),
                worker["alive"].as_bool().expect("alive"),
                worker["has_consumer"].as_bool().expect("has_consumer"),
            )
        })
        .collect();
    // Nothing pulls on `forward` and it sends no heartbeat: not alive.
    assert_eq!(workers, [("forward", false, true), ("inbox", true, false)]);
    assert_eq!(
        document["workers"][1]["instances"],
        serde_json::json!(["i-1"])
    );

    let table = run(&["status", "--nats-url", &url, "--wait", "0s"], &[])
        .await
        .success();
    let text = &table.stdout;
    assert!(text.contains("TIDEGATE_DELIVERIES  2 "), "{text}");
    assert!(text.contains("TIDEGATE_RESULTS     (absent)"), "{text}");
    assert!(text.contains("dead letters: 1 (forward: 1)"), "{text}");
}
