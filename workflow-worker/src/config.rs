//! `[workflow]` in the worker's configuration: where the workflows are,
//! what each tool may touch, notification channels, approval expiry.
//! Parsed once into `Settings`; every problem is reported at once.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use broker::settings::{SecretSource, parse_duration, parse_size};
use serde::Deserialize;
use verify::Secret;

use crate::notify::{Channel, RawChannel};

/// `[workflow]` as written.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowConfig {
    /// The folder of workflow files (the ingress's route reads the same).
    pub folder: String,
    /// Step timeout when a step sets none.
    pub step_timeout: String,
    /// Longest output kept per step in the run record.
    pub max_output: String,
    /// How long an approval may wait before the run is cancelled.
    pub approval_ttl: String,
    /// How often pending approvals are checked for expiry.
    pub sweep_interval: String,
    /// How long runs are kept in `tidegate_workflow_runs`.
    pub runs_max_age: String,
    /// How long a worker's claim on a running step holds without renewal
    /// (renewed every third); after a crash, another replica takes the run
    /// over once it lapses.
    pub lease: String,
    /// Decisions handled at once by this process.
    pub control_concurrency: usize,
    pub shell: RawShell,
    pub memory: RawMemory,
    pub files: RawFiles,
    pub http: RawHttp,
    pub publish: RawPublish,
    /// Values templates may use as `{{ secrets.NAME }}`; removed from
    /// every stored output.
    pub secrets: BTreeMap<String, SecretSource>,
    pub notify: Vec<RawChannel>,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        WorkflowConfig {
            folder: "data/workflows".into(),
            step_timeout: "60s".into(),
            max_output: "16KiB".into(),
            approval_ttl: "24h".into(),
            sweep_interval: "5s".into(),
            runs_max_age: "30d".into(),
            lease: "15s".into(),
            control_concurrency: 4,
            shell: RawShell::default(),
            memory: RawMemory::default(),
            files: RawFiles::default(),
            http: RawHttp::default(),
            publish: RawPublish::default(),
            secrets: BTreeMap::new(),
            notify: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawShell {
    /// Working directory of shell steps.
    pub cwd: Option<String>,
    /// Variables of the worker's environment passed to shell steps (the
    /// rest, secrets included, is not).
    pub pass_env: Vec<String>,
    /// Fixed variables for every shell step.
    pub env: BTreeMap<String, String>,
}

impl Default for RawShell {
    fn default() -> Self {
        RawShell {
            cwd: None,
            pass_env: ["PATH", "HOME", "LANG", "LC_ALL", "TZ"]
                .map(str::to_owned)
                .to_vec(),
            env: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMemory {
    /// The Markdown memory file `memory_store` appends to.
    pub file: String,
}

impl Default for RawMemory {
    fn default() -> Self {
        RawMemory {
            file: "data/memory.md".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFiles {
    /// Folders `read_file` and `write_file` may touch (created if
    /// missing); relative paths in steps are under the first.
    pub roots: Vec<String>,
    /// Largest file `read_file` reads.
    pub max_read: String,
}

impl Default for RawFiles {
    fn default() -> Self {
        RawFiles {
            roots: vec!["data/files".into()],
            max_read: "1MiB".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHttp {
    /// Largest response body read.
    pub max_response: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            max_response: "1MiB".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPublish {
    /// Every `publish` step's subject is under this prefix.
    pub prefix: String,
}

impl Default for RawPublish {
    fn default() -> Self {
        RawPublish {
            prefix: "tidegate.workflow.events".into(),
        }
    }
}

/// `[workflow]`, validated.
#[derive(Debug)]
pub struct Settings {
    pub folder: PathBuf,
    pub step_timeout: Duration,
    pub max_output: usize,
    pub approval_ttl: Duration,
    pub sweep_interval: Duration,
    pub runs_max_age: Duration,
    pub lease: Duration,
    pub control_concurrency: usize,
    pub shell: ShellSettings,
    pub memory_file: PathBuf,
    /// Canonical folders.
    pub roots: Vec<PathBuf>,
    pub max_read: u64,
    pub max_response: u64,
    pub publish_prefix: String,
    pub secrets: BTreeMap<String, Secret>,
}

#[derive(Debug)]
pub struct ShellSettings {
    pub cwd: Option<PathBuf>,
    /// The environment every shell step starts from.
    pub env: BTreeMap<String, String>,
}

impl WorkflowConfig {
    /// Validates, resolving secrets from `env` and creating file roots;
    /// returns the settings and the notification channels.
    pub fn compile(
        self,
        env: &HashMap<String, String>,
    ) -> anyhow::Result<(Settings, Vec<Channel>)> {
        let mut problems = Vec::new();
        let mut duration = |key: &str, text: &str, fallback: u64| match parse_duration(text) {
            Ok(duration) if !duration.is_zero() => duration,
            Ok(_) => {
                problems.push(format!("workflow.{key}: must be more than 0"));
                Duration::from_secs(fallback)
            }
            Err(why) => {
                problems.push(format!("workflow.{key}: {why}"));
                Duration::from_secs(fallback)
            }
        };
        let step_timeout = duration("step_timeout", &self.step_timeout, 60);
        let approval_ttl = duration("approval_ttl", &self.approval_ttl, 86_400);
        let sweep_interval = duration("sweep_interval", &self.sweep_interval, 5);
        let runs_max_age = duration("runs_max_age", &self.runs_max_age, 30 * 86_400);
        let lease = duration("lease", &self.lease, 15);
        let mut size = |key: &str, text: &str, fallback: u64| match parse_size(text) {
            Ok(Some(size)) if size > 0 => size,
            Ok(_) => {
                problems.push(format!("workflow.{key}: must be a finite size above 0"));
                fallback
            }
            Err(why) => {
                problems.push(format!("workflow.{key}: {why}"));
                fallback
            }
        };
        let max_output = size("max_output", &self.max_output, 16 << 10);
        let max_read = size("files.max_read", &self.files.max_read, 1 << 20);
        let max_response = size("http.max_response", &self.http.max_response, 1 << 20);
        if max_output > 256 << 10 {
            problems.push(
                "workflow.max_output: at most 256KiB (every step's output shares one record)"
                    .into(),
            );
        }
        if self.control_concurrency == 0 {
            problems.push("workflow.control_concurrency: must be at least 1".into());
        }
        let mut roots = Vec::new();
        for root in &self.files.roots {
            let created = std::fs::create_dir_all(root).and_then(|()| std::fs::canonicalize(root));
            match created {
                Ok(path) => roots.push(path),
                Err(error) => problems.push(format!("workflow.files.roots: `{root}`: {error}")),
            }
        }
        let prefix = self.publish.prefix.trim_end_matches('.').to_owned();
        if prefix.is_empty() || !prefix.split('.').all(schemas::streams::is_subject_token) {
            problems.push(format!(
                "workflow.publish.prefix: `{prefix}` must be tokens from A-Z a-z 0-9 - _ ~ @ + = : separated by ."
            ));
        }
        let mut secrets = BTreeMap::new();
        for (name, source) in &self.secrets {
            match source.require(env) {
                Ok(secret) => {
                    secrets.insert(name.clone(), secret);
                }
                Err(why) => problems.push(format!("workflow.secrets.{name}: {why}")),
            }
        }
        let mut channels = Vec::new();
        for (index, raw) in self.notify.into_iter().enumerate() {
            match raw.compile(index, env) {
                Ok(channel) => channels.push(channel),
                Err(why) => problems.push(why),
            }
        }
        let mut names = std::collections::HashSet::new();
        for channel in &channels {
            if !names.insert(channel.name.clone()) {
                problems.push(format!(
                    "workflow.notify: two channels are named `{}`",
                    channel.name
                ));
            }
        }
        let mut shell_env = BTreeMap::new();
        for name in &self.shell.pass_env {
            if let Some(value) = env.get(name) {
                shell_env.insert(name.clone(), value.clone());
            }
        }
        shell_env.extend(self.shell.env);
        anyhow::ensure!(
            problems.is_empty(),
            "invalid configuration:\n  - {}",
            problems.join("\n  - ")
        );
        let settings = Settings {
            folder: PathBuf::from(self.folder),
            step_timeout,
            max_output: usize::try_from(max_output).unwrap_or(usize::MAX),
            approval_ttl,
            sweep_interval,
            runs_max_age,
            lease,
            control_concurrency: self.control_concurrency,
            shell: ShellSettings {
                cwd: self.shell.cwd.map(PathBuf::from),
                env: shell_env,
            },
            memory_file: PathBuf::from(self.memory.file),
            roots,
            max_read,
            max_response,
            publish_prefix: prefix,
            secrets,
        };
        Ok((settings, channels))
    }
}
