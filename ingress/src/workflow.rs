//! Workflow routes (the assistant seed): the `{workflow}` parameter names a
//! workflow file; unknown → 404, disabled → 409, folder never read → 503.
//! A queued workflow answers 202 with its run id after the PubAck; a sync
//! one listens for its run record, then publishes and waits for the run
//! (200 with every step's result; 504 with the run id past its timeout).

use std::time::Duration;

use async_nats::HeaderMap;
use axum::Json;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use schemas::streams::{WORKFLOW_RUNS_BUCKET, workflow_run_subject};
use schemas::{ApprovalState, RunStatus, StepResult, WorkflowRun};
use serde::Serialize;
use tracing::{debug, warn};
use workflows::{Loaded, Lookup, Mode, run_key};

use crate::AppState;
use crate::config::{Route, WorkflowRoute};
use crate::deliver::publish_error;
use crate::error::IngressError;
use crate::telemetry::metric;

/// The workflow a request names, if it may run.
pub(crate) fn find(
    state: &AppState,
    workflows: &WorkflowRoute,
    params: &[(String, String)],
) -> Result<std::sync::Arc<Loaded>, IngressError> {
    let name = params
        .iter()
        .find(|(param, _)| *param == workflows.param)
        .map(|(_, value)| value.as_str())
        .unwrap_or_default();
    match workflows.registry.lookup(name) {
        Lookup::Enabled(loaded) => Ok(loaded),
        Lookup::Disabled(_) => Err(IngressError::WorkflowDisabled(name.to_owned())),
        Lookup::Unknown => Err(IngressError::WorkflowNotFound(name.to_owned())),
        Lookup::NotReady(detail) => Err(IngressError::WorkflowsUnavailable {
            retry_after: state.http.retry_after,
            detail,
        }),
    }
}

/// A verified delivery for a workflow; its delivery id is the run id.
pub(crate) struct Run<'a> {
    pub route: &'a Route,
    pub loaded: &'a Loaded,
    pub id: &'a str,
}

/// Body of a queued workflow's answer, and of a sync one's.
#[derive(Debug, Serialize)]
struct Answer<'a> {
    /// `queued`; for a finished sync run `ok` (completed), `failed` or
    /// `cancelled`; `awaiting_approval` when it stopped at a gate.
    status: &'a str,
    workflow: &'a str,
    run_id: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<&'a [StepResult]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approval: Option<&'a ApprovalState>,
}

#[derive(Debug, Serialize)]
struct TimedOut<'a> {
    error: &'static str,
    message: String,
    workflow: &'a str,
    run_id: &'a str,
}

/// Publishes the delivery (answering nothing 2xx before the PubAck) and,
/// for a sync workflow, waits for the run.
pub(crate) async fn deliver(
    state: &AppState,
    run: &Run<'_>,
    subject: String,
    headers: HeaderMap,
    envelope: Bytes,
) -> Result<Response, IngressError> {
    let workflow = &run.loaded.workflow;
    let key = run_key(run.id);
    // Listen before publishing: otherwise a fast run could be written
    // before anyone listens.
    let updates = match workflow.mode {
        Mode::Queued => None,
        Mode::Sync => Some(
            state
                .broker
                .connection
                .client
                .subscribe(workflow_run_subject(&key))
                .await
                .map_err(|error| IngressError::Unavailable {
                    retry_after: state.http.retry_after,
                    detail: format!("listening for the run: {error}"),
                })?,
        ),
    };
    let published = state
        .broker
        .publish(&run.route.name, subject.into(), headers, envelope)
        .await
        .map_err(|error| publish_error(state, &error))?;
    let outcome = if published.duplicate {
        "duplicate"
    } else {
        "stored"
    };
    metrics::counter!(metric::DELIVERIES, "route" => run.route.name.clone(), "outcome" => outcome)
        .increment(1);
    debug!(delivery_id = %run.id, workflow = %workflow.name, outcome, "workflow delivery acknowledged by jetstream");
    let Some(updates) = updates else {
        let status = if published.duplicate {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        let answer = Answer {
            status: "queued",
            workflow: &workflow.name,
            run_id: run.id,
            duplicate: published.duplicate,
            results: None,
            error: None,
            approval: None,
        };
        return Ok((status, Json(answer)).into_response());
    };
    let settled = wait(state, run, &key, updates, published.duplicate).await;
    Ok(match settled {
        Some(record) => answer(run, &record, published.duplicate),
        None => {
            let body = TimedOut {
                error: "workflow_timeout",
                message: format!(
                    "the run did not finish within {}; it goes on: look it up by its run id",
                    humantime::format_duration(workflow.timeout)
                ),
                workflow: &workflow.name,
                run_id: run.id,
            };
            (StatusCode::GATEWAY_TIMEOUT, Json(body)).into_response()
        }
    })
}

/// The run's record once it is no longer running, within the workflow's
/// timeout. A duplicate delivery's run may have settled before we
/// listened, so its current record is read first.
async fn wait(
    state: &AppState,
    run: &Run<'_>,
    key: &str,
    mut updates: async_nats::Subscriber,
    duplicate: bool,
) -> Option<WorkflowRun> {
    let deadline = tokio::time::Instant::now() + run.loaded.workflow.timeout;
    if duplicate
        && let Some(record) = current(state, key).await
        && record.status != RunStatus::Running
    {
        return Some(record);
    }
    loop {
        let message = tokio::time::timeout_at(deadline, updates.next())
            .await
            .ok()??;
        // Deletes and purges carry a KV-Operation header and no record.
        if message
            .headers
            .as_ref()
            .is_some_and(|headers| headers.get("KV-Operation").is_some())
        {
            continue;
        }
        match serde_json::from_slice::<WorkflowRun>(&message.payload) {
            Ok(record) if record.status != RunStatus::Running => return Some(record),
            Ok(_) => {}
            Err(error) => {
                warn!(run_id = %run.id, error = %error, "a run record is not a workflow run v1");
            }
        }
    }
}

/// The run's current record, if the bucket and the entry exist.
async fn current(state: &AppState, key: &str) -> Option<WorkflowRun> {
    let read = async {
        let store = state
            .broker
            .connection
            .jetstream
            .get_key_value(WORKFLOW_RUNS_BUCKET)
            .await
            .ok()?;
        let value = store.get(key).await.ok()??;
        serde_json::from_slice(&value).ok()
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()
        .flatten()
}

fn answer(run: &Run<'_>, record: &WorkflowRun, duplicate: bool) -> Response {
    let (status, code) = match record.status {
        RunStatus::Completed => (StatusCode::OK, "ok"),
        RunStatus::AwaitingApproval => (StatusCode::ACCEPTED, "awaiting_approval"),
        other => (StatusCode::OK, other.as_str()),
    };
    let body = Answer {
        status: code,
        workflow: &run.loaded.workflow.name,
        run_id: run.id,
        duplicate,
        results: Some(&record.steps),
        error: record.error.as_deref(),
        approval: record
            .approvals
            .last()
            .filter(|_| record.status == RunStatus::AwaitingApproval),
    };
    (status, Json(body)).into_response()
}
