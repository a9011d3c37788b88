//! Each tool's arguments as types: checked when a workflow file loads
//! (templates are strings, so the shape is known before rendering) and
//! read again by the worker after rendering. One definition for both.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::definition::Tool;

/// `shell_exec`: the seed's `command` through `sh -c`, or `argv` run
/// without a shell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellArgs {
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    /// Working directory (default: the worker's `shell.cwd`).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Extra environment variables for the process: the safe way to hand
    /// payload values to a `command`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Text written to the process's standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Running it twice does no harm: after a crash during this step, the
    /// resumed run runs it again instead of reporting it interrupted.
    #[serde(default)]
    pub idempotent: bool,
}

/// `memory_store`: append `fact` under `## section` of the memory file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryArgs {
    pub section: String,
    pub fact: String,
}

/// `http_request`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpArgs {
    /// GET unless set.
    #[serde(default)]
    pub method: Option<String>,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A string is sent as is; a mapping or list as JSON.
    #[serde(default)]
    pub body: Option<Value>,
}

/// `read_file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadFileArgs {
    pub path: String,
}

/// `write_file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteFileArgs {
    pub path: String,
    pub content: String,
    /// Append instead of replacing the file.
    #[serde(default)]
    pub append: bool,
}

/// `publish`: a message on `<the worker's publish prefix>.<subject>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishArgs {
    /// One or more tokens separated by `.`.
    pub subject: String,
    /// A string is sent as is; anything else as JSON.
    #[serde(default)]
    pub data: Option<Value>,
}

/// `notify`: a message to the worker's notification channels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyArgs {
    pub message: String,
    /// Channel names; every channel when empty.
    #[serde(default)]
    pub channels: Vec<String>,
}

/// Reads a step's (rendered or raw) arguments as `T`.
pub fn read<T: DeserializeOwned>(args: &Value) -> Result<T, String> {
    serde_json::from_value(args.clone()).map_err(|error| error.to_string())
}

/// Checks a step's arguments against its tool's shape.
pub fn check(tool: Tool, args: &Value) -> Result<(), String> {
    match tool {
        Tool::ShellExec => {
            let shell: ShellArgs = read(args)?;
            match (&shell.command, &shell.argv) {
                (Some(command), None) if !command.trim().is_empty() => Ok(()),
                (None, Some(argv)) if argv.first().is_some_and(|program| !program.is_empty()) => {
                    Ok(())
                }
                (Some(_), Some(_)) => Err("set command or argv, not both".into()),
                _ => Err("set command (run by sh -c) or argv (a non-empty list)".into()),
            }
        }
        Tool::MemoryStore => read::<MemoryArgs>(args).map(drop),
        Tool::HttpRequest => {
            let http: HttpArgs = read(args)?;
            match &http.method {
                Some(method) if !method.bytes().all(|byte| byte.is_ascii_alphabetic()) => {
                    Err(format!("method `{method}` is not an HTTP method"))
                }
                _ => Ok(()),
            }
        }
        Tool::ReadFile => read::<ReadFileArgs>(args).map(drop),
        Tool::WriteFile => read::<WriteFileArgs>(args).map(drop),
        Tool::Publish => read::<PublishArgs>(args).map(drop),
        Tool::Notify => read::<NotifyArgs>(args).map(drop),
    }
}
