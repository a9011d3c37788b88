//! `[github_sync]` configuration, parsed once into typed targets: which
//! repositories and branches each target tracks, and the folder a pushed
//! tree is materialized into.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
}

/// `[[github_sync.targets]]`: the first target whose repositories and
/// branches both match a push receives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Connector target id: dedupe keys, state folders, reports.
    pub id: String,
    /// Patterns on `owner/name`; `*` matches within one segment.
    pub repositories: Vec<String>,
    /// Patterns on the branch name (`main`, `release/*`).
    pub branches: Vec<String>,
    /// Folder the tree is materialized into; may contain `{owner}` and
    /// `{name}` (required when the patterns match several repositories).
    pub path: String,
}

/// The parsed `[github_sync]` section.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) state_dir: PathBuf,
    pub(super) git_timeout: Duration,
    /// `GIT_ALLOW_PROTOCOL`: allowed protocols joined by `:`.
    pub(super) protocols: Vec<String>,
    pub(super) targets: Vec<Target>,
}

/// One sync target, validated.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) id: String,
    /// Lower-cased `[owner, name]` patterns (GitHub names are
    /// case-insensitive).
    repositories: Vec<[String; 2]>,
    branches: Vec<Vec<String>>,
    path: String,
}

impl Settings {
    /// Parses and validates the section, reporting every bad key at once.
    pub(super) fn parse(config: GithubSyncConfig) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let state_dir = config
            .state_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        if state_dir.as_os_str().is_empty() {
            problems.push("github_sync.state_dir: must not be empty".to_owned());
        }
        let git_timeout = match config.git_timeout.as_deref() {
            None => DEFAULT_GIT_TIMEOUT,
            Some(text) => match humantime::parse_duration(text) {
                Ok(duration) if !duration.is_zero() => duration,
                _ => {
                    problems.push(format!(
                        "github_sync.git_timeout: `{text}` is not a duration such as 10m"
                    ));
                    DEFAULT_GIT_TIMEOUT
                }
            },
        };
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
        if config.targets.is_empty() {
            problems.push("github_sync.targets: configure at least one target".to_owned());
        }
        let mut ids = HashSet::new();
        let mut paths = HashSet::new();
        let mut targets = Vec::new();
        for (index, target) in config.targets.into_iter().enumerate() {
            let key = format!("github_sync.targets[{index}]");
            if !is_id(&target.id) {
                problems.push(format!(
                    "{key}.id: `{}` must be letters, digits, -, _ or .",
                    target.id
                ));
            } else if !ids.insert(target.id.clone()) {
                problems.push(format!("{key}.id: `{}` is used twice", target.id));
            }
            if !paths.insert(target.path.clone()) {
                problems.push(format!(
                    "{key}.path: `{}` is already another target's folder",
                    target.path
                ));
            }
            match parse_target(&key, target, &state_dir) {
                Ok(target) => targets.push(target),
                Err(mut found) => problems.append(&mut found),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Settings {
            state_dir,
            git_timeout,
            protocols,
            targets,
        })
    }

    /// The first target tracking `full_name` at `branch`.
    pub(super) fn target_for(&self, full_name: &str, branch: &str) -> Option<&Target> {
        let full_name = full_name.to_ascii_lowercase();
        let (owner, name) = full_name.split_once('/')?;
        self.targets.iter().find(|target| {
            target
                .repositories
                .iter()
                .any(|[owner_pattern, name_pattern]| {
                    glob(owner_pattern, owner) && glob(name_pattern, name)
                })
                && target
                    .branches
                    .iter()
                    .any(|pattern| segments_match(pattern, branch))
        })
    }
}

impl Target {
    /// The folder for one repository: `path` with `{owner}` and `{name}`
    /// filled in (both already valid path components).
    pub(super) fn folder(&self, owner: &str, name: &str) -> PathBuf {
        PathBuf::from(self.path.replace("{owner}", owner).replace("{name}", name))
    }
}

fn parse_target(key: &str, target: TargetConfig, state_dir: &Path) -> Result<Target, Vec<String>> {
    let mut problems = Vec::new();
    if target.repositories.is_empty() {
        problems.push(format!("{key}.repositories: list at least one pattern"));
    }
    let mut repositories = Vec::new();
    for pattern in &target.repositories {
        let lower = pattern.to_ascii_lowercase();
        match lower.split_once('/') {
            Some((owner, name))
                if is_pattern_segment(owner) && is_pattern_segment(name) && !name.contains('/') =>
            {
                repositories.push([owner.to_owned(), name.to_owned()]);
            }
            _ => problems.push(format!(
                "{key}.repositories: `{pattern}` is not an owner/name pattern such as octocat/*"
            )),
        }
    }
    if target.branches.is_empty() {
        problems.push(format!("{key}.branches: list at least one pattern"));
    }
    let mut branches = Vec::new();
    for pattern in &target.branches {
        let segments: Vec<String> = pattern.split('/').map(str::to_owned).collect();
        if segments.iter().all(|segment| is_pattern_segment(segment)) {
            branches.push(segments);
        } else {
            problems.push(format!(
                "{key}.branches: `{pattern}` is not a branch pattern such as release/*"
            ));
        }
    }
    problems.extend(check_path(key, &target.path, &repositories, state_dir));
    if problems.is_empty() {
        Ok(Target {
            id: target.id,
            repositories,
            branches,
            path: target.path,
        })
    } else {
        Err(problems)
    }
}

/// A folder shared by several repositories would have each sync delete the
/// others' files, so a path must tell them apart.
fn check_path(
    key: &str,
    path: &str,
    repositories: &[[String; 2]],
    state_dir: &Path,
) -> Vec<String> {
    let mut problems = Vec::new();
    if path.is_empty() {
        problems.push(format!("{key}.path: must not be empty"));
        return problems;
    }
    let stripped = path.replace("{owner}", "").replace("{name}", "");
    if stripped.contains(['{', '}']) {
        problems.push(format!(
            "{key}.path: `{path}` may only use the placeholders {{owner}} and {{name}}"
        ));
    }
    let several = repositories.len() > 1
        || repositories
            .iter()
            .any(|[owner, name]| owner.contains('*') || name.contains('*'));
    let one_owner = repositories
        .iter()
        .all(|[owner, _]| !owner.contains('*') && *owner == repositories[0][0]);
    if several && !path.contains("{name}") {
        problems.push(format!(
            "{key}.path: the repository patterns match several repositories; add {{name}} to the path so they do not overwrite each other"
        ));
    } else if several && !one_owner && !path.contains("{owner}") {
        problems.push(format!(
            "{key}.path: the repository patterns match several owners; add {{owner}} to the path so they do not overwrite each other"
        ));
    }
    let fixed = Path::new(path.split('{').next().unwrap_or_default());
    if fixed.starts_with(state_dir) || state_dir.starts_with(fixed) {
        problems.push(format!(
            "{key}.path: `{path}` overlaps github_sync.state_dir `{}`",
            state_dir.display()
        ));
    }
    problems
}

/// Target ids name folders and appear in dedupe keys.
fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn is_pattern_segment(segment: &str) -> bool {
    !segment.is_empty() && !segment.contains(char::is_whitespace)
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
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let check = |pattern: &str, text: &str, expected: bool| {
            assert_eq!(glob(pattern, text), expected, "{pattern} ~ {text}");
        };
        check("*", "", true);
        check("*", "anything", true);
        check("main", "main", true);
        check("main", "mainline", false);
        check("hello-*", "hello-world", true);
        check("hello-*", "hello-", true);
        check("hello-*", "hello", false);
        check("*-world", "hello-world", true);
        check("*o*o*", "foo", true);
        check("*o*o*", "fo", false);
        check("a*b*c", "abxbxc", true);
        check("a*b*c", "abxbxd", false);
        check("v1.*", "v1.2", true);
    }

    fn settings(targets: &str) -> Result<Settings, ConfigError> {
        let text = format!("state_dir = \"/var/lib/sync\"\n{targets}");
        let config: GithubSyncConfig = toml_value(&text);
        Settings::parse(config)
    }

    fn toml_value(text: &str) -> GithubSyncConfig {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(text))
            .extract()
            .expect("the test config parses")
    }

    #[test]
    fn targets_match_repositories_and_branches() {
        let settings = settings(
            r#"
[[targets]]
id = "release"
repositories = ["octocat/hello"]
branches = ["release/*"]
path = "/srv/release"
[[targets]]
id = "all"
repositories = ["octocat/*", "Other/Tools"]
branches = ["main", "develop"]
path = "/srv/all/{owner}/{name}"
"#,
        )
        .expect("valid");
        let check = |full_name: &str, branch: &str, expected: Option<&str>| {
            assert_eq!(
                settings
                    .target_for(full_name, branch)
                    .map(|target| target.id.as_str()),
                expected,
                "{full_name}@{branch}"
            );
        };
        check("octocat/hello", "release/1.0", Some("release"));
        check("octocat/hello", "release/1.0/fix", None);
        check("octocat/hello", "main", Some("all"));
        check("OctoCat/Hello", "main", Some("all"));
        check("other/tools", "develop", Some("all"));
        check("other/tool", "develop", None);
        check("octocat/hello", "feature", None);
        check("nobody/hello", "main", None);
        check("no-slash", "main", None);
        let all = &settings.targets[1];
        assert_eq!(
            all.folder("octocat", "hello"),
            PathBuf::from("/srv/all/octocat/hello")
        );
    }

    #[test]
    fn bad_config_is_reported_by_key_all_at_once() {
        let error = settings(
            r#"
git_timeout = "soon"
protocols = ["HTTPS"]
[[targets]]
id = "a b"
repositories = ["octocat"]
branches = []
path = "/srv/{repo}"
[[targets]]
id = "many"
repositories = ["octocat/*"]
branches = ["main"]
path = "/srv/many"
[[targets]]
id = "owners"
repositories = ["*/plugins"]
branches = ["main"]
path = "/srv/owners/{name}"
[[targets]]
id = "owners"
repositories = ["octocat/x"]
branches = ["main"]
path = "/var/lib/sync/x"
"#,
        )
        .expect_err("invalid");
        let text = error.to_string();
        for expected in [
            "github_sync.git_timeout: `soon`",
            "github_sync.protocols: `HTTPS`",
            "github_sync.targets[0].id: `a b`",
            "github_sync.targets[0].repositories: `octocat`",
            "github_sync.targets[0].branches: list at least one",
            "github_sync.targets[0].path: `/srv/{repo}` may only use",
            "github_sync.targets[1].path: the repository patterns match several repositories",
            "github_sync.targets[2].path: the repository patterns match several owners",
            "github_sync.targets[3].id: `owners` is used twice",
            "github_sync.targets[3].path: `/var/lib/sync/x` overlaps github_sync.state_dir",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert_eq!(error.problems.len(), 10, "{text}");
    }

    #[test]
    fn no_targets_is_an_error_and_defaults_apply() {
        let error = Settings::parse(GithubSyncConfig::default()).expect_err("no targets");
        assert!(error.to_string().contains("github_sync.targets"));
        let settings = settings(
            r#"
[[targets]]
id = "one"
repositories = ["octocat/hello"]
branches = ["main"]
path = "/srv/hello"
"#,
        )
        .expect("valid");
        assert_eq!(settings.git_timeout, DEFAULT_GIT_TIMEOUT);
        assert_eq!(settings.protocols, vec!["https".to_owned()]);
    }
}
