//! A workflow file parsed and validated once: the seed's fields (name,
//! description, trigger, enabled, steps with tool, args, requires_approval)
//! plus ours (mode, timeout, step timeout, continue_on_error). Everything
//! downstream trusts a `Workflow`.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::args;

/// Largest workflow file read.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;
/// Most steps in one workflow (each step's output is kept in the run
/// record, which must fit in one message).
pub const MAX_STEPS: usize = 50;
/// How long a synchronous request waits when the workflow sets no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest synchronous wait a workflow may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// One workflow, as its file describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    /// The URL path segment: `POST /webhooks/<name>`; equals the file name.
    pub name: String,
    pub description: Option<String>,
    /// Informational (`webhook`); any trigger runs when the webhook is called.
    pub trigger: String,
    /// A disabled workflow answers 409.
    pub enabled: bool,
    pub mode: Mode,
    /// Sync mode: how long the request waits for the run's result.
    pub timeout: Duration,
    pub steps: Vec<Step>,
}

/// How the ingress answers a webhook for this workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Store the delivery, wait for the run (at most `timeout`), answer 200
    /// with every step's result; 504 with the run id past the timeout.
    Sync,
    /// Store the delivery and answer 202 with the run id at once.
    Queued,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Queued => "queued",
        }
    }
}

/// One step: a tool and its arguments (templates in string values).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub tool: Tool,
    /// A JSON object; its string values are templates rendered when the
    /// step runs.
    pub args: Value,
    /// The run stops before this step until someone approves.
    pub requires_approval: bool,
    /// Longest run of the step; the worker's default when unset.
    pub timeout: Option<Duration>,
    /// A failure of this step is reported and the run goes on.
    pub continue_on_error: bool,
}

/// The closed set of tools a step can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    ShellExec,
    MemoryStore,
    HttpRequest,
    ReadFile,
    WriteFile,
    Publish,
    Notify,
}

impl Tool {
    pub const ALL: [Tool; 7] = [
        Tool::ShellExec,
        Tool::MemoryStore,
        Tool::HttpRequest,
        Tool::ReadFile,
        Tool::WriteFile,
        Tool::Publish,
        Tool::Notify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tool::ShellExec => "shell_exec",
            Tool::MemoryStore => "memory_store",
            Tool::HttpRequest => "http_request",
            Tool::ReadFile => "read_file",
            Tool::WriteFile => "write_file",
            Tool::Publish => "publish",
            Tool::Notify => "notify",
        }
    }

    pub fn parse(name: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|tool| tool.as_str() == name)
    }
}

/// Why a file is not a valid workflow: every problem, each naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct DefinitionError {
    pub problems: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    trigger: Option<String>,
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    timeout: Option<RawDuration>,
    steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    tool: String,
    #[serde(default)]
    args: Option<serde_yaml::Value>,
    #[serde(default)]
    requires_approval: bool,
    #[serde(default)]
    timeout: Option<RawDuration>,
    #[serde(default)]
    continue_on_error: bool,
}

/// `30s`, `5m`, or a number of seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl RawDuration {
    fn parse(&self) -> Result<Duration, String> {
        match self {
            RawDuration::Seconds(seconds) => Ok(Duration::from_secs(*seconds)),
            RawDuration::Text(text) => humantime::parse_duration(text.trim())
                .map_err(|_| format!("`{text}` is not a duration such as 30s or 5m")),
        }
    }
}

fn default_true() -> bool {
    true
}

/// Whether `name` can name a workflow or a step: 1 to 64 characters from
/// `A-Z a-z 0-9 _ -`, starting with a letter or digit (it becomes a URL
/// path segment and a subject token).
pub fn is_valid_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|first| first.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

impl Workflow {
    /// Parses a workflow file's text. `expected_name` is the file name
    /// without extension: the seed maps `/webhooks/{name}` to
    /// `{name}.yaml`, so the two must agree.
    pub fn parse(text: &str, expected_name: Option<&str>) -> Result<Workflow, DefinitionError> {
        let raw: RawWorkflow = serde_yaml::from_str(text).map_err(|error| DefinitionError {
            problems: vec![error.to_string()],
        })?;
        let mut problems = Vec::new();
        if !is_valid_name(&raw.name) {
            problems.push(format!(
                "name: `{}` must be 1-64 characters from A-Z a-z 0-9 _ -, starting with a letter or digit",
                raw.name
            ));
        }
        if let Some(expected) = expected_name
            && expected != raw.name
        {
            problems.push(format!(
                "name: `{}` differs from the file name `{expected}` (POST /webhooks/{{name}} reads {{name}}.yaml)",
                raw.name
            ));
        }
        let mode = match raw.mode.as_deref() {
            None | Some("sync") => Mode::Sync,
            Some("queued") => Mode::Queued,
            Some(other) => {
                problems.push(format!("mode: `{other}` is not sync or queued"));
                Mode::Sync
            }
        };
        let timeout = match raw.timeout.as_ref().map(RawDuration::parse) {
            None => DEFAULT_TIMEOUT,
            Some(Ok(timeout)) if timeout.is_zero() || timeout > MAX_TIMEOUT => {
                problems.push(format!(
                    "timeout: must be more than 0 and at most {}",
                    humantime::format_duration(MAX_TIMEOUT)
                ));
                DEFAULT_TIMEOUT
            }
            Some(Ok(timeout)) => timeout,
            Some(Err(why)) => {
                problems.push(format!("timeout: {why}"));
                DEFAULT_TIMEOUT
            }
        };
        if raw.steps.is_empty() {
            problems.push("steps: a workflow needs at least one step".into());
        }
        if raw.steps.len() > MAX_STEPS {
            problems.push(format!("steps: at most {MAX_STEPS} steps"));
        }
        let mut names = HashSet::new();
        let mut steps = Vec::new();
        for (index, step) in raw.steps.into_iter().enumerate() {
            let key = format!("steps[{index}] ({})", step.name);
            if !is_valid_name(&step.name) {
                problems.push(format!(
                    "{key}.name: must be 1-64 characters from A-Z a-z 0-9 _ -"
                ));
            }
            if !names.insert(step.name.clone()) {
                problems.push(format!("{key}.name: another step has this name"));
            }
            let Some(tool) = Tool::parse(&step.tool) else {
                let known: Vec<&str> = Tool::ALL.iter().map(|tool| tool.as_str()).collect();
                problems.push(format!(
                    "{key}.tool: `{}` is not a tool ({})",
                    step.tool,
                    known.join(", ")
                ));
                continue;
            };
            let args = match step.args {
                None | Some(serde_yaml::Value::Null) => Value::Object(Default::default()),
                Some(yaml) => match serde_json::to_value(&yaml) {
                    Ok(value @ Value::Object(_)) => value,
                    Ok(_) => {
                        problems.push(format!("{key}.args: must be a mapping"));
                        continue;
                    }
                    Err(error) => {
                        problems.push(format!("{key}.args: {error}"));
                        continue;
                    }
                },
            };
            if let Err(why) = args::check(tool, &args) {
                problems.push(format!("{key}.args: {why}"));
            }
            let timeout = match step.timeout.as_ref().map(RawDuration::parse).transpose() {
                Ok(Some(timeout)) if timeout.is_zero() => {
                    problems.push(format!("{key}.timeout: must be more than 0"));
                    None
                }
                Ok(timeout) => timeout,
                Err(why) => {
                    problems.push(format!("{key}.timeout: {why}"));
                    None
                }
            };
            steps.push(Step {
                name: step.name,
                tool,
                args,
                requires_approval: step.requires_approval,
                timeout,
                continue_on_error: step.continue_on_error,
            });
        }
        if !problems.is_empty() {
            return Err(DefinitionError { problems });
        }
        Ok(Workflow {
            name: raw.name,
            description: raw.description,
            trigger: raw.trigger.unwrap_or_else(|| "webhook".to_owned()),
            enabled: raw.enabled,
            mode,
            timeout,
            steps,
        })
    }
}

#[cfg(test)]
mod tests;
