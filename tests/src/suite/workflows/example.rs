//! The shipped example: `deploy/examples/tidegate.toml` and
//! `deploy/examples/workflow.toml` with the seed's workflows, triggered by
//! a webhook signed as the seed's curl signs it and by a GitHub push;
//! `tidegate webhook list|test`; the queued example approved from the CLI.

use std::path::Path;

use crate::cli::{tidegate, tidegate_command};
use crate::process::WorkerProcess;
use crate::suite::json;
use crate::{NatsServer, TestIngress};

const SECRET: &str = "my-secret-key";

fn example(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the example no longer has {from:?}");
    text.replace(from, to)
}

#[tokio::test]
async fn the_seeds_workflows_run_from_the_shipped_example() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/workflows");
    let workflows = std::fs::canonicalize(workflows).expect("the example workflows");
    let folder_key = format!("\"{}\"", workflows.display());
    let ingress_config = replace(
        &example("tidegate.toml"),
        "workflows = \"deploy/examples/workflows\"",
        &format!("workflows = {folder_key}"),
    );
    let config_file = dir.path().join("tidegate.toml");
    std::fs::write(&config_file, &ingress_config).expect("writing the config");
    let nats = NatsServer::start().await;
    let env = [
        ("ASSISTANT_WEBHOOK_SECRET", SECRET),
        ("GITHUB_WEBHOOK_SECRET", "gh"),
        ("TIDEGATE_API_TOKEN", "api"),
    ];
    let ingress = TestIngress::start(&nats, &ingress_config, &env).await;
    let memory = dir.path().join("memory.md");
    let files = dir.path().join("files");
    let mut worker_config = example("workflow.toml");
    for (from, to) in [
        ("listen = \"127.0.0.1:9105\"", String::new()),
        (
            "url = \"nats://127.0.0.1:4222\"",
            format!("url = \"{}\"", nats.url()),
        ),
        (
            "folder = \"deploy/examples/workflows\"",
            format!("folder = {folder_key}"),
        ),
        (
            "file = \"data/memory.md\"",
            format!("file = \"{}\"", memory.display()),
        ),
        (
            "roots = [\"data/files\"]",
            format!("roots = [\"{}\"]", files.display()),
        ),
    ] {
        worker_config = replace(&worker_config, from, &to);
    }
    let _worker = WorkerProcess::start("tidegate-workflow", &worker_config, &[]);

    // The seed's signed curl.
    let payload = r#"{"ref": "refs/heads/main", "status": "success"}"#;
    let response = ingress
        .http
        .post(ingress.url("/webhooks/deploy-notify"))
        .header("Content-Type", "application/json")
        .header(
            "X-Hub-Signature-256",
            crate::sign::github(SECRET, payload.as_bytes()),
        )
        .body(payload)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let answer = json(response).await;
    assert_eq!(answer["status"], "ok", "{answer:#}");
    assert_eq!(answer["workflow"], "deploy-notify");
    assert_eq!(answer["results"][0]["name"], "log-event");
    assert_eq!(answer["results"][0]["status"], "success");
    assert_eq!(answer["results"][0]["output"], "Deployment received");
    assert_eq!(answer["results"][1]["status"], "success");
    assert_eq!(
        std::fs::read_to_string(&memory).expect("the memory file"),
        "## Deployments\n- Deployment event received\n"
    );

    // A GitHub push, as GitHub sends it.
    let push = r#"{"ref": "refs/heads/main", "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "pusher": {"name": "octo"}}"#;
    let response = ingress
        .http
        .post(ingress.url("/webhooks/github-push"))
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header(
            "X-Hub-Signature-256",
            crate::sign::github(SECRET, push.as_bytes()),
        )
        .body(push)
        .send()
        .await
        .expect("sent");
    let answer = json(response).await;
    assert_eq!(
        answer["results"][0]["output"], "Push to repository received",
        "{answer:#}"
    );

    // The seed's /webhook list and /webhook test.
    let config = config_file.to_str().expect("UTF-8 path");
    let listed = tidegate(&nats, &["webhook", "list", "--config", config])
        .await
        .success();
    assert_eq!(
        listed.stdout,
        "Webhooks:\n  POST /webhooks/deploy-notify  [enabled]\n  POST /webhooks/github-push    [enabled]\n  POST /webhooks/review-deploy  [enabled]\n"
    );
    let tested = tidegate_command(
        &nats,
        &[
            "webhook",
            "test",
            "deploy-notify",
            "--config",
            config,
            "--url",
            &ingress.url(""),
        ],
    )
    .env("ASSISTANT_WEBHOOK_SECRET", SECRET)
    .output()
    .await
    .expect("running tidegate");
    let stdout = String::from_utf8_lossy(&tested.stdout);
    assert!(
        tested.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&tested.stderr)
    );
    assert!(
        stdout.starts_with("Testing webhook: deploy-notify\nResponse: 200 OK\n{\"status\":\"ok\",\"workflow\":\"deploy-notify\""),
        "{stdout}"
    );

    // The queued example stops at its approval gate; the CLI approves.
    let response = ingress
        .http
        .post(ingress.url("/webhooks/review-deploy"))
        .header(
            "X-Hub-Signature-256",
            crate::sign::github(SECRET, push.as_bytes()),
        )
        .body(push)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let run_id = json(response).await["run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    let waiting = crate::eventually(
        std::time::Duration::from_secs(20),
        "the approval",
        || async {
            let listed = tidegate(&nats, &["approvals", "list"]).await.success();
            listed.stdout.contains(&run_id).then_some(listed.stdout)
        },
    )
    .await;
    assert!(waiting.starts_with("RUN"), "{waiting}");
    let approved = tidegate(&nats, &["approvals", "approve", &run_id, "--wait", "30s"])
        .await
        .success();
    assert!(
        approved.stdout.contains("status:   completed"),
        "{}",
        approved.stdout
    );
    assert!(
        approved.stdout.contains("  announce: success (publish)"),
        "{}",
        approved.stdout
    );
    let note =
        std::fs::read_to_string(files.join(format!("deploys/{run_id}.md"))).expect("the note");
    assert_eq!(note, "deploy of refs/heads/main by octo\n");
}
