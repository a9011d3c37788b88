//! The `tidegate` operator CLI as a process: run it against a test broker
//! and capture its exit status, stdout and stderr.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::NatsServer;
use crate::process::binary;

/// A finished `tidegate` run.
#[derive(Debug)]
pub struct CliRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// Panics with the output unless the run succeeded.
    pub fn success(self) -> CliRun {
        assert!(self.status.success(), "tidegate failed: {self:#?}");
        self
    }

    /// The stdout lines parsed as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }
}

/// The `tidegate` command against `nats`, in a temp dir (no config file),
/// with stdin closed (not a terminal).
pub fn tidegate_command(nats: &NatsServer, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary("tidegate"));
    command
        .args(args)
        .arg("--nats-url")
        .arg(nats.url())
        .current_dir(std::env::temp_dir())
        .env_remove("TIDEGATE_CONFIG")
        .env_remove("TIDEGATE_NATS_URL")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `tidegate <args>` against `nats` to completion (at most a minute).
pub async fn tidegate(nats: &NatsServer, args: &[&str]) -> CliRun {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tidegate_command(nats, args).output(),
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
