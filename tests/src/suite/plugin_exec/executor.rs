//! The executor's contract through the shipped configs: the status table,
//! the query as payload and a clean environment, 503 without an executor,
//! 504 and a killed process group for a slow plugin, replicas sharing
//! requests, and reloading on SIGHUP.

use std::time::Duration;

use serde_json::{Value, json};

use super::{ECHO, Fixture, simple_manifest, write_plugin};
use crate::eventually;
use crate::suite::json;
use crate::token_endpoint::GOOD_CODE;

#[tokio::test]
async fn the_status_table_holds() {
    let fixture = Fixture::start().await;
    let _exec = fixture.start_exec(&[], "").await;
    let status = |path: &'static str, token: bool| {
        let request = fixture.get(path, token);
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status().as_u16();
            (status, json(response).await)
        }
    };
    // Everything but the opted-in callback needs the token.
    assert_eq!(status("/webhook/withings/refresh", false).await.0, 401);
    let queued = fixture.post("/webhook/withings/refresh", &json!({}), false);
    assert_eq!(queued.send().await.expect("sent").status(), 401);
    // The executor owns the manifests.
    let (code, body) = status("/webhook/nope/run", true).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("unknown_plugin"))
    );
    let (code, body) = status("/webhook/withings/nope", true).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("unknown_command"))
    );
    let (code, body) = status("/webhook/withings/health", true).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("command_not_callable"))
    );
    // input_schema: code is required and a string.
    let (code, body) = status("/webhook/withings/oauth_callback?state=XYZ", false).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("invalid_input")),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("code")),
        "{body}"
    );
    let (code, _) = status("/webhook/withings/oauth_callback?code=a&code=b", false).await;
    assert_eq!(code, 400);
    assert!(
        fixture.tokens.forms().is_empty(),
        "nothing reached Withings"
    );
}

#[tokio::test]
async fn a_query_becomes_the_payload_and_the_environment_is_clean() {
    let fixture = Fixture::start().await;
    let _exec = fixture
        .start_exec(&[], "[exec.plugins.echo.env]\nREPLICA = \"one\"")
        .await;
    let response = fixture
        .get("/webhook/echo/run?scope=a&scope=b%20c&x=1&flag", true)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    let result = &body["result"];
    assert_eq!(
        result["payload"],
        json!({ "scope": ["a", "b c"], "x": "1", "flag": "" })
    );
    assert_eq!(
        result["context"]["raw_query"],
        "scope=a&scope=b%20c&x=1&flag"
    );
    assert_eq!(result["context"]["mode"], "sync");
    assert_eq!(result["replica"], "one");
    assert_eq!(
        result["secret_leak"],
        Value::Null,
        "the executor's environment leaked"
    );
}

#[tokio::test]
async fn without_an_executor_the_route_answers_503() {
    let fixture = Fixture::start().await;
    let mut exec = fixture.start_exec(&[], "").await;
    exec.kill();
    let response = fixture
        .get(
            &format!("/webhook/withings/oauth_callback?code={GOOD_CODE}"),
            false,
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(json(response).await["error"], "no_worker");
}

#[tokio::test]
async fn a_slow_plugin_is_a_504_and_its_processes_are_killed() {
    let fixture = Fixture::start().await;
    let _exec = fixture.start_exec(&[], "").await;
    let started = std::time::Instant::now();
    let response = fixture
        .get("/webhook/slow/run", true)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(json(response).await["error"], "plugin_timeout");
    let pid_file = fixture.data().join("slow/grandchild.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("the grandchild wrote its pid")
        .trim()
        .parse()
        .expect("a pid");
    eventually(
        Duration::from_secs(5),
        "the grandchild is killed",
        || async {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
            // Gone, or a zombie no one reaped yet: it runs no more.
            let gone = state.is_none_or(|stat| {
                stat.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().next())
                    == Some("Z")
            });
            gone.then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn two_executor_replicas_share_sync_requests() {
    let fixture = Fixture::start().await;
    let _a = fixture
        .start_exec(&[], "[exec.plugins.echo.env]\nREPLICA = \"a\"")
        .await;
    let _b = fixture
        .start_exec(&[], "[exec.plugins.echo.env]\nREPLICA = \"b\"")
        .await;
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..30 {
        let response = fixture
            .get("/webhook/echo/run", true)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200);
        let replica = json(response).await["result"]["replica"]
            .as_str()
            .expect("a replica")
            .to_owned();
        *seen.entry(replica).or_default() += 1;
    }
    assert_eq!(seen.len(), 2, "one replica answered everything: {seen:?}");
}

#[tokio::test]
async fn sighup_reloads_plugins_and_a_bad_manifest_keeps_the_last_good_one() {
    let fixture = Fixture::start().await;
    let exec = fixture
        .start_exec(
            &[("reload_interval = \"5s\"", "reload_interval = \"0s\"")],
            "",
        )
        .await;
    let plugins = fixture.folders.path().join("plugins");
    write_plugin(&plugins, "late", &simple_manifest("late"), ECHO);
    let status = || async {
        let response = fixture
            .get("/webhook/late/run", true)
            .send()
            .await
            .expect("sent");
        response.status().as_u16()
    };
    assert_eq!(status().await, 404, "not loaded before SIGHUP");
    let hangup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &exec.pid().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -HUP");
    };
    hangup();
    eventually(
        Duration::from_secs(10),
        "the new plugin serving",
        || async { (status().await == 200).then_some(()) },
    )
    .await;
    std::fs::write(
        plugins.join("late/manifest.yaml"),
        "name: late\ncommands: [oops",
    )
    .expect("break");
    hangup();
    // The reload has happened once another new plugin appears.
    write_plugin(&plugins, "later", &simple_manifest("later"), ECHO);
    hangup();
    eventually(Duration::from_secs(10), "the second new plugin", || async {
        let response = fixture.get("/webhook/later/run", true).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    assert_eq!(status().await, 200, "the last good version keeps serving");
}
