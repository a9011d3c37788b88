//! Which requests a workflow route takes: the seed's status table, the
//! enable switch, the unset-secret behaviour, and reloads. Queued
//! workflows need only the broker (202 after the PubAck), so no worker.

use std::time::Duration;

use super::fixture::{Folder, SECRET, Stack};
use crate::eventually;
use crate::suite::json;

fn queued(name: &str, enabled: bool, message: &str) -> String {
    format!(
        "name: {name}\nenabled: {enabled}\nmode: queued\nsteps:\n  - name: say\n    tool: shell_exec\n    args:\n      command: \"echo {message}\"\n"
    )
}

#[tokio::test]
async fn the_seeds_status_table_holds() {
    let folder = Folder::new(&[
        ("on", &queued("on", true, "hi")),
        ("off", &queued("off", false, "hi")),
    ]);
    let stack = Stack::start(&folder, &[("ASSISTANT_WEBHOOK_SECRET", SECRET)]).await;
    let body = r#"{"ref": "refs/heads/main", "status": "success"}"#;

    let missing = stack.post("on", body, None).await;
    assert_eq!(missing.status(), 401);
    let forged = stack.post("on", body, Some("not-the-secret")).await;
    assert_eq!(forged.status(), 403);
    // The workflow is looked up only after the signature: an unsigned
    // caller cannot tell which workflows exist.
    assert_eq!(stack.post("nope", body, None).await.status(), 401);
    let unknown = stack.post("nope", body, Some(SECRET)).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(json(unknown).await["error"], "workflow_not_found");
    let disabled = stack.post("off", body, Some(SECRET)).await;
    assert_eq!(disabled.status(), 409);
    assert_eq!(json(disabled).await["error"], "workflow_disabled");
    let accepted = stack.post("on", body, Some(SECRET)).await;
    assert_eq!(accepted.status(), 202);
    let answer = json(accepted).await;
    assert_eq!(answer["status"], "queued");
    assert_eq!(answer["workflow"], "on");
    let run_id = answer["run_id"].as_str().expect("a run id");
    let stored = stack.nats.stored_deliveries().await;
    assert_eq!(stored.len(), 1, "only the accepted one is stored");
    assert_eq!(stored[0].subject.as_str(), "tidegate.in.workflow.on");
    assert_eq!(super::super::envelope(&stored[0]).id, run_id);
}

#[tokio::test]
async fn the_enable_switch_and_an_unset_secret_behave_as_the_seed_says() {
    let folder = Folder::new(&[("on", &queued("on", true, "hi"))]);
    let body = r#"{"ref": "refs/heads/main"}"#;
    // ASSISTANT_WEBHOOK_ENABLED=false: every workflow webhook is off.
    let off = Stack::start(&folder, &[("ASSISTANT_WEBHOOK_ENABLED", "false")]).await;
    let refused = off.post("on", body, None).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(json(refused).await["error"], "route_disabled");
    // No secret set: unsigned requests are accepted (the seed's default).
    let open = Stack::start(&folder, &[("ASSISTANT_WEBHOOK_ENABLED", "true")]).await;
    assert_eq!(open.post("on", body, None).await.status(), 202);
}

#[tokio::test]
async fn a_folder_never_read_answers_503_until_it_can_be() {
    let folder = Folder::new(&[]);
    std::fs::remove_dir(folder.workflows()).expect("rmdir");
    let stack = Stack::start(&folder, &[]).await;
    let response = stack.post("late", "{}", None).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(json(response).await["error"], "workflows_unavailable");
    std::fs::create_dir(folder.workflows()).expect("mkdir");
    folder.write("late", &queued("late", true, "hi"));
    eventually(Duration::from_secs(10), "the folder to be read", || async {
        (stack.post("late", "{}", None).await.status() == 202).then_some(())
    })
    .await;
}

#[tokio::test]
async fn reloads_pick_up_new_files_and_keep_a_broken_files_last_good_version() {
    let folder = Folder::new(&[("a", &queued("a", true, "one"))]);
    let stack = Stack::start(&folder, &[]).await;
    assert_eq!(stack.post("a", "{}", None).await.status(), 202);
    assert_eq!(stack.post("b", "{}", None).await.status(), 404);

    folder.write("b", &queued("b", true, "new"));
    folder.write("a", "name: a\nsteps: [this is not\n");
    eventually(Duration::from_secs(10), "b to be loaded", || async {
        (stack.post("b", "{}", None).await.status() == 202).then_some(())
    })
    .await;
    assert_eq!(
        stack.post("a", "{}", None).await.status(),
        202,
        "a broken file keeps serving its last good version"
    );
    // A broken file that never had a good version is not served.
    folder.write("c", "name: c\nsteps: []\n");
    folder.write("d", &queued("d", true, "d"));
    eventually(Duration::from_secs(10), "d to be loaded", || async {
        (stack.post("d", "{}", None).await.status() == 202).then_some(())
    })
    .await;
    assert_eq!(stack.post("c", "{}", None).await.status(), 404);
    // Disabling takes effect on reload too.
    folder.write("b", &queued("b", false, "new"));
    eventually(Duration::from_secs(10), "b to be disabled", || async {
        (stack.post("b", "{}", None).await.status() == 409).then_some(())
    })
    .await;
}
