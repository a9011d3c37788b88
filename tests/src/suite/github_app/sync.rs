//! Private repositories sync with installation tokens; tokens are cached,
//! renewed when they expire, and never leave git's environment; suspended
//! and deleted installations are skipped.

use std::time::{Duration, SystemTime};

use schemas::JobStatus;
use serde_json::json;

use super::super::github_sync::snapshot;
use super::{INSTALLATION, Options, REPOSITORY, Setup, assert_contract};
use crate::eventually;
use crate::github_app::Installation;

#[tokio::test]
async fn a_push_to_a_private_repository_syncs_with_an_installation_token() {
    let setup = Setup::start(Options::default()).await;
    let work = setup.work(REPOSITORY);
    work.write("README.md", "# plugins\n");
    work.write(".claude-plugin/plugin.json", "{\"name\":\"demo\"}\n");
    work.write("skills/review/SKILL.md", "review\n");
    let first = work.push();

    let id = setup.push("guid-1", REPOSITORY, INSTALLATION, &first).await;
    let result = setup.result(&id).await;
    assert_eq!(result.status, JobStatus::Completed, "{result:#?}");
    assert_eq!(result.counts["created"], 3, "{result:#?}");
    assert_contract(&result, "guid-1", REPOSITORY, INSTALLATION, &first);
    let mut expected = snapshot(work.dir.path());
    expected.retain(|path, _| !path.starts_with(".git"));
    assert_eq!(snapshot(&setup.folder("plugins")), expected);

    // The private repository refused nothing: every git request carried a
    // token the fake issued for installation 42.
    let issued = setup.github.issued();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0].installation, INSTALLATION);
    let requests = setup.github.git_requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.status, 200, "{request:?}");
        assert_eq!(request.token.as_deref(), Some(issued[0].token.as_str()));
    }
    // The token is in no result.
    let text = serde_json::to_string(&result).expect("serializes");
    assert!(!text.contains(&issued[0].token));

    // A second push reuses the cached token.
    work.write("README.md", "# plugins, v2\n");
    let second = work.push();
    let id = setup
        .push("guid-2", REPOSITORY, INSTALLATION, &second)
        .await;
    let result = setup.result(&id).await;
    assert_eq!(result.status, JobStatus::Completed, "{result:#?}");
    assert_eq!(result.counts["updated"], 1, "{result:#?}");
    assert_contract(&result, "guid-2", REPOSITORY, INSTALLATION, &second);
    assert_eq!(setup.github.issued().len(), 1, "the cached token was used");
    let token_requests = setup.github.token_requests();
    assert!(
        token_requests.iter().all(|request| request.status == 201),
        "{token_requests:?}"
    );
}

#[tokio::test]
async fn an_expired_installation_token_is_renewed() {
    let setup = Setup::start(Options {
        refresh_margin: "1s",
        ..Options::default()
    })
    .await;
    setup.github.set_token_lifetime(Duration::from_secs(3));
    let work = setup.work(REPOSITORY);
    work.write("README.md", "one\n");
    let first = work.push();
    let id = setup.push("guid-1", REPOSITORY, INSTALLATION, &first).await;
    assert_eq!(setup.result(&id).await.status, JobStatus::Completed);
    let issued = setup.github.issued();
    assert_eq!(issued.len(), 1);
    let old = issued[0].clone();

    // Until the first token has expired (the private repository now
    // refuses it).
    eventually(
        Duration::from_secs(10),
        "the first token to expire",
        || async { (SystemTime::now() > old.expires_at).then_some(()) },
    )
    .await;
    work.write("README.md", "two\n");
    let second = work.push();
    let id = setup
        .push("guid-2", REPOSITORY, INSTALLATION, &second)
        .await;
    let result = setup.result(&id).await;
    assert_eq!(result.status, JobStatus::Completed, "{result:#?}");
    assert_contract(&result, "guid-2", REPOSITORY, INSTALLATION, &second);
    assert_eq!(
        std::fs::read_to_string(setup.folder("plugins").join("README.md")).expect("synced"),
        "two\n"
    );
    let issued = setup.github.issued();
    assert_eq!(issued.len(), 2, "a new token was minted: {issued:?}");
    let fresh = &issued[1].token;
    assert_ne!(fresh, &old.token);
    let requests = setup.github.git_requests();
    assert!(
        requests.iter().all(|request| request.status == 200),
        "the expired token was never offered: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|request| request.token.as_deref() == Some(fresh.as_str())),
        "{requests:?}"
    );
}

#[tokio::test]
async fn suspended_and_deleted_installations_are_skipped() {
    let setup = Setup::start(Options::default()).await;
    setup.github.set_installation(43, Installation::Suspended);
    // Installation 44 does not exist (GitHub answers 404); installation 45
    // is active on GitHub, but connector state says it was suspended.
    setup.github.set_installation(45, Installation::Active);
    let work = setup.work(REPOSITORY);
    work.write("README.md", "x\n");
    let sha = work.push();

    let suspend = json!({
        "action": "suspend",
        "installation": { "id": 45, "account": { "login": "octocat" }, "suspended_at": "2026-01-01T00:00:00Z" },
    });
    let id = setup.send("installation", "guid-s45", &suspend).await;
    assert_eq!(setup.result(&id).await.status, JobStatus::Completed);

    for (guid, installation, reason) in [
        (
            "guid-43",
            43,
            "installation 43 is suspended or may not sync (GitHub answered 403",
        ),
        ("guid-44", 44, "installation 44 does not exist for this App"),
        (
            "guid-45",
            45,
            "installation 45 is suspended (connector state)",
        ),
    ] {
        let id = setup.push(guid, REPOSITORY, installation, &sha).await;
        let result = setup.result(&id).await;
        assert_eq!(result.status, JobStatus::Skipped, "{guid}: {result:#?}");
        assert_eq!(result.attempts, 1, "skipped, not retried: {result:#?}");
        assert!(
            result.detail["reason"].contains(reason),
            "{guid}: {result:#?}"
        );
        assert_contract(&result, guid, REPOSITORY, installation, &sha);
    }
    let asked: Vec<u64> = setup
        .github
        .token_requests()
        .iter()
        .map(|request| request.installation)
        .collect();
    assert_eq!(asked, [43, 44], "connector state answered for 45");
    assert!(setup.github.git_requests().is_empty());
    assert!(!setup.folder("plugins").exists(), "nothing was written");
}
