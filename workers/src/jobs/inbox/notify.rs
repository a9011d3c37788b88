//! The notify command (the nexus seed's `sessions_spawn`): an argv template
//! filled with the item's values, run without a shell, in the agent's
//! workspace, with a clean environment, in its own process group, killed
//! (the whole group) when it outlives its timeout.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

/// Longest stderr excerpt kept in an error.
const STDERR_EXCERPT: usize = 2048;
/// How long the stderr excerpt is waited for once the command exited (a
/// background child may keep the pipe open).
const STDERR_GRACE: Duration = Duration::from_millis(500);

/// The values an argv template can use.
pub(super) const PLACEHOLDERS: [&str; 8] = [
    "agent",
    "source",
    "id",
    "file",
    "filename",
    "inbox",
    "workspace",
    "received_at",
];

/// A configured notify command.
#[derive(Debug, Clone)]
pub(super) struct Notify {
    pub(super) args: Vec<Arg>,
    pub(super) timeout: Duration,
    /// The whole environment it gets, sorted by name.
    pub(super) env: Vec<(String, String)>,
}

/// One argv element: literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Arg(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(&'static str),
}

/// The item's values, by placeholder name.
#[derive(Debug)]
pub(super) struct Values<'a> {
    pub(super) pairs: [(&'static str, &'a str); 8],
}

impl Values<'_> {
    fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map_or("", |(_, value)| value)
    }
}

/// Why the notify command did not succeed; each is retried.
#[derive(Debug, thiserror::Error)]
pub(super) enum NotifyError {
    #[error("notify command {program} could not start: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("notify command {program} ran longer than {timeout:?}; its process group was killed")]
    TimedOut { program: String, timeout: Duration },
    #[error("notify command {program} {status}{}", excerpt(.stderr))]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
}

fn excerpt(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl Arg {
    /// `{name}` is a placeholder, `{{` and `}}` are literal braces.
    pub(super) fn parse(text: &str) -> Result<Arg, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(position) = rest.find(['{', '}']) {
            literal.push_str(&rest[..position]);
            let tail = &rest[position..];
            if let Some(after) = tail.strip_prefix("{{") {
                literal.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                literal.push('}');
                rest = after;
            } else if let Some(after) = tail.strip_prefix('{') {
                let close = after
                    .find('}')
                    .ok_or_else(|| format!("unclosed {{ in `{text}`"))?;
                let name = &after[..close];
                let known = PLACEHOLDERS
                    .iter()
                    .find(|known| **known == name)
                    .ok_or_else(|| {
                        format!(
                            "unknown placeholder {{{name}}}; use {}",
                            PLACEHOLDERS.map(|name| format!("{{{name}}}")).join(", ")
                        )
                    })?;
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Value(known));
                rest = &after[close + 1..];
            } else {
                return Err(format!("unopened }} in `{text}`; write }}}} for a brace"));
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Arg(pieces))
    }

    pub(super) fn render(&self, values: &Values<'_>) -> String {
        self.0
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.as_str(),
                Piece::Value(name) => values.get(name),
            })
            .collect()
    }
}

impl Notify {
    /// Runs the command in `workspace` and waits at most its timeout.
    /// Success is exit status 0. On timeout (or when the job is dropped,
    /// e.g. at shutdown) the whole process group is killed; after a normal
    /// exit nothing is killed, so a command may leave a session running.
    pub(super) async fn run(
        &self,
        workspace: &Path,
        values: &Values<'_>,
    ) -> Result<(), NotifyError> {
        let argv: Vec<String> = self.args.iter().map(|arg| arg.render(values)).collect();
        let program = argv[0].clone();
        let mut command = Command::new(&program);
        command
            .args(&argv[1..])
            .current_dir(workspace)
            .env_clear()
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .envs(
                values.pairs.iter().map(|(name, value)| {
                    (format!("TIDEGATE_{}", name.to_ascii_uppercase()), *value)
                }),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| NotifyError::Spawn {
            program: program.clone(),
            source,
        })?;
        let group = ProcessGroup(child.id());
        let mut stderr = child.stderr.take();
        let reader = tokio::spawn(async move {
            let mut text = Vec::new();
            if let Some(stderr) = stderr.as_mut() {
                // Read on past the excerpt so a chatty command never blocks.
                let mut buffer = [0_u8; 4096];
                while let Ok(read) = stderr.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    let room = STDERR_EXCERPT.saturating_sub(text.len());
                    text.extend_from_slice(&buffer[..read.min(room)]);
                }
            }
            text
        });
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(source)) => return Err(NotifyError::Spawn { program, source }),
            Err(_) => {
                drop(group);
                // The group is killed; the child too, should that fail.
                drop(child.start_kill());
                drop(child.wait().await);
                reader.abort();
                return Err(NotifyError::TimedOut {
                    program,
                    timeout: self.timeout,
                });
            }
        };
        group.disarm();
        if status.success() {
            reader.abort();
            return Ok(());
        }
        let stderr = match tokio::time::timeout(STDERR_GRACE, reader).await {
            Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim().to_owned(),
            _ => String::new(),
        };
        Err(NotifyError::Failed {
            program,
            status: describe(status),
            stderr,
        })
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended with {status}"),
    }
}

/// Kills the command's process group when dropped, unless disarmed after
/// the command exited on its own.
struct ProcessGroup(Option<u32>);

impl ProcessGroup {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let Some(pid) = self.0.and_then(|pid| libc::pid_t::try_from(pid).ok()) else {
            return;
        };
        // The child leads its own group (`process_group(0)`): its id is
        // the group's. SAFETY: killpg only sends a signal; std and tokio
        // have no safe way to signal a group.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests;
