//! The `git` CLI, as the sync uses it: a bare mirror per repository, fetch,
//! ancestry checks, tree listings and a batch blob reader. Every call has a
//! timeout and kills git when it runs out. Credentials reach git through
//! its environment only (`http.<url>.extraHeader`), never argv or disk.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use verify::Secret;

/// Longest stderr excerpt kept in an error.
const STDERR_EXCERPT: usize = 400;

/// How git is run: its timeout and the protocols a clone URL may use.
#[derive(Debug, Clone)]
pub(super) struct Git {
    pub(super) timeout: Duration,
    /// `GIT_ALLOW_PROTOCOL`, e.g. `https` or `https:file`.
    pub(super) allow_protocol: String,
}

/// Why a git command did not give an answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum GitError {
    #[error("git {what}: cannot run git: {source}")]
    Spawn {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("git {what}: timed out after {timeout:?}")]
    TimedOut {
        what: &'static str,
        timeout: Duration,
    },
    #[error("git {what}: exited with {status}: {stderr}")]
    Failed {
        what: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("git {what}: unexpected output: {detail}")]
    Output { what: &'static str, detail: String },
}

/// HTTP credentials for a fetch: an `Authorization` header that git sends
/// only to URLs under one base (`http.<base>.extraHeader`, which also
/// keeps it off redirects elsewhere), given in the child's environment.
pub(super) struct GitAuth {
    /// `http.<base>.extraHeader`.
    key: String,
    /// `Authorization: Basic base64(x-access-token:<token>)`.
    header: Secret,
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitAuth")
            .field("key", &self.key)
            .field("header", &"***")
            .finish()
    }
}

impl GitAuth {
    /// Credentials for an installation `token` under `base` (ending in `/`).
    pub(super) fn new(base: &str, token: &Secret) -> GitAuth {
        let mut basic = b"x-access-token:".to_vec();
        basic.extend_from_slice(token.expose());
        let header = format!(
            "Authorization: Basic {}",
            base64::engine::general_purpose::STANDARD.encode(&basic)
        );
        GitAuth {
            key: format!("http.{base}.extraHeader"),
            header: Secret::new(header).expect("the header is not empty"),
        }
    }

    fn apply(&self, command: &mut Command) {
        // GIT_CONFIG_COUNT replaces any the worker was started with.
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", &self.key)
            .env(
                "GIT_CONFIG_VALUE_0",
                String::from_utf8_lossy(self.header.expose()).as_ref(),
            );
    }
}

impl GitError {
    /// Whether the remote refused the credentials (or asked for some).
    pub(super) fn is_auth_failure(&self) -> bool {
        matches!(self, GitError::Failed { stderr, .. } if [
            "Authentication failed",
            "could not read Username",
            "terminal prompts disabled",
            "returned error: 401",
            "returned error: 403",
        ]
        .iter()
        .any(|sign| stderr.contains(sign)))
    }

    /// Whether a fetch failed because the remote has no such ref (the
    /// branch was deleted since the push).
    pub(super) fn is_missing_remote_ref(&self) -> bool {
        matches!(self, GitError::Failed { stderr, .. } if stderr.contains("couldn't find remote ref"))
    }
}

/// One `git ls-tree` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TreeEntry {
    /// `100644`, `100755`, `120000` (symlink) or `160000` (submodule).
    pub(super) mode: String,
    pub(super) object: String,
    /// The path as git stores it: `/`-separated bytes.
    pub(super) path: Vec<u8>,
}

impl Git {
    /// `git init --bare` at `mirror` unless it is a repository already.
    pub(super) async fn init_mirror(&self, mirror: &Path) -> Result<(), GitError> {
        if tokio::fs::try_exists(mirror.join("HEAD"))
            .await
            .unwrap_or(false)
        {
            return Ok(());
        }
        let mut command = self.command();
        command.args(["init", "--bare", "--quiet"]).arg(mirror);
        self.checked(command, "init").await.map(drop)
    }

    /// Fetches `git_ref` from `url` into the same ref of `mirror`, with
    /// `auth` when given.
    pub(super) async fn fetch(
        &self,
        mirror: &Path,
        url: &str,
        git_ref: &str,
        auth: Option<&GitAuth>,
    ) -> Result<(), GitError> {
        let mut command = self.in_repository(mirror);
        if let Some(auth) = auth {
            auth.apply(&mut command);
        }
        command
            .args(["fetch", "--no-tags", "--quiet"])
            .arg(url)
            .arg(format!("+{git_ref}:{git_ref}"));
        self.checked(command, "fetch").await.map(drop)
    }

    /// Whether `sha` is a commit in `repository`.
    pub(super) async fn has_commit(&self, repository: &Path, sha: &str) -> Result<bool, GitError> {
        let mut command = self.in_repository(repository);
        command.args(["cat-file", "-e", &format!("{sha}^{{commit}}")]);
        Ok(self.output(command, "cat-file -e").await?.status.success())
    }

    /// The commit `git_ref` points at in `repository`, if it exists.
    pub(super) async fn resolve(
        &self,
        repository: &Path,
        git_ref: &str,
    ) -> Result<Option<String>, GitError> {
        let mut command = self.in_repository(repository);
        command.args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{git_ref}^{{commit}}"),
        ]);
        let output = self.output(command, "rev-parse").await?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned()))
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors; `None`
    /// when git cannot tell (e.g. a commit is missing).
    pub(super) async fn is_ancestor(
        &self,
        repository: &Path,
        ancestor: &str,
        descendant: &str,
    ) -> Result<Option<bool>, GitError> {
        let mut command = self.in_repository(repository);
        command.args(["merge-base", "--is-ancestor", ancestor, descendant]);
        let output = self.output(command, "merge-base").await?;
        Ok(match output.status.code() {
            Some(0) => Some(true),
            Some(1) => Some(false),
            _ => None,
        })
    }

    /// Every file of `commit`'s tree (recursively), in git's order.
    pub(super) async fn ls_tree(
        &self,
        repository: &Path,
        commit: &str,
    ) -> Result<Vec<TreeEntry>, GitError> {
        let mut command = self.in_repository(repository);
        command.args(["ls-tree", "-r", "-z", "--full-tree", commit]);
        let output = self.checked(command, "ls-tree").await?;
        parse_ls_tree(&output.stdout).map_err(|detail| GitError::Output {
            what: "ls-tree",
            detail,
        })
    }

    /// A `git cat-file --batch` process reading blobs of `repository`.
    pub(super) fn blobs(&self, repository: &Path) -> Result<BlobReader, GitError> {
        let mut command = self.in_repository(repository);
        command
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Nothing reads it: a full pipe must not stall git.
            .stderr(Stdio::null());
        let mut child = command.spawn().map_err(|source| GitError::Spawn {
            what: "cat-file --batch",
            source,
        })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        Ok(BlobReader {
            _child: child,
            stdin,
            stdout: BufReader::new(stdout),
            timeout: self.timeout,
        })
    }

    /// git with a fixed environment: no prompts, only the allowed
    /// protocols, untranslated messages, no traces (they could print
    /// headers); killed when dropped (timeouts).
    fn command(&self) -> Command {
        let mut command = Command::new("git");
        for trace in [
            "GIT_TRACE",
            "GIT_TRACE_CURL",
            "GIT_TRACE_CURL_NO_DATA",
            "GIT_TRACE_PACKET",
            "GIT_CURL_VERBOSE",
        ] {
            command.env_remove(trace);
        }
        command
            .env("GIT_TRACE_REDACT", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ALLOW_PROTOCOL", &self.allow_protocol)
            .env("LC_ALL", "C")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    fn in_repository(&self, repository: &Path) -> Command {
        let mut command = self.command();
        command.arg("--git-dir").arg(repository);
        command
    }

    async fn output(&self, mut command: Command, what: &'static str) -> Result<Output, GitError> {
        let child = command
            .spawn()
            .map_err(|source| GitError::Spawn { what, source })?;
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(source)) => Err(GitError::Spawn { what, source }),
            Err(_) => Err(GitError::TimedOut {
                what,
                timeout: self.timeout,
            }),
        }
    }

    async fn checked(&self, command: Command, what: &'static str) -> Result<Output, GitError> {
        let output = self.output(command, what).await?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(GitError::Failed {
                what,
                status: output.status,
                stderr: excerpt(&output.stderr),
            })
        }
    }
}

/// Reads blobs one at a time through a single `git cat-file --batch`.
pub(super) struct BlobReader {
    /// Killed on drop.
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    timeout: Duration,
}

impl BlobReader {
    /// The content of blob `object`.
    pub(super) async fn read(&mut self, object: &str) -> Result<Vec<u8>, GitError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.read_inner(object)).await {
            Ok(result) => result,
            Err(_) => Err(GitError::TimedOut {
                what: "cat-file --batch",
                timeout,
            }),
        }
    }

    async fn read_inner(&mut self, object: &str) -> Result<Vec<u8>, GitError> {
        let io = |source| GitError::Spawn {
            what: "cat-file --batch",
            source,
        };
        let output = |detail: String| GitError::Output {
            what: "cat-file --batch",
            detail,
        };
        self.stdin
            .write_all(format!("{object}\n").as_bytes())
            .await
            .map_err(io)?;
        self.stdin.flush().await.map_err(io)?;
        let mut header = String::new();
        self.stdout.read_line(&mut header).await.map_err(io)?;
        // `<object> blob <size>`, or `<object> missing`.
        let mut fields = header.split_whitespace();
        let (Some(_), Some(kind), Some(size)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(output(format!("for {object}: `{}`", header.trim_end())));
        };
        if kind != "blob" {
            return Err(output(format!("{object} is a {kind}, not a blob")));
        }
        let size: usize = size
            .parse()
            .map_err(|_| output(format!("size `{size}` for {object}")))?;
        // The content, then a newline.
        let mut content = vec![0; size + 1];
        self.stdout.read_exact(&mut content).await.map_err(io)?;
        content.pop();
        Ok(content)
    }
}

/// `<mode> SP <type> SP <object> TAB <path> NUL`, repeated.
pub(super) fn parse_ls_tree(stdout: &[u8]) -> Result<Vec<TreeEntry>, String> {
    let mut entries = Vec::new();
    for record in stdout
        .split(|&b| b == 0)
        .filter(|record| !record.is_empty())
    {
        let tab = record
            .iter()
            .position(|&b| b == b'\t')
            .ok_or_else(|| format!("no tab in `{}`", String::from_utf8_lossy(record)))?;
        let meta = std::str::from_utf8(&record[..tab]).map_err(|error| error.to_string())?;
        let mut fields = meta.split(' ');
        let (Some(mode), Some(_kind), Some(object), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("unexpected entry `{meta}`"));
        };
        entries.push(TreeEntry {
            mode: mode.to_owned(),
            object: object.to_owned(),
            path: record[tab + 1..].to_vec(),
        });
    }
    Ok(entries)
}

/// The end of git's stderr, where the reason usually is, on one line.
fn excerpt(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().rev().nth(STDERR_EXCERPT) {
        Some((start, _)) => format!("…{}", &text[start..]),
        None => text,
    }
}

#[cfg(test)]
mod tests;
