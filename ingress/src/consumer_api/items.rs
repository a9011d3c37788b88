//! `DELETE /api/webhook/items {"ids": [...]}`: acks each item's recorded
//! lease and waits for the server to confirm. Unknown and already deleted
//! ids are listed, not refused; a broker failure answers 503, and sending
//! the same request again is safe.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt as _, TryStreamExt as _};
use schemas::{DeleteItems, DeletedItems};

use super::leases::Acked;
use super::{ITEMS_METRIC, api, authenticate, finish, unavailable};
use crate::AppState;
use crate::error::IngressError;

/// Most ids in one request.
pub(super) const MAX_IDS: usize = 1000;
/// Largest request body: 1000 ids with room to spare.
const BODY_LIMIT: usize = 64 * 1024;
/// Acks in flight per request.
const CONCURRENT_ACKS: usize = 16;

pub(super) async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    finish(run(&state, request).await)
}

async fn run(state: &AppState, request: Request) -> Result<Response, IngressError> {
    let api = api(state)?;
    authenticate(api, request.headers())?;
    let body = tokio::time::timeout(
        state.http.body_timeout,
        to_bytes(request.into_body(), BODY_LIMIT),
    )
    .await
    .map_err(|_| IngressError::BodyTimeout)?
    .map_err(|_| IngressError::TooLarge {
        limit: BODY_LIMIT as u64,
    })?;
    let request: DeleteItems = serde_json::from_slice(&body).map_err(|error| {
        IngressError::BadRequest(format!("the body must be {{\"ids\": [\"...\"]}}: {error}"))
    })?;
    if request.ids.len() > MAX_IDS {
        return Err(IngressError::BadRequest(format!(
            "at most {MAX_IDS} ids per request"
        )));
    }
    if !state.broker.is_connected() {
        return Err(unavailable(state, "not connected to nats"));
    }
    // Each id once, in the order given.
    let mut seen = BTreeSet::new();
    let ids: Vec<String> = request
        .ids
        .into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect();
    let outcomes: Vec<(String, Acked)> = futures::stream::iter(ids)
        .map(|id| async move {
            // Only a stream sequence can be an item id.
            let Some(sequence) = id.parse::<u64>().ok().filter(|seq| *seq > 0) else {
                return Ok((id, Acked::Unknown));
            };
            let acked = api.leases.ack(&state.broker, sequence).await?;
            Ok((id, acked))
        })
        .buffered(CONCURRENT_ACKS)
        .try_collect()
        .await
        .map_err(|error: super::leases::LeaseError| unavailable(state, error))?;
    let mut answer = DeletedItems::default();
    for (id, acked) in outcomes {
        match acked {
            Acked::Deleted => answer.deleted.push(id),
            Acked::Unknown => answer.unknown.push(id),
        }
    }
    metrics::counter!(ITEMS_METRIC, "outcome" => "deleted").increment(answer.deleted.len() as u64);
    metrics::counter!(ITEMS_METRIC, "outcome" => "unknown").increment(answer.unknown.len() as u64);
    Ok(Json(answer).into_response())
}
