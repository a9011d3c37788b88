//! One writer per folder across replicas: two worker processes, a slow
//! fetch holding one folder, and the second replica waiting on the lock,
//! being retried, and writing only after the first released the folder;
//! and a holder that crashes, whose lock expires with its lease.

use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use schemas::JobStatus;
use schemas::streams::SYNC_LOCKS_BUCKET;

use super::{INSTALLATION, Options, REPOSITORY, Setup, assert_contract};
use crate::eventually;

fn time(text: &str) -> SystemTime {
    humantime::parse_rfc3339_weak(text).unwrap_or_else(|_| panic!("`{text}` is a time"))
}

#[tokio::test]
async fn two_replicas_never_write_the_same_folder_at_once() {
    let mut setup = Setup::new(Options {
        concurrency: 1,
        max_deliver: 20,
        lock_wait: "1s",
        lock_ttl: "3s",
        ..Options::default()
    })
    .await;
    let pem = setup.key.private_pem.clone();
    setup.add_worker(&pem);
    setup.add_worker(&pem);
    let work = setup.work(REPOSITORY);
    work.write("README.md", "one\n");
    let first = work.push();
    // Each pack request is answered 1.5 s late: a sync holds its folder for
    // at least 3 s, longer than the lease (3 s), so it must renew it.
    setup.github.set_git_hold(Duration::from_millis(1500));
    let first_id = setup.push("guid-a", REPOSITORY, INSTALLATION, &first).await;

    // Once the first sync holds the folder, the next commit is pushed and
    // delivered: the other (idle) replica takes it ...
    let holder = lock_holder(&setup).await;
    // ... and git has told it where main is (its first pack request).
    eventually(
        Duration::from_secs(20),
        "the first sync to read the refs",
        || async {
            setup
                .github
                .git_requests()
                .iter()
                .any(|request| request.path.ends_with("/git-upload-pack"))
                .then_some(())
        },
    )
    .await;
    work.write("README.md", "two\n");
    let second = work.push();
    let second_id = setup
        .push("guid-b", REPOSITORY, INSTALLATION, &second)
        .await;

    // The second replica found the folder locked by the first, and was
    // retried instead of writing.
    let waited = setup
        .result_where(&second_id, |result| result.status == JobStatus::Retrying)
        .await;
    let error = waited.error.as_deref().expect("an error");
    assert!(
        error.contains("is being synced by") && error.contains(&holder),
        "{error}"
    );
    assert_contract(&waited, "guid-b", REPOSITORY, INSTALLATION, &second);

    let a = setup.result(&first_id).await;
    let b = setup.result(&second_id).await;
    assert_eq!(a.status, JobStatus::Completed, "{a:#?}");
    assert_eq!(b.status, JobStatus::Completed, "{b:#?}");
    assert_contract(&a, "guid-a", REPOSITORY, INSTALLATION, &first);
    assert_contract(&b, "guid-b", REPOSITORY, INSTALLATION, &second);
    assert_eq!(a.detail["lock_holder"], holder);
    // The folder was written by one sync, then the other: the lock
    // intervals do not overlap.
    let (a_from, a_to) = (
        time(&a.detail["lock_acquired_at"]),
        time(&a.detail["lock_released_at"]),
    );
    let (b_from, b_to) = (
        time(&b.detail["lock_acquired_at"]),
        time(&b.detail["lock_released_at"]),
    );
    assert!(a_from < a_to && b_from < b_to);
    assert!(a_to <= b_from, "overlapping writes: a {a:#?} b {b:#?}");
    // The first sync outlived its lease by renewing it.
    assert!(
        a_to.duration_since(a_from).expect("ordered") > Duration::from_secs(3),
        "{a:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(setup.folder("plugins").join("README.md")).expect("synced"),
        "two\n"
    );
}

/// The lock of the only folder, once someone holds it: its holder.
async fn lock_holder(setup: &Setup) -> String {
    let jetstream = setup.nats.jetstream().await;
    let locks = eventually(Duration::from_secs(20), "the locks bucket", || async {
        jetstream.get_key_value(SYNC_LOCKS_BUCKET).await.ok()
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "a sync to hold the folder",
        || async {
            let mut keys = locks.keys().await.ok()?;
            let key = keys.next().await?.ok()?;
            let value = locks.get(key).await.ok()??;
            let record: serde_json::Value = serde_json::from_slice(&value).ok()?;
            Some(record["holder"].as_str()?.to_owned())
        },
    )
    .await
}

#[tokio::test]
async fn a_crashed_holders_lock_expires_and_another_replica_syncs() {
    let mut setup = Setup::new(Options {
        concurrency: 1,
        ack_wait: "2s",
        lock_wait: "30s",
        lock_ttl: "3s",
        ..Options::default()
    })
    .await;
    let pem = setup.key.private_pem.clone();
    setup.add_worker(&pem);
    let work = setup.work(REPOSITORY);
    work.write("README.md", "one\n");
    let sha = work.push();
    // The first replica's fetch hangs while it holds the folder.
    setup.github.set_git_hold(Duration::from_secs(30));
    let id = setup
        .push("guid-crash", REPOSITORY, INSTALLATION, &sha)
        .await;
    let crashed = lock_holder(&setup).await;
    setup.github.set_git_hold(Duration::ZERO);
    let pem = setup.key.private_pem.clone();
    setup.add_worker(&pem);
    setup.workers[0].kill();
    let killed_at = SystemTime::now();
    // The dead holder's lock is still there: the survivor must wait for
    // its lease to run out, then takes the redelivered push.
    assert_eq!(lock_holder(&setup).await, crashed);
    let result = setup.result(&id).await;
    assert_eq!(result.status, JobStatus::Completed, "{result:#?}");
    assert!(result.attempts >= 2, "{result:#?}");
    assert_contract(&result, "guid-crash", REPOSITORY, INSTALLATION, &sha);
    assert_ne!(result.detail["lock_holder"], crashed);
    assert!(
        time(&result.detail["lock_acquired_at"]) > killed_at,
        "{result:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(setup.folder("plugins").join("README.md")).expect("synced"),
        "one\n"
    );
}
