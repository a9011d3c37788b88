//! `shell_exec`: the seed's `command` through `sh -c`, or `argv` without a
//! shell. The process gets a clean environment (the configured pass-through
//! variables, the step's `env`), its own process group (killed whole on
//! timeout) and bounded output capture.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use workflows::args::ShellArgs;

use super::{Failure, Output};
use crate::config::ShellSettings;

pub async fn run(
    settings: &ShellSettings,
    args: ShellArgs,
    timeout: Duration,
    max_output: usize,
) -> Result<Output, Failure> {
    let mut command = match (&args.command, &args.argv) {
        (Some(script), None) => {
            let mut command = Command::new("sh");
            command.arg("-c").arg(script);
            command
        }
        (None, Some(argv)) if !argv.is_empty() => {
            let mut command = Command::new(&argv[0]);
            command.args(&argv[1..]);
            command
        }
        _ => return Err(Failure::new("set command or argv")),
    };
    command
        .env_clear()
        .envs(&settings.env)
        .envs(&args.env)
        .stdin(if args.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: a timeout kills the shell and whatever it started.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = args
        .cwd
        .as_deref()
        .map(std::path::PathBuf::from)
        .or_else(|| settings.cwd.clone())
    {
        command.current_dir(cwd);
    }
    let mut child = command
        .spawn()
        .map_err(|error| Failure::new(format!("starting the process: {error}")))?;
    let group = child.id();
    if let (Some(text), Some(mut stdin)) = (args.stdin, child.stdin.take()) {
        tokio::spawn(async move {
            // A process that does not read its input closes the pipe; fine.
            drop(stdin.write_all(text.as_bytes()).await);
        });
    }
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let finished = tokio::time::timeout(timeout, async {
        let (stdout, stderr, status) = tokio::join!(
            capture(stdout, max_output),
            capture(stderr, max_output),
            child.wait()
        );
        (stdout, stderr, status)
    })
    .await;
    let Ok((stdout, stderr, status)) = finished else {
        kill_group(group);
        drop(child.wait().await);
        return Err(Failure::new(format!(
            "timed out after {}; the process group was killed",
            humantime::format_duration(timeout)
        )));
    };
    let status =
        status.map_err(|error| Failure::new(format!("waiting for the process: {error}")))?;
    let output = trim_newlines(stdout);
    let exit_code = status.code();
    if status.success() {
        return Ok(Output {
            text: output,
            exit_code,
            http_status: None,
        });
    }
    let why = match exit_code {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_owned(),
    };
    let stderr = trim_newlines(stderr);
    Err(Failure {
        error: if stderr.is_empty() {
            why
        } else {
            format!("{why}: {stderr}")
        },
        output: Some(output),
        exit_code,
        http_status: None,
    })
}

/// Reads everything, keeping the first `limit` bytes (the rest is drained
/// so the process never blocks on a full pipe).
async fn capture(mut reader: impl AsyncRead + Unpin, limit: usize) -> String {
    let mut kept = Vec::new();
    let mut dropped = 0usize;
    let mut buffer = [0u8; 8192];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..read.min(room)]);
                dropped += read.saturating_sub(room);
            }
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        text.push_str(&format!("\n…[{dropped} more bytes]"));
    }
    text
}

/// Like `$(...)`: trailing newlines are not part of the value.
fn trim_newlines(mut text: String) -> String {
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    text
}

fn kill_group(group: Option<u32>) {
    let Some(group) = group.and_then(|id| libc::pid_t::try_from(id).ok()) else {
        return;
    };
    // SAFETY: killpg only sends a signal; the group is the child's own
    // (process_group(0) made it its leader).
    unsafe {
        libc::killpg(group, libc::SIGKILL);
    }
}
