//! Runs on the real worker: steps chained through templates, a failing
//! step's report, `continue_on_error`, sync 200 and 504, and a step
//! interrupted by a worker kill that is not repeated.

use super::fixture::{Fake, Folder, SECRET, Stack, statuses};
use crate::suite::json;

#[tokio::test]
async fn shell_and_http_steps_chain_through_previous_output_and_the_payload() {
    let fake = Fake::start().await;
    let chain = format!(
        r#"
name: chain
steps:
  - name: describe
    tool: shell_exec
    args:
      command: 'echo "ref is $REF"'
      env:
        REF: "{{{{ payload.ref }}}}"
  - name: call
    tool: http_request
    args:
      method: POST
      url: "{base}/echo"
      headers:
        X-Run: "{{{{ run_id }}}}"
      body:
        got: "{{{{ previous_output }}}}"
        sha: "{{{{ payload.after }}}}"
  - name: repeat
    tool: shell_exec
    args:
      command: "echo {{{{ steps.call.output | shell_quote }}}}"
"#,
        base = fake.base
    );
    let folder = Folder::new(&[("chain", &chain)]);
    let mut stack = Stack::start(&folder, &[("ASSISTANT_WEBHOOK_SECRET", SECRET)]).await;
    stack.start_worker(&folder, "", "");
    let body = r#"{"ref": "refs/heads/main", "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"}"#;
    let response = stack.post("chain", body, Some(SECRET)).await;
    assert_eq!(response.status(), 200);
    let answer = json(response).await;
    assert_eq!(answer["status"], "ok", "{answer:#}");
    assert_eq!(answer["workflow"], "chain");
    assert_eq!(
        statuses(&answer["results"]),
        ["describe:success", "call:success", "repeat:success"]
    );
    assert_eq!(answer["results"][0]["output"], "ref is refs/heads/main");
    let calls = fake.at("/echo");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, axum::http::Method::POST);
    let sent: serde_json::Value = serde_json::from_str(&calls[0].body).expect("a JSON body");
    assert_eq!(sent["got"], "ref is refs/heads/main");
    assert_eq!(sent["sha"], "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    assert_eq!(
        calls[0].headers["x-run"],
        answer["run_id"].as_str().expect("run id")
    );
    assert_eq!(answer["results"][1]["http_status"], 200);
    assert_eq!(
        answer["results"][2]["output"],
        format!("pong:{}", calls[0].body)
    );
}

#[tokio::test]
async fn a_failing_step_is_reported_and_continue_on_error_goes_on() {
    let fake = Fake::start().await;
    let flaky = format!(
        r#"
name: flaky
steps:
  - name: tolerated
    tool: shell_exec
    args: {{ command: "echo partial; exit 3" }}
    continue_on_error: true
  - name: fine
    tool: shell_exec
    args: {{ argv: ["echo", "still here"] }}
  - name: broken
    tool: http_request
    args: {{ url: "{base}/fail" }}
  - name: never
    tool: shell_exec
    args: {{ command: "echo unreachable" }}
"#,
        base = fake.base
    );
    let folder = Folder::new(&[("flaky", &flaky)]);
    let mut stack = Stack::start(&folder, &[]).await;
    stack.start_worker(&folder, "", "");
    let response = stack.post("flaky", "{}", None).await;
    assert_eq!(response.status(), 200);
    let answer = json(response).await;
    assert_eq!(answer["status"], "failed", "{answer:#}");
    assert_eq!(
        statuses(&answer["results"]),
        [
            "tolerated:failed",
            "fine:success",
            "broken:failed",
            "never:skipped"
        ]
    );
    let results = &answer["results"];
    assert_eq!(results[0]["exit_code"], 3);
    assert_eq!(results[0]["output"], "partial");
    assert_eq!(results[0]["error"], "exit code 3");
    assert_eq!(results[1]["output"], "still here");
    assert_eq!(results[2]["http_status"], 500);
    assert_eq!(results[2]["output"], "broken");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|error| error.contains("step broken failed")),
        "{answer:#}"
    );
}

#[tokio::test]
async fn a_sync_run_past_its_timeout_answers_504_and_goes_on() {
    let slow = "name: slow\ntimeout: 1s\nsteps:\n  - name: wait\n    tool: shell_exec\n    args: { command: \"sleep 2; echo done\" }\n";
    let folder = Folder::new(&[("slow", slow)]);
    let mut stack = Stack::start(&folder, &[]).await;
    stack.start_worker(&folder, "", "");
    let response = stack.post("slow", "{}", None).await;
    assert_eq!(response.status(), 504);
    let answer = json(response).await;
    assert_eq!(answer["error"], "workflow_timeout");
    let run_id = answer["run_id"].as_str().expect("a run id").to_owned();
    let run = stack
        .run_until(&run_id, "the slow run to complete", |run| {
            run["status"] == "completed"
        })
        .await;
    assert_eq!(run["steps"][0]["output"], "done");
}

#[tokio::test]
async fn a_step_interrupted_by_a_worker_kill_is_reported_not_repeated() {
    let fake = Fake::start().await;
    let crash = format!(
        r#"
name: crash
mode: queued
steps:
  - name: record
    tool: http_request
    args: {{ method: POST, url: "{base}/record", body: "once" }}
  - name: long
    tool: shell_exec
    args: {{ command: "sleep 4" }}
    continue_on_error: true
  - name: after
    tool: shell_exec
    args: {{ command: "echo after" }}
"#,
        base = fake.base
    );
    let folder = Folder::new(&[("crash", &crash)]);
    let mut stack = Stack::start(&folder, &[]).await;
    stack.start_worker(&folder, "", "");
    let response = stack.post("crash", "{}", None).await;
    assert_eq!(response.status(), 202);
    let run_id = json(response).await["run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    stack
        .run_until(&run_id, "step long to start", |run| {
            run["steps"][1]["status"] == "running"
        })
        .await;
    stack.worker.as_mut().expect("a worker").kill();
    stack.start_worker(&folder, "", "");
    let run = stack
        .run_until(&run_id, "the run to finish on the new worker", |run| {
            run["status"] == "completed"
        })
        .await;
    assert_eq!(
        statuses(&run["steps"]),
        ["record:success", "long:failed", "after:success"]
    );
    assert!(
        run["steps"][1]["error"]
            .as_str()
            .is_some_and(|error| error.starts_with("interrupted")),
        "{run:#}"
    );
    // The finished step's effect happened once.
    assert_eq!(fake.at("/record").len(), 1);
}
