//! `[inbox]` configuration, parsed once: for each agent id, its workspace
//! folder and the command that wakes it (an argv template, a timeout, and
//! the only environment variables it gets).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::notify::{Arg, Notify};
use crate::config::ConfigError;

/// Default for `inbox.notify_timeout` and each agent's `timeout`.
const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);
/// The notify command's `PATH` unless it declares one.
pub(super) const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// `[inbox]` in the worker's configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    /// Timeout of every notify command that sets none (default 60s).
    #[serde(default)]
    pub notify_timeout: Option<String>,
    /// Agent id → where its items go and how it is woken.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentConfig>,
}

/// `[inbox.agents.<agentId>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's workspace; items go to `<workspace>/inbox/webhooks/`.
    /// It must exist: a missing workspace dead-letters the delivery.
    pub workspace: PathBuf,
    /// argv of the command run after each file is written (the seed's
    /// `sessions_spawn`); placeholders `{agent}`, `{source}`, `{id}`,
    /// `{file}`, `{filename}`, `{inbox}`, `{workspace}`, `{received_at}`.
    /// No shell is involved. Without it, items are only written.
    #[serde(default)]
    pub notify: Option<Vec<String>>,
    /// Longest the command may run; then its process group is killed and
    /// the delivery retried.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Variables set for the command (values as written).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Variables copied from the worker's own environment (secrets from
    /// the unit's `EnvironmentFile`). Nothing else is inherited.
    #[serde(default)]
    pub pass_env: Vec<String>,
}

/// The parsed `[inbox]` section.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) agents: HashMap<String, Agent>,
}

/// One agent, validated.
#[derive(Debug)]
pub(super) struct Agent {
    pub(super) workspace: PathBuf,
    pub(super) notify: Option<Notify>,
}

impl Settings {
    /// Parses the section, reporting every bad key at once. `environment`
    /// is the worker's own (for `pass_env`).
    pub(super) fn parse(
        config: InboxConfig,
        environment: &HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let default_timeout = duration(
            "inbox.notify_timeout",
            config.notify_timeout.as_deref(),
            DEFAULT_NOTIFY_TIMEOUT,
            &mut problems,
        );
        if config.agents.is_empty() {
            problems.push("inbox.agents: map at least one agent, e.g. [inbox.agents.flickclaw] workspace = \"/srv/agents/flickclaw\"".to_owned());
        }
        let mut agents = HashMap::new();
        for (id, agent) in config.agents {
            let key = format!("inbox.agents.{id}");
            if !is_token(&id) {
                problems.push(format!(
                    "{key}: an agent id is 1-128 of A-Z a-z 0-9 - _ ~ @ + = :"
                ));
            }
            if !agent.workspace.is_absolute() {
                problems.push(format!("{key}.workspace: must be an absolute path"));
            }
            let timeout = duration(
                &format!("{key}.timeout"),
                agent.timeout.as_deref(),
                default_timeout,
                &mut problems,
            );
            let notify = match agent.notify {
                None => {
                    if !agent.env.is_empty() || !agent.pass_env.is_empty() {
                        problems.push(format!("{key}: env and pass_env need a notify command"));
                    }
                    None
                }
                Some(argv) => {
                    let env = environment_for(
                        &key,
                        agent.env,
                        &agent.pass_env,
                        environment,
                        &mut problems,
                    );
                    notify_for(&key, &argv, timeout, env, &mut problems)
                }
            };
            agents.insert(
                id,
                Agent {
                    workspace: agent.workspace,
                    notify,
                },
            );
        }
        if problems.is_empty() {
            Ok(Settings { agents })
        } else {
            Err(ConfigError { problems })
        }
    }
}

fn notify_for(
    key: &str,
    argv: &[String],
    timeout: Duration,
    env: Vec<(String, String)>,
    problems: &mut Vec<String>,
) -> Option<Notify> {
    if argv.is_empty() || argv[0].is_empty() {
        problems.push(format!("{key}.notify: name a program, e.g. [\"/usr/local/bin/notify\", \"{{agent}}\", \"{{file}}\"]"));
        return None;
    }
    let mut args = Vec::new();
    for (index, text) in argv.iter().enumerate() {
        match Arg::parse(text) {
            Ok(arg) => args.push(arg),
            Err(why) => problems.push(format!("{key}.notify[{index}]: {why}")),
        }
    }
    (args.len() == argv.len()).then_some(Notify { args, timeout, env })
}

/// `PATH` (unless declared), the declared values, then the passed ones.
fn environment_for(
    key: &str,
    declared: BTreeMap<String, String>,
    passed: &[String],
    environment: &HashMap<String, String>,
    problems: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".to_owned(), DEFAULT_PATH.to_owned());
    for (name, value) in declared {
        if !is_variable_name(&name) {
            problems.push(format!("{key}.env: `{name}` is not a variable name"));
        }
        env.insert(name, value);
    }
    for name in passed {
        if !is_variable_name(name) {
            problems.push(format!("{key}.pass_env: `{name}` is not a variable name"));
            continue;
        }
        match environment.get(name) {
            Some(value) => {
                env.insert(name.clone(), value.clone());
            }
            None => problems.push(format!(
                "{key}.pass_env: {name} is not set in the worker's environment"
            )),
        }
    }
    env.into_iter().collect()
}

fn duration(
    key: &str,
    text: Option<&str>,
    default: Duration,
    problems: &mut Vec<String>,
) -> Duration {
    match text.map(humantime::parse_duration) {
        None => default,
        Some(Ok(duration)) if duration >= Duration::from_millis(100) => duration,
        Some(_) => {
            problems.push(format!(
                "{key}: `{}` is not a duration of at least 100ms, such as 60s",
                text.unwrap_or_default()
            ));
            default
        }
    }
}

/// A subject token, as the ingress checks agent ids.
fn is_token(value: &str) -> bool {
    (1..=schemas::streams::MAX_TOKEN_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_~@+=:".contains(&byte))
}

fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str, environment: &[(&str, &str)]) -> Result<Settings, Vec<String>> {
        use figment::providers::Format as _;
        let config: InboxConfig = figment::Figment::from(figment::providers::Toml::string(toml))
            .extract()
            .expect("valid TOML for the section");
        let environment = environment
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Settings::parse(config, &environment).map_err(|error| error.problems)
    }

    #[test]
    fn agents_map_to_workspaces_and_commands() {
        let settings = parse(
            r#"
            notify_timeout = "10s"
            [agents.flickclaw]
            workspace = "/srv/agents/flickclaw"
            notify = ["/usr/local/bin/spawn", "--agent", "{agent}", "--file", "{file}"]
            env = { MODE = "isolated" }
            pass_env = ["SPAWN_TOKEN"]
            [agents.quiet]
            workspace = "/srv/agents/quiet"
            "#,
            &[("SPAWN_TOKEN", "t0k"), ("OTHER", "not passed")],
        )
        .expect("valid");
        let flickclaw = &settings.agents["flickclaw"];
        assert_eq!(flickclaw.workspace, PathBuf::from("/srv/agents/flickclaw"));
        let notify = flickclaw.notify.as_ref().expect("a notify command");
        assert_eq!(notify.timeout, Duration::from_secs(10));
        assert_eq!(
            notify.env,
            [
                ("MODE".to_owned(), "isolated".to_owned()),
                ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
                ("SPAWN_TOKEN".to_owned(), "t0k".to_owned()),
            ]
        );
        assert!(settings.agents["quiet"].notify.is_none());
    }

    #[test]
    fn every_problem_is_reported() {
        let problems = parse(
            r#"
            [agents."a.b"]
            workspace = "relative"
            notify = ["/bin/x", "{nope}"]
            timeout = "soon"
            pass_env = ["MISSING", "1BAD"]
            "#,
            &[],
        )
        .expect_err("invalid");
        let joined = problems.join("\n");
        for expected in [
            "inbox.agents.a.b: an agent id",
            "workspace: must be an absolute path",
            "timeout: `soon`",
            "notify[1]: unknown placeholder {nope}",
            "pass_env: MISSING is not set",
            "pass_env: `1BAD` is not a variable name",
        ] {
            assert!(
                joined.contains(expected),
                "{expected} missing from {joined}"
            );
        }
        assert!(parse("", &[]).is_err(), "no agents");
        assert!(
            parse("[agents.a]\nworkspace = \"/w\"\nnotify = []", &[]).is_err(),
            "empty argv"
        );
    }

    #[test]
    fn the_example_loads() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/inbox.toml");
        let figment = crate::config::figment(Some(&path));
        let (runtime, inbox) =
            crate::config::load::<InboxConfig>(&figment, "inbox", "inbox", &HashMap::new())
                .expect("the example is valid");
        assert_eq!(runtime.name, "inbox");
        assert_eq!(
            runtime.consumer.filter_subjects,
            ["tidegate.in.agent.flickclaw.>"]
        );
        let settings = Settings::parse(inbox, &HashMap::new()).expect("valid agents");
        let flickclaw = &settings.agents["flickclaw"];
        assert_eq!(flickclaw.workspace, PathBuf::from("/srv/agents/flickclaw"));
        assert!(flickclaw.notify.is_some());
    }
}
