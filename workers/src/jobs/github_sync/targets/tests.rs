//! `[github_sync]` parsing: matching, every bad key reported at once,
//! defaults.

use std::collections::HashMap;

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

pub(crate) fn settings(text: &str) -> Result<Settings, ConfigError> {
    settings_with_env(text, &HashMap::new())
}

pub(crate) fn settings_with_env(
    text: &str,
    env: &HashMap<String, String>,
) -> Result<Settings, ConfigError> {
    use figment::providers::{Format, Toml};
    let text = format!("state_dir = \"/var/lib/sync\"\n{text}");
    let config: GithubSyncConfig = figment::Figment::from(Toml::string(&text))
        .extract()
        .expect("the test config parses");
    Settings::parse(config, env)
}

#[test]
fn targets_match_repositories_and_branches() {
    let settings = settings(
        r#"
[[targets]]
id = "release"
instance = "inst-1"
repositories = ["octocat/hello"]
branches = ["release/*"]
path = "/srv/release"
[[targets]]
id = "all"
instance = "inst-1"
repositories = ["octocat/*", "Other/Tools"]
branches = ["main", "develop"]
path = "/srv/all/{owner}/{name}"
auto_import = false
"#,
    )
    .expect("valid");
    let check = |full_name: &str, branch: &str, expected: Option<&str>| {
        assert_eq!(
            target_for(&settings.targets, full_name, branch).map(|target| target.id.as_str()),
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
    assert!(settings.targets[0].auto_import);
    assert!(!all.auto_import);
    assert_eq!(all.instance, "inst-1");
}

#[test]
fn bad_config_is_reported_by_key_all_at_once() {
    let error = settings(
        r#"
git_timeout = "soon"
protocols = ["HTTPS"]
[lock]
ttl = "never"
[app]
id = 0
private_key = { env = "NO_SUCH_VARIABLE" }
api_url = "ftp://api.example.com"
[[targets]]
id = "a b"
instance = "inst-1"
repositories = ["octocat"]
branches = []
path = "/srv/{repo}"
[[targets]]
id = "many"
instance = "inst-1"
repositories = ["octocat/*"]
branches = ["main"]
path = "/srv/many"
[[targets]]
id = "many"
instance = "inst-1"
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
        "github_sync.lock.ttl: `never`",
        "github_sync.app.id: `0`",
        "github_sync.app.private_key: environment variable NO_SUCH_VARIABLE is not set",
        "github_sync.app.api_url: `ftp://api.example.com`",
        "github_sync.targets[0].id: `a b`",
        "github_sync.targets[0].repositories: `octocat`",
        "github_sync.targets[0].branches: list at least one",
        "github_sync.targets[0].path: `/srv/{repo}` may only use",
        "github_sync.targets[1].path: the repository patterns match several repositories",
        "github_sync.targets[2]: id `many` is already another target's",
        "github_sync.targets[2].path: `/var/lib/sync/x` overlaps github_sync.state_dir",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(error.problems.len(), 13, "{text}");
}

#[test]
fn no_targets_is_allowed_and_defaults_apply() {
    let settings = settings("").expect("targets may all be live");
    assert!(settings.targets.is_empty());
    assert!(settings.app.is_none());
    assert_eq!(settings.git_timeout, DEFAULT_GIT_TIMEOUT);
    assert_eq!(settings.protocols, vec!["https".to_owned()]);
    assert_eq!(settings.lock.ttl, Duration::from_secs(30));
    assert_eq!(settings.lock.wait, Duration::from_secs(120));
}
