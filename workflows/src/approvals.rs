//! The operator side of approval gates, shared by `tidegate approvals` and
//! the ingress's admin API: list what waits, read a run, and publish a
//! decision for the workflow worker to apply (the worker, not the caller,
//! runs the remaining steps).

use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use futures::TryStreamExt;
use schemas::streams::{WORKFLOW_APPROVALS_BUCKET, WORKFLOW_CONTROL_PREFIX, WORKFLOW_RUNS_BUCKET};
use schemas::workflow::WORKFLOW_VERSION;
use schemas::workflow::run_key;
use schemas::{DecisionKind, PendingApproval, RunDecision, WorkflowRun};

/// Why an operator request did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("run {0} is not waiting for an approval")]
    NotPending(String),
    #[error("no workflow run {0}")]
    NoRun(String),
    #[error("the workflow buckets are unavailable ({0}); is tidegate-workflow running?")]
    Unavailable(String),
    #[error("the stored record cannot be read: {0}")]
    Invalid(String),
}

/// Every run waiting for a decision, oldest request first.
pub async fn list(
    jetstream: &jetstream::Context,
    timeout: Duration,
) -> Result<Vec<PendingApproval>, ApprovalError> {
    let read = async {
        let Some(store) = bucket(jetstream, WORKFLOW_APPROVALS_BUCKET).await? else {
            return Ok(Vec::new());
        };
        let keys: Vec<String> = store
            .keys()
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        let mut pending = Vec::new();
        for key in keys {
            if let Some(approval) = get::<PendingApproval>(&store, &key).await? {
                pending.push(approval);
            }
        }
        pending.sort_by(|a, b| a.requested_at.cmp(&b.requested_at));
        Ok(pending)
    };
    bounded(timeout, read).await
}

/// A run's record, if it exists.
pub async fn run(
    jetstream: &jetstream::Context,
    run_id: &str,
    timeout: Duration,
) -> Result<Option<WorkflowRun>, ApprovalError> {
    let read = async {
        match bucket(jetstream, WORKFLOW_RUNS_BUCKET).await? {
            None => Ok(None),
            Some(store) => get(&store, &run_key(run_id)).await,
        }
    };
    bounded(timeout, read).await
}

/// Publishes a decision for a run that waits for one (and answers
/// `NotPending` otherwise); returns the gate it decides.
pub async fn decide(
    jetstream: &jetstream::Context,
    run_id: &str,
    decision: DecisionKind,
    reason: Option<String>,
    by: Option<String>,
    timeout: Duration,
) -> Result<PendingApproval, ApprovalError> {
    let key = run_key(run_id);
    let pending = bounded(timeout, async {
        match bucket(jetstream, WORKFLOW_APPROVALS_BUCKET).await? {
            None => Ok(None),
            Some(store) => get::<PendingApproval>(&store, &key).await,
        }
    })
    .await?
    .ok_or_else(|| ApprovalError::NotPending(run_id.to_owned()))?;
    let message = RunDecision {
        version: WORKFLOW_VERSION,
        run_id: run_id.to_owned(),
        decision,
        reason,
        by,
        at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
    };
    let mut headers = async_nats::HeaderMap::new();
    // One decision per gate: a second one within the duplicate window is
    // stored once (later ones find the run settled and change nothing).
    headers.insert(
        "Nats-Msg-Id",
        format!("decision:{key}:{}", pending.step_index).as_str(),
    );
    let payload = serde_json::to_vec(&message).expect("a decision always serializes");
    broker::publish::publish(
        jetstream,
        format!("{WORKFLOW_CONTROL_PREFIX}.{key}"),
        headers,
        payload.into(),
        timeout,
    )
    .await
    .map_err(|error| ApprovalError::Unavailable(error.to_string()))?;
    Ok(pending)
}

async fn bucket(
    jetstream: &jetstream::Context,
    name: &str,
) -> Result<Option<kv::Store>, ApprovalError> {
    match jetstream.get_key_value(name).await {
        Ok(store) => Ok(Some(store)),
        Err(error) if error.kind() == jetstream::context::KeyValueErrorKind::GetBucket => {
            // Missing bucket (no worker has run yet) or unreachable: tell
            // them apart by asking for the stream.
            match jetstream.get_stream(format!("KV_{name}")).await {
                Err(missing) if broker::is_stream_not_found(&missing) => Ok(None),
                _ => Err(ApprovalError::Unavailable(error.to_string())),
            }
        }
        Err(error) => Err(ApprovalError::Unavailable(error.to_string())),
    }
}

async fn get<T: serde::de::DeserializeOwned>(
    store: &kv::Store,
    key: &str,
) -> Result<Option<T>, ApprovalError> {
    match store.get(key).await.map_err(unavailable)? {
        None => Ok(None),
        Some(value) => serde_json::from_slice(&value)
            .map(Some)
            .map_err(|error| ApprovalError::Invalid(error.to_string())),
    }
}

fn unavailable(error: impl std::fmt::Display) -> ApprovalError {
    ApprovalError::Unavailable(error.to_string())
}

async fn bounded<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, ApprovalError>>,
) -> Result<T, ApprovalError> {
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ApprovalError::Unavailable(format!("no answer within {timeout:?}")))?
}
