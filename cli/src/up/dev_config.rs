//! The configs `tidegate up` writes into its data folder: the forwarder's
//! (to the dev sink), github-sync's (from its example), and the deploy/dev
//! workers' (`{data}` and the NATS URL filled in).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::workers::FORWARD_NAME;
use crate::secrets::FORWARD_SIGNING_SECRET;

/// The forwarder's dev config: every delivery to the sink, signed.
pub(super) fn forward_config(nats_url: &str, sink_url: &str) -> String {
    format!(
        r#"# Written by `tidegate up` at every start: tidegate-forward delivers every
# delivery (tidegate.in.>) to the dev sink, signed with {FORWARD_SIGNING_SECRET}.
name = "{FORWARD_NAME}"

[nats]
url = "{nats_url}"

[consumer]
filter_subjects = "tidegate.in.>"
max_deliver = 3
backoff_max = "10s"
shutdown_grace = "5s"

[forward]
timeout = "5s"

[[forward.targets]]
subjects = "tidegate.in.>"
url = "{sink_url}/"
mode = "envelope"
secret = {{ env = "{FORWARD_SIGNING_SECRET}" }}
"#
    )
}

/// The github-sync example made safe for a laptop: its state and target
/// folders move under `<data>/github-sync/`, it serves no metrics port, it
/// stops within the dev grace period, and without the GitHub App's key in
/// the environment (`has_env`) it runs without the App (public
/// repositories only) instead of refusing to start.
pub(super) fn github_sync_config(
    example: &Path,
    data: &Path,
    nats_url: &str,
    has_env: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(example)
        .with_context(|| format!("reading {}", example.display()))?;
    let mut config: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", example.display()))?;
    let root = data.join("github-sync");
    let string = |path: PathBuf| toml::Value::String(path.to_string_lossy().into_owned());
    let mut nats = toml::Table::new();
    nats.insert("url".to_owned(), nats_url.into());
    config.insert("nats".to_owned(), toml::Value::Table(nats));
    config.remove("listen");
    if let Some(toml::Value::Table(consumer)) = config.get_mut("consumer") {
        consumer.insert("shutdown_grace".to_owned(), "10s".into());
    }
    if let Some(toml::Value::Table(sync)) = config.get_mut("github_sync") {
        sync.insert("state_dir".to_owned(), string(root.join("state")));
        let key_unset = sync
            .get("app")
            .and_then(|app| app.get("private_key"))
            .and_then(|key| key.get("env"))
            .and_then(toml::Value::as_str)
            .is_some_and(|name| !has_env(name));
        if key_unset {
            sync.remove("app");
        }
        if let Some(toml::Value::Array(targets)) = sync.get_mut("targets") {
            for target in targets {
                if let Some(toml::Value::String(path)) = target.get_mut("path") {
                    *path = root
                        .join("targets")
                        .join(path.trim_start_matches('/'))
                        .to_string_lossy()
                        .into_owned();
                }
            }
        }
    }
    let body = toml::to_string(&config)
        .with_context(|| format!("writing {} back as TOML", example.display()))?;
    Ok(format!(
        "# Written by `tidegate up` at every start from {}, with its folders\n\
         # under {}.\n{body}",
        example.display(),
        root.display()
    ))
}

/// A deploy/dev worker config made runnable: every `{data}` in a string
/// becomes `data`, relative paths (`PATH_KEYS`) become absolute against the
/// working directory (workers may run children elsewhere), `[nats] url`
/// becomes `nats_url`, `listen` is dropped (no metrics port to collide
/// with), and the folders the worker expects to exist are created: values
/// of `workspace`, `data_dir` and `roots`, and the parent folder of a `file`.
pub(super) fn dev_worker_config(
    source: &Path,
    data: &Path,
    nats_url: &str,
) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(source).with_context(|| format!("reading {}", source.display()))?;
    let mut config: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", source.display()))?;
    let here = std::env::current_dir().context("reading the working directory")?;
    let mut folders = Vec::new();
    fill_paths(&mut config, &data.to_string_lossy(), &here, &mut folders);
    let mut nats = toml::Table::new();
    nats.insert("url".to_owned(), nats_url.into());
    config.insert("nats".to_owned(), toml::Value::Table(nats));
    config.remove("listen");
    for folder in &folders {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {} for {}", folder.display(), source.display()))?;
    }
    let body = toml::to_string(&config)
        .with_context(|| format!("writing {} back as TOML", source.display()))?;
    Ok(format!(
        "# Written by `tidegate up` at every start from {}, with {{data}} = {}.\n{body}",
        source.display(),
        data.display()
    ))
}

/// Keys whose values are paths, in the dev configs of exec, inbox and
/// workflow.
const PATH_KEYS: [&str; 6] = [
    "plugins_dir",
    "data_dir",
    "workspace",
    "folder",
    "file",
    "roots",
];

/// Fills in `{data}` and makes the paths under `table` absolute, collecting
/// the folders to create (see `dev_worker_config`).
fn fill_paths(table: &mut toml::Table, data: &str, here: &Path, folders: &mut Vec<PathBuf>) {
    for (key, value) in table.iter_mut() {
        let is_path = PATH_KEYS.contains(&key.as_str());
        match value {
            toml::Value::Table(inner) => fill_paths(inner, data, here, folders),
            toml::Value::String(text) if is_path => {
                let path = here.join(text.replace("{data}", data));
                match key.as_str() {
                    "workspace" | "data_dir" => folders.push(path.clone()),
                    "file" => folders.extend(path.parent().map(Path::to_path_buf)),
                    _ => {}
                }
                *text = path.to_string_lossy().into_owned();
            }
            toml::Value::Array(items) if is_path => {
                for item in items {
                    if let toml::Value::String(text) = item {
                        let path = here.join(text.replace("{data}", data));
                        if key == "roots" {
                            folders.push(path.clone());
                        }
                        *text = path.to_string_lossy().into_owned();
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configs are checked as TOML here; the integration suite runs
    /// `tidegate up` and so the workers with them.
    #[test]
    fn the_dev_forward_config_points_at_dev_mode() {
        let text = forward_config("nats://127.0.0.1:4333", "http://127.0.0.1:9000");
        let config: toml::Table = text.parse().expect("valid TOML");
        assert_eq!(config["name"].as_str(), Some(FORWARD_NAME));
        assert_eq!(
            config["nats"]["url"].as_str(),
            Some("nats://127.0.0.1:4333")
        );
        let targets = config["forward"]["targets"].as_array().expect("targets");
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0]["url"].as_str(), Some("http://127.0.0.1:9000/"));
    }

    #[test]
    fn the_github_sync_example_moves_into_the_data_folder() {
        let example = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/examples/github-sync.toml"
        ));
        let text = github_sync_config(
            example,
            Path::new("/dev-data"),
            "nats://127.0.0.1:4333",
            |_| true,
        )
        .expect("the example converts");
        let config: toml::Table = text.parse().expect("valid TOML");
        assert_eq!(
            config["nats"]["url"].as_str(),
            Some("nats://127.0.0.1:4333")
        );
        assert!(!config.contains_key("listen"));
        let sync = &config["github_sync"];
        assert_eq!(
            sync["state_dir"].as_str(),
            Some("/dev-data/github-sync/state")
        );
        let targets = sync["targets"].as_array().expect("targets");
        assert!(!targets.is_empty());
        for target in targets {
            let path = target["path"].as_str().expect("a path");
            assert!(path.starts_with("/dev-data/github-sync/targets/"), "{path}");
        }
        assert!(
            sync.get("app").is_some(),
            "the App stays when its key is set"
        );
        let without_key = github_sync_config(example, Path::new("/d"), "nats://x", |_| false)
            .expect("the example converts");
        let config: toml::Table = without_key.parse().expect("valid TOML");
        assert!(
            config["github_sync"].get("app").is_none(),
            "no key in the environment: no App"
        );
    }

    #[test]
    fn the_dev_worker_configs_fill_in_the_data_folder() {
        let data = tempfile::tempdir().expect("temp dir");
        for name in ["exec.toml", "inbox.toml", "workflow.toml"] {
            let source = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/dev")
                .join(name);
            let text = dev_worker_config(&source, data.path(), "nats://127.0.0.1:4333")
                .expect("the dev config converts");
            let (_header, body) = text.split_once('\n').expect("a header line");
            assert!(!body.contains("{data}"), "{name}: {text}");
            let config: toml::Table = text.parse().expect("valid TOML");
            assert_eq!(
                config["nats"]["url"].as_str(),
                Some("nats://127.0.0.1:4333"),
                "{name}"
            );
            assert!(!config.contains_key("listen"), "{name}");
        }
        let exec = dev_worker_config(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev/exec.toml"),
            data.path(),
            "nats://x",
        )
        .expect("exec's dev config converts");
        let exec: toml::Table = exec.parse().expect("valid TOML");
        let plugins = exec["exec"]["plugins_dir"].as_str().expect("plugins_dir");
        assert!(Path::new(plugins).is_absolute(), "{plugins}");
        for folder in ["plugins", "agents/flickclaw", "workflow", "workflow/files"] {
            assert!(
                data.path().join(folder).is_dir(),
                "{folder} was not created"
            );
        }
    }
}
