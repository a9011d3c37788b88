//! Runs one plugin command as a child process: a clean environment, the
//! request on stdin, stdout read up to a limit, stderr logged (bounded),
//! and the whole process group killed on timeout and when the command
//! ends, so nothing a plugin started outlives it.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tracing::{info, warn};

/// Longest stderr line logged; the rest of the line is cut.
const MAX_LOG_LINE: usize = 2048;

/// How to run one command.
#[derive(Debug)]
pub struct Spawn<'a> {
    pub program: &'a Path,
    pub cwd: &'a Path,
    /// The whole environment of the child.
    pub env: Vec<(String, String)>,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
    /// Most stdout bytes read; more kills the command.
    pub max_output: usize,
    /// Most stderr bytes logged; more is read and dropped.
    pub max_log: usize,
    /// For log lines.
    pub plugin: &'a str,
    pub command: &'a str,
}

/// A command that exited (any status) within its limits.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {program}: {error}")]
    Spawn { program: String, error: String },
    #[error("did not finish within {0:?}; its process group was killed")]
    TimedOut(Duration),
    #[error("wrote more than {0} bytes on stdout; its process group was killed")]
    OutputTooLarge(usize),
    #[error("reading its output failed: {0}")]
    Io(String),
}

/// Kills the process group when dropped: on every path out of `run`,
/// including a task cancelled at shutdown.
struct GroupGuard(libc::pid_t);

impl GroupGuard {
    fn kill(&self) {
        // SAFETY: killpg takes plain integers and touches no memory; the
        // group id is our child's pid, which the kernel does not reuse
        // while the group has members.
        unsafe {
            libc::killpg(self.0, libc::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the command to completion, or kills its process group.
pub async fn run(spawn: Spawn<'_>) -> Result<Finished, RunError> {
    let mut child = tokio::process::Command::new(spawn.program)
        .current_dir(spawn.cwd)
        .env_clear()
        .envs(spawn.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that killing the group reaches every
        // process the plugin started.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| RunError::Spawn {
            program: spawn.program.display().to_string(),
            error: error.to_string(),
        })?;
    let pid = child.id().and_then(|id| libc::pid_t::try_from(id).ok());
    let guard = pid.map(GroupGuard);

    if let Some(mut stdin) = child.stdin.take() {
        let request = spawn.stdin;
        // A plugin may exit without reading its input; that is its business.
        tokio::spawn(async move {
            drop(stdin.write_all(&request).await);
            drop(stdin.shutdown().await);
        });
    }
    if let Some(stderr) = child.stderr.take() {
        let (plugin, command) = (spawn.plugin.to_owned(), spawn.command.to_owned());
        tokio::spawn(log_stderr(stderr, spawn.max_log, plugin, command));
    }
    let stdout = child.stdout.take().expect("stdout is piped");
    let reading = read_bounded(stdout, spawn.max_output);
    tokio::pin!(reading);

    let finished = tokio::time::timeout(spawn.timeout, async {
        tokio::select! {
            read = &mut reading => {
                let stdout = read?;
                let status = child.wait().await.map_err(|error| RunError::Io(error.to_string()))?;
                Ok(Finished { status, stdout })
            }
            status = child.wait() => {
                let status = status.map_err(|error| RunError::Io(error.to_string()))?;
                // The plugin is done: whatever it left running goes now,
                // which also closes their copies of stdout.
                if let Some(guard) = &guard {
                    guard.kill();
                }
                let stdout = reading.await?;
                Ok(Finished { status, stdout })
            }
        }
    })
    .await;
    drop(guard);
    match finished {
        Ok(result) => result,
        Err(_) => {
            // The group is killed (guard dropped); reap the child.
            drop(tokio::time::timeout(Duration::from_secs(5), child.wait()).await);
            Err(RunError::TimedOut(spawn.timeout))
        }
    }
}

/// Reads to EOF, failing once more than `max` bytes arrived.
async fn read_bounded(mut reader: impl AsyncRead + Unpin, max: usize) -> Result<Vec<u8>, RunError> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let read = reader
            .read(&mut chunk)
            .await
            .map_err(|error| RunError::Io(error.to_string()))?;
        if read == 0 {
            return Ok(buffer);
        }
        if buffer.len() + read > max {
            return Err(RunError::OutputTooLarge(max));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// Logs stderr line by line, at most `max_log` bytes; the rest is drained
/// (so the plugin never blocks on a full pipe) and counted.
async fn log_stderr(
    mut stderr: impl AsyncRead + Unpin,
    max_log: usize,
    plugin: String,
    command: String,
) {
    let mut logged = 0usize;
    let mut dropped = 0usize;
    let mut line: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    let emit = |line: &mut Vec<u8>, logged: &mut usize, dropped: &mut usize| {
        if line.is_empty() {
            return;
        }
        if *logged + line.len() > max_log {
            *dropped += line.len();
        } else {
            *logged += line.len();
            let text = String::from_utf8_lossy(&line[..line.len().min(MAX_LOG_LINE)]);
            info!(plugin = %plugin, command = %command, line = %text.trim_end(), "plugin stderr");
        }
        line.clear();
    };
    loop {
        let read = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        for &byte in &chunk[..read] {
            if byte == b'\n' {
                emit(&mut line, &mut logged, &mut dropped);
            } else if line.len() < MAX_LOG_LINE {
                line.push(byte);
            }
        }
    }
    emit(&mut line, &mut logged, &mut dropped);
    if dropped > 0 {
        warn!(plugin = %plugin, command = %command, dropped_bytes = dropped, "plugin stderr over exec.max_log; not logged");
    }
}
