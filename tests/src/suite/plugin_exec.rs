//! The ductile seed end to end, from the shipped examples: the ingress runs
//! `deploy/examples/tidegate.toml`, `tidegate-exec` runs
//! `deploy/examples/exec.toml` (folders and URLs pointed at the test) with
//! the shipped Withings plugin and a fake Withings token endpoint.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemas::streams::{DEAD_LETTER_STREAM, PLUGIN_EVENTS_PREFIX};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::json;
use crate::process::WorkerProcess;
use crate::token_endpoint::{GOOD_CODE, TokenEndpoint, USERID};
use crate::{NatsServer, TestIngress, eventually};

const TOKEN: &str = "api-token-7f3e";
const CLIENT_ID: &str = "withings-client-id-1";
const CLIENT_SECRET: &str = "withings-client-secret-9d2b";

/// Answers with what it was given: the payload, the context, its config and
/// the `REPLICA` variable set for it.
const ECHO: &str = r#"#!/usr/bin/env python3
import json, os, sys
request = json.load(sys.stdin)
print(json.dumps({"status": "ok", "result": {"payload": request["payload"], "context": request["context"],
      "replica": os.environ.get("REPLICA"), "home": os.environ.get("HOME"), "secret_leak": os.environ.get("TIDEGATE_API_TOKEN")}}))
"#;

/// Starts a grandchild that would outlive it, then hangs.
const SLOW: &str = "#!/bin/sh\nsh -c 'sleep 300 & echo $! > \"$TIDEGATE_PLUGIN_DATA/grandchild.pid\"; wait' &\nsleep 300\n";

struct Fixture {
    nats: NatsServer,
    ingress: TestIngress,
    tokens: TokenEndpoint,
    folders: TempDir,
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn write_plugin(root: &Path, name: &str, manifest: &str, script: &str) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("plugin folder");
    std::fs::write(dir.join("manifest.yaml"), manifest).expect("manifest");
    std::fs::write(dir.join("run"), script).expect("script");
    std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
}

fn simple_manifest(name: &str) -> String {
    format!("name: {name}\ncommands:\n  - name: run\n    type: read\n")
}

impl Fixture {
    async fn start() -> Fixture {
        let nats = NatsServer::start().await;
        let example = std::fs::read_to_string(repo("deploy/examples/tidegate.toml"))
            .expect("the example ingress config");
        let ingress = TestIngress::start(
            &nats,
            &example,
            &[
                ("TIDEGATE_API_TOKEN", TOKEN),
                ("GITHUB_WEBHOOK_SECRET", "unused"),
            ],
        )
        .await;
        let tokens = TokenEndpoint::start().await;
        let folders = tempfile::tempdir().expect("temp dir");
        let plugins = folders.path().join("plugins");
        let shipped = repo("examples/plugins/withings");
        std::fs::create_dir_all(plugins.join("withings")).expect("withings folder");
        for file in ["manifest.yaml", "run.py"] {
            // fs::copy keeps the executable bit.
            std::fs::copy(shipped.join(file), plugins.join("withings").join(file))
                .expect("copying the shipped plugin");
        }
        write_plugin(&plugins, "echo", &simple_manifest("echo"), ECHO);
        write_plugin(&plugins, "slow", &simple_manifest("slow"), SLOW);
        std::fs::write(
            folders.path().join("client-secret"),
            format!("{CLIENT_SECRET}\n"),
        )
        .expect("secret file");
        Fixture {
            nats,
            ingress,
            tokens,
            folders,
        }
    }

    fn data(&self) -> PathBuf {
        self.folders.path().join("data")
    }

    /// The shipped exec config, pointed at this test; `extra` is appended.
    fn exec_config(&self, replacements: &[(&str, &str)], extra: &str) -> String {
        let mut config = std::fs::read_to_string(repo("deploy/examples/exec.toml"))
            .expect("the example exec config");
        let plugins = self.folders.path().join("plugins");
        let secret = self.folders.path().join("client-secret");
        let mut swaps: Vec<(String, String)> = vec![
            (
                "url = \"nats://127.0.0.1:4222\"".into(),
                format!("url = \"{}\"", self.nats.url()),
            ),
            ("listen = \"127.0.0.1:9103\"".into(), String::new()),
            (
                "plugins_dir = \"examples/plugins\"".into(),
                format!("plugins_dir = \"{}\"", plugins.display()),
            ),
            (
                "data_dir = \"/var/lib/tidegate/plugins\"".into(),
                format!("data_dir = \"{}\"", self.data().display()),
            ),
            (
                "/etc/tidegate/withings-client-secret".into(),
                secret.display().to_string(),
            ),
            (
                "# WITHINGS_TOKEN_URL = \"https://wbsapi.withings.net/v2/oauth2\"".into(),
                format!("WITHINGS_TOKEN_URL = \"{}\"", self.tokens.url()),
            ),
        ];
        swaps.extend(
            replacements
                .iter()
                .map(|(from, to)| ((*from).to_owned(), (*to).to_owned())),
        );
        for (from, to) in swaps {
            assert!(
                config.contains(&from),
                "the example exec config has `{from}`"
            );
            config = config.replace(&from, &to);
        }
        format!("{config}\n[exec.plugins.slow]\ntimeout = \"1s\"\n{extra}\n")
    }

    async fn start_exec(&self, replacements: &[(&str, &str)], extra: &str) -> WorkerProcess {
        let exec = WorkerProcess::start(
            "tidegate-exec",
            &self.exec_config(replacements, extra),
            &[
                ("WITHINGS_CLIENT_ID", CLIENT_ID),
                ("TIDEGATE_API_TOKEN", TOKEN),
            ],
        );
        self.wait_serving().await;
        exec
    }

    /// Until a sync command answers 200.
    async fn wait_serving(&self) {
        eventually(Duration::from_secs(30), "tidegate-exec serving", || async {
            let response = self.get("/webhook/echo/run", true).send().await.ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
    }

    fn get(&self, path: &str, token: bool) -> reqwest::RequestBuilder {
        let request = self
            .ingress
            .http
            .get(self.ingress.url(path))
            .timeout(Duration::from_secs(40));
        if token {
            request.bearer_auth(TOKEN)
        } else {
            request
        }
    }

    fn post(&self, path: &str, body: &Value, token: bool) -> reqwest::RequestBuilder {
        let request = self
            .ingress
            .http
            .post(self.ingress.url(path))
            .json(body)
            .timeout(Duration::from_secs(40));
        if token {
            request.bearer_auth(TOKEN)
        } else {
            request
        }
    }

    /// Rows of the plugin's token table, read with Python's sqlite3.
    fn stored_tokens(&self) -> Vec<Value> {
        let db = self.data().join("withings/withings.db");
        if !db.exists() {
            return Vec::new();
        }
        let output = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import json, sqlite3, sys\n\
                 rows = sqlite3.connect(sys.argv[1]).execute('SELECT userid, access_token, refresh_token, expires_at FROM tokens').fetchall()\n\
                 print(json.dumps([dict(zip(['userid', 'access_token', 'refresh_token', 'expires_at'], row)) for row in rows]))",
            )
            .arg(&db)
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("rows as JSON")
    }

    /// Stored plugin events of type `event_type`, as envelopes.
    async fn events(&self, event_type: &str) -> Vec<(schemas::Envelope, String)> {
        let subject = format!("{PLUGIN_EVENTS_PREFIX}.withings.{event_type}");
        self.nats
            .stored_deliveries()
            .await
            .into_iter()
            .filter(|message| message.subject.as_str() == subject)
            .map(|message| {
                let msg_id = message
                    .headers
                    .get("Nats-Msg-Id")
                    .map(|value| value.as_str().to_owned())
                    .unwrap_or_default();
                (super::envelope(&message.payload), msg_id)
            })
            .collect()
    }
}

#[tokio::test]
async fn a_browser_redirect_stores_tokens_and_emits_withings_authorized() {
    let fixture = Fixture::start().await;
    let _exec = fixture.start_exec(&[], "").await;

    // As a browser follows Withings' redirect: no token.
    let response = fixture
        .get(
            &format!("/webhook/withings/oauth_callback?code={GOOD_CODE}&state=XYZ"),
            false,
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(
        !text.contains("access-") && !text.contains("refresh-"),
        "tokens in the response: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["result"]["userid"], USERID);
    assert_eq!(body["events"][0]["type"], "withings.authorized");

    let forms = fixture.tokens.forms();
    assert_eq!(forms.len(), 1);
    let form = &forms[0];
    for (name, value) in [
        ("action", "requesttoken"),
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("code", GOOD_CODE),
        ("redirect_uri", "https://mattjoyce.ai/api/withings/"),
    ] {
        assert_eq!(
            form.get(name).map(String::as_str),
            Some(value),
            "form field {name}"
        );
    }

    let rows = fixture.stored_tokens();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["userid"], USERID);
    assert_eq!(rows[0]["access_token"], "access-1");
    assert_eq!(rows[0]["refresh_token"], "refresh-1");
    let expires_at = rows[0]["expires_at"].as_i64().expect("expiry");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(
        (now + 10_700..=now + 10_900).contains(&expires_at),
        "{expires_at}"
    );

    let events = fixture.events("withings.authorized").await;
    assert_eq!(events.len(), 1);
    let (envelope, msg_id) = &events[0];
    assert_eq!(envelope.source, "withings");
    assert_eq!(envelope.event.as_deref(), Some("withings.authorized"));
    assert!(
        msg_id.starts_with("event:") && msg_id.ends_with(":0"),
        "{msg_id}"
    );
    let payload: Value =
        serde_json::from_str(envelope.payload.as_ref().expect("payload").get()).expect("JSON");
    assert_eq!(payload["userid"], USERID);

    // The seed's redirect URI, as cloudflared forwards it (path unchanged).
    let response = fixture
        .get(&format!("/api/withings/?code={GOOD_CODE}&state=XYZ"), false)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["result"]["userid"], USERID);
    assert_eq!(fixture.stored_tokens()[0]["access_token"], "access-2");
}

#[tokio::test]
async fn a_rejected_code_is_a_502_with_the_plugins_error() {
    let fixture = Fixture::start().await;
    let _exec = fixture.start_exec(&[], "").await;
    let response = fixture
        .get(
            "/webhook/withings/oauth_callback?code=EXPIRED&state=XYZ",
            false,
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 502);
    let body = json(response).await;
    assert_eq!(body["status"], "error");
    let error = body["error"].as_str().expect("an error message");
    assert!(
        error.contains("Withings refused") && error.contains("invalid code"),
        "{error}"
    );
    assert!(!error.contains(CLIENT_SECRET));
    assert!(fixture.stored_tokens().is_empty());
    assert!(fixture.events("withings.authorized").await.is_empty());
}

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
async fn a_queued_refresh_runs_through_the_runtime() {
    let fixture = Fixture::start().await;
    let _exec = fixture.start_exec(&[], "").await;
    let response = fixture
        .get(
            &format!("/webhook/withings/oauth_callback?code={GOOD_CODE}&state=XYZ"),
            false,
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);

    let response = fixture
        .post("/webhook/withings/refresh", &json!({}), true)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let id = json(response).await["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let jetstream = fixture.nats.jetstream().await;
    let result = eventually(
        Duration::from_secs(30),
        "the refresh's job result",
        || async {
            broker::results::latest(&jetstream, "exec", &id)
                .await
                .ok()
                .flatten()
                .filter(|result| result.status == schemas::JobStatus::Completed)
        },
    )
    .await;
    assert_eq!(result.counts.get("events"), Some(&1));
    assert_eq!(fixture.stored_tokens()[0]["access_token"], "access-2");
    let form = fixture.tokens.forms().pop().expect("a refresh form");
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("refresh_token")
    );
    assert_eq!(
        form.get("refresh_token").map(String::as_str),
        Some("refresh-1")
    );
    assert_eq!(fixture.events("withings.refreshed").await.len(), 1);

    // A queued command for no plugin is dead-lettered, not retried.
    let response = fixture
        .post("/webhook/nope/run", &json!({}), true)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let id = json(response).await["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let result = eventually(Duration::from_secs(30), "a failed result", || async {
        broker::results::latest(&jetstream, "exec", &id)
            .await
            .ok()
            .flatten()
            .filter(|result| result.status == schemas::JobStatus::Failed)
    })
    .await;
    assert_eq!(result.attempts, 1);
    let dlq = jetstream.get_stream(DEAD_LETTER_STREAM).await.expect("dlq");
    let letter = dlq
        .get_last_raw_message_by_subject("tidegate.dlq.exec")
        .await
        .expect("a dead letter");
    let letter: schemas::DeadLetter = serde_json::from_slice(&letter.payload).expect("v1");
    assert!(
        letter.error.contains("no plugin named `nope`"),
        "{}",
        letter.error
    );
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

#[tokio::test]
async fn a_configured_state_must_match() {
    let fixture = Fixture::start().await;
    let _exec = fixture
        .start_exec(
            &[(
                "# WITHINGS_STATE = { env = \"WITHINGS_STATE\" }",
                "WITHINGS_STATE = \"expected-state-5\"",
            )],
            "",
        )
        .await;
    let response = fixture
        .get(
            &format!("/webhook/withings/oauth_callback?code={GOOD_CODE}&state=forged"),
            false,
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 502);
    let error = json(response).await["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("state does not match"), "{error}");
    assert!(
        fixture.tokens.forms().is_empty(),
        "the code was not exchanged"
    );
    let response = fixture
        .get(
            &format!("/webhook/withings/oauth_callback?code={GOOD_CODE}&state=expected-state-5"),
            false,
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(fixture.stored_tokens().len(), 1);
}
