//! A GitHub `push` payload as a sync reads it: repository, branch, head
//! commit and clone URL, each validated before it reaches git or a path.
//! Tag pushes and branch deletions are told apart from branch updates.

use serde::Deserialize;

use super::materialize::validate_path;

/// What a push payload is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PushEvent {
    /// A branch moved to a new head: a sync candidate.
    Branch(Push),
    Tag(String),
    /// A branch was deleted (`after` is all zeros).
    Deleted(String),
    /// Any other ref (notes, pull refs, ...).
    Other(String),
}

/// A validated branch push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Push {
    /// `installation.id`: the GitHub App installation that sent it.
    pub(super) installation_id: Option<u64>,
    pub(super) repository_id: Option<u64>,
    /// `owner/name`, as GitHub spells it.
    pub(super) full_name: String,
    /// Both valid single path components.
    pub(super) owner: String,
    pub(super) name: String,
    /// `refs/heads/<branch>`.
    pub(super) git_ref: String,
    pub(super) branch: String,
    /// Lower-case hex, 40 (SHA-1) or 64 (SHA-256) digits.
    pub(super) head_sha: String,
    /// Validated when present; a push without one can still be told
    /// untracked (and skipped), but not synced.
    pub(super) clone_url: Option<String>,
}

impl Push {
    /// The repository in dedupe keys and state folders: its id (stable
    /// across renames), or its full name when the payload has no id.
    pub(super) fn repository_key(&self) -> String {
        match self.repository_id {
            Some(id) => id.to_string(),
            None => self.full_name.clone(),
        }
    }

    /// The clone URL, which a sync needs.
    pub(super) fn clone_url(&self) -> Result<&str, String> {
        self.clone_url
            .as_deref()
            .ok_or_else(|| "payload is not a GitHub push: no `repository.clone_url`".to_owned())
    }

    /// The clone URL's protocol as git's `GIT_ALLOW_PROTOCOL` names it.
    pub(super) fn protocol(&self) -> Option<&str> {
        let url = self.clone_url.as_deref()?;
        Some(match url.split_once("://") {
            Some((scheme, _)) => scheme,
            // `git@github.com:owner/name.git`
            None if url.contains(':') => "ssh",
            None => "file",
        })
    }
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
    installation: Option<Installation>,
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

#[derive(Deserialize)]
struct Repository {
    id: Option<u64>,
    full_name: Option<String>,
    clone_url: Option<String>,
}

/// Parses a push payload; `Err` says why it is not a GitHub push.
pub(super) fn parse(payload: &[u8]) -> Result<PushEvent, String> {
    let payload: Payload = serde_json::from_slice(payload)
        .map_err(|error| format!("payload is not a GitHub push: {error}"))?;
    let git_ref = payload
        .git_ref
        .ok_or("payload is not a GitHub push: no `ref`")?;
    if git_ref.starts_with("refs/tags/") {
        return Ok(PushEvent::Tag(git_ref));
    }
    let after = payload
        .after
        .ok_or("payload is not a GitHub push: no `after`")?;
    if payload.deleted || (!after.is_empty() && after.bytes().all(|b| b == b'0')) {
        return Ok(PushEvent::Deleted(git_ref));
    }
    let Some(branch) = git_ref.strip_prefix("refs/heads/") else {
        return Ok(PushEvent::Other(git_ref));
    };
    if !is_branch_name(branch) {
        return Err(format!("push ref `{git_ref}` is not a valid branch ref"));
    }
    if !is_sha(&after) {
        return Err(format!("push `after` `{after}` is not a commit SHA"));
    }
    let repository = payload
        .repository
        .ok_or("payload is not a GitHub push: no `repository`")?;
    let full_name = repository
        .full_name
        .ok_or("payload is not a GitHub push: no `repository.full_name`")?;
    let (owner, name) = full_name
        .split_once('/')
        .filter(|(owner, name)| {
            !name.contains('/') && validate_path(owner).is_ok() && validate_path(name).is_ok()
        })
        .ok_or_else(|| format!("repository full name `{full_name}` is not owner/name"))?;
    let clone_url = repository.clone_url;
    // A leading `-` would be read by git as an option.
    if clone_url.as_deref().is_some_and(|url| {
        url.is_empty()
            || url.starts_with('-')
            || url.contains(|c: char| c.is_whitespace() || c.is_control())
    }) {
        return Err("repository.clone_url is not a URL git can fetch".into());
    }
    Ok(PushEvent::Branch(Push {
        installation_id: payload.installation.map(|installation| installation.id),
        repository_id: repository.id,
        owner: owner.to_owned(),
        name: name.to_owned(),
        full_name: full_name.clone(),
        branch: branch.to_owned(),
        git_ref: git_ref.clone(),
        head_sha: after,
        clone_url,
    }))
}

pub(super) fn is_sha(text: &str) -> bool {
    (text.len() == 40 || text.len() == 64)
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// git's ref name rules (`git check-ref-format --branch`), which also keep
/// the refspec `+<ref>:<ref>` unambiguous.
pub(super) fn is_branch_name(branch: &str) -> bool {
    !branch.is_empty()
        && !branch.starts_with('-')
        && !branch.ends_with('/')
        && !branch.ends_with('.')
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch.contains("@{")
        && branch != "@"
        && !branch
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
        && branch
            .split('/')
            .all(|component| !component.starts_with('.') && !component.ends_with(".lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

    fn push(git_ref: &str, after: &str, extra: &str) -> Result<PushEvent, String> {
        parse(
            format!(
                r#"{{"ref":"{git_ref}","after":"{after}",{extra}"repository":{{"id":7,"full_name":"octocat/Hello-World","clone_url":"https://github.com/octocat/Hello-World.git"}}}}"#
            )
            .as_bytes(),
        )
    }

    #[test]
    fn branch_pushes_are_parsed() {
        let Ok(PushEvent::Branch(push)) = push("refs/heads/release/1.0", SHA, "") else {
            panic!("a branch push");
        };
        assert_eq!(push.branch, "release/1.0");
        assert_eq!(push.owner, "octocat");
        assert_eq!(push.name, "Hello-World");
        assert_eq!(push.repository_key(), "7");
        assert_eq!(push.installation_id, None);
        assert_eq!(push.protocol(), Some("https"));
    }

    #[test]
    fn tags_deletions_and_other_refs_are_told_apart() {
        let zeros = "0".repeat(40);
        assert_eq!(
            push("refs/tags/v1", SHA, ""),
            Ok(PushEvent::Tag("refs/tags/v1".into()))
        );
        assert_eq!(
            push("refs/heads/main", &zeros, ""),
            Ok(PushEvent::Deleted("refs/heads/main".into()))
        );
        assert_eq!(
            push("refs/heads/main", SHA, r#""deleted":true,"#),
            Ok(PushEvent::Deleted("refs/heads/main".into()))
        );
        assert_eq!(
            push("refs/notes/commits", SHA, ""),
            Ok(PushEvent::Other("refs/notes/commits".into()))
        );
    }

    #[test]
    fn hostile_or_malformed_pushes_are_rejected() {
        for (git_ref, after) in [
            ("refs/heads/main:refs/heads/evil", SHA),
            ("refs/heads/-x", SHA),
            ("refs/heads/a..b", SHA),
            ("refs/heads/.hidden", SHA),
            ("refs/heads/main", "HEAD"),
            (
                "refs/heads/main",
                "6113728F27AE82C7B1A177C8D03F9E96E0ADF246",
            ),
        ] {
            assert!(push(git_ref, after, "").is_err(), "{git_ref} {after}");
        }
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"zen":"Keep it logically awesome."}"#).is_err());
        let bad_repository = |repository: &str| {
            parse(
                format!(r#"{{"ref":"refs/heads/main","after":"{SHA}","repository":{repository}}}"#)
                    .as_bytes(),
            )
        };
        assert!(bad_repository(r#"{"full_name":"../x","clone_url":"https://h/x"}"#).is_err());
        assert!(bad_repository(r#"{"full_name":"a/b/c","clone_url":"https://h/x"}"#).is_err());
        assert!(bad_repository(r#"{"full_name":"a/.git","clone_url":"https://h/x"}"#).is_err());
        assert!(bad_repository(r#"{"full_name":"a/b","clone_url":"--upload-pack=x"}"#).is_err());
        // Without a clone URL a push still parses: an untracked repository
        // is skipped, a tracked one fails when it would be fetched.
        let Ok(PushEvent::Branch(push)) = bad_repository(r#"{"full_name":"a/b"}"#) else {
            panic!("a branch push without a clone URL");
        };
        assert!(push.clone_url().is_err());
        assert_eq!(push.protocol(), None);
    }

    #[test]
    fn clone_url_protocols() {
        let protocol = |url: &str| {
            let Ok(PushEvent::Branch(push)) = parse(
                format!(r#"{{"ref":"refs/heads/main","after":"{SHA}","repository":{{"full_name":"a/b","clone_url":"{url}"}}}}"#)
                    .as_bytes(),
            ) else {
                panic!("a branch push");
            };
            assert_eq!(push.repository_key(), "a/b");
            push.protocol().expect("a clone URL").to_owned()
        };
        assert_eq!(protocol("https://github.com/a/b.git"), "https");
        assert_eq!(protocol("file:///tmp/b.git"), "file");
        assert_eq!(protocol("git@github.com:a/b.git"), "ssh");
        assert_eq!(protocol("/srv/git/b.git"), "file");
    }
}
