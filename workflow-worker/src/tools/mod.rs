//! The tools a step can use, behind one `run`: arguments arrive rendered
//! and are read into each tool's type (`workflows::args`). Also which
//! tools a resumed run may repeat after a crash interrupted them.

pub mod files;
pub mod http;
pub mod memory;
pub mod publish;
pub mod shell;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use workflows::Tool;
use workflows::args::{self, HttpArgs, ShellArgs, WriteFileArgs};

use crate::config::Settings;
use crate::notify::{About, Notifier};

/// What a step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub text: String,
    pub exit_code: Option<i32>,
    pub http_status: Option<u16>,
}

impl Output {
    pub fn text(text: impl Into<String>) -> Output {
        Output {
            text: text.into(),
            exit_code: None,
            http_status: None,
        }
    }
}

/// Why a step failed, with whatever output it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub output: Option<String>,
    pub exit_code: Option<i32>,
    pub http_status: Option<u16>,
}

impl Failure {
    pub fn new(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            output: None,
            exit_code: None,
            http_status: None,
        }
    }
}

/// Which run and step a tool works for.
#[derive(Debug, Clone, Copy)]
pub struct StepIdentity<'a> {
    pub run_id: &'a str,
    pub workflow: &'a str,
    pub step_index: usize,
    /// The step may have run before a crash (it was started, never finished).
    pub resumed: bool,
}

/// Every tool, with what it needs.
pub struct Tools {
    pub settings: Arc<Settings>,
    pub http: reqwest::Client,
    pub nats: async_nats::Client,
    pub notifier: Arc<Notifier>,
}

impl Tools {
    /// Runs `tool` with rendered `args`, within `timeout`.
    pub async fn run(
        &self,
        tool: Tool,
        args: &Value,
        timeout: Duration,
        identity: &StepIdentity<'_>,
    ) -> Result<Output, Failure> {
        let settings = &self.settings;
        let max_output = settings.max_output;
        let read = |why: String| Failure::new(format!("arguments: {why}"));
        match tool {
            Tool::ShellExec => {
                let shell: ShellArgs = args::read(args).map_err(read)?;
                shell::run(&settings.shell, shell, timeout, max_output).await
            }
            Tool::HttpRequest => {
                let http: HttpArgs = args::read(args).map_err(read)?;
                http::run(&self.http, http, timeout, settings.max_response, max_output).await
            }
            Tool::MemoryStore => {
                let memory = args::read(args).map_err(read)?;
                let file = settings.memory_file.clone();
                let resumed = identity.resumed;
                blocking(timeout, move || memory::store(&file, &memory, resumed)).await
            }
            Tool::ReadFile => {
                let file = args::read(args).map_err(read)?;
                let (settings, limit) = (settings.clone(), settings.max_read);
                blocking(timeout, move || files::read(&settings.roots, &file, limit)).await
            }
            Tool::WriteFile => {
                let file: WriteFileArgs = args::read(args).map_err(read)?;
                let settings = settings.clone();
                blocking(timeout, move || files::write(&settings.roots, &file)).await
            }
            Tool::Publish => {
                let publish = args::read(args).map_err(read)?;
                publish::run(
                    &self.nats,
                    &settings.publish_prefix,
                    publish,
                    identity,
                    timeout,
                )
                .await
            }
            Tool::Notify => {
                let notify: args::NotifyArgs = args::read(args).map_err(read)?;
                let about = About {
                    workflow: identity.workflow,
                    run_id: identity.run_id,
                    status: "running",
                };
                match tokio::time::timeout(
                    timeout,
                    self.notifier.send(&notify.message, &notify.channels, about),
                )
                .await
                {
                    Err(_) => Err(Failure::new("timed out notifying")),
                    Ok(Err(why)) => Err(Failure::new(why)),
                    Ok(Ok(0)) => Err(Failure::new(
                        "no notification channel is configured ([[workflow.notify]])",
                    )),
                    Ok(Ok(count)) => Ok(Output::text(format!("sent to {count} channel(s)"))),
                }
            }
        }
    }
}

/// Whether a step that was started but never finished (the worker died)
/// may run again: only when repeating it is harmless. Others are reported
/// failed as interrupted, never repeated.
pub fn may_repeat(tool: Tool, args: &Value) -> bool {
    match tool {
        Tool::ReadFile | Tool::Publish => true,
        // It checks whether the fact is already there (`resumed`).
        Tool::MemoryStore => true,
        Tool::WriteFile => args::read::<WriteFileArgs>(args).is_ok_and(|write| !write.append),
        Tool::HttpRequest => {
            args::read::<HttpArgs>(args).is_ok_and(|http| http::is_idempotent(&http))
        }
        Tool::ShellExec => args::read::<ShellArgs>(args).is_ok_and(|shell| shell.idempotent),
        Tool::Notify => false,
    }
}

/// Cuts `text` to at most `limit` bytes (on a character boundary), saying so.
pub fn bound(mut text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = text.len() - cut;
    text.truncate(cut);
    text.push_str(&format!("\n…[{dropped} more bytes]"));
    text
}

/// Runs file work off the async threads, within the step's timeout.
async fn blocking(
    timeout: Duration,
    work: impl FnOnce() -> Result<Output, Failure> + Send + 'static,
) -> Result<Output, Failure> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(work)).await {
        Err(_) => Err(Failure::new("timed out")),
        Ok(Err(error)) => Err(Failure::new(format!("the tool panicked: {error}"))),
        Ok(Ok(result)) => result,
    }
}
