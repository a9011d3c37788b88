//! The dev sink of `tidegate up`: a loopback HTTP receiver the forwarder
//! delivers to. It checks each request's Standard Webhooks signature (the
//! `verify` crate's, as a receiver would) and logs one `sink |` line per
//! webhook, so a delivery can be followed end to end.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde::Deserialize;
use verify::{DEFAULT_TOLERANCE, Scheme, Secret, VerifyError};

use crate::process::{Label, Output};

pub(crate) const SINK: Label = Label {
    name: "sink",
    colour: "32",
};

/// How the forwarder signs, and so what the sink checks.
const SCHEME: Scheme = Scheme::StandardWebhooks {
    tolerance: DEFAULT_TOLERANCE,
};

/// What the sink needs for every request.
struct Sink {
    /// The decoded Standard Webhooks key (no `whsec_`, no base64).
    key: Secret,
    output: Output,
}

/// Serves until the process ends; answers 204 to a correctly signed
/// request and 401 otherwise (which the forwarder dead-letters).
pub(crate) async fn serve(listener: tokio::net::TcpListener, key: Secret, output: Output) {
    let router = axum::Router::new()
        .fallback(receive)
        .with_state(Arc::new(Sink { key, output }));
    if let Err(error) = axum::serve(listener, router).await {
        output.line(SINK, &format!("stopped: {error}"));
    }
}

async fn receive(
    State(sink): State<Arc<Sink>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let verdict = verify(&sink.key, &headers, &body, SystemTime::now());
    let line = format!(
        "{method} {}  {}  {} bytes  {}",
        uri.path(),
        describe(&headers, &body),
        body.len(),
        match &verdict {
            Ok(()) => "signature ok".to_owned(),
            Err(why) => format!("REFUSED: {why}"),
        }
    );
    sink.output.line(SINK, &line);
    match verdict {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

/// Checks `webhook-signature` (any of its space-separated `v1,` values)
/// over `{webhook-id}.{webhook-timestamp}.{body}`, in constant time, with
/// the timestamp within the default tolerance of `now`.
fn verify(
    key: &Secret,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), VerifyError> {
    SCHEME.verify(std::slice::from_ref(key), headers, body, now)
}

/// `envelope <id> route github event push` for envelopes, else the
/// `webhook-id` and content type of an original body.
fn describe(headers: &HeaderMap, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Summary {
        id: String,
        route: String,
        subject: String,
        #[serde(default)]
        event: Option<String>,
    }
    if let Ok(summary) = serde_json::from_slice::<Summary>(body) {
        let event = summary
            .event
            .map(|event| format!(" event {event}"))
            .unwrap_or_default();
        return format!(
            "envelope {} route {}{event} subject {}",
            summary.id, summary.route, summary.subject
        );
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    format!(
        "webhook-id {} content-type {}",
        header("webhook-id"),
        header("content-type")
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use axum::http::HeaderName;
    use verify::standard_webhooks;

    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: u64 = 1_700_000_000;

    fn headers(id: &str, timestamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", id.parse().expect("value"));
        headers.insert("webhook-timestamp", timestamp.parse().expect("value"));
        headers.insert("webhook-signature", signature.parse().expect("value"));
        headers
    }

    #[test]
    fn checks_standard_webhooks_signatures() {
        let configured = Secret::new(SECRET).expect("non-empty");
        let key = standard_webhooks::decode_key(&configured).expect("valid secret");
        let body =
            br#"{"id":"d-1","route":"github","subject":"tidegate.in.github.push","event":"push"}"#;
        let good = standard_webhooks::signature(key.expose(), "d-1", NOW, body);
        let at = |seconds: u64| UNIX_EPOCH + Duration::from_secs(seconds);
        let check = |headers: &HeaderMap, now: u64| verify(&key, headers, body, at(now));
        let signature = HeaderName::from_static("webhook-signature");
        let timestamp = HeaderName::from_static("webhook-timestamp");
        assert_eq!(check(&headers("d-1", "1700000000", &good), NOW), Ok(()));
        let rotated = format!("v1,AAAA {good}");
        assert_eq!(check(&headers("d-1", "1700000000", &rotated), NOW), Ok(()));
        assert_eq!(
            check(&headers("d-2", "1700000000", &good), NOW),
            Err(VerifyError::invalid(signature))
        );
        assert_eq!(
            check(&headers("d-1", "1700000000", &good), NOW + 3600),
            Err(VerifyError::stale(timestamp))
        );
        assert!(matches!(
            check(&HeaderMap::new(), NOW),
            Err(VerifyError::Missing { .. })
        ));
        assert_eq!(
            describe(&HeaderMap::new(), body),
            "envelope d-1 route github event push subject tidegate.in.github.push"
        );
    }
}
