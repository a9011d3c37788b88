//! A connector sync target (sync target v1): which repositories and
//! branches a connector instance tracks, and the folder a pushed tree is
//! materialized into. The same shape is read from `[[github_sync.targets]]`
//! and from the KV bucket `tidegate_sync_targets`; [`SyncTarget::problems`]
//! holds the rules, so the worker and the CLI validate alike.

use serde::{Deserialize, Serialize};

/// Longest connector instance id.
pub const MAX_INSTANCE_LEN: usize = 128;

/// One target as configured or stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncTarget {
    /// Connector target id (`connectorTargetId`): letters, digits, `-`,
    /// `_`, `.`. Names dedupe keys, state folders and the KV key.
    pub id: String,
    /// Connector instance id (`connectorInstanceId`).
    pub instance: String,
    /// Patterns on `owner/name`; `*` matches within one segment;
    /// case-insensitive.
    pub repositories: Vec<String>,
    /// Patterns on the branch name (`main`, `release/*`).
    pub branches: Vec<String>,
    /// Folder the tree is materialized into; may contain `{owner}` and
    /// `{name}` (required when the patterns match several repositories).
    pub path: String,
    /// Sync on push (default). Off: pushes are reported `skipped`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub auto_import: bool,
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

impl SyncTarget {
    /// Every rule this target breaks, each prefixed with `key` (e.g.
    /// `github_sync.targets[0]`) and the field; empty when it is valid.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !is_id(&self.id) {
            problems.push(format!(
                "{key}.id: `{}` must be letters, digits, -, _ or .",
                self.id
            ));
        }
        if self.instance.is_empty()
            || self.instance.chars().count() > MAX_INSTANCE_LEN
            || self
                .instance
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            problems.push(format!(
                "{key}.instance: `{}` must be 1 to {MAX_INSTANCE_LEN} characters without spaces",
                self.instance
            ));
        }
        if self.repositories.is_empty() {
            problems.push(format!("{key}.repositories: list at least one pattern"));
        }
        let mut repositories = Vec::new();
        for pattern in &self.repositories {
            match repository_pattern(pattern) {
                Some(parts) => repositories.push(parts),
                None => problems.push(format!(
                    "{key}.repositories: `{pattern}` is not an owner/name pattern such as octocat/*"
                )),
            }
        }
        if self.branches.is_empty() {
            problems.push(format!("{key}.branches: list at least one pattern"));
        }
        for pattern in &self.branches {
            if !pattern.split('/').all(is_pattern_segment) {
                problems.push(format!(
                    "{key}.branches: `{pattern}` is not a branch pattern such as release/*"
                ));
            }
        }
        problems.extend(path_problems(key, &self.path, &repositories));
        problems
    }

    /// Why `self` cannot sit beside `other` in one set of targets: the same
    /// id, or the same folder.
    pub fn conflict(&self, other: &SyncTarget) -> Option<String> {
        if self.id == other.id {
            Some(format!("id `{}` is already another target's", self.id))
        } else if self.path == other.path {
            Some(format!(
                "path `{}` is already target `{}`'s folder",
                self.path, other.id
            ))
        } else {
            None
        }
    }
}

/// `[owner, name]` of a valid repository pattern, lower-cased (GitHub
/// names are case-insensitive).
pub fn repository_pattern(pattern: &str) -> Option<[String; 2]> {
    let lower = pattern.to_ascii_lowercase();
    let (owner, name) = lower.split_once('/')?;
    (is_pattern_segment(owner) && is_pattern_segment(name) && !name.contains('/'))
        .then(|| [owner.to_owned(), name.to_owned()])
}

/// A target id: it names folders and KV keys.
pub fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn is_pattern_segment(segment: &str) -> bool {
    !segment.is_empty() && !segment.contains(char::is_whitespace)
}

/// A folder shared by several repositories would have each sync delete the
/// others' files, so a path must tell them apart.
fn path_problems(key: &str, path: &str, repositories: &[[String; 2]]) -> Vec<String> {
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
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: &str, repositories: &[&str], branches: &[&str], path: &str) -> SyncTarget {
        SyncTarget {
            id: id.into(),
            instance: "inst-1".into(),
            repositories: repositories.iter().map(|r| (*r).to_owned()).collect(),
            branches: branches.iter().map(|b| (*b).to_owned()).collect(),
            path: path.into(),
            auto_import: true,
        }
    }

    #[test]
    fn valid_targets_have_no_problems() {
        for valid in [
            target("one", &["octocat/hello"], &["main"], "/srv/hello"),
            target("all", &["octocat/*"], &["main", "release/*"], "/srv/{name}"),
            target("any", &["*/plugins"], &["main"], "/srv/{owner}/{name}"),
        ] {
            assert_eq!(valid.problems("t"), Vec::<String>::new(), "{valid:?}");
        }
    }

    #[test]
    fn every_problem_is_reported_by_key() {
        let mut bad = target("a b", &["octocat"], &[], "/srv/{repo}");
        bad.instance = String::new();
        let problems = bad.problems("github_sync.targets[0]");
        for expected in [
            "github_sync.targets[0].id: `a b`",
            "github_sync.targets[0].instance: ``",
            "github_sync.targets[0].repositories: `octocat`",
            "github_sync.targets[0].branches: list at least one",
            "github_sync.targets[0].path: `/srv/{repo}` may only use",
        ] {
            assert!(
                problems.iter().any(|problem| problem.starts_with(expected)),
                "missing {expected:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), 5, "{problems:#?}");
        let many = target("many", &["octocat/*"], &["main"], "/srv/many");
        assert!(many.problems("t")[0].contains("several repositories"));
        let owners = target("owners", &["*/plugins"], &["main"], "/srv/{name}");
        assert!(owners.problems("t")[0].contains("several owners"));
    }

    #[test]
    fn conflicts_are_same_ids_or_folders() {
        let a = target("a", &["o/a"], &["main"], "/srv/a");
        let b = target("b", &["o/b"], &["main"], "/srv/b");
        assert_eq!(a.conflict(&b), None);
        assert!(a.conflict(&a.clone()).is_some());
        let same_folder = target("c", &["o/c"], &["main"], "/srv/a");
        assert!(
            a.conflict(&same_folder)
                .is_some_and(|why| why.contains("target `c`"))
        );
    }

    #[test]
    fn auto_import_defaults_on_and_is_written_only_when_off() {
        let text = r#"{"id":"t","instance":"i","repositories":["o/r"],"branches":["main"],"path":"/srv/r"}"#;
        let read: SyncTarget = serde_json::from_str(text).expect("valid");
        assert!(read.auto_import);
        assert_eq!(serde_json::to_string(&read).expect("serializes"), text);
        let off = SyncTarget {
            auto_import: false,
            ..read
        };
        assert!(
            serde_json::to_string(&off)
                .expect("serializes")
                .contains(r#""auto_import":false"#)
        );
    }
}
