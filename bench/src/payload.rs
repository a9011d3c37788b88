//! What the bench sends: a realistic GitHub `push` body of about 7 KB, its
//! signature, and the envelope-sized message the raw mode publishes.

use serde_json::{Value, json};

/// The route's event for every request.
pub(crate) const EVENT: &str = "push";
/// A fixed webhook id, as GitHub sends in `X-GitHub-Hook-ID`.
pub(crate) const HOOK_ID: &str = "448217736";

/// A push of two commits (a change and its merge) to `octo-org/tidepool`, serialized compactly as
/// GitHub does.
pub(crate) fn github_push() -> Vec<u8> {
    let commits: Vec<Value> = COMMITS
        .iter()
        .enumerate()
        .map(|(index, (sha, message, modified))| commit(index, sha, message, modified))
        .collect();
    let head = commits.last().cloned().unwrap_or(Value::Null);
    let body = json!({
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": COMMITS[COMMITS.len() - 1].0,
        "repository": repository(),
        "pusher": { "name": "mona-lisa", "email": "mona@example.com" },
        "installation": { "id": 39128801, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMzkxMjg4MDE=" },
        "sender": user("mona-lisa", 583231, "User"),
        "created": false,
        "deleted": false,
        "forced": false,
        "base_ref": null,
        "compare": "https://github.com/octo-org/tidepool/compare/6113728f27ae...0d1a26e67d8f",
        "commits": commits,
        "head_commit": head,
    });
    serde_json::to_vec(&body).expect("a json! value always serializes")
}

/// GitHub's `X-Hub-Signature-256` value for `body`.
pub(crate) fn github_signature(secret: &str, body: &[u8]) -> String {
    verify::github::signature(secret.as_bytes(), body)
}

/// The envelope v2 headers the ingress writes for a push with
/// `delivery_id`, so that the raw mode moves the same bytes per delivery:
/// these headers and the body as the data.
pub(crate) fn envelope_headers(delivery_id: &str, subject: &str) -> async_nats::HeaderMap {
    let envelope: schemas::Envelope<()> = schemas::Envelope {
        version: schemas::envelope::v2::VERSION,
        id: delivery_id.to_owned(),
        route: "github".into(),
        source: "github".into(),
        agent: None,
        event: Some(EVENT.into()),
        subject: subject.to_owned(),
        received_at: "2025-01-01T00:00:00.000Z".into(),
        method: "POST".into(),
        path: "/v1/webhooks/connectors/github".into(),
        params: Default::default(),
        query: Default::default(),
        raw_query: None,
        headers: [
            ("accept", "*/*"),
            ("content-type", "application/json"),
            ("host", "127.0.0.1"),
            ("user-agent", "GitHub-Hookshot/7a2c5e1"),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("x-github-event", EVENT),
            ("x-github-hook-id", HOOK_ID),
            ("x-github-hook-installation-target-id", "6811672"),
            ("x-github-hook-installation-target-type", "organization"),
            (
                "x-hub-signature-256",
                "sha256=0000000000000000000000000000000000000000000000000000000000000000",
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect(),
        content_type: Some("application/json".into()),
        payload_encoding: schemas::PayloadEncoding::Json,
        payload: None,
        payload_ref: None,
        github: Some(schemas::GithubFields {
            delivery_id: "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
            hook_id: Some(HOOK_ID.into()),
            event: EVENT.into(),
            installation_id: Some(39128801),
            repository_id: Some(186853002),
            repository_full_name: Some("octo-org/tidepool".into()),
            git_ref: Some("refs/heads/main".into()),
            head_sha: Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into()),
        }),
    };
    let mut headers = async_nats::HeaderMap::new();
    schemas::envelope::v2::write_headers(&envelope, |name, value| headers.insert(name, value))
        .expect("the bench's fields are header text");
    headers.insert(
        schemas::headers::MSG_ID,
        format!("github:{delivery_id}").as_str(),
    );
    headers
}

/// Bytes of a header block as written on the wire (`NATS/1.0`, each
/// `name: value`, the blank line).
pub(crate) fn header_block_len(headers: &async_nats::HeaderMap) -> usize {
    let lines: usize = broker::envelope::header_pairs(headers)
        .map(|(name, value)| name.len() + 2 + value.len() + 2)
        .sum();
    "NATS/1.0\r\n".len() + lines + 2
}

/// (sha, message, modified file) of each pushed commit, oldest first.
const COMMITS: [(&str, &str, &str); 2] = [
    (
        "a10867b14bb761a232cd80139fbd4c0d33264240",
        "Read tide tables from the paged harbour feed",
        "src/feed.rs",
    ),
    (
        "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "Merge pull request #1287 from octo-org/tidal-window\n\nLow-water window fixes",
        "README.md",
    ),
];

fn commit(index: usize, sha: &str, message: &str, modified: &str) -> Value {
    let (name, username, email) = if index.is_multiple_of(2) {
        ("Mona Lisa Octocat", "mona-lisa", "mona@example.com")
    } else {
        ("Hubot", "hubot", "hubot@example.com")
    };
    let person = json!({ "name": name, "email": email, "username": username });
    json!({
        "id": sha,
        "tree_id": format!("{}{}", &sha[20..], &sha[..20]),
        "distinct": true,
        "message": message,
        "timestamp": format!("2025-03-1{index}T09:4{index}:12+02:00"),
        "url": format!("https://github.com/octo-org/tidepool/commit/{sha}"),
        "author": person,
        "committer": person,
        "added": if index == 1 { json!(["src/stations/cache.rs"]) } else { json!([]) },
        "removed": [],
        "modified": [modified],
    })
}

fn repository() -> Value {
    let mut repository = json!({
        "id": 186853002,
        "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
        "name": "tidepool",
        "full_name": "octo-org/tidepool",
        "private": false,
        "owner": user("octo-org", 6811672, "Organization"),
        "html_url": "https://github.com/octo-org/tidepool",
        "description": "Tide tables and low-water windows for small harbours",
        "fork": false,
        "url": "https://github.com/octo-org/tidepool",
    });
    // A second literal: one this long exceeds `json!`'s recursion limit.
    let details = json!({
        "created_at": 1558090316,
        "updated_at": "2025-03-14T08:02:51Z",
        "pushed_at": 1741949331,
        "git_url": "git://github.com/octo-org/tidepool.git",
        "ssh_url": "git@github.com:octo-org/tidepool.git",
        "clone_url": "https://github.com/octo-org/tidepool.git",
        "svn_url": "https://github.com/octo-org/tidepool",
        "homepage": null,
        "size": 1843,
        "stargazers_count": 112,
        "watchers_count": 112,
        "language": "Rust",
        "has_issues": true,
        "has_projects": false,
        "has_downloads": true,
        "has_wiki": false,
        "has_pages": false,
        "has_discussions": false,
        "forks_count": 9,
        "archived": false,
        "disabled": false,
        "open_issues_count": 14,
        "license": { "key": "apache-2.0", "name": "Apache License 2.0", "spdx_id": "Apache-2.0" },
        "allow_forking": true,
        "is_template": false,
        "topics": ["tides", "harbour", "rust"],
        "visibility": "public",
        "forks": 9,
        "open_issues": 14,
        "watchers": 112,
        "default_branch": "main",
        "stargazers": 112,
        "master_branch": "main",
        "organization": "octo-org",
    });
    if let (Some(fields), Value::Object(details)) = (repository.as_object_mut(), details) {
        fields.extend(details);
    }
    // The API links GitHub puts in every repository object.
    let api = "https://api.github.com/repos/octo-org/tidepool";
    for (key, suffix) in API_LINKS {
        repository[key] = Value::String(format!("{api}{suffix}"));
    }
    repository
}

const API_LINKS: [(&str, &str); 35] = [
    ("forks_url", "/forks"),
    ("keys_url", "/keys{/key_id}"),
    ("collaborators_url", "/collaborators{/collaborator}"),
    ("teams_url", "/teams"),
    ("hooks_url", "/hooks"),
    ("issue_events_url", "/issues/events{/number}"),
    ("events_url", "/events"),
    ("assignees_url", "/assignees{/user}"),
    ("branches_url", "/branches{/branch}"),
    ("tags_url", "/tags"),
    ("blobs_url", "/git/blobs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"),
    ("trees_url", "/git/trees{/sha}"),
    ("statuses_url", "/statuses/{sha}"),
    ("languages_url", "/languages"),
    ("stargazers_url", "/stargazers"),
    ("contributors_url", "/contributors"),
    ("subscribers_url", "/subscribers"),
    ("subscription_url", "/subscription"),
    ("commits_url", "/commits{/sha}"),
    ("git_commits_url", "/git/commits{/sha}"),
    ("comments_url", "/comments{/number}"),
    ("issue_comment_url", "/issues/comments{/number}"),
    ("contents_url", "/contents/{+path}"),
    ("compare_url", "/compare/{base}...{head}"),
    ("merges_url", "/merges"),
    ("archive_url", "/{archive_format}{/ref}"),
    ("downloads_url", "/downloads"),
    ("issues_url", "/issues{/number}"),
    ("pulls_url", "/pulls{/number}"),
    ("milestones_url", "/milestones{/number}"),
    (
        "notifications_url",
        "/notifications{?since,all,participating}",
    ),
    ("labels_url", "/labels{/name}"),
    ("releases_url", "/releases{/id}"),
];

fn user(login: &str, id: u64, kind: &str) -> Value {
    let api = format!("https://api.github.com/users/{login}");
    json!({
        "name": login,
        "login": login,
        "id": id,
        "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "html_url": format!("https://github.com/{login}"),
        "url": api,
        "followers_url": format!("{api}/followers"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "type": kind,
        "site_admin": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_body_is_about_seven_kilobytes() {
        let body = github_push();
        assert!(
            (6_500..=7_500).contains(&body.len()),
            "{} bytes",
            body.len()
        );
        let parsed: Value = serde_json::from_slice(&body).expect("valid json");
        assert_eq!(parsed["repository"]["id"], 186853002);
        assert_eq!(parsed["commits"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn signature_matches_githubs_documented_example() {
        // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
        assert_eq!(
            github_signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn the_envelope_headers_read_back_as_a_github_push() {
        let headers = envelope_headers("1_d", "tidegate.in.github.push");
        let body = bytes::Bytes::from(github_push());
        let read = broker::envelope::read("tidegate.in.github.push", Some(&headers), &body)
            .expect("an envelope v2");
        assert_eq!(read.envelope.github.expect("github").event, EVENT);
        assert!(header_block_len(&headers) < 2_000);
    }
}
