//! Every binary against a secured broker, read from the same `[nats]`
//! keys: user and password, a creds file (operator mode, JWT and nkey),
//! and mutual TLS. The ingress stores, the forwarder delivers, github-sync
//! consumes and reports, tidegate-exec answers a sync command, the CLI
//! lists — and a client without the credentials is refused.

use std::time::Duration;

use schemas::JobStatus;

use super::forward::{OPEN_ROUTE, forwarder_config_for};
use super::{GITHUB_ROUTE, GITHUB_SECRET};
use crate::process::WorkerProcess;
use crate::receiver::{Receiver, Script};
use crate::security::Auth;
use crate::{NatsServer, TestIngress, eventually, sign};

/// A public sync plugin route, for tidegate-exec.
const PLUGIN_ROUTE: &str = r#"
[[routes]]
name = "plugin"
path = "/webhook/{plugin}/{command}"
methods = ["GET"]
mode = "sync"
subject = "plugin.{plugin}.{command}"
timeout = "10s"
[routes.verifier]
kind = "none"
"#;

async fn every_binary_works_with(auth: Auth) {
    let nats = NatsServer::start_secured(auth).await;
    let routes = format!(
        "[nats]\n{}\n{OPEN_ROUTE}\n{GITHUB_ROUTE}\n{PLUGIN_ROUTE}",
        nats.nats_toml()
    );
    let ingress =
        TestIngress::start(&nats, &routes, &[("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)]).await;

    // The ingress stores.
    let response = ingress
        .http
        .post(ingress.url("/hooks/app"))
        .header("content-type", "application/json")
        .header("x-delivery", "secured-1")
        .body(r#"{"hello":"world"}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202, "{auth:?}");
    let body = br#"{"ref":"refs/heads/main","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","repository":{"id":7,"full_name":"someone/else"}}"#;
    let response = ingress
        .http
        .post(ingress.url("/v1/webhooks/connectors/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", "secured-push")
        .header("x-hub-signature-256", sign::github(GITHUB_SECRET, body))
        .body(body.to_vec())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202, "{auth:?}");

    // The forwarder delivers.
    let receiver = Receiver::start(Script::default()).await;
    let _forward = WorkerProcess::start(
        "tidegate-forward",
        &forwarder_config_for(&nats, &receiver, ""),
        &[],
    );
    eventually(
        Duration::from_secs(30),
        "the forwarded delivery",
        || async {
            receiver
                .completed()
                .contains(&"secured-1".to_owned())
                .then_some(())
        },
    )
    .await;

    // github-sync consumes and reports (the repository is not tracked).
    let state = tempfile::tempdir().expect("temp dir");
    let sync_config = format!(
        "name = \"github-sync\"\n[nats]\nurl = \"{url}\"\n{auth_toml}\n[consumer]\nfilter_subjects = \"tidegate.in.github.>\"\n[github_sync]\nstate_dir = \"{state}/state\"\n[[github_sync.targets]]\nid = \"t\"\ninstance = \"i\"\nrepositories = [\"octocat/*\"]\nbranches = [\"main\"]\npath = \"{state}/out/{{name}}\"\n",
        url = nats.url(),
        auth_toml = nats.nats_toml(),
        state = state.path().display(),
    );
    let _sync = WorkerProcess::start("tidegate-github-sync", &sync_config, &[]);
    let jetstream = nats.jetstream().await;
    let result = eventually(Duration::from_secs(30), "github-sync's result", || {
        let jetstream = jetstream.clone();
        async move {
            broker::results::latest(&jetstream, "github-sync", "secured-push")
                .await
                .ok()
                .flatten()
        }
    })
    .await;
    assert_eq!(result.status, JobStatus::Skipped, "{result:?}");

    // tidegate-exec answers a sync command.
    let plugins = tempfile::tempdir().expect("temp dir");
    let echo = plugins.path().join("plugins/echo");
    std::fs::create_dir_all(&echo).expect("plugin folder");
    std::fs::write(
        echo.join("manifest.yaml"),
        "name: echo\ncommands: [{name: run, type: read}]\n",
    )
    .expect("manifest");
    std::fs::write(
        echo.join("run"),
        "#!/bin/sh\ncat >/dev/null\necho '{\"status\": \"ok\", \"result\": \"pong\"}'\n",
    )
    .expect("script");
    std::fs::set_permissions(
        echo.join("run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let exec_config = format!(
        "name = \"exec\"\n[nats]\nurl = \"{url}\"\n{auth_toml}\n[consumer]\nfilter_subjects = \"tidegate.in.plugin.>\"\n[exec]\nplugins_dir = \"{root}/plugins\"\ndata_dir = \"{root}/data\"\n",
        url = nats.url(),
        auth_toml = nats.nats_toml(),
        root = plugins.path().display(),
    );
    let _exec = WorkerProcess::start("tidegate-exec", &exec_config, &[]);
    let answer = eventually(
        Duration::from_secs(30),
        "tidegate-exec's answer",
        || async {
            let response = ingress
                .http
                .get(ingress.url("/webhook/echo/run"))
                .send()
                .await
                .ok()?;
            if response.status() != 200 {
                return None;
            }
            response.json::<serde_json::Value>().await.ok()
        },
    )
    .await;
    assert_eq!(answer["result"], "pong", "{auth:?}");

    // The CLI lists, with the credentials from its configuration file.
    let config = nats.store_dir().join("cli.toml");
    std::fs::write(&config, format!("[nats]\n{}", nats.nats_toml())).expect("writing the config");
    let config = config.to_str().expect("UTF-8").to_owned();
    let listed = crate::cli::tidegate(
        &nats,
        &["deliveries", "list", "--json", "--config", &config],
    )
    .await
    .success();
    let ids: Vec<String> = listed
        .json_lines()
        .iter()
        .filter_map(|row| row["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, ["secured-1", "secured-push"], "{auth:?}");

    // Without the credentials: refused, with the reason.
    let refused = crate::cli::tidegate(&nats, &["deliveries", "list"]).await;
    assert!(!refused.status.success(), "{auth:?}: {refused:?}");
    assert!(refused.stderr.contains("error:"), "{refused:?}");
}

#[tokio::test]
async fn every_binary_connects_with_a_user_and_password() {
    every_binary_works_with(Auth::UserPassword).await;
}

#[tokio::test]
async fn every_binary_connects_with_a_creds_file() {
    every_binary_works_with(Auth::Creds).await;
}

#[tokio::test]
async fn every_binary_connects_over_mutual_tls() {
    every_binary_works_with(Auth::MutualTls).await;
}
