//! Live targets: `tidegate targets add|list|remove` edit the KV bucket,
//! the running worker applies each change without a restart, and the CLI
//! refuses a target with the same rules as the worker's TOML loader.

use std::time::Duration;

use schemas::JobStatus;

use super::{INSTALLATION, Options, Setup};
use crate::cli::tidegate;
use crate::eventually;

#[tokio::test]
async fn targets_added_and_removed_with_the_cli_apply_without_a_restart() {
    // No TOML target at all: everything is live.
    let setup = Setup::start(Options {
        targets: Some(String::new()),
        ..Options::default()
    })
    .await;
    let full_name = "octocat/live";
    let work = setup.work(full_name);
    work.write("plugin.json", "{}\n");
    let sha = work.push();
    let folder = setup.base.path().join("live");
    let path = folder.display().to_string();

    // The same rule as the TOML loader: a pattern for several
    // repositories needs {name} in the path.
    let refused = tidegate(
        &setup.nats,
        &[
            "targets",
            "add",
            "--id",
            "live",
            "--instance",
            "inst-live",
            "--repository",
            "octocat/*",
            "--branch",
            "main",
            "--path",
            &path,
        ],
    )
    .await;
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("target.path: the repository patterns match several repositories"),
        "{refused:?}"
    );

    tidegate(
        &setup.nats,
        &[
            "targets",
            "add",
            "--id",
            "live",
            "--instance",
            "inst-live",
            "--repository",
            full_name,
            "--branch",
            "main",
            "--path",
            &path,
        ],
    )
    .await
    .success();
    let listed = tidegate(&setup.nats, &["targets", "list", "--json"])
        .await
        .success();
    let rows = listed.json_lines();
    assert_eq!(rows.len(), 1, "{listed:?}");
    assert_eq!(rows[0]["id"], "live");
    assert_eq!(rows[0]["target"]["instance"], "inst-live");
    assert_eq!(rows[0]["problems"], serde_json::json!([]));

    // The worker picks the target up while it runs: a push syncs.
    let mut attempt = 0;
    let result = eventually(
        Duration::from_secs(30),
        "a push to the live target to sync",
        || {
            attempt += 1;
            let guid = format!("guid-live-{attempt}");
            let setup = &setup;
            let sha = sha.clone();
            async move {
                let id = setup.push(&guid, full_name, INSTALLATION, &sha).await;
                let result = setup.result(&id).await;
                (result.status == JobStatus::Completed).then_some(result)
            }
        },
    )
    .await;
    let connector = result.connector.as_ref().expect("the contract");
    assert_eq!(connector.connector_target_id, "live");
    assert_eq!(connector.connector_instance_id, "inst-live");
    assert_eq!(
        std::fs::read_to_string(folder.join("plugin.json")).expect("synced"),
        "{}\n"
    );

    tidegate(&setup.nats, &["targets", "remove", "live"])
        .await
        .success();
    let listed = tidegate(&setup.nats, &["targets", "list", "--json"])
        .await
        .success();
    assert!(listed.json_lines().is_empty(), "{listed:?}");
    work.write("plugin.json", "{\"v\":2}\n");
    let next = work.push();
    let mut attempt = 0;
    eventually(
        Duration::from_secs(30),
        "a push to the removed target to be skipped",
        || {
            attempt += 1;
            let guid = format!("guid-gone-{attempt}");
            let setup = &setup;
            let next = next.clone();
            async move {
                let id = setup.push(&guid, full_name, INSTALLATION, &next).await;
                let result = setup.result(&id).await;
                (result.status == JobStatus::Skipped
                    && result.detail["reason"].contains("not tracked by any target"))
                .then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(folder.join("plugin.json")).expect("left as it was"),
        "{}\n"
    );
}
