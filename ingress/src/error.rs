//! `IngressError`: every way a request can fail, and the one table that maps
//! each to a status code and a small JSON body. Bodies never echo secrets,
//! payload bytes or internal error text.

use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use ::verify::VerifyError;

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("no route for this path")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: HeaderValue },
    #[error("route is disabled")]
    Disabled,
    #[error("body exceeds the route's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("unsupported media type; this route accepts {accepted}")]
    UnsupportedMediaType { accepted: String },
    #[error("{0}")]
    Unauthenticated(VerifyError),
    #[error("{error}")]
    Forbidden {
        error: VerifyError,
        status: StatusCode,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("the client did not send the body in time")]
    BodyTimeout,
    #[error("this client address may not use this route")]
    IpNotAllowed,
    #[error("too many requests; retry later")]
    RateLimited { retry_after: Duration },
    #[error("the broker is unavailable ({detail}); retry later")]
    Unavailable {
        retry_after: Duration,
        detail: String,
    },
    #[error("the deliveries stream is full ({detail}); retry later")]
    StreamFull {
        retry_after: Duration,
        detail: String,
    },
    #[error("no worker is answering this route; retry later")]
    NoResponders { retry_after: Duration },
    #[error("the worker did not answer in time")]
    GatewayTimeout,
    #[error("the worker's reply could not be used")]
    BadReply,
    #[error("internal error")]
    Internal,
    #[error("the consumer API does not serve agent {0}")]
    AgentNotServed(String),
    #[error("no workflow named {0}")]
    WorkflowNotFound(String),
    #[error("workflow {0} is disabled")]
    WorkflowDisabled(String),
    #[error("run {0} is not waiting for an approval")]
    NoPendingApproval(String),
    #[error("no workflow run {0}")]
    RunNotFound(String),
    #[error("the workflow system is not ready ({detail}); retry later")]
    WorkflowsUnavailable {
        retry_after: Duration,
        detail: String,
    },
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl IngressError {
    pub fn status(&self) -> StatusCode {
        match self {
            IngressError::NotFound => StatusCode::NOT_FOUND,
            IngressError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            IngressError::Disabled => StatusCode::CONFLICT,
            IngressError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngressError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngressError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            IngressError::Forbidden { status, .. } => *status,
            IngressError::BadRequest(_) => StatusCode::BAD_REQUEST,
            IngressError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            IngressError::IpNotAllowed => StatusCode::FORBIDDEN,
            IngressError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngressError::Unavailable { .. }
            | IngressError::StreamFull { .. }
            | IngressError::NoResponders { .. } => StatusCode::SERVICE_UNAVAILABLE,
            IngressError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            IngressError::BadReply => StatusCode::BAD_GATEWAY,
            IngressError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            IngressError::AgentNotServed(_) => StatusCode::NOT_FOUND,
            IngressError::WorkflowNotFound(_) => StatusCode::NOT_FOUND,
            IngressError::WorkflowDisabled(_) => StatusCode::CONFLICT,
            IngressError::NoPendingApproval(_) | IngressError::RunNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            IngressError::WorkflowsUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable machine-readable code for the body.
    fn code(&self) -> &'static str {
        match self {
            IngressError::NotFound => "not_found",
            IngressError::MethodNotAllowed { .. } => "method_not_allowed",
            IngressError::Disabled => "route_disabled",
            IngressError::TooLarge { .. } => "payload_too_large",
            IngressError::UnsupportedMediaType { .. } => "unsupported_media_type",
            IngressError::Unauthenticated(_) => "unauthenticated",
            IngressError::Forbidden { .. } => "invalid_signature",
            IngressError::BadRequest(_) => "bad_request",
            IngressError::BodyTimeout => "body_timeout",
            IngressError::IpNotAllowed => "ip_not_allowed",
            IngressError::RateLimited { .. } => "rate_limited",
            IngressError::Unavailable { .. } => "broker_unavailable",
            IngressError::StreamFull { .. } => "stream_full",
            IngressError::NoResponders { .. } => "no_worker",
            IngressError::GatewayTimeout => "worker_timeout",
            IngressError::BadReply => "bad_worker_reply",
            IngressError::Internal => "internal",
            IngressError::AgentNotServed(_) => "agent_not_served",
            IngressError::WorkflowNotFound(_) => "workflow_not_found",
            IngressError::WorkflowDisabled(_) => "workflow_disabled",
            IngressError::NoPendingApproval(_) => "no_pending_approval",
            IngressError::RunNotFound(_) => "run_not_found",
            IngressError::WorkflowsUnavailable { .. } => "workflows_unavailable",
        }
    }

    /// Maps a verification failure: a missing credential is 401, a wrong
    /// one the route's invalid status (403 unless configured as 401).
    pub fn from_verify(error: VerifyError, invalid_status: StatusCode) -> Self {
        match error {
            VerifyError::Missing { .. } => IngressError::Unauthenticated(error),
            VerifyError::Invalid { .. } | VerifyError::NoSecret => IngressError::Forbidden {
                error,
                status: invalid_status,
            },
        }
    }
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: self.code(),
            message: self.to_string(),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            IngressError::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, allow);
            }
            IngressError::Unavailable { retry_after, .. }
            | IngressError::StreamFull { retry_after, .. }
            | IngressError::WorkflowsUnavailable { retry_after, .. }
            | IngressError::NoResponders { retry_after } => {
                let seconds = retry_after.as_secs().max(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            // Seconds until a token is available, rounded up: a client that
            // waits this long is admitted.
            IngressError::RateLimited { retry_after } => {
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            _ => {}
        }
        response
    }
}
