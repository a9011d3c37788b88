//! Connector state records: the lifecycle events applied in order, and
//! payloads that are not the App's.

use super::*;

fn change(kind: Lifecycle, payload: &str) -> Change {
    parse(kind, payload.as_bytes())
        .expect("parses")
        .expect("has an installation")
}

fn names(state: &InstallationState) -> Vec<&str> {
    state
        .repositories
        .iter()
        .map(|repository| repository.full_name.as_str())
        .collect()
}

const CREATED: &str = r#"{"action":"created","installation":{"id":42,"account":{"login":"octocat"},"repository_selection":"selected"},
    "repositories":[{"id":2,"name":"b","full_name":"octocat/b"},{"id":1,"name":"a","full_name":"octocat/a"}]}"#;

#[test]
fn installation_lifecycle() {
    let created = change(Lifecycle::Installation, CREATED);
    assert_eq!(created.key(), "github.installation.42");
    let state = apply(None, &created, "2024-01-01T00:00:00.000Z", "d1");
    assert_eq!(state.status, InstallationStatus::Active);
    assert_eq!(state.account.as_deref(), Some("octocat"));
    assert_eq!(state.repository_selection.as_deref(), Some("selected"));
    assert_eq!(names(&state), ["octocat/a", "octocat/b"]);
    assert_eq!(state.last_event, "installation.created");

    let added = change(
        Lifecycle::InstallationRepositories,
        r#"{"action":"added","installation":{"id":42},"repository_selection":"selected",
            "repositories_added":[{"id":3,"full_name":"octocat/c"}],"repositories_removed":[]}"#,
    );
    let state = apply(Some(state), &added, "2024-01-01T00:00:01.000Z", "d2");
    assert_eq!(names(&state), ["octocat/a", "octocat/b", "octocat/c"]);
    let removed = change(
        Lifecycle::InstallationRepositories,
        r#"{"action":"removed","installation":{"id":42},"repositories_removed":[{"id":1,"full_name":"octocat/a"}]}"#,
    );
    let state = apply(Some(state), &removed, "2024-01-01T00:00:02.000Z", "d3");
    assert_eq!(names(&state), ["octocat/b", "octocat/c"]);

    let renamed = change(
        Lifecycle::Repository,
        r#"{"action":"renamed","installation":{"id":42},"repository":{"id":2,"full_name":"octocat/bee"},
            "changes":{"repository":{"name":{"from":"b"}}}}"#,
    );
    let state = apply(Some(state), &renamed, "2024-01-01T00:00:03.000Z", "d4");
    assert_eq!(names(&state), ["octocat/bee", "octocat/c"]);
    let deleted = change(
        Lifecycle::Repository,
        r#"{"action":"deleted","installation":{"id":42},"repository":{"id":3,"full_name":"octocat/c"}}"#,
    );
    let state = apply(Some(state), &deleted, "2024-01-01T00:00:04.000Z", "d5");
    assert_eq!(names(&state), ["octocat/bee"]);

    let suspend = change(
        Lifecycle::Installation,
        r#"{"action":"suspend","installation":{"id":42,"suspended_at":"2024-01-02T00:00:00Z"}}"#,
    );
    let suspended = apply(
        Some(state.clone()),
        &suspend,
        "2024-01-02T00:00:00.000Z",
        "d6",
    );
    assert_eq!(suspended.status, InstallationStatus::Suspended);
    // An older unsuspend processed late does not override the newer status.
    let unsuspend = change(
        Lifecycle::Installation,
        r#"{"action":"unsuspend","installation":{"id":42}}"#,
    );
    let late = apply(
        Some(suspended.clone()),
        &unsuspend,
        "2024-01-01T12:00:00.000Z",
        "d7",
    );
    assert_eq!(late.status, InstallationStatus::Suspended);
    let resumed = apply(
        Some(suspended),
        &unsuspend,
        "2024-01-03T00:00:00.000Z",
        "d8",
    );
    assert_eq!(resumed.status, InstallationStatus::Active);

    let uninstall = change(
        Lifecycle::Installation,
        r#"{"action":"deleted","installation":{"id":42}}"#,
    );
    let gone = apply(Some(resumed), &uninstall, "2024-01-04T00:00:00.000Z", "d9");
    assert_eq!(gone.status, InstallationStatus::Deleted);
    assert!(gone.repositories.is_empty());
    assert_eq!(gone.last_delivery_id, "d9");
}

#[test]
fn payloads_without_an_installation_or_action() {
    assert_eq!(
        parse(
            Lifecycle::Repository,
            br#"{"action":"created","repository":{"id":1,"full_name":"a/b"}}"#
        ),
        Ok(None)
    );
    assert!(parse(Lifecycle::Installation, br#"{"installation":{"id":1}}"#).is_err());
    assert!(parse(Lifecycle::Installation, b"[]").is_err());
    assert!(
        parse(
            Lifecycle::Repository,
            br#"{"action":"created","installation":{"id":1}}"#
        )
        .is_err()
    );
}

#[test]
fn a_first_event_for_a_suspended_installation_records_it_suspended() {
    let change = change(
        Lifecycle::InstallationRepositories,
        r#"{"action":"added","installation":{"id":9,"suspended_at":"2024-01-01T00:00:00Z"},"repositories_added":[{"full_name":"o/r"}]}"#,
    );
    let state = apply(None, &change, "2024-01-05T00:00:00.000Z", "d1");
    assert_eq!(state.status, InstallationStatus::Suspended);
    assert_eq!(names(&state), ["o/r"]);
}
