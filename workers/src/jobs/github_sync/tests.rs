//! The job without a broker: dispatch by event, idempotency keys, the
//! connector contract, and syncs through `write` (the part a folder lock
//! guards) from a local repository.

use std::path::Path;

use bytes::Bytes;
use serde_json::json;

use super::*;
use crate::jobs::github_sync::test_repo::Repo;

const SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

fn job(base: &Path, protocols: &[&str]) -> GithubSync {
    let config = GithubSyncConfig {
        state_dir: Some(base.join("state")),
        git_timeout: Some("30s".into()),
        protocols: Some(protocols.iter().map(|p| (*p).to_owned()).collect()),
        app: None,
        lock: LockConfig::default(),
        targets: vec![schemas::SyncTarget {
            id: "plugins".into(),
            instance: "inst-1".into(),
            repositories: vec!["octocat/*".into()],
            branches: vec!["main".into()],
            path: base.join("out/{name}").display().to_string(),
            auto_import: true,
        }],
    };
    GithubSync::with_env(config, &HashMap::new()).expect("valid config")
}

/// What a sync under its folder lock would do.
async fn write(job: &GithubSync, delivery: &Delivery) -> Outcome {
    let Ok(PushEvent::Branch(push)) = push::parse(&delivery.payload) else {
        panic!("a branch push");
    };
    let target = job
        .targets
        .target_for(&push.full_name, &push.branch)
        .expect("a tracked push");
    let folder = target.folder(&push.owner, &push.name);
    job.write(delivery, &target, &push, None, &folder).await
}

fn delivery(event: &str, id: &str, payload: serde_json::Value) -> Delivery {
    let envelope: schemas::Envelope = serde_json::from_value(json!({
        "version": 1,
        "id": id,
        "route": "github",
        "source": "github",
        "event": event,
        "subject": format!("tidegate.in.github.{event}"),
        "received_at": "2024-01-01T00:00:00.000Z",
        "method": "POST",
        "path": "/v1/webhooks/connectors/github",
        "payload_encoding": "json",
        "github": { "deliveryId": id, "event": event },
    }))
    .expect("a valid envelope");
    Delivery {
        envelope,
        payload: Bytes::from(payload.to_string()),
        v1_document: None,
        subject: format!("tidegate.in.github.{event}"),
        stream_sequence: 1,
        attempt: 1,
    }
}

fn push(git_ref: &str, after: &str, full_name: &str, clone_url: &str) -> serde_json::Value {
    json!({
        "ref": git_ref,
        "before": "0".repeat(40),
        "after": after,
        "installation": { "id": 42 },
        "repository": { "id": 7, "full_name": full_name, "clone_url": clone_url },
    })
}

fn kind(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Done(_) => "done",
        Outcome::Skip(_) => "skip",
        Outcome::Retry { .. } => "retry",
        Outcome::Fail(_) => "fail",
    }
}

#[tokio::test]
async fn events_are_dispatched_and_keyed() {
    let base = tempfile::tempdir().expect("temp dir");
    let job = job(base.path(), &["https"]);
    let url = "https://github.com/octocat/hello.git";
    let check = |event: &'static str, payload: serde_json::Value, expected: &'static str| {
        let delivery = delivery(event, "d-1", payload);
        let job = &job;
        async move {
            let outcome = job.handle(&delivery).await;
            assert_eq!(kind(&outcome), expected, "{event}: {outcome:?}");
        }
    };
    check(
        "push",
        push("refs/tags/v1", SHA, "octocat/hello", url),
        "skip",
    )
    .await;
    check(
        "push",
        push("refs/heads/main", &"0".repeat(40), "octocat/hello", url),
        "skip",
    )
    .await;
    check(
        "push",
        push("refs/heads/dev", SHA, "octocat/hello", url),
        "skip",
    )
    .await;
    check(
        "push",
        push("refs/heads/main", SHA, "other/hello", url),
        "skip",
    )
    .await;
    check("push", json!({ "zen": "not a push" }), "fail").await;
    check("ping", json!({ "zen": "hi" }), "skip").await;
    check(
        "push",
        push(
            "refs/heads/main",
            SHA,
            "octocat/hello",
            "file:///srv/hello.git",
        ),
        "fail",
    )
    .await;
    // No buckets without `prepare`: a transient condition.
    check(
        "push",
        push("refs/heads/main", SHA, "octocat/hello", url),
        "retry",
    )
    .await;
    check(
        "installation",
        json!({ "action": "created", "installation": { "id": 42 } }),
        "retry",
    )
    .await;
    check(
        "repository",
        json!({ "action": "created", "repository": { "id": 1, "full_name": "a/b" } }),
        "skip",
    )
    .await;

    let key = |event: &str, payload| job.key(&delivery(event, "d-1", payload));
    assert_eq!(
        key("push", push("refs/heads/main", SHA, "octocat/hello", url)).as_deref(),
        Some(format!("github-sync:plugins:7:{SHA}").as_str())
    );
    assert_eq!(
        key("push", push("refs/heads/dev", SHA, "octocat/hello", url)).as_deref(),
        Some("d-1")
    );
    assert_eq!(
        key("installation", json!({ "action": "created" })).as_deref(),
        Some("d-1")
    );
}

#[tokio::test]
async fn a_push_syncs_its_head_and_stale_or_repeated_heads_are_skipped() {
    let base = tempfile::tempdir().expect("temp dir");
    let job = job(base.path(), &["file"]);
    let repo = Repo::new();
    let url = format!("file://{}", repo.dir.path().display());
    repo.write("README.md", "one\n", false);
    repo.write("run.sh", "#!/bin/sh\n", true);
    let first = repo.commit();
    let outcome = write(
        &job,
        &delivery(
            "push",
            "d-1",
            push("refs/heads/main", &first, "octocat/hello", &url),
        ),
    )
    .await;
    let Outcome::Done(report) = outcome else {
        panic!("synced: {outcome:?}");
    };
    assert_eq!(report.counts["created"], 2, "{report:?}");
    assert_eq!(report.detail["target"], "plugins");
    assert_eq!(report.detail["repository"], "octocat/hello");
    assert_eq!(report.detail["ref"], "refs/heads/main");
    assert_eq!(report.detail["head_sha"], first);
    let folder = base.path().join("out/hello");
    assert_eq!(
        std::fs::read_to_string(folder.join("README.md")).expect("synced"),
        "one\n"
    );

    repo.write("README.md", "two\n", false);
    let second = repo.commit();
    let outcome = write(
        &job,
        &delivery(
            "push",
            "d-2",
            push("refs/heads/main", &second, "octocat/hello", &url),
        ),
    )
    .await;
    let Outcome::Done(report) = outcome else {
        panic!("synced: {outcome:?}");
    };
    assert_eq!(
        (report.counts["updated"], report.counts["skipped"]),
        (1, 1),
        "{report:?}"
    );

    // A late delivery of the first push, and a repeat of the second.
    for (id, sha, reason) in [
        ("d-3", &first, "older than the head"),
        ("d-4", &second, "already synced"),
    ] {
        let outcome = write(
            &job,
            &delivery(
                "push",
                id,
                push("refs/heads/main", sha, "octocat/hello", &url),
            ),
        )
        .await;
        let Outcome::Skip(text) = &outcome else {
            panic!("skipped: {outcome:?}");
        };
        assert!(text.contains(reason), "{text}");
    }
    assert_eq!(
        std::fs::read_to_string(folder.join("README.md")).expect("synced"),
        "two\n"
    );

    // A force push back to the first commit is synced: it is the head now.
    repo.git(&["reset", "--quiet", "--hard", &first]);
    let outcome = write(
        &job,
        &delivery(
            "push",
            "d-5",
            push("refs/heads/main", &first, "octocat/hello", &url),
        ),
    )
    .await;
    assert_eq!(kind(&outcome), "done", "{outcome:?}");
    assert_eq!(
        std::fs::read_to_string(folder.join("README.md")).expect("synced"),
        "one\n"
    );

    // A branch deleted since its push is skipped; an unreachable
    // repository is retried.
    let empty = Repo::new();
    let empty_url = format!("file://{}", empty.dir.path().display());
    let outcome = write(
        &job,
        &delivery(
            "push",
            "d-6",
            push("refs/heads/main", SHA, "octocat/empty", &empty_url),
        ),
    )
    .await;
    let Outcome::Skip(text) = &outcome else {
        panic!("skipped: {outcome:?}");
    };
    assert!(text.contains("no longer exists"), "{text}");
    // An unreachable repository is retried.
    let missing = format!("file://{}/missing.git", base.path().display());
    let outcome = write(
        &job,
        &delivery(
            "push",
            "d-7",
            push("refs/heads/main", SHA, "octocat/gone", &missing),
        ),
    )
    .await;
    assert_eq!(kind(&outcome), "retry", "{outcome:?}");
}

#[test]
fn pushes_to_tracked_branches_carry_the_connector_contract() {
    let base = tempfile::tempdir().expect("temp dir");
    let job = job(base.path(), &["https"]);
    let envelope = |event: &str, git_ref: &str, after: &str, full_name: &str| {
        let mut delivery = delivery(event, "1_guid-9", json!({}));
        delivery.envelope.github = Some(schemas::GithubFields {
            delivery_id: "guid-9".into(),
            hook_id: Some("1".into()),
            event: event.into(),
            installation_id: Some(42),
            repository_id: Some(7),
            repository_full_name: Some(full_name.into()),
            git_ref: Some(git_ref.into()),
            head_sha: Some(after.into()),
        });
        delivery
    };
    let tracked = envelope("push", "refs/heads/main", SHA, "octocat/hello");
    let connector = job.connector(&tracked.envelope).expect("a tracked push");
    assert_eq!(
        connector,
        schemas::ConnectorSync {
            connector_type: "github".into(),
            connector_instance_id: "inst-1".into(),
            connector_target_id: "plugins".into(),
            connector_sync_event_id: format!("plugins:7:{SHA}"),
            delivery_id: "guid-9".into(),
            installation_id: Some(42),
            repository_id: Some(7),
            repository_full_name: "octocat/hello".into(),
            git_ref: "refs/heads/main".into(),
            head_sha: SHA.into(),
        }
    );
    // The idempotency key is the sync event, prefixed.
    assert_eq!(
        job.key(&tracked).as_deref(),
        Some(format!("github-sync:plugins:7:{SHA}").as_str())
    );
    for untracked in [
        envelope("push", "refs/heads/dev", SHA, "octocat/hello"),
        envelope("push", "refs/tags/v1", SHA, "octocat/hello"),
        envelope("push", "refs/heads/main", &"0".repeat(40), "octocat/hello"),
        envelope("push", "refs/heads/main", SHA, "other/hello"),
        envelope("installation", "refs/heads/main", SHA, "octocat/hello"),
    ] {
        assert_eq!(
            job.connector(&untracked.envelope),
            None,
            "{:?}",
            untracked.envelope.github
        );
    }
}

/// A throwaway App key, made by openssl as an operator would.
fn app_key() -> String {
    let output = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .output()
        .expect("openssl is installed (the test suite needs it for App keys)");
    assert!(output.status.success(), "openssl genrsa failed");
    String::from_utf8(output.stdout).expect("PEM is text")
}

#[test]
fn the_example_config_loads_and_builds() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/github-sync.toml");
    let figment = crate::config::figment(Some(&file));
    let env: HashMap<String, String> = [("GITHUB_APP_PRIVATE_KEY".to_owned(), app_key())].into();
    let (runtime, config) =
        crate::config::load::<GithubSyncConfig>(&figment, "github_sync", "github_sync", &env)
            .expect("the example loads");
    assert_eq!(runtime.name, "github-sync");
    assert_eq!(runtime.consumer.filter_subjects, ["tidegate.in.github.>"]);
    let job = GithubSync::with_env(config, &env).expect("the example builds");
    let app = job.app.as_ref().expect("the example uses a GitHub App");
    assert_eq!(app.git_url(), "https://github.com/");
    let target = job
        .targets
        .target_for("octocat/hello", "release/2.0")
        .expect("the example's target tracks release branches");
    assert_eq!(target.id, "openwork-plugins");
    assert!(!target.instance.is_empty());
}

#[test]
fn an_unusable_private_key_fails_naming_the_key_not_its_content() {
    let base = tempfile::tempdir().expect("temp dir");
    let key = base.path().join("app.pem");
    std::fs::write(
        &key,
        "-----BEGIN RSA PRIVATE KEY-----\nbm90LWEta2V5\n-----END RSA PRIVATE KEY-----\n",
    )
    .expect("write");
    let config: GithubSyncConfig = {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(&format!(
            "[app]\nid = 42\nprivate_key = {{ file = \"{}\" }}\n",
            key.display()
        )))
        .extract()
        .expect("parses")
    };
    let error = GithubSync::with_env(config, &HashMap::new())
        .err()
        .expect("an unusable key")
        .to_string();
    assert!(
        error.contains("github_sync.app.private_key: not a usable RSA private key"),
        "{error}"
    );
    assert!(!error.contains("bm90LWEta2V5"), "{error}");
}
