//! The ductile seed end to end, from the shipped examples: the ingress runs
//! `deploy/examples/tidegate.toml`, `tidegate-exec` runs
//! `deploy/examples/exec.toml` (folders and URLs pointed at the test) with
//! the shipped Withings plugin and a fake Withings token endpoint. This
//! file is the fixture; `withings.rs` and `executor.rs` hold the tests.

mod executor;
mod withings;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemas::streams::PLUGIN_EVENTS_PREFIX;
use serde_json::Value;
use tempfile::TempDir;

use crate::process::WorkerProcess;
use crate::token_endpoint::TokenEndpoint;
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
                (super::envelope(&message), msg_id)
            })
            .collect()
    }
}
