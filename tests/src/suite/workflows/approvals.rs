//! Approval gates: a run waits in KV across a worker kill and resumes from
//! the CLI on a new worker (the step before the gate is not repeated);
//! notifications reach Slack, Telegram, ntfy and a webhook; the admin API
//! is token-gated and rejects; an approval past its expiry cancels the run.

use std::time::Duration;

use super::fixture::{ADMIN_TOKEN, Fake, Folder, Stack, every_channel, statuses};
use crate::cli::tidegate;
use crate::eventually;
use crate::suite::json;

fn gated(fake: &Fake) -> String {
    format!(
        r#"
name: gated
mode: queued
steps:
  - name: record
    tool: http_request
    args: {{ method: POST, url: "{base}/record", body: "{{{{ payload.ref }}}}" }}
  - name: deploy
    tool: shell_exec
    requires_approval: true
    args: {{ command: "echo deploying {{{{ payload.ref }}}}" }}
"#,
        base = fake.base
    )
}

/// Waits until `tidegate approvals list` shows the run.
async fn listed(stack: &Stack, run_id: &str) {
    eventually(
        Duration::from_secs(20),
        "the run in `approvals list`",
        || async {
            let listed = tidegate(&stack.nats, &["approvals", "list", "--json"])
                .await
                .success();
            listed
                .json_lines()
                .iter()
                .any(|approval| approval["run_id"] == run_id && approval["step"] == "deploy")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn an_approval_waits_across_a_worker_kill_and_resumes_from_the_cli() {
    let fake = Fake::start().await;
    let folder = Folder::new(&[("gated", &gated(&fake))]);
    let mut stack = Stack::start(&folder, &[]).await;
    stack.start_worker(&folder, "", &every_channel(&fake));
    let response = stack.post("gated", r#"{"ref": "v1.2.3"}"#, None).await;
    assert_eq!(response.status(), 202);
    let run_id = json(response).await["run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    listed(&stack, &run_id).await;
    let waiting = stack
        .run_until(&run_id, "the run to wait", |run| {
            run["status"] == "awaiting_approval"
        })
        .await;
    assert_eq!(
        statuses(&waiting["steps"]),
        ["record:success", "deploy:pending"]
    );
    // The approval request went out, in the seed's shape.
    let slack = fake
        .wait_for("/slack/T000/B000/XXXX", "awaiting approval")
        .await;
    let text: serde_json::Value = serde_json::from_str(&slack.body).expect("JSON");
    let text = text["text"].as_str().expect("text");
    assert!(
        text.starts_with(
            "Webhook 'gated' triggered workflow:\n  record: success\n  deploy: awaiting approval\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("tidegate approvals approve {run_id}")),
        "{text}"
    );

    stack.worker.as_mut().expect("a worker").kill();
    stack.start_worker(&folder, "", &every_channel(&fake));
    let approved = tidegate(
        &stack.nats,
        &[
            "approvals",
            "approve",
            &run_id,
            "--reason",
            "looks good",
            "--wait",
            "30s",
            "--json",
        ],
    )
    .await
    .success();
    let run: serde_json::Value =
        serde_json::from_str(approved.stdout.trim()).expect("a run record");
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["steps"][1]["output"], "deploying v1.2.3");
    assert_eq!(run["approvals"][0]["decision"], "approved");
    assert_eq!(run["approvals"][0]["reason"], "looks good");
    assert_eq!(
        fake.at("/record").len(),
        1,
        "the step before the gate ran once"
    );
    assert!(
        tidegate(&stack.nats, &["approvals", "list", "--json"])
            .await
            .success()
            .stdout
            .is_empty()
    );

    // The completion, on every channel.
    let done = "Webhook 'gated' triggered workflow:\n  record: success\n  deploy: success";
    let slack = fake
        .wait_for("/slack/T000/B000/XXXX", "deploy: success")
        .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&slack.body).expect("JSON")["text"],
        done
    );
    let telegram = fake
        .wait_for(
            "/telegram/bot123456:telegram-token/sendMessage",
            "deploy: success",
        )
        .await;
    let message: serde_json::Value = serde_json::from_str(&telegram.body).expect("JSON");
    assert_eq!(message["chat_id"], "42");
    assert_eq!(message["text"], done);
    let ntfy = fake.wait_for("/ntfy/deploys", "deploy: success").await;
    assert_eq!(ntfy.body, done);
    assert_eq!(ntfy.headers["title"], "tidegate workflow gated");
    let ops = fake.wait_for("/ops", "deploy: success").await;
    assert_eq!(ops.headers["authorization"], "Bearer ops-token");
    let ops: serde_json::Value = serde_json::from_str(&ops.body).expect("JSON");
    assert_eq!(ops["run_id"], run_id.as_str());
    assert_eq!(ops["status"], "completed");
    // A decided run cannot be decided again.
    let again = tidegate(&stack.nats, &["approvals", "reject", &run_id]).await;
    assert!(!again.status.success());
    assert!(
        again.stderr.contains("is not waiting for an approval"),
        "{again:?}"
    );
}

#[tokio::test]
async fn the_admin_api_is_token_gated_and_a_rejection_cancels_the_run() {
    let fake = Fake::start().await;
    let folder = Folder::new(&[("gated", &gated(&fake))]);
    let mut stack = Stack::start(&folder, &[]).await;
    stack.start_worker(&folder, "", "");
    let response = stack.post("gated", r#"{"ref": "v2"}"#, None).await;
    let run_id = json(response).await["run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    stack
        .run_until(&run_id, "the run to wait", |run| {
            run["status"] == "awaiting_approval"
        })
        .await;
    let http = &stack.ingress.http;
    let list = stack.ingress.url("/api/approvals");
    assert_eq!(http.get(&list).send().await.expect("sent").status(), 401);
    assert_eq!(
        http.get(&list)
            .bearer_auth("wrong")
            .send()
            .await
            .expect("sent")
            .status(),
        403
    );
    let listed = json(
        http.get(&list)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(listed["approvals"][0]["run_id"], run_id.as_str());
    assert_eq!(listed["approvals"][0]["step"], "deploy");
    let reject = stack
        .ingress
        .url(&format!("/api/approvals/{run_id}/reject"));
    assert_eq!(http.post(&reject).send().await.expect("sent").status(), 401);
    let rejected = http
        .post(&reject)
        .bearer_auth(ADMIN_TOKEN)
        .body(r#"{"reason": "not today"}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(rejected.status(), 202);
    let run = stack
        .run_until(&run_id, "the run to be cancelled", |run| {
            run["status"] == "cancelled"
        })
        .await;
    assert_eq!(
        statuses(&run["steps"]),
        ["record:success", "deploy:skipped"]
    );
    assert_eq!(run["error"], "step deploy was rejected: not today");
    assert_eq!(run["approvals"][0]["decided_by"], "api");
    let unknown = stack.ingress.url("/api/approvals/no-such-run/approve");
    let missing = http
        .post(&unknown)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(missing.status(), 404);
    assert_eq!(json(missing).await["error"], "no_pending_approval");
}

#[tokio::test]
async fn an_expired_approval_cancels_the_run_with_the_reason() {
    let fake = Fake::start().await;
    let folder = Folder::new(&[("gated", &gated(&fake))]);
    let mut stack = Stack::start(&folder, &[]).await;
    stack.start_worker(&folder, "approval_ttl = \"1s\"", "");
    let response = stack.post("gated", r#"{"ref": "v3"}"#, None).await;
    let run_id = json(response).await["run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    let run = stack
        .run_until(&run_id, "the run to expire", |run| {
            run["status"] == "cancelled"
        })
        .await;
    assert_eq!(run["approvals"][0]["decision"], "expired");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|error| error.starts_with("the approval of step deploy expired at")),
        "{run:#}"
    );
    assert_eq!(
        statuses(&run["steps"]),
        ["record:success", "deploy:skipped"]
    );
    // Nothing is left waiting.
    eventually(
        Duration::from_secs(10),
        "the pending approval to go",
        || async {
            tidegate(&stack.nats, &["approvals", "list", "--json"])
                .await
                .success()
                .stdout
                .is_empty()
                .then_some(())
        },
    )
    .await;
}
