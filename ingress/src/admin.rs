//! The admin API (`[admin]`), token-gated with `Authorization: Bearer`:
//! `GET /api/approvals` lists runs waiting at an approval gate,
//! `POST /api/approvals/{run}/approve|reject` (optional body
//! `{"reason": "...", "by": "..."}`) publishes a decision the workflow
//! worker applies (202: it runs the remaining steps, not this request), and
//! `GET /api/runs/{run}` returns a run's record.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ::verify::{Scheme, Secret};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use schemas::DecisionKind;
use serde::Deserialize;
use serde_json::json;
use workflows::approvals::{self, ApprovalError};

use crate::AppState;
use crate::error::IngressError;

/// Bound on each broker call the API makes.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Admin {
    state: Arc<AppState>,
    token: Arc<[Secret; 1]>,
}

/// The admin routes; merged into the ingress's router.
pub(crate) fn router(state: Arc<AppState>, token: Secret) -> Router {
    let admin = Admin {
        state,
        token: Arc::new([token]),
    };
    Router::new()
        .route("/api/approvals", get(list))
        .route("/api/approvals/{run}/approve", post(approve))
        .route("/api/approvals/{run}/reject", post(reject))
        .route("/api/runs/{run}", get(show))
        .with_state(admin)
}

/// Optional body of a decision.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    by: Option<String>,
}

async fn list(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    respond(async {
        authorize(&admin, &headers)?;
        let jetstream = &admin.state.broker.connection.jetstream;
        let pending = approvals::list(jetstream, TIMEOUT)
            .await
            .map_err(|error| map(&admin, error))?;
        Ok((StatusCode::OK, Json(json!({ "approvals": pending }))).into_response())
    })
    .await
}

async fn approve(
    State(admin): State<Admin>,
    Path(run): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(decide(admin, run, headers, body, DecisionKind::Approve)).await
}

async fn reject(
    State(admin): State<Admin>,
    Path(run): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(decide(admin, run, headers, body, DecisionKind::Reject)).await
}

async fn decide(
    admin: Admin,
    run: String,
    headers: HeaderMap,
    body: Bytes,
    decision: DecisionKind,
) -> Result<Response, IngressError> {
    authorize(&admin, &headers)?;
    let body: DecisionBody = if body.iter().all(u8::is_ascii_whitespace) {
        DecisionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            IngressError::BadRequest(format!("the body is not {{\"reason\", \"by\"}}: {error}"))
        })?
    };
    let jetstream = &admin.state.broker.connection.jetstream;
    let by = body.by.or_else(|| Some("api".to_owned()));
    let gate = approvals::decide(jetstream, &run, decision, body.reason, by, TIMEOUT)
        .await
        .map_err(|error| map(&admin, error))?;
    let verb = match decision {
        DecisionKind::Approve => "approve",
        DecisionKind::Reject => "reject",
    };
    let answer =
        json!({ "run_id": run, "workflow": gate.workflow, "step": gate.step, "decision": verb });
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

async fn show(State(admin): State<Admin>, Path(run): Path<String>, headers: HeaderMap) -> Response {
    respond(async {
        authorize(&admin, &headers)?;
        let jetstream = &admin.state.broker.connection.jetstream;
        let record = approvals::run(jetstream, &run, TIMEOUT)
            .await
            .map_err(|error| map(&admin, error))?
            .ok_or_else(|| IngressError::RunNotFound(run.clone()))?;
        Ok((StatusCode::OK, Json(record)).into_response())
    })
    .await
}

async fn respond(
    work: impl std::future::Future<Output = Result<Response, IngressError>>,
) -> Response {
    match work.await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Missing token → 401, wrong → 403 (constant-time, the `verify` crate's).
fn authorize(admin: &Admin, headers: &HeaderMap) -> Result<(), IngressError> {
    Scheme::Bearer
        .verify(admin.token.as_slice(), headers, b"", SystemTime::now())
        .map_err(|error| IngressError::from_verify(error, StatusCode::FORBIDDEN))
}

fn map(admin: &Admin, error: ApprovalError) -> IngressError {
    match error {
        ApprovalError::NotPending(run) => IngressError::NoPendingApproval(run),
        ApprovalError::NoRun(run) => IngressError::RunNotFound(run),
        ApprovalError::Unavailable(detail) | ApprovalError::Invalid(detail) => {
            IngressError::Unavailable {
                retry_after: admin.state.http.retry_after,
                detail,
            }
        }
    }
}
