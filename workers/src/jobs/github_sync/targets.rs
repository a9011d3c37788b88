//! `[github_sync]` configuration, parsed once into typed settings: the
//! mirrors' folder, git, the GitHub App, folder locks, and the targets of
//! the TOML file compiled for matching. Live targets from KV are compiled
//! the same way (`live_targets.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use broker::settings::SecretSource;
use schemas::SyncTarget;
use serde::Deserialize;

use super::app::{AppConfig, AppSettings};
use super::lease::LockSettings;
use crate::config::ConfigError;

/// Default for `github_sync.state_dir`.
pub const DEFAULT_STATE_DIR: &str = ".tidegate/github-sync";
/// Default for `github_sync.git_timeout`.
const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// `[github_sync]` in the worker's configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSyncConfig {
    /// Repository mirrors and per-target state (default
    /// `.tidegate/github-sync`).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Longest any one git command may run (default 10m).
    #[serde(default)]
    pub git_timeout: Option<String>,
    /// Protocols a clone URL may use (default `["https"]`); passed to git
    /// as `GIT_ALLOW_PROTOCOL`.
    #[serde(default)]
    pub protocols: Option<Vec<String>>,
    /// `[github_sync.app]`: fetch with GitHub App installation tokens.
    #[serde(default)]
    pub app: Option<AppConfig>,
    /// `[github_sync.lock]`: the folder lock's lease and wait.
    #[serde(default)]
    pub lock: LockConfig,
    /// `[[github_sync.targets]]`; more live in the KV bucket
    /// `tidegate_sync_targets`.
    #[serde(default)]
    pub targets: Vec<SyncTarget>,
}

/// `[github_sync.lock]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockConfig {
    /// Lease of a folder lock (default 30s), renewed every third of it
    /// while the sync runs; a crashed holder's lock expires after it.
    #[serde(default)]
    pub ttl: Option<String>,
    /// How long a sync waits for a folder another sync holds (default 2m)
    /// before it is retried later.
    #[serde(default)]
    pub wait: Option<String>,
}

/// The parsed `[github_sync]` section.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) state_dir: PathBuf,
    pub(super) git_timeout: Duration,
    /// `GIT_ALLOW_PROTOCOL`: allowed protocols joined by `:`.
    pub(super) protocols: Vec<String>,
    pub(super) app: Option<AppSettings>,
    pub(super) lock: LockSettings,
    /// The TOML file's targets, in order; they come before live ones.
    pub(super) targets: Vec<Arc<Target>>,
}

/// One sync target, validated and compiled for matching.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) id: String,
    pub(super) instance: String,
    pub(super) auto_import: bool,
    /// As configured, for conflict checks between targets.
    pub(super) definition: SyncTarget,
    /// Lower-cased `[owner, name]` patterns (GitHub names are
    /// case-insensitive).
    repositories: Vec<[String; 2]>,
    branches: Vec<Vec<String>>,
    path: String,
}

impl Settings {
    /// Parses and validates the section, reporting every bad key at once.
    /// `env` is where `{ env = ... }` secrets are looked up.
    pub(super) fn parse(
        config: GithubSyncConfig,
        env: &std::collections::HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let state_dir = config
            .state_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        if state_dir.as_os_str().is_empty() {
            problems.push("github_sync.state_dir: must not be empty".to_owned());
        }
        let git_timeout = duration(
            &mut problems,
            "github_sync.git_timeout",
            config.git_timeout.as_deref(),
            DEFAULT_GIT_TIMEOUT,
        );
        let protocols = config.protocols.unwrap_or_else(|| vec!["https".to_owned()]);
        if protocols.is_empty() {
            problems.push("github_sync.protocols: list at least one protocol".to_owned());
        }
        for protocol in &protocols {
            if protocol.is_empty()
                || !protocol
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
            {
                problems.push(format!(
                    "github_sync.protocols: `{protocol}` is not a protocol name such as https"
                ));
            }
        }
        let app = config
            .app
            .and_then(|app| AppSettings::parse(app, env, &mut problems));
        let lock = LockSettings::parse(&config.lock, &mut problems);
        let mut targets: Vec<Arc<Target>> = Vec::new();
        // Every earlier definition, valid or not, for duplicate ids and
        // folders.
        let mut seen: Vec<SyncTarget> = Vec::new();
        for (index, definition) in config.targets.into_iter().enumerate() {
            let key = format!("github_sync.targets[{index}]");
            let conflicts: Vec<String> = seen
                .iter()
                .filter_map(|other| definition.conflict(other))
                .map(|why| format!("{key}: {why}"))
                .collect();
            seen.push(definition.clone());
            match Target::compile(&key, definition, &state_dir) {
                Ok(target) if conflicts.is_empty() => targets.push(Arc::new(target)),
                Ok(_) => problems.extend(conflicts),
                Err(mut found) => {
                    problems.append(&mut found);
                    problems.extend(conflicts);
                }
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Settings {
            state_dir,
            git_timeout,
            protocols,
            app,
            lock,
            targets,
        })
    }
}

/// A duration key, or its default; a bad value is a problem.
pub(super) fn duration(
    problems: &mut Vec<String>,
    key: &str,
    text: Option<&str>,
    default: Duration,
) -> Duration {
    match text {
        None => default,
        Some(text) => match humantime::parse_duration(text) {
            Ok(duration) if !duration.is_zero() => duration,
            _ => {
                problems.push(format!("{key}: `{text}` is not a duration such as 10m"));
                default
            }
        },
    }
}

/// A secret read once at start-up; the problem names the key, never the
/// value.
pub(super) fn secret(
    problems: &mut Vec<String>,
    key: &str,
    source: &SecretSource,
    env: &std::collections::HashMap<String, String>,
) -> Option<verify::Secret> {
    source
        .require(env)
        .map_err(|why| problems.push(format!("{key}: {why}")))
        .ok()
}

impl Target {
    /// Validates `definition` with the shared rules (`SyncTarget::problems`)
    /// and this worker's own (the folder must not overlap `state_dir`).
    pub(super) fn compile(
        key: &str,
        definition: SyncTarget,
        state_dir: &Path,
    ) -> Result<Target, Vec<String>> {
        let mut problems = definition.problems(key);
        let fixed = Path::new(definition.path.split('{').next().unwrap_or_default());
        if !definition.path.is_empty()
            && (fixed.starts_with(state_dir) || state_dir.starts_with(fixed))
        {
            problems.push(format!(
                "{key}.path: `{}` overlaps github_sync.state_dir `{}`",
                definition.path,
                state_dir.display()
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let repositories = definition
            .repositories
            .iter()
            .filter_map(|pattern| schemas::sync_target::repository_pattern(pattern))
            .collect();
        let branches = definition
            .branches
            .iter()
            .map(|pattern| pattern.split('/').map(str::to_owned).collect())
            .collect();
        Ok(Target {
            id: definition.id.clone(),
            instance: definition.instance.clone(),
            auto_import: definition.auto_import,
            repositories,
            branches,
            path: definition.path.clone(),
            definition,
        })
    }

    /// Whether this target tracks `full_name` at `branch`.
    pub(super) fn tracks(&self, full_name: &str, branch: &str) -> bool {
        let full_name = full_name.to_ascii_lowercase();
        let Some((owner, name)) = full_name.split_once('/') else {
            return false;
        };
        self.repositories
            .iter()
            .any(|[owner_pattern, name_pattern]| {
                glob(owner_pattern, owner) && glob(name_pattern, name)
            })
            && self
                .branches
                .iter()
                .any(|pattern| segments_match(pattern, branch))
    }

    /// The folder for one repository: `path` with `{owner}` and `{name}`
    /// filled in (both already valid path components).
    pub(super) fn folder(&self, owner: &str, name: &str) -> PathBuf {
        PathBuf::from(self.path.replace("{owner}", owner).replace("{name}", name))
    }
}

/// The first of `targets` tracking `full_name` at `branch`.
pub(super) fn target_for<'a>(
    targets: &'a [Arc<Target>],
    full_name: &str,
    branch: &str,
) -> Option<&'a Arc<Target>> {
    targets
        .iter()
        .find(|target| target.tracks(full_name, branch))
}

/// Branch matching: the same number of `/` segments, each matched by
/// [`glob`], so `release/*` matches `release/1.2` but not `release/1/fix`.
fn segments_match(pattern: &[String], branch: &str) -> bool {
    let mut parts = branch.split('/');
    pattern
        .iter()
        .all(|segment| parts.next().is_some_and(|part| glob(segment, part)))
        && parts.next().is_none()
}

/// `*` matches any run of characters (none included); everything else
/// matches itself.
pub(super) fn glob(pattern: &str, text: &str) -> bool {
    let pattern = pattern.as_bytes();
    let text = text.as_bytes();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently covers up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests;
