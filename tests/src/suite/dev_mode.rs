//! The README's first command, minus the build: `tidegate up` starts
//! nats-server, the ingress and the workers from the shipped example
//! configs; the sample push it prints is accepted, delivered to the dev
//! sink with a valid signature and reported skipped by github-sync (its
//! repository is not tracked); Ctrl-C stops everything cleanly.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemas::JobStatus;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::eventually;
use crate::nats::free_port;
use crate::process::binary;

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every line `tidegate up` printed so far.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn snapshot(&self) -> Vec<String> {
        self.0.lock().expect("not poisoned").clone()
    }
}

#[tokio::test]
async fn up_runs_the_pipeline_and_its_sample_push_goes_through() {
    let data = tempfile::tempdir().expect("temp dir");
    let (nats_port, monitor_port, listen, sink_port) =
        (free_port(), free_port(), free_port(), free_port());
    let root = repository_root();
    let mut up = tokio::process::Command::new(binary("tidegate"))
        .arg("up")
        .args(["--nats-port", &nats_port.to_string()])
        .args(["--monitor-port", &monitor_port.to_string()])
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .args(["--sink-port", &sink_port.to_string()])
        .arg("--data")
        .arg(data.path())
        .current_dir(&root)
        .env_remove("TIDEGATE_CONFIG")
        .env_remove("TIDEGATE_NATS_URL")
        .env_remove("GITHUB_WEBHOOK_SECRET")
        .env_remove("TIDEGATE_API_TOKEN")
        .env_remove("FORWARD_SIGNING_SECRET")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting tidegate up");
    let lines = Lines::default();
    for stream in [
        Box::new(up.stdout.take().expect("stdout")) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(up.stderr.take().expect("stderr")),
    ] {
        let lines = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("up: {line}");
                }
                lines.0.lock().expect("not poisoned").push(line);
            }
        });
    }

    let curl = eventually(Duration::from_secs(90), "the sample curl", || {
        let lines = lines.snapshot();
        async move { sample_curl(&lines) }
    })
    .await;
    assert!(curl.contains("X-Hub-Signature-256: sha256="), "{curl}");
    let delivery = curl
        .split("X-GitHub-Delivery: ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a delivery id in the curl")
        .to_owned();

    let answer = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&curl)
        .output()
        .await
        .expect("running the printed curl");
    let answer = String::from_utf8_lossy(&answer.stdout);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    eventually(
        Duration::from_secs(30),
        "the sink to check the signature",
        || {
            let lines = lines.snapshot();
            async move {
                lines
                    .iter()
                    .any(|line| line.starts_with("sink") && line.contains("signature ok"))
                    .then_some(())
            }
        },
    )
    .await;

    let settings = broker::NatsSettings::for_url(&format!("nats://127.0.0.1:{nats_port}"), "test")
        .expect("settings");
    let connection = broker::Connection::open(&settings)
        .await
        .expect("connected");
    let delivery_id = format!("1_{delivery}");
    let result = eventually(Duration::from_secs(30), "github-sync's result", || {
        let jetstream = connection.jetstream.clone();
        let delivery_id = delivery_id.clone();
        async move {
            broker::results::latest(&jetstream, "github-sync", &delivery_id)
                .await
                .ok()
                .flatten()
        }
    })
    .await;
    assert_eq!(result.status, JobStatus::Skipped, "{result:?}");
    assert!(
        result.detail["reason"].contains("is not tracked by any target"),
        "{result:?}"
    );
    assert!(
        !lines
            .snapshot()
            .iter()
            .any(|line| line.contains("dead-lettered")),
        "{:#?}",
        lines.snapshot()
    );

    let pid = up.id().expect("running") as i32;
    // SAFETY: kill(2) with a pid this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(60), up.wait())
        .await
        .expect("tidegate up stops within a minute of Ctrl-C")
        .expect("waiting");
    assert!(status.success(), "{status:?}: {:#?}", lines.snapshot());
}

/// The printed multi-line curl, once it is complete.
fn sample_curl(lines: &[String]) -> Option<String> {
    let start = lines
        .iter()
        .position(|line| line.trim_start().starts_with("curl -sS -i"))?;
    let mut curl = String::new();
    for line in &lines[start..] {
        curl.push_str(line.trim());
        curl.push('\n');
        if !line.ends_with('\\') {
            return Some(curl);
        }
    }
    None
}
